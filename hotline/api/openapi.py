"""The OpenAPI 3.1 description of the REST API, served at ``GET /api/openapi.json``.

Why this exists: CTI integrators and the browser code generate clients from it, and a
test checks that every route the application registers under ``/api/`` is described
here, so the description cannot silently fall behind the code. ``docs/api.md`` remains
the contract in prose (scopes, ranges, time formats); this is its machine-readable
skeleton. It needs no session, like ``/api/login``: it tells nothing about the site.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aiohttp import web

from .. import __version__

__all__ = ["SPEC_VERSION", "routes", "spec"]

SPEC_VERSION = "3.1.0"

_JSON = "application/json"
_ERR = {"$ref": "#/components/responses/Error"}
_ANY: dict[str, Any] = {"type": "object", "additionalProperties": True}
_STR_NULL: dict[str, Any] = {"type": ["string", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_TIME_NULL = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {_JSON: {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _ERR for c in codes}


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}


def _query(name: str, description: str, schema: dict[str, Any] | None = None
           ) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


def _op(summary: str, responses: dict[str, Any], *, tag: str,
        params: list[dict[str, Any]] | None = None, body: dict[str, Any] | None = None,
        public: bool = False, description: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if description:
        op["description"] = description
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = body
    if public:
        op["security"] = []
    else:
        op["responses"] = {**responses, **_errors(401)}
    return op


_PAGING = [
    _query("limit", "Page size, 1..1000 (default 50).",
           {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}),
    _query("offset", "Rows to skip, 0..100000.",
           {"type": "integer", "minimum": 0, "maximum": 100000, "default": 0}),
]
_WINDOW = [
    _query("since", "ISO 8601 date or date-time, inclusive (naive: the site's zone)."),
    _query("until", "ISO 8601 date or date-time, exclusive."),
]
_FILTERS = [
    _query("number", "A substring of the caller or the called number."),
    _query("agent", "An agent who handled the call (403 outside your scope)."),
    _query("queue", "The queue, exactly."),
    _query("call_id", "The SIP Call-ID, exactly."),
]
_PAGE_FIELDS = {
    "total": {"type": ["integer", "null"]},
    "limit": {"type": "integer"},
    "offset": {"type": "integer"},
    "next_offset": {"type": ["integer", "null"]},
}
_AUDIO = {
    "200": {"description": "The whole file.",
            "content": {"audio/ogg": {}, "audio/mpeg": {}, "audio/wav": {}}},
    "206": {"description": "The requested byte range (Content-Range)."},
    "304": {"description": "Not modified (If-None-Match / If-Modified-Since)."},
    **_errors(403, 404, 410, 416),
}
_AUDIO_PARAMS = [
    _query("download", "1: Content-Disposition attachment.", {"type": "string",
                                                              "enum": ["0", "1"]}),
    {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"},
     "description": "bytes=FIRST-LAST, bytes=FIRST- or bytes=-N."},
]


def _schemas() -> dict[str, Any]:
    return {
        "Error": _obj({"error": {"type": "string"}}, ["error"]),
        "Account": _obj({
            "user": {"type": "string"}, "name": {"type": "string"},
            "role": {"type": "string", "enum": ["agent", "supervisor", "admin"]},
            "agent": _STR_NULL, "teams": {"type": "array", "items": {"type": "string"}},
            "idle_timeout": {"type": "integer"},
        }, ["user", "name", "role", "agent", "teams"]),
        "Recording": _obj({
            "id": {"type": "string"}, "call_id": {"type": "string"},
            "state": {"type": "string",
                      "enum": ["live", "done", "repaired", "transcoded", "deleted"]},
            "format": {"type": "string"}, "start_time": _TIME, "end_time": _TIME_NULL,
            "seconds": {"type": ["number", "null"]}, "caller": {"type": "string"},
            "callee": {"type": "string"}, "queue": _STR_NULL,
            "agents": {"type": "array", "items": {"type": "string"}},
            "content_type": _STR_NULL, "audio": _STR_NULL,
        }, ["id", "call_id", "state"]),
        "Cdr": {"type": "object", "additionalProperties": True,
                "description": "Every column of the cdr table (hotline cdr export --jsonl)."},
        "Wrapup": _obj({
            "code": {"type": ["string", "null"],
                     "description": "One of [acd] dispositions (required when that list is "
                                    "set); else free text, at most 64 characters."},
            "notes": {"type": ["string", "null"], "maxLength": 2000},
        }),
        "QueueReport": {
            "type": "object", "additionalProperties": True,
            "description": "acd.stats.QueueStats.to_json() for one queue and interval: "
                           "queue, start, end (ISO 8601 UTC), service_level and "
                           "short_abandon (the thresholds, seconds), offered, answered, "
                           "answered_in_sl, abandoned, short_abandoned, timed_out, "
                           "exited_key, exited_empty, waiting, ..., and the rates sl, sl2, "
                           "asa, abandon_rate, aht... (null when their denominator is 0).",
            "properties": {"queue": {"type": "string"}, "start": _TIME, "end": _TIME,
                           "offered": {"type": "integer"}, "answered": {"type": "integer"},
                           "abandoned": {"type": "integer"},
                           "sl": {"type": ["number", "null"]},
                           "asa": {"type": ["number", "null"]},
                           "aht": {"type": ["number", "null"]}}},
        "AgentReport": {
            "type": "object", "additionalProperties": True,
            "description": "acd.stats.AgentStats.to_json() for one agent and interval "
                           "(agents=1): agent, start, end, state_time, not_ready_time, "
                           "answered, handled, ..., logged_in, staffed, busy, occupancy, "
                           "aht.",
            "properties": {"agent": {"type": "string"}, "start": _TIME, "end": _TIME}},
        "VoicemailBox": _obj({"box": {"type": "string"}, "declared": {"type": "boolean"},
                              "new": {"type": "integer"}, "total": {"type": "integer"}}),
        "VoicemailMessage": _obj({
            "id": {"type": "integer"}, "box": {"type": "string"}, "call_id": _STR_NULL,
            "caller": {"type": "string"}, "received_at": _TIME,
            "seconds": {"type": "number"}, "new": {"type": "boolean"},
            "heard_at": _TIME_NULL, "deleted_at": _TIME_NULL,
            "variables": {"type": "object", "additionalProperties": {"type": "string"}},
            "content_type": _STR_NULL, "audio": _STR_NULL,
        }, ["id", "box"]),
        "Call": _obj({
            "id": {"type": "string"}, "caller": {"type": "string"},
            "called": {"type": "string"}, "route": {"type": "string"},
            "target": {"type": "string"}, "state": {"type": "string"},
            "answered_seconds": {"type": ["number", "null"]},
            "recording_id": _STR_NULL, "recording_paused": {"type": "boolean"},
            "legs": {"type": "array", "items": _obj({
                "agent": _STR_NULL, "caller": {"type": "boolean"},
                "answered": {"type": "boolean"}, "held": {"type": "boolean"},
                "muted": {"type": "boolean"}})},
        }, ["id", "state", "legs"]),
        "AgentState": {"type": "string", "enum": [
            "logged_out", "ready", "not_ready", "ringing", "on_call", "on_hold", "wrapup"]},
        "Agent": _obj({
            "id": {"type": "string"}, "name": {"type": "string"},
            "teams": {"type": "array", "items": {"type": "string"}},
            "state": _ref("AgentState"), "reason": _STR_NULL,
            "since": {"type": ["number", "null"],
                      "description": "Seconds in the current state."},
            "call_id": _STR_NULL, "queue": _STR_NULL,
            "queues": {"type": "array", "items": {"type": "string"},
                       "description": "Queues the agent is logged into."},
            "member_of": {"type": "array", "items": {"type": "string"}},
            "next_state": {"oneOf": [_ref("AgentState"), {"type": "null"}],
                           "description": "Where a busy agent goes after the call."},
            "next_reason": _STR_NULL,
            "wrapup_left": {"type": ["number", "null"]},
            "direct_calls": {"type": "integer"},
        }, ["id", "name", "teams", "state", "reason", "since", "call_id", "queue",
            "queues"]),
        "StateChange": _obj({
            "state": {"type": "string", "enum": ["ready", "not_ready", "logged_out",
                                                 "login"]},
            "reason": {"type": "string", "description": "One of [acd] reasons; with "
                                                        "not_ready or login."},
            "queues": {"type": "array", "items": {"type": "string"},
                       "description": "With ready or login: the queues to join "
                                      "(default: every queue the agent serves)."},
        }, ["state"]),
        "QueueCaller": _obj({
            "position": {"type": "integer"}, "call_id": {"type": "string"},
            "caller": {"type": "string"}, "wait": {"type": "number"},
            "priority": {"type": "integer"},
            "status": {"type": "string", "enum": ["waiting", "ringing"]},
            "ringing": {"type": "array", "items": {"type": "string"}},
            "callback": {"type": "boolean"},
        }),
        "Queue": _obj({
            "name": {"type": "string"}, "strategy": {"type": "string"},
            "service_level": {"type": "integer"},
            "waiting": {"type": "integer"}, "longest_wait": {"type": "number"},
            "connected": {"type": "integer"}, "estimated_wait": {"type": "integer"},
            "agents": {"type": "object", "additionalProperties": {"type": "integer"},
                       "description": "Members by state."},
            "members": {"type": "array", "items": _obj({
                "id": {"type": "string"}, "name": {"type": "string"},
                "state": _ref("AgentState"), "logged_in": {"type": "boolean"}})},
            "callers": {"type": "array", "items": _ref("QueueCaller"),
                        "description": "Supervisors and admins only."},
            "stats": {"oneOf": [{"type": "object", "additionalProperties": True},
                                {"type": "null"}],
                      "description": "Today's figures (acd.stats.QueueStats): offered, "
                                     "answered, abandoned, sl, asa, aht..."},
        }, ["name", "strategy", "waiting", "longest_wait", "agents", "members"]),
    }


def _paths() -> dict[str, Any]:
    rec_id = _path_param("id", "Recording id.")
    box = _path_param("box", "Mailbox name (letters, digits, _ . -).")
    msg_id = _path_param("id", "Message id (an integer).")
    call_id = _path_param("call_id", "The call's SIP Call-ID.")
    agent_id = _path_param("agent_id", "Agent id (extension).")
    leg_body = {"agent": {"type": "string", "description": "Whose leg (supervisors)."}}

    def call_cmd(summary: str, props: dict[str, Any], required: list[str],
                 status: str = "200") -> dict[str, Any]:
        return {"post": _op(summary, {status: _json(_ref("Call")),
                                      **_errors(400, 403, 404, 409, 415, 503)},
                            tag="calls", params=[call_id],
                            body=_body(_obj({**props, **leg_body}, required),
                                       required=bool(required)))}

    agent_resp = {"200": _json(_ref("Agent")), **_errors(400, 403, 404, 409, 415, 503)}
    return {
        "/api/login": {"post": _op(
            "Log in (sets the session cookie)",
            {"200": _json(_ref("Account")), **_errors(400, 401, 415, 429)}, tag="session",
            body=_body(_obj({"username": {"type": "string"},
                             "user": {"type": "string", "description": "same as username"},
                             "password": {"type": "string"}},
                            ["username", "password"])), public=True)},
        "/api/logout": {"post": _op("End the session", {"204": {"description": "Done."}},
                                    tag="session")},
        "/api/session": {"get": _op("The logged-in account",
                                    {"200": _json(_ref("Account"))}, tag="session")},
        "/api/openapi.json": {"get": _op("This description", {"200": _json(_ANY)},
                                         tag="meta", public=True)},
        "/api/recordings": {"get": _op(
            "Search recordings in your scope, newest first",
            {"200": _json(_obj({"recordings": {"type": "array", "items": _ref("Recording")},
                                **_PAGE_FIELDS})), **_errors(400, 403)},
            tag="recordings", params=[*_WINDOW, *_FILTERS, *_PAGING])},
        "/api/recordings/{id}": {"get": _op(
            "One recording", {"200": _json(_ref("Recording")), **_errors(403, 404)},
            tag="recordings", params=[rec_id])},
        "/api/recordings/{id}/audio": {
            "get": _op("The recording's audio (HTTP ranges)", _AUDIO, tag="recordings",
                       params=[rec_id, *_AUDIO_PARAMS]),
            "head": _op("The audio's headers", _AUDIO, tag="recordings",
                        params=[rec_id, *_AUDIO_PARAMS]),
        },
        "/api/cdrs": {"get": _op(
            "Call detail records in your scope, oldest first (JSON or CSV)",
            {"200": {"description": "A page of CDRs, or the whole selection as CSV.",
                     "content": {_JSON: {"schema": _obj({
                         "cdrs": {"type": "array", "items": _ref("Cdr")},
                         **_PAGE_FIELDS})},
                         "text/csv": {"schema": {"type": "string"}}}},
             **_errors(400, 403)},
            tag="cdrs", params=[*_WINDOW, *_FILTERS, *_PAGING,
                                _query("format", "json (default) or csv.",
                                       {"type": "string", "enum": ["json", "csv"]})])},
        "/api/cdrs/{call_id}/wrapup": {"post": _op(
            "File the call's wrap-up: disposition code and notes, saved on its CDRs",
            {"200": _json(_obj({"call_id": {"type": "string"}, "code": _STR_NULL,
                                "notes": _STR_NULL,
                                "cdrs": {"type": "array", "items": _ref("Cdr")}})),
             **_errors(400, 403, 404, 415)},
            tag="cdrs", params=[call_id], body=_body(_ref("Wrapup")),
            description="The agent who handled the call, or supervisors and admins whose "
                        "scope holds one of its agents. Saving again replaces the "
                        "wrap-up.")},
        "/api/reports": {"get": _op(
            "Service level, ASA, AHT... per queue (or agent) and interval, as hotline "
            "report",
            {"200": {"description": "The report, or its CSV (hotline report --csv).",
                     "content": {_JSON: {"schema": _obj({
                         "interval": {"type": ["string", "null"]},
                         "since": _TIME, "until": _TIME, "agents": {"type": "boolean"},
                         "rows": {"type": "array", "items": {"oneOf": [
                             _ref("QueueReport"), _ref("AgentReport")]}}})},
                         "text/csv": {"schema": {"type": "string"}}}},
             **_errors(400, 403)},
            tag="reports", params=[
                _query("interval", "15m, hour or day (local time); default one row for "
                                   "the period.",
                       {"type": "string", "enum": ["15m", "hour", "day"]}),
                _query("date", "One local day, YYYY-MM-DD (not with since/until); "
                               "default today.", {"type": "string", "format": "date"}),
                *_WINDOW,
                _query("agents", "1: per agent instead of per queue.",
                       {"type": "string", "enum": ["0", "1"]}),
                _query("format", "json (default) or csv.",
                       {"type": "string", "enum": ["json", "csv"]})],
            description="Supervisors and admins (agents get 403); a supervisor sees the "
                        "queues and agents of its teams.")},
        "/api/voicemail": {"get": _op(
            "Voicemail boxes (supervisors and admins)",
            {"200": _json(_obj({"boxes": {"type": "array", "items": _ref("VoicemailBox")}}))},
            tag="voicemail")},
        "/api/voicemail/{box}": {"get": _op(
            "A box's messages, newest first",
            {"200": _json(_obj({"box": {"type": "string"},
                                "messages": {"type": "array",
                                             "items": _ref("VoicemailMessage")},
                                "new": {"type": "integer"}, **_PAGE_FIELDS})),
             **_errors(400, 403)},
            tag="voicemail",
            params=[box, _query("new", "1: only messages not heard yet."), *_PAGING])},
        "/api/voicemail/{box}/{id}": {
            "get": _op("One message", {"200": _json(_ref("VoicemailMessage")),
                                       **_errors(400, 403, 404)},
                       tag="voicemail", params=[box, msg_id]),
            "delete": _op("Delete a message (the file goes, the row stays)",
                          {"204": {"description": "Deleted."}, **_errors(403, 404, 410)},
                          tag="voicemail", params=[box, msg_id]),
        },
        "/api/voicemail/{box}/{id}/audio": {
            "get": _op("The message's audio (HTTP ranges)", _AUDIO, tag="voicemail",
                       params=[box, msg_id, *_AUDIO_PARAMS]),
            "head": _op("The audio's headers", _AUDIO, tag="voicemail",
                        params=[box, msg_id, *_AUDIO_PARAMS]),
        },
        "/api/voicemail/{box}/{id}/heard": {"post": _op(
            "Mark a message heard", {"200": _json(_ref("VoicemailMessage")),
                                     **_errors(403, 404, 410)},
            tag="voicemail", params=[box, msg_id])},
        "/api/calls": {"get": _op(
            "Live calls in your scope",
            {"200": _json(_obj({"calls": {"type": "array", "items": _ref("Call")}})),
             **_errors(503)}, tag="calls")},
        "/api/calls/{call_id}/hold": call_cmd(
            "Hold or resume the agent's leg (music on hold)", {"on": {"type": "boolean"}}, []),
        "/api/calls/{call_id}/mute": call_cmd(
            "Mute or unmute the agent", {"on": {"type": "boolean"}}, []),
        "/api/calls/{call_id}/transfer": call_cmd(
            "Blind transfer of the agent's other party", {"to": {"type": "string"}},
            ["to"], status="202"),
        "/api/calls/{call_id}/recording": call_cmd(
            "Pause or resume the call's recording", {"paused": {"type": "boolean"}},
            ["paused"]),
        "/api/calls/{call_id}/supervise": {"post": _op(
            "Listen to, whisper to, barge into or take over an agent's call",
            {"202": _json(_ref("Call")), **_errors(400, 403, 404, 409, 415, 503)},
            tag="calls", params=[call_id],
            body=_body(_obj({
                "agent": {"type": "string", "description": "The supervised agent."},
                "phone": {"type": "string",
                          "description": "The supervisor's extension (its phone rings)."},
                "mode": {"type": "string",
                         "enum": ["listen", "whisper", "barge", "take_over"]},
            }, ["agent", "phone", "mode"])),
            description="Supervisors and admins only; audited.")},
        "/api/calls/{call_id}/hangup": {"post": _op(
            "End the whole call",
            {"200": _json(_obj({"id": {"type": "string"}, "state": {"type": "string"}})),
             **_errors(403, 404, 503)}, tag="calls", params=[call_id])},
        "/api/agents": {"get": _op(
            "Agents in your scope with their ACD state",
            {"200": _json(_obj({"agents": {"type": "array", "items": _ref("Agent")},
                                "reasons": {"type": "array", "items": {"type": "string"}}})),
             **_errors(503)}, tag="agents")},
        "/api/agents/{agent_id}": {"get": _op(
            "One agent", {"200": _json(_ref("Agent")), **_errors(403, 404, 503)},
            tag="agents", params=[agent_id])},
        "/api/agents/{agent_id}/state": {"post": _op(
            "Log in, ready, not ready (with a reason) or log out", agent_resp,
            tag="agents", params=[agent_id], body=_body(_ref("StateChange")),
            description="Agents change themselves only; supervisors their teams. During "
                        "a call, not_ready and logged_out take effect when it and its "
                        "wrap-up end (next_state). 409 when the state does not allow it.")},
        "/api/agents/{agent_id}/wrapup": {"post": _op(
            "Extend the agent's wrap-up", agent_resp, tag="agents", params=[agent_id],
            body=_body(_obj({"extend": {"type": "number", "exclusiveMinimum": 0,
                                        "maximum": 3600}}, ["extend"])))},
        "/api/queues": {"get": _op(
            "Queues you see, with callers waiting and today's figures",
            {"200": _json(_obj({"queues": {"type": "array", "items": _ref("Queue")}})),
             **_errors(503)}, tag="queues")},
        "/api/queues/{name}": {"get": _op(
            "One queue", {"200": _json(_ref("Queue")), **_errors(403, 404, 503)},
            tag="queues", params=[_path_param("name", "Queue name.")])},
        "/api/ws": {"get": _op(
            "The CTI WebSocket (events and commands; see docs/api.md)",
            {"101": {"description": "Switching protocols to WebSocket."},
             **_errors(400, 403, 503)}, tag="ws",
            description="Messages are JSON texts. Server events: hello, agent_state, "
                        "call_offered, offer_withdrawn, call_queued, call_answered, "
                        "call_ended, queue_stats. Client commands {\"id\", \"cmd\", ...}: "
                        "set_state, wrapup, hangup, hold, unhold, mute, unmute, transfer, "
                        "dtmf (501 until call control can send digits).")},
        "/metrics": {"get": _op(
            "Prometheus metrics", {"200": {"description": "Prometheus text format.",
                                           "content": {"text/plain": {}}}},
            tag="meta", public=True)},
    }


@cache
def spec() -> dict[str, Any]:
    """The OpenAPI 3.1 document (built once)."""
    return {
        "openapi": SPEC_VERSION,
        "info": {
            "title": "hotline API",
            "version": __version__,
            "description": "The call-center server's HTTP API. docs/api.md is the "
                           "contract in prose: roles and scopes, time formats, ranges.",
        },
        "servers": [{"url": "/"}],
        "security": [{"session": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"session": {
                "type": "apiKey", "in": "cookie", "name": "hotline_session",
                "description": "Set by POST /api/login."}},
            "schemas": _schemas(),
            "responses": {"Error": _json(_ref("Error"), "An error: {\"error\": \"text\"}.")},
        },
    }


@cache
def _spec_text() -> str:
    return json.dumps(spec(), ensure_ascii=False, indent=1)


async def openapi_json(request: web.Request) -> web.Response:
    """``GET /api/openapi.json``: this description (no session needed)."""
    return web.Response(text=_spec_text(), content_type="application/json",
                        headers={"Cache-Control": "no-cache"})


def routes() -> list[web.RouteDef]:
    """The description's route."""
    return [web.get("/api/openapi.json", openapi_json)]
