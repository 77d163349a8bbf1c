"""The aiohttp application of the HTTP API and the listeners that serve it.

Why this exists: one place puts the pieces together (middlewares in order, every
module's routes, the shared :class:`~hotline.api.state.ApiState`) and owns the
listener lifecycle the server drives: :meth:`ApiServer.start` binds ``[server] http``
and ``[server] https`` (with the same certificate as SIP TLS, or without ``[tls]`` a
self-signed one, :mod:`hotline.selfsigned`);
:meth:`ApiServer.close` stops them and closes the API's database connection.

Middlewares, outermost first: request counting (so every final status is counted),
JSON errors, then the session check (so a refused request is a JSON 401/403 too).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import zoneinfo
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from web_softphone import pages

from ..config import Address, SiteConfig
from ..selfsigned import ensure_certificate
from . import (
    agents,
    auth,
    cdrs,
    metrics,
    openapi,
    queues,
    recordings,
    reports,
    voicemail,
    wrapup,
    ws,
)
from . import calls as call_api
from .auth import Accounts, LoginLimiter, SessionStore
from .db import ApiDatabase
from .errors import error_middleware
from .metrics import ApiMetrics, LiveMetrics
from .state import STATE, ApiState

if TYPE_CHECKING:
    from web_softphone.gateway import Softphones

    from ..acdctl import AcdService
    from ..callcontrol import CallControl
    from ..recording import CallRecorder

__all__ = ["ApiServer", "create_app"]

logger = logging.getLogger("hotline.api")

#: Largest request body accepted (logins and small JSON commands; no uploads yet).
MAX_BODY = 64 * 1024
#: Seconds in-flight requests get to finish when the server stops.
SHUTDOWN_TIMEOUT = 5.0
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@web.middleware
async def _count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    resp = await handler(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    method = request.method if request.method in _METHODS else "other"
    request.app[STATE].metrics.requests.labels(route, method, str(resp.status)).inc()
    return resp


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")


def create_app(
    config: SiteConfig,
    *,
    live: LiveMetrics | None = None,
    clock: Callable[[], float] = time.monotonic,
    calls: CallControl | None = None,
    recorder: CallRecorder | None = None,
    acd: AcdService | None = None,
    accounts: Accounts | None = None,
    softphones: Softphones | None = None,
) -> web.Application:
    """Build the API application for a site (opens its database connection).

    :param live: the server's live gauges for ``/metrics`` (:func:`metrics.server_metrics`).
    :param calls: the server's call control, for ``/api/calls``.
    :param acd: the running ACD for ``/api/agents``, ``/api/queues`` and ``/api/ws``;
        default ``calls.acd``.
    :param accounts: the site's logins, when already built (hashing every password takes
        a while, so a server builds them off the event loop); default: built here.
    :param clock: monotonic seconds for sessions and login bans (injected in tests).
    """
    db = ApiDatabase(config.server.data_dir)
    sessions = SessionStore(clock)
    state = ApiState(
        config=config,
        db=db,
        accounts=accounts if accounts is not None else Accounts(config),
        sessions=sessions,
        limiter=LoginLimiter(config, clock),
        metrics=ApiMetrics(live, lambda: len(sessions)),
        tz=zoneinfo.ZoneInfo(config.server.timezone) if config.server.timezone else None,
        calls=calls,
        recorder=recorder,
        acd=acd if acd is not None else (calls.acd if calls is not None else None),
        softphones=softphones,
    )
    app = web.Application(
        middlewares=[_count_requests, error_middleware, auth.session_middleware],
        client_max_size=MAX_BODY,
    )
    app[STATE] = state
    app.add_routes(auth.routes())
    app.add_routes(recordings.routes())
    app.add_routes(cdrs.routes())
    app.add_routes(wrapup.routes())
    app.add_routes(reports.routes())
    app.add_routes(voicemail.routes())
    app.add_routes(call_api.routes())
    app.add_routes(agents.routes())
    app.add_routes(queues.routes())
    app.add_routes(ws.routes())
    app.add_routes(openapi.routes())
    app.add_routes(metrics.routes())
    app.add_routes(pages.routes())
    app.on_response_prepare.append(_security_headers)
    if state.acd is not None:
        state.stats = state.acd.stats  # today's figures, kept by the ACD service
        hub = state.hub = ws.EventHub(state)
        app.on_startup.append(hub.start)
        app.on_shutdown.append(hub.shutdown)

    async def close_db(app: web.Application) -> None:
        app[STATE].db.close()

    app.on_cleanup.append(close_db)
    return app


class _AccessLogger(AbstractAccessLogger):
    """One structured line per request (path without the query: it may hold numbers)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse,
            elapsed: float) -> None:
        self.logger.info("http_request", extra={
            "ip": request.remote, "method": request.method, "path": request.path,
            "status": response.status, "bytes": response.body_length,
            "ms": round(elapsed * 1000, 1),
        })


def tls_context(config: SiteConfig) -> ssl.SSLContext | None:
    """The HTTPS listener's TLS context: the site's ``[tls]`` certificate; without
    ``[tls]`` but with ``[server] https``, the data directory's self-signed one (made on
    the first start, see :mod:`hotline.selfsigned`); else None."""
    if config.tls is not None:
        cert, key = config.tls.cert, config.tls.key
    elif config.server.https is not None:
        pair = ensure_certificate(config.server.data_dir, config.server.https.host,
                                  external_ip=config.server.external_ip)
        cert, key = pair.cert, pair.key
    else:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


class ApiServer:
    """The HTTP and HTTPS listeners of a site.

    :param config: the site (``[server] http``/``https``, ``[tls]``).
    :param live: the server's live gauges for ``/metrics``.
    :param clock: monotonic seconds (sessions, login bans).
    :param calls: the server's call control (``/api/calls``; its ACD by default).
    :param acd: the running ACD, when it is not ``calls.acd``.
    """

    def __init__(
        self,
        config: SiteConfig,
        *,
        live: LiveMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        calls: CallControl | None = None,
        recorder: CallRecorder | None = None,
        acd: AcdService | None = None,
        softphones: Softphones | None = None,
    ) -> None:
        self.config = config
        self.softphones = softphones
        self.live = live
        self.calls = calls
        self.recorder = recorder
        self.acd = acd
        self.clock = clock
        self.app: web.Application | None = None
        #: ``(scheme, host, port)`` of every bound listener, once started.
        self.addresses: list[tuple[str, str, int]] = []
        self._runner: web.AppRunner | None = None

    async def start(self) -> list[tuple[str, str, int]]:
        """Bind the configured listeners; returns :attr:`addresses`.

        Nothing is bound when both ``http`` and ``https`` are off.

        :raises OSError: when a port cannot be bound.
        """
        server = self.config.server
        listeners: list[tuple[str, Address, ssl.SSLContext | None]] = []
        if server.http is not None:
            listeners.append(("http", server.http, None))
        if server.https is not None:
            # Off the loop: a first start makes a key and asks netlink for addresses.
            ctx = await asyncio.get_running_loop().run_in_executor(
                None, tls_context, self.config)
            assert ctx is not None  # [tls], else a self-signed certificate
            listeners.append(("https", server.https, ctx))
        if not listeners:
            return []
        # Hashing every password takes a while (scrypt): off the loop, SIP goes on.
        accounts = await asyncio.get_running_loop().run_in_executor(
            None, Accounts, self.config)
        self.app = create_app(self.config, live=self.live, clock=self.clock, calls=self.calls,
                              recorder=self.recorder, acd=self.acd, accounts=accounts,
                              softphones=self.softphones)
        runner = web.AppRunner(self.app, access_log_class=_AccessLogger,
                               access_log=logging.getLogger("hotline.api.access"),
                               shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        self._runner = runner
        try:
            for scheme, addr, ctx in listeners:
                before = len(runner.addresses)
                site = web.TCPSite(runner, addr.host, addr.port, ssl_context=ctx)
                await site.start()
                for sock in runner.addresses[before:]:
                    host, port = str(sock[0]), int(sock[1])
                    self.addresses.append((scheme, host, port))
                    logger.info("listening", extra={"transport": scheme, "host": host,
                                                    "port": port})
        except BaseException:
            await self.close()
            raise
        return self.addresses

    async def close(self) -> None:
        """Stop the listeners (in-flight requests get a few seconds) and the database."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self.addresses = []
