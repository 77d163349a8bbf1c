"""The recordings index: which recording files exist, for which call, and in what state.

Why this exists: supervisors look recordings up by time, number, agent and queue, and
recovery and retention need to know what every file is. The table lives in
``hotline.db`` (migration ``m0002_recordings``); this module holds all the SQL for it.

Why the SQL is here and not in :class:`hotline.storage.Storage`: the recorder package
may not import ``hotline`` (DESIGN layout), and the recordings schema is the recorder's
own business. :class:`RecordingIndex` therefore works on anything that provides
``transaction()`` and ``query()`` (the :class:`Database` protocol), which ``Storage``
does; every method is one short transaction on indexed columns, so the control process
calls them directly on its event loop.

States (a literal transition table, :data:`TRANSITIONS`)::

    live ──finish──► done ──────┐
      │                         ├─transcoded──► transcoded ──┐
      └──recover───► repaired ──┘                            ├──► deleted
      (any state but live) ──────── retention ───────────────┘

``live``: a worker is writing the WAV. ``done``: the call ended and the worker closed the
file. ``repaired``: the worker or server died and :func:`recorder.wav.repair` fixed the
file. ``transcoded``: ``path`` is now the Opus/MP3 file and the WAV is gone. ``deleted``:
retention removed the file; the row stays for audit (CDRs point to it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from .exceptions import RecorderError
from .naming import new_recording_id, recording_path

__all__ = [
    "TRANSITIONS",
    "Database",
    "end_time_for",
    "Recording",
    "RecordingIndex",
    "RecordingState",
]


class RecordingState(StrEnum):
    """Where a recording is in its life (see the module docstring)."""

    LIVE = "live"
    DONE = "done"
    REPAIRED = "repaired"
    TRANSCODED = "transcoded"
    DELETED = "deleted"


_S = RecordingState
#: Allowed state changes: ``{from: {to, ...}}``. Anything else is a bug in the caller.
TRANSITIONS: Mapping[RecordingState, frozenset[RecordingState]] = {
    _S.LIVE: frozenset({_S.DONE, _S.REPAIRED, _S.DELETED}),
    _S.DONE: frozenset({_S.TRANSCODED, _S.DELETED}),
    _S.REPAIRED: frozenset({_S.TRANSCODED, _S.DELETED}),
    _S.TRANSCODED: frozenset({_S.DELETED}),
    _S.DELETED: frozenset(),
}


class Database(Protocol):
    """What the index needs from the site database (:class:`hotline.storage.Storage`)."""

    def transaction(self, durable: bool = False) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction, committed when the block ends."""
        ...

    def query(self, sql: str, params: tuple[Any, ...] | Mapping[str, Any] = ()) -> list[Any]:
        """All rows of one read statement."""
        ...


@dataclass(frozen=True, slots=True)
class Recording:
    """One row of the index, with the agents linked to it."""

    #: Unique id, see :func:`recorder.naming.new_recording_id`.
    id: str
    #: SIP Call-ID of the call ('' if unknown, e.g. an orphan file named otherwise).
    call_id: str
    #: File path relative to ``DATA_DIR/recordings``, ``/``-separated.
    path: str
    #: ``wav``, ``opus`` or ``mp3``: the format of the file at :attr:`path`.
    format: str
    state: RecordingState
    #: Timezone-aware (UTC).
    start_time: datetime
    end_time: datetime | None = None
    #: Length of the audio, once known (not while live).
    seconds: float | None = None
    caller: str = ""
    callee: str = ""
    queue: str | None = None
    #: Agent ids that handled the contact, in the order they joined.
    agents: tuple[str, ...] = ()

    def tags(self) -> dict[str, str]:
        """Metadata for the transcoded file (:func:`recorder.transcode.transcode`)."""
        tags = {
            "call_id": self.call_id,
            "caller": self.caller,
            "callee": self.callee,
            "queue": self.queue or "",
            "agent": ",".join(self.agents),
            "start_time": to_db_time(self.start_time),
            "recording_id": self.id,
            "title": f"{self.caller or '?'} -> {self.callee or '?'}",
            "date": self.start_time.astimezone(UTC).strftime("%Y-%m-%d"),
        }
        return {k: v for k, v in tags.items() if v}


_COLUMNS = (
    "id", "call_id", "path", "format", "state", "start_time", "end_time", "seconds",
    "caller", "callee", "queue",
)  # fmt: skip
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM recordings"


def to_db_time(value: datetime) -> str:
    """The time format of every SQLite table (CDRs, recordings, voicemail): ISO 8601 UTC
    with milliseconds, so text order is time order.

    :raises ValueError: for a naive datetime.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"datetime must be timezone-aware, got {value!r}")
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def from_db_time(value: str | None) -> datetime | None:
    """A time read back from SQLite (None stays None)."""
    return None if value is None else datetime.fromisoformat(value)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class RecordingIndex:
    """The ``recordings`` and ``recording_agents`` tables of one database.

    :param db: the site database (a :class:`hotline.storage.Storage`).
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writing

    def start(
        self,
        call_id: str,
        start_time: datetime,
        *,
        caller: str = "",
        callee: str = "",
        queue: str | None = None,
        agents: Iterable[str] = (),
    ) -> Recording:
        """Index a new live recording and choose its file (see :mod:`recorder.naming`).

        The caller then starts the worker recording at
        ``recordings_dir(data_dir) / rec.path``.

        :param start_time: timezone-aware.
        :param agents: agents already on the call (joined at ``start_time``).
        """
        rec_id = new_recording_id(start_time)
        rec = Recording(
            id=rec_id,
            call_id=call_id,
            path=str(recording_path(rec_id, call_id, "wav")),
            format="wav",
            state=RecordingState.LIVE,
            start_time=start_time,
            caller=caller,
            callee=callee,
            queue=queue,
        )
        self.insert(rec)
        for agent in agents:
            self.add_agent(rec_id, agent, start_time)
        return self.get(rec_id) or rec

    def insert(self, rec: Recording) -> None:
        """Insert a row as given (recovery of orphan files; :meth:`start` for new calls).

        :raises sqlite3.IntegrityError: if the id or the path is already indexed.
        """
        values = (
            rec.id, rec.call_id, rec.path, rec.format, str(rec.state),
            to_db_time(rec.start_time), None if rec.end_time is None else to_db_time(rec.end_time),
            rec.seconds, rec.caller, rec.callee, rec.queue,
        )  # fmt: skip
        marks = ", ".join("?" for _ in _COLUMNS)
        with self.db.transaction() as conn:
            conn.execute(f"INSERT INTO recordings ({', '.join(_COLUMNS)}) VALUES ({marks})", values)
            conn.executemany(
                "INSERT OR IGNORE INTO recording_agents (recording_id, agent_id, joined_at) "
                "VALUES (?, ?, ?)",
                [(rec.id, agent, to_db_time(rec.start_time)) for agent in rec.agents],
            )

    def add_agent(self, recording_id: str, agent_id: str, joined_at: datetime) -> bool:
        """Link an agent to a recording (an agent who rejoins keeps the first time).

        :returns: whether the link is new.
        :raises KeyError: if there is no recording ``recording_id``.
        """
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM recordings WHERE id = ?", (recording_id,)).fetchone():
                cur = conn.execute(
                    "INSERT OR IGNORE INTO recording_agents (recording_id, agent_id, joined_at) "
                    "VALUES (?, ?, ?)",
                    (recording_id, agent_id, to_db_time(joined_at)),
                )
                return cur.rowcount > 0
        raise KeyError(recording_id)

    def finish(self, recording_id: str, end_time: datetime, seconds: float) -> Recording:
        """The worker closed the file normally (``recording_done``): live -> done."""
        return self._move(recording_id, _S.DONE, end_time=end_time, seconds=seconds)

    def mark_repaired(self, recording_id: str, end_time: datetime, seconds: float) -> Recording:
        """Recovery repaired the file of a recording left live by a crash."""
        return self._move(recording_id, _S.REPAIRED, end_time=end_time, seconds=seconds)

    def mark_transcoded(
        self, recording_id: str, path: str, fmt: str, seconds: float | None = None
    ) -> Recording:
        """The file at ``path`` (relative) in ``fmt`` replaced the WAV."""
        changes: dict[str, Any] = {"path": path, "format": fmt}
        if seconds is not None:
            changes["seconds"] = seconds
        return self._move(recording_id, _S.TRANSCODED, **changes)

    def mark_deleted(self, recording_id: str) -> Recording:
        """The file is gone (retention, or lost); the row stays."""
        return self._move(recording_id, _S.DELETED)

    def _move(self, recording_id: str, to: RecordingState, **changes: Any) -> Recording:
        """Change state along :data:`TRANSITIONS`, setting ``changes`` in the same update.

        :raises KeyError: if there is no such recording.
        :raises RecorderError: if the transition is not allowed (the row is unchanged).
        """
        sources = [str(s) for s, targets in TRANSITIONS.items() if to in targets]
        values = {k: to_db_time(v) if isinstance(v, datetime) else v for k, v in changes.items()}
        sets = ", ".join(["state = ?", *(f"{k} = ?" for k in values)])
        with self.db.transaction() as conn:
            cur = conn.execute(
                f"UPDATE recordings SET {sets} WHERE id = ? "
                f"AND state IN ({', '.join('?' for _ in sources)})",
                (str(to), *values.values(), recording_id, *sources),
            )
            if cur.rowcount == 0:
                row = conn.execute(
                    "SELECT path, state FROM recordings WHERE id = ?", (recording_id,)
                ).fetchone()
                if row is None:
                    raise KeyError(recording_id)
                raise RecorderError(
                    row[0], f"recording {recording_id} cannot go from {row[1]} to {to}"
                )
        rec = self.get(recording_id)
        assert rec is not None
        return rec

    # -- reading

    def get(self, recording_id: str) -> Recording | None:
        """One recording, or None."""
        rows = self.db.query(f"{_SELECT} WHERE id = ?", (recording_id,))
        return self._with_agents(rows)[0] if rows else None

    def for_call(self, call_id: str) -> list[Recording]:
        """The recordings of one call, oldest first."""
        rows = self.db.query(f"{_SELECT} WHERE call_id = ? ORDER BY start_time, id", (call_id,))
        return self._with_agents(rows)

    def by_state(self, *states: RecordingState) -> list[Recording]:
        """Every recording in one of ``states``, oldest first."""
        marks = ", ".join("?" for _ in states)
        rows = self.db.query(
            f"{_SELECT} WHERE state IN ({marks}) ORDER BY start_time, id",
            tuple(str(s) for s in states),
        )
        return self._with_agents(rows)

    def pending_transcode(self) -> list[Recording]:
        """Finished WAV recordings not yet transcoded (done or repaired), oldest first."""
        return [r for r in self.by_state(_S.DONE, _S.REPAIRED) if r.format == "wav"]

    def known_paths(self) -> set[str]:
        """The path of every row, deleted ones included (recovery's orphan scan)."""
        return {row[0] for row in self.db.query("SELECT path FROM recordings")}

    def known_ids(self) -> set[str]:
        """The id of every row."""
        return {row[0] for row in self.db.query("SELECT id FROM recordings")}

    def expired(self, before: datetime, limit: int = 1000) -> list[Recording]:
        """Recordings with a file that started before ``before`` (retention), oldest first.

        Live recordings are never returned: a worker may still be writing them.
        """
        rows = self.db.query(
            f"{_SELECT} WHERE start_time < ? AND state NOT IN ('live', 'deleted') "
            "ORDER BY start_time, id LIMIT ?",
            (to_db_time(before), limit),
        )
        return self._with_agents(rows)

    def search(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        number: str | None = None,
        agent: str | None = None,
        queue: str | None = None,
        call_id: str | None = None,
        include_deleted: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Recording]:
        """Find recordings, newest first.

        :param since: start time at or after (aware).
        :param until: start time before (aware).
        :param number: a substring of the caller or the callee number.
        :param agent: an agent linked to the recording.
        :param queue: the queue, exactly.
        :param include_deleted: also rows whose file retention removed.
        """
        where, params = self._filters(since, until, number, agent, queue, call_id, include_deleted)
        rows = self.db.query(
            f"{_SELECT}{where} ORDER BY start_time DESC, id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return self._with_agents(rows)

    def count(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        number: str | None = None,
        agent: str | None = None,
        queue: str | None = None,
        call_id: str | None = None,
        include_deleted: bool = False,
    ) -> int:
        """How many recordings :meth:`search` would find without limit (for paging)."""
        where, params = self._filters(since, until, number, agent, queue, call_id, include_deleted)
        return int(self.db.query(f"SELECT count(*) FROM recordings{where}", params)[0][0])

    @staticmethod
    def _filters(
        since: datetime | None,
        until: datetime | None,
        number: str | None,
        agent: str | None,
        queue: str | None,
        call_id: str | None,
        include_deleted: bool,
    ) -> tuple[str, tuple[Any, ...]]:
        clauses: list[str] = []
        params: list[Any] = []
        if since is not None:
            clauses.append("start_time >= ?")
            params.append(to_db_time(since))
        if until is not None:
            clauses.append("start_time < ?")
            params.append(to_db_time(until))
        if number:
            clauses.append("(caller LIKE ? ESCAPE '\\' OR callee LIKE ? ESCAPE '\\')")
            pattern = f"%{_like_escape(number)}%"
            params += [pattern, pattern]
        if agent is not None:
            clauses.append(
                "EXISTS (SELECT 1 FROM recording_agents a "
                "WHERE a.recording_id = recordings.id AND a.agent_id = ?)"
            )
            params.append(agent)
        if queue is not None:
            clauses.append("queue = ?")
            params.append(queue)
        if call_id is not None:
            clauses.append("call_id = ?")
            params.append(call_id)
        if not include_deleted:
            clauses.append("state != 'deleted'")
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return where, tuple(params)

    def _with_agents(self, rows: Sequence[tuple[Any, ...]]) -> list[Recording]:
        if not rows:
            return []
        ids = [row[0] for row in rows]
        agents: dict[str, list[str]] = {i: [] for i in ids}
        links = self.db.query(
            "SELECT recording_id, agent_id FROM recording_agents "
            f"WHERE recording_id IN ({', '.join('?' for _ in ids)}) "
            "ORDER BY joined_at, agent_id",
            tuple(ids),
        )
        for rec_id, agent_id in links:
            agents[rec_id].append(agent_id)
        out = []
        for row in rows:
            data = dict(zip(_COLUMNS, row, strict=True))
            data["state"] = RecordingState(data["state"])
            data["start_time"] = from_db_time(data["start_time"])
            data["end_time"] = from_db_time(data["end_time"])
            out.append(Recording(**data, agents=tuple(agents[data["id"]])))
        return out


def end_time_for(start_time: datetime, seconds: float) -> datetime:
    """The end of a recording that started at ``start_time`` and holds ``seconds``."""
    return start_time + timedelta(seconds=seconds)
