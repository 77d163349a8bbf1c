"""Audio files in and out of the media worker's format: mono int16 at 8000 Hz.

``load_audio_8k`` decodes anything PyAV (FFmpeg) reads, downmixes and resamples it once
with FFmpeg's resampler (``av.AudioResampler``); prompts are then played out by
:class:`cext.tones.PromptPlayer` without further work per tick. ``write_wav`` writes
16-bit PCM WAV with the standard library's :mod:`wave`.
"""

from __future__ import annotations

import os
import wave

import av
import numpy as np
import numpy.typing as npt

__all__ = ["RATE", "load_audio_8k", "write_wav"]

#: The media worker's sample rate.
RATE = 8000


def load_audio_8k(path: str) -> npt.NDArray[np.int16]:
    """Decode the first audio stream of ``path`` to mono int16 at 8000 Hz.

    :param path: any file FFmpeg can demux and decode (WAV, MP3, Ogg/Opus, FLAC, ...).
    :return: a 1-D C-contiguous int16 array (empty for a file without samples).
    :raises FileNotFoundError: if ``path`` does not exist.
    :raises ValueError: if the file cannot be decoded or holds no audio stream.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        container = av.open(path)
    except av.FFmpegError as exc:
        raise ValueError(f"cannot open audio file {path}: {exc}") from exc
    chunks: list[npt.NDArray[np.int16]] = []
    try:
        if not container.streams.audio:
            raise ValueError(f"no audio stream in {path}")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1).astype(np.int16, copy=False))
            for out in resampler.resample(None):  # flush the resampler's delay line
                chunks.append(out.to_ndarray().reshape(-1).astype(np.int16, copy=False))
        except av.FFmpegError as exc:
            raise ValueError(f"cannot decode audio file {path}: {exc}") from exc
    finally:
        container.close()
    if not chunks:
        return np.zeros(0, dtype=np.int16)
    return np.ascontiguousarray(np.concatenate(chunks), dtype=np.int16)


def write_wav(path: str, samples: npt.ArrayLike, rate: int = RATE, channels: int = 1) -> None:
    """Write 16-bit PCM WAV.

    :param path: output file (overwritten).
    :param samples: int16 samples; 1-D (interleaved if ``channels`` > 1) or 2-D
        ``(frames, channels)``.
    :param rate: sample rate in Hz.
    :param channels: channel count.
    :raises ValueError: on a non-int16 array, a bad rate/channel count or a sample count
        that is not a multiple of ``channels``.
    """
    data = np.asarray(samples)
    if data.dtype != np.int16:
        raise ValueError(f"samples must be int16, got {data.dtype}")
    if not (1 <= channels <= 16):
        raise ValueError(f"channels must be between 1 and 16, got {channels}")
    if not (1000 <= rate <= 384000):
        raise ValueError(f"rate must be between 1000 and 384000 Hz, got {rate}")
    if data.ndim == 2:
        if data.shape[1] != channels:
            raise ValueError(f"samples have {data.shape[1]} columns, channels is {channels}")
    elif data.ndim != 1:
        raise ValueError(f"samples must be 1-D or 2-D, got {data.ndim}-D")
    if data.size % channels != 0:
        raise ValueError(f"{data.size} samples is not a multiple of {channels} channels")
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(data, dtype="<i2").tobytes())
