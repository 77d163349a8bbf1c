"""A media worker process: ``python -m media.worker --socket PATH --ports LO-HI --id N``.

Theory of operation
-------------------
Two threads share the process:

* the **tick thread** owns all media state (endpoints, rooms, recordings, the kernels).
  It runs an absolute 20 ms schedule: ``NetIO.poll`` sleeps in ``epoll_wait`` (GIL
  released) until the next tick's deadline while draining every readable RTP socket with
  ``recvmmsg`` and relaying same-codec two-party bridges packet by packet in C; then the
  tick runs one :class:`cext.tick.TickKernel` call with the GIL released (route rows to
  jitter buffers, one frame per endpoint, in-band DTMF, mix, echo, playout, recording
  taps, G.711 encode, RTP build, sendmmsg), which also sweeps the sockets every 64
  endpoints into the other of two receive batches so relaying continues during the tick.
  Python then handles the few events (digits, RFC 4733 rows, playback done), VAD for the
  endpoints that asked, full recording buffers and RFC 4733 sending.
* the **asyncio thread** (uvloop when available) serves the control socket. It reads
  every request that has arrived, validates it and queues it to the tick thread at
  once, without waiting for the previous reply (requests are pipelined, so a burst of
  N commands costs one tick, not N ticks). The tick thread applies the queued commands
  at the start of a tick, in arrival order and within a time budget
  (``APPLY_BUDGET_MS``; the rest wait for the next tick), and hands all their replies
  back in one ``call_soon_threadsafe``; events go the same way. File work (prompt
  decoding, TTS) runs in an executor before the command is queued, and recording blocks
  are written by a third, writer thread, so the tick thread never waits on a disk.

Commands are O(1) in the number of endpoints: an endpoint change re-binds only that
endpoint's kernel slot (:meth:`MediaWorker._bind`) and a room change re-plans only that
room (:meth:`MediaWorker._refresh_room`: a relay for a plain two-party bridge, else a
:class:`cext.mixer.MixPlan` over the room's own legs); the tick kernel scans per-slot
flags in C, so there are no per-tick lists to rebuild. Recording commands are batched:
the recording table is re-bound once per tick, whatever the number of commands.

WebRTC legs (``create_webrtc_endpoint``; see docs/webrtc.md) are a :class:`WebRtcLeg`: a
kernel slot with a jitter buffer but no socket, kept out of the kernel's send path. Their
aiortc peer connection (:class:`media.webrtc.WebRtcEndpoint`) lives on the asyncio
thread; the tick meets it at two thread-safe rings. Each tick, before the kernel runs,
the tick thread drains each leg's inbound ring into its jitter buffer
(``drain_into``); after the kernel, it pushes each connected leg's output row
(``push_pcm(wake=False)``) and wakes all their outbound tracks with one
``call_soon_threadsafe`` (``wake_tracks``). It never waits on the loop. Once a G.711
leg is connected (``_go_native``), its slot gets the ICE socket and SRTP sessions and
the kernel carries its RTP like an RTP leg's (media/webrtc_native.py); the rings then
stay empty and the tick hands the socket's STUN/DTLS/SRTCP back to the loop
(``_webrtc_foreign``). Signaling
(offer/answer, renegotiation) and ``close()`` run on the loop; only the slot's creation
and removal are tick commands.

On SIGTERM the tick thread stops, recordings are finalised and the process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import heapq
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from cext.jitter import stats as jb_stats
from cext.mixer import plan_from_hears
from cext.net import NetIO, RecvBatch, ip_from_be, ip_to_be, monotonic_ms, set_remote_addr
from cext.rfc4733 import TelephoneEventSender
from cext.rtp import RtpHeader
from cext.tick import EV_DTMF, EV_PLAY_DONE, EV_TE, EV_TONE_DONE, TickKernel
from cext.tones import PromptPlayer, dtmf_string

from .endpoint import Recording, RtpEndpoint, wav_header
from .prompts import PromptCache, tone_prompt
from .protocol import (
    WEBRTC_STATES,
    FrameDecoder,
    ProtocolError,
    encode_frame,
    error_reply,
    ok_reply,
    validate_request,
)
from .vad import SPEECH_START, SPEECH_STOP

if TYPE_CHECKING:  # aiortc is imported on the first WebRTC endpoint (worker start-up cost)
    from .webrtc import WebRtcEndpoint
    from .webrtc_native import NativeMedia

logger = logging.getLogger("hotline.media.worker")

TICK_MS = 20.0
TICK_SAMPLES = 160  # 20 ms at 8 kHz: the RTP timestamp step of one tick
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
FRAME = 160
DTMF_CHARS = "0123456789*#ABCD"
MAX_SLOTS = 8192
SWEEP_EVERY = 64
"""Items of a per-tick Python loop between two network sweeps (~0.1-0.3 ms of work)."""
NATIVE_WEBRTC = os.environ.get("HOTLINE_WEBRTC_NATIVE", "1") != "0"
"""Connected G.711 WebRTC legs carry their RTP in the tick kernel (media/webrtc_native.py).
``HOTLINE_WEBRTC_NATIVE=0`` keeps every leg on aiortc's path: a diagnostic switch, used by
benchmarks/webrtc.py to measure one against the other."""
OTHER_PATH_GRACE_MS = 200.0
"""RTP in a native leg's ring this long after its socket was taken came on another ICE
pair (before that: datagrams aiortc had read before the hand-over)."""
APPLY_BUDGET_MS = 5.0
"""Time the tick thread spends on queued commands per tick before it ticks (the rest
wait for the next tick, in order)."""


Done = Callable[[Any, "BaseException | None"], None]
"""Completion of a queued command, called on the loop: ``done(result, exc)``."""


class CommandError(ValueError):
    """A command that validated but cannot be applied (unknown endpoint, no ports...)."""


class WebRtcLeg(RtpEndpoint):
    """The tick side of a WebRTC endpoint: a kernel slot with a jitter buffer, DTMF
    detector, VAD and players like an RTP leg, but no socket, no port and no RTP send
    (the kernel neither encodes nor sends its row; the tick pushes it to ``rtc``).

    :param rtc: the aiortc side (owned by the loop; the tick only calls
        ``drain_into``/``push_pcm`` and reads ``state``).
    """

    def __init__(self, ep_id: int, slot: int, rtc: WebRtcEndpoint, args: dict[str, Any],
                 in_row: np.ndarray, out_row: np.ndarray, now_ms: float) -> None:
        rtp_args = dict(args, codec="pcmu", pt=0, te_pt=None, latch=False)
        super().__init__(ep_id, slot, None, 0, rtp_args, in_row, out_row,  # type: ignore[arg-type]
                         now_ms)
        self.rtc = rtc
        self.native: NativeMedia | None = None
        """Set (tick thread) once the kernel carries the leg's RTP: its slot then has
        the ICE socket, SRTP sessions and sends like an RTP leg."""
        self.other_path = False
        """RTP of a native leg also came through aiortc: the browser sends on another
        ICE pair than the socket the kernel reads, so the leg is mixed, never relayed."""


class _RtcLink:
    """A WebRTC endpoint's id as seen by its state callback (asyncio thread): None while
    negotiating, when states are kept in ``early`` until the create reply has gone out."""

    __slots__ = ("early", "endpoint")

    def __init__(self) -> None:
        self.endpoint: int | None = None
        self.early: list[str] = []


WriteOp = tuple[str, int, bytes, int]
"""A recording writer's job: (``write``/``header``/``close``, fd, data, data bytes so far)."""


class RecordingWriter(threading.Thread):
    """Writes recording blocks and header updates off the tick thread.

    The tick thread hands over all of a tick's blocks in one list: one wake-up of this
    thread per tick, not one per recording (each wake-up makes the two threads trade the
    GIL, and the tick thread sweeps no sockets while it waits for it)."""

    def __init__(self) -> None:
        super().__init__(name="rec-writer", daemon=True)
        self.q: queue.SimpleQueue[list[WriteOp] | None] = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            items = self.q.get()
            if items is None:
                return
            for op, fd, data, total in items:
                try:
                    if data:
                        os.write(fd, data)
                    if op in ("header", "close"):
                        os.pwrite(fd, wav_header(total), 0)
                    if op == "close":
                        os.close(fd)
                except OSError as exc:
                    logger.error("recording write failed: %s", exc)


class MediaWorker:
    """All media state of one worker; see the module docstring.

    :param worker_id: index given by the pool (for logs and events).
    :param ports: inclusive RTP port range of this worker (even ports are used).
    :param rtp_ip: address RTP sockets bind to.
    :param data_dir: data directory (prompt cache).
    :param phase_ms: where in each 20 ms this worker ticks (see :meth:`run_ticks`).
    :param rt_priority: SCHED_RR priority for the tick thread (0: normal scheduling).
    """

    def __init__(self, worker_id: int, ports: tuple[int, int], rtp_ip: str,
                 data_dir: str, phase_ms: float = 0.0, rt_priority: int = 0) -> None:
        self.worker_id = worker_id
        self.phase_ms = phase_ms % TICK_MS
        self.rt_priority = rt_priority
        lo, hi = ports
        self._free_ports = deque(p for p in range(lo + (lo & 1), hi + 1, 2))
        cap = max(1, min(MAX_SLOTS, len(self._free_ports)))
        self.capacity = cap
        self.rtp_ip = rtp_ip
        self.prompts = PromptCache(data_dir)
        self.net = NetIO(cap)
        rows = min(max(256, 4 * cap), 16384)
        # two receive batches: the tick kernel routes one while its network sweeps (and
        # the poll until the next deadline) fill the other
        self._rbs = (RecvBatch(rows), RecvBatch(rows))
        self._cur = 0
        self._start_row = 0
        self.inp = np.zeros((cap, FRAME), np.int16)
        self.out = np.zeros((cap, FRAME), np.int16)
        self.kernel = TickKernel(self.net, self.inp, self.out, self._rbs[0], self._rbs[1])
        self._rec_order: list[Recording] = []
        """Recordings in the kernel's table order (index = kernel recording index)."""
        self._free_slots = list(range(cap))
        heapq.heapify(self._free_slots)
        self.endpoints: dict[int, RtpEndpoint] = {}
        self.by_slot: list[RtpEndpoint | None] = [None] * cap
        self.rooms: dict[str, tuple[list[int], dict[int, list[int]], dict[int, float]]] = {}
        self.recordings: dict[int, Recording] = {}
        self._recs_by_slot: dict[int, set[int]] = {}
        """Slot -> ids of the recordings that take its audio (destroy is O(its own))."""
        self._next_ep = 1
        self._next_rec = 1
        self._next_play = 1
        self._rng = np.random.default_rng()
        # derived state, updated per endpoint / per room by _bind and _refresh_room
        self._vad_eps: dict[int, RtpEndpoint] = {}
        self._te_tx_eps: dict[int, RtpEndpoint] = {}
        self._timeout_eps: dict[int, RtpEndpoint] = {}
        self._te_open: set[RtpEndpoint] = set()
        self._webrtc_eps: dict[int, WebRtcLeg] = {}
        """WebRTC legs (tick thread): drained before and pushed after each kernel run."""
        self._rtc: dict[int, WebRtcEndpoint] = {}
        """WebRTC legs' aiortc side by endpoint id (asyncio thread: signaling, close)."""
        self._room_handle: dict[str, int] = {}
        """Rooms mixed by the kernel -> their kernel room handle."""
        self._free_handles = list(range(cap - 1, -1, -1))
        self._room_relay: dict[str, tuple[int, int]] = {}
        """Rooms forwarded by the NetIO relay (two-party same-codec) -> their two slots."""
        self._relay_slots: set[int] = set()
        self._rec_dirty = False
        # threads and I/O
        self.commands: deque[tuple[Callable[[], Any], Done | None, float]] = deque()
        """Queued commands: (function, completion called on the loop, enqueue time ms)."""
        self.events: list[dict[str, Any]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Future[None]] = set()
        self.running = False
        self.writer = RecordingWriter()
        # tick metrics
        self.ticks = 0
        self.late_ticks = 0
        self.max_late_ms = 0.0
        self.busy_ms_total = 0.0
        self.max_busy_ms = 0.0
        self.skipped_ticks = 0
        self.rx_total = 0
        # command metrics
        self.commands_total = 0
        self.max_queue = 0
        self.max_cmd_wait_ms = 0.0
        self.max_apply_ms = 0.0
        self.apply_ms_total = 0.0

    # ------------------------------------------------------------------ tick thread

    def run_ticks(self) -> None:
        """The tick thread's body: an absolute 20 ms schedule until ``running`` is False.

        The schedule is the monotonic clock's 20 ms grid shifted by ``phase_ms``: the pool
        gives each worker its own phase, so the workers' ticks take turns on the cores
        instead of all computing at once while packets to relay wait."""
        if self.rt_priority:
            set_realtime(self.rt_priority, f"worker {self.worker_id}'s tick thread")
        deadline = first_deadline(monotonic_ms(), self.phase_ms)
        while self.running:
            n = self._rbs[self._cur].poll(self.net, deadline, self._start_row)
            start = monotonic_ms()
            if start < deadline:  # receive buffer full before the deadline
                self._receive(n, start)
                continue
            late = start - deadline
            if late > 1.0:
                self.late_ticks += 1
            self.max_late_ms = max(self.max_late_ms, late)
            try:
                self._tick(deadline, n)
            except Exception:
                logger.exception("tick failed")
            busy = monotonic_ms() - start
            self.busy_ms_total += busy
            self.max_busy_ms = max(self.max_busy_ms, busy)
            self.ticks += 1
            deadline += TICK_MS
            now = monotonic_ms()
            if now > deadline + 5 * TICK_MS:  # fell far behind (e.g. SIGSTOP): resync
                missed = int((now - deadline) // TICK_MS)
                self.skipped_ticks += missed
                deadline += missed * TICK_MS
                # No audio was sent for the skipped ticks: jump every outgoing RTP
                # timestamp by that time (RFC 3550 §5.1, the sampling instant), so the
                # far end's jitter buffer sees a gap, not a stream that is now late for
                # the rest of the call.
                self.net.out_ts += np.uint32((missed * TICK_SAMPLES) & 0xFFFFFFFF)

    def _emit(self, event: str, **fields: Any) -> None:
        fields["event"] = event
        self.events.append(fields)

    def _apply_commands(self, budget_ms: float = APPLY_BUDGET_MS) -> None:
        """Apply queued commands in order until the queue is empty or ``budget_ms`` is
        spent, then post all their completions to the loop in one call."""
        if not self.commands:
            return
        t0 = monotonic_ms()
        self.max_queue = max(self.max_queue, len(self.commands))
        done: list[tuple[Done, Any, BaseException | None]] = []
        now = t0
        while self.commands:
            fn, cb, queued = self.commands.popleft()
            try:
                result: Any = fn()
                exc: BaseException | None = None
            except Exception as e:  # a failed command must never stop the ticks
                result, exc = None, e
            if cb is not None:
                done.append((cb, result, exc))
            self.commands_total += 1
            now = monotonic_ms()
            self.max_cmd_wait_ms = max(self.max_cmd_wait_ms, now - queued)
            if now - t0 >= budget_ms:
                break
        if self._rec_dirty:
            self._bind_recordings()
            now = monotonic_ms()
        self.apply_ms_total += now - t0
        self.max_apply_ms = max(self.max_apply_ms, now - t0)
        if done and self.loop is not None:
            self.loop.call_soon_threadsafe(_complete, done)

    def _receive(self, n: int, now: float) -> None:
        """Route rows 0..n-1 of the current batch into the jitter buffers (no frame)."""
        self._run_kernel(n, now, full=False)

    def _run_kernel(self, n: int, now: float, full: bool) -> None:
        """One kernel call (GIL released inside), then the few events in Python."""
        k = self.kernel
        rb = self._rbs[self._cur]
        nev = k.run(self._cur, n, now, full)
        self.rx_total += n
        rb.count = 0
        self._cur ^= 1
        self._start_row = k.swept
        if nev:
            self._kernel_events(nev, rb, now)

    def _sweep(self) -> None:
        """One non-blocking network sweep into the batch the next poll continues: a
        Python loop over many recordings or endpoints calls it every ``SWEEP_EVERY``
        items so that relayed packets do not wait for the loop to end."""
        self._start_row = self._rbs[self._cur].poll(self.net, 0.0, self._start_row)

    def _kernel_events(self, nev: int, rb: RecvBatch, now: float) -> None:
        k = self.kernel
        by_slot = self.by_slot
        for kind, slot, a, b in zip(k.events_kind[:nev].tolist(), k.events_slot[:nev].tolist(),
                                    k.events_a[:nev].tolist(), k.events_b[:nev].tolist(),
                                    strict=True):
            ep = by_slot[slot]
            if ep is None:
                continue
            if kind == EV_DTMF:
                self._emit("dtmf", endpoint=ep.id, digit=DTMF_CHARS[a], duration_ms=b // 8,
                           source="inband")
            elif kind == EV_TE:  # RFC 4733 packets: only while a key is pressed
                off = int(rb.payload_offset[a])
                try:
                    ep.te_rx.receive(rb.packets[a, off:off + int(rb.payload_len[a])],
                                     int(rb.ts[a]), bool(rb.marker[a]), now / 1000.0)
                except ValueError:
                    continue
                self._te_open.add(ep)
            elif kind == EV_PLAY_DONE:
                self._emit("playback_done", endpoint=ep.id, play_id=ep.play_id, reason="done")
                ep.player = None
                self._touch(ep)
            elif kind == EV_TONE_DONE:
                ep.tone_tx = None
                self._touch(ep)

    def _tick(self, now: float, n: int) -> None:
        self._apply_commands()
        if self._webrtc_eps:
            self._webrtc_in(now)
        self._run_kernel(n, now, full=True)
        if self._webrtc_eps:
            self._webrtc_out()
            if self.net.foreign_count:
                self._webrtc_foreign()
        if self._te_open:
            self._te_events(now)
        for n, ep in enumerate(self._vad_eps.values(), 1):
            if n % (SWEEP_EVERY // 4) == 0:  # webrtcvad: ~10 us a frame
                self._sweep()
            r = ep.vad.process(ep.in_row)  # type: ignore[union-attr]
            if r == SPEECH_START:
                self._emit("speech_start", endpoint=ep.id)
            elif r == SPEECH_STOP:
                self._emit("speech_stop", endpoint=ep.id,
                           duration_ms=int(ep.vad.burst_frames * TICK_MS))  # type: ignore[union-attr]
        if self._rec_order:
            full = self.kernel.rec_full
            if full.any():
                self._flush_full(np.flatnonzero(full).tolist())
        if self._te_tx_eps:
            self._send_te(now)
        if self.ticks % 50 == 0 and self._timeout_eps:
            self._check_timeouts(now)
        if self.events and self.loop is not None:
            events, self.events = self.events, []
            self.loop.call_soon_threadsafe(self._write_events, events)

    def _webrtc_in(self, now: float) -> None:
        """Before the kernel: each WebRTC leg's received packets -> its jitter buffer
        (the kernel's ``get_frame`` then treats the leg like any other)."""
        net = self.net
        for ep in self._webrtc_eps.values():
            inbound = ep.rtc.inbound
            if not inbound:
                continue
            if (ep.native is not None and not ep.other_path
                    and now - ep.native.taken_ms > OTHER_PATH_GRACE_MS):
                ep.other_path = True
                logger.info("WebRTC endpoint %d: RTP also arrives on another ICE pair: "
                            "mixed, not relayed", ep.id)
                self._touch(ep)
            if not ep.receives:  # RFC 3264 sendonly/inactive: discard what arrives
                inbound.clear()
                continue
            stored = ep.rtc.drain_into(ep.jb)
            if stored:
                net.rx_packets[ep.slot] += stored
                net.last_rx_ms[ep.slot] = now

    def _webrtc_foreign(self) -> None:
        """After the kernel: the STUN, DTLS and SRTCP datagrams that arrived on the
        sockets of native WebRTC legs -> their aioice protocol, on the loop (one hop)."""
        items = []
        for slot, data, host, port in self.net.take_foreign():
            ep = self.by_slot[slot]
            if isinstance(ep, WebRtcLeg) and ep.native is not None:
                items.append((ep.native.protocol, data, (host, port)))
        if items and self.loop is not None:
            from .webrtc_native import deliver_datagrams
            try:
                self.loop.call_soon_threadsafe(deliver_datagrams, items)
            except RuntimeError:  # the loop is closing (shutdown)
                pass

    def _webrtc_out(self) -> None:
        """After the kernel: each connected, sending WebRTC leg's output row -> its
        outbound ring, then one cross-thread wake-up for all of them."""
        tracks = []
        net = self.net
        for ep in self._webrtc_eps.values():
            if ep.native is None and ep.sends and ep.rtc.pc.connectionState == "connected":
                ep.rtc.push_pcm(ep.out_row, wake=False)
                net.tx_packets[ep.slot] += 1
                tracks.append(ep.rtc.track)
        if tracks and self.loop is not None:
            from .webrtc import wake_tracks
            try:
                wake_tracks(self.loop, tracks)
            except RuntimeError:  # the loop is closing (shutdown)
                pass

    def _te_events(self, now: float) -> None:
        for ep in list(self._te_open):
            ep.te_rx.handle_timer(now / 1000.0)
            while (ev := ep.te_rx.next_event()) is not None:
                if ev.digit:
                    self._emit("dtmf", endpoint=ep.id, digit=ev.digit,
                               duration_ms=ev.duration_ms, source="rfc4733")
            if ep.te_rx.get_timer() is None:
                self._te_open.discard(ep)

    def _flush_full(self, full: list[int]) -> None:
        """Hand the recording buffers the kernel filled to the writer thread."""
        k = self.kernel
        ops = []
        for n, i in enumerate(full, 1):
            if n % SWEEP_EVERY == 0:
                self._sweep()
            rec = self._rec_order[i]
            rec.pos = int(k.rec_pos[i])
            ops.append(self._flush_op(rec))
            k.rec_pos[i] = 0
            k.rec_full[i] = 0
        self.writer.q.put(ops)

    def _sync_recordings(self) -> None:
        """Copy the kernel's buffer positions back into the Recording objects."""
        pos = self.kernel.rec_pos
        for i, rec in enumerate(self._rec_order):
            rec.pos = int(pos[i])

    def _bind_recordings(self) -> None:
        """Give the kernel the current recording set (once per tick with recording
        commands)."""
        self._rec_dirty = False
        self._sync_recordings()
        order = list(self.recordings.values())
        self.kernel.set_recordings([r.buf for r in order], [r.left for r in order],
                                   [r.right for r in order], [r.paused for r in order],
                                   [r.pos for r in order], [r.right_sent for r in order])
        self._rec_order = order

    def _flush_op(self, rec: Recording, final: bool = False) -> WriteOp:
        """Take the recording's buffered audio as a writer job (the buffer is empty after)."""
        data = rec.buf[:rec.pos].tobytes()
        rec.data_bytes += len(data)
        rec.pos = 0
        rec.flushes += 1
        op = "close" if final else ("header" if rec.flushes % 5 == 0 else "write")
        return (op, rec.fd, data, rec.data_bytes)

    def _send_te(self, now: float) -> None:
        for ep in list(self._te_tx_eps.values()):
            while ep.te_tx and ep.te_tx[0][0] <= now:
                _due, payload, marker, ts = ep.te_tx.popleft()
                seq = int(self.net.out_seq[ep.slot])
                self.net.out_seq[ep.slot] = (seq + 1) & 0xFFFF
                pkt = bytes(RtpHeader(payload_type=ep.te_pt or 101, marker=marker,
                                      sequence_number=seq, timestamp=ts,
                                      ssrc=int(self.net.out_ssrc[ep.slot]), payload=payload))
                port = int(self.net.remote_port[ep.slot])
                if port and ep.sends:
                    try:
                        ep.sock.sendto(pkt, (ip_from_be(int(self.net.remote_ip[ep.slot])), port))
                        self.net.tx_packets[ep.slot] += 1
                    except OSError:
                        pass
            if not ep.te_tx:
                self._touch(ep)

    def _check_timeouts(self, now: float) -> None:
        for n, ep in enumerate(self._timeout_eps.values(), 1):
            if n % SWEEP_EVERY == 0:
                self._sweep()
            last = max(float(self.net.last_rx_ms[ep.slot]), ep.armed_ms)
            idle = (now - last) / 1000.0
            if idle >= ep.media_timeout:
                if not ep.timeout_fired:
                    ep.timeout_fired = True
                    self._emit("media_timeout", endpoint=ep.id, seconds=round(idle, 3))
            else:
                ep.timeout_fired = False

    # ------------------------------------------- incremental kernel updates (tick thread)

    def _bind(self, ep: RtpEndpoint) -> None:
        """Re-bind one endpoint's kernel slot, sending and per-tick lists. O(1)."""
        self.kernel.set_endpoint(ep.slot, ep.jb, ep.dtmf if ep.receives else None, ep.player,
                                 ep.play_mix, ep.tone_tx, ep.receives, ep.echo,
                                 255 if ep.te_pt is None else ep.te_pt)
        self._bind_sender(ep)
        _member(self._vad_eps, ep, ep.vad is not None and ep.receives)
        _member(self._te_tx_eps, ep, bool(ep.te_tx))
        _member(self._timeout_eps, ep, ep.media_timeout > 0)

    def _bind_sender(self, ep: RtpEndpoint) -> None:
        if isinstance(ep, WebRtcLeg) and ep.native is None:  # aiortc sends (no socket)
            self.net.send_enabled[ep.slot] = 0
            self.kernel.set_sender(ep.slot, False, 0, 0, False)
            return
        # a relay feeds the slot's stream (and rewrites its timestamps); RFC 4733 sending
        # replaces the audio while it lasts
        relaying = ep.slot in self._relay_slots
        self.net.send_enabled[ep.slot] = 1 if ep.sends else 0
        self.kernel.set_sender(ep.slot, ep.sends and not relaying and not ep.te_tx,
                               0 if ep.codec == "pcmu" else 1, ep.pt, not relaying)

    def _touch(self, ep: RtpEndpoint) -> None:
        """An endpoint changed: re-bind it and re-plan its room (relay <-> mix)."""
        self._bind(ep)
        if ep.room is not None:
            self._refresh_room(ep.room)

    def _relay_pair(self, name: str) -> tuple[RtpEndpoint, RtpEndpoint] | None:
        """The two endpoints of ``name`` if it is a plain two-party same-codec bridge
        with nothing else going on (the NetIO relays it packet by packet)."""
        members, hears, gains = self.rooms[name]
        if len(members) != 2 or gains:
            return None
        a, b = (self.endpoints[m] for m in members)
        if any(isinstance(e, WebRtcLeg) and (e.native is None or e.other_path)
               for e in (a, b)):
            return None  # its RTP is (also) aiortc's: nothing to forward packet by packet
        if (hears == {a.id: [b.id], b.id: [a.id]} and a.codec == b.codec
                and a.direction == b.direction == "sendrecv"
                and not (a.player or b.player or a.tone_tx or b.tone_tx
                         or a.te_tx or b.te_tx)):
            return a, b
        return None

    def _unrelay(self, slot: int) -> None:
        net = self.net
        tgt = int(net.relay_to[slot])
        if tgt >= 0:
            net.relay_active[tgt] = 0
        net.relay_to[slot] = -1
        self._relay_slots.discard(slot)

    def _refresh_room(self, name: str) -> None:
        """Re-plan one room (gone, relayed or mixed) in the kernel and the NetIO relay.
        O(members of the room)."""
        net = self.net
        h = self._room_handle.pop(name, None)
        if h is not None:
            self.kernel.clear_room(h)
            self._free_handles.append(h)
        old = self._room_relay.pop(name, None)
        room = self.rooms.get(name)
        pair = self._relay_pair(name) if room is not None else None
        new = (pair[0].slot, pair[1].slot) if pair is not None else None
        if old is not None and old != new:
            for s in old:
                self._unrelay(s)
        if pair is not None and new is not None:
            a, b = pair
            if old != new:
                net.relay_to[a.slot], net.relay_to[b.slot] = b.slot, a.slot
            net.audio_pt[a.slot], net.audio_pt[b.slot] = a.pt, b.pt
            net.out_pt[a.slot], net.out_pt[b.slot] = a.pt, b.pt
            self._relay_slots.update(new)
            self._room_relay[name] = new
        elif room is not None:
            members, hears, gains = room
            if any(hears.values()):
                idx = {m: i for i, m in enumerate(members)}
                plan = plan_from_hears(
                    len(members), {idx[k]: [idx[x] for x in v] for k, v in hears.items()},
                    [gains.get(m, 1.0) for m in members])
                h = self._free_handles.pop()
                self.kernel.set_room(h, plan, np.array([self.endpoints[m].slot
                                                        for m in members], np.int32))
                self._room_handle[name] = h
        if room is not None:
            for m in room[0]:
                self._bind_sender(self.endpoints[m])
        if old is not None and old != new:
            for s in old:
                ep = self.by_slot[s]
                if ep is not None and (room is None or ep.id not in room[0]):
                    self._bind_sender(ep)

    def _leave_room(self, ep: RtpEndpoint) -> None:
        """Dissolve the room ``ep`` is in (a room without one of its legs is no call)."""
        name = ep.room
        if name is None:
            return
        members = self.rooms.pop(name, ([], {}, {}))[0]
        others = [self.endpoints[m] for m in members if m != ep.id and m in self.endpoints]
        ep.room, ep.echo = None, False
        for o in others:
            o.room, o.echo = None, False
        self._refresh_room(name)
        for o in others:
            self._bind(o)

    # ---------------------------------------------------------- commands (tick thread)

    def _ep(self, ep_id: int) -> RtpEndpoint:
        ep = self.endpoints.get(ep_id)
        if ep is None:
            raise CommandError(f"endpoint: no endpoint {ep_id}")
        return ep

    def cmd_create_endpoint(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self._free_slots:
            raise CommandError("endpoint: worker has no free slot")
        sock = None
        port = 0
        for _ in range(len(self._free_ports)):
            port = self._free_ports.popleft()
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((self.rtp_ip, port))
                break
            except OSError:
                sock.close()
                sock = None
                self._free_ports.append(port)
        if sock is None:
            raise CommandError("endpoint: no free RTP port in this worker's range")
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
        slot = heapq.heappop(self._free_slots)
        ep_id = self._next_ep
        self._next_ep += 1
        ep = RtpEndpoint(ep_id, slot, sock, port, args, self.inp[slot], self.out[slot],
                         monotonic_ms())
        net = self.net
        net.add(slot, sock.fileno())
        net.latch[slot] = 1 if args["latch"] else 0
        net.out_ssrc[slot] = int(self._rng.integers(1, 2**32 - 1))
        net.out_seq[slot] = int(self._rng.integers(0, 2**16))
        net.out_ts[slot] = int(self._rng.integers(0, 2**32))
        if args["remote_ip"] is not None:
            net.set_remote(slot, ip_to_be(args["remote_ip"]), args["remote_port"])
        self.endpoints[ep_id] = ep
        self.by_slot[slot] = ep
        ep.in_row[:] = 0
        ep.out_row[:] = 0
        self._bind(ep)
        return {"endpoint": ep_id, "port": port}

    def cmd_create_webrtc(self, args: dict[str, Any], rtc: WebRtcEndpoint) -> dict[str, Any]:
        """Give a negotiated WebRTC endpoint a kernel slot (no socket, no sending)."""
        if not self._free_slots:
            raise CommandError("endpoint: worker has no free slot")
        slot = heapq.heappop(self._free_slots)
        ep_id = self._next_ep
        self._next_ep += 1
        ep = WebRtcLeg(ep_id, slot, rtc, args, self.inp[slot], self.out[slot], monotonic_ms())
        net = self.net
        net.relay_to[slot] = -1
        net.remote_ip[slot] = 0
        net.remote_port[slot] = 0
        for counters in (net.rx_packets, net.tx_packets, net.relayed, net.latched):
            counters[slot] = 0
        net.last_rx_ms[slot] = 0.0
        self.endpoints[ep_id] = ep
        self.by_slot[slot] = ep
        self._webrtc_eps[ep_id] = ep
        ep.in_row[:] = 0
        ep.out_row[:] = 0
        self._bind(ep)
        return {"endpoint": ep_id}

    def cmd_native(self, ep_id: int, rtc: WebRtcEndpoint, native: NativeMedia) -> bool:
        """Move a WebRTC leg's RTP into the kernel (see media/webrtc_native.py): its slot
        gets the ICE socket, the SRTP sessions and a sender. False if the leg is gone."""
        ep = self._webrtc_eps.get(ep_id)
        if ep is None or ep.rtc is not rtc or ep.native is not None:
            return False
        net, slot = self.net, ep.slot
        net.add(slot, native.fd)
        set_remote_addr(net, slot, *native.remote)  # the ICE pair may well be IPv6
        net.latch[slot] = 1  # authenticated SRTP only (NetIO unprotects before latching)
        net.out_ssrc[slot] = native.ssrc  # the SSRC aiortc announced in its SDP
        # continue aiortc's stream if it sent any (the browser's SRTP replay window)
        net.out_seq[slot] = (native.next_seq if native.next_seq is not None
                             else int(self._rng.integers(0, 1 << 15)))  # RFC 3550 5.1
        net.out_ts[slot] = (native.next_ts if native.next_ts is not None
                            else int(self._rng.integers(0, 1 << 32)))
        net.set_srtp(slot, native.tx_ptr, native.rx_ptr)
        ep.native = native
        ep.codec = native.codec
        ep.pt = native.pt
        self._touch(ep)
        return True

    def cmd_modify_endpoint(self, args: dict[str, Any]) -> dict[str, Any]:
        ep = self._ep(args["endpoint"])
        if isinstance(ep, WebRtcLeg):
            for key in ("remote_ip", "codec", "pt", "te_pt"):
                if args[key] is not None:
                    raise CommandError(f"{key}: not applicable to a WebRTC endpoint "
                                       "(renegotiate with webrtc_offer)")
        if args["remote_ip"] is not None:
            self.net.set_remote(ep.slot, ip_to_be(args["remote_ip"]), args["remote_port"])
        if args["codec"] is not None:
            ep.codec = args["codec"]
            if args["pt"] is None:
                ep.pt = {"pcmu": 0, "pcma": 8}[ep.codec]
        if args["pt"] is not None:
            ep.pt = args["pt"]
        if args["te_pt"] is not None:
            ep.te_pt = args["te_pt"]
        if args["direction"] is not None:
            ep.direction = args["direction"]
            if not ep.receives:
                ep.jb.reset()
        if args["media_timeout"] is not None:
            ep.media_timeout = args["media_timeout"]
            ep.armed_ms = monotonic_ms()
            ep.timeout_fired = False
        if args["dtmf_inband"] is not None:
            from cext.dtmf import DtmfDetector
            ep.dtmf = DtmfDetector() if args["dtmf_inband"] else None
        if args["vad"] is not None:
            from .vad import SpeechDetector
            ep.vad = SpeechDetector() if args["vad"] else None
        self._touch(ep)
        return {"endpoint": ep.id}

    def cmd_destroy_endpoint(self, args: dict[str, Any]) -> dict[str, Any]:
        ep = self._ep(args["endpoint"])
        if ep.player is not None:
            self._emit("playback_done", endpoint=ep.id, play_id=ep.play_id, reason="destroyed")
        self._leave_room(ep)
        self.kernel.set_endpoint(ep.slot, None)
        # leave every recording: a reused slot must never leak into one
        for rec_id in list(self._recs_by_slot.get(ep.slot, ())):
            rec = self.recordings[rec_id]
            self._set_sources(rec, [s for s in rec.left if s != ep.slot],
                              [s for s in rec.right if s != ep.slot])
        if isinstance(ep, WebRtcLeg):  # the loop closes the peer connection (dispatch)
            self._webrtc_eps.pop(ep.id, None)
            if ep.native is not None:  # the socket stays aioice's: closed with the pc
                self.net.remove(ep.slot)
                ep.native.detached = True
        else:
            self.net.remove(ep.slot)
            ep.sock.close()
            self._free_ports.append(ep.port)
        del self.endpoints[ep.id]
        self.by_slot[ep.slot] = None
        heapq.heappush(self._free_slots, ep.slot)
        self._te_open.discard(ep)
        for lst in (self._vad_eps, self._te_tx_eps, self._timeout_eps):
            lst.pop(ep.id, None)
        return {"endpoint": ep.id}

    def cmd_set_room(self, args: dict[str, Any]) -> dict[str, Any]:
        name = args["room"]
        members: list[int] = args["endpoints"]
        for m in members:
            other = self._ep(m).room
            if other is not None and other != name:
                raise CommandError(f"endpoints: already in room {other!r}")
        if len(set(members)) != len(members):
            raise CommandError("endpoints: duplicate endpoint id")
        hears = args["hears"]
        if hears is None:  # default: a conference (a bridge for two)
            hears = {m: [x for x in members if x != m] for m in members}
        for k, heard in hears.items():
            if k not in members:
                raise CommandError(f"hears: endpoint {k} is not a room member")
            for h in heard:
                if h not in members:
                    raise CommandError(f"hears[{k}]: endpoint {h} is not a room member")
        gains = args["gains"] or {}
        for k in gains:
            if k not in members:
                raise CommandError(f"gains: endpoint {k} is not a room member")
        old = self.rooms.pop(name, None)
        changed: dict[int, RtpEndpoint] = {}
        if old is not None:
            for m in old[0]:
                if m in self.endpoints:
                    ep = changed[m] = self.endpoints[m]
                    ep.room = None
                    ep.echo = False
        if members:
            clean = {k: sorted(set(v) - {k}) for k, v in hears.items()}
            self.rooms[name] = (members, clean, gains)
            for m in members:
                ep = changed[m] = self.endpoints[m]
                ep.room = name
                ep.echo = m in hears.get(m, [])  # echo: an endpoint that hears itself
        self._refresh_room(name)
        for ep in changed.values():  # echo flags; senders of a room that left a relay
            self._bind(ep)
        return {"room": name, "members": len(members)}

    def cmd_play(self, args: dict[str, Any], source: Any) -> dict[str, Any]:
        ep = self._ep(args["endpoint"])
        if ep.player is not None:
            self._emit("playback_done", endpoint=ep.id, play_id=ep.play_id, reason="replaced")
        if isinstance(source, np.ndarray):
            ep.player = PromptPlayer(source, args["loop"])
        else:
            ep.player = source
        ep.play_id = self._next_play
        self._next_play += 1
        ep.play_mix = args["mode"] == "mix"
        self._touch(ep)
        return {"play_id": ep.play_id}

    def cmd_stop_play(self, args: dict[str, Any]) -> dict[str, Any]:
        ep = self._ep(args["endpoint"])
        stopped = ep.player is not None
        if stopped:
            self._emit("playback_done", endpoint=ep.id, play_id=ep.play_id, reason="stopped")
            ep.player = None
            self._touch(ep)
        return {"stopped": stopped}

    def cmd_record(self, args: dict[str, Any]) -> dict[str, Any]:
        left = [self._ep(e).slot for e in args["left"]]
        right = [self._ep(e).slot for e in args["right"]]
        try:
            rec = Recording(self._next_rec, args["path"], left, right)
        except OSError as exc:
            raise CommandError(f"path: {exc}") from None
        self._next_rec += 1
        self.recordings[rec.id] = rec
        self._set_sources(rec, left, right)
        return {"recording": rec.id}

    def _set_sources(self, rec: Recording, left: list[int], right: list[int]) -> None:
        """Point a recording's channels at these slots, keeping ``_recs_by_slot``."""
        for slot in (*rec.left, *rec.right):
            ids = self._recs_by_slot.get(slot)
            if ids is not None:
                ids.discard(rec.id)
                if not ids:
                    del self._recs_by_slot[slot]
        rec.left, rec.right = left, right
        for slot in (*left, *right):
            self._recs_by_slot.setdefault(slot, set()).add(rec.id)
        self._rec_dirty = True

    def _rec(self, rec_id: int) -> Recording:
        rec = self.recordings.get(rec_id)
        if rec is None:
            raise CommandError(f"recording: no recording {rec_id}")
        return rec

    def cmd_record_update(self, args: dict[str, Any]) -> dict[str, Any]:
        """Change whose audio a recording takes, without a new file (one recording per
        contact: the agent side changes on transfer)."""
        rec = self._rec(args["recording"])
        left = [self._ep(e).slot for e in args["left"]]
        right = [self._ep(e).slot for e in args["right"]]
        self._set_sources(rec, left, right)
        return {}

    def cmd_record_pause(self, args: dict[str, Any]) -> dict[str, Any]:
        self._rec(args["recording"]).paused = True
        self._rec_dirty = True
        return {}

    def cmd_record_resume(self, args: dict[str, Any]) -> dict[str, Any]:
        self._rec(args["recording"]).paused = False
        self._rec_dirty = True
        return {}

    def cmd_record_stop(self, args: dict[str, Any]) -> dict[str, Any]:
        rec = self._rec(args["recording"])
        return self._finish_recording(rec)

    def _finish_recording(self, rec: Recording) -> dict[str, Any]:
        self._sync_recordings()
        self.writer.q.put([self._flush_op(rec, final=True)])
        self._set_sources(rec, [], [])
        del self.recordings[rec.id]
        seconds = rec.data_bytes / 4 / 8000
        self._emit("recording_done", recording=rec.id, path=rec.path, seconds=seconds)
        return {"recording": rec.id, "seconds": seconds}

    def cmd_dtmf_send(self, args: dict[str, Any]) -> dict[str, Any]:
        ep = self._ep(args["endpoint"])
        digits: str = args["digits"]
        dur = args["duration_ms"]
        if ep.te_pt is not None:  # RFC 4733 with 3 redundant end packets
            sender = TelephoneEventSender(interval_ms=20, end_repeats=3)
            t0 = monotonic_ms()
            for i, d in enumerate(digits):
                start = t0 + i * (dur + 100)
                ts = (int(self.net.out_ts[ep.slot]) + int((start - t0) * 8)) & 0xFFFFFFFF
                for p in sender.packets(d, dur, ts):
                    ep.te_tx.append((start + p.offset_ms, p.payload, p.marker, p.timestamp))
            self._touch(ep)
            return {"method": "rfc4733"}
        ep.tone_tx = dtmf_string(digits, on=dur / 1000.0, off=0.1)
        self._touch(ep)
        return {"method": "inband"}

    def cmd_stats(self, args: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "worker": self.worker_id, "endpoints": len(self.endpoints),
            "webrtc_endpoints": len(self._webrtc_eps),
            "rooms": len(self.rooms), "recordings": len(self.recordings),
            "ticks": self.ticks, "late_ticks": self.late_ticks,
            "max_late_ms": round(self.max_late_ms, 3), "skipped_ticks": self.skipped_ticks,
            "avg_busy_ms": round(self.busy_ms_total / max(1, self.ticks), 4),
            "max_busy_ms": round(self.max_busy_ms, 3), "rx_packets": self.rx_total,
            "cpu_s": time.process_time(),
            "commands": self.commands_total, "queued": len(self.commands),
            "max_queue": self.max_queue, "max_cmd_wait_ms": round(self.max_cmd_wait_ms, 3),
            "max_apply_ms": round(self.max_apply_ms, 3),
            "avg_apply_ms": round(self.apply_ms_total / max(1, self.ticks), 4),
        }
        if args["endpoint"] is not None and isinstance(self._ep(args["endpoint"]), WebRtcLeg):
            out["endpoint"] = self._webrtc_stats(self._webrtc_eps[args["endpoint"]])
            self._emit("endpoint_stats", **out["endpoint"])
        elif args["endpoint"] is not None:
            ep = self._ep(args["endpoint"])
            s = ep.slot
            net = self.net
            js = jb_stats(ep.jb)
            out["endpoint"] = {
                "id": ep.id, "port": ep.port, "codec": ep.codec, "direction": ep.direction,
                "remote_ip": ip_from_be(int(net.remote_ip[s])),
                "remote_port": int(net.remote_port[s]),
                "rx_packets": int(net.rx_packets[s]), "tx_packets": int(net.tx_packets[s]),
                "relayed": int(net.relayed[s]), "latched": int(net.latched[s]),
                "relaying": bool(net.relay_to[s] >= 0),
                "jitter": {f: getattr(js, f) for f in js.__slots__},
            }
            self._emit("endpoint_stats", endpoint=ep.id, **out["endpoint"])
        return out

    def _webrtc_stats(self, ep: WebRtcLeg) -> dict[str, Any]:
        rtc, s, js = ep.rtc, ep.slot, jb_stats(ep.jb)
        track, tap = rtc.track, rtc._tap
        return {
            "id": ep.id, "kind": "webrtc", "port": 0, "codec": rtc.codec,
            "direction": ep.direction, "state": rtc.state,
            "rx_packets": int(self.net.rx_packets[s]), "tx_packets": int(self.net.tx_packets[s]),
            "relaying": bool(self.net.relay_to[s] >= 0),
            "relayed": int(self.net.relayed[s]), "tap_installed": rtc.tap_installed,
            "tap_packets": tap.packets, "in_dropped": tap.dropped + rtc.in_dropped,
            "out_pushed": track.pushed, "out_dropped": track.dropped,
            "out_silence": track.silence, "out_sent": track.sent,
            "renegotiations": rtc.renegotiations, "ice_restarts": rtc.ice_restarts,
            "native": ep.native is not None,
            "srtp_errors": int(self.net.srtp_errors[s]) if ep.native is not None else 0,
            "remote": list(self.net.remote_addr(s)) if ep.native is not None else None,
            "jitter": {f: getattr(js, f) for f in js.__slots__},
        }

    def shutdown(self) -> None:
        """Finalise recordings and close sockets (tick thread stopped)."""
        for rec in list(self.recordings.values()):
            self._finish_recording(rec)
        self.writer.q.put(None)
        self.writer.join(timeout=10)
        for ep in self.endpoints.values():
            if not isinstance(ep, WebRtcLeg):
                ep.sock.close()

    async def close_webrtc(self) -> None:
        """Close every WebRTC peer connection (asyncio thread, after the tick stopped)."""
        rtcs, self._rtc = list(self._rtc.values()), {}
        for rtc in rtcs:
            if rtc.native is not None:
                rtc.native.detached = True  # the tick is gone: the sockets may close
        await asyncio.gather(*(r.close() for r in rtcs), return_exceptions=True)

    # ---------------------------------------------------------------- asyncio side

    def _write_events(self, events: list[dict[str, Any]]) -> None:
        data = b"".join(encode_frame(e) for e in events)
        for w in list(self.writers):
            if not w.is_closing():
                w.write(data)

    def _queue(self, fn: Callable[[], Any], done: Done | None) -> None:
        """Queue a command for the tick thread; ``done(result, exc)`` runs on the loop."""
        self.commands.append((fn, done, monotonic_ms()))

    async def _submit(self, fn: Callable[[], Any]) -> Any:
        """Queue a command and wait for its result (no timeout: a queued command is
        always applied, and answering before it is would lie about its effect)."""
        assert self.loop is not None
        fut = self.loop.create_future()
        self._queue(fn, lambda result, exc: _resolve(fut, result, exc))
        return await fut

    async def _load_source(self, source: str, loop: bool) -> Any:
        if source.startswith("tone:"):  # a generator of a few segments: no file work
            return tone_prompt(source[5:], loop)
        assert self.loop is not None
        return await self.loop.run_in_executor(None, self.prompts.load, source)

    async def handle(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Validate and execute one request; always returns a reply."""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.dispatch(msg, fut.set_result)
        return await fut

    def dispatch(self, msg: dict[str, Any], reply: Callable[[dict[str, Any]], Any]) -> None:
        """Validate one request and start it without waiting: ``reply(dict)`` is called
        on the loop exactly once, when the tick thread has applied it (or at once for a
        bad request or ``ping``). Requests other than ``play`` (whose source is decoded
        in an executor first) are applied in arrival order."""
        req_id = msg.get("id") if isinstance(msg.get("id"), int) else None
        try:
            req_id, op, args = validate_request(msg)
        except ProtocolError as exc:
            reply(error_reply(req_id, str(exc)))
            return
        if op == "ping":
            reply(ok_reply(req_id, worker=self.worker_id, pid=os.getpid()))
            return
        if op in ("play", "create_webrtc_endpoint", "webrtc_offer", "webrtc_answer"):
            handler = getattr(self, f"_{op}")
            task = asyncio.ensure_future(handler(req_id, args, reply))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        if op == "destroy_endpoint":  # a WebRTC leg's peer connection closes on the loop
            self._queue(lambda: self.cmd_destroy_endpoint(args),
                        lambda result, exc: self._destroyed(req_id, result, exc, reply))
            return
        fn = getattr(self, f"cmd_{op}")
        self._queue(lambda: fn(args), lambda result, exc: reply(_reply(req_id, result, exc)))

    async def _play(self, req_id: int, args: dict[str, Any],
                    reply: Callable[[dict[str, Any]], Any]) -> None:
        try:
            source = await self._load_source(args["source"], args["loop"])
        except (OSError, ValueError) as exc:
            reply(error_reply(req_id, f"source: {exc}"))
            return
        except Exception as exc:  # noqa: BLE001 - the worker must survive any command
            reply(_reply(req_id, None, exc))
            return
        self._queue(lambda: self.cmd_play(args, source),
                    lambda result, exc: reply(_reply(req_id, result, exc)))

    # ----------------------------------------------------- WebRTC (asyncio thread)

    def _rtc_state(self, link: _RtcLink, state: str) -> None:
        """aiortc connection state -> ``webrtc_state`` event. States reached before the
        create reply (which carries the endpoint id) has gone out wait for it."""
        if state not in WEBRTC_STATES:
            return
        if link.endpoint is None:
            link.early.append(state)
        else:
            self._write_events([{"event": "webrtc_state", "endpoint": link.endpoint,
                                 "state": state}])
            if state == "connected":
                self._when_media(link.endpoint)

    def _when_media(self, ep_id: int) -> None:
        """Loop thread, on ``connected``: go native once the browser's RTP shows which
        socket it uses (``WebRtcEndpoint.when_media``)."""
        rtc = self._rtc.get(ep_id)
        if rtc is not None and rtc.native is None and NATIVE_WEBRTC:
            rtc.when_media(lambda: self._go_native(ep_id))

    def _go_native(self, ep_id: int) -> None:
        """Loop thread, once the leg's media path is known (``_when_media``): hand its
        RTP to the kernel if it can go (G.711, aiortc 1.16 internals); else it stays on
        aiortc's path, which works too."""
        from .native_srtp import install_srtp_functions
        from .webrtc_native import NativeMediaError

        rtc = self._rtc.get(ep_id)
        if rtc is None or rtc.native is not None or not NATIVE_WEBRTC:
            return
        try:
            native = rtc.go_native()
        except NativeMediaError as exc:
            logger.info("WebRTC endpoint %d stays on aiortc's RTP path: %s", ep_id, exc)
            return
        install_srtp_functions()
        native.transport.release = lambda done: self._native_release(native, done)

        def applied(result: Any, exc: BaseException | None) -> None:
            if exc is not None or not result:  # the leg went meanwhile: nothing to undo
                native.detached = True
                if exc is not None:
                    logger.error("WebRTC endpoint %d: kernel RTP failed: %s", ep_id, exc)
            else:
                logger.info("WebRTC endpoint %d: RTP in the kernel (%s, %s:%d)", ep_id,
                            native.codec, *native.remote)

        self._queue(lambda: self.cmd_native(ep_id, rtc, native), applied)

    def _native_release(self, native: NativeMedia, done: Callable[[], None]) -> None:
        """Loop thread (the peer connection closes): once the kernel has let go of the
        leg's socket, ``done`` closes it."""
        if native.detached or not self.running:
            done()
            return

        def detach() -> None:
            if not native.detached:
                ep = next((e for e in self._webrtc_eps.values() if e.native is native), None)
                if ep is not None:
                    self.net.remove(ep.slot)
                    ep.native = None
                    self._touch(ep)
                native.detached = True

        self._queue(detach, lambda result, exc: done())

    async def _create_webrtc_endpoint(self, req_id: int, args: dict[str, Any],
                                      reply: Callable[[dict[str, Any]], Any]) -> None:
        from .webrtc import DEFAULT_CODECS, WebRtcEndpoint, WebRtcError

        if not self._free_slots:  # advisory (the tick command checks again)
            reply(error_reply(req_id, "endpoint: worker has no free slot"))
            return
        link = _RtcLink()
        rtc = WebRtcEndpoint(codecs=args["codecs"] or DEFAULT_CODECS,
                             on_state=lambda state: self._rtc_state(link, state))
        field = "offer" if args["offer"] is not None else "answer"
        try:
            if args["offer"] is not None:
                sdp = {"answer": await rtc.accept_offer(args["offer"])}
            else:
                sdp = {"offer": await rtc.create_offer()}
            result = await self._submit(lambda: self.cmd_create_webrtc(args, rtc))
        except Exception as exc:  # noqa: BLE001 - the worker must survive any command
            await rtc.close()
            if isinstance(exc, WebRtcError):
                reply(error_reply(req_id, f"{field}: {exc}"))
            else:
                reply(_reply(req_id, None, exc))
            return
        ep_id = int(result["endpoint"])
        self._rtc[ep_id] = rtc
        reply(ok_reply(req_id, endpoint=ep_id, port=0, **sdp))
        link.endpoint = ep_id
        if link.early:
            self._write_events([{"event": "webrtc_state", "endpoint": ep_id, "state": s}
                                for s in link.early])
            link.early.clear()
            if rtc.state == "connected":
                self._when_media(ep_id)

    def _rtc_for(self, req_id: int, ep_id: int,
                 reply: Callable[[dict[str, Any]], Any]) -> WebRtcEndpoint | None:
        rtc = self._rtc.get(ep_id)
        if rtc is None:
            reply(error_reply(req_id, f"endpoint: no WebRTC endpoint {ep_id}"))
        return rtc

    async def _webrtc_offer(self, req_id: int, args: dict[str, Any],
                            reply: Callable[[dict[str, Any]], Any]) -> None:
        """Renegotiation or ICE restart offered by the browser."""
        from .webrtc import WebRtcError

        rtc = self._rtc_for(req_id, args["endpoint"], reply)
        if rtc is None:
            return
        try:
            answer = await rtc.accept_offer(args["offer"])
        except WebRtcError as exc:
            reply(error_reply(req_id, f"offer: {exc}"))
        except Exception as exc:  # noqa: BLE001
            reply(_reply(req_id, None, exc))
        else:
            reply(ok_reply(req_id, endpoint=args["endpoint"], answer=answer))

    async def _webrtc_answer(self, req_id: int, args: dict[str, Any],
                             reply: Callable[[dict[str, Any]], Any]) -> None:
        """The browser's answer to the offer of ``create_webrtc_endpoint``."""
        from .webrtc import WebRtcError

        rtc = self._rtc_for(req_id, args["endpoint"], reply)
        if rtc is None:
            return
        try:
            await rtc.accept_answer(args["answer"])
        except WebRtcError as exc:
            reply(error_reply(req_id, f"answer: {exc}"))
        except Exception as exc:  # noqa: BLE001
            reply(_reply(req_id, None, exc))
        else:
            reply(ok_reply(req_id, endpoint=args["endpoint"], codec=rtc.codec))

    def _destroyed(self, req_id: int, result: Any, exc: BaseException | None,
                   reply: Callable[[dict[str, Any]], Any]) -> None:
        """Completion of destroy_endpoint (loop): close a WebRTC leg's peer connection,
        then reply."""
        rtc = self._rtc.pop(result["endpoint"], None) if exc is None else None
        if rtc is None:
            reply(_reply(req_id, result, exc))
            return

        async def close() -> None:
            try:
                await rtc.close()
            except Exception:  # noqa: BLE001 - the slot is gone either way
                logger.exception("closing WebRTC endpoint %d failed", result["endpoint"])
            reply(_reply(req_id, result, None))

        task = asyncio.ensure_future(close())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def serve_client(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        decoder = FrameDecoder()

        def send(msg: dict[str, Any]) -> None:
            if not writer.is_closing():
                writer.write(encode_frame(msg))

        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                try:
                    msgs = decoder.feed(data)
                except ProtocolError as exc:
                    writer.write(encode_frame(error_reply(None, f"frame: {exc}")))
                    break
                for msg in msgs:
                    self.dispatch(msg, send)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()


def _member(d: dict[int, RtpEndpoint], ep: RtpEndpoint, member: bool) -> None:
    if member:
        d[ep.id] = ep
    else:
        d.pop(ep.id, None)


def _complete(done: list[tuple[Done, Any, BaseException | None]]) -> None:
    for cb, result, exc in done:
        try:
            cb(result, exc)
        except Exception:  # noqa: BLE001 - one bad completion must not drop the others
            logger.exception("command completion failed")


def _reply(req_id: int, result: Any, exc: BaseException | None) -> dict[str, Any]:
    if exc is None:
        return ok_reply(req_id, **result)
    if isinstance(exc, CommandError | ProtocolError):
        return error_reply(req_id, str(exc))
    logger.error("command failed", exc_info=exc)
    return error_reply(req_id, f"internal: {type(exc).__name__}: {exc}")


def _resolve(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


async def amain(args: argparse.Namespace) -> int:
    lo, hi = (int(x) for x in args.ports.split("-"))
    worker = MediaWorker(args.id, (lo, hi), args.rtp_ip, args.data_dir,
                         args.phase * TICK_MS, args.rt_priority)
    loop = asyncio.get_running_loop()
    worker.loop = loop
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    server = await asyncio.start_unix_server(worker.serve_client, path=args.socket)
    worker.writer.start()
    worker.running = True
    tick = threading.Thread(target=worker.run_ticks, name="tick", daemon=True)
    tick.start()
    await stop.wait()
    worker.running = False
    tick.join(timeout=5)
    server.close()
    worker._apply_commands(float("inf"))
    worker.shutdown()
    await worker.close_webrtc()
    try:
        os.unlink(args.socket)
    except OSError:
        pass
    return 0


def first_deadline(now_ms: float, phase_ms: float) -> float:
    """The first tick after ``now_ms`` on the monotonic clock's 20 ms grid shifted by
    ``phase_ms``."""
    return (now_ms - phase_ms) // TICK_MS * TICK_MS + phase_ms + TICK_MS


def set_realtime(priority: int, what: str) -> None:
    """Put the calling thread under SCHED_RR at ``priority``: it then runs as soon as a
    packet wakes it, ahead of every normal process on the box, as FreeSWITCH's ``-rp``
    and Asterisk's ``-p`` do for their media threads. Without the right (root,
    CAP_SYS_NICE or an RLIMIT_RTPRIO, e.g. systemd's ``LimitRTPRIO=``) it logs why and
    the thread keeps normal scheduling. The kernel's RT throttling
    (``sched_rt_runtime_us``) still leaves the rest of the box 5 % of each second."""
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
    except (OSError, AttributeError) as exc:
        logger.warning("%s keeps normal scheduling: SCHED_RR %d refused (%s)",
                       what, priority, exc)


def _die_with_parent(parent: int | None) -> None:
    """Linux: SIGTERM this worker when the control process dies, kill -9 included
    (``PR_SET_PDEATHSIG``), so its recordings are finalised and its RTP ports are free
    for the restarted server. An orphan would keep both forever."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: no parent-death signal
        return
    if parent is not None and os.getppid() != parent:  # it died before prctl
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="media.worker", description=__doc__.split("\n")[0])
    p.add_argument("--socket", required=True, help="Unix socket path to serve")
    p.add_argument("--ports", required=True, help="RTP port range LO-HI")
    p.add_argument("--id", type=int, default=0, help="worker index")
    p.add_argument("--rtp-ip", default="0.0.0.0", help="address RTP sockets bind to")
    p.add_argument("--data-dir", default="./hotline-data", help="data directory")
    p.add_argument("--phase", type=float, default=0.0,
                   help="where in each 20 ms period this worker ticks, as a fraction 0..1")
    p.add_argument("--rt-priority", type=int, default=0, choices=range(100),
                   metavar="0..99", help="SCHED_RR priority of the tick thread (0: off)")
    p.add_argument("--parent", type=int, default=None,
                   help="control process pid: exit when it dies")
    args = p.parse_args(argv)
    _die_with_parent(args.parent)
    logging.basicConfig(level=logging.INFO, format=f"worker{args.id} %(levelname)s %(message)s")
    for name in ("aioice", "aiortc"):  # per-check ICE logs at INFO: keep warnings only
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
