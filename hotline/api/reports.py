"""Historical reports over HTTP: the figures of ``hotline report``, as JSON or its CSV.

Why this exists: the supervisor console shows service level, ASA, handle time and
abandonment per queue (or agent) and interval, and lets the supervisor download them.
They must be the numbers ``hotline report`` prints for the same period: both call
:func:`acd.stats.stored_report` (the stored queue log and agent states fed to a fresh
:class:`acd.stats.AcdStats` with the site's thresholds) and the CSV is
:func:`acd.stats.report_csv_rows`, the rows ``hotline report --csv`` writes.

The period is whole local days by default (``date``, else today), or ``since``/``until``
as every endpoint reads them. Reading and computing run on the API's database thread:
a month of queue log is work the event loop should not do.

Scope: agents get 403 (a report is about queues and colleagues); a supervisor sees the
queues with a member in its teams (as ``GET /api/queues``) and, per agent, the agents
of its teams; admins and supervisors without teams see everything.
"""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as dtime
from typing import Any

from aiohttp import web

from acd.stats import (
    INTERVALS,
    AcdStats,
    IntervalReport,
    StoredAcdEvents,
    report_csv_rows,
    stored_report,
)

from ..config import SiteConfig
from .auth import Principal, principal
from .cdrs import wants_csv
from .errors import ApiError
from .params import when
from .queues import sees_queue
from .state import STATE, ApiState

__all__ = ["MAX_BUCKETS", "MAX_DAYS", "report_window", "routes", "site_report"]

#: Longest period of one request, in days.
MAX_DAYS = 366
#: Most intervals in one request (15-minute rows for about three months).
MAX_BUCKETS = 9000
_FLAGS = {"1": True, "true": True, "0": False, "false": False, "": False}


def _midnight(day: date, tz: tzinfo | None) -> datetime:
    """Local midnight starting ``day`` (``tz``, else the machine's zone)."""
    naive = datetime.combine(day, dtime(0))
    return naive.replace(tzinfo=tz) if tz is not None else naive.astimezone()


def report_window(query: Any, tz: tzinfo | None, now: datetime) -> tuple[datetime, datetime]:
    """``[since, until)`` of a report request.

    ``date=YYYY-MM-DD`` is that local day; otherwise ``since`` (default: today's local
    midnight) and ``until`` (default: the next local midnight after ``now``).

    :raises ApiError: 400 for a bad date, ``date`` with ``since``/``until``, an empty
        period or one longer than :data:`MAX_DAYS`.
    """
    raw = query.get("date")
    if raw:
        if query.get("since") or query.get("until"):
            raise ApiError(400, "date: give either date or since/until")
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise ApiError(400, f"date: expected a date such as 2024-05-01 "
                                f"(got {raw[:40]!r})") from None
        return _midnight(day, tz), _midnight(day + timedelta(days=1), tz)
    today = now.astimezone(tz).date()
    since = when(query, "since", tz) or _midnight(today, tz)
    until = when(query, "until", tz) or _midnight(today + timedelta(days=1), tz)
    if until <= since:
        raise ApiError(400, "until: must be after since")
    if until - since > timedelta(days=MAX_DAYS, hours=1):  # an hour for a DST change
        raise ApiError(400, f"until: at most {MAX_DAYS} days after since")
    return since, until


def site_report(history: StoredAcdEvents, config: SiteConfig, since: float, until: float,
                interval: str | None, tz: tzinfo | None, now: float) -> list[IntervalReport]:
    """The site's report for ``[since, until)`` (runs on the database thread): what
    ``hotline report --config SITE`` computes for the same period."""
    stats = AcdStats.for_queues(config.queues)
    return stored_report(history, stats, since, until, interval, tz=tz, now=now)


def _queue_visible(state: ApiState, who: Principal, queue: str) -> bool:
    """``queue`` is in ``who``'s scope: as ``GET /api/queues`` (a member in its scope);
    a queue no longer configured only for logins that see everything."""
    if who.scope is None:
        return True
    acd = state.acd
    if acd is not None and queue in acd.engine.queues:
        return sees_queue(who, acd.engine, queue)
    cfg = state.config.queue(queue)
    return cfg is not None and any(who.sees_agent(a.id)
                                   for a in state.config.queue_members(cfg))


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _scoped(state: ApiState, who: Principal, rows: list[IntervalReport],
            agents: bool) -> list[IntervalReport]:
    """The buckets with only the queues (or agents) ``who`` sees."""
    if agents:
        keep = {a.agent for r in rows[:1] for a in r.agents if who.sees_agent(a.agent)}
        return [IntervalReport(r.start, r.end, (), tuple(a for a in r.agents
                                                         if a.agent in keep))
                for r in rows]
    keep = {q.queue for r in rows[:1] for q in r.queues if _queue_visible(state, who, q.queue)}
    return [IntervalReport(r.start, r.end, tuple(q for q in r.queues if q.queue in keep), ())
            for r in rows]


def _json_rows(rows: list[IntervalReport], agents: bool) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        for item in (r.agents if agents else r.queues):
            data = item.to_json()
            data["start"], data["end"] = _iso(item.start), _iso(item.end)
            out.append(data)
    return out


async def report(request: web.Request) -> web.Response:
    """``GET /api/reports``: per queue (or agent) and interval, JSON or CSV."""
    state = request.app[STATE]
    who = principal(request)
    if who.role == "agent":
        raise ApiError(403, "reports are open to supervisors and admins")
    query = request.query
    csv_out = wants_csv(request)
    interval = query.get("interval") or None
    if interval is not None and interval not in INTERVALS:
        raise ApiError(400, f"interval: expected one of {', '.join(INTERVALS)} "
                            f"(got {interval[:20]!r})")
    flag = query.get("agents", "")
    if flag not in _FLAGS:
        raise ApiError(400, f"agents: expected 1 or 0 (got {flag[:20]!r})")
    agents = _FLAGS[flag]
    now = time.time()
    since, until = report_window(query, state.tz, datetime.fromtimestamp(now, UTC))
    start, end = since.timestamp(), until.timestamp()
    if interval is not None and (end - start) / INTERVALS[interval] > MAX_BUCKETS:
        raise ApiError(400, f"interval: more than {MAX_BUCKETS} intervals of {interval} "
                            "(ask for a shorter period or a longer interval)")
    rows = await state.db.run(site_report, state.db.storage, state.config, start, end,
                              interval, state.tz, now)
    rows = _scoped(state, who, rows, agents)
    headers = {"Cache-Control": "no-store"}
    if csv_out:
        buf = io.StringIO()
        csv.writer(buf).writerows(report_csv_rows(rows, agents=agents, tz=state.tz))
        name = "report-agents.csv" if agents else "report.csv"
        return web.Response(body=buf.getvalue().encode("utf-8"), headers={
            **headers, "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}"'})
    return web.json_response({
        "interval": interval, "since": _iso(start), "until": _iso(end),
        "agents": agents, "rows": _json_rows(rows, agents),
    }, headers=headers)


def routes() -> list[web.RouteDef]:
    """The report route."""
    return [web.get("/api/reports", report)]
