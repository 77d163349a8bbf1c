"""Tone generator and prompt player against exact-sine and slicing references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference_dsp as ref
from hypothesis import given, settings
from hypothesis import strategies as st

from cext.dtmf import detect_digits
from cext.tones import (
    BEEP,
    CADENCES,
    PromptPlayer,
    beep,
    cadence_seconds,
    call_progress,
    dbm0_to_amplitude,
    dtmf_string,
    dual_tone,
    segments_generator,
)


def play(gen, chunks: list[int], total: int) -> tuple[np.ndarray, bool]:  # type: ignore[no-untyped-def]
    out = []
    done = False
    pos = 0
    k = 0
    while pos < total:
        n = min(chunks[k % len(chunks)], total - pos)
        k += 1
        buf = np.full(n, 777, np.int16)
        done = gen.fill(buf)
        out.append(buf)
        pos += n
    return np.concatenate(out), done


segment = st.tuples(st.floats(0, 3999), st.floats(0, 3999),
                    st.one_of(st.none(), st.floats(-60, -3)),
                    st.one_of(st.none(), st.floats(-60, -3)), st.integers(1, 500))


@settings(max_examples=120, deadline=None)
@given(st.lists(segment, min_size=1, max_size=5), st.booleans(),
       st.lists(st.integers(1, 400), min_size=1, max_size=8), st.integers(1, 3000))
def test_generator_matches_exact_sines(segs, loop, chunks, total) -> None:  # type: ignore[no-untyped-def]
    gen = segments_generator(segs, loop)
    got, done = play(gen, chunks, total)
    ref_segs = [(f1, f2, 0.0 if l1 is None else dbm0_to_amplitude(l1),
                 0.0 if l2 is None else dbm0_to_amplitude(l2), n)
                for f1, f2, l1, l2, n in segs]
    want, want_done = ref.tone_reference(ref_segs, total, loop)
    assert np.max(np.abs(got.astype(np.int32) - want)) <= 1
    assert done == want_done


def _runs(x: np.ndarray) -> list[tuple[bool, int]]:
    """(on, length) runs of a cadence, 'on' meaning any sample in a 10 ms bin."""
    bins = np.abs(x).reshape(-1, 80).max(axis=1) > 0
    runs: list[tuple[bool, int]] = []
    for b in bins:
        if runs and runs[-1][0] == b:
            runs[-1] = (b, runs[-1][1] + 1)
        else:
            runs.append((bool(b), 1))
    return runs


@pytest.mark.parametrize("key", sorted(CADENCES))
def test_call_progress_cadence_and_level(key: tuple[str, str]) -> None:
    f1, f2, level, on, off = CADENCES[key]
    gen = call_progress(key[1], key[0])
    period = on + off
    x, _ = play(gen, [160], int(round(2 * period * 8000)))
    runs = _runs(x)
    assert runs[0] == (True, round(on * 100))
    assert runs[1] == (False, round(off * 100))
    assert runs[2] == (True, round(on * 100))
    # level: the RMS of the "on" part equals that of the nominal tones
    seg = x[: int(on * 8000)].astype(np.float64)
    want_rms = dbm0_to_amplitude(level) / math.sqrt(2) * (math.sqrt(2) if f2 else 1.0)
    assert np.sqrt(np.mean(seg**2)) == pytest.approx(want_rms, rel=0.02)
    # the energy sits at the nominal frequencies
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2
    freqs = np.fft.rfftfreq(len(seg), 1 / 8000)
    near = np.zeros(len(freqs), bool)
    for f in (f1, f2) if f2 else (f1,):
        near |= np.abs(freqs - f) <= 10
    assert spec[near].sum() > 0.999 * spec.sum()


def test_dtmf_string_round_trips_through_detector() -> None:
    gen = dtmf_string("95598#,0*ABCD", on=0.06, off=0.06, level=-12)
    x, done = play(gen, [160], 8000 * 5)
    assert done
    assert "".join(d.digit for d in detect_digits(x)) == "95598#0*ABCD"


def test_phase_continuity_across_ticks() -> None:
    a = dual_tone(1000.0, 0.0, -10.0)
    b = dual_tone(1000.0, 0.0, -10.0)
    whole, _ = play(a, [4000], 4000)
    sliced, _ = play(b, [1, 3, 160, 7], 4000)
    np.testing.assert_array_equal(whole, sliced)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 500), st.booleans(), st.lists(st.integers(1, 300), min_size=1,
                                                   max_size=10), st.integers(0, 2**32 - 1))
def test_prompt_player_matches_reference(size, loop, chunks, seed) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    prompt = rng.integers(-32768, 32768, size).astype(np.int16)
    player = PromptPlayer(prompt, loop=loop)
    pos = 0
    for n in chunks:
        buf = np.full(n, 555, np.int16)
        done = player.fill(buf)
        want, pos, want_done = ref.prompt_reference(prompt, pos, n, loop)
        np.testing.assert_array_equal(buf, want)
        assert done == want_done == player.done
        assert player.position == pos


def test_beep_is_a_finite_burst() -> None:
    """1000 Hz for 400 ms at -10 dBm0 (exact sine), then done; with a gap it repeats."""
    freq, seconds, level = BEEP
    out, done = play(beep(), [160], 3200)
    assert done
    t = np.arange(3200) / 8000
    want = np.round(dbm0_to_amplitude(level) * np.sin(2 * np.pi * freq * t))
    assert np.abs(out.astype(np.float64) - want).max() <= 1.0
    assert len(out) == round(seconds * 8000)
    looped, done = play(beep(gap=0.6), [160], 16000)
    assert not done
    np.testing.assert_array_equal(looped[:3200], out)
    assert not looped[3200:8000].any()
    assert np.abs(looped[8000:11200].astype(np.int32)).max() > 7000


@pytest.mark.parametrize("key", sorted(CADENCES))
def test_call_progress_cycles_are_finite_prompts(key: tuple[str, str]) -> None:
    """``cycles`` = that many cycles of the looping cadence, sample for sample, then
    done (fill returns True on the last sample)."""
    country, tone = key
    n = round(cadence_seconds(tone, country) * 8000)
    endless, done = play(call_progress(tone, country), [160], 2 * n + 800)
    assert not done
    finite, done = play(call_progress(tone, country, cycles=2), [160], 2 * n + 800)
    assert done
    np.testing.assert_array_equal(finite[:2 * n], endless[:2 * n])
    assert not finite[2 * n:].any()
    with pytest.raises(ValueError, match="cycles must be at least 1"):
        call_progress(tone, country, cycles=0)


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"^unknown call-progress tone uk/ringback, expected"):
        call_progress("ringback", "uk")
    with pytest.raises(ValueError, match=r"^level 5 dBm0 is above the \+3.17 dBm0 overload point$"):
        dual_tone(440.0, 0.0, 5)
    with pytest.raises(ValueError, match=r"^frequency 5000.0 Hz out of range 0..4000$"):
        dual_tone(5000.0, 0.0, -10)
    with pytest.raises(ValueError, match=r"^not a DTMF digit: 'x'$"):
        dtmf_string("1x")
    with pytest.raises(ValueError, match=r"^position 11 out of range 0..10$"):
        PromptPlayer(np.zeros(10, np.int16)).seek(11)
    with pytest.raises(ValueError):
        PromptPlayer(np.zeros(10, np.int16)).fill(np.zeros(10, np.int32))
