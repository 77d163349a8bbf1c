"""The built-in music on hold: a quiet, looping melody rendered once into the data dir.

A held party must hear that the call is alive (silence makes callers hang up), and a
site without its own ``[server] moh`` file still needs something that is not a
call-progress tone (ringback on hold reads as "the other side is ringing").
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

RATE = 8000
NOTE_S = 0.4
# A slow C-major arpeggio up and down (C4 E4 G4 C5 G4 E4), then a rest.
NOTES_HZ = (261.63, 329.63, 392.00, 523.25, 392.00, 329.63, 0.0, 0.0)
LEVEL = 0.12  # of full scale, about -21 dBm0: background, not a tone to talk over


def render() -> np.ndarray:
    """The melody as int16 samples at 8 kHz (one loop, 3.2 s)."""
    n = int(RATE * NOTE_S)
    t = np.arange(n) / RATE
    # Soft attack and a long decay, like a plucked string; two harmonics for timbre.
    env = np.minimum(1.0, t / 0.02) * np.exp(-t * 4.0)
    parts = []
    for hz in NOTES_HZ:
        if hz == 0.0:
            parts.append(np.zeros(n))
        else:
            parts.append(env * (np.sin(2 * np.pi * hz * t) + 0.3 * np.sin(4 * np.pi * hz * t)))
    pcm = np.concatenate(parts) / 1.3 * LEVEL * 32767
    return pcm.astype(np.int16)


def builtin_moh(data_dir: Path) -> str:
    """Path of the built-in music-on-hold WAV under ``data_dir``, written if missing."""
    path = data_dir / "prompts" / "builtin-moh.wav"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(render().tobytes())
        tmp.replace(path)
    return str(path.resolve())
