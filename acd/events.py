"""What the ACD tells call control, the API and storage.

The ACD (:class:`acd.engine.Acd`) is sans-IO: its inputs are method calls with ``now``
passed in, and its outputs are these events, taken with :meth:`Acd.next_event`. Call
control acts on the call events (ring an agent, cancel a ring, move a caller on, play an
announcement); storage keeps :class:`AgentStateChanged` and :class:`QueueEvent`; the API
pushes them all to WebSocket clients.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "AcdEvent",
    "AgentStateChanged",
    "Announce",
    "CallLeftQueue",
    "CallOffered",
    "OfferWithdrawn",
    "PlayMessage",
    "QueueEvent",
]


class AcdEvent:
    """Base of every ACD event."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class AgentStateChanged(AcdEvent):
    """An agent moved from one state to another (every transition, timestamped)."""

    agent: str
    #: The new state's value (``ready``, ``not_ready``, ``ringing``...).
    state: str
    #: The state left.
    previous: str
    #: ``now`` of the transition.
    at: float
    #: Not-ready reason code (``break``, ``lunch``, ``ring-no-answer``...), else "".
    reason: str = ""
    #: The call the agent is ringing for, talking on or wrapping up, else "".
    call_id: str = ""
    #: That call's queue, else "".
    queue: str = ""


@dataclass(frozen=True, slots=True)
class CallOffered(AcdEvent):
    """Ring ``agent`` for a queued call (the screen pop travels with it)."""

    call_id: str
    agent: str
    queue: str
    caller: str
    #: Seconds the caller has waited in line (from the first time they joined).
    wait: float
    priority: int
    #: Seconds the agent may ring before it counts as ring-no-answer.
    ring_timeout: int
    #: Variables the IVR set for the agent's screen.
    variables: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: For a callback: the number to dial once the agent answers (the caller is gone).
    callback: str = ""


@dataclass(frozen=True, slots=True)
class OfferWithdrawn(AcdEvent):
    """Stop ringing ``agent`` for ``call_id``."""

    call_id: str
    agent: str
    #: ``ring_timeout``, ``answered_elsewhere`` (ring-all), ``caller_left``.
    reason: str


@dataclass(frozen=True, slots=True)
class CallLeftQueue(AcdEvent):
    """A waiting caller leaves the queue without an agent: send it to ``target``."""

    call_id: str
    queue: str
    #: Where the caller goes (a target such as ``voicemail:general``); "" hangs up.
    target: str
    #: ``max_wait``, ``empty`` (join-empty / leave-when-empty), ``closed`` (business
    #: hours), ``key`` (the caller pressed an exit key), ``callback`` (hang up: we call
    #: back; the caller keeps its place).
    reason: str


@dataclass(frozen=True, slots=True)
class Announce(AcdEvent):
    """Tell a waiting caller its place in line and the estimated wait."""

    call_id: str
    position: int
    #: Estimated seconds to an agent (0 when there is no estimate yet).
    estimated_wait: int


@dataclass(frozen=True, slots=True)
class PlayMessage(AcdEvent):
    """Play one of the queue's periodic messages to a waiting caller."""

    call_id: str
    prompt: str


@dataclass(frozen=True, slots=True)
class QueueEvent(AcdEvent):
    """One line of the queue log, in Asterisk ``queue_log`` terms.

    ``event`` is ENTERQUEUE, CONNECT, COMPLETECALLER, COMPLETEAGENT, ABANDON,
    RINGNOANSWER, EXITWITHTIMEOUT, EXITWITHKEY, EXITEMPTY, TRANSFER, ADDMEMBER,
    REMOVEMEMBER, PAUSE, UNPAUSE, CALLBACK...; ``data`` holds its fields in Asterisk's
    order (``acd.queuelog`` documents each). Statistics are computed from these events
    alone, live and historical alike.
    """

    at: float
    call_id: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...] = ()
