"""What every API handler shares, kept on the aiohttp application under :data:`STATE`.

Why this exists: handlers live in several modules (auth, recordings, CDRs, metrics) and
need the same site, database, sessions and counters; one typed object under one typed
application key (aiohttp's ``AppKey``) keeps them from importing each other or the app
factory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import TYPE_CHECKING

from aiohttp import web

from ..config import SiteConfig

if TYPE_CHECKING:
    from acd.stats import AcdStats
    from web_softphone.gateway import Softphones

    from ..acdctl import AcdService
    from ..callcontrol import CallControl
    from ..recording import CallRecorder
    from .auth import Accounts, LoginLimiter, SessionStore
    from .db import ApiDatabase
    from .metrics import ApiMetrics
    from .ws import EventHub

__all__ = ["STATE", "ApiState"]


@dataclass(slots=True)
class ApiState:
    """The shared parts of one running API."""

    config: SiteConfig
    db: ApiDatabase
    accounts: Accounts
    sessions: SessionStore
    limiter: LoginLimiter
    metrics: ApiMetrics
    #: Naive dates and times in query parameters are in this zone (``server.timezone``,
    #: else the machine's), as for ``hotline cdr export --since``.
    tz: tzinfo | None
    #: The server's call control (live calls and in-call commands); None when the API
    #: runs without a SIP side (tests of the stored-data endpoints).
    calls: CallControl | None = None
    #: The server's recorder (pause/resume of live recordings); None without one.
    recorder: CallRecorder | None = None
    #: The site's running ACD (agents, queues, their events); ``calls.acd`` on a server,
    #: None when the API runs without one (``/api/agents`` and ``/api/queues`` answer 503).
    acd: AcdService | None = None
    #: Today's queue figures (service level, ASA...), fed with the ACD's events from the
    #: API's start (and the day's stored history); None without an ACD.
    stats: AcdStats | None = None
    #: The WebSocket clients of ``/api/ws`` and the ACD listener feeding them.
    hub: EventHub | None = None
    #: The browsers' phones (:mod:`web_softphone.gateway`); None without a media side.
    softphones: Softphones | None = None


#: The application key of :class:`ApiState`.
STATE: web.AppKey[ApiState] = web.AppKey("hotline.api", ApiState)
