"""Call detail records over HTTP, as JSON pages or as the CSV ``hotline cdr export`` prints.

Why this exists: issue 4 says the API serves the same CDRs as ``hotline cdr export
--csv``: the same columns (:data:`hotline.storage.CDR_COLUMNS`) in the same order, the
same cell format (empty for NULL, ISO 8601 times with milliseconds), the same row order
(start time, then id), and ``since`` read the same way. JSON rows are the objects
``hotline cdr export --jsonl`` prints (NULL as ``null``).

The columns include the agent's wrap-up (``wrapup_code``, ``wrapup_notes``), filed with
``POST /api/cdrs/{call_id}/wrapup`` (:mod:`hotline.api.wrapup`).

Scope: a CDR is visible when its ``agent`` is in the login's scope; CDRs without an
agent (IVR-only, abandoned, trunk-to-trunk calls) only to logins that see everything.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

from ..storage import CDR_COLUMNS, CdrRecord, Storage
from .auth import principal
from .errors import ApiError
from .params import page, text, when
from .state import STATE

__all__ = ["cdr_cell", "cdr_json", "csv_chunks", "routes", "select_cdrs", "wants_csv"]

#: CSV rows written per chunk of a streamed export.
CSV_CHUNK_ROWS = 500
FORMATS = ("json", "csv")


def cdr_cell(value: Any) -> Any:
    """One CSV cell, as ``hotline cdr export --csv`` writes it."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    return value


def cdr_json(rec: CdrRecord) -> dict[str, Any]:
    """One CDR as ``hotline cdr export --jsonl`` writes it."""
    return {c: _json_value(getattr(rec, c)) for c in CDR_COLUMNS}


def _json_value(value: Any) -> Any:
    return value.isoformat(timespec="milliseconds") if isinstance(value, datetime) else value


def select_cdrs(
    storage: Storage,
    scope: frozenset[str] | None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    number: str | None = None,
    agent: str | None = None,
    queue: str | None = None,
    call_id: str | None = None,
) -> list[CdrRecord]:
    """CDRs started in ``[since, until)`` matching the filters and the scope, oldest
    first (runs on the database thread).

    :param scope: agent ids the login sees; None for everything.
    :param number: a substring of the caller or the callee.
    """
    out = []
    for rec in storage.cdrs_since(since):
        if until is not None and rec.start_time >= until:
            break  # ordered by start time
        if scope is not None and rec.agent not in scope:
            continue
        if agent is not None and rec.agent != agent:
            continue
        if queue is not None and rec.queue != queue:
            continue
        if call_id is not None and rec.call_id != call_id:
            continue
        if number is not None and number not in rec.caller and number not in rec.callee:
            continue
        out.append(rec)
    return out


def csv_chunks(records: Sequence[CdrRecord], rows: int = CSV_CHUNK_ROWS) -> Iterator[str]:
    """The CSV export in pieces: a header row, then ``rows`` records per piece."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CDR_COLUMNS)
    for i, rec in enumerate(records, 1):
        writer.writerow([cdr_cell(getattr(rec, c)) for c in CDR_COLUMNS])
        if i % rows == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def wants_csv(request: web.Request) -> bool:
    fmt = request.query.get("format")
    if fmt is not None:
        if fmt not in FORMATS:
            raise ApiError(400, f"format: expected json or csv (got {fmt[:20]!r})")
        return fmt == "csv"
    accept = request.headers.get("Accept", "")
    return "text/csv" in accept and "application/json" not in accept


async def list_cdrs(request: web.Request) -> web.StreamResponse:
    """``GET /api/cdrs``: JSON pages, or the whole selection as CSV."""
    state = request.app[STATE]
    who = principal(request)
    query = request.query
    csv_out = wants_csv(request)
    pg = page(query)
    agent = text(query, "agent")
    if agent is not None and not who.sees_agent(agent):
        raise ApiError(403, f"agent {agent} is outside your scope")
    records = await state.db.run(
        select_cdrs, state.db.storage, who.scope,
        since=when(query, "since", state.tz), until=when(query, "until", state.tz),
        number=text(query, "number"), agent=agent, queue=text(query, "queue"),
        call_id=text(query, "call_id"))
    if not csv_out:
        rows = records[pg.offset : pg.offset + pg.limit]
        more = pg.offset + pg.limit < len(records)
        return web.json_response({
            "cdrs": [cdr_json(r) for r in rows],
            "total": len(records),
            "limit": pg.limit,
            "offset": pg.offset,
            "next_offset": pg.offset + pg.limit if more else None,
        }, headers={"Cache-Control": "no-store"})
    resp = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": 'attachment; filename="cdrs.csv"',
        "Cache-Control": "no-store",
    })
    await resp.prepare(request)
    for chunk in csv_chunks(records):
        await resp.write(chunk.encode("utf-8"))
    await resp.write_eof()
    return resp


def routes() -> list[web.RouteDef]:
    """The CDR routes."""
    return [web.get("/api/cdrs", list_cdrs)]
