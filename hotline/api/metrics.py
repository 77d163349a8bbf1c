"""Prometheus metrics at ``GET /metrics``: live server gauges plus the API's own counters.

Why this exists: operators watch a PBX with Prometheus (DESIGN.md, "Interfaces"). Live
numbers (calls, legs, media endpoints, SIP transactions and connections, registered
AORs, live recordings, media workers) are read from the running server when Prometheus
scrapes, on the event loop, so nothing is counted twice and nothing runs between
scrapes; the API counts its own requests and logins as they happen.

Each API has its own :class:`prometheus_client.CollectorRegistry` (not the global
default), so two servers in one process (tests) do not collide. The endpoint needs no
session (DESIGN.md); bind ``[server] http`` to a private address or filter it if the
numbers are sensitive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Info,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .. import __version__
from .state import STATE

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from ..server import HotlineServer

__all__ = ["ApiMetrics", "LiveMetrics", "routes", "server_metrics"]

#: Returns the live metric families at scrape time.
LiveMetrics = Callable[[], Iterable["Metric"]]


class _LiveCollector(Collector):
    def __init__(self, source: LiveMetrics) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        yield from self._source()


class ApiMetrics:
    """The registry behind ``/metrics`` and the API's counters.

    :param live: the server's live gauges (:func:`server_metrics`), if any.
    :param sessions: returns the number of live sessions.
    """

    def __init__(self, live: LiveMetrics | None, sessions: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        #: HTTP requests answered, by route pattern, method and status.
        self.requests = Counter(
            "hotline_http_requests", "HTTP requests answered",
            ["route", "method", "status"], registry=self.registry)
        #: Login attempts by result (ok, failed, banned).
        self.logins = Counter(
            "hotline_api_logins", "Web login attempts", ["result"], registry=self.registry)
        sessions_gauge = Gauge(
            "hotline_api_sessions", "Live web sessions", registry=self.registry)
        sessions_gauge.set_function(lambda: float(sessions()))
        Info("hotline_build", "hotline version", registry=self.registry).info(
            {"version": __version__})
        ProcessCollector(registry=self.registry)
        if live is not None:
            self.registry.register(_LiveCollector(live))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


def server_metrics(server: HotlineServer) -> LiveMetrics:
    """The live gauges of a running :class:`~hotline.server.HotlineServer`."""

    def collect() -> Iterator[Metric]:
        calls = server.calls.stats()
        for key, name, text in (
            ("calls", "hotline_calls", "Live calls"),
            ("legs", "hotline_call_legs", "Live call legs (caller, agent, outbound)"),
            ("endpoints", "hotline_media_endpoints", "Media endpoints held by calls"),
            ("pending_txns", "hotline_call_pending_transactions",
             "Outgoing INVITE transactions waiting for an answer"),
            ("tasks", "hotline_call_tasks", "Background tasks of call control"),
        ):
            yield GaugeMetricFamily(name, text, value=float(calls.get(key, 0)))
        yield GaugeMetricFamily("hotline_accepting_calls",
                                "1 while new calls are taken, 0 while shutting down",
                                value=1.0 if server.calls.accepting else 0.0)
        yield GaugeMetricFamily("hotline_sip_transactions", "Live SIP transactions",
                                value=float(server.stack.stats().get("transactions", 0)))
        conns = GaugeMetricFamily("hotline_sip_connections",
                                  "Open SIP connections (bound sockets for udp)",
                                  labels=["transport"])
        for transport, count in sorted(server.transports.stats().items()):
            conns.add_metric([transport], float(count))
        yield conns
        yield GaugeMetricFamily("hotline_sip_registered_aors",
                                "Addresses of record with a registration",
                                value=float(len(server.calls.registrar.aors())))
        yield GaugeMetricFamily("hotline_media_workers", "Media worker processes",
                                value=float(server.media.n_workers))
        yield CounterMetricFamily("hotline_media_worker_restarts",
                                  "Media workers restarted after dying",
                                  value=float(server.media.restarts))
        live = len(server.recorder.handles) if server.recorder is not None else 0
        yield GaugeMetricFamily("hotline_recordings_live", "Recordings being written",
                                value=float(live))
        yield from _trunk_metrics(server)
        yield from _acd_metrics(server)

    return collect


def _trunk_metrics(server: HotlineServer) -> Iterator[Metric]:
    up = GaugeMetricFamily("hotline_trunk_up", "1 if the trunk answers OPTIONS (or is not "
                           "probed), 0 if it is down", labels=["trunk"])
    channels = GaugeMetricFamily("hotline_trunk_channels", "Outbound calls in progress "
                                 "through the trunk", labels=["trunk"])
    select = server.calls.trunk_select
    for trunk in server.config.trunks:
        health = server.trunks.health(trunk.name) if server.trunks is not None else None
        up.add_metric([trunk.name], 0.0 if health is False else 1.0)
        channels.add_metric([trunk.name], float(select.in_use(trunk.name)))
    yield up
    yield channels


def _acd_metrics(server: HotlineServer) -> Iterator[Metric]:
    """Per queue: callers waiting, longest wait, and today's figures from the same
    accumulator as ``hotline report``; per agent state: how many agents are in it."""
    acd = server.calls.acd
    engine = acd.engine
    now = acd.now()
    wall = now + acd.wall_offset
    midnight = acd.today_start()
    waiting = GaugeMetricFamily("hotline_queue_waiting", "Callers in line", labels=["queue"])
    longest = GaugeMetricFamily("hotline_queue_longest_wait_seconds",
                                "Seconds the longest-waiting caller has waited", labels=["queue"])
    counts = {name: GaugeMetricFamily(f"hotline_queue_{name}_today", text, labels=["queue"])
              for name, text in (("offered", "Calls that joined the queue today"),
                                 ("answered", "Calls answered by an agent today"),
                                 ("abandoned", "Callers who hung up while waiting today"))}
    rates = {name: GaugeMetricFamily(f"hotline_queue_{name}", text, labels=["queue"])
             for name, text in (
                 ("service_level_ratio", "Today's SL: answered within service_level over "
                                         "offered less short abandons (docs/acd.md)"),
                 ("asa_seconds", "Today's average speed of answer"),
                 ("aht_seconds", "Today's average handle time (talk + hold + wrap-up)"),
                 ("abandon_ratio", "Today's abandoned over resolved calls"))}
    for q in server.config.queues:
        line = engine.waiting(q.name)
        waiting.add_metric([q.name], float(len(line)))
        oldest = min((e.joined for e in line), default=now)
        longest.add_metric([q.name], max(0.0, now - oldest))
        st = acd.stats.queue_stats(q.name, midnight, wall)
        counts["offered"].add_metric([q.name], float(st.offered))
        counts["answered"].add_metric([q.name], float(st.answered))
        counts["abandoned"].add_metric([q.name], float(st.abandoned))
        for name, value in (("service_level_ratio", st.sl), ("asa_seconds", st.asa),
                            ("aht_seconds", st.aht), ("abandon_ratio", st.abandon_rate)):
            if value is not None:
                rates[name].add_metric([q.name], float(value))
    yield waiting
    yield longest
    yield from counts.values()
    yield from rates.values()
    agents = GaugeMetricFamily("hotline_agents", "Agents by ACD state", labels=["state"])
    by_state: dict[str, int] = {}
    for agent in engine.agents.values():
        by_state[agent.state.value] = by_state.get(agent.state.value, 0) + 1
    for state in ("logged_out", "ready", "not_ready", "ringing", "on_call", "on_hold",
                  "wrapup"):
        agents.add_metric([state], float(by_state.get(state, 0)))
    yield agents


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics`` (no session)."""
    body = request.app[STATE].metrics.render()
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    resp.headers["Cache-Control"] = "no-store"
    return resp


def routes() -> list[web.RouteDef]:
    """The metrics route."""
    return [web.get("/metrics", metrics)]
