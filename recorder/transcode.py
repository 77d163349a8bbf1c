"""Turn a finished WAV recording into Opus (Ogg) or MP3, safely, off the control loop.

Why this exists: a stereo 8 kHz WAV costs 115 MB an hour; Opus at 32 kb/s costs 15 MB,
and 7x24 recording of every call makes that the difference between weeks and years of
retention on one disk. Workers write WAV while a call is live (cheap, crash-repairable,
see :mod:`recorder.wav`); once it has ended the control process hands the file to a
:class:`Transcoder`.

Safety rules, in order: the output is written under a hidden temporary name
(``.NAME.opus.PID.tmp`` next to the WAV), decoded back and checked (same channel count,
duration within :data:`DURATION_TOLERANCE`), fsynced, renamed atomically to its final
name, and only then is the WAV deleted. A crash at any point leaves either the WAV or a
verified output (or both); a temporary file left behind is ignored everywhere and
overwritten by the next attempt.

Encoding: PyAV (FFmpeg). Opus uses ``libopus`` (else FFmpeg's native ``opus``), MP3
``libmp3lame``. Channels are kept (caller left, agent right). The samples go to the
encoder at the WAV's own rate when the encoder takes it (libopus and LAME both take
8 kHz, so nothing is resampled and no bits are spent on an empty upper band); otherwise
PyAV resamples to the nearest rate the encoder takes (48 kHz for the native Opus
encoder). Ogg Opus always decodes at 48 kHz whatever the input rate. Call metadata goes
into Vorbis comments (Ogg) or ID3v2 ``TXXX`` frames (MP3); WAV gets none (it is never
rewritten).

Concurrency: :func:`transcode` is a plain blocking function. :class:`Transcoder` runs it
in a process pool (spawned, so nothing of the control process's threads or sockets is
forked) of one low-priority process by default, so live media keeps the cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np

from . import wav
from .exceptions import RecorderError
from .index import RecordingState
from .naming import EXTENSIONS, recordings_dir

if TYPE_CHECKING:
    from .index import Recording, RecordingIndex

__all__ = [
    "BITRATES",
    "DURATION_TOLERANCE",
    "FORMATS",
    "TranscodeResult",
    "Transcoder",
    "available_formats",
    "probe",
    "transcode",
]

logger = logging.getLogger("hotline.recorder")

#: Formats a recording can be kept in; ``wav`` means no transcoding.
FORMATS = ("wav", "opus", "mp3")
#: Encoders to try for each format, best first.
ENCODERS: Mapping[str, tuple[str, ...]] = {"opus": ("libopus", "opus"), "mp3": ("libmp3lame",)}
#: FFmpeg muxer of each format.
CONTAINERS: Mapping[str, str] = {"opus": "ogg", "mp3": "mp3"}
#: Bits per second for a stereo telephone-band recording. Not less for Opus: below
#: 32 kb/s libopus couples the channels (intensity stereo at 24 kb/s puts the caller in
#: the agent's channel at -25 dB; at 16 kb/s both channels are the same downmix), and
#: caller and agent must stay apart for quality review and per-party speech analytics.
BITRATES: Mapping[str, int] = {"opus": 32_000, "mp3": 32_000}
#: The decoded output may differ from the WAV by this much (seconds).
DURATION_TOLERANCE = 0.1
#: Niceness of transcoding processes (live media runs at 0).
NICE = 10
_CHUNK_SECONDS = 1
_SAMPLE_FORMATS = {(1, 8): "u8", (1, 16): "s16", (1, 32): "s32", (3, 32): "flt"}
_LAYOUTS = {1: "mono", 2: "stereo"}


@dataclass(frozen=True, slots=True)
class TranscodeResult:
    """What :func:`transcode` produced."""

    #: The WAV it read (deleted by now unless ``delete_source=False`` or format ``wav``).
    source: Path
    #: The file to keep (the WAV itself for format ``wav``).
    path: Path
    format: str
    #: Duration of the output, decoded back.
    seconds: float
    #: Duration of the WAV.
    source_seconds: float
    channels: int
    #: Size of the output in bytes.
    size: int
    #: FFmpeg encoder used ('' for wav).
    encoder: str = ""


@functools.cache
def available_formats() -> dict[str, str]:
    """``{format: encoder}`` for every format this FFmpeg build can write (wav always)."""
    import av

    out = {"wav": ""}
    for fmt, names in ENCODERS.items():
        for name in names:
            try:
                av.codec.Codec(name, "w")
            except ValueError:  # av.codec.codec.UnknownCodecError
                continue
            out[fmt] = name
            break
    return out


def _encoder_rate(rates: Sequence[int] | None, rate: int) -> int:
    """The WAV's rate if the encoder takes it, else the nearest higher one it takes."""
    if not rates or rate in rates:
        return rate
    higher = sorted(r for r in rates if r >= rate)
    return int(higher[0] if higher else max(rates))


def probe(path: Path | str) -> tuple[float, int, int]:
    """Decode a whole audio file: ``(seconds, channels, sample rate)``.

    :raises RecorderError: if it cannot be decoded.
    """
    import av

    path = Path(path)
    samples = 0
    channels = rate = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            for frame in container.decode(stream):
                samples += frame.samples
                rate = frame.sample_rate
                channels = len(frame.layout.channels)
            rate = rate or stream.rate or 0
            channels = channels or stream.channels or 0
    except (av.FFmpegError, IndexError, OSError) as exc:
        raise RecorderError(path, f"cannot decode: {exc}") from None
    return (samples / rate if rate else 0.0), channels, rate


def transcode(
    src: Path | str,
    fmt: str,
    tags: Mapping[str, str] | None = None,
    *,
    bitrate: int | None = None,
    delete_source: bool = True,
) -> TranscodeResult:
    """Transcode the WAV ``src`` to ``fmt`` next to it (same stem), verify, then delete it.

    Blocking; CPU-bound (10 min of audio: about 3 s of one core for Opus, 5 s for MP3,
    encoding and verification). See the module docstring for the safety rules.

    :param fmt: ``opus``, ``mp3`` or ``wav`` (nothing to do: the WAV is kept).
    :param tags: metadata for the output (``call_id``, ``caller``, ``callee``, ...).
    :param bitrate: bits per second (default :data:`BITRATES`).
    :param delete_source: delete the WAV once the output is verified and in place.
    :raises RecorderError: naming the file, if the WAV cannot be read, the format is not
        available, or the output fails verification (the WAV is then untouched).
    """
    src = Path(src)
    info = wav.inspect(src)
    if fmt == "wav":
        return TranscodeResult(
            source=src, path=src, format="wav", seconds=info.seconds,
            source_seconds=info.seconds, channels=info.format.channels,
            size=info.file_size,
        )  # fmt: skip
    if fmt not in CONTAINERS:
        raise RecorderError(src, f"unknown recording format {fmt!r} (expected {FORMATS})")
    encoder = available_formats().get(fmt)
    if encoder is None:
        raise RecorderError(src, f"this FFmpeg has no {fmt} encoder ({ENCODERS[fmt]})")
    sample_format = _SAMPLE_FORMATS.get((info.format.format_tag, info.format.bits))
    layout = _LAYOUTS.get(info.format.channels)
    if sample_format is None or layout is None:
        raise RecorderError(
            src, f"cannot transcode {info.format.bits}-bit {info.format.channels}-channel WAV"
        )
    dst = src.with_suffix(EXTENSIONS[fmt])
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        _encode(src, tmp, info, fmt, encoder, sample_format, layout, tags or {},
                bitrate or BITRATES[fmt])  # fmt: skip
        seconds, channels, _rate = probe(tmp)
        if channels != info.format.channels:
            raise RecorderError(
                tmp, f"output has {channels} channels, expected {info.format.channels}"
            )
        if abs(seconds - info.seconds) > DURATION_TOLERANCE:
            raise RecorderError(tmp, f"output lasts {seconds:.3f} s, the WAV {info.seconds:.3f} s")
        _fsync(tmp)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync(dst.parent)
    if delete_source:
        src.unlink()
        _fsync(src.parent)
    return TranscodeResult(
        source=src, path=dst, format=fmt, seconds=seconds, source_seconds=info.seconds,
        channels=channels, size=dst.stat().st_size, encoder=encoder,
    )  # fmt: skip


def _encode(
    src: Path,
    out: Path,
    info: wav.WavInfo,
    fmt: str,
    encoder: str,
    sample_format: str,
    layout: str,
    tags: Mapping[str, str],
    bitrate: int,
) -> None:
    import av

    codec = av.codec.Codec(encoder, "w")
    rate = _encoder_rate(codec.audio_rates, info.format.rate)
    block = info.format.block_align
    chunk = info.format.rate * _CHUNK_SECONDS
    dtype = {"u8": np.uint8, "s16": np.int16, "s32": np.int32, "flt": np.float32}[sample_format]
    try:
        with open(src, "rb") as f, av.open(str(out), "w", format=CONTAINERS[fmt]) as container:
            container.metadata.update({k: str(v) for k, v in tags.items() if v})
            stream = container.add_stream(encoder, rate=rate, layout=layout)
            assert isinstance(stream, av.audio.stream.AudioStream)
            stream.bit_rate = bitrate
            if encoder == "opus":  # FFmpeg's native encoder is still "experimental"
                stream.codec_context.options = {"strict": "experimental"}
            f.seek(info.data_offset)
            done = 0
            while done < info.frames:
                n = min(chunk, info.frames - done)
                raw = f.read(n * block)
                if len(raw) < n * block:
                    raise RecorderError(src, "file shrank while being transcoded")
                # Packed (interleaved) samples are one plane of channels * n values.
                samples = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
                frame = av.AudioFrame.from_ndarray(
                    samples.astype(dtype, copy=False).reshape(1, -1),
                    format=sample_format,
                    layout=layout,
                )
                frame.sample_rate = info.format.rate
                frame.pts = done
                frame.time_base = Fraction(1, info.format.rate)
                for packet in stream.encode(frame):
                    container.mux(packet)
                done += n
            for packet in stream.encode(None):
                container.mux(packet)
    except av.FFmpegError as exc:
        raise RecorderError(src, f"{fmt} encoding failed: {exc}") from None
    except OSError as exc:
        raise RecorderError(src, f"transcoding failed: {exc.strerror or exc}") from None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lower_priority(nice: int) -> None:
    """Process-pool initializer: make room for the media workers."""
    with contextlib.suppress(OSError):
        os.nice(nice)


class Transcoder:
    """Runs :func:`transcode` jobs off the event loop with bounded concurrency.

    :param max_workers: jobs run at once (1: one core for transcoding, the rest for media).
    :param processes: run jobs in spawned processes at niceness ``nice`` (default), or in
        threads of the calling process (tests, tools).
    :param nice: niceness added to the transcoding processes.
    """

    def __init__(self, max_workers: int = 1, *, processes: bool = True, nice: int = NICE) -> None:
        self._executor: Executor
        if processes:
            self._executor = ProcessPoolExecutor(
                max_workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_lower_priority,
                initargs=(nice,),
            )
        else:
            self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="transcode")
        #: Jobs submitted and not finished (for metrics).
        self.pending = 0

    async def transcode(
        self,
        src: Path | str,
        fmt: str,
        tags: Mapping[str, str] | None = None,
        *,
        delete_source: bool = True,
    ) -> TranscodeResult:
        """Run :func:`transcode` in the pool and wait for it.

        :raises RecorderError: as :func:`transcode` does.
        """
        job = functools.partial(transcode, Path(src), fmt, dict(tags or {}),
                                delete_source=delete_source)  # fmt: skip
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, job)
        finally:
            self.pending -= 1

    async def transcode_recording(
        self, index: RecordingIndex, data_dir: Path | str, rec: Recording, fmt: str
    ) -> Recording:
        """Transcode a finished (done or repaired) recording and record it in the index.

        The index is updated after the WAV is deleted; a crash in between is completed by
        :func:`recorder.recovery.recover`. Format ``wav`` leaves the recording as it is.

        :raises RecorderError: for a recording that is not done or repaired, or as
            :func:`transcode` does (the index is then unchanged).
        """
        if fmt == "wav" or rec.format == fmt:
            return rec
        if rec.state not in (RecordingState.DONE, RecordingState.REPAIRED):
            # A live WAV is still being written; a transcoded or deleted one is gone.
            raise RecorderError(rec.path, f"recording {rec.id} is {rec.state}, not finished")
        src = recordings_dir(data_dir) / rec.path
        result = await self.transcode(src, fmt, rec.tags())
        path = PurePosixPath(rec.path).with_suffix(result.path.suffix)
        logger.info(
            "recording %s: %s -> %s (%.1f s, %d bytes)",
            rec.id, rec.path, path, result.seconds, result.size,
        )  # fmt: skip
        return index.mark_transcoded(rec.id, str(path), fmt, result.seconds)

    async def close(self) -> None:
        """Cancel queued jobs, wait for the running ones and stop the pool (recovery
        transcodes what was left at the next start)."""
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)

    async def __aenter__(self) -> Transcoder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
