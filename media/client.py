"""Control-process side of the media workers: :class:`MediaPool`.

The pool spawns ``n_workers`` ``media.worker`` processes (one per core by default), each
owning an equal slice of the RTP port range, and talks to each over its Unix socket with
the msgpack protocol of :mod:`media.protocol`. All endpoints of one *call key* go to the
same worker (the least-loaded one when the key is new), so a call's legs are mixed in
one process. Worker events arrive as typed :mod:`media.events` through ``pool.on_event``.

A worker that exits (or whose socket hits EOF) is reported as
:class:`media.events.WorkerDied` with the endpoint ids and call keys it owned; pending
requests to it fail with :class:`WorkerDiedError`; the pool starts a replacement with the
same index and port slice; the other workers are untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .events import MediaEvent, WorkerDied, WorkerStarted, event_from_wire
from .protocol import FrameDecoder, ProtocolError, encode_frame

__all__ = ["EndpointHandle", "MediaError", "MediaPool", "RecordingHandle", "WorkerDiedError"]

logger = logging.getLogger("hotline.media.client")
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUEST_TIMEOUT = 10.0
START_TIMEOUT = 15.0


class MediaError(Exception):
    """A worker answered ``ok: false``; the message names the bad field."""


class WorkerDiedError(MediaError):
    """The worker serving a request went away."""


@dataclass(frozen=True, slots=True)
class EndpointHandle:
    """An endpoint as seen by call control."""

    worker: int
    """Worker index."""
    id: int
    """Endpoint id (unique within the worker)."""
    local_port: int
    """Local RTP port to put in SDP (0 for a WebRTC endpoint: its SDP comes from the
    worker)."""
    call_key: str
    """The call the endpoint belongs to."""
    kind: str = "rtp"
    """``"rtp"`` or ``"webrtc"``."""


@dataclass(frozen=True, slots=True)
class RecordingHandle:
    """A recording in progress."""

    worker: int
    """Worker index."""
    id: int
    """Recording id."""
    path: str
    """WAV file being written."""


class _RequestTimeout(Exception):
    """A request's reply did not arrive within REQUEST_TIMEOUT (internal)."""


def _expire(fut: asyncio.Future[dict[str, Any]]) -> None:
    if not fut.done():
        fut.set_exception(_RequestTimeout())


#: How many RTP endpoints one WebRTC endpoint weighs when calls are spread over workers
#: (its aiortc side costs about ten times an RTP leg's CPU: benchmarks/README.md).
WEBRTC_WEIGHT = 10


class _Worker:
    def __init__(self, index: int, ports: tuple[int, int], sock_path: str) -> None:
        self.index = index
        self.ports = ports
        self.sock_path = sock_path
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.endpoints: dict[int, str] = {}  # endpoint id -> call key
        self.load = 0
        """Endpoints, weighted (:data:`WEBRTC_WEIGHT`), including those being created:
        a new call goes to the least loaded worker."""
        self.weights: dict[int, int] = {}  # endpoint id -> its weight in load
        self.alive = False
        self.task: asyncio.Task[None] | None = None


class MediaPool:
    """Spawn and drive media workers.

    :param n_workers: number of worker processes (0 = ``os.cpu_count()``).
    :param port_range: inclusive RTP port range, split evenly between workers.
    :param socket_dir: directory for the workers' Unix sockets.
    :param rtp_ip: address the workers bind RTP sockets to.
    :param data_dir: data directory (prompt cache) passed to the workers.
    :param restart: start a replacement when a worker dies.
    :param rt_priority: SCHED_RR priority (1..99) of the workers' tick threads, 0 for
        normal scheduling (see ``media.worker``'s ``--rt-priority``).
    """

    def __init__(self, n_workers: int = 0, port_range: tuple[int, int] = (20000, 29999),
                 socket_dir: str = "/tmp", rtp_ip: str = "0.0.0.0",
                 data_dir: str = "./hotline-data", restart: bool = True,
                 rt_priority: int = 0) -> None:
        n = n_workers or os.cpu_count() or 1
        lo, hi = port_range
        if hi - lo + 1 < 2 * n:
            raise ValueError(f"port range {lo}-{hi} is too small for {n} workers")
        size = (hi - lo + 1) // n // 2 * 2  # even: every slice starts on an even RTP port
        self._workers = [
            _Worker(i, (lo + i * size, lo + (i + 1) * size - 1),
                    os.path.join(socket_dir, f"media-{os.getpid()}-{i}.sock"))
            for i in range(n)
        ]
        self.rtp_ip = rtp_ip
        self.data_dir = os.path.abspath(data_dir)
        """Absolute: the workers run in the repository root, not in our directory."""
        self.restart = restart
        self.rt_priority = rt_priority
        self.on_event: Callable[[MediaEvent], Any] | None = None
        """Called with every :class:`MediaEvent` (plain function or coroutine function)."""
        self._calls: dict[str, int] = {}  # call key -> worker index
        self._next_id = 1
        self._closing = False
        self.restarts = 0

    @property
    def n_workers(self) -> int:
        return len(self._workers)

    def worker_pids(self) -> list[int | None]:
        """Process ids of the workers (None while one is restarting)."""
        return [w.proc.pid if w.proc and w.alive else None for w in self._workers]

    async def start(self) -> None:
        """Spawn all workers and wait until each answers ``ping``."""
        await asyncio.gather(*(self._spawn(w) for w in self._workers))

    async def __aenter__(self) -> MediaPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _spawn(self, w: _Worker) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = _ROOT + os.pathsep + env.get("PYTHONPATH", "")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(w.sock_path)
        w.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "media.worker", "--socket", w.sock_path,
            "--ports", f"{w.ports[0]}-{w.ports[1]}", "--id", str(w.index),
            "--rtp-ip", self.rtp_ip, "--data-dir", self.data_dir,
            "--phase", str(round(w.index / len(self._workers), 4)),
            "--rt-priority", str(self.rt_priority),
            "--parent", str(os.getpid()), env=env, cwd=_ROOT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while True:
            if w.proc.returncode is not None:
                raise MediaError(f"worker {w.index} exited with {w.proc.returncode} at start")
            try:
                w.reader, w.writer = await asyncio.open_unix_connection(w.sock_path)
                break
            except OSError:
                if loop.time() > deadline:
                    w.proc.kill()
                    raise MediaError(f"worker {w.index} did not open {w.sock_path}") from None
                await asyncio.sleep(0.02)
        w.alive = True
        w.task = asyncio.create_task(self._read_loop(w))
        asyncio.create_task(self._watch_exit(w, w.proc))
        await self._request(w, "ping")
        self._dispatch(WorkerStarted(w.index, w.proc.pid))

    async def _watch_exit(self, w: _Worker, proc: asyncio.subprocess.Process) -> None:
        await proc.wait()
        if w.proc is proc:
            await self._worker_lost(w)

    async def _read_loop(self, w: _Worker) -> None:
        decoder = FrameDecoder()
        assert w.reader is not None
        try:
            while True:
                data = await w.reader.read(65536)
                if not data:
                    break
                for msg in decoder.feed(data):
                    if "event" in msg:
                        ep = msg.get("endpoint")
                        ev = event_from_wire(w.index, msg, w.endpoints.get(ep) if ep else None)
                        if ev is not None:
                            self._dispatch(ev)
                    else:
                        fut = w.pending.pop(msg.get("id"), None)
                        if fut is not None and not fut.done():
                            fut.set_result(msg)
        except (ConnectionError, ProtocolError) as exc:
            logger.error("worker %d connection failed: %s", w.index, exc)
        except asyncio.CancelledError:
            return
        await self._worker_lost(w)

    async def _worker_lost(self, w: _Worker) -> None:
        if not w.alive:
            return
        w.alive = False
        proc = w.proc
        if proc is not None and proc.returncode is None:
            try:  # socket EOF: the process is exiting, or wedged
                await asyncio.wait_for(proc.wait(), 2)
            except TimeoutError:
                proc.kill()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(proc.wait(), 5)
        for fut in w.pending.values():
            if not fut.done():
                fut.set_exception(WorkerDiedError(f"worker {w.index} died"))
        w.pending.clear()
        if w.writer is not None:
            w.writer.close()
        eps = tuple(sorted(w.endpoints))
        keys = tuple(sorted(set(w.endpoints.values())))
        w.endpoints.clear()
        w.weights.clear()
        w.load = 0
        for k in keys:
            self._calls.pop(k, None)
        if self._closing:
            return
        self._dispatch(WorkerDied(w.index, eps, keys, proc.returncode if proc else None))
        if self.restart:
            self.restarts += 1
            try:
                await self._spawn(w)
            except MediaError as exc:
                logger.error("restarting worker %d failed: %s", w.index, exc)

    def _dispatch(self, ev: MediaEvent) -> None:
        cb = self.on_event
        if cb is None:
            return
        try:
            r = cb(ev)
            if asyncio.iscoroutine(r):
                asyncio.ensure_future(r)
        except Exception:
            logger.exception("on_event callback failed")

    async def _request(self, w: _Worker, op: str, **args: Any) -> dict[str, Any]:
        if not w.alive or w.writer is None:
            raise WorkerDiedError(f"worker {w.index} is not running")
        req_id = self._next_id
        self._next_id += 1
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        w.pending[req_id] = fut
        w.writer.write(encode_frame({"id": req_id, "op": op, **args}))
        # one timer handle instead of asyncio.wait_for (a task-free timeout: this runs
        # three times per call on the control process's hot path)
        timer = loop.call_later(REQUEST_TIMEOUT, _expire, fut)
        try:
            reply = await fut
        except _RequestTimeout:
            raise MediaError(
                f"worker {w.index} did not answer {op!r} within {REQUEST_TIMEOUT:.0f} s"
            ) from None
        finally:
            timer.cancel()
            w.pending.pop(req_id, None)
        if not reply.get("ok"):
            raise MediaError(str(reply.get("error")))
        return reply

    def _worker_for(self, call_key: str) -> _Worker:
        idx = self._calls.get(call_key)
        if idx is None:
            live = [w for w in self._workers if w.alive] or self._workers
            idx = min(live, key=lambda w: w.load).index
            self._calls[call_key] = idx
        return self._workers[idx]

    # -- public API ------------------------------------------------------------

    async def create_endpoint(self, call_key: str, **options: Any) -> EndpointHandle:
        """Create an RTP endpoint for a call.

        :param call_key: the call; all its endpoints share one worker.
        :param options: ``remote_ip``, ``remote_port``, ``codec`` ("pcmu"/"pcma"), ``pt``,
            ``te_pt``, ``direction``, ``media_timeout``, ``dtmf_inband``, ``vad``,
            ``latch`` (see :data:`media.protocol.OPS`).
        :raises MediaError: on a bad option (the message names it) or no free port.
        """
        w = self._worker_for(call_key)
        w.load += 1  # counted while it is created, so a burst of calls spreads
        try:
            r = await self._request(w, "create_endpoint", **options)
        except MediaError:
            w.load = max(0, w.load - 1)
            if not any(k == call_key for k in w.endpoints.values()):
                self._calls.pop(call_key, None)
            raise
        w.endpoints[r["endpoint"]] = call_key
        w.weights[r["endpoint"]] = 1
        return EndpointHandle(w.index, r["endpoint"], r["port"], call_key)

    async def create_webrtc_endpoint(self, call_key: str, offer: str | None = None,
                                     **options: Any) -> tuple[EndpointHandle, str]:
        """Create a WebRTC (browser) endpoint for a call; it bridges, records, plays and
        detects DTMF like an RTP endpoint.

        :param call_key: the call (or agent session); all its endpoints share one worker.
        :param offer: the browser's SDP offer (complete, non-trickle). None: the worker
            offers, and the browser's answer goes to :meth:`webrtc_answer`.
        :param options: ``codecs`` (preference, e.g. ``["PCMU", "PCMA", "opus"]``),
            ``direction``, ``media_timeout``, ``dtmf_inband``, ``vad``, ``jitter_min_ms``,
            ``jitter_max_ms`` (see :data:`media.protocol.OPS`).
        :returns: the handle (``local_port`` 0, ``kind`` ``"webrtc"``) and the worker's
            answer (``offer`` given) or offer (``offer`` None).
        :raises MediaError: bad SDP or option (the message names the field), no slot.
        """
        w = self._worker_for(call_key)
        if offer is not None:
            options["offer"] = offer
        w.load += WEBRTC_WEIGHT
        try:
            r = await self._request(w, "create_webrtc_endpoint", **options)
        except MediaError:
            w.load = max(0, w.load - WEBRTC_WEIGHT)
            if not any(k == call_key for k in w.endpoints.values()):
                self._calls.pop(call_key, None)
            raise
        w.endpoints[r["endpoint"]] = call_key
        w.weights[r["endpoint"]] = WEBRTC_WEIGHT
        sdp = r["answer"] if offer is not None else r["offer"]
        return EndpointHandle(w.index, r["endpoint"], 0, call_key, "webrtc"), str(sdp)

    async def webrtc_offer(self, ep: EndpointHandle, offer: str) -> str:
        """A new offer from the browser on an existing WebRTC endpoint (renegotiation,
        ``restartIce()``); returns the answer."""
        r = await self._request(self._workers[ep.worker], "webrtc_offer", endpoint=ep.id,
                                offer=offer)
        return str(r["answer"])

    async def webrtc_answer(self, ep: EndpointHandle, answer: str) -> None:
        """The browser's answer to the offer :meth:`create_webrtc_endpoint` returned."""
        await self._request(self._workers[ep.worker], "webrtc_answer", endpoint=ep.id,
                            answer=answer)

    async def modify_endpoint(self, ep: EndpointHandle, **options: Any) -> None:
        """Change remote address, codec, direction (hold: ``recvonly``/``inactive``)..."""
        await self._request(self._workers[ep.worker], "modify_endpoint", endpoint=ep.id,
                            **options)

    async def destroy(self, ep: EndpointHandle) -> None:
        """Destroy an endpoint (its port is released; a WebRTC endpoint's peer connection
        is closed before the reply)."""
        w = self._workers[ep.worker]
        try:
            await self._request(w, "destroy_endpoint", endpoint=ep.id)
        finally:
            w.endpoints.pop(ep.id, None)
            w.load -= w.weights.pop(ep.id, 0)
            if ep.call_key not in w.endpoints.values():
                self._calls.pop(ep.call_key, None)

    async def set_room(self, room: str, endpoints: Sequence[EndpointHandle],
                       hears: dict[EndpointHandle, Sequence[EndpointHandle]] | None = None,
                       gains: dict[EndpointHandle, float] | None = None) -> None:
        """Set who hears whom among ``endpoints`` (default: everybody hears everybody
        else). An endpoint that hears itself is an echo. An empty list removes the room.

        :raises MediaError: if the endpoints live on different workers.
        """
        workers = {e.worker for e in endpoints}
        if len(workers) > 1:
            raise MediaError("endpoints: a room's endpoints must share a worker (one call key)")
        if not endpoints:
            for w in self._workers:
                if w.alive:
                    await self._request(w, "set_room", room=room, endpoints=[])
            return
        w = self._workers[workers.pop()]
        args: dict[str, Any] = {"room": room, "endpoints": [e.id for e in endpoints]}
        if hears is not None:
            args["hears"] = {k.id: [h.id for h in v] for k, v in hears.items()}
        if gains is not None:
            args["gains"] = {k.id: g for k, g in gains.items()}
        await self._request(w, "set_room", **args)

    async def play(self, ep: EndpointHandle, source: str, loop: bool = False,
                   mode: str = "replace") -> int:
        """Play a prompt file (relative names are under ``DATA_DIR/prompts``),
        ``tts:TEXT`` or a tone (``tone:beep``, ``tone:busy[:cn|us][:CYCLES]``,
        ``tone:dtmf:DIGITS``...; see :func:`media.prompts.tone_prompt`) to an endpoint;
        returns the play id later reported by :class:`PlaybackDone`. Without ``loop`` a
        call-progress tone is a finite prompt of whole cadence cycles."""
        r = await self._request(self._workers[ep.worker], "play", endpoint=ep.id,
                                source=source, loop=loop, mode=mode)
        return int(r["play_id"])

    async def stop_play(self, ep: EndpointHandle) -> bool:
        """Stop playback; True if something was playing."""
        r = await self._request(self._workers[ep.worker], "stop_play", endpoint=ep.id)
        return bool(r["stopped"])

    async def record(self, path: str, left: Sequence[EndpointHandle],
                     right: Sequence[EndpointHandle]) -> RecordingHandle:
        """Record a stereo WAV: left = received audio of ``left``, right = of ``right``;
        while ``right`` is empty, right = the audio sent to ``left`` (what a caller alone
        in an IVR or queue hears: prompts, tones, music on hold)."""
        workers = {e.worker for e in (*left, *right)}
        if len(workers) != 1:
            raise MediaError("left: recorded endpoints must share one worker")
        idx = workers.pop()
        # the worker's working directory is not ours: a relative path means ours
        r = await self._request(self._workers[idx], "record", path=os.path.abspath(path),
                                left=[e.id for e in left], right=[e.id for e in right])
        return RecordingHandle(idx, int(r["recording"]), path)

    async def record_update(self, rec: RecordingHandle, left: Sequence[EndpointHandle],
                            right: Sequence[EndpointHandle]) -> None:
        """Change whose received audio goes to each channel of a live recording (e.g.
        the agent side after a transfer); endpoints must be in the recording's worker."""
        if any(e.worker != rec.worker for e in (*left, *right)):
            raise MediaError("left: recorded endpoints must share the recording's worker")
        await self._request(self._workers[rec.worker], "record_update", recording=rec.id,
                            left=[e.id for e in left], right=[e.id for e in right])

    async def record_pause(self, rec: RecordingHandle) -> None:
        await self._request(self._workers[rec.worker], "record_pause", recording=rec.id)

    async def record_resume(self, rec: RecordingHandle) -> None:
        await self._request(self._workers[rec.worker], "record_resume", recording=rec.id)

    async def record_stop(self, rec: RecordingHandle) -> float:
        """Finalise a recording; returns its length in seconds."""
        r = await self._request(self._workers[rec.worker], "record_stop", recording=rec.id)
        return float(r["seconds"])

    async def dtmf_send(self, ep: EndpointHandle, digits: str, duration_ms: int = 100) -> str:
        """Send digits (RFC 4733 if the endpoint has ``te_pt``, else in-band tones);
        returns the method used."""
        r = await self._request(self._workers[ep.worker], "dtmf_send", endpoint=ep.id,
                                digits=digits, duration_ms=duration_ms)
        return str(r["method"])

    async def stats(self, ep: EndpointHandle | None = None,
                    worker: int | None = None) -> dict[str, Any]:
        """Worker statistics (and one endpoint's, given ``ep``)."""
        idx = ep.worker if ep is not None else (worker or 0)
        args = {"endpoint": ep.id} if ep is not None else {}
        return await self._request(self._workers[idx], "stats", **args)

    async def request(self, worker: int, op: str, **args: Any) -> dict[str, Any]:
        """Send a raw request (tests, tools)."""
        return await self._request(self._workers[worker], op, **args)

    async def close(self) -> None:
        """Stop all workers (SIGTERM: recordings are finalised) and wait for them."""
        self._closing = True
        for w in self._workers:
            if w.proc is not None and w.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.terminate()
        for w in self._workers:
            if w.proc is not None:
                try:
                    await asyncio.wait_for(w.proc.wait(), 10)
                except TimeoutError:
                    w.proc.kill()
                    await w.proc.wait()
            if w.writer is not None:
                w.writer.close()
            if w.task is not None:
                w.task.cancel()
