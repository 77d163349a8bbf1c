"""Crash recovery of recordings, run once at server start before media workers start.

Why this exists: when a media worker or the whole server is killed, recordings in
progress stay ``live`` in the index and their WAV headers undercount the audio (see
:mod:`recorder.wav`). Nothing else would ever finish them, so at start :func:`recover`:

1. repairs the file of every ``live`` recording, fills in its length and end time from
   the file, and moves it to ``repaired`` (a live row whose file is gone becomes
   ``deleted``, with a warning);
2. completes transcodes interrupted between deleting the WAV and updating the index
   (the row says ``x.wav``, which is gone, and ``x.opus``/``x.mp3`` is there);
3. repairs and indexes, as ``repaired``, every WAV under ``DATA_DIR/recordings`` that the
   index does not know (written before a crash lost the row, or copied in by hand),
   taking the recording id, call id and start time from the file name when it follows
   :mod:`recorder.naming`, and the file's modification time otherwise;
4. removes temporary files of interrupted transcodes (the WAV is still there).

What it repaired still has to be transcoded: the caller passes
``index.pending_transcode()`` (which includes them) to a :class:`recorder.transcode.Transcoder`.
A file that cannot be repaired (not a WAV at all) is left untouched for a human and
reported with its error; its row, if any, stays ``live``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

from . import wav
from .exceptions import RecorderError
from .index import Database, Recording, RecordingIndex, RecordingState, end_time_for
from .naming import EXTENSIONS, new_recording_id, parse_name, recordings_dir

__all__ = ["Recovered", "recover"]

logger = logging.getLogger("hotline.recorder")


@dataclass(frozen=True, slots=True)
class Recovered:
    """One thing :func:`recover` did (or could not do)."""

    #: ``repaired`` (a live row), ``indexed`` (an orphan file), ``transcoded`` (an
    #: interrupted transcode completed), ``missing`` (a live row without its file, now
    #: deleted) or ``failed`` (see :attr:`error`).
    action: str
    #: The file concerned.
    path: Path
    #: The row after recovery (None for an orphan that could not be indexed).
    recording: Recording | None = None
    repair: wav.RepairResult | None = None
    error: str | None = None

    @property
    def needs_transcode(self) -> bool:
        """The recording is a finished WAV waiting for its transcode."""
        rec = self.recording
        return (
            rec is not None
            and rec.state in (RecordingState.DONE, RecordingState.REPAIRED)
            and rec.format == "wav"
        )


def recover(data_dir: Path | str, storage: Database) -> list[Recovered]:
    """Repair and index what a crash left behind (see the module docstring).

    Must run before the media workers start: it rewrites headers of files a live worker
    would still be writing.

    :param storage: the site database (a :class:`hotline.storage.Storage`).
    :returns: what was done, in the order above.
    """
    root = recordings_dir(data_dir)
    index = RecordingIndex(storage)
    out: list[Recovered] = []
    for rec in index.by_state(RecordingState.LIVE):
        out.append(_recover_live(index, root, rec))
    for rec in index.by_state(RecordingState.DONE, RecordingState.REPAIRED):
        done = _complete_transcode(index, root, rec)
        if done is not None:
            out.append(done)
    if root.is_dir():
        _remove_temporaries(root)
        out += _index_orphans(index, root)
    for item in out:
        log = logger.warning if item.error else logger.info
        log("recording recovery: %s %s%s", item.action, item.path,
            f": {item.error}" if item.error else "")  # fmt: skip
    return out


def _recover_live(index: RecordingIndex, root: Path, rec: Recording) -> Recovered:
    path = root / rec.path
    if not path.exists():
        return Recovered(
            "missing", path, index.mark_deleted(rec.id), error="file missing; marked deleted"
        )
    try:
        result = wav.repair(path, empty_format=wav.WORKER_FORMAT)
    except RecorderError as exc:
        return Recovered("failed", path, rec, error=str(exc))
    after = index.mark_repaired(rec.id, end_time_for(rec.start_time, result.seconds),
                                result.seconds)  # fmt: skip
    return Recovered("repaired", path, after, result)


def _complete_transcode(index: RecordingIndex, root: Path, rec: Recording) -> Recovered | None:
    if rec.format != "wav" or (root / rec.path).exists():
        return None
    from .transcode import probe  # PyAV only when there is something to check

    for fmt, ext in EXTENSIONS.items():
        candidate = (root / rec.path).with_suffix(ext)
        if fmt == "wav" or not candidate.exists():
            continue
        try:
            seconds, _channels, _rate = probe(candidate)
        except RecorderError as exc:
            return Recovered("failed", candidate, rec, error=str(exc))
        rel = PurePosixPath(rec.path).with_suffix(ext)
        return Recovered("transcoded", candidate,
                         index.mark_transcoded(rec.id, str(rel), fmt, seconds))  # fmt: skip
    return Recovered(
        "missing", root / rec.path, index.mark_deleted(rec.id),
        error="file missing; marked deleted",
    )  # fmt: skip


def _remove_temporaries(root: Path) -> None:
    for tmp in root.rglob(".*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()


def _index_orphans(index: RecordingIndex, root: Path) -> list[Recovered]:
    known_paths = index.known_paths()
    known_ids = index.known_ids()
    out = []
    for path in sorted(root.rglob("*.wav")):
        if path.name.startswith(".") or not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        parsed = parse_name(path.name)
        if rel in known_paths or (parsed is not None and parsed.recording_id in known_ids):
            continue
        try:
            result = wav.repair(path, empty_format=wav.WORKER_FORMAT)
        except RecorderError as exc:
            out.append(Recovered("failed", path, error=str(exc)))
            continue
        if parsed is not None:
            rec_id, call_id, start = parsed.recording_id, parsed.call_id, parsed.start_time
        else:
            # Written until its last modification: the start is that minus its length.
            mtime = datetime.fromtimestamp(os.stat(path).st_mtime, UTC)
            start = mtime - timedelta(seconds=result.seconds)
            rec_id, call_id = new_recording_id(start), ""
        rec = Recording(
            id=rec_id,
            call_id=call_id,
            path=rel,
            format="wav",
            state=RecordingState.REPAIRED,
            start_time=start,
            end_time=end_time_for(start, result.seconds),
            seconds=result.seconds,
        )
        index.insert(rec)
        known_ids.add(rec_id)
        out.append(Recovered("indexed", path, index.get(rec_id), result))
    return out
