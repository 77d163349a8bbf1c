"""Voicemail messages: the ``voicemail`` table (migration 3) and the files it points to.

Why this exists: a message left by a caller (:class:`acd.ivr_actions.SaveMessage`) must
be listed and played from the API and by phone, marked heard, and deleted, and it must
not be lost once the caller has heard "your message has been saved". All the SQL and the
file naming for it live here, over :class:`hotline.storage.Storage` (its ``transaction``
and ``query``), so the control process and the API's database thread share one code path.

Files, relative to ``DATA_DIR/voicemail`` (the ``path`` column, ``/`` separators)::

    BOX/YYYYMMDDTHHMMSSZ-<8 hex>.wav        e.g. sales/20240501T080000Z-3f9a1c2b.wav

named after the UTC time the caller was put through to the box, so a folder lists a
box's messages in time order. Box names are restricted to letters, digits, ``_ . -``
(not ``.`` or ``..``) here too: a ``voicemail:BOX`` target is only checked for being
non-empty, and a name must never climb out of the folder.

Durability: saving a message commits with ``durable=True`` (the WAL is fsynced), like a
finished CDR; a message whose call was cut by a crash is found on the next start
(:meth:`VoicemailStore.recover`). Marking heard and deleting are ordinary commits. Deleting sets
``deleted_at`` and keeps the row for audit (as the migration says) but removes the file
at once, with the copy the media workers' prompt cache made when the message was played
by phone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from recorder.exceptions import RecorderError
from recorder.index import from_db_time, to_db_time
from recorder.wav import repair

from .storage import Storage

__all__ = [
    "VOICEMAIL_DIR",
    "VoicemailRecord",
    "VoicemailStore",
    "valid_box",
    "voicemail_dir",
]

#: Folder of the messages under the data directory.
VOICEMAIL_DIR = "voicemail"
_BOX_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
_NAME_RE = re.compile(r"^(\d{8}T\d{6}Z)-[0-9a-f]{8}\.wav$")
#: Bytes per second of a message (8 kHz, 16-bit, two channels).
_BYTES_PER_SECOND = 8000 * 2 * 2
_COLUMNS = ("id", "box", "call_id", "caller", "received_at", "seconds", "path", "heard_at",
            "deleted_at", "variables")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM voicemail"


def valid_box(name: str) -> bool:
    """Whether ``name`` can be a mailbox (and a folder name): letters, digits, ``_ . -``."""
    return bool(_BOX_RE.match(name)) and name not in (".", "..")


def voicemail_dir(data_dir: Path | str) -> Path:
    """``DATA_DIR/voicemail``, absolute: the folder message paths are relative to."""
    return Path(os.path.abspath(data_dir)) / VOICEMAIL_DIR


@dataclass(frozen=True, slots=True)
class VoicemailRecord:
    """One message, as stored."""

    id: int
    box: str
    call_id: str
    caller: str
    received_at: datetime
    #: Length of the recording.
    seconds: float
    #: Relative to ``DATA_DIR/voicemail``, ``/`` separators.
    path: str
    #: When the owner first heard it (by phone or the API); None while new.
    heard_at: datetime | None
    #: When the owner deleted it; the row stays, the file is gone.
    deleted_at: datetime | None
    #: The call's variables (caller, called, call_id and IVR input).
    variables: Mapping[str, str]

    @property
    def new(self) -> bool:
        """Not heard yet."""
        return self.heard_at is None

    @property
    def deleted(self) -> bool:
        """Deleted by the owner."""
        return self.deleted_at is not None


def _record(row: tuple[Any, ...]) -> VoicemailRecord:
    data = dict(zip(_COLUMNS, row, strict=True))
    try:
        variables = json.loads(data["variables"] or "{}")
    except ValueError:
        variables = {}
    if not isinstance(variables, dict):
        variables = {}
    received = from_db_time(data["received_at"])
    assert received is not None
    return VoicemailRecord(
        id=int(data["id"]), box=data["box"], call_id=data["call_id"], caller=data["caller"],
        received_at=received, seconds=float(data["seconds"]), path=data["path"],
        heard_at=from_db_time(data["heard_at"]), deleted_at=from_db_time(data["deleted_at"]),
        variables={str(k): str(v) for k, v in variables.items()},
    )


class VoicemailStore:
    """Voicemail messages of a site.

    :param storage: the open database (the server's, or the API's own connection).
    :param data_dir: the site's data directory (files go to ``DATA_DIR/voicemail``).
    """

    def __init__(self, storage: Storage, data_dir: Path | str) -> None:
        self.storage = storage
        self.data_dir = Path(os.path.abspath(data_dir))
        #: ``DATA_DIR/voicemail``.
        self.root = voicemail_dir(data_dir)

    # -- files

    def new_path(self, box: str, when: datetime | None = None) -> Path:
        """A fresh absolute file path for a message to ``box`` received at ``when`` (now).
        The folder is not created.

        :raises ValueError: for a box name that is not letters, digits, ``_ . -``.
        """
        if not valid_box(box):
            raise ValueError(f"voicemail box {box!r}: expected letters, digits, _ . -")
        stamp = (when or datetime.now(UTC)).astimezone(UTC).strftime(_TIME_FORMAT)
        return self.root / box / f"{stamp}-{secrets.token_hex(4)}.wav"

    def file(self, record: VoicemailRecord) -> Path:
        """The absolute path of a message's file.

        :raises ValueError: if the stored path points outside ``DATA_DIR/voicemail``.
        """
        path = Path(os.path.normpath(self.root / PurePosixPath(record.path)))
        if self.root not in path.parents:
            raise ValueError(f"voicemail path {record.path!r} is outside {self.root}")
        return path

    def _relative(self, path: Path | str) -> str:
        full = Path(os.path.normpath(os.path.abspath(path)))
        if self.root not in full.parents:
            raise ValueError(f"voicemail file {path} is not under {self.root}")
        return full.relative_to(self.root).as_posix()

    # -- writes

    def save(
        self,
        box: str,
        path: Path | str,
        seconds: float,
        *,
        call_id: str = "",
        caller: str = "",
        variables: Mapping[str, str] | None = None,
        received_at: datetime | None = None,
    ) -> VoicemailRecord:
        """Index a recorded message (fsynced before returning).

        :param path: the WAV file, under ``DATA_DIR/voicemail``.
        :param received_at: when the caller reached the box (now when None); aware.
        :raises ValueError: for a bad box name, a path outside the folder or a naive time.
        """
        if not valid_box(box):
            raise ValueError(f"voicemail box {box!r}: expected letters, digits, _ . -")
        rel = self._relative(path)
        when = to_db_time(received_at or datetime.now(UTC))
        blob = json.dumps(dict(variables or {}), ensure_ascii=False, sort_keys=True)
        with self.storage.transaction(durable=True) as conn:
            cur = conn.execute(
                "INSERT INTO voicemail (box, call_id, caller, received_at, seconds, path, "
                "variables) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (box, call_id, caller, when, float(seconds), rel, blob))
            msg_id = cur.lastrowid
        assert msg_id is not None
        record = self.get(msg_id)
        assert record is not None
        return record

    def mark_heard(self, msg_id: int, when: datetime | None = None) -> bool:
        """Mark a message heard (the first time counts); False if there is no such
        message or it is deleted."""
        with self.storage.transaction() as conn:
            found = conn.execute(
                "SELECT heard_at FROM voicemail WHERE id = ? AND deleted_at IS NULL",
                (msg_id,)).fetchone()
            if found is None:
                return False
            if found[0] is None:
                conn.execute("UPDATE voicemail SET heard_at = ? WHERE id = ?",
                             (to_db_time(when or datetime.now(UTC)), msg_id))
            return True

    def delete(self, msg_id: int, when: datetime | None = None) -> bool:
        """Delete a message: the row is marked deleted (kept for audit), the file and
        its prompt-cache copy are removed. False if there is no such message or it was
        deleted before."""
        record = self.get(msg_id)
        if record is None or record.deleted:
            return False
        try:
            path: Path | None = self.file(record)
        except ValueError:
            path = None
        if path is not None:
            cached = _prompt_cache_file(self.data_dir, path)
            if cached is not None:
                cached.unlink(missing_ok=True)
        with self.storage.transaction() as conn:
            cur = conn.execute(
                "UPDATE voicemail SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
                (to_db_time(when or datetime.now(UTC)), msg_id))
            changed = cur.rowcount > 0
        if path is not None:
            path.unlink(missing_ok=True)
        return changed

    def recover(self, min_seconds: float = 1.0) -> list[VoicemailRecord]:
        """Index the messages a crash left without a row (the server or a worker died
        while a caller was recording): repair each WAV header and file it as received at
        the time in its name, caller unknown; shorter ones are deleted. Run before the
        media workers start (a file being recorded must not be taken for a leftover).

        :returns: the messages recovered.
        """
        if not self.root.is_dir():
            return []
        known = {row[0] for row in self.storage.query("SELECT path FROM voicemail")}
        out: list[VoicemailRecord] = []
        for path in sorted(self.root.glob("*/*.wav")):
            box = path.parent.name
            rel = f"{box}/{path.name}"
            if rel in known or not valid_box(box):
                continue
            match = _NAME_RE.match(path.name)
            try:
                seconds = repair(path).data_size / _BYTES_PER_SECOND
            except RecorderError:
                seconds = 0.0
            if seconds < min_seconds or match is None:
                path.unlink(missing_ok=True)
                continue
            when = datetime.strptime(match.group(1), _TIME_FORMAT).replace(tzinfo=UTC)
            out.append(self.save(box, path, seconds, received_at=when,
                                 variables={"recovered": "1"}))
        return out

    # -- reads

    def get(self, msg_id: int) -> VoicemailRecord | None:
        """One message, deleted ones included, or None."""
        rows = self.storage.query(_SELECT + " WHERE id = ?", (msg_id,))
        return _record(rows[0]) if rows else None

    def messages(
        self,
        box: str,
        *,
        new_only: bool = False,
        newest_first: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[VoicemailRecord]:
        """A box's messages that are not deleted, oldest first (or newest first).

        :param new_only: only messages not heard yet.
        """
        sql = _SELECT + " WHERE box = ? AND deleted_at IS NULL"
        if new_only:
            sql += " AND heard_at IS NULL"
        order = "DESC" if newest_first else "ASC"
        sql += f" ORDER BY received_at {order}, id {order}"
        params: tuple[Any, ...] = (box,)
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += (limit, offset)
        return [_record(row) for row in self.storage.query(sql, params)]

    def counts(self, box: str) -> tuple[int, int]:
        """``(new, total)`` messages of a box, deleted ones left out."""
        rows = self.storage.query(
            "SELECT count(*), coalesce(sum(heard_at IS NULL), 0) FROM voicemail "
            "WHERE box = ? AND deleted_at IS NULL", (box,))
        total, new = rows[0]
        return int(new), int(total)

    def boxes(self) -> dict[str, tuple[int, int]]:
        """``{box: (new, total)}`` for every box holding messages that are not deleted."""
        rows = self.storage.query(
            "SELECT box, count(*), coalesce(sum(heard_at IS NULL), 0) FROM voicemail "
            "WHERE deleted_at IS NULL GROUP BY box ORDER BY box")
        return {str(box): (int(new), int(total)) for box, total, new in rows}


def _prompt_cache_file(data_dir: Path, path: Path) -> Path | None:
    """The media workers' cached copy of a message played by phone, if any.

    Same key as :meth:`media.prompts.PromptCache._key_file` (absolute path, size,
    mtime); ``tests/hotline/test_voicemail_store.py`` checks they agree.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    raw = f"file\0{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}"
    key = hashlib.sha256(raw.encode()).hexdigest()[:32]
    return data_dir / "prompts-cache" / f"{key}.s16"
