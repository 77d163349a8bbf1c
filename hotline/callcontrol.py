"""Call control: the B2BUA that turns SIP stack events into calls.

Theory of operation
-------------------
The transport adapters feed bytes into the sans-IO :class:`sip.stack.SipStack`; after
each feed the server drains ``stack.next_event()`` into :meth:`CallControl.handle_event`.
Out-of-dialog requests are dispatched by method (``_handle_<method>_request``);
in-dialog requests and responses find their :class:`Leg` by Call-ID and our tag.

Every call is a :class:`Call` with one or two legs. Each leg is its own SIP dialog
(UAS leg toward the caller, UAC leg toward the callee) with its own RTP endpoint in
the call's media worker (:mod:`hotline.mediactl`), so hotline anchors, and can record,
the media of every call. Local applications (``echo``, ``play:``) are calls with one
leg whose endpoint hears itself or a prompt.

SIP handling is synchronous; talking to a media worker is not. A step that needs the
worker (create an endpoint before answering, bridge after the callee answers) runs as
a task and calls ``flush`` when done so the stack's output goes out. Whenever a task
resumes it first checks that its leg is still alive (a CANCEL or BYE may have ended it
meanwhile) and frees what it created otherwise: no endpoint or port ever leaks.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

from acd.ivr import IvrSession
from acd.ivr_actions import Hangup, Transfer
from media.client import EndpointHandle, MediaError
from media.events import (
    DtmfReceived,
    MediaEvent,
    MediaTimeout,
    PlaybackDone,
    SpeechStarted,
    SpeechStopped,
    WorkerDied,
)
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
from sip.refer import ReferRequest, build_refer_notify
from sip.registrar import BindingSource, ContactSpec, SipRegistrar
from sip.session_timer import (
    SessionTimer,
    SessionTimerRequest,
    UasTimerDecision,
    negotiate_uas,
    refresh_method,
)
from sip.stack import SipStack, new_branch
from sip.transaction import TransactionKey
from sip.uri import SipUri

from . import supervise as supervision
from .access import AccessControl
from .acdctl import AcdService
from .callmodel import BlindTransfer, Call, CallState, Leg, new_tag
from .conference import ConferenceRooms
from .config import RouteConfig, SiteConfig, Target, TrunkConfig
from .dialplan import rewrite
from .ivrcall import IvrRun
from .logs import CallLogAdapter
from .mediactl import LOOPBACK_JITTER_MIN_MS, CallMedia
from .moh import builtin_moh
from .netaddr import advertised_host, uri_host
from .queuecall import REFUSED, QueueCalls
from .silence import SilentAction, SilentCallRule
from .trunkselect import (
    OutboundIdentity,
    TrunkPlan,
    TrunkSelector,
    authorize,
    caller_withheld,
    outbound_identity,
    q850_cause,
    should_failover,
)
from .voicemail_store import VoicemailStore
from .voicemailcall import VoicemailRun

logger = logging.getLogger("hotline.call")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, REFER, NOTIFY"
SUPPORTED_EXTENSIONS = frozenset(("replaces", "timer", "path", "outbound"))
SUPPORTED = "replaces, timer"
"""What our INVITEs and 2xx advertise in Supported."""
KNOWN_METHODS = frozenset(
    ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "INFO", "UPDATE", "PRACK",
     "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH")
)


RINGBACK = "tone:ringback"
"""What a transferee hears while the transfer target rings."""
THREE_WAY_CODE = "*3"
"""DTMF an extension sends in a call to join its held call into it (Asterisk's
``atxferthreeway`` key)."""
FEATURE_DIGIT_GAP = 3.0
"""Seconds between the digits of a feature code."""
WEB_PHONE_INSTANCE = "urn:hotline-web:"
"""The ``+sip.instance`` prefix of the browser phones' bindings (web_softphone/gateway.py):
their RTP to us only crosses loopback, between two of our media workers."""

__all__ = ["BlindTransfer", "Call", "CallControl", "CallState", "Leg", "new_tag"]

RequestHandler = Callable[[SipRequest, Peer, TransactionKey | None, float], None]


def is_web_phone(instance: str | None) -> bool:
    """Whether a binding's ``+sip.instance`` (``<urn:...>``) is a browser phone's."""
    return instance is not None and instance.strip("<>").startswith(WEB_PHONE_INSTANCE)


class CallControl:
    """Dispatches SIP events to registrar, local applications and B2BUA calls."""

    def __init__(
        self,
        config: SiteConfig,
        stack: SipStack,
        local_address: Callable[[str], tuple[str, int]],
        media: CallMedia,
        *,
        clock: Callable[[], float],
        flush: Callable[[], None],
        on_cdr: Callable[[Call], None] | None = None,
        on_answer: Callable[[Call], None] | None = None,
        on_transfer: Callable[[Call], None] | None = None,
        voicemail: VoicemailStore | None = None,
    ) -> None:
        """:param config: the validated site.
        :param stack: the SIP transaction layer.
        :param local_address: transport name → our bound (host, port) for it.
        :param media: endpoint/room operations on the media workers.
        :param clock: the loop's clock (for steps that resume after awaiting a worker).
        :param flush: sends what the stack has queued (called after asynchronous steps).
        :param on_cdr: called once per call when it ends.
        :param on_answer: called once per call when the caller is answered (its CDR is
            opened then, so a crash mid-call still leaves one).
        :param on_transfer: called when an answered call (an IVR's) is bridged to the
            target it was transferred to (the recording then takes the new leg).
        :param voicemail: where ``voicemail:`` targets file messages (None: such targets
            are unavailable)."""
        self.config = config
        self.stack = stack
        self.media = media
        self._local_address = local_address
        self._clock = clock
        self._flush = flush
        self.access = AccessControl(config)
        self.moh = config.server.moh or builtin_moh(config.server.data_dir)
        self.conferences = ConferenceRooms(media, self.moh)
        self.registrar = SipRegistrar(
            min_expires=config.sip.min_expires, max_expires=config.sip.max_expires,
            default_expires=min(3600, config.sip.max_expires),
        )
        self.trunk_select = TrunkSelector(config.trunks)
        """Failover order and channel counts of outbound trunk calls; the server sets its
        ``health`` to the trunk monitor's once that runs."""
        self.calls: dict[str, Call] = {}
        self._legs: dict[tuple[str, str], Leg] = {}
        self._legs_by_txn: dict[object, Leg] = {}
        self._legs_by_ep: dict[tuple[int, int], Leg] = {}
        self._link_eps: dict[tuple[int, int], Leg] = {}
        """Both halves of each leg's link (:attr:`Leg.link`) while they live."""
        self._refreshes: dict[object, Leg] = {}
        """Our session-refresh transactions (RFC 4028) and their legs."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._on_cdr = on_cdr
        self._on_answer = on_answer
        self._on_transfer = on_transfer
        self.voicemail = voicemail
        self._wall_offset = time.time() - clock()
        self.acd = AcdService(config, clock, self._wall_offset)
        """The site's ACD; the server adds its storage and API listeners."""
        self.queue_calls = QueueCalls(self, self.acd)
        self.on_audit: Callable[[str, str, str, str], None] | None = None
        """Called with (actor, action, target, call id) for supervision actions."""
        self.accepting = True
        self._dispatch: dict[str, RequestHandler] = {
            "REGISTER": self._handle_register_request,
            "INVITE": self._handle_invite_request,
            "OPTIONS": self._handle_options_request,
            "BYE": self._handle_no_dialog_request,
            "ACK": self._handle_ack_request,
            "INFO": self._handle_no_dialog_request,
            "UPDATE": self._handle_no_dialog_request,
        }

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

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run an asynchronous step; flush the stack's output when it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("task_failed", exc_info=task.exception())
        self._flush()

    def stats(self) -> dict[str, int]:
        """Live object counts (tests check they return to zero)."""
        return {
            "calls": len(self.calls),
            "legs": len(self._legs),
            "pending_txns": len(self._legs_by_txn),
            "endpoints": len(self._legs_by_ep) + len(self._link_eps),
            "tasks": len(self._tasks),
        }

    # -- event entry points ----------------------------------------------------------
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

    def handle_media_event(self, event: MediaEvent, now: float) -> None:
        """Act on a media worker event (timeouts, prompts done, a worker's death)."""
        try:
            match event:
                case MediaTimeout(worker=w, endpoint=e):
                    leg = self._legs_by_ep.get((w, e))
                    if leg is not None:
                        CallLogAdapter(logger, leg.call.id).info("media_timeout")
                        self.hangup(leg.call, now, "media_timeout")
                case SpeechStarted(worker=w, endpoint=e) | SpeechStopped(worker=w, endpoint=e):
                    leg = self._legs_by_ep.get((w, e))
                    if leg is not None and leg.uas:
                        speaking = isinstance(event, SpeechStarted)
                        if speaking:
                            self._caller_heard(leg.call)
                        if isinstance(leg.call.ivr, VoicemailRun):
                            leg.call.ivr.on_speech(speaking, now)
                case DtmfReceived(worker=w, endpoint=e, digit=digit, duration_ms=ms,
                                  source=source):
                    leg = self._legs_by_ep.get((w, e))
                    if leg is not None and leg.uas:
                        self._caller_heard(leg.call)
                    if leg is not None:
                        CallLogAdapter(logger, leg.call.id).info("dtmf", extra={
                            "digit": digit, "duration_ms": ms, "source": source,
                            "leg": "caller" if leg.uas else "callee"})
                        if leg.uas and leg.call.waiting:
                            self.queue_calls.digit(leg, digit, now)
                        elif leg.uas and leg.call.ivr is not None and not leg.call.ivr.closed:
                            leg.call.ivr.on_digit(digit, now)
                        elif leg.monitor is not None:
                            self._monitor_digit(leg, digit, now)
                        elif leg.user is not None:
                            self._feature_digit(leg, digit, now)
                        if source == "rfc4733" and leg.joined and leg.monitor is None:
                            self._relay_digit(leg, digit, ms)
                case PlaybackDone(worker=w, endpoint=e, play_id=play_id, reason=reason):
                    leg = self._legs_by_ep.get((w, e))
                    run = leg.call.ivr if leg is not None else None
                    if leg is not None and self.queue_calls.playback_done(leg, play_id):
                        pass
                    elif run is not None and (not run.closed or run.owns(play_id)):
                        run.on_playback_done(play_id, reason, now)
                    elif leg is not None and reason == "done" and leg.call.target.kind == "play":
                        self.hangup(leg.call, now, "normal")
                case WorkerDied(worker=w, endpoints=eps):
                    self.conferences.worker_died(w)
                    for e in eps:
                        leg = self._legs_by_ep.pop((w, e), None)
                        if leg is not None:
                            leg.ep = None  # gone with the worker
                        else:  # half of a link: the other half is freed with the leg
                            leg = self._link_eps.pop((w, e), None)
                        if leg is not None:
                            self.hangup(leg.call, now, "media_worker_died")
                case _:
                    pass
        except Exception:  # noqa: BLE001
            logger.exception("media_handler_error", extra={"type": type(event).__name__})

    def _handle_request(self, request: SipRequest, peer: Peer, key: TransactionKey | None,
                        now: float) -> None:
        method = request.method
        if method != "ACK" and self.access.is_banned(peer.host, now):
            return  # banned sources get no answer at all
        mf = request.get("max-forwards")
        if mf is not None and mf.strip() == "0" and method != "ACK":
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
        if request.to_tag is not None and method != "ACK":
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
            self._reply(request, status, headers=(("Allow", ALLOW),), now=now)
            return
        handler(request, peer, key, now)

    # -- OPTIONS, REGISTER -----------------------------------------------------------
    def _handle_options_request(self, request: SipRequest, peer: Peer, key: TransactionKey | None,
                                now: float) -> None:
        self._reply(request, 200, to_tag=new_tag(), headers=(
            ("Allow", ALLOW), ("Accept", "application/sdp"),
            ("Supported", ", ".join(sorted(SUPPORTED_EXTENSIONS)))), now=now)

    def _handle_no_dialog_request(self, request: SipRequest, peer: Peer, key: TransactionKey | None,
                                  now: float) -> None:
        self._reply(request, 481, now=now)

    def _handle_ack_request(self, request: SipRequest, peer: Peer, key: TransactionKey | None,
                            now: float) -> None:
        pass  # ACKs to our 2xx stop the stack's retransmissions; nothing else to do

    def _challenge(self, request: SipRequest, challenge: list[str], now: float) -> None:
        self._reply(request, 401, to_tag=new_tag(),
                    headers=tuple(("WWW-Authenticate", c) for c in challenge), now=now)

    def _handle_register_request(self, request: SipRequest, peer: Peer, key: TransactionKey | None,
                                 now: float) -> None:
        ident = self.access.identify(request, peer.host, now)
        if ident.challenge is not None:
            self._challenge(request, ident.challenge, now)
            return
        # An extension may only register its own address of record.
        if ident.user is None or request.to.uri.user != ident.user:
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
    def _handle_invite_request(self, request: SipRequest, peer: Peer, key: TransactionKey | None,
                               now: float) -> None:
        if not self.accepting:
            self._reply(request, 503, headers=(("Retry-After", "30"),), now=now)
            return
        ident = self.access.identify(request, peer.host, now)
        if ident.challenge is not None:
            self._challenge(request, ident.challenge, now)
            return
        if not ident.trusted:
            self._reply(request, 403, to_tag=new_tag(), now=now)
            return
        called = request.uri.user or ""
        caller = request.from_.uri.user or ""
        feature = (self.queue_calls.feature_code(called, ident.user, now)
                   if ident.trunk is None else None)
        supervise = (supervision.parse_code(self.config.acd, called)
                     if ident.trunk is None and feature is None else None)
        supervised: Call | None = None
        if supervise is not None:
            mode, agent = supervise
            supervised = self._agent_call(agent)
            allowed = supervision.may_supervise(self.config, ident.user, agent)
            CallLogAdapter(logger, request.call_id).info("supervise_request", extra={
                "supervisor": ident.user, "agent": agent, "mode": mode, "allowed": allowed,
                "call": supervised.id if supervised is not None else ""})
            if not allowed:
                self._reply(request, 403, to_tag=new_tag(), now=now)
                return
            if supervised is None:
                feature = Target("play", REFUSED)
            else:
                feature = Target("agent", agent)  # routed below to _answer_supervisor
        route = (RouteConfig(match=called, to=feature, record=False) if feature is not None
                 else self._route(called, caller, ident.user,
                                  from_trunk=ident.trunk is not None))
        target = route.to if route is not None else None
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
            timer_offer = negotiate_uas(request)
        except ProtocolError as exc:
            self._reply(request, 400, headers=(("Warning", f'399 hotline "{exc}"'),), now=now)
            return
        if timer_offer.status is not None:  # 422: the interval is below our Min-SE
            self._reply(request, timer_offer.status, to_tag=new_tag(),
                        headers=timer_offer.headers, now=now)
            return
        call = Call(id=request.call_id, caller=caller, called=called, target=target,
                    started=now, trunk=ident.trunk, user=ident.user,
                    record=route.record if route is not None else True, route=target)
        if target.kind == "conference":  # into the room's worker
            call.media_key = self.conferences.media_key(target.arg or "")
        elif supervised is not None:  # joins the agent's call: same worker
            call.media_key = supervised.media_key
        else:
            # An extension's calls share a worker, so that it can join them later
            # (attended transfer, *3): the caller's own call first (a consultation),
            # else, for a call to a busy extension, the call it is in (call waiting).
            call.media_key = (self._media_key_for(ident.user)
                              or (self._media_key_for(target.arg) if target.kind == "agent"
                                  else None)
                              or call.id)
        host, _ = self._host_for(peer)
        leg = Leg(call=call, peer=peer, uas=True, call_id=request.call_id,
                  local_tag=new_tag(), invite=request, local_host=host, txn_key=key,
                  remote_sdp=offer, created=now, user=ident.user, timer_offer=timer_offer,
                  peer_allow=request)
        call.legs.append(leg)
        call.key = call.id + ";" + leg.local_tag
        self.calls[call.key] = call
        self._legs[(leg.call_id, leg.local_tag)] = leg
        self._legs_by_txn[key] = leg
        log.info("invite", extra={
            "called": called, "caller": caller, "target": str(target),
            "source": "trunk:" + ident.trunk.name if ident.trunk else "user:" + str(ident.user)})
        kind = target.kind
        if supervised is not None and supervise is not None:
            self._spawn(self._answer_supervisor(leg, supervised, *supervise))
        elif kind in ("echo", "play"):
            self._spawn(self._answer_local(leg))
        elif kind == "hangup":
            self._end_leg_unanswered(leg, 603, now)
        elif kind == "ivr":
            self._spawn(self._answer_ivr(leg, target.arg or ""))
        elif kind == "trunk":
            dialled = rewrite(called, route.strip, route.prepend) if route else called
            self._dial_trunk(call, leg, target.arg or "", dialled, now)
        elif kind == "agent":
            self._dial_agent(call, leg, target.arg or "", now)
        elif kind == "voicemail":
            self._spawn(self._answer_voicemail(leg, target.arg or ""))
        elif kind == "conference":
            self._spawn(self._answer_conference(leg, target.arg or ""))
        elif kind == "queue":
            self._spawn(self.queue_calls.answer_into_queue(
                leg, target.arg or "", route.priority if route is not None else 0))
        else:
            log.info("target_unavailable", extra={"target": str(target)})
            self._end_leg_unanswered(leg, 480, now)
        if (feature is None or supervised is not None) and self._live(leg):
            self.queue_calls.leg_started(leg, now)

    def _agent_call(self, agent: str) -> Call | None:
        """The answered call extension ``agent`` talks in (a queue call first)."""
        found = [x.call for x in self._legs.values()
                 if x.user == agent and x.joined and x.answered and x.monitor is None
                 and x.call.state is CallState.ANSWERED]
        return next((c for c in found if c.agent == agent), found[0] if found else None)

    async def _answer_supervisor(self, leg: Leg, target: Call, mode: str, agent: str) -> None:
        """Answer a supervisor's ``*6x`` call and join its leg to ``target`` in ``mode``."""
        if not await self._create_answer_endpoint(leg) or not self._live(leg):
            return
        now = self._clock()
        self._send_answer(leg, now)
        log = CallLogAdapter(logger, target.id)
        if target.state is not CallState.ANSWERED or self.agent_leg(target, agent) is None:
            log.info("supervise_refused", extra={"supervisor": leg.user, "agent": agent,
                                                 "reason": "call over"})
            self.hangup(leg.call, now, "nothing_to_supervise")
            return
        leg.monitor, leg.monitor_of, leg.joined = mode, agent, True
        if not self._merge(target, leg.call, drop=(), now=now, cause="supervising"):
            log.info("supervise_refused", extra={"supervisor": leg.user, "agent": agent,
                                                 "reason": "other media worker"})
            self.hangup(leg.call, now, "nothing_to_supervise")
            return
        self._audit_supervision(leg, mode, now)

    def set_monitor(self, leg: Leg, mode: str, now: float) -> None:
        """Switch a supervisor's leg to ``mode`` (listen, whisper, barge) or, with
        ``take_over``, put it in the agent's place (the agent's leg is released)."""
        if leg.monitor is None or leg.monitor == mode:
            return
        call = leg.call
        if mode == "take_over":
            agent = self.agent_leg(call, leg.monitor_of)
            leg.monitor = None
            if call.agent is not None and call.agent == leg.monitor_of:
                self.queue_calls.transferred(call, f"takeover:{leg.user}", now)
                call.agent = leg.user
            if agent is not None:
                agent.joined = False
                self._send_bye(agent, now)
        else:
            leg.monitor = mode
        self._audit_supervision(leg, mode, now)
        self._remix(call)
        if self._on_transfer is not None:  # the recording's right side follows barge
            self._on_transfer(call)

    def supervise(self, call: Call, agent: str, phone: str, mode: str, actor: str,
                  now: float) -> str | None:
        """API supervision of ``agent``'s leg in ``call`` from extension ``phone``: switch
        the mode of that phone's supervising leg, or ring the phone and join it in
        ``mode``. Returns what prevents it, or None."""
        if self.agent_leg(call, agent) is None:
            return f"agent {agent} is not talking in this call"
        existing = next((x for x in call.legs if self._live(x) and x.monitor is not None
                         and x.user == phone), None)
        if existing is not None:
            self.set_monitor(existing, mode, now)
            return None
        if mode not in supervision.MODES:
            return f"extension {phone} is not supervising this call"
        contact = self.phone_contact(phone, now)
        a = call.legs[0] if call.legs else None
        if contact is None or a is None or not self._live(a):
            return f"extension {phone} is not registered"
        peer, uri = contact
        CallLogAdapter(logger, call.id).info("supervise_request", extra={
            "supervisor": phone, "agent": agent, "mode": mode, "by": actor})
        self._spawn(self._dial(call, a, peer, uri, call.caller, user=phone,
                               display=f"{mode} {agent}", monitor=(mode, agent)))
        return None

    def _audit_supervision(self, leg: Leg, mode: str, now: float) -> None:
        CallLogAdapter(logger, leg.call.id).info("supervise", extra={
            "supervisor": leg.user, "agent": leg.monitor_of, "mode": mode})
        if self.on_audit is not None:
            self.on_audit(leg.user or "", f"supervise:{mode}", leg.monitor_of or "",
                          leg.call.id)

    def _media_key_for(self, user: str | None) -> str | None:
        """The media key of a call the extension ``user`` is in, so that a consultation
        call it makes lands in the same worker and can be joined to it later."""
        if user is None:
            return None
        for leg in self._legs.values():
            if leg.user == user and leg.call.state is not CallState.ENDED:
                return leg.call.media_key
        return None

    def _route(self, called: str, caller: str, user: str | None, *,
               from_trunk: bool) -> RouteConfig | None:
        """The route a call takes (docs/config.md ``[[routes]]``); extension to extension
        when no route matches an agent's number."""
        when = self.config.local_time(datetime.now(UTC))
        extension = self.config.agent(user) if user is not None else None
        route = self.config.route(called, caller, when, extension, from_trunk=from_trunk)
        if route is not None:
            return route
        if not from_trunk and self.config.agent(called) is not None:
            return RouteConfig(match=called, to=Target("agent", called))
        return None

    async def _create_answer_endpoint(self, leg: Leg) -> bool:
        """Create the endpoint answering ``leg``'s offer; False if the leg is over."""
        assert leg.remote_sdp is not None
        try:
            # In-band detection on every caller leg: carriers and phones that do not send
            # RFC 4733 still reach IVR menus.
            ep, answer, negotiated = await self.media.answer(leg.call.media_key, leg.remote_sdp,
                                                             leg.local_host, dtmf_inband=True)
        except ProtocolError:
            if self._live(leg) and not leg.answered:
                self._end_leg_unanswered(leg, 488, self._clock())
            return False
        except MediaError as exc:
            CallLogAdapter(logger, leg.call.id).warning("media_unavailable",
                                                        extra={"error": str(exc)})
            if self._live(leg) and not leg.answered:
                self._end_leg_unanswered(leg, 503, self._clock())
            return False
        if not self._live(leg):
            await self.media.destroy(ep)  # cancelled while we waited for the worker
            return False
        leg.ep = ep
        leg.local_sdp = answer
        leg.media = negotiated
        self._legs_by_ep[(ep.worker, ep.id)] = leg
        return True

    async def _answer_local(self, leg: Leg) -> None:
        if not await self._create_answer_endpoint(leg):
            return
        if not await self._start_local_app(leg):
            if self._live(leg) and not leg.answered:
                self._end_leg_unanswered(leg, 500, self._clock())
            return
        if self._live(leg):
            self._send_answer(leg, self._clock())

    async def _start_local_app(self, leg: Leg) -> bool:
        """Start the call target's echo or prompt on ``leg``; False (logged) if the
        worker refused."""
        assert leg.ep is not None
        call = leg.call
        try:
            if call.target.kind == "echo":
                await self.media.echo(call.id, leg.ep)
            else:
                await self.media.play(leg.ep, call.target.arg or "")
        except MediaError as exc:
            CallLogAdapter(logger, call.id).warning("media_failed", extra={"error": str(exc)})
            return False
        return True

    async def _answer_ivr(self, leg: Leg, name: str) -> None:
        """Answer the caller (in-band DTMF on) and start the IVR session on its leg."""
        if not await self._create_answer_endpoint(leg):
            return
        assert leg.ep is not None
        call = leg.call
        wall_offset = self._wall_offset
        site = self.config

        def local_time(now: float) -> datetime:
            return site.local_time(datetime.fromtimestamp(now + wall_offset, UTC))

        try:
            session = IvrSession(
                self.config.ivr, name, local_time=local_time, call_id=call.id,
                variables={"caller": call.caller, "called": call.called, "call_id": call.id})
        except ValueError as exc:
            CallLogAdapter(logger, call.id).warning("ivr_missing", extra={"error": str(exc)})
            self._end_leg_unanswered(leg, 480, self._clock())
            return
        ivr_config = self.config.ivr.get(name)
        if ivr_config is not None and ivr_config.silent_prompt is not None:
            call.silent_config = (ivr_config.silent_prompt, ivr_config.silent_seconds)
        call.ivr = IvrRun(session, leg.ep, self.media, call_id=call.id, clock=self._clock,
                          on_end=lambda action, now: self._ivr_done(call, action, now),
                          flush=self._flush, spawn=self._spawn)
        now = self._clock()
        self._send_answer(leg, now)
        CallLogAdapter(logger, call.id).info("ivr_start", extra={"ivr": name})
        call.ivr.start(now)

    def _ivr_done(self, call: Call, action: Transfer | Hangup, now: float) -> None:
        """The IVR session ended: hang up, or send the answered caller to its target."""
        log = CallLogAdapter(logger, call.id)
        a = next((x for x in call.legs if x.uas), None)
        if isinstance(action, Hangup) or a is None or not self._live(a):
            reason = action.reason if isinstance(action, Hangup) else "hangup"
            log.info("ivr_hangup", extra={"reason": reason})
            self.hangup(call, now, reason)
            return
        target = action.target
        log.info("ivr_transfer", extra={"target": str(target)})
        kind = target.kind
        if call.ivr is not None and kind != "voicemail":  # its greeting replaces them
            call.ivr.stop_prompts()
            if kind in ("agent", "trunk"):  # the caller hears the far end ring
                call.ivr.after_prompts(self._ringback(a))
        if kind in ("agent", "trunk", "echo", "play", "voicemail"):
            call.target = target
        if kind == "voicemail":
            if not self._start_voicemail(call, a, target.arg or "", action.variables, now):
                self.hangup(call, now, "target_unavailable")
        elif kind == "agent":
            self._dial_agent(call, a, target.arg or "", now)
        elif kind == "trunk":
            self._dial_trunk(call, a, target.arg or "", action.number or call.called, now)
        elif kind in ("echo", "play"):
            self._spawn(self._local_app(a))
        elif kind == "conference":
            call.target = target
            self._spawn(self._transfer_to_conference(a, target.arg or ""))
        elif kind == "queue":
            self.queue_calls.enter(call, a, target.arg or "", action.priority,
                                   action.variables, now)
        elif kind == "hangup":
            self.hangup(call, now, "hangup")
        else:
            log.info("target_unavailable", extra={"target": str(target)})
            self.hangup(call, now, "target_unavailable")

    async def _answer_conference(self, leg: Leg, name: str) -> None:
        """Answer the caller into conference room ``name``."""
        if not await self._create_answer_endpoint(leg):
            return
        if await self._join_conference(leg, name) and not leg.answered and self._live(leg):
            self._send_answer(leg, self._clock())

    async def _transfer_to_conference(self, leg: Leg, name: str) -> None:
        """An IVR sent its answered caller to conference room ``name``."""
        await self._join_conference(leg, name)

    async def _join_conference(self, leg: Leg, name: str) -> bool:
        """Put the (answered or about to be) caller's leg into room ``name``; through a
        link if the room is mixed in another media worker than the leg's endpoint."""
        ep = leg.ep
        log = CallLogAdapter(logger, leg.call.id)
        if ep is None:
            self._fail_caller(leg, 480, self._clock())
            return False
        try:
            size, link = await self.conferences.join(name, ep)
        except MediaError as exc:
            log.warning("media_failed", extra={"error": str(exc)})
            self._fail_caller(leg, 503, self._clock())
            return False
        for x in link or ():
            self._link_eps[(x.worker, x.id)] = leg
        member = ep if link is None else link[1]
        if not self._live(leg):  # hung up while joining: _drop_leg freed only ep
            await self._leave_conference(leg.call, name, member, self._unlink(link))
            return False
        leg.conference, leg.link, leg.joined = name, link, True
        log.info("conference_join", extra={"room": name, "size": size, "worker": ep.worker,
                                           "room_worker": member.worker})
        if link is not None:
            await self._apply_mix(leg.call)  # the leg and the link's near end: a bridge
            if self._live(leg) and leg.answered and self._on_transfer is not None:
                self._on_transfer(leg.call)  # the recording's right side: the room
        return True

    async def _answer_voicemail(self, leg: Leg, arg: str) -> None:
        """Answer the caller and run mailbox ``arg`` on its leg (``BOX`` leaves a message,
        ``*BOX`` is the owner listening)."""
        if not await self._create_answer_endpoint(leg):
            return
        if not self._start_voicemail(leg.call, leg, arg, {}, self._clock()):
            self._end_leg_unanswered(leg, 480, self._clock())

    def _start_voicemail(self, call: Call, leg: Leg, arg: str, variables: Mapping[str, str],
                         now: float) -> bool:
        """Run ``voicemail:ARG`` on the caller's leg (answering it first if needed) in
        ``call.ivr``; False if the box cannot be used."""
        assert leg.ep is not None
        log = CallLogAdapter(logger, call.id)
        if self.voicemail is None:
            log.info("target_unavailable", extra={"target": f"voicemail:{arg}"})
            return False
        try:
            run = VoicemailRun.for_target(
                arg, self.config, leg.ep, self.media, self.voicemail, call_id=call.id,
                caller=call.caller, variables={"called": call.called, **variables},
                clock=self._clock, on_end=lambda action, t: self._ivr_done(call, action, t),
                flush=self._flush, spawn=self._spawn)
        except ValueError as exc:
            log.warning("voicemail_unavailable", extra={"error": str(exc)})
            return False
        call.ivr = run
        if not leg.answered:
            self._send_answer(leg, now)
        run.start(now)
        return True

    async def _ringback(self, leg: Leg) -> None:
        """Ringback to an answered caller while its target rings (stopped by the mix
        once the target answers)."""
        async with leg.call.lock:
            if not self._live(leg) or leg.ep is None or leg.joined:
                return
            try:
                await self.media.play(leg.ep, RINGBACK, loop=True)
            except MediaError:
                return
            leg.prompt = RINGBACK

    async def _local_app(self, leg: Leg) -> None:
        """Echo or a prompt on an already answered leg (an IVR's transfer)."""
        if not await self._start_local_app(leg) and self._live(leg):
            self.hangup(leg.call, self._clock(), "media_failed")

    def _send_answer(self, leg: Leg, now: float) -> None:
        assert leg.local_sdp is not None
        resp = make_response(
            leg.invite, 200, to_tag=leg.local_tag,
            headers=(("Contact", self._contact(leg.peer)), ("Allow", ALLOW),
                     ("Supported", SUPPORTED), ("Server", self.config.sip.user_agent),
                     ("Content-Type", "application/sdp")),
            body=str(leg.local_sdp).encode(),
        )
        if leg.timer_offer is not None:
            leg.timer_offer.apply(resp)
            self._start_session_timer(leg, leg.timer_offer.timer, now)
        leg.dialog = SipDialog.from_uas(leg.invite, resp)
        self.stack.send_response(resp, now)
        leg.answered = True
        leg.answered_at = now
        self._legs_by_txn.pop(leg.txn_key, None)
        call = leg.call
        if call.state is CallState.SETUP:
            call.state = CallState.ANSWERED
            call.answered_at = now
            if self._on_answer is not None:
                self._on_answer(call)

    def _end_leg_unanswered(self, leg: Leg, status: int, now: float) -> None:
        self._reply(leg.invite, status, to_tag=leg.local_tag, now=now)
        leg.call.status = leg.call.status or status
        self._drop_leg(leg)
        self._maybe_end(leg.call, f"sip:{status}", now)

    # -- B2BUA outbound --------------------------------------------------------------
    def _fail_caller(self, a: Leg, status: int, now: float) -> None:
        """The callee cannot be reached: reject the caller, or hang up if answered (IVR)."""
        if not self._live(a):
            return
        if not a.answered:
            self._end_leg_unanswered(a, status, now)
        else:
            a.call.status = a.call.status or status
            self.hangup(a.call, now, f"sip:{status}")

    def _dial_trunk(self, call: Call, a: Leg, name: str, dialled: str, now: float, *,
                    plan: TrunkPlan | None = None, status: int = 503) -> None:
        """Dial ``dialled`` out through the first trunk of ``name`` (``a,b,c``: failover
        order, see :mod:`hotline.trunkselect`) that can take the call: 503 to the caller
        if every one is at its channel limit. With ``plan``, an earlier trunk failed with
        ``status``: dial the plan's next trunk, or fail the caller with ``status``."""
        log = CallLogAdapter(logger, call.id)
        if plan is None:
            plan = self.trunk_select.plan(name)
            for skipped, why in plan.skipped:
                log.info("trunk_skipped", extra={"trunk": skipped, "reason": why})
        trunk = plan.take()
        if trunk is None:
            if not plan.tried:
                log.info("trunk_unavailable", extra={"trunks": name, "full": plan.full})
            self._dial_failed(a, status if plan.tried or plan.full else 404, now)
            return
        if len(plan.tried) > 1:
            log.info("trunk_failover", extra={"trunk": trunk.name, "after": plan.tried[-2],
                                              "status": status})
        ident = outbound_identity(
            trunk, call.caller, from_trunk=call.trunk is not None,
            display=a.invite.from_.display if a.uas else None,
            withheld=a.uas and caller_withheld(a.invite))
        uri = SipUri(scheme="sip", user=dialled, host=uri_host(trunk.host), port=trunk.port)
        self._spawn(self._dial_via_trunk(call, a, trunk, plan, uri, ident))

    async def _dial_via_trunk(self, call: Call, a: Leg, trunk: TrunkConfig, plan: TrunkPlan,
                              uri: SipUri, ident: OutboundIdentity) -> None:
        """:meth:`_dial` through a trunk whose channel :meth:`TrunkPlan.take` counted. The
        leg gives the channel back when it ends; if no leg is made, it goes back here."""
        try:
            await self._dial(call, a, Peer(trunk.transport, trunk.host, trunk.port), uri,
                             ident.number, trunk=trunk, plan=plan, identity=ident)
        finally:
            if not any(x.trunk is trunk and x.trunk_plan is plan for x in call.legs):
                self.trunk_select.release(trunk.name)

    def _fail_over(self, leg: Leg, a: Leg, status: int, cause: int | None, now: float) -> bool:
        """An outbound leg through a trunk failed with ``status``: when that is the trunk's
        failure, not the callee's answer (:func:`should_failover`), dial the route's next
        trunk for the same caller ``a`` and return True."""
        plan = leg.trunk_plan
        if plan is None or leg.cancelled or not should_failover(status, cause=cause):
            return False
        xfer = a.call.xfer
        if xfer is not None and xfer.leg is leg:
            xfer.leg = None  # the next leg becomes the transfer's
        self._dial_trunk(a.call, a, "", leg.invite.uri.user or "", now, plan=plan,
                         status=status)
        return True

    def phone_contact(self, extension: str, now: float) -> tuple[Peer, SipUri] | None:
        """Where extension's phone is registered (its first binding), or None."""
        bindings = self.registrar.lookup(extension, now)
        if not bindings:
            return None
        b = bindings[0]
        uri = SipUri.parse(b.uri)
        src = b.source
        # RFC 5626-lite: reach the phone where its REGISTER came from (NAT-safe).
        peer = (Peer(src.transport, src.ip, src.port) if src is not None
                else Peer(uri.transport, uri.host_bare, uri.port or 5060))
        return peer, uri

    def _dial_agent(self, call: Call, a: Leg, agent_id: str, now: float) -> None:
        contact = self.phone_contact(agent_id, now)
        if contact is None:
            self._dial_failed(a, 480, now)
            return
        peer, uri = contact
        self._spawn(self._dial(call, a, peer, uri, call.caller, user=agent_id))

    async def _dial(self, call: Call, a: Leg | None, peer: Peer, uri: SipUri, caller: str,
                    user: str | None = None, *, trunk: TrunkConfig | None = None,
                    plan: TrunkPlan | None = None,
                    identity: OutboundIdentity | None = None, offer: bool = False,
                    extra_headers: tuple[tuple[str, str], ...] = (),
                    display: str | None = None,
                    monitor: tuple[str, str] | None = None) -> None:
        """Create both legs' endpoints, then send the INVITE toward the callee (with
        ``identity``'s From, P-Asserted-Identity and Privacy when going out a trunk).
        ``offer``: the leg rings an agent for a queue call (the ACD handles its failure);
        without ``a`` it is the first leg of a queue callback."""
        if a is not None and a.ep is None and not await self._create_answer_endpoint(a):
            return
        host, _ = self._host_for(peer)
        # a browser phone's leg is a loopback hop between two workers: a small buffer
        jitter = LOOPBACK_JITTER_MIN_MS if user is not None and any(
            b.uri == str(uri) and is_web_phone(b.instance)
            for b in self.registrar.lookup(user, self._clock())) else None
        try:
            ep, sdp_offer = await self.media.offer(call.media_key, host, jitter_min_ms=jitter)
        except MediaError:
            if offer and user is not None:
                self.queue_calls.offer_failed(call, user, self._clock())
            elif a is not None:
                self._dial_failed(a, 503, self._clock())
            return
        if a is not None and not self._live(a):
            await self.media.destroy(ep)
            return
        now = self._clock()
        call_id = secrets.token_hex(12) + "@hotline"
        tag = new_tag()
        invite = SipRequest("INVITE", uri)
        invite.add("Max-Forwards", "70")
        if identity is not None:
            invite.add("From", identity.from_header(tag))
            for name, value in identity.headers:
                invite.add(name, value)
        else:
            name = f'"{display}" ' if display else ""
            invite.add("From", f"{name}<sip:{caller}@{uri_host(host)}>;tag={tag}")
        invite.add("To", f"<{uri}>")
        invite.add("Call-ID", call_id)
        invite.add("CSeq", "1 INVITE")
        invite.add("Contact", self._contact(peer))
        invite.add("Allow", ALLOW)
        invite.add("Supported", SUPPORTED)
        invite.add("User-Agent", self.config.sip.user_agent)
        for name, value in extra_headers:
            invite.add(name, value)
        if user is not None:  # our own phones: which call this is (browser phones show it)
            invite.add("X-Hotline-Call", call.id)
        if monitor is not None:
            invite.add("X-Hotline-Monitor", f"{monitor[0]} {monitor[1]}")
        SessionTimerRequest.initial().apply(invite)
        invite.add("Content-Type", "application/sdp")
        invite.body = str(sdp_offer).encode()
        b = Leg(call=call, peer=peer, uas=False, call_id=call_id, local_tag=tag,
                invite=invite, local_host=host, ep=ep, local_sdp=sdp_offer, created=now,
                user=user, partner=a, trunk=trunk, trunk_plan=plan, offer=offer)
        if monitor is not None:  # a supervisor's phone rung from the API
            b.monitor, b.monitor_of = monitor
        self.add_via(invite, peer)
        b.txn_key = self.stack.send_request(invite, peer, now)
        call.legs.append(b)
        self._legs[(call_id, tag)] = b
        self._legs_by_txn[b.txn_key] = b
        self._legs_by_ep[(ep.worker, ep.id)] = b
        if (call.xfer is not None and a is not None and call.xfer.transferee is a
                and call.xfer.leg is None):
            call.xfer.leg = b
        self.queue_calls.leg_started(b, now)

    def _dial_failed(self, a: Leg, status: int, now: float) -> None:
        """An outbound leg dialled for ``a`` failed with ``status``."""
        xfer = a.call.xfer
        if xfer is not None and xfer.transferee is a:
            self._transfer_failed(a.call, status, now)
        else:
            self._fail_caller(a, status, now)

    def _handle_response(self, response: SipResponse, key: TransactionKey, retrans: bool,
                         now: float) -> None:
        if key in self._refreshes:
            if response.status >= 200:
                self._refreshed(self._refreshes.pop(key), response, now)
            return
        leg = self._legs_by_txn.get(key)
        if leg is None:
            leg = self._legs.get((response.call_id, response.from_tag or ""))
            if leg is not None and retrans and 200 <= response.status < 300 and leg.dialog:
                # 2xx retransmission: our ACK was lost (RFC 3261 §13.2.2.4).
                self.stack.send_ack(leg.dialog.create_ack(response), leg.peer, now)
            return
        _, method = response.cseq
        if method != "INVITE":
            if response.status >= 200:
                self._legs_by_txn.pop(key, None)
                if leg.bye_sent:
                    self._drop_leg(leg)
                    self._maybe_end(leg.call, leg.call.cause or "normal", now)
            return
        a = leg.partner
        status = response.status
        if status < 200:
            if a is not None and not a.answered and status > 100 and self._live(a):
                if response.body and response.content_type == "application/sdp":
                    if not leg.early:  # the far end's audio before the answer (RFC 3960)
                        leg.early = True
                        self._spawn(self._early_media(a, leg, response))
                else:
                    self._reply(a.invite, 180 if status == 180 else 183, to_tag=a.local_tag,
                                headers=(("Contact", self._contact(a.peer)),), now=now)
            xfer = leg.call.xfer
            if xfer is not None and xfer.leg is leg and status > 100:
                self._notify_transferor(xfer, status, now)
            return
        self._legs_by_txn.pop(key, None)
        if status < 300:
            leg.dialog = SipDialog.from_uac(leg.invite, response)
            self.stack.send_ack(leg.dialog.create_ack(response), leg.peer, now)
            leg.peer_allow = response
            try:
                self._start_session_timer(
                    leg, SessionTimerRequest.initial().negotiated(response), now)
            except ProtocolError:
                pass  # a malformed Session-Expires in their 2xx: no timer, the call goes on
            leg.answered = True
            leg.answered_at = now
            leg.status = status
            if leg.cancelled or (a is None and not leg.offer) or (
                    a is not None and not self._live(a)):
                self._send_bye(leg, now)
                return
            if leg.offer and not self.queue_calls.agent_answered(leg, now):
                self._send_bye(leg, now)  # the offer was withdrawn as the phone answered
                return
            if a is None:  # a queue callback's agent answered: now dial the customer
                self._spawn(self.queue_calls.callback_answered(leg, response))
                return
            self._spawn(self._connect(a, leg, response))
            return
        if status in (401, 407) and leg.trunk is not None and not leg.cancelled:
            # The carrier's digest challenge (RFC 3261 §22.2): answer it once.
            retry = authorize(leg.invite, response, leg.trunk)
            if retry is not None:
                self.add_via(retry, leg.peer)
                leg.invite = retry
                leg.txn_key = self.stack.send_request(retry, leg.peer, now)
                self._legs_by_txn[leg.txn_key] = leg
                return
        # Final failure from the far end: the next trunk if it is the trunk's failure,
        # else pass the status to the caller (auth challenges from the carrier become
        # 503: our credentials are not the caller's business).
        leg.status = status
        self._drop_leg(leg)
        if leg.offer:
            self.queue_calls.agent_failed(leg, status, now)
            return
        if a is not None and self._live(a):
            failed = 503 if status in (401, 407) else status
            if self._fail_over(leg, a, failed, q850_cause(response.get_all("reason")), now):
                return
            if a.call.xfer is None:
                a.call.status = status
            self._dial_failed(a, failed, now)
        else:
            self._maybe_end(leg.call, leg.call.cause or f"sip:{status}", now)

    async def _early_media(self, a: Leg, b: Leg, response: SipResponse) -> None:
        """The callee sent 18x with SDP (ringback, an announcement): bridge its audio to
        the caller now and send the caller 183 with our SDP, so the caller hears what
        the far end plays before it answers (RFC 3960 gateway model)."""
        assert b.ep is not None and b.local_sdp is not None
        try:
            remote = sdplib.SessionDescription.parse(response.body.decode("utf-8", "replace"))
            async with a.call.lock:
                b.media = await self.media.accept_answer(b.ep, b.local_sdp, remote)
                if not (self._live(a) and self._live(b)) or a.answered or a.ep is None:
                    return
                await self.media.room(a.call.id, [a.ep, b.ep])
                a.room = b.room = a.call.id
        except (ProtocolError, MediaError) as exc:
            CallLogAdapter(logger, a.call.id).info("early_media_failed", extra={"error": str(exc)})
            return
        if self._live(a) and not a.answered and a.local_sdp is not None:
            self._reply(a.invite, 183, to_tag=a.local_tag, headers=(
                ("Contact", self._contact(a.peer)), ("Content-Type", "application/sdp")),
                body=str(a.local_sdp).encode(), now=self._clock())
            CallLogAdapter(logger, a.call.id).info("early_media")

    async def _connect(self, a: Leg, b: Leg, response: SipResponse) -> None:
        """The callee answered: point its endpoint at the answer, bridge, answer the caller."""
        assert b.ep is not None and a.ep is not None and b.local_sdp is not None
        try:
            b.remote_sdp = sdplib.SessionDescription.parse(
                response.body.decode("utf-8", "replace"))
            b.media = await self.media.accept_answer(b.ep, b.local_sdp, b.remote_sdp)
        except (ProtocolError, MediaError) as exc:
            CallLogAdapter(logger, a.call.id).warning("bridge_failed", extra={"error": str(exc)})
            now = self._clock()
            self._send_bye(b, now)
            self._dial_failed(a, 488 if isinstance(exc, ProtocolError) else 500, now)
            return
        call = a.call
        now = self._clock()
        if not (self._live(a) and self._live(b)):
            self._send_bye(b, now)
            return
        a.joined = b.joined = True
        await self._apply_mix(call)
        now = self._clock()
        if not self._live(a):
            self._send_bye(b, now)
        elif not a.answered:
            self._send_answer(a, now)
        elif call.callback:
            self.queue_calls.callback_connected(call, b, now)
        elif b.monitor is not None:
            self._audit_supervision(b, b.monitor, now)
        else:
            # An IVR's caller or a transferee, answered before: now bridged to its target.
            xfer = call.xfer
            if xfer is not None and xfer.leg is b:
                call.xfer = None
                call.target = xfer.target
                if xfer.transferor.user is not None and xfer.transferor.user == call.agent:
                    self.queue_calls.transferred(call, str(xfer.target), now)
                self._notify_transferor(xfer, 200, now)
                if self._live(xfer.transferor):
                    self._send_bye(xfer.transferor, now)
            CallLogAdapter(logger, call.id).info("transferred", extra={
                "target": str(call.target)})
            if a.uas and call.silent_config is not None and call.silent is None:
                await self._arm_silent_rule(call, a, now)
            if self._on_transfer is not None:
                self._on_transfer(call)

    def _handle_timeout(self, key: TransactionKey | None, now: float) -> None:
        refreshed = self._refreshes.pop(key, None)
        if refreshed is not None:  # the refresh got no answer: the peer is gone
            self._end_leg(refreshed, "session_refresh_failed", now)
            return
        leg = self._legs_by_txn.pop(key, None)
        if leg is None:
            return
        a = leg.partner
        self._drop_leg(leg)
        if leg.uas:
            self._leg_gone(leg, "transport", now)
        elif leg.offer and not leg.answered:
            self.queue_calls.agent_failed(leg, 408, now)
        elif leg.bye_sent:
            self._maybe_end(leg.call, leg.call.cause or "normal", now)
        elif a is not None and self._live(a):
            if not self._fail_over(leg, a, 408, None, now):
                self._dial_failed(a, 408, now)
        else:
            self._maybe_end(leg.call, "timeout", now)

    def _handle_cancel(self, key: TransactionKey | None, now: float) -> None:
        leg = self._legs_by_txn.get(key)
        if leg is None or leg.answered:
            return
        leg.call.cause = "cancel"
        self._legs_by_txn.pop(key, None)
        self._reply(leg.invite, 487, to_tag=leg.local_tag, now=now)
        self._drop_leg(leg)
        self._leg_gone(leg, "cancel", now)

    def _handle_ack_timeout(self, call_id: str, now: float) -> None:
        for leg in [x for x in self._legs.values() if x.call_id == call_id and x.uas]:
            self.hangup(leg.call, now, "ack_timeout")

    # -- in-dialog -----------------------------------------------------------------
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
            self._drop_leg(leg)
            self._leg_gone(leg, "caller_bye" if leg.uas else "callee_bye", now)
        elif method == "INVITE":
            self._handle_reinvite(leg, request, now)
        elif method == "REFER":
            self._handle_refer(leg, request, now)
        elif method == "UPDATE":
            decision = self._refresh_received(leg, request, now)
            if decision is not None:
                self._reply(request, 200, headers=decision.headers, now=now)
        elif method in ("OPTIONS", "INFO", "NOTIFY"):
            self._reply(request, 200, now=now)
        else:
            self._reply(request, 501, headers=(("Allow", ALLOW),), now=now)

    def _handle_reinvite(self, leg: Leg, request: SipRequest, now: float) -> None:
        """Re-INVITE (target refresh, hold/resume, session refresh): answer on the same
        endpoint."""
        if any(x is leg and k.method == "INVITE" for k, x in self._refreshes.items()
               if isinstance(k, TransactionKey)):
            # Glare: our own re-INVITE is pending on this dialog (RFC 3261 §14.2).
            self._reply(request, 491, now=now)
            return
        decision = self._refresh_received(leg, request, now)
        if decision is None:
            return
        headers: tuple[tuple[str, str], ...] = (
            ("Contact", self._contact(leg.peer)), *decision.headers)
        if not request.body or leg.ep is None:
            body = str(leg.local_sdp).encode() if leg.local_sdp is not None else b""
            if body:
                headers += (("Content-Type", "application/sdp"),)
            self._reply(request, 200, headers=headers, body=body, now=now)
            return
        try:
            offer = sdplib.SessionDescription.parse(request.body.decode("utf-8", "replace"))
        except ProtocolError:
            self._reply(request, 488, now=now)
            return
        self._spawn(self._reanswer(leg, request, offer, headers))

    async def _reanswer(self, leg: Leg, request: SipRequest,
                        offer: sdplib.SessionDescription,
                        headers: tuple[tuple[str, str], ...]) -> None:
        assert leg.ep is not None
        leg.sdp_version += 1
        session_id = int(leg.local_sdp.origin.session_id) if leg.local_sdp else 0
        try:
            answer, negotiated = await self.media.reanswer(
                leg.ep, offer, leg.local_host, session_id, leg.sdp_version)
        except (ProtocolError, MediaError):
            self._reply(request, 488, now=self._clock())
            return
        leg.remote_sdp, leg.local_sdp, leg.media = offer, answer, negotiated
        self._reply(request, 200, headers=headers + (("Content-Type", "application/sdp"),),
                    body=str(answer).encode(), now=self._clock())
        held = sdplib.is_hold(offer)
        if held != leg.held and self._live(leg):
            leg.held = held
            self.queue_calls.held(leg, held, self._clock())
            CallLogAdapter(logger, leg.call.id).info("hold" if held else "resume", extra={
                "leg": "caller" if leg.uas else "callee"})
            await self._apply_mix(leg.call)

    # -- commands (HTTP API) --------------------------------------------------------
    def find_call(self, call_id: str) -> Call | None:
        """A live call by its id (the caller's Call-ID)."""
        return next((c for c in self.calls.values() if c.id == call_id), None)

    def agent_leg(self, call: Call, agent: str | None = None) -> Leg | None:
        """The live, answered leg of extension ``agent`` in ``call`` (any extension's
        but the caller's when ``agent`` is None)."""
        for i, leg in enumerate(call.legs):
            if (self._live(leg) and leg.answered and leg.joined and leg.user is not None
                    and leg.monitor is None
                    and (leg.user == agent if agent is not None else i > 0)):
                return leg
        return None

    def set_parked(self, leg: Leg, on: bool) -> None:
        """API hold: the others hear music on hold while ``leg`` is out of the talk."""
        if leg.parked != on:
            leg.parked = on
            self.queue_calls.held(leg, on, self._clock())
            CallLogAdapter(logger, leg.call.id).info("hold" if on else "resume",
                                                     extra={"leg": leg.user, "by": "api"})
            self._remix(leg.call)

    def set_muted(self, leg: Leg, on: bool) -> None:
        """API mute: the others stop hearing ``leg`` (the recording still has it)."""
        if leg.muted != on:
            leg.muted = on
            CallLogAdapter(logger, leg.call.id).info("mute" if on else "unmute",
                                                     extra={"leg": leg.user})
            self._remix(leg.call)

    def transfer(self, leg: Leg, number: str, now: float) -> str | None:
        """API blind transfer of ``leg``'s other party to ``number``; None when started,
        else why it cannot be."""
        transferee = self._transferee(leg)
        if transferee is None:
            return "transfer needs a two-party call"
        route = self._transfer_route(leg, number)
        if route is None:
            return f"no agent or trunk route for {number}"
        self._blind_transfer(leg, transferee, route, number, now)
        self._flush()
        return None

    def now(self) -> float:
        """The loop clock call control runs on."""
        return self._clock()

    def log_recording_pause(self, call: Call, paused: bool) -> None:
        """Audit a recording pause or resume (who asked is in the API's access log)."""
        CallLogAdapter(logger, call.id).info(
            "recording_paused" if paused else "recording_resumed",
            extra={"recording": call.recording_id})

    def audit(self, actor: str, action: str, target: str, call_id: str) -> None:
        """Keep an action taken on someone else's call or state (supervisors)."""
        if self.on_audit is not None:
            self.on_audit(actor, action, target, call_id)

    def end_call(self, call: Call, cause: str, by: str | None = None) -> None:
        """Hang up a whole call from our side and send what that takes; ``by`` is the
        agent who asked (the queue log then says the agent ended it)."""
        if by is not None and call.first_gone is None:
            call.first_gone = by
        self.hangup(call, self._clock(), cause)
        self._flush()

    def send_dtmf(self, leg: Leg, digits: str) -> str | None:
        """API DTMF: play ``digits`` to the others in ``leg``'s conversation, as if its
        phone had pressed them (RFC 4733 where they negotiated telephone-event, in-band
        otherwise; the worker spaces them). None when sent, else why not."""
        others = [x for x in leg.call.legs
                  if x is not leg and x.joined and x.ep is not None and self._live(x)
                  and x.monitor is None]
        if not leg.joined or not others:
            return "nobody to send digits to"
        for other in others:
            assert other.ep is not None
            self._spawn(self._send_digit(leg.call, other.ep, digits, 100))
        # Not the digits: they may be a card number (PCI DSS).
        CallLogAdapter(logger, leg.call.id).info("dtmf_sent", extra={
            "leg": leg.user, "count": len(digits)})
        return None

    def agents_in(self, call: Call) -> list[str]:
        """The extensions with a live leg in ``call`` (who may see it through the API)."""
        return [x.user for x in call.legs if x.user is not None and self._live(x)]

    def describe(self, call: Call, *, monitors: bool = True) -> dict[str, object]:
        """A live call as the API shows it; without ``monitors`` (for agents), supervisors'
        legs are left out: an agent cannot tell it is being listened to."""
        now = self._clock()
        return {
            "id": call.id, "caller": call.caller, "called": call.called,
            "route": str(call.route or call.target), "target": str(call.target),
            "state": call.state.value, "queue": call.queue, "agent": call.agent,
            "answered_seconds": round(now - call.answered_at, 1) if call.answered_at else None,
            "recording_id": call.recording_id, "recording_paused": call.recording_paused,
            "legs": [{"agent": x.user, "caller": i == 0, "answered": x.answered,
                      "held": x.held or x.parked, "muted": x.muted,
                      **({"monitor": x.monitor, "monitor_of": x.monitor_of}
                         if x.monitor is not None else {})}
                     for i, x in enumerate(call.legs)
                     if self._live(x) and (monitors or x.monitor is None)],
        }

    # -- the silent-call rule ---------------------------------------------------------
    async def _arm_silent_rule(self, call: Call, caller: Leg, now: float) -> None:
        """The caller is through to a person: start listening for their voice."""
        assert call.silent_config is not None and caller.ep is not None
        try:
            await self.media.set_vad(caller.ep, True)
        except MediaError:
            return  # no VAD, no rule: never hang up a caller we could not listen to
        call.silent = SilentCallRule(call.silent_config[1], now)
        self._arm_silent_timer(call)

    def _arm_silent_timer(self, call: Call) -> None:
        if call.silent_handle is not None:
            call.silent_handle.cancel()
            call.silent_handle = None
        deadline = call.silent.next_deadline() if call.silent is not None else None
        if deadline is not None and call.state is not CallState.ENDED:
            call.silent_handle = asyncio.get_running_loop().call_at(
                deadline, self._silent_timer_fired, call)

    def _caller_heard(self, call: Call) -> None:
        if call.silent is not None and call.silent.active:
            call.silent.heard()
            CallLogAdapter(logger, call.id).info("caller_heard")
            self._arm_silent_timer(call)

    def _silent_timer_fired(self, call: Call) -> None:
        call.silent_handle = None
        if call.silent is None or call.state is CallState.ENDED:
            return
        now = self._clock()
        action = call.silent.on_timer(now)
        caller = call.legs[0]
        log = CallLogAdapter(logger, call.id)
        if action is SilentAction.PROMPT and self._live(caller) and caller.ep is not None:
            assert call.silent_config is not None
            log.info("silent_call_prompt")
            self._spawn(self._play_quietly(call, caller.ep, call.silent_config[0]))
        elif action is SilentAction.HANGUP:
            log.info("silent_call_hangup")
            self.hangup(call, now, "silent_call")
        self._arm_silent_timer(call)
        self._flush()

    async def _play_quietly(self, call: Call, ep: EndpointHandle, prompt: str) -> None:
        try:
            await self.media.play(ep, prompt)
        except MediaError as exc:
            CallLogAdapter(logger, call.id).warning("media_failed", extra={"error": str(exc)})

    # -- session timers (RFC 4028) -----------------------------------------------------
    def _refresh_received(self, leg: Leg, request: SipRequest,
                          now: float) -> UasTimerDecision | None:
        """A re-INVITE/UPDATE from the peer: negotiate its session timer and restart
        ours (any 2xx refreshes the session). None if we answered it already (422/400)."""
        try:
            decision = negotiate_uas(request)
        except ProtocolError as exc:
            self._reply(request, exc.status_hint, now=now)
            return None
        if decision.status is not None:
            self._reply(request, decision.status, headers=decision.headers, now=now)
            return None
        if decision.timer is not None or leg.timer is not None:
            self._start_session_timer(leg, decision.timer, now)
        return decision

    def _start_session_timer(self, leg: Leg, timer: SessionTimer | None, now: float) -> None:
        if leg.timer_handle is not None:
            leg.timer_handle.cancel()
            leg.timer_handle = None
        leg.timer = timer
        if timer is None:
            return
        delay = timer.next_deadline(now) - now
        leg.timer_handle = asyncio.get_running_loop().call_at(
            self._clock() + delay, self._session_timer_fired, leg)

    def _session_timer_fired(self, leg: Leg) -> None:
        leg.timer_handle = None
        now = self._clock()
        timer = leg.timer
        if timer is None or not self._live(leg) or leg.bye_sent or leg.dialog is None:
            return
        try:
            if timer.local_refresher:
                self._send_refresh(leg, timer, now)
            else:
                CallLogAdapter(logger, leg.call.id).info("session_expired")
                self._end_leg(leg, "session_expired", now)
        finally:
            self._flush()

    def _send_refresh(self, leg: Leg, timer: SessionTimer, now: float) -> None:
        """Refresh the session: UPDATE if the peer allows it, else re-INVITE with our
        unchanged SDP. If no 2xx comes by the expiry, the leg ends."""
        assert leg.dialog is not None
        method = refresh_method(leg.peer_allow) if leg.peer_allow is not None else "INVITE"
        headers = [("Contact", self._contact(leg.peer)), ("Supported", SUPPORTED)]
        body = b""
        if method == "INVITE" and leg.local_sdp is not None:
            headers.append(("Content-Type", "application/sdp"))
            body = str(leg.local_sdp).encode()
        request = leg.dialog.create_request(method, body=body, headers=headers)
        request.set("Max-Forwards", "70")
        timer.refresh_request().apply(request)
        self.add_via(request, leg.peer)
        key = self.stack.send_request(request, leg.peer, now)
        self._refreshes[key] = leg
        # Backstop: if no refresh succeeds before the expiry, give up on the leg.
        leg.timer_handle = asyncio.get_running_loop().call_at(
            self._clock() + timer.expire_at(now) - now - timer.interval / 2,
            self._refresh_expired, leg)

    def _refresh_expired(self, leg: Leg) -> None:
        leg.timer_handle = None
        if self._live(leg) and not leg.bye_sent:
            self._end_leg(leg, "session_refresh_failed", self._clock())
            self._flush()

    def _refreshed(self, leg: Leg, response: SipResponse, now: float) -> None:
        """The answer to our refresh."""
        if not self._live(leg) or leg.dialog is None:
            return
        _, method = response.cseq
        status = response.status
        if method == "INVITE" and 200 <= status < 300:
            self.stack.send_ack(leg.dialog.create_ack(response), leg.peer, now)
        timer = leg.timer
        if 200 <= status < 300 and timer is not None:
            try:
                agreed = timer.refresh_request().negotiated(response) or timer
            except ProtocolError:
                agreed = timer
            self._start_session_timer(leg, agreed, now)
        elif status in (408, 481):  # RFC 4028 §10: the session is gone
            self._end_leg(leg, "session_refresh_failed", now)
        elif status == 491 and timer is not None:  # glare: retry in a moment (§14.1)
            if leg.timer_handle is not None:
                leg.timer_handle.cancel()
            leg.timer_handle = asyncio.get_running_loop().call_at(
                self._clock() + 2.0 + secrets.randbelow(2000) / 1000,
                self._session_timer_fired, leg)
        # Other failures: the backstop set when the refresh was sent ends the leg at
        # the expiry unless a later refresh (theirs or ours) succeeds.

    def _end_leg(self, leg: Leg, cause: str, now: float) -> None:
        """End one leg from our side; the rest of the call follows the usual rules."""
        leg.call.cause = leg.call.cause or cause
        self._send_bye(leg, now)
        self._leg_gone(leg, cause, now)

    # -- transfer and conference -------------------------------------------------------
    def _handle_refer(self, leg: Leg, request: SipRequest, now: float) -> None:
        """REFER in an answered call: blind transfer, or attended with Replaces (RFC
        3515, RFC 3891 §6.1). The transferee is the one other leg in the conversation."""
        log = CallLogAdapter(logger, leg.call.id)
        try:
            refer = ReferRequest.from_request(request)
        except ProtocolError as exc:
            self._reply(request, exc.status_hint,
                        headers=(("Warning", f'399 hotline "{exc}"'),), now=now)
            return
        transferee = self._transferee(leg)
        if transferee is None:
            self._reply(request, 403, headers=(
                ("Warning", '399 hotline "transfer needs a two-party call"'),), now=now)
            return
        if refer.refer_to.replaces is not None:
            self._attended_transfer(leg, request, refer, now)
            return
        dialled = refer.refer_to.uri.user or ""
        route = self._transfer_route(leg, dialled)
        if route is None:
            log.info("transfer_refused", extra={"target": dialled})
            self._reply(request, 404, now=now)
            return
        self._reply(request, 202, headers=tuple(refer.accept_headers()), now=now)
        self._blind_transfer(leg, transferee, route, dialled, now,
                             event_id=refer.event_id, subscribe=refer.subscribe)

    def _transferee(self, leg: Leg) -> Leg | None:
        """The one other party of ``leg``'s two-party conversation (None otherwise)."""
        call = leg.call
        others = [x for x in call.legs if x is not leg and x.joined and self._live(x)]
        if not leg.joined or len(others) != 1 or call.xfer is not None:
            return None
        return others[0]

    def _transfer_route(self, leg: Leg, dialled: str) -> RouteConfig | None:
        """The route a transfer by ``leg`` to ``dialled`` takes, as if the transferor
        dialled it (its permissions apply); only agents and trunks are transfer targets."""
        route = self._route(dialled, leg.call.caller, leg.user, from_trunk=leg.user is None)
        if route is None or route.to.kind not in ("agent", "trunk"):
            return None
        return route

    def _blind_transfer(self, leg: Leg, transferee: Leg, route: RouteConfig, dialled: str,
                        now: float, *, event_id: str = "", subscribe: bool = False) -> None:
        call = leg.call
        target = route.to
        xfer = BlindTransfer(leg, transferee, event_id, subscribe, target)
        call.xfer = xfer
        self._notify_transferor(xfer, 100, now)
        CallLogAdapter(logger, call.id).info("blind_transfer", extra={"target": str(target)})
        # The transferor leaves the conversation; the transferee hears ringback.
        leg.joined = False
        self._remix(call)
        if target.kind == "agent":
            self._dial_agent(call, transferee, target.arg or "", now)
        else:
            self._dial_trunk(call, transferee, target.arg or "",
                             rewrite(dialled, route.strip, route.prepend), now)

    def _notify_transferor(self, xfer: BlindTransfer, status: int, now: float) -> None:
        self._notify_refer(xfer.transferor, xfer.event_id, xfer.subscribe, status, now)

    def _notify_refer(self, leg: Leg, event_id: str, subscribe: bool, status: int,
                      now: float) -> None:
        """NOTIFY the progress of ``leg``'s REFER (RFC 3515 §2.4.4), unless it asked for
        none (RFC 4488) or its dialog is over."""
        if not subscribe or leg.dialog is None or not self._live(leg) or leg.bye_sent:
            return
        notify = build_refer_notify(leg.dialog, event_id, status)
        notify.set("Max-Forwards", "70")
        self.add_via(notify, leg.peer)
        self.stack.send_request(notify, leg.peer, now)

    def _transfer_failed(self, call: Call, status: int, now: float) -> None:
        """The transfer target did not answer: back to the transferor, if still there."""
        xfer = call.xfer
        assert xfer is not None
        call.xfer = None
        CallLogAdapter(logger, call.id).info("transfer_failed", extra={"status": status})
        self._notify_transferor(xfer, status if status >= 300 else 500, now)
        if self._live(xfer.transferor) and not xfer.transferor.bye_sent:
            xfer.transferor.joined = True
            self._remix(call)
        else:
            self.hangup(call, now, "transfer_failed")

    def _attended_transfer(self, leg: Leg, request: SipRequest,
                           refer: ReferRequest, now: float) -> None:
        """The transferor (``leg``) talks to the target in another call (the dialog the
        Replaces names): join the transferee and the target, release the transferor's
        two legs."""
        replaces = refer.refer_to.replaces
        assert replaces is not None
        replaced = next((x for x in self._legs.values()
                         if x.dialog is not None and replaces.matches(x.dialog)), None)
        if replaced is None or replaced.call is leg.call or not replaced.joined:
            self._reply(request, 481 if replaced is None else 403, now=now)
            return
        if not self._merge(leg.call, replaced.call, drop=(leg, replaced), now=now,
                           cause="transferred", retarget=True):
            self._reply(request, 488, headers=(
                ("Warning", '399 hotline "the calls are on different media workers"'),),
                now=now)
            return
        self._reply(request, 202, headers=tuple(refer.accept_headers()), now=now)
        self._notify_refer(leg, refer.event_id, refer.subscribe, 200, now)
        CallLogAdapter(logger, leg.call.id).info("attended_transfer", extra={
            "joined": replaced.call.id})

    def _merge(self, into: Call, other: Call, drop: tuple[Leg, ...], now: float, *,
               cause: str, retarget: bool = False) -> bool:
        """Move ``other``'s conversation into ``into`` (one room, one recording), BYE the
        legs in ``drop``; ``other`` ends with ``cause`` when its last leg goes. With
        ``retarget``, an extension among the moved legs becomes the call's agent. False
        if the two calls' media live in different workers (they cannot share a room)."""
        moving = [x for x in other.legs if self._live(x) and x.joined and x not in drop]
        eps = [x.ep for x in into.legs + moving if self._live(x) and x.ep is not None]
        if not moving or len({e.worker for e in eps}) > 1:
            return False
        for c in (into, other):  # the queue call's agent hands over (attended transfer)
            if c.agent is not None and any(x.user == c.agent for x in drop):
                self.queue_calls.transferred(c, "attended", now)
        for x in moving:
            other.legs.remove(x)
            into.legs.append(x)
            x.call = into
            if retarget and x.user is not None:
                into.target = Target("agent", x.user)
        other.cause = other.cause or cause
        for x in drop:
            x.joined = False
        self._remix(into)
        for x in drop:
            self._send_bye(x, now)
        self._maybe_end(other, cause, now)
        if self._on_transfer is not None:
            self._on_transfer(into)
        return True

    def _feature_digit(self, leg: Leg, digit: str, now: float) -> None:
        """In-call feature codes from an extension's phone: ``*3`` joins the call the
        extension put on hold into this one (three-way conference)."""
        if now - leg.digits_at > FEATURE_DIGIT_GAP:
            leg.digits = ""
        leg.digits = (leg.digits + digit)[-len(THREE_WAY_CODE):]
        leg.digits_at = now
        if leg.digits != THREE_WAY_CODE or leg.user is None or not leg.joined:
            return
        leg.digits = ""
        held = next((x for x in self._legs.values()
                     if x.user == leg.user and x.call is not leg.call and x.held
                     and x.joined and x.call.state is CallState.ANSWERED), None)
        log = CallLogAdapter(logger, leg.call.id)
        if held is None:
            log.info("three_way_refused", extra={"reason": "no held call"})
            return
        if self._merge(held.call, leg.call, drop=(held,), now=now, cause="conferenced"):
            log.info("three_way", extra={"joined": held.call.id})
        else:
            log.info("three_way_refused", extra={"reason": "different media workers"})

    def _monitor_digit(self, leg: Leg, digit: str, now: float) -> None:
        """A supervisor's DTMF: 4 listen, 5 whisper, 6 barge, 7 take over."""
        mode = supervision.MODE_KEYS.get(digit)
        if mode is None and digit == supervision.TAKE_OVER_KEY:
            mode = "take_over"
        if mode is not None:
            self.set_monitor(leg, mode, now)

    def _relay_digit(self, leg: Leg, digit: str, duration_ms: int) -> None:
        """Pass an RFC 4733 digit on to the others in the conversation: as RFC 4733 where
        they negotiated telephone-event, in-band tones otherwise (the worker chooses). An
        in-band digit needs nothing: it is in the audio they already hear."""
        for other in leg.call.legs:
            if other is not leg and other.joined and other.ep is not None and self._live(other):
                self._spawn(self._send_digit(leg.call, other.ep, digit, duration_ms))

    async def _send_digit(self, call: Call, ep: EndpointHandle, digit: str,
                          duration_ms: int) -> None:
        try:
            await self.media.pool.dtmf_send(ep, digit, duration_ms=max(60, min(duration_ms, 500)))
        except MediaError as exc:
            CallLogAdapter(logger, call.id).warning("dtmf_relay_failed", extra={"error": str(exc)})

    # -- mixing --------------------------------------------------------------------------
    def _remix(self, call: Call) -> None:
        self._spawn(self._apply_mix(call))

    async def _apply_mix(self, call: Call) -> None:
        """Put the call's room in the worker in line with its legs: everyone joined and
        not holding hears everyone else (and the rooms in other workers some of them are
        linked to: a conference); a leg left alone hears music on hold (or ringback while
        a transfer target rings)."""
        async with call.lock:
            live = [x for x in call.legs if self._live(x) and x.ep is not None]
            talking = [x for x in live if x.joined and not (x.held or x.parked)]
            links = [x.link[0] for x in talking if x.link is not None]
            try:
                for x in talking:
                    if x.room is not None and x.room != call.id:
                        await self.media.room(x.room, [])
                        x.room = None
                if len(talking) + len(links) >= 2:
                    eps = [x.ep for x in talking if x.ep is not None] + links
                    hears = {x.ep: [y.ep for y in talking if y is not x and not y.muted
                                    and y.ep is not None and supervision.audible(y, x)] + links
                             for x in talking if x.ep is not None}
                    for a in links:  # what the other room hears: as a party of the call
                        hears[a] = [y.ep for y in talking if y.ep is not None and not y.muted
                                    and y.monitor in (None, "barge")]
                    await self.media.room(call.id, eps, hears=hears)
                    for x in talking:
                        x.room = call.id
                elif any(x.room == call.id for x in live):
                    await self.media.room(call.id, [])
                    for x in live:
                        x.room = None
                alone = talking[0] if len(talking) == 1 and not links else None
                want: dict[int, str | None] = {id(x): None for x in live}
                if alone is not None and (call.xfer is not None
                                          or any((x.held or x.parked) and x.joined for x in live)):
                    want[id(alone)] = RINGBACK if call.xfer is not None else self.moh
                if call.hold_prompt is not None:
                    for x in live:
                        if x.uas and not x.joined:
                            want[id(x)] = call.hold_prompt
                for x in live:
                    prompt = want[id(x)]
                    if x.prompt == prompt or x.ep is None:
                        continue
                    if prompt is None:
                        await self.media.stop_play(x.ep)
                    else:
                        await self.media.play(x.ep, prompt, loop=True)
                    x.prompt = prompt
            except MediaError as exc:
                CallLogAdapter(logger, call.id).warning("mix_failed", extra={"error": str(exc)})

    def _send_bye(self, leg: Leg, now: float) -> None:
        if leg.bye_sent:
            return
        if leg.dialog is None:
            self._drop_leg(leg)
            return
        leg.bye_sent = True
        leg.joined = False
        bye = leg.dialog.create_request("BYE")
        bye.set("Max-Forwards", "70")
        self.add_via(bye, leg.peer)
        key = self.stack.send_request(bye, leg.peer, now)
        self._legs_by_txn[key] = leg

    def hangup(self, call: Call, now: float, cause: str = "hangup") -> None:
        """End a call from our side (API, shutdown): BYE answered legs, end the rest."""
        call.cause = call.cause or cause
        self._release([x for x in call.legs if self._live(x)], 480, now)
        self._maybe_end(call, cause, now)

    def _release(self, legs: list[Leg], unanswered: int, now: float) -> None:
        """End each of ``legs`` the way its state needs: BYE when answered, the final
        status ``unanswered`` to a caller still ringing, CANCEL toward a callee."""
        for leg in legs:
            if leg.answered:
                self._send_bye(leg, now)
            elif leg.uas:
                self._end_leg_unanswered(leg, unanswered, now)
            else:
                leg.cancelled = True
                self.stack.cancel(leg.txn_key, now)

    def _leg_gone(self, leg: Leg, cause: str, now: float) -> None:
        """A leg ended (BYE, CANCEL, transport failure): keep the rest of the call if it
        is still a conversation or a transfer waits for its target, else end it."""
        call = leg.call
        if call.first_gone is None and leg.monitor is None:
            call.first_gone = leg.user or ""
        xfer = call.xfer
        if xfer is not None and leg is xfer.transferee:
            call.xfer = None
            self._notify_transferor(xfer, 487, now)
        live = [x for x in call.legs if self._live(x)]
        joined = [x for x in live if x.joined and x.monitor is None]
        pending = [x for x in live if not x.uas and not x.answered
                   and x.partner is not None and self._live(x.partner)]
        if len(joined) >= 2 or pending:
            self._remix(call)
            self._maybe_end(call, cause, now)
            return
        call.cause = call.cause or cause
        self._release(live, 487, now)
        self._maybe_end(call, call.cause, now)

    # -- bookkeeping ---------------------------------------------------------------
    def _live(self, leg: Leg) -> bool:
        return (leg.call_id, leg.local_tag) in self._legs

    def _drop_leg(self, leg: Leg) -> None:
        """The leg's dialog is over: forget it and free its media endpoint."""
        if self._legs.pop((leg.call_id, leg.local_tag), None) is None:
            return
        leg.ended_at = self._clock()
        self.queue_calls.leg_ended(leg, leg.ended_at)
        if leg.trunk is not None:
            self.trunk_select.release(leg.trunk.name)
        if leg.timer_handle is not None:
            leg.timer_handle.cancel()
            leg.timer_handle = None
        if leg.uas and leg.call.ivr is not None:
            leg.call.ivr.close(leg.ended_at)
        ep = leg.ep
        if ep is not None:
            leg.ep = None
            self._legs_by_ep.pop((ep.worker, ep.id), None)
        link, leg.link = leg.link, None
        free = [x for x in (ep, *self._unlink(link)) if x is not None]
        member = link[1] if link is not None else ep
        if leg.conference is not None and member is not None:
            self._spawn(self._leave_conference(leg.call, leg.conference, member, free))
        else:
            for x in free:
                self._spawn(self._destroy(leg.call, x))

    def _unlink(self, link: tuple[EndpointHandle, EndpointHandle] | None
                ) -> list[EndpointHandle]:
        """Forget a link's halves; returns those still alive (not gone with a worker)."""
        return [x for x in link or ()
                if self._link_eps.pop((x.worker, x.id), None) is not None]

    async def _leave_conference(self, call: Call, name: str, member: EndpointHandle,
                                free: list[EndpointHandle]) -> None:
        """Take ``member`` out of room ``name``, then destroy ``free`` (a room's endpoint
        destroyed while in it would dissolve the room in the worker)."""
        await self.conferences.leave(name, member)
        CallLogAdapter(logger, call.id).info("conference_leave", extra={
            "room": name, "size": self.conferences.size(name)})
        for x in free:
            await self._destroy(call, x)

    async def _destroy(self, call: Call, ep: EndpointHandle) -> None:
        async with call.lock:  # after the room changes queued before it
            try:
                await self.media.destroy(ep)
            except MediaError:
                pass  # the worker is gone, and the endpoint with it

    def _maybe_end(self, call: Call, cause: str, now: float) -> None:
        if any(self._live(x) for x in call.legs) or call.state is CallState.ENDED:
            return
        call.state = CallState.ENDED
        call.ended_at = now
        if call.silent_handle is not None:
            call.silent_handle.cancel()
            call.silent_handle = None
        call.cause = call.cause or cause
        self.calls.pop(call.key, None)
        for leg in call.legs:
            if self._legs_by_txn.get(leg.txn_key) is leg:
                del self._legs_by_txn[leg.txn_key]
        self.queue_calls.call_ended(call, now)
        CallLogAdapter(logger, call.id).info("call_end", extra={
            "cause": call.cause, "status": call.status,
            "billsec": round((now - call.answered_at) if call.answered_at else 0.0, 1)})
        if self._on_cdr is not None:
            self._on_cdr(call)
