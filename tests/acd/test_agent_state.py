"""The agent state machine (STYLE 3): hypothesis over every (state, input) pair, and the
transitions agents notice written out.

Any pair leads to a known state, or to :class:`AgentStateError` with the agent untouched;
from every configuration the machine can be in (its state plus the request it remembers
for the end of a call), ``logged_out`` can be reached. That is "an agent never sticks".
"""

from __future__ import annotations

from collections import deque
from dataclasses import astuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.agent import TRANSITIONS, Agent, AgentInput, AgentState, AgentStateError
from acd.errors import AcdError

S = AgentState
I = AgentInput  # noqa: E741

# What the agent can remember for the end of its call (Agent.after, Agent.after_reason).
AFTERS = [(S.READY, ""), (S.NOT_READY, "lunch"), (S.NOT_READY, ""), (S.LOGGED_OUT, "")]
Config = tuple[AgentState, AgentState, str, str]
"""(state, after, after_reason, reason): what decides the agent's next transitions."""


def _agent(state: AgentState, after: tuple[AgentState, str] = (S.READY, ""),
           reason: str = "") -> Agent:
    return Agent("1001", state=state, since=10.0, reason=reason, after=after[0],
                 after_reason=after[1])


def _config(agent: Agent) -> Config:
    return (agent.state, agent.after, agent.after_reason, agent.reason)


def _successors(cfg: Config) -> list[Config]:
    out = []
    for inp in AgentInput:
        agent = Agent("1001", state=cfg[0], after=cfg[1], after_reason=cfg[2], reason=cfg[3])
        try:
            agent.step(inp, 20.0, "break" if inp is I.SEND_NOT_READY else "")
        except AgentStateError:
            continue
        out.append(_config(agent))
    return out


def _reachable(start: Config) -> set[Config]:
    seen = {start}
    todo = deque([start])
    while todo:
        for nxt in _successors(todo.popleft()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(AgentState)), st.sampled_from(list(AgentInput)),
       st.sampled_from(AFTERS), st.sampled_from(["", "break", "ring-no-answer"]))
def test_any_input_in_any_state_leads_to_a_known_state(
        state: AgentState, inp: AgentInput, after: tuple[AgentState, str], reason: str) -> None:
    agent = _agent(state, after, reason if state is S.NOT_READY else "")
    before = astuple(agent)
    try:
        effect = agent.step(inp, 20.0, "lunch")
    except AgentStateError as exc:
        assert (state, inp) not in TRANSITIONS
        assert isinstance(exc, AcdError) and exc.status == 409
        assert (exc.state, exc.input) == (state, inp)
        assert astuple(agent) == before, "a refused input must leave the agent untouched"
        return
    assert (state, inp) in TRANSITIONS
    assert isinstance(agent.state, AgentState)
    assert effect == TRANSITIONS[(state, inp)][0]
    # A not-ready agent always has a reason; no other state keeps one.
    assert bool(agent.reason) == (agent.state is S.NOT_READY)
    # Logged out forgets whatever was asked during the call.
    if agent.state is S.LOGGED_OUT:
        assert (agent.after, agent.after_reason) == (S.READY, "")
    if agent.state is not state:
        assert agent.since == 20.0


def test_every_table_entry_names_the_machine_s_own_states_and_inputs() -> None:
    for (src, inp), (effect, dst) in TRANSITIONS.items():
        assert isinstance(src, AgentState) and isinstance(inp, AgentInput)
        assert isinstance(dst, AgentState)
        assert effect is None or isinstance(effect, str)


@pytest.mark.parametrize("state", list(AgentState), ids=lambda s: s.value)
@pytest.mark.parametrize("after", AFTERS, ids=lambda a: f"{a[0].value}:{a[1]}")
def test_logged_out_is_reachable_from_every_configuration(
        state: AgentState, after: tuple[AgentState, str]) -> None:
    start = _config(_agent(state, after, "break" if state is S.NOT_READY else ""))
    for cfg in _reachable(start):
        assert any(c[0] is S.LOGGED_OUT for c in _reachable(cfg)), cfg


@pytest.mark.parametrize("state", list(AgentState), ids=lambda s: s.value)
def test_events_alone_bring_every_state_back_to_idle(state: AgentState) -> None:
    """Without the agent pressing anything, the phone and the timers end every busy state:
    the agent ends up ready, not ready or logged out, never ringing, on a call or in
    wrap-up."""
    agent = _agent(state)
    for inp in (I.RECV_UNHOLD, I.RECV_END, I.RECV_DIRECT_END, I.TIMER_RING, I.TIMER_WRAPUP):
        if (agent.state, inp) in TRANSITIONS:
            agent.step(inp, 30.0)
    assert agent.state in (S.READY, S.NOT_READY, S.LOGGED_OUT)


def _go(agent: Agent, inp: AgentInput, now: float, reason: str = "") -> AgentState:
    """Step ``agent`` and return its new state."""
    agent.step(inp, now, reason)
    return agent.state


def test_ring_no_answer_goes_not_ready_with_reason() -> None:
    agent = _agent(S.RINGING)
    assert _go(agent, I.TIMER_RING, 25.0) is S.NOT_READY
    assert (agent.reason, agent.since) == ("ring-no-answer", 25.0)
    assert (agent.after, agent.after_reason) == (S.READY, "")


@pytest.mark.parametrize("talking", [S.ON_CALL, S.ON_HOLD])
def test_not_ready_during_a_call_takes_effect_after_wrapup(talking: AgentState) -> None:
    agent = _agent(talking)
    assert _go(agent, I.SEND_NOT_READY, 20.0, "lunch") is talking
    assert _go(agent, I.RECV_END, 30.0) is S.WRAPUP
    assert _go(agent, I.TIMER_WRAPUP, 40.0) is S.NOT_READY
    assert agent.reason == "lunch"
    # and the request is used up: the next call ends ready
    for inp in (I.SEND_READY, I.SEND_OFFER, I.RECV_ANSWER, I.RECV_END):
        agent.step(inp, 50.0)
    assert _go(agent, I.TIMER_WRAPUP, 70.0) is S.READY


def test_logout_during_a_call_takes_effect_after_wrapup() -> None:
    agent = _agent(S.ON_CALL)
    assert _go(agent, I.SEND_LOGOUT, 20.0) is S.ON_CALL
    assert _go(agent, I.RECV_HOLD, 21.0) is S.ON_HOLD
    assert _go(agent, I.RECV_END, 30.0) is S.WRAPUP
    assert _go(agent, I.TIMER_WRAPUP, 40.0) is S.LOGGED_OUT


def test_ready_during_a_call_cancels_the_remembered_request() -> None:
    agent = _agent(S.ON_CALL)
    agent.step(I.SEND_NOT_READY, 20.0, "lunch")
    agent.step(I.SEND_READY, 21.0)
    agent.step(I.RECV_END, 30.0)
    assert _go(agent, I.TIMER_WRAPUP, 40.0) is S.READY


def test_ready_during_wrapup_ends_it_now() -> None:
    assert _go(_agent(S.WRAPUP), I.SEND_READY, 20.0) is S.READY


@pytest.mark.parametrize("asked,expected", [
    (None, (S.READY, "")),
    (I.SEND_NOT_READY, (S.NOT_READY, "lunch")),
    (I.SEND_LOGOUT, (S.LOGGED_OUT, "")),
])
def test_withdrawn_offer_returns_to_the_remembered_state(
        asked: AgentInput | None, expected: tuple[AgentState, str]) -> None:
    agent = _agent(S.READY)
    assert _go(agent, I.SEND_OFFER, 20.0) is S.RINGING
    if asked is not None:
        assert _go(agent, asked, 21.0, "lunch") is S.RINGING
    agent.step(I.RECV_WITHDRAWN, 22.0)
    assert (agent.state, agent.reason) == expected


def test_direct_call_returns_to_the_previous_state() -> None:
    agent = _agent(S.NOT_READY, reason="training")
    assert _go(agent, I.RECV_DIRECT_CALL, 20.0) is S.ON_CALL
    assert _go(agent, I.RECV_DIRECT_END, 30.0) is S.NOT_READY
    assert agent.reason == "training"
    agent.step(I.SEND_READY, 31.0)
    assert _go(agent, I.RECV_DIRECT_CALL, 32.0) is S.ON_CALL
    assert _go(agent, I.RECV_DIRECT_END, 33.0) is S.READY


@pytest.mark.parametrize("state,inp", [
    (S.LOGGED_OUT, I.SEND_NOT_READY),
    (S.LOGGED_OUT, I.SEND_OFFER),
    (S.NOT_READY, I.SEND_OFFER),
    (S.READY, I.RECV_ANSWER),
    (S.RINGING, I.SEND_OFFER),
    (S.ON_CALL, I.SEND_EXTEND_WRAPUP),
    (S.WRAPUP, I.RECV_END),
])
def test_refused_inputs(state: AgentState, inp: AgentInput) -> None:
    agent = _agent(state)
    with pytest.raises(AgentStateError, match=f"agent 1001 is {state.value}: cannot"):
        agent.step(inp, 20.0)
    assert agent.state is state
