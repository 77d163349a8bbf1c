"""Agents over HTTP: who is ready, on a call or on a break, and changing that.

Why this exists: the agent desktop's ready / break / log-out buttons and the supervisor
console's agent board need the ACD's agent states (DESIGN.md, "Interfaces"), and a
supervisor must be able to log an agent out or put one on a break. Everything here
reads :class:`acd.engine.Acd` through the running :class:`hotline.acdctl.AcdService`
and feeds it only with :meth:`AcdService.call`, so the resulting events reach call
control, storage and the WebSocket clients like those of a feature code dialled on a
phone.

Scope, as for calls: an agent sees and changes itself only; a supervisor the agents of
its teams (all agents without teams); an admin everyone. An agent outside the scope is
403, an unknown one 404. The engine's refusals (:class:`acd.errors.AcdError`) keep
their status: 404 for an unknown agent or queue, 409 for a state that does not allow
the request (``not_ready`` while logged out, ``wrapup`` outside wrap-up).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from acd.agent import AgentState
from acd.errors import AcdError

from .auth import Principal, principal
from .errors import ApiError
from .params import json_body
from .state import STATE, ApiState

if TYPE_CHECKING:
    from acd.engine import Acd

    from ..acdctl import AcdService
    from ..config import AgentConfig

__all__ = [
    "STATES",
    "acd_service",
    "agent_json",
    "apply_state",
    "extend_wrapup",
    "public_call_id",
    "routes",
]

#: What ``POST /api/agents/{id}/state`` accepts as ``state``.
STATES = ("ready", "not_ready", "logged_out", "login")
#: Longest wrap-up extension accepted at once (seconds).
MAX_WRAPUP_EXTENSION = 3600
#: States in which an agent is busy with a call (its ``next_state`` applies after it).
_BUSY = frozenset({AgentState.RINGING, AgentState.ON_CALL, AgentState.ON_HOLD,
                   AgentState.WRAPUP})
_NO_STORE = {"Cache-Control": "no-store"}


def acd_service(state: ApiState) -> AcdService:
    """The running ACD, or 503 when the API runs without one."""
    if state.acd is None:
        raise ApiError(503, "the ACD is not running")
    return state.acd


def public_call_id(state: ApiState, key: str) -> str | None:
    """The id ``/api/calls`` knows a call by (its SIP Call-ID) for the ACD's call key
    (``Call-ID;tag``); None for no call."""
    if not key:
        return None
    if state.calls is not None:
        call = state.calls.calls.get(key)
        if call is not None:
            return call.id
    return key.partition(";")[0]


def memberships(engine: Acd) -> dict[str, list[str]]:
    """Agent id → the queues it may serve, in configuration order."""
    out: dict[str, list[str]] = {a: [] for a in engine.agents}
    for q in engine.queues:
        for a in engine.members(q):
            out[a].append(q)
    return out


def agent_json(state: ApiState, acd: AcdService, agent_id: str,
               configs: Mapping[str, AgentConfig], member_of: Mapping[str, list[str]],
               now: float) -> dict[str, Any]:
    """One agent as the API shows it (see ``docs/api.md``, "Agents")."""
    engine = acd.engine
    agent = engine.agents[agent_id]
    cfg = configs.get(agent_id)
    st = agent.state
    never = st is AgentState.LOGGED_OUT and agent.since == 0.0
    busy = st in _BUSY
    return {
        "id": agent_id,
        "name": cfg.name if cfg is not None else agent_id,
        "teams": list(cfg.teams) if cfg is not None else [],
        "state": st.value,
        "reason": agent.reason or None,
        "since": None if never else round(max(0.0, now - agent.since), 1),
        "call_id": public_call_id(state, agent.call_id),
        "queue": agent.queue or None,
        "queues": engine.logged_into(agent_id),
        "member_of": list(member_of.get(agent_id, ())),
        "next_state": agent.after.value if busy else None,
        "next_reason": (agent.after_reason or None) if busy else None,
        "wrapup_left": (round(max(0.0, agent.wrapup_until - now), 1)
                        if st is AgentState.WRAPUP else None),
        "direct_calls": agent.direct_calls,
    }


def _configs(state: ApiState) -> dict[str, AgentConfig]:
    return {a.id: a for a in state.config.agents}


def _one(state: ApiState, acd: AcdService, who: Principal, agent_id: str, *,
         change: bool) -> None:
    """404 for an unknown agent, 403 for one outside ``who``'s scope."""
    if agent_id not in acd.engine.agents:
        raise ApiError(404, f"no agent {agent_id}")
    if not who.sees_agent(agent_id):
        raise ApiError(403, "an agent changes its own state only"
                       if change and who.role == "agent" else
                       f"agent {agent_id} is outside your scope")


def _engine_call(acd: AcdService, fn: Callable[..., object], *args: Any) -> None:
    try:
        acd.call(fn, *args)
    except AcdError as exc:
        raise ApiError(exc.status, str(exc)) from None


def apply_state(state: ApiState, who: Principal, agent_id: str,
                body: Mapping[str, Any]) -> dict[str, Any]:
    """Carry out a state change (the body of ``POST /api/agents/{id}/state`` or the
    WebSocket ``set_state`` command) and return the agent as it is then.

    :raises ApiError: 400 bad body, 403 outside the scope, 404 unknown agent or queue,
        409 a state that does not allow it, 503 without an ACD.
    """
    acd = acd_service(state)
    engine = acd.engine
    _one(state, acd, who, agent_id, change=True)
    wanted = body.get("state")
    if wanted not in STATES:
        raise ApiError(400, f"state: expected one of {', '.join(STATES)}")
    reason = body.get("reason")
    reasons = state.config.acd.reasons
    if reason is not None:
        if not isinstance(reason, str) or reason not in reasons:
            raise ApiError(400, f"reason: expected one of {', '.join(reasons)}")
        if wanted not in ("not_ready", "login"):
            raise ApiError(400, "reason: only with not_ready or login")
    queues = body.get("queues")
    if queues is not None:
        if (not isinstance(queues, list) or not queues
                or not all(isinstance(q, str) for q in queues)):
            raise ApiError(400, "queues: expected a list of queue names")
        if wanted not in ("ready", "login"):
            raise ApiError(400, "queues: only with ready or login")
        for q in queues:
            if q not in engine.queues:
                raise ApiError(404, f"no queue {q}")
    now = acd.now()
    if wanted == "login":
        _engine_call(acd, engine.login, agent_id, now, queues)
        if reason is not None:
            _engine_call(acd, engine.not_ready, agent_id, now, reason)
    elif wanted == "ready":
        if queues is not None:  # joins those queues (logs in first), then ready
            _engine_call(acd, _login_ready, engine, agent_id, now, queues)
        else:
            _engine_call(acd, engine.ready, agent_id, now)
    elif wanted == "not_ready":
        _engine_call(acd, engine.not_ready, agent_id, now, reason or "")
    else:
        _engine_call(acd, engine.logout, agent_id, now)
    return agent_json(state, acd, agent_id, _configs(state), memberships(engine), acd.now())


def _login_ready(engine: Acd, agent_id: str, now: float, queues: list[str]) -> None:
    engine.login(agent_id, now, queues, ready=True)


def extend_wrapup(state: ApiState, who: Principal, agent_id: str,
                  body: Mapping[str, Any]) -> dict[str, Any]:
    """Give an agent in wrap-up ``extend`` more seconds (``POST .../wrapup`` and the
    WebSocket ``wrapup`` command)."""
    acd = acd_service(state)
    _one(state, acd, who, agent_id, change=True)
    extend = body.get("extend")
    if (isinstance(extend, bool) or not isinstance(extend, int | float)
            or not 0 < extend <= MAX_WRAPUP_EXTENSION):
        raise ApiError(400, f"extend: expected seconds, 1..{MAX_WRAPUP_EXTENSION}")
    _engine_call(acd, acd.engine.extend_wrapup, agent_id, float(extend), acd.now())
    return agent_json(state, acd, agent_id, _configs(state), memberships(acd.engine),
                      acd.now())


async def list_agents(request: web.Request) -> web.Response:
    """``GET /api/agents``: the agents in the login's scope, by id."""
    state = request.app[STATE]
    who = principal(request)
    acd = acd_service(state)
    configs, member_of, now = _configs(state), memberships(acd.engine), acd.now()
    out = [agent_json(state, acd, a, configs, member_of, now)
           for a in sorted(acd.engine.agents) if who.sees_agent(a)]
    return web.json_response({"agents": out, "reasons": list(state.config.acd.reasons)},
                             headers=_NO_STORE)


async def get_agent(request: web.Request) -> web.Response:
    """``GET /api/agents/{id}``."""
    state = request.app[STATE]
    who = principal(request)
    acd = acd_service(state)
    agent_id = request.match_info["agent_id"]
    _one(state, acd, who, agent_id, change=False)
    return web.json_response(agent_json(state, acd, agent_id, _configs(state),
                                        memberships(acd.engine), acd.now()),
                             headers=_NO_STORE)


async def set_state(request: web.Request) -> web.Response:
    """``POST /api/agents/{id}/state`` ``{"state": ..., "reason"?, "queues"?}``."""
    body = await json_body(request)
    out = apply_state(request.app[STATE], principal(request),
                      request.match_info["agent_id"], body)
    return web.json_response(out, headers=_NO_STORE)


async def wrapup(request: web.Request) -> web.Response:
    """``POST /api/agents/{id}/wrapup`` ``{"extend": seconds}``."""
    body = await json_body(request)
    out = extend_wrapup(request.app[STATE], principal(request),
                        request.match_info["agent_id"], body)
    return web.json_response(out, headers=_NO_STORE)


def routes() -> list[web.RouteDef]:
    """The agent routes."""
    return [
        web.get("/api/agents", list_agents),
        web.get("/api/agents/{agent_id}", get_agent),
        web.post("/api/agents/{agent_id}/state", set_state),
        web.post("/api/agents/{agent_id}/wrapup", wrapup),
    ]
