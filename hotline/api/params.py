"""Query-string parameters shared by the list endpoints: times, paging, plain filters.

Why this exists: recordings and CDRs take the same ``since``/``until``/``limit``/
``offset`` parameters and must read them the same way (and the way ``hotline cdr
export --since`` does: ISO 8601, naive values in the site's time zone); a bad value is
a 400 naming the parameter, never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from aiohttp import web

from .errors import ApiError

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "MAX_OFFSET", "Page", "json_body", "page", "text",
           "when"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
#: Deeper pages cost more than they help (narrow the time range instead).
MAX_OFFSET = 100_000
#: Longest accepted text filter.
MAX_TEXT = 128


@dataclass(frozen=True, slots=True)
class Page:
    """``limit`` and ``offset`` of a list request."""

    limit: int
    offset: int


def when(query: Mapping[str, str], name: str, tz: tzinfo | None) -> datetime | None:
    """Parse an ISO 8601 date or date-time; a value without offset is in ``tz``
    (the machine's zone when None).

    :raises ApiError: 400 naming ``name`` when the value is not a date.
    """
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(
            400, f"{name}: expected a date such as 2024-05-01 or 2024-05-01T08:00 "
                 f"(got {raw[:40]!r})") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz) if tz is not None else value.astimezone()
    return value


def _integer(query: Mapping[str, str], name: str, default: int, hi: int, lo: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ApiError(400, f"{name}: expected an integer {lo}..{hi} (got {raw[:20]!r})")
    return int(raw)


def page(query: Mapping[str, str]) -> Page:
    """``limit`` (1..:data:`MAX_LIMIT`, default :data:`DEFAULT_LIMIT`) and ``offset``."""
    return Page(
        limit=_integer(query, "limit", DEFAULT_LIMIT, MAX_LIMIT, 1),
        offset=_integer(query, "offset", 0, MAX_OFFSET, 0),
    )


def text(query: Mapping[str, str], name: str) -> str | None:
    """A plain text filter (None when absent or empty)."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_TEXT:
        raise ApiError(400, f"{name}: longer than {MAX_TEXT} characters")
    return raw


async def json_body(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object body: 415 without JSON, 400 when it is not an object;
    ``{}`` for no body at all when ``optional``."""
    if optional and not request.can_read_body:
        return {}
    if request.content_type != "application/json":
        raise ApiError(415, "send JSON (Content-Type: application/json)")
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body
