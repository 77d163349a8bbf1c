"""hotline.api agents, queues, the OpenAPI description and password hashing, against a
real :class:`hotline.acdctl.AcdService` (the real :class:`acd.engine.Acd`) and a real
database, through aiohttp's test server and client sessions.

The site: agents 1001 and 1002 in team ``tv``, 1003 in team ``water``; queues
``billing`` (1001, 1002), ``water`` (1003) and ``general`` (every agent); users
``admin``, ``boss`` (supervisor of ``tv``), ``chief`` (supervisor, no teams = everyone)
and ``viewer`` (a ``[[users]]`` entry with role agent). :class:`Harness` is shared with
``test_api_ws.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from test_api_http import PASSWORDS
from test_api_http import site_config as http_site_config

from acd.agent import AgentState
from hotline.acdctl import AcdService
from hotline.api import auth
from hotline.api.app import create_app
from hotline.api.openapi import spec
from hotline.api.state import STATE, ApiState
from hotline.config import (
    AcdConfig,
    QueueConfig,
    SipConfig,
    SiteConfig,
)
from hotline.config import ServerConfig as Srv
from hotline.storage import Storage

#: A caller with a history: six earlier calls (the screen pop shows the last five).
REGULAR = "13900000009"
T0 = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)


def site_config(data_dir: Path) -> SiteConfig:
    """The HTTP tests' site (agents 1001-1003 in teams tv/water, admin, boss, chief,
    viewer) with queues and reasons, and no HTTP listener (tests serve the app)."""
    queues = (
        QueueConfig("billing", agents=("1001", "1002"), wrapup=10, service_level=20),
        QueueConfig("water", agents=("1003",), wrapup=0),
        QueueConfig("general", strategy="linear"),
    )
    base = http_site_config(data_dir)
    return dataclasses.replace(base, server=Srv(http=None, data_dir=data_dir),
                               sip=SipConfig(), queues=queues,
                               acd=AcdConfig(reasons=("break", "lunch", "training")))


def populate(data_dir: Path) -> None:
    """CDRs of :data:`REGULAR`'s earlier calls, as the server writes them."""
    storage = Storage.open(data_dir)
    rows = []
    for i in range(6):
        start = T0 + timedelta(days=i)
        rows.append(("insert", {
            "call_id": f"old-{i}@x", "leg": "caller", "start_time": start,
            "direction": "inbound", "caller": REGULAR, "callee": "95598",
            "answer_time": start + timedelta(seconds=3), "queue": "billing",
            "agent": "1002" if i % 2 else "1001", "disposition": "answered",
            "recording_id": f"rec-{i}", "end_time": start + timedelta(seconds=90),
            "billsec": 87,
        }))
    rows.append(("insert", {  # another caller: not in REGULAR's history
        "call_id": "other@x", "leg": "caller", "start_time": T0 + timedelta(days=9),
        "direction": "inbound", "caller": "13700000000", "callee": "95598",
        "agent": "1001", "disposition": "answered",
    }))
    storage.write_cdrs(rows)
    storage.close()


class Clock:
    """Injected monotonic seconds for sessions."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """The API app with a real ACD on a test server; :meth:`session` logs users in."""

    def __init__(self, data_dir: Path, *, with_acd: bool = True,
                 calls: Any = None) -> None:
        self.config = site_config(data_dir)
        self.clock = Clock()
        self.skew = 0.0
        self.acd: AcdService | None = None
        if calls is not None:
            self.acd = calls.acd
        elif with_acd:
            self.acd = AcdService(self.config, self.acd_clock, time.time() - time.monotonic())
        self.app = create_app(self.config, clock=self.clock, acd=self.acd, calls=calls)
        self.server = TestServer(self.app)
        self._sessions: list[aiohttp.ClientSession] = []

    def acd_clock(self) -> float:
        """The ACD's clock: the loop's, pushed on by :attr:`skew` (tests age states)."""
        return time.monotonic() + self.skew

    @property
    def state(self) -> ApiState:
        return self.app[STATE]

    @property
    def engine(self) -> Any:
        assert self.acd is not None
        return self.acd.engine

    async def __aenter__(self) -> Harness:
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for s in self._sessions:
            await s.close()
        await self.server.close()
        if self.acd is not None:
            self.acd.close()

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def session(self, user: str | None = None) -> aiohttp.ClientSession:
        """A client session (its own cookies), logged in as ``user`` if given."""
        s = aiohttp.ClientSession(base_url=self.base,
                                  cookie_jar=aiohttp.CookieJar(unsafe=True))
        self._sessions.append(s)
        if user is not None:
            async with s.post("/api/login", json={"user": user,
                                                  "password": PASSWORDS[user]}) as r:
                assert r.status == 200, await r.text()
        return s

    def feed(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """An engine input through the service (events dispatched), ``now`` last."""
        assert self.acd is not None
        return self.acd.call(fn, *args, self.acd.now(), **kw)


async def call(s: aiohttp.ClientSession, method: str, path: str,
               body: Any = None) -> tuple[int, Any]:
    async with s.request(method, path, json=body) as r:
        assert r.headers["Content-Type"].startswith("application/json"), r.headers
        return r.status, await r.json()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("acd-site") / "data"
    populate(d)
    return d


def run(data_dir: Path, body: Callable[[Harness], Awaitable[None]], **kw: Any) -> None:
    async def main() -> None:
        async with Harness(data_dir, **kw) as h:
            await body(h)
    asyncio.run(main())


# --------------------------------------------------------------------------- agents


@pytest.mark.parametrize(("user", "agents"), [
    ("1001", ["1001"]),
    ("boss", ["1001", "1002"]),
    ("chief", ["1001", "1002", "1003"]),
    ("admin", ["1001", "1002", "1003"]),
    ("viewer", []),
])
def test_agent_list_is_scoped(data_dir: Path, user: str, agents: list[str]) -> None:
    async def body(h: Harness) -> None:
        s = await h.session(user)
        status, data = await call(s, "GET", "/api/agents")
        assert status == 200
        assert [a["id"] for a in data["agents"]] == agents
        assert data["reasons"] == ["break", "lunch", "training"]
    run(data_dir, body)


def test_agent_fields(data_dir: Path) -> None:
    async def body(h: Harness) -> None:
        s = await h.session("boss")
        status, a = await call(s, "GET", "/api/agents/1001")
        assert status == 200
        assert a == {
            "id": "1001", "name": "Li Na", "teams": ["tv"], "state": "logged_out",
            "reason": None, "since": None, "call_id": None, "queue": None, "queues": [],
            "member_of": ["billing", "general"], "next_state": None, "next_reason": None,
            "wrapup_left": None, "direct_calls": 0,
        }
        h.feed(h.engine.login, "1001", ready=True)
        h.skew += 42
        h.feed(h.engine.not_ready, "1001", reason="lunch")
        h.skew += 5
        _, a = await call(s, "GET", "/api/agents/1001")
        assert (a["state"], a["reason"], a["queues"]) == ("not_ready", "lunch",
                                                          ["billing", "general"])
        assert 5 <= a["since"] < 6
    run(data_dir, body)


@pytest.mark.parametrize(("user", "agent", "status"), [
    ("1001", "1002", 403), ("boss", "1003", 403), ("viewer", "1001", 403),
    ("boss", "9999", 404), ("1001", "1001", 200), ("chief", "1003", 200),
])
def test_one_agent_by_scope(data_dir: Path, user: str, agent: str, status: int) -> None:
    async def body(h: Harness) -> None:
        s = await h.session(user)
        got, data = await call(s, "GET", f"/api/agents/{agent}")
        assert got == status, data
        if status != 200:
            assert set(data) == {"error"}
    run(data_dir, body)


def test_agents_change_only_themselves(data_dir: Path) -> None:
    async def body(h: Harness) -> None:
        s = await h.session("1001")
        status, data = await call(s, "POST", "/api/agents/1002/state", {"state": "ready"})
        assert (status, data) == (403, {"error": "an agent changes its own state only"})
        assert h.engine.agents["1002"].state is AgentState.LOGGED_OUT
        status, data = await call(s, "POST", "/api/agents/1001/state", {"state": "ready"})
        assert status == 200 and data["state"] == "ready"
        assert h.engine.agents["1001"].state is AgentState.READY
    run(data_dir, body)


def test_supervisors_change_their_teams_only(data_dir: Path) -> None:
    async def body(h: Harness) -> None:
        boss = await h.session("boss")
        status, data = await call(boss, "POST", "/api/agents/1003/state", {"state": "login"})
        assert status == 403, data
        assert h.engine.agents["1003"].state is AgentState.LOGGED_OUT
        status, data = await call(boss, "POST", "/api/agents/1002/state",
                                  {"state": "login", "reason": "training"})
        assert status == 200, data
        assert (data["state"], data["reason"]) == ("not_ready", "training")
        admin = await h.session("admin")
        status, _ = await call(admin, "POST", "/api/agents/1003/state", {"state": "ready"})
        assert status == 200
        viewer = await h.session("viewer")
        status, _ = await call(viewer, "POST", "/api/agents/1001/state", {"state": "ready"})
        assert status == 403
    run(data_dir, body)


def test_state_changes_reach_the_engine(data_dir: Path) -> None:
    async def body(h: Harness) -> None:
        s = await h.session("1001")
        engine = h.engine

        async def post(payload: dict[str, Any]) -> dict[str, Any]:
            status, data = await call(s, "POST", "/api/agents/1001/state", payload)
            assert status == 200, data
            return data

        data = await post({"state": "login", "queues": ["billing"]})
        assert engine.agents["1001"].state is AgentState.NOT_READY
        assert engine.logged_into("1001") == ["billing"] == data["queues"]
        await post({"state": "ready", "queues": ["general"]})
        assert engine.agents["1001"].state is AgentState.READY
        assert engine.logged_into("1001") == ["billing", "general"]
        data = await post({"state": "not_ready", "reason": "break"})
        assert (engine.agents["1001"].state, engine.agents["1001"].reason) == (
            AgentState.NOT_READY, "break")
        assert data["reason"] == "break"
        await post({"state": "not_ready"})  # no reason: the engine's "other"
        assert engine.agents["1001"].reason == "other"
        await post({"state": "logged_out"})
        assert engine.agents["1001"].state is AgentState.LOGGED_OUT
        assert engine.logged_into("1001") == []
        await post({"state": "ready"})  # from logged out: every queue it serves
        assert engine.logged_into("1001") == ["billing", "general"]
    run(data_dir, body)


@pytest.mark.parametrize(("payload", "status", "error"), [
    ({"state": "dancing"}, 400, "state: expected one of ready, not_ready, logged_out, login"),
    ({}, 400, "state: expected one of ready, not_ready, logged_out, login"),
    ({"state": "not_ready", "reason": "nap"}, 400,
     "reason: expected one of break, lunch, training"),
    ({"state": "ready", "reason": "break"}, 400, "reason: only with not_ready or login"),
    ({"state": "ready", "queues": "billing"}, 400, "queues: expected a list of queue names"),
    ({"state": "login", "queues": []}, 400, "queues: expected a list of queue names"),
    ({"state": "logged_out", "queues": ["billing"]}, 400, "queues: only with ready or login"),
    ({"state": "login", "queues": ["nope"]}, 404, "no queue nope"),
    ({"state": "login", "queues": ["water"]}, 409,
     "agent 1001 is not a member of queue water"),
    ({"state": "not_ready", "reason": "break"}, 409, "agent 1001 is logged_out: cannot not_ready"),
])
def test_bad_state_changes(data_dir: Path, payload: dict[str, Any], status: int,
                           error: str) -> None:
    async def body(h: Harness) -> None:
        s = await h.session("1001")
        got, data = await call(s, "POST", "/api/agents/1001/state", payload)
        assert (got, data) == (status, {"error": error})
        assert h.engine.agents["1001"].state is AgentState.LOGGED_OUT
    run(data_dir, body)


def test_state_bodies_must_be_json_objects(data_dir: Path) -> None:
    async def body(h: Harness) -> None:
        s = await h.session("1001")
        async with s.post("/api/agents/1001/state", data=b"state=ready",
                          headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
            assert r.status == 415
        async with s.post("/api/agents/1001/state", data=b"[1]",
                          headers={"Content-Type": "application/json"}) as r:
            assert (r.status, await r.json()) == (400, {"error": "the body must be a JSON object"})
        async with s.post("/api/agents/1001/state", json={"state": "ready"},
                          headers={"Origin": "http://evil.example"}) as r:
            assert r.status == 403
        status, _ = await call(s, "POST", "/api/agents/9999/state", {"state": "ready"})
        assert status == 404
    run(data_dir, body)


def answered_call(h: Harness, agent: str, call_key: str = "c1@x;t1",
                  caller: str = REGULAR) -> None:
    """``agent`` (ready, alone in billing) answers a billing caller."""
    h.feed(h.engine.login, agent, queues=["billing"], ready=True)
    h.feed(h.engine.enqueue, call_key, "billing", caller=caller)
    assert h.engine.agents[agent].state is AgentState.RINGING
    assert h.feed(h.engine.answered, call_key, agent)


def test_not_ready_during_a_call_waits_for_its_end(data_dir: Path) -> None:
    async def body(h: Harness) -> None:
        answered_call(h, "1001")
        s = await h.session("1001")
        status, data = await call(s, "POST", "/api/agents/1001/state",
                                  {"state": "not_ready", "reason": "lunch"})
        assert status == 200
        assert (data["state"], data["call_id"], data["queue"]) == ("on_call", "c1@x", "billing")
        assert (data["next_state"], data["next_reason"]) == ("not_ready", "lunch")
    run(data_dir, body)


def test_wrapup_extension(data_dir: Path) -> None:
    async def body(h: Harness) -> None:
        s = await h.session("1001")
        status, data = await call(s, "POST", "/api/agents/1001/wrapup", {"extend": 30})
        assert (status, data) == (409, {"error": "agent 1001 is logged_out: cannot extend_wrapup"})
        answered_call(h, "1001")
        h.feed(h.engine.call_ended, "c1@x;t1")
        assert h.engine.agents["1001"].state is AgentState.WRAPUP
        until = h.engine.agents["1001"].wrapup_until
        status, data = await call(s, "POST", "/api/agents/1001/wrapup", {"extend": 30})
        assert status == 200, data
        assert h.engine.agents["1001"].wrapup_until == until + 30
        assert 38 < data["wrapup_left"] <= 40
        for bad in (0, -5, 3601, "10", True, None):
            status, data = await call(s, "POST", "/api/agents/1001/wrapup", {"extend": bad})
            assert status == 400, bad
        chief = await h.session("chief")
        status, _ = await call(chief, "POST", "/api/agents/1001/wrapup", {"extend": 5})
        assert status == 200
        other = await h.session("1002")
        status, _ = await call(other, "POST", "/api/agents/1001/wrapup", {"extend": 5})
        assert status == 403
    run(data_dir, body)


def test_without_an_acd_the_endpoints_answer_503(data_dir: Path) -> None:
    async def body(h: Harness) -> None:
        s = await h.session("admin")
        for path in ("/api/agents", "/api/agents/1001", "/api/queues", "/api/queues/billing"):
            status, data = await call(s, "GET", path)
            assert (status, data) == (503, {"error": "the ACD is not running"}), path
        status, _ = await call(s, "POST", "/api/agents/1001/state", {"state": "ready"})
        assert status == 503
        async with s.get("/api/ws") as r:
            assert r.status == 503
    run(data_dir, body, with_acd=False)


# --------------------------------------------------------------------------- queues


@pytest.mark.parametrize(("user", "queues"), [
    ("1001", ["billing", "general"]),
    ("1003", ["water", "general"]),
    ("boss", ["billing", "general"]),
    ("chief", ["billing", "water", "general"]),
    ("admin", ["billing", "water", "general"]),
    ("viewer", []),
])
def test_queue_list_is_scoped(data_dir: Path, user: str, queues: list[str]) -> None:
    async def body(h: Harness) -> None:
        s = await h.session(user)
        status, data = await call(s, "GET", "/api/queues")
        assert status == 200
        assert [q["name"] for q in data["queues"]] == queues
    run(data_dir, body)


def test_queue_figures_and_callers(data_dir: Path) -> None:
    async def body(h: Harness) -> None:
        engine = h.engine
        h.feed(engine.login, "1002", queues=["billing"])  # not ready
        h.feed(engine.enqueue, "w1@x;a", "billing", caller="13800000001")
        h.skew += 7
        h.feed(engine.enqueue, "w2@x;b", "billing", caller="13800000002", priority=5)
        h.skew += 3
        boss = await h.session("boss")
        status, q = await call(boss, "GET", "/api/queues/billing")
        assert status == 200
        assert (q["name"], q["strategy"], q["service_level"]) == ("billing", "longest-idle", 20)
        assert (q["waiting"], q["connected"]) == (2, 0)
        assert 10 <= q["longest_wait"] < 11
        assert q["agents"]["not_ready"] == 1 and q["agents"]["logged_out"] == 1
        assert q["members"] == [
            {"id": "1001", "name": "Li Na", "state": "logged_out", "logged_in": False},
            {"id": "1002", "name": "Wang Wei", "state": "not_ready", "logged_in": True},
        ]
        # The priority caller is first in line.
        assert [(c["position"], c["call_id"], c["caller"], c["priority"], c["status"])
                for c in q["callers"]] == [
            (1, "w2@x", "13800000002", 5, "waiting"), (2, "w1@x", "13800000001", 0, "waiting")]
        assert 3 <= q["callers"][0]["wait"] < 4
        stats = q["stats"]
        assert (stats["queue"], stats["offered"], stats["waiting"], stats["answered"]) == (
            "billing", 2, 2, 0)
        # An agent sees the queue, not the callers' numbers.
        agent = await h.session("1001")
        status, q = await call(agent, "GET", "/api/queues/billing")
        assert status == 200 and "callers" not in q and q["waiting"] == 2
        assert [m["id"] for m in q["members"]] == ["1001"]
        # The caller is answered: the figures follow.
        h.feed(engine.ready, "1002")
        assert h.feed(engine.answered, "w2@x;b", "1002")
        _, q = await call(boss, "GET", "/api/queues/billing")
        assert (q["waiting"], q["connected"], q["stats"]["answered"]) == (1, 1, 1)
        assert q["stats"]["answered_in_sl"] == 1 and q["stats"]["sl"] is not None
    run(data_dir, body)


@pytest.mark.parametrize(("user", "queue", "status"), [
    ("boss", "water", 403), ("1001", "water", 403), ("viewer", "general", 403),
    ("boss", "nope", 404), ("chief", "water", 200), ("1003", "water", 200),
])
def test_one_queue_by_scope(data_dir: Path, user: str, queue: str, status: int) -> None:
    async def body(h: Harness) -> None:
        s = await h.session(user)
        got, data = await call(s, "GET", f"/api/queues/{queue}")
        assert got == status, data
    run(data_dir, body)


def test_agent_and_queue_endpoints_need_a_session(data_dir: Path) -> None:
    async def body(h: Harness) -> None:
        s = await h.session()
        for method, path in (("GET", "/api/agents"), ("GET", "/api/agents/1001"),
                             ("POST", "/api/agents/1001/state"),
                             ("POST", "/api/agents/1001/wrapup"), ("GET", "/api/queues"),
                             ("GET", "/api/queues/billing")):
            status, data = await call(s, method, path, {"state": "ready"})
            assert (status, data) == (401, {"error": "login required"}), path
    run(data_dir, body)


# --------------------------------------------------------------------------- OpenAPI


def test_openapi_describes_every_api_route(data_dir: Path) -> None:
    async def body(h: Harness) -> None:
        s = await h.session()  # no session needed
        async with s.get("/api/openapi.json") as r:
            assert r.status == 200
            doc = json.loads(await r.text())
        assert doc == json.loads(json.dumps(spec()))
        assert doc["openapi"] == "3.1.0"
        routes = set()
        for route in h.app.router.routes():
            info = route.resource.canonical if route.resource is not None else ""
            if info.startswith("/api/") and route.method != "*":
                routes.add((info, route.method.lower()))
        assert len(routes) > 25
        missing = [(p, m) for p, m in sorted(routes)
                   if m not in doc["paths"].get(p, {}) and not (
                       m == "head" and "get" in doc["paths"].get(p, {}))]
        assert not missing, missing
        documented = {(p, m) for p, ops in doc["paths"].items() for m in ops
                      if p.startswith("/api/")}
        assert documented - routes == set(), "described but not served"
        # Every $ref resolves, every operation answers something.
        text = json.dumps(doc)
        for name in doc["components"]["schemas"]:
            assert f'"#/components/schemas/{name}"' in text or name in ("Cdr",)
        for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
            node = doc
            for key in ref.removeprefix("#/").split("/"):
                node = node[key]
        for ops in doc["paths"].values():
            for op in ops.values():
                assert op["responses"] and op["summary"]
    run(data_dir, body)


# --------------------------------------------------------------------------- passwords


def test_passwords_are_salted_scrypt_hashes(data_dir: Path) -> None:
    config = site_config(data_dir)
    accounts = auth.Accounts(config)
    assert len(accounts) == 7
    kept = accounts._accounts
    a, b = kept["1001"], kept["1002"]
    assert len(a.salt) == len(b.salt) == auth.SALT_BYTES and a.salt != b.salt
    assert a.hash == hashlib.scrypt(PASSWORDS["1001"].encode(), salt=a.salt, n=auth.SCRYPT_N,
                                    r=auth.SCRYPT_R, p=auth.SCRYPT_P, dklen=auth.HASH_BYTES)
    assert a.hash != hashlib.sha256(PASSWORDS["1001"].encode()).digest()
    assert PASSWORDS["1001"].encode() not in repr(kept).encode()
    # Two builds salt differently: the same password never hashes the same.
    assert auth.Accounts(config)._accounts["1001"].hash != a.hash
    who = accounts.check("1001", PASSWORDS["1001"])
    assert who is not None and who.agent == "1001"
    assert accounts.check("1001", PASSWORDS["1002"]) is None
    assert accounts.check("nobody", PASSWORDS["1001"]) is None
    assert accounts.check("", "") is None


def test_unknown_logins_cost_a_hash_too(data_dir: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    accounts = auth.Accounts(site_config(data_dir))
    hashed: list[bytes] = []
    real = auth.password_hash

    def counting(password: str, salt: bytes) -> bytes:
        hashed.append(salt)
        return real(password, salt)

    monkeypatch.setattr(auth, "password_hash", counting)
    assert accounts.check("ghost", "whatever") is None
    assert accounts.check("1001", "wrong") is None
    assert len(hashed) == 2 and hashed[0] != hashed[1]


def test_login_verifies_off_the_loop(data_dir: Path) -> None:
    async def body(h: Harness) -> None:
        s = await h.session()
        results = await asyncio.gather(*(
            s.post("/api/login", json={"user": u, "password": p})
            for u, p in [("1001", PASSWORDS["1001"]), ("1002", "bad"), ("ghost", "x")] * 3))
        assert sorted(r.status for r in results) == [200] * 3 + [401] * 6
        for r in results:
            r.release()
    run(data_dir, body)


def test_the_api_server_builds_accounts_off_the_loop(data_dir: Path) -> None:
    from hotline.api import ApiServer
    from hotline.config import Address

    config = site_config(data_dir)
    config = SiteConfig(source="<test>", server=Srv(http=Address("127.0.0.1", 0),
                                                    data_dir=data_dir),
                        agents=config.agents, users=config.users, queues=config.queues)

    async def main() -> None:
        server = ApiServer(config)
        addresses = await server.start()
        try:
            assert server.app is not None and len(server.app[STATE].accounts) == 7
            async with aiohttp.ClientSession() as s:
                url = f"http://127.0.0.1:{addresses[0][2]}/api/login"
                async with s.post(url, json={"user": "boss",
                                             "password": PASSWORDS["boss"]}) as r:
                    assert r.status == 200
        finally:
            await server.close()
    asyncio.run(main())


def test_listeners_come_and_go_with_the_app(data_dir: Path) -> None:
    async def main() -> None:
        h = Harness(data_dir)
        assert h.acd is not None
        before = list(h.acd.listeners)
        async with h:
            assert len(h.acd.listeners) == len(before) + 1
            hub = h.state.hub
            assert hub is not None and hub.on_event in h.acd.listeners
        assert h.acd.listeners == before
    asyncio.run(main())
