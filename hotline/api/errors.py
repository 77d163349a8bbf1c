"""One error shape for the whole HTTP API: ``{"error": "..."}`` with the right status.

Why this exists: handlers, the session check and aiohttp itself (no such route, wrong
method, body too large) all fail in their own way; browsers and scripts should see one
JSON shape whatever failed. Handlers raise :class:`ApiError`; :func:`error_middleware`
turns it, any ``aiohttp`` HTTP error and any unexpected exception (500, logged with its
traceback, never shown to the client) into a JSON response.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = ["ApiError", "error_middleware", "error_response"]

logger = logging.getLogger("hotline.api")

#: Headers of an aiohttp HTTP error that describe its plain-text body, not the error.
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})


class ApiError(Exception):
    """An error answer: raise it from a handler.

    :param status: HTTP status (4xx or 5xx).
    :param message: the ``error`` text the client sees.
    :param headers: extra response headers (``Retry-After``, ``Content-Range``...).
    """

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """The JSON error response ``{"error": message}``."""
    resp = web.json_response({"error": message}, status=status)
    resp.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure of ``handler`` into :func:`error_response`."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like pass through
        extra = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
        message = exc.reason.lower() if exc.text is None or exc.text.startswith(
            f"{exc.status}:") else exc.text
        return error_response(exc.status, message, extra)
    except Exception:
        logger.exception("api_error", extra={"method": request.method, "path": request.path})
        return error_response(500, "internal error")
