"""In-call features between real phones (PJSIP): hold with music on hold, blind transfer
(REFER), attended transfer (REFER with Replaces), three-way conference (``*3``), the same
from the HTTP API, DTMF relay, and a carrier's early media reaching the caller.

Each phone sends its own tone (A 700 Hz, B 1100 Hz, C 1500 Hz) and records what it
hears per call, so "who hears whom" is read from the spectrum of those recordings.
"""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from hotline.moh import NOTES_HZ

from .audio import hears as _hears
from .audio import levels as _levels
from .audio import read_wav as _read
from .audio import tone_wav as _tone
from .peers import HotlineProcess, PjPhone, free_port, metric, start_sipp

pytestmark = pytest.mark.e2e

A_HZ, B_HZ, C_HZ = 700, 1100, 1500
SCENARIOS = Path(__file__).parent / "scenarios"
CONFERENCE_ROUTE = '[[routes]]\nmatch = "800"\nto = "conference:team"\n'
EXTRA_AGENT = """
[[agents]]
id = "1003"
name = "Zhang Min"
password = "pw-1003-secret"
"""


@pytest.fixture
def site(hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
         ) -> Iterator[tuple[HotlineProcess, Callable[[str], PjPhone]]]:
    server = hotline_factory(EXTRA_AGENT, routes_first=CONFERENCE_ROUTE)
    phones: list[PjPhone] = []
    tones = {"1001": A_HZ, "1002": B_HZ, "1003": C_HZ}

    def phone(user: str) -> PjPhone:
        p = PjPhone(tmp_path / f"phone-{user}", user, f"pw-{user}-secret", server.sip_port,
                    _tone(tmp_path / f"tone-{user}.wav", tones[user]))
        phones.append(p)
        ev = p.wait(event="registered", timeout=10)
        assert ev["code"] == 200, (ev, server.log()[-3000:])
        return p

    yield server, phone
    for p in phones:
        p.stop()


def _settled(server: HotlineProcess, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metric(server, "hotline_calls") == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"calls left over:\n{server.log()[-4000:]}")


def _call(server: HotlineProcess, caller: PjPhone, callee: PjPhone, number: str,
          call: int = 0) -> None:
    """``caller`` dials ``number``; ``callee`` rings and answers; ``caller``'s call number
    ``call`` is confirmed."""
    caller.send("call", uri=f"sip:{number}@127.0.0.1:{server.sip_port}")
    callee.wait(event="incoming", timeout=10)
    caller.wait(event="state", call=call, state="CONFIRMED", timeout=10)


def _hold_and_consult(server: HotlineProcess, b: PjPhone, c: PjPhone) -> None:
    """B holds its call 0 and calls C (its call 1)."""
    b.send("hold", call=0)
    b.wait(event="media", call=0, status="local_hold", timeout=10)
    _call(server, b, c, "1003", call=1)


def _hand_over(a: PjPhone, b: PjPhone, c: PjPhone) -> None:
    """B, with A held (its call 0) and C (its call 1), transfers A to C (REFER with
    Replaces); A and C talk on until A hangs up."""
    time.sleep(1.5)
    b.send("xfer_replaces", call=0, dest=1)
    b.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
    b.wait(event="state", call=1, state="DISCONNECTED", timeout=10)
    time.sleep(2.5)
    assert not a.has(event="state", call=0, state="DISCONNECTED")
    assert not c.has(event="state", call=0, state="DISCONNECTED")
    a.send("hangup", call=0)
    c.wait(event="state", call=0, state="DISCONNECTED", timeout=10)


def test_hold_plays_music_on_hold_and_resume_restores_the_talk(site) -> None:  # type: ignore[no-untyped-def]
    server, phone = site
    a, b = phone("1001"), phone("1002")
    _call(server, a, b, "1002")
    time.sleep(2.0)
    a.send("hold", call=0)
    a.wait(event="media", call=0, status="local_hold", timeout=10)
    time.sleep(3.0)
    a.send("unhold", call=0)
    a.wait(event="media", call=0, status="active", timeout=10)
    time.sleep(2.0)
    a.send("hangup", call=0)
    b.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
    b.stop()
    pcm, rate = _read(b.recording(0))
    notes = sorted({f for f in NOTES_HZ if f})
    lv = _levels(pcm, rate, [A_HZ, *notes])
    talk = lv[:, 0] > 500
    music = (lv[:, 1:].max(axis=1) > 200) & ~talk
    first_music = int(np.argmax(music))
    assert music.sum() >= 8, (music.astype(int).tolist(), talk.astype(int).tolist())
    # Talk, then music while held (never the held phone's tone), then talk again.
    assert talk[:first_music].sum() >= 5
    last_music = len(music) - 1 - int(np.argmax(music[::-1]))
    assert talk[last_music + 1:].sum() >= 5
    assert talk[first_music:last_music + 1].sum() <= 2
    log = server.log()
    assert "event=hold leg=caller" in log and "event=resume leg=caller" in log
    _settled(server)


def test_blind_transfer_connects_the_caller_to_the_target(site) -> None:  # type: ignore[no-untyped-def]
    server, phone = site
    a, b, c = phone("1001"), phone("1002"), phone("1003")
    _call(server, a, b, "1002")
    time.sleep(1.0)
    b.send("xfer", call=0, uri=f"sip:1003@127.0.0.1:{server.sip_port}")
    c.wait(event="incoming", timeout=10)
    c.wait(event="state", call=0, state="CONFIRMED", timeout=10)
    ev = b.wait(event="xfer_status", call=0, final=True, timeout=10)
    assert ev["code"] == 200, ev
    b.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
    time.sleep(2.5)
    # A never saw a new call: its one dialog now carries C.
    assert not a.has(event="state", call=0, state="DISCONNECTED")
    a.send("hangup", call=0)
    c.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
    for p in (a, c):
        p.stop()
    assert _hears(a.recording(0), C_HZ) and not _hears(a.recording(0), B_HZ)
    assert _hears(c.recording(0), A_HZ)
    log = server.log()
    assert "event=blind_transfer target=agent:1003" in log and "event=transferred" in log
    _settled(server)


def test_attended_transfer_joins_the_held_caller_and_the_consulted_agent(site) -> None:  # type: ignore[no-untyped-def]
    server, phone = site
    a, b, c = phone("1001"), phone("1002"), phone("1003")
    _call(server, a, b, "1002")
    _hold_and_consult(server, b, c)
    _hand_over(a, b, c)
    for p in (a, b, c):
        p.stop()
    # A and C talk; B (who left) is heard by neither, and A no longer hears music.
    assert _hears(a.recording(0), C_HZ) and not _hears(a.recording(0), B_HZ)
    assert _hears(c.recording(0), A_HZ) and not _hears(c.recording(0), B_HZ)
    assert not _hears(a.recording(0), NOTES_HZ[0], level=200)
    assert "event=attended_transfer" in server.log()
    _settled(server)
    server.stop()
    with sqlite3.connect(server.data_dir / "hotline.db") as db:
        rows = db.execute("SELECT leg, callee, agent, hangup_cause, recording_id FROM cdr"
                          " ORDER BY start_time, leg").fetchall()
        linked = {r[0] for r in db.execute("SELECT agent_id FROM recording_agents")}
    callers = [r for r in rows if r[0] == "caller"]
    # A's contact: one CDR and one recording, ending with the agent it was handed to;
    # B's consultation call ended as transferred.
    first = next(r for r in callers if r[1] == "1002")
    assert first[2] == "1003" and first[3] == "caller_bye" and first[4], rows
    assert any(r[1] == "1003" and r[3] == "transferred" for r in callers), rows
    assert {r[2] for r in rows if r[0] == "agent"} == {"1002", "1003"}, rows
    assert {"1002", "1003"} <= linked, linked


def test_attended_transfer_of_a_waiting_call_with_two_media_workers(
        hotline_factory: Callable[..., HotlineProcess], tmp_path: Path) -> None:
    # B talks with A, holds, and answers C's call (call waiting): C's call is not one B
    # made, yet it must land in the worker of B's first call (the pool would otherwise
    # put it in the idle one) so that B can hand A over to C.
    server = hotline_factory(EXTRA_AGENT, workers=2)
    phones = {u: PjPhone(tmp_path / f"phone-{u}", u, f"pw-{u}-secret", server.sip_port,
                         _tone(tmp_path / f"tone-{u}.wav", hz))
              for u, hz in (("1001", A_HZ), ("1002", B_HZ), ("1003", C_HZ))}
    try:
        for p in phones.values():
            assert p.wait(event="registered", timeout=10)["code"] == 200
        a, b, c = phones["1001"], phones["1002"], phones["1003"]
        _call(server, a, b, "1002")
        b.send("hold", call=0)
        b.wait(event="media", call=0, status="local_hold", timeout=10)
        c.send("call", uri=f"sip:1002@127.0.0.1:{server.sip_port}")
        c.wait(event="state", call=0, state="CONFIRMED", timeout=10)
        _hand_over(a, b, c)
    finally:
        for p in phones.values():
            p.stop()
    log = server.log()
    assert "event=attended_transfer" in log, log[-3000:]
    assert _hears(a.recording(0), C_HZ) and _hears(c.recording(0), A_HZ)
    _settled(server)


def test_star3_makes_a_three_way_call_of_the_held_and_the_consulted_party(site) -> None:  # type: ignore[no-untyped-def]
    server, phone = site
    a, b, c = phone("1001"), phone("1002"), phone("1003")
    _call(server, a, b, "1002")
    _hold_and_consult(server, b, c)
    time.sleep(1.0)
    b.send("dtmf", call=1, digits="*3")
    b.wait(event="state", call=0, state="DISCONNECTED", timeout=10)  # the held call is folded in
    time.sleep(3.0)
    b.send("hangup", call=1)  # B leaves; A and C go on talking
    time.sleep(2.5)
    assert not a.has(event="state", call=0, state="DISCONNECTED")
    a.send("hangup", call=0)
    c.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
    for p in (a, b, c):
        p.stop()
    pcm, rate = _read(b.recording(1))
    tail = pcm[-int(rate * 4.5):-int(rate * 1.0)]
    lv = np.median(_levels(tail, rate, [A_HZ, C_HZ]), axis=0)
    assert (lv > 500).all(), lv  # B heard both A and C
    assert _hears(a.recording(0), C_HZ)
    assert _hears(c.recording(0), A_HZ)
    assert "event=three_way" in server.log()
    _settled(server)


class _Api:
    """A logged-in HTTP API client (cookie session)."""

    def __init__(self, port: int, user: str, password: str) -> None:
        import http.cookiejar

        self.base = f"http://127.0.0.1:{port}"
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.post("/api/login", {"user": user, "password": password})

    def post(self, path: str, body: dict[str, object]) -> dict[str, object]:
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with self.opener.open(req, timeout=5) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]

    def get(self, path: str) -> dict[str, object]:
        with self.opener.open(self.base + path, timeout=5) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]


def test_api_hold_mute_and_transfer_act_on_the_agents_call(site) -> None:  # type: ignore[no-untyped-def]
    server, phone = site
    a, b, c = phone("1001"), phone("1002"), phone("1003")
    _call(server, a, b, "1002")
    api = _Api(server.http_port, "1002", "pw-1002-secret")  # type: ignore[attr-defined]
    calls = api.get("/api/calls")["calls"]
    assert len(calls) == 1, calls  # type: ignore[arg-type]
    call_id = calls[0]["id"]  # type: ignore[index]
    # Another agent cannot see it.
    other = _Api(server.http_port, "1003", "pw-1003-secret")  # type: ignore[attr-defined]
    assert other.get("/api/calls")["calls"] == []
    time.sleep(1.5)
    api.post(f"/api/calls/{call_id}/hold", {"on": True})
    time.sleep(2.5)
    api.post(f"/api/calls/{call_id}/hold", {"on": False})
    time.sleep(1.5)
    api.post(f"/api/calls/{call_id}/mute", {"on": True})
    time.sleep(2.0)
    api.post(f"/api/calls/{call_id}/mute", {"on": False})
    time.sleep(1.0)
    a_rec = a.recording(0)
    api.post(f"/api/calls/{call_id}/transfer", {"to": "1003"})
    c.wait(event="incoming", timeout=10)
    c.wait(event="state", call=0, state="CONFIRMED", timeout=10)
    b.wait(event="state", call=0, state="DISCONNECTED", timeout=10)  # hotline released B
    time.sleep(2.0)
    agent_view = api.get("/api/calls")["calls"]
    assert agent_view == [], agent_view  # B is no longer in the call, so B sees nothing
    a.send("hangup", call=0)
    c.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
    for p in (a, b, c):
        p.stop()
    pcm, rate = _read(a_rec)
    notes = sorted({f for f in NOTES_HZ if f})
    lv = _levels(pcm, rate, [B_HZ, C_HZ, *notes])
    b_on = lv[:, 0] > 500
    music = (lv[:, 2:].max(axis=1) > 200) & ~b_on
    # A heard B, then music (hold), then B, then silence (mute), then B, then C.
    assert music.sum() >= 5, music.astype(int).tolist()
    first_music = int(np.argmax(music))
    assert b_on[:first_music].sum() >= 4
    after = b_on[first_music:]
    gaps = np.flatnonzero(np.diff(after.astype(int)) != 0)
    assert len(gaps) >= 3, after.astype(int).tolist()  # B back, B muted, B back
    assert _hears(a_rec, C_HZ)
    log = server.log()
    assert "event=hold leg=1002 by=api" in log and "event=mute leg=1002" in log, log[-3000:]
    _settled(server)


def test_rfc4733_digits_are_relayed_to_the_other_phone(site) -> None:  # type: ignore[no-untyped-def]
    server, phone = site
    a, b = phone("1001"), phone("1002")
    _call(server, a, b, "1002")
    time.sleep(1.0)
    a.send("dtmf", call=0, digits="159#")
    got = "".join(str(b.wait(event="dtmf", call=0, timeout=5)["digit"]) for _ in range(4))
    assert got == "159#", got
    a.send("hangup", call=0)
    b.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
    _settled(server)


def test_carrier_early_media_reaches_the_caller_before_the_answer(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    uas_port = free_port()
    uas_dir = tmp_path / "uas"
    uas_dir.mkdir()
    (uas_dir / "pcap").symlink_to(Path("/usr/share/sip-tester"))
    uas = start_sipp(["-sf", str(SCENARIOS / "early_media_uas.xml"), "-i", "127.0.0.1",
                      "-p", str(uas_port), "-m", "1", "-timeout", "60s"], cwd=uas_dir)
    try:
        server = hotline_factory(trunk_port=uas_port)
        caller = PjPhone(tmp_path / "caller", "1001", "pw-1001-secret", server.sip_port,
                         _tone(tmp_path / "tone.wav", A_HZ))
        try:
            assert caller.wait(event="registered", timeout=10)["code"] == 200
            caller.send("call", uri=f"sip:95550100@127.0.0.1:{server.sip_port}")
            caller.wait(event="media", call=0, status="active", timeout=10)
            early = not caller.has(event="state", call=0, state="CONFIRMED")
            caller.wait(event="state", call=0, state="CONFIRMED", timeout=10)
            time.sleep(1.0)
            caller.send("hangup", call=0)
            caller.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
        finally:
            caller.stop()
        out, _ = uas.communicate(timeout=30)
        assert uas.returncode == 0, out.decode(errors="replace")[-3000:]
    finally:
        if uas.poll() is None:
            uas.kill()
            uas.wait(5)
    assert early, "the caller's media started only at the answer"
    assert "event=early_media" in server.log()
    pcm, rate = _read(caller.recording(0))
    first = pcm[: int(rate * 3.0)]  # the 4 s before the answer: the carrier's announcement
    assert np.sqrt(np.mean(first**2)) > 300, np.sqrt(np.mean(first**2))


def test_conference_room_mixes_everyone_and_outlives_each_participant(site) -> None:  # type: ignore[no-untyped-def]
    server, phone = site
    a, b, c = phone("1001"), phone("1002"), phone("1003")
    for p in (a, b, c):
        p.send("call", uri=f"sip:800@127.0.0.1:{server.sip_port}")
        p.wait(event="state", call=0, state="CONFIRMED", timeout=10)
        time.sleep(0.5)
    time.sleep(2.5)
    c.send("hangup", call=0)  # C leaves: A and B go on
    time.sleep(2.5)
    assert not a.has(event="state", call=0, state="DISCONNECTED")
    b.send("hangup", call=0)
    time.sleep(2.0)  # A alone: music on hold
    a.send("hangup", call=0)
    for p in (a, b, c):
        p.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
        p.stop()
    # C heard both others (N-1 mixing: not itself).
    pcm, rate = _read(c.recording(0))
    lv = np.median(_levels(pcm[-int(rate * 2.0):], rate, [A_HZ, B_HZ, C_HZ]), axis=0)
    assert lv[0] > 500 and lv[1] > 500 and lv[2] < 100, lv
    # B heard A and, before C left, C; at the end only A.
    assert _hears(b.recording(0), A_HZ) and not _hears(b.recording(0), C_HZ)
    # A, alone at the end, heard music on hold.
    pcm, rate = _read(a.recording(0))
    notes = sorted({f for f in NOTES_HZ if f})
    lv = _levels(pcm[-int(rate * 1.6):], rate, notes)
    assert (lv.max(axis=1) > 200).sum() >= 3, lv.max(axis=1)
    log = server.log()
    assert log.count("event=conference_join room=team") == 3, log[-3000:]
    _settled(server)


def test_api_recording_pause_leaves_the_stretch_out_of_the_same_file(site) -> None:  # type: ignore[no-untyped-def]
    import io

    import av

    server, phone = site
    a, b = phone("1001"), phone("1002")
    _call(server, a, b, "1002")
    api = _Api(server.http_port, "1002", "pw-1002-secret")  # type: ignore[attr-defined]
    call_id = api.get("/api/calls")["calls"][0]["id"]  # type: ignore[index]
    time.sleep(2.0)
    paused = api.post(f"/api/calls/{call_id}/recording", {"paused": True})
    assert paused["recording_paused"] is True, paused
    time.sleep(3.0)
    api.post(f"/api/calls/{call_id}/recording", {"paused": False})
    time.sleep(2.0)
    a.send("hangup", call=0)
    b.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
    _settled(server)
    found = api.get(f"/api/recordings?call_id={call_id}")["recordings"]
    assert len(found) == 1, found  # type: ignore[arg-type]
    rec_id = found[0]["id"]  # type: ignore[index]
    with api.opener.open(f"{api.base}/api/recordings/{rec_id}/audio", timeout=10) as resp:
        data = resp.read()
    with av.open(io.BytesIO(data)) as f:
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=8000)
        chunks = [o.to_ndarray().reshape(-1, 2) for fr in f.decode(audio=0)
                  for o in resampler.resample(fr)]
    pcm = np.concatenate(chunks).astype(float)
    # The paused 3 s are left out of the file: about 4 s of the 7 s call, loud throughout
    # (both phones' tones), none of it from the pause.
    seconds = len(pcm) / 8000
    assert 3.3 < seconds < 5.0, seconds
    n = 1600
    rms = np.array([np.sqrt(np.mean(pcm[i:i + n] ** 2)) for i in range(0, len(pcm) - n, n)])
    assert (rms > 1000).sum() >= len(rms) - 2, rms.round()
    assert "event=recording_paused" in server.log() and "event=recording_resumed" in server.log()
