"""Browser agents in calls: N aiortc "browsers" answer N SIP calls through a real server.

Issue: 200 concurrent WebRTC agents in calls on the 2-core box. This benchmark runs a real
``hotline serve`` (2 media workers, every call recorded as WAV) with a generated site: N
agents ``2000``.. in one ``longest-idle`` queue (wrap-up 0) on route ``200``, and a trunk
that lets the SIP callers in. Two kinds of load process share the machine with it:

* **browsers** (``--browser-procs``, default 2 processes, uvloop): N aiortc peer
  connections, each the protocol of ``tests/e2e/test_web_phone.py``'s ``Browser``: log in,
  open ``/api/ws``, ``rtc_offer``, wait for the ``rtc`` ``connected`` event,
  ``set_state ready``; on a ringing ``phone`` event send ``phone_answer`` at once. Their
  microphones send PCMU, paced by one 20 ms clock per process in ``MIC_PHASES`` groups.
  Once connected (``--browser-rtp native``, the default) a process's RTP runs in C like a
  real browser's (:class:`BrowserEngine`: the server's own ``take_over``, one
  ``cext.net.NetIO`` with libsrtp both ways, arrival times from recvmmsg); with
  ``--browser-rtp aiortc`` aiortc sends pre-encoded ``av.Packet``\\ s and a tap in place
  of its 80 ms jitter buffer time stamps each decrypted packet. aiortc's Python cost
  the stand-ins about as much CPU as the server, which capped what the box could drive.
  ``--server-rtp aiortc`` runs the server with ``HOTLINE_WEBRTC_NATIVE=0`` (its WebRTC
  RTP through aiortc) to compare.
* **callers** (one process, no asyncio): a small SIP UAC over UDP (text requests, the
  project's ``sip.message`` parser for what comes back) that places N calls to ``200``
  at ``--cps``, and sends/receives every call's RTP with one :class:`cext.net.NetIO`
  (sendmmsg/recvmmsg, streams spread over 20 send phases 1 ms apart, as media_load.py).

Audio: both sides send a quiet tone (amplitude 600) with a loud 20 ms burst (16000) every
500 ms, at a per-call offset. A *marker* is a loud packet after a quiet one. Its send
time is taken just before the packet leaves (the caller's sendmmsg; the browser track's
``recv()``, after which aiortc packetises, encrypts and sends without yielding), its
arrival when the receiver sees it (the caller's recvmmsg time stamp; the browser's tap,
after SRTP). Both processes read CLOCK_MONOTONIC, so *added one-way latency incl.
loopback* = arrival - send: the server's path (SIP leg jitter buffer and tick, the
loopback RTP hop to the browser's worker, mixer, aiortc) plus two loopback hops and the
receiving load process's own scheduling delay, which is printed (``lag p99``) so it can
be told apart. A marker that does not arrive within 450 ms is *lost*; one later than
``--late-ms`` is *late*. *Answer-to-audio*: from the browser sending ``phone_answer``
to the first non-silent packet on its track.

CPU: user+system time from /proc of the control process and its media workers (the
workers' loop thread, which runs aiortc, apart from their other threads: tick,
recording writer), over ``--seconds`` with all N calls up, and over a shorter window with
the N browsers connected but no call (the idle cost of a shift-long connection). The
implied capacity is the legs 2 cores would carry at that cost per leg; the load
processes' CPU is printed beside it.

    .venv/bin/python benchmarks/webrtc.py                     # 10, 50, 100, 200 legs
    .venv/bin/python benchmarks/webrtc.py --quick             # ~1 minute smoke run
    .venv/bin/python benchmarks/webrtc.py --legs 20,40 --seconds 30 --profile DIR

``--profile DIR`` also samples the control process and each media worker with py-spy
(``pip install --target /tmp/pyspy py-spy``; found on PATH or as /tmp/pyspy/bin/py-spy)
during the window, ``--gil --nonblocking`` (the GIL holder only, the process is never
paused), and prints per thread where the samples fall, by package and by function (self
time); the raw stacks stay in DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cext.g711 import ulaw_decode, ulaw_encode  # noqa: E402
from tests.e2e.peers import free_port, wait_listening  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
FRAME = 160
PTIME_S = 0.020
MARK_EVERY = 25  # frames: a marker every 500 ms
MATCH_S = 0.45  # a marker arriving later than this is lost
QUEUE = "bench"
SERVICE = "200"
FIRST_AGENT = 2000
PASSWORD = "bench-pw-{id}"
CALLER_IP = "127.0.0.2"
CALLER_BASE = 700000  # caller numbers: CALLER_BASE + index
PYSPY_RATE = 100
PHASES = 20  # caller RTP send phases per 20 ms (1 ms apart)
MIC_PHASES = 5  # browser mic phases per 20 ms, per browser process

SITE = """\
[server]
sip = ["udp:127.0.0.1:{sip}"]
http = "127.0.0.1:{http}"
rtp_ports = [40000, 59999]
media_workers = {workers}
data_dir = "{data}"

[logging]
level = "warning"

[[trunks]]
name = "carrier"
host = "127.0.0.1"
port = {trunk_port}
allow = ["{caller_ip}/32"]
options_interval = 0

[recording]
enabled = true
format = "wav"

[[queues]]
name = "{queue}"
strategy = "longest-idle"
agents = [{members}]
wrapup = 0
ring_timeout = 15
max_wait = 300

[[routes]]
match = "{service}"
to = "queue:{queue}"
"""

AGENT = """
[[agents]]
id = "{id}"
name = "Bench {id}"
password = "{password}"
"""


# -- audio: the marker frames and a cheap loudness measure ----------------------------------
def _ulaw_frame(freq: float, amp: float) -> bytes:
    t = np.arange(FRAME) / 8000.0
    pcm = (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    out = np.empty(FRAME, np.uint8)
    ulaw_encode(pcm, out)
    return out.tobytes()


CALLER_QUIET = _ulaw_frame(400.0, 600.0)  # 400 Hz: 8 whole periods per frame
CALLER_MARK = _ulaw_frame(1000.0, 16000.0)
BROWSER_QUIET = _ulaw_frame(300.0, 600.0)  # 300 Hz: 6 whole periods per frame
BROWSER_MARK = _ulaw_frame(2000.0, 16000.0)

_lin = np.empty(256, np.int16)
ulaw_decode(np.arange(256, dtype=np.uint8), _lin)
MAG = np.minimum(np.abs(_lin.astype(np.int32)) >> 7, 255).astype(np.uint8)
"""µ-law byte -> |sample| / 128: the loudest byte of a payload says what it carries."""
MAG_TABLE = MAG.tobytes()  # for bytes.translate
LOUD = 8000 >> 7  # a marker
QUIET = 3000 >> 7  # re-arms the onset detector
AUDIBLE = 200 >> 7  # anything but digital silence (answer-to-audio)


def pct(x: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(x, q)) if len(x) else float("nan")


# -- /proc ------------------------------------------------------------------------------------
def _stat(path: str) -> list[str] | None:
    try:
        return Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads; 0 once gone)."""
    f = _stat(f"/proc/{pid}/stat")
    return (int(f[11]) + int(f[12])) / TICKS if f else 0.0


def children(pid: int) -> list[int]:
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            f = _stat(f"/proc/{e}/stat")
            if f is not None and int(f[1]) == pid:
                out.append(int(e))
    return out


def is_worker(pid: int) -> bool:
    try:
        return b"media.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@dataclass
class Cpu:
    """CPU seconds so far: control process, media workers (main thread = asyncio loop with
    aiortc; other threads = tick, recording writer, aiortc's idle decoder threads), the
    load processes and the machine."""

    t: float = 0.0
    control: float = 0.0
    loop: float = 0.0
    tick: float = 0.0
    browsers: float = 0.0
    callers: float = 0.0
    busy: float = 0.0

    def __sub__(self, o: Cpu) -> Cpu:
        return Cpu(*(getattr(self, k) - getattr(o, k) for k in self.__dataclass_fields__))

    @property
    def server(self) -> float:
        return self.control + self.loop + self.tick


def sample(server: int, workers: list[int], browsers: list[int], callers: int | None) -> Cpu:
    c = Cpu(t=time.monotonic(), control=proc_cpu(server))
    for w in workers:
        try:
            tids = os.listdir(f"/proc/{w}/task")
        except OSError:
            continue
        for tid in tids:
            f = _stat(f"/proc/{w}/task/{tid}/stat")
            if f is None:
                continue
            secs = (int(f[11]) + int(f[12])) / TICKS
            if int(tid) == w:
                c.loop += secs
            else:
                c.tick += secs
    c.browsers = sum(proc_cpu(p) for p in browsers)
    c.callers = proc_cpu(callers) if callers else 0.0
    f = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    ticks = [int(x) for x in f]
    c.busy = (sum(ticks) - ticks[3] - ticks[4]) / TICKS
    return c


# == the browsers (a load process) ============================================================
def browsers_main(cfg: dict[str, Any]) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    import logging
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(_browsers(cfg))


async def _browsers(cfg: dict[str, Any]) -> None:
    import fractions

    import aiohttp
    import av
    from aiortc import (
        RTCConfiguration,
        RTCPeerConnection,
        RTCRtpSender,
        RTCSessionDescription,
    )
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    loop = asyncio.get_running_loop()
    base = f"http://127.0.0.1:{cfg['http']}"
    time_base = fractions.Fraction(1, 8000)

    class Pacer:
        """One 20 ms clock for every microphone of this process, in MIC_PHASES groups."""

        def __init__(self) -> None:
            self.waiting: list[list[asyncio.Future[None]]] = [[] for _ in range(MIC_PHASES)]
            self.lags: list[float] = []
            self.measure = False

        def wait(self, group: int) -> asyncio.Future[None]:
            fut = loop.create_future()
            self.waiting[group].append(fut)
            return fut

        async def run(self) -> None:
            t = loop.time() + 0.02
            while True:
                for g in range(MIC_PHASES):
                    due = t + g * PTIME_S / MIC_PHASES
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    if self.measure:
                        self.lags.append(loop.time() - due)
                    ws, self.waiting[g] = self.waiting[g], []
                    for f in ws:
                        if not f.done():
                            f.set_result(None)
                t += PTIME_S
                if loop.time() - t > 0.1:  # the loop stalled: resync
                    t = loop.time()

    pacer = Pacer()

    class Mic(MediaStreamTrack):
        """The browser's microphone: PCMU packets, a marker every 500 ms."""

        kind = "audio"

        def __init__(self, phone: Phone) -> None:
            super().__init__()
            self.phone = phone
            self.i = 0

        async def recv(self) -> av.Packet:  # type: ignore[type-arg]
            if self.readyState != "live" or self.phone.native is not None:
                raise MediaStreamError  # the engine sends (ends aiortc's RTP loop)
            await pacer.wait(self.phone.index % MIC_PHASES)
            if self.phone.native is not None:  # taken over while waiting: send nothing
                raise MediaStreamError
            i = self.i
            self.i += 1
            if (i + self.phone.index * 7) % MARK_EVERY == 0:
                payload = BROWSER_MARK
                self.phone.marks.append(time.monotonic())
            else:
                payload = BROWSER_QUIET
            pkt = av.Packet(payload)
            pkt.pts = i * FRAME
            pkt.time_base = time_base
            return pkt

    class Ear:
        """Stands in for aiortc's audio JitterBuffer: time stamps every decrypted packet."""

        capacity = 16
        armed: bool

        def __init__(self, phone: Phone) -> None:
            self.phone = phone
            self.armed = True

        def add(self, packet: Any) -> tuple[bool, None]:
            now = time.monotonic()
            p = self.phone
            p.rx += 1
            payload = packet.payload
            mag = max(payload.translate(MAG_TABLE)) if payload else 0
            if p.t_answer is not None and p.t_audio is None and mag >= AUDIBLE:
                p.t_audio = now
            if mag >= LOUD:
                if self.armed:
                    p.onsets.append(now)
                    self.armed = False
            elif mag < QUIET:
                self.armed = True
            return False, None

        def remove(self, count: int) -> None:
            pass

    class Phone:
        def __init__(self, index: int, login: str) -> None:
            self.index, self.login = index, login
            self.marks: list[float] = []
            self.onsets: list[float] = []
            self.rx = 0
            self.t_answer: float | None = None
            self.t_audio: float | None = None
            self.t_talking: float | None = None
            self.t_reply: float | None = None
            self.peer = ""
            self.state = "new"
            self.error = ""
            self.setup_s = 0.0
            self.codec = ""
            self.rtc_up = asyncio.Event()
            self.native: Any = None
            self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
            self._ids = 0
            self.http: aiohttp.ClientSession | None = None
            self.ws: Any = None
            self.pc: Any = None
            self.tasks: list[asyncio.Task[Any]] = []

        async def cmd(self, cmd: str, timeout: float = 30.0, **args: Any) -> dict[str, Any]:
            self._ids += 1
            fut = loop.create_future()
            self._replies[self._ids] = fut
            await self.ws.send_str(json.dumps({"id": self._ids, "cmd": cmd, **args}))
            reply: dict[str, Any] = await asyncio.wait_for(fut, timeout)
            if not reply.get("ok"):
                raise RuntimeError(f"{cmd}: {reply}")
            return reply

        async def start(self, gate: asyncio.Semaphore) -> None:
            async with gate:
                t0 = time.monotonic()
                self.http = aiohttp.ClientSession(headers={"Origin": base},
                                                  cookie_jar=aiohttp.CookieJar(unsafe=True))
                r = await self.http.post(base + "/api/login", json={
                    "username": self.login, "password": PASSWORD.format(id=self.login)})
                if r.status != 200:
                    raise RuntimeError(f"login {r.status}: {await r.text()}")
                self.ws = await self.http.ws_connect(base + "/api/ws", max_msg_size=0)
                self.tasks.append(loop.create_task(self._read()))
                self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
                tr = self.pc.addTransceiver(Mic(self), direction="sendrecv")
                caps = RTCRtpSender.getCapabilities("audio").codecs
                tr.setCodecPreferences([c for n in ("PCMU", "PCMA", "opus") for c in caps
                                        if c.mimeType.lower() == f"audio/{n.lower()}"])
                tr.receiver._RTCRtpReceiver__jitter_buffer = Ear(self)
                await self.pc.setLocalDescription(await self.pc.createOffer())
                reply = await self.cmd("rtc_offer", sdp=self.pc.localDescription.sdp)
                await self.pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
                self.codec = tr._codecs[0].mimeType.lower() if tr._codecs else "?"
                if self.codec != "audio/pcmu":
                    raise RuntimeError(f"negotiated {self.codec}, expected audio/pcmu")
                await asyncio.wait_for(self.rtc_up.wait(), 30.0)
                if engine is not None:  # RTP in C from here on, like a real browser's
                    await asyncio.wait_for(_connected(self.pc), 10.0)
                    self.native = take_over(self.pc, tr, "pcmu")
                    engine.add(self)
                await self.cmd("set_state", state="ready")
                self.state = "ready"
                self.setup_s = time.monotonic() - t0

        async def _read(self) -> None:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if "id" in data and data["id"] in self._replies:
                    self._replies.pop(data["id"]).set_result(data)
                    continue
                kind = data.get("type")
                if kind == "rtc" and data.get("state") == "connected":
                    self.rtc_up.set()
                elif kind == "phone":
                    st = data.get("state")
                    if st == "ringing" and self.state == "ready":
                        self.state = "answering"
                        self.peer = str(data.get("peer") or "")
                        self.tasks.append(loop.create_task(self._answer()))
                    elif st == "talking" and self.state in ("answering", "answered"):
                        self.state = "talking"
                        self.t_talking = time.monotonic()
                    elif st == "idle" and self.state == "talking":
                        self.state = "ended"

        async def _answer(self) -> None:
            self.t_answer = time.monotonic()
            try:
                await self.cmd("phone_answer")
            except Exception as exc:  # noqa: BLE001 - counted, not fatal
                self.error = f"answer: {exc}"[:200]
                self.state = "failed"
                return
            self.t_reply = time.monotonic()
            if self.state == "answering":
                self.state = "answered"

        async def stop(self) -> None:
            try:
                if self.state in ("talking", "answered") and self.ws is not None:
                    await self.cmd("phone_hangup", timeout=5.0)
            except Exception:  # noqa: BLE001 - the caller's BYE may have won
                pass
            try:
                if self.ws is not None and not self.ws.closed:
                    await self.cmd("set_state", state="logged_out", timeout=5.0)
            except Exception:  # noqa: BLE001
                pass
            if self.pc is not None:
                await self.pc.close()
            if self.ws is not None:
                await self.ws.close()
            if self.http is not None:
                with contextlib.suppress(Exception):
                    await self.http.post(base + "/api/logout")
                await self.http.close()
            for t in self.tasks:
                t.cancel()

    async def _connected(pc: Any) -> None:
        while pc.connectionState != "connected":
            await asyncio.sleep(0.02)

    phones = [Phone(i, login) for i, login in zip(cfg["indexes"], cfg["logins"], strict=True)]
    engine: BrowserEngine | None = None
    if cfg.get("rtp", "native") == "native":
        from media.webrtc_native import take_over
        engine = BrowserEngine(len(phones), loop)
        engine.start()
    pacer_task = loop.create_task(pacer.run())
    gate = asyncio.Semaphore(cfg["concurrency"])
    t0 = time.monotonic()
    results = await asyncio.gather(*(p.start(gate) for p in phones), return_exceptions=True)
    errors: Counter[str] = Counter()
    for p, r in zip(phones, results, strict=True):
        if isinstance(r, BaseException):
            p.state = "failed"
            p.error = f"{type(r).__name__}: {r}"[:200]
            errors[p.error[:120]] += 1
    setup = [p.setup_s for p in phones if p.state == "ready"]
    _say({"ready": len(setup), "failed": len(phones) - len(setup),
          "errors": [f"{n}x {e}" for e, n in errors.most_common(3)],
          "setup_p50": pct(setup, 50), "setup_max": max(setup, default=0.0),
          "wall": time.monotonic() - t0})

    # lag of this process's loop (the browsers' time stamps include it)
    lags: list[float] = []

    async def lag_probe() -> None:
        while True:
            due = loop.time() + 0.01
            await asyncio.sleep(0.01)
            if pacer.measure:
                lags.append(loop.time() - due)

    probe = loop.create_task(lag_probe())
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        msg = json.loads(line)
        if msg["cmd"] == "status":
            states = Counter(p.state for p in phones)
            _say({"states": dict(states), "rx": sum(p.rx for p in phones)})
        elif msg["cmd"] == "measure":
            pacer.measure = bool(msg["on"])
            if engine is not None:
                engine.measure = pacer.measure
            _say({"ok": True})
        elif msg["cmd"] == "report":
            lo, hi = msg["t0"] - 1.0, msg["t1"] + 1.0
            _say({"phones": [{
                "login": p.login, "peer": p.peer, "state": p.state, "error": p.error,
                "t_answer": p.t_answer, "t_audio": p.t_audio, "t_talking": p.t_talking,
                "t_reply": p.t_reply,
                "rx": p.rx,
                "marks": [t for t in p.marks if lo <= t <= hi],
                "onsets": [t for t in p.onsets if lo <= t <= hi]} for p in phones],
                "lag_p99_ms": 1e3 * pct(lags, 99), "lag_max_ms": 1e3 * max(lags, default=0.0),
                "mic_lag_p99_ms": pct(engine.lateness if engine is not None
                                      else [1e3 * x for x in pacer.lags], 99)})
        elif msg["cmd"] == "stop":
            closing = asyncio.Semaphore(20)

            async def one(p: Phone, closing: asyncio.Semaphore = closing) -> None:
                async with closing:
                    await asyncio.wait_for(p.stop(), 15.0)

            if engine is not None:
                engine.stop()
            await asyncio.gather(*(one(p) for p in phones), return_exceptions=True)
            probe.cancel()
            pacer_task.cancel()
            _say({"stopped": True})
            break


class BrowserEngine(threading.Thread):
    """The stand-in browsers' RTP once connected, in C like a real browser's: one
    :class:`cext.net.NetIO` over every phone's ICE socket (taken from aiortc with
    ``media.webrtc_native.take_over``, as the server does), SRTP by libsrtp in C both
    ways, microphones sent in ``MIC_PHASES`` groups per 20 ms, arrivals time stamped by
    the kernel's recvmmsg. STUN/DTLS/SRTCP go back to each phone's aioice protocol on the
    loop. Without it, aiortc's per-packet Python in the browsers took about as much CPU
    as the server (benchmarks/README.md), which capped what one box could drive."""

    def __init__(self, cap: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(name="browser-rtp", daemon=True)
        from cext.net import NetIO, RecvBatch
        from media.native_srtp import install_srtp_functions

        install_srtp_functions()
        self.net = NetIO(cap)
        self.rb = RecvBatch(max(1024, 4 * cap), 1500)
        self.loop = loop
        self.phones: list[Any] = []
        self.adding: list[Any] = []
        self.lock = threading.Lock()
        self.measure = False
        self.lateness: list[float] = []
        self.running = True
        self.pkts = np.zeros((cap, 12 + FRAME + 148), np.uint8)
        self.pkts[:, 0] = 0x80
        self.armed = np.ones(cap, bool)
        self.seq0 = np.zeros(cap, np.int64)  # continue aiortc's stream (SRTP replay window)
        self.ts0 = np.zeros(cap, np.int64)
        self.period = 0

    def add(self, phone: Any) -> None:
        with self.lock:
            self.adding.append(phone)

    def stop(self) -> None:
        self.running = False
        self.join(timeout=5)

    def _attach(self) -> None:
        with self.lock:
            adding, self.adding = self.adding, []
        from cext.net import set_remote_addr
        for ph in adding:
            nat, slot = ph.native, len(self.phones)
            self.net.add(slot, nat.fd)
            set_remote_addr(self.net, slot, *nat.remote)
            self.net.latch[slot] = 1
            self.net.send_enabled[slot] = 1
            self.net.set_srtp(slot, nat.tx_ptr, nat.rx_ptr)
            self.pkts[slot, 1] = nat.pt
            self.pkts[slot, 8:12] = np.frombuffer(nat.ssrc.to_bytes(4, "big"), np.uint8)
            if nat.next_seq is not None:
                self.seq0[slot] = nat.next_seq - self.period
                self.ts0[slot] = nat.next_ts - self.period * FRAME
            self.phones.append(ph)

    def _drain(self, until_ms: float) -> None:
        from cext.net import monotonic_ms
        rb, net = self.rb, self.net
        while True:
            k = rb.poll(net, until_ms)
            if k:
                p = rb.packets[:k]
                ok = (((p[:, 0] >> 6) == 2) & (rb.lengths[:k] >= 12 + FRAME))
                # Chromium-like senders may add header extensions: payload = the last 160
                ends = rb.lengths[:k]
                idx = (ends[:, None] - FRAME + np.arange(FRAME)[None, :]).clip(0, 1499)
                mags = MAG[np.take_along_axis(p, idx, axis=1)].max(axis=1)
                for slot, mag, t, good in zip(rb.slots[:k].tolist(), mags.tolist(),
                                              rb.arrival_ms[:k].tolist(), ok.tolist(),
                                              strict=True):
                    if not good:
                        continue
                    ph = self.phones[slot]
                    ph.rx += 1
                    now = t / 1000.0
                    if ph.t_answer is not None and ph.t_audio is None and mag >= AUDIBLE:
                        ph.t_audio = now
                    if mag >= LOUD:
                        if self.armed[slot]:
                            ph.onsets.append(now)
                            self.armed[slot] = False
                    elif mag < QUIET:
                        self.armed[slot] = True
            if net.foreign_count:
                items = [(self.phones[s].native.protocol, d, (h, pt))
                         for s, d, h, pt in net.take_foreign()]
                from media.webrtc_native import deliver_datagrams
                with contextlib.suppress(RuntimeError):
                    self.loop.call_soon_threadsafe(deliver_datagrams, items)
            if monotonic_ms() >= until_ms:
                return

    def run(self) -> None:
        try:
            self._run()
        except BaseException:  # a dead engine must end the run, not lose markers quietly
            import traceback
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(3)

    def _run(self) -> None:
        from cext.net import monotonic_ms
        deadline = monotonic_ms() + 20.0
        quiet = np.frombuffer(BROWSER_QUIET, np.uint8)
        mark = np.frombuffer(BROWSER_MARK, np.uint8)
        while self.running:
            if self.adding:
                self._attach()
            n = len(self.phones)
            idx_all = np.arange(n, dtype=np.int32)
            index = np.array([ph.index for ph in self.phones], np.int64)
            period = self.period
            is_mark = (period + index * 7) % MARK_EVERY == 0
            seq = (period + self.seq0[:n]) & 0xFFFF
            ts = (period * FRAME + self.ts0[:n]) & 0xFFFFFFFF
            pk = self.pkts
            pk[:n, 2] = seq >> 8
            pk[:n, 3] = seq & 0xFF
            pk[:n, 4:8] = ts.astype(">u4").view(np.uint8).reshape(n, 4)
            pk[:n, 12:12 + FRAME] = quiet
            pk[:n][is_mark, 12:12 + FRAME] = mark
            for g in range(MIC_PHASES):
                at = deadline + g * PTIME_S * 1000.0 / MIC_PHASES
                self._drain(at)
                sel = idx_all[(index % MIC_PHASES) == g]
                if not len(sel):
                    continue
                t = monotonic_ms()
                if self.measure:
                    self.lateness.append(t - at)
                rows = np.ascontiguousarray(pk[sel])
                self.net.send_srtp(rows, np.full(len(sel), 12 + FRAME, np.int32), sel, len(sel))
                for s in sel[is_mark[sel]].tolist():
                    self.phones[s].marks.append(t / 1000.0)
            self.period += 1
            deadline += PTIME_S * 1000.0
            if monotonic_ms() - deadline > 100.0:  # stalled: resync rather than burst
                deadline = monotonic_ms() + PTIME_S * 1000.0


def _say(msg: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


# == the SIP callers (a load process) ==========================================================
@dataclass
class UacCall:
    index: int
    call_id: str
    tag: str
    branch: str
    state: str = "idle"  # inviting, up, failed, ended, byeing
    invite: bytes = b""
    sent_at: float = 0.0
    retry: float = 0.5
    to_header: str = ""
    remote_uri: str = ""
    bye: bytes = b""
    t_200: float | None = None


def callers_main(cfg: dict[str, Any]) -> None:
    from cext.net import NetIO, RecvBatch, ip_to_be, monotonic_ms
    from sip.message import SipRequest, SipResponse, make_response, parse_message

    n = cfg["calls"]
    server = ("127.0.0.1", cfg["sip"])
    sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sip.bind((CALLER_IP, 0))
    sip.setblocking(False)
    sip.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    lport = sip.getsockname()[1]
    net = NetIO(n)
    socks, ports = [], []
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((CALLER_IP, 0))
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
        socks.append(s)
        ports.append(s.getsockname()[1])
        net.add(i, s.fileno())
    net.send_enabled[:] = 0
    pkts = np.zeros((n, 12 + FRAME), np.uint8)
    pkts[:, 0] = 0x80
    pkts[:, 1] = 0  # PCMU
    pkts[:, 8:12] = np.arange(0x10000, 0x10000 + n, dtype=">u4").view(np.uint8).reshape(n, 4)
    quiet = np.frombuffer(CALLER_QUIET, np.uint8)
    mark = np.frombuffer(CALLER_MARK, np.uint8)
    lengths = np.full(n, 12 + FRAME, np.int32)
    slot_ids = np.arange(n, dtype=np.int32)
    group = slot_ids % PHASES
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(PHASES + 1))
    offset = (slot_ids * 7) % MARK_EVERY
    rb = RecvBatch(max(1024, 4 * n), 12 + FRAME + 64)
    marks: list[list[float]] = [[] for _ in range(n)]
    onsets: list[list[float]] = [[] for _ in range(n)]
    armed = np.ones(n, bool)
    rx = np.zeros(n, np.int64)
    lateness: list[float] = []
    measure = False

    calls = [UacCall(i, f"bench-{os.getpid()}-{i}@{CALLER_IP}", f"t{i:x}{os.getpid():x}",
                     f"z9hG4bKinv{i}x{os.getpid()}") for i in range(n)]
    by_cid = {c.call_id: c for c in calls}

    def sdp(i: int) -> bytes:
        return (f"v=0\r\no=- {1000 + i} 1 IN IP4 {CALLER_IP}\r\ns=bench\r\n"
                f"c=IN IP4 {CALLER_IP}\r\nt=0 0\r\nm=audio {ports[i]} RTP/AVP 0 101\r\n"
                "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
                "a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n").encode()

    def from_hdr(c: UacCall) -> str:
        return f'"Caller {c.index}" <sip:{CALLER_BASE + c.index}@{CALLER_IP}>;tag={c.tag}'

    def invite(c: UacCall) -> bytes:
        body = sdp(c.index)
        return (f"INVITE sip:{SERVICE}@{server[0]}:{server[1]} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {CALLER_IP}:{lport};branch={c.branch};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: {from_hdr(c)}\r\n"
                f"To: <sip:{SERVICE}@{server[0]}:{server[1]}>\r\n"
                f"Call-ID: {c.call_id}\r\nCSeq: 1 INVITE\r\n"
                f"Contact: <sip:{CALLER_BASE + c.index}@{CALLER_IP}:{lport}>\r\n"
                "User-Agent: hotline-bench\r\nContent-Type: application/sdp\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    def in_dialog(c: UacCall, method: str, cseq: int, branch: str) -> bytes:
        return (f"{method} {c.remote_uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {CALLER_IP}:{lport};branch={branch};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: {from_hdr(c)}\r\nTo: {c.to_header}\r\n"
                f"Call-ID: {c.call_id}\r\nCSeq: {cseq} {method}\r\n"
                "Content-Length: 0\r\n\r\n").encode()

    def handle_sip(data: bytes, addr: tuple[str, int], now: float) -> None:
        try:
            msg = parse_message(data)
        except Exception:  # noqa: BLE001 - not ours to judge
            return
        c = by_cid.get(msg.get("call-id") or "")
        if isinstance(msg, SipResponse):
            if c is None:
                return
            method = (msg.get("cseq") or " ").split()[-1]
            if method == "INVITE":
                if msg.status < 200:
                    c.retry = 1e9  # provisional: stop retransmitting
                    return
                to = msg.get("to") or ""
                if msg.status >= 300:
                    ack = (f"ACK sip:{SERVICE}@{server[0]}:{server[1]} SIP/2.0\r\n"
                           f"Via: SIP/2.0/UDP {CALLER_IP}:{lport};branch={c.branch};rport\r\n"
                           f"Max-Forwards: 70\r\nFrom: {from_hdr(c)}\r\nTo: {to}\r\n"
                           f"Call-ID: {c.call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
                    sip.sendto(ack.encode(), addr)
                    if c.state == "inviting":
                        c.state = "failed"
                    return
                c.to_header = to
                contacts = msg.contacts
                c.remote_uri = str(contacts[0].uri) if contacts else \
                    f"sip:{SERVICE}@{server[0]}:{server[1]}"
                sip.sendto(in_dialog(c, "ACK", 1, f"z9hG4bKack{c.index}x{int(now * 1e3)}"),
                           addr)
                if c.state != "inviting":
                    return  # a retransmitted 200
                text = msg.body.decode(errors="replace")
                ip = re.search(r"^c=IN IP4 (\S+)", text, re.M)
                port = re.search(r"^m=audio (\d+)", text, re.M)
                if ip is None or port is None:
                    c.state = "failed"
                    return
                net.set_remote(c.index, ip_to_be(ip.group(1)), int(port.group(1)))
                net.send_enabled[c.index] = 1
                c.state = "up"
                c.t_200 = now
            elif method == "BYE" and c.state == "byeing" and msg.status >= 200:
                c.state = "ended"
            return
        assert isinstance(msg, SipRequest)
        if msg.method == "ACK":
            return
        headers: tuple[tuple[str, str], ...] = ()
        body = b""
        if msg.method == "INVITE" and c is not None:  # a re-INVITE: same media
            body = sdp(c.index)
            headers = (("Contact", f"<sip:{CALLER_BASE + c.index}@{CALLER_IP}:{lport}>"),
                       ("Content-Type", "application/sdp"))
        status = 200 if c is not None or msg.method == "OPTIONS" else 481
        resp = make_response(msg, status, headers=headers, body=body)
        sip.sendto(bytes(resp), addr)
        if msg.method == "BYE" and c is not None and c.state in ("up", "byeing"):
            c.state = "ended"
            net.send_enabled[c.index] = 0

    def drain(until: float) -> None:
        while True:
            k = rb.poll(net, until)
            if k:
                p = rb.packets[:k]
                ok = (((p[:, 0] >> 6) == 2) & ((p[:, 1] & 0x7F) == 0)
                      & (rb.lengths[:k] >= 12 + FRAME))
                mags = MAG[p[:, 12:12 + FRAME]].max(axis=1)
                for slot, mag, t, good in zip(rb.slots[:k].tolist(), mags.tolist(),
                                              rb.arrival_ms[:k].tolist(), ok.tolist(),
                                              strict=True):
                    if not good:
                        continue
                    rx[slot] += 1
                    if mag >= LOUD:
                        if armed[slot]:
                            onsets[slot].append(t / 1000.0)
                            armed[slot] = False
                    elif mag < QUIET:
                        armed[slot] = True
            while True:
                try:
                    data, addr = sip.recvfrom(65535)
                except BlockingIOError:
                    break
                handle_sip(data, addr, time.monotonic())
            if monotonic_ms() >= until:
                return

    start = time.monotonic()
    started = 0
    period = 0
    deadline = monotonic_ms() + 20.0
    stopping: float | None = None
    _say({"ready": True, "ports": [ports[0], ports[-1]]})
    while True:
        # new calls at the configured rate; INVITE retransmissions (RFC 3261 timer A)
        now = time.monotonic()
        due = min(n, int((now - start) * cfg["cps"]) + 1) if stopping is None else started
        while started < due:
            c = calls[started]
            c.invite = invite(c)
            c.state, c.sent_at, c.retry = "inviting", now, 0.5
            sip.sendto(c.invite, server)
            started += 1
        for c in calls[:started]:
            if c.state == "inviting" and now - c.sent_at >= c.retry:
                if c.retry > 16:
                    c.state = "failed"
                    continue
                sip.sendto(c.invite, server)
                c.sent_at, c.retry = now, c.retry * 2
            elif c.state == "byeing" and now - c.sent_at >= c.retry:
                if c.retry > 4:
                    c.state = "ended"
                    continue
                sip.sendto(c.bye, server)
                c.sent_at, c.retry = now, c.retry * 2
        # this period's RTP: header, marker or quiet payload, 20 phases 1 ms apart
        seq = period & 0xFFFF
        pkts[:, 2] = seq >> 8
        pkts[:, 3] = seq & 0xFF
        pkts[:, 4:8] = np.frombuffer(np.array([period * FRAME], ">u4").tobytes(), np.uint8)
        is_mark = (period + offset) % MARK_EVERY == 0
        pkts[:, 12:] = quiet
        pkts[is_mark, 12:] = mark
        sendable = net.send_enabled.astype(bool)
        for g in range(PHASES):
            at = deadline + g * PTIME_S * 1000.0 / PHASES
            drain(at)
            idx = order[bounds[g]:bounds[g + 1]]
            if not len(idx):
                continue
            t = monotonic_ms()
            if measure:
                lateness.append(t - at)
            net.send(np.ascontiguousarray(pkts[idx]), lengths[idx], slot_ids[idx].copy(),
                     len(idx))
            for s in idx[is_mark[idx] & sendable[idx]].tolist():
                marks[s].append(t / 1000.0)
        period += 1
        deadline += PTIME_S * 1000.0
        if monotonic_ms() - deadline > 100.0:  # stalled: resync rather than burst
            deadline = monotonic_ms() + PTIME_S * 1000.0
        # the coordinator's commands
        if select.select([sys.stdin], [], [], 0)[0]:
            line = sys.stdin.readline()
            if not line:
                break
            msg = json.loads(line)
            if msg["cmd"] == "status":
                _say({"states": dict(Counter(c.state for c in calls)), "rx": int(rx.sum())})
            elif msg["cmd"] == "measure":
                measure = bool(msg["on"])
                _say({"ok": True})
            elif msg["cmd"] == "report":
                lo, hi = msg["t0"] - 1.0, msg["t1"] + 1.0
                _say({"calls": [{
                    "number": str(CALLER_BASE + c.index), "state": c.state,
                    "rx": int(rx[c.index]),
                    "marks": [t for t in marks[c.index] if lo <= t <= hi],
                    "onsets": [t for t in onsets[c.index] if lo <= t <= hi]} for c in calls],
                    "lateness_p99_ms": pct(lateness, 99),
                    "lateness_max_ms": max(lateness, default=0.0)})
            elif msg["cmd"] == "stop":
                stopping = time.monotonic()
                for c in calls:
                    if c.state == "up":
                        c.bye = in_dialog(c, "BYE", 2, f"z9hG4bKbye{c.index}x{os.getpid()}")
                        c.state, c.sent_at, c.retry = "byeing", time.monotonic(), 0.5
                        net.send_enabled[c.index] = 0
                        sip.sendto(c.bye, server)
                    elif c.state == "inviting":
                        c.state = "failed"
        if stopping is not None and (all(c.state != "byeing" for c in calls)
                                     or time.monotonic() - stopping > 8.0):
            _say({"stopped": dict(Counter(c.state for c in calls))})
            break
    for s in socks:
        s.close()
    sip.close()


# == the coordinator ===========================================================================
class Child:
    """A load process speaking JSON lines on stdin/stdout."""

    def __init__(self, role: str, cfg: dict[str, Any], tmp: Path, name: str) -> None:
        path = tmp / f"{name}.json"
        path.write_text(json.dumps(cfg))
        self.name = name
        self.err_path = tmp / f"{name}.err"
        self._err = open(self.err_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--role", role, str(path)], cwd=str(ROOT),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err)
        self._buf = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, **msg: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        self.proc.stdin.flush()

    def recv(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no answer in {timeout:g} s")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"{self.name} exited: {self.stderr_tail()}")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        msg: dict[str, Any] = json.loads(line)
        return msg

    def request(self, timeout: float = 30.0, **msg: Any) -> dict[str, Any]:
        self.send(**msg)
        return self.recv(timeout)

    def stderr_tail(self) -> str:
        try:
            return self.err_path.read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._err.close()


def pair(sent: list[float], arrived: list[float], t0: float, t1: float) -> tuple[list[float], int]:
    """Latencies (ms) of the markers sent in [t0, t1 - MATCH_S], each matched to the first
    arrival within MATCH_S after it; and how many found none (lost)."""
    arr = np.asarray(sorted(arrived))
    lat, lost = [], 0
    for s in sent:
        if not t0 <= s <= t1 - MATCH_S:
            continue
        j = int(np.searchsorted(arr, s))
        if j < len(arr) and arr[j] - s < MATCH_S:
            lat.append(1e3 * (arr[j] - s))
        else:
            lost += 1
    return lat, lost


@dataclass
class Row:
    legs: int
    ready: int = 0
    setup_s: float = 0.0
    answered: int = 0
    """Browsers talking when the window opened."""
    caller_up: int = 0
    a2a: list[float] = field(default_factory=list)
    c2b: list[float] = field(default_factory=list)
    b2c: list[float] = field(default_factory=list)
    lost_c2b: int = 0
    lost_b2c: int = 0
    sent_c2b: int = 0
    sent_b2c: int = 0
    cpu: Cpu | None = None
    idle_cpu: Cpu | None = None
    base_cpu: Cpu | None = None
    """The server alone (no browser, no call): subtracted from the per-leg figures."""
    browser_lag: float = float("nan")
    caller_lag: float = float("nan")
    unpaired: int = 0
    failed_calls: int = 0
    notes: list[str] = field(default_factory=list)
    profile: dict[str, list[str]] = field(default_factory=dict)
    per_worker: list[float] = field(default_factory=list)
    """CPU % of one core of each media worker over the window."""
    answer_reply: list[float] = field(default_factory=list)
    """phone_answer sent -> its reply (the gateway answered: endpoint, room, 200 sent)."""

    def late(self, late_ms: float) -> int:
        return sum(1 for x in self.c2b + self.b2c if x > late_ms)

    def clean(self, late_ms: float) -> bool:
        return (self.answered == self.legs and not self.lost_c2b and not self.lost_b2c
                and self.late(late_ms) == 0 and bool(self.c2b) and bool(self.b2c))


def pyspy_bin() -> str | None:
    for cand in (shutil.which("py-spy"), "/tmp/pyspy/bin/py-spy"):
        if cand and Path(cand).is_file():
            return cand
    return None


CATEGORIES = (
    ("pylibsrtp/", "SRTP (pylibsrtp)"),
    ("aioice/", "ICE/UDP (aioice)"),
    ("aiortc/", "aiortc RTP/RTCP/DTLS"),
    ("av/", "PyAV"),
    ("asyncio/runners.py", "uvloop internals (C: I/O, callbacks)"),
    ("asyncio/", "asyncio (tasks, futures, queues)"),
    ("media/webrtc.py", "media/webrtc.py (our track, tap)"),
    ("cext/", "cext (kernels, epoll/recvmmsg/sendmmsg)"),
    ("media/", "media worker (Python)"),
    ("aiohttp/", "aiohttp (HTTP, WebSocket)"),
)


def profile_summary(raw: Path, seconds: float, rate: int, k: int = 8) -> list[str]:
    """Lines summarising py-spy's raw (collapsed) output of ``--gil`` sampling (only the
    thread that holds the GIL is sampled: Python and the C it calls without releasing
    the GIL; epoll waits and the tick kernel, which run without it, are not): samples
    per thread and, for the two busiest threads, by package of the innermost frame and
    the functions with the most self time. (Without ``--gil`` py-spy counts threads
    waiting in epoll inside uvloop or ``NetIO.poll`` as busy.) The /proc split
    (loop/tick columns) is the CPU time."""
    self_t: dict[str, Counter[str]] = defaultdict(Counter)
    cats: dict[str, Counter[str]] = defaultdict(Counter)
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        thread = re.sub(r"^thread \(\d+\): ", "", frames[0])
        threads[thread] += n
        leaf = re.sub(r":\d+\)$", ")", frames[-1])  # merge the lines of one function
        self_t[thread][leaf] += n
        path = leaf[leaf.rfind("(") + 1:]
        cats[thread][next((name for key, name in CATEGORIES if key in path), "other")] += n
    if not total:
        return ["(no samples)"]
    out = [f"{total} GIL-held samples ({rate}/s over {seconds:.0f} s: the GIL was held "
           f"{100.0 * total / (rate * seconds):.0f} % of the time); by thread (%): " + ", ".join(
        f"{t} {100.0 * c / total:.0f}" for t, c in threads.most_common(4))]
    for thread, busy in threads.most_common(2):
        out.append(f"{thread}, by package (% of the thread's samples): " + ", ".join(
            f"{name} {100.0 * c / busy:.0f}" for name, c in cats[thread].most_common(8)))
        out += [f"  {100.0 * c / busy:5.1f}  {f[:130]}"
                for f, c in self_t[thread].most_common(k)]
    return out


def run_legs(n: int, args: argparse.Namespace, budget_end: float) -> Row:
    row = Row(n)
    tmp = Path(tempfile.mkdtemp(prefix="hotline-webrtc-"))
    data = tmp / "data"
    sip_port, http_port = free_port(), free_port()
    ids = [str(FIRST_AGENT + i) for i in range(n)]
    site = SITE.format(sip=sip_port, http=http_port, workers=args.workers, data=data,
                       trunk_port=free_port(), caller_ip=CALLER_IP, queue=QUEUE,
                       members=", ".join(f'"{i}"' for i in ids), service=SERVICE)
    site += "".join(AGENT.format(id=i, password=PASSWORD.format(id=i)) for i in ids)
    (tmp / "site.toml").write_text(site)
    data.mkdir()
    log_path = data / "hotline.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "hotline", "serve", "--config", str(tmp / "site.toml"),
         "--grace", "3"], cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1",
             "HOTLINE_WEBRTC_NATIVE": "1" if args.server_rtp == "native" else "0"})
    browsers: list[Child] = []
    callers: Child | None = None
    spies: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    try:
        wait_listening(http_port, 60.0)
        workers = [p for p in children(server.pid) if is_worker(p)]
        time.sleep(1.0)  # the idle server: workers ticking, no leg
        c0 = sample(server.pid, workers, [], None)
        time.sleep(3.0)
        row.base_cpu = sample(server.pid, workers, [], None) - c0
        procs = max(1, min(args.browser_procs, n))
        for k in range(procs):
            idx = list(range(k, n, procs))
            browsers.append(Child("browsers", {
                "http": http_port, "logins": [ids[i] for i in idx], "indexes": idx,
                "concurrency": args.setup_concurrency, "rtp": args.browser_rtp},
                tmp, f"browsers{k}"))
        t_setup = time.monotonic()
        ready = [b.recv(30.0 + 1.0 * n) for b in browsers]
        row.setup_s = time.monotonic() - t_setup
        row.ready = sum(r["ready"] for r in ready)
        for r in ready:
            if r["failed"]:
                row.notes.append(f"browser setup failed: {r['failed']} ({'; '.join(r['errors'])})")
        print(f"#   {n} legs: {row.ready} browsers ready in {row.setup_s:.1f} s "
              f"(per browser p50 {max(r['setup_p50'] for r in ready):.2f} s)", flush=True)
        bpids = [b.pid for b in browsers]
        # idle: connected browsers, no call
        time.sleep(2.0)
        c0 = sample(server.pid, workers, bpids, None)
        time.sleep(args.idle_seconds)
        row.idle_cpu = sample(server.pid, workers, bpids, None) - c0
        # calls
        callers = Child("callers", {"sip": sip_port, "calls": n, "cps": args.cps}, tmp,
                        "callers")
        callers.recv(20.0)
        limit = time.monotonic() + n / args.cps + 30.0
        while True:
            time.sleep(1.0)
            talking = sum(b.request(cmd="status")["states"].get("talking", 0)
                          for b in browsers)
            cs = callers.request(cmd="status")["states"]
            if talking >= row.ready or time.monotonic() > limit:
                break
            if cs.get("failed", 0) + talking >= n:
                break
        row.answered = talking
        row.caller_up = cs.get("up", 0)
        row.failed_calls = cs.get("failed", 0)
        print(f"#   {n} legs: {talking} browsers talking, callers {cs}", flush=True)
        time.sleep(2.0)  # jitter buffers settle
        for ch in [*browsers, callers]:
            ch.request(cmd="measure", on=True)
        seconds = max(3.0, min(args.seconds, budget_end - time.monotonic() - 20.0))
        spy = pyspy_bin() if args.profile else None
        if spy is not None:
            out = Path(args.profile)
            out.mkdir(parents=True, exist_ok=True)
            for name, pid in [("control", server.pid)] + [
                    (f"worker{i}", p) for i, p in enumerate(workers)]:
                raw = out / f"{n}legs-{name}.txt"
                spies.append((name, subprocess.Popen(
                    [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                     "--rate", str(PYSPY_RATE), "--format", "raw", "--nonblocking", "--threads",
                     "--gil",
                     "--output", str(raw)], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL), raw))
        w0 = [proc_cpu(w) for w in workers]
        s0 = sample(server.pid, workers, bpids, callers.pid)
        time.sleep(seconds)
        s1 = sample(server.pid, workers, bpids, callers.pid)
        row.cpu = s1 - s0
        row.per_worker = [100.0 * (proc_cpu(w) - c) / row.cpu.t
                          for w, c in zip(workers, w0, strict=True)]
        for ch in [*browsers, callers]:
            ch.request(cmd="measure", on=False)
        t0, t1 = s0.t, s1.t
        breps = [b.request(cmd="report", t0=t0, t1=t1) for b in browsers]
        crep = callers.request(cmd="report", t0=t0, t1=t1)
        row.browser_lag = max(r["lag_p99_ms"] for r in breps)
        row.caller_lag = crep["lateness_p99_ms"]
        by_number = {c["number"]: c for c in crep["calls"]}
        for r in breps:
            for p in r["phones"]:
                if p["t_answer"] is not None and p["t_audio"] is not None:
                    row.a2a.append(1e3 * (p["t_audio"] - p["t_answer"]))
                if p["t_answer"] is not None and p["t_reply"] is not None:
                    row.answer_reply.append(1e3 * (p["t_reply"] - p["t_answer"]))
                c = by_number.get(p["peer"])
                if p["state"] != "talking":
                    continue
                if c is None:
                    row.unpaired += 1
                    continue
                lat, lost = pair(c["marks"], p["onsets"], t0, t1)
                row.c2b += lat
                row.lost_c2b += lost
                row.sent_c2b += len(lat) + lost
                lat, lost = pair(p["marks"], c["onsets"], t0, t1)
                row.b2c += lat
                row.lost_b2c += lost
                row.sent_b2c += len(lat) + lost
        if row.unpaired:
            row.notes.append(f"{row.unpaired} talking browsers whose peer is no caller")
        for name, proc, raw in spies:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            if raw.is_file():
                row.profile[name] = profile_summary(raw, seconds, PYSPY_RATE)
        # hang up (callers' BYE), log out, stop the server
        ended = callers.request(20.0, cmd="stop")["stopped"]
        if set(ended) - {"ended"}:
            row.notes.append(f"callers at the end: {ended}")
        time.sleep(1.0)
        for b in browsers:
            b.send(cmd="stop")
        for b in browsers:
            with contextlib.suppress(Exception):
                b.recv(60.0)
    except (TimeoutError, RuntimeError, OSError) as exc:
        row.notes.append(f"aborted: {exc}")
        for ch in [*browsers, *([callers] if callers else [])]:
            tail = ch.stderr_tail().strip().splitlines()[-3:]
            if tail:
                row.notes.append(f"{ch.name}: " + " | ".join(tail))
    finally:
        for _, proc, _ in spies:
            if proc.poll() is None:
                proc.kill()
        for ch in [*browsers, *([callers] if callers else [])]:
            ch.close()
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)
        log.close()
        recs = recordings(data / "hotline.db")
        if recs != {"done": n}:
            row.notes.append(f"recordings by state: {recs} (expected {n} done)")
        problems = log_problems(log_path)
        if problems:
            row.notes.append("server warnings/errors: " + "; ".join(problems))
        if args.keep:
            print(f"#   kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return row


def recordings(db: Path) -> dict[str, int]:
    """The server's recordings by state (each call is recorded: one per call)."""
    import sqlite3
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return {str(k): int(v) for k, v in con.execute(
                "SELECT state, COUNT(*) FROM recordings GROUP BY 1")}
        finally:
            con.close()
    except sqlite3.Error as exc:
        return {f"unreadable: {exc}": 0}


def log_problems(path: Path) -> list[str]:
    events: Counter[str] = Counter()
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        if "level=warning" in line or "level=error" in line or "Traceback" in line \
                or " ERROR " in line or " WARNING " in line:
            m = re.search(r"event=(\"[^\"]*\"|\S+)", line)
            events[m.group(1) if m else line[:100]] += 1
    return [f"{n}x {e}" for e, n in events.most_common(5)]


def fmt(x: float, digits: int = 1) -> str:
    return "-" if x != x else f"{x:.{digits}f}"


def print_header() -> None:
    print(f"{'legs':>5} {'ready':>5} {'talking':>7} {'a2a p50':>8} {'a2a p99':>8} "
          f"{'c->b p50':>8} {'c->b p99':>8} {'b->c p50':>8} {'b->c p99':>8} "
          f"{'lost':>5} {'late':>5} {'idle ms/leg-s':>13} {'ms/leg-s':>8} {'srv %':>6} "
          f"{'loop %':>6} {'tick %':>6} {'ctl %':>6} {'cap legs':>8} {'brw %':>6} "
          f"{'clr %':>6} {'oth %':>6} {'lag p99':>8}", flush=True)


def print_row(r: Row, late_ms: float) -> None:
    cpu, idle = r.cpu, r.idle_cpu
    per = per_idle = cap = float("nan")
    shares: dict[str, float] = {}
    base = r.base_cpu.server / r.base_cpu.t if r.base_cpu is not None and r.base_cpu.t else 0.0
    if cpu is not None and cpu.t > 0:
        per = 1e3 * (cpu.server / cpu.t - base) / r.legs
        cap = (2000.0 - 1e3 * base) / per if per > 0 else float("nan")
        shares = {k: 100.0 * getattr(cpu, k) / cpu.t
                  for k in ("loop", "tick", "control", "browsers", "callers", "busy")}
        shares["server"] = 100.0 * cpu.server / cpu.t
        shares["other"] = shares["busy"] - shares["server"] - shares["browsers"] \
            - shares["callers"]
    if idle is not None and idle.t > 0:
        per_idle = 1e3 * (idle.server / idle.t - base) / r.legs
    s = shares.get
    lag = max(r.browser_lag, r.caller_lag)
    print(f"{r.legs:>5} {r.ready:>5} {r.answered:>7} {fmt(pct(r.a2a, 50)):>8} "
          f"{fmt(pct(r.a2a, 99)):>8} {fmt(pct(r.c2b, 50)):>8} {fmt(pct(r.c2b, 99)):>8} "
          f"{fmt(pct(r.b2c, 50)):>8} {fmt(pct(r.b2c, 99)):>8} "
          f"{r.lost_c2b + r.lost_b2c:>5} {r.late(late_ms):>5} {fmt(per_idle, 2):>13} "
          f"{fmt(per, 2):>8} {fmt(s('server', float('nan')), 0):>6} "
          f"{fmt(s('loop', float('nan')), 0):>6} {fmt(s('tick', float('nan')), 0):>6} "
          f"{fmt(s('control', float('nan')), 0):>6} {fmt(cap, 0):>8} "
          f"{fmt(s('browsers', float('nan')), 0):>6} {fmt(s('callers', float('nan')), 0):>6} "
          f"{fmt(s('other', float('nan')), 0):>6} {fmt(lag):>8}", flush=True)
    extra = [f"idle server (no leg) {100 * base:.1f} % of a core, subtracted in ms/leg-s",
             f"markers c->b {r.sent_c2b} (lost {r.lost_c2b}), b->c {r.sent_b2c} "
             f"(lost {r.lost_b2c}); c->b min/max {fmt(min(r.c2b, default=float('nan')))}/"
             f"{fmt(max(r.c2b, default=float('nan')))} ms, b->c "
             f"{fmt(min(r.b2c, default=float('nan')))}/"
             f"{fmt(max(r.b2c, default=float('nan')))} ms; answer-to-audio max "
             f"{fmt(max(r.a2a, default=float('nan')))} ms over {len(r.a2a)} answers (of "
             f"which phone_answer's reply p50 {fmt(pct(r.answer_reply, 50))}, p99 "
             f"{fmt(pct(r.answer_reply, 99))} ms); "
             f"browser loop lag p99 {fmt(r.browser_lag)} ms, caller send lateness p99 "
             f"{fmt(r.caller_lag)} ms"]
    if r.per_worker:
        extra.append("media workers' CPU % (the WebRTC legs' spread): "
                     + ", ".join(f"{x:.0f}" for x in r.per_worker))
    if cpu is not None and cpu.t > 0 and cpu.busy / cpu.t > 1.9:
        extra.append(f"the box was saturated ({100 * cpu.busy / cpu.t:.0f} % busy): the CPU "
                     "figures are what the server got, not what it needed")
    if r.failed_calls:
        extra.append(f"{r.failed_calls} SIP calls failed")
    for line in extra + r.notes:
        print(f"#     {line}", flush=True)
    for name, lines in r.profile.items():
        print(f"#     py-spy {name}:", flush=True)
        for line in lines:
            print(f"#       {line}", flush=True)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--role", choices=("browsers", "callers"), help=argparse.SUPPRESS)
    ap.add_argument("role_cfg", nargs="?", help=argparse.SUPPRESS)
    ap.add_argument("--legs", default="10,50,100,200",
                    help="numbers of concurrent browser agents in calls, one row each")
    ap.add_argument("--seconds", type=float, default=30.0,
                    help="measured window with all calls up, per row")
    ap.add_argument("--idle-seconds", type=float, default=5.0,
                    help="window with the browsers connected and no call")
    ap.add_argument("--cps", type=float, default=20.0, help="call setup rate")
    ap.add_argument("--workers", type=int, default=2, help="media workers (one per core)")
    ap.add_argument("--server-rtp", choices=("native", "aiortc"), default="native",
                    help="the server's WebRTC RTP: in the media kernel (the default) or "
                         "through aiortc (HOTLINE_WEBRTC_NATIVE=0), to compare the two")
    ap.add_argument("--browser-rtp", choices=("native", "aiortc"), default="native",
                    help="the stand-in browsers' RTP once connected: in C (NetIO + libsrtp, "
                         "like a real browser) or through aiortc's Python")
    ap.add_argument("--browser-procs", type=int, default=2,
                    help="processes the aiortc browsers are spread over")
    ap.add_argument("--setup-concurrency", type=int, default=8,
                    help="browsers of one process logging in and connecting at once")
    ap.add_argument("--late-ms", type=float, default=60.0,
                    help="a marker later than this counts as late")
    ap.add_argument("--row-budget", type=float, default=150.0,
                    help="seconds per row; the window shrinks to fit")
    ap.add_argument("--profile", metavar="DIR",
                    help="py-spy the control process and workers during each window")
    ap.add_argument("--keep", action="store_true", help="keep each row's temporary folder")
    ap.add_argument("--quick", action="store_true", help="a ~1 minute smoke run")
    args = ap.parse_args()
    if args.role == "browsers":
        browsers_main(json.loads(Path(args.role_cfg).read_text()))
        return 0
    if args.role == "callers":
        callers_main(json.loads(Path(args.role_cfg).read_text()))
        return 0
    if args.quick:
        args.legs, args.seconds, args.idle_seconds = "4,16", 8.0, 3.0
    legs = _ints(args.legs)
    cpu_model = next((ln.split(":", 1)[1].strip() for ln in
                      Path("/proc/cpuinfo").read_text().splitlines()
                      if ln.startswith("model name")), "?")
    print(f"# webrtc: N aiortc browsers (in {args.browser_procs} processes; their RTP "
          f"{'in C' if args.browser_rtp == 'native' else 'in aiortc'}) answer N SIP calls "
          f"(queue {QUEUE}, longest-idle, wrap-up 0) set up at {args.cps:g}/s; server "
          f"WebRTC RTP {'in the media kernel' if args.server_rtp == 'native' else 'in aiortc'}; "
          f"{args.workers} media workers, recording on (WAV); {os.cpu_count()} cores "
          f"({cpu_model}) shared with the load processes; {time.strftime('%Y-%m-%d')}")
    print("# a2a = answer-to-audio (phone_answer sent -> first caller audio at the browser); "
          "c->b / b->c = added one-way latency incl. loopback, caller -> browser and "
          f"browser -> caller, ms; lost = markers not arrived within {1e3 * MATCH_S:.0f} ms; "
          f"late = over {args.late_ms:g} ms")
    print("# CPU % of one core over the window with all calls up: srv = control + media "
          "workers (loop = workers' asyncio threads with aiortc, tick = their other "
          "threads); ms/leg-s = server CPU ms per WebRTC leg per second (idle: browsers "
          "connected, no call), above the idle server; cap legs = legs at 200 % (less the "
          "idle server); brw/clr = the load processes; "
          "oth = the rest of the machine's busy time (kernel work not charged to a process, "
          "other programs); lag p99 = the load processes' own scheduling delay (ms)")
    print_header()
    rows = []
    t_all = time.monotonic()
    for n in legs:
        row = run_legs(n, args, time.monotonic() + args.row_budget)
        rows.append(row)
        print_row(row, args.late_ms)
    clean = [r.legs for r in rows if r.clean(args.late_ms)]
    print(f"largest N with every call answered and 0 lost/late markers: "
          f"{max(clean) if clean else 'none of those tried'}"
          f"{' legs' if clean else ''}; total time {time.monotonic() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
