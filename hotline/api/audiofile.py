"""Sending an audio file (a recording, a voicemail message) with HTTP Range requests.

:mod:`hotline.api.ranges` decides what part of the file to send; aiohttp's
``FileResponse`` sends it (``sendfile``, ETag, Last-Modified, 304), shown the request
with Range and If-Range already decided so it does not apply its own rules on top.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from .errors import ApiError
from .ranges import RangeNotSatisfiable, choose_range

__all__ = ["serve_audio"]

#: Request headers the file sender must not act on by itself (decided here instead).
_DECIDED_HEADERS = ("Range", "If-Range", "Accept-Encoding")


class _DecidedFileResponse(web.FileResponse):
    """A ``FileResponse`` that sees the request with Range/If-Range already decided."""

    def __init__(self, path: Path, view: web.BaseRequest, headers: Mapping[str, str]):
        super().__init__(path, headers=headers)
        self._view = view

    async def prepare(self, request: web.BaseRequest) -> Any:
        return await super().prepare(self._view)


def serve_audio(request: web.Request, path: Path, st: os.stat_result, content_type: str,
                filename: str) -> web.StreamResponse:
    """The response for ``path`` (whose ``os.stat`` is ``st``): 200, 206 for a
    satisfiable Range, 416 (JSON, with ``Content-Range: bytes */SIZE``) otherwise;
    ``?download=1`` makes it an attachment.

    :raises ApiError: 416 for a range that cannot be satisfied.
    """
    try:
        chosen = choose_range(request.headers.get("Range"), request.headers.get("If-Range"), st)
    except RangeNotSatisfiable:
        raise ApiError(416, "range not satisfiable",
                       {"Content-Range": f"bytes */{st.st_size}", "Accept-Ranges": "bytes"}
                       ) from None
    headers = CIMultiDict(request.headers)
    for name in _DECIDED_HEADERS:
        headers.popall(name, None)
    if chosen is not None:
        headers["Range"] = chosen.header
    disposition = "attachment" if request.query.get("download") in ("1", "true") else "inline"
    return _DecidedFileResponse(path, request.clone(headers=headers), {
        "Content-Type": content_type,
        "Content-Disposition": f'{disposition}; filename="{filename}"',
        "Cache-Control": "private, no-cache",
    })
