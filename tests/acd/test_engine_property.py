"""The ACD under random interleavings (hypothesis stateful): calls join, ring, are answered,
refused, transferred and hung up; agents press buttons, pick up their own phones and
hold; keys are pressed; time passes; a media worker dies and takes its calls with it.

After every step :meth:`Acd.check_invariants` runs, and the events so far are replayed
into what call control and the wallboard would believe, which must match the engine:

* an agent is offered at most one call at a time, and is ringing exactly while an offer
  to it is outstanding (never ringing without a call);
* each agent's :class:`AgentStateChanged` events form a chain ending in its state;
* an agent in wrap-up has a timer pending, and once enough time passes with no input, no
  agent is left ringing or in wrap-up.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from acd.agent import AgentState
from acd.engine import Acd
from acd.errors import AcdError
from acd.events import (
    AgentStateChanged,
    CallLeftQueue,
    CallOffered,
    OfferWithdrawn,
    QueueEvent,
)
from hotline.config import STRATEGIES, AgentConfig, QueueConfig, Secret, Target

S = AgentState
AGENTS = ["a", "b", "c", "d", "e"]
SKILLS = [{"en": 5, "es": 1}, {"en": 3}, {"en": 7, "es": 7}, {"es": 2}, {"en": 1, "es": 9}]
MEMBERS = {"sales": ["a", "b", "c"], "support": ["b", "c", "d", "e"], "night": ["e"]}
KEYS = MappingProxyType({"0": "voicemail:general", "9": "callback"})
STEPS = [0.0, 0.5, 1.0, 4.0, 15.0, 31.0, 61.0, 250.0]

agent_ix = st.integers(0, len(AGENTS) - 1)
call_ix = st.integers(0, 63)


class AcdMachine(RuleBasedStateMachine):
    """Random inputs to one :class:`Acd`, checked against a replay of its events."""

    def __init__(self) -> None:
        super().__init__()
        self.acd: Acd
        self.now = 1000.0
        self.call_ids: list[str] = []
        self.offered: dict[str, str] = {}
        """agent → call, as call control knows it from the events."""
        self.states = dict.fromkeys(AGENTS, "logged_out")
        """agent → state, from the AgentStateChanged chain."""

    @initialize(
        strategies=st.lists(st.sampled_from(STRATEGIES), min_size=3, max_size=3),
        wrapups=st.lists(st.sampled_from([0, 5, 30]), min_size=3, max_size=3),
        ring=st.sampled_from([5, 15]),
        max_wait=st.sampled_from([0, 90]),
        announce=st.sampled_from([0, 20]),
        seed=st.integers(0, 2**16),
        start=st.lists(st.sampled_from(["ready", "ready", "not_ready", "logged_out"]),
                       min_size=len(AGENTS), max_size=len(AGENTS)),
    )
    def setup(self, strategies: list[str], wrapups: list[int], ring: int, max_wait: int,
              announce: int, seed: int, start: list[str]) -> None:
        common: dict[str, Any] = dict(
            ring_timeout=ring, max_wait=max_wait, announce_every=announce, keys=KEYS,
            messages=("tts:hello", "tts:web"), message_every=25, sticky_window=120,
            overflow=Target("voicemail", "general"))
        queues = [
            QueueConfig("sales", strategy=strategies[0], wrapup=wrapups[0],
                        skills=MappingProxyType({"en": 1}), **common),
            QueueConfig("support", strategy=strategies[1], wrapup=wrapups[1], priority=10,
                        skills=MappingProxyType({"en": 1, "es": 1}), **common),
            QueueConfig("night", strategy=strategies[2], wrapup=wrapups[2], join_empty=False,
                        leave_when_empty=True, **common),
        ]
        agents = [AgentConfig(a, a.upper(), Secret("a-long-password"), MappingProxyType(s))
                  for a, s in zip(AGENTS, SKILLS, strict=True)]
        self.acd = Acd(queues, agents, MEMBERS, seed=seed)
        for a, how in zip(AGENTS, start, strict=True):
            if how != "logged_out":
                self.acd.login(a, self.now, ready=how == "ready")

    # -- helpers -------------------------------------------------------------------------
    def _call(self, i: int) -> str:
        return self.call_ids[i % len(self.call_ids)] if self.call_ids else "nobody"

    def _ringing(self) -> list[tuple[str, str]]:
        return sorted((a.call_id, a.id) for a in self.acd.agents.values()
                      if a.state is S.RINGING)

    def _advance_to(self, end: float) -> None:
        while (t := self.acd.get_timer()) is not None and t <= end:
            self.now = max(self.now, t)
            self.acd.handle_timer(self.now)
            self._replay()
        self.now = end

    def _replay(self) -> None:
        """Take the events and follow them as call control and the wallboard would."""
        rna: set[str] = set()
        while (ev := self.acd.next_event()) is not None:
            if isinstance(ev, CallOffered):
                assert ev.agent not in self.offered, (
                    f"agent {ev.agent} offered {ev.call_id} while ringing for "
                    f"{self.offered[ev.agent]}")
                self.offered[ev.agent] = ev.call_id
            elif isinstance(ev, OfferWithdrawn):
                if ev.reason in ("ring_timeout", "agent_busy"):
                    assert ev.agent in rna, ev  # right after its RINGNOANSWER line
                else:
                    assert self.offered.pop(ev.agent, None) == ev.call_id, ev
            elif isinstance(ev, QueueEvent) and ev.event == "RINGNOANSWER":
                assert self.offered.pop(ev.agent, None) == ev.call_id, ev
                rna.add(ev.agent)
            elif isinstance(ev, AgentStateChanged):
                assert self.states[ev.agent] == ev.previous, ev
                assert ev.state != ev.previous or ev.state == "not_ready", ev
                assert ev.at <= self.now
                self.states[ev.agent] = ev.state
            elif isinstance(ev, CallLeftQueue):
                entry = self.acd.calls.get(ev.call_id)
                assert (entry is not None) == (ev.reason == "callback"), ev

    # -- calls ---------------------------------------------------------------------------
    @rule(queue=st.sampled_from(sorted(MEMBERS)), priority=st.sampled_from([0, 0, 5]),
          caller=st.sampled_from(["+491", "+492", "+493", ""]))
    def enqueue(self, queue: str, priority: int, caller: str) -> None:
        call_id = f"c{len(self.call_ids)}"
        self.call_ids.append(call_id)
        pos = self.acd.enqueue(call_id, queue, self.now, caller=caller, priority=priority)
        assert (pos > 0) == (call_id in self.acd.calls)

    @rule(i=st.integers(0, 20))
    def answer_ringing(self, i: int) -> None:
        ringing = self._ringing()
        if ringing:
            call_id, agent = ringing[i % len(ringing)]
            assert self.acd.answered(call_id, agent, self.now)
            assert self.offered.pop(agent) == call_id
            assert self.acd.agents[agent].state is S.ON_CALL

    @rule(i=call_ix, a=agent_ix)
    def answer_any(self, i: int, a: int) -> None:
        call_id, agent = self._call(i), AGENTS[a]
        who = self.acd.agents[agent]
        expect = who.state is S.RINGING and who.call_id == call_id
        assert self.acd.answered(call_id, agent, self.now) == expect
        if expect:
            assert self.offered.pop(agent) == call_id

    @rule(i=st.integers(0, 20))
    def reject_ringing(self, i: int) -> None:
        ringing = self._ringing()
        if ringing:
            call_id, agent = ringing[i % len(ringing)]
            self.acd.rejected(call_id, agent, self.now)
            assert self.acd.agents[agent].state is not S.RINGING or \
                self.acd.agents[agent].call_id != call_id

    @rule(i=call_ix, a=agent_ix)
    def reject_any(self, i: int, a: int) -> None:
        self.acd.rejected(self._call(i), AGENTS[a], self.now)

    @rule(i=call_ix, by_agent=st.booleans())
    def call_ended(self, i: int, by_agent: bool) -> None:
        call_id = self._call(i)
        entry = self.acd.calls.get(call_id)
        self.acd.call_ended(call_id, self.now, by_agent=by_agent)
        if entry is not None and not entry.callback:
            assert call_id not in self.acd.calls

    @rule(i=st.integers(0, 20), by_agent=st.booleans(), transfer=st.booleans())
    def end_connected(self, i: int, by_agent: bool, transfer: bool) -> None:
        connected = sorted(e.call_id for e in self.acd.calls.values() if e.status == "connected")
        if connected:
            call_id = connected[i % len(connected)]
            agent = self.acd.agents[self.acd.calls[call_id].agent]
            if transfer:
                self.acd.transferred(call_id, self.now, "queue:support")
            else:
                self.acd.call_ended(call_id, self.now, by_agent=by_agent)
            assert call_id not in self.acd.calls
            assert agent.state is not S.ON_HOLD and (
                agent.state is not S.ON_CALL or agent.direct_calls > 0), agent

    @rule(i=call_ix)
    def transferred(self, i: int) -> None:
        self.acd.transferred(self._call(i), self.now, "queue:support")

    @rule(i=call_ix)
    def cancel_callback(self, i: int) -> None:
        self.acd.cancel_callback(self._call(i), self.now)
        assert self._call(i) not in self.acd.calls

    @rule(i=call_ix, digit=st.sampled_from(["0", "5", "9"]))
    def key(self, i: int, digit: str) -> None:
        self.acd.key(self._call(i), digit, self.now)

    @rule()
    def worker_death(self) -> None:
        """A media worker dies: every connected call ends at once."""
        for entry in [e for e in self.acd.calls.values() if e.status == "connected"]:
            self.acd.call_ended(entry.call_id, self.now)
        assert all(e.status != "connected" for e in self.acd.calls.values())

    # -- agents --------------------------------------------------------------------------
    @rule(a=agent_ix, op=st.sampled_from(["login", "login_ready", "ready", "ready", "ready",
                                          "not_ready", "logout", "extend_wrapup",
                                          "login_sales"]))
    def agent_api(self, a: int, op: str) -> None:
        agent = AGENTS[a]
        try:
            if op == "login":
                self.acd.login(agent, self.now)
            elif op == "login_ready":
                self.acd.login(agent, self.now, ready=True)
            elif op == "login_sales":
                self.acd.login(agent, self.now, ["sales"])
            elif op == "ready":
                self.acd.ready(agent, self.now)
            elif op == "not_ready":
                self.acd.not_ready(agent, self.now, "break")
            elif op == "logout":
                self.acd.logout(agent, self.now)
            else:
                self.acd.extend_wrapup(agent, 20, self.now)
        except AcdError as exc:
            assert exc.status == 409

    @rule(i=st.integers(0, 20), seconds=st.sampled_from([0, 7, 40]))
    def extend_wrapup(self, i: int, seconds: float) -> None:
        wrapping = [a for a in AGENTS if self.acd.agents[a].state is S.WRAPUP]
        if wrapping:
            agent = self.acd.agents[wrapping[i % len(wrapping)]]
            until = agent.wrapup_until
            self.acd.extend_wrapup(agent.id, seconds, self.now)
            assert agent.wrapup_until == until + seconds

    @rule(a=agent_ix, on=st.booleans())
    def hold(self, a: int, on: bool) -> None:
        self.acd.hold(AGENTS[a], self.now, on)

    @rule(a=agent_ix)
    def direct_call(self, a: int) -> None:
        self.acd.direct_call(AGENTS[a], self.now)
        assert self.acd.agents[AGENTS[a]].state in (S.ON_CALL, S.ON_HOLD, S.WRAPUP,
                                                     S.LOGGED_OUT)

    @rule(a=agent_ix)
    def direct_end(self, a: int) -> None:
        self.acd.direct_end(AGENTS[a], self.now)

    # -- time ----------------------------------------------------------------------------
    @rule(dt=st.sampled_from(STEPS))
    def advance(self, dt: float) -> None:
        self._advance_to(self.now + dt)

    @rule()
    def settle(self) -> None:
        """With no input, every ringing phone and every wrap-up ends."""
        end = self.now + 100_000
        while self.now < end and any(a.state in (S.RINGING, S.WRAPUP)
                                     for a in self.acd.agents.values()):
            t = self.acd.get_timer()
            assert t is not None, "an agent is ringing or in wrap-up with no timer"
            self._advance_to(t)
            self.acd.check_invariants()
        assert not [a for a in self.acd.agents.values() if a.state in (S.RINGING, S.WRAPUP)]

    # -- checks --------------------------------------------------------------------------
    @invariant()
    def consistent(self) -> None:
        if not hasattr(self, "acd"):
            return
        self.acd.check_invariants()
        self._replay()
        timer = self.acd.get_timer()
        for agent in self.acd.agents.values():
            assert self.states[agent.id] == agent.state.value, agent
            if agent.state is S.RINGING:
                entry = self.acd.calls.get(agent.call_id)
                assert entry is not None and entry.status == "ringing", agent
                assert self.offered.get(agent.id) == agent.call_id
            else:
                assert agent.id not in self.offered, agent
            if agent.state is S.WRAPUP:
                assert timer is not None and timer <= agent.wrapup_until, agent
            if agent.state in (S.READY, S.NOT_READY):
                assert agent.direct_calls == 0, agent
        # a ringing phone always has its ring-no-answer timer pending
        for entry in self.acd.calls.values():
            if entry.ringing:
                ring = self.acd.queues[entry.queue].ring_timeout
                assert timer is not None and timer <= entry.ring_deadline, entry
                assert entry.ring_deadline == entry.offered_at + ring, entry

    def teardown(self) -> None:
        if hasattr(self, "acd"):
            self.settle()


AcdMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestAcdMachine = AcdMachine.TestCase
