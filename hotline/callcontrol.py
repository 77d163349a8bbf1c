"""Call control: the B2BUA that turns SIP stack events into calls.

Theory of operation
-------------------
The transport adapters feed bytes into the sans-IO :class:`sip.stack.SipStack`; after
each feed the server drains ``stack.next_event()`` into :meth:`CallControl.handle_event`.
Out-of-dialog requests are dispatched by method (``_handle_<method>_request``);
in-dialog requests and responses find their :class:`Leg` by Call-ID and our tag.

Every call is a :class:`Call` with one or two legs. Each leg is its own SIP dialog
(UAS leg toward the caller, UAC leg toward the callee) with its own SDP, so hotline
anchors the media of every call (the media core plugs in at ``_answer_sdp``/
``_offer_sdp``). Local applications (``echo``, ``play:``) are calls with one leg.

Time is passed in (``now``) so this module, too, can be driven from tests.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum

from sip import sdp as sdplib
from sip.dialog import SipDialog
from sip.events import (
    AckTimeout,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    SipEvent,
    TransactionTimeout,
    TransportError,
)
from sip.exceptions import ProtocolError
from sip.message import SipRequest, SipResponse, make_response
from sip.peer import Peer
from sip.registrar import BindingSource, ContactSpec, SipRegistrar
from sip.stack import SipStack, new_branch
from sip.uri import NameAddr, SipUri

from .access import AccessControl
from .config import SiteConfig, Target, TrunkConfig
from .logs import CallLogAdapter
from .netaddr import advertised_host, uri_host
from .ports import PortExhausted, RtpPortPool

logger = logging.getLogger("hotline.call")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE"
SUPPORTED_EXTENSIONS = frozenset(("replaces", "timer", "path", "outbound"))
KNOWN_METHODS = frozenset(
    ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "INFO", "UPDATE", "PRACK",
     "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH")
)


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
    rtp_port: int
    local_host: str
    dialog: SipDialog | None = None
    txn_key: object = None
    answered: bool = False
    cancelled: bool = False
    bye_sent: bool = False
    remote_sdp: sdplib.SessionDescription | None = None
    local_sdp: sdplib.SessionDescription | None = None
    media: sdplib.NegotiatedMedia | None = None


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


class CallControl:
    """Dispatches SIP events to registrar, local applications and B2BUA calls."""

    def __init__(
        self,
        config: SiteConfig,
        stack: SipStack,
        local_address: Callable[[str], tuple[str, int]],
        *,
        on_cdr: Callable[[Call], None] | None = None,
    ) -> None:
        """:param config: the validated site.
        :param stack: the SIP transaction layer.
        :param local_address: transport name → our bound (host, port) for it.
        :param on_cdr: called once per call when it ends."""
        self.config = config
        self.stack = stack
        self._local_address = local_address
        self.access = AccessControl(config)
        self.registrar = SipRegistrar(
            min_expires=config.sip.min_expires, max_expires=config.sip.max_expires,
            default_expires=min(3600, config.sip.max_expires),
        )
        lo, hi = config.server.rtp_ports
        self.ports = RtpPortPool(lo, hi)
        self.calls: dict[str, Call] = {}
        self._legs: dict[tuple[str, str], Leg] = {}
        self._legs_by_txn: dict[object, Leg] = {}
        self._on_cdr = on_cdr
        self.accepting = True
        self._dispatch: dict[str, Callable[[SipRequest, Peer, object, float], None]] = {
            "REGISTER": self._handle_register_request,
            "INVITE": self._handle_invite_request,
            "OPTIONS": self._handle_options_request,
            "BYE": self._handle_bye_request,
            "ACK": self._handle_ack_request,
            "INFO": self._handle_info_request,
            "UPDATE": self._handle_info_request,
        }
        self._session_id = int(time.time())

    # -- helpers -------------------------------------------------------------------
    def _host_for(self, peer: Peer) -> tuple[str, int]:
        host, port = self._local_address(peer.transport)
        return advertised_host(host, peer.host, self.config.server.external_ip), port

    def add_via(self, request: SipRequest, peer: Peer) -> None:
        """Put our Via on top of ``request``, with the address the peer can reach us at."""
        host, port = self._host_for(peer)
        request.add("Via", f"SIP/2.0/{peer.transport.upper()} {uri_host(host)}:{port}"
                    f";branch={new_branch()};rport", first=True)

    def _contact(self, peer: Peer, user: str = "hotline") -> str:
        host, port = self._host_for(peer)
        t = "" if peer.transport == "udp" else f";transport={peer.transport}"
        return f"<sip:{user}@{uri_host(host)}:{port}{t}>"

    def _reply(
        self, request: SipRequest, status: int, *, to_tag: str | None = None,
        headers: tuple[tuple[str, str], ...] = (), body: bytes = b"", now: float,
    ) -> None:
        hdrs = (("Server", self.config.sip.user_agent),) + headers
        resp = make_response(request, status, to_tag=to_tag, headers=hdrs, body=body)
        self.stack.send_response(resp, now)

    def stats(self) -> dict[str, int]:
        """Live object counts (tests check they return to zero)."""
        return {
            "calls": len(self.calls),
            "legs": len(self._legs),
            "pending_txns": len(self._legs_by_txn),
            "rtp_ports": self.ports.in_use,
        }

    # -- event entry point ---------------------------------------------------------
    def handle_event(self, event: SipEvent, now: float) -> None:
        """Act on one stack event. Never raises: a bug in one call must not stop others."""
        try:
            match event:
                case RequestReceived(request=request, peer=peer, key=key):
                    self._handle_request(request, peer, key, now)
                case ResponseReceived(response=response, key=key, retransmission=retrans):
                    self._handle_response(response, key, retrans, now)
                case CancelReceived(invite_key=key):
                    self._handle_cancel(key, now)
                case TransactionTimeout(key=key):
                    self._handle_timeout(key, now)
                case TransportError(key=key):
                    if key is not None:
                        self._handle_timeout(key, now)
                case AckTimeout(call_id=call_id):
                    self._handle_ack_timeout(call_id, now)
                case _:
                    pass
        except Exception:  # noqa: BLE001 — isolate one call's bug from the rest
            logger.exception("handler_error", extra={"type": type(event).__name__})

    def _handle_request(self, request: SipRequest, peer: Peer, key: object, now: float) -> None:
        method = request.method
        if method != "ACK" and self.access.is_banned(peer.host, now):
            return  # banned sources get no answer at all
        mf = request.get("max-forwards")
        if mf is not None and mf.strip() == "0" and method not in ("ACK",):
            self._reply(request, 483, now=now)
            return
        if request.uri.scheme not in ("sip", "sips", "tel"):
            self._reply(request, 416, now=now)
            return
        require = [r.lower() for r in request.get_all("require")]
        unsupported = [r for r in require if r not in SUPPORTED_EXTENSIONS]
        if unsupported and method not in ("ACK", "CANCEL"):
            self._reply(request, 420, headers=(("Unsupported", ", ".join(unsupported)),),
                        now=now)
            return
        if request.to_tag is not None and method not in ("ACK",):
            leg = self._legs.get((request.call_id, request.to_tag))
            if leg is None:
                if method == "OPTIONS":
                    self._handle_options_request(request, peer, key, now)
                else:
                    self._reply(request, 481, now=now)
                return
            self._handle_in_dialog(leg, request, now)
            return
        handler = self._dispatch.get(method)
        if handler is None:
            status = 405 if method in KNOWN_METHODS else 501
            if method != "ACK":
                self._reply(request, status, headers=(("Allow", ALLOW),), now=now)
            return
        handler(request, peer, key, now)

    # -- OPTIONS, REGISTER -----------------------------------------------------------
    def _handle_options_request(self, request: SipRequest, peer: Peer, key: object,
                                now: float) -> None:
        self._reply(request, 200, to_tag=new_tag(), headers=(
            ("Allow", ALLOW), ("Accept", "application/sdp"),
            ("Supported", ", ".join(sorted(SUPPORTED_EXTENSIONS)))), now=now)

    def _handle_register_request(self, request: SipRequest, peer: Peer, key: object,
                                 now: float) -> None:
        ident = self.access.identify(request, peer.host, now)
        if ident.challenge is not None:
            self._reply(request, 401, to_tag=new_tag(),
                        headers=tuple(("WWW-Authenticate", c) for c in ident.challenge),
                        now=now)
            return
        if ident.user is None:
            self._reply(request, 403, to_tag=new_tag(), now=now)
            return
        to_user = request.to.uri.user
        if to_user != ident.user:
            # An extension may only register its own address of record.
            self._reply(request, 403, to_tag=new_tag(), now=now)
            return
        expires_hdr = request.get("expires")
        header_expires = int(expires_hdr) if expires_hdr and expires_hdr.isdigit() else None
        specs: list[ContactSpec] = []
        for na in request.contacts:
            exp = na.params.get("expires")
            q = na.params.get("q")
            inst = na.params.get("+sip.instance")
            try:
                specs.append(ContactSpec(
                    uri=str(na.uri), expires=int(exp) if exp and exp.isdigit() else None,
                    q=float(q) if q else None, wildcard=na.wildcard,
                    instance=inst.strip('"<>') if inst else None,
                ))
            except ValueError:
                self._reply(request, 400, to_tag=new_tag(), now=now)
                return
        seq, _ = request.cseq
        result = self.registrar.register(
            ident.user, specs, request.call_id, seq, now, header_expires=header_expires,
            source=BindingSource(peer.transport, peer.host, peer.port),
        )
        headers: list[tuple[str, str]] = [("Contact", c) for c in result.contact_values]
        if result.min_expires is not None:
            headers.append(("Min-Expires", str(result.min_expires)))
        headers.append(("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())))
        self._reply(request, result.status, to_tag=new_tag(), headers=tuple(headers), now=now)
        logger.info("register", extra={"aor": ident.user, "status": result.status,
                                       "contacts": len(result.bindings), "source": str(peer)})

    # -- INVITE ------------------------------------------------------------------------
    def _handle_invite_request(self, request: SipRequest, peer: Peer, key: object,
                               now: float) -> None:
        if not self.accepting:
            self._reply(request, 503, headers=(("Retry-After", "30"),), now=now)
            return
        ident = self.access.identify(request, peer.host, now)
        if ident.challenge is not None:
            self._reply(request, 401, to_tag=new_tag(),
                        headers=tuple(("WWW-Authenticate", c) for c in ident.challenge),
                        now=now)
            return
        if not ident.trusted:
            self._reply(request, 403, to_tag=new_tag(), now=now)
            return
        called = request.uri.user or ""
        caller = request.from_.uri.user or ""
        target = self._route(called, caller, from_trunk=ident.trunk is not None)
        call = Call(id=request.call_id, caller=caller, called=called,
                    target=target or Target("hangup"), started=now,
                    trunk=ident.trunk, user=ident.user)
        log = CallLogAdapter(logger, request.call_id)
        if target is None:
            log.info("no_route", extra={"called": called, "caller": caller})
            self._reply(request, 404, to_tag=new_tag(), now=now)
            return
        if request.content_type != "application/sdp" or not request.body:
            # We need an offer to anchor media (offer-less INVITE: not supported yet).
            self._reply(request, 488, to_tag=new_tag(), now=now)
            return
        try:
            offer = sdplib.SessionDescription.parse(request.body.decode("utf-8", "replace"))
        except ProtocolError as exc:
            self._reply(request, 400, headers=(("Warning", f'399 hotline "{exc}"'),), now=now)
            return
        try:
            rtp_port = self.ports.allocate()
        except PortExhausted:
            self._reply(request, 503, now=now)
            return
        host, _ = self._host_for(peer)
        leg = Leg(call=call, peer=peer, uas=True, call_id=request.call_id,
                  local_tag=new_tag(), invite=request, rtp_port=rtp_port, local_host=host,
                  txn_key=key, remote_sdp=offer)
        call.legs.append(leg)
        self.calls[call.id + leg.local_tag] = call
        self._legs[(leg.call_id, leg.local_tag)] = leg
        self._legs_by_txn[key] = leg
        log.info("invite", extra={
            "called": called, "caller": caller, "target": str(target),
            "source": "trunk:" + ident.trunk.name if ident.trunk else "user:" + str(ident.user)})
        kind = target.kind
        if kind in ("echo", "play"):
            self._answer(leg, now)
        elif kind == "hangup":
            self._end_leg_unanswered(leg, 603, now)
        elif kind == "trunk":
            trunk = self.config.trunk(target.arg or "")
            if trunk is None:
                self._end_leg_unanswered(leg, 404, now)
                return
            self._dial_out(call, leg, trunk, called, now)
        elif kind == "agent":
            self._dial_agent(call, leg, target.arg or "", now)
        else:
            # ivr/queue/voicemail/conference arrive with the calls-end-to-end issue.
            log.info("target_unavailable", extra={"target": str(target)})
            self._end_leg_unanswered(leg, 480, now)

    def _route(self, called: str, caller: str, *, from_trunk: bool) -> Target | None:
        route = self.config.route(called, caller, self.config.local_time(datetime.now(UTC)))
        if route is not None:
            return route.to
        if not from_trunk and self.config.agent(called) is not None:
            return Target("agent", called)  # extension to extension
        return None

    def _answer_sdp(self, leg: Leg) -> bytes:
        assert leg.remote_sdp is not None
        self._session_id += 1
        answer, media = sdplib.answer_offer(
            leg.remote_sdp, leg.local_host, leg.rtp_port, session_id=self._session_id,
            version=1, rtcp_mux=False,
        )
        leg.local_sdp = answer
        leg.media = media
        return str(answer).encode()

    def _offer_sdp(self, leg: Leg) -> bytes:
        self._session_id += 1
        offer = sdplib.build_offer(leg.local_host, leg.rtp_port, session_id=self._session_id,
                                   version=1)
        leg.local_sdp = offer
        return str(offer).encode()

    def _answer(self, leg: Leg, now: float) -> None:
        try:
            body = self._answer_sdp(leg)
        except ProtocolError:
            self._end_leg_unanswered(leg, 488, now)
            return
        resp = make_response(
            leg.invite, 200, to_tag=leg.local_tag,
            headers=(("Contact", self._contact(leg.peer)), ("Allow", ALLOW),
                     ("Server", self.config.sip.user_agent),
                     ("Content-Type", "application/sdp")),
            body=body,
        )
        leg.dialog = SipDialog.from_uas(leg.invite, resp)
        self.stack.send_response(resp, now)
        leg.answered = True
        self._legs_by_txn.pop(leg.txn_key, None)
        call = leg.call
        if call.state is CallState.SETUP:
            call.state = CallState.ANSWERED
            call.answered_at = now

    def _end_leg_unanswered(self, leg: Leg, status: int, now: float) -> None:
        self._reply(leg.invite, status, to_tag=leg.local_tag, now=now)
        leg.call.status = status
        self._drop_leg(leg)
        self._maybe_end(leg.call, f"sip:{status}", now)

    # -- B2BUA outbound --------------------------------------------------------------
    def _dial_out(self, call: Call, a: Leg, trunk: TrunkConfig, number: str,
                  now: float) -> None:
        peer = Peer(trunk.transport, trunk.host, trunk.port)
        caller = trunk.caller_id or call.caller
        uri = SipUri(scheme="sip", user=number, host=uri_host(trunk.host), port=trunk.port)
        self._dial(call, a, peer, uri, caller, now)

    def _dial_agent(self, call: Call, a: Leg, agent_id: str, now: float) -> None:
        bindings = self.registrar.lookup(agent_id, now)
        if not bindings:
            self._end_leg_unanswered(a, 480, now)
            return
        b = bindings[0]
        uri = SipUri.parse(b.uri)
        src = b.source
        # RFC 5626-lite: reach the phone where its REGISTER came from (NAT-safe).
        peer = (Peer(src.transport, src.ip, src.port) if src is not None
                else Peer(uri.transport, uri.host_bare, uri.port or 5060))
        self._dial(call, a, peer, uri, call.caller, now)

    def _dial(self, call: Call, a: Leg, peer: Peer, uri: SipUri, caller: str,
              now: float) -> None:
        try:
            rtp_port = self.ports.allocate()
        except PortExhausted:
            self._end_leg_unanswered(a, 503, now)
            return
        host, port = self._host_for(peer)
        call_id = secrets.token_hex(12) + "@hotline"
        tag = new_tag()
        invite = SipRequest("INVITE", uri)
        invite.add("Max-Forwards", "70")
        invite.add("From", f"<sip:{caller}@{uri_host(host)}>;tag={tag}")
        invite.add("To", f"<{uri}>")
        invite.add("Call-ID", call_id)
        invite.add("CSeq", "1 INVITE")
        invite.add("Contact", self._contact(peer))
        invite.add("Allow", ALLOW)
        invite.add("User-Agent", self.config.sip.user_agent)
        invite.add("Content-Type", "application/sdp")
        b = Leg(call=call, peer=peer, uas=False, call_id=call_id, local_tag=tag,
                invite=invite, rtp_port=rtp_port, local_host=host)
        invite.body = self._offer_sdp(b)
        self.add_via(invite, peer)
        key = self.stack.send_request(invite, peer, now)
        b.txn_key = key
        call.legs.append(b)
        self._legs[(call_id, tag)] = b
        self._legs_by_txn[key] = b

    def _other(self, leg: Leg) -> Leg | None:
        return next((x for x in leg.call.legs if x is not leg), None)

    def _handle_response(self, response: SipResponse, key: object, retrans: bool,
                         now: float) -> None:
        leg = self._legs_by_txn.get(key)
        if leg is None:
            leg = self._legs.get((response.call_id, response.from_tag or ""))
            if leg is not None and retrans and 200 <= response.status < 300 and leg.dialog:
                # 2xx retransmission: our ACK was lost (RFC 3261 §13.2.2.4).
                self.stack.send_ack(leg.dialog.create_ack(response), leg.peer, now)
            return
        _, method = response.cseq
        if method == "BYE" or method != "INVITE":
            self._legs_by_txn.pop(key, None)
            if leg.bye_sent:
                self._drop_leg(leg)
                self._maybe_end(leg.call, leg.call.cause or "normal", now)
            return
        a = self._other(leg)
        status = response.status
        if status < 200:
            if a is not None and not a.answered and status > 100:
                self._reply(a.invite, 180 if status == 180 else 183, to_tag=a.local_tag,
                            headers=(("Contact", self._contact(a.peer)),), now=now)
            return
        self._legs_by_txn.pop(key, None)
        if status < 300:
            leg.dialog = SipDialog.from_uac(leg.invite, response)
            self.stack.send_ack(leg.dialog.create_ack(response), leg.peer, now)
            leg.answered = True
            if leg.cancelled or a is None or not self._live(a):
                self._send_bye(leg, now)
                return
            try:
                leg.remote_sdp = sdplib.SessionDescription.parse(
                    response.body.decode("utf-8", "replace"))
                assert leg.local_sdp is not None
                leg.media = sdplib.negotiated_from_answer(leg.local_sdp, leg.remote_sdp)
            except (ProtocolError, ValueError):
                pass  # media is anchored on our side; a bad answer only loses the media
            self._answer(a, now)
            return
        # Final failure from the far end: pass the status to the caller (RFC 3261 §16.7
        # style mapping: 6xx stay 6xx, auth challenges from the carrier become 503).
        self._drop_leg(leg)
        if a is not None and not a.answered:
            out = 503 if status in (401, 407) else status
            a.call.status = status
            self._end_leg_unanswered(a, out, now)

    def _handle_timeout(self, key: object, now: float) -> None:
        leg = self._legs_by_txn.pop(key, None)
        if leg is None:
            return
        if leg.uas:
            self._drop_leg(leg)
            self._maybe_end(leg.call, "transport", now)
            return
        a = self._other(leg)
        self._drop_leg(leg)
        if leg.bye_sent:
            self._maybe_end(leg.call, leg.call.cause or "normal", now)
        elif a is not None and not a.answered:
            self._end_leg_unanswered(a, 408, now)
        else:
            self._maybe_end(leg.call, "timeout", now)

    def _handle_cancel(self, key: object, now: float) -> None:
        leg = self._legs_by_txn.get(key)
        if leg is None or leg.answered:
            return
        leg.call.cause = "cancel"
        self._legs_by_txn.pop(key, None)
        self._reply(leg.invite, 487, to_tag=leg.local_tag, now=now)
        self._drop_leg(leg)
        other = self._other(leg)
        if other is not None and not other.answered:
            other.cancelled = True
            self.stack.cancel(other.txn_key, now)
        self._maybe_end(leg.call, "cancel", now)

    def _handle_ack_timeout(self, call_id: str, now: float) -> None:
        for leg in [x for x in self._legs.values() if x.call_id == call_id and x.uas]:
            leg.call.cause = "ack_timeout"
            self._send_bye(leg, now)
            other = self._other(leg)
            if other is not None:
                self._send_bye(other, now)

    # -- in-dialog -----------------------------------------------------------------
    def _handle_ack_request(self, request: SipRequest, peer: Peer, key: object,
                            now: float) -> None:
        pass  # ACKs to our 2xx stop the stack's retransmissions; nothing else to do

    def _handle_info_request(self, request: SipRequest, peer: Peer, key: object,
                             now: float) -> None:
        self._reply(request, 481, now=now)

    def _handle_bye_request(self, request: SipRequest, peer: Peer, key: object,
                            now: float) -> None:
        self._reply(request, 481, now=now)

    def _handle_in_dialog(self, leg: Leg, request: SipRequest, now: float) -> None:
        method = request.method
        if leg.dialog is not None:
            try:
                leg.dialog.receive_request(request)
            except ProtocolError as exc:
                self._reply(request, exc.status_hint, now=now)
                return
        if method == "BYE":
            self._reply(request, 200, now=now)
            leg.call.cause = leg.call.cause or ("caller_bye" if leg.uas else "callee_bye")
            self._drop_leg(leg)
            other = self._other(leg)
            if other is not None:
                if other.answered:
                    self._send_bye(other, now)
                elif other.uas:
                    self._end_leg_unanswered(other, 487, now)
                else:
                    other.cancelled = True
                    self.stack.cancel(other.txn_key, now)
            self._maybe_end(leg.call, leg.call.cause, now)
        elif method == "INVITE":
            # Re-INVITE (target refresh, hold): answer with our current SDP, new version.
            body = b""
            if request.body and leg.local_sdp is not None:
                try:
                    leg.remote_sdp = sdplib.SessionDescription.parse(
                        request.body.decode("utf-8", "replace"))
                    body = self._answer_sdp(leg)
                except ProtocolError:
                    self._reply(request, 488, now=now)
                    return
            headers: tuple[tuple[str, str], ...] = (("Contact", self._contact(leg.peer)),)
            if body:
                headers += (("Content-Type", "application/sdp"),)
            self._reply(request, 200, headers=headers, body=body, now=now)
        elif method in ("OPTIONS", "INFO", "UPDATE", "NOTIFY"):
            self._reply(request, 200, now=now)
        else:
            self._reply(request, 501, headers=(("Allow", ALLOW),), now=now)

    def _send_bye(self, leg: Leg, now: float) -> None:
        if leg.bye_sent:
            return
        if leg.dialog is None:
            self._drop_leg(leg)
            return
        leg.bye_sent = True
        bye = leg.dialog.create_request("BYE")
        bye.set("Max-Forwards", "70")
        self.add_via(bye, leg.peer)
        key = self.stack.send_request(bye, leg.peer, now)
        self._legs_by_txn[key] = leg

    def hangup(self, call: Call, now: float, cause: str = "hangup") -> None:
        """End a call from our side (API, shutdown): BYE answered legs, end the rest."""
        call.cause = call.cause or cause
        for leg in list(call.legs):
            if leg.answered:
                self._send_bye(leg, now)
            elif leg.uas:
                self._end_leg_unanswered(leg, 480, now)
            else:
                leg.cancelled = True
                self.stack.cancel(leg.txn_key, now)

    # -- bookkeeping ---------------------------------------------------------------
    def _live(self, leg: Leg) -> bool:
        return (leg.call_id, leg.local_tag) in self._legs

    def _drop_leg(self, leg: Leg) -> None:
        """The leg's dialog is over: forget it and free its media port."""
        if self._legs.pop((leg.call_id, leg.local_tag), None) is not None:
            self.ports.release(leg.rtp_port)

    def _maybe_end(self, call: Call, cause: str, now: float) -> None:
        live = [x for x in call.legs if (x.call_id, x.local_tag) in self._legs]
        if live or call.state is CallState.ENDED:
            return
        call.state = CallState.ENDED
        call.ended_at = now
        call.cause = call.cause or cause
        for k in [k for k, c in self.calls.items() if c is call]:
            del self.calls[k]
        for k in [k for k, lg in self._legs_by_txn.items() if lg.call is call]:
            del self._legs_by_txn[k]
        CallLogAdapter(logger, call.id).info("call_end", extra={
            "cause": call.cause, "status": call.status,
            "billsec": round((now - call.answered_at) if call.answered_at else 0.0, 1)})
        if self._on_cdr is not None:
            self._on_cdr(call)
