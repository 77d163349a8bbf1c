"""Issue 4, first acceptance line: an IVR call from a carrier is recorded, and the
recording's two channels carry each side's audio.

SIPp is the carrier: it calls the IVR's number (95598), waits for the greeting, sends
RFC 4733 digit 1 from Debian's ``dtmf_2833_1.pcap`` and then talks (``g711a.pcap``).

* ``agent:1001``: key 1 sends the caller to a baresip agent (auto-answer) whose
  microphone is a WAV of seeded noise. The recording's left channel must hold the
  pcap's speech and not the agent; the right channel the IVR greeting (what the caller
  heard while alone) and then the agent's noise, and not the caller. The CDR row names
  caller, callee, route, agent, answer and end, billable seconds and the recording.
* ``play:PROMPT``: key 1 plays a prompt and hangs up. The right channel holds that
  prompt, the left one the caller.

Every check is a normalised cross-correlation peak with what was sent: > 0.6 for the
audio that must be there (real audio through G.711 and the jitter buffer scores about
0.95-1.0), < 0.3 for audio that must not (unrelated audio scores about 0.05), so
swapped or silent channels fail. Recordings are WAV here (``format = "wav"``): the
samples are what the media worker wrote, not an Opus re-encoding of them.
"""

from __future__ import annotations

import sqlite3
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from media.audiofile import write_wav

from .peers import (
    CALLER_BYE,
    Baresip,
    HotlineProcess,
    free_port,
    pcap_caller_scenario,
    run_sipp,
    server_bye,
)
from .test_media_path import PCAPS, _alaw_decode, _pcap_rtp_payloads

pytestmark = pytest.mark.e2e

ROUTE = '[[routes]]\nmatch = "95598"\nto = "ivr:main"\n'
RATE = 8000
GREETING_S = 1.5
#: Windows (seconds into g711a.pcap) that hold speech: the caller's side is checked there.
SPEECH = ((1.5, 2.5), (2.5, 3.5))

# The carrier: answer, greeting, digit 1 (RFC 4733), then the caller talks. ``{tail}``
# ends the call: the caller's BYE (agent), or the IVR's (play: hangs up after it).
SCENARIO = pcap_caller_scenario("IVR caller: greeting, RFC 4733 digit, speech", """\
  <pause milliseconds="{wait_ms}"/>
  <nop><action><exec play_pcap_audio="pcap/dtmf_2833_1.pcap"/></action></nop>
  <pause milliseconds="{talk_after_ms}"/>
  <nop><action><exec play_pcap_audio="pcap/g711a.pcap"/></action></nop>
{tail}
""")

CALLER_HANGS_UP = '  <pause milliseconds="9000"/>\n' + CALLER_BYE
IVR_HANGS_UP = server_bye(20000)


# -- audio helpers --------------------------------------------------------------------

def _noise(seed: int, seconds: float, std: float = 3000.0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(0, std, int(RATE * seconds))
    return np.clip(x, -32000, 32000).astype(np.int16)


def ncc_peak(signal: np.ndarray, ref: np.ndarray) -> float:
    """Peak normalised cross-correlation of ``ref`` slid along ``signal`` (-1..1)."""
    x, r = signal.astype(np.float64), ref.astype(np.float64)
    n = len(r)
    if len(x) < n:
        x = np.concatenate([x, np.zeros(n - len(x))])
    size = 1 << int(np.ceil(np.log2(len(x) + n)))
    num = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(r, size)), size)
    num = num[:len(x) - n + 1]
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    den = np.sqrt(np.maximum(c[n:] - c[:len(x) - n + 1], 0.0)) * np.sqrt(float(r @ r))
    return float(np.max(num / np.maximum(den, 1e-9 * (1.0 + den.max()))))


def _best(signal: np.ndarray, ref: np.ndarray, windows: tuple[tuple[float, float], ...]
          ) -> float:
    """Best peak over several windows of ``ref`` (a jitter-buffer stretch inside one
    window lowers that window only)."""
    return max(ncc_peak(signal, ref[int(a * RATE):int(b * RATE)]) for a, b in windows)


def _read_stereo(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 2 and w.getframerate() == RATE and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2)


# -- site and database ------------------------------------------------------------------

def _query(db: Path, sql: str, *args: object) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()


def _wait_done_recording(server: HotlineProcess, timeout: float = 15.0) -> None:
    """The worker closed the file and the index row is finished."""
    db = server.data_dir / "hotline.db"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _query(db, "SELECT id FROM recordings WHERE state = 'done'"):
            return
        time.sleep(0.2)
    raise AssertionError(f"no finished recording within {timeout} s\n{server.log()[-3000:]}")


def _start_site(hotline_factory: Callable[..., HotlineProcess], tmp_path: Path,
                menu_target: str, prompts: dict[str, np.ndarray]) -> HotlineProcess:
    # prompts are files under DATA_DIR/prompts, named relative to it
    prompt_dir = tmp_path / "data" / "prompts"
    prompt_dir.mkdir(parents=True, exist_ok=True)
    for name, samples in prompts.items():
        write_wav(str(prompt_dir / name), samples, rate=RATE)
    return hotline_factory(
        '\n[recording]\nformat = "wav"\n'
        '\n[ivr.main]\ngreeting = "greeting.wav"\ntimeout = 15\nretries = 0\n'
        f'menu = {{ "1" = "{menu_target}" }}\n', routes_first=ROUTE)


def _carrier(server: HotlineProcess, tmp_path: Path, tail: str, talk_after_ms: int) -> None:
    carrier = tmp_path / "carrier"
    carrier.mkdir()
    (carrier / "pcap").symlink_to(PCAPS)
    (carrier / "ivr_caller.xml").write_text(SCENARIO.format(
        wait_ms=int(GREETING_S * 1000) + 1000, talk_after_ms=talk_after_ms, tail=tail))
    res = run_sipp(["-sf", "ivr_caller.xml", f"127.0.0.1:{server.sip_port}", "-s", "95598",
                    "-i", "127.0.0.2", "-p", str(free_port(host="127.0.0.2")),
                    "-m", "1", "-timeout", "45s"], cwd=carrier, timeout=70)
    assert res.stats.get("Successful call") == 1, res.stdout[-3000:] + server.log()[-3000:]


def _the_recording(server: HotlineProcess) -> tuple[sqlite3.Row, np.ndarray]:
    (rec,) = _query(server.data_dir / "hotline.db", "SELECT * FROM recordings")
    assert rec["format"] == "wav" and rec["state"] == "done", dict(rec)
    frames = _read_stereo(server.data_dir / "recordings" / rec["path"])
    assert abs(len(frames) / RATE - rec["seconds"]) < 0.1, (len(frames), dict(rec))
    return rec, frames


# -- tests ----------------------------------------------------------------------------

def test_ivr_call_to_an_agent_is_recorded_caller_left_agent_right(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    greeting = _noise(10, GREETING_S)
    agent_voice = _noise(11, 30.0)
    server = _start_site(hotline_factory, tmp_path, "agent:1001", {"greeting.wav": greeting})
    mic = tmp_path / "agent-voice.wav"
    write_wav(str(mic), agent_voice, rate=RATE)
    agent = Baresip(tmp_path / "agent",
                    f"<sip:1001@127.0.0.1:{server.sip_port};transport=udp>"
                    ";auth_pass=pw-1001-secret;regint=300;answermode=auto", mic)
    agent.start()
    try:
        agent.wait_log(r"1001@127\.0\.0\.1: \{0/UDP/v4\} 200 OK", timeout=10)
        _carrier(server, tmp_path, CALLER_HANGS_UP, talk_after_ms=1500)
        agent.wait_event(lambda e: e.get("type") == "CALL_ESTABLISHED", timeout=10)
        agent.wait_event(lambda e: e.get("type") == "CALL_CLOSED", timeout=10)
    finally:
        agent.stop()
    _wait_done_recording(server)
    server.stop()  # flushes the CDR batch
    db = server.data_dir / "hotline.db"

    rec, frames = _the_recording(server)
    left, right = frames[:, 0], frames[:, 1]
    caller_voice = _alaw_decode(_pcap_rtp_payloads(PCAPS / "g711a.pcap"))
    agent_windows = ((2.0, 3.0), (3.0, 4.0), (4.0, 5.0))  # baresip plays from the answer
    # caller left: what SIPp sent, never the agent or the IVR
    assert _best(left, caller_voice, SPEECH) > 0.6
    assert _best(left, agent_voice, agent_windows) < 0.3
    assert ncc_peak(left, greeting) < 0.3
    # agent right: what baresip sent ...
    assert _best(right, agent_voice, agent_windows) > 0.6
    assert _best(right, caller_voice, SPEECH) < 0.3
    # ... and, before the agent was there, what the caller heard (the greeting)
    assert ncc_peak(right, greeting) > 0.6

    rows = {r["leg"]: r for r in _query(db, "SELECT * FROM cdr")}
    caller, leg = rows["caller"], rows["agent"]
    assert caller["caller"] == "sipp" and caller["callee"] == "95598", dict(caller)
    assert caller["route"] == "ivr:main" and caller["agent"] == "1001", dict(caller)
    assert caller["trunk"] == "carrier" and caller["direction"] == "inbound", dict(caller)
    assert caller["answer_time"] and caller["end_time"], dict(caller)
    assert caller["answer_time"] <= caller["end_time"], dict(caller)
    assert caller["disposition"] == "answered", dict(caller)
    assert caller["hangup_cause"] == "caller_bye", dict(caller)
    assert caller["billsec"] > 0, dict(caller)
    assert caller["recording_id"] == rec["id"], (dict(caller), dict(rec))
    assert leg["agent"] == "1001" and leg["disposition"] == "answered", dict(leg)
    # the recording's index row matches the call
    assert rec["call_id"] == caller["call_id"], (dict(rec), dict(caller))
    assert rec["caller"] == "sipp" and rec["callee"] == "95598", dict(rec)
    assert abs(rec["seconds"] - caller["billsec"]) <= 2, (dict(rec), dict(caller))
    agents = [r["agent_id"] for r in _query(
        db, "SELECT agent_id FROM recording_agents WHERE recording_id = ?", rec["id"])]
    assert agents == ["1001"], agents


def test_ivr_call_to_a_prompt_is_recorded_with_the_prompt_right(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    greeting, played = _noise(20, GREETING_S), _noise(21, 5.0)
    server = _start_site(hotline_factory, tmp_path, "play:played.wav",
                         {"greeting.wav": greeting, "played.wav": played})
    _carrier(server, tmp_path, IVR_HANGS_UP, talk_after_ms=200)
    _wait_done_recording(server)
    server.stop()
    db = server.data_dir / "hotline.db"

    rec, frames = _the_recording(server)
    left, right = frames[:, 0], frames[:, 1]
    caller_voice = _alaw_decode(_pcap_rtp_payloads(PCAPS / "g711a.pcap"))
    windows = ((0.5, 1.5), (2.0, 3.0), (3.5, 4.5))
    # right: the greeting, then the prompt the key chose (what the caller heard)
    assert ncc_peak(right, greeting) > 0.6
    assert _best(right, played, windows) > 0.6
    assert _best(right, caller_voice, SPEECH) < 0.3
    # left: the caller talking over the prompt, never the prompt
    assert _best(left, caller_voice, SPEECH) > 0.6
    assert _best(left, played, windows) < 0.3

    (caller,) = _query(db, "SELECT * FROM cdr")
    assert caller["leg"] == "caller" and caller["caller"] == "sipp", dict(caller)
    assert caller["callee"] == "95598" and caller["route"] == "ivr:main", dict(caller)
    assert not caller["agent"], dict(caller)
    assert caller["answer_time"] and caller["end_time"], dict(caller)
    assert caller["disposition"] == "answered" and caller["billsec"] > 0, dict(caller)
    assert caller["hangup_cause"] == "played", dict(caller)
    assert caller["recording_id"] == rec["id"] and rec["call_id"] == caller["call_id"]
    # greeting + 1 s + digit + the 5 s prompt, then the IVR hung up
    assert GREETING_S + 5.0 <= rec["seconds"] <= GREETING_S + 10.0, dict(rec)
