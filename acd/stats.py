"""Contact-center statistics: one accumulator for the live dashboard and the reports.

Theory of operation
-------------------

:class:`AcdStats` is fed the ACD's history, :class:`~acd.events.QueueEvent` and
:class:`~acd.events.AgentStateChanged`, either as the engine emits them (the server,
with its ``wall_offset``) or as :class:`hotline.storage.Storage` reads them back
(already in Unix seconds). It keeps per-call records and per-agent state segments, and
computes every figure at query time for any interval ``[start, end)`` or for buckets of
15 minutes, an hour or a day (:meth:`AcdStats.report`). The live dashboard and
``hotline report`` call the same methods on the same kind of accumulator, so for the
same events they show the same numbers; only instantaneous figures (calls waiting now,
agents by state now) come from the engine itself.

Attribution, the one rule to know when reading a report:

* **Queue figures belong to the interval in which the call entered the queue**
  (ENTERQUEUE), whatever happens to it later: a call that joins at 09:59 and is answered
  at 10:01 is offered *and* answered in the 09:45 bucket. So every row is about one set
  of calls, ``offered = answered + abandoned + timed_out + exited_key + exited_empty +
  waiting`` holds in every row, and no rate can exceed 100 %. The figures of a recent
  interval still move while its calls are waiting or talking.
* **Agent figures belong to the interval in which things happened**: state time is cut
  at the interval edges; ``answered`` counts CONNECTs in the interval, and a call's
  handle time goes with its CONNECT.

The two event streams may be fed interleaved (live) or one after the other (from
storage): each figure comes from one stream, or joins the two by ``(call_id, queue)``, so
the order between them does not matter; each stream must be in time order. The formulas
are in ``docs/acd.md`` and on :class:`QueueStats` and :class:`AgentStats`.

Times in the queue log are whole seconds (``holdtime``, ``waittime``, ``calltime``, as
Asterisk writes them), so ASA, SL and talk time use those; hold and wrap-up come from
the agent state changes and keep their fractions.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, tzinfo
from datetime import time as dtime
from types import MappingProxyType
from typing import Any, Protocol

from .events import AcdEvent, AgentStateChanged, QueueEvent

__all__ = [
    "AGENT_STATES",
    "INTERVALS",
    "AcdStats",
    "AgentStats",
    "IntervalReport",
    "QueueStats",
    "QueueTargets",
    "StoredAcdEvents",
    "bucket_bounds",
    "bucket_of",
    "report_csv_rows",
    "stored_report",
]

INTERVALS: dict[str, int] = {"15m": 900, "hour": 3600, "day": 86400}
"""Report bucket names and their lengths in seconds (a ``day`` is local midnight to
midnight, so 23 or 25 hours on a DST change)."""

AGENT_STATES = ("ready", "not_ready", "ringing", "on_call", "on_hold", "wrapup")
"""The logged-in agent states, whose time :class:`AgentStats` reports."""
BUSY_STATES = frozenset({"ringing", "on_call", "on_hold", "wrapup"})
LOGGED_OUT = "logged_out"

# Call outcomes (what ended the wait); "" while the caller still waits.
ANSWERED = "answered"
ABANDONED = "abandoned"
TIMED_OUT = "timed_out"
EXITED_KEY = "exited_key"
EXITED_EMPTY = "exited_empty"
_EXITS = {"ABANDON": ABANDONED, "EXITWITHTIMEOUT": TIMED_OUT, "EXITWITHKEY": EXITED_KEY,
          "EXITEMPTY": EXITED_EMPTY}
_ENDS = frozenset({"COMPLETECALLER", "COMPLETEAGENT", "TRANSFER"})


@dataclass(frozen=True, slots=True)
class QueueTargets:
    """A queue's thresholds (``service_level`` and ``short_abandon`` of ``[[queues]]``)."""

    #: Answered with a hold time of at most this many seconds counts as within SL.
    service_level: float = 20.0
    #: An abandon after less than this many seconds of waiting is a short abandon.
    short_abandon: float = 5.0


class _QueueLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def service_level(self) -> int: ...
    @property
    def short_abandon(self) -> int: ...


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One queue over ``[start, end)``: the calls that entered it then.

    Counts and sums are fields (they add up across buckets); rates are properties
    computed from them, and :meth:`to_json` includes both. A rate whose denominator is 0
    is None.
    """

    queue: str
    start: float
    end: float
    #: The thresholds used (seconds).
    service_level: float
    short_abandon: float
    #: ENTERQUEUE: calls that joined the queue.
    offered: int = 0
    #: Calls answered by an agent (CONNECT), including after a callback.
    answered: int = 0
    #: Answered with ``holdtime <= service_level``.
    answered_in_sl: int = 0
    #: The caller hung up while waiting (ABANDON).
    abandoned: int = 0
    #: Abandoned with ``waittime < short_abandon``.
    short_abandoned: int = 0
    #: Left at ``max_wait`` (EXITWITHTIMEOUT).
    timed_out: int = 0
    #: Left with an exit key, a callback not yet answered included (EXITWITHKEY).
    exited_key: int = 0
    #: Left because the last agent logged out (EXITEMPTY).
    exited_empty: int = 0
    #: Still waiting (or ringing) when last fed: no outcome yet.
    waiting: int = 0
    #: Turned away on joining with no agent logged in (JOINEMPTY; not offered).
    joined_empty: int = 0
    #: Answered calls the agent transferred on (TRANSFER).
    transferred: int = 0
    #: Ring-no-answers (RINGNOANSWER) while these calls waited.
    ring_no_answer: int = 0
    #: Answered calls whose talk and wrap-up are both over (the AHT's calls).
    handled: int = 0
    #: Sum of the answered calls' hold times (CONNECT ``holdtime``).
    wait_answered: float = 0.0
    #: Longest hold time of an answered call.
    longest_wait_answered: float = 0.0
    #: Sum of the abandoned calls' wait times (ABANDON ``waittime``).
    wait_abandoned: float = 0.0
    #: Handled calls: ``calltime`` minus hold.
    talk: float = 0.0
    #: Handled calls: time the agent had the caller on hold.
    hold: float = 0.0
    #: Handled calls: the agent's wrap-up after the call.
    wrapup: float = 0.0

    @property
    def resolved(self) -> int:
        """Calls with an outcome: ``offered - waiting``."""
        return self.answered + self.abandoned + self.timed_out + self.exited_key + \
            self.exited_empty

    @property
    def sl(self) -> float | None:
        """Service level: ``answered_in_sl / (resolved - short_abandoned)``."""
        return _ratio(self.answered_in_sl, self.resolved - self.short_abandoned)

    @property
    def sl2(self) -> float | None:
        """Service level counting every abandon: ``answered_in_sl / resolved``."""
        return _ratio(self.answered_in_sl, self.resolved)

    @property
    def asa(self) -> float | None:
        """Average speed of answer: ``wait_answered / answered`` (seconds)."""
        return _ratio(self.wait_answered, self.answered)

    @property
    def abandon_rate(self) -> float | None:
        """``abandoned / resolved`` (short abandons included)."""
        return _ratio(self.abandoned, self.resolved)

    @property
    def avg_abandon_wait(self) -> float | None:
        """``wait_abandoned / abandoned`` (seconds)."""
        return _ratio(self.wait_abandoned, self.abandoned)

    @property
    def aht(self) -> float | None:
        """Average handle time: ``(talk + hold + wrapup) / handled`` (seconds)."""
        return _ratio(self.talk + self.hold + self.wrapup, self.handled)

    @property
    def avg_talk(self) -> float | None:
        return _ratio(self.talk, self.handled)

    @property
    def avg_hold(self) -> float | None:
        return _ratio(self.hold, self.handled)

    @property
    def avg_wrapup(self) -> float | None:
        return _ratio(self.wrapup, self.handled)

    def to_json(self) -> dict[str, Any]:
        """The fields and the rates, as a JSON-ready dict."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in _QUEUE_RATES:
            out[name] = getattr(self, name)
        return out


_QUEUE_RATES = ("resolved", "sl", "sl2", "asa", "abandon_rate", "avg_abandon_wait", "aht",
                "avg_talk", "avg_hold", "avg_wrapup")


@dataclass(frozen=True, slots=True)
class AgentStats:
    """One agent over ``[start, end)``."""

    agent: str
    start: float
    end: float
    #: Seconds in each logged-in state (:data:`AGENT_STATES`), cut at the interval edges.
    #: ``on_call`` includes direct (non-queue) calls.
    state_time: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    #: Seconds not ready, by reason code (``break``, ``ring-no-answer``...).
    not_ready_time: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType({}))
    #: Queue calls the agent answered (CONNECT) in the interval.
    answered: int = 0
    #: Of those, the calls whose talk and wrap-up are over.
    handled: int = 0
    #: TRANSFERs by the agent in the interval.
    transferred: int = 0
    #: RINGNOANSWERs of the agent's phone in the interval.
    ring_no_answer: int = 0
    #: Handled calls' talk, hold and wrap-up (as in :class:`QueueStats`).
    talk: float = 0.0
    hold: float = 0.0
    wrapup: float = 0.0

    @property
    def logged_in(self) -> float:
        """Seconds logged in: the sum of :attr:`state_time`."""
        return sum(self.state_time.values())

    @property
    def staffed(self) -> float:
        """Seconds logged in and not on a break: ``logged_in - not_ready``."""
        return self.logged_in - self.state_time.get("not_ready", 0.0)

    @property
    def busy(self) -> float:
        """Seconds ringing, on a call, on hold or in wrap-up."""
        return sum(v for k, v in self.state_time.items() if k in BUSY_STATES)

    @property
    def occupancy(self) -> float | None:
        """``busy / staffed``: the share of available time spent on calls."""
        return _ratio(self.busy, self.staffed)

    @property
    def aht(self) -> float | None:
        """``(talk + hold + wrapup) / handled`` (seconds)."""
        return _ratio(self.talk + self.hold + self.wrapup, self.handled)

    def to_json(self) -> dict[str, Any]:
        """The fields and the derived figures, as a JSON-ready dict."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["state_time"] = dict(self.state_time)
        out["not_ready_time"] = dict(self.not_ready_time)
        for name in ("logged_in", "staffed", "busy", "occupancy", "aht"):
            out[name] = getattr(self, name)
        return out


@dataclass(frozen=True, slots=True)
class IntervalReport:
    """Every queue and agent over one bucket ``[start, end)``."""

    start: float
    end: float
    queues: tuple[QueueStats, ...]
    agents: tuple[AgentStats, ...]

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end,
                "queues": [q.to_json() for q in self.queues],
                "agents": [a.to_json() for a in self.agents]}


# -- internal records -------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Call:
    """One stay of one call in one queue."""

    call_id: str
    queue: str
    #: When it entered the queue; None for a call first seen at its CONNECT (it entered
    #: before the events fed, so it belongs to no queue bucket).
    entered: float | None
    outcome: str = ""
    agent: str = ""
    holdtime: float = 0.0
    waittime: float = 0.0
    rna: int = 0
    ended: bool = False
    transferred: bool = False
    calltime: float = 0.0


@dataclass(slots=True)
class _Work:
    """A call's hold and wrap-up, from the answering agent's state changes."""

    hold: float = 0.0
    wrapup: float = 0.0
    wrapup_done: bool = False


@dataclass(slots=True)
class _Agent:
    #: Closed segments: (start, end, state, reason).
    segments: list[tuple[float, float, str, str]] = field(default_factory=list)
    state: str = LOGGED_OUT
    since: float = 0.0
    reason: str = ""
    call_id: str = ""
    queue: str = ""
    seen: bool = False
    connects: list[tuple[float, _Call]] = field(default_factory=list)
    rna: list[float] = field(default_factory=list)
    transfers: list[float] = field(default_factory=list)


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


def _field(data: tuple[str, ...], i: int) -> float:
    return _num(data[i]) if i < len(data) else 0.0


# -- buckets ----------------------------------------------------------------------------


def _local(ts: float, tz: tzinfo | None) -> datetime:
    return datetime.fromtimestamp(ts, tz)


def _floor(ts: float, interval: str, tz: tzinfo | None) -> float:
    dt = _local(ts, tz)
    if interval == "day":
        dt = dt.replace(hour=0, minute=0, second=0, microsecond=0)
    elif interval == "hour":
        dt = dt.replace(minute=0, second=0, microsecond=0)
    else:
        dt = dt.replace(minute=dt.minute - dt.minute % 15, second=0, microsecond=0)
    return dt.timestamp()


def _next(bound: float, interval: str, tz: tzinfo | None) -> float:
    if interval != "day":
        return bound + INTERVALS[interval]
    day = _local(bound, tz).date() + timedelta(days=1)
    return datetime.combine(day, dtime(0), tzinfo=tz).timestamp()


def bucket_of(when: float, interval: str, tz: tzinfo | None = None) -> tuple[float, float]:
    """The whole bucket ``[start, end)`` of ``interval`` (local time ``tz``) holding
    ``when``.

    :raises ValueError: for an unknown interval.
    """
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    start = _floor(when, interval, tz)
    return start, _next(start, interval, tz)


def bucket_bounds(start: float, end: float, interval: str | None = None,
                  tz: tzinfo | None = None) -> list[float]:
    """The edges of the report buckets covering ``[start, end)``.

    Buckets start on the interval's boundaries in local time (``tz``; None is the
    system's), e.g. 08:00, 08:15... for ``15m`` or midnight for ``day``; the first and
    last are cut to ``start`` and ``end``. Returns ``[start, b1, ..., end]``: bucket
    ``i`` is ``[bounds[i], bounds[i + 1])``.

    :param interval: a key of :data:`INTERVALS`, or None for one bucket.
    :raises ValueError: for an unknown interval or ``end <= start``.
    """
    if end <= start:
        raise ValueError(f"empty interval: end {end} <= start {start}")
    if interval is None:
        return [start, end]
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    bounds = [start]
    b = _next(_floor(start, interval, tz), interval, tz)
    while b < end:
        if b > bounds[-1]:
            bounds.append(b)
        b = _next(b, interval, tz)
    bounds.append(end)
    return bounds


# -- the accumulator --------------------------------------------------------------------


class AcdStats:
    """The statistics accumulator (see the module docstring).

    :param targets: queue name → thresholds; queues not listed use ``default``.
    """

    def __init__(self, targets: Mapping[str, QueueTargets] | None = None,
                 default: QueueTargets = QueueTargets()) -> None:
        self.targets: dict[str, QueueTargets] = dict(targets or {})
        self.default = default
        #: Every call stay, in the order they entered.
        self._calls: list[_Call] = []
        #: call_id → its latest stay.
        self._current: dict[str, _Call] = {}
        self._work: dict[tuple[str, str], _Work] = {}
        self._agents: dict[str, _Agent] = {}
        self._queues: set[str] = set(self.targets)
        self._joined_empty: list[tuple[float, str]] = []
        #: The latest event time fed (the default ``now`` of the queries).
        self.latest: float | None = None

    @classmethod
    def for_queues(cls, queues: Iterable[_QueueLike]) -> AcdStats:
        """An accumulator with the thresholds of configured queues
        (:class:`hotline.config.QueueConfig`)."""
        return cls({q.name: QueueTargets(float(q.service_level), float(q.short_abandon))
                    for q in queues})

    def target(self, queue: str) -> QueueTargets:
        """The thresholds of ``queue``."""
        return self.targets.get(queue, self.default)

    # -- feeding

    def feed(self, event: AcdEvent, wall_offset: float = 0.0) -> None:
        """Take one event; events other than queue events and agent state changes are
        ignored.

        :param wall_offset: added to ``event.at`` (the server's loop time to Unix
            seconds; 0 for events read from storage). Use the offset storage gets so both
            sides compute the same times.
        """
        if isinstance(event, QueueEvent):
            at = event.at + wall_offset
            self._seen(at)
            self._queue_event(event, at)
        elif isinstance(event, AgentStateChanged):
            at = event.at + wall_offset
            self._seen(at)
            self._state_change(event, at)

    def feed_all(self, events: Iterable[AcdEvent], wall_offset: float = 0.0) -> None:
        """:meth:`feed` each event, in order.

        To rebuild from storage the figures from ``since`` on::

            stats.feed_all(db.agent_states_at(since))   # who was doing what at since
            stats.feed_all(db.agent_states_since(since))
            stats.feed_all(db.queue_log_since(since))
        """
        for event in events:
            self.feed(event, wall_offset)

    def _seen(self, at: float) -> None:
        if self.latest is None or at > self.latest:
            self.latest = at

    def _agent(self, agent_id: str) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            agent = self._agents[agent_id] = _Agent()
        return agent

    def _queue_event(self, ev: QueueEvent, at: float) -> None:
        name = ev.event
        call = self._current.get(ev.call_id)
        if name == "ENTERQUEUE":
            entry = _Call(ev.call_id, ev.queue, at)
            self._calls.append(entry)
            self._current[ev.call_id] = entry
            self._queues.add(ev.queue)
        elif name == "JOINEMPTY":
            self._joined_empty.append((at, ev.queue))
            self._queues.add(ev.queue)
        elif name == "CONNECT":
            found = self._current.get(ev.call_id)
            if found is None or found.queue != ev.queue or found.outcome == ANSWERED:
                found = _Call(ev.call_id, ev.queue, None)  # entered before the events fed
                self._current[ev.call_id] = found
            found.outcome = ANSWERED
            found.agent = ev.agent
            found.holdtime = _field(ev.data, 0)
            self._agent(ev.agent).connects.append((at, found))
        elif name in _EXITS:
            if call is not None and call.queue == ev.queue and call.outcome != ANSWERED:
                call.outcome = _EXITS[name]
                call.waittime = _field(ev.data, 3 if name == "EXITWITHKEY" else 2)
        elif name == "RINGNOANSWER":
            if call is not None and call.queue == ev.queue:
                call.rna += 1
            if ev.agent and ev.agent != "NONE":
                self._agent(ev.agent).rna.append(at)
        elif name in _ENDS:
            if call is not None and call.queue == ev.queue and call.outcome == ANSWERED:
                call.ended = True
                call.transferred = name == "TRANSFER"
                call.calltime = _field(ev.data, 3 if name == "TRANSFER" else 1)
            if name == "TRANSFER":
                self._agent(ev.agent).transfers.append(at)

    def _state_change(self, ev: AgentStateChanged, at: float) -> None:
        agent = self._agent(ev.agent)
        if agent.seen:
            start = agent.since
            end = max(at, start)
            if agent.state != LOGGED_OUT:
                agent.segments.append((start, end, agent.state, agent.reason))
            if agent.call_id and agent.state in ("on_hold", "wrapup"):
                work = self._work.setdefault((agent.call_id, agent.queue), _Work())
                if agent.state == "on_hold":
                    work.hold += end - start
                else:
                    work.wrapup += end - start
                    if ev.state != "wrapup" or ev.call_id != agent.call_id:
                        work.wrapup_done = True
        agent.seen = True
        agent.state, agent.since, agent.reason = ev.state, at, ev.reason
        agent.call_id, agent.queue = ev.call_id, ev.queue

    # -- queries

    def queues(self) -> list[str]:
        """Queues configured or seen in the events, sorted."""
        return sorted(self._queues)

    def agents(self) -> list[str]:
        """Agents seen in the events, sorted."""
        return sorted(self._agents)

    def queue_stats(self, queue: str, start: float, end: float) -> QueueStats:
        """``queue``'s figures for the calls that entered it in ``[start, end)``."""
        return self._compute([start, end], None, [queue], [])[0][0][0]

    def agent_stats(self, agent: str, start: float, end: float,
                    now: float | None = None) -> AgentStats:
        """``agent``'s figures over ``[start, end)``.

        :param now: where the agent's current state ends (default: :attr:`latest`).
        """
        return self._compute([start, end], now, [], [agent])[1][0][0]

    def report(self, start: float, end: float, interval: str | None = None, *,
               tz: tzinfo | None = None, now: float | None = None) -> list[IntervalReport]:
        """Every queue and agent for each bucket of :func:`bucket_bounds`.

        :param now: where agents' current states end (default: :attr:`latest`); the live
            dashboard passes the wall clock.
        """
        bounds = bucket_bounds(start, end, interval, tz)
        qs, ags = self._compute(bounds, now, self.queues(), self.agents())
        return [IntervalReport(bounds[i], bounds[i + 1], tuple(q[i] for q in qs),
                               tuple(a[i] for a in ags)) for i in range(len(bounds) - 1)]

    def _compute(self, bounds: list[float], now: float | None, queues: list[str],
                 agents: list[str]) -> tuple[list[list[QueueStats]], list[list[AgentStats]]]:
        n = len(bounds) - 1
        # Queues: every call stay goes to the bucket it entered in.
        qacc: dict[str, list[dict[str, float]]] = {q: [_zero_queue() for _ in range(n)]
                                                  for q in queues}
        for call in self._calls:
            rows = qacc.get(call.queue)
            if rows is None or call.entered is None:
                continue
            i = bisect_right(bounds, call.entered) - 1
            if 0 <= i < n:
                self._add_call(rows[i], call)
        for at, queue in self._joined_empty:
            rows = qacc.get(queue)
            i = bisect_right(bounds, at) - 1
            if rows is not None and 0 <= i < n:
                rows[i]["joined_empty"] += 1
        qout = []
        for q in queues:
            t = self.target(q)
            qout.append([_queue_stats(acc, queue=q, start=bounds[i], end=bounds[i + 1],
                               service_level=t.service_level, short_abandon=t.short_abandon)
                         for i, acc in enumerate(qacc[q])])
        # Agents: state time cut at the bucket edges; counts by event time.
        upto = self.latest if now is None else now
        aout = []
        for agent_id in agents:
            aacc = [_zero_agent() for _ in range(n)]
            agent = self._agents.get(agent_id)
            if agent is not None:
                segments = list(agent.segments)
                if agent.seen and agent.state != LOGGED_OUT and upto is not None:
                    segments.append((agent.since, max(upto, agent.since), agent.state,
                                     agent.reason))
                for seg in segments:
                    _spread(bounds, aacc, seg)
                for at, call in agent.connects:
                    i = bisect_right(bounds, at) - 1
                    if 0 <= i < n:
                        acc = aacc[i]
                        acc["answered"] += 1
                        work = self._handled(call)
                        if work is not None:
                            acc["handled"] += 1
                            acc["talk"] += max(0.0, call.calltime - work.hold)
                            acc["hold"] += work.hold
                            acc["wrapup"] += work.wrapup
                for key, times in (("ring_no_answer", agent.rna),
                                   ("transferred", agent.transfers)):
                    for at in times:
                        i = bisect_right(bounds, at) - 1
                        if 0 <= i < n:
                            aacc[i][key] += 1
            aout.append([_agent_stats(agent_id, bounds[i], bounds[i + 1], acc)
                         for i, acc in enumerate(aacc)])
        return qout, aout

    def _handled(self, call: _Call) -> _Work | None:
        """The call's work if its talk and wrap-up are over, else None."""
        if call.outcome != ANSWERED or not call.ended:
            return None
        work = self._work.get((call.call_id, call.queue))
        return work if work is not None and work.wrapup_done else None

    def _add_call(self, acc: dict[str, float], call: _Call) -> None:
        t = self.target(call.queue)
        acc["offered"] += 1
        acc["ring_no_answer"] += call.rna
        outcome = call.outcome
        if outcome == ANSWERED:
            acc["answered"] += 1
            acc["wait_answered"] += call.holdtime
            acc["longest_wait_answered"] = max(acc["longest_wait_answered"], call.holdtime)
            if call.holdtime <= t.service_level:
                acc["answered_in_sl"] += 1
            if call.transferred:
                acc["transferred"] += 1
            work = self._handled(call)
            if work is not None:
                acc["handled"] += 1
                acc["talk"] += max(0.0, call.calltime - work.hold)
                acc["hold"] += work.hold
                acc["wrapup"] += work.wrapup
        elif outcome == ABANDONED:
            acc["abandoned"] += 1
            acc["wait_abandoned"] += call.waittime
            if call.waittime < t.short_abandon:
                acc["short_abandoned"] += 1
        elif outcome:
            acc[outcome] += 1
        else:
            acc["waiting"] += 1

    # -- memory

    def prune(self, before: float) -> None:
        """Forget what only matters to intervals ending at or before ``before`` (Unix
        seconds): settled calls that entered earlier, closed agent segments and events.
        The live server calls it, say, daily with the start of the oldest interval its
        dashboard shows."""
        def settled(call: _Call) -> bool:
            return bool(call.outcome) and (call.outcome != ANSWERED or
                                           self._handled(call) is not None)

        self._calls = [c for c in self._calls
                       if c.entered is None or c.entered >= before or not settled(c)]
        self._joined_empty = [j for j in self._joined_empty if j[0] >= before]
        for agent in self._agents.values():
            agent.segments = [s for s in agent.segments if s[1] > before]
            agent.connects = [c for c in agent.connects if c[0] >= before]
            agent.rna = [t for t in agent.rna if t >= before]
            agent.transfers = [t for t in agent.transfers if t >= before]
        # Keep the calls still counted somewhere, and any call not settled yet.
        live = {id(c) for c in self._calls}
        live.update(id(c) for a in self._agents.values() for _, c in a.connects)
        self._current = {k: c for k, c in self._current.items()
                         if id(c) in live or not settled(c)}
        keys = {(c.call_id, c.queue) for c in self._current.values()}
        keys.update((c.call_id, c.queue) for c in self._calls)
        self._work = {k: w for k, w in self._work.items() if k in keys or not w.wrapup_done}


_QUEUE_COUNTS = tuple(f.name for f in fields(QueueStats)
                      if f.name not in ("queue", "start", "end", "service_level",
                                        "short_abandon"))
_QUEUE_INTS = frozenset(f.name for f in fields(QueueStats) if f.type == "int")
_AGENT_COUNTS = ("answered", "handled", "transferred", "ring_no_answer", "talk", "hold",
                 "wrapup")
_AGENT_INTS = frozenset({"answered", "handled", "transferred", "ring_no_answer"})


def _zero_queue() -> dict[str, float]:
    return dict.fromkeys(_QUEUE_COUNTS, 0.0)


def _zero_agent() -> dict[str, Any]:
    acc: dict[str, Any] = dict.fromkeys(_AGENT_COUNTS, 0.0)
    acc["state_time"] = dict.fromkeys(AGENT_STATES, 0.0)
    acc["not_ready_time"] = {}
    return acc


def _queue_stats(acc: dict[str, float], **fixed: Any) -> QueueStats:
    values: dict[str, Any] = {k: (int(v) if k in _QUEUE_INTS else v) for k, v in acc.items()}
    return QueueStats(**fixed, **values)


def _agent_stats(agent: str, start: float, end: float, acc: dict[str, Any]) -> AgentStats:
    counts: dict[str, Any] = {k: (int(acc[k]) if k in _AGENT_INTS else acc[k])
                              for k in _AGENT_COUNTS}
    return AgentStats(agent, start, end,
                      MappingProxyType(dict(acc["state_time"])),
                      MappingProxyType(dict(sorted(acc["not_ready_time"].items()))),
                      **counts)


def _spread(bounds: list[float], aacc: list[dict[str, Any]],
            seg: tuple[float, float, str, str]) -> None:
    """Add a state segment's time to the buckets it overlaps."""
    s, e, state, reason = seg
    n = len(bounds) - 1
    if e <= bounds[0] or s >= bounds[-1] or e <= s:
        return
    i = max(0, bisect_right(bounds, s) - 1)
    while i < n and bounds[i] < e:
        overlap = min(e, bounds[i + 1]) - max(s, bounds[i])
        if overlap > 0:
            acc = aacc[i]
            times = acc["state_time"]
            times[state] = times.get(state, 0.0) + overlap
            if state == "not_ready":
                nr = acc["not_ready_time"]
                nr[reason] = nr.get(reason, 0.0) + overlap
        i += 1


# -- reports from storage ---------------------------------------------------------------


class StoredAcdEvents(Protocol):
    """Where reports read the ACD's history: :class:`hotline.storage.Storage` (times in
    Unix seconds, each stream in time order)."""

    def agent_states_at(self, when: float) -> Sequence[AgentStateChanged]: ...

    def agent_states_since(self, since: float | None,
                           until: float | None = None) -> Sequence[AgentStateChanged]: ...

    def queue_log_since(self, since: float | None,
                        until: float | None = None) -> Sequence[QueueEvent]: ...


def stored_report(history: StoredAcdEvents, stats: AcdStats, since: float | None,
                  until: float | None, interval: str | None = None, *,
                  tz: tzinfo | None = None, now: float) -> list[IntervalReport]:
    """The report of ``hotline report`` and ``GET /api/reports``: ``stats`` fed from
    storage, cut into the buckets of ``[since, until)``.

    Agents' states at ``since`` are read first, so an agent logged in before counts from
    its first second. Events are read from ``since`` on without an upper bound: a call
    that entered before ``until`` is followed to its end even if it comes later.

    :param stats: a fresh accumulator with the site's thresholds
        (:meth:`AcdStats.for_queues`).
    :param since: Unix seconds; None starts at the first stored event (at the start of
        its bucket with an ``interval``).
    :param until: Unix seconds; None ends with the last event fed (at the end of its
        bucket with an ``interval``).
    :param interval: a key of :data:`INTERVALS`, or None for one row for the period.
    :param tz: the site's zone, where buckets start.
    :param now: the wall clock (Unix seconds): agents' current states count up to the
        earlier of ``now`` and ``until``.
    :returns: the buckets, or ``[]`` when the period is empty or nothing is stored.
    :raises ValueError: for an unknown interval.
    """
    if interval is not None and interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    if since is not None:
        stats.feed_all(history.agent_states_at(since))
    states = history.agent_states_since(since)
    events = history.queue_log_since(since)
    stats.feed_all(states)
    stats.feed_all(events)
    if since is None:
        firsts = [x[0].at for x in (states, events) if x]
        if not firsts:
            return []  # nothing recorded
        first = min(firsts)
        since = first if interval is None else bucket_of(first, interval, tz)[0]
    if until is None:
        latest = stats.latest
        if latest is None or latest < since:
            return []
        until = (math.nextafter(latest, math.inf) if interval is None
                 else bucket_of(latest, interval, tz)[1])
    if until <= since:
        return []
    return stats.report(since, until, interval, tz=tz, now=min(until, now))


_AGENT_CSV_EXTRA = ("logged_in", "staffed", "busy", "occupancy", "aht")


def report_csv_rows(rows: Iterable[IntervalReport], *, agents: bool = False,
                    tz: tzinfo | None = None) -> Iterator[list[Any]]:
    """The rows of ``hotline report --csv``, the header row first (for ``csv.writer``).

    Queues: every field and rate of :meth:`QueueStats.to_json`, one row per queue and
    bucket. Agents: the :class:`AgentStats` fields, ``time_<state>`` for each of
    :data:`AGENT_STATES` and the derived figures. ``start`` and ``end`` are ISO 8601
    with ``tz``'s offset (seconds); None is an empty cell.
    """
    if agents:
        head = [f.name for f in fields(AgentStats)
                if f.name not in ("state_time", "not_ready_time")]
        yield [*head, *(f"time_{s}" for s in AGENT_STATES), *_AGENT_CSV_EXTRA]
        for row in rows:
            for a in row.agents:
                data = a.to_json()
                yield ([_csv_cell(data[h], h, tz) for h in head]
                       + [data["state_time"][s] for s in AGENT_STATES]
                       + [_csv_cell(data[h], h, tz) for h in _AGENT_CSV_EXTRA])
    else:
        head = list(QueueStats("", 0, 0, 0, 0).to_json())
        yield head
        for row in rows:
            for q in row.queues:
                data = q.to_json()
                yield [_csv_cell(data[h], h, tz) for h in head]


def _csv_cell(value: Any, name: str, tz: tzinfo | None) -> Any:
    if value is None:
        return ""
    if name in ("start", "end"):
        return datetime.fromtimestamp(value, tz).astimezone(tz).isoformat(timespec="seconds")
    return value
