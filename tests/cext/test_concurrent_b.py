"""DTMF detector, mixer, tone and prompt kernels from several threads (nogil safety)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import reference_dsp as ref

from cext.dtmf import DtmfDetector, detect_digits
from cext.mixer import conference, listen, merge, plan_from_hears
from cext.tones import PromptPlayer, dtmf_string

WORKERS = 4


def _signal(seed: int) -> tuple[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    seq = "".join(rng.choice(list("0123456789*#ABCD"), 6))
    gen = dtmf_string(seq, on=0.05, off=0.05, level=-15)
    out = []
    while True:
        buf = np.zeros(160, np.int16)
        done = gen.fill(buf)
        out.append(buf)
        if done:
            break
    x = np.concatenate(out).astype(np.float64) + ref.white_noise(-35, 160 * len(out), rng)
    return seq, ref.to_int16(x)


def test_detectors_in_threads() -> None:
    signals = [_signal(s) for s in range(16)]
    serial = [detect_digits(x) for _, x in signals]

    def job(k: int) -> list:
        x = signals[k][1]
        return detect_digits(x, DtmfDetector(), chunk=160)

    with ThreadPoolExecutor(WORKERS) as pool:
        for _ in range(3):
            got = list(pool.map(job, range(len(signals))))
            assert got == serial
    assert ["".join(d.digit for d in r) for r in serial] == [s for s, _ in signals]


def test_shared_mix_plan_in_threads() -> None:
    rng = np.random.default_rng(7)
    hears = merge(conference(range(10)), listen(10, 11, 12), conference(range(13, 40)))
    plan = plan_from_hears(40, hears)
    ticks = [rng.integers(-20000, 20000, (40, 160)).astype(np.int16) for _ in range(32)]
    want = [ref.mix_reference(t, [sorted(hears.get(i, ())) for i in range(40)]) for t in ticks]

    def job(k: int) -> np.ndarray:
        out = np.empty_like(ticks[k])
        for _ in range(50):
            plan.mix(ticks[k], out)
        return out

    with ThreadPoolExecutor(WORKERS) as pool:
        for out, w in zip(pool.map(job, range(len(ticks))), want, strict=True):
            np.testing.assert_array_equal(out, w)


def test_prompt_players_share_one_prompt_in_threads() -> None:
    prompt = np.arange(-5000, 5000, dtype=np.int16)

    def job(k: int) -> np.ndarray:
        player = PromptPlayer(prompt, loop=True)
        player.seek(k * 7)
        out = np.empty(160 * 200, np.int16)
        for i in range(200):
            player.fill(out[i * 160:(i + 1) * 160])
        return out

    with ThreadPoolExecutor(WORKERS) as pool:
        for k, out in enumerate(pool.map(job, range(16))):
            idx = (np.arange(len(out)) + k * 7) % len(prompt)
            np.testing.assert_array_equal(out, prompt[idx])
