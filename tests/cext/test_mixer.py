"""Mixer kernel against the per-leg numpy twin, call-center topologies, errors."""

from __future__ import annotations

import numpy as np
import pytest
import reference_dsp as ref
from hypothesis import given, settings
from hypothesis import strategies as st

from cext.mixer import (
    MixPlan,
    barge,
    bridge,
    conference,
    gain_to_q12,
    listen,
    merge,
    plan_from_hears,
    plan_from_matrix,
    whisper,
)


def run(plan: MixPlan, inp: np.ndarray) -> np.ndarray:
    out = np.full_like(inp, 12345)
    plan.mix(inp, out)
    return out


@st.composite
def scenes(draw):  # type: ignore[no-untyped-def]
    legs = draw(st.integers(1, 14))
    n = draw(st.sampled_from([1, 7, 160, 161, 333]))
    hears = [draw(st.sets(st.integers(0, legs - 1), max_size=legs)) for _ in range(legs)]
    gains = draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.0, 1.0, 2.0, 8.0]),
                          min_size=legs, max_size=legs))
    seed = draw(st.integers(0, 2**32 - 1))
    loud = draw(st.booleans())
    rng = np.random.default_rng(seed)
    lim = 32768 if loud else 3000
    inp = rng.integers(-lim, lim, (legs, n)).astype(np.int16)
    return inp, hears, gains


@settings(max_examples=300, deadline=None)
@given(scenes())
def test_random_hears_sets_match_reference(scene) -> None:  # type: ignore[no-untyped-def]
    inp, hears, gains = scene
    plan = plan_from_hears(len(hears), hears, gains)
    want = ref.mix_reference(inp, hears, [gain_to_q12(g) for g in gains])
    np.testing.assert_array_equal(run(plan, inp), want)


@settings(max_examples=100, deadline=None)
@given(scenes())
def test_matrix_form_equals_list_form(scene) -> None:  # type: ignore[no-untyped-def]
    inp, hears, _ = scene
    m = np.zeros((len(hears), len(hears)), np.uint8)
    for i, h in enumerate(hears):
        for j in h:
            m[i, j] = 1
    np.testing.assert_array_equal(run(plan_from_matrix(m), inp),
                                  run(plan_from_hears(len(hears), hears), inp))


def test_call_center_topologies() -> None:
    rng = np.random.default_rng(1)
    # legs: 0-1 bridge, 2-4 listen, 5-7 whisper, 8-10 barge, 11-20 conference, 21 idle
    hears = merge(bridge(0, 1), listen(2, 3, 4), whisper(5, 6, 7), barge(8, 9, 10),
                  conference(range(11, 21)))
    plan = plan_from_hears(22, hears)
    assert plan.n_rooms == 6
    inp = rng.integers(-4000, 4000, (22, 160)).astype(np.int16)
    out = run(plan, inp)
    i32 = inp.astype(np.int32)
    np.testing.assert_array_equal(out[0], inp[1])
    np.testing.assert_array_equal(out[1], inp[0])
    # listen: the supervisor hears both; nobody hears the supervisor
    np.testing.assert_array_equal(out[2], inp[3])
    np.testing.assert_array_equal(out[3], inp[2])
    np.testing.assert_array_equal(out[4], i32[2] + i32[3])
    # whisper: only the agent hears the supervisor
    np.testing.assert_array_equal(out[5], inp[6])
    np.testing.assert_array_equal(out[6], i32[5] + i32[7])
    np.testing.assert_array_equal(out[7], i32[5] + i32[6])
    # barge and conference: N-1 mixing
    for lo, hi in ((8, 11), (11, 21)):
        total = i32[lo:hi].sum(axis=0)
        for i in range(lo, hi):
            np.testing.assert_array_equal(out[i], np.clip(total - i32[i], -32768, 32767))
    np.testing.assert_array_equal(out[21], 0)
    # the full conference is planned as total-minus-self
    arrays = plan.arrays
    assert arrays["subtract"][11:21].tolist() == [1] * 10
    assert arrays["subtract"][0:2].tolist() == [0, 0]


def test_saturation_and_mute() -> None:
    inp = np.array([[30000] * 4, [30000] * 4, [-32768] * 4], np.int16)
    plan = plan_from_hears(3, conference(range(3)))
    out = run(plan, inp)
    assert out[0].tolist() == [-2768] * 4  # 30000 - 32768
    assert out[2].tolist() == [32767] * 4  # 60000 saturates
    muted = plan_from_hears(3, conference(range(3)), gains=[1.0, 0.0, 1.0])
    out = run(muted, inp)
    assert out[0].tolist() == [-32768] * 4
    assert out[2].tolist() == [30000] * 4


def test_errors() -> None:
    plan = plan_from_hears(2, bridge(0, 1))
    with pytest.raises(ValueError, match=r"^input has 3 legs, the plan has 2$"):
        plan.mix(np.zeros((3, 160), np.int16), np.zeros((3, 160), np.int16))
    with pytest.raises(ValueError, match=r"^out shape \(2, 80\) != input shape \(2, 160\)$"):
        plan.mix(np.zeros((2, 160), np.int16), np.zeros((2, 80), np.int16))
    buf = np.zeros((2, 160), np.int16)
    with pytest.raises(ValueError, match=r"^out must not be the input array$"):
        plan.mix(buf, buf)
    with pytest.raises(ValueError, match=r"^leg 0 hears leg 5, out of range 0..1$"):
        plan_from_hears(2, {0: {5}})
    with pytest.raises(ValueError, match=r"^gain must be between 0 and 8.0, got -1.0$"):
        plan_from_hears(2, bridge(0, 1), gains=[1.0, -1.0])
    with pytest.raises(ValueError, match=r"^hears matrix must be square, got shape \(2, 3\)$"):
        plan_from_matrix(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"^source 1 of leg 0 is not in leg 0's room$"):
        MixPlan(np.full(2, 4096, np.int32), np.array([0, 1, 2], np.int32),
                np.array([0, 1], np.int32), np.zeros(2, np.uint8),
                np.array([0, 1, 1], np.int32), np.array([1], np.int32))
    with pytest.raises(ValueError):
        plan.mix(np.zeros((2, 160), np.int32), np.zeros((2, 160), np.int16))
