"""Inspect and repair the WAV files media workers write.

Why this exists: a media worker writes a recording as a plain RIFF/WAVE file and rewrites
the two size fields of the header about once a second (:class:`media.endpoint.Recording`).
After ``kill -9`` of the worker (or of the whole server) the samples written since the
last header update are on disk but the header does not count them: the data size may be
anything from 0 to a second short, and the last block may stop in the middle of a sample
frame. Players then stop early or refuse the file. :func:`repair` makes such a file valid
again without losing a single complete sample frame.

Theory of operation: :func:`inspect` walks the RIFF chunks up to ``data`` (tolerating
``LIST``, ``fact`` and other chunks before it) and then decides whether the declared data
size can be trusted. It can when what follows the declared end is a clean chain of
chunks that ends exactly at the end of the file (a finished file with trailing metadata)
or when the declared end is the end of the file. Otherwise the ``data`` chunk is the last
chunk and runs to the end of the file: the audio is every whole frame on disk. A
crashed recording's samples never look like a chunk chain (four printable bytes, then a
size that lands exactly on the next chunk, up to the end of the file), so this does not
mistake audio for metadata.

:func:`repair` then cuts the trailing partial frame (less than one ``block_align``,
never audio that can be played) and rewrites the data and RIFF sizes, and fsyncs. It is
idempotent: a valid file is left byte-for-byte alone. It must not run on a file a worker
is still writing (recovery runs before the workers start).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .exceptions import RecorderError

__all__ = [
    "WORKER_FORMAT",
    "RepairResult",
    "WavFormat",
    "WavInfo",
    "header",
    "inspect",
    "repair",
]

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
#: Declared data size of writers that stream without ever fixing the header.
UNKNOWN_SIZE = 0xFFFFFFFF
#: The ``fmt`` chunk is read whole; refuse an absurd one instead of allocating it.
MAX_FMT_CHUNK = 1 << 16
_RIFF_HEADER = struct.Struct("<4sI4s")
_CHUNK_HEADER = struct.Struct("<4sI")


@dataclass(frozen=True, slots=True)
class WavFormat:
    """The sample format of a WAV file (from its ``fmt`` chunk)."""

    #: Samples per second.
    rate: int
    #: 1 = mono, 2 = stereo (left, right).
    channels: int
    #: Bits per sample: 8, 16, 24 or 32.
    bits: int
    #: ``WAVE_FORMAT_PCM`` (1) or ``WAVE_FORMAT_IEEE_FLOAT`` (3), extensible resolved.
    format_tag: int = WAVE_FORMAT_PCM

    @property
    def block_align(self) -> int:
        """Bytes per sample frame (one sample of every channel)."""
        return self.channels * ((self.bits + 7) // 8)


#: What media workers write: 8 kHz, stereo (caller left, agent right), 16-bit PCM.
WORKER_FORMAT = WavFormat(rate=8000, channels=2, bits=16)


@dataclass(frozen=True, slots=True)
class WavInfo:
    """What :func:`inspect` found in a WAV file."""

    path: Path
    format: WavFormat
    #: File offset of the first sample byte.
    data_offset: int
    #: The data size the header declares (may be stale after a crash).
    declared_size: int
    #: The RIFF size the header declares.
    riff_size: int
    #: Bytes in the file.
    file_size: int
    #: Bytes of whole sample frames that are audio: what the header should declare.
    data_size: int
    #: The data chunk runs to the end of the file (no chunk after it).
    data_is_last: bool

    @property
    def frames(self) -> int:
        """Sample frames of audio (per channel samples)."""
        return self.data_size // self.format.block_align

    @property
    def seconds(self) -> float:
        """Duration of the audio."""
        return self.frames / self.format.rate

    @property
    def partial_bytes(self) -> int:
        """Bytes of an incomplete trailing frame (only when the data chunk is last)."""
        if not self.data_is_last:
            return 0
        return self.file_size - self.data_offset - self.data_size

    @property
    def needs_repair(self) -> bool:
        """The header does not describe what is on disk."""
        return (
            self.declared_size != self.data_size
            or self.partial_bytes != 0
            or self.riff_size != self.expected_riff_size
        )

    @property
    def expected_riff_size(self) -> int:
        """The RIFF size of the file once repaired."""
        return self.file_size - self.partial_bytes - 8


@dataclass(frozen=True, slots=True)
class RepairResult:
    """What :func:`repair` did to a file."""

    path: Path
    format: WavFormat
    #: Data size the header declared before.
    declared_size: int
    #: Data size the header declares now (whole frames on disk).
    data_size: int
    #: Bytes of the incomplete trailing frame cut off (0 to ``block_align - 1``).
    truncated_bytes: int
    #: Whether the file was modified at all (False for a valid file: idempotence).
    changed: bool
    #: The file was empty (the worker died before writing anything) and got a header.
    was_empty: bool = False

    @property
    def frames(self) -> int:
        """Sample frames of audio in the repaired file."""
        return self.data_size // self.format.block_align

    @property
    def seconds(self) -> float:
        """Duration of the repaired file."""
        return self.frames / self.format.rate


def header(data_size: int, fmt: WavFormat = WORKER_FORMAT) -> bytes:
    """The canonical 44-byte header for ``data_size`` bytes of samples in ``fmt``."""
    return (
        _RIFF_HEADER.pack(b"RIFF", 36 + data_size, b"WAVE")
        + _CHUNK_HEADER.pack(b"fmt ", 16)
        + struct.pack(
            "<HHIIHH",
            fmt.format_tag,
            fmt.channels,
            fmt.rate,
            fmt.rate * fmt.block_align,
            fmt.block_align,
            fmt.bits,
        )
        + _CHUNK_HEADER.pack(b"data", data_size)
    )


def _parse_fmt(path: Path, body: bytes) -> WavFormat:
    if len(body) < 16:
        raise RecorderError(path, f"fmt chunk is {len(body)} bytes, expected at least 16")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(body) < 40:
            raise RecorderError(path, "WAVE_FORMAT_EXTENSIBLE fmt chunk is too short")
        # The subformat GUID starts with the plain format tag.
        tag = struct.unpack_from("<H", body, 24)[0]
    if tag not in (WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT):
        raise RecorderError(path, f"unsupported WAV encoding (format tag {tag:#06x}), not PCM")
    if channels < 1 or rate < 1 or bits not in (8, 16, 24, 32):
        raise RecorderError(
            path, f"bad fmt chunk: {channels} channels, {rate} Hz, {bits} bits per sample"
        )
    fmt = WavFormat(rate=rate, channels=channels, bits=bits, format_tag=tag)
    if block_align != fmt.block_align:
        raise RecorderError(
            path, f"bad fmt chunk: block_align {block_align}, expected {fmt.block_align}"
        )
    return fmt


def _clean_chunk_chain(f: BinaryIO, start: int, file_size: int) -> bool:
    """Whether ``start..EOF`` is a sequence of well-formed chunks ending at EOF."""
    pos = start
    while pos + _CHUNK_HEADER.size <= file_size:
        f.seek(pos)
        raw = f.read(_CHUNK_HEADER.size)
        ident, size = _CHUNK_HEADER.unpack(raw)
        if not all(0x20 <= b <= 0x7E for b in ident):
            return False
        pos += _CHUNK_HEADER.size + size + (size & 1)
    # A missing pad byte after an odd-sized last chunk is common; allow it.
    return pos in (file_size, file_size + 1)


def inspect(path: Path | str) -> WavInfo:
    """Read the header of a WAV file and work out how much audio it really holds.

    :raises RecorderError: naming the file, if it is not a RIFF/WAVE file, has no
        ``fmt``/``data`` chunk, or is not PCM (integer or float).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            file_size = os.fstat(f.fileno()).st_size
            head = f.read(_RIFF_HEADER.size)
            if len(head) < _RIFF_HEADER.size:
                what = "empty file" if not head else f"only {len(head)} bytes"
                raise RecorderError(path, f"not a WAV file ({what}, no RIFF header)")
            riff, riff_size, wave = _RIFF_HEADER.unpack(head)
            if riff != b"RIFF" or wave != b"WAVE":
                raise RecorderError(
                    path, f"not a WAV file (starts with {head[:4]!r}...{head[8:12]!r})"
                )
            fmt: WavFormat | None = None
            pos = _RIFF_HEADER.size
            while True:
                f.seek(pos)
                raw = f.read(_CHUNK_HEADER.size)
                if len(raw) < _CHUNK_HEADER.size:
                    raise RecorderError(path, "no data chunk")
                ident, size = _CHUNK_HEADER.unpack(raw)
                body_at = pos + _CHUNK_HEADER.size
                if ident == b"data":
                    break
                if body_at + size > file_size:
                    raise RecorderError(
                        path, f"chunk {ident!r} at offset {pos} is cut off ({size} bytes)"
                    )
                if ident == b"fmt ":
                    if size > MAX_FMT_CHUNK:
                        raise RecorderError(path, f"fmt chunk of {size} bytes is not a WAV's")
                    fmt = _parse_fmt(path, f.read(size))
                pos = body_at + size + (size & 1)
            if fmt is None:
                raise RecorderError(path, "no fmt chunk before the data chunk")
            on_disk = file_size - body_at
            declared_end = body_at + size + (size & 1)
            if (
                size != UNKNOWN_SIZE
                and size <= on_disk
                and (declared_end >= file_size or _clean_chunk_chain(f, declared_end, file_size))
            ):
                data_is_last = declared_end >= file_size
                data_size = size - size % fmt.block_align if data_is_last else size
            else:
                data_is_last = True
                data_size = on_disk - on_disk % fmt.block_align
    except OSError as exc:
        raise RecorderError(path, f"cannot read: {exc.strerror or exc}") from None
    return WavInfo(
        path=path,
        format=fmt,
        data_offset=body_at,
        declared_size=size,
        riff_size=riff_size,
        file_size=file_size,
        data_size=data_size,
        data_is_last=data_is_last,
    )


def repair(path: Path | str, *, empty_format: WavFormat | None = None) -> RepairResult:
    """Make a crashed or partial recording a valid WAV file holding all its audio.

    The data size becomes the whole frames on disk (a trailing partial frame is cut), the
    RIFF size is fixed, and the changes are fsynced. A valid file is not touched.

    :param empty_format: when given, an empty file (a worker killed between creating the
        file and writing its header) gets a header for zero samples in this format
        instead of being refused.
    :raises RecorderError: naming the file, if it is not a WAV file (see :func:`inspect`)
        or cannot be written.
    """
    path = Path(path)
    if empty_format is not None:
        try:
            empty = path.stat().st_size == 0
        except OSError as exc:
            raise RecorderError(path, f"cannot read: {exc.strerror or exc}") from None
        if empty:
            _patch(path, None, [(0, header(0, empty_format))])
            return RepairResult(
                path=path,
                format=empty_format,
                declared_size=0,
                data_size=0,
                truncated_bytes=0,
                changed=True,
                was_empty=True,
            )
    info = inspect(path)
    result = RepairResult(
        path=path,
        format=info.format,
        declared_size=info.declared_size,
        data_size=info.data_size,
        truncated_bytes=info.partial_bytes,
        changed=info.needs_repair,
    )
    if not info.needs_repair:
        return result
    # Never more than one incomplete frame is cut: that is not playable audio.
    assert 0 <= info.partial_bytes < info.format.block_align
    truncate_to = info.file_size - info.partial_bytes if info.partial_bytes else None
    _patch(
        path,
        truncate_to,
        [
            (info.data_offset - 4, struct.pack("<I", info.data_size)),
            (4, struct.pack("<I", info.expected_riff_size)),
        ],
    )
    return result


def _patch(path: Path, truncate_to: int | None, writes: list[tuple[int, bytes]]) -> None:
    """Truncate, overwrite some bytes in place and fsync (the header only, never samples)."""
    try:
        fd = os.open(path, os.O_RDWR)
        try:
            if truncate_to is not None:
                os.ftruncate(fd, truncate_to)
            for offset, data in writes:
                os.pwrite(fd, data, offset)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise RecorderError(path, f"cannot repair: {exc.strerror or exc}") from None
