"""What a call is: its legs (SIP dialogs with media endpoints), its state, and the
transfer in progress. Call control (:mod:`hotline.callcontrol`) creates and changes
them; the server reads them for CDRs and recordings; the API describes them.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from media.client import EndpointHandle
from sip import sdp as sdplib
from sip.dialog import SipDialog
from sip.message import SipRequest, SipResponse
from sip.peer import Peer
from sip.session_timer import SessionTimer, UasTimerDecision
from sip.transaction import TransactionKey

from .config import Target, TrunkConfig
from .silence import SilentCallRule
from .trunkselect import TrunkPlan

if TYPE_CHECKING:
    from .ivrcall import IvrRun


def new_tag() -> str:
    """A fresh From/To tag."""
    return secrets.token_hex(6)


class CallState(Enum):
    """Where a call is in its life."""

    SETUP = "setup"
    ANSWERED = "answered"
    ENDED = "ended"


@dataclass(eq=False)
class Leg:
    """One SIP dialog of a call, with its media endpoint."""

    call: Call
    peer: Peer
    uas: bool
    """True for the leg toward the caller (we answer), False toward the callee."""
    call_id: str
    local_tag: str
    invite: SipRequest
    local_host: str
    dialog: SipDialog | None = None
    txn_key: TransactionKey | None = None
    answered: bool = False
    cancelled: bool = False
    bye_sent: bool = False
    ep: EndpointHandle | None = None
    remote_sdp: sdplib.SessionDescription | None = None
    local_sdp: sdplib.SessionDescription | None = None
    sdp_version: int = 1
    media: sdplib.NegotiatedMedia | None = None
    created: float = 0.0
    answered_at: float | None = None
    ended_at: float | None = None
    status: int | None = None
    """Final status of an outbound INVITE (its CDR disposition)."""
    user: str | None = None
    """The extension (agent id) behind this leg, if it is one of ours."""
    partner: Leg | None = None
    """For an outbound leg: the leg it was dialled for (the caller, a transferee)."""
    joined: bool = False
    """The leg is in the call's conversation (bridged, conferenced)."""
    held: bool = False
    """The leg's phone put us on hold (its last offer was sendonly/inactive)."""
    parked: bool = False
    """Put on hold through the API (the phone knows nothing of it)."""
    muted: bool = False
    """The others do not hear this leg (API mute)."""
    prompt: str | None = None
    """What we play to the leg while it has nobody to talk to (music on hold, ringback)."""
    room: str | None = None
    """The media room the leg's endpoint is in, as last set."""
    conference: str | None = None
    """The conference room the leg is in."""
    link: tuple[EndpointHandle, EndpointHandle] | None = None
    """A link to a room in another media worker (:meth:`hotline.mediactl.CallMedia.link`):
    its near end, in the leg's worker, is in the call's room with the leg; its far end
    takes the leg's place in the conference room."""
    early: bool = False
    """An outbound leg whose early media (18x with SDP) is bridged to the caller."""
    digits: str = ""
    """Recent DTMF of an extension's leg, for in-call feature codes (``*3``)."""
    digits_at: float = 0.0
    timer_offer: UasTimerDecision | None = None
    """The session timer agreed for our 2xx to the leg's INVITE (RFC 4028)."""
    timer: SessionTimer | None = None
    """The leg's running session timer."""
    timer_handle: asyncio.TimerHandle | None = None
    peer_allow: SipRequest | SipResponse | None = None
    """The peer's message carrying its Allow (its INVITE, or its 2xx to ours)."""
    trunk: TrunkConfig | None = None
    """For an outbound leg through a trunk: that trunk (one of its channels is counted
    until the leg ends)."""
    trunk_plan: TrunkPlan | None = None
    """For an outbound leg through a trunk: the route's trunks, for failover."""
    offer: bool = False
    """An outbound leg ringing an agent for a queue call (the ACD decides its fate)."""
    direct: bool = False
    """The leg counts as a direct call of its extension (busy for the ACD)."""
    monitor: str | None = None
    """A supervisor's leg: ``listen``, ``whisper`` or ``barge`` (:mod:`hotline.supervise`)."""
    monitor_of: str | None = None
    """The agent a supervisor's leg supervises."""


@dataclass(eq=False)
class BlindTransfer:
    """A blind transfer in progress (RFC 3515): the transferee waits for the target."""

    transferor: Leg
    transferee: Leg
    event_id: str
    subscribe: bool
    target: Target
    leg: Leg | None = None
    """The outbound leg toward the target, once dialled."""


@dataclass(eq=False)
class Call:
    """A call: the caller's leg, the callee's leg if any, and what routed it."""

    id: str
    caller: str
    called: str
    target: Target
    started: float
    trunk: TrunkConfig | None = None
    user: str | None = None
    legs: list[Leg] = field(default_factory=list)
    state: CallState = CallState.SETUP
    answered_at: float | None = None
    ended_at: float | None = None
    cause: str = ""
    status: int | None = None
    key: str = ""
    """Index of the call in :attr:`CallControl.calls` (Call-ID;our tag)."""
    cdr_open: bool = False
    """The call's CDR was written at answer and awaits its end."""
    record: bool = True
    """The route allows recording this call."""
    recording_id: str | None = None
    """The call's recording (one per contact), once answered and recorded."""
    recording_paused: bool = False
    """The recording is paused (card details being read out)."""
    route: Target | None = None
    """The route's target (``ivr:NAME``); :attr:`target` is where the call is now."""
    ivr: IvrRun | None = None
    """The IVR session running on the caller's leg, if the call entered one."""

    media_key: str = ""
    """Which media worker the call's endpoints live in (legs that may be joined later,
    an extension's consultation call, share its first call's key)."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Serialises the call's room and endpoint changes in the worker."""
    xfer: BlindTransfer | None = None
    """A blind transfer in progress."""
    silent_config: tuple[str, int] | None = None
    """The silent-call rule's prompt and seconds (from the call's IVR), if on."""
    silent: SilentCallRule | None = None
    """The silent-call rule, once the caller is connected to a person."""
    silent_handle: asyncio.TimerHandle | None = None
    queue: str | None = None
    """The queue the caller joined (the ACD knows the call by :attr:`key`)."""
    agent: str | None = None
    """The agent who answered the caller from the queue."""
    waiting: bool = False
    """The caller is in line (hears :attr:`hold_prompt`; its keys go to the queue)."""
    hold_prompt: str | None = None
    """What a caller with nobody to talk to hears (the queue's music on hold)."""
    announce_id: int | None = None
    """Play id of the queue announcement playing over the music."""
    variables: dict[str, str] = field(default_factory=dict)
    """IVR variables travelling with the call (screen pop)."""
    acd_key: str = ""
    """The ACD's key for the call when not :attr:`key` (a callback's new call)."""
    callback: str = ""
    """A queue callback: the customer's number (the agent is rung first)."""
    first_gone: str | None = None
    """Who left first: an agent id, or "" for a leg without one (the caller)."""

    def recording_sides(self) -> tuple[list[EndpointHandle], list[EndpointHandle]]:
        """Endpoints for the recording's channels: the caller (left) and everyone the
        caller hears (right: the agent, a transfer target, a conference's others, a
        barging supervisor, a room in another worker through its link; never a
        supervisor who listens or whispers)."""
        caller, *others = self.legs
        left = [caller.ep] if caller.ep is not None else []
        return left, [x.ep for x in others if x.ep is not None and x.joined
                      and x.monitor in (None, "barge")] + [
            x.link[0] for x in self.legs if x.link is not None and x.joined]
