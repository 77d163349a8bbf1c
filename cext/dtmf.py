"""In-band DTMF detection façade over :mod:`cext._dtmf`.

The media worker owns one :class:`DtmfDetector` per channel and preallocated output
arrays; every tick it calls ``process`` (no Python object per block). ``detect_digits``
here allocates, for files, tests and the CLI.

Digits are RFC 4733 event codes (``DTMF_DIGITS[code]`` is the character), so in-band
and RFC 4733 digits reach the IVR in the same form.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ._dtmf import DtmfDetector, goertzel_energies, te_build, te_parse

__all__ = [
    "BLOCK",
    "DTMF_DIGITS",
    "DetectedDigit",
    "DtmfDetector",
    "RATE",
    "detect_digits",
    "digit_char",
    "digit_code",
    "goertzel_energies",
    "te_build",
    "te_parse",
]

RATE = 8000
#: Goertzel block length in samples (12.75 ms).
BLOCK = 102
#: Keypad digits; the index is the RFC 4733 section 3.2 event code.
DTMF_DIGITS = "0123456789*#ABCD"


class DetectedDigit(NamedTuple):
    """A digit found in audio."""

    digit: str
    """The keypad character."""
    start: int
    """First sample of the tone (from the start of the audio)."""
    duration: int
    """Tone duration in samples (to within one 102-sample block)."""


def digit_char(code: int) -> str:
    """Keypad character of an RFC 4733 DTMF event code (0-15).

    :raises ValueError: for a code outside 0-15.
    """
    if not 0 <= code <= 15:
        raise ValueError(f"DTMF event code {code} out of range 0..15")
    return DTMF_DIGITS[code]


def digit_code(digit: str) -> int:
    """RFC 4733 event code of a keypad character.

    :raises ValueError: for a character that is not one of ``0-9 * # A-D``.
    """
    code = DTMF_DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return code


def detect_digits(samples: npt.ArrayLike, detector: DtmfDetector | None = None,
                  chunk: int = 160) -> list[DetectedDigit]:
    """Run a detector over a whole signal in ``chunk``-sample ticks and finish it.

    :param samples: 8 kHz mono int16 audio (other integer dtypes are rejected).
    :param detector: a configured detector (a default one if None); it is reset at the end.
    :param chunk: tick size in samples.
    :raises ValueError: if the samples are not 1-D int16 or ``chunk`` < 1.
    """
    x = np.asarray(samples)
    if x.dtype != np.int16 or x.ndim != 1:
        raise ValueError(f"samples must be 1-D int16, got {x.ndim}-D {x.dtype}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    x = np.ascontiguousarray(x)
    det = DtmfDetector() if detector is None else detector
    cap = DtmfDetector.max_events(chunk)
    codes = np.zeros(cap, dtype=np.int32)
    starts = np.zeros(cap, dtype=np.int64)
    durs = np.zeros(cap, dtype=np.int32)
    found: list[DetectedDigit] = []
    for i in range(0, len(x), chunk):
        m = det.process(x[i:i + chunk], codes, starts, durs)
        found.extend(DetectedDigit(DTMF_DIGITS[codes[k]], int(starts[k]), int(durs[k]))
                     for k in range(m))
    m = det.finish(codes, starts, durs)
    found.extend(DetectedDigit(DTMF_DIGITS[codes[k]], int(starts[k]), int(durs[k]))
                 for k in range(m))
    return found
