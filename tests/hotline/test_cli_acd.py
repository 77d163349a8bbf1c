"""``hotline queuelog export`` and ``hotline report``, run as subprocesses on a database
filled through :class:`hotline.storage.Storage`."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from acd.events import AcdEvent, AgentStateChanged, QueueEvent
from acd.stats import AGENT_STATES, QueueStats
from hotline.storage import DB_NAME, Storage

ROOT = Path(__file__).resolve().parents[2]
H8 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC).timestamp()  # 16:00 in Shanghai

# The engine's events on its loop clock (t = seconds after 08:00 UTC). billing:
#   c1 enters 10, 1001 rings, answers 25 (holdtime 15), caller hangs up 85 (calltime 60),
#      wrap-up 85-95
#   c2 enters 100, abandons 102 (short)
#   c3 enters 3700, answered 3730 (holdtime 30), agent hangs up 3790, wrap-up 3790-3800
#   1001 logs out at 3900
EVENTS: list[AcdEvent] = [
    AgentStateChanged("1001", "ready", "logged_out", 0),
    QueueEvent(0, "NONE", "billing", "1001", "ADDMEMBER"),
    QueueEvent(10, "c1", "billing", "NONE", "ENTERQUEUE", ("", "13900001234", "1")),
    AgentStateChanged("1001", "ringing", "ready", 10, "", "c1", "billing"),
    AgentStateChanged("1001", "on_call", "ringing", 25, "", "c1", "billing"),
    QueueEvent(25, "c1", "billing", "1001", "CONNECT", ("15", "c1", "15")),
    QueueEvent(85, "c1", "billing", "1001", "COMPLETECALLER", ("15", "60", "1")),
    AgentStateChanged("1001", "wrapup", "on_call", 85, "", "c1", "billing"),
    AgentStateChanged("1001", "ready", "wrapup", 95),
    QueueEvent(100, "c2", "billing", "NONE", "ENTERQUEUE", ("", "13900005678", "1")),
    QueueEvent(102, "c2", "billing", "NONE", "ABANDON", ("1", "1", "2")),
    QueueEvent(3700, "c3", "billing", "NONE", "ENTERQUEUE", ("", "", "1")),
    AgentStateChanged("1001", "ringing", "ready", 3700, "", "c3", "billing"),
    AgentStateChanged("1001", "on_call", "ringing", 3730, "", "c3", "billing"),
    QueueEvent(3730, "c3", "billing", "1001", "CONNECT", ("30", "c3", "30")),
    QueueEvent(3790, "c3", "billing", "1001", "COMPLETEAGENT", ("30", "60", "1")),
    AgentStateChanged("1001", "wrapup", "on_call", 3790, "", "c3", "billing"),
    AgentStateChanged("1001", "ready", "wrapup", 3800),
    AgentStateChanged("1001", "logged_out", "ready", 3900),
    QueueEvent(3900, "NONE", "billing", "1001", "REMOVEMEMBER"),
]


def hotline(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TZ="UTC")
    return subprocess.run([sys.executable, "-m", "hotline", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site (Shanghai time, billing SL 30 s) whose database holds :data:`EVENTS`."""
    with Storage.open(tmp_path / "db") as db:
        db.append_acd_events(EVENTS[:9], wall_offset=H8)  # two batches, as the server
        db.append_acd_events(EVENTS[9:], wall_offset=H8)
    path = tmp_path / "site.toml"
    path.write_text('[server]\ndata_dir = "db"\ntimezone = "Asia/Shanghai"\n\n'
                    '[[queues]]\nname = "billing"\nservice_level = 30\nshort_abandon = 5\n')
    return path


def test_queuelog_export_prints_asterisk_lines(site: Path) -> None:
    proc = hotline("queuelog", "export", "--config", str(site))
    assert proc.returncode == 0, proc.stderr
    e = int(H8)
    assert proc.stdout.splitlines() == [
        f"{e}|NONE|billing|1001|ADDMEMBER|",
        f"{e + 10}|c1|billing|NONE|ENTERQUEUE||13900001234|1",
        f"{e + 25}|c1|billing|1001|CONNECT|15|c1|15",
        f"{e + 85}|c1|billing|1001|COMPLETECALLER|15|60|1",
        f"{e + 100}|c2|billing|NONE|ENTERQUEUE||13900005678|1",
        f"{e + 102}|c2|billing|NONE|ABANDON|1|1|2",
        f"{e + 3700}|c3|billing|NONE|ENTERQUEUE|||1",
        f"{e + 3730}|c3|billing|1001|CONNECT|30|c3|30",
        f"{e + 3790}|c3|billing|1001|COMPLETEAGENT|30|60|1",
        f"{e + 3900}|NONE|billing|1001|REMOVEMEMBER|",
    ]
    # Dates without an offset are the site's time (Shanghai, UTC+8): 16:01:40 = 08:01:40Z.
    proc = hotline("queuelog", "export", "--config", str(site),
                   "--since", "2024-05-01T16:00:10", "--until", "2024-05-01T16:01:42")
    assert proc.returncode == 0, proc.stderr
    assert [line.split("|")[4] for line in proc.stdout.splitlines()] == [
        "ENTERQUEUE", "CONNECT", "COMPLETECALLER", "ENTERQUEUE"]
    # --data-dir without a config: the same lines.
    proc = hotline("queuelog", "export", "--data-dir", str(site.parent / "db"),
                   "--since", "2024-05-01T09:00+00:00")
    assert [line.split("|")[1] for line in proc.stdout.splitlines()] == ["c3", "c3", "c3",
                                                                         "NONE"]


def test_report_csv_per_hour(site: Path) -> None:
    proc = hotline("report", "--config", str(site), "--interval", "hour", "--csv",
                   "--since", "2024-05-01T16:00", "--until", "2024-05-01T18:00")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    assert rows[0] == list(QueueStats("", 0, 0, 0, 0).to_json())
    assert rows[0][:5] == ["queue", "start", "end", "service_level", "short_abandon"]
    first, second = (dict(zip(rows[0], r, strict=True)) for r in rows[1:])
    assert len(rows) == 3
    assert (first["start"], first["end"]) == ("2024-05-01T16:00:00+08:00",
                                              "2024-05-01T17:00:00+08:00")
    # 16:00: c1 answered after 15 s (within 30), c2 abandoned after 2 s (short):
    # SL = 1 / (2 - 1), SL2 = 1 / 2; AHT = 60 talk + 10 wrap-up.
    assert (first["service_level"], first["offered"], first["answered"]) == ("30.0", "2", "1")
    assert (first["abandoned"], first["short_abandoned"]) == ("1", "1")
    assert (first["sl"], first["sl2"], first["asa"], first["aht"]) == ("1.0", "0.5", "15.0",
                                                                       "70.0")
    # 17:00: c3 answered after 30 s, which is within this site's 30 s.
    assert (second["offered"], second["answered_in_sl"], second["sl"]) == ("1", "1", "1.0")
    assert second["abandon_rate"] == "0.0" and second["avg_abandon_wait"] == ""


def test_report_without_config_uses_default_thresholds(site: Path) -> None:
    proc = hotline("report", "--data-dir", str(site.parent / "db"), "--csv",
                   "--since", "2024-05-01T09:00+00:00")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    row = dict(zip(rows[0], rows[1], strict=True))
    # SL 20 s by default: c3's 30 s wait misses it.
    assert (row["service_level"], row["offered"], row["answered_in_sl"], row["sl"]) == (
        "20.0", "1", "0", "0.0")
    # The period runs from --since to the last event.
    assert row["start"] == "2024-05-01T09:00:00+00:00"
    assert row["end"].startswith("2024-05-01T09:05:00")


def test_report_text_and_agents(site: Path) -> None:
    proc = hotline("report", "--config", str(site), "--interval", "day")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "queue billing (service level 30 s, short abandon 5 s)"
    assert lines[1].split() == ["interval", "offered", "answered", "in", "SL", "abandoned",
                                "short", "other", "waiting", "SL", "SL2", "ASA", "AHT",
                                "abandon"]
    # Everything happened on 1 May in Shanghai: one day row.
    assert lines[2].split() == ["2024-05-01", "00:00", "-", "2024-05-02", "00:00", "3", "2",
                                "2", "1", "1", "0", "0", "100.0%", "66.7%", "22.5", "70.0",
                                "33.3%"]

    proc = hotline("report", "--config", str(site), "--agents", "--csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    assert rows[0] == ["agent", "start", "end", "answered", "handled", "transferred",
                       "ring_no_answer", "talk", "hold", "wrapup",
                       *(f"time_{s}" for s in AGENT_STATES),
                       "logged_in", "staffed", "busy", "occupancy", "aht"]
    row = dict(zip(rows[0], rows[1], strict=True))
    # Logged in 0-3900; ringing 15 + 30, on call 60 + 60, wrap-up 10 + 10, ready the rest.
    assert (row["agent"], row["answered"], row["handled"]) == ("1001", "2", "2")
    assert (row["time_ringing"], row["time_on_call"], row["time_wrapup"]) == (
        "45.0", "120.0", "20.0")
    assert (row["time_ready"], row["logged_in"], row["busy"]) == ("3715.0", "3900.0", "185.0")
    assert float(row["occupancy"]) == 185 / 3900


def test_report_errors_and_empty_database(tmp_path: Path) -> None:
    proc = hotline("report", "--data-dir", str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr == (
        f"hotline: {tmp_path / DB_NAME}: no database here (check --data-dir or server.data_dir)\n"
    )
    proc = hotline("queuelog", "export", "--data-dir", str(tmp_path))
    assert proc.returncode == 1 and not (tmp_path / DB_NAME).exists()
    Storage.open(tmp_path).close()
    proc = hotline("report", "--data-dir", str(tmp_path), "--csv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [",".join(QueueStats("", 0, 0, 0, 0).to_json())]
    proc = hotline("queuelog", "export", "--data-dir", str(tmp_path))
    assert (proc.returncode, proc.stdout) == (0, "")
    proc = hotline("report", "--data-dir", str(tmp_path), "--since", "2024-05-02",
                   "--until", "2024-05-01")
    assert proc.returncode == 2 and proc.stderr == "hotline: --until must be after --since\n"
    proc = hotline("report", "--interval", "week")
    assert proc.returncode == 2 and "invalid choice: 'week'" in proc.stderr
    proc = hotline("queuelog", "export", "--until", "soon")
    assert proc.returncode == 2 and "expected a date such as 2024-05-01" in proc.stderr
