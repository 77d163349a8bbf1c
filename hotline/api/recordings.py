"""Recordings over HTTP: search the index, read one entry, play its audio with Range.

Why this exists: issue 4 asks that recordings be searchable and playable through the
HTTP API with Range requests, access enforced by role and team. Searching is
:meth:`recorder.index.RecordingIndex.search` narrowed to what the login may see
(:class:`~hotline.api.auth.Principal`): a recording is visible when one of the agents
the index links to it is in the login's scope, and recordings no agent handled only
to logins that see everything.

The index filters by one agent at a time, so a team-scoped search without an
``agent`` filter asks once per agent of the scope for the first ``offset + limit + 1``
rows and merges them (the union of each agent's top rows holds the overall top rows);
``total`` is then not known cheaply and is ``null``.

Audio is the file the index points at: the transcoded Opus/MP3, or the WAV while the
call is live or not yet transcoded. :mod:`hotline.api.ranges` decides what part to
send; aiohttp's ``FileResponse`` sends it (``sendfile``, ETag, Last-Modified, 304).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from recorder.index import Recording, RecordingIndex, RecordingState
from recorder.naming import EXTENSIONS, recordings_dir

from .audiofile import serve_audio
from .auth import Principal, principal
from .errors import ApiError
from .params import Page, page, text, when
from .state import STATE

__all__ = ["CONTENT_TYPES", "recording_json", "routes", "search_scoped"]

#: Content-Type of each recording format.
CONTENT_TYPES: Mapping[str, str] = {
    "wav": "audio/wav",
    "opus": "audio/ogg; codecs=opus",
    "mp3": "audio/mpeg",
}


def recording_json(rec: Recording) -> dict[str, Any]:
    """The API form of one index row (file paths stay private)."""
    deleted = rec.state is RecordingState.DELETED
    return {
        "id": rec.id,
        "call_id": rec.call_id,
        "state": str(rec.state),
        "format": rec.format,
        "start_time": rec.start_time.isoformat(timespec="milliseconds"),
        "end_time": rec.end_time.isoformat(timespec="milliseconds") if rec.end_time else None,
        "seconds": rec.seconds,
        "caller": rec.caller,
        "callee": rec.callee,
        "queue": rec.queue,
        "agents": list(rec.agents),
        "content_type": None if deleted else CONTENT_TYPES.get(rec.format),
        "audio": None if deleted else f"/api/recordings/{rec.id}/audio",
    }


def search_scoped(
    index: RecordingIndex, scope: frozenset[str] | None, filters: Mapping[str, Any], pg: Page
) -> tuple[list[Recording], bool, int | None]:
    """Search within a login's scope (runs on the database thread).

    :param scope: agent ids the login sees; None for everything.
    :param filters: keyword filters of :meth:`RecordingIndex.search`; an ``agent``
        filter must already be checked against ``scope``.
    :returns: the page, whether more rows follow, and the total (None when unknown).
    """
    agent = filters.get("agent")
    if scope is not None and agent is None:
        if not scope:
            return [], False, 0
        if len(scope) == 1:
            filters = {**filters, "agent": next(iter(scope))}
    if scope is None or filters.get("agent") is not None:
        rows = index.search(**filters, limit=pg.limit + 1, offset=pg.offset)
        total: int | None = index.count(**filters)
    else:
        assert scope is not None
        want = pg.offset + pg.limit + 1
        merged: dict[str, Recording] = {}
        for one in sorted(scope):
            for rec in index.search(**{**filters, "agent": one}, limit=want, offset=0):
                merged[rec.id] = rec
        ordered = sorted(merged.values(), key=lambda r: (r.start_time, r.id), reverse=True)
        rows = ordered[pg.offset : pg.offset + pg.limit + 1]
        total = None
    return rows[: pg.limit], len(rows) > pg.limit, total


async def search(request: web.Request) -> web.Response:
    """``GET /api/recordings``: search, newest first, one page."""
    state = request.app[STATE]
    who = principal(request)
    query = request.query
    filters: dict[str, Any] = {
        "since": when(query, "since", state.tz),
        "until": when(query, "until", state.tz),
        "number": text(query, "number"),
        "agent": text(query, "agent"),
        "queue": text(query, "queue"),
        "call_id": text(query, "call_id"),
    }
    pg = page(query)
    if filters["agent"] is not None and not who.sees_agent(filters["agent"]):
        raise ApiError(403, f"agent {filters['agent']} is outside your scope")
    rows, more, total = await state.db.run(search_scoped, state.db.index, who.scope,
                                           filters, pg)
    return web.json_response({
        "recordings": [recording_json(r) for r in rows],
        "total": total,
        "limit": pg.limit,
        "offset": pg.offset,
        "next_offset": pg.offset + pg.limit if more else None,
    }, headers={"Cache-Control": "no-store"})


async def _visible(request: web.Request, who: Principal) -> Recording:
    state = request.app[STATE]
    rec = await state.db.run(state.db.index.get, request.match_info["id"])
    if rec is None:
        raise ApiError(404, "no such recording")
    if not who.sees(rec.agents):
        raise ApiError(403, "this recording is outside your scope")
    return rec


async def get_one(request: web.Request) -> web.Response:
    """``GET /api/recordings/{id}``."""
    rec = await _visible(request, principal(request))
    return web.json_response(recording_json(rec), headers={"Cache-Control": "no-store"})


def _file(data_dir: Path, rec: Recording) -> Path:
    base = recordings_dir(data_dir).resolve()
    path = (base / rec.path).resolve()
    if base not in path.parents:  # the index is ours, but never serve outside the folder
        raise ApiError(404, "the recording file is missing")
    return path


async def audio(request: web.Request) -> web.StreamResponse:
    """``GET /api/recordings/{id}/audio``: the file, with Range support."""
    state = request.app[STATE]
    rec = await _visible(request, principal(request))
    st: os.stat_result | None = None
    for attempt in range(2):  # a transcode may replace the WAV between lookup and open
        if rec.state is RecordingState.DELETED:
            raise ApiError(410, "the recording was deleted (retention)")
        path = _file(state.config.server.data_dir, rec)
        try:
            st = await asyncio.to_thread(os.stat, path)
            break
        except OSError:
            again = await state.db.run(state.db.index.get, rec.id) if attempt == 0 else None
            if again is None or again.path == rec.path:
                raise ApiError(404, "the recording file is missing") from None
            rec = again
    assert st is not None
    return serve_audio(request, path, st, CONTENT_TYPES.get(rec.format, "application/octet-stream"),
                       f"{rec.id}{EXTENSIONS.get(rec.format, '')}")


def routes() -> list[web.RouteDef]:
    """The recordings routes."""
    return [
        web.get("/api/recordings", search),
        web.get("/api/recordings/{id}", get_one),
        web.get("/api/recordings/{id}/audio", audio),
    ]
