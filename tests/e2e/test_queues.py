"""Queues end to end: PJSIP phones as agents (they register, go ready with ``*50`` and
answer), callers from a PJSIP extension or SIPp through the carrier trunk.

Each agent's phone sends its own tone, so the caller's recording says which agent it
talked to; the queue log and agent states in SQLite say what the ACD did.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .audio import hears, hears_during, tone_wav
from .peers import HotlineProcess, PjPhone

pytestmark = pytest.mark.e2e

TONES = {"1001": 700, "1002": 1100, "1003": 1500, "1004": 1900}

AGENTS = """
[[agents]]
id = "1003"
name = "Zhang Min"
password = "pw-1003-secret"

[[agents]]
id = "1004"
name = "Chen Jie"
password = "pw-1004-secret"
"""


def _queue(name: str, **keys: object) -> str:
    lines = [f'[[queues]]\nname = "{name}"']
    for k, v in keys.items():
        lines.append(f"{k} = {v!r}".replace("'", '"') if not isinstance(v, bool)
                     else f"{k} = {'true' if v else 'false'}")
    return "\n".join(lines) + "\n"


def _route(number: str, target: str, priority: int = 0) -> str:
    return f'[[routes]]\nmatch = "{number}"\nto = "{target}"\npriority = {priority}\n'


@pytest.fixture
def phones(tmp_path: Path) -> Iterator[Callable[..., PjPhone]]:
    made: list[PjPhone] = []

    def make(server: HotlineProcess, user: str, answer_after: float = 0.0) -> PjPhone:
        p = PjPhone(tmp_path / f"phone-{user}-{len(made)}", user, f"pw-{user}-secret",
                    server.sip_port, tone_wav(tmp_path / f"tone-{user}.wav", TONES[user]),
                    answer_after=answer_after)
        made.append(p)
        ev = p.wait(event="registered", timeout=10)
        assert ev["code"] == 200, (ev, server.log()[-3000:])
        return p

    yield make
    for p in made:
        p.stop()


def _dial(server: HotlineProcess, phone: PjPhone, number: str, call: int) -> None:
    phone.send("call", uri=f"sip:{number}@127.0.0.1:{server.sip_port}")
    phone.wait(event="state", call=call, state="CONFIRMED", timeout=10)


def _feature(server: HotlineProcess, phone: PjPhone, code: str, call: int) -> None:
    """Dial a feature code; the server answers, beeps and hangs up."""
    _dial(server, phone, code, call)
    phone.wait(event="state", call=call, state="DISCONNECTED", timeout=10)


def _db(server: HotlineProcess, sql: str, args: tuple[object, ...] = ()) -> list[tuple]:
    con = sqlite3.connect(server.data_dir / "hotline.db")
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def _queue_log(server: HotlineProcess, timeout: float = 5.0, until: str = "") -> list[tuple]:
    """(event, agent, queue, data1, data2, data3) rows in order; waits for ``until``."""
    deadline = time.monotonic() + timeout
    while True:
        rows = _db(server, "SELECT event, agent, queue, data1, data2, data3 FROM queue_log "
                           "ORDER BY id")
        if not until or any(r[0] == until for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def _offers(server: HotlineProcess) -> list[str]:
    return re.findall(r"queue_offer.*?agent=(\d+)", server.log())


def test_longest_idle_agent_answers_and_the_caller_hears_them(
        hotline_factory: Callable[..., HotlineProcess], phones: Callable[..., PjPhone]) -> None:
    """Two agents go ready with *50, 1002 first; a caller dials the queue: 1002 (idle
    longest) is offered the call, answers, and the two hear each other. The queue log has
    ENTERQUEUE, CONNECT, COMPLETECALLER; the CDR names queue and agent."""
    server = hotline_factory(AGENTS + _queue("support", strategy="longest-idle",
                                             agents=["1001", "1002"], wrapup=0),
                             routes_first=_route("200", "queue:support"))
    a1, a2 = phones(server, "1001"), phones(server, "1002")
    _feature(server, a2, "*50", 0)
    time.sleep(0.3)
    _feature(server, a1, "*50", 0)
    caller = phones(server, "1003")
    _dial(server, caller, "200", 0)
    a2.wait(event="incoming", call=1, timeout=10)
    time.sleep(2.5)
    caller.send("hangup", call=0)
    caller.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
    a2.wait(event="state", call=1, state="DISCONNECTED", timeout=10)
    assert not a1.has(event="incoming", call=1)
    for p in (caller, a1, a2):
        p.stop()  # finishes the recordings
    assert hears(caller.recording(0), TONES["1002"], last_s=1.0)
    assert hears(a2.recording(1), TONES["1003"], last_s=1.0)
    rows = _queue_log(server, until="COMPLETECALLER")
    events = [r[0] for r in rows if r[2] == "support"]
    assert events[-3:] == ["ENTERQUEUE", "CONNECT", "COMPLETECALLER"], rows
    connect = next(r for r in rows if r[0] == "CONNECT")
    assert connect[1] == "1002"
    cdr = _db(server, "SELECT queue, agent FROM cdr WHERE leg = 'caller' ORDER BY id")
    assert cdr[-1] == ("support", "1002")
    states = [r[0] for r in _db(server, "SELECT state FROM agent_states WHERE agent = '1002' "
                                        "ORDER BY id")]
    assert states[-4:] == ["ringing", "on_call", "wrapup", "ready"], states


def test_ring_no_answer_sets_not_ready_and_the_next_agent_gets_the_caller(
        hotline_factory: Callable[..., HotlineProcess], phones: Callable[..., PjPhone]) -> None:
    """linear: 1001 is first but does not answer within ring_timeout; it goes not ready
    (ring-no-answer) and the caller, back at the front, is offered to 1002."""
    server = hotline_factory(AGENTS + _queue("sales", strategy="linear",
                                             agents=["1001", "1002"], ring_timeout=2,
                                             wrapup=0),
                             routes_first=_route("201", "queue:sales"))
    a1 = phones(server, "1001", answer_after=60)
    a2 = phones(server, "1002")
    _feature(server, a1, "*50", 0)
    _feature(server, a2, "*50", 0)
    caller = phones(server, "1003")
    _dial(server, caller, "201", 0)
    a1.wait(event="incoming", call=1, timeout=10)
    a1.wait(event="state", call=1, state="DISCONNECTED", timeout=6)  # CANCELled at 2 s
    a2.wait(event="incoming", call=1, timeout=10)
    time.sleep(1.5)
    caller.send("hangup", call=0)
    caller.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
    caller.stop()
    assert hears(caller.recording(0), TONES["1002"], last_s=1.0)
    rows = _queue_log(server, until="COMPLETECALLER")
    events = [(r[0], r[1]) for r in rows if r[2] == "sales" and r[0] != "ADDMEMBER"]
    assert ("RINGNOANSWER", "1001") in events
    assert events.index(("RINGNOANSWER", "1001")) < events.index(("CONNECT", "1002"))
    assert ("PAUSE", "1001") in events
    last = _db(server, "SELECT state, reason FROM agent_states WHERE agent = '1001' "
                       "ORDER BY id DESC LIMIT 1")
    assert last == [("not_ready", "ring-no-answer")]


def test_supervisor_listens_whispers_and_barges_heard_only_by_whom_they_should(
        hotline_factory: Callable[..., HotlineProcess], phones: Callable[..., PjPhone]) -> None:
    """Caller 1003 (1500 Hz) talks to agent 1001 (700 Hz) from the queue. Supervisor 1004
    (1900 Hz, permission "supervise") dials *601001: it hears both, neither hears it.
    DTMF 5 (whisper): the agent hears it, the caller does not. DTMF 6 (barge): both do.
    Read from each phone's audio."""
    site = AGENTS.replace('password = "pw-1004-secret"',
                          'password = "pw-1004-secret"\npermissions = ["supervise"]')
    server = hotline_factory(site + _queue("support", agents=["1001"], wrapup=0),
                             routes_first=_route("200", "queue:support"))
    agent, sup, caller = phones(server, "1001"), phones(server, "1004"), phones(server, "1003")
    _feature(server, agent, "*50", 0)
    caller.send("call", uri=f"sip:200@127.0.0.1:{server.sip_port}")
    caller.wait(event="media", call=0, status="active", timeout=10)
    t_caller = time.monotonic()
    agent.wait(event="media", call=1, status="active", timeout=10)
    t_agent = time.monotonic()
    time.sleep(1.0)
    sup.send("call", uri=f"sip:*601001@127.0.0.1:{server.sip_port}")
    sup.wait(event="media", call=0, status="active", timeout=10)
    t_sup = time.monotonic()
    time.sleep(3.0)
    t_whisper = time.monotonic()
    sup.send("dtmf", call=0, digits="5")
    time.sleep(3.0)
    t_barge = time.monotonic()
    sup.send("dtmf", call=0, digits="6")
    time.sleep(3.0)
    t_end = time.monotonic()
    caller.send("hangup", call=0)
    caller.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
    sup.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
    for p in (agent, sup, caller):
        p.stop()
    s_hz = TONES["1004"]

    def window(t0: float, a: float, b: float) -> tuple[float, float]:
        return a - t0 + 0.6, b - t0 - 0.4  # margins for signalling and jitter

    # Listen: the supervisor hears both; nobody hears the supervisor.
    assert hears_during(sup.recording(0), TONES["1001"], *window(t_sup, t_sup, t_whisper))
    assert hears_during(sup.recording(0), TONES["1003"], *window(t_sup, t_sup, t_whisper))
    assert not hears_during(caller.recording(0), s_hz, *window(t_caller, t_sup, t_whisper))
    assert not hears_during(agent.recording(1), s_hz, *window(t_agent, t_sup, t_whisper))
    # Whisper: the agent hears the supervisor, the caller does not.
    assert hears_during(agent.recording(1), s_hz, *window(t_agent, t_whisper, t_barge))
    assert not hears_during(caller.recording(0), s_hz, *window(t_caller, t_whisper, t_barge))
    assert hears_during(caller.recording(0), TONES["1001"],
                        *window(t_caller, t_whisper, t_barge))
    # Barge: both hear the supervisor.
    assert hears_during(agent.recording(1), s_hz, *window(t_agent, t_barge, t_end))
    assert hears_during(caller.recording(0), s_hz, *window(t_caller, t_barge, t_end))
    log = server.log()
    assert "event=supervise " in log and "mode=whisper" in log and "mode=barge" in log
