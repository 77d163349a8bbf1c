"""The nogil kernels (G.711, RTP batch parse/stats, jitter buffer) run from a thread
pool give the same results as run serially (pywt test_concurrent idea)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import reference_g711 as ref

from cext import _g711, jitter, rtp

N_THREADS = 4
N_JOBS = 16


def _g711_job(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(-32768, 32768, 160 * 500, dtype=np.int32).astype(np.int16)
    enc = np.empty(x.shape[0], np.uint8)
    dec = np.empty(x.shape[0], np.int16)
    for _ in range(5):
        _g711.ulaw_encode(x, enc)
        _g711.ulaw_decode(enc, dec)
    return enc.copy(), dec


def test_g711_concurrent() -> None:
    with ThreadPoolExecutor(N_THREADS) as pool:
        results = list(pool.map(_g711_job, range(N_JOBS)))
    for seed, (enc, dec) in enumerate(results):
        rng = np.random.default_rng(seed)
        x = rng.integers(-32768, 32768, 160 * 500, dtype=np.int32).astype(np.int16)
        np.testing.assert_array_equal(enc, ref.ulaw_encode(x))
        np.testing.assert_array_equal(dec, ref.ulaw_decode(ref.ulaw_encode(x)))


def _rtp_job(seed: int) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    batch = rtp.RtpBatch(256, width=200)
    table = rtp.RtpSourceTable(1)
    valid = np.zeros(256, np.uint8)
    slots = np.zeros(256, np.int32)
    seqs = []
    for b in range(20):
        dgrams = []
        for k in range(256):
            seq = (b * 256 + k + int(rng.integers(0, 3))) & 0xFFFF
            seqs.append(seq)
            dgrams.append(
                bytes(
                    rtp.RtpHeader(
                        sequence_number=seq, timestamp=160 * seq, ssrc=seed, payload=bytes(160)
                    )
                )
            )
        batch.load(dgrams, [20.0 * (b * 256 + k) + float(rng.uniform(0, 5)) for k in range(256)])
        assert batch.parse() == 256
        table.update(slots, batch.seq, batch.ts, batch.ssrc, batch.arrival_ms, batch.status, valid)
    return batch.seq.copy(), np.array(seqs[-256:], np.uint16), table.stats(0)


def test_rtp_concurrent() -> None:
    serial = [_rtp_job(s) for s in range(4)]
    with ThreadPoolExecutor(N_THREADS) as pool:
        threaded = list(pool.map(_rtp_job, list(range(4)) * 2))
    for i, (seq, want, stats) in enumerate(threaded):
        np.testing.assert_array_equal(seq, want)
        assert stats == serial[i % 4][2]
        assert stats[0] == i % 4 and stats[3] > 5000


def _jitter_job(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    audio = rng.integers(-20000, 20000, 160 * 300).astype(np.int16)
    jb = jitter.JitterBuffer()
    out = np.zeros(160, np.int16)
    frames = []
    for k in range(300):
        if rng.uniform() > 0.1:
            jb.put_pcm(audio[k * 160 : (k + 1) * 160], k, 160 * k, seed, 20.0 * k)
        jb.get_frame(out, 20.0 * k + 5)
        frames.append(out.copy())
    return np.concatenate(frames)


def test_jitter_concurrent() -> None:
    serial = [_jitter_job(s) for s in range(4)]
    with ThreadPoolExecutor(N_THREADS) as pool:
        threaded = list(pool.map(_jitter_job, list(range(4)) * 3))
    for i, out in enumerate(threaded):
        np.testing.assert_array_equal(out, serial[i % 4])
    assert not np.array_equal(serial[0], serial[1])
