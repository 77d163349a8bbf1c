"""The browser phone's server side with aiortc as the browser: one WebRTC connection for
the shift, queue calls rung over the WebSocket and answered by a mixer switch, audio
both ways, the call recorded like a desk phone's. (Real Chromium: test_browser.py.)"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer, MediaRecorder

from .audio import TONES, hears, hears_during, tone_wav
from .peers import HotlineProcess, PjPhone

pytestmark = pytest.mark.e2e

QUEUE = """
[[agents]]
id = "1003"
name = "Zhang Min"
password = "pw-1003-secret"

[[users]]
name = "boss"
password = "pw-boss-secret"
role = "supervisor"

[[queues]]
name = "support"
agents = ["1001"]
wrapup = 0
"""
RECORD_WAV = '\n[recording]\nformat = "wav"\n'
ROUTE = '[[routes]]\nmatch = "200"\nto = "queue:support"\npriority = 0\n'


class Browser:
    """A logged-in page: its WebSocket and its aiortc peer connection."""

    def __init__(self, port: int, user: str, password: str, tone: Path, record: Path) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.user, self.password = user, password
        self.tone, self.record = tone, record
        self.events: list[dict[str, Any]] = []
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = 0

    async def __aenter__(self) -> Browser:
        self.http = aiohttp.ClientSession(headers={"Origin": self.base},
                                          cookie_jar=aiohttp.CookieJar(unsafe=True))
        r = await self.http.post(self.base + "/api/login",
                                 json={"username": self.user, "password": self.password})
        assert r.status == 200, await r.text()
        self.ws = await self.http.ws_connect(self.base + "/api/ws")
        self.reader = asyncio.get_running_loop().create_task(self._read())
        self.pc = RTCPeerConnection()
        self.player = MediaPlayer(str(self.tone), loop=True)
        self.pc.addTrack(self.player.audio)
        self.recorder = MediaRecorder(str(self.record))

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            self.recorder.addTrack(track)

        await self.pc.setLocalDescription(await self.pc.createOffer())
        reply = await self.cmd("rtc_offer", sdp=self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        await self.recorder.start()
        await self.wait(lambda e: e.get("type") == "rtc" and e["state"] == "connected")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.recorder.stop()
        await self.pc.close()
        self.player.audio.stop()
        await self.ws.close()
        self.reader.cancel()
        await self.http.close()

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self._replies:
                self._replies.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)

    async def cmd(self, cmd: str, **args: Any) -> dict[str, Any]:
        self._ids += 1
        fut = asyncio.get_running_loop().create_future()
        self._replies[self._ids] = fut
        await self.ws.send_str(json.dumps({"id": self._ids, "cmd": cmd, **args}))
        reply = await asyncio.wait_for(fut, 10)
        assert reply.get("ok"), reply
        return reply

    async def wait(self, match: Callable[[dict[str, Any]], bool],
                   timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events:
                if match(e):
                    return e
            await asyncio.sleep(0.05)
        raise AssertionError(f"no such event; got {self.events[-10:]}")


def _agent_page(port: int, tmp_path: Path, heard: Path) -> Browser:
    """Agent 1001's page; its microphone sends 1001's tone, what it hears goes to ``heard``."""
    return Browser(port, "1001", "pw-1001-secret",
                   tone_wav(tmp_path / "agent.wav", TONES["1001"]), heard)


def _phone_is(state: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("type") == "phone" and e["state"] == state


async def _ready_and_called(b: Browser, server: HotlineProcess,
                            phones: Callable[..., PjPhone]) -> tuple[PjPhone, dict[str, Any]]:
    """The agent's page goes ready and extension 1003 calls the queue: the page rings."""
    await b.cmd("set_state", state="ready")
    caller = phones(server, "1003")
    caller.send("call", uri=f"sip:200@127.0.0.1:{server.sip_port}")
    return caller, await b.wait(_phone_is("ringing"))


def test_browser_agent_answers_a_queue_call_by_a_mixer_switch(
        hotline_factory: Callable[..., HotlineProcess], phones: Callable[..., PjPhone],
        tmp_path: Path) -> None:
    server = hotline_factory(QUEUE, routes_first=ROUTE)
    port = server.http_port  # type: ignore[attr-defined]
    heard = tmp_path / "browser-heard.wav"

    async def scenario() -> None:
        async with _agent_page(port, tmp_path, heard) as b:
            caller, ring = await _ready_and_called(b, server, phones)
            offered = await b.wait(lambda e: e.get("type") == "call_offered")
            assert ring["call_id"] == offered["call_id"]
            assert offered["caller"] == "1003" and offered["queue"] == "support"
            await b.cmd("phone_answer")
            await b.wait(lambda e: e.get("type") == "phone" and e["state"] == "talking")
            await asyncio.sleep(3.0)
            caller.send("hangup", call=0)
            await b.wait(lambda e: e.get("type") == "phone" and e["state"] == "idle"
                         and e is not ring)
            caller.stop()
            assert hears(caller.recording(0), TONES["1001"], last_s=1.5)

    asyncio.run(scenario())
    assert hears(heard, TONES["1003"], last_s=2.0)


def _recording(server: HotlineProcess) -> Path:
    con = sqlite3.connect(server.data_dir / "hotline.db")
    try:
        (path,) = con.execute("SELECT path FROM recordings ORDER BY start_time DESC").fetchone()
    finally:
        con.close()
    return server.data_dir / "recordings" / path


def test_supervisor_browser_listens_in_and_the_recording_has_none_of_it(
        hotline_factory: Callable[..., HotlineProcess], phones: Callable[..., PjPhone],
        tmp_path: Path) -> None:
    """The supervisor's own browser phone is rung for ``supervise`` and answers by
    itself: it hears caller and agent; the caller, the agent and the recording do not
    hear the supervisor (its microphone sends 1100 Hz)."""
    server = hotline_factory(QUEUE + RECORD_WAV, routes_first=ROUTE)
    port = server.http_port  # type: ignore[attr-defined]
    agent_heard, sup_heard = tmp_path / "agent-heard.wav", tmp_path / "sup-heard.wav"
    sup_hz = TONES["1002"]

    async def scenario() -> float:
        async with _agent_page(port, tmp_path, agent_heard) as a, \
                Browser(port, "boss", "pw-boss-secret",
                        tone_wav(tmp_path / "sup.wav", sup_hz), sup_heard) as sup:
            caller, ring = await _ready_and_called(a, server, phones)
            await a.cmd("phone_answer")
            t0 = time.monotonic()
            await a.wait(lambda e: e.get("type") == "call_answered")
            await asyncio.sleep(1.0)  # the supervisor looks at the wallboard first
            await sup.cmd("supervise", call_id=ring["call_id"], agent="1001", phone="boss",
                          mode="listen")
            listening = await sup.wait(lambda e: e.get("type") == "phone"
                                       and e["state"] == "talking")
            assert listening["monitor"] == "listen 1001"
            t_listen = time.monotonic() - t0
            await asyncio.sleep(3.0)
            caller.send("hangup", call=0)
            await sup.wait(lambda e: e.get("type") == "phone" and e["state"] == "idle"
                           and e is not listening, timeout=10)
            caller.stop()
            assert not hears_during(caller.recording(0), sup_hz, 1.0, 4.0)
            assert hears_during(caller.recording(0), TONES["1001"], 1.0, 4.0)
            return t_listen

    t_listen = asyncio.run(scenario())
    assert hears(sup_heard, TONES["1003"], last_s=2.0)
    assert hears(sup_heard, TONES["1001"], last_s=2.0)
    assert not hears_during(agent_heard, sup_hz, 1.0, 3.0)
    rec = _recording(server)
    for ch, hz in ((0, TONES["1003"]), (1, TONES["1001"])):
        assert hears_during(rec, hz, t_listen + 0.5, t_listen + 2.5, channel=ch)
        assert not hears_during(rec, sup_hz, t_listen + 0.5, t_listen + 2.5, channel=ch)


def test_declined_offer_is_a_ring_no_answer_and_a_websocket_blip_keeps_the_call(
        hotline_factory: Callable[..., HotlineProcess], phones: Callable[..., PjPhone],
        tmp_path: Path) -> None:
    """Declining sets the agent not ready (ring-no-answer), the caller keeps waiting; once
    ready again the agent answers. The page's WebSocket then drops and comes back: the
    new socket's hello shows the call, audio never stopped, and hanging up from the new
    socket ends the caller's call."""
    server = hotline_factory(QUEUE, routes_first=ROUTE)
    port = server.http_port  # type: ignore[attr-defined]

    async def scenario() -> None:
        async with _agent_page(port, tmp_path, tmp_path / "heard.wav") as a:
            caller, first = await _ready_and_called(a, server, phones)
            await a.cmd("phone_reject")
            rna = await a.wait(lambda e: e.get("type") == "agent_state"
                               and e["state"] == "not_ready")
            assert rna["reason"] == "ring-no-answer"
            await a.cmd("set_state", state="ready")
            await a.wait(lambda e: e.get("type") == "phone" and e["state"] == "ringing"
                         and e is not first)
            await a.cmd("phone_answer")
            await a.wait(lambda e: e.get("type") == "call_answered")
            t_answer = time.monotonic()
            await asyncio.sleep(1.0)
            await a.ws.close()  # the blip: the peer connection stays up
            a.reader.cancel()
            await asyncio.sleep(1.0)
            a.events.clear()
            a.ws = await a.http.ws_connect(a.base + "/api/ws")
            a.reader = asyncio.get_running_loop().create_task(a._read())
            hello = await a.wait(lambda e: e.get("type") == "hello")
            assert hello["phone"]["state"] == "talking", hello["phone"]
            await asyncio.sleep(1.5)
            t_hangup = time.monotonic()
            await a.cmd("phone_hangup")
            caller.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
            caller.stop()
            # The caller heard the agent across the blip (answer+0.5 s .. hang-up).
            pcm_offset = _answer_offset(caller.recording(0), TONES["1001"])
            assert hears_during(caller.recording(0), TONES["1001"], pcm_offset + 0.5,
                                pcm_offset + (t_hangup - t_answer) - 0.2)

    asyncio.run(scenario())


def _answer_offset(path: Path, hz: float) -> float:
    """Seconds into a recording at which the tone at ``hz`` starts."""
    from .audio import levels, read_wav

    pcm, rate = read_wav(path)
    lv = levels(pcm, rate, [hz], frame_s=0.1)
    on = [i for i, x in enumerate(lv[:, 0]) if x > 500.0]
    assert on, f"{path}: no {hz} Hz at all"
    return on[0] * 0.1


@pytest.mark.parametrize("finish", ["phone_transfer", "phone_threeway"])
def test_browser_consults_a_colleague_then_transfers_or_conferences(
        hotline_factory: Callable[..., HotlineProcess], phones: Callable[..., PjPhone],
        tmp_path: Path, finish: str) -> None:
    """On a queue call the browser dials 1002 (the caller is held, with music) and talks
    to it; then either completes an attended transfer (caller and 1002 talk, the browser
    is free) or makes a three-way call (all three hear each other)."""
    server = hotline_factory(QUEUE, routes_first=ROUTE)
    port = server.http_port  # type: ignore[attr-defined]
    heard = tmp_path / "heard.wav"

    async def scenario() -> None:
        async with _agent_page(port, tmp_path, heard) as a:
            colleague = phones(server, "1002")
            caller, _ = await _ready_and_called(a, server, phones)
            await a.cmd("phone_answer")
            await a.wait(lambda e: e.get("type") == "call_answered")
            await asyncio.sleep(1.0)
            await a.cmd("phone_dial", number="1002")
            consult = await a.wait(lambda e: e.get("type") == "phone" and e["state"] == "talking"
                                   and e["direction"] == "out")
            assert consult["held"] is not None and consult["held"]["peer"] == "1003"
            colleague.wait(event="state", call=0, state="CONFIRMED", timeout=10)
            await asyncio.sleep(1.5)
            t_joined = time.monotonic()
            await a.cmd(finish)
            if finish == "phone_transfer":
                await a.wait(lambda e: e.get("type") == "phone" and e["state"] == "idle"
                             and e["held"] is None)
                await asyncio.sleep(2.5)
            else:
                await a.wait(lambda e: e.get("type") == "phone" and e["held"] is None
                             and e["state"] == "talking")
                await asyncio.sleep(2.5)
                await a.cmd("phone_hangup")
            t_end = time.monotonic()
            caller.send("hangup", call=0)
            colleague.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
            caller.stop()
            colleague.stop()
            span = t_end - t_joined
            # The caller hears the colleague once joined (and the colleague the caller).
            c_on = _answer_offset(caller.recording(0), TONES["1001"])
            assert hears(caller.recording(0), TONES["1002"], last_s=min(span - 0.8, 2.0))
            assert hears(colleague.recording(0), TONES["1003"], last_s=min(span - 0.8, 2.0))
            if finish == "phone_threeway":  # the browser heard both in the conference
                assert c_on >= 0

    asyncio.run(scenario())
    if finish == "phone_threeway":
        assert hears(heard, TONES["1003"], last_s=1.5)
        assert hears(heard, TONES["1002"], last_s=1.5)


def test_only_call_control_may_ring_a_browser_phone(
        hotline_factory: Callable[..., HotlineProcess], tmp_path: Path) -> None:
    """Another local process sending an INVITE to the browsers' SIP port (here a
    supervision call to the supervisor's browser, which would be auto-answered) gets 403."""
    import re
    import socket

    server = hotline_factory(QUEUE, routes_first=ROUTE)
    port = server.http_port  # type: ignore[attr-defined]
    gw_port = int(re.search(r"softphone_listening host=\S+ port=(\d+)", server.log())[1])

    async def scenario() -> None:
        async with Browser(port, "boss", "pw-boss-secret",
                           tone_wav(tmp_path / "sup.wav", TONES["1002"]),
                           tmp_path / "heard.wav") as sup:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(3)
            me = sock.getsockname()[1]
            sock.sendto((
                f"INVITE sip:boss@127.0.0.1:{gw_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-intruder1\r\n"
                f"From: <sip:x@127.0.0.1:{me}>;tag=1\r\nTo: <sip:boss@127.0.0.1>\r\n"
                "Call-ID: intruder@x\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
                f"Contact: <sip:x@127.0.0.1:{me}>\r\nX-Hotline-Monitor: listen 1001\r\n"
                "Content-Length: 0\r\n\r\n").encode(), ("127.0.0.1", gw_port))
            reply = await asyncio.get_running_loop().run_in_executor(None, sock.recv, 4096)
            sock.close()
            assert reply.startswith(b"SIP/2.0 403"), reply[:80]
            await asyncio.sleep(0.3)
            assert not any(e.get("type") == "phone" and e["state"] != "idle"
                           for e in sup.events)

    asyncio.run(scenario())


def test_echo_test_plays_the_agent_back_to_itself(
        hotline_factory: Callable[..., HotlineProcess], tmp_path: Path) -> None:
    """The pre-shift headset check: with ``echo_test`` on the page hears its own
    microphone; off, it hears nothing."""
    server = hotline_factory(QUEUE, routes_first=ROUTE)
    port = server.http_port  # type: ignore[attr-defined]
    heard = tmp_path / "heard.wav"

    async def scenario() -> float:
        async with _agent_page(port, tmp_path, heard) as a:
            t0 = time.monotonic()
            await asyncio.sleep(1.0)
            t_on = time.monotonic() - t0
            reply = await a.cmd("echo_test", on=True)
            assert reply["phone"]["echo"] is True
            await asyncio.sleep(2.0)
            await a.cmd("echo_test", on=False)
            await asyncio.sleep(1.5)
            return t_on

    t_on = asyncio.run(scenario())
    assert not hears_during(heard, TONES["1001"], 0.0, t_on - 0.2)
    assert hears_during(heard, TONES["1001"], t_on + 0.6, t_on + 1.8)
    assert not hears(heard, TONES["1001"], last_s=0.8)
