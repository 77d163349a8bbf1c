"""Audio helpers for end-to-end tests: tone files for phones to send, and reading who
is heard in a recording (the amplitude of each party's tone frequency)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

TONES = {"1001": 700, "1002": 1100, "1003": 1500, "1004": 1900}
"""The tone each extension's test phone sends (the ``phones`` fixture)."""


def tone_wav(path: Path, hz: int) -> Path:
    t = np.arange(8000 * 4) / 8000
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.tobytes())
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(float)
    return pcm, rate


def levels(pcm: np.ndarray, rate: int, freqs: list[float], frame_s: float = 0.2
            ) -> np.ndarray:
    """Per frame, the amplitude of each frequency in ``freqs`` (Goertzel-like DFT bins)."""
    n = int(rate * frame_s)
    frames = len(pcm) // n
    out = np.zeros((frames, len(freqs)))
    t = np.arange(n) / rate
    win = np.hanning(n)
    for i in range(frames):
        seg = pcm[i * n:(i + 1) * n] * win
        for j, f in enumerate(freqs):
            out[i, j] = abs(np.dot(seg, np.exp(-2j * np.pi * f * t))) * 2 / win.sum()
    return out


def hears(path: Path, hz: float, last_s: float = 1.5, level: float = 500.0) -> bool:
    """Whether the last ``last_s`` seconds of a recording carry a tone at ``hz``."""
    pcm, rate = read_wav(path)
    tail = pcm[-int(rate * last_s):]
    lv = levels(tail, rate, [hz])
    return bool(np.median(lv[:, 0]) > level)


def hears_during(path: Path, hz: float, start_s: float, end_s: float,
                 level: float = 500.0) -> bool:
    """Whether a recording carries a tone at ``hz`` between ``start_s`` and ``end_s``
    seconds from its start."""
    pcm, rate = read_wav(path)
    seg = pcm[int(rate * start_s):int(rate * end_s)]
    assert len(seg) >= rate * 0.4, f"{path}: {len(pcm) / rate:.1f} s, no {start_s}-{end_s} s"
    lv = levels(seg, rate, [hz])
    return bool(np.median(lv[:, 0]) > level)
