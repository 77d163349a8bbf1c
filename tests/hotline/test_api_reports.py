"""``GET /api/reports`` against ``hotline report``: a scripted day of ACD events written
through :class:`hotline.storage.Storage` as the server writes them, the API served by
aiohttp's test server (with and without a running ACD), the CLI run as a subprocess on
the same database.

The site is ``test_api_acd``'s (billing: 1001, 1002; water: 1003; general: everyone;
``boss`` supervises team tv = 1001, 1002) in Shanghai time, with billing's service level
at 30 s and short abandons under 3 s, so the thresholds have to reach both sides.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestServer
from test_api_acd import Clock, Harness, call
from test_api_acd import site_config as acd_site_config
from test_cli_acd import ROOT

from acd.events import AcdEvent, AgentStateChanged, QueueEvent
from acd.stats import AGENT_STATES, QueueStats
from hotline.acdctl import AcdService
from hotline.api.app import create_app
from hotline.config import QueueConfig, SiteConfig
from hotline.storage import Storage

TZ = ZoneInfo("Asia/Shanghai")
#: 09:00 in Shanghai on the scripted day: the events' clock starts here.
B = datetime(2024, 5, 1, 9, 0, tzinfo=TZ).timestamp()

A, Q = AgentStateChanged, QueueEvent
# t = seconds after 09:00 local.
#   09:01 billing c1: 1001 answers after 10 s, talks 120 s, wrap-up 10 s
#   09:05 billing c2: abandons after 2 s (short: under 3 s)
#   09:06 billing c3: 1002 does not answer (ring-no-answer), 1001 answers after 40 s,
#         holds 30 s, talks 200 s in all, wrap-up 10 s
#   10:01 water w1: 1003 answers after 12 s, transfers after 88 s
#   10:05 water w2: times out after 300 s
#   11:01 general g1: leaves with key 1 after 20 s
#   11:03 billing c4: still waiting when the log ends
DAY: list[AcdEvent] = [
    A("1001", "ready", "logged_out", 0), A("1002", "ready", "logged_out", 0),
    A("1003", "ready", "logged_out", 0),
    Q(60, "c1", "billing", "NONE", "ENTERQUEUE", ("", "13900000001", "1")),
    A("1001", "ringing", "ready", 60, "", "c1", "billing"),
    A("1001", "on_call", "ringing", 70, "", "c1", "billing"),
    Q(70, "c1", "billing", "1001", "CONNECT", ("10", "c1", "10")),
    Q(190, "c1", "billing", "1001", "COMPLETECALLER", ("10", "120", "1")),
    A("1001", "wrapup", "on_call", 190, "", "c1", "billing"),
    A("1001", "ready", "wrapup", 200),
    Q(300, "c2", "billing", "NONE", "ENTERQUEUE", ("", "13900000002", "1")),
    Q(302, "c2", "billing", "NONE", "ABANDON", ("1", "1", "2")),
    Q(400, "c3", "billing", "NONE", "ENTERQUEUE", ("", "13900000003", "1")),
    A("1002", "ringing", "ready", 400, "", "c3", "billing"),
    Q(415, "c3", "billing", "1002", "RINGNOANSWER", ("15000",)),
    A("1002", "not_ready", "ringing", 415, "ring-no-answer"),
    A("1001", "ringing", "ready", 415, "", "c3", "billing"),
    A("1001", "on_call", "ringing", 440, "", "c3", "billing"),
    Q(440, "c3", "billing", "1001", "CONNECT", ("40", "c3", "25")),
    A("1001", "on_hold", "on_call", 500, "", "c3", "billing"),
    A("1001", "on_call", "on_hold", 530, "", "c3", "billing"),
    Q(640, "c3", "billing", "1001", "COMPLETEAGENT", ("40", "200", "1")),
    A("1001", "wrapup", "on_call", 640, "", "c3", "billing"),
    A("1001", "ready", "wrapup", 650),
    A("1002", "ready", "not_ready", 1000),
    Q(3660, "w1", "water", "NONE", "ENTERQUEUE", ("", "13900000004", "1")),
    A("1003", "ringing", "ready", 3660, "", "w1", "water"),
    A("1003", "on_call", "ringing", 3672, "", "w1", "water"),
    Q(3672, "w1", "water", "1003", "CONNECT", ("12", "w1", "12")),
    Q(3760, "w1", "water", "1003", "TRANSFER", ("2000", "default", "12", "88", "1")),
    A("1003", "wrapup", "on_call", 3760, "", "w1", "water"),
    A("1003", "ready", "wrapup", 3760),
    Q(3900, "w2", "water", "NONE", "ENTERQUEUE", ("", "13900000005", "1")),
    Q(4200, "w2", "water", "NONE", "EXITWITHTIMEOUT", ("1", "1", "300")),
    Q(7260, "g1", "general", "NONE", "ENTERQUEUE", ("", "13900000006", "1")),
    Q(7280, "g1", "general", "NONE", "EXITWITHKEY", ("1", "1", "1", "20")),
    Q(7380, "c4", "billing", "NONE", "ENTERQUEUE", ("", "13900000007", "1")),
    A("1003", "logged_out", "ready", 7500),
]  # fmt: skip
SITE_TOML = """\
[server]
data_dir = "data"
timezone = "Asia/Shanghai"

[[queues]]
name = "billing"
service_level = 30
short_abandon = 3

[[queues]]
name = "water"

[[queues]]
name = "general"
"""


def site_config(data_dir: Path) -> SiteConfig:
    """``test_api_acd``'s site in Shanghai time, billing with SL 30 s / short 3 s."""
    base = acd_site_config(data_dir)
    queues = tuple(dataclasses.replace(q, service_level=30, short_abandon=3)
                   if q.name == "billing" else q for q in base.queues)
    assert [q.name for q in queues] == ["billing", "water", "general"]
    assert all(isinstance(q, QueueConfig) for q in queues)
    return dataclasses.replace(base, queues=queues, server=dataclasses.replace(
        base.server, timezone="Asia/Shanghai"))


class SiteHarness(Harness):
    """``test_api_acd``'s harness on another site (optionally without an ACD)."""

    def __init__(self, config: SiteConfig, *, with_acd: bool = True) -> None:
        self.config = config
        self.clock = Clock()
        self.skew = 0.0
        self.acd = (AcdService(config, self.acd_clock, time.time() - time.monotonic())
                    if with_acd else None)
        self.app = create_app(config, clock=self.clock, acd=self.acd)
        self.server = TestServer(self.app)
        self._sessions = []


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """site.toml (for the CLI) next to ``data/`` holding :data:`DAY`."""
    root = tmp_path_factory.mktemp("reports")
    with Storage.open(root / "data") as db:  # in batches, as the server writes them
        db.append_acd_events(DAY[:12], wall_offset=B)
        db.append_acd_events(DAY[12:], wall_offset=B)
    (root / "site.toml").write_text(SITE_TOML)
    return root


def run(site: Path, body: Callable[[SiteHarness], Awaitable[None]], **kw: Any) -> None:
    async def main() -> None:
        async with SiteHarness(site_config(site / "data"), **kw) as h:
            await body(h)
    asyncio.run(main())


@dataclasses.dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    text: str

    @property
    def data(self) -> Any:
        assert self.headers["Content-Type"].startswith("application/json"), self.headers
        return json.loads(self.text)


def get(site: Path, user: str, path: str, **kw: Any) -> Reply:
    """``GET path`` as ``user``."""
    out: list[Reply] = []

    async def body(h: SiteHarness) -> None:
        s = await h.session(user)
        async with s.get(path) as r:
            out.append(Reply(r.status, dict(r.headers), await r.text()))
    run(site, body, **kw)
    return out[0]


def cli_csv(site: Path, *args: str) -> str:
    """What ``hotline report --config site.toml --csv ARGS`` prints, CRLFs kept."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TZ="UTC")
    proc = subprocess.run([sys.executable, "-m", "hotline", "report", "--config",
                           str(site / "site.toml"), "--csv", *args],
                          env=env, cwd=ROOT, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode()


def same(cli_cell: str, api_value: Any, column: str) -> bool:
    """A ``hotline report --csv`` cell and the API's JSON value say the same."""
    if api_value is None:
        return cli_cell == ""
    if column in ("start", "end"):
        return datetime.fromisoformat(cli_cell) == datetime.fromisoformat(api_value)
    if isinstance(api_value, str):
        return cli_cell == api_value
    return float(cli_cell) == float(api_value)


# --------------------------------------------------------------------------- figures


@pytest.mark.parametrize("with_acd", [True, False])
def test_json_has_the_figures_hotline_report_prints(site: Path, with_acd: bool) -> None:
    expected = list(csv.reader(io.StringIO(cli_csv(
        site, "--interval", "hour", "--since", "2024-05-01", "--until", "2024-05-02"))))
    r = get(site, "admin", "/api/reports?interval=hour&date=2024-05-01", with_acd=with_acd)
    assert r.status == 200, r.text
    data = r.data
    assert data["interval"] == "hour" and data["agents"] is False
    assert data["since"] == "2024-04-30T16:00:00.000+00:00"  # local midnight
    assert data["until"] == "2024-05-01T16:00:00.000+00:00"
    head, rows = expected[0], expected[1:]
    assert head == list(QueueStats("", 0, 0, 0, 0).to_json())
    assert len(rows) == len(data["rows"]) == 24 * 3  # every hour, every configured queue
    for cli_row, api_row in zip(rows, data["rows"], strict=True):
        assert list(api_row) == head
        for column, cell in zip(head, cli_row, strict=True):
            assert same(cell, api_row[column], column), (column, cell, api_row)
    # The figures are the scripted day's, not zeros that happen to agree.
    by = {(r["queue"], r["start"]): r for r in data["rows"]}
    nine = by["billing", "2024-05-01T01:00:00.000+00:00"]  # 09:00 local
    assert (nine["offered"], nine["answered"], nine["abandoned"]) == (3, 2, 1)
    assert (nine["answered_in_sl"], nine["short_abandoned"], nine["ring_no_answer"]) == (
        1, 1, 1)
    assert (nine["sl"], nine["asa"]) == (0.5, 25.0)  # c1 within 30 s, c3 not; c2 left out
    assert nine["aht"] == (130 + 210) / 2  # calltime + wrap-up
    assert nine["service_level"] == 30 and nine["short_abandon"] == 3
    ten = by["water", "2024-05-01T02:00:00.000+00:00"]
    assert (ten["offered"], ten["answered"], ten["timed_out"], ten["transferred"]) == (
        2, 1, 1, 1)
    eleven = by["general", "2024-05-01T03:00:00.000+00:00"]
    assert (eleven["offered"], eleven["exited_key"], eleven["sl"]) == (1, 1, 0.0)
    assert by["billing", "2024-05-01T03:00:00.000+00:00"]["waiting"] == 1
    assert by["billing", "2024-05-01T05:00:00.000+00:00"]["sl"] is None  # nothing offered


def test_one_row_for_the_period_and_15_minute_rows(site: Path) -> None:
    expected = list(csv.reader(io.StringIO(cli_csv(
        site, "--since", "2024-05-01T09:00", "--until", "2024-05-01T12:00"))))
    r = get(site, "chief", "/api/reports?since=2024-05-01T09:00&until=2024-05-01T12:00")
    assert r.status == 200 and r.data["interval"] is None
    rows = r.data["rows"]
    assert [row["queue"] for row in rows] == ["billing", "general", "water"]
    for cli_row, api_row in zip(expected[1:], rows, strict=True):
        for column, cell in zip(expected[0], cli_row, strict=True):
            assert same(cell, api_row[column], column), (column, cell, api_row)
    assert rows[0]["offered"] == 4
    r = get(site, "admin", "/api/reports?interval=15m&date=2024-05-01")
    assert r.status == 200 and len(r.data["rows"]) == 96 * 3
    assert sum(row["offered"] for row in r.data["rows"]) == 7


def test_csv_is_what_hotline_report_csv_prints(site: Path) -> None:
    expected = cli_csv(site, "--interval", "hour", "--since", "2024-05-01",
                       "--until", "2024-05-02")
    r = get(site, "admin", "/api/reports?interval=hour&date=2024-05-01&format=csv")
    assert r.status == 200 and r.text == expected
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.headers["Content-Disposition"] == 'attachment; filename="report.csv"'
    lines = r.text.splitlines()
    assert lines[0].split(",")[:6] == ["queue", "start", "end", "service_level",
                                       "short_abandon", "offered"]
    assert lines[1].startswith("billing,2024-05-01T00:00:00+08:00,")
    # Accept: text/csv asks for it too, as for /api/cdrs.
    async def by_accept(h: SiteHarness) -> None:
        s = await h.session("admin")
        async with s.get("/api/reports?interval=hour&date=2024-05-01",
                         headers={"Accept": "text/csv"}) as resp:
            assert resp.status == 200 and await resp.text() == expected
    run(site, by_accept)
    # Per agent, header included, as --agents --csv.
    expected = cli_csv(site, "--agents", "--interval", "day", "--since", "2024-05-01",
                       "--until", "2024-05-02")
    r = get(site, "admin", "/api/reports?interval=day&date=2024-05-01&agents=1&format=csv")
    assert r.status == 200 and r.text == expected
    assert r.headers["Content-Disposition"] == 'attachment; filename="report-agents.csv"'
    head = r.text.splitlines()[0].split(",")
    assert head[:3] == ["agent", "start", "end"]
    assert head[10:16] == [f"time_{s}" for s in AGENT_STATES]


def test_agent_rows(site: Path) -> None:
    r = get(site, "admin", "/api/reports?date=2024-05-01&agents=1")
    assert r.status == 200 and r.data["agents"] is True
    rows = {row["agent"]: row for row in r.data["rows"]}
    assert sorted(rows) == ["1001", "1002", "1003"]
    one = rows["1001"]
    assert (one["answered"], one["handled"], one["state_time"]["on_hold"]) == (2, 2, 30.0)
    assert rows["1002"]["ring_no_answer"] == 1
    assert rows["1002"]["not_ready_time"] == {"ring-no-answer": 585.0}
    assert rows["1003"]["logged_in"] == 7500.0


# --------------------------------------------------------------------------- scope


@pytest.mark.parametrize("with_acd", [True, False])
@pytest.mark.parametrize(("user", "queues", "agents"), [
    ("admin", ["billing", "general", "water"], ["1001", "1002", "1003"]),
    ("chief", ["billing", "general", "water"], ["1001", "1002", "1003"]),
    ("boss", ["billing", "general"], ["1001", "1002"]),
])
def test_supervisors_see_their_teams_queues_and_agents(
        site: Path, with_acd: bool, user: str, queues: list[str], agents: list[str]) -> None:
    r = get(site, user, "/api/reports?date=2024-05-01", with_acd=with_acd)
    assert r.status == 200
    assert [row["queue"] for row in r.data["rows"]] == queues
    r = get(site, user, "/api/reports?date=2024-05-01&agents=1", with_acd=with_acd)
    assert [row["agent"] for row in r.data["rows"]] == agents
    r = get(site, user, "/api/reports?date=2024-05-01&format=csv", with_acd=with_acd)
    assert [line.split(",")[0] for line in r.text.splitlines()[1:]] == queues


@pytest.mark.parametrize("user", ["1001", "viewer"])
def test_agents_get_403(site: Path, user: str) -> None:
    r = get(site, user, "/api/reports?date=2024-05-01")
    assert (r.status, r.data) == (403, {"error": "reports are open to supervisors and admins"})


def test_a_session_is_needed(site: Path) -> None:
    async def body(h: SiteHarness) -> None:
        status, _ = await call(await h.session(), "GET", "/api/reports")
        assert status == 401
    run(site, body)


# --------------------------------------------------------------------------- period


def test_default_is_today_in_the_site_zone(site: Path) -> None:
    r = get(site, "admin", "/api/reports?interval=hour")
    assert r.status == 200
    today = datetime.now(TZ).date()
    midnight = datetime(today.year, today.month, today.day, tzinfo=TZ)
    assert datetime.fromisoformat(r.data["since"]) == midnight
    assert datetime.fromisoformat(r.data["until"]) == midnight + timedelta(days=1)
    assert len(r.data["rows"]) == 24 * 3
    assert all(row["offered"] == 0 for row in r.data["rows"])  # the scripted day is past
    # since alone: up to the end of today; one row for the period without interval.
    r = get(site, "admin", f"/api/reports?since={today - timedelta(days=2)}")
    assert r.status == 200
    assert datetime.fromisoformat(r.data["since"]) == midnight - timedelta(days=2)
    assert datetime.fromisoformat(r.data["until"]) == midnight + timedelta(days=1)
    assert [row["queue"] for row in r.data["rows"]] == ["billing", "general", "water"]


@pytest.mark.parametrize(("query", "error"), [
    ("interval=week", "interval: expected one of 15m, hour, day (got 'week')"),
    ("date=yesterday", "date: expected a date such as 2024-05-01 (got 'yesterday')"),
    ("date=2024-05-01&since=2024-05-01", "date: give either date or since/until"),
    ("since=2024-05-02&until=2024-05-01", "until: must be after since"),
    ("since=2023-01-01&until=2024-05-01", "until: at most 366 days after since"),
    ("since=2024-01-01&until=2024-05-01&interval=15m",
     "interval: more than 9000 intervals of 15m (ask for a shorter period or a longer "
     "interval)"),
    ("agents=yes", "agents: expected 1 or 0 (got 'yes')"),
    ("format=xml", "format: expected json or csv (got 'xml')"),
    ("since=soon", "since: expected a date such as 2024-05-01 or 2024-05-01T08:00 "
                   "(got 'soon')"),
])  # fmt: skip
def test_bad_parameters_are_400(site: Path, query: str, error: str) -> None:
    r = get(site, "admin", f"/api/reports?{query}")
    assert (r.status, r.data) == (400, {"error": error})
