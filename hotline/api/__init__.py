"""The HTTP API of a hotline site (aiohttp): login and sessions, recordings with Range
playback, CDRs as JSON or CSV, and Prometheus ``/metrics``.

Endpoints and their rules are listed in ``docs/api.md``. :class:`ApiServer` is what
:class:`hotline.server.HotlineServer` starts and closes; :func:`create_app` builds the
application alone (tests, embedding).
"""

from .app import ApiServer, create_app
from .metrics import server_metrics

__all__ = ["ApiServer", "create_app", "server_metrics"]
