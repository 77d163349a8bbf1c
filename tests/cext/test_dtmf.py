"""In-band DTMF detector: Goertzel twin, ITU-T Q.24 matrix, talk-off, streaming, errors."""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
import reference_dsp as ref
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cext import _dtmf
from cext.dtmf import DtmfDetector, detect_digits, digit_char, digit_code
from media.audiofile import load_audio_8k

ALL = "0123456789*#ABCD"


def digits(x: np.ndarray) -> str:
    return "".join(d.digit for d in detect_digits(x))


def dtmf_signal(seq: str, *, on: float = 0.05, off: float = 0.05, level: float = -10.0,
                dev: tuple[float, float] = (0.0, 0.0), twist: float = 0.0,
                snr: float | None = None, ulaw: bool = True, seed: int = 0,
                lead: int | None = None) -> np.ndarray:
    """Digits with random phases; twist > 0 = column tone weaker (normal twist)."""
    rng = np.random.default_rng(seed)
    parts = [np.zeros(lead if lead is not None else int(rng.integers(0, 400)) + 200)]
    for ch in seq:
        fr, fc = ref.dtmf_freqs(ch)
        lr, lc = (level, level - twist) if twist >= 0 else (level + twist, level)
        parts.append(ref.dual_tone(fr * (1 + dev[0]), fc * (1 + dev[1]), lr, lc,
                                   int(round(on * ref.RATE)), rng))
        parts.append(np.zeros(int(round(off * ref.RATE))))
    parts.append(np.zeros(400))
    x = np.concatenate(parts)
    if snr is not None:
        x = x + ref.white_noise(level - snr, len(x), rng)
    out = ref.to_int16(x)
    return ref.ulaw_roundtrip(out) if ulaw else out


# --- the Goertzel stage against its numpy twin --------------------------------------------

@settings(max_examples=200, deadline=None)
@given(arrays(np.int16, st.integers(1, 400)))
def test_goertzel_energies_match_dft(block: np.ndarray) -> None:
    out = np.zeros(8)
    energy = _dtmf.goertzel_energies(block, out)
    want, want_energy = ref.goertzel_energies(block)
    assert energy == pytest.approx(want_energy, rel=1e-12, abs=0)
    # float32 recursion: error relative to the largest possible |X|^2 (N * energy).
    scale = len(block) * want_energy + 1.0
    np.testing.assert_allclose(out, want, rtol=2e-3, atol=2e-5 * scale)


def test_goertzel_on_exact_tone_gives_expected_power() -> None:
    n = np.arange(_dtmf_block())
    a = 10000.0
    x = ref.to_int16(a * np.cos(2 * math.pi * 941.0 * n / ref.RATE))
    out = np.zeros(8)
    _dtmf.goertzel_energies(x, out)
    # |X|^2 = (A N / 2)^2 at the tone's own frequency, the others far below.
    assert out[3] == pytest.approx((a * len(n) / 2) ** 2, rel=0.03)
    assert out[3] > 30 * max(out[k] for k in range(8) if k != 3)


def _dtmf_block() -> int:
    return 102


# --- ITU-T Q.24 matrix ---------------------------------------------------------------------

ACCEPT = [
    pytest.param({}, id="nominal"),
    pytest.param({"dev": (0.015, 0.0)}, id="row+1.5%"),
    pytest.param({"dev": (-0.015, 0.0)}, id="row-1.5%"),
    pytest.param({"dev": (0.0, 0.015)}, id="col+1.5%"),
    pytest.param({"dev": (0.0, -0.015)}, id="col-1.5%"),
    pytest.param({"dev": (0.015, -0.015)}, id="row+1.5%,col-1.5%"),
    pytest.param({"dev": (-0.015, 0.015)}, id="row-1.5%,col+1.5%"),
    pytest.param({"twist": 8.0}, id="normal-twist-8dB"),
    pytest.param({"twist": -4.0}, id="reverse-twist-4dB"),
    pytest.param({"level": 0.0}, id="0dBm0"),
    pytest.param({"level": -20.0}, id="-20dBm0"),
    pytest.param({"level": -30.0}, id="-30dBm0"),
    pytest.param({"level": -36.0}, id="-36dBm0"),
    pytest.param({"level": -20.0, "snr": 15.0}, id="noise-15dB"),
    pytest.param({"level": -20.0, "snr": 20.0}, id="noise-20dB"),
    pytest.param({"on": 0.04, "off": 0.04}, id="40ms-on-40ms-off"),
    pytest.param({"level": -28.0, "twist": 8.0, "dev": (0.015, -0.015)},
                 id="-28dBm0,twist8(col -36),dev1.5%"),
    pytest.param({"level": -20.0, "snr": 15.0, "dev": (-0.015, 0.015)},
                 id="noise-15dB,dev1.5%"),
]

REJECT = [
    pytest.param({"dev": (0.035, 0.0)}, id="row+3.5%"),
    pytest.param({"dev": (-0.035, 0.0)}, id="row-3.5%"),
    pytest.param({"dev": (0.0, 0.035)}, id="col+3.5%"),
    pytest.param({"dev": (0.0, -0.035)}, id="col-3.5%"),
    pytest.param({"level": -46.0}, id="-46dBm0"),
    pytest.param({"twist": 14.0}, id="normal-twist-14dB"),
    pytest.param({"twist": -10.0}, id="reverse-twist-10dB"),
    pytest.param({"on": 0.010}, id="10ms"),
]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("case", ACCEPT)
def test_q24_accepts(case: dict, seed: int) -> None:
    x = dtmf_signal(ALL, seed=seed, **case)
    assert digits(x) == ALL


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("case", REJECT)
def test_q24_rejects(case: dict, seed: int) -> None:
    x = dtmf_signal(ALL, seed=seed, **case)
    assert digits(x) == ""


@pytest.mark.parametrize("lead", range(0, 102, 17))
def test_repeated_digit_separated_by_40ms_pause(lead: int) -> None:
    x = dtmf_signal("5555", on=0.04, off=0.04, lead=lead, level=-25.0)
    assert digits(x) == "5555"


def test_durations_and_starts() -> None:
    lead = 1000
    x = dtmf_signal("19", on=0.1, off=0.2, lead=lead, ulaw=False)
    found = detect_digits(x)
    assert [d.digit for d in found] == ["1", "9"]
    for k, d in enumerate(found):
        true_start = lead + k * 2400
        assert abs(d.start - true_start) <= 102
        assert abs(d.duration - 800) <= 102


def test_finish_reports_digit_in_progress() -> None:
    fr, fc = ref.dtmf_freqs("#")
    x = ref.to_int16(ref.dual_tone(fr, fc, -10, -10, 2000))
    det = DtmfDetector()
    cap = DtmfDetector.max_events(len(x))
    codes, starts, durs = (np.zeros(cap, np.int32), np.zeros(cap, np.int64),
                           np.zeros(cap, np.int32))
    assert det.process(x, codes, starts, durs) == 0
    assert det.current_digit == digit_code("#")
    assert det.finish(codes, starts, durs) == 1
    assert digit_char(int(codes[0])) == "#"
    assert starts[0] == 0 and abs(durs[0] - 2000) <= 102
    assert det.current_digit == -1 and det.samples_seen == 0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 700), min_size=1, max_size=60))
def test_result_does_not_depend_on_tick_size(chunks: list[int]) -> None:
    x = dtmf_signal("0#7D", on=0.06, off=0.05, seed=9, snr=18.0)
    whole = detect_digits(x, chunk=len(x))
    det = DtmfDetector()
    got = []
    pos = 0
    k = 0
    while pos < len(x):
        n = chunks[k % len(chunks)]
        k += 1
        part = x[pos:pos + n]
        pos += n
        cap = DtmfDetector.max_events(len(part))
        codes, starts, durs = (np.zeros(cap, np.int32), np.zeros(cap, np.int64),
                               np.zeros(cap, np.int32))
        m = det.process(part, codes, starts, durs)
        got += [(digit_char(int(codes[i])), int(starts[i]), int(durs[i])) for i in range(m)]
    cap = 1
    codes, starts, durs = np.zeros(1, np.int32), np.zeros(1, np.int64), np.zeros(1, np.int32)
    m = det.finish(codes, starts, durs)
    got += [(digit_char(int(codes[i])), int(starts[i]), int(durs[i])) for i in range(m)]
    assert got == [tuple(d) for d in whole]
    assert "".join(g[0] for g in got) == "0#7D"


# --- talk-off ------------------------------------------------------------------------------

SPEECH = {
    "cmn": "您好，欢迎致电客服热线。查询话费请按1，故障报修请按2，人工服务请按0。"
           "您的账户余额不足，请及时充值。停电通知：明天上午九点到下午五点检修线路。",
    "en-us": "Thank you for calling. Your call is important to us. Please stay on the line "
             "and the next available agent will answer. Press one for billing, two for "
             "repairs, or zero for an operator.",
    "en-gb": "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea "
             "shore. Peter Piper picked a peck of pickled peppers.",
    "de": "Guten Tag, willkommen beim Kundendienst. Bitte haben Sie einen Moment Geduld.",
    "fr-fr": "Bonjour et bienvenue. Veuillez patienter, un conseiller va vous répondre.",
    "es": "Hola, gracias por llamar. Por favor espere, su llamada es muy importante.",
    "ja": "お電話ありがとうございます。担当者におつなぎします。少々お待ちください。",
    "yue": "你好，歡迎致電客戶服務熱線。請稍候，我們會盡快為你服務。",
}


def _speech_corpus() -> list[tuple[str, np.ndarray]]:
    exe = shutil.which("espeak-ng")
    assert exe, "espeak-ng is required (make peers installs it)"
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for voice, text in SPEECH.items():
            for variant, pitch in (("", "50"), ("+f3", "80"), ("+m3", "30"), ("+f5", "99")):
                path = f"{tmp}/s.wav"
                subprocess.run([exe, "-v", voice + variant, "-p", pitch, "-s", "160",
                                "-w", path, text], check=True, capture_output=True)
                out.append((f"{voice}{variant}/p{pitch}", load_audio_8k(path)))
    return out


def test_talk_off_speech() -> None:
    corpus = _speech_corpus()
    seconds = sum(len(x) for _, x in corpus) / ref.RATE
    assert seconds > 300
    for name, x in corpus:
        for gain in (1.0, 0.1):
            y = ref.to_int16(x * gain)
            assert digits(ref.ulaw_roundtrip(y)) == "", name


def _note(rng: np.random.Generator, midi: float, dur: float, harmonics: int,
          vibrato: float) -> np.ndarray:
    f = 440.0 * 2 ** ((midi - 69) / 12)
    n = int(dur * ref.RATE)
    t = np.arange(n) / ref.RATE
    phase = 2 * np.pi * np.cumsum(f * (1 + vibrato * np.sin(2 * np.pi * 5.5 * t))) / ref.RATE
    x = np.zeros(n)
    for k in range(1, harmonics + 1):
        if k * f < 3800:
            x += np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k
    return x * np.minimum(1.0, t / 0.02) * np.exp(-1.5 * t)


def _chords(seed: int, seconds: float, harmonics: int, vibrato: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * ref.RATE))
    pos = 0
    while pos < len(out) - 4000:
        root = int(rng.integers(55, 84))
        shape = (0, 4, 7, 12) if rng.random() < 0.5 else (0, 3, 7, 10)
        dur = float(rng.uniform(0.2, 0.8))
        x = sum(_note(rng, root + k, dur, harmonics, vibrato) for k in shape)
        x = x + _note(rng, root + int(rng.choice([12, 19, 24])), dur, harmonics, vibrato)
        n = min(len(x), len(out) - pos)
        out[pos:pos + n] += x[:n]
        pos += int(n * rng.uniform(0.5, 1.0))
    return ref.to_int16(out / np.max(np.abs(out)) * 20000)


@pytest.mark.parametrize(("harmonics", "vibrato"), [(6, 0.004), (6, 0.0), (3, 0.0), (2, 0.004)])
def test_talk_off_music_chords(harmonics: int, vibrato: float) -> None:
    x = _chords(harmonics * 10 + int(vibrato * 1000), 40.0, harmonics, vibrato)
    assert digits(x) == ""


@pytest.mark.parametrize("seconds", [2.0, 8.0, 30.0])
def test_talk_off_sweeps(seconds: float) -> None:
    t = np.arange(int(seconds * ref.RATE)) / ref.RATE
    up = 2 * np.pi * np.cumsum(300 + 3000 * t / seconds) / ref.RATE
    down = 2 * np.pi * np.cumsum(3300 - 3000 * t / seconds) / ref.RATE
    x = (8000 * np.sin(up) + 4000 * np.sin(2 * up) + 2500 * np.sin(3 * up)
         + 6000 * np.sin(down))
    assert digits(ref.to_int16(x)) == ""


def test_silence_and_white_noise_are_quiet() -> None:
    rng = np.random.default_rng(4)
    assert digits(np.zeros(80000, np.int16)) == ""
    assert digits(ref.to_int16(ref.white_noise(-10.0, 80000, rng))) == ""


# --- errors --------------------------------------------------------------------------------

def test_output_arrays_too_small() -> None:
    det = DtmfDetector()
    x = np.zeros(1000, np.int16)
    small = (np.zeros(3, np.int32), np.zeros(3, np.int64), np.zeros(3, np.int32))
    with pytest.raises(ValueError, match=r"^output arrays hold 3 events, 1000 samples need 6$"):
        det.process(x, *small)
    empty = (np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int32))
    with pytest.raises(ValueError, match=r"^output arrays hold 0 events, finish\(\) needs 1$"):
        det.finish(*empty)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"^block must have 102 samples, got 5$"):
        DtmfDetector().analyze_block(np.zeros(5, np.int16))
    with pytest.raises(ValueError, match=r"^max_deviation must be in \(0, 0.1\)$"):
        DtmfDetector(max_deviation=0.5)
    with pytest.raises(ValueError, match=r"^samples must be 1-D int16, got 1-D float64$"):
        detect_digits(np.zeros(10))
    with pytest.raises(ValueError):
        DtmfDetector().process(np.zeros(10, np.int32), np.zeros(2, np.int32),
                               np.zeros(2, np.int64), np.zeros(2, np.int32))
    with pytest.raises(ValueError, match=r"^not a DTMF digit: 'x'$"):
        digit_code("x")
    with pytest.raises(ValueError, match=r"^DTMF event code 16 out of range 0..15$"):
        digit_char(16)
