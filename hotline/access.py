"""Who is sending this request: a trunk (by source network), an extension (by digest), or nobody.

The policy a PBX on the internet needs on day one:

* A request from a network in a trunk's ``allow`` list is that trunk's (carrier calls).
* Anything else must prove it is an extension with digest auth (RFC 8760) before it
  reaches a route, a trunk or the registrar.
* Unknown users and wrong passwords get byte-for-byte the same answers (401 with a
  fresh challenge, then 403 "Forbidden"), so the scans of sipvicious' svwar/svcrack
  cannot tell which extensions exist.
* After ``max_failures`` failures within ``window`` seconds a source is banned for
  ``ban_seconds``; requests from a banned source are dropped without an answer.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
from dataclasses import dataclass

from sip.auth import DigestServer, ha1
from sip.message import SipRequest
from sip.security import AuthFailureTracker

from .config import SiteConfig, TrunkConfig

logger = logging.getLogger("hotline.security")
_MISS = object()


@dataclass(frozen=True, slots=True)
class Identity:
    """The outcome of :meth:`AccessControl.identify`."""

    trunk: TrunkConfig | None = None
    """The trunk the request came from (source-network match)."""
    user: str | None = None
    """The authenticated extension (agent id)."""
    challenge: list[str] | None = None
    """WWW-Authenticate values to answer 401 with."""
    forbidden: bool = False
    """Credentials were given and are wrong: answer 403."""

    @property
    def trusted(self) -> bool:
        """Whether the request may proceed."""
        return self.trunk is not None or self.user is not None


class AccessControl:
    """Source-network trunk matching, digest authentication and brute-force bans."""

    def __init__(self, config: SiteConfig, secret: bytes | None = None) -> None:
        """:param config: the site.
        :param secret: HMAC key for stateless nonces (random per process if None)."""
        self._config = config
        self._digest = DigestServer(config.sip.realm, secret or os.urandom(32))
        self._tracker = AuthFailureTracker(
            max_failures=config.sip.max_failures,
            window=float(config.sip.window),
            ban_time=float(config.sip.ban_seconds),
        )
        self._nets = [
            (net, trunk) for trunk in config.trunks for net in trunk.allow
        ]
        self._trunk_cache: dict[str, object] = {}
        self._ha1: dict[tuple[str, str, str], str] = {}
        for agent in config.agents:
            for alg in ("MD5", "SHA-256", "SHA-512-256"):
                self._ha1[(agent.id, config.sip.realm, alg)] = ha1(
                    agent.id, config.sip.realm, str(agent.password), alg
                )
        # A deterministic fake HA1 for unknown users keeps the work per attempt equal.
        self._decoy = hashlib.sha256(os.urandom(16)).hexdigest()

    def trunk_for(self, ip: str) -> TrunkConfig | None:
        """The trunk whose ``allow`` networks contain ``ip`` (cached per source)."""
        if not self._nets:
            return None
        cached = self._trunk_cache.get(ip, _MISS)
        if cached is not _MISS:
            return cached  # type: ignore[return-value]
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        found = next((trunk for net, trunk in self._nets if addr in net), None)
        if len(self._trunk_cache) > 65536:
            self._trunk_cache.clear()
        self._trunk_cache[ip] = found
        return found

    def is_banned(self, ip: str, now: float) -> bool:
        """Whether requests from ``ip`` are dropped right now."""
        return self._tracker.is_banned(ip, now)

    def _lookup(self, username: str, realm: str, algorithm: str) -> str | None:
        return self._ha1.get((username, realm, algorithm.upper().removesuffix("-SESS")))

    def identify(self, request: SipRequest, source_ip: str, now: float) -> Identity:
        """Decide who sent ``request``.

        :param request: an out-of-dialog request (REGISTER, INVITE, MESSAGE…).
        :param source_ip: where it came from.
        :param now: current time, seconds.
        """
        trunk = self.trunk_for(source_ip)
        if trunk is not None and request.method != "REGISTER":
            return Identity(trunk=trunk)
        auth = request.get("authorization") or request.get("proxy-authorization")
        if auth is None:
            return Identity(challenge=self.challenge(now))
        result = self._digest.verify(auth, request.method, self._lookup, now)
        if result.ok and result.username is not None:
            self._tracker.record_success(source_ip, now)
            return Identity(user=result.username)
        if result.stale:
            return Identity(challenge=self._digest.challenge(
                now, stale=True, algorithms=self._config.sip.digest_algorithms))
        banned = self._tracker.record_failure(source_ip, now)
        logger.warning("auth_failed", extra={
            "source": source_ip, "method": request.method, "reason": result.reason.value
            if result.reason else "", "user": result.username or ""})
        if banned:
            logger.warning("source_banned", extra={
                "source": source_ip, "seconds": self._config.sip.ban_seconds})
        return Identity(forbidden=True)

    def challenge(self, now: float) -> list[str]:
        """Fresh WWW-Authenticate values."""
        return self._digest.challenge(now, algorithms=self._config.sip.digest_algorithms)
