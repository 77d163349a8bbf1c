"""recorder.wav: inspecting and repairing WAV files left by killed media workers."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from recorder.exceptions import RecorderError
from recorder.wav import WORKER_FORMAT, header, inspect, repair

from .helpers import decode, signal, write_like_worker


def test_finished_recording_is_valid_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "done.wav"
    pcm = signal(1.3)
    write_like_worker(path, pcm, finish=True)
    before = path.read_bytes()
    info = inspect(path)
    assert info.format == WORKER_FORMAT
    assert info.frames == len(pcm) and not info.needs_repair
    result = repair(path)
    assert not result.changed and result.frames == len(pcm)
    assert path.read_bytes() == before


@pytest.mark.parametrize("partial", [0, 1, 2, 3])
def test_killed_between_header_updates(tmp_path: Path, partial: int) -> None:
    """kill -9 1.6 s in: the header counts 1.0 s; a partial frame may trail."""
    path = tmp_path / "crash.wav"
    pcm = signal(1.6)
    declared = write_like_worker(path, pcm, finish=False)
    assert declared == 8000 * 4  # the last header update, at 1.0 s
    extra = pcm[len(pcm) - 1 :].tobytes()[:partial]
    with open(path, "ab") as f:
        f.write(extra)

    result = repair(path)
    assert result.changed and result.declared_size == declared
    assert result.frames == len(pcm) and result.truncated_bytes == partial
    assert path.stat().st_size == 44 + pcm.nbytes
    got, rate = decode(path)
    assert rate == 8000 and np.array_equal(got, pcm)
    with wave.open(str(path)) as w:  # the stdlib agrees with the header now
        assert w.getnframes() == len(pcm) and w.getnchannels() == 2

    again = path.read_bytes()
    assert not repair(path).changed  # idempotent
    assert path.read_bytes() == again


def test_killed_before_the_first_header_update(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    pcm = signal(0.6)
    assert write_like_worker(path, pcm, finish=False) == 0
    assert struct.unpack_from("<I", path.read_bytes(), 40)[0] == 0
    assert repair(path).frames == len(pcm)
    assert np.array_equal(decode(path)[0], pcm)


def test_header_claiming_more_than_the_disk_holds(tmp_path: Path) -> None:
    """After a power cut the header may count blocks that never reached the disk."""
    path = tmp_path / "short.wav"
    pcm = signal(1.0)
    write_like_worker(path, pcm, finish=True)
    with open(path, "r+b") as f:
        f.truncate(44 + 4000 * 4 + 2)
    result = repair(path)
    assert result.frames == 4000 and result.truncated_bytes == 2
    assert np.array_equal(decode(path)[0], pcm[:4000])


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(RecorderError) as info:
        repair(path)
    assert str(info.value) == f"{path}: not a WAV file (empty file, no RIFF header)"
    result = repair(path, empty_format=WORKER_FORMAT)
    assert result.was_empty and result.frames == 0
    assert path.read_bytes() == header(0)
    assert not repair(path).changed


def test_not_a_wav_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_bytes(b"ID3\x04" + bytes(100))
    with pytest.raises(RecorderError) as info:
        repair(path)
    assert info.value.path == path
    assert (
        str(info.value)
        == f"{path}: not a WAV file (starts with b'ID3\\x04'...b'\\x00\\x00\\x00\\x00')"
    )
    assert path.read_bytes() == b"ID3\x04" + bytes(100)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RecorderError, match="gone.wav: cannot read"):
        inspect(tmp_path / "gone.wav")


def test_not_pcm(tmp_path: Path) -> None:
    path = tmp_path / "alaw.wav"
    fmt = struct.pack("<HHIIHH", 6, 1, 8000, 8000, 1, 8)
    path.write_bytes(
        b"RIFF"
        + struct.pack("<I", 36)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", 0)
    )
    with pytest.raises(RecorderError, match=r"unsupported WAV encoding \(format tag 0x0006\)"):
        inspect(path)


def _chunk(ident: bytes, body: bytes) -> bytes:
    return ident + struct.pack("<I", len(body)) + body + (b"\0" if len(body) & 1 else b"")


def test_extra_chunks_before_data_and_a_crash(tmp_path: Path) -> None:
    pcm = signal(0.5)
    fmt = header(0)[12:36]
    body = b"WAVE" + _chunk(b"LIST", b"INFOISFT\x05\0\0\0test\0") + fmt
    body += _chunk(b"fact", struct.pack("<I", 0)) + b"data" + struct.pack("<I", 0) + pcm.tobytes()
    path = tmp_path / "extra.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", 4) + body + b"\x01")
    info = inspect(path)
    assert info.data_is_last and info.frames == len(pcm) and info.partial_bytes == 1
    repair(path)
    assert np.array_equal(decode(path)[0], pcm)
    assert inspect(path).riff_size == path.stat().st_size - 8


def test_metadata_after_data_is_not_audio(tmp_path: Path) -> None:
    """A finished file with a LIST chunk after the data: sizes are right, keep them."""
    pcm = signal(0.3)
    body = b"WAVE" + header(0)[12:36] + _chunk(b"data", pcm.tobytes())
    body += _chunk(b"LIST", b"INFOICMT\x07\0\0\0hello!\0\0")
    path = tmp_path / "tail.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    before = path.read_bytes()
    info = inspect(path)
    assert not info.data_is_last and info.frames == len(pcm) and not info.needs_repair
    assert not repair(path).changed and path.read_bytes() == before


def test_wrong_riff_size_only(tmp_path: Path) -> None:
    path = tmp_path / "riff.wav"
    pcm = signal(0.2)
    write_like_worker(path, pcm, finish=True)
    with open(path, "r+b") as f:
        f.seek(4)
        f.write(struct.pack("<I", 12345))
    result = repair(path)
    assert result.changed and result.truncated_bytes == 0 and result.frames == len(pcm)
    assert struct.unpack_from("<I", path.read_bytes(), 4)[0] == 36 + pcm.nbytes
