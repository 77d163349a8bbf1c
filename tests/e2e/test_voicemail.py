"""Issue 4, voicemail: a carrier's caller leaves messages in a box, the box's web-hook
hears of each, the API lists and serves them, and the owner listens by phone.

SIPp is the carrier (from 127.0.0.2). It calls ``5000`` (``voicemail:sales``), waits
for the greeting (a WAV of seeded noise) and the beep, then talks (``g711a.pcap``, 7 s
of speech) and ends the message one of three ways: it hangs up, it stays silent until
the box's ``silence_seconds`` end the recording (VAD), or it presses ``#`` (RFC 4733).
The owner calls ``5001`` (``voicemail:*sales``), presses ``1`` and hears the first
message.

Checks, as in ``test_ivr_recording.py``: normalised cross-correlation peaks with what
was sent (> 0.6 where the audio must be, < 0.3 where it must not). The message WAV
holds the caller on both channels and not the greeting; the owner's call recording
(``[recording] format = "wav"``) holds the message on its right channel (what the
owner heard). The web-hook receiver is a real HTTP server in the test.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import threading
import time
import urllib.error
import urllib.request
import wave
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from media.audiofile import write_wav

from .peers import (
    CALLER_BYE,
    HotlineProcess,
    free_port,
    pcap_caller_scenario,
    process_tree,
    run_sipp,
    server_bye,
    start_sipp,
)
from .test_ivr_recording import _best, _noise, _query, ncc_peak
from .test_media_path import PCAPS, _alaw_decode, _pcap_rtp_payloads

pytestmark = pytest.mark.e2e

RATE = 8000
GREETING_S = 1.5
#: After the answer: greeting, beep (0.4 s) and a margin, before the caller talks.
TALK_AT_MS = int(GREETING_S * 1000) + 1200
PCAP_S = 7.08
#: Windows (seconds into g711a.pcap) that hold speech.
SPEECH = ((1.5, 2.5), (2.5, 3.5), (4.0, 5.0))
ROUTES = ('[[routes]]\nmatch = "5000"\nto = "voicemail:sales"\n\n'
          '[[routes]]\nmatch = "5001"\nto = "voicemail:*sales"\n')

SCENARIO = pcap_caller_scenario("voicemail caller", "{body}\n")


def _pause(ms: int) -> str:
    return f'  <pause milliseconds="{ms}"/>\n'


def _play(pcap: str) -> str:
    return f'  <nop><action><exec play_pcap_audio="pcap/{pcap}"/></action></nop>\n'


HOTLINE_BYE = server_bye(30000)


# -- helpers -------------------------------------------------------------------------

class Hooks:
    """A real HTTP server receiving the box's notify_url POSTs."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 — the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hooks.received.append({"path": self.path, "type": self.headers["Content-Type"],
                                       "json": json.loads(body)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    h = Hooks()
    yield h
    h.close()


def _start(hotline_factory: Callable[..., HotlineProcess], tmp_path: Path, hooks: Hooks,
           greeting: np.ndarray, silence_seconds: int = 2) -> HotlineProcess:
    prompts = tmp_path / "data" / "prompts"
    prompts.mkdir(parents=True, exist_ok=True)
    write_wav(str(prompts / "greeting.wav"), greeting, rate=RATE)
    return hotline_factory(
        '\n[recording]\nformat = "wav"\n'
        '\n[voicemail.sales]\ngreeting = "greeting.wav"\n'
        f"silence_seconds = {silence_seconds}\nmin_seconds = 1\n"
        f'notify_url = "http://127.0.0.1:{hooks.port}/vm"\n'
        '\n[[users]]\nname = "admin"\npassword = "admin-secret-1"\nrole = "admin"\n'
        '\n[[users]]\nname = "boss"\npassword = "boss-secret-1"\nrole = "supervisor"\n',
        routes_first=ROUTES)


def _call(server: HotlineProcess, tmp_path: Path, name: str, number: str, body: str) -> None:
    work = tmp_path / name
    work.mkdir()
    (work / "pcap").symlink_to(PCAPS)
    (work / "scenario.xml").write_text(SCENARIO.format(body=body))
    res = run_sipp(["-sf", "scenario.xml", f"127.0.0.1:{server.sip_port}", "-s", number,
                    "-i", "127.0.0.2", "-p", str(free_port(host="127.0.0.2")),
                    "-m", "1", "-timeout", "60s"], cwd=work, timeout=90)
    assert res.stats.get("Successful call") == 1, res.stdout[-3000:] + server.log()[-4000:]


def _messages(server: HotlineProcess, count: int, timeout: float = 15.0) -> list[sqlite3.Row]:
    db = server.data_dir / "hotline.db"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _query(db, "SELECT * FROM voicemail ORDER BY id")
        if len(rows) >= count:
            return rows
        time.sleep(0.2)
    raise AssertionError(f"{count} messages expected\n{server.log()[-4000:]}")


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 2 and w.getframerate() == RATE and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2)


class Api:
    """A logged-in stdlib client of the server's HTTP API."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.port = port
        deadline = time.monotonic() + 10
        while True:
            try:
                status, body, headers = self.request("POST", "/api/login", json.dumps(
                    {"user": user, "password": password}).encode(),
                    {"Content-Type": "application/json"})
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert status == 200, body
        self.cookie = headers["Set-Cookie"].split(";")[0]

    def request(self, method: str, path: str, data: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method, headers=headers or {})
        if getattr(self, "cookie", None):
            req.add_header("Cookie", self.cookie)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    def json(self, method: str, path: str) -> Any:
        status, body, _ = self.request(method, path)
        assert status == 200, (status, body)
        return json.loads(body)


def _stop_reasons(server: HotlineProcess) -> list[str]:
    return re.findall(r"event=voicemail_stop .*?reason=(\S+)", server.log())


# -- tests -----------------------------------------------------------------------------

def test_caller_hangs_up_message_is_saved_notified_listed_and_served(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path, hooks: Hooks
) -> None:
    greeting = _noise(40, GREETING_S)
    server = _start(hotline_factory, tmp_path, hooks, greeting, silence_seconds=5)
    talk_ms = int(PCAP_S * 1000) + 800  # hang up before 5 s of silence would end it
    _call(server, tmp_path, "leave", "5000",
          _pause(TALK_AT_MS) + _play("g711a.pcap") + _pause(talk_ms) + CALLER_BYE)

    (row,) = _messages(server, 1)
    assert row["box"] == "sales" and row["caller"] == "sipp", dict(row)
    assert row["heard_at"] is None and row["deleted_at"] is None, dict(row)
    assert re.fullmatch(r"sales/\d{8}T\d{6}Z-[0-9a-f]{8}\.wav", row["path"]), dict(row)
    assert json.loads(row["variables"])["called"] == "5000", dict(row)
    # recorded from the end of the beep until the BYE
    assert PCAP_S - 0.5 <= row["seconds"] <= PCAP_S + 2.5, dict(row)
    assert _stop_reasons(server) == ["caller"]

    path = server.data_dir / "voicemail" / row["path"]
    frames = _read(path)
    assert abs(len(frames) / RATE - row["seconds"]) < 0.05, (len(frames), dict(row))
    caller_voice = _alaw_decode(_pcap_rtp_payloads(PCAPS / "g711a.pcap"))
    left, right = frames[:, 0], frames[:, 1]
    assert np.array_equal(left, right)  # the caller on both channels
    assert _best(left, caller_voice, SPEECH) > 0.6
    assert ncc_peak(left, greeting) < 0.3  # recording starts after the greeting

    # the web-hook, with the message's id and API audio path
    deadline = time.monotonic() + 10
    while not hooks.received and time.monotonic() < deadline:
        time.sleep(0.1)
    (hook,) = hooks.received
    assert hook["path"] == "/vm" and hook["type"].startswith("application/json")
    payload = hook["json"]
    assert payload["box"] == "sales" and payload["caller"] == "sipp", payload
    assert payload["id"] == row["id"] and float(payload["seconds"]) > 5, payload
    assert payload["audio"] == f"/api/voicemail/sales/{row['id']}/audio", payload

    # the API: listed, played with and without Range, marked heard, deleted
    api = Api(server.http_port, "admin", "admin-secret-1")  # type: ignore[attr-defined]
    listing = api.json("GET", "/api/voicemail/sales")
    assert listing["total"] == 1 and listing["new"] == 1, listing
    (msg,) = listing["messages"]
    assert msg["id"] == row["id"] and msg["caller"] == "sipp" and msg["new"], msg
    assert msg["audio"] == payload["audio"] and msg["content_type"] == "audio/wav", msg
    data = path.read_bytes()
    status, body, headers = api.request("GET", msg["audio"])
    assert status == 200 and body == data and headers["Content-Type"] == "audio/wav"
    status, body, headers = api.request("GET", msg["audio"], headers={"Range": "bytes=44-"})
    assert status == 206 and body == data[44:], (status, headers)
    assert headers["Content-Range"] == f"bytes 44-{len(data) - 1}/{len(data)}"
    assert api.json("GET", "/api/voicemail") == {"boxes": [
        {"box": "sales", "declared": True, "new": 1, "total": 1}]}
    heard = api.json("POST", f"/api/voicemail/sales/{row['id']}/heard")
    assert not heard["new"] and heard["heard_at"], heard
    status, _, _ = api.request("DELETE", f"/api/voicemail/sales/{row['id']}")
    assert status == 204 and not path.exists()
    assert api.json("GET", "/api/voicemail/sales")["messages"] == []
    assert api.request("GET", msg["audio"])[0] == 410
    # an agent login sees no box
    agent = Api(server.http_port, "1001", "pw-1001-secret")  # type: ignore[attr-defined]
    assert agent.request("GET", "/api/voicemail/sales")[0] == 403

    server.stop()
    (cdr,) = _query(server.data_dir / "hotline.db", "SELECT * FROM cdr")
    assert cdr["route"] == "voicemail:sales" and cdr["hangup_cause"] == "caller_bye", dict(cdr)
    assert cdr["disposition"] == "answered", dict(cdr)


def test_silence_and_pound_end_messages_and_the_owner_listens_by_phone(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path, hooks: Hooks
) -> None:
    greeting = _noise(41, GREETING_S)
    server = _start(hotline_factory, tmp_path, hooks, greeting, silence_seconds=2)
    # 1: the caller talks, then says nothing: 2 s of silence end it, hotline says
    # goodbye and hangs up
    _call(server, tmp_path, "silence", "5000",
          _pause(TALK_AT_MS) + _play("g711a.pcap") + HOTLINE_BYE)
    # 2: the caller talks, then presses # before the silence would end it
    _call(server, tmp_path, "pound", "5000",
          _pause(TALK_AT_MS) + _play("g711a.pcap") + _pause(int(PCAP_S * 1000) + 500)
          + _play("dtmf_2833_pound.pcap") + HOTLINE_BYE)
    first, second = _messages(server, 2)
    assert _stop_reasons(server) == ["silence", "dtmf"]
    # speech, the VAD hangover and the 2 s of silence (about 10.3 s); up to the key
    # (about 8.5 s)
    assert PCAP_S + 1.0 <= first["seconds"] <= PCAP_S + 5.0, dict(first)
    assert PCAP_S - 0.5 <= second["seconds"] <= PCAP_S + 3.0, dict(second)
    caller_voice = _alaw_decode(_pcap_rtp_payloads(PCAPS / "g711a.pcap"))
    for row in (first, second):
        frames = _read(server.data_dir / "voicemail" / row["path"])
        assert _best(frames[:, 0], caller_voice, SPEECH) > 0.6, dict(row)

    # 3: the owner calls the box (no PIN), presses 1 during the summary, hears the
    # first message, and hangs up
    _call(server, tmp_path, "listen", "5001",
          _pause(1500) + _play("dtmf_2833_1.pcap") + _pause(14000) + CALLER_BYE)
    db = server.data_dir / "hotline.db"
    rows = {r["id"]: r for r in _query(db, "SELECT * FROM voicemail")}
    assert rows[first["id"]]["heard_at"] is not None, dict(rows[first["id"]])
    assert rows[second["id"]]["heard_at"] is None, dict(rows[second["id"]])

    # the owner's call recording: the message on the right (what the owner heard)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        recs = _query(db, "SELECT r.* FROM recordings r JOIN cdr c ON c.recording_id = r.id "
                          "WHERE c.route = 'voicemail:*sales' AND r.state = 'done'")
        if recs:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(server.log()[-4000:])
    frames = _read(server.data_dir / "recordings" / recs[0]["path"])
    assert _best(frames[:, 1], caller_voice, SPEECH) > 0.6
    assert _best(frames[:, 0], caller_voice, SPEECH) < 0.3

    api = Api(server.http_port, "boss", "boss-secret-1")  # type: ignore[attr-defined]
    listing = api.json("GET", "/api/voicemail/sales")
    assert [m["id"] for m in listing["messages"]] == [second["id"], first["id"]]
    assert listing["new"] == 1 and listing["total"] == 2, listing
    assert api.json("GET", "/api/voicemail/sales?new=1")["messages"][0]["id"] == second["id"]
    assert len(hooks.received) == 2


def test_an_ivr_key_sends_the_caller_to_voicemail_with_its_variables(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path, hooks: Hooks
) -> None:
    """IVR ``transfer`` to ``voicemail:sales``: the answered caller goes on to the box's
    greeting and beep; the message keeps the IVR's variables (the key chosen)."""
    greeting, menu = _noise(42, GREETING_S), _noise(43, 1.0)
    prompts = tmp_path / "data" / "prompts"
    prompts.mkdir(parents=True, exist_ok=True)
    write_wav(str(prompts / "menu.wav"), menu, rate=RATE)
    write_wav(str(prompts / "greeting.wav"), greeting, rate=RATE)
    server = hotline_factory(
        '\n[ivr.main]\nstart = "choose"\n'
        '\n[ivr.main.steps.choose]\nkind = "menu"\nprompt = "menu.wav"\nvariable = "choice"\n'
        'options = { "1" = "voicemail:sales" }\ntimeout = 10\nretries = 0\n'
        '\n[voicemail.sales]\ngreeting = "greeting.wav"\nsilence_seconds = 5\n',
        routes_first='[[routes]]\nmatch = "95598"\nto = "ivr:main"\n')
    # the menu (1 s), key 1, then the box's greeting and beep, then the caller talks
    _call(server, tmp_path, "ivr", "95598",
          _pause(1500) + _play("dtmf_2833_1.pcap") + _pause(800 + TALK_AT_MS)
          + _play("g711a.pcap") + _pause(int(PCAP_S * 1000) + 500) + CALLER_BYE)
    (row,) = _messages(server, 1)
    variables = json.loads(row["variables"])
    assert variables["choice"] == "1" and variables["called"] == "95598", variables
    assert row["caller"] == "sipp" and PCAP_S - 1.0 <= row["seconds"] <= PCAP_S + 3.0
    frames = _read(server.data_dir / "voicemail" / row["path"])
    caller_voice = _alaw_decode(_pcap_rtp_payloads(PCAPS / "g711a.pcap"))
    assert _best(frames[:, 0], caller_voice, SPEECH) > 0.6
    assert ncc_peak(frames[:, 0], greeting) < 0.3 and ncc_peak(frames[:, 0], menu) < 0.3
    log = server.log()
    assert "event=ivr_transfer target=voicemail:sales" in log, log[-3000:]
    assert _stop_reasons(server) == ["caller"]
    server.stop()
    (cdr,) = _query(server.data_dir / "hotline.db", "SELECT * FROM cdr")
    assert cdr["route"] == "ivr:main" and cdr["hangup_cause"] == "caller_bye", dict(cdr)


def test_a_message_cut_by_kill_9_is_recovered_on_the_next_start(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path, hooks: Hooks
) -> None:
    """kill -9 of the server and its media worker while a caller is recording: the next
    start repairs the WAV and files the message (caller unknown) with the audio that
    reached the disk."""
    server = _start(hotline_factory, tmp_path, hooks, _noise(44, GREETING_S),
                    silence_seconds=5)
    work = tmp_path / "crash"
    work.mkdir()
    (work / "pcap").symlink_to(PCAPS)
    (work / "scenario.xml").write_text(SCENARIO.format(
        body=_pause(TALK_AT_MS) + _play("g711a.pcap") + _pause(20000) + CALLER_BYE))
    sipp = start_sipp(["-sf", "scenario.xml", f"127.0.0.1:{server.sip_port}", "-s", "5000",
                       "-i", "127.0.0.2", "-p", str(free_port(host="127.0.0.2")),
                       "-m", "1", "-timeout", "40s"], cwd=work)
    restarted: HotlineProcess | None = None
    try:
        deadline = time.monotonic() + 20
        while "event=voicemail_recording" not in server.log():
            assert time.monotonic() < deadline, server.log()[-3000:]
            time.sleep(0.1)
        time.sleep(5.0)  # speech flows into the message
        assert server.proc is not None
        victims = [server.proc.pid, *(process_tree(server.proc.pid) - {server.proc.pid})]
        assert len(victims) >= 2  # the control process and its media worker
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        server.proc.wait(5)
        sipp.kill()
        sipp.wait(5)
        db = server.data_dir / "hotline.db"
        assert _query(db, "SELECT id FROM voicemail") == []
        (left,) = (server.data_dir / "voicemail" / "sales").glob("*.wav")
        restarted = HotlineProcess(config=server.config, data_dir=server.data_dir,
                                   sip_port=server.sip_port)
        restarted.start()
        (row,) = _messages(restarted, 1)
    finally:
        if sipp.poll() is None:
            sipp.kill()
        if restarted is not None:
            restarted.stop()
    assert row["path"] == f"sales/{left.name}" and row["caller"] == "", dict(row)
    assert json.loads(row["variables"]) == {"recovered": "1"}
    assert 3.0 <= row["seconds"] <= 8.0, dict(row)
    frames = _read(left)
    assert abs(len(frames) / RATE - row["seconds"]) < 0.05
    caller_voice = _alaw_decode(_pcap_rtp_payloads(PCAPS / "g711a.pcap"))
    assert _best(frames[:, 0], caller_voice, ((1.0, 2.0), (2.0, 3.0))) > 0.6
    assert "event=voicemail_recovered" in restarted.log()
