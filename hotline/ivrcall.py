"""Running an IVR session (:mod:`acd.ivr`) on a call's answered caller leg.

The session is sans-IO; :class:`IvrRun` is its asyncio side for one call. It executes
the session's actions in order and feeds back what happens:

- :class:`~acd.ivr_actions.Play` plays the prompts one after another on the caller's
  endpoint (the media worker plays one source at a time). The session's play id maps to
  the worker's play ids; ``on_prompt_done`` is reported once per play, after its last
  prompt or when it was stopped, replaced or failed.
- Media operations of a call run one at a time, in the order the session asked for them
  (one lock per run), so a ``StopPlay`` never overtakes the ``Play`` it stops.
- One ``loop.call_at`` timer per call, re-armed to ``session.next_timer()`` after every
  event; HTTP web-hooks are tasks (aiohttp), cancelled when the caller hangs up.
- ``Hangup`` and ``Transfer`` are handed back to call control (:meth:`CallControl.ivr_done`).

Nothing here runs per packet: digits and prompt ends arrive as media worker events.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from acd.ivr import IvrSession
from acd.ivr_actions import Hangup, HttpRequest, IvrAction, Play, StopPlay, Transfer
from media.client import EndpointHandle, MediaError

from .logs import CallLogAdapter

if TYPE_CHECKING:
    from .mediactl import CallMedia

logger = logging.getLogger("hotline.ivr")


@dataclass(eq=False)
class _Play:
    """One session :class:`Play` being executed."""

    sid: int
    prompts: tuple[str, ...]
    index: int = 0
    media_id: int | None = None
    reported: bool = False


class IvrRun:
    """One call's IVR session and the media, timer and HTTP work it asks for.

    :param session: the started-or-not session (call :meth:`start` once answered).
    :param ep: the caller's endpoint.
    :param media: media operations.
    :param clock: the loop's clock (the session's ``now``).
    :param on_end: called with the session's final action (``Hangup``/``Transfer``).
    :param flush: sends what the SIP stack has queued (after timer and task steps).
    :param spawn: runs a coroutine as a tracked task.
    """

    def __init__(self, session: IvrSession, ep: EndpointHandle, media: CallMedia, *,
                 call_id: str, clock: Callable[[], float],
                 on_end: Callable[[Transfer | Hangup, float], None],
                 flush: Callable[[], None],
                 spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]) -> None:
        self.session = session
        self.ep = ep
        self._media = media
        self._clock = clock
        self._on_end = on_end
        self._flush = flush
        self._spawn = spawn
        self._log = CallLogAdapter(logger, call_id)
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._http: set[asyncio.Task[None]] = set()
        self._current: _Play | None = None
        self._by_media: dict[int, _Play] = {}
        self._early: dict[int, str] = {}
        self.closed = False

    # -- entry points --------------------------------------------------------------
    def start(self, now: float) -> None:
        """The caller is answered: enter the IVR."""
        self._feed(self.session.start(now), now)

    def on_digit(self, digit: str, now: float) -> None:
        """A key from the caller (RFC 4733 or in-band)."""
        if not self.closed:
            self._feed(self.session.on_digit(digit, now), now)

    def owns(self, media_id: int) -> bool:
        """Whether a worker play id is one of this run's prompts."""
        return media_id in self._by_media

    def on_playback_done(self, media_id: int, reason: str, now: float) -> None:
        """A worker play ended (``done``, ``stopped``, ``replaced``, ``destroyed``)."""
        play = self._by_media.pop(media_id, None)
        if play is None:
            self._early[media_id] = reason  # ended before ``play`` returned its id
            return
        if self.closed:
            return
        if play is self._current and reason == "done" and play.index + 1 < len(play.prompts):
            play.index += 1
            play.media_id = None
            self._spawn_media(self._play_next(play))
            return
        self._report(play, now)

    def close(self, now: float) -> None:
        """The caller hung up (or the call ended): stop the session and its work."""
        if self.closed:
            return
        self.closed = True
        if not self.session.finished:
            self.session.on_hangup(now)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._http):
            task.cancel()
        self._current = None

    def stop_prompts(self) -> None:
        """Stop whatever the IVR is playing (before a bridge or another application)."""
        play, self._current = self._current, None
        if play is not None:
            self._spawn_media(self._stop(play))

    # -- executing actions -----------------------------------------------------------
    def _feed(self, actions: list[IvrAction], now: float) -> None:
        for action in actions:
            if self.closed:
                return
            match action:
                case Play(id=sid, prompts=prompts):
                    play = _Play(sid, prompts)
                    self._current = play
                    self._spawn_media(self._play_next(play))
                case StopPlay(id=sid):
                    if self._current is not None and self._current.sid == sid:
                        self.stop_prompts()
                case HttpRequest():
                    task = self._spawn(self._request(action))
                    self._http.add(task)
                    task.add_done_callback(self._http.discard)
                case Hangup() | Transfer():
                    self.closed = True
                    if self._timer is not None:
                        self._timer.cancel()
                        self._timer = None
                    self._on_end(action, now)
                    return
                case _:
                    self._log.warning("ivr_action_unsupported",
                                      extra={"action": type(action).__name__})
        self._rearm()

    def _rearm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        at = None if self.closed else self.session.next_timer()
        if at is not None:
            self._timer = asyncio.get_running_loop().call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed:
            return
        now = self._clock()
        try:
            self._feed(self.session.on_timer(now), now)
        except Exception:  # noqa: BLE001 — a flow bug ends this call, not the loop
            self._log.exception("ivr_failed")
            self._feed([Hangup("error")], now)
        self._flush()

    def _report(self, play: _Play, now: float) -> None:
        if play.reported or self.closed:
            return
        play.reported = True
        if play is self._current:
            self._current = None
        self._feed(self.session.on_prompt_done(play.sid, now), now)

    def after_prompts(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a media step of call control after the IVR's queued ones (so that, say,
        ringback started after a transfer is not stopped by the IVR's last stop)."""
        self._spawn_media(coro)

    def _spawn_media(self, coro: Coroutine[Any, Any, None]) -> None:
        async def locked() -> None:
            async with self._lock:
                await coro
        self._spawn(locked())

    async def _play_next(self, play: _Play) -> None:
        """Start prompt ``play.index`` (a prompt that cannot play counts as finished)."""
        while True:
            if self.closed or play is not self._current:
                self._report(play, self._clock())
                return
            try:
                media_id = await self._media.play(self.ep, play.prompts[play.index])
            except MediaError as exc:
                self._log.warning("prompt_failed", extra={
                    "prompt": play.prompts[play.index], "error": str(exc)})
                if play.index + 1 < len(play.prompts):
                    play.index += 1
                    continue
                self._report(play, self._clock())
                return
            play.media_id = media_id
            early = self._early.pop(media_id, None)
            if early is None:
                self._by_media[media_id] = play
                return
            if early != "done" or play.index + 1 >= len(play.prompts) \
                    or play is not self._current:
                self._report(play, self._clock())
                return
            play.index += 1

    async def _stop(self, play: _Play) -> None:
        if play.media_id is not None and play.media_id in self._by_media:
            try:
                await self._media.stop_play(self.ep)
            except MediaError:
                pass
            # The worker's "stopped" event reports it; the session ignores it anyway.
            return
        self._report(play, self._clock())

    async def _request(self, req: HttpRequest) -> None:
        status: int | None = None
        body: Any = None
        try:
            timeout = aiohttp.ClientTimeout(total=req.timeout)
            async with aiohttp.ClientSession(timeout=timeout) as http, http.request(
                    req.method, req.url, json=req.body, headers=dict(req.headers)) as resp:
                status = resp.status
                text = await resp.text()
            try:
                body = json.loads(text)
            except ValueError:
                body = None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self._log.info("ivr_http_failed", extra={"url": req.url, "error": str(exc)
                                                     or type(exc).__name__})
            status, body = None, None
        if self.closed:
            return
        self._log.info("ivr_http", extra={"url": req.url, "status": status})
        now = self._clock()
        self._feed(self.session.on_http_result(req.id, status, body, now), now)
