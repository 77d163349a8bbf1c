"""Benchmark of the media-core kernels: G.711, batch RTP parse, jitter buffer.

Run: ``.venv/bin/python benchmarks/g711_rtp.py``. Prints one table; the ratio column is
the Cython kernel's rate divided by a straightforward numpy implementation's rate.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "cext"))

import reference_g711 as ref  # noqa: E402

from cext import _g711, _rtp, jitter, rtp  # noqa: E402

FRAME = 160


def rate(fn: Callable[[], int], min_time: float = 0.4) -> float:
    """Items per second of ``fn`` (which returns how many items it processed)."""
    fn()
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < min_time:
        n += fn()
    return n / elapsed


def bench_g711() -> tuple[float, float]:
    rng = np.random.default_rng(0)
    frames = rng.integers(-32768, 32768, (1000, FRAME), dtype=np.int32).astype(np.int16)
    enc = np.empty(FRAME, np.uint8)
    dec = np.empty(FRAME, np.int16)

    def cy() -> int:
        for f in frames:
            _g711.ulaw_encode(f, enc)
            _g711.ulaw_decode(enc, dec)
        return len(frames)

    def np_() -> int:
        for f in frames[:200]:
            ref.ulaw_decode(ref.ulaw_encode(f))
        return 200

    return rate(cy), rate(np_)


def _np_parse(packets: np.ndarray, lengths: np.ndarray) -> int:
    """Vectorised numpy parse of the fixed fields and CSRC/extension/padding offsets."""
    b0 = packets[:, 0]
    ok = (lengths >= 12) & ((b0 >> 6) == 2)
    seq = (packets[:, 2].astype(np.uint16) << 8) | packets[:, 3]
    ts = packets[:, 4:8].copy().view(">u4")[:, 0]
    ssrc = packets[:, 8:12].copy().view(">u4")[:, 0]
    off = 12 + 4 * (b0 & 0x0F).astype(np.int32)
    has_x = (b0 & 0x10) != 0
    rows = np.arange(len(packets))
    xo = np.minimum(off + 2, packets.shape[1] - 2)
    xwords = (packets[rows, xo].astype(np.int32) << 8) | packets[rows, xo + 1]
    off = np.where(has_x, off + 4 + 4 * xwords, off)
    pad = np.where(b0 & 0x20, packets[rows, np.maximum(lengths - 1, 0)], 0)
    plen = lengths - off - pad
    ok &= plen >= 0
    return int(ok.sum()) + 0 * int(seq[0] + ts[0] + ssrc[0])


def bench_rtp_parse() -> tuple[float, float]:
    batch = rtp.RtpBatch(256)
    batch.load(
        [
            bytes(rtp.RtpHeader(sequence_number=i, timestamp=160 * i, ssrc=1, payload=bytes(160)))
            for i in range(256)
        ],
        0.0,
    )

    def cy() -> int:
        return _rtp.parse_batch(
            batch.packets,
            batch.lengths,
            batch.seq,
            batch.ts,
            batch.ssrc,
            batch.pt,
            batch.marker,
            batch.payload_offset,
            batch.payload_len,
            batch.status,
            256,
        )

    return rate(cy), rate(lambda: _np_parse(batch.packets, batch.lengths))


def bench_jitter() -> tuple[float, float]:
    rng = np.random.default_rng(1)
    audio = rng.integers(-8000, 8000, FRAME * 500).astype(np.int16)
    jb = jitter.JitterBuffer()
    out = np.empty(FRAME, np.int16)
    state = {"k": 0}

    def cy() -> int:
        for _ in range(500):
            k = state["k"]
            j = k % 500
            if k % 50 != 7:  # 2 % loss exercises the concealment path too
                jb.put_pcm(audio[j * FRAME : (j + 1) * FRAME], k & 0xFFFF, FRAME * k, 1, 20.0 * k)
            jb.get_frame(out, 20.0 * k + 3)
            state["k"] = k + 1
        return 500

    # numpy baseline: a dict keyed by timestamp plus a copy per tick (no PLC, no adaptation)
    np_state: dict[str, object] = {"k": 0, "buf": {}}

    def np_() -> int:
        buf = np_state["buf"]
        assert isinstance(buf, dict)
        for _ in range(500):
            k = int(np_state["k"])  # type: ignore[call-overload]
            j = k % 500
            buf[FRAME * k] = audio[j * FRAME : (j + 1) * FRAME].copy()
            frame = buf.pop(FRAME * (k - 2), None)
            out[:] = frame if frame is not None else 0
            np_state["k"] = k + 1
        return 500

    return rate(cy), rate(np_)


def main() -> None:
    rows = [
        ("G.711 µ-law encode+decode, 160-sample frames", "Mframes/s", *bench_g711()),
        ("RTP batch parse (256 x 172-byte packets)", "Mpackets/s", *bench_rtp_parse()),
        ("jitter put+get per tick (numpy: dict, no PLC)", "Mticks/s", *bench_jitter()),
    ]
    print(f"{'kernel':<48} {'unit':<11} {'cython':>8} {'numpy':>8} {'ratio':>7}")
    for name, unit, cy, np_rate in rows:
        print(f"{name:<48} {unit:<11} {cy / 1e6:8.3f} {np_rate / 1e6:8.3f} {cy / np_rate:7.1f}")
    print(
        "(ratio = Cython rate / numpy-implementation rate; one core, Python call per "
        "frame/tick/batch included)"
    )


if __name__ == "__main__":
    main()
