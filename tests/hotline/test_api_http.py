"""hotline.api over real sockets: the aiohttp app on a free loopback port, a real
database and real recording files in tmp_path, and a stdlib HTTP client.

The site: agents 1001 and 1002 in team ``tv``, 1003 in team ``water``; users ``admin``,
``boss`` (supervisor of ``tv``), ``chief`` (supervisor, no teams = everyone) and
``viewer`` (a ``[[users]]`` entry with role agent). Recordings and CDRs are written with
:class:`recorder.index.RecordingIndex` and :class:`hotline.storage.Storage` as the
server writes them; CSV/JSON answers are compared with what ``hotline cdr export``
prints for the same database.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import os
import ssl
import subprocess
import sys
import threading
import wave
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hotline.api import ApiServer, server_metrics
from hotline.api.auth import COOKIE, SESSION_IDLE
from hotline.config import (
    Address,
    AgentConfig,
    SipConfig,
    SiteConfig,
    TlsConfig,
    UserConfig,
)
from hotline.config import Secret as S
from hotline.config import ServerConfig as Srv
from hotline.storage import Storage
from recorder.index import RecordingIndex
from recorder.naming import recordings_dir
from recorder.transcode import Transcoder

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)
PASSWORDS = {
    "1001": "pw-1001-secret", "1002": "pw-1002-secret", "1003": "pw-1003-secret",
    "admin": "admin-secret-1", "boss": "boss-secret-1", "chief": "chief-secret-1",
    "viewer": "viewer-secret-1",
}  # fmt: skip


# --------------------------------------------------------------------------- the site


@dataclass
class Site:
    config: SiteConfig
    data_dir: Path
    #: Recording ids by the names used in the tests.
    rec: dict[str, str]
    #: Absolute file path of each recording with a file.
    files: dict[str, Path]


def site_config(data_dir: Path, **server: Any) -> SiteConfig:
    agents = tuple(
        AgentConfig(id=aid, name=name, password=S(PASSWORDS[aid]), teams=teams)
        for aid, name, teams in (
            ("1001", "Li Na", ("tv",)), ("1002", "Wang Wei", ("tv",)),
            ("1003", "Zhang Min", ("water",)),
        )
    )  # fmt: skip
    users = (
        UserConfig("admin", S(PASSWORDS["admin"]), role="admin"),
        UserConfig("boss", S(PASSWORDS["boss"]), role="supervisor", teams=("tv",)),
        UserConfig("chief", S(PASSWORDS["chief"]), role="supervisor"),
        UserConfig("viewer", S(PASSWORDS["viewer"]), role="agent"),
    )
    return SiteConfig(
        source="<test>",
        server=Srv(http=Address("127.0.0.1", 0), data_dir=data_dir, **server),
        sip=SipConfig(max_failures=3, window=60, ban_seconds=120),
        agents=agents,
        users=users,
    )


def write_wav(path: Path, seconds: float, seed: int) -> None:
    """Stereo 8 kHz 16-bit audio as a worker writes it: tone left, noise right."""
    n = int(seconds * 8000)
    t = np.arange(n) / 8000
    left = 8000 * np.sin(2 * np.pi * 440 * t)
    right = np.random.default_rng(seed).normal(0, 3000, n)
    pcm = np.stack([left, right], axis=1).clip(-32768, 32767).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.tobytes())


def populate(data_dir: Path) -> tuple[dict[str, str], dict[str, Path]]:
    """Recordings and CDRs, written through the functions the server uses."""
    storage = Storage.open(data_dir)
    index = RecordingIndex(storage)
    rdir = recordings_dir(data_dir)
    rec: dict[str, str] = {}
    files: dict[str, Path] = {}
    plan = [
        # name, minutes after T0, call, caller, queue, agents, final state
        ("tv1", 0, "c-tv1@x", "13800000001", "billing", ["1001"], "done"),
        ("tv2", 5, "c-tv2@x", "13900000002", "repair", ["1002"], "opus"),
        ("water", 10, "c-water@x", "13800000003", "billing", ["1003"], "live"),
        ("ivr", 15, "c-ivr@x", "13700000004", None, [], "done"),
        ("moved", 20, "c-moved@x", "13600000005", "billing", ["1001", "1003"], "done"),
        ("gone", 25, "c-gone@x", "13500000006", "billing", ["1001"], "deleted"),
    ]
    transcoder = Transcoder(processes=False)
    for i, (name, minutes, call_id, caller, queue, agents, final) in enumerate(plan):
        start = T0 + timedelta(minutes=minutes)
        r = index.start(call_id, start, caller=caller, callee="95598", queue=queue,
                        agents=agents[:1])
        for agent in agents[1:]:
            index.add_agent(r.id, agent, start + timedelta(seconds=30))
        rec[name] = r.id
        path = rdir / r.path
        write_wav(path, 2.0 + i * 0.25, seed=i)
        if final == "live":
            files[name] = path
            continue
        r = index.finish(r.id, start + timedelta(seconds=60), 2.0 + i * 0.25)
        if final == "opus":
            r = asyncio.run(transcoder.transcode_recording(index, data_dir, r, "opus"))
        elif final == "deleted":
            path.unlink()
            index.mark_deleted(r.id)
            continue
        files[name] = rdir / r.path
    asyncio.run(transcoder.close())
    # CDRs, as HotlineServer writes them: open at answer, finished at hang-up.
    ops: list[tuple[str, dict[str, Any]]] = []
    for name, minutes, call_id, caller, queue, agents, _ in plan:
        start = T0 + timedelta(minutes=minutes)
        ops.append(("insert", {
            "call_id": call_id, "leg": "caller", "start_time": start,
            "direction": "inbound", "caller": caller, "callee": "95598",
            "trunk": "carrier", "route": f"queue:{queue}" if queue else "ivr:main",
            "answer_time": start + timedelta(seconds=2), "queue": queue,
            "agent": agents[-1] if agents else None, "disposition": "answered",
            "recording_id": rec[name],
        }))
        if name != "water":  # the live call's CDR stays open
            ops.append(("finish", {
                "call_id": call_id, "leg": "caller", "end_time": start + timedelta(seconds=62),
                "hangup_cause": "caller-bye", "billsec": 60,
            }))
    ops.append(("insert", {  # a failed attempt: no agent, a cause CSV must quote
        "call_id": "c-busy@x", "leg": "caller", "start_time": T0 + timedelta(minutes=30),
        "direction": "inbound", "caller": "13400000007", "callee": "95598",
        "trunk": "carrier", "route": "agent:1002", "disposition": "busy",
        "hangup_cause": 'sip:486 "Busy, Here"', "end_time": T0 + timedelta(minutes=30),
    }))
    ops.append(("insert", {
        "call_id": "c-busy@x", "leg": "agent", "start_time": T0 + timedelta(minutes=30),
        "direction": "internal", "caller": "13400000007", "callee": "1002",
        "agent": "1002", "disposition": "busy", "hangup_cause": "486",
        "end_time": T0 + timedelta(minutes=30, seconds=3),
    }))
    storage.write_cdrs(ops)
    storage.close()
    return rec, files


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    data_dir = tmp_path_factory.mktemp("site") / "data"
    rec, files = populate(data_dir)
    return Site(site_config(data_dir), data_dir, rec, files)


# --------------------------------------------------------------------------- the server


class Clock:
    """Injected monotonic time (sessions, login bans)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Running:
    """An :class:`ApiServer` on its own event loop in a background thread."""

    def __init__(self, config: SiteConfig, clock: Clock, **kw: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = ApiServer(config, clock=clock, **kw)
        self.addresses = self.call(self.server.start())
        self.port = self.addresses[0][2]

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(20)

    def close(self) -> None:
        self.call(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        assert self.headers["Content-Type"].startswith("application/json"), self.headers
        return json.loads(self.body)


class Client:
    """A stdlib HTTP client that keeps the session cookie."""

    def __init__(self, port: int, context: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.context = context
        self.cookie: str | None = None
        self.set_cookie: list[str] = []

    def request(self, method: str, path: str, body: Any = None,
                headers: Mapping[str, str] | None = None) -> Reply:
        if self.context is not None:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=10, context=self.context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        h = dict(headers or {})
        if self.cookie is not None:
            h["Cookie"] = f"{COOKIE}={self.cookie}"
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        self.set_cookie = resp.headers.get_all("Set-Cookie") or []
        for line in self.set_cookie:
            jar: SimpleCookie = SimpleCookie()
            jar.load(line)
            if COOKIE in jar:
                morsel = jar[COOKIE]
                self.cookie = None if morsel["max-age"] == "0" else morsel.value
        return Reply(resp.status, resp.headers, data)

    def get(self, path: str, **headers: str) -> Reply:
        return self.request("GET", path, headers={k.replace("_", "-"): v
                                                  for k, v in headers.items()})

    def login(self, user: str, password: str | None = None) -> Reply:
        return self.request("POST", "/api/login",
                            {"user": user, "password": password or PASSWORDS[user]})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def api(site: Site, clock: Clock) -> Iterator[Running]:
    running = Running(site.config, clock)
    yield running
    running.close()


def client(api: Running, user: str | None = None) -> Client:
    c = Client(api.port)
    if user is not None:
        assert c.login(user).status == 200
    return c


def ids(reply: Reply) -> set[str]:
    return {r["id"] for r in reply.json()["recordings"]}


# --------------------------------------------------------------------------- sessions


def test_login_session_logout(api: Running) -> None:
    c = Client(api.port)
    r = c.login("1001")
    assert r.status == 200
    assert r.json() == {"user": "1001", "name": "Li Na", "role": "agent", "agent": "1001",
                        "teams": ["tv"]}
    (line,) = c.set_cookie
    attrs = {a.strip().split("=")[0].lower() for a in line.split(";")[1:]}
    assert {"httponly", "samesite", "path"} <= attrs and "secure" not in attrs
    assert "SameSite=Strict" in line and "Path=/" in line
    assert c.cookie and len(c.cookie) >= 40
    me = c.get("/api/session")
    assert me.status == 200
    assert me.json()["user"] == "1001" and me.json()["idle_timeout"] == int(SESSION_IDLE)
    old = c.cookie
    out = c.request("POST", "/api/logout")
    assert out.status == 204 and c.cookie is None
    c.cookie = old  # a replayed cookie is dead
    assert c.get("/api/session").status == 401


def test_supervisor_and_admin_logins(api: Running) -> None:
    assert client(api).login("boss").json() == {
        "user": "boss", "name": "boss", "role": "supervisor", "agent": None, "teams": ["tv"]}
    assert client(api).login("admin").json()["role"] == "admin"


def test_login_takes_username_as_the_issue_spells_it(api: Running) -> None:
    r = Client(api.port).request("POST", "/api/login",
                                 {"username": "1001", "password": PASSWORDS["1001"]})
    assert r.status == 200 and r.json()["agent"] == "1001"
    r = Client(api.port).request("POST", "/api/login",
                                 {"username": "1001", "password": "wrong-password"})
    assert r.status == 401


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/session"), ("GET", "/api/recordings"), ("GET", "/api/recordings/x"),
    ("GET", "/api/recordings/x/audio"), ("GET", "/api/cdrs"), ("POST", "/api/logout"),
    ("GET", "/api/no-such-thing"), ("GET", "/no-such-page"),
])  # fmt: skip
def test_every_endpoint_but_login_and_metrics_needs_a_session(
    api: Running, method: str, path: str
) -> None:
    c = Client(api.port)
    r = c.request(method, path)
    assert r.status == 401
    assert r.json() == {"error": "login required"}
    c.cookie = "forged-" + "x" * 40
    assert c.request(method, path).status == 401


def test_login_and_metrics_need_no_session(api: Running) -> None:
    c = Client(api.port)
    assert c.get("/metrics").status == 200
    assert c.login("1002").status == 200


def test_unknown_route_and_method_are_json_errors(api: Running) -> None:
    c = client(api, "admin")
    r = c.get("/api/no-such-thing")
    assert r.status == 404 and r.json() == {"error": "not found"}
    r = c.request("DELETE", "/api/cdrs")
    assert r.status == 405 and r.json() == {"error": "method not allowed"}
    assert "GET" in r.headers["Allow"]


def test_wrong_password_and_unknown_user_look_the_same(api: Running) -> None:
    ca, cb = Client(api.port), Client(api.port)
    a, b = ca.login("1001", "wrong-password"), cb.login("nobody", "wrong-password")
    assert a.status == b.status == 401
    assert a.body == b.body and a.json() == {"error": "wrong user or password"}
    assert ca.set_cookie == cb.set_cookie == []


@pytest.mark.parametrize("body, ctype, status", [
    (b'{"user": "1001"}', "application/json", 400),
    (b'["1001", "pw"]', "application/json", 400),
    (b"not json", "application/json", 400),
    (b'{"user": "1001", "password": 5}', "application/json", 400),
    (b'{"user": "1001", "password": "\\ud800"}', "application/json", 400),
    (b'{"user": "\\udc80", "password": "x"}', "application/json", 400),
    (b"user=1001&password=pw-1001-secret", "application/x-www-form-urlencoded", 415),
])  # fmt: skip
def test_malformed_logins(api: Running, body: bytes, ctype: str, status: int) -> None:
    r = Client(api.port).request("POST", "/api/login", body, {"Content-Type": ctype})
    assert r.status == status and "error" in r.json()


def test_oversized_login_body_is_refused(api: Running) -> None:
    body = json.dumps({"user": "1001", "password": "x" * 100_000}).encode()
    r = Client(api.port).request("POST", "/api/login", body,
                                 {"Content-Type": "application/json"})
    assert r.status == 413 and "error" in r.json()


def test_failed_logins_get_the_source_banned(api: Running, clock: Clock, site: Site) -> None:
    c = Client(api.port)
    for _ in range(3):  # [sip] max_failures = 3
        assert c.login("1001", "guess").status == 401
    r = c.login("1001")  # even the right password, while banned
    assert r.status == 429
    assert r.json() == {"error": "too many failed logins; try again later"}
    assert int(r.headers["Retry-After"]) == 120
    clock.now += 121
    assert c.login("1001").status == 200
    with Storage.open(site.data_dir) as storage:
        rows = storage.query("SELECT username, result, source FROM auth_events "
                             "WHERE source = 'web' ORDER BY id DESC LIMIT 4")
    assert [tuple(r) for r in rows] == [("1001", "ok", "web")] + [
        ("1001", "bad_password", "web")] * 3


def test_sessions_end_after_idle_time(api: Running, clock: Clock) -> None:
    c = client(api, "1001")
    clock.now += SESSION_IDLE - 1
    assert c.get("/api/session").status == 200  # a request restarts the idle timer
    clock.now += SESSION_IDLE - 1
    assert c.get("/api/session").status == 200
    clock.now += SESSION_IDLE
    assert c.get("/api/session").status == 401


def test_a_new_login_replaces_the_session(api: Running) -> None:
    c = client(api, "1001")
    first = c.cookie
    assert c.login("1002").status == 200
    assert c.cookie != first
    c.cookie = first
    assert c.get("/api/session").status == 401


def test_cross_origin_writes_are_refused(api: Running) -> None:
    c = client(api, "1001")
    r = c.request("POST", "/api/logout", headers={"Origin": "http://evil.example"})
    assert r.status == 403 and r.json() == {"error": "cross-origin request refused"}
    r = Client(api.port).request(
        "POST", "/api/login", {"user": "1001", "password": PASSWORDS["1001"]},
        {"Origin": "http://evil.example"})
    assert r.status == 403
    same = c.request("POST", "/api/logout", headers={"Origin": f"http://127.0.0.1:{api.port}"})
    assert same.status == 204


def test_responses_carry_security_headers(api: Running) -> None:
    r = Client(api.port).get("/api/session")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"


# --------------------------------------------------------------------------- recordings


@pytest.mark.parametrize("user, visible, total", [
    ("admin", {"tv1", "tv2", "water", "ivr", "moved"}, 5),
    ("chief", {"tv1", "tv2", "water", "ivr", "moved"}, 5),  # supervisor of every team
    ("boss", {"tv1", "tv2", "moved"}, None),  # team tv: 1001 and 1002
    ("1001", {"tv1", "moved"}, 2),
    ("1003", {"water", "moved"}, 2),  # 1003 took "moved" over from 1001
    ("viewer", set(), 0),
])  # fmt: skip
def test_search_is_scoped_by_role_and_team(
    api: Running, site: Site, user: str, visible: set[str], total: int | None
) -> None:
    r = client(api, user).get("/api/recordings")
    assert r.status == 200
    body = r.json()
    assert ids(r) == {site.rec[n] for n in visible}
    assert body["total"] == total
    starts = [x["start_time"] for x in body["recordings"]]
    assert starts == sorted(starts, reverse=True)  # newest first


def test_search_result_fields(api: Running, site: Site) -> None:
    body = client(api, "admin").get("/api/recordings?call_id=c-tv2@x").json()
    (one,) = body["recordings"]
    assert one == {
        "id": site.rec["tv2"], "call_id": "c-tv2@x", "state": "transcoded", "format": "opus",
        "start_time": "2024-05-01T08:05:00.000+00:00",
        "end_time": "2024-05-01T08:06:00.000+00:00", "seconds": one["seconds"],
        "caller": "13900000002", "callee": "95598", "queue": "repair", "agents": ["1002"],
        "content_type": "audio/ogg; codecs=opus",
        "audio": f"/api/recordings/{site.rec['tv2']}/audio",
    }
    assert one["seconds"] == pytest.approx(2.25, abs=0.05)


@pytest.mark.parametrize("query, expected", [
    ("number=1380000000", {"tv1", "water"}),
    ("number=95598", {"tv1", "tv2", "water", "ivr", "moved"}),
    ("agent=1003", {"water", "moved"}),
    ("queue=billing", {"tv1", "water", "moved"}),
    ("since=2024-05-01T08:05:00Z&until=2024-05-01T08:15:00Z", {"tv2", "water"}),
    ("since=2024-05-01T16:10:00%2B08:00", {"water", "ivr", "moved"}),
    ("until=2024-05-01", set()),
    ("call_id=c-ivr@x", {"ivr"}),
    ("agent=1001&queue=billing&number=136", {"moved"}),
])  # fmt: skip
def test_search_filters(api: Running, site: Site, query: str, expected: set[str]) -> None:
    r = client(api, "admin").get(f"/api/recordings?{query}")
    assert ids(r) == {site.rec[n] for n in expected}
    assert r.json()["total"] == len(expected)


def test_naive_times_are_in_the_site_time_zone(site: Site, clock: Clock) -> None:
    config = replace(site.config, server=replace(site.config.server, timezone="Asia/Shanghai"))
    running = Running(config, clock)
    try:
        r = client(running, "admin").get("/api/recordings?since=2024-05-01T16:10:00")
        assert ids(r) == {site.rec[n] for n in ("water", "ivr", "moved")}
    finally:
        running.close()


@pytest.mark.parametrize("user", ["admin", "boss"])
def test_search_paging(api: Running, site: Site, user: str) -> None:
    c = client(api, user)
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        body = c.get(f"/api/recordings?limit=2&offset={offset}").json()
        assert len(body["recordings"]) <= 2 and body["limit"] == 2
        seen += [x["id"] for x in body["recordings"]]
        offset = body["next_offset"]
    everything = [x["id"] for x in c.get("/api/recordings").json()["recordings"]]
    assert seen == everything and len(seen) == len(set(seen))


@pytest.mark.parametrize("query, error", [
    ("since=yesterday", "since: expected a date"),
    ("limit=0", "limit: expected an integer 1..1000"),
    ("limit=abc", "limit: expected an integer"),
    ("offset=-1", "offset: expected an integer"),
])  # fmt: skip
def test_bad_search_parameters_are_400(api: Running, query: str, error: str) -> None:
    r = client(api, "admin").get(f"/api/recordings?{query}")
    assert r.status == 400 and r.json()["error"].startswith(error)


@pytest.mark.parametrize("user, agent", [("boss", "1003"), ("1001", "1002"), ("viewer", "1001")])
def test_searching_another_scope_is_403(api: Running, user: str, agent: str) -> None:
    r = client(api, user).get(f"/api/recordings?agent={agent}")
    assert r.status == 403 and r.json() == {"error": f"agent {agent} is outside your scope"}


@pytest.mark.parametrize("user, name, status", [
    ("1001", "tv1", 200), ("1001", "tv2", 403), ("1001", "moved", 200),
    ("1003", "tv1", 403), ("boss", "water", 403), ("boss", "moved", 200),
    ("boss", "ivr", 403), ("chief", "ivr", 200), ("viewer", "tv1", 403),
])  # fmt: skip
def test_one_recording_and_its_audio_by_scope(
    api: Running, site: Site, user: str, name: str, status: int
) -> None:
    c = client(api, user)
    rid = site.rec[name]
    meta = c.get(f"/api/recordings/{rid}")
    audio = c.get(f"/api/recordings/{rid}/audio")
    assert meta.status == audio.status == status
    if status == 403:
        assert meta.json() == audio.json() == {"error": "this recording is outside your scope"}
    else:
        assert meta.json()["id"] == rid
        assert audio.body == site.files[name].read_bytes()


def test_unknown_and_deleted_recordings(api: Running, site: Site) -> None:
    c = client(api, "admin")
    for path in ("/api/recordings/20240501T080000Z-00000000",
                 "/api/recordings/20240501T080000Z-00000000/audio"):
        r = c.get(path)
        assert r.status == 404 and r.json() == {"error": "no such recording"}
    gone = site.rec["gone"]
    meta = c.get(f"/api/recordings/{gone}").json()
    assert meta["state"] == "deleted" and meta["audio"] is None
    r = c.get(f"/api/recordings/{gone}/audio")
    assert r.status == 410 and r.json() == {"error": "the recording was deleted (retention)"}


@pytest.mark.parametrize("name, ctype", [
    ("tv1", "audio/wav"), ("tv2", "audio/ogg; codecs=opus"), ("water", "audio/wav"),
])  # fmt: skip
def test_audio_whole_file(api: Running, site: Site, name: str, ctype: str) -> None:
    rid = site.rec[name]
    data = site.files[name].read_bytes()
    r = client(api, "admin").get(f"/api/recordings/{rid}/audio")
    assert r.status == 200 and r.body == data
    assert r.headers["Content-Type"] == ctype
    assert r.headers["Accept-Ranges"] == "bytes"
    assert int(r.headers["Content-Length"]) == len(data)
    st = site.files[name].stat()
    assert r.headers["ETag"] == f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
    assert r.headers["Last-Modified"] == format_datetime(  # whole seconds, rounded up
        datetime.fromtimestamp(math.ceil(st.st_mtime), UTC), usegmt=True)
    assert r.headers["Cache-Control"] == "private, no-cache"
    ext = site.files[name].suffix
    assert r.headers["Content-Disposition"] == f'inline; filename="{rid}{ext}"'
    if name == "tv2":
        assert data[:4] == b"OggS"
    else:
        assert data[:4] == b"RIFF"


@pytest.mark.parametrize("spec, first, last", [
    ("bytes=0-99", 0, 99),
    ("bytes=100-", 100, None),
    ("bytes=-50", -50, None),
    ("bytes=1000-1000", 1000, 1000),
    ("bytes=10-99999999", 10, None),  # last past the end: to the end
    ("bytes=-99999999", 0, None),  # suffix longer than the file: all of it
    ("BYTES=5-9", 5, 9),
])  # fmt: skip
@pytest.mark.parametrize("name", ["tv1", "tv2"])
def test_audio_ranges_are_byte_exact(
    api: Running, site: Site, name: str, spec: str, first: int, last: int | None
) -> None:
    data = site.files[name].read_bytes()
    size = len(data)
    start = first if first >= 0 else size + first
    end = size - 1 if last is None else last
    r = client(api, "1001" if name == "tv1" else "1002").get(
        f"/api/recordings/{site.rec[name]}/audio", Range=spec)
    assert r.status == 206
    assert r.headers["Content-Range"] == f"bytes {start}-{end}/{size}"
    assert int(r.headers["Content-Length"]) == end - start + 1
    assert r.body == data[start : end + 1]
    assert r.headers["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize("spec", ["bytes={size}-", "bytes={size}-{more}", "bytes=-0"])
def test_unsatisfiable_ranges_are_416(api: Running, site: Site, spec: str) -> None:
    size = site.files["tv1"].stat().st_size
    r = client(api, "admin").get(f"/api/recordings/{site.rec['tv1']}/audio",
                                 Range=spec.format(size=size, more=size + 10))
    assert r.status == 416
    assert r.json() == {"error": "range not satisfiable"}
    assert r.headers["Content-Range"] == f"bytes */{size}"


@pytest.mark.parametrize("spec", ["bytes=9-5", "bytes=0-1,5-6", "items=0-9", "bytes=x-y",
                                  "bytes=-"])
def test_ranges_we_ignore_get_the_whole_file(api: Running, site: Site, spec: str) -> None:
    r = client(api, "admin").get(f"/api/recordings/{site.rec['tv1']}/audio", Range=spec)
    assert r.status == 200 and r.body == site.files["tv1"].read_bytes()
    assert "Content-Range" not in r.headers


def test_if_range_and_conditional_requests(api: Running, site: Site) -> None:
    c = client(api, "admin")
    url = f"/api/recordings/{site.rec['tv1']}/audio"
    data = site.files["tv1"].read_bytes()
    full = c.get(url)
    etag, modified = full.headers["ETag"], full.headers["Last-Modified"]
    r = c.get(url, Range="bytes=0-9", If_Range=etag)
    assert r.status == 206 and r.body == data[:10]
    r = c.get(url, Range="bytes=0-9", If_Range=modified)
    assert r.status == 206 and r.body == data[:10]
    for stale in ('"0-0"', "W/" + etag, "Tue, 01 Jan 2019 00:00:00 GMT", "garbage"):
        r = c.get(url, Range="bytes=0-9", If_Range=stale)
        assert r.status == 200 and r.body == data, stale
    r = c.get(url, Range=f"bytes={len(data)}-", If_Range='"0-0"')
    assert r.status == 200  # a stale validator wins over an unsatisfiable range
    r = c.get(url, If_None_Match=etag)
    assert r.status == 304 and r.body == b""
    r = c.get(url, If_Modified_Since=modified)
    assert r.status == 304 and r.body == b""


def test_audio_head_and_download(api: Running, site: Site) -> None:
    c = client(api, "admin")
    url = f"/api/recordings/{site.rec['tv1']}/audio"
    r = c.request("HEAD", url)
    assert r.status == 200 and r.body == b""
    assert int(r.headers["Content-Length"]) == site.files["tv1"].stat().st_size
    r = c.get(url + "?download=1")
    assert r.headers["Content-Disposition"].startswith("attachment;")


def test_a_growing_live_recording_is_served_as_it_is_now(api: Running, site: Site) -> None:
    c = client(api, "1003")
    url = f"/api/recordings/{site.rec['water']}/audio"
    path = site.files["water"]
    before = c.get(url)
    etag = before.headers["ETag"]
    with open(path, "ab") as f:  # the worker appends 200 ms blocks
        f.write(b"\x01\x00" * 1600)
    after = c.get(url)
    assert after.body == path.read_bytes() and len(after.body) == len(before.body) + 3200
    assert after.headers["ETag"] != etag
    r = c.get(url, Range="bytes=0-9", If_Range=etag)  # the old version is gone: all of it
    assert r.status == 200 and len(r.body) == len(after.body)


# --------------------------------------------------------------------------- CDRs


def cdr_export(data_dir: Path, *args: str) -> bytes:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TZ": "UTC"}
    proc = subprocess.run([sys.executable, "-m", "hotline", "cdr", "export", "--data-dir",
                           str(data_dir), *args], env=env, cwd=ROOT, capture_output=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("since", [None, "2024-05-01T08:10:00+00:00"])
def test_cdr_csv_is_what_cdr_export_prints(api: Running, site: Site, since: str | None) -> None:
    args = ["--csv"] + (["--since", since] if since else [])
    expected = cdr_export(site.data_dir, *args)
    query = "?format=csv" + (f"&since={since.replace('+', '%2B')}" if since else "")
    r = client(api, "admin").get(f"/api/cdrs{query}")
    assert r.status == 200
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.headers["Content-Disposition"] == 'attachment; filename="cdrs.csv"'
    assert r.body == expected
    assert b'"sip:486 ""Busy, Here"""' in r.body  # quoted as the csv module does
    assert r.body.count(b"\r\n") == (9 if since is None else 7)  # rows + header


def test_cdr_csv_by_accept_header(api: Running, site: Site) -> None:
    r = client(api, "admin").get("/api/cdrs", Accept="text/csv")
    assert r.status == 200 and r.body == cdr_export(site.data_dir, "--csv")


def test_cdr_json_is_what_cdr_export_jsonl_prints(api: Running, site: Site) -> None:
    lines = cdr_export(site.data_dir, "--jsonl").decode().splitlines()
    expected = [json.loads(line) for line in lines]
    body = client(api, "admin").get("/api/cdrs?limit=1000").json()
    assert body["cdrs"] == expected
    assert body["total"] == len(expected) == 8 and body["next_offset"] is None
    assert any(row["end_time"] is None for row in body["cdrs"])  # the live call's


def test_cdr_json_paging(api: Running) -> None:
    c = client(api, "admin")
    everything = c.get("/api/cdrs").json()["cdrs"]
    first = c.get("/api/cdrs?limit=3").json()
    second = c.get("/api/cdrs?limit=3&offset=3").json()
    assert first["next_offset"] == 3 and second["next_offset"] == 6
    assert first["cdrs"] + second["cdrs"] == everything[:6]


@pytest.mark.parametrize("user, agents", [
    ("admin", {None, "1001", "1002", "1003"}),
    ("chief", {None, "1001", "1002", "1003"}),
    ("boss", {"1001", "1002"}),
    ("1003", {"1003"}),
    ("viewer", set()),
])  # fmt: skip
def test_cdrs_are_scoped(api: Running, user: str, agents: set[str | None]) -> None:
    c = client(api, user)
    rows = c.get("/api/cdrs").json()["cdrs"]
    assert {r["agent"] for r in rows} == agents
    lines = c.get("/api/cdrs?format=csv").body.decode().splitlines()
    assert len(lines) == len(rows) + 1


@pytest.mark.parametrize("query, calls", [
    ("agent=1002", ["c-tv2@x", "c-busy@x"]),
    ("queue=repair", ["c-tv2@x"]),
    ("number=13800000003", ["c-water@x"]),
    ("call_id=c-busy@x", ["c-busy@x", "c-busy@x"]),
    ("since=2024-05-01T08:10:00Z&until=2024-05-01T08:20:00Z", ["c-water@x", "c-ivr@x"]),
])  # fmt: skip
def test_cdr_filters(api: Running, query: str, calls: list[str]) -> None:
    rows = client(api, "admin").get(f"/api/cdrs?{query}").json()["cdrs"]
    assert [r["call_id"] for r in rows] == calls


def test_cdr_errors(api: Running) -> None:
    assert client(api, "boss").get("/api/cdrs?agent=1003").status == 403
    r = client(api, "admin").get("/api/cdrs?format=xml")
    assert r.status == 400 and r.json() == {"error": "format: expected json or csv (got 'xml')"}


# --------------------------------------------------------------------------- metrics


def test_metrics_count_requests_and_logins(api: Running) -> None:
    c = Client(api.port)
    c.login("1001", "nope")
    c.login("1001")
    c.get("/api/recordings")
    r = Client(api.port).get("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=")
    text = r.body.decode()
    assert 'hotline_api_logins_total{result="failed"} 1.0' in text
    assert 'hotline_api_logins_total{result="ok"} 1.0' in text
    assert "hotline_api_sessions 1.0" in text
    assert ('hotline_http_requests_total{method="GET",route="/api/recordings",status="200"} '
            '1.0') in text
    assert 'hotline_http_requests_total{method="POST",route="/api/login",status="401"}' in text
    assert "hotline_build_info{version=" in text


def test_metrics_read_a_real_server(site: Site, clock: Clock, tmp_path: Path) -> None:
    from hotline.server import HotlineServer

    config = replace(site.config, server=replace(site.config.server, data_dir=tmp_path,
                                                 media_workers=1))
    loop = asyncio.new_event_loop()
    server = HotlineServer(config, loop)  # built, not started: no workers, no calls
    try:
        running = Running(config, clock, live=server_metrics(server))
        try:
            text = Client(running.port).get("/metrics").body.decode()
        finally:
            running.close()
    finally:
        loop.run_until_complete(server.close())
        loop.close()
    for line in ("hotline_calls 0.0", "hotline_call_legs 0.0", "hotline_media_endpoints 0.0",
                 "hotline_accepting_calls 1.0", "hotline_sip_registered_aors 0.0",
                 "hotline_recordings_live 0.0", "hotline_media_worker_restarts_total 0.0"):
        assert line in text.splitlines(), line


# --------------------------------------------------------------------------- HTTPS


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
    return cert, key


def test_https_listener_uses_the_tls_certificate_and_secure_cookies(
    site: Site, clock: Clock, tls_files: tuple[Path, Path]
) -> None:
    cert, key = tls_files
    config = replace(site.config, tls=TlsConfig(cert, key),
                     server=replace(site.config.server, https=Address("127.0.0.1", 0)))
    running = Running(config, clock)
    try:
        schemes = {scheme: port for scheme, _, port in running.addresses}
        assert set(schemes) == {"http", "https"}
        ctx = ssl.create_default_context(cafile=str(cert))
        c = Client(schemes["https"], ctx)
        r = c.login("1001")
        assert r.status == 200
        (line,) = c.set_cookie
        assert "Secure" in line and "HttpOnly" in line and "SameSite=Strict" in line
        rid = site.rec["tv1"]
        r = c.get(f"/api/recordings/{rid}/audio", Range="bytes=-100")
        assert r.status == 206 and r.body == site.files["tv1"].read_bytes()[-100:]
    finally:
        running.close()


def test_no_listeners_when_http_is_off(site: Site) -> None:
    config = replace(site.config, server=replace(site.config.server, http=None))
    server = ApiServer(config)
    assert asyncio.run(server.start()) == [] and server.app is None
    asyncio.run(server.close())


@pytest.mark.parametrize("path, marker", [
    ("/", b"agent.js"), ("/supervisor", b"supervisor.js"), ("/static/common.js", b"export"),
    ("/static/style.css", b"{"),
])  # fmt: skip
def test_the_pages_need_no_session_and_allow_only_our_own_scripts(
    api: Running, path: str, marker: bytes
) -> None:
    r = Client(api.port).request("GET", path)
    assert r.status == 200 and marker in r.body
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


@pytest.mark.parametrize("path", ["/static/../hotline.db", "/static/%2e%2e/pyproject.toml",
                                  "/static/gateway.py", "/static/nope.js"])
def test_static_files_are_only_the_pages_files(api: Running, path: str) -> None:
    assert Client(api.port).request("GET", path).status in (401, 404)
