"""The agent state machine: the single authority on what an agent is doing.

Agents "stuck" in a wrong state are the most reported bug of FreeSWITCH's
mod_callcenter and Asterisk's queues, so the whole machine is one literal table
(:data:`TRANSITIONS`, h2/h11 style) and a hypothesis test drives it.

States (``AgentState``)::

    logged_out ──login/ready──▶ ready ◀──────────── wrap-up timer ──┐
         ▲                  │   ▲  │ offer                          │
         │ logout           │   │  ▼                                │
         └─────────── not_ready ◀─ ringing ─ answer ─▶ on_call ⇄ on_hold
                    (reason)  ring-no-answer              │ end
                                                          ▼
                                                        wrapup

Requests that cannot take effect now are remembered, not refused: "not ready" or
"log out" pressed while ringing or during a call take effect when the call's wrap-up
ends (:attr:`Agent.after`), as agents expect from the break button; pressed during the
wrap-up, at once. A ring-no-answer overrides a remembered request (not ready, reason
``ring-no-answer``). An input the table has no
entry for raises :class:`AgentStateError` and leaves the state unchanged (an API caller gets
409); unlike a SIP transaction, an agent is never terminated by a bad request.

Direct calls (extension to extension, out through a trunk) also make the agent busy:
``DIRECT_CALL`` from ready or not ready goes to ``on_call`` and back when it ends, without
wrap-up, so the matcher never offers a queue call to a phone already in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .errors import AcdError

__all__ = ["Agent", "AgentInput", "AgentState", "AgentStateError", "TRANSITIONS"]


class AgentState(Enum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    NOT_READY = "not_ready"
    RINGING = "ringing"
    """Reserved for one offered call, its phone ringing."""
    ON_CALL = "on_call"
    ON_HOLD = "on_hold"
    WRAPUP = "wrapup"


class AgentInput(Enum):
    SEND_LOGIN = "login"
    SEND_READY = "ready"
    SEND_NOT_READY = "not_ready"
    SEND_LOGOUT = "logout"
    SEND_OFFER = "offer"
    """The matcher reserves the agent for a call."""
    RECV_ANSWER = "answer"
    TIMER_RING = "ring_timeout"
    """Ring-no-answer, or the phone refused the call (busy, decline, unreachable)."""
    RECV_WITHDRAWN = "withdrawn"
    """The offer ended without the agent: the caller left, or another agent answered."""
    RECV_HOLD = "hold"
    RECV_UNHOLD = "unhold"
    RECV_END = "end"
    """The queue call ended (either side hung up, a transfer completed, the worker died)."""
    TIMER_WRAPUP = "wrapup_end"
    SEND_EXTEND_WRAPUP = "extend_wrapup"
    RECV_DIRECT_CALL = "direct_call"
    RECV_DIRECT_END = "direct_end"


S = AgentState
I = AgentInput  # noqa: E741 - the table reads better with one-letter names

# Side effects, named; the engine performs them (timers, offers, queue log).
REMEMBER = "remember"  # keep the request in Agent.after for the end of the call/wrap-up
FORGET = "forget"  # clear Agent.after (ready again after the call)
START_WRAPUP = "start_wrapup"
EXTEND = "extend"
NOT_READY_RNA = "rna"  # not ready with reason ring-no-answer
AFTER = "after"  # go to Agent.after (the call's end: the remembered request, or ready)

#: ``{(state, input): (side effect or None, next state)}``. ``AFTER`` entries go to the
#: state the agent asked for during the call (ready if nothing).
TRANSITIONS: dict[tuple[AgentState, AgentInput], tuple[str | None, AgentState]] = {
    (S.LOGGED_OUT, I.SEND_LOGIN): (None, S.NOT_READY),
    (S.LOGGED_OUT, I.SEND_READY): (None, S.READY),
    (S.LOGGED_OUT, I.SEND_LOGOUT): (None, S.LOGGED_OUT),
    (S.LOGGED_OUT, I.RECV_DIRECT_CALL): (None, S.LOGGED_OUT),
    (S.LOGGED_OUT, I.RECV_DIRECT_END): (None, S.LOGGED_OUT),

    (S.READY, I.SEND_LOGIN): (None, S.READY),
    (S.READY, I.SEND_READY): (None, S.READY),
    (S.READY, I.SEND_NOT_READY): (None, S.NOT_READY),
    (S.READY, I.SEND_LOGOUT): (None, S.LOGGED_OUT),
    (S.READY, I.SEND_OFFER): (None, S.RINGING),
    (S.READY, I.RECV_DIRECT_CALL): (FORGET, S.ON_CALL),

    (S.NOT_READY, I.SEND_LOGIN): (None, S.NOT_READY),
    (S.NOT_READY, I.SEND_READY): (None, S.READY),
    (S.NOT_READY, I.SEND_NOT_READY): (None, S.NOT_READY),
    (S.NOT_READY, I.SEND_LOGOUT): (None, S.LOGGED_OUT),
    (S.NOT_READY, I.RECV_DIRECT_CALL): (REMEMBER, S.ON_CALL),

    (S.RINGING, I.RECV_ANSWER): (None, S.ON_CALL),
    (S.RINGING, I.TIMER_RING): (NOT_READY_RNA, S.NOT_READY),
    (S.RINGING, I.RECV_WITHDRAWN): (AFTER, S.READY),
    (S.RINGING, I.SEND_NOT_READY): (REMEMBER, S.RINGING),
    (S.RINGING, I.SEND_LOGOUT): (REMEMBER, S.RINGING),
    (S.RINGING, I.SEND_READY): (FORGET, S.RINGING),
    (S.RINGING, I.SEND_LOGIN): (None, S.RINGING),

    (S.ON_CALL, I.RECV_HOLD): (None, S.ON_HOLD),
    (S.ON_CALL, I.RECV_UNHOLD): (None, S.ON_CALL),
    (S.ON_CALL, I.RECV_END): (START_WRAPUP, S.WRAPUP),
    (S.ON_CALL, I.RECV_DIRECT_END): (AFTER, S.READY),
    (S.ON_CALL, I.SEND_NOT_READY): (REMEMBER, S.ON_CALL),
    (S.ON_CALL, I.SEND_LOGOUT): (REMEMBER, S.ON_CALL),
    (S.ON_CALL, I.SEND_READY): (FORGET, S.ON_CALL),
    (S.ON_CALL, I.SEND_LOGIN): (None, S.ON_CALL),
    (S.ON_CALL, I.RECV_DIRECT_CALL): (None, S.ON_CALL),

    (S.ON_HOLD, I.RECV_UNHOLD): (None, S.ON_CALL),
    (S.ON_HOLD, I.RECV_HOLD): (None, S.ON_HOLD),
    (S.ON_HOLD, I.RECV_END): (START_WRAPUP, S.WRAPUP),
    (S.ON_HOLD, I.SEND_NOT_READY): (REMEMBER, S.ON_HOLD),
    (S.ON_HOLD, I.SEND_LOGOUT): (REMEMBER, S.ON_HOLD),
    (S.ON_HOLD, I.SEND_READY): (FORGET, S.ON_HOLD),
    (S.ON_HOLD, I.SEND_LOGIN): (None, S.ON_HOLD),
    (S.ON_HOLD, I.RECV_DIRECT_CALL): (None, S.ON_HOLD),

    (S.WRAPUP, I.TIMER_WRAPUP): (AFTER, S.READY),
    (S.WRAPUP, I.SEND_READY): (FORGET, S.READY),
    (S.WRAPUP, I.SEND_NOT_READY): (None, S.NOT_READY),
    (S.WRAPUP, I.SEND_LOGOUT): (None, S.LOGGED_OUT),
    (S.WRAPUP, I.SEND_EXTEND_WRAPUP): (EXTEND, S.WRAPUP),
    (S.WRAPUP, I.SEND_LOGIN): (None, S.WRAPUP),
    (S.WRAPUP, I.RECV_DIRECT_CALL): (REMEMBER, S.ON_CALL),
}
"""Every allowed transition. What is not here is refused (:class:`AgentStateError`)."""


class AgentStateError(AcdError):
    """An input the agent's current state does not allow (API: 409 Conflict)."""

    def __init__(self, agent: str, state: AgentState, inp: AgentInput) -> None:
        self.agent = agent
        self.state = state
        self.input = inp
        super().__init__(f"agent {agent} is {state.value}: cannot {inp.value}")


@dataclass(eq=False, slots=True)
class Agent:
    """One agent's ACD state (the engine owns the instances)."""

    id: str
    state: AgentState = AgentState.LOGGED_OUT
    since: float = 0.0
    """``now`` of the last transition."""
    reason: str = ""
    """Not-ready reason code, while not ready."""
    call_id: str = ""
    """The queue call the agent rings for, talks on or wraps up."""
    queue: str = ""
    after: AgentState = AgentState.READY
    """Where the agent goes when the current call or wrap-up ends."""
    after_reason: str = ""
    wrapup_until: float = 0.0
    direct_calls: int = 0
    """Direct (non-queue) calls the agent's phone is in."""
    idle_since: float = 0.0
    """When the agent last finished a queue call or became ready (longest-idle)."""

    def step(self, inp: AgentInput, now: float, reason: str = "") -> str | None:
        """Apply ``inp``; return the side effect the engine must perform (or None).

        Raises :class:`AgentStateError` (state unchanged) if the table has no entry.
        """
        try:
            effect, nxt = TRANSITIONS[(self.state, inp)]
        except KeyError:
            raise AgentStateError(self.id, self.state, inp) from None
        if effect == REMEMBER:
            if inp is I.SEND_LOGOUT:
                self.after, self.after_reason = S.LOGGED_OUT, ""
            elif inp is I.SEND_NOT_READY:
                self.after, self.after_reason = S.NOT_READY, reason
            elif self.state is S.NOT_READY:  # a direct call while not ready: back to it
                self.after, self.after_reason = S.NOT_READY, self.reason
        elif effect == FORGET:
            self.after, self.after_reason = S.READY, ""
        elif effect == AFTER:
            nxt, reason = self.after, self.after_reason
            self.after, self.after_reason = S.READY, ""
        elif effect == NOT_READY_RNA:
            reason = "ring-no-answer"
            self.after, self.after_reason = S.READY, ""
        if nxt is not self.state:
            self.since = now
        if nxt is S.NOT_READY:
            self.reason = reason or (self.reason if self.state is S.NOT_READY else "") or "other"
        elif nxt is not self.state:
            self.reason = ""
        if nxt is S.LOGGED_OUT:
            self.after, self.after_reason = S.READY, ""
        self.state = nxt
        return effect
