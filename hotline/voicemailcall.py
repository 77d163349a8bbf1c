"""Running a voicemail session (:mod:`acd.voicemail`) on a call's answered caller leg.

:class:`VoicemailRun` is to :class:`acd.voicemail.VoicemailSession` (a caller leaving a
message) and :class:`~acd.voicemail.VoicemailMenuSession` (the owner listening by
phone) what :class:`~hotline.ivrcall.IvrRun` is to an IVR session, and it *is* an
``IvrRun``: prompts, the media lock, the single timer, digits and prompt ends work the
same, so call control keeps it in ``call.ivr`` and its DTMF/PlaybackDone dispatch and
``close`` on hang-up need no change. What it adds:

- **VAD.** Leaving a message turns on the media worker's VAD on the caller's endpoint
  before the greeting (``CallMedia.set_vad``); call control passes
  ``SpeechStarted``/``SpeechStopped`` to :meth:`VoicemailRun.on_speech`, and the session
  ends the recording ``silence_seconds`` after the caller stops speaking.
- **Recording.** :class:`~acd.ivr_actions.StartRecording` records the caller's received
  audio into both channels of a WAV (so a player or the phone menu's downmix hears it
  at full level) under ``DATA_DIR/voicemail/BOX/`` (:mod:`hotline.voicemail_store`);
  :class:`~acd.ivr_actions.StopRecording` stops it and reports the length back, once
  the worker's writer has closed the file (a saved row always points to a whole file).
  Both run under the media lock, after the prompts queued before them.
- **The caller hangs up while recording**: that is how most messages end. ``close``
  stops taking media actions but still runs the session to its end: the recording is
  stopped, the message saved and the owner notified, and the final ``Hangup`` is not
  handed back (the call is over already).
- **Storage and notification.** ``SaveMessage`` indexes the message (fsynced),
  ``DiscardMessage`` deletes the file, ``MarkHeard``/``DeleteMessage`` come from the
  phone menu. ``Notify`` POSTs the JSON payload (plus the message id and its API audio
  path) to the box's ``notify_url`` with aiohttp and runs ``notify_command`` (argv, no
  shell); both are tasks that outlive the call, failures are logged, never retried.

Targets: ``voicemail:BOX`` leaves a message in BOX; ``voicemail:*BOX`` is the owner's
access to BOX (PIN if the box has one, then the message menu). See docs/config.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import aiohttp

from acd.ivr import IvrSession
from acd.ivr_actions import (
    DeleteMessage,
    DiscardMessage,
    Hangup,
    IvrAction,
    MarkHeard,
    Notify,
    Play,
    SaveMessage,
    StartRecording,
    StopPlay,
    StopRecording,
    Transfer,
)
from acd.voicemail import VoicemailMenuSession, VoicemailMessage, VoicemailSession
from media.client import EndpointHandle, MediaError, RecordingHandle
from recorder.exceptions import RecorderError
from recorder.wav import inspect, repair

from .config import SiteConfig, VoicemailConfig
from .ivrcall import IvrRun
from .logs import CallLogAdapter
from .voicemail_store import VoicemailRecord, VoicemailStore, valid_box

if TYPE_CHECKING:
    from .mediactl import CallMedia

__all__ = ["LISTEN_PREFIX", "VoicemailRun", "parse_voicemail_target"]

logger = logging.getLogger("hotline.voicemail")

#: ``voicemail:*BOX``: the box owner listening, not a caller leaving a message.
LISTEN_PREFIX = "*"
#: Seconds a ``notify_url`` POST may take.
NOTIFY_TIMEOUT = 10.0
#: Seconds a ``notify_command`` may run before it is killed.
COMMAND_TIMEOUT = 60.0
#: Seconds to wait for the worker's writer to close a stopped recording's file.
FILE_CLOSE_WAIT = 2.0
#: Bytes per second of a recording (8 kHz, 16-bit, two channels).
_BYTES_PER_SECOND = 8000 * 2 * 2


def parse_voicemail_target(arg: str) -> tuple[str, bool]:
    """Split a ``voicemail:`` target's argument into ``(box, listen)``.

    :raises ValueError: for a box name that is not letters, digits, ``_ . -``.
    """
    listen = arg.startswith(LISTEN_PREFIX)
    box = arg[len(LISTEN_PREFIX):] if listen else arg
    if not valid_box(box):
        raise ValueError(f"voicemail box {box!r}: expected letters, digits, _ . -")
    return box, listen


class VoicemailRun(IvrRun):
    """One call's voicemail session and the media, storage and notification work it asks
    for. Construct it once the caller's endpoint exists; :meth:`start` once answered.

    :param box: the mailbox (``SiteConfig.voicemail_box(name)``).
    :param ep: the caller's endpoint.
    :param media: media operations.
    :param store: where messages are filed.
    :param listen: the owner listening (:class:`VoicemailMenuSession`) instead of a
        caller leaving a message.
    :param call_id: for logs and the message row.
    :param caller: the caller's number (stored with the message).
    :param variables: the call's variables (``called``, IVR input...), kept with the
        message and usable in the greeting.
    :param authenticated: listening without the PIN.
    :param clock: the loop's clock (the session's ``now``).
    :param on_end: called with the session's final ``Hangup`` (never after :meth:`close`).
    :param flush: sends what the SIP stack has queued (after timer steps).
    :param spawn: runs a coroutine as a tracked task.
    :raises ValueError: for a box name that cannot be a folder, or (listening) when the
        messages cannot be read.
    """

    def __init__(self, box: VoicemailConfig, ep: EndpointHandle, media: CallMedia,
                 store: VoicemailStore, *, listen: bool = False, call_id: str, caller: str,
                 variables: Mapping[str, str] | None = None, authenticated: bool = False,
                 clock: Callable[[], float],
                 on_end: Callable[[Transfer | Hangup, float], None],
                 flush: Callable[[], None],
                 spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]) -> None:
        self.box = box
        self.store = store
        self.listen = listen
        self.caller = caller
        self.call_id = call_id
        self.received_at = datetime.now(UTC)
        #: The file being recorded (None when listening).
        self.path: Path | None = None
        #: The message this call left, once saved.
        self.saved: VoicemailRecord | None = None
        self.vm: VoicemailSession | VoicemailMenuSession
        if listen:
            try:
                stored = store.messages(box.name)
            except sqlite3.Error as exc:
                raise ValueError(f"voicemail box {box.name!r}: storage failed: {exc}") from exc
            messages = []
            for r in stored:
                try:
                    messages.append(VoicemailMessage(str(r.id), str(store.file(r)), r.caller,
                                                     r.new))
                except ValueError:
                    continue
            self.vm = VoicemailMenuSession(box, messages, authenticated=authenticated)
        else:
            self.path = store.new_path(box.name, self.received_at)
            self.vm = VoicemailSession(box, str(self.path), variables={
                "caller": caller, "call_id": call_id, **(variables or {})})
        # An IvrRun drives any session with start/on_digit/on_prompt_done/on_timer/
        # on_hangup/next_timer/finished; the voicemail sessions have exactly those.
        super().__init__(cast(IvrSession, self.vm), ep, media, call_id=call_id, clock=clock,
                         on_end=on_end, flush=flush, spawn=spawn)
        self._log = CallLogAdapter(logger, call_id, box=box.name)
        self._recording: RecordingHandle | None = None

    @classmethod
    def for_target(cls, arg: str, config: SiteConfig, ep: EndpointHandle, media: CallMedia,
                   store: VoicemailStore, **kwargs: Any) -> VoicemailRun:
        """The run for a ``voicemail:ARG`` target (``BOX`` or ``*BOX``); ``kwargs`` as
        for the constructor.

        :raises ValueError: for a bad box name.
        """
        name, listen = parse_voicemail_target(arg)
        return cls(config.voicemail_box(name), ep, media, store, listen=listen, **kwargs)

    # -- entry points ----------------------------------------------------------------
    def start(self, now: float) -> None:
        """The caller is answered: VAD on (leaving a message), then greeting or menu."""
        self._log.info("voicemail_start", extra={"mode": "listen" if self.listen else "leave"})
        if not self.listen:
            self._spawn_media(self._enable_vad())
        super().start(now)

    def on_speech(self, speaking: bool, now: float) -> None:
        """VAD on the caller's endpoint: speech started (True) or stopped (False)."""
        if self.closed or not isinstance(self.vm, VoicemailSession):
            return
        vm = self.vm
        self._feed(vm.on_speech_start(now) if speaking else vm.on_speech_stop(now), now)

    def close(self, now: float) -> None:
        """The caller hung up (or the call ended): no more media, but a message being
        recorded is still stopped, saved and notified."""
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._current = None
        if not self.vm.finished:
            self._feed(self.vm.on_hangup(now), now)

    # -- executing actions -------------------------------------------------------------
    def _feed(self, actions: list[IvrAction], now: float) -> None:
        for action in actions:
            match action:
                case Play() | StopPlay():
                    if not self.closed:
                        super()._feed([action], now)
                case StartRecording(path=path):
                    self._spawn_media(self._start_recording(path))
                case StopRecording(reason=reason):
                    self._log.info("voicemail_stop", extra={"reason": reason})
                    self._spawn_media(self._stop_recording())
                case SaveMessage():
                    self._save(action)
                case DiscardMessage(path=path, reason=reason):
                    self._log.info("voicemail_discarded", extra={"reason": reason})
                    self._unlink(path)
                case Notify():
                    self._notify(action)
                case MarkHeard(message_id=mid):
                    self._storage_op("mark_heard", self.store.mark_heard, mid)
                case DeleteMessage(message_id=mid):
                    self._storage_op("delete", self.store.delete, mid)
                case Hangup():
                    handed_back = not self.closed
                    self.closed = True
                    if self._timer is not None:
                        self._timer.cancel()
                        self._timer = None
                    self._log.info("voicemail_end", extra={"reason": action.reason})
                    if handed_back:
                        self._on_end(action, now)
                    return
                case _:
                    self._log.warning("voicemail_action_unsupported",
                                      extra={"action": type(action).__name__})
        self._rearm()

    async def _enable_vad(self) -> None:
        try:
            await self._media.set_vad(self.ep, True)
        except MediaError as exc:
            self._log.warning("voicemail_vad_failed", extra={"error": str(exc)})

    async def _start_recording(self, path: str) -> None:
        if self.closed:
            return  # the caller left before the beep ended; the stop reports 0 s
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            # both channels: the caller (a player, or the phone menu's downmix, hears
            # the message at full level on either)
            self._recording = await self._media.pool.record(path, [self.ep], [self.ep])
        except (MediaError, OSError) as exc:
            self._log.warning("voicemail_record_failed", extra={"error": str(exc)})
            if not self.closed:
                now = self._clock()
                self._feed([Hangup("error")], now)
            return
        self._log.info("voicemail_recording", extra={"file": path})

    async def _stop_recording(self) -> None:
        rec, self._recording = self._recording, None
        seconds = 0.0
        if rec is not None:
            try:
                seconds = await self._media.pool.record_stop(rec)
                await _wait_closed(rec.path, round(seconds * _BYTES_PER_SECOND))
            except MediaError as exc:  # the worker died: keep what reached the disk
                self._log.warning("voicemail_stop_failed", extra={"error": str(exc)})
                seconds = await asyncio.to_thread(_salvage, rec.path)
        now = self._clock()
        assert isinstance(self.vm, VoicemailSession)
        self._feed(self.vm.on_recording_done(seconds, now), now)

    def _save(self, action: SaveMessage) -> None:
        variables = dict(action.variables)
        try:
            self.saved = self.store.save(
                action.box, action.path, action.seconds, call_id=self.call_id,
                caller=variables.get("caller", self.caller), variables=variables,
                received_at=self.received_at)
        except Exception:  # noqa: BLE001 — the file stays on disk; the call goes on
            self._log.exception("voicemail_save_failed", extra={"file": action.path})
            return
        self._log.info("voicemail_saved", extra={
            "message_id": self.saved.id, "seconds": round(action.seconds, 1),
            "reason": getattr(self.vm, "stop_reason", None)})

    def _unlink(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            self._log.warning("voicemail_unlink_failed", extra={"error": str(exc)})

    def _storage_op(self, name: str, op: Callable[[int], bool], message_id: str) -> None:
        try:
            done = op(int(message_id))
        except Exception:  # noqa: BLE001 — a storage hiccup must not end the call
            self._log.exception("voicemail_storage_failed", extra={"op": name})
            return
        self._log.info(f"voicemail_{name}", extra={"message_id": message_id, "done": done})

    def _notify(self, action: Notify) -> None:
        payload: dict[str, Any] = dict(action.payload)
        if self.saved is not None:
            payload["id"] = self.saved.id
            payload["received_at"] = self.saved.received_at.isoformat(timespec="milliseconds")
            payload["audio"] = f"/api/voicemail/{self.saved.box}/{self.saved.id}/audio"
        if action.url:
            self._spawn(self._post(action.url, payload))
        if action.argv:
            self._spawn(self._run_command(action.argv))

    async def _post(self, url: str, payload: Mapping[str, Any]) -> None:
        try:
            timeout = aiohttp.ClientTimeout(total=NOTIFY_TIMEOUT)
            async with aiohttp.ClientSession(timeout=timeout) as http, \
                    http.post(url, json=payload) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self._log.warning("voicemail_notify_failed", extra={
                "url": url, "error": str(exc) or type(exc).__name__})
            return
        log = self._log.info if status < 300 else self._log.warning
        log("voicemail_notified", extra={"url": url, "status": status})

    async def _run_command(self, argv: tuple[str, ...]) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            self._log.warning("voicemail_command_failed", extra={
                "command": argv[0], "error": str(exc)})
            return
        try:
            _, err = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            self._log.warning("voicemail_command_failed", extra={
                "command": argv[0], "error": f"killed after {COMMAND_TIMEOUT:.0f} s"})
            return
        if proc.returncode != 0:
            self._log.warning("voicemail_command_failed", extra={
                "command": argv[0], "status": proc.returncode,
                "error": err.decode("utf-8", "replace").strip()[-500:]})
        else:
            self._log.info("voicemail_command", extra={"command": argv[0]})


async def _wait_closed(path: str, data_bytes: int) -> None:
    """Wait until the worker's writer thread has written the final WAV header (it
    closes the file after ``record_stop`` has answered)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FILE_CLOSE_WAIT
    while True:
        try:
            info = await asyncio.to_thread(inspect, path)
            if info.declared_size >= data_bytes and info.data_size >= data_bytes:
                return
        except RecorderError:
            pass
        if loop.time() >= deadline:
            return
        await asyncio.sleep(0.02)


def _salvage(path: str) -> float:
    """Seconds of audio in a recording whose worker died (the header is repaired)."""
    try:
        result = repair(path)
    except RecorderError:
        return 0.0
    return result.data_size / _BYTES_PER_SECOND
