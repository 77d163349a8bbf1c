"""The browser's phone: each logged-in browser is a SIP phone of its login, in-process.

Why this exists: an agent in a browser tab must get everything an agent on a desk phone
gets (queue offers, direct calls, transfers, recording, supervision, CDRs), and call
control (:mod:`hotline.callcontrol`) already does all of that for SIP phones. So a
browser is *not* a new kind of leg: this gateway is a small SIP user agent on loopback
that registers one binding per browser (AOR = the login: an agent's extension, a
supervisor's user name) and answers the INVITEs call control sends it. Call control
cannot tell it from a desk phone; only the last metre differs.

Theory of operation (docs/webrtc.md, "Browser agents"):

* **One WebRTC connection per shift.** When the page loads it sends an SDP offer
  (``rtc_offer``); :meth:`Softphones.rtc_offer` creates a WebRTC endpoint
  (:meth:`media.client.MediaPool.create_webrtc_endpoint`) under the media key
  ``web:LOGIN``, so every endpoint of that browser lives in one worker. A later offer on
  the same page (``restartIce()`` after a network blip) renegotiates the same endpoint.
* **A call is a mixer switch.** An INVITE from call control rings the page (a
  ``phone`` event). Answering creates an RTP endpoint in the browser's worker from the
  INVITE's SDP (call control's leg endpoint, in the call's worker, is its peer over
  loopback), puts it and the WebRTC endpoint in one room, and sends the 200: no ICE or
  DTLS handshake happens at answer time. Hanging up empties the room again.
* **Supervision** INVITEs (``X-Hotline-Monitor``) to a supervisor's browser are
  answered at once: the supervisor asked for them from the console.
* **Echo test**: the WebRTC endpoint hears itself while the agent is not on a call.
* The browser's WebSocket closing (tab closed, logout) hangs up its calls, removes the
  binding and closes its WebRTC endpoint.

The SIP side is the project's sans-IO :class:`sip.stack.SipStack` behind its own UDP
:class:`sip.transport.SipTransportManager`; each action that sends calls
:meth:`_flush`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hotline.callcontrol import THREE_WAY_CODE, WEB_PHONE_INSTANCE, is_web_phone
from hotline.mediactl import LOOPBACK_JITTER_MIN_MS, CallMedia
from hotline.netaddr import uri_host
from hotline.trunkselect import authorize_as
from media.client import EndpointHandle, MediaError
from sip import sdp as sdplib
from sip.dialog import SipDialog
from sip.events import (
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    SipEvent,
    TransactionTimeout,
    TransportError,
)
from sip.exceptions import SipError
from sip.message import SipRequest, SipResponse, make_response
from sip.peer import Peer
from sip.refer import ReferTo
from sip.registrar import BindingSource, ContactSpec, SipRegistrar
from sip.replaces import Replaces
from sip.stack import SipStack
from sip.transaction import TransactionKey
from sip.transport import SipTransportManager
from sip.uri import SipUri

__all__ = ["BINDING_SECONDS", "PhoneError", "Softphones", "WebPhone"]

logger = logging.getLogger("hotline.softphone")

#: Lifetime of a browser's binding; refreshed at half of it while the page is open.
BINDING_SECONDS = 3600
#: The ``+sip.instance`` prefix of browser bindings (stale ones are removed at start).
INSTANCE_PREFIX = WEB_PHONE_INSTANCE
USER_AGENT = "hotline-web-softphone"
#: Seconds a phone outlives its page's WebSocket (a reconnecting page takes it back).
GRACE = 30.0
#: The smallest jitter buffer delay of a browser's leg. Agents' browsers sit on the
#: contact centre's LAN: 10 ms floor, and the adaptive buffer grows on a jittery network
#: (Wi-Fi, VPN) as for any leg. Trunks keep the worker's 20 ms.
WEBRTC_JITTER_MIN_MS = 10
#: What a browser may dial.
_NUMBER = re.compile(r"[0-9A-Za-z*#+._-]{1,64}")


def _hostport(peer: Peer) -> str:
    return f"{uri_host(peer.host)}:{peer.port}"


def _nowhere(message: dict[str, Any]) -> None:
    """Where a phone's events go while no page has it."""


def _peer(call: PhoneCall) -> str:
    if call.direction == "out":
        return call.number
    return call.invite.from_.uri.user or ""


class PhoneError(Exception):
    """A phone command that cannot be carried out now; ``status`` is the HTTP-like code."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(eq=False)
class PhoneCall:
    """One SIP dialog of a browser phone (an INVITE from call control)."""

    invite: SipRequest
    key: TransactionKey | None
    peer: Peer
    local_tag: str
    call_id: str | None
    """Call control's public call id (``X-Hotline-Call``), for the page."""
    display: str
    monitor: str | None
    dialog: SipDialog | None = None
    ep: EndpointHandle | None = None
    answer_sdp: bytes = b""
    """Our SDP in the dialog (the answer, or the offer of a call we placed)."""
    state: str = "ringing"
    """``ringing``, ``answering``, ``dialing``, ``talking``, ``ended``."""
    direction: str = "in"
    held: bool = False
    """We put it on hold (re-INVITE sendonly) to consult another party."""
    number: str = ""
    """The number dialled, for a call we placed."""
    offer_sdp: sdplib.SessionDescription | None = None

    @property
    def dialog_key(self) -> tuple[str, str]:
        return (self.invite.call_id, self.local_tag)


@dataclass(eq=False)
class WebPhone:
    """One browser: its login, its WebRTC endpoint and its current call."""

    login: str
    role: str
    send: Callable[[dict[str, Any]], None]
    """Puts a message on the page's WebSocket."""
    instance: str = field(default_factory=lambda: secrets.token_hex(8))
    rtc: EndpointHandle | None = None
    rtc_state: str = "new"
    call: PhoneCall | None = None
    """The call the browser hears (ringing, dialling or talking)."""
    held: PhoneCall | None = None
    """A call put on hold to consult (transfer or three-way) with :attr:`call`."""
    echo: bool = False
    closed: bool = False
    grace: asyncio.TimerHandle | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def status(self) -> dict[str, Any]:
        """The phone as the page shows it (the ``phone`` event's fields)."""
        held = self.held
        out: dict[str, Any] = {
            "rtc": self.rtc_state, "echo": self.echo,
            "held": None if held is None else {"call_id": held.call_id, "peer": _peer(held)}}
        call = self.call
        if call is None:
            return {"state": "idle", "call_id": None, "peer": "", "display": "",
                    "direction": None, "monitor": None, **out}
        state = "ringing" if call.state in ("ringing", "answering") else call.state
        return {"state": state, "call_id": call.call_id, "peer": _peer(call),
                "display": call.display, "direction": call.direction,
                "monitor": call.monitor, **out}

    @property
    def media_key(self) -> str:
        return f"web:{self.login}"

    @property
    def room(self) -> str:
        return f"web:{self.login}:{self.instance}"


class Softphones:
    """The browsers' phones and the SIP user agent that carries their calls.

    :param media: the server's media (the browsers' endpoints live in its workers).
    :param registrar: call control's registrar (browsers bind their login in it).
    :param clock: the loop clock (the registrar's and SIP stack's time).
    :param bind_host: the address to listen on (the server's SIP UDP address).
    :param password_of: an agent's password (the calls its browser places authenticate
        with it, like its desk phone would); None for logins that are no extension.
    """

    def __init__(self, media: CallMedia, registrar: SipRegistrar, clock: Callable[[], float],
                 bind_host: str = "127.0.0.1",
                 password_of: Callable[[str], str | None] = lambda login: None) -> None:
        self.media = media
        self.password_of = password_of
        #: Where the server's SIP UDP listener is (calls the browsers place go there).
        self.server: Peer | None = None
        self.registrar = registrar
        self.clock = clock
        self.bind_host = bind_host
        self.stack = SipStack()
        self.transports: SipTransportManager | None = None
        self.address: tuple[str, int] | None = None
        self.phones: dict[str, WebPhone] = {}
        self._by_dialog: dict[tuple[str, str], tuple[WebPhone, PhoneCall]] = {}
        self._by_key: dict[TransactionKey, WebPhone] = {}
        self._by_txn: dict[TransactionKey, tuple[WebPhone, PhoneCall, str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refresh: asyncio.TimerHandle | None = None
        self._cseq = 0

    # -- lifecycle -----------------------------------------------------------------
    async def start(self, server: tuple[str, int] | None = None) -> None:
        """Listen on loopback UDP; drop browser bindings left by an earlier run.

        :param server: the server's SIP UDP (host, port), where placed calls go."""
        if server is not None:
            self.server = Peer("udp", server[0], server[1])
        loop = asyncio.get_running_loop()
        self.transports = SipTransportManager(self.stack, loop, on_events=self._drain)
        self.address = await self.transports.listen(f"udp:{self.bind_host}:0")
        self.stack.sent_by["udp"] = self.address
        for aor in self.registrar.aors():
            for b in self.registrar.lookup(aor, self.clock()):
                if is_web_phone(b.instance):
                    self.registrar.remove(aor, b.uri)
        self._refresh = loop.call_later(BINDING_SECONDS / 2, self._refresh_bindings)
        logger.info("softphone_listening", extra={"host": self.address[0],
                                                  "port": self.address[1]})

    async def close(self) -> None:
        """Hang up every browser call and stop listening."""
        for phone in list(self.phones.values()):
            await self.detach(phone)
        if self._refresh is not None:
            self._refresh.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self.transports is not None:
            self._flush()
            self.transports.close()

    # -- browsers ------------------------------------------------------------------
    def attach(self, login: str, role: str, send: Callable[[dict[str, Any]], None]) -> WebPhone:
        """A page opened its WebSocket. A login has one phone: a page that reconnects
        (or a newer page) takes over the phone, its call included, and gets the events."""
        phone = self.phones.get(login)
        if phone is not None and not phone.closed:
            if phone.grace is not None:
                phone.grace.cancel()
                phone.grace = None
            phone.send = send
            return phone
        phone = WebPhone(login, role, send)
        self.phones[login] = phone
        return phone

    def release(self, phone: WebPhone, send: Callable[[dict[str, Any]], None]) -> None:
        """A page's WebSocket closed. Its phone (and call) is kept for :data:`GRACE`
        seconds, so that a page that reconnects after a network blip goes on."""
        if phone.send is not send or phone.closed:
            return  # another page owns the phone now
        phone.send = _nowhere
        phone.grace = asyncio.get_running_loop().call_later(
            GRACE, lambda: self._spawn(self.detach(phone, "page gone")))

    async def detach(self, phone: WebPhone, why: str = "page closed") -> None:
        """The page went away: hang up, unbind, close the WebRTC endpoint."""
        if phone.closed:
            return
        phone.closed = True
        if phone.grace is not None:
            phone.grace.cancel()
        if self.phones.get(phone.login) is phone:
            del self.phones[phone.login]
            self._unbind(phone)
        async with phone.lock:
            for call in (phone.call, phone.held):
                if call is not None:
                    await self._end(phone, call, bye=True)
            if phone.rtc is not None:
                rtc, phone.rtc = phone.rtc, None
                with contextlib.suppress(MediaError):
                    await self.media.pool.set_room(phone.room, [])
                with contextlib.suppress(MediaError):
                    await self.media.pool.destroy(rtc)
        logger.info("softphone_closed", extra={"login": phone.login, "why": why})

    async def rtc_offer(self, phone: WebPhone, sdp: str, restart: bool = False) -> str:
        """The page's SDP offer; returns the answer. ``restart``: a new offer of the
        same peer connection (``restartIce()``), renegotiated on the same endpoint.
        Otherwise it is a new peer connection (first offer, a reloaded page): it gets a
        new endpoint, which takes the old one's place in the room (a call goes on).
        The login is bound once audio can flow."""
        if not isinstance(sdp, str) or "m=audio" not in sdp:
            raise PhoneError("sdp: expected a complete SDP offer with an audio section", 400)
        async with phone.lock:
            if phone.closed:
                raise PhoneError("the phone is closed", 410)
            try:
                if restart and phone.rtc is not None:
                    answer = await self.media.pool.webrtc_offer(phone.rtc, sdp)
                else:
                    old = phone.rtc
                    ep, answer = await self.media.pool.create_webrtc_endpoint(
                        phone.media_key, sdp, media_timeout=0.0,
                        jitter_min_ms=WEBRTC_JITTER_MIN_MS)
                    phone.rtc = ep
                    await self._room(phone)
                    if old is not None:
                        with contextlib.suppress(MediaError):
                            await self.media.pool.destroy(old)
            except MediaError as exc:
                raise PhoneError(f"sdp: {exc}", 400) from exc
        self._bind(phone)
        return answer

    def worker_died(self, worker: int) -> None:
        """The worker of some browsers' audio died: their pages must offer anew."""
        for phone in self.phones.values():
            if phone.rtc is not None and phone.rtc.worker == worker:
                phone.rtc = None
                self.rtc_state(phone, "failed")

    def rtc_state(self, phone: WebPhone, state: str) -> None:
        """The worker reports the WebRTC connection's state."""
        phone.rtc_state = state
        phone.send({"type": "rtc", "state": state})

    def phone_for_endpoint(self, ep: tuple[int, int]) -> WebPhone | None:
        for phone in self.phones.values():
            if phone.rtc is not None and (phone.rtc.worker, phone.rtc.id) == ep:
                return phone
        return None

    async def answer(self, phone: WebPhone) -> None:
        """Answer the ringing call: its endpoint is in the browser's room already (or
        is made now), so this is the 200."""
        call = phone.call
        if call is None or call.state != "ringing":
            raise PhoneError("nothing is ringing")
        await self._prepare(phone, call)
        async with phone.lock:
            if phone.call is not call or call.state != "ringing":
                raise PhoneError("nothing is ringing")
            await self._answer(phone, call)

    async def reject(self, phone: WebPhone) -> None:
        """Decline the ringing call (486 Busy Here: the ACD counts a ring-no-answer)."""
        async with phone.lock:
            call = phone.call
            if call is None or call.state != "ringing":
                raise PhoneError("nothing is ringing")
            await self._end(phone, call, bye=True)  # 486

    async def hangup(self, phone: WebPhone) -> None:
        """Hang up the browser's call (BYE; a ringing one is declined)."""
        async with phone.lock:
            call = phone.call
            if call is None:
                raise PhoneError("the phone is idle")
            await self._end(phone, call, bye=True)

    async def echo_test(self, phone: WebPhone, on: bool) -> None:
        """Pre-shift headset check: the agent hears itself (not during a call)."""
        async with phone.lock:
            if phone.rtc is None:
                raise PhoneError("audio is not connected yet")
            if on and phone.call is not None:
                raise PhoneError("not during a call")
            phone.echo = on
            if phone.call is None:
                await self._room(phone)

    # -- calls the browser places (consult, transfer, three-way) ---------------------
    async def dial(self, phone: WebPhone, number: str) -> None:
        """Place a call from the browser as its agent (authenticated like the agent's
        desk phone). A call being talked on is put on hold first: the consultation of
        an attended transfer or a three-way conference."""
        if not isinstance(number, str) or not _NUMBER.fullmatch(number):
            raise PhoneError("number: expected 1-64 of 0-9 * # + and letters", 400)
        if self.password_of(phone.login) is None:
            raise PhoneError("only agents (extensions) place calls", 403)
        if self.server is None or self.address is None:
            raise PhoneError("the server has no SIP UDP listener to call through", 503)
        async with phone.lock:
            if phone.rtc is None:
                raise PhoneError("audio is not connected yet")
            current = phone.call
            if current is not None and (phone.held is not None or current.state != "talking"):
                raise PhoneError("finish the calls you have first")
            if current is not None:
                self._reinvite(phone, current, hold=True)
            host = self.address[0]
            try:
                ep, offer = await self.media.offer(phone.media_key, host)
            except MediaError as exc:
                raise PhoneError(f"no media for the call: {exc}", 503) from exc
            server = self.server
            tag = secrets.token_hex(6)
            invite = SipRequest("INVITE", SipUri.parse(f"sip:{number}@{_hostport(server)}"))
            invite.add("Max-Forwards", "70")
            invite.add("From", f"<sip:{phone.login}@{_hostport(server)}>;tag={tag}")
            invite.add("To", f"<sip:{number}@{_hostport(server)}>")
            invite.add("Call-ID", secrets.token_hex(12) + "@hotline-web")
            invite.add("CSeq", "1 INVITE")
            invite.add("Contact", f"<{self._contact(phone)}>")
            invite.add("User-Agent", USER_AGENT)
            invite.add("Content-Type", "application/sdp")
            invite.body = str(offer).encode()
            call = PhoneCall(invite, None, server, tag, invite.call_id, number, None, ep=ep,
                             answer_sdp=invite.body, state="dialing", direction="out",
                             number=number, offer_sdp=offer)
            phone.call = call
            self._by_dialog[call.dialog_key] = (phone, call)
            self._send_invite(phone, call, invite)
            await self._room(phone)
            self._notify(phone)

    async def resume(self, phone: WebPhone) -> None:
        """Take the held call back (after the consultation ended)."""
        async with phone.lock:
            held = phone.held
            if held is None:
                raise PhoneError("no call is on hold")
            if phone.call is not None:
                raise PhoneError("hang up the other call first")
            self._reinvite(phone, held, hold=False)
            await self._room(phone)
            self._notify(phone)

    async def transfer(self, phone: WebPhone) -> None:
        """Attended transfer: join the held party and the party talked to, and leave
        (REFER with Replaces on the held call; call control then releases both of ours)."""
        async with phone.lock:
            held, call = phone.held, phone.call
            if held is None or call is None or call.state != "talking" or call.dialog is None \
                    or held.dialog is None:
                raise PhoneError("an attended transfer needs a held call and a talking call")
            target = ReferTo.build(SipUri.parse(f"sip:{call.number or _peer(call)}"
                                                f"@{_hostport(held.peer)}"),
                                   replaces=Replaces.for_dialog(call.dialog))
            request = held.dialog.create_request("REFER", headers=(
                ("Refer-To", str(target)), ("Referred-By", f"<sip:{phone.login}@"
                                                           f"{_hostport(held.peer)}>"),
                ("User-Agent", USER_AGENT)))
            self._send(phone, held, request, "refer")

    async def threeway(self, phone: WebPhone) -> None:
        """Three-way conference: the held party joins the call talked on (``*3``, the
        feature code call control gives every phone, sent as RFC 4733 events)."""
        async with phone.lock:
            held, call = phone.held, phone.call
            if held is None or call is None or call.state != "talking" or call.ep is None:
                raise PhoneError("a three-way call needs a held call and a talking call")
            try:
                await self.media.pool.dtmf_send(call.ep, THREE_WAY_CODE)
            except MediaError as exc:
                raise PhoneError(f"cannot send the feature code: {exc}", 503) from exc

    def _send(self, phone: WebPhone, call: PhoneCall, request: SipRequest, kind: str) -> None:
        self.stack.add_via(request, call.peer)
        key = self.stack.send_request(request, call.peer, self.clock())
        self._by_txn[key] = (phone, call, kind)
        self._flush()

    def _send_invite(self, phone: WebPhone, call: PhoneCall, invite: SipRequest) -> None:
        call.invite = invite
        self.stack.add_via(invite, call.peer)
        call.key = self.stack.send_request(invite, call.peer, self.clock())
        self._by_txn[call.key] = (phone, call, "invite")
        self._flush()

    def _reinvite(self, phone: WebPhone, call: PhoneCall, *, hold: bool) -> None:
        """Hold (sendonly) or resume (sendrecv) ``call`` by re-INVITE; the browser hears
        the other call (or nothing) meanwhile."""
        assert call.dialog is not None
        sdp = sdplib.SessionDescription.parse(call.answer_sdp.decode())
        sdplib.set_direction(sdp, sdplib.Direction.SENDONLY if hold
                             else sdplib.Direction.SENDRECV)
        sdplib.bump_version(sdp)
        call.answer_sdp = str(sdp).encode()
        request = call.dialog.create_request("INVITE", call.answer_sdp, headers=(
            ("Content-Type", "application/sdp"), ("User-Agent", USER_AGENT)))
        self._send(phone, call, request, "reinvite")
        call.held = hold
        if hold:
            phone.held, phone.call = call, None
        else:
            phone.held, phone.call = None, call

    def _response(self, phone: WebPhone, call: PhoneCall, kind: str, key: TransactionKey,
                  resp: SipResponse, again: bool) -> None:
        status = resp.status
        if status >= 200 and not (kind == "invite" and status in (401, 407)):
            self._by_txn.pop(key, None)
        if kind == "reinvite":
            if 200 <= status < 300 and call.dialog is not None:
                self.stack.send_ack(call.dialog.create_ack(resp), call.peer, self.clock())
            return
        if kind == "refer":
            if status >= 300:
                phone.send({"type": "phone_error", "error": f"transfer refused ({status})"})
            return
        if kind != "invite":
            return
        if status < 200:
            return
        if 200 <= status < 300:
            first = call.dialog is None
            dialog = call.dialog = call.dialog or SipDialog.from_uac(call.invite, resp)
            self.stack.send_ack(dialog.create_ack(resp), call.peer, self.clock())
            if call.state == "ended":  # hung up while it rang: the CANCEL lost the race
                if first:
                    bye = dialog.create_request("BYE", headers=(("User-Agent", USER_AGENT),))
                    self._send(phone, call, bye, "bye")
                return
            if first and not again:
                self._spawn(self._connected(phone, call, resp))
            return
        if status in (401, 407):
            retry = self._authorized(phone, call.invite, resp)
            self._by_txn.pop(key, None)
            if retry is not None:
                self._send_invite(phone, call, retry)
                return
        self._call_failed(phone, call, status)

    def _call_failed(self, phone: WebPhone, call: PhoneCall, status: int) -> None:
        """A call we placed was refused (or never answered: 408): the page is told."""
        if call.state != "ended":
            phone.send({"type": "phone_error", "error": f"the call failed ({status})"})
            self._finish(phone, call)
            self._spawn(self._dropped(phone, call))

    def _authorized(self, phone: WebPhone, request: SipRequest,
                    resp: SipResponse) -> SipRequest | None:
        """``request`` again with the agent's digest credentials, as its desk phone."""
        password = self.password_of(phone.login)
        return None if password is None else authorize_as(request, resp, phone.login, password)

    async def _connected(self, phone: WebPhone, call: PhoneCall, resp: SipResponse) -> None:
        async with phone.lock:
            if call.state == "ended" or call.ep is None or call.offer_sdp is None:
                return
            try:
                answer = sdplib.SessionDescription.parse(resp.body.decode())
                await self.media.accept_answer(call.ep, call.offer_sdp, answer)
            except (SipError, MediaError, ValueError, UnicodeDecodeError) as exc:
                logger.warning("softphone_bad_answer", extra={"login": phone.login,
                                                              "error": str(exc)})
                await self._end(phone, call, bye=True)
                return
            call.state = "talking"
            await self._room(phone)
            self._notify(phone)

    # -- registrar -----------------------------------------------------------------
    def _contact(self, phone: WebPhone) -> str:
        assert self.address is not None
        host, port = self.address
        return f"sip:{phone.login}@{uri_host(host)}:{port}"

    def _bind(self, phone: WebPhone) -> None:
        if self.address is None or phone.closed:
            return
        self._cseq += 1
        self.registrar.register(
            phone.login,
            [ContactSpec(self._contact(phone), expires=BINDING_SECONDS,
                         instance=f"<{INSTANCE_PREFIX}{phone.login}>")],
            f"web-{phone.login}", self._cseq, self.clock(),
            source=BindingSource("udp", self.address[0], self.address[1]))

    def _unbind(self, phone: WebPhone) -> None:
        if self.address is not None:
            self.registrar.remove(phone.login, self._contact(phone))

    def _refresh_bindings(self) -> None:
        for phone in self.phones.values():
            if phone.rtc is not None:
                self._bind(phone)
        self._refresh = asyncio.get_running_loop().call_later(BINDING_SECONDS / 2,
                                                               self._refresh_bindings)

    # -- SIP -----------------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                logger.error("softphone_task_failed", exc_info=t.exception())
            self._flush()

        task.add_done_callback(done)

    def _flush(self) -> None:
        if self.transports is not None:
            self.transports.transmit()

    def _drain(self) -> None:
        while (event := self.stack.next_event()) is not None:
            try:
                self._handle(event)
            except SipError as exc:
                logger.warning("softphone_sip_error", extra={"error": str(exc)})
        self._flush()

    def _respond(self, call: PhoneCall, status: int, body: bytes = b"",
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        resp = make_response(call.invite, status, to_tag=call.local_tag,
                             headers=(("Server", USER_AGENT), *headers), body=body)
        if status == 200 and call.dialog is None:
            call.dialog = SipDialog.from_uas(call.invite, resp)
        self.stack.send_response(resp, self.clock())
        self._flush()  # commands run in the WebSocket's tasks, not after a receive

    def _handle(self, event: SipEvent) -> None:
        match event:
            case RequestReceived(request=req, peer=peer, key=key):
                self._request(req, peer, key)
            case ResponseReceived(response=resp, key=key, retransmission=again):
                entry = self._by_txn.get(key)
                if entry is not None:
                    self._response(*entry, key, resp, again)
            case TransactionTimeout(key=key) | TransportError(key=key):
                # Our request got no answer: forget its transaction; a call we were
                # placing has failed (RFC 3261 §8.1.3.1: as a 408).
                entry = self._by_txn.pop(key, None) if key is not None else None
                if entry is not None and entry[2] == "invite":
                    self._call_failed(entry[0], entry[1], 408)
            case CancelReceived(invite_key=key):
                phone = self._by_key.get(key)
                if phone is not None and phone.call is not None \
                        and phone.call.state == "ringing":
                    call = phone.call
                    self._respond(call, 487)
                    self._finish(phone, call)
                    self._spawn(self._dropped(phone, call))

    def _request(self, req: SipRequest, peer: Peer, key: TransactionKey | None) -> None:
        method = req.method
        server = self.server
        if server is not None and (peer.host, peer.port) != (server.host, server.port):
            # Only call control talks to the browsers' phones (another local process
            # must not ring them, or listen in by auto-answered supervision calls).
            if method != "ACK":
                self.stack.send_response(make_response(req, 403, to_tag=secrets.token_hex(6)),
                                         self.clock())
            return
        tag = req.to_tag
        if method == "INVITE" and tag is None:
            self._invite(req, peer, key)
            return
        phone, call = self._by_dialog.get((req.call_id, tag or ""), (None, None))
        if phone is None or call is None or call.dialog is None:
            if method != "ACK":
                self.stack.send_response(make_response(req, 481, to_tag=tag), self.clock())
            return
        try:
            call.dialog.receive_request(req)
        except SipError as exc:
            if method != "ACK":
                status = getattr(exc, "status_hint", 500)
                self.stack.send_response(make_response(req, status), self.clock())
            return
        if method == "ACK":
            return
        if method == "BYE":
            self.stack.send_response(make_response(req, 200), self.clock())
            self._spawn(self._bye_received(phone, call))
        elif method in ("INVITE", "UPDATE"):  # session refresh or hold: same media
            body = call.answer_sdp if method == "INVITE" or req.body else b""
            headers = (("Contact", f"<{self._contact(phone)}>"),
                       ("Content-Type", "application/sdp")) if body else ()
            resp = make_response(req, 200, headers=(("Server", USER_AGENT), *headers),
                                 body=body)
            self.stack.send_response(resp, self.clock())
        else:  # OPTIONS, INFO, NOTIFY...
            self.stack.send_response(make_response(req, 200), self.clock())

    def _invite(self, req: SipRequest, peer: Peer, key: TransactionKey | None) -> None:
        login = req.uri.user or ""
        phone = self.phones.get(login)
        tag = secrets.token_hex(6)
        if phone is None or phone.rtc is None or phone.closed:
            self.stack.send_response(make_response(req, 480, to_tag=tag), self.clock())
            return
        if phone.call is not None:
            self.stack.send_response(make_response(req, 486, to_tag=tag), self.clock())
            return
        display = req.from_.display or req.from_.uri.user or ""
        monitor = req.get("X-Hotline-Monitor")
        call = PhoneCall(req, key, peer, tag, req.get("X-Hotline-Call"), display, monitor)
        phone.call = call
        phone.echo = False
        self._by_dialog[call.dialog_key] = (phone, call)
        if key is not None:
            self._by_key[key] = phone
        if monitor is not None and phone.role in ("supervisor", "admin"):
            call.state = "answering"
            self._spawn(self._auto_answer(phone, call))
            return
        self._respond(call, 180)
        self._notify(phone)
        self._spawn(self._prepare(phone, call))

    async def _auto_answer(self, phone: WebPhone, call: PhoneCall) -> None:
        await self._prepare(phone, call)
        async with phone.lock:
            if phone.call is call and call.ep is not None:
                await self._answer(phone, call)

    async def _prepare(self, phone: WebPhone, call: PhoneCall) -> None:
        """While the page rings: create the endpoint that will answer the INVITE's offer
        and put it in the browser's room, so answering is only the 200. (Before the
        200, call control's end of the leg has no address to send to: nothing is heard.)
        On failure the call is refused."""
        async with phone.lock:
            if phone.call is not call or call.ep is not None or phone.rtc is None:
                return
            try:
                offer = sdplib.SessionDescription.parse(call.invite.body.decode())
                ep, answer, _ = await self.media.answer(
                    phone.media_key, offer, self.address[0] if self.address else "",
                    jitter_min_ms=LOOPBACK_JITTER_MIN_MS)
            except (SipError, MediaError, ValueError, UnicodeDecodeError) as exc:
                logger.warning("softphone_offer_refused", extra={"login": phone.login,
                                                                 "error": str(exc)})
                if phone.call is call and call.state in ("ringing", "answering"):
                    self._respond(call, 503 if isinstance(exc, MediaError) else 488)
                    self._finish(phone, call)
                return
            call.ep = ep
            call.answer_sdp = str(answer).encode()
            if phone.call is not call:  # cancelled meanwhile
                await self._release_media(phone, call)
                return
            await self._room(phone)

    async def _answer(self, phone: WebPhone, call: PhoneCall) -> None:
        """Send the 200 (the endpoint is ready since the page started ringing)."""
        if phone.call is not call or call.ep is None:
            raise PhoneError("the call is gone", 410)
        call.state = "talking"
        self._respond(call, 200, call.answer_sdp, (
            ("Contact", f"<{self._contact(phone)}>"), ("Content-Type", "application/sdp")))
        self._notify(phone)

    async def _dropped(self, phone: WebPhone, call: PhoneCall) -> None:
        """A call that never got answered (declined, cancelled): free its endpoint."""
        async with phone.lock:
            await self._release_media(phone, call)

    async def _bye_received(self, phone: WebPhone, call: PhoneCall) -> None:
        async with phone.lock:
            if call in (phone.call, phone.held):
                await self._end(phone, call, bye=False)

    async def _end(self, phone: WebPhone, call: PhoneCall, *, bye: bool) -> None:
        """End a call and free its endpoint: BYE if it is talking and ``bye`` (we hang
        up), 486 if it rings (declined), CANCEL if we are dialling it."""
        if bye and call.dialog is not None and call.state == "talking":
            request = call.dialog.create_request("BYE", headers=(("User-Agent", USER_AGENT),))
            self._send(phone, call, request, "bye")
        elif call.state == "ringing":
            self._respond(call, 486)
        elif call.state == "dialing" and call.key is not None:
            self.stack.cancel(call.key, self.clock())  # the 487 ends the transaction
            self._flush()
        self._finish(phone, call)
        await self._release_media(phone, call)

    async def _release_media(self, phone: WebPhone, call: PhoneCall) -> None:
        ep, call.ep = call.ep, None
        if phone.call is None and phone.rtc is not None and not phone.closed:
            with contextlib.suppress(MediaError):
                await self._room(phone)
        if ep is not None:
            with contextlib.suppress(MediaError):
                await self.media.pool.destroy(ep)

    def _finish(self, phone: WebPhone, call: PhoneCall) -> None:
        """The call is over for the page (media is released by the caller)."""
        call.state = "ended"
        self._by_dialog.pop(call.dialog_key, None)
        if call.key is not None:
            self._by_key.pop(call.key, None)
        if phone.call is call:
            phone.call = None
            self._notify(phone)
        elif phone.held is call:
            phone.held = None
            self._notify(phone)

    async def _room(self, phone: WebPhone) -> None:
        """The browser's room: with its call's endpoint, else alone (hearing itself
        during the echo test)."""
        rtc = phone.rtc
        if rtc is None:
            return
        call = phone.call
        if call is not None and call.ep is not None:
            await self.media.pool.set_room(phone.room, [rtc, call.ep])
        else:
            await self.media.pool.set_room(phone.room, [rtc],
                                           hears={rtc: [rtc] if phone.echo else []})

    def _notify(self, phone: WebPhone) -> None:
        phone.send({"type": "phone", **phone.status()})
