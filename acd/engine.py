"""The ACD engine: queues, the one matcher across them, and the agents' states.

Sans-IO like the SIP core: inputs are method calls with ``now`` passed in, outputs are
:mod:`acd.events` taken with :meth:`Acd.next_event`, and the one timer it needs is
:meth:`Acd.get_timer` / :meth:`Acd.handle_timer`. Call control rings phones, plays prompts
and moves callers; storage keeps the events; nothing here waits or reads a clock.

Matching, both ways, is the same rule:

* a call joins (or is back after a ring-no-answer): the queue's strategy orders the
  queue's ready members (:mod:`acd.strategy`) and the call is offered to the first, or to
  every one for ``ring-all``;
* an agent becomes ready: it is offered the best-placed caller waiting in *any* queue it
  is logged into: highest priority first (the call's priority from the route or IVR plus
  the queue's ``priority``), then the longest in line. One comparison across queues, so an
  agent in a general and a priority queue serves the priority caller first, and an agent
  in several queues serves the one who waited longest (Asterisk's per-queue loops do not).

A caller's place in line is the time it first joined: a ring-no-answer puts it back at
the front, and a caller who chose a callback keeps its place while it is not on the line.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import insort
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from hotline.config import AgentConfig, QueueConfig

from .agent import (
    START_WRAPUP,
    Agent,
    AgentInput,
    AgentState,
)
from .errors import AcdError
from .events import (
    AcdEvent,
    AgentStateChanged,
    Announce,
    CallLeftQueue,
    CallOffered,
    OfferWithdrawn,
    PlayMessage,
    QueueEvent,
)
from .strategy import Candidate, rank

__all__ = ["Acd", "QueuedCall"]

S = AgentState
I = AgentInput  # noqa: E741

HANDLE_TIMES = 20
"""Recent handle times per queue kept for the estimated wait."""
LOGGED_IN = frozenset({S.READY, S.NOT_READY, S.RINGING, S.ON_CALL, S.ON_HOLD, S.WRAPUP})
STAFFED = frozenset({S.READY, S.RINGING, S.ON_CALL, S.ON_HOLD, S.WRAPUP})
"""Logged in and taking calls (not on a break): the estimated wait divides by these."""


@dataclass(eq=False, slots=True)
class QueuedCall:
    """A caller in a queue, from joining to the end of its call."""

    call_id: str
    queue: str
    caller: str
    priority: int
    """Effective priority: the call's plus the queue's."""
    joined: float
    """When the caller first joined: its place in line."""
    seq: int
    variables: Mapping[str, str]
    position: int
    """Position when it joined (1 = first)."""
    status: str = "waiting"
    """``waiting``, ``ringing`` or ``connected``."""
    ringing: set[str] = field(default_factory=set)
    agent: str = ""
    offered_at: float = 0.0
    answered_at: float = 0.0
    callback: str = ""
    """The number to call back: the caller hung up for a callback and keeps its place."""
    deadline: float = 0.0
    """Max wait (0: none)."""
    next_announce: float = 0.0
    next_message: float = 0.0
    message_index: int = 0
    ring_deadline: float = 0.0

    def sort_key(self) -> tuple[int, float, int]:
        return (-self.priority, self.joined, self.seq)

    def __lt__(self, other: QueuedCall) -> bool:
        return self.sort_key() < other.sort_key()


@dataclass(slots=True)
class _MemberStats:
    calls: int = 0
    talk: float = 0.0


class Acd:
    """Queues, agents and the matcher between them (see the module docstring)."""

    def __init__(
        self,
        queues: Sequence[QueueConfig],
        agents: Sequence[AgentConfig],
        members: Mapping[str, Sequence[str]],
        *,
        is_open: Callable[[QueueConfig, float], bool] | None = None,
        seed: int | None = None,
    ) -> None:
        """:param members: queue name → agent ids that may serve it, in ``linear`` order.
        :param is_open: tells whether a queue is within its business hours at ``now``
            (call control converts ``now`` to the site's wall clock); None: always open.
        :param seed: for the ``random`` strategy (tests)."""
        self.queues: dict[str, QueueConfig] = {q.name: q for q in queues}
        self.agents: dict[str, Agent] = {a.id: Agent(a.id) for a in agents}
        self._configs = {a.id: a for a in agents}
        self._members: dict[str, list[str]] = {q: list(members.get(q, ())) for q in self.queues}
        self._order: dict[str, dict[str, int]] = {
            q: {a: i for i, a in enumerate(ms)} for q, ms in self._members.items()}
        self._serves: dict[str, list[str]] = {a: [] for a in self.agents}
        for q, ms in self._members.items():
            for a in ms:
                if a not in self.agents:
                    raise AcdError(f"queue {q}: no agent {a}")
                self._serves[a].append(q)
        self._logged: dict[str, set[str]] = {a: set() for a in self.agents}
        """Queues each agent is logged into."""
        self._ready: dict[str, set[str]] = {q: set() for q in self.queues}
        """Ready agents per queue (logged into it)."""
        self._lines: dict[str, list[QueuedCall]] = {q: [] for q in self.queues}
        """Callers not yet connected, best placed first."""
        self.calls: dict[str, QueuedCall] = {}
        self._stats: dict[tuple[str, str], _MemberStats] = {}
        self._rr_last: dict[str, int] = dict.fromkeys(self.queues, -1)
        self._handle: dict[str, deque[float]] = {
            q: deque(maxlen=HANDLE_TIMES) for q in self.queues}
        self._last_agent: dict[tuple[str, str], tuple[str, float]] = {}
        """(queue, caller) → (agent, when) of the caller's last answered call (sticky)."""
        self._timers: list[tuple[float, int, str, str]] = []
        self._seq = 0
        self._events: deque[AcdEvent] = deque()
        self._is_open = is_open
        self._rng = random.Random(seed)

    # -- outputs -------------------------------------------------------------------
    def next_event(self) -> AcdEvent | None:
        """The next event to act on, or None."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next run, or None."""
        while self._timers and not self._timer_valid(*self._timers[0]):
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``: ring-no-answer, wrap-up end, max wait,
        announcements and periodic messages."""
        while self._timers and self._timers[0][0] <= now:
            at, _, kind, key = heapq.heappop(self._timers)
            if not self._timer_valid(at, 0, kind, key):
                continue
            if kind == "ring":
                call_id, agent = key.split("\0")
                self._ring_failed(call_id, agent, now, "timeout")
            elif kind == "wrapup":
                self._wrapup_over(self.agents[key], now)
            elif kind == "maxwait":
                entry = self.calls[key]
                self._leave(entry, now, "max_wait", "EXITWITHTIMEOUT")
            elif kind == "announce":
                self._announce(self.calls[key], now)
            elif kind == "message":
                self._message(self.calls[key], now)

    # -- agents --------------------------------------------------------------------
    def login(self, agent_id: str, now: float, queues: Iterable[str] | None = None,
              *, ready: bool = False) -> None:
        """Log an agent in (not ready, or ready with ``ready``) to ``queues`` (default:
        every queue it is a member of). Logged in already: joins the extra queues."""
        agent = self._agent(agent_id)
        names = list(queues) if queues is not None else list(self._serves[agent_id])
        for q in names:
            if q not in self._serves[agent_id]:
                raise AcdError(f"agent {agent_id} is not a member of queue {q}")
        was_in = agent.state is not S.LOGGED_OUT
        for q in names:
            self._join(agent, q, now)
        if not was_in or ready:
            self._step(agent, I.SEND_READY if ready else I.SEND_LOGIN, now)

    def ready(self, agent_id: str, now: float) -> None:
        """Ready for calls (logs in to every queue first if logged out); during a call or
        wrap-up: ready again when it ends (wrap-up ends now)."""
        agent = self._agent(agent_id)
        if agent.state is S.LOGGED_OUT:
            for q in self._serves[agent_id]:
                self._join(agent, q, now)
        self._step(agent, I.SEND_READY, now)

    def not_ready(self, agent_id: str, now: float, reason: str = "") -> None:
        """Not ready with a reason code (during a call: once it and its wrap-up end)."""
        self._step(self._agent(agent_id), I.SEND_NOT_READY, now, reason or "other")

    def logout(self, agent_id: str, now: float) -> None:
        """Log out (during a call: once it and its wrap-up end)."""
        self._step(self._agent(agent_id), I.SEND_LOGOUT, now)

    def extend_wrapup(self, agent_id: str, seconds: float, now: float) -> None:
        """Give an agent in wrap-up ``seconds`` more."""
        agent = self._agent(agent_id)
        self._step(agent, I.SEND_EXTEND_WRAPUP, now)
        agent.wrapup_until += max(0.0, seconds)
        self._timer(agent.wrapup_until, "wrapup", agent.id)

    def hold(self, agent_id: str, now: float, on: bool = True) -> None:
        """The agent's call was put on hold (``on``) or resumed."""
        agent = self._agent(agent_id)
        if agent.state in (S.ON_CALL, S.ON_HOLD) and agent.call_id:
            self._step(agent, I.RECV_HOLD if on else I.RECV_UNHOLD, now)

    def direct_call(self, agent_id: str, now: float) -> None:
        """The agent's phone joined a call that is not a queue call (the agent dialled
        out or was called directly): busy until :meth:`direct_end`."""
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        agent.direct_calls += 1
        if agent.state is S.RINGING:  # its own call first: the offer goes back to the line
            self._ring_failed(agent.call_id, agent.id, now, "busy")
        if agent.direct_calls == 1:
            self._step(agent, I.RECV_DIRECT_CALL, now)

    def direct_end(self, agent_id: str, now: float) -> None:
        """One of the agent's direct calls ended."""
        agent = self.agents.get(agent_id)
        if agent is None or agent.direct_calls == 0:
            return
        agent.direct_calls -= 1
        if agent.direct_calls == 0 and agent.state is S.ON_CALL and not agent.call_id:
            self._step(agent, I.RECV_DIRECT_END, now)

    # -- calls ---------------------------------------------------------------------
    def enqueue(self, call_id: str, queue: str, now: float, *, caller: str = "",
                priority: int = 0, variables: Mapping[str, str] | None = None) -> int:
        """A caller joins ``queue``. Returns its position (1 = first in line), or 0 when
        it was turned away (a :class:`CallLeftQueue` says where it goes)."""
        q = self._queue(queue)
        if call_id in self.calls:
            raise AcdError(f"call {call_id} is already in queue {self.calls[call_id].queue}")
        if self._is_open is not None and not self._is_open(q, now):
            self._events.append(CallLeftQueue(call_id, queue, str(q.closed or q.overflow or ""),
                                              "closed"))
            return 0
        if not q.join_empty and not self._logged_in_members(queue):
            self._events.append(QueueEvent(now, call_id, queue, "NONE", "JOINEMPTY"))
            self._events.append(CallLeftQueue(call_id, queue, str(q.overflow or ""), "empty"))
            return 0
        self._seq += 1
        entry = QueuedCall(call_id, queue, caller, priority + q.priority, now, self._seq,
                           MappingProxyType(dict(variables or {})), 0)
        line = self._lines[queue]
        insort(line, entry)
        entry.position = line.index(entry) + 1
        self.calls[call_id] = entry
        self._events.append(QueueEvent(now, call_id, queue, "NONE", "ENTERQUEUE",
                                       ("", caller, str(entry.position))))
        if q.max_wait:
            entry.deadline = now + q.max_wait
            self._timer(entry.deadline, "maxwait", call_id)
        if q.announce_every:
            entry.next_announce = now + q.announce_every
            self._timer(entry.next_announce, "announce", call_id)
        if q.messages and q.message_every:
            entry.next_message = now + q.message_every
            self._timer(entry.next_message, "message", call_id)
        self._offer(entry, now)
        return entry.position

    def answered(self, call_id: str, agent_id: str, now: float) -> bool:
        """``agent_id``'s phone answered ``call_id``. False if the offer was withdrawn
        meanwhile (call control then hangs the agent's leg up)."""
        entry = self.calls.get(call_id)
        agent = self.agents.get(agent_id)
        if (entry is None or agent is None or entry.status != "ringing"
                or agent_id not in entry.ringing or agent.state is not S.RINGING):
            return False
        entry.ringing.discard(agent_id)
        self._withdraw_all(entry, now, "answered_elsewhere")
        entry.status = "connected"
        entry.agent = agent_id
        entry.answered_at = now
        self._remove_from_line(entry)
        self._step(agent, I.RECV_ANSWER, now)
        stats = self._stats.setdefault((entry.queue, agent_id), _MemberStats())
        stats.calls += 1
        self._last_agent[(entry.queue, entry.caller)] = (agent_id, now)
        self._events.append(QueueEvent(now, call_id, entry.queue, agent_id, "CONNECT", (
            str(round(now - entry.joined)), call_id, str(round(now - entry.offered_at)))))
        return True

    def rejected(self, call_id: str, agent_id: str, now: float) -> None:
        """The agent's phone refused or could not take the call (busy, declined,
        unreachable): as a ring-no-answer."""
        self._ring_failed(call_id, agent_id, now, "rejected")

    def key(self, call_id: str, digit: str, now: float) -> bool:
        """A waiting caller pressed ``digit``: True if it is one of the queue's exit keys
        (the caller leaves for the key's target, or hangs up for a callback)."""
        entry = self.calls.get(call_id)
        if entry is None or entry.status not in ("waiting", "ringing"):
            return False
        q = self.queues[entry.queue]
        target = q.keys.get(digit)
        if target is None:
            return False
        if target == "callback":
            self._withdraw_all(entry, now, "caller_left")
            entry.status = "waiting"
            entry.callback = entry.caller
            self._events.append(QueueEvent(now, call_id, entry.queue, "NONE", "EXITWITHKEY", (
                digit, str(self._position(entry)), str(entry.position),
                str(round(now - entry.joined)))))
            self._events.append(CallLeftQueue(call_id, entry.queue, "", "callback"))
            self._offer(entry, now)
            return True
        self._leave(entry, now, "key", "EXITWITHKEY", target=target, digit=digit)
        return True

    def transferred(self, call_id: str, now: float, to: str) -> None:
        """The agent transferred the caller on (to ``to``): the agent's part is over."""
        entry = self.calls.get(call_id)
        if entry is None or entry.status != "connected":
            return
        self._events.append(QueueEvent(now, call_id, entry.queue, entry.agent, "TRANSFER", (
            to, "hotline", str(round(entry.answered_at - entry.joined)),
            str(round(now - entry.answered_at)), str(entry.position))))
        self._finish(entry, now)

    def call_ended(self, call_id: str, now: float, *, by_agent: bool = False) -> None:
        """The call is over (either side hung up, the media worker died). A caller still
        in line has abandoned; a connected one completes and its agent wraps up."""
        entry = self.calls.get(call_id)
        if entry is None:
            return
        if entry.status == "connected":
            self._events.append(QueueEvent(
                now, call_id, entry.queue, entry.agent,
                "COMPLETEAGENT" if by_agent else "COMPLETECALLER",
                (str(round(entry.answered_at - entry.joined)),
                 str(round(now - entry.answered_at)), str(entry.position))))
            self._finish(entry, now)
            return
        if entry.callback:
            return  # the caller's hang-up after choosing a callback: it keeps its place
        self._withdraw_all(entry, now, "caller_left")
        self._events.append(QueueEvent(now, call_id, entry.queue, "NONE", "ABANDON", (
            str(self._position(entry)), str(entry.position), str(round(now - entry.joined)))))
        self._drop(entry)

    def cancel_callback(self, call_id: str, now: float) -> None:
        """A callback's dial-out to the customer failed or was answered elsewhere: the
        entry ends (its agent, if connected, wraps up)."""
        entry = self.calls.get(call_id)
        if entry is None:
            return
        if entry.status == "connected":
            self.call_ended(call_id, now, by_agent=True)
            return
        self._withdraw_all(entry, now, "caller_left")
        self._drop(entry)

    # -- views ---------------------------------------------------------------------
    def waiting(self, queue: str) -> list[QueuedCall]:
        """Callers in line for ``queue``, best placed first."""
        return list(self._lines[self._queue(queue).name])

    def members(self, queue: str) -> list[str]:
        """Agents that may serve ``queue``, in member order."""
        return list(self._members[self._queue(queue).name])

    def logged_into(self, agent_id: str) -> list[str]:
        """Queues the agent is logged into."""
        return sorted(self._logged[self._agent(agent_id).id])

    def estimated_wait(self, queue: str, position: int) -> int:
        """Seconds a caller at ``position`` can expect to wait: position times the
        queue's recent average handle time, over the agents taking its calls."""
        times = self._handle[queue]
        if not times:
            return 0
        staffed = sum(1 for a in self._members[queue]
                      if queue in self._logged[a] and self.agents[a].state in STAFFED)
        return math.ceil(position * (sum(times) / len(times)) / max(1, staffed))

    def check_invariants(self) -> None:
        """Assert what must always hold (the property test calls it after every input)."""
        for agent in self.agents.values():
            st = agent.state
            if st is S.RINGING:
                entry = self.calls.get(agent.call_id)
                assert entry is not None and entry.status == "ringing", agent
                assert agent.id in entry.ringing, agent
                assert entry.ring_deadline > 0, agent
            elif st in (S.ON_CALL, S.ON_HOLD):
                if agent.call_id:
                    entry = self.calls.get(agent.call_id)
                    assert entry is not None and entry.status == "connected", agent
                    assert entry.agent == agent.id, agent
                else:
                    assert agent.direct_calls > 0, agent
            elif st is S.WRAPUP:
                assert agent.wrapup_until > agent.since - 1e-9, agent
                assert any(k == "wrapup" and key == agent.id and at == agent.wrapup_until
                           for at, _, k, key in self._timers), agent
            else:
                assert not agent.call_id, agent
            if st is S.READY:
                for q in self._logged[agent.id]:
                    assert agent.id in self._ready[q], agent
            else:
                assert all(agent.id not in r for r in self._ready.values()), agent
        offered: dict[str, str] = {}
        for entry in self.calls.values():
            for a in entry.ringing:
                assert a not in offered, f"agent {a} offered two calls"
                offered[a] = entry.call_id
                assert self.agents[a].state is S.RINGING and self.agents[a].call_id == \
                    entry.call_id, entry
            if entry.status == "connected":
                assert entry not in self._lines[entry.queue]
            else:
                assert entry in self._lines[entry.queue]
        # Nobody waits while a ready agent could take the call.
        for q, line in self._lines.items():
            if any(e.status == "waiting" for e in line):
                assert not self._ready[q], f"queue {q}: callers wait with {self._ready[q]} ready"

    # -- internals: agents ---------------------------------------------------------
    def _agent(self, agent_id: str) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            err = AcdError(f"no agent {agent_id}")
            err.status = 404
            raise err
        return agent

    def _queue(self, name: str) -> QueueConfig:
        q = self.queues.get(name)
        if q is None:
            err = AcdError(f"no queue {name}")
            err.status = 404
            raise err
        return q

    def _join(self, agent: Agent, queue: str, now: float) -> None:
        if queue in self._logged[agent.id]:
            return
        self._logged[agent.id].add(queue)
        self._events.append(QueueEvent(now, "NONE", queue, agent.id, "ADDMEMBER"))
        if agent.state is S.READY:
            self._ready[queue].add(agent.id)
            self._agent_free(agent, now)

    def _step(self, agent: Agent, inp: AgentInput, now: float, reason: str = "") -> None:
        """Feed the agent's machine and carry out what the transition means."""
        prev, prev_reason = agent.state, agent.reason
        effect = agent.step(inp, now, reason)
        st = agent.state
        if effect == START_WRAPUP:
            qc = self.queues.get(agent.queue)
            agent.wrapup_until = now + (qc.wrapup if qc is not None else 0)
            self._timer(agent.wrapup_until, "wrapup", agent.id)
        if st not in (S.RINGING, S.ON_CALL, S.ON_HOLD, S.WRAPUP) or (
                inp is I.RECV_DIRECT_CALL and prev is S.WRAPUP):
            agent.call_id = agent.queue = ""
        if st is S.READY and prev not in (S.READY, S.RINGING):
            agent.idle_since = now  # a withdrawn offer was no work: the agent keeps its place
        if st is S.LOGGED_OUT and prev is not S.LOGGED_OUT:
            for q in sorted(self._logged[agent.id]):
                self._events.append(QueueEvent(now, "NONE", q, agent.id, "REMOVEMEMBER"))
            left = self._logged[agent.id]
            self._logged[agent.id] = set()
            for r in self._ready.values():
                r.discard(agent.id)
        else:
            left = set()
        if st is S.NOT_READY and (prev is not S.NOT_READY or reason != prev_reason):
            for q in sorted(self._logged[agent.id]):
                self._events.append(QueueEvent(now, "NONE", q, agent.id, "PAUSE",
                                               (agent.reason,)))
        elif prev is S.NOT_READY and st is not S.NOT_READY and st is not S.LOGGED_OUT:
            for q in sorted(self._logged[agent.id]):
                self._events.append(QueueEvent(now, "NONE", q, agent.id, "UNPAUSE"))
        if st is S.READY:
            for q in self._logged[agent.id]:
                self._ready[q].add(agent.id)
        else:
            for q in self._logged[agent.id]:
                self._ready[q].discard(agent.id)
        if st is not prev or agent.reason != prev_reason:
            self._events.append(AgentStateChanged(
                agent.id, st.value, prev.value, now, agent.reason, agent.call_id, agent.queue))
        for q in sorted(left):
            self._check_empty(q, now)
        if agent.direct_calls and st in (S.READY, S.NOT_READY) and st is not prev:
            # Logged in, ready from wrap-up or a withdrawn offer while the phone is in
            # use: busy until the direct call ends, never offered (or left in _ready).
            self._step(agent, I.RECV_DIRECT_CALL, now)
            return
        if st is S.READY and prev is not S.READY:
            self._agent_free(agent, now)

    def _wrapup_over(self, agent: Agent, now: float) -> None:
        if agent.direct_calls:  # still on the phone (a consultation call): busy
            self._step(agent, I.RECV_DIRECT_CALL, now)
        else:
            self._step(agent, I.TIMER_WRAPUP, now)

    def _agent_free(self, agent: Agent, now: float) -> None:
        """Offer the agent the best-placed caller in any queue it serves."""
        if agent.state is not S.READY or agent.direct_calls:
            return
        best: QueuedCall | None = None
        for q in self._logged[agent.id]:
            for entry in self._lines[q]:
                if entry.status == "waiting":
                    if best is None or entry.sort_key() < best.sort_key():
                        best = entry
                    break
        if best is not None:
            self._ring(best, [agent.id], now)

    def _logged_in_members(self, queue: str) -> list[str]:
        return [a for a in self._members[queue] if queue in self._logged[a]]

    def _check_empty(self, queue: str, now: float) -> None:
        """Leave-when-empty: the last member logged out, the callers go on."""
        q = self.queues[queue]
        if q.leave_when_empty and not self._logged_in_members(queue):
            for entry in list(self._lines[queue]):
                if entry.status == "waiting":
                    self._leave(entry, now, "empty", "EXITEMPTY")

    # -- internals: calls ----------------------------------------------------------
    def _offer(self, entry: QueuedCall, now: float) -> None:
        """Offer a waiting call to the queue's ready members by the queue's strategy."""
        q = self.queues[entry.queue]
        ready = self._ready[entry.queue]
        if not ready or entry.status != "waiting":
            return
        strategy = q.strategy
        if strategy == "sticky":
            # A withheld number is nobody in particular: no agent to stick to.
            last = self._last_agent.get((entry.queue, entry.caller)) if entry.caller else None
            if last is not None and last[0] in ready and now - last[1] <= q.sticky_window:
                self._ring(entry, [last[0]], now)
                return
            strategy = q.sticky_fallback
        order = self._order[entry.queue]
        level_of = q.skills
        cands = []
        for a in ready:
            cfg = self._configs[a]
            level = min((cfg.skills.get(s, 0) for s in level_of), default=0)
            st = self._stats.get((entry.queue, a))
            cands.append(Candidate(a, order[a], self.agents[a].idle_since, level,
                                   st.calls if st else 0, st.talk if st else 0.0))
        ranked = rank(strategy, cands, rr_last=self._rr_last[entry.queue], rng=self._rng)
        chosen = ranked if strategy == "ring-all" else ranked[:1]
        if strategy == "round-robin":
            self._rr_last[entry.queue] = chosen[0].order
        self._ring(entry, [c.agent for c in chosen], now)

    def _ring(self, entry: QueuedCall, agents: list[str], now: float) -> None:
        q = self.queues[entry.queue]
        entry.status = "ringing"
        entry.offered_at = now
        entry.ring_deadline = now + q.ring_timeout
        for a in agents:
            agent = self.agents[a]
            entry.ringing.add(a)
            agent.call_id, agent.queue = entry.call_id, entry.queue
            self._step(agent, I.SEND_OFFER, now)
            self._timer(entry.ring_deadline, "ring", f"{entry.call_id}\0{a}")
            self._events.append(CallOffered(
                entry.call_id, a, entry.queue, entry.caller, now - entry.joined,
                entry.priority, q.ring_timeout, entry.variables, entry.callback))

    def _ring_failed(self, call_id: str, agent_id: str, now: float, why: str) -> None:
        """Ring-no-answer (or refused): the agent goes not ready, the caller goes back to
        the front of the line and is offered on."""
        entry = self.calls.get(call_id)
        agent = self.agents.get(agent_id)
        if entry is None or agent is None or agent_id not in entry.ringing:
            return
        entry.ringing.discard(agent_id)
        self._events.append(QueueEvent(now, call_id, entry.queue, agent_id, "RINGNOANSWER",
                                       (str(round((now - entry.offered_at) * 1000)),)))
        if why != "rejected":  # the phone still rings: stop it
            self._events.append(OfferWithdrawn(call_id, agent_id, "ring_timeout"
                                               if why == "timeout" else "agent_busy"))
        if why == "busy":
            self._step(agent, I.RECV_WITHDRAWN, now)
        else:
            self._step(agent, I.TIMER_RING, now)
        if not entry.ringing:
            if entry.status == "ringing":
                entry.status = "waiting"
            entry.ring_deadline = 0.0
            self._offer(entry, now)

    def _withdraw_all(self, entry: QueuedCall, now: float, reason: str) -> None:
        ringing = sorted(entry.ringing)
        entry.ringing.clear()
        entry.ring_deadline = 0.0
        for a in ringing:
            self._events.append(OfferWithdrawn(entry.call_id, a, reason))
            self._step(self.agents[a], I.RECV_WITHDRAWN, now)

    def _leave(self, entry: QueuedCall, now: float, reason: str, event: str, *,
               target: str | None = None, digit: str = "") -> None:
        """The caller leaves the line without an agent (max wait, empty, exit key)."""
        q = self.queues[entry.queue]
        self._withdraw_all(entry, now, "caller_left")
        data = (str(self._position(entry)), str(entry.position), str(round(now - entry.joined)))
        self._events.append(QueueEvent(now, entry.call_id, entry.queue, "NONE", event,
                                       (digit, *data) if digit else data))
        self._drop(entry)
        self._events.append(CallLeftQueue(entry.call_id, entry.queue,
                                          target if target is not None else
                                          str(q.overflow or ""), reason))

    def _finish(self, entry: QueuedCall, now: float) -> None:
        """A connected call's agent part ended: talk time counted, the agent wraps up."""
        agent = self.agents.get(entry.agent)
        talk = now - entry.answered_at
        stats = self._stats.setdefault((entry.queue, entry.agent), _MemberStats())
        stats.talk += talk
        self._handle[entry.queue].append(talk + self.queues[entry.queue].wrapup)
        self._drop(entry)
        if agent is not None and agent.call_id == entry.call_id and agent.state in (
                S.ON_CALL, S.ON_HOLD):
            self._step(agent, I.RECV_END, now)
            if agent.wrapup_until <= now:  # no wrap-up time: ready (or what was asked) now
                self._wrapup_over(agent, now)

    def _drop(self, entry: QueuedCall) -> None:
        self._remove_from_line(entry)
        self.calls.pop(entry.call_id, None)
        entry.deadline = entry.next_announce = entry.next_message = 0.0

    def _remove_from_line(self, entry: QueuedCall) -> None:
        line = self._lines[entry.queue]
        if entry in line:
            line.remove(entry)

    def _position(self, entry: QueuedCall) -> int:
        line = self._lines[entry.queue]
        return line.index(entry) + 1 if entry in line else 0

    def _announce(self, entry: QueuedCall, now: float) -> None:
        q = self.queues[entry.queue]
        if not entry.callback:
            pos = self._position(entry)
            self._events.append(Announce(entry.call_id, pos, self.estimated_wait(q.name, pos)))
        entry.next_announce = now + q.announce_every
        self._timer(entry.next_announce, "announce", entry.call_id)

    def _message(self, entry: QueuedCall, now: float) -> None:
        q = self.queues[entry.queue]
        if not entry.callback:
            self._events.append(PlayMessage(entry.call_id,
                                            q.messages[entry.message_index % len(q.messages)]))
            entry.message_index += 1
        entry.next_message = now + q.message_every
        self._timer(entry.next_message, "message", entry.call_id)

    # -- timers --------------------------------------------------------------------
    def _timer(self, at: float, kind: str, key: str) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (at, self._seq, kind, key))

    def _timer_valid(self, at: float, _seq: int, kind: str, key: str) -> bool:
        if kind == "ring":
            call_id, agent_id = key.split("\0")
            entry = self.calls.get(call_id)
            return entry is not None and agent_id in entry.ringing and \
                entry.ring_deadline == at
        if kind == "wrapup":
            agent = self.agents[key]
            return agent.state is S.WRAPUP and agent.wrapup_until == at
        entry = self.calls.get(key)
        if entry is None or entry.status == "connected" or entry.callback:
            return False
        if kind == "maxwait":
            return entry.deadline == at
        if kind == "announce":
            return entry.next_announce == at
        return entry.next_message == at
