"""``/api/ws`` against a real ACD engine: events reach the sockets in scope and no
other, the screen pop carries the caller's history from the database, commands run
with the REST rules, and slow or logged-out clients are closed.

The site and :class:`Harness` are ``test_api_acd.py``'s. Call commands need live calls,
which only call control has; :class:`FakeControl` implements just the
:class:`hotline.callcontrol.CallControl` methods the commands use, around the real
:class:`hotline.acdctl.AcdService`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_api_acd import REGULAR, Harness, answered_call, populate, site_config

from acd.agent import AgentState
from hotline.acdctl import AcdService
from hotline.api import ws as ws_mod

WS = aiohttp.ClientWebSocketResponse


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ws-site") / "data"
    populate(d)
    return d


def run(data_dir: Path, body: Callable[[Harness], Awaitable[None]], **kw: Any) -> None:
    async def main() -> None:
        async with Harness(data_dir, **kw) as h:
            await asyncio.wait_for(body(h), 20)
    asyncio.run(main())


async def connect(h: Harness, user: str) -> tuple[WS, dict[str, Any]]:
    """A logged-in socket and its ``hello``."""
    s = await h.session(user)
    ws = await s.ws_connect("/api/ws", headers={"Origin": h.base})
    _early.pop(id(ws), None)
    hello = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello"
    return ws, hello


#: Events that arrived before a command's reply, per socket, for :func:`next_of`.
_early: dict[int, list[dict[str, Any]]] = {}


async def next_of(ws: WS, kind: str, timeout: float = 5) -> dict[str, Any]:
    """The next message of type ``kind`` (others are skipped)."""
    early = _early.get(id(ws), [])
    while early:
        msg = early.pop(0)
        if msg.get("type") == kind:
            return msg

    async def loop() -> dict[str, Any]:
        while True:
            msg = await ws.receive_json()
            if msg.get("type") == kind:
                return msg
    return await asyncio.wait_for(loop(), timeout)


async def drain(ws: WS, wait: float = 0.2) -> list[dict[str, Any]]:
    """Every message that arrives within ``wait`` seconds (ticks left out)."""
    out = []
    while True:
        try:
            msg = await ws.receive(timeout=wait)
        except TimeoutError:
            return out
        if msg.type is not aiohttp.WSMsgType.TEXT:
            return out
        data = json.loads(msg.data)
        if data.get("type") != "queue_stats":
            out.append(data)


async def command(ws: WS, cmd: str, **args: Any) -> dict[str, Any]:
    """Send a command and return its reply (events before it are kept for
    :func:`next_of`)."""
    ident = int(time.monotonic() * 1e6)
    await ws.send_json({"id": ident, "cmd": cmd, **args})

    async def loop() -> dict[str, Any]:
        while True:
            msg = await ws.receive_json()
            if "type" not in msg:
                assert msg["id"] == ident, msg
                return msg
            _early.setdefault(id(ws), []).append(msg)
    return await asyncio.wait_for(loop(), 5)


# --------------------------------------------------------------------------- connecting


def test_the_socket_needs_a_session_and_the_same_origin(data_dir: Path) -> None:
    async def body(h: Harness) -> None:
        anon = await h.session()
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await anon.ws_connect("/api/ws")
        assert err.value.status == 401
        s = await h.session("1001")
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await s.ws_connect("/api/ws", headers={"Origin": "https://evil.example"})
        assert err.value.status == 403
        async with s.get("/api/ws") as r:  # a plain GET is no upgrade
            assert (r.status, await r.json()) == (400, {"error": "expected a WebSocket upgrade"})
        ws = await s.ws_connect("/api/ws")  # no Origin: not a browser, allowed
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        await ws.close()
    run(data_dir, body)


def test_hello_is_a_scoped_snapshot(data_dir: Path) -> None:
    async def body(h: Harness) -> None:
        h.feed(h.engine.login, "1003", ready=True)
        _, hello = await connect(h, "boss")
        assert hello["user"]["user"] == "boss"
        assert [a["id"] for a in hello["agents"]] == ["1001", "1002"]
        assert [q["name"] for q in hello["queues"]] == ["billing", "general"]
        assert hello["reasons"] == ["break", "lunch", "training"]
        assert "dtmf" in hello["commands"]
        _, hello = await connect(h, "1003")
        assert [(a["id"], a["state"]) for a in hello["agents"]] == [("1003", "ready")]
        assert [q["name"] for q in hello["queues"]] == ["water", "general"]
    run(data_dir, body)


# --------------------------------------------------------------------------- events


def test_state_changes_come_back_as_events_in_scope(data_dir: Path) -> None:
    async def body(h: Harness) -> None:
        me, _ = await connect(h, "1001")
        other, _ = await connect(h, "1002")
        water, _ = await connect(h, "1003")
        boss, _ = await connect(h, "boss")
        admin, _ = await connect(h, "admin")
        rest = await h.session("1001")
        async with rest.post("/api/agents/1001/state",
                             json={"state": "login", "reason": "lunch"}) as r:
            assert r.status == 200
        assert h.engine.agents["1001"].state is AgentState.NOT_READY
        for ws in (me, boss, admin):
            ev = await next_of(ws, "agent_state")
            assert (ev["agent"], ev["previous"], ev["state"]) == (
                "1001", "logged_out", "not_ready")
            # login then the reason: the second change carries it
            ev = await next_of(ws, "agent_state")
            assert (ev["state"], ev["reason"]) == ("not_ready", "lunch")
            assert ev["at"].endswith("+00:00")
        assert await drain(other) == [] and await drain(water) == []
    run(data_dir, body)


def test_set_state_command(data_dir: Path) -> None:
    async def body(h: Harness) -> None:
        ws, _ = await connect(h, "1001")
        reply = await command(ws, "set_state", state="ready")
        assert reply["ok"] is True and reply["agent"]["state"] == "ready"
        assert h.engine.agents["1001"].state is AgentState.READY
        ev = await next_of(ws, "agent_state")
        assert (ev["agent"], ev["state"]) == ("1001", "ready")
        reply = await command(ws, "set_state", agent="1002", state="ready")
        assert reply == {"id": reply["id"], "error": "an agent changes its own state only",
                         "status": 403}
        reply = await command(ws, "set_state", state="not_ready", reason="nap")
        assert reply["status"] == 400
        await command(ws, "set_state", state="logged_out")
        reply = await command(ws, "set_state", state="not_ready")
        assert reply["status"] == 409 and "cannot not_ready" in reply["error"]
        reply = await command(ws, "wrapup", extend=10)
        assert reply["status"] == 409
        boss, _ = await connect(h, "boss")
        reply = await command(boss, "set_state", state="ready")
        assert reply["status"] == 400  # a supervisor names the agent
        reply = await command(boss, "set_state", agent="1002", state="login")
        assert reply["ok"] and h.engine.agents["1002"].state is AgentState.NOT_READY
        reply = await command(boss, "set_state", agent="1003", state="login")
        assert reply["status"] == 403
    run(data_dir, body)


def test_call_offered_reaches_the_right_agent_only(data_dir: Path) -> None:
    async def body(h: Harness) -> None:
        me, _ = await connect(h, "1001")
        other, _ = await connect(h, "1002")
        water, _ = await connect(h, "1003")
        boss, _ = await connect(h, "boss")
        engine = h.engine
        h.feed(engine.login, "1002", queues=["billing"])  # logged in, not ready
        h.feed(engine.login, "1001", queues=["billing"], ready=True)
        h.feed(engine.enqueue, "pop@x;tag", "billing", caller=REGULAR, priority=2,
               variables={"account": "88-1234", "menu": "1"})
        offer = await next_of(me, "call_offered")
        assert offer["call_id"] == "pop@x"
        assert (offer["agent"], offer["queue"], offer["caller"], offer["priority"]) == (
            "1001", "billing", REGULAR, 2)
        assert offer["variables"] == {"account": "88-1234", "menu": "1"}
        assert offer["ring_timeout"] == 15 and offer["wait"] >= 0
        # The screen pop: the caller's five latest calls, newest first.
        history = offer["history"]
        assert [c["call_id"] for c in history] == [f"old-{i}@x" for i in (5, 4, 3, 2, 1)]
        assert history[0] == {
            "call_id": "old-5@x", "time": "2024-05-06T08:00:00.000+00:00",
            "queue": "billing", "agent": "1002", "disposition": "answered",
            "billsec": 87, "recording_id": "rec-5"}
        assert (await next_of(boss, "call_offered"))["agent"] == "1001"
        # Ordering is kept: the pop comes before the ringing state that followed it.
        got = [m for m in await drain(other) if m["type"] != "agent_state"]
        assert got == []
        assert await drain(water) == []
        # Answer, then the caller hangs up.
        assert h.feed(engine.answered, "pop@x;tag", "1001")
        ev = await next_of(me, "call_answered")
        assert (ev["call_id"], ev["agent"], ev["queue"]) == ("pop@x", "1001", "billing")
        h.feed(engine.call_ended, "pop@x;tag")
        ev = await next_of(me, "call_ended")
        assert (ev["call_id"], ev["agent"], ev["reason"]) == ("pop@x", "1001", "caller_hangup")
        ev = await next_of(me, "agent_state")
        while ev["state"] != "wrapup":
            ev = await next_of(me, "agent_state")
        assert ev["call_id"] == "pop@x"
        assert all(m["type"] != "call_offered" for m in await drain(other))
    run(data_dir, body)


def test_offer_withdrawn_and_abandon(data_dir: Path) -> None:
    async def body(h: Harness) -> None:
        me, _ = await connect(h, "1001")
        boss, _ = await connect(h, "boss")
        water, _ = await connect(h, "1003")
        engine = h.engine
        h.feed(engine.login, "1001", queues=["billing"], ready=True)
        h.feed(engine.enqueue, "gone@x;t", "billing", caller="13600000000")
        await next_of(me, "call_offered")
        queued = await next_of(boss, "call_queued")
        assert (queued["call_id"], queued["caller"], queued["position"]) == (
            "gone@x", "13600000000", 1)
        h.feed(engine.call_ended, "gone@x;t")  # the caller hangs up while it rings
        ev = await next_of(me, "offer_withdrawn")
        assert (ev["call_id"], ev["reason"]) == ("gone@x", "caller_left")
        ev = await next_of(boss, "call_ended")
        assert (ev["reason"], ev["agent"]) == ("abandoned", None)
        assert all(m["type"] not in ("call_ended", "call_queued") for m in await drain(me))
        assert await drain(water) == []
    run(data_dir, body)


def test_queue_stats_ticks(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws_mod, "TICK", 0.05)

    async def body(h: Harness) -> None:
        h.feed(h.engine.enqueue, "t1@x;a", "billing", caller="13500000000")
        boss, _ = await connect(h, "boss")
        tick = await next_of(boss, "queue_stats")
        billing = {q["name"]: q for q in tick["queues"]}["billing"]
        assert [q["name"] for q in tick["queues"]] == ["billing", "general"]
        assert billing["waiting"] == 1 and billing["longest_wait"] >= 0
        assert set(billing["agents"]) >= {"ready", "not_ready", "logged_out"}
        water, _ = await connect(h, "1003")
        tick = await next_of(water, "queue_stats")
        assert [q["name"] for q in tick["queues"]] == ["water", "general"]
    run(data_dir, body)


# --------------------------------------------------------------------------- clients


def test_logout_closes_the_socket(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws_mod, "TICK", 0.05)

    async def body(h: Harness) -> None:
        s = await h.session("1001")
        ws = await s.ws_connect("/api/ws")
        await ws.receive_json(timeout=5)
        async with s.post("/api/logout") as r:
            assert r.status == 204
        while True:
            msg = await ws.receive(timeout=5)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
        assert ws.close_code == ws_mod.CLOSE_SESSION_ENDED
        assert h.state.hub is not None and not h.state.hub.clients
    run(data_dir, body)


def test_a_slow_client_is_dropped_not_waited_for(data_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws_mod, "CLIENT_QUEUE", 3)

    async def body(h: Harness) -> None:
        slow, _ = await connect(h, "1001")
        fine, _ = await connect(h, "1003")  # does not see 1001's changes
        engine = h.engine
        # Eight changes in one go: the writers get no turn in between.
        for _ in range(4):
            h.feed(engine.ready, "1001")
            h.feed(engine.logout, "1001")
        msg = await slow.receive(timeout=5)
        while msg.type is aiohttp.WSMsgType.TEXT:
            msg = await slow.receive(timeout=5)
        assert slow.close_code == ws_mod.CLOSE_TOO_SLOW
        assert h.engine.agents["1001"].state is AgentState.LOGGED_OUT
        # The ACD went on, and so do the other clients.
        h.feed(engine.ready, "1003")
        assert (await next_of(fine, "agent_state"))["agent"] == "1003"
        assert h.state.hub is not None and len(h.state.hub.clients) == 1
    run(data_dir, body)


def test_bad_commands(data_dir: Path) -> None:
    async def body(h: Harness) -> None:
        ws, _ = await connect(h, "1001")
        await ws.send_str("not json")
        assert await ws.receive_json(timeout=5) == {
            "id": None, "error": "expected a JSON object", "status": 400}
        await ws.send_json([1, 2])
        assert (await ws.receive_json(timeout=5))["error"] == "expected a JSON object"
        await ws.send_bytes(b"\x00")
        assert (await ws.receive_json(timeout=5))["error"] == "expected JSON text"
        reply = await command(ws, "fly")
        assert (reply["error"], reply["status"]) == ("unknown command 'fly'", 400)
        reply = await command(ws, "dtmf", digits="123")
        assert (reply["error"], reply["status"]) == ("call control is not running", 503)
        reply = await command(ws, "hold")  # no call control in this harness
        assert (reply["error"], reply["status"]) == ("call control is not running", 503)
    run(data_dir, body)


# --------------------------------------------------------------------------- call commands


@dataclass(eq=False)
class FakeLeg:
    user: str | None
    parked: bool = False
    muted: bool = False


@dataclass(eq=False)
class FakeCall:
    id: str
    key: str
    legs: list[FakeLeg] = field(default_factory=list)
    ended: str = ""


class FakeControl:
    """The :class:`CallControl` methods call commands use, around a real ACD."""

    def __init__(self, acd: AcdService) -> None:
        self.acd = acd
        self.calls: dict[str, FakeCall] = {}
        self.transfers: list[tuple[FakeLeg, str]] = []
        self.audits: list[tuple[str, str, str, str]] = []
        self.digits: list[tuple[FakeLeg, str]] = []
        self.supervisions: list[tuple[str, str, str, str, str]] = []

    def add(self, call_id: str, *agents: str) -> FakeCall:
        call = FakeCall(call_id, f"{call_id};tag", [FakeLeg(None), *(FakeLeg(a)
                                                                     for a in agents)])
        self.calls[call.key] = call
        return call

    def find_call(self, call_id: str) -> FakeCall | None:
        return next((c for c in self.calls.values() if c.id == call_id), None)

    def agent_leg(self, call: FakeCall, agent: str | None = None) -> FakeLeg | None:
        return next((x for i, x in enumerate(call.legs) if x.user is not None
                     and (x.user == agent if agent is not None else i > 0)), None)

    def agents_in(self, call: FakeCall) -> list[str]:
        return [x.user for x in call.legs if x.user is not None]

    def set_parked(self, leg: FakeLeg, on: bool) -> None:
        leg.parked = on

    def set_muted(self, leg: FakeLeg, on: bool) -> None:
        leg.muted = on

    def transfer(self, leg: FakeLeg, number: str, now: float) -> str | None:
        if number == "000":
            return "no agent or trunk route for 000"
        self.transfers.append((leg, number))
        return None

    def send_dtmf(self, leg: FakeLeg, digits: str) -> str | None:
        if digits == "0":
            return "nobody to send digits to"
        self.digits.append((leg, digits))
        return None

    def end_call(self, call: FakeCall, cause: str, by: str | None = None) -> None:
        call.ended = cause
        self.calls.pop(call.key, None)

    def now(self) -> float:
        return self.acd.now()

    def supervise(self, call: FakeCall, agent: str, phone: str, mode: str, actor: str,
                  now: float) -> str | None:
        if phone == "9999":
            return "extension 9999 is not registered"
        self.supervisions.append((call.id, agent, phone, mode, actor))
        return None

    def audit(self, actor: str, action: str, target: str, call_id: str) -> None:
        self.audits.append((actor, action, target, call_id))

    def describe(self, call: FakeCall, *, monitors: bool = True) -> dict[str, object]:
        return {"id": call.id, "legs": [{"agent": x.user, "held": x.parked, "muted": x.muted}
                                        for x in call.legs]}


def with_control(data_dir: Path, body: Callable[[Harness, FakeControl], Awaitable[None]]
                 ) -> None:
    config = site_config(data_dir)
    acd = AcdService(config, time.monotonic, time.time() - time.monotonic())
    control = FakeControl(acd)

    async def inner(h: Harness) -> None:
        await body(h, control)
    run(data_dir, inner, calls=control)


def test_call_commands_act_on_the_agents_own_call(data_dir: Path) -> None:
    async def body(h: Harness, control: FakeControl) -> None:
        answered_call(h, "1001", "q1@x;tag")
        call = control.add("q1@x", "1001")
        ws, _ = await connect(h, "1001")
        reply = await command(ws, "hold")  # no call_id: the agent's queue call
        assert reply["ok"] and call.legs[1].parked
        assert reply["call"]["legs"][1] == {"agent": "1001", "held": True, "muted": False}
        await command(ws, "unhold")
        await command(ws, "mute", call_id="q1@x")
        assert (call.legs[1].parked, call.legs[1].muted) == (False, True)
        await command(ws, "unmute")
        assert not call.legs[1].muted
        reply = await command(ws, "transfer", number="1002")
        assert reply["ok"] and control.transfers == [(call.legs[1], "1002")]
        reply = await command(ws, "transfer", number="000")
        assert (reply["status"], reply["error"]) == (409, "no agent or trunk route for 000")
        reply = await command(ws, "transfer")
        assert reply["status"] == 400
        reply = await command(ws, "hold", agent="1002")
        assert reply["status"] == 403
        reply = await command(ws, "hangup")
        assert reply == {"id": reply["id"], "ok": True, "call_id": "q1@x"}
        assert call.ended == "api_hangup" and control.audits == []
        reply = await command(ws, "hold")
        assert (reply["status"], reply["error"]) == (409, "agent 1001 is on no call")
    with_control(data_dir, body)


def test_supervise_is_for_supervisors_validated_and_audited(data_dir: Path) -> None:
    async def body(h: Harness, control: FakeControl) -> None:
        control.add("c2@x", "1002")
        me, _ = await connect(h, "1002")
        reply = await command(me, "supervise", call_id="c2@x", agent="1002", phone="1001",
                              mode="listen")
        assert (reply["status"], reply["error"]) == (403, "supervision is for supervisors")
        boss, _ = await connect(h, "boss")
        for bad in ({"mode": "spy"}, {"phone": ""}):
            args = {"call_id": "c2@x", "agent": "1002", "phone": "1004", "mode": "listen",
                    **bad}
            reply = await command(boss, "supervise", **args)
            assert reply["status"] == 400, bad
        reply = await command(boss, "supervise", call_id="c2@x", agent="1002", phone="9999",
                              mode="listen")
        assert (reply["status"], reply["error"]) == (409, "extension 9999 is not registered")
        reply = await command(boss, "supervise", call_id="c2@x", agent="1002", phone="1004",
                              mode="whisper")
        assert reply["ok"], reply
        assert control.supervisions == [("c2@x", "1002", "1004", "whisper", "boss")]
        assert control.audits == [("boss", "supervise:whisper", "1002", "c2@x")]
    with_control(data_dir, body)


def test_call_commands_are_scoped(data_dir: Path) -> None:
    async def body(h: Harness, control: FakeControl) -> None:
        theirs = control.add("c2@x", "1002")
        water = control.add("c3@x", "1003")
        me, _ = await connect(h, "1001")
        reply = await command(me, "hangup", call_id="c2@x")
        assert (reply["status"], reply["error"]) == (404, "no such live call")
        assert not theirs.ended
        boss, _ = await connect(h, "boss")
        reply = await command(boss, "hold", call_id="c3@x")
        assert reply["status"] == 404
        reply = await command(boss, "mute", call_id="c2@x")  # default: the call's agent
        assert reply["ok"] and theirs.legs[1].muted
        reply = await command(boss, "hold")
        assert reply["status"] == 400  # a supervisor names the call
        reply = await command(boss, "hangup", call_id="c2@x")
        assert reply["ok"] and theirs.ended == "api_hangup"
        assert control.audits == [("boss", "force_disconnect", "1002", "c2@x")]
        admin, _ = await connect(h, "admin")
        reply = await command(admin, "hold", call_id="c3@x", agent="1003")
        assert reply["ok"] and water.legs[1].parked
    with_control(data_dir, body)


def test_dtmf_goes_to_call_control(data_dir: Path) -> None:
    async def body(h: Harness, control: FakeControl) -> None:
        call = control.add("d@x", "1001")
        ws, _ = await connect(h, "1001")
        reply = await command(ws, "dtmf", digits="12#")
        assert reply["ok"] and control.digits == [(call.legs[1], "12#")]
        for bad in ("", "12x", "1" * 33, 5):
            reply = await command(ws, "dtmf", digits=bad)
            assert reply["status"] == 400, bad
        reply = await command(ws, "dtmf", digits="0")
        assert (reply["status"], reply["error"]) == (409, "nobody to send digits to")
    with_control(data_dir, body)


def test_two_calls_need_a_call_id(data_dir: Path) -> None:
    async def body(h: Harness, control: FakeControl) -> None:
        control.add("a@x", "1001")
        control.add("b@x", "1001")
        ws, _ = await connect(h, "1001")
        reply = await command(ws, "hold")
        assert reply["status"] == 409 and "name call_id" in reply["error"]
        reply = await command(ws, "hold", call_id="b@x")
        assert reply["ok"] and reply["call"]["id"] == "b@x"
    with_control(data_dir, body)
