"""Recording files as a media worker writes them, and ways to read them back."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from media.endpoint import Recording, wav_header

RATE = 8000
BLOCK_FRAMES = Recording.FLUSH_TICKS * 160  # one writer block: 200 ms
HEADER_EVERY = 5  # the worker rewrites the header every 5th block (1 s)


def signal(seconds: float, seed: int = 1) -> npt.NDArray[np.int16]:
    """Stereo test audio: a 440 Hz tone on the left, noise on the right."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    left = 8000 * np.sin(2 * np.pi * 440 * t)
    right = np.random.default_rng(seed).normal(0, 3000, n)
    return np.stack([left, right], axis=1).clip(-32768, 32767).astype(np.int16)


def write_like_worker(path: Path, pcm: npt.NDArray[np.int16], *, finish: bool) -> int:
    """Write ``pcm`` the way ``media.worker`` does: a :class:`media.endpoint.Recording`
    opens the file with a zero header, 200 ms blocks are appended, and the header sizes
    are rewritten every 5th block; ``finish`` is the final header update of
    ``record_stop`` (False leaves what a kill -9 between updates leaves).

    :returns: the data size the header declares.
    """
    rec = Recording(1, str(path), [0], [1])
    declared = 0
    written = 0
    try:
        for flushes, start in enumerate(range(0, len(pcm), BLOCK_FRAMES), 1):
            data = pcm[start : start + BLOCK_FRAMES].tobytes()
            os.write(rec.fd, data)
            written += len(data)
            if flushes % HEADER_EVERY == 0:
                os.pwrite(rec.fd, wav_header(written), 0)
                declared = written
        if finish:
            os.pwrite(rec.fd, wav_header(written), 0)
            declared = written
    finally:
        os.close(rec.fd)
    return declared


def decode(path: Path) -> tuple[npt.NDArray[np.int16], int]:
    """All samples of a WAV as decoded by FFmpeg: ``(frames x channels int16, rate)``."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        channels = stream.channels
        parts = [f.to_ndarray().reshape(-1, channels) for f in container.decode(stream)]
        rate = stream.rate
    pcm = np.concatenate(parts) if parts else np.zeros((0, channels), np.int16)
    return pcm.astype(np.int16), rate


def decode_float(path: Path) -> tuple[npt.NDArray[np.float64], int]:
    """Any audio file decoded to ``channels x samples`` float, and its sample rate."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        planes = []
        rate = 0
        for frame in container.decode(stream):
            a = frame.to_ndarray().astype(np.float64)
            if not frame.format.is_planar:
                a = a.reshape(-1, len(frame.layout.channels)).T
            if frame.format.name.startswith("s16"):
                a /= 32768.0
            planes.append(a)
            rate = frame.sample_rate
    return np.concatenate(planes, axis=1), rate
