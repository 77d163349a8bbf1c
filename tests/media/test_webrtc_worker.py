"""WebRTC endpoints inside a real media worker (spawned by MediaPool), bridged to RTP legs.

The "browser" is an aiortc peer in the test process (``test_webrtc.Browser``: a mic
track, its own receive path, and a DTLS transport instrumented to time stamp the
plaintext RTP it sends and receives). The trunk is a UDP socket in the test process
speaking µ-law RTP. Everything runs over loopback and every test is bounded by timeouts.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import select
import sys
import threading
import time
import wave
from typing import Any

import numpy as np
import pytest
from aiortc import RTCSessionDescription
from aiortc.sdp import SessionDescription

sys.path.insert(0, os.path.dirname(__file__))
from rtp_peer import Peer, dominant_freq, stream, tone  # noqa: E402
from test_webrtc import (  # noqa: E402
    BURST_AMP,
    Browser,
    MicTrack,
    Onsets,
    pair_latencies,
    rms,
)

from cext.g711 import decode  # noqa: E402
from media.client import EndpointHandle, MediaPool  # noqa: E402
from media.events import MediaEvent, WebRtcStateChanged  # noqa: E402

PORTS = (33000, 33999)
LO = "127.0.0.1"
BODY_TIMEOUT = 60.0


def run(body: Any, tmp_path: Any) -> Any:
    async def main() -> Any:
        events: list[MediaEvent] = []
        pool = MediaPool(1, PORTS, str(tmp_path), rtp_ip=LO, data_dir=str(tmp_path))
        pool.on_event = events.append
        await asyncio.wait_for(pool.start(), 20)
        try:
            return await asyncio.wait_for(body(pool, events), BODY_TIMEOUT)
        finally:
            await pool.close()
    return asyncio.run(main())


async def in_thread(fn: Any, *a: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *a)


async def wait_for(cond: Any, seconds: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def states(events: list[MediaEvent], ep: EndpointHandle) -> list[str]:
    return [e.state for e in events if isinstance(e, WebRtcStateChanged) and e.endpoint == ep.id]


async def connect(pool: MediaPool, events: list[MediaEvent], browser: Browser, key: str,
                  **options: Any) -> EndpointHandle:
    """The browser offers; the worker answers; both sides reach ``connected``."""
    ep, answer = await pool.create_webrtc_endpoint(key, await browser.offer(), **options)
    assert ep.kind == "webrtc" and ep.local_port == 0
    await browser.answer(answer)
    await wait_for(lambda: browser.pc.connectionState == "connected"
                   and "connected" in states(events, ep), what="connected")
    return ep


async def connect_server_offer(pool: MediaPool, events: list[MediaEvent], browser: Browser,
                               key: str) -> EndpointHandle:
    """The worker offers (no offer given); the browser answers through webrtc_answer."""
    ep, offer = await pool.create_webrtc_endpoint(key)
    await browser.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    await browser.pc.setLocalDescription(await browser.pc.createAnswer())
    await pool.webrtc_answer(ep, browser.pc.localDescription.sdp)
    await wait_for(lambda: browser.pc.connectionState == "connected"
                   and "connected" in states(events, ep), what="connected")
    return ep


# ---------------------------------------------------------------------- tests


@pytest.mark.parametrize("path", ["kernel", "aiortc"])
def test_browser_bridged_to_rtp_leg_and_recorded(tmp_path: Any, monkeypatch: Any,
                                                 path: str) -> None:
    """(1) The browser's 1 kHz reaches the RTP peer, the peer's 440 Hz reaches the
    browser; (2) the room's recording has the browser left and the peer right. With the
    leg's RTP in the kernel (the default) and on aiortc's path (HOTLINE_WEBRTC_NATIVE=0)."""
    if path == "aiortc":
        monkeypatch.setenv("HOTLINE_WEBRTC_NATIVE", "0")

    async def body(pool: MediaPool, events: list[MediaEvent]) -> Any:
        browser = Browser(("opus", "PCMU", "PCMA"), MicTrack(1000.0))
        peer = Peer(0, "pcmu")
        try:
            w = await connect(pool, events, browser, "call-1")
            r = await pool.create_endpoint("call-1", remote_ip=LO, remote_port=peer.port)
            assert r.worker == w.worker
            await pool.set_room("call-1", [w, r])
            rec = await pool.record(str(tmp_path / "rec.wav"), left=[w], right=[r])
            n_before = len(browser.rx)
            await in_thread(stream, [(peer, tone(440, 8000 * 2), (LO, r.local_port))], 1.6)
            await asyncio.sleep(0.2)
            peer.drain()
            secs = await pool.record_stop(rec)
            st_w = (await pool.stats(w))["endpoint"]
            st_r = (await pool.stats(r))["endpoint"]
            heard = np.concatenate(browser.rx[n_before:])
            ev = [e for e in events if isinstance(e, WebRtcStateChanged)]
            return peer.audio(), heard, browser.rx_rate, secs, st_w, st_r, ev, w
        finally:
            peer.close()
            await browser.close()

    got_peer, heard, rate, secs, st_w, st_r, ev, w = run(body, tmp_path)
    assert st_w["kind"] == "webrtc" and st_w["codec"] == "pcmu" and st_w["tap_installed"]
    assert st_w["rx_packets"] > 50 and st_w["tx_packets"] > 50
    if path == "kernel":  # aiortc saw at most the packets before the hand-over
        assert st_w["native"] and st_w["out_pushed"] < 25 and st_w["srtp_errors"] == 0
        assert st_w["tap_packets"] < 25 and st_w["remote"][1] > 0
        # a two-party bridge: the NetIO relays each way in C (SRTP <-> RTP)
        assert st_w["relaying"] and st_r["relaying"]
        assert st_w["relayed"] > 50 and st_r["relayed"] > 50
    else:
        assert not st_w["native"] and st_w["out_pushed"] > 50 and st_w["tap_packets"] > 50
        assert st_r["relaying"] is False
    assert st_r["tx_packets"] > 50
    assert len(got_peer) > 8000
    assert rms(got_peer[-4000:]) > 2000
    assert abs(dominant_freq(got_peer[-4000:]) - 1000) < 10      # browser -> trunk
    assert rate == 8000 and rms(heard[-4000:]) > 2000
    assert abs(dominant_freq(heard[-8000:-1600]) - 440) < 10      # trunk -> browser
    assert ev[0].call_key == "call-1" and ev[0].endpoint == w.id and ev[0].state == "connected"
    with wave.open(str(tmp_path / "rec.wav")) as f:
        assert f.getnchannels() == 2 and f.getframerate() == 8000
        frames = np.frombuffer(f.readframes(f.getnframes()), np.int16).reshape(-1, 2)
    assert secs > 1.0 and abs(len(frames) / 8000 - secs) < 0.05
    assert abs(dominant_freq(frames[-8000:-1600, 0]) - 1000) < 10  # browser left
    assert abs(dominant_freq(frames[-8000:-1600, 1]) - 440) < 10   # trunk right


def test_echo_on_webrtc_endpoint_server_offer(tmp_path: Any) -> None:
    """(3) An endpoint that hears itself echoes the browser's mic back (worker offers)."""

    async def body(pool: MediaPool, events: list[MediaEvent]) -> Any:
        browser = Browser(("PCMU",), MicTrack(1000.0))
        try:
            e = await connect_server_offer(pool, events, browser, "echo")
            await pool.set_room("echo", [e], hears={e: [e]})
            n0 = len(browser.rx)
            await asyncio.sleep(1.5)
            return np.concatenate(browser.rx[n0:])
        finally:
            await browser.close()

    heard = run(body, tmp_path)
    assert len(heard) > 8000
    assert rms(heard[-4000:]) > 2000
    assert abs(dominant_freq(heard[-4000:]) - 1000) < 10


def test_destroy_closes_peer_connection(tmp_path: Any) -> None:
    """(4) destroy_endpoint closes the peer connection (the browser sees it) and leaves
    the worker with no endpoint; the slot is then reused by an RTP endpoint."""

    async def body(pool: MediaPool, events: list[MediaEvent]) -> Any:
        browser = Browser(("PCMU",), MicTrack(1000.0))
        try:
            w = await connect(pool, events, browser, "gone")
            await pool.set_room("gone", [w], hears={w: [w]})
            await asyncio.sleep(0.3)
            await pool.destroy(w)
            await wait_for(lambda: browser.pc.connectionState in ("closed", "failed"),
                           what="browser connection closed")
            st = await pool.stats(worker=0)
            again = await pool.create_endpoint("next")
            st_again = (await pool.stats(again))["endpoint"]
            await pool.destroy(again)
            st2 = await pool.stats(worker=0)
            return w, browser.pc.connectionState, st, st_again, st2, states(events, w)
        finally:
            await browser.close()

    w, bstate, st, st_again, st2, seen = run(body, tmp_path)
    assert bstate in ("closed", "failed")
    assert st["endpoints"] == 0 and st["webrtc_endpoints"] == 0
    assert seen == ["connected", "closed"]
    assert st_again["rx_packets"] == 0 and st_again["remote_port"] == 0
    assert st2["endpoints"] == 0


def test_renegotiation_and_ice_restart_keep_audio(tmp_path: Any) -> None:
    """(5) A renegotiation and an ICE restart through webrtc_offer keep audio flowing
    both ways (the browser in a room with an RTP peer)."""

    async def body(pool: MediaPool, events: list[MediaEvent]) -> Any:
        browser = Browser(("PCMU",), MicTrack(1000.0))
        peer = Peer(0, "pcmu")
        try:
            w = await connect(pool, events, browser, "reneg")
            r = await pool.create_endpoint("reneg", remote_ip=LO, remote_port=peer.port)
            await pool.set_room("reneg", [w, r])

            async def talk(seconds: float) -> tuple[np.ndarray, np.ndarray]:
                n0 = len(browser.rx)
                peer.drain()
                peer.received.clear()
                await in_thread(stream, [(peer, tone(440, int(8000 * seconds)),
                                          (LO, r.local_port))], seconds)
                await asyncio.sleep(0.1)
                peer.drain()
                return peer.audio(), np.concatenate(browser.rx[n0:])

            await talk(0.6)
            # renegotiation: same ICE credentials
            await browser.answer(await pool.webrtc_offer(w, await browser.offer()))
            after_reneg = await talk(1.0)
            # ICE restart as restartIce() does it: new credentials in the offer, and the
            # browser adopts the answer's new ones
            bconn = browser.ice()
            bconn._local_username = secrets.token_hex(4)
            bconn._local_password = secrets.token_hex(16)
            answer = await pool.webrtc_offer(w, await browser.offer())
            await browser.answer(answer)
            media = SessionDescription.parse(answer).media[0]
            bconn.remote_username = media.ice.usernameFragment
            bconn.remote_password = media.ice.password
            after_restart = await talk(1.2)
            st = (await pool.stats(w))["endpoint"]
            return after_reneg, after_restart, st, browser.pc.connectionState
        finally:
            peer.close()
            await browser.close()

    after_reneg, after_restart, st, bstate = run(body, tmp_path)
    assert st["renegotiations"] == 2 and st["ice_restarts"] == 1
    assert st["state"] == "connected" and bstate == "connected"
    for to_peer, to_browser in (after_reneg, after_restart):
        assert len(to_peer) > 4000 and len(to_browser) > 4000
        assert abs(dominant_freq(to_peer[-4000:]) - 1000) < 10
        assert abs(dominant_freq(to_browser[-4800:-800]) - 440) < 10


def test_bad_sdp_and_unknown_endpoint_are_errors(tmp_path: Any) -> None:
    from media.client import MediaError

    async def body(pool: MediaPool, events: list[MediaEvent]) -> None:
        browser = Browser(("opus",))
        try:
            # only Opus offered, only PCMU allowed: no common codec, no endpoint left
            try:
                await pool.create_webrtc_endpoint("x", await browser.offer(), codecs=["PCMU"])
            except MediaError as exc:
                assert str(exc).startswith("offer:"), exc
            else:
                raise AssertionError("no common codec accepted")
            for call, pattern in (
                (pool.request(0, "webrtc_offer", endpoint=99, offer="v=0\r\n"),
                 "endpoint: no WebRTC endpoint 99"),
                (pool.request(0, "create_webrtc_endpoint", offer="hello"), "offer: not an SDP"),
                (pool.request(0, "create_webrtc_endpoint", codecs=["G722"]), "codecs[0]:"),
            ):
                try:
                    await call
                except MediaError as exc:
                    assert pattern in str(exc), exc
                else:
                    raise AssertionError(pattern)
            r = await pool.create_endpoint("x")
            try:
                await pool.request(0, "webrtc_answer", endpoint=r.id, answer="v=0\r\n")
            except MediaError as exc:
                assert "no WebRTC endpoint" in str(exc)
            st = await pool.stats(worker=0)
            assert st["endpoints"] == 1 and st["webrtc_endpoints"] == 0
        finally:
            await browser.close()

    run(body, tmp_path)


# ------------------------------------------------------------ latency (printed)


class MarkerPeer(threading.Thread):
    """The trunk for the latency test: sends µ-law with a 20 ms burst every ``every``
    frames, paced at 20 ms, and time stamps every packet it receives (select, so the
    time is when the packet became readable)."""

    def __init__(self, dest: tuple[str, int], every: int = 10) -> None:
        super().__init__(name="marker-peer", daemon=True)
        self.peer = Peer(0, "pcmu")
        self.dest, self.every = dest, every
        self.sent_onsets = Onsets()
        self.recv_onsets = Onsets()
        self.stop_flag = False
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            sock = self.peer.sock
            burst = tone(1000, 160, amp=BURST_AMP)
            quiet = np.zeros(160, np.int16)
            nxt = time.monotonic()
            i = 0
            while not self.stop_flag:
                now = time.monotonic()
                if now >= nxt:
                    frame = burst if i % self.every == 0 else quiet
                    self.peer.send_audio(frame, self.dest)
                    self.sent_onsets.feed(frame, time.monotonic())
                    i += 1
                    nxt += 0.02
                    continue
                readable, _, _ = select.select([sock], [], [], max(0.0, nxt - now))
                if readable:
                    t = time.monotonic()
                    while True:
                        try:
                            pkt = sock.recv(2048)
                        except BlockingIOError:
                            break
                        if (pkt[1] & 0x7F) == 0:
                            self.recv_onsets.feed(decode(pkt[12:], "pcmu"), t)
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def finish(self) -> None:
        self.stop_flag = True
        self.join(5)
        self.peer.close()
        if self.error is not None:
            raise self.error


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


LATENCY_SECONDS = float(os.environ.get("HOTLINE_LATENCY_SECONDS", "4"))
LATENCY_JITTER_MIN = [int(x) for x in
                      os.environ.get("HOTLINE_LATENCY_JITTER_MIN", "20").split(",")]


def test_bridge_latency_is_measured(tmp_path: Any) -> None:
    """Server-added latency of a WebRTC <-> RTP bridge, each way (printed; asserted only
    as "measured"): from the browser's DTLS send of a burst to the trunk socket becoming
    readable, and from the trunk's send to the browser's DTLS receive. The baseline is
    an RTP <-> RTP bridge through the same mixer (gains force the mix, not the relay),
    timed from socket to socket. ``HOTLINE_LATENCY_SECONDS`` and
    ``HOTLINE_LATENCY_JITTER_MIN`` (comma-separated ``jitter_min_ms`` values) vary the
    run."""

    async def webrtc(pool: MediaPool, events: list[MediaEvent],
                     jitter_min_ms: int) -> dict[str, Any]:
        key = f"lat-{jitter_min_ms}"
        browser = Browser(("PCMU",), MicTrack(1000.0, mode="marker", every=10))
        try:
            w = await connect(pool, events, browser, key, jitter_min_ms=jitter_min_ms)
            r = await pool.create_endpoint(key, jitter_min_ms=jitter_min_ms)
            trunk = MarkerPeer((LO, r.local_port))
            await pool.modify_endpoint(r, remote_ip=LO, remote_port=trunk.peer.port)
            await pool.set_room(key, [w, r])
            trunk.start()
            await asyncio.sleep(LATENCY_SECONDS)
            trunk.finish()
            st_w = (await pool.stats(w))["endpoint"]
            st_r = (await pool.stats(r))["endpoint"]
            await pool.destroy(w)
            await pool.destroy(r)
            return {
                "a->b": pair_latencies(browser.sent_onsets.times, trunk.recv_onsets.times),
                "b->a": pair_latencies(trunk.sent_onsets.times, browser.recv_onsets.times),
                "jb": {"webrtc": st_w["jitter"], "rtp": st_r["jitter"]},
            }
        finally:
            await browser.close()

    async def rtp(pool: MediaPool, jitter_min_ms: int) -> dict[str, Any]:
        key = f"rtp-{jitter_min_ms}"
        a = await pool.create_endpoint(key, jitter_min_ms=jitter_min_ms)
        b = await pool.create_endpoint(key, jitter_min_ms=jitter_min_ms)
        pa, pb = MarkerPeer((LO, a.local_port)), MarkerPeer((LO, b.local_port))
        await pool.modify_endpoint(a, remote_ip=LO, remote_port=pa.peer.port)
        await pool.modify_endpoint(b, remote_ip=LO, remote_port=pb.peer.port)
        await pool.set_room(key, [a, b], gains={a: 1.0, b: 1.0})
        pa.start()
        pb.start()
        await asyncio.sleep(LATENCY_SECONDS)
        pa.finish()
        pb.finish()
        st_a = (await pool.stats(a))["endpoint"]
        st_b = (await pool.stats(b))["endpoint"]
        await pool.destroy(a)
        await pool.destroy(b)
        assert not st_a["relaying"]
        return {
            "a->b": pair_latencies(pa.sent_onsets.times, pb.recv_onsets.times),
            "b->a": pair_latencies(pb.sent_onsets.times, pa.recv_onsets.times),
            "jb": {"rtp a": st_a["jitter"], "rtp b": st_b["jitter"]},
        }

    async def body(pool: MediaPool, events: list[MediaEvent]) -> list[tuple[str, Any]]:
        out = []
        for jm in LATENCY_JITTER_MIN:
            out.append((f"webrtc->rtp / rtp->webrtc, jitter_min {jm}",
                        await webrtc(pool, events, jm)))
            out.append((f"rtp->rtp (mixed) baseline, jitter_min {jm}", await rtp(pool, jm)))
        return out

    results = run(body, tmp_path)
    print()
    for name, res in results:
        print(name)
        for d in ("a->b", "b->a"):
            xs = res[d]
            print(f"  {d}  n {len(xs):3d}  p50 {_pct(xs, 50):6.1f} ms  p99 {_pct(xs, 99):6.1f} ms")
        for leg, js in res["jb"].items():
            print(f"  {leg} jitter buffer: target {js['target_delay_ms']:.1f} ms, delay "
                  f"{js['delay_ms']:.1f} ms, stretched {js['stretched_frames']}, "
                  f"shrunk {js['shrunk_frames']}, late {js['late']}")
        assert len(res["a->b"]) >= 5 and len(res["b->a"]) >= 5
        assert all(x >= 0 for x in res["a->b"] + res["b->a"])


def test_webrtc_legs_spread_over_workers_and_weigh_more_than_rtp(tmp_path: Any) -> None:
    """Two browsers offering at once land on different workers (an endpoint counts while
    it is being created); with one browser on a worker, the next calls' RTP endpoints
    go to the other worker until its load matches a WebRTC leg's weight."""
    from media.client import WEBRTC_WEIGHT

    async def main() -> None:
        pool = MediaPool(2, PORTS, str(tmp_path), rtp_ip=LO, data_dir=str(tmp_path))
        await asyncio.wait_for(pool.start(), 20)
        b1, b2 = Browser(codecs=("PCMU",)), Browser(codecs=("PCMU",))
        try:
            (e1, _), (e2, _) = await asyncio.wait_for(asyncio.gather(
                pool.create_webrtc_endpoint("web:a", await b1.offer()),
                pool.create_webrtc_endpoint("web:b", await b2.offer())), 20)
            assert {e1.worker, e2.worker} == {0, 1}
            await pool.destroy(e2)
            rtp = [await pool.create_endpoint(f"call-{i}") for i in range(WEBRTC_WEIGHT)]
            assert all(ep.worker != e1.worker for ep in rtp)
            nxt = await pool.create_endpoint("call-next")  # loads are equal again
            assert nxt.worker in (0, 1)
        finally:
            await b1.pc.close()
            await b2.pc.close()
            await pool.close()

    asyncio.run(main())
