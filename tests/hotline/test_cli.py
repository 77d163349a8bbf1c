"""The ``hotline`` command, run as a subprocess (``python -m hotline ...``)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from hotline import __version__
from hotline.storage import CDR_COLUMNS, DB_NAME, Storage

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
FULL_ENV = {
    "UNICOM_PASSWORD": "unicom-secret",
    "AGENT_1001_PASSWORD": "li-na-secret",
    "BOSS_PASSWORD": "boss-secret",
}


def hotline(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, pre: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m hotline ARGS``; ``pre`` is Python run first in the same process."""
    base = {k: v for k, v in os.environ.items() if k not in FULL_ENV}
    base["PYTHONPATH"] = str(ROOT)
    base.update(env or {})
    if pre:
        code = f"import sys\n{pre}\nfrom hotline.cli import main\nsys.exit(main(sys.argv[1:]))"
        cmd = [sys.executable, "-c", code, *args]
    else:
        cmd = [sys.executable, "-m", "hotline", *args]
    return subprocess.run(cmd, env=base, cwd=cwd, capture_output=True, text=True, timeout=60)


# --------------------------------------------------------------------------- config check


def test_config_check_ok() -> None:
    proc = hotline("config", "check", "tests/data/site_full.toml", env=FULL_ENV)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "tests/data/site_full.toml: ok (4 SIP listeners, 2 trunks, 3 agents, 2 users, "
        "3 queues, 2 IVR menus, 9 routes)\n"
    )
    assert proc.stderr == ""


def test_config_check_bad_file() -> None:
    proc = hotline("config", "check", "tests/data/site_bad_strategy.toml")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (
        "tests/data/site_bad_strategy.toml: queues[1].strategy: expected one of ring-all, "
        "longest-idle, round-robin, fewest-calls, least-talk-time, skills, random, linear, "
        'sticky (got "fastest")\n'
    )


def test_config_check_several_files_and_missing_secret() -> None:
    proc = hotline(
        "config",
        "check",
        "tests/data/site_minimal.toml",
        "tests/data/site_full.toml",
        env={"UNICOM_PASSWORD": "x", "BOSS_PASSWORD": "y"},
    )
    assert proc.returncode == 2
    assert proc.stdout.startswith("tests/data/site_minimal.toml: ok (2 SIP listeners, ")
    assert proc.stderr == (
        "tests/data/site_full.toml: agents[0].password: expected environment variable "
        "AGENT_1001_PASSWORD to be set (got AGENT_1001_PASSWORD unset)\n"
    )
    proc = hotline("config", "check", "--no-secrets", "tests/data/site_full.toml")
    assert proc.returncode == 0, proc.stderr


def test_config_check_prints_warnings(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text('[[agents]]\nid = "7"\nname = "A"\npassword = "short"\n')
    proc = hotline("config", "check", str(site))
    assert proc.returncode == 0
    assert proc.stderr == (
        f"{site}: warning: agents[0].password: shorter than 8 characters; "
        "SIP passwords are brute-forced on the internet\n"
    )


def test_usage_errors_exit_2() -> None:
    assert hotline("config").returncode == 2
    assert hotline("serve", "--sip-port", "99999").returncode == 2
    proc = hotline("cdr", "export")
    assert proc.returncode == 2
    assert "one of the arguments --csv --jsonl is required" in proc.stderr
    proc = hotline("--version")
    assert proc.returncode == 0 and proc.stdout == f"hotline {__version__}\n"


# --------------------------------------------------------------------------- serve


def test_serve_demo_prints_passwords_once(tmp_path: Path) -> None:
    """Without hotline.server the command fails clearly, after preparing the demo site."""
    no_server = "sys.modules['hotline.server'] = None"
    args = ("serve", "--data-dir", str(tmp_path / "d"), "--sip-port", "15060")
    first = hotline(*args, pre=no_server)
    assert first.returncode == 1
    assert first.stderr.endswith(
        "hotline: the server is not installed (hotline/server.py is missing)\n"
    )
    saved = json.loads((tmp_path / "d" / "demo-passwords.json").read_text())
    assert first.stdout.splitlines() == [
        f"Demo site. Passwords (shown once, kept in {tmp_path / 'd' / 'demo-passwords.json'}):",
        *(f"  {login:<8} {pw}" for login, pw in saved.items()),
    ]
    second = hotline(*args, pre=no_server)
    assert second.returncode == 1 and second.stdout == ""
    assert json.loads((tmp_path / "d" / "demo-passwords.json").read_text()) == saved


def test_serve_bad_config_exits_2(tmp_path: Path) -> None:
    proc = hotline("serve", "--config", "tests/data/site_bad_cidr.toml")
    assert proc.returncode == 2
    assert proc.stderr.startswith("tests/data/site_bad_cidr.toml: trunks[0].allow[1]: ")


# --------------------------------------------------------------------------- dtmf


def dtmf_wav(path: Path, digits: str, rate: int = 8000) -> None:
    freqs = {
        "1": (697, 1209),
        "2": (697, 1336),
        "3": (697, 1477),
        "4": (770, 1209),
        "5": (770, 1336),
        "6": (770, 1477),
        "7": (852, 1209),
        "8": (852, 1336),
        "9": (852, 1477),
        "*": (941, 1209),
        "0": (941, 1336),
        "#": (941, 1477),
    }
    t = np.arange(int(0.1 * rate)) / rate
    gap = np.zeros(int(0.1 * rate))
    parts = [gap]
    for d in digits:
        lo, hi = freqs[d]
        parts += [0.3 * (np.sin(2 * np.pi * lo * t) + np.sin(2 * np.pi * hi * t)), gap]
    pcm = (np.concatenate(parts) * 16000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def test_dtmf_reports_a_missing_detector(tmp_path: Path) -> None:
    proc = hotline("dtmf", str(tmp_path / "x.wav"), pre="sys.modules['media.dtmf_file'] = None")
    assert proc.returncode == 1
    assert proc.stderr == (
        "hotline: the DTMF file detector is not installed (media/dtmf_file.py is missing)\n"
    )


def test_dtmf_files(tmp_path: Path) -> None:
    pytest.importorskip("media.dtmf_file", reason="media/dtmf_file.py not written yet")
    dtmf_wav(tmp_path / "a.wav", "1234")
    dtmf_wav(tmp_path / "b.wav", "*0#")
    proc = hotline("dtmf", str(tmp_path / "a.wav"), str(tmp_path / "b.wav"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{tmp_path / 'a.wav'}: 1234\n{tmp_path / 'b.wav'}: *0#\n"
    proc = hotline("dtmf", str(tmp_path / "missing.wav"))
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"{tmp_path / 'missing.wav'}: error: ")


# --------------------------------------------------------------------------- cdr export


def test_cdr_export_csv_and_jsonl(tmp_path: Path) -> None:
    t0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    with Storage.open(tmp_path) as db:
        old = db.insert_cdr("old", "caller", t0 - timedelta(days=2), caller="1")
        db.finish_cdr(old, t0 - timedelta(days=2), "failed", "503")
        a = db.insert_cdr(
            "c1",
            "caller",
            t0,
            caller="13900001234",
            callee="95598",
            trunk="carrier",
            route="ivr:main",
            answer_time=t0 + timedelta(seconds=2),
        )
        b = db.insert_cdr(
            "c1",
            "agent",
            t0 + timedelta(seconds=10),
            parent_id=a,
            callee="1001",
            agent="1001",
            queue="billing",
            answer_time=t0 + timedelta(seconds=12),
        )
        db.finish_cdr(b, t0 + timedelta(seconds=72), "answered", "agent-bye")
        db.finish_cdr(a, t0 + timedelta(seconds=72), "answered", "agent-bye")

    proc = hotline(
        "cdr", "export", "--csv", "--data-dir", str(tmp_path), "--since", "2024-05-01T00:00+00:00"
    )
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    assert rows[0] == list(CDR_COLUMNS)
    assert [r[:3] for r in rows[1:]] == [[str(a), "c1", "caller"], [str(b), "c1", "agent"]]
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["start_time"] == "2024-05-01T08:00:00.000+00:00"
    assert first["billsec"] == "70" and first["route"] == "ivr:main" and first["queue"] == ""
    second = dict(zip(rows[0], rows[2], strict=True))
    assert (second["parent_id"], second["agent"], second["billsec"]) == (str(a), "1001", "60")

    proc = hotline("cdr", "export", "--jsonl", "--data-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["call_id"] for r in records] == ["old", "c1", "c1"]
    assert records[0]["hangup_cause"] == "503" and records[0]["answer_time"] is None
    assert records[1]["start_time"] == "2024-05-01T08:00:00.000+00:00"


def test_cdr_export_takes_data_dir_from_config(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text('[server]\ndata_dir = "db"\n')
    with Storage.open(tmp_path / "db") as db:
        db.insert_cdr("x", "caller", datetime(2024, 1, 1, tzinfo=UTC))
    proc = hotline("cdr", "export", "--csv", "--config", str(site))
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2


def test_cdr_export_without_a_database(tmp_path: Path) -> None:
    proc = hotline("cdr", "export", "--csv", "--data-dir", str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr == (
        f"hotline: {tmp_path / DB_NAME}: no database here (check --data-dir or server.data_dir)\n"
    )
    assert not (tmp_path / DB_NAME).exists()
    proc = hotline("cdr", "export", "--csv", "--since", "yesterday")
    assert proc.returncode == 2 and "expected a date such as 2024-05-01" in proc.stderr
