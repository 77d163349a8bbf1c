"""The SIP transaction layer plus the UAS/UAC core duties every TU needs, sans-IO.

Theory of operation
-------------------
:class:`SipStack` sits between a transport adapter (``sip/transport*.py``) and a
transaction user (TU: call control, registrar, trunk monitor). It is driven only by
the aioquic verbs and never reads a clock: every call takes ``now``.

Adapter side::

    stack.receive(data, peer, now)          # one datagram / one framed stream message
    stack.transport_error(peer, now)        # a send failed or a connection closed
    for data, peer in stack.datagrams_to_send(now): send it
    at = stack.get_timer(); ...; stack.handle_timer(now)   # one loop.call_at, re-armed

TU side (drain ``next_event()`` after every adapter call)::

    RequestReceived(request, peer, key)
        new request (retransmissions are absorbed by its server transaction, which
        re-sends the last response). Out of dialog (no To tag): create the call, answer
        with ``stack.send_response(make_response(request, ...), now)``; a 2xx to an
        INVITE creates ``SipDialog.from_uas(request, response)`` (put it in a
        ``DialogSet``). In dialog (To tag): ``dialogs.find(request)``; None → answer
        481 (RFC 3261 §12.2.2); else ``dialog.receive_request(request)`` (raises
        ``RequestOutOfOrder`` → answer its ``status_hint`` 500) and answer.
        ``key`` is None for an ACK: ACKs are never answered (§17).
    ResponseReceived(response, key, retransmission)
        a response on a client transaction created by ``send_request``. For an INVITE:
        1xx with a To tag → early ``SipDialog.from_uac``; 2xx → ``from_uac`` (or
        ``dialog.receive_response`` for an early one) and
        ``stack.send_ack(dialog.create_ack(response), peer, now)``; the ACK for a
        300-699 is sent by the transaction itself (§17.1.1.3). ``retransmission=True``
        means a repeated 2xx: send the same ACK again (§13.2.2.4). A 2xx with another
        To tag is a forked answer: a second dialog (ACK and BYE it if unwanted).
    TransactionTimeout(key, request)     Timer B/F: treat as a 408 (§8.1.3.1).
    TransportError(key, peer, reason)    the request or response could not be sent.
    CancelReceived(invite_key, cancel)   the stack already answered the CANCEL with 200
                                         (§9.2); answer the INVITE with 487.
    AckTimeout(call_id, cseq)            our 2xx got no ACK within 64*T1: send BYE.
    MalformedMessageReceived(peer, reason)   for logs and abuse counters; a request
                                         has already been answered with 400/505/513.

Sending: build the request (``dialog.create_request`` in a dialog), add the Via with
``stack.add_via(request, peer)`` (fresh ``z9hG4bK`` branch, ``rport``), then
``key = stack.send_request(request, peer, now)``. Responses go through
``stack.send_response(response, now)``: the server transaction is found from the
response's top Via (branch + sent-by) and CSeq method, and the response is sent to the
address computed when the request arrived (RFC 3261 §18.2.2, RFC 3581 §4: the source
ip:port when ``rport`` was asked for, over the same connection for streams). To give
up on an INVITE call ``stack.cancel(key, now)``: the CANCEL goes out at once if a
provisional has arrived, else as soon as one does (§9.1).

Reliability split (RFC 3261 §17, §13, RFC 6026): the stack retransmits requests and
non-2xx finals (transactions), and also our 2xx to an INVITE until its ACK arrives
(the UAS core duty of §13.3.1.4, done here so no TU forgets it). The ACK to a 2xx is
the TU's (it needs the dialog) and is resent by the TU on ``retransmission=True``.

Timers of every live transaction share one heap of (deadline, seq, transaction,
input) with lazy deletion: cancelling a timer forgets its token and the stale heap
entry is skipped when it surfaces; the heap is rebuilt when stale entries outnumber
live ones, so every operation is O(log n) amortised with 10,000+ transactions.
"""

from __future__ import annotations

import heapq
import logging
import secrets
from collections import deque
from collections.abc import Mapping
from enum import Enum
from typing import Any

from .events import (
    CancelReceived,
    MalformedMessageReceived,
    RequestReceived,
    SipEvent,
    TransportError,
)
from .exceptions import LocalProtocolError, ProtocolError
from .message import SipMessage, SipRequest, SipResponse, canonical_name, make_response
from .peer import Peer
from .transaction import (
    MAGIC_COOKIE,
    T1,
    T2,
    T4,
    ClientTransaction,
    InviteClientState,
    InviteServerInput,
    InviteServerState,
    ServerTransaction,
    SipInviteClientTransaction,
    SipInviteServerTransaction,
    SipNonInviteClientTransaction,
    SipNonInviteServerTransaction,
    SipTransaction,
    TimerConfig,
    TransactionKey,
    client_key,
    server_key,
)
from .uri import Via, split_quoted

logger = logging.getLogger("hotline.sip")

DEFAULT_SENT_BY = ("127.0.0.1", 5060)
"""sent-by used by :meth:`SipStack.add_via` for a transport with none configured.
With ``rport`` (always added) the peer answers to our real source address anyway."""
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061, "ws": 80, "wss": 443}
"""Port of a Via without one (RFC 3261 §18.2.2, RFC 7118)."""
HEAP_COMPACT_MIN = 1024
"""The timer heap is rebuilt only past this size (and when mostly stale)."""

AckKey = tuple[str, int, str]


def new_branch() -> str:
    """A fresh RFC 3261 branch: the magic cookie plus 64 random bits (§8.1.1.7)."""
    return MAGIC_COOKIE + secrets.token_hex(8)


def _bare(host: str) -> str:
    return host[1:-1] if host.startswith("[") else host


def _response_peer(via: Via, source: Peer) -> Peer:
    """Where responses to a request go (RFC 3261 §18.2.2, RFC 3581 §4).

    :param via: the top Via, already stamped with received/rport.
    :param source: where the request came from.
    """
    if source.reliable:
        # §18.2.2: over the connection the request came on.
        return source
    rport = via.params.get("rport")
    if rport is not None and rport.isdigit():
        port = int(rport)
    else:
        port = via.port if via.port is not None else DEFAULT_PORTS.get(source.transport, 5060)
    received = via.params.get("received")
    host = received if received else _bare(via.host)
    return Peer(source.transport, host, port)


def _stamp_via(via: Via, source: Peer) -> bool:
    """Add ``received``/fill ``rport`` in a top Via; True if it changed.

    RFC 3261 §18.2.1: received= when the sent-by host differs from the source address;
    RFC 3581 §4: an empty rport gets the source port, and then received= is added
    even if the host matches.

    :param via: the top Via (modified in place).
    :param source: where the request came from.
    """
    changed = False
    has_rport = "rport" in via.params
    if has_rport and via.params["rport"] is None:
        via.params["rport"] = str(source.port)
        changed = True
    if (has_rport or _bare(via.host) != source.host) and via.params.get("received") != source.host:
        via.params["received"] = source.host
        changed = True
    return changed


class SipStack:
    """The transaction layer and UA core duties (see the module docstring).

    :param t1: RTT estimate (RFC 3261 §17.1.1.1), 0.5 s.
    :param t2: retransmission interval cap, 4 s.
    :param t4: maximum message lifetime, 5 s.
    :param sent_by: per transport (``"udp"``...), the (host, port) :meth:`add_via` puts
        in the Via; missing transports use :data:`DEFAULT_SENT_BY`.
    """

    def __init__(
        self,
        *,
        t1: float = T1,
        t2: float = T2,
        t4: float = T4,
        sent_by: Mapping[str, tuple[str, int]] | None = None,
    ) -> None:
        self.config = TimerConfig(t1, t2, t4)
        self.sent_by: dict[str, tuple[str, int]] = dict(sent_by or {})
        self._client: dict[TransactionKey, ClientTransaction] = {}
        self._server: dict[TransactionKey, ServerTransaction] = {}
        self._awaiting_ack: dict[AckKey, SipInviteServerTransaction] = {}
        self._by_addr: dict[tuple[str, str, int], set[SipTransaction[Any, Any]]] = {}
        self._heap: list[tuple[float, int, SipTransaction[Any, Any], Enum]] = []
        self._compact_at = HEAP_COMPACT_MIN
        self._seq = 0
        self._out: list[tuple[bytes, Peer]] = []
        self._events: deque[SipEvent] = deque()
        self._request_handlers = {
            "ACK": self._handle_ack_request,
            "CANCEL": self._handle_cancel_request,
        }

    # ================================================================ adapter side
    def receive(self, data: bytes | bytearray | memoryview, peer: Peer, now: float) -> None:
        """Feed one datagram (or one framed stream message). Never raises.

        :param data: the bytes.
        :param peer: where they came from.
        :param now: the current time.
        """
        raw = bytes(data)
        try:
            msg = SipMessage.parse(raw, stream=peer.transport in ("tcp", "tls"))
            # Parse now what matching needs, so a bad value is a 400 here and not an
            # exception deep in the transaction layer.
            msg.vias  # noqa: B018
            msg.from_tag  # noqa: B018
            msg.to_tag  # noqa: B018
        except ProtocolError as exc:
            self._handle_malformed(raw, peer, exc)
            return
        try:
            if isinstance(msg, SipRequest):
                self._receive_request(msg, peer, now)
            else:
                assert isinstance(msg, SipResponse)
                self._handle_response(msg, peer, now)
        except ProtocolError as exc:
            logger.warning("dropped a message from %s: %s", peer, exc)

    def transport_error(self, peer: Peer, now: float, reason: str = "transport error") -> None:
        """A send to ``peer`` failed or its connection closed (RFC 3261 §17.1.4, §17.2.4).

        Every live transaction bound to the peer fails with a :class:`TransportError`
        event; if none is, one event with ``key=None`` is emitted.

        :param peer: the peer (with ``conn`` for a stream, None for all connections).
        :param now: the current time.
        :param reason: for the event and the log.
        """
        bucket = self._by_addr.get((peer.transport, peer.host, peer.port))
        hit = False
        for txn in list(bucket or ()):
            if peer.conn is not None and txn.peer.conn is not None and txn.peer.conn != peer.conn:
                continue
            if txn.state is txn.terminated:
                continue
            hit = True
            txn.error_reason = reason
            self._drive(txn, txn.transport_error_input, now, None)
        if not hit:
            self._events.append(TransportError(None, peer, reason))

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Peer]]:
        """Everything queued for the wire since the last call, in order.

        :param now: the current time (unused; part of the sans-IO contract).
        """
        out = self._out
        self._out = []
        return out

    def get_timer(self) -> float | None:
        """The earliest deadline of any live timer, or None."""
        heap = self._heap
        while heap:
            deadline, token, txn, inp = heap[0]
            if txn.timers.get(inp) == token:
                return deadline
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> None:
        """Fire every timer whose deadline is ``<= now``, earliest first.

        :param now: the current time.
        """
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, token, txn, inp = heapq.heappop(heap)
            if txn.timers.get(inp) != token:
                continue  # cancelled or re-armed: a stale entry
            del txn.timers[inp]
            self._drive(txn, inp, now, None)

    def next_event(self) -> SipEvent | None:
        """The next event for the TU, or None."""
        return self._events.popleft() if self._events else None

    # ===================================================================== TU side
    def add_via(self, request: SipRequest, transport: Peer | str, branch: str | None = None) -> str:
        """Put our Via (fresh branch, ``rport``) on top of ``request``; return the branch.

        :param request: the request to send.
        :param transport: the peer it goes to, or a transport name (``"udp"``).
        :param branch: a branch to use instead of a fresh one.
        """
        name = transport.transport if isinstance(transport, Peer) else transport.lower()
        host, port = self.sent_by.get(name, DEFAULT_SENT_BY)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        branch = branch or new_branch()
        via = f"SIP/2.0/{name.upper()} {host}:{port};branch={branch};rport"
        request.add("Via", via, first=True)
        return branch

    def send_request(self, request: SipRequest, peer: Peer, now: float) -> TransactionKey:
        """Send a request in a new client transaction (RFC 3261 §17.1).

        :param request: the request, with our Via on top (see :meth:`add_via`).
        :param peer: the next hop.
        :param now: the current time.
        :returns: the key that :class:`ResponseReceived` events will carry.
        :raises LocalProtocolError: ACK (use :meth:`send_ack`), no RFC 3261 branch, or
            a branch already in use.
        """
        if request.method == "ACK":
            raise LocalProtocolError("an ACK has no transaction: use send_ack")
        try:
            key = client_key(request)
        except LocalProtocolError:
            raise
        except ProtocolError as exc:
            raise LocalProtocolError(f"cannot send the request: {exc}") from exc
        if key in self._client:
            raise LocalProtocolError(f"branch {key.branch} is already in use for {key.method}")
        if "max-forwards" not in request:
            request.add("Max-Forwards", "70")  # RFC 3261 §8.1.1.6
        txn: ClientTransaction
        if request.method == "INVITE":
            txn = SipInviteClientTransaction(self, key, request, peer, self.config)
        else:
            txn = SipNonInviteClientTransaction(self, key, request, peer, self.config)
        self._client[key] = txn
        self._bind(txn)
        txn.start(now)
        return key

    def send_response(self, response: SipResponse, now: float) -> None:
        """Send a response through the server transaction it answers.

        :param response: built with ``make_response(request, ...)`` (same Via/CSeq).
        :param now: the current time.
        :raises LocalProtocolError: no such server transaction, or the response is not
            allowed in its state (e.g. a second final response).
        """
        try:
            key = server_key(response)
        except ProtocolError as exc:
            raise LocalProtocolError(f"cannot route the response: {exc}") from exc
        txn = self._server.get(key)
        if txn is None:
            raise LocalProtocolError(f"no server transaction for {key.method} {key.branch}")
        txn.send(response, now)
        if isinstance(txn, SipInviteServerTransaction) and txn.state is InviteServerState.ACCEPTED:
            for ack_key in txn.ack_keys:
                self._awaiting_ack[ack_key] = txn

    def send_ack(self, ack: SipRequest, peer: Peer, now: float) -> None:
        """Send the ACK for a 2xx (RFC 3261 §13.2.2.4): no transaction, no retransmission.

        :param ack: from ``SipDialog.create_ack`` (needs a Via: :meth:`add_via` is
            applied if it has none).
        :param peer: the next hop.
        :param now: the current time.
        """
        if "via" not in ack:
            self.add_via(ack, peer)
        self._out.append((bytes(ack), peer))

    def cancel(self, key: TransactionKey | None, now: float) -> TransactionKey | None:
        """Cancel a pending INVITE (RFC 3261 §9.1).

        The CANCEL goes out now if a provisional response has arrived, otherwise as
        soon as one does (§9.1: "SHOULD NOT be sent ... until a provisional"). Once a
        final response has arrived there is nothing to cancel.

        :param key: the INVITE client transaction.
        :param now: the current time.
        :returns: the key of the CANCEL transaction (existing or future), or None.
        """
        txn = self._client.get(key) if key is not None else None
        if not isinstance(txn, SipInviteClientTransaction):
            return None
        ckey = TransactionKey(False, txn.key.branch, "CANCEL")
        if txn.cancel_sent or txn.cancel_pending:
            return ckey
        if txn.state is InviteClientState.CALLING:
            txn.cancel_pending = True
            return ckey
        if txn.state is InviteClientState.PROCEEDING:
            self._send_cancel(txn, now)
            return ckey
        return None

    def stats(self) -> dict[str, int]:
        """Counts of live state, for metrics and leak tests."""
        n_ict = sum(isinstance(t, SipInviteClientTransaction) for t in self._client.values())
        n_ist = sum(isinstance(t, SipInviteServerTransaction) for t in self._server.values())
        return {
            "transactions": len(self._client) + len(self._server),
            "client_invite": n_ict,
            "client_non_invite": len(self._client) - n_ict,
            "server_invite": n_ist,
            "server_non_invite": len(self._server) - n_ist,
            "awaiting_ack": len(self._awaiting_ack),
            "bound_peers": len(self._by_addr),
            "timers": sum(len(t.timers) for t in self._all()),
            "timer_heap": len(self._heap),
            "outgoing": len(self._out),
            "events": len(self._events),
        }

    # ============================================================ request handling
    def _receive_request(self, request: SipRequest, source: Peer, now: float) -> None:
        via = request.top_via
        if _stamp_via(via, source):
            # Rewrite the top Via in place, the others unchanged (RFC 3261 §18.2.1).
            values = request.get_all("via")
            request.set("Via", str(via))
            for value in values[1:]:
                request.add("Via", value)
        key = server_key(request)
        handler = self._request_handlers.get(request.method)
        if handler is not None:
            handler(request, key, source, now)
            return
        txn = self._server.get(key)
        if txn is not None:
            # §17.2.3: a retransmission; the transaction re-sends its last response.
            self._drive(txn, txn.request_input, now, request)
            return
        self._new_server_transaction(request, key, source, now)
        self._events.append(RequestReceived(request, source, key))

    def _new_server_transaction(
        self, request: SipRequest, key: TransactionKey, source: Peer, now: float
    ) -> ServerTransaction:
        dest = _response_peer(request.top_via, source)
        txn: ServerTransaction
        if request.method == "INVITE":
            txn = SipInviteServerTransaction(self, key, request, dest, self.config)
        else:
            txn = SipNonInviteServerTransaction(self, key, request, dest, self.config)
        self._server[key] = txn
        self._bind(txn)
        txn.start(now)
        return txn

    def _handle_ack_request(
        self, request: SipRequest, key: TransactionKey, source: Peer, now: float
    ) -> None:
        txn = self._server.get(key)
        if isinstance(txn, SipInviteServerTransaction) and txn.state in (
            InviteServerState.COMPLETED,
            InviteServerState.CONFIRMED,
        ):
            # §17.2.1: the ACK for our non-2xx belongs to the transaction; absorbed.
            self._drive(txn, InviteServerInput.RECV_ACK, now, request)
            return
        # §13.3.1.4: the ACK for a 2xx has its own branch; match Call-ID, CSeq, To tag.
        ist = self._awaiting_ack.get((request.call_id, request.cseq[0], request.to_tag or ""))
        if ist is not None:
            first = not ist.acked
            self._drive(ist, InviteServerInput.RECV_ACK, now, request)
            if not first:
                return  # a repeated ACK: the TU has seen it
        self._events.append(RequestReceived(request, source, None))

    def _handle_cancel_request(
        self, request: SipRequest, key: TransactionKey, source: Peer, now: float
    ) -> None:
        nist = self._server.get(key)
        if nist is not None:
            self._drive(nist, nist.request_input, now, request)  # retransmission
            return
        nist = self._new_server_transaction(request, key, source, now)
        invite = self._server.get(key._replace(method="INVITE"))
        if not isinstance(invite, SipInviteServerTransaction):
            response = make_response(request, 481)  # RFC 3261 §9.2
        else:
            # §9.2: 200 to the CANCEL whatever the INVITE's state, with the same To tag
            # as our responses to the INVITE carry.
            last = invite.last_response
            tag = last.to_tag if last is not None else None
            response = make_response(request, 200, to_tag=tag)
            if invite.state is InviteServerState.PROCEEDING:
                self._events.append(CancelReceived(invite.key, request))
        try:
            nist.send(response, now)
        except ProtocolError as exc:
            logger.warning("%r: %s", nist, exc)

    def _handle_malformed(self, raw: bytes, peer: Peer, exc: ProtocolError) -> None:
        reason = str(exc)
        self._events.append(MalformedMessageReceived(peer, reason))
        try:
            built = _error_response(raw, exc.status_hint, reason, peer)
        except ProtocolError:
            built = None
        if built is None:
            logger.info("dropped an unanswerable message from %s: %s", peer, reason)
            return
        response, dest = built
        self._out.append((bytes(response), dest))

    # =========================================================== response handling
    def _handle_response(self, response: SipResponse, source: Peer, now: float) -> None:
        branch = response.branch
        txn = None
        if branch:
            txn = self._client.get(TransactionKey(False, branch, response.cseq[1]))
        if txn is None:
            # RFC 3261 §18.1.2 / §17.1.3: no client transaction → discard.
            logger.debug("stray %s from %s dropped", response.status, source)
            return
        try:
            txn.receive_response(response, now)
        except ProtocolError as exc:
            logger.warning("%r: %s", txn, exc)
        if isinstance(txn, SipInviteClientTransaction) and txn.cancel_pending:
            if txn.state is InviteClientState.PROCEEDING:
                self._send_cancel(txn, now)
            elif txn.state is not InviteClientState.CALLING:
                txn.cancel_pending = False  # a final came first: nothing to cancel

    def _send_cancel(self, invite_txn: SipInviteClientTransaction, now: float) -> None:
        # RFC 3261 §9.1: same Request-URI, Call-ID, To, From, CSeq number and top Via
        # (branch) as the INVITE, its Route headers, method CANCEL.
        invite = invite_txn.request
        cancel = SipRequest("CANCEL", invite.uri_text)
        cancel.add("Via", invite.get_all("via")[0])
        for route in invite.get_all("route"):
            cancel.add("Route", route)
        cancel.add("Max-Forwards", "70")
        cancel.add("From", invite.get("from") or "")
        cancel.add("To", invite.get("to") or "")
        cancel.add("Call-ID", invite.call_id)
        cancel.add("CSeq", f"{invite.cseq[0]} CANCEL")
        invite_txn.cancel_pending = False
        invite_txn.cancel_sent = True
        key = TransactionKey(False, invite_txn.key.branch, "CANCEL")
        if key not in self._client:
            txn = SipNonInviteClientTransaction(self, key, cancel, invite_txn.peer, self.config)
            self._client[key] = txn
            self._bind(txn)
            txn.start(now)
        invite_txn.restart_timer_b(now)

    # =================================================== transaction owner protocol
    def _txn_send(self, data: bytes, peer: Peer) -> None:
        self._out.append((data, peer))

    def _txn_schedule(self, txn: SipTransaction[Any, Any], inp: Enum, deadline: float) -> int:
        if len(self._heap) >= self._compact_at:
            self._compact()  # before the push: the new entry's token is not stored yet
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, txn, inp))
        return self._seq

    def _txn_event(self, event: SipEvent) -> None:
        self._events.append(event)

    def _txn_terminated(self, txn: SipTransaction[Any, Any], now: float) -> None:
        key = txn.key
        if key.server:
            if self._server.get(key) is txn:
                del self._server[key]
            if isinstance(txn, SipInviteServerTransaction):
                for ack_key in txn.ack_keys:
                    if self._awaiting_ack.get(ack_key) is txn:
                        del self._awaiting_ack[ack_key]
        elif self._client.get(key) is txn:
            del self._client[key]
        addr = (txn.peer.transport, txn.peer.host, txn.peer.port)
        bucket = self._by_addr.get(addr)
        if bucket is not None:
            bucket.discard(txn)
            if not bucket:
                del self._by_addr[addr]

    # ==================================================================== helpers
    def _drive(
        self, txn: SipTransaction[Any, Any], inp: Enum, now: float, msg: SipMessage | None
    ) -> None:
        """Feed a network or timer input; a table violation is logged, not raised."""
        try:
            txn.fire(inp, now, msg)
        except ProtocolError as exc:
            logger.warning("%r: %s", txn, exc)

    def _bind(self, txn: SipTransaction[Any, Any]) -> None:
        addr = (txn.peer.transport, txn.peer.host, txn.peer.port)
        self._by_addr.setdefault(addr, set()).add(txn)

    def _all(self) -> list[SipTransaction[Any, Any]]:
        return [*self._client.values(), *self._server.values()]

    def _compact(self) -> None:
        live = [e for e in self._heap if e[2].timers.get(e[3]) == e[1]]
        heapq.heapify(live)
        self._heap = live
        self._compact_at = max(HEAP_COMPACT_MIN, 2 * len(live))


def _error_response(
    raw: bytes, status: int, reason: str, source: Peer
) -> tuple[SipResponse, Peer] | None:
    """Build a stateless error response to bytes that did not parse, if they look like a
    request with Via, From, To, Call-ID and CSeq we can echo (RFC 3261 §8.2.6, §18.2.2);
    None for responses, ACKs and anything unaddressable.

    :param raw: the received bytes.
    :param status: the parser's status hint (400, 505, 513...).
    :param reason: the parser's error text, sent in a Warning header (§20.43).
    :param source: where the bytes came from.
    """
    head = raw.lstrip(b"\r\n")
    cut = len(head)
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = head.find(sep)
        if 0 <= i < cut:
            cut = i
    text = head[:cut].decode("utf-8", "surrogateescape")
    lines = text.replace("\r\n", "\n").split("\n")
    start = lines[0].split(" ")
    if len(start) < 2 or start[0].upper().startswith("SIP/"):
        return None  # a response (or garbage): never answered (§18.1.2)
    if start[0] == "ACK":
        return None  # an ACK is never answered (§17)
    found: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            continue
        key = canonical_name(name.strip())
        if key in ("via", "from", "to", "call-id", "cseq"):
            value = value.replace("\r", "").strip()
            if value:
                found.setdefault(key, []).append(value)
    if any(k not in found for k in ("via", "from", "to", "call-id", "cseq")):
        return None
    vias = [v.strip() for line in found["via"] for v in split_quoted(line, ",") if v.strip()]
    if not vias:
        return None
    top = Via.parse(vias[0])
    _stamp_via(top, source)
    if status < 300:
        status = 400
    response = SipResponse(status)
    response.add("Via", str(top))
    for value in vias[1:]:
        response.add("Via", value)
    response.add("From", found["from"][0])
    response.add("To", found["to"][0])
    response.add("Call-ID", found["call-id"][0])
    response.add("CSeq", found["cseq"][0])
    safe = "".join(c if " " <= c < "\x7f" and c not in '"\\' else "?" for c in reason[:120])
    response.add("Warning", f'399 hotline "{safe}"')
    return response, _response_peer(top, source)
