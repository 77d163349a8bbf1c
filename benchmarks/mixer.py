"""Conference mixing: our hears-graph kernel vs a vectorised numpy mix of the same plan.

The numpy version uses the same compiled plan (rooms, sum-or-subtract lists) with
gather + ``np.add.reduceat`` in int32 and one clip, which is how one would write it in
numpy without per-leg Python loops. Both produce identical output (checked).

Run: .venv/bin/python benchmarks/mixer.py
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cext.mixer import MixPlan, bridge, conference, listen, merge, plan_from_hears  # noqa: E402

TICK = 160


def numpy_mix(arrays: dict, inp: np.ndarray) -> np.ndarray:
    """The plan's mix in vectorised numpy (unity gains assumed, as in the scenarios)."""
    x = inp.astype(np.int32)
    legs = x.shape[0]
    room_ptr, room_legs = arrays["room_ptr"], arrays["room_legs"]
    src_ptr, src, sub = arrays["src_ptr"], arrays["src"], arrays["subtract"].astype(bool)
    # per-leg sum of its list
    acc = np.zeros_like(x)
    nonempty = np.flatnonzero(np.diff(src_ptr) > 0)
    if len(src):
        sums = np.add.reduceat(x[src], src_ptr[:-1][nonempty], axis=0)
        acc[nonempty] = sums
    if sub.any():
        room_of = np.empty(legs, np.int64)
        room_of[room_legs] = np.repeat(np.arange(len(room_ptr) - 1), np.diff(room_ptr))
        totals = np.add.reduceat(x[room_legs], room_ptr[:-1], axis=0)
        acc[sub] = totals[room_of[sub]] - acc[sub]
    return np.clip(acc, -32768, 32767).astype(np.int16)


def bench(name: str, plan: MixPlan, legs: int, seconds: float = 1.0) -> None:
    rng = np.random.default_rng(0)
    inp = rng.integers(-8000, 8000, (legs, TICK)).astype(np.int16)
    out = np.empty_like(inp)
    arrays = plan.arrays
    plan.mix(inp, out)
    assert np.array_equal(out, numpy_mix(arrays, inp)), name

    def rate(fn) -> float:  # type: ignore[no-untyped-def]
        n = 0
        t0 = time.process_time()
        while time.process_time() - t0 < seconds:
            for _ in range(10):
                fn()
            n += 10
        return n / (time.process_time() - t0)

    ours = rate(lambda: plan.mix(inp, out))
    ref = rate(lambda: numpy_mix(arrays, inp))
    # one tick is 20 ms of audio for every leg
    print(f"{name:<34}{legs:>6}{ours * legs * 0.02:>14.0f}{ref * legs * 0.02:>14.0f}"
          f"{1e6 / ours:>10.1f}{ours / ref:>8.1f}")


def main() -> None:
    print("Mixer throughput: leg-seconds of audio mixed per CPU-second (and µs per tick)")
    print(f"{'scenario':<34}{'legs':>6}{'hotline':>14}{'numpy':>14}{'µs/tick':>10}{'ratio':>8}")
    bench("1000 two-party bridges", plan_from_hears(
        2000, merge(*[bridge(2 * i, 2 * i + 1) for i in range(1000)])), 2000)
    bench("300 supervisor-listen rooms (3)", plan_from_hears(
        900, merge(*[listen(3 * i, 3 * i + 1, 3 * i + 2) for i in range(300)])), 900)
    bench("one 10-party conference", plan_from_hears(10, conference(range(10))), 10)
    bench("100 10-party conferences", plan_from_hears(
        1000, merge(*[conference(range(10 * i, 10 * i + 10)) for i in range(100)])), 1000)
    bench("one 100-party conference", plan_from_hears(100, conference(range(100))), 100)


if __name__ == "__main__":
    main()
