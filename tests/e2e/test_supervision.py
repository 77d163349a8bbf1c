"""Supervision end to end: a supervisor's phone listens, whispers, barges and takes over
an agent's queue call, from feature codes and from the HTTP API. Each phone sends its own
tone, so who hears whom is read from each phone's recording."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from .audio import TONES, hears_during
from .peers import HotlineProcess, PjPhone
from .test_call_features import _Api
from .test_queues import AGENTS, _db, _feature, _queue, _queue_log, _route, _until

pytestmark = pytest.mark.e2e


def test_supervisor_listens_whispers_and_barges_heard_only_by_whom_they_should(
        hotline_factory: Callable[..., HotlineProcess], phones: Callable[..., PjPhone]) -> None:
    """Caller 1003 (1500 Hz) talks to agent 1001 (700 Hz) from the queue. Supervisor 1004
    (1900 Hz, permission "supervise") dials *601001: it hears both, neither hears it.
    DTMF 5 (whisper): the agent hears it, the caller does not. DTMF 6 (barge): both do.
    DTMF 7 (take over): the agent is released, the caller stays with the supervisor.
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
    sup.send("dtmf", call=0, digits="7")  # take over: the agent leaves, the caller stays
    agent.wait(event="state", call=1, state="DISCONNECTED", timeout=10)
    time.sleep(2.5)
    t_over = time.monotonic()
    assert not caller.has(event="state", call=0, state="DISCONNECTED")
    caller.send("hangup", call=0)
    caller.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
    sup.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
    for p in (agent, sup, caller):
        p.stop()
    s_hz = TONES["1004"]
    # After the take-over the caller talks with the supervisor alone.
    assert hears_during(caller.recording(0), s_hz, t_end - t_caller + 1.0,
                        t_over - t_caller - 0.4)
    assert not hears_during(caller.recording(0), TONES["1001"], t_end - t_caller + 1.0,
                            t_over - t_caller - 0.4)
    rows = _queue_log(server, until="TRANSFER")
    transfer = next(r for r in rows if r[0] == "TRANSFER")
    assert transfer[1:4] == ("1001", "support", "takeover:1004"), rows

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


def test_supervisor_from_the_api_rings_their_phone_switches_mode_and_disconnects(
        hotline_factory: Callable[..., HotlineProcess], phones: Callable[..., PjPhone]) -> None:
    """A supervisor logged into the web API starts listening to agent 1001's call on
    extension 1004's phone, switches to barge, then force-disconnects the call. The agent
    sees no supervisor leg in GET /api/calls; every action is in the audit table."""
    server = hotline_factory(
        AGENTS + _queue("support", agents=["1001"], wrapup=0)
        + '\n[[users]]\nname = "boss"\npassword = "boss-secret-1"\nrole = "supervisor"\n',
        routes_first=_route("200", "queue:support"))
    agent, sup, caller = phones(server, "1001"), phones(server, "1004"), phones(server, "1003")
    _feature(server, agent, "*50", 0)
    caller.send("call", uri=f"sip:200@127.0.0.1:{server.sip_port}")
    caller.wait(event="media", call=0, status="active", timeout=10)
    t_caller = time.monotonic()
    _until(agent, event="state", call=1, state="CONFIRMED")
    port = server.http_port  # type: ignore[attr-defined]
    boss = _Api(port, "boss", "boss-secret-1")
    (call,) = boss.get("/api/calls")["calls"]  # type: ignore[misc]
    boss.post(f"/api/calls/{call['id']}/supervise",
              {"agent": "1001", "phone": "1004", "mode": "listen"})
    sup.wait(event="media", call=0, status="active", timeout=10)
    t_listen = time.monotonic()
    legs = boss.get("/api/calls")["calls"][0]["legs"]  # type: ignore[index]
    assert {"listen"} == {x.get("monitor") for x in legs if x.get("monitor")}, legs
    seen_by_agent = _Api(port, "1001", "pw-1001-secret").get("/api/calls")["calls"]
    assert all("monitor" not in x for x in seen_by_agent[0]["legs"]), seen_by_agent  # type: ignore[index]
    assert len(seen_by_agent[0]["legs"]) == 2  # type: ignore[index]
    time.sleep(3.0)
    t_barge = time.monotonic()
    boss.post(f"/api/calls/{call['id']}/supervise",
              {"agent": "1001", "phone": "1004", "mode": "barge"})
    time.sleep(3.0)
    t_end = time.monotonic()
    boss.post(f"/api/calls/{call['id']}/hangup", {})
    for p in (caller, agent, sup):
        _until(p, event="state", call=1 if p is agent else 0, state="DISCONNECTED")
        p.stop()
    s_hz = TONES["1004"]
    assert hears_during(sup.recording(0), TONES["1003"], 0.6, t_barge - t_listen - 0.4)
    assert not hears_during(caller.recording(0), s_hz, t_listen - t_caller + 0.6,
                            t_barge - t_caller - 0.4)
    assert hears_during(caller.recording(0), s_hz, t_barge - t_caller + 0.6,
                        t_end - t_caller - 0.4)
    audit = _db(server, "SELECT actor, action, target FROM audit ORDER BY id")
    assert [a for a in audit if a[0] == "boss"] == [
        ("boss", "supervise:listen", "1001"), ("boss", "supervise:barge", "1001"),
        ("boss", "force_disconnect", "1003,1001,1004")], audit
    # The supervising phone's own actions are kept too (as for *6x from a phone).
    assert ("1004", "supervise:barge", "1001") in audit
