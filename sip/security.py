"""Defences against SIP password guessing and scanning, sans-IO (``now`` is passed in).

Theory of operation
-------------------
``AuthFailureTracker`` counts Digest failures per source in a sliding window. After
``max_failures`` failures within ``window`` seconds the source is banned for
``ban_time`` seconds; the transport drops (or answers 403 to) everything it sends
while banned. IPv6 sources are grouped by prefix (default /64), since one host owns
a whole /64 and would otherwise dodge the ban by rotating addresses. Sources in
``exempt`` networks (carrier trunks, the office LAN) are never banned.

Memory is bounded: at most ``max_sources`` sources are tracked (least recently seen
evicted first, expired ones before live ones) and at most ``max_bans`` bans are held
(the soonest-ending ban is dropped first). Each source keeps at most ``max_failures``
timestamps.

The real defence against enumeration is uniform responses (see
``sip.auth.DigestServer.verify``); ``looks_like_scanner`` only lets the transport
drop the noisiest tools (SIPVicious "friendly-scanner" and friends) without answering.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from collections.abc import Iterable
from functools import lru_cache

from .exceptions import LocalProtocolError

__all__ = ["AuthFailureTracker", "looks_like_scanner", "source_key"]

#: Default: failures allowed within the window before a ban.
MAX_FAILURES = 5
#: Default sliding window, seconds.
WINDOW = 60.0
#: Default ban duration, seconds.
BAN_TIME = 600.0
#: Default bound on tracked sources.
MAX_SOURCES = 50000
#: Default bound on simultaneous bans.
MAX_BANS = 50000

# User-Agent fragments of well-known SIP scanners and toll-fraud tools (lower case).
SCANNER_AGENTS: tuple[str, ...] = (
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sipscan",
    "sundayddr",
    "iwar",
    "vaxsipuseragent",
    "pplsip",
    "smap",
    "sipsak",
)


def looks_like_scanner(user_agent: str | None) -> bool:
    """Whether a User-Agent value names a well-known SIP scanning tool.

    This is a noise filter, not a defence: attackers can send any User-Agent.

    :param user_agent: the User-Agent (or Server) header value, if any.
    """
    if not user_agent:
        return False
    ua = user_agent.lower()
    return any(fragment in ua for fragment in SCANNER_AGENTS)


@lru_cache(maxsize=65536)
def source_key(ip: str, ipv6_prefix: int = 64) -> str:
    """The key a source is counted under: the IPv4 address, or the IPv6 /prefix.

    :param ip: the source address as text; non-IP text is used verbatim.
    :param ipv6_prefix: prefix length that groups IPv6 sources (128 = per address).
    """
    try:
        addr = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        if ipv6_prefix < 128:
            return str(ipaddress.IPv6Network((addr, ipv6_prefix), strict=False))
    return str(addr)


class AuthFailureTracker:
    """Sliding-window auth failure counter with temporary bans (fail2ban in-process).

    :param max_failures: failures within ``window`` that trigger a ban.
    :param window: sliding window, seconds.
    :param ban_time: ban duration, seconds.
    :param exempt: networks (``"10.0.0.0/8"``, ``"192.0.2.7"``) that are never banned.
    :param ipv6_prefix: IPv6 sources are grouped by this prefix length.
    :param max_sources: bound on sources with recorded failures.
    :param max_bans: bound on simultaneous bans.
    """

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW,
        ban_time: float = BAN_TIME,
        *,
        exempt: Iterable[str] = (),
        ipv6_prefix: int = 64,
        max_sources: int = MAX_SOURCES,
        max_bans: int = MAX_BANS,
    ) -> None:
        if max_failures < 1 or window <= 0 or ban_time <= 0:
            raise LocalProtocolError("max_failures, window and ban_time must be positive")
        if max_sources < 1 or max_bans < 1 or not 0 < ipv6_prefix <= 128:
            raise LocalProtocolError("max_sources/max_bans must be positive, ipv6_prefix 1-128")
        self.max_failures = max_failures
        self.window = window
        self.ban_time = ban_time
        self.ipv6_prefix = ipv6_prefix
        self._max_sources = max_sources
        self._max_bans = max_bans
        try:
            self._exempt = [ipaddress.ip_network(n, strict=False) for n in exempt]
        except ValueError as exc:
            raise LocalProtocolError(f"bad exempt network: {exc}") from None
        # key → failure times (oldest first), least recently touched first.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        # key → ban end time.
        self._bans: dict[str, float] = {}

    def _key(self, ip: str) -> str:
        return source_key(ip, self.ipv6_prefix)

    def is_exempt(self, ip: str) -> bool:
        """Whether ``ip`` is in an exempt network.

        :param ip: the source address.
        """
        try:
            addr = ipaddress.ip_address(ip.strip("[]"))
        except ValueError:
            return False
        return any(addr in net for net in self._exempt)

    def is_banned(self, ip: str, now: float) -> bool:
        """Whether requests from ``ip`` must be dropped now.

        :param ip: the source address.
        :param now: current time, seconds.
        """
        key = self._key(ip)
        until = self._bans.get(key)
        if until is None:
            return False
        if until <= now:
            del self._bans[key]
            return False
        return True

    def record_failure(self, ip: str, now: float) -> bool:
        """Count one authentication failure from ``ip``.

        :param ip: the source address.
        :param now: current time, seconds.
        :return: whether this failure started a ban.
        """
        if self.is_exempt(ip) or self.is_banned(ip, now):
            return False
        key = self._key(ip)
        times = self._failures.get(key)
        if times is None:
            times = deque(maxlen=self.max_failures)
            self._failures[key] = times
        else:
            self._failures.move_to_end(key)
        while times and times[0] <= now - self.window:
            times.popleft()
        times.append(now)
        self._bound_sources(now)
        if len(times) < self.max_failures:
            return False
        del self._failures[key]
        self._bans[key] = now + self.ban_time
        self._bound_bans(now)
        return True

    def record_success(self, ip: str, now: float) -> None:
        """Forget the failures of ``ip`` after a successful authentication (a ban stays).

        :param ip: the source address.
        :param now: current time, seconds.
        """
        self._failures.pop(self._key(ip), None)

    def failures(self, ip: str, now: float) -> int:
        """Failures of ``ip`` within the window ending at ``now``.

        :param ip: the source address.
        :param now: current time, seconds.
        """
        times = self._failures.get(self._key(ip))
        if times is None:
            return 0
        return sum(1 for t in times if t > now - self.window)

    def unban(self, ip: str) -> bool:
        """Lift a ban by hand (operator action).

        :param ip: the source address.
        :return: whether a ban was lifted.
        """
        return self._bans.pop(self._key(ip), None) is not None

    def banned(self, now: float) -> list[tuple[str, float]]:
        """Current bans as ``(source key, until)``, soonest ending first.

        :param now: current time, seconds.
        """
        self.expire(now)
        return sorted(self._bans.items(), key=lambda item: (item[1], item[0]))

    def expire(self, now: float) -> None:
        """Drop ended bans and failure records older than the window.

        :param now: current time, seconds.
        """
        for key in [k for k, until in self._bans.items() if until <= now]:
            del self._bans[key]
        for key in [k for k, t in self._failures.items() if not t or t[-1] <= now - self.window]:
            del self._failures[key]

    def get_timer(self) -> float | None:
        """When the next ban ends, or ``None``."""
        return min(self._bans.values(), default=None)

    @property
    def tracked_sources(self) -> int:
        """How many sources have recorded failures."""
        return len(self._failures)

    def _bound_sources(self, now: float) -> None:
        if len(self._failures) <= self._max_sources:
            return
        self.expire(now)
        while len(self._failures) > self._max_sources:
            self._failures.popitem(last=False)

    def _bound_bans(self, now: float) -> None:
        if len(self._bans) <= self._max_bans:
            return
        self.expire(now)
        while len(self._bans) > self._max_bans:
            soonest = min(self._bans, key=lambda k: self._bans[k])
            del self._bans[soonest]
