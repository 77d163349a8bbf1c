"""Trunk health and registration: OPTIONS keepalives with up/down state, outbound REGISTER.

Each trunk with ``options_interval > 0`` is pinged with OPTIONS; any response (even
4xx/5xx: the carrier is there) marks it up, a transaction timeout marks it down.
Trunks with ``register = true`` keep a registration: refreshed at half the granted
expiry, answered challenges with digest (RFC 8760 client), and on failure retried
with exponential backoff (5 s doubling up to 5 min).

Like the rest of call control, nothing here reads the clock: ``now`` is passed in and
:meth:`TrunkMonitor.get_timer` / :meth:`handle_timer` drive it.

:meth:`TrunkMonitor.health` is what :class:`hotline.trunkselect.TrunkSelector` reads to
skip trunks known down when it orders a route's trunks for failover.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from sip.auth import DigestClient, choose_challenge
from sip.message import SipRequest, SipResponse
from sip.peer import Peer
from sip.stack import SipStack
from sip.uri import SipUri

from .config import TrunkConfig
from .netaddr import advertised_host, uri_host

logger = logging.getLogger("hotline.trunk")

BACKOFF_MIN = 5.0
BACKOFF_MAX = 300.0


@dataclass(eq=False)
class TrunkState:
    """Live state of one trunk."""

    config: TrunkConfig
    up: bool | None = None
    """None until the first keepalive answer or timeout."""
    registered: bool = False
    next_options: float = 0.0
    next_register: float = 0.0
    backoff: float = BACKOFF_MIN
    reg_call_id: str = field(default_factory=lambda: secrets.token_hex(10) + "@hotline")
    reg_cseq: int = 0
    reg_tag: str = field(default_factory=lambda: secrets.token_hex(6))
    auth_tries: int = 0
    reg_failed: bool = False
    """The last registration attempt failed (cleared when one succeeds)."""

    @property
    def peer(self) -> Peer:
        """Where this trunk's requests go."""
        return Peer(self.config.transport, self.config.host, self.config.port)


class TrunkMonitor:
    """OPTIONS keepalive and outbound registration for every trunk."""

    def __init__(
        self,
        trunks: tuple[TrunkConfig, ...],
        stack: SipStack,
        local_address: Callable[[str], tuple[str, int]],
        user_agent: str,
        now: float,
        add_via: Callable[[SipRequest, Peer], None],
        external_ip: str | None = None,
    ) -> None:
        """:param trunks: the configured trunks.
        :param stack: the SIP stack to send through.
        :param local_address: transport → bound (host, port).
        :param user_agent: User-Agent header value.
        :param now: current time; first pings go out right away.
        :param add_via: puts our Via on a request toward a peer."""
        self.stack = stack
        self._local = local_address
        self._ua = user_agent
        self._add_via = add_via
        self._external_ip = external_ip
        self.states = {t.name: TrunkState(t, next_options=now, next_register=now) for t in trunks}
        self._pending: dict[object, tuple[TrunkState, str]] = {}

    def owns(self, key: object) -> bool:
        """Whether a transaction key belongs to a trunk request of ours."""
        return key in self._pending

    def get_timer(self) -> float | None:
        """Earliest time something is due."""
        times: list[float] = []
        for st in self.states.values():
            if st.config.options_interval > 0:
                times.append(st.next_options)
            if st.config.register:
                times.append(st.next_register)
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        """Send the pings and registrations that are due."""
        for st in self.states.values():
            c = st.config
            if c.options_interval > 0 and now >= st.next_options:
                st.next_options = now + c.options_interval
                self._send(st, "OPTIONS", now)
            if c.register and now >= st.next_register:
                st.next_register = now + 3600  # re-armed on the answer or failure
                st.auth_tries = 0
                self._send(st, "REGISTER", now)

    def _request(self, st: TrunkState, method: str) -> SipRequest:
        c = st.config
        host, port = self._local(c.transport)
        host = advertised_host(host, c.host, self._external_ip)
        user = c.username or "hotline"
        aor = f"sip:{user}@{uri_host(c.host)}"
        if method == "REGISTER":
            uri = SipUri(scheme="sip", host=uri_host(c.host), port=c.port)
            st.reg_cseq += 1
            call_id, cseq, tag = st.reg_call_id, st.reg_cseq, st.reg_tag
        else:
            uri = SipUri(scheme="sip", host=uri_host(c.host), port=c.port)
            call_id, cseq, tag = secrets.token_hex(10) + "@hotline", 1, secrets.token_hex(6)
        req = SipRequest(method, uri)
        req.add("Max-Forwards", "70")
        req.add("From", f"<{aor}>;tag={tag}")
        req.add("To", f"<{aor}>")
        req.add("Call-ID", call_id)
        req.add("CSeq", f"{cseq} {method}")
        t = "" if c.transport == "udp" else f";transport={c.transport}"
        req.add("Contact", f"<sip:{user}@{uri_host(host)}:{port}{t}>")
        req.add("User-Agent", self._ua)
        if method == "REGISTER":
            req.add("Expires", str(c.expires))
        return req

    def _send(self, st: TrunkState, method: str, now: float,
              auth: tuple[str, str] | None = None) -> None:
        req = self._request(st, method)
        if auth is not None:
            req.add(auth[0], auth[1])
        self._add_via(req, st.peer)
        key = self.stack.send_request(req, st.peer, now)
        self._pending[key] = (st, method)

    def handle_response(self, key: object, response: SipResponse, now: float) -> None:
        """A response to one of our OPTIONS/REGISTER requests."""
        if response.status < 200:
            return
        st, method = self._pending.pop(key)
        if method == "OPTIONS":
            self._set_up(st, True)
            return
        c = st.config
        if response.status in (401, 407) and c.username and c.password and st.auth_tries < 2:
            st.auth_tries += 1
            hdr = "www-authenticate" if response.status == 401 else "proxy-authenticate"
            client = DigestClient(c.username, str(c.password))
            challenge = choose_challenge(response.get_all(hdr))
            value = client.respond(challenge, "REGISTER",
                                   str(SipUri(scheme="sip", host=uri_host(c.host), port=c.port)))
            name = "Authorization" if response.status == 401 else "Proxy-Authorization"
            self._send(st, "REGISTER", now, (name, value))
            return
        if 200 <= response.status < 300:
            granted = c.expires
            for contact in response.contacts:
                exp = contact.params.get("expires")
                if exp and exp.isdigit():
                    granted = int(exp)
            exp_hdr = response.get("expires")
            if exp_hdr and exp_hdr.isdigit():
                granted = int(exp_hdr)
            st.registered = True
            st.reg_failed = False
            st.backoff = BACKOFF_MIN
            st.next_register = now + max(granted / 2, 10.0)
            logger.info("trunk_registered", extra={"trunk": c.name, "expires": granted})
        else:
            self._register_failed(st, now, f"status {response.status}")

    def handle_timeout(self, key: object, now: float) -> None:
        """A request of ours got no answer (timer F) or its transport failed."""
        st, method = self._pending.pop(key)
        if method == "OPTIONS":
            self._set_up(st, False)
        else:
            self._register_failed(st, now, "timeout")

    def _register_failed(self, st: TrunkState, now: float, why: str) -> None:
        st.registered = False
        st.reg_failed = True
        st.next_register = now + st.backoff
        logger.warning("trunk_register_failed", extra={
            "trunk": st.config.name, "reason": why, "retry_in": st.backoff})
        st.backoff = min(st.backoff * 2, BACKOFF_MAX)

    def _set_up(self, st: TrunkState, up: bool) -> None:
        if st.up is not up:
            logger.info("trunk_up" if up else "trunk_down", extra={"trunk": st.config.name})
        st.up = up

    def health(self, name: str) -> bool | None:
        """What is known of a trunk: False if it is known down (its last OPTIONS timed
        out, or its registration failed: the carrier would refuse our INVITEs), True if
        its last OPTIONS was answered, None when nothing is known yet (no keepalives,
        no answer yet, or no such trunk).

        :param name: the trunk's name.
        """
        st = self.states.get(name)
        if st is None:
            return None
        if st.up is False or st.reg_failed:
            return False
        return st.up
