"""Typed events returned by the sans-IO SIP objects via ``next_event()``.

Callers dispatch on them with ``match``/``isinstance``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typing only: sip/transaction.py imports this module
    from .message import SipRequest, SipResponse
    from .peer import Peer
    from .transaction import TransactionKey


@dataclass(frozen=True, slots=True)
class SipEvent:
    """Base of every event ``sip/`` emits."""


# -- transaction layer (sip/stack.py) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestReceived(SipEvent):
    """A new request for the TU (retransmissions are absorbed by the stack)."""

    request: SipRequest
    """The request, its top Via already stamped with ``received``/``rport`` (RFC 3581)."""
    peer: Peer
    """Where it came from (source address and, for streams, the connection)."""
    key: TransactionKey | None
    """The server transaction to answer through ``send_response``; None for an ACK
    (an ACK never has a transaction of its own, RFC 3261 §17)."""


@dataclass(frozen=True, slots=True)
class ResponseReceived(SipEvent):
    """A response matched one of our client transactions (RFC 3261 §17.1.3)."""

    response: SipResponse
    """The response."""
    key: TransactionKey
    """The client transaction returned by ``send_request``."""
    retransmission: bool = False
    """True for a repeated 2xx with an already seen To tag (the INVITE client
    transaction is in Accepted, RFC 6026): the TU re-sends its ACK. A 2xx with a new
    To tag (forking) is False."""


@dataclass(frozen=True, slots=True)
class TransactionTimeout(SipEvent):
    """Timer B or F fired on a client transaction (the TU maps it to 408, RFC 3261
    §8.1.3.1), or Timer H on a server transaction (the ACK for our final non-2xx
    never came, §17.2.1); ``key.server`` tells which."""

    key: TransactionKey
    """The transaction."""
    request: SipRequest
    """The request that created it."""


@dataclass(frozen=True, slots=True)
class TransportError(SipEvent):
    """Sending failed or the connection closed (RFC 3261 §17.1.4, §17.2.4)."""

    key: TransactionKey | None
    """The transaction that failed, None when no transaction was bound to the peer."""
    peer: Peer
    """The peer the adapter reported."""
    reason: str
    """What the adapter said, for the log."""


@dataclass(frozen=True, slots=True)
class CancelReceived(SipEvent):
    """A CANCEL matched an INVITE server transaction still in Proceeding (RFC 3261 §9.2).

    The stack has already answered the CANCEL with 200; the TU answers the INVITE
    with 487 through ``send_response``.
    """

    invite_key: TransactionKey
    """The INVITE server transaction being cancelled."""
    cancel: SipRequest
    """The CANCEL request."""


@dataclass(frozen=True, slots=True)
class AckTimeout(SipEvent):
    """Our 2xx to an INVITE was retransmitted for 64*T1 without an ACK (RFC 3261
    §13.3.1.4): the TU should end the dialog with BYE."""

    call_id: str
    """Call-ID of the INVITE."""
    cseq: int
    """CSeq number of the INVITE."""
    key: TransactionKey | None = None
    """The INVITE server transaction."""


@dataclass(frozen=True, slots=True)
class MalformedMessageReceived(SipEvent):
    """Bytes from a peer were not a valid SIP message; a request got a 400 (or the
    parser's status hint) if one could be addressed, a response was dropped."""

    peer: Peer
    """Where the bytes came from."""
    reason: str
    """The parser's error text."""
