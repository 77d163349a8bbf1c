"""SIP transactions: RFC 3261 §17 with the RFC 6026 corrections, sans-IO.

Theory of operation
-------------------
A transaction is one request and the responses to it (plus, for an INVITE answered
with a non-2xx final, the ACK). There are four machines:

* INVITE client (ICT, §17.1.1, RFC 6026 §8.4): Calling → Proceeding → Completed or
  Accepted → Terminated; timers A (retransmit), B (give up), D (absorb final
  retransmissions after our ACK), M (absorb 2xx retransmissions/forks, RFC 6026).
* non-INVITE client (NICT, §17.1.2): Trying → Proceeding → Completed → Terminated;
  timers E (retransmit), F (give up), K (absorb final retransmissions).
* INVITE server (IST, §17.2.1, RFC 6026 §8.6): Proceeding → Completed → Confirmed, or
  Proceeding → Accepted; timers G (retransmit final), H (wait for ACK), I (absorb ACK
  retransmissions), L (RFC 6026: stay in Accepted to absorb INVITE retransmissions),
  plus "Trying" (send 100 if the TU has not answered within 200 ms, §17.2.1).
* non-INVITE server (NIST, §17.2.2): Trying → Proceeding → Completed → Terminated;
  timer J.

Each machine is an ``Enum`` of states, an ``Enum`` of inputs named ``RECV_*``
(a message arrived), ``SEND_*`` (the TU passed us a response), ``TIMER_*`` (a timer
fired) and ``TRANSPORT_ERROR``, and ONE literal dict
``{(state, input): (side_effect | None, next_state)}``. :meth:`SipTransaction.fire` is
the only place a state changes: it looks the pair up, runs the side effect, then enters
the next state. A pair that is not in the table is a protocol violation: the machine
moves to Terminated and :class:`LocalProtocolError` is raised (the stack catches it
for network input; a TU that, say, sends two final responses gets the exception).

The machines do no I/O and read no clock. They talk to an owner (the
:class:`sip.stack.SipStack`, see :class:`TransactionOwner`) through four calls: send
these bytes to that peer, schedule this timer input at that deadline, emit this
event, I am terminated. Timer deadlines are ``now + interval`` arithmetic on the
``now`` passed in. A zero interval (timers D, I, J, K on reliable transports, §17)
fires synchronously right after the transition that started it, so a transaction over
TCP ends in the same call that completed it.

On reliable transports (``Peer.reliable``) nothing is retransmitted: timers A, E and G
are not started (§17.1.1.2, §17.1.2.2, §17.2.1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from .events import AckTimeout, ResponseReceived, SipEvent, TransactionTimeout, TransportError
from .exceptions import LocalProtocolError
from .message import SipMessage, SipRequest, SipResponse, make_response
from .peer import Peer

logger = logging.getLogger("hotline.sip")

T1 = 0.5
"""RTT estimate, seconds (RFC 3261 §17.1.1.1)."""
T2 = 4.0
"""Maximum retransmission interval for non-INVITE requests and INVITE responses."""
T4 = 5.0
"""Maximum time a message stays in the network."""
TIMER_D_UNRELIABLE = 32.0
"""Timer D over UDP: "at least 32 seconds" (RFC 3261 §17.1.1.2)."""
TRYING_DELAY = 0.2
"""Send 100 Trying if the TU has not answered an INVITE within 200 ms (§17.2.1)."""
MAGIC_COOKIE = "z9hG4bK"
"""Branch prefix of RFC 3261 clients (§8.1.1.7)."""


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """The base timer values of one stack (RFC 3261 §17.1.1.1, Table 4).

    :param t1: RTT estimate.
    :param t2: cap of the retransmission interval.
    :param t4: maximum message lifetime in the network.
    """

    t1: float = T1
    t2: float = T2
    t4: float = T4


class TransactionKey(NamedTuple):
    """Identifies a transaction (RFC 3261 §17.1.3, §17.2.3).

    Client keys are (branch, CSeq method); server keys add the top Via sent-by. An ACK
    for a non-2xx maps to the INVITE's server key (method ``INVITE``); a CANCEL has its
    own key (method ``CANCEL``) that differs from its INVITE's only by the method.
    """

    server: bool
    """True for a server transaction."""
    branch: str
    """The top Via branch, or a synthetic RFC 2543 key (``2543:...``)."""
    method: str
    """The method of the request that created the transaction."""
    sent_by: str = ""
    """``host:port`` of the top Via (server keys only)."""


def client_key(msg: SipMessage) -> TransactionKey:
    """The client transaction key of a request we send or a response we receive.

    :param msg: a request (method from the request line) or response (from CSeq).
    :raises LocalProtocolError: if the top Via has no RFC 3261 branch.
    """
    branch = msg.branch
    if not branch or not branch.startswith(MAGIC_COOKIE):
        raise LocalProtocolError(f"top Via branch {branch!r} lacks the {MAGIC_COOKIE} cookie")
    return TransactionKey(False, branch, msg.cseq[1])


def server_key(msg: SipMessage) -> TransactionKey:
    """The server transaction key of a received request or of the TU's response to it.

    RFC 3261 §17.2.3: branch + sent-by + method, ACK matching INVITE. Without the magic
    cookie (RFC 2543 clients) the key is built from Call-ID, From tag, CSeq number and
    sent-by, a best effort at the §17.2.3 rules that works for the response too (the
    Request-URI, which a response lacks, is left out).

    :param msg: the request, or a response built from it with ``make_response``.
    """
    via = msg.top_via
    sent_by = via.host if via.port is None else f"{via.host}:{via.port}"
    method = msg.cseq[1]
    if method == "ACK":
        method = "INVITE"
    branch = via.branch
    if branch is None or not branch.startswith(MAGIC_COOKIE):
        branch = f"2543:{msg.call_id}:{msg.from_tag or ''}:{msg.cseq[0]}:{branch or ''}"
    return TransactionKey(True, branch, method, sent_by)


class TransactionOwner(Protocol):
    """What a transaction needs from its owner (the stack)."""

    def _txn_send(self, data: bytes, peer: Peer) -> None: ...

    def _txn_schedule(self, txn: SipTransaction[Any, Any], inp: Enum, deadline: float) -> int: ...

    def _txn_event(self, event: SipEvent) -> None: ...

    def _txn_terminated(self, txn: SipTransaction[Any, Any], now: float) -> None: ...


S = TypeVar("S", bound=Enum)
I = TypeVar("I", bound=Enum)  # noqa: E741
Effect = Callable[[Any, float, SipMessage | None], None]
Table = Mapping[tuple[S, I], tuple[Effect | None, S]]


class SipTransaction(Generic[S, I]):
    """Common machinery of the four transaction machines.

    :param owner: the stack that routes our output.
    :param key: our key.
    :param request: the request that created the transaction.
    :param peer: where requests (client) or responses (server) go.
    :param config: timer base values.
    """

    table: Table[S, I]
    initial: S
    terminated: S
    transport_error_input: I

    def __init__(
        self,
        owner: TransactionOwner,
        key: TransactionKey,
        request: SipRequest,
        peer: Peer,
        config: TimerConfig,
    ) -> None:
        self.owner = owner
        self.key = key
        self.request = request
        self.peer = peer
        self.config = config
        self.reliable = peer.reliable
        self.state: S = self.initial
        self.last_response: SipResponse | None = None
        self._last_response_bytes = b""
        self.error_reason = "transport error"
        """What the adapter said when the transport failed (for the event)."""
        self.timers: dict[I, int] = {}
        """Live timers: input → token of its heap entry (lazy deletion in the stack)."""
        self._immediate: list[I] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key.method} {self.key.branch} {self.state.name}>"

    # -- the one place a state changes ---------------------------------------------
    def fire(self, inp: I, now: float, msg: SipMessage | None = None) -> None:
        """Feed one input to the machine.

        :param inp: what happened.
        :param now: the current time.
        :param msg: the message that came with it (RECV_*/SEND_* inputs).
        :raises LocalProtocolError: the input is not allowed in the current state; the
            machine is Terminated.
        """
        entry = self.table.get((self.state, inp))
        if entry is None:
            old = self.state
            self._enter(self.terminated, now)
            raise LocalProtocolError(
                f"{type(self).__name__}: {inp.name} is not allowed in {old.name}"
            )
        effect, new = entry
        if effect is not None:
            effect(self, now, msg)
        self._enter(new, now)
        # Zero-length timers (reliable transports) fire right after the transition.
        while self._immediate and self.state is not self.terminated:
            self.fire(self._immediate.pop(0), now)

    def _enter(self, new: S, now: float) -> None:
        if new is self.terminated:
            if self.state is not self.terminated:
                self.state = new
                self.timers.clear()
                self._immediate.clear()
                self.owner._txn_terminated(self, now)
            return
        self.state = new

    def transport_failed(self, now: float) -> None:
        """The transport reported an error for our peer (§17.1.4, §17.2.4).

        :param now: the current time.
        """
        self.fire(self.transport_error_input, now)

    # -- helpers for side effects --------------------------------------------------
    def _start_timer(self, inp: I, delay: float, now: float) -> None:
        if delay <= 0:
            self._immediate.append(inp)
            return
        self.timers[inp] = self.owner._txn_schedule(self, inp, now + delay)

    def _stop_timer(self, inp: I) -> None:
        self.timers.pop(inp, None)

    def _send_response(self, response: SipResponse) -> None:
        data = bytes(response)
        self.last_response = response
        self._last_response_bytes = data
        self.owner._txn_send(data, self.peer)

    def _resend_last(self, now: float, msg: SipMessage | None) -> None:
        if self._last_response_bytes:
            self.owner._txn_send(self._last_response_bytes, self.peer)

    def _deliver(self, now: float, msg: SipMessage | None) -> None:
        assert isinstance(msg, SipResponse)
        self.owner._txn_event(ResponseReceived(msg, self.key, False))

    def _timeout(self, now: float, msg: SipMessage | None) -> None:
        self.owner._txn_event(TransactionTimeout(self.key, self.request))

    def _inform_transport_error(self, now: float, msg: SipMessage | None) -> None:
        self.owner._txn_event(TransportError(self.key, self.peer, self.error_reason))


# ===================================================================================
# INVITE client transaction (RFC 3261 §17.1.1, RFC 6026 §8.4)
# ===================================================================================
class InviteClientState(Enum):
    """States of the INVITE client transaction (RFC 3261 Figure 5, RFC 6026 Figure 5)."""

    CALLING = "calling"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


class InviteClientInput(Enum):
    """Inputs of the INVITE client transaction."""

    RECV_1XX = "recv_1xx"
    RECV_2XX = "recv_2xx"
    RECV_300_699 = "recv_300_699"
    TIMER_A = "timer_a"
    TIMER_B = "timer_b"
    TIMER_D = "timer_d"
    TIMER_M = "timer_m"
    TRANSPORT_ERROR = "transport_error"


def build_ack(invite: SipRequest, response: SipResponse) -> SipRequest:
    """The ACK for a non-2xx final response, built by the client transaction.

    RFC 3261 §17.1.1.3: same Request-URI, Call-ID, From and CSeq number as the INVITE,
    To from the response, one Via equal to the INVITE's top Via (same branch), the
    INVITE's Route headers, CSeq method ACK.

    :param invite: the INVITE of the transaction.
    :param response: the 300-699 response.
    """
    ack = SipRequest("ACK", invite.uri_text)
    ack.add("Via", invite.get_all("via")[0])
    for route in invite.get_all("route"):
        ack.add("Route", route)
    ack.add("Max-Forwards", "70")
    ack.add("From", invite.get("from") or "")
    ack.add("To", response.get("to") or "")
    ack.add("Call-ID", invite.call_id)
    ack.add("CSeq", f"{invite.cseq[0]} ACK")
    return ack


class SipInviteClientTransaction(
    SipTransaction[InviteClientState, InviteClientInput]
):
    """The INVITE client transaction.

    Our side effects: the request is sent by :meth:`start`; 1xx and every 2xx go to
    the TU (2xx retransmissions flagged, RFC 6026 §8.4); the ACK for a 300-699 is
    built and sent here (§17.1.1.3) and re-sent for each retransmitted final.
    """

    initial = InviteClientState.CALLING
    terminated = InviteClientState.TERMINATED
    transport_error_input = InviteClientInput.TRANSPORT_ERROR

    def __init__(
        self,
        owner: TransactionOwner,
        key: TransactionKey,
        request: SipRequest,
        peer: Peer,
        config: TimerConfig,
    ) -> None:
        super().__init__(owner, key, request, peer, config)
        self.table = INVITE_CLIENT_TRANSITIONS
        self._request_bytes = b""
        self._interval_a = config.t1
        self.ack: SipRequest | None = None
        self._ack_bytes = b""
        self._tags_2xx: set[str] = set()
        self.cancel_pending = False
        """The TU asked to CANCEL before any provisional response (§9.1)."""
        self.cancel_sent = False

    def start(self, now: float) -> None:
        """Send the INVITE and start timers A and B (RFC 3261 §17.1.1.2).

        :param now: the current time.
        """
        self._request_bytes = bytes(self.request)
        self.owner._txn_send(self._request_bytes, self.peer)
        if not self.reliable:
            self._start_timer(InviteClientInput.TIMER_A, self._interval_a, now)
        self._start_timer(InviteClientInput.TIMER_B, 64 * self.config.t1, now)

    def receive_response(self, response: SipResponse, now: float) -> None:
        """Feed a response that matched this transaction.

        :param response: the response.
        :param now: the current time.
        """
        status = response.status
        if status < 200:
            inp = InviteClientInput.RECV_1XX
        elif status < 300:
            inp = InviteClientInput.RECV_2XX
        else:
            inp = InviteClientInput.RECV_300_699
        self.fire(inp, now, response)

    def restart_timer_b(self, now: float) -> None:
        """A CANCEL was sent: if no final response comes within 64*T1 the INVITE is
        timed out (RFC 3261 §9.1).

        :param now: the current time.
        """
        self._start_timer(InviteClientInput.TIMER_B, 64 * self.config.t1, now)

    # -- side effects --------------------------------------------------------------
    def _retransmit(self, now: float, msg: SipMessage | None) -> None:
        # RFC 3261 §17.1.1.2: retransmit at T1, 2*T1, 4*T1... (no cap for INVITE).
        self.owner._txn_send(self._request_bytes, self.peer)
        self._interval_a *= 2
        self._start_timer(InviteClientInput.TIMER_A, self._interval_a, now)

    def _proceed(self, now: float, msg: SipMessage | None) -> None:
        # §17.1.1.2: a provisional stops retransmissions; Timer B only guards Calling.
        self._stop_timer(InviteClientInput.TIMER_A)
        self._stop_timer(InviteClientInput.TIMER_B)
        self._deliver(now, msg)

    def _accept(self, now: float, msg: SipMessage | None) -> None:
        # RFC 6026 §8.4: a 2xx moves to Accepted and starts Timer M = 64*T1.
        assert isinstance(msg, SipResponse)
        self._stop_timer(InviteClientInput.TIMER_A)
        self._stop_timer(InviteClientInput.TIMER_B)
        self._start_timer(InviteClientInput.TIMER_M, 64 * self.config.t1, now)
        self._tags_2xx.add(msg.to_tag or "")
        self.owner._txn_event(ResponseReceived(msg, self.key, False))

    def _accept_again(self, now: float, msg: SipMessage | None) -> None:
        # RFC 6026 §8.4: every 2xx in Accepted goes to the TU; a known To tag is a
        # retransmission (the TU re-sends its ACK), a new one a forked dialog.
        assert isinstance(msg, SipResponse)
        tag = msg.to_tag or ""
        retrans = tag in self._tags_2xx
        self._tags_2xx.add(tag)
        self.owner._txn_event(ResponseReceived(msg, self.key, retrans))

    def _complete(self, now: float, msg: SipMessage | None) -> None:
        # §17.1.1.2: 300-699 → send ACK, pass up, Timer D (32 s UDP, 0 reliable).
        assert isinstance(msg, SipResponse)
        self._stop_timer(InviteClientInput.TIMER_A)
        self._stop_timer(InviteClientInput.TIMER_B)
        self.ack = build_ack(self.request, msg)
        self._ack_bytes = bytes(self.ack)
        self.owner._txn_send(self._ack_bytes, self.peer)
        self._deliver(now, msg)
        delay = 0.0 if self.reliable else max(TIMER_D_UNRELIABLE, 64 * self.config.t1)
        self._start_timer(InviteClientInput.TIMER_D, delay, now)

    def _resend_ack(self, now: float, msg: SipMessage | None) -> None:
        # §17.1.1.2: a retransmitted final in Completed is answered with the ACK again
        # and not passed to the TU.
        self.owner._txn_send(self._ack_bytes, self.peer)


_IC = InviteClientState
_ICI = InviteClientInput
_ICT = SipInviteClientTransaction
INVITE_CLIENT_TRANSITIONS: dict[tuple[InviteClientState, InviteClientInput], tuple[Effect | None, InviteClientState]] = {  # noqa: E501
    (_IC.CALLING, _ICI.TIMER_A): (_ICT._retransmit, _IC.CALLING),
    (_IC.CALLING, _ICI.TIMER_B): (_ICT._timeout, _IC.TERMINATED),
    (_IC.CALLING, _ICI.RECV_1XX): (_ICT._proceed, _IC.PROCEEDING),
    (_IC.CALLING, _ICI.RECV_2XX): (_ICT._accept, _IC.ACCEPTED),
    (_IC.CALLING, _ICI.RECV_300_699): (_ICT._complete, _IC.COMPLETED),
    (_IC.CALLING, _ICI.TRANSPORT_ERROR): (_ICT._inform_transport_error, _IC.TERMINATED),
    (_IC.PROCEEDING, _ICI.RECV_1XX): (_ICT._deliver, _IC.PROCEEDING),
    (_IC.PROCEEDING, _ICI.RECV_2XX): (_ICT._accept, _IC.ACCEPTED),
    (_IC.PROCEEDING, _ICI.RECV_300_699): (_ICT._complete, _IC.COMPLETED),
    # §9.1: Timer B restarted by a CANCEL; no final within 64*T1 → timed out.
    (_IC.PROCEEDING, _ICI.TIMER_B): (_ICT._timeout, _IC.TERMINATED),
    (_IC.PROCEEDING, _ICI.TRANSPORT_ERROR): (_ICT._inform_transport_error, _IC.TERMINATED),
    (_IC.COMPLETED, _ICI.RECV_1XX): (None, _IC.COMPLETED),
    (_IC.COMPLETED, _ICI.RECV_2XX): (None, _IC.COMPLETED),
    (_IC.COMPLETED, _ICI.RECV_300_699): (_ICT._resend_ack, _IC.COMPLETED),
    (_IC.COMPLETED, _ICI.TIMER_D): (None, _IC.TERMINATED),
    (_IC.COMPLETED, _ICI.TRANSPORT_ERROR): (_ICT._inform_transport_error, _IC.TERMINATED),
    # RFC 6026 §8.4: Accepted absorbs 1xx and non-2xx, passes every 2xx up.
    (_IC.ACCEPTED, _ICI.RECV_1XX): (None, _IC.ACCEPTED),
    (_IC.ACCEPTED, _ICI.RECV_2XX): (_ICT._accept_again, _IC.ACCEPTED),
    (_IC.ACCEPTED, _ICI.RECV_300_699): (None, _IC.ACCEPTED),
    (_IC.ACCEPTED, _ICI.TIMER_M): (None, _IC.TERMINATED),
    (_IC.ACCEPTED, _ICI.TRANSPORT_ERROR): (None, _IC.ACCEPTED),
}


# ===================================================================================
# non-INVITE client transaction (RFC 3261 §17.1.2)
# ===================================================================================
class NonInviteClientState(Enum):
    """States of the non-INVITE client transaction (RFC 3261 Figure 6)."""

    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    TERMINATED = "terminated"


class NonInviteClientInput(Enum):
    """Inputs of the non-INVITE client transaction."""

    RECV_1XX = "recv_1xx"
    RECV_FINAL = "recv_final"
    TIMER_E = "timer_e"
    TIMER_F = "timer_f"
    TIMER_K = "timer_k"
    TRANSPORT_ERROR = "transport_error"


class SipNonInviteClientTransaction(
    SipTransaction[NonInviteClientState, NonInviteClientInput]
):
    """The non-INVITE client transaction (also used for the CANCEL we send)."""

    initial = NonInviteClientState.TRYING
    terminated = NonInviteClientState.TERMINATED
    transport_error_input = NonInviteClientInput.TRANSPORT_ERROR

    def __init__(
        self,
        owner: TransactionOwner,
        key: TransactionKey,
        request: SipRequest,
        peer: Peer,
        config: TimerConfig,
    ) -> None:
        super().__init__(owner, key, request, peer, config)
        self.table = NON_INVITE_CLIENT_TRANSITIONS
        self._request_bytes = b""
        self._interval_e = config.t1

    def start(self, now: float) -> None:
        """Send the request and start timers E and F (RFC 3261 §17.1.2.2).

        :param now: the current time.
        """
        self._request_bytes = bytes(self.request)
        self.owner._txn_send(self._request_bytes, self.peer)
        if not self.reliable:
            self._start_timer(NonInviteClientInput.TIMER_E, self._interval_e, now)
        self._start_timer(NonInviteClientInput.TIMER_F, 64 * self.config.t1, now)

    def receive_response(self, response: SipResponse, now: float) -> None:
        """Feed a response that matched this transaction.

        :param response: the response.
        :param now: the current time.
        """
        inp = NonInviteClientInput.RECV_FINAL
        if response.status < 200:
            inp = NonInviteClientInput.RECV_1XX
        self.fire(inp, now, response)

    def _retransmit_trying(self, now: float, msg: SipMessage | None) -> None:
        # §17.1.2.2: in Trying, E doubles up to T2.
        self.owner._txn_send(self._request_bytes, self.peer)
        self._interval_e = min(2 * self._interval_e, self.config.t2)
        self._start_timer(NonInviteClientInput.TIMER_E, self._interval_e, now)

    def _retransmit_proceeding(self, now: float, msg: SipMessage | None) -> None:
        # §17.1.2.2: in Proceeding, E is reset to T2.
        self.owner._txn_send(self._request_bytes, self.peer)
        self._interval_e = self.config.t2
        self._start_timer(NonInviteClientInput.TIMER_E, self._interval_e, now)

    def _complete(self, now: float, msg: SipMessage | None) -> None:
        # §17.1.2.2: final → pass up, Timer K = T4 (0 on reliable transports).
        self._stop_timer(NonInviteClientInput.TIMER_E)
        self._stop_timer(NonInviteClientInput.TIMER_F)
        self._deliver(now, msg)
        self._start_timer(
            NonInviteClientInput.TIMER_K, 0.0 if self.reliable else self.config.t4, now
        )


_NC = NonInviteClientState
_NCI = NonInviteClientInput
_NCT = SipNonInviteClientTransaction
NON_INVITE_CLIENT_TRANSITIONS: dict[tuple[NonInviteClientState, NonInviteClientInput], tuple[Effect | None, NonInviteClientState]] = {  # noqa: E501
    (_NC.TRYING, _NCI.TIMER_E): (_NCT._retransmit_trying, _NC.TRYING),
    (_NC.TRYING, _NCI.TIMER_F): (_NCT._timeout, _NC.TERMINATED),
    (_NC.TRYING, _NCI.RECV_1XX): (_NCT._deliver, _NC.PROCEEDING),
    (_NC.TRYING, _NCI.RECV_FINAL): (_NCT._complete, _NC.COMPLETED),
    (_NC.TRYING, _NCI.TRANSPORT_ERROR): (_NCT._inform_transport_error, _NC.TERMINATED),
    (_NC.PROCEEDING, _NCI.TIMER_E): (_NCT._retransmit_proceeding, _NC.PROCEEDING),
    (_NC.PROCEEDING, _NCI.TIMER_F): (_NCT._timeout, _NC.TERMINATED),
    (_NC.PROCEEDING, _NCI.RECV_1XX): (_NCT._deliver, _NC.PROCEEDING),
    (_NC.PROCEEDING, _NCI.RECV_FINAL): (_NCT._complete, _NC.COMPLETED),
    (_NC.PROCEEDING, _NCI.TRANSPORT_ERROR): (_NCT._inform_transport_error, _NC.TERMINATED),
    (_NC.COMPLETED, _NCI.RECV_1XX): (None, _NC.COMPLETED),
    (_NC.COMPLETED, _NCI.RECV_FINAL): (None, _NC.COMPLETED),
    (_NC.COMPLETED, _NCI.TIMER_K): (None, _NC.TERMINATED),
    (_NC.COMPLETED, _NCI.TRANSPORT_ERROR): (None, _NC.TERMINATED),
}


# ===================================================================================
# INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §8.6 + UAS core §13.3.1.4)
# ===================================================================================
class InviteServerState(Enum):
    """States of the INVITE server transaction (RFC 3261 Figure 7, RFC 6026 Figure 7)."""

    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


class InviteServerInput(Enum):
    """Inputs of the INVITE server transaction."""

    RECV_REQUEST = "recv_request"
    RECV_ACK = "recv_ack"
    SEND_1XX = "send_1xx"
    SEND_2XX = "send_2xx"
    SEND_300_699 = "send_300_699"
    TIMER_TRYING = "timer_trying"
    TIMER_G = "timer_g"
    TIMER_H = "timer_h"
    TIMER_I = "timer_i"
    TIMER_L = "timer_l"
    TRANSPORT_ERROR = "transport_error"


class SipInviteServerTransaction(
    SipTransaction[InviteServerState, InviteServerInput]
):
    """The INVITE server transaction, which also carries the UAS core's 2xx
    reliability (RFC 3261 §13.3.1.4).

    In Accepted, Timer G is reused for the 2xx retransmission schedule of §13.3.1.4
    (T1, doubling, capped at T2 — the same arithmetic as §17.2.1's Timer G) and runs
    even over reliable transports, because "there may be hops between UAS and UAC that
    are UDP" (§13.3.1.4). Timer L (64*T1, RFC 6026) ends it; if no ACK arrived by then
    :class:`sip.events.AckTimeout` is emitted (the two 64*T1 deadlines coincide).
    """

    initial = InviteServerState.PROCEEDING
    terminated = InviteServerState.TERMINATED
    transport_error_input = InviteServerInput.TRANSPORT_ERROR
    request_input = InviteServerInput.RECV_REQUEST

    def __init__(
        self,
        owner: TransactionOwner,
        key: TransactionKey,
        request: SipRequest,
        peer: Peer,
        config: TimerConfig,
    ) -> None:
        super().__init__(owner, key, request, peer, config)
        self.table = INVITE_SERVER_TRANSITIONS
        self._interval_g = config.t1
        self.acked = False
        """An ACK for our 2xx arrived (Accepted only)."""
        self.ack_keys: list[tuple[str, int, str]] = []
        """(Call-ID, CSeq number, To tag) of each 2xx we sent: how the stack matches
        the ACK, which has a branch of its own (§17.1.1.3 applies to non-2xx only)."""

    def start(self, now: float) -> None:
        """Arm the 200 ms "send 100 Trying" timer (RFC 3261 §17.2.1).

        :param now: the current time.
        """
        self._start_timer(InviteServerInput.TIMER_TRYING, TRYING_DELAY, now)

    def send(self, response: SipResponse, now: float) -> None:
        """The TU passes a response (RFC 3261 §17.2.1).

        :param response: the response.
        :param now: the current time.
        :raises LocalProtocolError: a response is not allowed in this state.
        """
        status = response.status
        if status < 200:
            inp = InviteServerInput.SEND_1XX
        elif status < 300:
            inp = InviteServerInput.SEND_2XX
        else:
            inp = InviteServerInput.SEND_300_699
        self.fire(inp, now, response)

    # -- side effects --------------------------------------------------------------
    def _send_trying(self, now: float, msg: SipMessage | None) -> None:
        # §17.2.1: 100 built per §8.2.6 without a To tag.
        self._send_response(make_response(self.request, 100))

    def _send_provisional(self, now: float, msg: SipMessage | None) -> None:
        assert isinstance(msg, SipResponse)
        self._stop_timer(InviteServerInput.TIMER_TRYING)
        self._send_response(msg)

    def _send_2xx(self, now: float, msg: SipMessage | None) -> None:
        # RFC 6026 §8.6: 2xx → Accepted, Timer L = 64*T1; §13.3.1.4: retransmit the
        # 2xx at T1 doubling to T2 until the ACK comes.
        assert isinstance(msg, SipResponse)
        self._stop_timer(InviteServerInput.TIMER_TRYING)
        self._send_response(msg)
        self.ack_keys.append((msg.call_id, msg.cseq[0], msg.to_tag or ""))
        self._interval_g = self.config.t1
        self._start_timer(InviteServerInput.TIMER_G, self._interval_g, now)
        self._start_timer(InviteServerInput.TIMER_L, 64 * self.config.t1, now)

    def _send_2xx_again(self, now: float, msg: SipMessage | None) -> None:
        # RFC 6026 §8.6: the TU may pass further 2xx in Accepted; they are sent.
        assert isinstance(msg, SipResponse)
        self._send_response(msg)
        key = (msg.call_id, msg.cseq[0], msg.to_tag or "")
        if key not in self.ack_keys:
            self.ack_keys.append(key)

    def _send_final(self, now: float, msg: SipMessage | None) -> None:
        # §17.2.1: 300-699 → Completed, G = T1 (UDP only), H = 64*T1.
        assert isinstance(msg, SipResponse)
        self._stop_timer(InviteServerInput.TIMER_TRYING)
        self._send_response(msg)
        self._interval_g = self.config.t1
        if not self.reliable:
            self._start_timer(InviteServerInput.TIMER_G, self._interval_g, now)
        self._start_timer(InviteServerInput.TIMER_H, 64 * self.config.t1, now)

    def _retransmit_final(self, now: float, msg: SipMessage | None) -> None:
        # §17.2.1 (Completed) and §13.3.1.4 (Accepted): resend, G = min(2G, T2).
        self._resend_last(now, msg)
        self._interval_g = min(2 * self._interval_g, self.config.t2)
        self._start_timer(InviteServerInput.TIMER_G, self._interval_g, now)

    def _confirm(self, now: float, msg: SipMessage | None) -> None:
        # §17.2.1: ACK → Confirmed, stop G, Timer I = T4 (0 on reliable transports).
        self._stop_timer(InviteServerInput.TIMER_G)
        self._stop_timer(InviteServerInput.TIMER_H)
        self._start_timer(
            InviteServerInput.TIMER_I, 0.0 if self.reliable else self.config.t4, now
        )

    def _ack_2xx(self, now: float, msg: SipMessage | None) -> None:
        # §13.3.1.4: the ACK stops the 2xx retransmissions.
        self.acked = True
        self._stop_timer(InviteServerInput.TIMER_G)

    def _end_accepted(self, now: float, msg: SipMessage | None) -> None:
        # §13.3.1.4: 64*T1 without ACK → tell the TU, which should BYE.
        if not self.acked:
            self.owner._txn_event(AckTimeout(self.request.call_id, self.request.cseq[0], self.key))

    def _no_ack(self, now: float, msg: SipMessage | None) -> None:
        # §17.2.1: Timer H → Terminated, inform the TU.
        self.owner._txn_event(TransactionTimeout(self.key, self.request))


_IS = InviteServerState
_ISI = InviteServerInput
_IST = SipInviteServerTransaction
INVITE_SERVER_TRANSITIONS: dict[tuple[InviteServerState, InviteServerInput], tuple[Effect | None, InviteServerState]] = {  # noqa: E501
    (_IS.PROCEEDING, _ISI.RECV_REQUEST): (_IST._resend_last, _IS.PROCEEDING),
    (_IS.PROCEEDING, _ISI.TIMER_TRYING): (_IST._send_trying, _IS.PROCEEDING),
    (_IS.PROCEEDING, _ISI.SEND_1XX): (_IST._send_provisional, _IS.PROCEEDING),
    (_IS.PROCEEDING, _ISI.SEND_2XX): (_IST._send_2xx, _IS.ACCEPTED),
    (_IS.PROCEEDING, _ISI.SEND_300_699): (_IST._send_final, _IS.COMPLETED),
    (_IS.PROCEEDING, _ISI.TRANSPORT_ERROR): (_IST._inform_transport_error, _IS.TERMINATED),
    (_IS.COMPLETED, _ISI.RECV_REQUEST): (_IST._resend_last, _IS.COMPLETED),
    (_IS.COMPLETED, _ISI.RECV_ACK): (_IST._confirm, _IS.CONFIRMED),
    (_IS.COMPLETED, _ISI.TIMER_G): (_IST._retransmit_final, _IS.COMPLETED),
    (_IS.COMPLETED, _ISI.TIMER_H): (_IST._no_ack, _IS.TERMINATED),
    (_IS.COMPLETED, _ISI.TRANSPORT_ERROR): (_IST._inform_transport_error, _IS.TERMINATED),
    (_IS.CONFIRMED, _ISI.RECV_REQUEST): (None, _IS.CONFIRMED),
    (_IS.CONFIRMED, _ISI.RECV_ACK): (None, _IS.CONFIRMED),
    (_IS.CONFIRMED, _ISI.TIMER_I): (None, _IS.TERMINATED),
    (_IS.CONFIRMED, _ISI.TRANSPORT_ERROR): (None, _IS.TERMINATED),
    # RFC 6026 §8.6: Accepted absorbs INVITE retransmissions, passes ACKs to the TU
    # (the stack does), sends further 2xx from the TU; Timer L ends it.
    (_IS.ACCEPTED, _ISI.RECV_REQUEST): (None, _IS.ACCEPTED),
    (_IS.ACCEPTED, _ISI.RECV_ACK): (_IST._ack_2xx, _IS.ACCEPTED),
    (_IS.ACCEPTED, _ISI.SEND_2XX): (_IST._send_2xx_again, _IS.ACCEPTED),
    (_IS.ACCEPTED, _ISI.TIMER_G): (_IST._retransmit_final, _IS.ACCEPTED),
    (_IS.ACCEPTED, _ISI.TIMER_L): (_IST._end_accepted, _IS.TERMINATED),
    (_IS.ACCEPTED, _ISI.TRANSPORT_ERROR): (_IST._inform_transport_error, _IS.TERMINATED),
}


# ===================================================================================
# non-INVITE server transaction (RFC 3261 §17.2.2)
# ===================================================================================
class NonInviteServerState(Enum):
    """States of the non-INVITE server transaction (RFC 3261 Figure 8)."""

    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    TERMINATED = "terminated"


class NonInviteServerInput(Enum):
    """Inputs of the non-INVITE server transaction."""

    RECV_REQUEST = "recv_request"
    SEND_1XX = "send_1xx"
    SEND_FINAL = "send_final"
    TIMER_J = "timer_j"
    TRANSPORT_ERROR = "transport_error"


class SipNonInviteServerTransaction(
    SipTransaction[NonInviteServerState, NonInviteServerInput]
):
    """The non-INVITE server transaction."""

    initial = NonInviteServerState.TRYING
    terminated = NonInviteServerState.TERMINATED
    transport_error_input = NonInviteServerInput.TRANSPORT_ERROR
    request_input = NonInviteServerInput.RECV_REQUEST

    def __init__(
        self,
        owner: TransactionOwner,
        key: TransactionKey,
        request: SipRequest,
        peer: Peer,
        config: TimerConfig,
    ) -> None:
        super().__init__(owner, key, request, peer, config)
        self.table = NON_INVITE_SERVER_TRANSITIONS

    def start(self, now: float) -> None:
        """Nothing to arm: the TU answers (RFC 3261 §17.2.2).

        :param now: the current time.
        """

    def send(self, response: SipResponse, now: float) -> None:
        """The TU passes a response.

        :param response: the response.
        :param now: the current time.
        :raises LocalProtocolError: a response is not allowed in this state.
        """
        inp = NonInviteServerInput.SEND_FINAL
        if response.status < 200:
            inp = NonInviteServerInput.SEND_1XX
        self.fire(inp, now, response)

    def _send_provisional(self, now: float, msg: SipMessage | None) -> None:
        assert isinstance(msg, SipResponse)
        self._send_response(msg)

    def _send_final(self, now: float, msg: SipMessage | None) -> None:
        # §17.2.2: final → Completed, Timer J = 64*T1 (0 on reliable transports).
        assert isinstance(msg, SipResponse)
        self._send_response(msg)
        self._start_timer(
            NonInviteServerInput.TIMER_J, 0.0 if self.reliable else 64 * self.config.t1, now
        )


_NS = NonInviteServerState
_NSI = NonInviteServerInput
_NST = SipNonInviteServerTransaction
NON_INVITE_SERVER_TRANSITIONS: dict[tuple[NonInviteServerState, NonInviteServerInput], tuple[Effect | None, NonInviteServerState]] = {  # noqa: E501
    # §17.2.2: retransmissions in Trying are discarded, later ones get the last response.
    (_NS.TRYING, _NSI.RECV_REQUEST): (None, _NS.TRYING),
    (_NS.TRYING, _NSI.SEND_1XX): (_NST._send_provisional, _NS.PROCEEDING),
    (_NS.TRYING, _NSI.SEND_FINAL): (_NST._send_final, _NS.COMPLETED),
    (_NS.TRYING, _NSI.TRANSPORT_ERROR): (_NST._inform_transport_error, _NS.TERMINATED),
    (_NS.PROCEEDING, _NSI.RECV_REQUEST): (_NST._resend_last, _NS.PROCEEDING),
    (_NS.PROCEEDING, _NSI.SEND_1XX): (_NST._send_provisional, _NS.PROCEEDING),
    (_NS.PROCEEDING, _NSI.SEND_FINAL): (_NST._send_final, _NS.COMPLETED),
    (_NS.PROCEEDING, _NSI.TRANSPORT_ERROR): (_NST._inform_transport_error, _NS.TERMINATED),
    (_NS.COMPLETED, _NSI.RECV_REQUEST): (_NST._resend_last, _NS.COMPLETED),
    (_NS.COMPLETED, _NSI.TIMER_J): (None, _NS.TERMINATED),
    (_NS.COMPLETED, _NSI.TRANSPORT_ERROR): (None, _NS.TERMINATED),
}

ClientTransaction = SipInviteClientTransaction | SipNonInviteClientTransaction
ServerTransaction = SipInviteServerTransaction | SipNonInviteServerTransaction

MACHINES: tuple[tuple[type[Enum], type[Enum], Mapping[Any, Any]], ...] = (
    (InviteClientState, InviteClientInput, INVITE_CLIENT_TRANSITIONS),
    (NonInviteClientState, NonInviteClientInput, NON_INVITE_CLIENT_TRANSITIONS),
    (InviteServerState, InviteServerInput, INVITE_SERVER_TRANSITIONS),
    (NonInviteServerState, NonInviteServerInput, NON_INVITE_SERVER_TRANSITIONS),
)
"""Every (State, Input, table) triple, for the state-machine property tests."""
