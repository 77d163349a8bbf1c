"""Queue strategies: which ready agent a newly queued call is offered to.

A strategy only orders the queue's *ready* members; the engine (:mod:`acd.engine`)
offers the call to the first (to all of them for ``ring-all``). The other direction, an
agent freeing up while callers wait, is not a strategy matter: the agent takes the
best-placed caller across every queue it serves (priority, then time in line).

``sticky`` is resolved by the engine (it knows who served the caller last) and falls back
to the queue's ``sticky_fallback`` strategy, which is ranked here.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Candidate", "rank"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A ready member of the queue, with what the strategies compare."""

    agent: str
    #: Position in the queue's member list (``linear``, ``round-robin``).
    order: int
    #: When the agent last finished a queue call or became ready (``longest-idle``).
    idle_since: float
    #: The agent's skill level for the queue (``skills``): the lowest of its levels in
    #: the skills the queue requires, 0 when the queue requires none.
    level: int
    #: Calls answered from this queue today (``fewest-calls``).
    calls: int
    #: Seconds talked on this queue's calls today (``least-talk-time``).
    talk: float


def rank(strategy: str, candidates: Sequence[Candidate], *, rr_last: int,
         rng: random.Random) -> list[Candidate]:
    """Order ``candidates`` best first under ``strategy``.

    :param rr_last: ``order`` of the member the queue offered a call to last
        (``round-robin`` goes on after it, Asterisk's ``rrmemory``).
    :param rng: the engine's random source (seeded in tests).

    Ties break on longest idle, then member order, so results are deterministic.
    """
    def idle(c: Candidate) -> tuple[float, int]:
        return (c.idle_since, c.order)

    cands = list(candidates)
    if strategy in ("longest-idle", "ring-all"):
        cands.sort(key=idle)
    elif strategy == "linear":
        cands.sort(key=lambda c: c.order)
    elif strategy == "round-robin":
        cands.sort(key=lambda c: (c.order <= rr_last, c.order))
    elif strategy == "fewest-calls":
        cands.sort(key=lambda c: (c.calls, *idle(c)))
    elif strategy == "least-talk-time":
        cands.sort(key=lambda c: (c.talk, *idle(c)))
    elif strategy == "skills":
        cands.sort(key=lambda c: (-c.level, *idle(c)))
    elif strategy == "random":
        cands.sort(key=lambda c: c.order)
        rng.shuffle(cands)
    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    return cands
