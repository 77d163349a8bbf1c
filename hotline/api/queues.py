"""Queues over HTTP: who waits, for how long, who could answer, and today's figures.

Why this exists: the supervisor console's queue board and the agent desktop's "calls
waiting" counter (DESIGN.md: real-time monitoring of agents and queues). Instant
figures (callers in line, agents by state) come from the engine; the day's service
level, ASA and abandonment come from :class:`acd.stats.AcdStats`, the accumulator
``hotline report`` uses too, kept by the ACD service (:attr:`hotline.acdctl.AcdService.stats`:
the day's stored history at start, then every event as it comes).

Scope: a login sees the queues with a member in its scope (an agent the queues it
serves; admins and supervisors without teams every queue); ``members`` lists only the
agents it sees, while the counts by state cover every member (figures about the
queue, not about people). Waiting callers' numbers are shown to supervisors and admins
only.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from aiohttp import web

from acd.agent import AgentState

from .agents import acd_service, public_call_id
from .auth import Principal, principal
from .errors import ApiError
from .state import STATE, ApiState

if TYPE_CHECKING:
    from acd.engine import Acd

    from ..acdctl import AcdService

__all__ = [
    "queue_json",
    "queue_summary",
    "routes",
    "sees_queue",
]

logger = logging.getLogger("hotline.api")

_NO_STORE = {"Cache-Control": "no-store"}
#: Roles that see waiting callers' numbers.
_CALLER_ROLES = frozenset({"supervisor", "admin"})


def sees_queue(who: Principal, engine: Acd, queue: str) -> bool:
    """Whether ``who`` may look at ``queue``: one of its members is in the scope."""
    if who.scope is None:
        return True
    return any(a in who.scope for a in engine.members(queue))


def _counts(engine: Acd, members: list[str], queue: str) -> dict[str, int]:
    """Members by state; ``logged_out`` also counts members not logged into ``queue``."""
    counts = Counter({s.value: 0 for s in AgentState})
    for a in members:
        agent = engine.agents[a]
        logged = agent.state is not AgentState.LOGGED_OUT and queue in engine.logged_into(a)
        counts[agent.state.value if logged else AgentState.LOGGED_OUT.value] += 1
    return dict(counts)


def queue_summary(engine: Acd, queue: str, now: float) -> dict[str, Any]:
    """The instant figures of ``queue``: what ``queue_stats`` WebSocket ticks carry."""
    line = engine.waiting(queue)
    members = engine.members(queue)
    connected = sum(1 for c in engine.calls.values()
                    if c.queue == queue and c.status == "connected")
    return {
        "name": queue,
        "waiting": len(line),
        "longest_wait": round(max((now - c.joined for c in line), default=0.0), 1),
        "connected": connected,
        "agents": _counts(engine, members, queue),
    }


def queue_json(state: ApiState, acd: AcdService, who: Principal, queue: str,
               now: float) -> dict[str, Any]:
    """One queue as ``GET /api/queues`` shows it to ``who``."""
    engine = acd.engine
    cfg = engine.queues[queue]
    out = queue_summary(engine, queue, now)
    line = engine.waiting(queue)
    out["strategy"] = cfg.strategy
    out["service_level"] = cfg.service_level
    out["estimated_wait"] = engine.estimated_wait(queue, len(line) + 1)
    names = {a.id: a.name for a in state.config.agents}
    out["members"] = [
        {"id": a, "name": names.get(a, a), "state": engine.agents[a].state.value,
         "logged_in": queue in engine.logged_into(a)}
        for a in engine.members(queue) if who.sees_agent(a)
    ]
    if who.role in _CALLER_ROLES:
        out["callers"] = [
            {"position": i, "call_id": public_call_id(state, c.call_id), "caller": c.caller,
             "wait": round(now - c.joined, 1), "priority": c.priority, "status": c.status,
             "ringing": sorted(c.ringing), "callback": bool(c.callback)}
            for i, c in enumerate(line, 1)
        ]
    out["stats"] = today_stats(state, acd, queue, now)
    return out


# -- today's figures ---------------------------------------------------------------


def today_stats(state: ApiState, acd: AcdService, queue: str,
                now: float) -> dict[str, Any] | None:
    """``queue``'s figures from local midnight to now (None without an accumulator).

    This is the live-statistics hook: every figure of
    :meth:`acd.stats.QueueStats.to_json` (``offered``, ``answered``, ``abandoned``,
    ``sl``, ``asa``, ``aht``...), for the calls that entered the queue today.
    """
    if state.stats is None:
        return None
    wall = now + acd.wall_offset
    start = acd.today_start()
    return state.stats.queue_stats(queue, start, max(wall, start + 1e-6)).to_json()


async def list_queues(request: web.Request) -> web.Response:
    """``GET /api/queues``: the queues the login sees, in configuration order."""
    state = request.app[STATE]
    who = principal(request)
    acd = acd_service(state)
    now = acd.now()
    out = [queue_json(state, acd, who, q, now) for q in acd.engine.queues
           if sees_queue(who, acd.engine, q)]
    return web.json_response({"queues": out}, headers=_NO_STORE)


async def get_queue(request: web.Request) -> web.Response:
    """``GET /api/queues/{name}``."""
    state = request.app[STATE]
    who = principal(request)
    acd = acd_service(state)
    name = request.match_info["name"]
    if name not in acd.engine.queues:
        raise ApiError(404, f"no queue {name}")
    if not sees_queue(who, acd.engine, name):
        raise ApiError(403, f"queue {name} is outside your scope")
    return web.json_response(queue_json(state, acd, who, name, acd.now()), headers=_NO_STORE)


def routes() -> list[web.RouteDef]:
    """The queue routes."""
    return [
        web.get("/api/queues", list_queues),
        web.get("/api/queues/{name}", get_queue),
    ]
