"""Retention: delete recordings older than ``[recording] retention_days``.

Why this exists: recording 7x24 fills any disk; sites keep recordings for a fixed time
(often a regulatory one) and no longer. :func:`apply_retention` deletes the files of
recordings that *started* more than ``retention_days`` before ``now`` and marks their
rows ``deleted`` (the rows stay: CDRs and audits point to them). ``0`` keeps everything.

The file is deleted before the row is marked, so a crash in between only makes the next
run mark it (a missing file counts as deleted). Files sharing the recording's stem in
another format (a WAV whose transcode was interrupted) go too. Live recordings are never
touched. Empty date folders left behind are removed. ``now`` is passed in, so tests and
an operator's "what would go" tool control the clock.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from .index import Database, RecordingIndex
from .naming import EXTENSIONS, recordings_dir

__all__ = ["Removed", "apply_retention"]

logger = logging.getLogger("hotline.recorder")

#: Rows handled per index query (one run removes everything due, batch by batch).
BATCH = 500


@dataclass(frozen=True, slots=True)
class Removed:
    """One recording retention removed."""

    recording_id: str
    start_time: datetime
    #: Files actually deleted (empty if they were already gone).
    files: tuple[Path, ...]


def apply_retention(
    data_dir: Path | str, storage: Database, retention_days: int, now: datetime
) -> list[Removed]:
    """Delete recordings that started more than ``retention_days`` before ``now``.

    :param storage: the site database (a :class:`hotline.storage.Storage`).
    :param retention_days: 0 keeps recordings forever (nothing is done).
    :param now: timezone-aware.
    :returns: what was removed, oldest first. A file that cannot be deleted (permissions)
        is logged and its row left as it is, so the next run tries again.
    """
    if retention_days < 0:
        raise ValueError(f"retention_days must be >= 0, got {retention_days}")
    if retention_days == 0:
        return []
    root = recordings_dir(data_dir)
    index = RecordingIndex(storage)
    cutoff = now - timedelta(days=retention_days)
    removed: list[Removed] = []
    failed: set[str] = set()
    while True:
        batch = [r for r in index.expired(cutoff, BATCH + len(failed)) if r.id not in failed]
        if not batch:
            break
        for rec in batch:
            main = root / rec.path
            siblings = [main.with_suffix(ext) for ext in EXTENSIONS.values()]
            files: list[Path] = []
            try:
                for path in dict.fromkeys([main, *siblings]):
                    if path.exists():
                        path.unlink()
                        files.append(path)
            except OSError as exc:
                logger.error("retention: cannot delete %s: %s", main, exc.strerror or exc)
                failed.add(rec.id)
                continue
            index.mark_deleted(rec.id)
            removed.append(Removed(rec.id, rec.start_time, tuple(files)))
            _prune_empty_dirs(main.parent, root)
    if removed:
        logger.info("retention: removed %d recordings older than %s", len(removed), cutoff)
    return removed


def _prune_empty_dirs(folder: Path, root: Path) -> None:
    """Remove ``folder`` and its parents up to (not including) ``root`` while empty."""
    while folder != root and root in folder.parents:
        with contextlib.suppress(OSError):
            os.rmdir(folder)  # fails (and stops) when not empty
        if folder.exists():
            return
        folder = folder.parent
