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
* the **asyncio thread** (uvloop when available) serves the control socket. Validated
  commands are queued to the tick thread, which applies them at the start of a tick and
  resolves the reply future through ``call_soon_threadsafe``; events go the same way in
  the other direction. File work (prompt decoding, TTS) runs in an executor before the
  command is queued, and recording blocks are written by a third, writer thread, so the
  tick thread never waits on a disk.

On SIGTERM the tick thread stops, recordings are finalised and the process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
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
from typing import Any

import numpy as np

from cext.jitter import stats as jb_stats
from cext.mixer import plan_from_hears
from cext.net import NetIO, RecvBatch, ip_from_be, ip_to_be, monotonic_ms
from cext.rfc4733 import TelephoneEventSender
from cext.rtp import RtpHeader
from cext.tick import EV_DTMF, EV_PLAY_DONE, EV_TE, EV_TONE_DONE, TickKernel
from cext.tones import PromptPlayer, call_progress, dtmf_string

from .endpoint import Recording, RtpEndpoint, wav_header
from .prompts import PromptCache
from .protocol import (
    FrameDecoder,
    ProtocolError,
    encode_frame,
    error_reply,
    ok_reply,
    validate_request,
)
from .vad import SPEECH_START, SPEECH_STOP

logger = logging.getLogger("hotline.media.worker")

TICK_MS = 20.0
FRAME = 160
DTMF_CHARS = "0123456789*#ABCD"
MAX_SLOTS = 8192
COMMAND_TIMEOUT = 5.0


class CommandError(ValueError):
    """A command that validated but cannot be applied (unknown endpoint, no ports...)."""


class RecordingWriter(threading.Thread):
    """Writes recording blocks and header updates off the tick thread."""

    def __init__(self) -> None:
        super().__init__(name="rec-writer", daemon=True)
        self.q: queue.SimpleQueue[tuple[str, int, bytes, int] | None] = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            op, fd, data, total = item
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
    """

    def __init__(self, worker_id: int, ports: tuple[int, int], rtp_ip: str,
                 data_dir: str) -> None:
        self.worker_id = worker_id
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
        self._next_ep = 1
        self._next_rec = 1
        self._next_play = 1
        self._rng = np.random.default_rng()
        # derived per-topology state (rebuilt when _dirty)
        self._dirty = True
        self._plan: Any = None
        self._nlegs = 0
        self._vad_eps: list[RtpEndpoint] = []
        self._te_tx_eps: list[RtpEndpoint] = []
        self._timeout_eps: list[RtpEndpoint] = []
        self._te_open: set[RtpEndpoint] = set()
        # threads and I/O
        self.commands: deque[tuple[Callable[[], Any], asyncio.Future[Any] | None]] = deque()
        self.events: list[dict[str, Any]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.writers: set[asyncio.StreamWriter] = set()
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

    # ------------------------------------------------------------------ tick thread

    def run_ticks(self) -> None:
        """The tick thread's body: an absolute 20 ms schedule until ``running`` is False."""
        deadline = monotonic_ms() + TICK_MS
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

    def _emit(self, event: str, **fields: Any) -> None:
        fields["event"] = event
        self.events.append(fields)

    def _apply_commands(self) -> None:
        while self.commands:
            fn, fut = self.commands.popleft()
            try:
                result: Any = fn()
                exc: BaseException | None = None
            except Exception as e:  # a failed command must never stop the ticks
                result, exc = None, e
            if fut is not None and self.loop is not None:
                self.loop.call_soon_threadsafe(_resolve, fut, result, exc)

    def _receive(self, n: int, now: float) -> None:
        """Route rows 0..n-1 of the current batch into the jitter buffers (no frame)."""
        if self._dirty:
            self._rebuild()
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

    def _kernel_events(self, nev: int, rb: RecvBatch, now: float) -> None:
        k = self.kernel
        by_slot = self.by_slot
        for kind, slot, a, b in zip(k.events_kind[:nev].tolist(), k.events_slot[:nev].tolist(),
                                    k.events_a[:nev].tolist(), k.events_b[:nev].tolist()):
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
                self._dirty = True
            elif kind == EV_TONE_DONE:
                ep.tone_tx = None
                self._dirty = True

    def _tick(self, now: float, n: int) -> None:
        self._apply_commands()
        if self._dirty:
            self._rebuild()
        self._run_kernel(n, now, full=True)
        if self._te_open:
            self._te_events(now)
        for ep in self._vad_eps:
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
        for i in full:
            rec = self._rec_order[i]
            rec.pos = int(k.rec_pos[i])
            self._flush_recording(rec)
            k.rec_pos[i] = 0
            k.rec_full[i] = 0

    def _sync_recordings(self) -> None:
        """Copy the kernel's buffer positions back into the Recording objects."""
        pos = self.kernel.rec_pos
        for i, rec in enumerate(self._rec_order):
            rec.pos = int(pos[i])

    def _bind_recordings(self) -> None:
        """Give the kernel the current recording set (per recording command only)."""
        self._sync_recordings()
        order = list(self.recordings.values())
        self.kernel.set_recordings([r.buf for r in order], [r.left for r in order],
                                   [r.right for r in order], [r.paused for r in order],
                                   [r.pos for r in order])
        self._rec_order = order

    def _flush_recording(self, rec: Recording, final: bool = False) -> None:
        data = rec.buf[:rec.pos].tobytes()
        rec.data_bytes += len(data)
        rec.pos = 0
        rec.flushes += 1
        op = "close" if final else ("header" if rec.flushes % 5 == 0 else "write")
        self.writer.q.put((op, rec.fd, data, rec.data_bytes))

    def _send_te(self, now: float) -> None:
        for ep in self._te_tx_eps:
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
                self._dirty = True

    def _check_timeouts(self, now: float) -> None:
        for ep in self._timeout_eps:
            last = max(float(self.net.last_rx_ms[ep.slot]), ep.armed_ms)
            idle = (now - last) / 1000.0
            if idle >= ep.media_timeout:
                if not ep.timeout_fired:
                    ep.timeout_fired = True
                    self._emit("media_timeout", endpoint=ep.id, seconds=round(idle, 3))
            else:
                ep.timeout_fired = False

    def _rebuild(self) -> None:
        """Recompute the per-tick lists, relays and the mix plan after a change."""
        self._dirty = False
        eps = list(self.endpoints.values())
        net = self.net
        # relays: plain two-party same-codec bridges with nothing else going on
        relay_targets: set[int] = set()
        relay_to = np.full(self.capacity, -1, np.int32)
        mixed_rooms: list[tuple[list[int], dict[int, list[int]], dict[int, float]]] = []
        for members, hears, gains in self.rooms.values():
            if len(members) == 2 and not gains:
                a, b = (self.endpoints[m] for m in members)
                if (hears == {a.id: [b.id], b.id: [a.id]} and a.codec == b.codec
                        and a.direction == b.direction == "sendrecv"
                        and not (a.player or b.player or a.tone_tx or b.tone_tx
                                 or a.te_tx or b.te_tx)):
                    relay_to[a.slot], relay_to[b.slot] = b.slot, a.slot
                    net.audio_pt[a.slot], net.audio_pt[b.slot] = a.pt, b.pt
                    net.out_pt[a.slot], net.out_pt[b.slot] = a.pt, b.pt
                    relay_targets.update((a.slot, b.slot))
                    continue
            mixed_rooms.append((members, hears, gains))
        old = net.relay_to.copy()
        for s in np.flatnonzero(old != relay_to).tolist():
            tgt = int(old[s])
            if tgt >= 0:
                net.relay_active[tgt] = 0
        net.relay_to[:] = relay_to
        # mix plan over slots 0..max used
        used = [ep.slot for ep in eps]
        self._nlegs = nl = (max(used) + 1) if used else 0
        hears_map: dict[int, set[int]] = {}
        gain_list = [1.0] * nl
        any_mix = False
        for _members, hears, gains in mixed_rooms:
            for eid, heard in hears.items():
                s = self.endpoints[eid].slot
                hears_map.setdefault(s, set()).update(self.endpoints[h].slot for h in heard)
                any_mix = True
            for eid, g in gains.items():
                gain_list[self.endpoints[eid].slot] = g
        self._plan = plan_from_hears(nl, hears_map, gain_list) if any_mix else None
        self.out[:] = 0
        self.inp[:] = 0
        self._vad_eps = [ep for ep in eps if ep.vad is not None and ep.receives]
        self._te_tx_eps = [ep for ep in eps if ep.te_tx]
        self._timeout_eps = [ep for ep in eps if ep.media_timeout > 0]
        k = self.kernel
        for ep in eps:
            net.send_enabled[ep.slot] = 1 if ep.sends else 0
            k.set_endpoint(ep.slot, ep.jb, ep.dtmf if ep.receives else None, ep.player,
                           ep.play_mix, ep.tone_tx, ep.receives, ep.echo,
                           255 if ep.te_pt is None else ep.te_pt)
        senders = sorted((ep for ep in eps if ep.sends and ep.slot not in relay_targets
                          and not ep.te_tx), key=lambda e: e.slot)
        k.set_lists(self._plan, nl, np.array([ep.slot for ep in senders], np.int32),
                    np.array([0 if ep.codec == "pcmu" else 1 for ep in senders], np.uint8),
                    np.array([ep.pt for ep in senders], np.uint8),
                    np.array([ep.slot for ep in eps if ep.slot not in relay_targets], np.int32))

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
        self._dirty = True
        return {"endpoint": ep_id, "port": port}

    def cmd_modify_endpoint(self, args: dict[str, Any]) -> dict[str, Any]:
        ep = self._ep(args["endpoint"])
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
        self._dirty = True
        return {"endpoint": ep.id}

    def cmd_destroy_endpoint(self, args: dict[str, Any]) -> dict[str, Any]:
        ep = self._ep(args["endpoint"])
        if ep.player is not None:
            self._emit("playback_done", endpoint=ep.id, play_id=ep.play_id, reason="destroyed")
        for name, (members, _h, _g) in list(self.rooms.items()):
            if ep.id in members:
                del self.rooms[name]
        self.net.remove(ep.slot)
        ep.sock.close()
        self._free_ports.append(ep.port)
        del self.endpoints[ep.id]
        self.by_slot[ep.slot] = None
        self.kernel.set_endpoint(ep.slot, None)
        heapq.heappush(self._free_slots, ep.slot)
        self._te_open.discard(ep)
        ep.in_row[:] = 0
        ep.out_row[:] = 0
        self._dirty = True
        return {"endpoint": ep.id}

    def cmd_set_room(self, args: dict[str, Any]) -> dict[str, Any]:
        name = args["room"]
        members: list[int] = args["endpoints"]
        for m in members:
            self._ep(m)
        if len(set(members)) != len(members):
            raise CommandError("endpoints: duplicate endpoint id")
        for other, (om, _h, _g) in self.rooms.items():
            if other != name and set(om) & set(members):
                raise CommandError(f"endpoints: already in room {other!r}")
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
        if old is not None:
            for m in old[0]:
                if m in self.endpoints:
                    self.endpoints[m].room = None
                    self.endpoints[m].echo = False
        if members:
            clean = {k: sorted(set(v) - {k}) for k, v in hears.items()}
            self.rooms[name] = (members, clean, gains)
            for m in members:
                ep = self.endpoints[m]
                ep.room = name
                ep.echo = m in hears.get(m, [])  # echo: an endpoint that hears itself
        self._dirty = True
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
        self._dirty = True
        return {"play_id": ep.play_id}

    def cmd_stop_play(self, args: dict[str, Any]) -> dict[str, Any]:
        ep = self._ep(args["endpoint"])
        stopped = ep.player is not None
        if stopped:
            self._emit("playback_done", endpoint=ep.id, play_id=ep.play_id, reason="stopped")
            ep.player = None
            self._dirty = True
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
        self._bind_recordings()
        return {"recording": rec.id}

    def _rec(self, rec_id: int) -> Recording:
        rec = self.recordings.get(rec_id)
        if rec is None:
            raise CommandError(f"recording: no recording {rec_id}")
        return rec

    def cmd_record_pause(self, args: dict[str, Any]) -> dict[str, Any]:
        self._rec(args["recording"]).paused = True
        self._bind_recordings()
        return {}

    def cmd_record_resume(self, args: dict[str, Any]) -> dict[str, Any]:
        self._rec(args["recording"]).paused = False
        self._bind_recordings()
        return {}

    def cmd_record_stop(self, args: dict[str, Any]) -> dict[str, Any]:
        rec = self._rec(args["recording"])
        return self._finish_recording(rec)

    def _finish_recording(self, rec: Recording) -> dict[str, Any]:
        self._sync_recordings()
        self._flush_recording(rec, final=True)
        del self.recordings[rec.id]
        self._bind_recordings()
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
            self._dirty = True
            return {"method": "rfc4733"}
        ep.tone_tx = dtmf_string(digits, on=dur / 1000.0, off=0.1)
        self._dirty = True
        return {"method": "inband"}

    def cmd_stats(self, args: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "worker": self.worker_id, "endpoints": len(self.endpoints),
            "rooms": len(self.rooms), "recordings": len(self.recordings),
            "ticks": self.ticks, "late_ticks": self.late_ticks,
            "max_late_ms": round(self.max_late_ms, 3), "skipped_ticks": self.skipped_ticks,
            "avg_busy_ms": round(self.busy_ms_total / max(1, self.ticks), 4),
            "max_busy_ms": round(self.max_busy_ms, 3), "rx_packets": self.rx_total,
            "cpu_s": time.process_time(),
        }
        if args["endpoint"] is not None:
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

    def shutdown(self) -> None:
        """Finalise recordings and close sockets (tick thread stopped)."""
        for rec in list(self.recordings.values()):
            self._finish_recording(rec)
        self.writer.q.put(None)
        self.writer.join(timeout=10)
        for ep in self.endpoints.values():
            ep.sock.close()

    # ---------------------------------------------------------------- asyncio side

    def _write_events(self, events: list[dict[str, Any]]) -> None:
        data = b"".join(encode_frame(e) for e in events)
        for w in list(self.writers):
            if not w.is_closing():
                w.write(data)

    async def _submit(self, fn: Callable[[], Any]) -> Any:
        assert self.loop is not None
        fut = self.loop.create_future()
        self.commands.append((fn, fut))
        return await asyncio.wait_for(fut, COMMAND_TIMEOUT)

    async def _load_source(self, source: str, loop: bool) -> Any:
        if source.startswith("tone:"):
            parts = source[5:].split(":")
            if parts[0] == "dtmf" and len(parts) == 2:
                return dtmf_string(parts[1])
            return call_progress(parts[0], parts[1] if len(parts) > 1 else "cn")
        assert self.loop is not None
        return await self.loop.run_in_executor(None, self.prompts.load, source)

    async def handle(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Validate and execute one request; always returns a reply."""
        req_id = msg.get("id") if isinstance(msg.get("id"), int) else None
        try:
            req_id, op, args = validate_request(msg)
            if op == "ping":
                return ok_reply(req_id, worker=self.worker_id, pid=os.getpid())
            if op == "play":
                try:
                    source = await self._load_source(args["source"], args["loop"])
                except (OSError, ValueError) as exc:
                    return error_reply(req_id, f"source: {exc}")
                result = await self._submit(lambda: self.cmd_play(args, source))
            else:
                fn = getattr(self, f"cmd_{op}")
                result = await self._submit(lambda: fn(args))
            return ok_reply(req_id, **result)
        except ProtocolError as exc:
            return error_reply(req_id, str(exc))
        except CommandError as exc:
            return error_reply(req_id, str(exc))
        except TimeoutError:
            return error_reply(req_id, "worker: command timed out")
        except Exception as exc:  # noqa: BLE001 - the worker must survive any command
            logger.exception("command failed")
            return error_reply(req_id, f"internal: {type(exc).__name__}: {exc}")

    async def serve_client(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        decoder = FrameDecoder()
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
                    reply = await self.handle(msg)
                    writer.write(encode_frame(reply))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()


def _resolve(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


async def amain(args: argparse.Namespace) -> int:
    lo, hi = (int(x) for x in args.ports.split("-"))
    worker = MediaWorker(args.id, (lo, hi), args.rtp_ip, args.data_dir)
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
    worker._apply_commands()
    worker.shutdown()
    try:
        os.unlink(args.socket)
    except OSError:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="media.worker", description=__doc__.split("\n")[0])
    p.add_argument("--socket", required=True, help="Unix socket path to serve")
    p.add_argument("--ports", required=True, help="RTP port range LO-HI")
    p.add_argument("--id", type=int, default=0, help="worker index")
    p.add_argument("--rtp-ip", default="0.0.0.0", help="address RTP sockets bind to")
    p.add_argument("--data-dir", default="./hotline-data", help="data directory")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"worker{args.id} %(levelname)s %(message)s")
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
