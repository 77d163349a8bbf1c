"""``/api/ws``: the one WebSocket of the agent desktop and the supervisor console (CTI).

Why this exists: DESIGN.md gives browsers one WebSocket for CTI events and commands.
An agent's desktop must pop the caller's data while the phone rings and show its own
state as the ACD changes it; a supervisor's console shows its teams' agents and its
queues live. Polling the REST endpoints cannot do either in time.

Theory of operation:

* :class:`EventHub` registers one listener in :attr:`AcdService.listeners` when the
  application starts (and removes it at shutdown). The listener runs inside the
  engine's event dispatch, on the loop, so it only turns each event into one JSON text
  and puts it, without waiting, into the bounded queue (:data:`CLIENT_QUEUE`) of every
  client whose scope covers it. Each client has a writer task that drains its queue
  into the socket; a client whose queue is full is too slow and is closed (code
  :data:`CLOSE_TOO_SLOW`), so one stuck browser never holds up the ACD or the others.
* The screen pop (``call_offered``) needs the caller's last CDRs from the database: the
  listener starts one lookup task per offer and puts the *task* in the queues; the
  writers await it in place, so events keep their order.
* Every :data:`TICK` seconds the hub sends ``queue_stats`` (callers waiting, longest
  wait, agents by state per visible queue) and checks that each client's session still
  lives; an open socket counts as activity, and a logged-out or expired session closes
  it (:data:`CLOSE_SESSION_ENDED`).
* Commands are JSON objects ``{"id": n, "cmd": ..., ...}`` answered in order with
  ``{"id": n, "ok": true, ...}`` or ``{"id": n, "error": "...", "status": ...}``; they
  run the same code and scope checks as the REST endpoints.

Scope: as for REST. A client gets the events of the agents in its scope
(``agent_state``, ``call_offered``, ``offer_withdrawn``, ``call_answered``, ``call_ended``
of their calls); supervisors and admins also get callers joining and leaving the queues
they see without an agent (``call_queued``, ``call_ended`` of abandons and exits).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

from acd.events import AcdEvent, AgentStateChanged, CallOffered, OfferWithdrawn, QueueEvent

from ..storage import Storage
from .agents import (
    acd_service,
    agent_json,
    apply_state,
    extend_wrapup,
    memberships,
    public_call_id,
)
from .auth import Principal, principal, same_origin, session_token
from .calls import acting_agent, supervise_call
from .errors import ApiError
from .queues import queue_summary, sees_queue
from .state import STATE, ApiState
from .wrapup import dispositions

if TYPE_CHECKING:
    from web_softphone.gateway import WebPhone

    from ..callcontrol import Call, CallControl, Leg

__all__ = [
    "CLIENT_QUEUE",
    "CLOSE_SESSION_ENDED",
    "CLOSE_TOO_SLOW",
    "COMMANDS",
    "HISTORY",
    "TICK",
    "EventHub",
    "caller_history",
    "routes",
]

logger = logging.getLogger("hotline.api.ws")

#: Seconds between ``queue_stats`` pushes (and session checks).
TICK = 2.0
#: Messages a client may have waiting before it counts as too slow and is closed.
CLIENT_QUEUE = 256
#: CDRs of the caller in a screen pop.
HISTORY = 5
#: Seconds the screen pop waits for the caller's history before it goes without.
HISTORY_TIMEOUT = 2.0
#: Largest command accepted (bytes).
MAX_MESSAGE = 64 * 1024
#: Seconds between WebSocket pings (a dead peer is dropped after one unanswered).
HEARTBEAT = 30.0
#: Close codes (the 4000-4999 range is the application's, RFC 6455 7.4.2).
CLOSE_SESSION_ENDED = 4001
CLOSE_TOO_SLOW = 4008
#: Digits the ``dtmf`` command sends, and at most how many at once.
DTMF_DIGITS = "0123456789*#ABCD"
MAX_DIGITS = 32
#: Commands understood.
COMMANDS = ("set_state", "wrapup", "hangup", "hold", "unhold", "mute", "unmute",
            "transfer", "dtmf", "supervise")
#: Roles that also see callers who leave a queue without an agent.
_QUEUE_ROLES = frozenset({"supervisor", "admin"})
_QUEUE_EXITS = {"ABANDON": "abandoned", "EXITWITHTIMEOUT": "timeout",
                "EXITWITHKEY": "exit_key", "EXITEMPTY": "empty"}
_COMPLETIONS = {"COMPLETECALLER": "caller_hangup", "COMPLETEAGENT": "agent_hangup",
                "TRANSFER": "transferred"}

Item = str | asyncio.Future[str]


def _dump(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")


def _int(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:
        return None


def caller_history(storage: Storage, caller: str, exclude_call: str,
                   limit: int = HISTORY) -> list[dict[str, Any]]:
    """The caller's last ``limit`` calls (their CDRs' caller legs), newest first, but
    the call ``exclude_call`` (the one ringing). Runs on the database thread."""
    rows = storage.query(
        "SELECT call_id, start_time, queue, agent, disposition, billsec, recording_id "
        "FROM cdr WHERE caller = ? AND leg = 'caller' AND call_id != ? "
        "ORDER BY start_time DESC, id DESC LIMIT ?",
        (caller, exclude_call, limit))
    return [{"call_id": call_id,
             "time": datetime.fromisoformat(start).isoformat(timespec="milliseconds"),
             "queue": queue, "agent": agent, "disposition": disposition,
             "billsec": billsec, "recording_id": recording_id}
            for call_id, start, queue, agent, disposition, billsec, recording_id in rows]


@dataclass(eq=False)
class _Client:
    ws: web.WebSocketResponse
    who: Principal
    token: str
    queue: asyncio.Queue[Item] = field(
        default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))
    writer: asyncio.Task[None] | None = None
    closed: bool = False


class EventHub:
    """The WebSocket clients and the ACD listener feeding them (module docstring)."""

    def __init__(self, state: ApiState) -> None:
        self.state = state
        self.clients: set[_Client] = set()
        self._tick: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._attached = False

    # -- lifecycle -----------------------------------------------------------------
    async def start(self, app: web.Application) -> None:
        """``on_startup``: listen to the ACD and start the ticks."""
        acd = self.state.acd
        if acd is not None and not self._attached:
            acd.listeners.append(self.on_event)
            self._attached = True
        self._tick = asyncio.get_running_loop().create_task(self._ticks())

    async def shutdown(self, app: web.Application) -> None:
        """``on_shutdown``: stop listening and close every socket (going away)."""
        acd = self.state.acd
        if acd is not None and self._attached:
            with contextlib.suppress(ValueError):
                acd.listeners.remove(self.on_event)
            self._attached = False
        if self._tick is not None:
            self._tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick
            self._tick = None
        await asyncio.gather(*(self.close(c, WSCloseCode.GOING_AWAY, "server shutdown")
                               for c in list(self.clients)))
        for task in list(self._tasks):
            task.cancel()

    def add(self, ws: web.WebSocketResponse, who: Principal, token: str) -> _Client:
        """A new client: its writer starts now."""
        client = _Client(ws, who, token)
        client.writer = asyncio.get_running_loop().create_task(self._write(client))
        self.clients.add(client)
        return client

    async def remove(self, client: _Client) -> None:
        """A client went away: stop its writer."""
        self.clients.discard(client)
        client.closed = True
        if client.writer is not None and client.writer is not asyncio.current_task():
            client.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await client.writer

    async def close(self, client: _Client, code: int, why: str) -> None:
        """Close ``client``'s socket with ``code`` (its writer stops)."""
        client.closed = True
        self.clients.discard(client)
        if client.writer is not None:
            client.writer.cancel()
        with contextlib.suppress(Exception):
            await client.ws.close(code=code, message=why.encode())

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- sending -------------------------------------------------------------------
    def send(self, client: _Client, item: Item) -> None:
        """Queue a message (or a pending screen pop) for ``client``; a full queue
        closes it (too slow)."""
        if client.closed:
            return
        try:
            client.queue.put_nowait(item)
        except asyncio.QueueFull:
            logger.warning("ws_client_too_slow", extra={"user": client.who.login})
            client.closed = True
            self._spawn(self.close(client, CLOSE_TOO_SLOW, "too slow"))

    def _fan_out(self, item: Item, wants: Callable[[Principal], bool]) -> None:
        for client in list(self.clients):
            if wants(client.who):
                self.send(client, item)

    async def _write(self, client: _Client) -> None:
        ws = client.ws
        try:
            while True:
                item = await client.queue.get()
                if isinstance(item, asyncio.Future):
                    try:
                        item = await asyncio.shield(item)
                    except Exception:  # noqa: BLE001 - the pop builder logs its own
                        continue
                await ws.send_str(item)
        except (ConnectionError, RuntimeError):
            client.closed = True  # the socket is gone; the handler notices
        except Exception:  # noqa: BLE001 - a bug here must not go unseen
            logger.exception("ws_writer_failed", extra={"user": client.who.login})
            client.closed = True

    # -- ACD events ----------------------------------------------------------------
    def on_event(self, event: AcdEvent) -> None:
        """The ACD listener: turn ``event`` into messages for the clients in scope."""
        if not self.clients:
            return
        acd = self.state.acd
        if acd is None:
            return
        state = self.state
        match event:
            case AgentStateChanged():
                agent = event.agent
                self._fan_out(_dump({
                    "type": "agent_state", "agent": agent, "state": event.state,
                    "previous": event.previous, "reason": event.reason or None,
                    "call_id": public_call_id(state, event.call_id),
                    "queue": event.queue or None, "at": _iso(event.at + acd.wall_offset),
                }), lambda who: who.sees_agent(agent))
            case CallOffered():
                agent = event.agent
                pop = self._spawn(self._screen_pop(event, acd.wall_offset))
                self._fan_out(pop, lambda who: who.sees_agent(agent))
            case OfferWithdrawn():
                agent = event.agent
                self._fan_out(_dump({
                    "type": "offer_withdrawn", "call_id": public_call_id(state, event.call_id),
                    "agent": agent, "reason": event.reason,
                }), lambda who: who.sees_agent(agent))
            case QueueEvent():
                self._queue_event(event, acd.wall_offset)

    def _queue_event(self, ev: QueueEvent, wall_offset: float) -> None:
        state, acd = self.state, self.state.acd
        assert acd is not None
        engine = acd.engine
        queue, agent = ev.queue, ev.agent
        base = {"call_id": public_call_id(state, ev.call_id), "queue": queue,
                "at": _iso(ev.at + wall_offset)}

        def agent_scope(who: Principal) -> bool:
            return who.sees_agent(agent)

        def queue_scope(who: Principal) -> bool:
            return who.role in _QUEUE_ROLES and sees_queue(who, engine, queue)

        data = ev.data
        if ev.event == "CONNECT":
            self._fan_out(_dump({"type": "call_answered", **base, "agent": agent,
                                 "hold_time": _int(data[0]) if data else None}),
                          agent_scope)
        elif ev.event in _COMPLETIONS:
            talk = data[3] if ev.event == "TRANSFER" and len(data) > 3 else (
                data[1] if ev.event != "TRANSFER" and len(data) > 1 else "")
            self._fan_out(_dump({"type": "call_ended", **base, "agent": agent,
                                 "reason": _COMPLETIONS[ev.event],
                                 "talk_time": _int(talk) if talk else None}),
                          agent_scope)
        elif ev.event in _QUEUE_EXITS:
            wait = data[-1] if data else ""
            self._fan_out(_dump({"type": "call_ended", **base, "agent": None,
                                 "reason": _QUEUE_EXITS[ev.event],
                                 "wait": _int(wait) if wait else None}),
                          queue_scope)
        elif ev.event == "ENTERQUEUE":
            self._fan_out(_dump({"type": "call_queued", **base,
                                 "caller": data[1] if len(data) > 1 else "",
                                 "position": _int(data[2]) if len(data) > 2 else None}),
                          queue_scope)

    async def _screen_pop(self, ev: CallOffered, wall_offset: float) -> str:
        """The ``call_offered`` message: the offer, the IVR's variables and the
        caller's last calls (without them if the database does not answer in time)."""
        state = self.state
        call_id = public_call_id(state, ev.call_id) or ""
        history: list[dict[str, Any]] | None = []
        if ev.caller:
            db = state.db
            try:
                history = await asyncio.wait_for(
                    db.run(caller_history, db.storage, ev.caller, call_id),
                    HISTORY_TIMEOUT)
            except Exception:  # noqa: BLE001 - a pop without history beats none
                logger.exception("screen_pop_history_failed", extra={"call_id": call_id})
                history = None
        return _dump({
            "type": "call_offered", "call_id": call_id, "agent": ev.agent,
            "queue": ev.queue, "caller": ev.caller, "wait": round(ev.wait, 1),
            "priority": ev.priority, "ring_timeout": ev.ring_timeout,
            "variables": dict(ev.variables), "callback": ev.callback or None,
            "history": history,
        })

    # -- ticks ---------------------------------------------------------------------
    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                await self.tick()
            except Exception:  # noqa: BLE001 - the next tick tries again
                logger.exception("ws_tick_failed")

    async def tick(self) -> None:
        """One tick: close clients whose session ended, push ``queue_stats``."""
        sessions = self.state.sessions
        for client in list(self.clients):
            if sessions.get(client.token) is None:
                await self.close(client, CLOSE_SESSION_ENDED, "session ended")
        acd = self.state.acd
        if acd is None or not self.clients:
            return
        engine = acd.engine
        now = acd.now()
        summaries = {q: queue_summary(engine, q, now) for q in engine.queues}
        at = _iso(now + acd.wall_offset)
        by_view: dict[tuple[str, ...], str] = {}
        for client in list(self.clients):
            names = tuple(q for q in engine.queues if sees_queue(client.who, engine, q))
            text = by_view.get(names)
            if text is None:
                text = by_view[names] = _dump({
                    "type": "queue_stats", "at": at,
                    "queues": [summaries[q] for q in names]})
            self.send(client, text)

    # -- commands ------------------------------------------------------------------
    def command(self, client: _Client, raw: str, phone: WebPhone | None = None) -> str | None:
        """Run one command text and return the reply text; a browser-phone command
        (:mod:`web_softphone.signaling`) of a client with ``phone`` runs in a task that
        sends its reply when done (None is returned)."""
        try:
            msg = json.loads(raw)
        except ValueError:
            return _dump({"id": None, "error": "expected a JSON object", "status": 400})
        if not isinstance(msg, dict):
            return _dump({"id": None, "error": "expected a JSON object", "status": 400})
        cid = msg.get("id")
        if cid is not None and (isinstance(cid, bool) or not isinstance(cid, int | str)):
            return _dump({"id": None, "error": "id: expected a number or a string",
                          "status": 400})
        if phone is not None and msg.get("cmd") in _phone_commands():
            self._spawn(self._phone_command(client, phone, msg, cid))
            return None
        try:
            result = self._run(client.who, msg)
        except ApiError as exc:
            return _dump({"id": cid, "error": exc.message, "status": exc.status})
        except Exception:  # noqa: BLE001 - a bug answers 500 and is logged
            logger.exception("ws_command_failed", extra={"cmd": str(msg.get("cmd"))[:32]})
            return _dump({"id": cid, "error": "internal error", "status": 500})
        return _dump({"id": cid, "ok": True, **result})

    def _run(self, who: Principal, msg: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        cmd = msg.get("cmd")
        if cmd not in COMMANDS:
            raise ApiError(400, f"unknown command {str(cmd)[:32]!r}")
        if cmd in ("set_state", "wrapup"):
            agent = msg.get("agent", who.agent)
            if not isinstance(agent, str) or not agent:
                raise ApiError(400, "agent: expected an agent id")
            fn = apply_state if cmd == "set_state" else extend_wrapup
            return {"agent": fn(state, who, agent, msg)}
        control = _control(state)
        if cmd == "supervise":  # the call of an agent the supervisor sees
            call, _ = _target(state, control, who, msg, need_leg=True)
            supervise_call(control, who, call, msg)
            return {"call": control.describe(call)}
        call, leg = _target(state, control, who, msg, need_leg=cmd != "hangup")
        if cmd == "hangup":
            control.end_call(call, "api_hangup", by=who.agent if who.role == "agent" else None)
            if who.role != "agent":  # a supervisor's force-disconnect, as over REST
                control.audit(who.login, "force_disconnect",
                              ",".join(control.agents_in(call)), call.id)
            return {"call_id": call.id}
        assert leg is not None
        if cmd in ("hold", "unhold"):
            control.set_parked(leg, cmd == "hold")
        elif cmd in ("mute", "unmute"):
            control.set_muted(leg, cmd == "mute")
        elif cmd == "dtmf":
            digits = msg.get("digits")
            if (not isinstance(digits, str) or not 0 < len(digits) <= MAX_DIGITS
                    or digits.strip(DTMF_DIGITS)):
                raise ApiError(400, f"digits: expected 1..{MAX_DIGITS} of {DTMF_DIGITS}")
            problem = control.send_dtmf(leg, digits)
            if problem is not None:
                raise ApiError(409, problem)
        else:  # transfer
            number = msg.get("number")
            if not isinstance(number, str) or not number or len(number) > 64:
                raise ApiError(400, "number: expected the number or extension to transfer to")
            problem = control.transfer(leg, number, control.now())
            if problem is not None:
                raise ApiError(409, problem)
        return {"call": control.describe(call, monitors=who.role != "agent")}

    async def _phone_command(self, client: _Client, phone: WebPhone, msg: dict[str, Any],
                             cid: int | str | None) -> None:
        """Carry out a browser-phone command (it waits on the media workers) and send
        its reply."""
        from web_softphone.gateway import PhoneError
        from web_softphone.signaling import run_phone_command
        phones = self.state.softphones
        assert phones is not None
        try:
            result = await run_phone_command(phones, phone, msg)
        except PhoneError as exc:
            self.send(client, _dump({"id": cid, "error": exc.message, "status": exc.status}))
        except Exception:  # noqa: BLE001 - a bug answers 500 and is logged
            logger.exception("ws_phone_command_failed", extra={"cmd": msg.get("cmd")})
            self.send(client, _dump({"id": cid, "error": "internal error", "status": 500}))
        else:
            self.send(client, _dump({"id": cid, "ok": True, **result}))

    # -- snapshot ------------------------------------------------------------------
    def hello(self, who: Principal, phone: WebPhone | None = None) -> str:
        """The first message: the login, its agents and its queues as they are now."""
        state = self.state
        acd = acd_service(state)
        engine = acd.engine
        now = acd.now()
        configs = {a.id: a for a in state.config.agents}
        member_of = memberships(engine)
        return _dump({
            "type": "hello", "user": who.to_json(),
            "reasons": list(state.config.acd.reasons),
            "agents": [agent_json(state, acd, a, configs, member_of, now)
                       for a in sorted(engine.agents) if who.sees_agent(a)],
            "queues": [queue_summary(engine, q, now) for q in engine.queues
                       if sees_queue(who, engine, q)],
            "commands": list(COMMANDS) + (list(_phone_commands()) if phone else []),
            "phone": phone.status() if phone is not None else None,
            "dispositions": dispositions(state.config),
        })


def _phone_commands() -> tuple[str, ...]:
    from web_softphone.signaling import PHONE_COMMANDS
    return PHONE_COMMANDS


def _control(state: ApiState) -> CallControl:
    if state.calls is None:
        raise ApiError(503, "call control is not running")
    return state.calls


def _target(state: ApiState, control: CallControl, who: Principal, msg: dict[str, Any], *,
            need_leg: bool) -> tuple[Call, Leg | None]:
    """The call a call command acts on and the agent leg in it, with the REST scope
    rules (``/api/calls``): an agent on its own leg, a supervisor on its teams' calls."""
    agent = acting_agent(who, msg)
    call_id = msg.get("call_id")
    if call_id is not None:
        if not isinstance(call_id, str):
            raise ApiError(400, "call_id: expected a call id string")
        call = control.find_call(call_id)
        if call is None or not (who.scope is None or who.sees(control.agents_in(call))):
            raise ApiError(404, "no such live call")
    elif agent is not None:
        call = _current_call(state, control, agent)
    else:
        raise ApiError(400, "call_id: required (or agent)")
    leg = control.agent_leg(call, agent)
    if leg is None and need_leg:
        raise ApiError(409, "the call has no answered leg of that agent")
    if leg is None and who.role == "agent":
        raise ApiError(403, "an agent hangs up its own calls only")
    return call, leg


def _current_call(state: ApiState, control: CallControl, agent: str) -> Call:
    """The call ``agent`` is on: its queue call, else its only call."""
    acd = state.acd
    if acd is not None and agent in acd.engine.agents:
        key = acd.engine.agents[agent].call_id
        call = control.calls.get(key) if key else None
        if call is not None and control.agent_leg(call, agent) is not None:
            return call
    mine = [c for c in list(control.calls.values()) if control.agent_leg(c, agent) is not None]
    if not mine:
        raise ApiError(409, f"agent {agent} is on no call")
    if len(mine) > 1:
        raise ApiError(409, f"agent {agent} is on {len(mine)} calls: name call_id")
    return mine[0]


async def websocket(request: web.Request) -> web.StreamResponse:
    """``GET /api/ws``: the CTI WebSocket (module docstring)."""
    state = request.app[STATE]
    who = principal(request)
    if not same_origin(request):
        raise ApiError(403, "cross-origin request refused")
    hub = state.hub
    if hub is None:
        raise ApiError(503, "the ACD is not running")
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=MAX_MESSAGE)
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "expected a WebSocket upgrade")
    await ws.prepare(request)
    client = hub.add(ws, who, session_token(request))
    phones = state.softphones
    phone: WebPhone | None = None

    def to_page(message: Mapping[str, Any]) -> None:
        hub.send(client, _dump(message))

    if phones is not None:
        phone = phones.attach(who.login, who.role, to_page)
    try:
        hub.send(client, hub.hello(who, phone))
        async for msg in ws:
            if client.closed:
                break
            if state.sessions.get(client.token) is None:
                await hub.close(client, CLOSE_SESSION_ENDED, "session ended")
                break
            if msg.type is WSMsgType.TEXT:
                reply = hub.command(client, msg.data, phone)
                if reply is not None:
                    hub.send(client, reply)
            elif msg.type is WSMsgType.BINARY:
                hub.send(client, _dump({"id": None, "error": "expected JSON text",
                                        "status": 400}))
    finally:
        if phones is not None and phone is not None:
            phones.release(phone, to_page)
        await hub.remove(client)
        if not ws.closed:
            await ws.close()
    return ws


def routes() -> list[web.RouteDef]:
    """The WebSocket route."""
    return [web.get("/api/ws", websocket, allow_head=False)]
