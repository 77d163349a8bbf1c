"""The running ACD: the sans-IO engine on the event loop.

:class:`AcdService` owns the :class:`acd.engine.Acd` of the site, arms one loop timer for
it, and hands every event it emits to whoever listens: call control (offers, withdrawals,
callers leaving, announcements), storage (the queue log and agent states) and the API's
WebSocket clients. Everything that feeds the engine (SIP, the API, feature codes) calls
:meth:`AcdService.call` so that the events are dispatched right after the input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

from acd.engine import Acd
from acd.events import (
    AcdEvent,
    AgentStateChanged,
    Announce,
    CallLeftQueue,
    CallOffered,
    OfferWithdrawn,
    PlayMessage,
    QueueEvent,
)
from acd.stats import AcdStats

from .config import QueueConfig, SiteConfig
from .looptimer import LoopTimer

logger = logging.getLogger("hotline.acd")

__all__ = ["AcdService", "CALL_EVENTS"]

CALL_EVENTS = (CallOffered, OfferWithdrawn, CallLeftQueue, Announce, PlayMessage)
"""Events call control acts on."""

P = ParamSpec("P")
R = TypeVar("R")


class AcdService:
    """The site's ACD engine, its timer and its event listeners."""

    def __init__(self, config: SiteConfig, clock: Callable[[], float],
                 wall_offset: float) -> None:
        """:param clock: the loop's clock (``now`` for every input).
        :param wall_offset: wall epoch minus loop time (business hours, stored times)."""
        self.config = config
        self._clock = clock
        self.wall_offset = wall_offset
        members = {q.name: [a.id for a in config.queue_members(q)] for q in config.queues}
        self.engine = Acd(config.queues, config.agents, members, is_open=self._is_open)
        self.on_call_event: Callable[[AcdEvent, float], None] | None = None
        """Call control's handler for :data:`CALL_EVENTS`."""
        self.listeners: list[Callable[[AcdEvent], None]] = []
        """Called with every event (storage, WebSocket fan-out)."""
        self.stats = AcdStats.for_queues(config.queues)
        """Today's figures, live (the server feeds it today's stored history at start;
        every event after is fed as it comes), for the API and the wallboard."""
        self._day_ends = 0.0
        """Wall time from which :attr:`stats` may forget what only yesterday needed."""
        self._timer = LoopTimer(self._on_timer)
        self._pumping = False

    def _feed_stats(self, event: AcdEvent) -> None:
        wall = self._clock() + self.wall_offset
        if wall >= self._day_ends:  # a new day: yesterday's settled calls can go
            start = self.today_start()
            self.stats.prune(start)
            # 26 h after a midnight is always in the next day (days are 23 to 25 h long).
            nxt = self.config.local_time(datetime.fromtimestamp(start + 26 * 3600, UTC))
            self._day_ends = nxt.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        self.stats.feed(event, self.wall_offset)

    def today_start(self) -> float:
        """Unix seconds of the site's last local midnight (where "today" starts)."""
        wall = datetime.fromtimestamp(self._clock() + self.wall_offset, UTC)
        local = self.config.local_time(wall)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight.timestamp()

    def _is_open(self, queue: QueueConfig, now: float) -> bool:
        if queue.hours is None and not queue.days:
            return True
        wall = datetime.fromtimestamp(now + self.wall_offset, UTC)
        return queue.is_open(self.config.local_time(wall))

    def now(self) -> float:
        """The loop's clock."""
        return self._clock()

    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run an engine input (``fn`` is a bound method of :attr:`engine` taking ``now``
        last or as keyword), then dispatch what it emitted. Errors propagate after the
        events are dispatched."""
        try:
            return fn(*args, **kwargs)
        finally:
            self.pump()

    def pump(self) -> None:
        """Dispatch pending events and re-arm the timer. Re-entrant calls (a handler
        feeding the engine) return at once: the outer loop drains what they add."""
        if self._pumping:
            return
        self._pumping = True
        try:
            engine = self.engine
            while (event := engine.next_event()) is not None:
                if isinstance(event, CALL_EVENTS) and self.on_call_event is not None:
                    try:
                        self.on_call_event(event, self._clock())
                    except Exception:  # noqa: BLE001 - one call's bug must not stop the ACD
                        logger.exception("acd_event_failed", extra={"event": repr(event)})
                if isinstance(event, (QueueEvent, AgentStateChanged)):
                    self._feed_stats(event)
                for listener in self.listeners:
                    try:
                        listener(event)
                    except Exception:  # noqa: BLE001
                        logger.exception("acd_listener_failed")
        finally:
            self._pumping = False
        self._timer.arm(self.engine.get_timer())

    def _on_timer(self) -> None:
        self.call(self.engine.handle_timer, self._clock())

    def close(self) -> None:
        """Cancel the timer (server shutdown)."""
        self._timer.cancel()
