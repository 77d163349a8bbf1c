"""WebRtcEndpoint against a real aiortc RTCPeerConnection ("the browser") over loopback.

The browser stand-in is aiortc (Chromium comes with the browser-agent issue): it offers
with a microphone track, plays what it receives through aiortc's own receive path, and
its DTLS transport is instrumented to time stamp the plaintext RTP it sends and
receives. The server side is driven by :class:`FakeTick`, a thread that behaves like the
worker's tick thread: it pushes a frame every 20 ms and drains the inbound ring (polling
every millisecond, so a measured latency is when audio became *available* to the tick).

The helpers are also used by ``benchmarks/webrtc_leg.py``.
"""

from __future__ import annotations

import asyncio
import fractions
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket
from aiortc.sdp import SessionDescription

sys.path.insert(0, os.path.dirname(__file__))
from rtp_peer import dominant_freq  # noqa: E402

from cext.g711 import alaw_decode, ulaw_decode  # noqa: E402
from cext.jitter import JitterBuffer  # noqa: E402
from media.webrtc import FRAME, RESAMPLER_PRIME, WebRtcEndpoint, WebRtcError  # noqa: E402

BURST_AMP = 16000.0
BURST_RMS = 2000.0
QUIET_RMS = 500.0
TIMEOUT = 30.0


def tone(freq: float, n: int, rate: int = 8000, amp: float = 8000.0,
         start: int = 0) -> np.ndarray:
    t = np.arange(start, start + n) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if len(x) else 0.0


class Onsets:
    """Time stamps of burst onsets: loud after quiet (one per burst)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._armed = True

    def feed(self, samples: np.ndarray, now: float) -> None:
        r = rms(samples)
        if self._armed and r > BURST_RMS:
            self.times.append(now)
            self._armed = False
        elif r < QUIET_RMS:
            self._armed = True


def pair_latencies(sent: list[float], received: list[float]) -> list[float]:
    """Latency of each received onset to the latest sent onset before it (each once)."""
    out = []
    used: set[int] = set()
    j = -1
    for r in received:
        while j + 1 < len(sent) and sent[j + 1] <= r:
            j += 1
        if j >= 0 and j not in used and r - sent[j] < 0.5:
            used.add(j)
            out.append((r - sent[j]) * 1000.0)
    return out


class MicTrack(MediaStreamTrack):
    """The browser's microphone: 20 ms s16 mono frames at ``rate``, paced by the clock.

    ``mode="tone"``: a continuous ``freq`` tone; ``mode="marker"``: silence with a
    20 ms ``freq`` burst every ``every`` frames.
    """

    kind = "audio"

    def __init__(self, freq: float = 1000.0, rate: int = 48000, mode: str = "tone",
                 every: int = 10) -> None:
        super().__init__()
        self.freq, self.rate, self.mode, self.every = freq, rate, mode, every
        self.n = rate // 50
        self.i = 0
        self.t0: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.t0 is None:
            self.t0 = time.monotonic()
        wait = self.t0 + self.i * 0.02 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if self.mode == "tone":
            pcm = tone(self.freq, self.n, self.rate, start=self.i * self.n)
        elif self.i % self.every == 0:
            pcm = tone(self.freq, self.n, self.rate, amp=BURST_AMP, start=0)
        else:
            pcm = np.zeros(self.n, np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self.i * self.n
        frame.time_base = fractions.Fraction(1, self.rate)
        self.i += 1
        return frame


class _PayloadDecoder:
    """Decode plaintext RTP payloads (the instrumented browser transport's view)."""

    def __init__(self) -> None:
        self._opus: Any = None

    def decode(self, codec: str, payload: bytes) -> np.ndarray:
        if codec in ("pcmu", "pcma"):
            out = np.empty(len(payload), np.int16)
            (ulaw_decode if codec == "pcmu" else alaw_decode)(
                np.frombuffer(payload, np.uint8), out)
            return out
        if self._opus is None:
            self._opus = av.CodecContext.create("libopus", "r")
            self._opus.format = "s16"
            self._opus.layout = "mono"
            self._opus.sample_rate = 48000
        frames = self._opus.decode(av.Packet(payload))
        return (np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
                if frames else np.empty(0, np.int16))


class Browser:
    """An aiortc peer playing the browser: offers, plays, and time stamps its wire."""

    def __init__(self, codecs: tuple[str, ...] = ("opus", "PCMU", "PCMA"),
                 mic: MediaStreamTrack | None = None) -> None:
        self.pc = RTCPeerConnection()
        self.mic = mic or MicTrack()
        self.tr = self.pc.addTransceiver(self.mic, direction="sendrecv")
        caps = RTCRtpSender.getCapabilities("audio").codecs
        self.tr.setCodecPreferences([c for n in codecs for c in caps
                                     if c.mimeType.lower() == f"audio/{n.lower()}"])
        self.rx: list[np.ndarray] = []
        self.rx_rate = 0
        self.sent_onsets = Onsets()
        self.recv_onsets = Onsets()
        self._pt_codec: dict[int, str] = {}
        self._tx_dec = _PayloadDecoder()
        self._rx_dec = _PayloadDecoder()
        self._task: asyncio.Task[None] | None = None
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._task = asyncio.ensure_future(self._play(track))

    async def _play(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                f = await track.recv()
                self.rx_rate = f.sample_rate
                a = f.to_ndarray().reshape(-1)
                if len(f.layout.channels) == 2:
                    a = a[::2]  # packed stereo: left channel
                self.rx.append(a)
        except MediaStreamError:
            pass

    def received(self) -> np.ndarray:
        return np.concatenate(self.rx) if self.rx else np.empty(0, np.int16)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        for c in self.tr._codecs:
            self._pt_codec[c.payloadType] = c.mimeType.split("/")[1].lower()
        self._instrument()

    def _instrument(self) -> None:
        dtls = self.tr.receiver.transport
        if getattr(dtls, "_hl_instrumented", False):
            return
        dtls._hl_instrumented = True
        send, handle = dtls._send_rtp, dtls._handle_rtp_data

        async def send_rtp(data: bytes) -> None:
            self._watch(data, self._tx_dec, self.sent_onsets)
            await send(data)

        async def handle_rtp(data: bytes, arrival_time_ms: int) -> None:
            self._watch(data, self._rx_dec, self.recv_onsets)
            await handle(data, arrival_time_ms)

        dtls._send_rtp = send_rtp
        dtls._handle_rtp_data = handle_rtp

    def _watch(self, data: bytes, dec: _PayloadDecoder, onsets: Onsets) -> None:
        now = time.monotonic()
        try:
            pkt = RtpPacket.parse(data)
        except ValueError:
            return
        codec = self._pt_codec.get(pkt.payload_type)
        if codec is not None:
            onsets.feed(dec.decode(codec, pkt.payload), now)

    def ice(self) -> Any:
        return self.tr.receiver.transport.transport._connection

    async def close(self) -> None:
        self.mic.stop()
        await self.pc.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class FakeTick(threading.Thread):
    """The worker's tick thread, reduced: push every 20 ms, drain every millisecond.

    :param source: frame index -> int16[160] to push.
    :param jb: drain into this jitter buffer and ``get_frame`` each tick (the worker's
        seam); None = ``pull_pcm`` (frames collected as they come).
    """

    def __init__(self, ep: WebRtcEndpoint, source: Callable[[int], np.ndarray],
                 jb: JitterBuffer | None = None, batch_wake: asyncio.AbstractEventLoop
                 | None = None) -> None:
        super().__init__(name="fake-tick", daemon=True)
        self.ep, self.source, self.jb, self.batch_wake = ep, source, jb, batch_wake
        self.stop_flag = False
        self.rx: list[np.ndarray] = []
        self.push_onsets = Onsets()
        self.pull_onsets = Onsets()
        self.error: BaseException | None = None

    def run(self) -> None:
        from media.webrtc import wake_tracks
        try:
            nxt = time.monotonic()
            i = 0
            row = np.zeros(FRAME, np.int16)
            while not self.stop_flag:
                now = time.monotonic()
                if now >= nxt:
                    frame = self.source(i)
                    self.push_onsets.feed(frame, now)
                    if self.batch_wake is not None:
                        self.ep.push_pcm(frame, wake=False)
                        wake_tracks(self.batch_wake, [self.ep.track])
                    else:
                        self.ep.push_pcm(frame)
                    if self.jb is not None:
                        self.ep.drain_into(self.jb)
                        self.jb.get_frame(row, now * 1000.0)
                        self.rx.append(row.copy())
                    i += 1
                    nxt += 0.02
                if self.jb is None:
                    while (x := self.ep.pull_pcm()) is not None:
                        self.pull_onsets.feed(x, time.monotonic())
                        self.rx.append(x.copy())
                time.sleep(0.001)
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def received(self) -> np.ndarray:
        return np.concatenate(self.rx) if self.rx else np.empty(0, np.int16)

    def finish(self) -> None:
        self.stop_flag = True
        self.join(5)
        if self.error is not None:
            raise self.error


def tone_source(freq: float) -> Callable[[int], np.ndarray]:
    return lambda i: tone(freq, FRAME, start=i * FRAME)


def marker_source(freq: float = 1000.0, every: int = 10) -> Callable[[int], np.ndarray]:
    burst = tone(freq, FRAME, amp=BURST_AMP)
    quiet = np.zeros(FRAME, np.int16)
    return lambda i: burst if i % every == 0 else quiet


async def connect(browser: Browser, ep: WebRtcEndpoint) -> None:
    answer = await ep.accept_offer(await browser.offer())
    await browser.answer(answer)
    for _ in range(200):
        if ep.state == "connected" and browser.pc.connectionState == "connected":
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"not connected: {ep.state} / {browser.pc.connectionState}")


async def measure(codecs: tuple[str, ...], seconds: float, receive_path: str = "tap",
                  every: int = 10) -> dict[str, Any]:
    """Marker bursts both ways; returns latencies in ms and the endpoint's counters."""
    browser = Browser(codecs, MicTrack(1000.0, mode="marker", every=every))
    ep = WebRtcEndpoint(receive_path=receive_path)
    tick = FakeTick(ep, marker_source(1000.0, every))
    try:
        await connect(browser, ep)
        tick.start()
        await asyncio.sleep(seconds)
        tick.finish()
        return {
            "codec": ep.codec,
            "out": pair_latencies(tick.push_onsets.times, browser.recv_onsets.times),
            "in": pair_latencies(browser.sent_onsets.times, tick.pull_onsets.times),
            "silence": ep.track.silence, "dropped": ep.track.dropped,
        }
    finally:
        tick.stop_flag = True
        await ep.close()
        await browser.close()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


# ---------------------------------------------------------------------- tests


def test_pcmu_both_ways_through_jitter_buffer() -> None:
    """Chrome-like offer (opus first, PCMU, PCMA): the answer picks PCMU; a 1 kHz mic
    reaches the tick through a cext JitterBuffer, a 440 Hz push reaches the browser."""

    async def main() -> None:
        browser = Browser(("opus", "PCMU", "PCMA"), MicTrack(1000.0))
        states: list[str] = []
        ep = WebRtcEndpoint(on_state=states.append)
        tick = FakeTick(ep, tone_source(440.0), jb=JitterBuffer(20, 200))
        try:
            await connect(browser, ep)
            assert ep.codec == "pcmu"
            assert ep.tap_installed
            assert "a=rtpmap:0 PCMU/8000" in ep.pc.localDescription.sdp
            tick.start()
            await asyncio.sleep(2.0)
            tick.finish()
        finally:
            tick.stop_flag = True
            await ep.close()
            await browser.close()
        got = tick.received()[-8000:]  # the last second (after the buffer filled)
        assert rms(got) > 2000
        assert abs(dominant_freq(got) - 1000.0) < 20
        heard = browser.received()
        assert browser.rx_rate == 8000
        assert rms(heard[-4000:]) > 2000
        assert abs(dominant_freq(heard[-8000:]) - 440.0) < 20
        assert "connected" in states and states[-1] == "closed"

    run(main())


def test_opus_only_offer() -> None:
    """A browser offering only Opus gets Opus; audio crosses both ways (48 kHz <-> 8 kHz)."""

    async def main() -> None:
        browser = Browser(("opus",), MicTrack(1000.0))
        ep = WebRtcEndpoint()
        tick = FakeTick(ep, tone_source(440.0))
        try:
            await connect(browser, ep)
            assert ep.codec == "opus"
            tick.start()
            await asyncio.sleep(2.0)
            tick.finish()
        finally:
            tick.stop_flag = True
            await ep.close()
            await browser.close()
        got = tick.received()
        assert len(got) > 8000
        assert abs(dominant_freq(got[-8000:]) - 1000.0) < 20
        heard = browser.received()
        assert browser.rx_rate == 48000
        seg = heard[-48000:]
        peak = float(np.argmax(np.abs(np.fft.rfft(seg * np.hanning(len(seg)))))) * 48000 / len(seg)
        assert abs(peak - 440.0) < 20

    run(main())


def test_pcma_preferred_when_browser_has_no_pcmu() -> None:
    async def main() -> None:
        browser = Browser(("opus", "PCMA"))
        ep = WebRtcEndpoint()
        try:
            await connect(browser, ep)
            assert ep.codec == "pcma"
        finally:
            await ep.close()
            await browser.close()

    run(main())


def test_no_common_codec_is_an_error() -> None:
    async def main() -> None:
        browser = Browser(("opus",))
        ep = WebRtcEndpoint(codecs=("PCMU",))
        try:
            with pytest.raises(WebRtcError, match="sdp:"):
                await ep.accept_offer(await browser.offer())
        finally:
            await ep.close()
            await browser.close()

    run(main())


def test_server_initiated_offer() -> None:
    """create_offer / accept_answer: the browser answers, audio flows to the tick."""

    async def main() -> None:
        browser = Browser(("PCMU",), MicTrack(1000.0))
        ep = WebRtcEndpoint()
        tick = FakeTick(ep, tone_source(440.0))
        try:
            offer = await ep.create_offer()
            await browser.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            await browser.pc.setLocalDescription(await browser.pc.createAnswer())
            await ep.accept_answer(browser.pc.localDescription.sdp)
            assert ep.codec == "pcmu"
            for _ in range(200):
                if ep.state == "connected":
                    break
                await asyncio.sleep(0.025)
            tick.start()
            await asyncio.sleep(1.5)
            tick.finish()
        finally:
            tick.stop_flag = True
            await ep.close()
            await browser.close()
        got = tick.received()
        assert abs(dominant_freq(got[-4000:]) - 1000.0) < 20

    run(main())


def _stun_check(conn: Any) -> Any:
    pair = next(iter(conn._nominated.values()))
    return pair.protocol.request(conn.build_request(pair, nominate=False), pair.remote_addr,
                                 integrity_key=conn.remote_password.encode())


def test_renegotiation_and_ice_restart_keep_audio() -> None:
    """A second offer on the same connection (renegotiation), then an ICE restart done
    the way a browser's restartIce() does it (new ufrag/pwd in the offer, and the
    browser adopts the credentials of the answer): audio keeps flowing both ways and
    STUN checks with the new credentials succeed in both directions."""

    async def main() -> None:
        browser = Browser(("PCMU",), MicTrack(1000.0))
        ep = WebRtcEndpoint()
        tick = FakeTick(ep, tone_source(440.0))
        try:
            await connect(browser, ep)
            tick.start()
            await asyncio.sleep(0.5)
            # renegotiation: same credentials
            await browser.answer(await ep.accept_offer(await browser.offer()))
            assert ep.renegotiations == 1 and ep.ice_restarts == 0
            await asyncio.sleep(0.5)
            n_tick, n_browser = len(tick.rx), len(browser.rx)
            # ICE restart, browser side as Chromium does it
            bconn = browser.ice()
            bconn._local_username = secrets.token_hex(4)
            bconn._local_password = secrets.token_hex(16)
            old_server_ufrag = ep.pc.localDescription.sdp.split("a=ice-ufrag:")[1].split()[0]
            answer = await ep.accept_offer(await browser.offer())
            assert ep.ice_restarts == 1
            await browser.answer(answer)
            media = SessionDescription.parse(answer).media[0]
            assert media.ice.usernameFragment != old_server_ufrag
            bconn.remote_username = media.ice.usernameFragment
            bconn.remote_password = media.ice.password
            sconn = ep.pc.getTransceivers()[0].receiver.transport.transport._connection
            assert sconn.remote_username == bconn.local_username
            await asyncio.wait_for(_stun_check(sconn), 5)  # server -> browser
            await asyncio.wait_for(_stun_check(bconn), 5)  # browser -> server
            await asyncio.sleep(1.0)
            tick.finish()
            assert ep.state == "connected"
        finally:
            tick.stop_flag = True
            await ep.close()
            await browser.close()
        after = np.concatenate(tick.rx[n_tick:])  # pull_pcm frames after the restart
        assert len(tick.rx) - n_tick > 30
        assert abs(dominant_freq(after[-4000:]) - 1000.0) < 20
        assert len(browser.rx) - n_browser > 30
        assert abs(dominant_freq(browser.received()[-4000:]) - 440.0) < 20

    run(main())


def test_push_never_blocks_and_ring_drops_oldest() -> None:
    """push_pcm from a foreign thread with nobody reading: bounded ring, no blocking;
    with nothing pushed the track still paces silence."""

    async def main() -> None:
        ep = WebRtcEndpoint()
        try:
            t0 = time.monotonic()
            frames = [np.full(FRAME, i, np.int16) for i in range(10)]

            def pusher() -> None:
                for f in frames:
                    ep.push_pcm(f)

            await asyncio.get_running_loop().run_in_executor(None, pusher)
            assert time.monotonic() - t0 < 0.5
            assert ep.track.dropped == 7
            ep.track.set_codec("opus")  # AudioFrame output
            got = [await ep.track.recv() for _ in range(3)]
            # the first Opus frame carries RESAMPLER_PRIME samples of leading silence
            assert [int(f.to_ndarray()[0, -1]) for f in got] == [7, 8, 9]
            assert [f.samples for f in got] == [FRAME + RESAMPLER_PRIME, FRAME, FRAME]
            assert [f.pts for f in got] == [0, 160, 320]
            t1 = time.monotonic()
            silent = [await ep.track.recv() for _ in range(5)]
            elapsed = time.monotonic() - t1
            assert all(not f.to_ndarray().any() for f in silent)
            assert 0.06 < elapsed < 0.3  # paced at ~20 ms (first one waits the slack)
            ep.track.set_codec("pcmu")
            ep.push_pcm(np.zeros(FRAME, np.int16))
            pkt = await ep.track.recv()
            assert isinstance(pkt, av.Packet) and bytes(pkt) == b"\xff" * FRAME
            with pytest.raises(ValueError, match="int16"):
                ep.push_pcm(np.zeros(80, np.int16))
        finally:
            await ep.close()

    run(main())


def test_close_leaves_no_tasks_or_threads() -> None:
    async def main() -> None:
        before = set(threading.enumerate())
        tasks_before = asyncio.all_tasks()  # this test and run()'s wait_for
        browser = Browser(("PCMU",), MicTrack(1000.0))
        ep = WebRtcEndpoint()
        tick = FakeTick(ep, tone_source(440.0))
        await connect(browser, ep)
        tick.start()
        await asyncio.sleep(0.5)
        tick.finish()
        await ep.close()
        await browser.close()
        assert ep.state == "closed"
        for _ in range(100):
            left = [t for t in asyncio.all_tasks() if t not in tasks_before and not t.done()]
            threads = [t for t in threading.enumerate() if t not in before and t.is_alive()
                       and not t.name.startswith(("ThreadPoolExecutor", "asyncio_"))]
            if not left and not threads:
                break
            await asyncio.sleep(0.05)
        assert not left, left
        assert not threads, threads

    run(main())


@pytest.mark.parametrize("codecs", [("PCMU",), ("opus",)])
def test_marker_latency_is_measured(codecs: tuple[str, ...]) -> None:
    """Bursts cross both ways and are matched; numbers go to docs/webrtc.md (from
    benchmarks/webrtc_leg.py), here only behaviour is asserted."""
    r = run(measure(codecs, 2.5))
    assert len(r["out"]) >= 5 and len(r["in"]) >= 5
    assert all(x >= 0 for x in r["out"] + r["in"])
    print(codecs, f"out p50 {np.median(r['out']):.1f} ms, in p50 {np.median(r['in']):.1f} ms")
