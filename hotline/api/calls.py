"""Live calls over HTTP: list them, and hold, mute, transfer or hang up from the API.

Why this exists: issue 4 asks for in-call features "for SIP phones and the API alike".
The phone does them with re-INVITE and REFER; a browser or a CTI client does them here,
and both end in the same call-control operations (:class:`hotline.callcontrol.CallControl`).
Hold from the API keeps the phone's dialog untouched: hotline anchors the media, so the
other side simply hears music on hold.

Scope: an agent acts on its own leg of a call it is in; a supervisor on calls of the
agents in its teams (naming the agent's leg with ``agent``, or the call's agent by
default); an admin on every call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from media.client import MediaError

from .auth import Principal, principal
from .errors import ApiError
from .params import json_body
from .state import STATE

if TYPE_CHECKING:
    from ..callcontrol import Call, CallControl, Leg

__all__ = ["routes"]


def _control(request: web.Request) -> CallControl:
    calls = request.app[STATE].calls
    if calls is None:
        raise ApiError(503, "call control is not running")
    return calls


def _visible(who: Principal, control: CallControl, call: Call) -> bool:
    return who.scope is None or who.sees(control.agents_in(call))


async def list_calls(request: web.Request) -> web.Response:
    """``GET /api/calls``: the live calls the login may see."""
    who = principal(request)
    control = _control(request)
    out = [control.describe(c, monitors=who.role != "agent")
           for c in list(control.calls.values()) if _visible(who, control, c)]
    return web.json_response({"calls": out})


def acting_agent(who: Principal, body: dict[str, Any]) -> str | None:
    """Whose leg a call command acts on: an agent's own (naming another is 403); a
    supervisor's named ``agent`` if in its teams (None: the call's first agent leg)."""
    agent = body.get("agent")
    if agent is not None and not isinstance(agent, str):
        raise ApiError(400, "agent: expected an agent id string")
    if who.role == "agent":
        if agent not in (None, who.agent):
            raise ApiError(403, "an agent acts on its own leg only")
        if who.agent is None:
            raise ApiError(403, "this login has no extension")
        return who.agent
    if agent is not None and not who.sees_agent(agent):
        raise ApiError(403, f"agent {agent} is not in your teams")
    return agent


def _leg(request: web.Request, body: dict[str, Any]) -> tuple[CallControl, Call, Leg]:
    """The call named in the path and the agent leg the command acts on."""
    who = principal(request)
    control = _control(request)
    call = control.find_call(request.match_info["call_id"])
    if call is None or not _visible(who, control, call):
        raise ApiError(404, "no such live call")
    agent = acting_agent(who, body)
    leg = control.agent_leg(call, agent)
    if leg is None:
        raise ApiError(409, "the call has no answered leg of that agent")
    return control, call, leg


def _flag(body: dict[str, Any]) -> bool:
    on = body.get("on", True)
    if not isinstance(on, bool):
        raise ApiError(400, "on: expected true or false")
    return on


async def hold(request: web.Request) -> web.Response:
    """``POST /api/calls/{id}/hold`` ``{"on": true|false}``: the other side hears music."""
    body = await json_body(request, optional=True)
    control, call, leg = _leg(request, body)
    control.set_parked(leg, _flag(body))
    return web.json_response(control.describe(call, monitors=principal(request).role != "agent"))


async def mute(request: web.Request) -> web.Response:
    """``POST /api/calls/{id}/mute`` ``{"on": true|false}``: the others stop hearing the
    agent (the recording still has the agent's audio)."""
    body = await json_body(request, optional=True)
    control, call, leg = _leg(request, body)
    control.set_muted(leg, _flag(body))
    return web.json_response(control.describe(call, monitors=principal(request).role != "agent"))


async def transfer(request: web.Request) -> web.Response:
    """``POST /api/calls/{id}/transfer`` ``{"to": NUMBER}``: blind transfer of the
    agent's other party, routed as if the agent dialled ``NUMBER``."""
    body = await json_body(request, optional=True)
    number = body.get("to")
    if not isinstance(number, str) or not number or len(number) > 64:
        raise ApiError(400, "to: expected the number or extension to transfer to")
    control, call, leg = _leg(request, body)
    problem = control.transfer(leg, number, control.now())
    if problem is not None:
        raise ApiError(409, problem)
    return web.json_response(control.describe(call), status=202)


async def recording(request: web.Request) -> web.Response:
    """``POST /api/calls/{id}/recording`` ``{"paused": true|false}``: stop writing the
    call's audio while a caller reads out card details (PCI DSS), then go on in the same
    file (the paused stretch is left out of it)."""
    body = await json_body(request, optional=True)
    paused = body.get("paused")
    if not isinstance(paused, bool):
        raise ApiError(400, "paused: expected true or false")
    control, call, _ = _leg(request, body)
    recorder = request.app[STATE].recorder
    if recorder is None or call.recording_id is None:
        raise ApiError(409, "the call is not being recorded")
    try:
        await recorder.pause(call.recording_id, paused)
    except MediaError as exc:
        raise ApiError(409, str(exc)) from None
    call.recording_paused = paused
    control.log_recording_pause(call, paused)
    return web.json_response(control.describe(call, monitors=principal(request).role != "agent"))


async def hangup(request: web.Request) -> web.Response:
    """``POST /api/calls/{id}/hangup``: end the whole call."""
    who = principal(request)
    control = _control(request)
    call = control.find_call(request.match_info["call_id"])
    if call is None or not _visible(who, control, call):
        raise ApiError(404, "no such live call")
    if who.role == "agent" and control.agent_leg(call, who.agent) is None:
        raise ApiError(403, "an agent hangs up its own calls only")
    control.end_call(call, "api_hangup", by=who.agent if who.role == "agent" else None)
    if who.role != "agent":  # a supervisor's force-disconnect
        control.audit(who.login, "force_disconnect", ",".join(control.agents_in(call)),
                      call.id)
    return web.json_response({"id": call.id, "state": "ending"})


def supervise_call(control: CallControl, who: Principal, call: Call,
                   body: dict[str, Any]) -> None:
    """Validate and carry out a supervision request (REST and WebSocket alike):
    ``{"agent": ID, "phone": EXT, "mode": M}``; audited."""
    if who.role not in ("supervisor", "admin"):
        raise ApiError(403, "supervision is for supervisors")
    agent, phone, mode = body.get("agent"), body.get("phone"), body.get("mode")
    if not isinstance(agent, str) or not agent:
        raise ApiError(400, "agent: expected an extension")
    if not isinstance(phone, str) or not phone:
        raise ApiError(400, "phone: expected an extension")
    if mode not in ("listen", "whisper", "barge", "take_over"):
        raise ApiError(400, "mode: expected listen, whisper, barge or take_over")
    if not who.sees_agent(agent):
        raise ApiError(403, f"agent {agent} is not in your teams")
    problem = control.supervise(call, agent, phone, mode, who.login, control.now())
    if problem is not None:
        raise ApiError(409, problem)
    control.audit(who.login, f"supervise:{mode}", agent, call.id)


async def supervise(request: web.Request) -> web.Response:
    """``POST /api/calls/{id}/supervise`` ``{"agent": ID, "phone": EXT, "mode": M}``:
    supervise the agent's call from extension EXT's phone. ``mode`` is ``listen``,
    ``whisper`` or ``barge`` (the phone rings, and joins when answered; a phone already
    supervising the call switches mode) or ``take_over`` (the supervising phone takes
    the agent's place). Supervisors and admins only."""
    who = principal(request)
    body = await json_body(request, optional=True)
    control = _control(request)
    call = control.find_call(request.match_info["call_id"])
    if call is None or not _visible(who, control, call):
        raise ApiError(404, "no such live call")
    supervise_call(control, who, call, body)
    return web.json_response(control.describe(call), status=202)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/calls", list_calls),
        web.post("/api/calls/{call_id}/hold", hold),
        web.post("/api/calls/{call_id}/mute", mute),
        web.post("/api/calls/{call_id}/transfer", transfer),
        web.post("/api/calls/{call_id}/recording", recording),
        web.post("/api/calls/{call_id}/hangup", hangup),
        web.post("/api/calls/{call_id}/supervise", supervise),
    ]
