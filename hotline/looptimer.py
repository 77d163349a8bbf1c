"""One re-armable loop timer for a sans-IO object's ``get_timer()`` deadline.

The aioquic pattern (STYLE 2): after every input, ask the core for its earliest
deadline and keep exactly one ``loop.call_at`` for it. The server (trunk keepalives,
registrar expiry) and the ACD service use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["LoopTimer"]


class LoopTimer:
    """Calls ``fire`` at the deadline last given to :meth:`arm` (once)."""

    def __init__(self, fire: Callable[[], None]) -> None:
        self._fire = fire
        self._handle: asyncio.TimerHandle | None = None
        self._at: float | None = None

    def arm(self, at: float | None) -> None:
        """Fire at loop time ``at`` (None: never); re-arming to the same time is free.
        Off a running loop (a unit test driving the core) nothing is armed."""
        if at == self._at:
            return
        self.cancel()
        if at is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._at = at
        self._handle = loop.call_at(at, self._run)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._at = None

    def _run(self) -> None:
        self._handle = None
        self._at = None
        self._fire()
