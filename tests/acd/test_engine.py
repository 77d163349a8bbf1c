"""The ACD engine in scenarios: who gets the call, and what call control, the wallboard
and the queue log see. Each test drives :class:`acd.engine.Acd` through :class:`Center`,
a fake call control that keeps the clock and collects the events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import pytest

from acd.agent import AgentState
from acd.engine import Acd
from acd.errors import AcdError
from acd.events import (
    AcdEvent,
    AgentStateChanged,
    Announce,
    CallLeftQueue,
    CallOffered,
    OfferWithdrawn,
    PlayMessage,
    QueueEvent,
)
from hotline.config import AgentConfig, QueueConfig, Secret, Target

S = AgentState
START = 1000.0


def queue(name: str, **kw: Any) -> QueueConfig:
    """A queue; unlike the site defaults, no max wait and no wrap-up unless asked."""
    kw.setdefault("max_wait", 0)
    kw.setdefault("wrapup", 0)
    if "skills" in kw:
        kw["skills"] = MappingProxyType(kw["skills"])
    if "keys" in kw:
        kw["keys"] = MappingProxyType(kw["keys"])
    return QueueConfig(name=name, **kw)


def agent(agent_id: str, **skills: int) -> AgentConfig:
    return AgentConfig(agent_id, f"Agent {agent_id}", Secret("a-long-password"),
                       MappingProxyType(skills))


class Center:
    """A fake call control around one :class:`Acd`: the clock, and every event so far."""

    def __init__(self, queues: Sequence[QueueConfig], agents: Sequence[str | AgentConfig],
                 members: Mapping[str, Sequence[str]], **kw: Any) -> None:
        cfgs = [a if isinstance(a, AgentConfig) else agent(a) for a in agents]
        self.acd = Acd(queues, cfgs, members, **kw)
        self.now = START
        self.log: list[AcdEvent] = []

    def take(self) -> list[AcdEvent]:
        """Events since the last call; the invariants are checked on the way."""
        self.acd.check_invariants()
        out = []
        while (ev := self.acd.next_event()) is not None:
            out.append(ev)
        self.log += out
        return out

    def advance(self, seconds: float) -> list[AcdEvent]:
        """Let ``seconds`` pass, firing each timer at its own time."""
        end = self.now + seconds
        while (t := self.acd.get_timer()) is not None and t <= end:
            self.now = max(self.now, t)
            self.acd.handle_timer(self.now)
        self.now = end
        return self.take()

    def ready(self, *agents: str, gap: float = 1.0) -> list[AcdEvent]:
        """Agents press ready in this order, ``gap`` seconds apart (longest idle first)."""
        for a in agents:
            self.acd.ready(a, self.now)
            self.now += gap
        return self.take()

    def call(self, call_id: str, queue: str, **kw: Any) -> list[AcdEvent]:
        kw.setdefault("caller", f"+4930{call_id}")
        self.acd.enqueue(call_id, queue, self.now, **kw)
        return self.take()

    def answer(self, call_id: str, agent: str) -> list[AcdEvent]:
        assert self.acd.answered(call_id, agent, self.now)
        return self.take()

    def hangup(self, call_id: str, by_agent: bool = False) -> list[AcdEvent]:
        self.acd.call_ended(call_id, self.now, by_agent=by_agent)
        return self.take()

    def state(self, agent: str) -> AgentState:
        return self.acd.agents[agent].state


def offers(events: Sequence[AcdEvent]) -> list[tuple[str, str]]:
    """(call, agent) of each CallOffered."""
    return [(e.call_id, e.agent) for e in events if isinstance(e, CallOffered)]


def offered_to(events: Sequence[AcdEvent]) -> list[str]:
    return [e.agent for e in events if isinstance(e, CallOffered)]


def qlog(events: Sequence[AcdEvent], *names: str) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(call, agent, event, data) of the queue-log lines among ``events``."""
    return [(e.call_id, e.agent, e.event, e.data) for e in events
            if isinstance(e, QueueEvent) and (not names or e.event in names)]


def of(events: Sequence[AcdEvent], cls: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def serve(c: Center, call_id: str, agent: str, talk: float = 10.0) -> None:
    """``agent`` answers its ringing ``call_id``, talks ``talk`` seconds, the caller hangs up."""
    c.answer(call_id, agent)
    c.advance(talk)
    c.hangup(call_id)


# -- strategies ----------------------------------------------------------------------------


def test_ring_all_rings_every_ready_member_and_the_first_answer_wins() -> None:
    c = Center([queue("sales", strategy="ring-all")], ["a", "b", "c", "d"],
               {"sales": ["a", "b", "c", "d"]})
    c.ready("a", "b", "d")
    c.acd.login("c", c.now)  # logged in, not ready: not rung
    assert offers(c.call("1", "sales")) == [("1", "a"), ("1", "b"), ("1", "d")]
    assert all(c.state(a) is S.RINGING for a in "abd")
    c.now += 3
    evs = c.answer("1", "b")
    assert [(e.agent, e.reason) for e in of(evs, OfferWithdrawn)] == [
        ("a", "answered_elsewhere"), ("d", "answered_elsewhere")]
    assert (c.state("a"), c.state("b"), c.state("d")) == (S.READY, S.ON_CALL, S.READY)
    # the late answer is refused: call control hangs that leg up
    assert not c.acd.answered("1", "a", c.now)
    assert qlog(evs, "CONNECT") == [("1", "b", "CONNECT", ("3", "1", "3"))]


def test_longest_idle_takes_the_agent_ready_longest() -> None:
    c = Center([queue("sales")], ["a", "b", "c"], {"sales": ["a", "b", "c"]})
    c.ready("b", "c", "a")
    assert offered_to(c.call("1", "sales")) == ["b"]
    serve(c, "1", "b")  # b is idle again from now: the last in line
    assert offered_to(c.call("2", "sales")) == ["c"]
    assert offered_to(c.call("3", "sales")) == ["a"]
    c.answer("2", "c")
    c.answer("3", "a")
    assert offered_to(c.call("4", "sales")) == ["b"]


def test_an_offer_that_stopped_ringing_keeps_the_agent_s_idle_place() -> None:
    """Only a finished call (or coming back from a break) sends an agent to the back of the
    longest-idle order, as Asterisk's and FreeSWITCH's "last call" do; a ring that stopped
    because the caller hung up or a colleague answered first is not work."""
    c = Center([queue("sales"), queue("all", strategy="ring-all")], ["a", "b", "c"],
               {"sales": ["a", "b", "c"], "all": ["a", "b", "c"]})
    c.ready("a", "b", "c")
    assert offered_to(c.call("1", "sales")) == ["a"]
    c.hangup("1")  # abandoned while a's phone rang
    assert offered_to(c.call("2", "sales")) == ["a"]
    c.hangup("2")
    assert offered_to(c.call("3", "all")) == ["a", "b", "c"]
    c.answer("3", "c")  # a and b were rung and withdrawn
    assert offered_to(c.call("4", "sales")) == ["a"]


def test_round_robin_goes_on_after_the_member_offered_last() -> None:
    c = Center([queue("sales", strategy="round-robin")], ["a", "b", "c", "d"],
               {"sales": ["a", "b", "c", "d"]})
    c.ready("d", "c", "b", "a")  # idle order must not matter
    got = []
    for i in range(6):
        (call, who), = offers(c.call(str(i), "sales"))
        got.append(who)
        serve(c, call, who)
    assert got == ["a", "b", "c", "d", "a", "b"]
    # memory survives a member not being ready: c is skipped, d is next after b
    c.acd.not_ready("c", c.now, "break")
    assert offered_to(c.call("x", "sales")) == ["d"]
    serve(c, "x", "d")
    assert offered_to(c.call("y", "sales")) == ["a"]


def test_fewest_calls_prefers_the_agent_with_fewest_answered() -> None:
    c = Center([queue("sales", strategy="fewest-calls")], ["a", "b", "c"],
               {"sales": ["a", "b", "c"]})
    c.ready("a", "b")
    assert offered_to(c.call("1", "sales")) == ["a"]
    serve(c, "1", "a")
    assert offered_to(c.call("2", "sales")) == ["b"]
    serve(c, "2", "b")
    c.advance(30)
    c.ready("c")  # the newest idle, but no call yet today
    assert offered_to(c.call("3", "sales")) == ["c"]
    c.acd.rejected("3", "c", c.now)  # a refused offer is not an answered call
    evs = c.take()
    assert offered_to(evs) == ["a"]  # a and b tie on 1 call: longest idle


def test_least_talk_time_prefers_the_agent_who_talked_least() -> None:
    c = Center([queue("sales", strategy="least-talk-time")], ["a", "b"], {"sales": ["a", "b"]})
    c.ready("a", "b")
    assert offered_to(c.call("1", "sales")) == ["a"]
    c.answer("1", "a")
    c.advance(90)
    assert offered_to(c.call("2", "sales")) == ["b"]
    c.answer("2", "b")
    c.advance(10)
    c.hangup("1")  # a: 100 s of talk, idle since now
    c.advance(5)
    c.hangup("2")  # b: 15 s of talk, idle for less time than a
    assert offered_to(c.call("3", "sales")) == ["b"]


def test_linear_takes_members_in_list_order() -> None:
    c = Center([queue("sales", strategy="linear")], ["a", "b", "c"], {"sales": ["c", "a", "b"]})
    c.ready("a", "b", "c")
    assert offered_to(c.call("1", "sales")) == ["c"]
    assert offered_to(c.call("2", "sales")) == ["a"]
    serve(c, "1", "c")
    assert offered_to(c.call("3", "sales")) == ["c"]


def _random_picks(seed: int) -> list[str]:
    c = Center([queue("sales", strategy="random")], list("abcde"), {"sales": list("abcde")},
               seed=seed)
    c.ready("a", "c", "e")
    c.acd.login("b", c.now)
    picks = []
    for i in range(40):
        (call, who), = offers(c.call(str(i), "sales"))
        picks.append(who)
        serve(c, call, who, talk=1)
    return picks


def test_random_is_seeded_and_only_picks_ready_members() -> None:
    picks = _random_picks(7)
    assert set(picks) == {"a", "c", "e"}
    assert picks == _random_picks(7)
    assert picks != _random_picks(8)


def test_skills_highest_level_first_then_longest_idle() -> None:
    agents = [agent("a", spanish=3), agent("b", spanish=5, billing=9),
              agent("c", spanish=5), agent("d", spanish=2)]
    c = Center([queue("es", strategy="skills", skills={"spanish": 1})], agents,
               {"es": ["a", "b", "c", "d"]})
    c.ready("a", "c", "b", "d")
    got = [offered_to(c.call(str(i), "es"))[0] for i in range(4)]
    assert got == ["c", "b", "a", "d"]


def test_skills_level_is_the_lowest_of_the_required_skills() -> None:
    agents = [agent("a", spanish=9, billing=1), agent("b", spanish=4, billing=4)]
    c = Center([queue("es", strategy="skills", skills={"spanish": 1, "billing": 1})], agents,
               {"es": ["a", "b"]})
    c.ready("a", "b")
    assert offered_to(c.call("1", "es")) == ["b"]


def test_sticky_prefers_the_last_agent_within_the_window() -> None:
    c = Center([queue("vip", strategy="sticky", sticky_window=3600)], ["a", "b"],
               {"vip": ["a", "b"]})
    c.ready("a", "b")
    assert offered_to(c.call("1", "vip", caller="+491701")) == ["a"]
    serve(c, "1", "a")
    c.advance(5)
    assert offered_to(c.call("2", "vip", caller="+491702")) == ["b"]  # fallback: longest idle
    serve(c, "2", "b")
    c.advance(5)
    # a is the longest idle, but the caller talked to b last
    assert offered_to(c.call("3", "vip", caller="+491702")) == ["b"]
    serve(c, "3", "b")
    # b not ready: the fallback strategy
    c.acd.not_ready("b", c.now, "break")
    assert offered_to(c.call("4", "vip", caller="+491702")) == ["a"]
    serve(c, "4", "a")
    c.ready("b")
    # outside the window the caller is a stranger again: longest idle (b just became ready)
    c.advance(3601)
    assert offered_to(c.call("5", "vip", caller="+491701")) == ["a"]


def test_sticky_does_not_treat_withheld_numbers_as_one_caller() -> None:
    c = Center([queue("vip", strategy="sticky")], ["a", "b"], {"vip": ["a", "b"]})
    c.ready("a", "b")
    assert offered_to(c.call("1", "vip", caller="")) == ["a"]
    serve(c, "1", "a")
    assert offered_to(c.call("2", "vip", caller="")) == ["b"]  # longest idle, not "a again"


def test_sticky_fallback_strategy_is_used_outside_the_window() -> None:
    c = Center([queue("vip", strategy="sticky", sticky_window=60, sticky_fallback="linear")],
               ["a", "b"], {"vip": ["a", "b"]})
    c.ready("b", "a")
    assert offered_to(c.call("1", "vip", caller="+491701")) == ["a"]
    serve(c, "1", "a")
    c.acd.not_ready("a", c.now, "break")
    assert offered_to(c.call("2", "vip", caller="+491701")) == ["b"]
    serve(c, "2", "b")
    c.ready("a")
    c.advance(61)
    assert offered_to(c.call("3", "vip", caller="+491701")) == ["a"]  # linear, not sticky b


# -- one matcher across queues ---------------------------------------------------------------


def test_agent_in_two_queues_takes_the_caller_who_waited_longest_across_both() -> None:
    c = Center([queue("a-q"), queue("b-q")], ["x", "y"], {"a-q": ["x", "y"], "b-q": ["x"]})
    c.ready("x")
    c.call("busy", "a-q")
    c.answer("busy", "x")
    c.call("b1", "b-q")
    c.advance(5)
    c.call("a1", "a-q")
    c.advance(5)
    c.call("b2", "b-q")
    evs = c.hangup("busy")
    assert offers(evs) == [("b1", "x")]
    serve(c, "b1", "x")
    assert offers(c.log)[-1] == ("a1", "x")


def test_priority_queue_beside_a_general_one_overtakes() -> None:
    c = Center([queue("general"), queue("vip", priority=10)], ["x"],
               {"general": ["x"], "vip": ["x"]})
    c.call("g1", "general")
    c.advance(60)
    c.call("v1", "vip")
    assert offers(c.ready("x")) == [("v1", "x")]
    assert of(c.log, CallOffered)[-1].priority == 10
    serve(c, "v1", "x")
    assert offers(c.log)[-1] == ("g1", "x")


def test_route_priority_overtakes_within_a_queue_and_fifo_within_a_priority() -> None:
    c = Center([queue("sales")], ["x"], {"sales": ["x"]})
    c.call("1", "sales")
    c.advance(1)
    c.call("2", "sales")
    c.advance(1)
    c.call("3", "sales", priority=5)
    c.advance(1)
    c.call("4", "sales", priority=5)
    assert [e.call_id for e in c.acd.waiting("sales")] == ["3", "4", "1", "2"]
    got = []
    c.ready("x")
    for _ in range(4):
        call = of(c.log, CallOffered)[-1].call_id
        got.append(call)
        serve(c, call, "x")
    assert got == ["3", "4", "1", "2"]


def test_enqueue_reports_the_position_in_line() -> None:
    c = Center([queue("sales")], ["x"], {"sales": ["x"]})
    assert c.acd.enqueue("1", "sales", c.now) == 1
    assert c.acd.enqueue("2", "sales", c.now) == 2
    assert c.acd.enqueue("3", "sales", c.now, priority=1) == 1
    with pytest.raises(AcdError):
        c.acd.enqueue("1", "sales", c.now)


# -- ring-no-answer --------------------------------------------------------------------------


def test_ring_no_answer_sends_the_caller_to_the_next_agent() -> None:
    c = Center([queue("sales", ring_timeout=15)], ["a", "b"], {"sales": ["a", "b"]})
    c.ready("a", "b")
    assert offered_to(c.call("1", "sales")) == ["a"]
    assert c.acd.get_timer() == c.now + 15
    evs = c.advance(15)
    assert [type(e).__name__ for e in evs] == [
        "QueueEvent", "OfferWithdrawn", "QueueEvent", "AgentStateChanged", "AgentStateChanged",
        "CallOffered"]
    assert qlog(evs, "RINGNOANSWER") == [("1", "a", "RINGNOANSWER", ("15000",))]
    assert of(evs, OfferWithdrawn) == [OfferWithdrawn("1", "a", "ring_timeout")]
    change = of(evs, AgentStateChanged)[0]
    assert (change.agent, change.state, change.previous, change.reason) == (
        "a", "not_ready", "ringing", "ring-no-answer")
    assert qlog(evs, "PAUSE") == [("NONE", "a", "PAUSE", ("ring-no-answer",))]
    assert offers(evs) == [("1", "b")]
    assert of(evs, CallOffered)[0].wait == 15  # from the first time the caller joined


def test_ring_no_answer_keeps_the_caller_s_front_place() -> None:
    c = Center([queue("sales", ring_timeout=15)], ["a", "b"], {"sales": ["a", "b"]})
    c.ready("a")
    c.call("1", "sales")
    c.advance(5)
    c.call("2", "sales")
    c.advance(10)
    assert c.state("a") is S.NOT_READY
    assert [e.call_id for e in c.acd.waiting("sales")] == ["1", "2"]
    assert offers(c.ready("b")) == [("1", "b")]


def test_refused_offer_counts_as_ring_no_answer_without_a_withdraw() -> None:
    c = Center([queue("sales")], ["a", "b"], {"sales": ["a", "b"]})
    c.ready("a", "b")
    c.call("1", "sales")
    c.acd.rejected("1", "a", c.now)
    evs = c.take()
    assert not of(evs, OfferWithdrawn)  # the phone already stopped
    assert (c.state("a"), c.acd.agents["a"].reason) == (S.NOT_READY, "ring-no-answer")
    assert offers(evs) == [("1", "b")]
    c.acd.rejected("1", "a", c.now)  # a stale refusal changes nothing
    assert c.take() == [] and c.state("b") is S.RINGING


# -- wrap-up ---------------------------------------------------------------------------------


def test_wrapup_holds_the_agent_then_ready() -> None:
    c = Center([queue("sales", wrapup=30)], ["a"], {"sales": ["a"]})
    c.ready("a")
    c.call("1", "sales")
    c.answer("1", "a")
    c.advance(60)
    evs = c.hangup("1")
    assert c.state("a") is S.WRAPUP
    assert of(evs, AgentStateChanged)[-1].call_id == "1"
    assert c.acd.get_timer() == c.now + 30
    c.call("2", "sales")
    assert not offers(c.advance(29.9))
    evs = c.advance(0.1)
    assert [(e.state, e.previous) for e in of(evs, AgentStateChanged)] == [
        ("ready", "wrapup"), ("ringing", "ready")]
    assert offers(evs) == [("2", "a")]


def test_extend_wrapup() -> None:
    c = Center([queue("sales", wrapup=30)], ["a"], {"sales": ["a"]})
    c.ready("a")
    c.call("1", "sales")
    serve(c, "1", "a")
    c.advance(20)
    c.acd.extend_wrapup("a", 60, c.now)
    assert c.advance(69) == [] and c.state("a") is S.WRAPUP
    c.advance(1)
    assert c.state("a") is S.READY
    with pytest.raises(AcdError):
        c.acd.extend_wrapup("a", 60, c.now)


def test_not_ready_pressed_during_a_call_takes_effect_after_wrapup() -> None:
    c = Center([queue("sales", wrapup=30)], ["a"], {"sales": ["a"]})
    c.ready("a")
    c.call("1", "sales")
    c.answer("1", "a")
    c.acd.not_ready("a", c.now, "lunch")
    assert c.take() == [] and c.state("a") is S.ON_CALL
    c.call("2", "sales")
    c.advance(10)
    c.hangup("1")
    evs = c.advance(30)
    assert (c.state("a"), c.acd.agents["a"].reason) == (S.NOT_READY, "lunch")
    assert [(e.state, e.previous, e.reason) for e in of(evs, AgentStateChanged)] == [
        ("not_ready", "wrapup", "lunch")]
    assert not offers(evs)


def test_logout_pressed_during_a_call_takes_effect_after_wrapup() -> None:
    c = Center([queue("sales", wrapup=5)], ["a"], {"sales": ["a"]})
    c.ready("a")
    c.call("1", "sales")
    c.answer("1", "a")
    c.acd.logout("a", c.now)
    c.hangup("1", by_agent=True)
    evs = c.advance(5)
    assert c.state("a") is S.LOGGED_OUT
    assert qlog(evs, "REMOVEMEMBER") == [("NONE", "a", "REMOVEMEMBER", ())]
    assert c.acd.logged_into("a") == []


def test_no_wrapup_means_ready_at_once() -> None:
    c = Center([queue("sales", wrapup=0)], ["a"], {"sales": ["a"]})
    c.ready("a")
    c.call("1", "sales")
    c.call("2", "sales")
    c.answer("1", "a")
    evs = c.hangup("1")
    assert [e.state for e in of(evs, AgentStateChanged)] == ["wrapup", "ready", "ringing"]
    assert offers(evs) == [("2", "a")]


# -- leaving the queue -----------------------------------------------------------------------


def test_max_wait_sends_the_caller_to_overflow() -> None:
    c = Center([queue("sales", max_wait=60, overflow=Target("voicemail", "general"))], ["a"],
               {"sales": ["a"]})
    c.call("1", "sales")
    c.advance(10)
    c.call("2", "sales")
    assert c.advance(49.9) == []
    evs = c.advance(0.1)
    assert evs == [
        QueueEvent(c.now, "1", "sales", "NONE", "EXITWITHTIMEOUT", ("1", "1", "60")),
        CallLeftQueue("1", "sales", "voicemail:general", "max_wait"),
    ]
    assert [e.call_id for e in c.acd.waiting("sales")] == ["2"]


def test_max_wait_while_ringing_stops_the_phone() -> None:
    c = Center([queue("sales", max_wait=20, ring_timeout=30)], ["a"], {"sales": ["a"]})
    c.ready("a")
    c.call("1", "sales")
    evs = c.advance(20)
    assert of(evs, OfferWithdrawn) == [OfferWithdrawn("1", "a", "caller_left")]
    assert of(evs, CallLeftQueue) == [CallLeftQueue("1", "sales", "", "max_wait")]
    assert c.state("a") is S.READY
    assert not c.acd.answered("1", "a", c.now)


def test_join_empty_false_turns_callers_away_while_nobody_is_logged_in() -> None:
    c = Center([queue("night", join_empty=False, overflow=Target("voicemail", "night"))],
               ["a"], {"night": ["a"]})
    assert c.acd.enqueue("1", "night", c.now) == 0
    assert c.take() == [QueueEvent(c.now, "1", "night", "NONE", "JOINEMPTY"),
                        CallLeftQueue("1", "night", "voicemail:night", "empty")]
    assert "1" not in c.acd.calls
    c.acd.login("a", c.now)  # logged in on a break still counts as staffed
    assert c.acd.enqueue("2", "night", c.now) == 1


def test_leave_when_empty_moves_callers_on_when_the_last_member_logs_out() -> None:
    c = Center([queue("night", leave_when_empty=True, overflow=Target("voicemail", "night"))],
               ["a", "b"], {"night": ["a", "b"]})
    c.acd.login("a", c.now)
    c.acd.login("b", c.now)
    c.call("1", "night")
    c.call("2", "night")
    c.acd.logout("a", c.now)
    assert not of(c.take(), CallLeftQueue)
    c.advance(30)
    c.acd.logout("b", c.now)
    evs = c.take()
    assert qlog(evs, "EXITEMPTY") == [("1", "NONE", "EXITEMPTY", ("1", "1", "30")),
                                      ("2", "NONE", "EXITEMPTY", ("1", "2", "30"))]
    assert of(evs, CallLeftQueue) == [CallLeftQueue("1", "night", "voicemail:night", "empty"),
                                      CallLeftQueue("2", "night", "voicemail:night", "empty")]
    assert c.acd.waiting("night") == []


def test_closed_queue_turns_callers_away() -> None:
    hours: list[bool] = [False]
    c = Center([queue("sales", closed=Target("ivr", "closed"), overflow=Target("hangup"))],
               ["a"], {"sales": ["a"]}, is_open=lambda q, now: hours[0])
    assert c.acd.enqueue("1", "sales", c.now) == 0
    assert c.take() == [CallLeftQueue("1", "sales", "ivr:closed", "closed")]
    hours[0] = True
    assert c.acd.enqueue("2", "sales", c.now) == 1


# -- keys and callbacks ----------------------------------------------------------------------


def test_exit_key_sends_the_caller_to_its_target() -> None:
    c = Center([queue("sales", keys={"0": "voicemail:sales", "9": "callback"})], ["a"],
               {"sales": ["a"]})
    c.call("1", "sales")
    c.call("2", "sales")
    c.advance(12)
    assert not c.acd.key("2", "5", c.now)
    assert c.acd.key("2", "0", c.now)
    assert c.take() == [
        QueueEvent(c.now, "2", "sales", "NONE", "EXITWITHKEY", ("0", "2", "2", "12")),
        CallLeftQueue("2", "sales", "voicemail:sales", "key"),
    ]
    assert not c.acd.key("2", "0", c.now)  # gone


def test_callback_keeps_the_place_and_the_agent_gets_the_number() -> None:
    c = Center([queue("sales", keys={"9": "callback"}, max_wait=60, announce_every=20)], ["a"],
               {"sales": ["a"]})
    c.call("1", "sales", caller="+4930111")
    c.advance(5)
    assert c.acd.key("1", "9", c.now)
    evs = c.take()
    assert of(evs, CallLeftQueue) == [CallLeftQueue("1", "sales", "", "callback")]
    assert qlog(evs) == [("1", "NONE", "EXITWITHKEY", ("9", "1", "1", "5"))]
    evs = c.hangup("1")  # the caller hangs up: not an abandon
    assert evs == []
    c.call("2", "sales", caller="+4930222")
    # no announcements for the callback, and its max wait no longer runs
    evs = c.advance(100)
    assert {e.call_id for e in of(evs, Announce)} == {"2"}
    assert [e.call_id for e in of(evs, CallLeftQueue)] == ["2"]
    c.call("3", "sales", caller="+4930333")
    assert [e.call_id for e in c.acd.waiting("sales")] == ["1", "3"]
    evs = c.ready("a")
    offer, = of(evs, CallOffered)
    assert (offer.call_id, offer.agent, offer.callback, offer.caller) == (
        "1", "a", "+4930111", "+4930111")
    assert offer.wait == 105
    c.answer("1", "a")
    c.acd.cancel_callback("1", c.now)  # the dial-out failed: the agent's part is over
    evs = c.take()
    assert qlog(evs, "COMPLETEAGENT")[0][:3] == ("1", "a", "COMPLETEAGENT")
    assert offers(evs) == [("3", "a")]


def test_callback_pressed_while_ringing_withdraws_the_offer() -> None:
    c = Center([queue("sales", keys={"9": "callback"})], ["a"], {"sales": ["a"]})
    c.ready("a")
    c.call("1", "sales")
    c.acd.key("1", "9", c.now)
    evs = c.take()
    assert of(evs, OfferWithdrawn) == [OfferWithdrawn("1", "a", "caller_left")]
    offer, = of(evs, CallOffered)  # and at once back to a, now as a callback
    assert (offer.agent, offer.callback) == ("a", "+49301")


# -- announcements ---------------------------------------------------------------------------


def test_announcements_give_position_and_estimated_wait() -> None:
    c = Center([queue("sales", wrapup=20, announce_every=30)], ["a"], {"sales": ["a"]})
    c.ready("a")
    c.call("0", "sales")
    c.answer("0", "a")
    c.advance(100)
    c.hangup("0")  # handle time 100 s talk + 20 s wrap-up
    c.acd.extend_wrapup("a", 1000, c.now)
    c.call("1", "sales")
    c.advance(10)
    c.call("2", "sales")
    evs = c.advance(20)
    assert of(evs, Announce) == [Announce("1", 1, 120)]
    evs = c.advance(10)
    assert of(evs, Announce) == [Announce("2", 2, 240)]
    evs = c.advance(30)
    assert of(evs, Announce) == [Announce("1", 1, 120), Announce("2", 2, 240)]
    assert c.acd.estimated_wait("sales", 3) == 360


def test_no_estimate_before_any_call() -> None:
    c = Center([queue("sales", announce_every=30)], ["a"], {"sales": ["a"]})
    c.call("1", "sales")
    assert of(c.advance(30), Announce) == [Announce("1", 1, 0)]


def test_periodic_messages_cycle() -> None:
    c = Center([queue("sales", messages=("tts:Thanks", "tts:Web", "tts:App"),
                      message_every=20)], ["a"], {"sales": ["a"]})
    c.call("1", "sales")
    evs = c.advance(100)
    assert [e.prompt for e in of(evs, PlayMessage)] == [
        "tts:Thanks", "tts:Web", "tts:App", "tts:Thanks", "tts:Web"]
    c.ready("a")
    c.answer("1", "a")
    assert not of(c.advance(100), PlayMessage)


# -- direct calls ----------------------------------------------------------------------------


def test_agent_on_a_direct_call_is_never_offered_and_returns_to_ready() -> None:
    c = Center([queue("sales")], ["a"], {"sales": ["a"]})
    c.ready("a")
    c.acd.direct_call("a", c.now)
    assert c.state("a") is S.ON_CALL
    assert not offers(c.call("1", "sales"))
    c.acd.direct_call("a", c.now)  # a second line (consultation)
    c.acd.direct_end("a", c.now)
    assert c.state("a") is S.ON_CALL and not offers(c.take())
    c.acd.direct_end("a", c.now)
    evs = c.take()
    assert [e.state for e in of(evs, AgentStateChanged)] == ["ready", "ringing"]
    assert offers(evs) == [("1", "a")]


def test_direct_call_while_not_ready_returns_to_not_ready_with_its_reason() -> None:
    c = Center([queue("sales")], ["a"], {"sales": ["a"]})
    c.acd.login("a", c.now)
    c.acd.not_ready("a", c.now, "training")
    c.acd.direct_call("a", c.now)
    c.acd.direct_end("a", c.now)
    assert (c.state("a"), c.acd.agents["a"].reason) == (S.NOT_READY, "training")


def test_direct_call_while_ringing_gives_the_offer_back() -> None:
    c = Center([queue("sales")], ["a", "b"], {"sales": ["a", "b"]})
    c.ready("a")
    c.call("1", "sales")
    c.acd.direct_call("a", c.now)  # a dials out while its phone rings
    evs = c.take()
    assert of(evs, OfferWithdrawn) == [OfferWithdrawn("1", "a", "agent_busy")]
    assert not offers(evs), "offered again to the phone that is in use"
    assert c.state("a") is S.ON_CALL
    assert offers(c.ready("b")) == [("1", "b")]
    c.acd.direct_end("a", c.now)
    assert c.state("a") is S.READY


def test_logging_in_during_a_direct_call_waits_for_its_end() -> None:
    c = Center([queue("sales")], ["a"], {"sales": ["a"]})
    c.acd.direct_call("a", c.now)
    assert c.state("a") is S.LOGGED_OUT
    c.call("1", "sales")
    assert not offers(c.ready("a"))
    assert c.state("a") is S.ON_CALL
    c.acd.direct_end("a", c.now)
    assert offers(c.take()) == [("1", "a")]


def test_ready_during_wrapup_while_on_a_consultation_call_waits_for_its_end() -> None:
    c = Center([queue("sales", wrapup=60)], ["a"], {"sales": ["a"]})
    c.ready("a")
    c.call("1", "sales")
    c.answer("1", "a")
    c.acd.direct_call("a", c.now)  # consults a colleague
    c.hangup("1")
    c.call("2", "sales")
    c.acd.ready("a", c.now)  # ends wrap-up, but the phone is still in use
    assert not offers(c.take())
    assert c.state("a") is S.ON_CALL
    c.acd.direct_end("a", c.now)
    assert offers(c.take()) == [("2", "a")]


# -- the queue log ---------------------------------------------------------------------------


def test_queue_log_of_a_completed_call() -> None:
    c = Center([queue("sales")], ["a"], {"sales": ["a"]})
    c.call("0", "sales", caller="+4930999")
    c.call("1", "sales", caller="+4930123")
    c.advance(20)
    c.ready("a", gap=0)  # "0" rings a
    c.acd.call_ended("0", c.now)  # "0" abandons while ringing
    c.now += 4
    c.answer("1", "a")
    c.advance(95)
    c.hangup("1")
    assert qlog(c.log, "ENTERQUEUE", "CONNECT", "COMPLETECALLER", "ABANDON") == [
        ("0", "NONE", "ENTERQUEUE", ("", "+4930999", "1")),
        ("1", "NONE", "ENTERQUEUE", ("", "+4930123", "2")),
        ("0", "NONE", "ABANDON", ("1", "1", "20")),
        ("1", "a", "CONNECT", ("24", "1", "4")),
        ("1", "a", "COMPLETECALLER", ("24", "95", "2")),
    ]
    assert of(c.log, OfferWithdrawn)[0] == OfferWithdrawn("0", "a", "caller_left")


def test_queue_log_of_an_agent_hangup_and_a_transfer() -> None:
    c = Center([queue("sales"), queue("support")], ["a"], {"sales": ["a"], "support": ["a"]})
    c.call("1", "sales")
    c.advance(7)
    c.ready("a", gap=0)
    c.now += 2
    serve(c, "1", "a", talk=30)
    c.acd.call_ended("1", c.now, by_agent=True)  # already over: nothing more
    assert qlog(c.log, "COMPLETECALLER", "COMPLETEAGENT") == [
        ("1", "a", "COMPLETECALLER", ("9", "30", "1"))]
    c.call("2", "support")
    c.now += 3
    c.answer("2", "a")
    c.advance(40)
    c.hangup("2", by_agent=True)
    c.call("3", "sales")
    c.answer("3", "a")
    c.advance(12)
    c.acd.transferred("3", c.now, "queue:support")
    evs = c.take()
    assert qlog(c.log, "COMPLETEAGENT", "TRANSFER") == [
        ("2", "a", "COMPLETEAGENT", ("3", "40", "1")),
        ("3", "a", "TRANSFER", ("queue:support", "hotline", "0", "12", "1")),
    ]
    assert c.state("a") is S.READY and "3" not in c.acd.calls
    assert [e.state for e in of(evs, AgentStateChanged)] == ["wrapup", "ready"]


def test_agent_state_changes_are_a_timestamped_chain() -> None:
    c = Center([queue("sales", wrapup=5)], ["a"], {"sales": ["a"]})
    c.acd.login("a", c.now)
    c.ready("a")
    c.call("1", "sales")
    c.now += 2
    c.answer("1", "a")
    c.acd.hold("a", c.now)
    c.acd.hold("a", c.now, on=False)
    c.advance(10)
    c.hangup("1")
    c.advance(5)
    c.acd.not_ready("a", c.now, "break")
    c.acd.logout("a", c.now)
    c.take()
    changes = of(c.log, AgentStateChanged)
    assert [(e.previous, e.state) for e in changes] == [
        ("logged_out", "not_ready"), ("not_ready", "ready"), ("ready", "ringing"),
        ("ringing", "on_call"), ("on_call", "on_hold"), ("on_hold", "on_call"),
        ("on_call", "wrapup"), ("wrapup", "ready"), ("ready", "not_ready"),
        ("not_ready", "logged_out")]
    assert [e.at - START for e in changes] == [0, 0, 1, 3, 3, 3, 13, 18, 18, 18]
    assert {e.call_id for e in changes[2:7]} == {"1"} and changes[7].call_id == ""
    assert qlog(c.log, "ADDMEMBER", "PAUSE", "UNPAUSE", "REMOVEMEMBER") == [
        ("NONE", "a", "ADDMEMBER", ()), ("NONE", "a", "PAUSE", ("other",)),
        ("NONE", "a", "UNPAUSE", ()), ("NONE", "a", "PAUSE", ("break",)),
        ("NONE", "a", "REMOVEMEMBER", ())]


def test_unknown_agent_or_queue_is_404() -> None:
    c = Center([queue("sales")], ["a"], {"sales": ["a"]})
    with pytest.raises(AcdError) as exc:
        c.acd.ready("zz", c.now)
    assert exc.value.status == 404
    with pytest.raises(AcdError) as exc:
        c.acd.enqueue("1", "nope", c.now)
    assert exc.value.status == 404
    with pytest.raises(AcdError) as exc:
        c.acd.not_ready("a", c.now)  # logged out
    assert exc.value.status == 409
