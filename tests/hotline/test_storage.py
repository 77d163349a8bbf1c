"""hotline.storage: migrations, durability settings, registrations, CDRs, auth and bans."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from hotline.migrations import LATEST, MIGRATIONS
from hotline.storage import DB_NAME, Ban, Registration, Storage, StorageError

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Storage]:
    storage = Storage.open(tmp_path)
    yield storage
    storage.close()


def reg(contact: str = "sip:1001@192.0.2.5:5062", **kw: object) -> Registration:
    fields: dict[str, object] = dict(
        aor="sip:1001@hotline",
        contact=contact,
        expires_at=1000.0,
        q=1.0,
        call_id="c1",
        cseq=1,
        transport="udp",
        source_ip="192.0.2.5",
        source_port=5062,
        user_agent="Linphone/5",
    )
    fields.update(kw)
    return Registration(**fields)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- open, migrate


def test_open_creates_a_migrated_wal_database(tmp_path: Path) -> None:
    with Storage.open(tmp_path / "new" / "dir") as storage:
        assert storage.path == tmp_path / "new" / "dir" / DB_NAME
        assert storage.schema_version == LATEST == len(MIGRATIONS)
    conn = sqlite3.connect(tmp_path / "new" / "dir" / DB_NAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"registrations", "cdr", "auth_events", "bans"} <= tables
    conn.close()


def test_connection_pragmas(db: Storage) -> None:
    conn = db._conn
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    db.finish_cdr(db.insert_cdr("c", "caller", T0), T0, "failed")
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # back to NORMAL after FULL


def test_reopen_keeps_data_and_version(tmp_path: Path) -> None:
    with Storage.open(tmp_path) as s:
        s.save_registration(reg())
    with Storage.open(tmp_path) as s:
        assert s.schema_version == LATEST
        assert s.load_registrations(now=0) == [reg()]


def test_refuses_a_newer_database(tmp_path: Path) -> None:
    Storage.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.close()
    with pytest.raises(StorageError) as info:
        Storage.open(tmp_path)
    assert str(info.value) == (
        f"{tmp_path / DB_NAME}: schema version {LATEST + 1} is newer than this hotline "
        f"understands ({LATEST}); run a newer hotline or restore a backup"
    )


def test_refuses_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError) as info:
        Storage.open(tmp_path)
    assert str(info.value) == (
        f"{tmp_path / DB_NAME}: not a usable SQLite database (file is not a database)"
    )


def test_create_false_does_not_create(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as info:
        Storage.open(tmp_path, create=False)
    assert "no database here" in str(info.value)
    assert not (tmp_path / DB_NAME).exists()


def test_failed_migration_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A migration that fails half-way leaves no table behind and the version unchanged."""
    from hotline import migrations, storage

    broken = migrations.Migration(
        1, "broken", "CREATE TABLE a (x INTEGER);\nCREATE TABLE a (y INTEGER);\n"
    )
    monkeypatch.setattr(storage, "MIGRATIONS", (broken,))
    with pytest.raises(StorageError) as info:
        Storage.open(tmp_path)
    assert str(info.value) == (
        f"{tmp_path / DB_NAME}: migration 1 (broken) failed: table a already exists; "
        "the database was left at version 0"
    )
    conn = sqlite3.connect(tmp_path / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    conn.close()


def test_migrations_are_numbered_in_order() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))


# --------------------------------------------------------------------------- registrations


def test_registrations_upsert_expire_delete(db: Storage) -> None:
    db.save_registration(reg())
    db.save_registration(reg(cseq=2, expires_at=2000.0))  # refresh replaces
    db.save_registration(reg("sip:1001@198.51.100.1:5060", q=0.5, transport="tcp"))
    db.save_registration(reg(aor="sip:1002@hotline", contact="sip:1002@x", expires_at=10.0))
    assert db.load_registrations(now=500) == [
        reg(cseq=2, expires_at=2000.0),
        reg("sip:1001@198.51.100.1:5060", q=0.5, transport="tcp"),
    ]
    assert db.load_registrations(now=5, aor="sip:1002@hotline")[0].contact == "sip:1002@x"
    assert [r.contact for r in db.load_registrations(now=1500)] == ["sip:1001@192.0.2.5:5062"]
    assert db.purge_registrations(now=1500) == 2
    assert db.delete_registration("sip:1001@hotline", "sip:nope") == 0
    assert db.delete_registration("sip:1001@hotline") == 1
    assert db.load_registrations(now=0) == []


def test_replace_registrations_is_atomic(db: Storage) -> None:
    db.save_registration(reg("sip:old@x"))
    db.save_registration(reg(aor="sip:1002@hotline", contact="sip:1002@x"))
    db.replace_registrations("sip:1001@hotline", [reg("sip:a@x"), reg("sip:b@x", q=0.1)])
    assert [(r.aor, r.contact) for r in db.load_registrations(now=0)] == [
        ("sip:1001@hotline", "sip:a@x"),
        ("sip:1001@hotline", "sip:b@x"),
        ("sip:1002@hotline", "sip:1002@x"),
    ]
    with pytest.raises(sqlite3.IntegrityError):  # duplicate contact: nothing changes
        db.replace_registrations("sip:1001@hotline", [reg("sip:c@x"), reg("sip:c@x")])
    assert len(db.load_registrations(now=0, aor="sip:1001@hotline")) == 2
    with pytest.raises(ValueError):
        db.replace_registrations("sip:1001@hotline", [reg(aor="sip:other@x")])
    db.replace_registrations("sip:1001@hotline", [])
    assert len(db.load_registrations(now=0)) == 1


# --------------------------------------------------------------------------- CDRs


def test_cdr_lifecycle(db: Storage) -> None:
    caller = db.insert_cdr(
        "call-1",
        "caller",
        T0,
        caller="13900001234",
        callee="95598",
        trunk="carrier",
        route="ivr:main",
    )
    agent = db.insert_cdr(
        "call-1",
        "agent",
        T0 + timedelta(seconds=20),
        parent_id=caller,
        direction="internal",
        caller="95598",
        callee="1001",
        queue="billing",
        agent="1001",
    )
    db.update_cdr(caller, answer_time=T0 + timedelta(seconds=1), queue="billing")
    db.update_cdr(agent, answer_time=T0 + timedelta(seconds=25), recording_id="rec-1")
    done = db.finish_cdr(agent, T0 + timedelta(seconds=90, milliseconds=900), "answered", "bye")
    assert done.billsec == 65 and done.disposition == "answered" and done.hangup_cause == "bye"
    assert done.recording_id == "rec-1" and done.parent_id == caller
    finished = db.finish_cdr(caller, T0 + timedelta(seconds=91), "answered", "caller-bye")
    assert finished.billsec == 90
    assert finished.start_time == T0 and finished.answer_time == T0 + timedelta(seconds=1)
    assert [c.leg for c in db.cdrs_for_call("call-1")] == ["caller", "agent"]


def test_unanswered_cdr_has_zero_billsec(db: Storage) -> None:
    cdr = db.insert_cdr("c2", "caller", T0, caller="1", callee="2")
    assert db.finish_cdr(cdr, T0 + timedelta(seconds=30), "abandoned", "487").billsec == 0


def test_cdr_batch_opens_and_finishes_rows(db: Storage) -> None:
    t0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    db.write_cdrs([
        ("insert", {"call_id": "c1", "leg": "caller", "start_time": t0, "answer_time": t0,
                    "caller": "139", "callee": "95598", "disposition": "answered"}),
        ("insert", {"call_id": "c2", "leg": "caller", "start_time": t0, "answer_time": t0}),
    ])
    assert [r.call_id for r in db.open_cdrs()] == ["c1", "c2"]
    # finish c1 and, in the same batch, a short call inserted and finished at once
    db.write_cdrs([
        ("finish", {"call_id": "c1", "leg": "caller", "end_time": t0 + timedelta(seconds=30),
                    "hangup_cause": "caller_bye", "billsec": 30}),
        ("insert", {"call_id": "c3", "leg": "caller", "start_time": t0,
                    "end_time": t0 + timedelta(seconds=1), "disposition": "failed"}),
    ])
    assert [r.call_id for r in db.open_cdrs()] == ["c2"]
    (c1,) = db.cdrs_for_call("c1")
    assert (c1.billsec, c1.hangup_cause, c1.disposition, c1.caller) == (
        30, "caller_bye", "answered", "139")
    # a finished row is never finished twice
    db.write_cdrs([("finish", {"call_id": "c1", "leg": "caller", "billsec": 99})])
    assert db.cdrs_for_call("c1")[0].billsec == 30
    with pytest.raises(ValueError):
        db.write_cdrs([("upsert", {"call_id": "x"})])
    with pytest.raises(ValueError):
        db.write_cdrs([("finish", {"call_id": "c2", "leg": "caller", "nope": 1})])


def test_cdr_errors(db: Storage) -> None:
    with pytest.raises(ValueError, match="cdr column 'id' cannot be set here"):
        db.insert_cdr("c", "caller", T0, id=5)
    with pytest.raises(ValueError, match="cdr column 'call_id' cannot be set here"):
        db.update_cdr(1, call_id="x")
    with pytest.raises(ValueError, match="timezone-aware"):
        db.insert_cdr("c", "caller", datetime(2024, 1, 1))
    with pytest.raises(KeyError):
        db.update_cdr(999, agent="1001")
    with pytest.raises(KeyError):
        db.finish_cdr(999, T0, "failed")
    with pytest.raises(sqlite3.IntegrityError):  # foreign keys are on
        db.insert_cdr("c", "agent", T0, parent_id=12345)


def test_cdrs_since_orders_and_filters_across_time_zones(db: Storage) -> None:
    beijing = timezone(timedelta(hours=8))
    ids = [
        db.insert_cdr("a", "caller", T0 + timedelta(hours=2)),
        db.insert_cdr("b", "caller", T0),
        db.insert_cdr("c", "caller", datetime(2024, 5, 1, 17, 0, tzinfo=beijing)),  # 09:00Z
    ]
    assert [c.id for c in db.cdrs_since(None)] == [ids[1], ids[2], ids[0]]
    assert [c.call_id for c in db.cdrs_since(T0 + timedelta(minutes=1))] == ["c", "a"]
    since_local = datetime(2024, 5, 1, 17, 0, tzinfo=beijing)
    assert [c.call_id for c in db.cdrs_since(since_local)] == ["c", "a"]
    assert db.cdrs_since(since_local)[0].start_time == since_local


# --------------------------------------------------------------------------- auth and bans


def test_auth_events_and_bans(db: Storage) -> None:
    for t, result in ((10.0, "bad-password"), (20.0, "ok"), (30.0, "unknown-user")):
        db.record_auth_event(t, "203.0.113.9", "1001", result)
    db.record_auth_event(25.0, "203.0.113.10", "1001", "bad-password", source="web")
    assert db.count_auth_failures("203.0.113.9", since=0) == 2
    assert db.count_auth_failures("203.0.113.9", since=15) == 1
    assert db.purge_auth_events(before=21) == 2
    assert db.count_auth_failures("203.0.113.9", since=0) == 1

    db.add_ban("203.0.113.9", now=30, until=630, reason="5 failures")
    assert db.is_banned("203.0.113.9", now=100) and not db.is_banned("203.0.113.9", now=630)
    db.add_ban("203.0.113.9", now=40, until=1000)
    assert db.active_bans(now=700) == [Ban("203.0.113.9", 40, 1000, "")]
    assert db.purge_bans(now=1000) == 1
    db.add_ban("198.51.100.1", now=0, until=50)
    assert db.remove_ban("198.51.100.1") and not db.remove_ban("198.51.100.1")


# --------------------------------------------------------------------------- durability


def test_committed_rows_survive_kill_9(tmp_path: Path) -> None:
    """A child commits, then SIGKILLs itself before closing; the rows are there."""
    child = textwrap.dedent(
        f"""
        import os, signal
        from datetime import datetime, timezone
        from hotline.storage import Storage
        s = Storage.open({str(tmp_path)!r})
        t = datetime(2024, 5, 1, tzinfo=timezone.utc)
        a = s.insert_cdr("k1", "caller", t, caller="1")
        s.update_cdr(a, agent="1001")
        b = s.insert_cdr("k2", "caller", t, caller="2")
        s.finish_cdr(b, t, "answered")
        s.record_auth_event(1.0, "192.0.2.1", "x", "bad-password")
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], cwd=ROOT, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / f"{DB_NAME}-wal").exists()  # not checkpointed: recovery from the WAL
    with Storage.open(tmp_path) as s:
        rows = s.cdrs_since(None)
        assert [(r.call_id, r.agent, r.disposition) for r in rows] == [
            ("k1", "1001", None),
            ("k2", None, "answered"),
        ]
        assert s.count_auth_failures("192.0.2.1", since=0) == 1


def test_usable_from_another_thread(db: Storage) -> None:
    import threading

    errors: list[BaseException] = []

    def work() -> None:
        try:
            db.record_auth_event(1.0, "192.0.2.1", "u", "ok")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert not errors
    assert os.path.exists(db.path)


def test_insert_cdrs_writes_a_batch_atomically(tmp_path: Path) -> None:
    start = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    with Storage.open(tmp_path) as db:
        db.insert_cdrs([
            {"call_id": f"c{i}", "leg": "caller", "start_time": start, "billsec": i,
             "disposition": "answered"} for i in range(3)
        ])
        assert [(r.call_id, r.billsec) for r in db.cdrs_since(None)] == [
            ("c0", 0), ("c1", 1), ("c2", 2)]
        # One bad row (an unknown column) and nothing of the batch is written.
        with pytest.raises(ValueError):
            db.insert_cdrs([{"call_id": "c3", "leg": "caller", "start_time": start},
                            {"call_id": "c4", "leg": "caller", "start_time": start,
                             "colour": "red"}])
        assert len(db.cdrs_since(None)) == 3
