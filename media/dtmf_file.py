"""Digits the in-band DTMF detector hears in an audio file (``hotline dtmf FILE``)."""

from __future__ import annotations

from cext.dtmf import DetectedDigit, detect_digits

from .audiofile import load_audio_8k

__all__ = ["digits_in_file", "digits_with_times"]


def digits_with_times(path: str) -> list[DetectedDigit]:
    """Decode ``path`` (any format PyAV reads) to 8 kHz and detect DTMF digits.

    :return: the digits with start and duration in 8 kHz samples.
    :raises FileNotFoundError: if the file does not exist.
    :raises ValueError: if it cannot be decoded.
    """
    return detect_digits(load_audio_8k(path))


def digits_in_file(path: str) -> str:
    """The DTMF digits heard in an audio file, as a string such as ``"95598#"``.

    :raises FileNotFoundError: if the file does not exist.
    :raises ValueError: if it cannot be decoded.
    """
    return "".join(d.digit for d in digits_with_times(path))
