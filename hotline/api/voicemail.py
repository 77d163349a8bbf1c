"""Voicemail over HTTP: list a box's messages, play one with Range, mark it heard,
delete it.

Why this exists: issue 4 asks that voicemail messages be listed and played from the API
as well as by phone. The rows and files are :mod:`hotline.voicemail_store`'s; this
module adds who may see a box and the JSON shapes. ``[voicemail.BOX]`` has no owner,
so a box belongs to no agent's scope: admins and supervisors (any team) see every box,
agents none (``403``). Message ids are the table's integer ids; a message is reached
through its box (``/api/voicemail/{box}/{id}``), and an id of another box is ``404``.

Audio is the message's WAV, sent like a recording's (:mod:`hotline.api.ranges` decides
the range, ``FileResponse`` sends it). Playing does not mark a message heard: a player
makes several Range requests and a preview is not a listen; clients ``POST .../heard``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from aiohttp import web

from ..voicemail_store import VoicemailRecord, VoicemailStore, valid_box
from .audiofile import serve_audio
from .auth import Principal, principal
from .errors import ApiError
from .params import page
from .state import STATE

__all__ = ["ROLES", "message_json", "routes"]

#: Roles that see voicemail boxes (boxes have no owner agent).
ROLES = frozenset({"admin", "supervisor"})
_CONTENT_TYPE = "audio/wav"


def message_json(rec: VoicemailRecord) -> dict[str, Any]:
    """The API form of one message (file paths stay private)."""
    return {
        "id": rec.id,
        "box": rec.box,
        "call_id": rec.call_id,
        "caller": rec.caller,
        "received_at": rec.received_at.isoformat(timespec="milliseconds"),
        "seconds": round(rec.seconds, 3),
        "new": rec.new,
        "heard_at": rec.heard_at.isoformat(timespec="milliseconds") if rec.heard_at else None,
        "deleted_at": (rec.deleted_at.isoformat(timespec="milliseconds")
                       if rec.deleted_at else None),
        "variables": dict(rec.variables),
        "content_type": None if rec.deleted else _CONTENT_TYPE,
        "audio": None if rec.deleted else f"/api/voicemail/{rec.box}/{rec.id}/audio",
    }


def _store(request: web.Request) -> VoicemailStore:
    state = request.app[STATE]
    return VoicemailStore(state.db.storage, state.config.server.data_dir)


def _allowed(who: Principal) -> None:
    if who.role not in ROLES:
        raise ApiError(403, "voicemail boxes are open to supervisors and admins")


def _box(request: web.Request) -> str:
    _allowed(principal(request))
    box = request.match_info["box"]
    if not valid_box(box):
        raise ApiError(400, "box: expected a mailbox name of letters, digits, _ . -")
    return box


async def _message(request: web.Request) -> tuple[VoicemailStore, VoicemailRecord]:
    box = _box(request)
    raw = request.match_info["id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise ApiError(404, "no such message")
    store = _store(request)
    rec = await request.app[STATE].db.run(store.get, int(raw))
    if rec is None or rec.box != box:
        raise ApiError(404, "no such message")
    return store, rec


def _no_store(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers={"Cache-Control": "no-store"})


async def boxes(request: web.Request) -> web.Response:
    """``GET /api/voicemail``: every box the site declares or that holds messages."""
    who = principal(request)
    if who.role not in ROLES:
        return _no_store({"boxes": []})
    state = request.app[STATE]
    counts = await state.db.run(_store(request).boxes)
    names = sorted(set(state.config.voicemail) | set(counts))
    return _no_store({"boxes": [
        {"box": name, "declared": name in state.config.voicemail,
         "new": counts.get(name, (0, 0))[0], "total": counts.get(name, (0, 0))[1]}
        for name in names]})


def _listing(store: VoicemailStore, box: str, new_only: bool, limit: int, offset: int
             ) -> tuple[list[VoicemailRecord], int, int]:
    rows = store.messages(box, new_only=new_only, newest_first=True, limit=limit + 1,
                          offset=offset)
    new, total = store.counts(box)
    return rows, new, total


async def messages(request: web.Request) -> web.Response:
    """``GET /api/voicemail/{box}``: the box's messages, newest first, one page."""
    box = _box(request)
    flag = request.query.get("new", "")
    if flag not in ("", "0", "1", "true", "false"):
        raise ApiError(400, "new: expected 1 or 0")
    new_only = flag in ("1", "true")
    pg = page(request.query)
    rows, new, total = await request.app[STATE].db.run(
        _listing, _store(request), box, new_only, pg.limit, pg.offset)
    more = len(rows) > pg.limit
    return _no_store({
        "box": box,
        "messages": [message_json(r) for r in rows[:pg.limit]],
        "new": new,
        "total": new if new_only else total,
        "limit": pg.limit,
        "offset": pg.offset,
        "next_offset": pg.offset + pg.limit if more else None,
    })


async def get_one(request: web.Request) -> web.Response:
    """``GET /api/voicemail/{box}/{id}``: one message, deleted ones included."""
    _, rec = await _message(request)
    return _no_store(message_json(rec))


async def heard(request: web.Request) -> web.Response:
    """``POST /api/voicemail/{box}/{id}/heard``: mark it heard (the first time counts)."""
    store, rec = await _message(request)
    if rec.deleted:
        raise ApiError(410, "the message was deleted")
    db = request.app[STATE].db
    await db.run(store.mark_heard, rec.id)
    again = await db.run(store.get, rec.id)
    assert again is not None
    return _no_store(message_json(again))


async def delete(request: web.Request) -> web.Response:
    """``DELETE /api/voicemail/{box}/{id}``: delete the message and its file."""
    store, rec = await _message(request)
    if rec.deleted or not await request.app[STATE].db.run(store.delete, rec.id):
        raise ApiError(410, "the message was deleted")
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


async def audio(request: web.Request) -> web.StreamResponse:
    """``GET /api/voicemail/{box}/{id}/audio``: the WAV, with Range support."""
    store, rec = await _message(request)
    if rec.deleted:
        raise ApiError(410, "the message was deleted")
    try:
        path = store.file(rec)
        st = await asyncio.to_thread(os.stat, path)
    except (ValueError, OSError):
        raise ApiError(404, "the message file is missing") from None
    return serve_audio(request, path, st, _CONTENT_TYPE, f"{rec.box}-{rec.id}.wav")


def routes() -> list[web.RouteDef]:
    """The voicemail routes."""
    return [
        web.get("/api/voicemail", boxes),
        web.get("/api/voicemail/{box}", messages),
        web.get("/api/voicemail/{box}/{id}", get_one),
        web.get("/api/voicemail/{box}/{id}/audio", audio),
        web.post("/api/voicemail/{box}/{id}/heard", heard),
        web.delete("/api/voicemail/{box}/{id}", delete),
    ]
