"""recorder.recovery: live rows and orphan files after a crash; recorder.retention."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from hotline.storage import Storage
from recorder.index import RecordingIndex, RecordingState
from recorder.naming import new_recording_id, recording_path, recordings_dir
from recorder.recovery import recover
from recorder.retention import apply_retention
from recorder.transcode import transcode

from .helpers import decode, signal, write_like_worker

T0 = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)
S = RecordingState


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    with Storage.open(tmp_path) as s:
        yield s


def test_live_rows_are_repaired(tmp_path: Path, storage: Storage) -> None:
    index = RecordingIndex(storage)
    root = recordings_dir(tmp_path)
    crashed = index.start("c1@x", T0, caller="100", agents=["1001"])
    pcm = signal(1.7)
    write_like_worker(root / crashed.path, pcm, finish=False)
    with open(root / crashed.path, "ab") as f:
        f.write(b"\x01\x02")  # half a frame
    empty = index.start("c2@x", T0)
    (root / empty.path).write_bytes(b"")  # killed before the header was written
    gone = index.start("c3@x", T0)  # the worker never created the file
    finished = index.start("c4@x", T0)
    write_like_worker(root / finished.path, signal(0.4), finish=True)
    index.finish(finished.id, T0 + timedelta(seconds=1), 0.4)

    out = {item.recording.call_id: item for item in recover(tmp_path, storage)}  # type: ignore[union-attr]
    assert set(out) == {"c1@x", "c2@x", "c3@x"}

    item = out["c1@x"]
    assert item.action == "repaired" and item.needs_transcode and item.error is None
    assert item.repair is not None and item.repair.truncated_bytes == 2
    rec = index.get(crashed.id)
    assert rec is not None and rec.state == S.REPAIRED and rec.seconds == len(pcm) / 8000
    assert rec.end_time == T0 + timedelta(seconds=len(pcm) / 8000) and rec.agents == ("1001",)
    assert np.array_equal(decode(root / rec.path)[0], pcm)

    assert out["c2@x"].action == "repaired" and out["c2@x"].recording.seconds == 0  # type: ignore[union-attr]
    assert index.get(gone.id).state == S.DELETED  # type: ignore[union-attr]
    assert out["c3@x"].action == "missing" and out["c3@x"].recording.state == S.DELETED  # type: ignore[union-attr]
    assert sorted(r.call_id for r in index.pending_transcode()) == ["c1@x", "c2@x", "c4@x"]
    assert recover(tmp_path, storage) == []  # nothing left to do


def test_orphan_files_are_indexed(tmp_path: Path, storage: Storage) -> None:
    index = RecordingIndex(storage)
    root = recordings_dir(tmp_path)
    rec_id = new_recording_id(T0)
    named = root / recording_path(rec_id, "a84b@pc33/x", "wav")
    named.parent.mkdir(parents=True)
    write_like_worker(named, signal(1.2), finish=False)
    foreign = root / "imported" / "call 7.wav"
    foreign.parent.mkdir()
    write_like_worker(foreign, signal(0.6), finish=True)
    os.utime(foreign, (T0.timestamp() + 100, T0.timestamp() + 100))
    junk = root / "junk.wav"
    junk.write_bytes(b"<html>not audio</html>")
    (named.parent / f".{named.stem}.opus.123.tmp").write_bytes(b"half an opus file")

    out = recover(tmp_path, storage)
    by_path = {item.path: item for item in out}
    assert set(by_path) == {named, foreign, junk}
    assert by_path[junk].action == "failed" and "junk.wav: not a WAV file" in by_path[junk].error  # type: ignore[operator]
    assert junk.read_bytes() == b"<html>not audio</html>"  # left for a human

    rec = by_path[named].recording
    assert by_path[named].action == "indexed" and rec is not None
    assert (rec.id, rec.call_id, rec.start_time, rec.state) == (
        rec_id,
        "a84b@pc33/x",
        T0,
        S.REPAIRED,
    )
    assert rec.path == recording_path(rec_id, "a84b@pc33/x").as_posix() and rec.seconds == 1.2

    other = by_path[foreign].recording
    assert other is not None and other.call_id == "" and other.path == "imported/call 7.wav"
    assert other.start_time == T0 + timedelta(seconds=100 - 0.6)
    assert not list(root.rglob("*.tmp"))
    assert {r.id for r in index.pending_transcode()} == {rec_id, other.id}
    assert [i.path for i in recover(tmp_path, storage)] == [junk]  # the rest is known now


def test_interrupted_transcode_is_completed(tmp_path: Path, storage: Storage) -> None:
    """Killed after the WAV was deleted but before the index said so."""
    index = RecordingIndex(storage)
    root = recordings_dir(tmp_path)
    rec = index.start("c1", T0)
    write_like_worker(root / rec.path, signal(1.0), finish=True)
    index.finish(rec.id, T0 + timedelta(seconds=1), 1.0)
    transcode(root / rec.path, "mp3")
    lost = index.start("c2", T0)
    write_like_worker(root / lost.path, signal(0.2), finish=True)
    index.finish(lost.id, T0, 0.2)
    (root / lost.path).unlink()

    out = {item.recording.call_id: item for item in recover(tmp_path, storage)}  # type: ignore[union-attr]
    done = out["c1"].recording
    assert out["c1"].action == "transcoded" and done is not None
    assert (done.state, done.format, done.path) == (S.TRANSCODED, "mp3", rec.path[:-4] + ".mp3")
    assert abs(done.seconds - 1.0) < 0.1  # type: ignore[operator]
    assert out["c2"].action == "missing" and out["c2"].recording.state == S.DELETED  # type: ignore[union-attr]


def test_no_recordings_dir(tmp_path: Path, storage: Storage) -> None:
    assert recover(tmp_path, storage) == []


def test_retention(tmp_path: Path, storage: Storage) -> None:
    index = RecordingIndex(storage)
    root = recordings_dir(tmp_path)
    recs = []
    for days in (40, 31, 29, 1):
        rec = index.start(f"c{days}", T0 - timedelta(days=days))
        write_like_worker(root / rec.path, signal(0.2), finish=True)
        recs.append(index.finish(rec.id, rec.start_time, 0.2))
    old, month, recent, live = (
        recs[0],
        recs[1],
        recs[2],
        index.start("live", T0 - timedelta(days=90)),
    )
    shutil.copy(root / month.path, (root / month.path).with_suffix(".opus"))  # leftover sibling
    index.mark_transcoded(month.id, month.path, "wav")

    assert apply_retention(tmp_path, storage, 0, T0) == []  # keep forever
    removed = apply_retention(tmp_path, storage, 30, T0)
    assert [r.recording_id for r in removed] == [old.id, month.id]
    assert removed[1].files == (root / month.path, (root / month.path).with_suffix(".opus"))
    for rec in (old, month):
        assert index.get(rec.id).state == S.DELETED  # type: ignore[union-attr]
        assert not (root / rec.path).parent.exists()  # empty date folders pruned
    assert (root / recent.path).exists() and index.get(live.id).state == S.LIVE  # type: ignore[union-attr]
    assert root.is_dir()
    assert apply_retention(tmp_path, storage, 30, T0) == []
    with pytest.raises(ValueError):
        apply_retention(tmp_path, storage, -1, T0)


def test_retention_marks_rows_whose_file_is_gone(tmp_path: Path, storage: Storage) -> None:
    index = RecordingIndex(storage)
    rec = index.start("c", T0 - timedelta(days=10))
    index.finish(rec.id, rec.start_time, 1.0)
    removed = apply_retention(tmp_path, storage, 5, T0)
    assert [(r.recording_id, r.files) for r in removed] == [(rec.id, ())]
