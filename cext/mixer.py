"""Mixer façade: compile who-hears-whom into a :class:`MixPlan` and mix ticks with it.

The media worker keeps every leg as a row of one ``(legs, 160)`` int16 array. When the
topology changes (a call is bridged, a supervisor starts listening, someone is muted) it
builds a new plan here, in Python, once; every 20 ms it calls ``plan.mix(inp, out)``,
which runs without the GIL.

Call-center topologies as hears-sets (``c`` caller, ``a`` agent, ``s`` supervisor)::

    bridge(c, a)            c: {a}     a: {c}
    listen(c, a, s)         c: {a}     a: {c}       s: {c, a}   (nobody hears s)
    whisper(c, a, s)        c: {a}     a: {c, s}    s: {c, a}   (only a hears s)
    barge(c, a, s)          everybody hears everybody else
    conference(m1..mN)      everybody hears everybody else
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from ._mixer import MixPlan

__all__ = [
    "GAIN_UNITY",
    "MAX_GAIN",
    "MixPlan",
    "barge",
    "bridge",
    "conference",
    "gain_to_q12",
    "listen",
    "merge",
    "plan_from_hears",
    "plan_from_matrix",
    "whisper",
]

#: Q12 fixed point: 4096 is a gain of 1.0.
GAIN_UNITY = 4096
#: Largest gain a leg may have (+18 dB).
MAX_GAIN = 8.0
#: Largest room (int32 accumulators: 4096 legs * 32767 * 8 < 2**31).
MAX_ROOM = 4096

Hears = dict[int, set[int]]


def gain_to_q12(gain: float) -> int:
    """Convert a linear gain (0 = mute, 1 = unchanged, at most 8) to Q12.

    :raises ValueError: if the gain is negative, above 8 or not finite.
    """
    if not (0.0 <= gain <= MAX_GAIN):
        raise ValueError(f"gain must be between 0 and {MAX_GAIN}, got {gain}")
    return int(round(gain * GAIN_UNITY))


def bridge(caller: int, agent: int) -> Hears:
    """Two-party call: each hears the other."""
    return {caller: {agent}, agent: {caller}}


def conference(members: Iterable[int]) -> Hears:
    """N-party conference: every member hears every other member (N-1 mixing)."""
    legs = set(members)
    return {m: legs - {m} for m in legs}


def listen(caller: int, agent: int, supervisor: int) -> Hears:
    """Silent monitoring: the supervisor hears both, nobody hears the supervisor."""
    return {caller: {agent}, agent: {caller}, supervisor: {caller, agent}}


def whisper(caller: int, agent: int, supervisor: int) -> Hears:
    """Coaching: the agent hears caller and supervisor, the caller only the agent."""
    return {caller: {agent}, agent: {caller, supervisor}, supervisor: {caller, agent}}


def barge(caller: int, agent: int, supervisor: int) -> Hears:
    """Barge-in: a three-party conference."""
    return conference((caller, agent, supervisor))


def merge(*parts: Mapping[int, Iterable[int]]) -> Hears:
    """Union of several hears-maps (e.g. all the rooms of a worker)."""
    out: Hears = {}
    for part in parts:
        for leg, heard in part.items():
            out.setdefault(leg, set()).update(heard)
    return out


def plan_from_hears(n_legs: int, hears: Mapping[int, Iterable[int]] | Sequence[Iterable[int]],
                    gains: Sequence[float] | None = None) -> MixPlan:
    """Compile a hears-graph into a :class:`MixPlan`.

    :param n_legs: number of rows of the tick arrays.
    :param hears: ``hears[i]`` = the legs leg ``i`` hears (a mapping or a sequence);
        legs not mentioned hear nothing, ``i`` in ``hears[i]`` is ignored.
    :param gains: per-leg linear gain of what the others hear from it (0 = mute).
    :raises ValueError: on a leg index outside ``0..n_legs-1``, a bad gain or a room
        larger than 4096 legs.
    """
    if n_legs < 0:
        raise ValueError(f"n_legs must be >= 0, got {n_legs}")
    items = hears.items() if isinstance(hears, Mapping) else enumerate(hears)
    sets: list[set[int]] = [set() for _ in range(n_legs)]
    for leg, heard in items:
        if not (0 <= leg < n_legs):
            raise ValueError(f"leg {leg} out of range 0..{n_legs - 1}")
        for j in heard:
            if not (0 <= j < n_legs):
                raise ValueError(f"leg {leg} hears leg {j}, out of range 0..{n_legs - 1}")
            if j != leg:
                sets[leg].add(int(j))
    if gains is None:
        gain = np.full(n_legs, GAIN_UNITY, dtype=np.int32)
    else:
        if len(gains) != n_legs:
            raise ValueError(f"{len(gains)} gains for {n_legs} legs")
        gain = np.array([gain_to_q12(float(g)) for g in gains], dtype=np.int32)

    # Rooms: connected components of the undirected graph (union-find).
    parent = list(range(n_legs))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, heard in enumerate(sets):
        for j in heard:
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[ri] = rj
    rooms: dict[int, list[int]] = {}
    for i in range(n_legs):
        rooms.setdefault(find(i), []).append(i)
    room_ptr = [0]
    room_legs: list[int] = []
    subtract = np.zeros(n_legs, dtype=np.uint8)
    src_ptr = np.zeros(n_legs + 1, dtype=np.int32)
    lists: list[list[int]] = [[] for _ in range(n_legs)]
    for members in rooms.values():
        if len(members) > MAX_ROOM:
            raise ValueError(f"a room holds at most {MAX_ROOM} legs, got {len(members)}")
        room_legs.extend(members)
        room_ptr.append(len(room_legs))
        size = len(members)
        for i in members:
            heard = sets[i]
            # Cost of "sum of sources" is |heard|; of "total minus the rest" it is
            # |room - heard| (the room total is shared by the room).
            if size - len(heard) < len(heard):
                subtract[i] = 1
                lists[i] = sorted(set(members) - heard)
            else:
                lists[i] = sorted(heard)
    src: list[int] = []
    for i in range(n_legs):
        src.extend(lists[i])
        src_ptr[i + 1] = len(src)
    return MixPlan(gain, np.array(room_ptr, dtype=np.int32),
                   np.array(room_legs, dtype=np.int32), subtract, src_ptr,
                   np.array(src, dtype=np.int32))


def plan_from_matrix(matrix: npt.ArrayLike, gains: Sequence[float] | None = None) -> MixPlan:
    """Compile a dense hears matrix (``matrix[i, j] != 0``: leg ``i`` hears leg ``j``).

    :raises ValueError: if the matrix is not square.
    """
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"hears matrix must be square, got shape {m.shape}")
    hears = [np.flatnonzero(m[i]).tolist() for i in range(m.shape[0])]
    return plan_from_hears(m.shape[0], hears, gains)
