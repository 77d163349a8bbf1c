"""Session timers (RFC 4028): negotiation and deadlines, sans-IO.

Theory of operation
-------------------
A session timer makes one side (the *refresher*) send a re-INVITE or UPDATE at least
once per *session interval*; if no refresh succeeds the other side ends the call. For
a call center this is how a leg whose phone died or whose NAT binding vanished stops
holding an agent and a media slot.

Headers: ``Session-Expires: <interval>[;refresher=uac|uas]`` (compact ``x``) and
``Min-SE: <seconds>`` (the smallest interval a hop accepts, never below 90 s, RFC 4028
§4-§5), option tag ``timer`` in Supported/Require. ``refresher`` is relative to the
transaction that carries it: ``uac`` is the side that sent that INVITE/UPDATE.

Receiving an INVITE/UPDATE (we are the UAS of that transaction):
:func:`negotiate_uas` applies RFC 4028 §9 and returns a :class:`UasTimerDecision`:
either ``status=422`` with the ``Min-SE`` header to answer with, or the headers to put
on our 2xx and the negotiated :class:`SessionTimer` (or none).

Sending one (we are the UAC): :meth:`SessionTimerRequest.initial` (or
:meth:`SessionTimer.refresh_request` for a refresh) gives the headers of the request;
:meth:`SessionTimerRequest.after_422` the retry after a 422 (RFC 4028 §7.4), and
:meth:`SessionTimerRequest.negotiated` reads the 2xx (§7.2).

Deadlines (RFC 4028 §10), counted from the moment the 2xx of the last session refresh
was sent or received (any 2xx to a re-INVITE/UPDATE refreshes the session):
:meth:`SessionTimer.refresh_at` (the refresher sends its refresh at half the interval)
and :meth:`SessionTimer.expire_at` (the other side sends BYE at
``interval - min(32, interval / 3)`` if no refresh came).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Self

from .exceptions import LocalProtocolError, MalformedMessage, RemoteProtocolError
from .message import SipMessage, SipRequest, SipResponse
from .uri import is_digits, parse_params

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_MIN_SE",
    "DEFAULT_SESSION_EXPIRES",
    "MIN_SE_FLOOR",
    "MalformedSessionTimer",
    "Refresher",
    "SessionExpires",
    "SessionTimer",
    "SessionTimerConfig",
    "SessionTimerRequest",
    "UasTimerDecision",
    "negotiate_uas",
    "parse_min_se",
    "parse_session_expires",
    "refresh_method",
    "supports_timer",
]

Refresher = Literal["uac", "uas"]

MIN_SE_FLOOR = 90
"""RFC 4028 §4: no hop may ask for a Min-SE below 90 s; an absent Min-SE means 90."""
DEFAULT_MIN_SE = 90
"""The smallest session interval we accept (our Min-SE)."""
DEFAULT_SESSION_EXPIRES = 1800
"""The session interval we ask for (RFC 4028 §4 recommends 1800 s)."""
EXPIRY_MARGIN = 32
"""RFC 4028 §10: the non-refresher sends BYE min(32, interval/3) s before expiry."""
_MAX_DIGITS = 10


class MalformedSessionTimer(RemoteProtocolError):
    """A Session-Expires or Min-SE header violates the RFC 4028 §4-§5 grammar (400)."""

    status_hint = 400


@dataclass(frozen=True, slots=True)
class SessionTimerConfig:
    """Our session-timer policy.

    :raises LocalProtocolError: ``min_se`` below 90 or ``interval`` below ``min_se``.
    """

    interval: int = DEFAULT_SESSION_EXPIRES
    """Session-Expires we ask for in our requests and insert into 2xx responses."""
    min_se: int = DEFAULT_MIN_SE
    """Smallest interval we accept; smaller requests get 422 (RFC 4028 §9)."""
    local_refresh: bool = True
    """When the choice is ours (a peer that supports timers but names no refresher,
    or our own requests), we refresh. Dead peers then show up as a failed refresh."""
    insert: bool = True
    """Ask for a timer in our 2xx when a supporting peer did not (RFC 4028 §9 MAY)."""

    def __post_init__(self) -> None:
        if self.min_se < MIN_SE_FLOOR:
            raise LocalProtocolError(f"Min-SE must be at least {MIN_SE_FLOOR} s, got {self.min_se}")
        if self.interval < self.min_se:
            raise LocalProtocolError(
                f"session interval {self.interval} s is below Min-SE {self.min_se} s"
            )


DEFAULT_CONFIG = SessionTimerConfig()


# -- parsing -------------------------------------------------------------------------


def _delta_seconds(text: str, what: str) -> int:
    if not is_digits(text) or len(text) > _MAX_DIGITS or int(text) == 0:
        raise MalformedSessionTimer(f"{what} must be a positive number of seconds, got {text!r}")
    return int(text)


def _single(msg: SipMessage, name: str, what: str) -> str | None:
    values = msg.get_all(name)
    if not values:
        return None
    if len(values) > 1 or "," in values[0]:
        raise MalformedSessionTimer(f"more than one {what} header")
    return values[0]


@dataclass(frozen=True, slots=True)
class SessionExpires:
    """A Session-Expires value (RFC 4028 §4)."""

    interval: int
    """delta-seconds."""
    refresher: Refresher | None = None
    """The ``refresher`` parameter, if present."""

    @classmethod
    def parse(cls, value: str) -> Self:
        """Parse ``1800;refresher=uac``.

        :param value: the header value.
        :raises MalformedSessionTimer: not a positive integer, or a refresher other
            than uac/uas.
        """
        number, _, ptext = value.partition(";")
        interval = _delta_seconds(number.strip(), "Session-Expires")
        try:
            params = parse_params(ptext)
        except MalformedMessage as exc:
            raise MalformedSessionTimer(f"bad Session-Expires {value!r}: {exc}") from None
        refresher: Refresher | None = None
        if "refresher" in params:
            raw = (params["refresher"] or "").lower()
            if raw == "uac":
                refresher = "uac"
            elif raw == "uas":
                refresher = "uas"
            else:
                raise MalformedSessionTimer(f"refresher must be uac or uas in {value!r}")
        return cls(interval, refresher)

    def __str__(self) -> str:
        if self.refresher is None:
            return str(self.interval)
        return f"{self.interval};refresher={self.refresher}"


def parse_session_expires(msg: SipMessage) -> SessionExpires | None:
    """The Session-Expires of a message (compact ``x`` too), None if absent.

    :param msg: a request or response.
    :raises MalformedSessionTimer: malformed or repeated (400).
    """
    value = _single(msg, "session-expires", "Session-Expires")
    return SessionExpires.parse(value) if value is not None else None


def parse_min_se(msg: SipMessage) -> int | None:
    """The Min-SE of a message in seconds, None if absent.

    A value below 90 s breaks RFC 4028 §5 but is harmless: callers compare it with
    their own minimum, which is at least 90.

    :param msg: a request or a 422 response.
    :raises MalformedSessionTimer: malformed or repeated (400).
    """
    value = _single(msg, "min-se", "Min-SE")
    if value is None:
        return None
    return _delta_seconds(value.split(";", 1)[0].strip(), "Min-SE")


def _has_option(msg: SipMessage, header: str, tag: str) -> bool:
    return any(v.lower() == tag for v in msg.get_all(header))


def supports_timer(msg: SipMessage) -> bool:
    """Whether the sender supports RFC 4028 (``timer`` in Supported or Require).

    :param msg: a request or response.
    """
    return _has_option(msg, "supported", "timer") or _has_option(msg, "require", "timer")


def refresh_method(peer: SipMessage) -> Literal["UPDATE", "INVITE"]:
    """Which method to refresh with: UPDATE (RFC 3311, no SDP needed) if the peer's
    Allow lists it, else re-INVITE (RFC 4028 §7.4 allows either).

    :param peer: a message from the peer carrying its Allow (its INVITE or 2xx).
    """
    return "UPDATE" if _has_option(peer, "allow", "update") else "INVITE"


def _add_option(msg: SipMessage, header: str, tag: str) -> None:
    if not _has_option(msg, header, tag):
        msg.add(header, tag)


# -- the negotiated timer ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionTimer:
    """A negotiated session timer, from our point of view."""

    interval: int
    """The session interval both sides agreed on, seconds."""
    local_refresher: bool
    """True if we send the refreshes, False if the peer does."""
    min_se: int = DEFAULT_MIN_SE
    """The Min-SE to put in our refresh requests (RFC 4028 §7.4)."""

    def refresh_at(self, now: float) -> float:
        """When the refresher sends its refresh: half the interval after ``now``
        (RFC 4028 §10).

        :param now: when the 2xx of the last refresh was sent or received.
        """
        return now + self.interval / 2

    def expire_at(self, now: float) -> float:
        """When the side that does not refresh sends BYE if no refresh arrived:
        ``interval - min(32, interval / 3)`` after ``now`` (RFC 4028 §10).

        The refresher may use it too, as the point where it gives up retrying.

        :param now: when the 2xx of the last refresh was sent or received.
        """
        return now + self.interval - min(EXPIRY_MARGIN, self.interval / 3)

    def next_deadline(self, now: float) -> float:
        """Our next timer: :meth:`refresh_at` if we refresh, else :meth:`expire_at`.

        :param now: when the 2xx of the last refresh was sent or received.
        """
        return self.refresh_at(now) if self.local_refresher else self.expire_at(now)

    def refresh_request(self) -> SessionTimerRequest:
        """What to put in a re-INVITE/UPDATE we send in this session: the current
        interval and the same refresher (RFC 4028 §7.4), seen from our new request."""
        return SessionTimerRequest(
            self.interval, self.min_se, "uac" if self.local_refresher else "uas"
        )


# -- UAS side ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UasTimerDecision:
    """What :func:`negotiate_uas` decided about a received INVITE/UPDATE."""

    status: int | None
    """None: go ahead and put ``headers`` on the 2xx; 422: answer 422 with ``headers``."""
    headers: tuple[tuple[str, str], ...]
    """Session-Expires (+ Require: timer) for the 2xx, or Min-SE for the 422."""
    timer: SessionTimer | None
    """The timer that runs once the 2xx is sent; None: no session timer."""

    def apply(self, response: SipResponse) -> None:
        """Add :attr:`headers` to our response (``timer`` merged into any Require).

        :param response: our 2xx, or the 422.
        """
        for name, value in self.headers:
            if name == "Require":
                _add_option(response, name, value)
            else:
                response.set(name, value)


def negotiate_uas(
    request: SipRequest, config: SessionTimerConfig = DEFAULT_CONFIG
) -> UasTimerDecision:
    """RFC 4028 §9: the session timer for a received INVITE or UPDATE (initial or
    refresh).

    * Session-Expires below our ``min_se`` from a peer that supports timers: 422 with
      ``Min-SE: max(our min_se, its Min-SE)``. From a peer that does not (a proxy
      inserted the header), raise the interval to our minimum instead, as a proxy
      would (§8): the peer would not understand a 422.
    * An interval above ``config.interval`` is reduced to it (§9 allows it down to
      the request's Min-SE), and never below that Min-SE.
    * Refresher (§9 table 2): the request's, if it names one and the peer supports
      timers; ``uas`` if the peer does not support timers; otherwise ours to choose
      (``config.local_refresh``).
    * No Session-Expires: if the peer supports timers and ``config.insert``, we ask for
      one in the 2xx; else no timer.
    * The 2xx carries ``Session-Expires: N;refresher=X``, plus ``Require: timer`` when
      the peer supports timers. ``Supported: timer`` is the caller's usual Supported.

    :param request: the INVITE or UPDATE.
    :param config: our policy.
    :raises MalformedSessionTimer: malformed or repeated Session-Expires/Min-SE (400).
    """
    se = parse_session_expires(request)
    req_min_se = parse_min_se(request)
    supported = supports_timer(request)
    floor = max(config.min_se, req_min_se or MIN_SE_FLOOR)
    refresher: Refresher
    if se is None:
        if not supported or not config.insert:
            return UasTimerDecision(None, (), None)
        interval = max(config.interval, floor)
        refresher = "uas" if config.local_refresh else "uac"
    else:
        if se.interval < config.min_se:
            if supported:
                # RFC 4028 §9: reject with 422 and the smallest interval we accept.
                return UasTimerDecision(422, (("Min-SE", str(floor)),), None)
            interval = floor
        else:
            interval = max(min(se.interval, config.interval), floor)
        if not supported:
            refresher = "uas"
        elif se.refresher is not None:
            refresher = se.refresher
        else:
            refresher = "uas" if config.local_refresh else "uac"
    headers: tuple[tuple[str, str], ...] = (
        ("Session-Expires", str(SessionExpires(interval, refresher))),
    )
    if supported:
        headers += (("Require", "timer"),)
    timer = SessionTimer(interval, refresher == "uas", floor)
    return UasTimerDecision(None, headers, timer)


# -- UAC side ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionTimerRequest:
    """The session-timer part of an INVITE/UPDATE we send (RFC 4028 §7)."""

    interval: int
    """Session-Expires we ask for."""
    min_se: int
    """Min-SE we send (the largest seen in a 422 so far)."""
    refresher: Refresher | None = "uac"
    """Refresher we ask for, relative to this request; None lets the UAS choose."""

    @classmethod
    def initial(cls, config: SessionTimerConfig = DEFAULT_CONFIG) -> Self:
        """What to put in our initial INVITE (``uac`` = we refresh, if
        ``config.local_refresh``; else the UAS chooses).

        :param config: our policy.
        """
        return cls(config.interval, config.min_se, "uac" if config.local_refresh else None)

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """Session-Expires and Min-SE for the request (add ``timer`` to Supported)."""
        return (
            ("Session-Expires", str(SessionExpires(self.interval, self.refresher))),
            ("Min-SE", str(self.min_se)),
        )

    def apply(self, request: SipRequest) -> None:
        """Set Session-Expires and Min-SE on ``request`` and make sure its Supported
        lists ``timer`` (RFC 4028 §7.1).

        :param request: our INVITE or UPDATE, before it is sent.
        """
        for name, value in self.headers:
            request.set(name, value)
        _add_option(request, "Supported", "timer")

    def after_422(self, response: SipResponse) -> Self | None:
        """The request to retry with after ``422 Session Interval Too Small``: Min-SE and
        Session-Expires raised to the response's Min-SE (RFC 4028 §7.4). None if the
        422 gives no usable larger Min-SE (give up rather than loop).

        :param response: the 422.
        """
        try:
            their = parse_min_se(response)
        except MalformedSessionTimer:
            return None
        if their is None or their <= self.interval:
            return None
        return type(self)(their, max(self.min_se, their), self.refresher)

    def negotiated(self, response: SipResponse) -> SessionTimer | None:
        """The timer a 2xx to our request sets up (RFC 4028 §7.2); None: no timer.

        A Session-Expires without ``refresher`` (the UAS must add one, §9) is read
        as ``uac``: we refresh, which keeps the session alive either way.

        :param response: the 2xx.
        :raises MalformedSessionTimer: a malformed Session-Expires.
        """
        se = parse_session_expires(response)
        if se is None:
            return None
        return SessionTimer(se.interval, se.refresher != "uas", self.min_se)
