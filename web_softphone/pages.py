"""The two pages and their static files: the agent desktop at ``/``, the supervisor
console at ``/supervisor``, both plain HTML/JS/CSS from ``web_softphone/static``.

Why this exists: DESIGN.md serves both pages from the API's own HTTP(S) listener, with no
build step. The files hold no data (each page logs in and opens ``/api/ws`` itself), so
they are served without a session, with a Content-Security-Policy that allows only this
origin's scripts, styles, media and connections (no inline script can run).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

__all__ = ["CSP", "STATIC", "routes"]

STATIC = Path(__file__).with_name("static")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'self'")
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
          ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon",
          ".wav": "audio/wav"}


def _file(name: str) -> web.StreamResponse:
    path = (STATIC / name).resolve()
    if STATIC.resolve() not in path.parents or not path.is_file() \
            or path.suffix not in _TYPES:
        raise web.HTTPNotFound()
    resp = web.FileResponse(path, headers={
        "Content-Type": f"{_TYPES[path.suffix]}; charset=utf-8"
        if path.suffix in (".html", ".js", ".css", ".svg") else _TYPES[path.suffix],
        "Content-Security-Policy": CSP,
        "Cache-Control": "no-cache",
    })
    return resp


async def agent_page(request: web.Request) -> web.StreamResponse:
    """``GET /``: the agent desktop."""
    return _file("agent.html")


async def supervisor_page(request: web.Request) -> web.StreamResponse:
    """``GET /supervisor``: the supervisor console."""
    return _file("supervisor.html")


async def static_file(request: web.Request) -> web.StreamResponse:
    """``GET /static/NAME``: a file of the pages."""
    return _file(request.match_info["name"])


def routes() -> list[web.RouteDef]:
    return [web.get("/", agent_page), web.get("/supervisor", supervisor_page),
            web.get("/static/{name}", static_file)]
