"""The control process: SIP transports + stack + call control + storage, on uvloop.

``run(config)`` is what ``hotline serve`` calls. Lifecycle:

1. open storage (migrations run), repair recordings and close the CDRs a crash left
   open, start the media workers, restore registrations;
2. listen on every ``[server] sip`` listener;
3. drain SIP events into :class:`~hotline.callcontrol.CallControl` after every
   datagram/segment and timer;
4. on SIGTERM/SIGINT: stop accepting calls (new INVITEs get 503), let live calls run
   up to ``grace`` seconds, then hang up the rest, flush BYEs and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import ssl
import tempfile
import time
from datetime import UTC, datetime, timedelta

from acd.errors import AcdError
from acd.events import AcdEvent, AgentStateChanged, QueueEvent
from media.client import EndpointHandle, MediaError, MediaPool
from media.events import MediaEvent, RecordingDone, WebRtcStateChanged, WorkerDied
from sip.events import ResponseReceived, TransactionTimeout, TransportError
from sip.registrar import SipRegistrar
from sip.stack import SipStack
from sip.transport import SipTransportManager
from web_softphone.gateway import Softphones

from .api import ApiServer, server_metrics
from .callcontrol import Call, CallControl
from .config import SiteConfig
from .logs import setup_logging
from .looptimer import LoopTimer
from .mediactl import CallMedia
from .recording import RETENTION_EVERY, CallRecorder
from .storage import Registration, Storage
from .trunks import TrunkMonitor
from .voicemail_store import VoicemailStore

logger = logging.getLogger("hotline.server")

CDR_FLUSH = 0.05  # seconds between CDR batch writes


def _loopback_or(host: str) -> str:
    """``host``, or the loopback address of its family when it is a wildcard."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


class HotlineServer:
    """One running site."""

    def __init__(self, config: SiteConfig, loop: asyncio.AbstractEventLoop) -> None:
        """:param config: the validated site.
        :param loop: the event loop to run on."""
        self.config = config
        self.loop = loop
        self.storage = Storage.open(config.server.data_dir)
        self.stack = SipStack()
        ssl_ctx = None
        if config.tls is not None:
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.load_cert_chain(str(config.tls.cert), str(config.tls.key))
        self.transports = SipTransportManager(self.stack, loop, on_events=self._drain,
                                              ssl_context=ssl_ctx)
        self._sock_dir = tempfile.mkdtemp(prefix="hotline-media-")
        self.media = MediaPool(config.server.media_workers, config.server.rtp_ports,
                               socket_dir=self._sock_dir, data_dir=str(config.server.data_dir),
                               rt_priority=config.server.media_priority)
        self.media.on_event = self._on_media_event
        self.voicemail = VoicemailStore(self.storage, config.server.data_dir)
        self.calls = CallControl(config, self.stack, self.transports.local_address,
                                 CallMedia(self.media), clock=loop.time, flush=self._drain,
                                 on_cdr=self._write_cdr, on_answer=self._open_cdr,
                                 on_transfer=self._on_transfer,
                                 voicemail=self.voicemail)
        self.trunks: TrunkMonitor | None = None
        self._timer = LoopTimer(self._on_timer)
        self._stopping = asyncio.Event()
        self._wall_offset = time.time() - loop.time()
        self._cdr_queue: list[tuple[str, dict[str, object]]] = []
        self._cdr_flush: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.recorder = (CallRecorder(self.storage, config.server.data_dir, config.recording,
                                      self.media, self._spawn)
                         if config.recording.enabled else None)
        self._retention: asyncio.TimerHandle | None = None
        self._acd_batch: list[AcdEvent] = []
        self.calls.acd.listeners.append(self._on_acd_event)
        self.calls.on_audit = self._audit
        # Browser phones: a SIP UA on the SIP UDP listener's address (loopback for a
        # wildcard listener); call control rings them like desk phones.
        udp = next((x.host for x in config.server.sip if x.transport == "udp"), None)
        passwords = {a.id: str(a.password) for a in config.agents}
        self.softphones = (Softphones(CallMedia(self.media), self.calls.registrar, loop.time,
                                      _loopback_or(udp), passwords.get)
                           if udp is not None else None)
        self.api = ApiServer(config, live=server_metrics(self), calls=self.calls,
                             recorder=self.recorder, softphones=self.softphones)

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        """Start the media workers, restore state and open the listeners."""
        if self.recorder is not None:
            self.recorder.recover()  # before the workers: it rewrites WAV headers
        self._close_open_cdrs()
        for msg in self.voicemail.recover():  # before the workers write new messages
            logger.warning("voicemail_recovered", extra={"box": msg.box, "id": msg.id,
                                                         "seconds": round(msg.seconds, 1)})
        await self.media.start()
        logger.info("media_started", extra={"workers": self.media.n_workers})
        if self.recorder is not None:
            self.recorder.after_start()
            self._sweep_retention()
        now = self.loop.time()
        self._restore_bindings(now)
        self._restore_agents(now)
        for listener in self.config.server.sip:
            host, port = await self.transports.listen(str(listener))
            self.stack.sent_by.setdefault(listener.transport, (host, port))
            logger.info("listening", extra={"transport": listener.transport,
                                            "host": host, "port": port})
        self.trunks = TrunkMonitor(self.config.trunks, self.stack,
                                   self.transports.local_address, self.config.sip.user_agent,
                                   now, self.calls.add_via, self.config.server.external_ip)
        self.calls.trunk_select.health = self.trunks.health
        self._rearm()
        if self.softphones is not None:
            host, port = self.transports.local_address("udp")
            await self.softphones.start((_loopback_or(host), port))
        await self.api.start()  # HTTP(S) last: the API reads what the steps above set up

    async def serve_until_stopped(self, grace: float) -> None:
        """Run until SIGTERM/SIGINT, then drain calls for up to ``grace`` seconds."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                self.loop.add_signal_handler(sig, self._stopping.set)
        await self._stopping.wait()
        logger.info("stopping", extra={"live_calls": len(self.calls.calls), "grace": grace})
        self.calls.accepting = False
        deadline = self.loop.time() + grace
        while self.calls.calls and self.loop.time() < deadline:
            await asyncio.sleep(0.1)
        if self.calls.calls:
            now = self.loop.time()
            for call in list(self.calls.calls.values()):
                self.calls.hangup(call, now, "shutdown")
            self._drain()
            end = self.loop.time() + 2.0
            while self.calls.calls and self.loop.time() < end:
                await asyncio.sleep(0.05)
        await self.close()

    def stop(self) -> None:
        """Ask the server to stop (same as SIGTERM)."""
        self._stopping.set()

    async def close(self) -> None:
        """Close listeners and storage."""
        await self.api.close()
        if self.softphones is not None:
            await self.softphones.close()
        self._timer.cancel()
        self.transports.close()
        await self.transports.wait_closed()
        if self._cdr_flush is not None:
            self._cdr_flush.cancel()
        self.calls.acd.close()
        if self._retention is not None:
            self._retention.cancel()
        self._flush_cdrs()
        await self.media.close()
        if self.recorder is not None:
            await self.recorder.close()  # queued transcodes wait for the next start
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        shutil.rmtree(self._sock_dir, ignore_errors=True)
        self.storage.close()
        logger.info("stopped")

    # -- event pump ----------------------------------------------------------------
    def _drain(self) -> None:
        now = self.loop.time()
        stack = self.stack
        trunks = self.trunks
        while (event := stack.next_event()) is not None:
            if trunks is not None:
                key = getattr(event, "key", None)
                if key is not None and trunks.owns(key):
                    if isinstance(event, ResponseReceived):
                        trunks.handle_response(key, event.response, now)
                    elif isinstance(event, (TransactionTimeout, TransportError)):
                        trunks.handle_timeout(key, now)
                    continue
            self.calls.handle_event(event, now)
        registrar = self.calls.registrar
        changed: set[str] = set()
        while (reg_event := registrar.next_event()) is not None:
            changed.add(reg_event.binding.aor)  # type: ignore[attr-defined]
        for aor in changed:
            self._save_bindings(aor, registrar)
        self.transports.transmit()
        self._rearm()

    def _on_media_event(self, event: MediaEvent) -> None:
        phones = self.softphones
        if phones is not None:
            if isinstance(event, WebRtcStateChanged):
                phone = phones.phone_for_endpoint((event.worker, event.endpoint))
                if phone is not None:
                    phones.rtc_state(phone, event.state)
                    return
            elif isinstance(event, WorkerDied):
                phones.worker_died(event.worker)
        if isinstance(event, RecordingDone):
            if self.recorder is not None:
                self.recorder.on_recording_done(event)
            return
        self.calls.handle_media_event(event, self.loop.time())
        self._drain()

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = self.loop.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("task_failed", exc_info=task.exception())

    def _sweep_retention(self) -> None:
        self._retention = self.loop.call_later(RETENTION_EVERY, self._sweep_retention)
        if self.recorder is not None:
            try:
                self.recorder.sweep_retention()
            except Exception:  # noqa: BLE001 - retried at the next sweep
                logger.exception("retention_failed")

    def _close_open_cdrs(self) -> None:
        """CDRs a crash left open: end them where their recording ends (the audio is the
        best witness of when the call was cut), else at answer, cause ``server_restart``."""
        ops: list[tuple[str, dict[str, object]]] = []
        for cdr in self.storage.open_cdrs():
            start = cdr.answer_time or cdr.start_time
            end = start
            if cdr.recording_id and self.recorder is not None:
                rec = self.recorder.index.get(cdr.recording_id)
                if rec is not None and rec.seconds:
                    end = rec.start_time + timedelta(seconds=rec.seconds)
            ops.append(("finish", {
                "call_id": cdr.call_id, "leg": cdr.leg, "end_time": max(end, start),
                "hangup_cause": "server_restart",
                "billsec": int((end - cdr.answer_time).total_seconds())
                if cdr.answer_time and end > cdr.answer_time else 0}))
        if ops:
            self.storage.write_cdrs(ops)
            logger.warning("cdrs_closed_after_crash", extra={"cdrs": len(ops)})

    def _rearm(self) -> None:
        """One timer for the application side (trunk keepalives, registrar expiry)."""
        times = [t for t in (self.trunks.get_timer() if self.trunks else None,
                             self.calls.registrar.get_timer()) if t is not None]
        self._timer.arm(min(times) if times else None)

    def _on_timer(self) -> None:
        now = self.loop.time()
        if self.trunks is not None:
            self.trunks.handle_timer(now)
        self.calls.registrar.expire(now)
        self._drain()

    # -- persistence ---------------------------------------------------------------
    def _wall(self, loop_time: float) -> datetime:
        return datetime.fromtimestamp(loop_time + self._wall_offset, UTC)

    def _cdr_row(self, call: Call) -> dict[str, object]:
        return {
            "call_id": call.id, "leg": "caller", "start_time": self._wall(call.started),
            "direction": "inbound" if call.trunk else "internal",
            "caller": call.caller, "callee": call.called,
            "trunk": call.trunk.name if call.trunk else None,
            "route": str(call.route or call.target),
            "answer_time": self._wall(call.answered_at) if call.answered_at else None,
            "agent": _call_agent(call),
            "queue": call.queue or (call.target.arg if call.target.kind == "queue" else None),
        }

    def _open_cdr(self, call: Call) -> None:
        """The caller was answered: write the call's CDR now, open (no end time), so a
        kill -9 mid-call still leaves it (closed at the next start)."""
        row = self._cdr_row(call)
        row["disposition"] = "answered"
        if self.recorder is not None and call.record:
            try:
                rec_id = self.recorder.begin(
                    call.id, self._wall(call.answered_at or call.started),
                    caller=call.caller, callee=call.called,
                    queue=call.queue or (call.target.arg if call.target.kind == "queue"
                                         else None),
                    agents=[agent] if (agent := _call_agent(call)) is not None else ())
            except Exception:  # noqa: BLE001 - the call goes on unrecorded, loudly
                logger.exception("recording_index_failed", extra={"call_id": call.id})
            else:
                call.recording_id = rec_id
                row["recording_id"] = rec_id
                left, right = call.recording_sides()
                self._spawn(self._attach_recording(rec_id, left, right))
        self._queue_cdr(("insert", row))
        call.cdr_open = True

    def _on_transfer(self, call: Call) -> None:
        """An answered call (an IVR's) was bridged to its target: the CDR names the agent
        and the recording takes the new leg (same file: one recording per contact)."""
        agent = _call_agent(call)
        if call.cdr_open and agent is not None:
            self._queue_cdr(("finish", {"call_id": call.id, "leg": "caller", "agent": agent,
                                        "queue": call.queue}))
        if call.recording_id is not None and self.recorder is not None:
            if agent is not None:
                self.recorder.add_agent(call.recording_id, agent,
                                        self._wall(self.loop.time()))
            left, right = call.recording_sides()
            self._spawn(self._attach_recording(call.recording_id, left, right))

    async def _attach_recording(self, rec_id: str, left: list[EndpointHandle],
                                right: list[EndpointHandle]) -> None:
        assert self.recorder is not None
        try:
            await self.recorder.attach(rec_id, left, right)
        except MediaError as exc:
            logger.warning("recording_failed", extra={"recording": rec_id, "error": str(exc)})

    def _write_cdr(self, call: Call) -> None:
        """Queue the CDRs of an ended call: the caller's (finishing the open one) and one
        per outbound leg. Rows are written every ``CDR_FLUSH`` seconds.

        One transaction per batch in WAL mode with synchronous=NORMAL: a row survives a
        kill -9 of this process as soon as its batch commits (at most ``CDR_FLUSH`` after
        the call ended); no fsync per call keeps CDRs off the call-rate budget.
        """
        answered = call.answered_at is not None
        end = call.ended_at if call.ended_at is not None else self.loop.time()
        if answered:
            disposition = "answered"
        elif call.cause == "cancel":
            disposition = "cancelled"
        else:
            disposition = "failed"
        final = {
            "end_time": self._wall(end), "disposition": disposition,
            "hangup_cause": call.cause if answered else str(call.status or call.cause),
            "billsec": int(end - call.answered_at) if call.answered_at is not None else 0,
        }
        if call.recording_id is not None and self.recorder is not None:
            self._spawn(self.recorder.stop(call.recording_id))
        if call.cdr_open:
            self._queue_cdr(("finish", {"call_id": call.id, "leg": "caller", **final}))
        else:
            self._queue_cdr(("insert", {**self._cdr_row(call), **final}))
        for leg in call.legs:
            if leg.uas:
                continue
            leg_end = leg.ended_at if leg.ended_at is not None else end
            status = leg.status
            if leg.answered_at is not None:
                leg_disp = "answered"
            elif status in (486, 600):
                leg_disp = "busy"
            elif status in (408, 480, 487) or status is None:
                leg_disp = "no-answer"
            else:
                leg_disp = "failed"
            self._queue_cdr(("insert", {
                "call_id": call.id, "leg": "agent" if leg.user is not None else "outbound",
                "direction": "outbound" if call.target.kind == "trunk" else "internal",
                "start_time": self._wall(leg.created),
                "answer_time": self._wall(leg.answered_at) if leg.answered_at else None,
                "end_time": self._wall(leg_end), "caller": call.caller,
                "callee": leg.invite.uri.user or "", "route": str(call.route or call.target),
                "trunk": leg.trunk.name if leg.trunk is not None else None,
                "agent": leg.user,
                "disposition": leg_disp,
                "hangup_cause": call.cause if leg.answered_at else str(status or call.cause),
                "billsec": int(leg_end - leg.answered_at) if leg.answered_at else 0,
            }))

    def _on_acd_event(self, event: AcdEvent) -> None:
        """Queue-log lines and agent state changes go to storage with the CDR batches."""
        if isinstance(event, (QueueEvent, AgentStateChanged)):
            self._acd_batch.append(event)
            if self._cdr_flush is None:
                self._cdr_flush = self.loop.call_later(CDR_FLUSH, self._flush_cdrs)

    def _audit(self, actor: str, action: str, target: str, call_id: str) -> None:
        """Keep a supervisor's action (listen, whisper, barge, take over, disconnect)."""
        try:
            self.storage.add_audit(time.time(), actor, action, target, call_id)
        except Exception:  # noqa: BLE001 - logged; the call goes on
            logger.exception("audit_write_failed", extra={"actor": actor, "action": action})

    def _queue_cdr(self, op: tuple[str, dict[str, object]]) -> None:
        self._cdr_queue.append(op)
        if self._cdr_flush is None:
            self._cdr_flush = self.loop.call_later(CDR_FLUSH, self._flush_cdrs)

    def _flush_cdrs(self) -> None:
        self._cdr_flush = None
        events, self._acd_batch = self._acd_batch, []
        if events:
            try:
                self.storage.append_acd_events(events, self._wall_offset)
            except Exception:  # noqa: BLE001 — as for CDRs
                logger.exception("acd_write_failed", extra={"rows": len(events)})
        ops, self._cdr_queue = self._cdr_queue, []
        if not ops:
            return
        try:
            self.storage.write_cdrs(ops)
        except Exception:  # noqa: BLE001 — a storage hiccup must not kill call handling
            logger.exception("cdr_write_failed", extra={"rows": len(ops)})

    def _save_bindings(self, aor: str, registrar: SipRegistrar) -> None:
        now = self.loop.time()
        try:
            regs = []
            for b in registrar.lookup(aor, now):
                src = b.source
                regs.append(Registration(
                    aor=aor, contact=b.uri, expires_at=b.expires_at + self._wall_offset,
                    q=b.q if b.q is not None else 1.0, call_id=b.call_id, cseq=b.cseq,
                    transport=src.transport if src else "udp",
                    source_ip=src.ip if src else "", source_port=src.port if src else 0,
                    instance_id=b.instance or "",
                ))
            self.storage.replace_registrations(aor, regs)
        except Exception:  # noqa: BLE001
            logger.exception("registration_save_failed", extra={"aor": aor})

    def _restore_agents(self, now: float) -> None:
        """Agents logged in when the server stopped (or crashed) come back logged in,
        like Asterisk's persistent members: ready if they were ready or busy (their
        calls ended with the server), else not ready with the same reason. Reads today's
        history once, for both this and the live statistics (:attr:`AcdService.stats`)."""
        acd = self.calls.acd
        wall_now = now + self._wall_offset
        try:
            midnight = acd.today_start()
            acd.stats.feed_all(self.storage.agent_states_at(midnight))
            acd.stats.feed_all(self.storage.agent_states_since(midnight))
            acd.stats.feed_all(self.storage.queue_log_since(midnight))
            last = self.storage.agent_states_at(wall_now)
            # The previous run ended (cleanly or not) after its last stored event: close
            # every agent's open state there, so the downtime counts as logged out.
            (stopped,) = self.storage.query(
                "SELECT max(t) FROM (SELECT max(time) AS t FROM queue_log "
                "UNION ALL SELECT max(time) FROM agent_states)")[0]
            at = (stopped or 0.0) - self._wall_offset
            closing = [AgentStateChanged(c.agent, "logged_out", c.state, at, "server_restart")
                       for c in last if c.state != "logged_out" and stopped is not None]
            if closing:
                self.storage.append_acd_events(closing, self._wall_offset)
                acd.stats.feed_all(closing, self._wall_offset)
        except Exception:  # noqa: BLE001 - a start without history is still a start
            logger.exception("agent_restore_failed")
            return
        restored = 0
        for change in last:
            if change.state == "logged_out" or change.agent not in acd.engine.agents:
                continue
            try:
                if change.state == "not_ready":
                    acd.call(acd.engine.login, change.agent, now)
                    acd.call(acd.engine.not_ready, change.agent, now, change.reason or "other")
                else:
                    acd.call(acd.engine.ready, change.agent, now)
            except AcdError:
                logger.exception("agent_restore_failed", extra={"agent": change.agent})
                continue
            restored += 1
        if restored:
            logger.info("agents_restored", extra={"count": restored})

    def _restore_bindings(self, now: float) -> None:
        off = self._wall_offset
        rows = self.storage.load_registrations(now + off)
        self.calls.registrar.load_rows(
            [(r.aor, r.contact, r.expires_at - off, r.q, r.call_id, r.cseq,
              r.transport if r.source_ip else None, r.source_ip or None,
              r.source_port if r.source_ip else None, r.instance_id or None, now)
             for r in rows], now)
        if rows:
            logger.info("registrations_restored", extra={"count": len(rows)})


def _call_agent(call: Call) -> str | None:
    """The agent who handled the call: the queue's, or the ``agent:`` target's."""
    if call.agent is not None:
        return call.agent
    return call.target.arg if call.target.kind == "agent" else None


async def _main(config: SiteConfig, grace: float) -> int:
    loop = asyncio.get_running_loop()
    server = HotlineServer(config, loop)
    await server.start()
    await server.serve_until_stopped(grace)
    return 0


def run(config: SiteConfig, *, grace: float = 30.0) -> int:
    """Run the site until SIGTERM; returns the process exit code.

    :param config: the validated site.
    :param grace: seconds live calls may continue after SIGTERM.
    """
    setup_logging(config.logging.level, config.logging.format)
    try:
        import uvloop
    except ImportError:  # pragma: no cover — uvloop is a hard dependency
        return asyncio.run(_main(config, grace))
    return uvloop.run(_main(config, grace))

