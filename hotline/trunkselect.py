"""Outbound calls through trunks: which trunk to try, when to fail over, what identity
to present, and how to answer a carrier's digest challenge.

Theory of operation
-------------------
A ``trunk:`` target names one trunk or several in failover order
(``trunk:telecom,unicom``, see docs/config.md). When call control dials it, it asks
:meth:`TrunkSelector.plan` for a :class:`TrunkPlan`: the route's trunks, in the route's
order, minus those that cannot take the call now. Each attempt takes the plan's next
trunk with :meth:`TrunkPlan.take`, which also counts a channel on it; call control gives
the channel back with :meth:`TrunkSelector.release` when that outbound leg ends, however
it ends. When an attempt fails, :func:`should_failover` says whether the failure is the
trunk's (try the next one for the same caller) or the callee's (tell the caller).

Everything here is sans-IO: no sockets, no clock, no logging. Trunk health comes from
:meth:`hotline.trunks.TrunkMonitor.health` through the ``health`` callable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sip.auth import DigestClient, choose_challenge, parse_auth_header
from sip.exceptions import AuthError, MalformedAuthHeader
from sip.message import SipRequest, SipResponse
from sip.uri import NameAddr, SipUri

from .config import TrunkConfig
from .netaddr import uri_host

__all__ = [
    "ANONYMOUS_FROM",
    "CALLEE_CAUSES",
    "CALLEE_STATUSES",
    "NETWORK_CAUSES",
    "OutboundIdentity",
    "TrunkPlan",
    "TrunkSelector",
    "authorize",
    "caller_withheld",
    "outbound_identity",
    "presented_number",
    "q850_cause",
    "should_failover",
    "trunk_names",
]

#: RFC 3323 §4.1.1.3: the From of a request whose originator withholds its identity.
ANONYMOUS_FROM = '"Anonymous" <sip:anonymous@anonymous.invalid>'

#: Final statuses about the callee rather than the path to it (RFC 3261 §21.4): the
#: number does not exist (404, 410, 484, 485), the callee is busy (486), unavailable
#: (480: RFC 3398 maps Q.850 causes 18, 19, 20, 31 "no answer", "subscriber absent",
#: "normal unspecified" to it) or refuses anonymous calls (433, RFC 5079); 487 is our own
#: CANCEL. Any other trunk would get the same answer, so failing over only delays the
#: caller and, on busy, can ring a phone twice.
CALLEE_STATUSES = frozenset({404, 410, 433, 480, 484, 485, 486, 487})

#: Q.850 causes (RFC 3326 ``Reason: Q.850;cause=N``) that blame the carrier's network,
#: whatever the status says: no route to the network or destination (2, 3, mapped to 404
#: by RFC 3398 §8.2.6.1 although the number may well exist), no circuit, network out of
#: order, temporary failure, congestion, channel or resource unavailable, bearer not
#: available now, service unavailable (34, 38, 41, 42, 44, 47, 58, 63).
NETWORK_CAUSES = frozenset({2, 3, 34, 38, 41, 42, 44, 47, 58, 63})

#: Q.850 causes that speak about the callee, whatever the status says: unallocated
#: number (1), user busy (17), no user responding (18, which RFC 3398 maps to 408), no
#: answer (19), subscriber absent (20), call rejected (21, mapped to 403), number changed
#: (22, 23), destination out of order (27, mapped to 502), invalid number format (28),
#: incompatible destination (88).
CALLEE_CAUSES = frozenset({1, 17, 18, 19, 20, 21, 22, 23, 27, 28, 88})

_Q850_RE = re.compile(r"^\s*q\.850\s*;(?:[^;]*;)*?\s*cause\s*=\s*(\d{1,3})\b", re.I)
_ANONYMOUS_HOST = "anonymous.invalid"


# ----------------------------------------------------------------------- failover rule


def should_failover(status: int, *, cause: int | None = None) -> bool:
    """Whether a final failure of an outbound INVITE should make call control try the
    route's next trunk for the same caller instead of failing the call.

    The question is whose failure it is. RFC 3261 §21 says who: 5xx are server
    failures (§21.5: the carrier or its gateway could not handle an apparently valid
    request: 500, 502 and 503 are how carriers say "no circuit", "network out of order",
    "congestion" after the RFC 3398 §8.2.6.1 mapping of Q.850 causes 34, 38, 41, 42, 47;
    504 is cause 102, a timer on their side); our own transaction timeout or transport
    failure reaches call control as 408 and means this trunk is unreachable. Most 4xx
    are about the request as this carrier sees it and another carrier may well accept
    it: 403 (carriers send it for "IP not allowed", "caller ID not allowed", "not in
    your plan"), 401/407 we could not answer, 402 (no credit), 400, 405, 406, 413-416,
    420, 421, 482, 483, 488 (codec set of this carrier), and unknown 4xx, which RFC 3261
    §8.1.3.2 says to treat as 400. Those fail over. A few 4xx are about the callee and
    would come back the same through any trunk (:data:`CALLEE_STATUSES`: 404, 410, 480,
    484, 485, 486, ...): those do not, and neither do 3xx (not followed here) nor 6xx
    (§21.6: definitive for the callee everywhere; §16.7 stops forking on them).

    Carriers translate from the PSTN and the status is lossy (RFC 3398 maps both
    "unallocated number" and "no route to destination" to 404, "call rejected" to 403,
    "no user responding" to 408). When the response carries the original Q.850 cause
    (RFC 3326 ``Reason``; see :func:`q850_cause`), the cause decides instead:
    :data:`NETWORK_CAUSES` fail over, :data:`CALLEE_CAUSES` do not.

    :param status: the final status (>= 300), or 408 for a timeout/transport failure.
    :param cause: the Q.850 cause of the response's Reason header, if any.
    """
    if status < 300 or status >= 600 or status == 487:
        return False
    if cause is not None:
        if cause in CALLEE_CAUSES:
            return False
        if cause in NETWORK_CAUSES:
            return True
    if status < 400:
        return False
    return status not in CALLEE_STATUSES


def q850_cause(reasons: Iterable[str]) -> int | None:
    """The Q.850 cause of a response's Reason header values (RFC 3326), e.g.
    ``Q.850;cause=34;text="No circuit available"`` gives 34; None without one.

    :param reasons: the Reason header values (``response.get_all("reason")``).
    """
    for value in reasons:
        m = _Q850_RE.match(value)
        if m is not None:
            return int(m.group(1))
    return None


# ----------------------------------------------------------------------- trunk choice


def trunk_names(arg: str | Sequence[str]) -> tuple[str, ...]:
    """The trunk names of a ``trunk:`` target's argument, in failover order.

    :param arg: ``"telecom,unicom"`` (a :class:`~hotline.config.Target`'s ``arg``) or a
        sequence of names.
    """
    items = arg.split(",") if isinstance(arg, str) else list(arg)
    return tuple(n.strip() for n in items if n.strip())


@dataclass(eq=False)
class TrunkPlan:
    """The trunks one call tries, in order; made by :meth:`TrunkSelector.plan`."""

    selector: TrunkSelector
    trunks: tuple[TrunkConfig, ...]
    """The trunks to try, in order, as ordered when the call was dialled."""
    skipped: tuple[tuple[str, str], ...] = ()
    """Route trunks left out and why (``"down"`` or ``"full"``), for the log."""
    tried: list[str] = field(default_factory=list)
    """Names of the trunks taken so far, in order."""

    @property
    def full(self) -> bool:
        """Every trunk of the route was at its channel limit when the call was dialled
        (call control answers the caller 503)."""
        return not self.trunks and any(why == "full" for _, why in self.skipped)

    def take(self) -> TrunkConfig | None:
        """The next trunk to dial, with one of its channels counted; None when none is
        left. A trunk that filled up since the plan was made is passed over.

        Call control must :meth:`TrunkSelector.release` the trunk when the leg dialled
        through it ends (or if it is never dialled)."""
        for trunk in self.trunks:
            if trunk.name in self.tried or self.selector.at_limit(trunk.name):
                continue
            self.tried.append(trunk.name)
            self.selector.acquire(trunk.name)
            return trunk
        return None


class TrunkSelector:
    """Orders a route's trunks for an outbound call and counts channels per trunk.

    :param trunks: the configured trunks.
    :param health: trunk name -> False if known down, True if known up, None if unknown
        (:meth:`hotline.trunks.TrunkMonitor.health`); may be set later, when the monitor
        starts. Until then every trunk counts as unknown.
    """

    def __init__(self, trunks: Iterable[TrunkConfig],
                 health: Callable[[str], bool | None] | None = None) -> None:
        self._trunks = {t.name: t for t in trunks}
        self._in_use = dict.fromkeys(self._trunks, 0)
        self.health: Callable[[str], bool | None] = health or (lambda name: None)

    def in_use(self, name: str) -> int:
        """Channels counted on a trunk now.

        :param name: the trunk's name.
        """
        return self._in_use.get(name, 0)

    def at_limit(self, name: str) -> bool:
        """Whether a trunk has all its ``max_channels`` in use (never with 0 = no limit).

        :param name: the trunk's name.
        """
        trunk = self._trunks.get(name)
        return trunk is not None and 0 < trunk.max_channels <= self._in_use.get(name, 0)

    def acquire(self, name: str) -> None:
        """Count one more channel on a trunk (an outbound leg is being dialled through
        it). :meth:`TrunkPlan.take` does this for the trunk it returns.

        :param name: the trunk's name.
        """
        self._in_use[name] = self._in_use.get(name, 0) + 1

    def release(self, name: str) -> None:
        """A leg dialled through a trunk ended: its channel is free again. Releasing
        more than was acquired leaves the count at zero.

        :param name: the trunk's name.
        """
        self._in_use[name] = max(0, self._in_use.get(name, 0) - 1)

    def plan(self, names: str | Sequence[str]) -> TrunkPlan:
        """The trunks a call to a ``trunk:`` target tries, in order.

        The route's order is kept. Trunks with every channel in use are left out: the
        channel limit is a contract with the carrier, which would refuse the call (or
        bill it at another rate), so it is never exceeded. Trunks known down (their
        OPTIONS keepalive timed out, or their registration failed) are left out too, so
        a caller does not wait for a dead carrier's timeout, *unless every trunk that
        has a free channel is known down*: then they are all kept, in order. A health
        check is a guess about the next call, not a verdict on it: the carrier may drop
        our OPTIONS yet take INVITEs, the last ping may be a minute old, or the outage
        may just be over. Refusing the call would turn a wrong guess into a sure
        failure; trying costs the caller one timeout at worst (and an unreachable host
        usually fails at once, by ICMP). Unknown trunk names are ignored.

        :param names: the target's argument (``"telecom,unicom"``) or the names.
        """
        free: list[TrunkConfig] = []
        skipped: list[tuple[str, str]] = []
        for name in trunk_names(names):
            trunk = self._trunks.get(name)
            if trunk is None:
                continue
            if self.at_limit(name):
                skipped.append((name, "full"))
            else:
                free.append(trunk)
        healthy = [t for t in free if self.health(t.name) is not False]
        if healthy:
            skipped += [(t.name, "down") for t in free if t not in healthy]
        else:
            healthy = free
        return TrunkPlan(self, tuple(healthy), tuple(skipped))


# ----------------------------------------------------------------------- caller ID


@dataclass(frozen=True, slots=True)
class OutboundIdentity:
    """Who an outbound INVITE through a trunk says the caller is."""

    number: str
    """The number presented (empty when there is none to present)."""
    from_addr: str
    """The From header value without its tag."""
    headers: tuple[tuple[str, str], ...]
    """P-Asserted-Identity and Privacy headers to add, in order."""

    def from_header(self, tag: str) -> str:
        """The From header value with our tag.

        :param tag: the From tag of the new dialog.
        """
        return f"{self.from_addr};tag={tag}"


def caller_withheld(request: SipRequest) -> bool:
    """Whether the caller of an incoming INVITE asked for its identity to be withheld:
    a ``Privacy`` of ``id``, ``user`` or ``header`` (RFC 3323 §4.2, RFC 3325 §9.3), or
    an anonymous From (RFC 3323 §4.1.1.3).

    :param request: the caller's INVITE.
    """
    values = {v.strip().lower() for p in request.get_all("privacy") for v in p.split(";")}
    if values & {"id", "user", "header"}:
        return True
    uri = request.from_.uri
    return (uri.user or "").lower() == "anonymous" or uri.host.lower() == _ANONYMOUS_HOST


def presented_number(trunk: TrunkConfig, caller: str, *, from_trunk: bool) -> str:
    """The number a trunk presents for a caller (``caller_id`` and ``caller_id_mode``).

    ``fixed`` always presents ``caller_id`` (the site's number). ``pass`` presents the
    caller's own number on calls that came in from a trunk (a forwarded PSTN caller),
    and ``caller_id``, when set, on calls from extensions, whose numbers mean nothing
    outside. Without ``caller_id_mode``, a set ``caller_id`` means ``fixed``.

    :param trunk: the trunk dialled.
    :param caller: the caller's number (From user of the incoming INVITE).
    :param from_trunk: the call came in from a trunk, not from an extension.
    """
    mode = trunk.caller_id_mode or ("fixed" if trunk.caller_id else "pass")
    if trunk.caller_id is not None and (mode == "fixed" or not from_trunk):
        return trunk.caller_id
    return caller


def outbound_identity(trunk: TrunkConfig, caller: str, *, from_trunk: bool = False,
                      display: str | None = None, withheld: bool = False) -> OutboundIdentity:
    """The From, P-Asserted-Identity and Privacy of an INVITE sent out through a trunk.

    The number is :func:`presented_number`. From is ``<sip:NUMBER@TRUNK-HOST>`` (the
    trunk's ``from_user`` replaces NUMBER), with the caller's display name when the
    caller's own number is presented. P-Asserted-Identity (RFC 3325 §9.1) carries the
    number to the carrier, which is treated as part of our trust domain (RFC 3325 §2.3):
    carriers bill and place emergency calls by it, and ignore it from peers they do
    not trust. With ``privacy = true`` on the trunk, or when the caller withheld its
    own number and that is the number presented, the From becomes anonymous (RFC 3323
    §4.1.1.3) and ``Privacy: id`` (RFC 3325 §9.3) asks the carrier to remove the
    P-Asserted-Identity before the call leaves its network. With no number at all
    (an anonymous caller passed through), the From is anonymous and nothing is asserted.

    :param trunk: the trunk dialled.
    :param caller: the caller's number.
    :param from_trunk: the call came in from a trunk (see :func:`presented_number`).
    :param display: the caller's display name, used only with the caller's own number.
    :param withheld: the caller asked for privacy (:func:`caller_withheld`).
    """
    number = presented_number(trunk, caller, from_trunk=from_trunk)
    own = number == caller
    if own and (number.lower() == "anonymous" or not number):
        return OutboundIdentity("", ANONYMOUS_FROM, (("Privacy", "id"),) if withheld else ())
    host = uri_host(trunk.host)
    name = display if own and display else None
    asserted = str(NameAddr(SipUri(scheme="sip", user=number, host=host), name))
    if trunk.privacy or (withheld and own):
        return OutboundIdentity(number, ANONYMOUS_FROM,
                                (("P-Asserted-Identity", asserted), ("Privacy", "id")))
    from_addr = str(NameAddr(SipUri(scheme="sip", user=trunk.from_user or number, host=host),
                             name))
    return OutboundIdentity(number, from_addr, (("P-Asserted-Identity", asserted),))


# ----------------------------------------------------------------------- digest


def authorize(request: SipRequest, response: SipResponse,
              trunk: TrunkConfig) -> SipRequest | None:
    """The request again, answering the 401/407 challenge of ``response`` with the
    trunk's credentials (:func:`authorize_as`), or None if it should not be retried."""
    if not trunk.username or trunk.password is None:
        return None
    return authorize_as(request, response, trunk.username, str(trunk.password))


def authorize_as(request: SipRequest, response: SipResponse, username: str,
                 password: str) -> SipRequest | None:
    """The request again, answering the 401/407 challenge of ``response`` with these
    credentials (RFC 3261 §22.2), or None if it should not be retried.

    The copy has the next CSeq (§8.1.3.5: same Call-ID, From tag and To) and no Via:
    the caller adds a fresh one (a new transaction, so a new branch) and sends it. No
    retry without a usable Digest challenge, or when the request already carried
    credentials for that challenge and the new one is not ``stale=true`` (§22.2: the
    credentials were refused; retrying them would loop).
    """
    if response.status not in (401, 407):
        return None
    if response.status == 401:
        challenge_hdr, answer_hdr = "WWW-Authenticate", "Authorization"
    else:
        challenge_hdr, answer_hdr = "Proxy-Authenticate", "Proxy-Authorization"
    try:
        challenge = choose_challenge(response.get_all(challenge_hdr))
        stale = parse_auth_header(challenge)[1].get("stale", "").lower() == "true"
        if request.get(answer_hdr) is not None and not stale:
            return None
        seq, method = request.cseq
        value = DigestClient(username, password).respond(
            challenge, method, str(request.uri), request.body)
    except (AuthError, MalformedAuthHeader):
        return None
    retry = request.copy()
    retry.remove("Via")
    retry.set("CSeq", f"{seq + 1} {method}")
    retry.set(answer_hdr, value)
    return retry
