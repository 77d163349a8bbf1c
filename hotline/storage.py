"""SQLite storage: registrations, CDRs, authentication events and bans, ACD queue log.

Theory of operation: one :class:`Storage` per process wraps one ``sqlite3`` connection to
``DATA_DIR/hotline.db`` in autocommit mode; every write is an explicit
``BEGIN IMMEDIATE ... COMMIT`` so a method is one atomic transaction. Calls are short
(single-row statements on indexed columns), so the asyncio control process calls them
directly; a lock makes the object safe to hand to one worker thread as well.

Schema changes are ordered migrations (:mod:`hotline.migrations`); ``PRAGMA user_version``
is the last one applied. Opening applies the missing ones, each in its own transaction, and
refuses a database written by a newer hotline.

Durability choice: ``journal_mode=WAL`` with ``synchronous=NORMAL``. A committed
transaction is in the WAL file (the OS page cache) before ``COMMIT`` returns, so it
survives ``kill -9`` of hotline; only an OS crash or power loss can lose the last few
commits. That is the right trade for registrations and auth events, which are refreshed
anyway. CDRs are billing records, so the writes that complete one (:meth:`Storage.finish_cdr`,
and any write with ``durable=True``) switch the connection to ``synchronous=FULL`` for that
commit, which fsyncs the WAL: a call that has ended is on disk even after a power cut.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from acd.events import AcdEvent, AgentStateChanged, QueueEvent
from hotline.migrations import LATEST, MIGRATIONS
from recorder.index import from_db_time, to_db_time

__all__ = [
    "DB_NAME",
    "Ban",
    "CdrRecord",
    "Registration",
    "Storage",
    "StorageError",
]

DB_NAME = "hotline.db"
BUSY_TIMEOUT_MS = 5000


class StorageError(Exception):
    """The database cannot be used; the message says what to do about it."""

    def __init__(self, path: Path | str, message: str) -> None:
        #: The database file.
        self.path = Path(path)
        #: What went wrong and what to do.
        self.message = message
        super().__init__(f"{path}: {message}")


@dataclass(frozen=True, slots=True)
class Registration:
    """One REGISTER binding (RFC 3261 10.3): an AOR reachable at a contact."""

    #: Address of record, e.g. ``sip:1001@hotline``.
    aor: str
    #: Contact URI as registered.
    contact: str
    #: Unix epoch seconds after which the binding is gone.
    expires_at: float
    #: Contact preference 0..1.
    q: float
    call_id: str
    cseq: int
    #: Transport the REGISTER came over (udp, tcp, tls, ws, wss).
    transport: str
    source_ip: str
    source_port: int
    user_agent: str = ""
    #: RFC 5626 ``+sip.instance``, if the phone sent one.
    instance_id: str = ""


@dataclass(frozen=True, slots=True)
class CdrRecord:
    """One call detail record: one leg of one call."""

    id: int
    #: The call this leg belongs to (shared by all its legs).
    call_id: str
    #: caller, agent, supervisor, outbound, transfer, ...
    leg: str
    #: The leg this one was created for (an agent leg's parent is the caller leg).
    parent_id: int | None
    #: inbound, outbound or internal.
    direction: str
    start_time: datetime
    answer_time: datetime | None
    end_time: datetime | None
    caller: str
    callee: str
    trunk: str | None
    #: The route target the call was sent to, e.g. ``ivr:main``.
    route: str | None
    queue: str | None
    agent: str | None
    #: answered, no-answer, busy, failed, abandoned, overflow, ...
    disposition: str | None
    #: SIP status or reason, e.g. ``487`` or ``caller-bye``.
    hangup_cause: str | None
    #: Whole seconds from answer to end.
    billsec: int
    recording_id: str | None
    #: The agent's wrap-up disposition code (``[acd] dispositions``), once filed.
    wrapup_code: str | None = None
    #: The agent's wrap-up notes, once filed.
    wrapup_notes: str | None = None


@dataclass(frozen=True, slots=True)
class Ban:
    """An IP refused for a while after too many failed authentications."""

    ip: str
    #: Unix epoch seconds.
    since: float
    #: Unix epoch seconds.
    until: float
    reason: str


CDR_COLUMNS = tuple(f.name for f in fields(CdrRecord))
_CDR_TIME_COLUMNS = frozenset({"start_time", "answer_time", "end_time"})
_CDR_INSERTABLE = frozenset(CDR_COLUMNS) - {"id"}
_CDR_UPDATABLE = frozenset(CDR_COLUMNS) - {"id", "call_id", "leg", "start_time"}
_REG_COLUMNS = tuple(f.name for f in fields(Registration))


def _statements(script: str) -> Iterator[str]:
    """Split an SQL script into complete statements (comments and strings respected)."""
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            yield buf.strip()
            buf = ""
    if buf.strip():
        raise ValueError(f"incomplete SQL statement at end of migration: {buf.strip()[:60]!r}")


class Storage:
    """The site's database. Create with :meth:`open`; :meth:`close` when done."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        #: ``DATA_DIR/hotline.db``.
        self.path = path
        self._conn = conn
        self._lock = threading.RLock()

    # -- lifecycle

    @classmethod
    def open(cls, data_dir: Path | str, *, create: bool = True) -> Storage:
        """Open (creating and migrating as needed) ``data_dir/hotline.db``.

        :param create: when False, a missing database is an error instead of being created
            (for read-only tools such as ``hotline cdr export``).
        :raises StorageError: if the database cannot be created or opened, is not a
            hotline database, or was written by a newer version of hotline.
        """
        data_dir = Path(data_dir)
        path = data_dir / DB_NAME
        if not create and not path.exists():
            raise StorageError(path, "no database here (check --data-dir or server.data_dir)")
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1e3
            )
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(path, f"cannot open the database: {exc}") from None
        storage = cls(path, conn)
        try:
            storage._configure()
            storage._migrate()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StorageError(path, f"not a usable SQLite database ({exc})") from None
        except BaseException:
            conn.close()
            raise
        return storage

    def close(self) -> None:
        """Close the connection (checkpointing the WAL). Idempotent."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        """The ``PRAGMA user_version`` of the open database."""
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _configure(self) -> None:
        conn = self._conn
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(self.path, f"cannot switch to WAL journal mode (got {mode})")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    def _migrate(self) -> None:
        conn = self._conn
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > LATEST:
            raise StorageError(
                self.path,
                f"schema version {version} is newer than this hotline understands "
                f"({LATEST}); run a newer hotline or restore a backup",
            )
        for migration in MIGRATIONS[version:]:
            current = migration.version - 1
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have migrated while we waited for the write lock.
                current = int(conn.execute("PRAGMA user_version").fetchone()[0])
                if current >= migration.version:
                    conn.execute("COMMIT")
                    continue
                for statement in _statements(migration.sql):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {migration.version:d}")
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK")
                raise StorageError(
                    self.path,
                    f"migration {migration.version} ({migration.name}) failed: {exc}; "
                    f"the database was left at version {current}",
                ) from exc
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _write(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction; ``durable`` fsyncs the WAL on commit."""
        with self._lock:
            conn = self._conn
            if durable:
                conn.execute("PRAGMA synchronous=FULL")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                if durable:
                    conn.execute("PRAGMA synchronous=NORMAL")

    def _read(self, sql: str, params: tuple[Any, ...] | Mapping[str, Any] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # -- for packages that keep their own SQL (recorder.index)

    def transaction(self, durable: bool = False) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction: ``with storage.transaction() as conn: conn.execute(...)``.

        ``BEGIN IMMEDIATE ... COMMIT``, rolled back if the block raises; ``durable``
        fsyncs the WAL on commit (see the module docstring).
        """
        return self._write(durable)

    def query(self, sql: str, params: tuple[Any, ...] | Mapping[str, Any] = ()) -> list[Any]:
        """Run one read statement and return all its rows."""
        return self._read(sql, params)

    # -- registrations

    def save_registration(self, reg: Registration) -> None:
        """Insert or replace the binding for ``(reg.aor, reg.contact)``."""
        cols = ", ".join(_REG_COLUMNS)
        marks = ", ".join("?" for _ in _REG_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _REG_COLUMNS[2:])
        with self._write() as conn:
            conn.execute(
                f"INSERT INTO registrations ({cols}) VALUES ({marks}) "
                f"ON CONFLICT (aor, contact) DO UPDATE SET {updates}",
                tuple(getattr(reg, c) for c in _REG_COLUMNS),
            )

    def replace_registrations(self, aor: str, regs: list[Registration]) -> None:
        """Atomically make ``regs`` the only bindings of ``aor`` (an empty list clears it).

        :raises ValueError: if a binding belongs to another AOR.
        """
        if any(r.aor != aor for r in regs):
            raise ValueError(f"every binding must have aor {aor!r}")
        cols = ", ".join(_REG_COLUMNS)
        marks = ", ".join("?" for _ in _REG_COLUMNS)
        with self._write() as conn:
            conn.execute("DELETE FROM registrations WHERE aor = ?", (aor,))
            conn.executemany(
                f"INSERT INTO registrations ({cols}) VALUES ({marks})",
                [tuple(getattr(r, c) for c in _REG_COLUMNS) for r in regs],
            )

    def delete_registration(self, aor: str, contact: str | None = None) -> int:
        """Delete one binding, or every binding of ``aor`` when ``contact`` is None.

        :returns: the number of bindings deleted.
        """
        with self._write() as conn:
            if contact is None:
                cur = conn.execute("DELETE FROM registrations WHERE aor = ?", (aor,))
            else:
                cur = conn.execute(
                    "DELETE FROM registrations WHERE aor = ? AND contact = ?", (aor, contact)
                )
            return cur.rowcount

    def load_registrations(self, now: float, aor: str | None = None) -> list[Registration]:
        """Return the bindings still valid at ``now`` (Unix seconds), for one AOR or all.

        Ordered by AOR, then q descending (RFC 3261 16.6: higher q first).
        """
        cols = ", ".join(_REG_COLUMNS)
        sql = f"SELECT {cols} FROM registrations WHERE expires_at > ?"
        params: tuple[Any, ...] = (now,)
        if aor is not None:
            sql += " AND aor = ?"
            params += (aor,)
        rows = self._read(sql + " ORDER BY aor, q DESC, id", params)
        return [Registration(*row) for row in rows]

    def purge_registrations(self, now: float) -> int:
        """Delete bindings expired at ``now``; returns how many."""
        with self._write() as conn:
            return conn.execute("DELETE FROM registrations WHERE expires_at <= ?", (now,)).rowcount

    # -- CDRs

    def insert_cdr(
        self,
        call_id: str,
        leg: str,
        start_time: datetime,
        *,
        durable: bool = False,
        **columns: Any,
    ) -> int:
        """Insert the CDR of a new leg and return its id.

        :param start_time: timezone-aware.
        :param columns: any other :class:`CdrRecord` field (``caller=``, ``parent_id=``...).
        :raises ValueError: for an unknown column or a naive datetime.
        """
        values = {"call_id": call_id, "leg": leg, "start_time": start_time, **columns}
        row = self._cdr_values(values, _CDR_INSERTABLE)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._write(durable) as conn:
            cur = conn.execute(f"INSERT INTO cdr ({cols}) VALUES ({marks})", tuple(row.values()))
            assert cur.lastrowid is not None
            return cur.lastrowid

    def insert_cdrs(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert finished CDRs in one transaction (the server batches ended calls).

        :param rows: each a mapping of :class:`CdrRecord` fields (``call_id``, ``leg``,
            ``start_time`` required).
        :raises ValueError: for an unknown column or a naive datetime (nothing inserted).
        """
        prepared = [self._cdr_values(r, _CDR_INSERTABLE) for r in rows]
        with self._write() as conn:
            for row in prepared:
                cols = ", ".join(row)
                marks = ", ".join("?" for _ in row)
                conn.execute(f"INSERT INTO cdr ({cols}) VALUES ({marks})", tuple(row.values()))

    def write_cdrs(self, ops: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Apply a batch of CDR writes in order, in one transaction.

        ``("insert", row)`` adds a row (``end_time`` None while the call is live, so a
        crash leaves it open for :meth:`close_open_cdrs`); ``("finish", row)`` completes
        the open row of ``row["call_id"]``/``row["leg"]`` with the other columns given.

        :raises ValueError: for an unknown op or column or a naive datetime (nothing
            written).
        """
        prepared: list[tuple[str, dict[str, Any]]] = []
        for op, row in ops:
            if op == "insert":
                prepared.append((op, self._cdr_values(row, _CDR_INSERTABLE)))
            elif op == "finish":
                cols = {k: v for k, v in row.items() if k not in ("call_id", "leg")}
                vals = self._cdr_values(cols, _CDR_UPDATABLE)
                vals["call_id"], vals["leg"] = row["call_id"], row["leg"]
                prepared.append((op, vals))
            else:
                raise ValueError(f"cdr op {op!r} is not insert or finish")
        with self._write() as conn:
            for op, vals in prepared:
                if op == "insert":
                    cols = ", ".join(vals)
                    marks = ", ".join("?" for _ in vals)
                    conn.execute(f"INSERT INTO cdr ({cols}) VALUES ({marks})",
                                 tuple(vals.values()))
                else:
                    key = (vals.pop("call_id"), vals.pop("leg"))
                    sets = ", ".join(f"{c} = ?" for c in vals)
                    conn.execute(f"UPDATE cdr SET {sets} WHERE call_id = ? AND leg = ? "
                                 "AND end_time IS NULL", (*vals.values(), *key))

    def open_cdrs(self) -> list[CdrRecord]:
        """CDRs of calls that were live when the server stopped without ending them."""
        rows = self._read(f"SELECT {', '.join(CDR_COLUMNS)} FROM cdr "
                          "WHERE end_time IS NULL ORDER BY id")
        return [self._cdr(row) for row in rows]

    def update_cdr(self, cdr_id: int, *, durable: bool = False, **columns: Any) -> None:
        """Set some columns of a CDR (``answer_time=``, ``agent=``, ``recording_id=``...).

        :raises ValueError: for an unknown or read-only column or a naive datetime.
        :raises KeyError: if there is no CDR ``cdr_id``.
        """
        if not columns:
            return
        row = self._cdr_values(columns, _CDR_UPDATABLE)
        sets = ", ".join(f"{c} = ?" for c in row)
        with self._write(durable) as conn:
            cur = conn.execute(f"UPDATE cdr SET {sets} WHERE id = ?", (*row.values(), cdr_id))
            if cur.rowcount == 0:
                raise KeyError(cdr_id)

    def finish_cdr(
        self,
        cdr_id: int,
        end_time: datetime,
        disposition: str,
        hangup_cause: str | None = None,
    ) -> CdrRecord:
        """Complete a CDR: set the end time, disposition and cause, compute billsec.

        Durable (fsynced) even against power loss; see the module docstring.

        :returns: the finished record.
        :raises KeyError: if there is no CDR ``cdr_id``.
        """
        end = to_db_time(end_time)
        with self._write(durable=True) as conn:
            found = conn.execute("SELECT answer_time FROM cdr WHERE id = ?", (cdr_id,)).fetchone()
            if found is None:
                raise KeyError(cdr_id)
            answered = from_db_time(found[0])
            billsec = max(0, int((end_time - answered).total_seconds())) if answered else 0
            conn.execute(
                "UPDATE cdr SET end_time = ?, disposition = ?, hangup_cause = ?, billsec = ? "
                "WHERE id = ?",
                (end, disposition, hangup_cause, billsec, cdr_id),
            )
        record = self.get_cdr(cdr_id)
        assert record is not None
        return record

    def get_cdr(self, cdr_id: int) -> CdrRecord | None:
        """Return one CDR, or None."""
        rows = self._read(f"SELECT {', '.join(CDR_COLUMNS)} FROM cdr WHERE id = ?", (cdr_id,))
        return self._cdr(rows[0]) if rows else None

    def cdrs_since(self, since: datetime | None = None) -> list[CdrRecord]:
        """Return CDRs that started at or after ``since`` (all when None), oldest first."""
        sql = f"SELECT {', '.join(CDR_COLUMNS)} FROM cdr"
        params: tuple[Any, ...] = ()
        if since is not None:
            sql += " WHERE start_time >= ?"
            params = (to_db_time(since),)
        return [self._cdr(row) for row in self._read(sql + " ORDER BY start_time, id", params)]

    def cdrs_for_call(self, call_id: str) -> list[CdrRecord]:
        """Return every leg of one call, in creation order."""
        rows = self._read(
            f"SELECT {', '.join(CDR_COLUMNS)} FROM cdr WHERE call_id = ? ORDER BY id", (call_id,)
        )
        return [self._cdr(row) for row in rows]

    def set_wrapup(self, call_id: str, code: str | None, notes: str | None) -> int:
        """File the agent's wrap-up: set ``wrapup_code`` and ``wrapup_notes`` on every CDR
        row of ``call_id`` (rows written later for the call inherit them, see migration
        5). Durable, as a finished CDR.

        :returns: how many rows were changed; 0 when the call has no CDR (yet).
        """
        with self._write(durable=True) as conn:
            cur = conn.execute("UPDATE cdr SET wrapup_code = ?, wrapup_notes = ? "
                               "WHERE call_id = ?", (code, notes, call_id))
            return cur.rowcount

    @staticmethod
    def _cdr_values(values: Mapping[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in values.items():
            if name not in allowed:
                raise ValueError(f"cdr column {name!r} cannot be set here")
            if name in _CDR_TIME_COLUMNS and value is not None:
                value = to_db_time(value)
            out[name] = value
        return out

    @staticmethod
    def _cdr(row: tuple[Any, ...]) -> CdrRecord:
        data = dict(zip(CDR_COLUMNS, row, strict=True))
        for name in _CDR_TIME_COLUMNS:
            data[name] = from_db_time(data[name])
        return CdrRecord(**data)

    # -- authentication events and bans

    def record_auth_event(
        self, now: float, ip: str, username: str, result: str, source: str = "sip"
    ) -> None:
        """Log one authentication attempt.

        :param now: Unix epoch seconds.
        :param result: ``ok`` for success; anything else counts as a failure.
        :param source: ``sip`` or ``web``.
        """
        with self._write() as conn:
            conn.execute(
                "INSERT INTO auth_events (time, ip, username, result, source) "
                "VALUES (?, ?, ?, ?, ?)",
                (now, ip, username, result, source),
            )

    def count_auth_failures(self, ip: str, since: float) -> int:
        """Return how many failed attempts ``ip`` made at or after ``since`` (Unix seconds)."""
        rows = self._read(
            "SELECT count(*) FROM auth_events WHERE ip = ? AND time >= ? AND result != 'ok'",
            (ip, since),
        )
        return int(rows[0][0])

    def purge_auth_events(self, before: float) -> int:
        """Delete auth events older than ``before`` (Unix seconds); returns how many."""
        with self._write() as conn:
            return conn.execute("DELETE FROM auth_events WHERE time < ?", (before,)).rowcount

    def add_ban(self, ip: str, now: float, until: float, reason: str = "") -> None:
        """Ban ``ip`` from ``now`` until ``until`` (Unix seconds), replacing any ban."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO bans (ip, since, until, reason) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (ip) DO UPDATE SET since = excluded.since, "
                "until = excluded.until, reason = excluded.reason",
                (ip, now, until, reason),
            )

    def remove_ban(self, ip: str) -> bool:
        """Lift the ban on ``ip``; returns whether there was one."""
        with self._write() as conn:
            return conn.execute("DELETE FROM bans WHERE ip = ?", (ip,)).rowcount > 0

    def active_bans(self, now: float) -> list[Ban]:
        """Return bans still in force at ``now`` (Unix seconds)."""
        rows = self._read(
            "SELECT ip, since, until, reason FROM bans WHERE until > ? ORDER BY ip", (now,)
        )
        return [Ban(*row) for row in rows]

    def is_banned(self, ip: str, now: float) -> bool:
        """Tell whether ``ip`` is banned at ``now`` (Unix seconds)."""
        return bool(self._read("SELECT 1 FROM bans WHERE ip = ? AND until > ?", (ip, now)))

    def purge_bans(self, now: float) -> int:
        """Delete bans that ended before ``now``; returns how many."""
        with self._write() as conn:
            return conn.execute("DELETE FROM bans WHERE until <= ?", (now,)).rowcount

    # -- ACD queue log and agent states

    def append_acd_events(self, events: Sequence[AcdEvent], wall_offset: float) -> None:
        """Keep a batch of ACD events, in order, in one transaction.

        :class:`~acd.events.QueueEvent` rows go to ``queue_log``,
        :class:`~acd.events.AgentStateChanged` rows to ``agent_states``; other events
        (offers, announcements) are not history and are skipped. Written with
        ``synchronous=NORMAL`` like CDR batches: safe against ``kill -9``.

        :param wall_offset: added to each event's ``at`` (the engine's loop time) to get
            Unix epoch seconds.
        :raises ValueError: for a queue event with more than five data fields (nothing
            written).
        """
        log: list[tuple[Any, ...]] = []
        states: list[tuple[Any, ...]] = []
        for ev in events:
            if isinstance(ev, QueueEvent):
                if len(ev.data) > _QUEUE_LOG_DATA:
                    raise ValueError(
                        f"queue event {ev.event} has {len(ev.data)} data fields; "
                        f"the queue log keeps {_QUEUE_LOG_DATA}"
                    )
                data = (*ev.data, *(None,) * (_QUEUE_LOG_DATA - len(ev.data)))
                log.append((ev.at + wall_offset, ev.call_id or "NONE", ev.queue,
                            ev.agent or "NONE", ev.event, *data))
            elif isinstance(ev, AgentStateChanged):
                states.append((ev.at + wall_offset, ev.agent, ev.state, ev.previous,
                               ev.reason, ev.call_id, ev.queue))
        if not log and not states:
            return
        with self._write() as conn:
            if log:
                conn.executemany(
                    f"INSERT INTO queue_log ({', '.join(_QUEUE_LOG_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in _QUEUE_LOG_COLUMNS)})",
                    log,
                )
            if states:
                conn.executemany(
                    f"INSERT INTO agent_states ({', '.join(_AGENT_STATE_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in _AGENT_STATE_COLUMNS)})",
                    states,
                )

    def queue_log_since(
        self, since: float | None, until: float | None = None
    ) -> list[QueueEvent]:
        """Queue events with ``since <= time < until`` (either bound None: open), in time
        order (ties in the order written); ``at`` is Unix epoch seconds."""
        where, params = _time_window(since, until)
        rows = self._read(
            f"SELECT {', '.join(_QUEUE_LOG_COLUMNS)} FROM queue_log{where} ORDER BY time, id",
            params,
        )
        out = []
        for at, call_id, queue, agent, event, *data in rows:
            while data and data[-1] is None:
                data.pop()
            out.append(QueueEvent(at, call_id, queue, agent, event,
                                  tuple("" if d is None else d for d in data)))
        return out

    def agent_states_since(
        self, since: float | None, until: float | None = None
    ) -> list[AgentStateChanged]:
        """Agent state changes with ``since <= time < until`` (either bound None: open), in
        time order (ties in the order written); ``at`` is Unix epoch seconds."""
        where, params = _time_window(since, until)
        rows = self._read(
            f"SELECT {', '.join(_AGENT_STATE_COLUMNS)} FROM agent_states{where} "
            "ORDER BY time, id",
            params,
        )
        return [_agent_state(row) for row in rows]

    def add_audit(self, when: float, actor: str, action: str, target: str = "",
                  call_id: str = "") -> None:
        """Keep one supervisor action (``when`` in Unix seconds), durably."""
        with self._write(durable=True) as conn:
            conn.execute("INSERT INTO audit (time, actor, action, target, call_id) "
                         "VALUES (?, ?, ?, ?, ?)", (when, actor, action, target, call_id))

    def audit_since(self, since: float) -> list[tuple[float, str, str, str, str]]:
        """Audit rows from ``since`` on, oldest first: (time, actor, action, target, call)."""
        return [tuple(r) for r in self._read(
            "SELECT time, actor, action, target, call_id FROM audit WHERE time >= ? "
            "ORDER BY time, id", (since,))]

    def agent_states_at(self, when: float) -> list[AgentStateChanged]:
        """Each agent's last state change before ``when`` (Unix seconds), by agent id.

        What a report starting at ``when`` feeds :class:`acd.stats.AcdStats` first, so
        agents already logged in at ``when`` count from its first second. Agents whose
        last change was a logout are included (their state is ``logged_out``).
        """
        cols = ", ".join(_AGENT_STATE_COLUMNS)
        rows = self._read(
            f"SELECT {cols} FROM (SELECT {cols}, row_number() OVER "
            "(PARTITION BY agent ORDER BY time DESC, id DESC) AS n "
            "FROM agent_states WHERE time < ?) WHERE n = 1 ORDER BY agent",
            (when,),
        )
        return [_agent_state(row) for row in rows]


_QUEUE_LOG_DATA = 5
_QUEUE_LOG_COLUMNS = ("time", "call_id", "queue", "agent", "event",
                      *(f"data{i}" for i in range(1, _QUEUE_LOG_DATA + 1)))
_AGENT_STATE_COLUMNS = ("time", "agent", "state", "previous", "reason", "call_id", "queue")


def _time_window(since: float | None, until: float | None) -> tuple[str, tuple[float, ...]]:
    conds: list[str] = []
    params: list[float] = []
    if since is not None:
        conds.append("time >= ?")
        params.append(since)
    if until is not None:
        conds.append("time < ?")
        params.append(until)
    return (" WHERE " + " AND ".join(conds) if conds else ""), tuple(params)


def _agent_state(row: tuple[Any, ...]) -> AgentStateChanged:
    at, agent, state, previous, reason, call_id, queue = row
    return AgentStateChanged(agent, state, previous, at, reason, call_id, queue)
