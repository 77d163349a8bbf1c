"""Wrap-up over HTTP: the agent files the call under a disposition code, with notes.

Why this exists: after a call the agent desktop asks what came of it (``sale``,
``no_sale``, ``callback``... from ``[acd] dispositions``) and for a few words; both are
kept on the call's CDRs (``wrapup_code``, ``wrapup_notes``), so ``hotline cdr export``
and ``GET /api/cdrs`` carry them next to the billing columns.

``POST /api/cdrs/{call_id}/wrapup`` with ``{"code": str, "notes": str}`` sets them on
every CDR row of the call; saving again replaces them (the agent corrects a slip).
Allowed for the agent who handled the call (a row of the call names it in ``agent``)
and for supervisors and admins whose scope holds one of the call's agents (admins and
supervisors without teams: any call). A supervisor's or admin's wrap-up is audited.

Timing: the server writes CDRs in batches (every ``hotline.server.CDR_FLUSH``, 50 ms)
and an agent leg's row only once the call ends, while the desktop may send the wrap-up
the moment the call ends. So when no row of the call names someone in the login's scope
yet, the handler looks again every :data:`RETRY_EVERY` seconds for up to
:data:`RETRY_FOR` before answering 404 (no row at all) or 403. A wrap-up saved while the
call still runs is not lost either: rows written later for the call inherit it (a
trigger, migration 5).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from ..config import SiteConfig
from ..storage import CdrRecord
from .auth import Principal, principal
from .cdrs import cdr_json
from .errors import ApiError
from .params import json_body
from .state import STATE

__all__ = ["MAX_CODE", "MAX_NOTES", "dispositions", "routes", "save_wrapup"]

#: Longest notes accepted (characters).
MAX_NOTES = 2000
#: Longest free-text code accepted when ``[acd] dispositions`` is empty.
MAX_CODE = 64
#: How long a wrap-up waits for the call's CDR rows to be written (seconds).
RETRY_FOR = 1.0
#: How often it looks again meanwhile (seconds).
RETRY_EVERY = 0.1
_FIELDS = ("code", "notes")


def dispositions(config: SiteConfig) -> list[str]:
    """The codes an agent may file a call under (``[acd] dispositions``); empty when any
    short code is accepted. The WebSocket ``hello`` carries it for the desktop's picker."""
    return list(config.acd.dispositions)


def _wrapup_fields(body: dict[str, Any], allowed: Sequence[str]) -> tuple[str | None,
                                                                           str | None]:
    """``code`` and ``notes`` from a request body (400 when they do not fit)."""
    extra = sorted(k for k in body if k not in _FIELDS)
    if extra:
        raise ApiError(400, f"unknown field {extra[0][:40]!r} (expected code and notes)")
    code = body.get("code")
    notes = body.get("notes")
    if code is not None and not isinstance(code, str):
        raise ApiError(400, "code: expected a string")
    if notes is not None and not isinstance(notes, str):
        raise ApiError(400, "notes: expected a string")
    if allowed:
        if code not in allowed:
            got = "nothing" if code is None else repr(code[:40])
            raise ApiError(400, f"code: expected one of {', '.join(allowed)} (got {got})")
    elif code is not None and len(code.strip()) > MAX_CODE:
        raise ApiError(400, f"code: longer than {MAX_CODE} characters")
    if notes is not None and len(notes) > MAX_NOTES:
        raise ApiError(400, f"notes: longer than {MAX_NOTES} characters")
    code = code.strip() if code is not None else None
    return code or None, notes or None


def _in_scope(who: Principal, rows: Sequence[CdrRecord]) -> bool:
    """Whether ``who`` may file the wrap-up of the call whose CDRs are ``rows``."""
    if not rows:
        return False
    return who.sees(r.agent for r in rows if r.agent)


async def save_wrapup(request: web.Request) -> web.Response:
    """``POST /api/cdrs/{call_id}/wrapup``."""
    state = request.app[STATE]
    who = principal(request)
    call_id = request.match_info["call_id"]
    code, notes = _wrapup_fields(await json_body(request), state.config.acd.dispositions)
    storage = state.db.storage
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RETRY_FOR
    while True:
        rows = await state.db.run(storage.cdrs_for_call, call_id)
        if _in_scope(who, rows) or loop.time() >= deadline:
            break
        await asyncio.sleep(RETRY_EVERY)
    if not rows:
        raise ApiError(404, "no such call")
    if not _in_scope(who, rows):
        raise ApiError(403, "the call is outside your scope (only the agent who handled "
                            "it, or its supervisors, file its wrap-up)")
    await state.db.run(storage.set_wrapup, call_id, code, notes)
    if who.role != "agent":
        target = ",".join(sorted({r.agent for r in rows if r.agent}))
        await state.db.run(storage.add_audit, time.time(), who.login, "wrapup", target,
                           call_id)
    rows = await state.db.run(storage.cdrs_for_call, call_id)
    return web.json_response({
        "call_id": call_id, "code": code, "notes": notes,
        "cdrs": [cdr_json(r) for r in rows if who.sees([r.agent] if r.agent else [])],
    }, headers={"Cache-Control": "no-store"})


def routes() -> list[web.RouteDef]:
    """The wrap-up route."""
    return [web.post("/api/cdrs/{call_id}/wrapup", save_wrapup)]
