"""Tones and prompts: call-progress cadences, DTMF, dual tones with levels in dBm0.

Builds segment tables for :class:`cext._tones.ToneGenerator` (one per channel, filled
one tick at a time, phase-continuous) and re-exports :class:`PromptPlayer`.

Levels: 0 dBm0 is the sine 3.17 dB below the µ-law full-scale sine (G.711 T_max =
8159 in 14-bit units, 32636 as int16), i.e. peak 22657 (see :data:`DBM0_PEAK`).

Cadences (on/off in seconds; frequencies in Hz; levels per tone):

* China (YD/T 1277 / GF practice): 450 Hz at -10 dBm0; ringback 1.0 on 4.0 off,
  busy 0.35/0.35, congestion 0.7/0.7.
* North America (ANSI T1.401 "precise tone plan"): ringback 440+480 at -19 dBm0,
  2.0 on 4.0 off; busy 480+620 at -24 dBm0, 0.5/0.5; reorder 480+620 at -24 dBm0,
  0.25/0.25.

A cadence loops forever by default (ringback while an agent rings); with ``cycles`` it
is a finite prompt of that many on/off cycles. :func:`beep` is the "speak after the
tone" beep of voicemail: 1000 Hz, 400 ms, -10 dBm0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._tones import PromptPlayer, ToneGenerator

__all__ = [
    "BEEP",
    "CADENCES",
    "DBM0_PEAK",
    "DTMF_DIGITS",
    "PromptPlayer",
    "RATE",
    "Segment",
    "ToneGenerator",
    "beep",
    "cadence_seconds",
    "call_progress",
    "dbm0_to_amplitude",
    "dtmf_freqs",
    "dtmf_string",
    "dual_tone",
    "segments_generator",
]

RATE = 8000
#: Peak int16 amplitude of a 0 dBm0 sine (G.711 µ-law T_max 32636, 3.17 dB down).
DBM0_PEAK = 32636 * 10 ** (-3.17 / 20)
#: Keypad digits; the index is the RFC 4733 event code.
DTMF_DIGITS = "0123456789*#ABCD"
_ROWS = (697.0, 770.0, 852.0, 941.0)
_COLS = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYS = ("123A", "456B", "789C", "*0#D")

#: (f1, f2, level1 dBm0, level2 dBm0, n_samples); a level of None means silence.
Segment = tuple[float, float, float | None, float | None, int]

#: (country, tone) -> (f1, f2 or 0, level dBm0 per tone, on s, off s)
CADENCES: dict[tuple[str, str], tuple[float, float, float, float, float]] = {
    ("cn", "ringback"): (450.0, 0.0, -10.0, 1.0, 4.0),
    ("cn", "busy"): (450.0, 0.0, -10.0, 0.35, 0.35),
    ("cn", "congestion"): (450.0, 0.0, -10.0, 0.7, 0.7),
    ("us", "ringback"): (440.0, 480.0, -19.0, 2.0, 4.0),
    ("us", "busy"): (480.0, 620.0, -24.0, 0.5, 0.5),
    ("us", "reorder"): (480.0, 620.0, -24.0, 0.25, 0.25),
    ("us", "congestion"): (480.0, 620.0, -24.0, 0.25, 0.25),
}

#: The record-after-the-tone beep: (frequency Hz, duration s, level dBm0).
BEEP = (1000.0, 0.4, -10.0)


def dbm0_to_amplitude(level: float) -> float:
    """Peak int16 amplitude of a sine at ``level`` dBm0.

    :raises ValueError: if the level is above +3.17 dBm0 (the µ-law overload point).
    """
    if not level <= 3.17:
        raise ValueError(f"level {level} dBm0 is above the +3.17 dBm0 overload point")
    return DBM0_PEAK * 10 ** (level / 20)


def dtmf_freqs(digit: str) -> tuple[float, float]:
    """ITU-T Q.23 row and column frequency of a keypad digit.

    :raises ValueError: for a character that is not one of ``0-9 * # A-D``.
    """
    d = digit.upper()
    if len(d) == 1:
        for r, row in enumerate(_KEYS):
            c = row.find(d)
            if c >= 0:
                return _ROWS[r], _COLS[c]
    raise ValueError(f"not a DTMF digit: {digit!r}")


def _check_freq(f: float) -> None:
    if not (0.0 <= f < RATE / 2):
        raise ValueError(f"frequency {f} Hz out of range 0..{RATE // 2}")


def segments_generator(segments: Sequence[Segment], loop: bool) -> ToneGenerator:
    """A generator for an explicit segment table.

    :param segments: ``(f1, f2, level1, level2, n_samples)``; levels in dBm0 or None.
    :param loop: repeat forever.
    :raises ValueError: on an empty table, a bad frequency, level or length.
    """
    if not segments:
        raise ValueError("a tone needs at least one segment")
    inc1 = np.zeros(len(segments), dtype=np.uint32)
    inc2 = np.zeros(len(segments), dtype=np.uint32)
    amp1 = np.zeros(len(segments), dtype=np.float32)
    amp2 = np.zeros(len(segments), dtype=np.float32)
    lengths = np.zeros(len(segments), dtype=np.int32)
    for i, (f1, f2, l1, l2, n) in enumerate(segments):
        _check_freq(f1)
        _check_freq(f2)
        if not (0 < n < 2**31):
            raise ValueError(f"segment {i} length {n} must be between 1 and 2**31-1")
        inc1[i] = int(round(f1 / RATE * 2**32)) & 0xFFFFFFFF
        inc2[i] = int(round(f2 / RATE * 2**32)) & 0xFFFFFFFF
        amp1[i] = 0.0 if l1 is None else dbm0_to_amplitude(l1)
        amp2[i] = 0.0 if l2 is None else dbm0_to_amplitude(l2)
        lengths[i] = n
    return ToneGenerator(inc1, inc2, amp1, amp2, lengths, loop)


def _ms(seconds: float) -> int:
    n = int(round(seconds * RATE))
    if n <= 0:
        raise ValueError(f"duration {seconds} s is shorter than one sample")
    return n


def dual_tone(f1: float, f2: float, level1: float, level2: float | None = None,
              on: float | None = None, off: float = 0.0) -> ToneGenerator:
    """A steady (``on`` None) or cadenced dual tone; ``f2 = 0`` for a single tone.

    :param level1: level of ``f1`` in dBm0.
    :param level2: level of ``f2`` in dBm0 (default ``level1``).
    :param on: seconds on per cadence cycle, None for continuous.
    :param off: seconds off per cadence cycle.
    """
    l2 = level1 if level2 is None else level2
    if f2 == 0.0:
        l2v: float | None = None
    else:
        l2v = l2
    if on is None:
        return segments_generator([(f1, f2, level1, l2v, RATE)], loop=True)
    segs: list[Segment] = [(f1, f2, level1, l2v, _ms(on))]
    if off > 0:
        segs.append((f1, f2, None, None, _ms(off)))
    return segments_generator(segs, loop=True)


def _cadence(tone: str, country: str) -> tuple[float, float, float, float, float]:
    key = (country.lower(), tone.lower())
    if key not in CADENCES:
        known = ", ".join(f"{c}/{t}" for c, t in CADENCES)
        raise ValueError(f"unknown call-progress tone {country}/{tone}, expected one of {known}")
    return CADENCES[key]


def cadence_seconds(tone: str, country: str = "cn") -> float:
    """Length of one on/off cycle of a call-progress tone, in seconds.

    :raises ValueError: for an unknown tone or country.
    """
    _f1, _f2, _level, on, off = _cadence(tone, country)
    return on + off


def call_progress(tone: str, country: str = "cn", cycles: int | None = None) -> ToneGenerator:
    """Ringback, busy, congestion (and US reorder) with the country's cadence.

    :param tone: ``ringback``, ``busy``, ``congestion`` or ``reorder`` (US).
    :param country: ``cn`` or ``us``.
    :param cycles: None loops forever; ``n`` plays ``n`` whole on/off cycles and
        finishes (``fill`` returns True), like a prompt.
    :raises ValueError: for an unknown tone or country, or ``cycles`` < 1.
    """
    f1, f2, level, on, off = _cadence(tone, country)
    if cycles is None:
        return dual_tone(f1, f2, level, level, on, off)
    if cycles < 1:
        raise ValueError(f"cycles must be at least 1, got {cycles}")
    l2 = None if f2 == 0.0 else level
    cycle: list[Segment] = [(f1, f2, level, l2, _ms(on))]
    if off > 0:
        cycle.append((f1, f2, None, None, _ms(off)))
    return segments_generator(cycle * cycles, loop=False)


def beep(freq: float = BEEP[0], duration: float = BEEP[1], level: float = BEEP[2],
         gap: float | None = None) -> ToneGenerator:
    """A single tone burst (default :data:`BEEP`: 1000 Hz, 0.4 s, -10 dBm0).

    :param gap: None plays the beep once and finishes; seconds of silence after each
        beep makes it repeat forever.
    :raises ValueError: for a bad frequency, level or duration.
    """
    segs: list[Segment] = [(freq, 0.0, level, None, _ms(duration))]
    if gap is None:
        return segments_generator(segs, loop=False)
    segs.append((freq, 0.0, None, None, _ms(gap)))
    return segments_generator(segs, loop=True)


def dtmf_string(digits: str, on: float = 0.1, off: float = 0.1, level: float = -8.0,
                twist: float = 2.0) -> ToneGenerator:
    """In-band DTMF for a digit string; ``fill`` returns True when it is all sent.

    :param digits: characters of ``0-9 * # A-D`` (a ``,`` is a 0.5 s pause).
    :param on: tone duration per digit in seconds (>= 0.04 for Q.24 receivers).
    :param off: pause after each digit in seconds.
    :param level: level of the column (high) tone in dBm0; the row tone is
        ``twist`` dB lower (telephone sets send the high group hotter).
    :param twist: dB by which the row tone is below the column tone.
    """
    segs: list[Segment] = []
    for ch in digits:
        if ch == ",":
            segs.append((0.0, 0.0, None, None, RATE // 2))
            continue
        fr, fc = dtmf_freqs(ch)
        segs.append((fr, fc, level - twist, level, _ms(on)))
        if off > 0:
            segs.append((fr, fc, None, None, _ms(off)))
    if not segs:
        raise ValueError("no digits to send")
    return segments_generator(segs, loop=False)
