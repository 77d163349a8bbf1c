"""Queues end to end: PJSIP phones as agents (they register, go ready with ``*50`` and
answer), callers from a PJSIP extension or SIPp through the carrier trunk.

Each agent's phone sends its own tone, so the caller's recording says which agent it
talked to; the queue log and agent states in SQLite say what the ACD did.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from .audio import TONES, hears
from .peers import (
    HotlineProcess,
    PjPhone,
    free_port,
    pcap_caller_scenario,
    server_bye,
    start_sipp,
)

pytestmark = pytest.mark.e2e


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


def _dial(server: HotlineProcess, phone: PjPhone, number: str, call: int) -> None:
    phone.send("call", uri=f"sip:{number}@127.0.0.1:{server.sip_port}")
    phone.wait(event="state", call=call, state="CONFIRMED", timeout=10)


def _feature(server: HotlineProcess, phone: PjPhone, code: str, call: int) -> None:
    """Dial a feature code; the server answers, beeps and hangs up."""
    _dial(server, phone, code, call)
    phone.wait(event="state", call=call, state="DISCONNECTED", timeout=10)


def _until(phone: PjPhone, timeout: float = 10.0, **match: object) -> None:
    """Wait until any event so far matches (in whatever order events came: a queue call
    may ring while the *50 call still beeps)."""
    deadline = time.monotonic() + timeout
    while not phone.has(**match):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{phone.user}: no {match}; got {phone.events}")
        time.sleep(0.05)


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
    port = server.http_port  # type: ignore[attr-defined]
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    text = metrics.decode()
    for line in ('hotline_queue_offered_today{queue="support"} 1.0',
                 'hotline_queue_answered_today{queue="support"} 1.0',
                 'hotline_queue_service_level_ratio{queue="support"} 1.0',
                 'hotline_queue_waiting{queue="support"} 0.0',
                 'hotline_agents{state="ready"} 2.0'):
        assert line in text, text[-3000:]


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


PCAPS = Path("/usr/share/sip-tester")


def _sipp_caller(server: HotlineProcess, work: Path, number: str, caller: str,
                 body: str) -> subprocess.Popen[bytes]:
    """A carrier caller (from 127.0.0.2) with number ``caller`` dialling ``number``; the
    scenario ``body`` follows the ACK."""
    work.mkdir(parents=True)
    (work / "pcap").symlink_to(PCAPS)
    text = pcap_caller_scenario("queue caller", body).replace(
        "sipp <sip:sipp@", f"sipp <sip:{caller}@")
    (work / "scenario.xml").write_text(text)
    return start_sipp(["-sf", "scenario.xml", f"127.0.0.1:{server.sip_port}", "-s", number,
                       "-i", "127.0.0.2", "-p", str(free_port(host="127.0.0.2")),
                       "-m", "1", "-timeout", "60s"], cwd=work)


def _finish(proc: subprocess.Popen[bytes], timeout: float = 40.0) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out.decode(errors="replace")


def test_waiting_caller_hears_announcements_then_leaves_at_max_wait(
        hotline_factory: Callable[..., HotlineProcess], tmp_path: Path) -> None:
    """No agent is logged in: the caller waits, is told its position every 2 s, and at
    max_wait (5 s) goes to the overflow target (here: hang up). The queue log says
    EXITWITHTIMEOUT with the wait."""
    server = hotline_factory(_queue("wait", announce_every=2, max_wait=5,
                                    overflow="hangup"),
                             routes_first=_route("205", "queue:wait"))
    start = time.monotonic()
    sipp = _sipp_caller(server, tmp_path / "caller", "205", "95550009", server_bye(15000))
    out = _finish(sipp)
    took = time.monotonic() - start
    assert sipp.returncode == 0, out[-2000:] + server.log()[-3000:]
    assert 4.5 < took < 9, took
    rows = _queue_log(server, until="EXITWITHTIMEOUT")
    events = [r[0] for r in rows if r[2] == "wait"]
    assert events == ["ENTERQUEUE", "EXITWITHTIMEOUT"], rows
    exit_row = rows[-1]
    assert exit_row[3:5] == ("1", "1") and int(exit_row[5]) == 5, exit_row
    announced = re.findall(r"event=queue_announce .*?prompt=\"?tts:You are caller number 1",
                           server.log())
    assert len(announced) == 2, server.log()[-3000:]


def test_priority_caller_overtakes_and_wrapup_holds_the_agent(
        hotline_factory: Callable[..., HotlineProcess], phones: Callable[..., PjPhone],
        tmp_path: Path) -> None:
    """A normal caller joins, then a VIP (route priority 10). The one agent goes ready:
    the VIP is offered first. The agent hangs up; the next offer waits out the 3 s
    wrap-up."""
    server = hotline_factory(_queue("mixed", agents=["1001"], wrapup=3),
                             routes_first=_route("203", "queue:mixed")
                             + _route("204", "queue:mixed", priority=10))
    agent = phones(server, "1001")
    normal = _sipp_caller(server, tmp_path / "normal", "203", "95550001", server_bye(30000))
    time.sleep(1.0)
    vip = _sipp_caller(server, tmp_path / "vip", "204", "95550002", server_bye(30000))
    time.sleep(1.0)
    _feature(server, agent, "*50", 0)
    _until(agent, event="state", call=1, state="CONFIRMED")
    time.sleep(1.0)
    agent.send("hangup", call=1)
    _until(agent, event="state", call=1, state="DISCONNECTED")
    hung_up = time.monotonic()
    _until(agent, event="incoming", call=2)
    second_offer = time.monotonic() - hung_up
    time.sleep(1.0)
    agent.send("hangup", call=2)
    _until(agent, event="state", call=2, state="DISCONNECTED")
    for proc in (normal, vip):
        out = _finish(proc)
        assert proc.returncode == 0, out[-2000:] + server.log()[-3000:]
    assert 2.5 < second_offer < 5.0, second_offer
    rows = _queue_log(server, until="COMPLETEAGENT")
    callers = _db(server, "SELECT call_id, data2 FROM queue_log WHERE event = 'ENTERQUEUE'")
    by_call = {cid: num for cid, num in callers}
    connects = _db(server, "SELECT call_id FROM queue_log WHERE event = 'CONNECT' ORDER BY id")
    assert [by_call[c] for (c,) in connects] == ["95550002", "95550001"], rows


def test_callback_keeps_the_place_and_is_dialled_when_an_agent_frees_up(
        hotline_factory: Callable[..., HotlineProcess], phones: Callable[..., PjPhone],
        tmp_path: Path) -> None:
    """The caller presses 2 for a callback and is hung up after the confirmation. When
    agent 1001 goes ready, its phone rings first; on answer hotline dials the caller's
    number out through the carrier, where SIPp answers."""
    trunk_port = free_port()
    server = hotline_factory(_queue("cb", agents=["1001"], wrapup=0) +
                             '[queues.keys]\n"2" = "callback"\n',
                             routes_first=_route("202", "queue:cb"), trunk_port=trunk_port)
    carrier = start_sipp(["-sn", "uas", "-i", "127.0.0.1", "-p", str(trunk_port),
                          "-m", "1", "-timeout", "60s"], cwd=tmp_path)
    caller = _sipp_caller(
        server, tmp_path / "caller", "202", "95551234",
        '  <pause milliseconds="1500"/>\n'
        '  <nop><action><exec play_pcap_audio="pcap/dtmf_2833_2.pcap"/></action></nop>\n'
        + server_bye(15000))
    out = _finish(caller)
    assert caller.returncode == 0, out[-2000:] + server.log()[-3000:]
    agent = phones(server, "1001")
    _feature(server, agent, "*50", 0)
    _until(agent, event="state", call=1, state="CONFIRMED")
    time.sleep(2.0)
    agent.send("hangup", call=1)
    _until(agent, event="state", call=1, state="DISCONNECTED")
    out = _finish(carrier)
    assert carrier.returncode == 0, out[-2000:] + server.log()[-3000:]
    rows = _queue_log(server, until="COMPLETEAGENT")
    events = [(r[0], r[1]) for r in rows if r[2] == "cb" and r[0] not in (
        "ADDMEMBER", "PAUSE", "UNPAUSE")]
    assert events == [("ENTERQUEUE", "NONE"), ("EXITWITHKEY", "NONE"), ("CONNECT", "1001"),
                      ("COMPLETEAGENT", "1001")], rows
    assert "event=callback_connected" in server.log()
    cdr = _db(server, "SELECT callee, agent, disposition FROM cdr WHERE leg = 'caller' "
                      "ORDER BY id DESC LIMIT 1")
    assert cdr == [("95551234", "1001", "answered")], cdr


def test_agents_stay_logged_in_across_a_crash(
        hotline_factory: Callable[..., HotlineProcess], phones: Callable[..., PjPhone]) -> None:
    """An agent is ready; the server is killed (-9) and started again: the agent is ready
    again without dialling *50 and gets the next caller. The history closes the agent's
    state at the last event before the crash (reason server_restart)."""
    server = hotline_factory(AGENTS + _queue("support", agents=["1001"], wrapup=0),
                             routes_first=_route("200", "queue:support"))
    agent = phones(server, "1001")
    _feature(server, agent, "*50", 0)
    time.sleep(0.5)  # the state change is written (CDR batch interval)
    server.kill()
    server.start()
    caller = phones(server, "1003")
    _dial(server, caller, "200", 0)
    _until(agent, event="state", call=1, state="CONFIRMED")
    caller.send("hangup", call=0)
    _until(agent, event="state", call=1, state="DISCONNECTED")
    states = _db(server, "SELECT state, reason FROM agent_states WHERE agent = '1001' "
                         "ORDER BY id")
    assert ("logged_out", "server_restart") in states, states
    after = states[states.index(("logged_out", "server_restart")) + 1:]
    assert after[:3] == [("ready", ""), ("ringing", ""), ("on_call", "")], states


def test_ring_all_rings_every_ready_agent_and_the_first_to_answer_takes_it(
        hotline_factory: Callable[..., HotlineProcess], phones: Callable[..., PjPhone]) -> None:
    """ring-all: both ready agents ring; 1001 answers first, 1002's ring is CANCELled and
    1002 stays ready (a withdrawn offer is no ring-no-answer)."""
    server = hotline_factory(AGENTS + _queue("all", strategy="ring-all",
                                             agents=["1001", "1002"], wrapup=0),
                             routes_first=_route("206", "queue:all"))
    a1 = phones(server, "1001", answer_after=0.5)
    a2 = phones(server, "1002", answer_after=5)
    _feature(server, a1, "*50", 0)
    _feature(server, a2, "*50", 0)
    caller = phones(server, "1003")
    _dial(server, caller, "206", 0)
    _until(a2, event="incoming", call=1)
    _until(a1, event="state", call=1, state="CONFIRMED")
    _until(a2, event="state", call=1, state="DISCONNECTED")
    assert not a2.has(event="state", call=1, state="CONFIRMED")
    time.sleep(1.5)
    caller.send("hangup", call=0)
    _until(caller, event="state", call=0, state="DISCONNECTED")
    caller.stop()
    assert hears(caller.recording(0), TONES["1001"], last_s=1.0)
    rows = _queue_log(server, until="COMPLETECALLER")
    assert [(r[0], r[1]) for r in rows if r[0] in ("CONNECT", "RINGNOANSWER")] == [
        ("CONNECT", "1001")], rows
    last = _db(server, "SELECT state FROM agent_states WHERE agent = '1002' "
                       "ORDER BY id DESC LIMIT 1")
    assert last == [("ready",)]


def test_round_robin_goes_on_after_the_last_agent_offered(
        hotline_factory: Callable[..., HotlineProcess], phones: Callable[..., PjPhone]) -> None:
    """round-robin (with memory): members 1001, 1002, 1003 in that order, made ready in
    reverse order (longest-idle would start with 1003). Three callers in turn reach
    1001, 1002, 1003."""
    server = hotline_factory(AGENTS + _queue("rr", strategy="round-robin",
                                             agents=["1001", "1002", "1003"], wrapup=0),
                             routes_first=_route("207", "queue:rr"))
    agents = {a: phones(server, a) for a in ("1003", "1002", "1001")}
    for a in ("1003", "1002", "1001"):
        _feature(server, agents[a], "*50", 0)
        time.sleep(0.2)
    caller = phones(server, "1004")
    for n in range(3):
        _dial(server, caller, "207", n)
        time.sleep(0.8)
        caller.send("hangup", call=n)
        _until(caller, event="state", call=n, state="DISCONNECTED")
        time.sleep(0.3)
    rows = _queue_log(server, until="COMPLETECALLER")
    connects = [r[1] for r in rows if r[0] == "CONNECT"]
    assert connects == ["1001", "1002", "1003"], rows


def test_skills_prefers_the_higher_level_and_sticky_the_last_agent(
        hotline_factory: Callable[..., HotlineProcess], phones: Callable[..., PjPhone]) -> None:
    """skills: 1004 (sales 5) gets the call although 1003 (sales 2) has waited longer.
    sticky: caller 1001's second call goes to the agent of its first (1003), although
    1004 has been idle longer by then."""
    site = AGENTS.replace('password = "pw-1003-secret"',
                          'password = "pw-1003-secret"\nskills = { sales = 2 }').replace(
        'password = "pw-1004-secret"', 'password = "pw-1004-secret"\nskills = { sales = 5 }')
    server = hotline_factory(
        site + _queue("sk", strategy="skills", agents=["1003", "1004"], wrapup=0)
        + '[queues.skills]\nsales = 1\n'
        + _queue("st", strategy="sticky", agents=["1003", "1004"], wrapup=0),
        routes_first=_route("208", "queue:sk") + _route("209", "queue:st"))
    a3, a4 = phones(server, "1003"), phones(server, "1004")
    _feature(server, a3, "*50", 0)
    time.sleep(0.3)
    _feature(server, a4, "*50", 0)
    caller = phones(server, "1001")

    def call(number: str, n: int) -> None:
        _dial(server, caller, number, n)
        time.sleep(0.8)
        caller.send("hangup", call=n)
        _until(caller, event="state", call=n, state="DISCONNECTED")
        time.sleep(0.3)

    call("208", 0)  # skills: 1004
    call("209", 1)  # sticky, nobody yet for this caller in "st": longest idle, 1003
    call("209", 2)  # sticky: 1003 again, though 1004 is now idle longer
    rows = _queue_log(server, until="COMPLETECALLER")
    connects = [(r[2], r[1]) for r in rows if r[0] == "CONNECT"]
    assert connects == [("sk", "1004"), ("st", "1003"), ("st", "1003")], rows


def test_max_wait_overflows_to_another_queue_whose_agent_answers(
        hotline_factory: Callable[..., HotlineProcess], phones: Callable[..., PjPhone]) -> None:
    """Queue "front" has nobody ready; after max_wait (2 s) the caller overflows to queue
    "back", where 1002 is ready and answers. One contact: one CDR naming the agent."""
    server = hotline_factory(
        AGENTS + _queue("front", agents=["1001"], max_wait=2, overflow="queue:back",
                        wrapup=0)
        + _queue("back", agents=["1002"], wrapup=0),
        routes_first=_route("210", "queue:front"))
    agent = phones(server, "1002")
    _feature(server, agent, "*50", 0)
    caller = phones(server, "1003")
    _dial(server, caller, "210", 0)
    _until(agent, event="state", call=1, state="CONFIRMED")
    time.sleep(1.0)
    caller.send("hangup", call=0)
    _until(agent, event="state", call=1, state="DISCONNECTED")
    rows = _queue_log(server, until="COMPLETECALLER")
    events = [(r[2], r[0]) for r in rows if r[0] not in ("ADDMEMBER", "PAUSE", "UNPAUSE")]
    assert events == [("front", "ENTERQUEUE"), ("front", "EXITWITHTIMEOUT"),
                      ("back", "ENTERQUEUE"), ("back", "CONNECT"),
                      ("back", "COMPLETECALLER")], rows
    time.sleep(0.5)
    cdr = _db(server, "SELECT queue, agent FROM cdr WHERE leg = 'caller' AND callee = '210'")
    assert cdr == [("back", "1002")], cdr
