"""HTTP Digest authentication for SIP: RFC 7616 as applied to SIP by RFC 8760 and RFC 3261 §22.

Theory of operation
-------------------
Server side, ``DigestServer`` issues challenges whose nonce is *stateless*:
``base64url(timestamp ‖ random ‖ HMAC-SHA256(secret, realm ‖ timestamp ‖ random))``.
Any nonce it issued can be validated and aged without a table, so challenges survive
any number of concurrent registrations. The only state is a bounded record of the
highest nonce-count (nc) accepted per nonce, which defeats replays (RFC 7616 §5.12):
an nc that is not higher than the last accepted one fails. Entries expire with the
nonce, and when the table is full the oldest entry is evicted and every nonce issued
no later than it is thereafter treated as stale, so eviction never reopens a replay
window; the client merely fetches a fresh nonce.

``verify`` never raises: it returns an ``AuthResult`` whose ``reason`` is for logs and
for ``sip.security.AuthFailureTracker``. The caller must answer every failure the same
way (401/407 with a fresh challenge) so that responses do not reveal whether an
extension exists.

Client side, ``DigestClient`` picks the strongest challenge (``choose_challenge``),
answers it with qop=auth (auth-int when that is all the server offers, or the RFC 2069
form when the challenge has no qop), and counts nc per nonce.

Header values are parsed by ``parse_auth_header`` (RFC 3261 §25 / RFC 7235 §2.1
grammar: a scheme token, then comma-separated ``name=token`` or ``name="quoted"``
params with backslash escapes). Malformed input raises ``MalformedAuthHeader`` with a
message naming the position.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from .exceptions import AuthError, LocalProtocolError, MalformedAuthHeader

__all__ = [
    "ALGORITHMS",
    "AuthFailure",
    "AuthResult",
    "DigestClient",
    "DigestServer",
    "choose_challenge",
    "format_auth_header",
    "ha1",
    "parse_auth_header",
]

#: Longest header value we parse.
MAX_HEADER_LENGTH = 8192
#: Default bound on the per-nonce nc table.
MAX_TRACKED_NONCES = 10000

# RFC 7616 §3.2 / RFC 8760 §2: algorithm name → hashlib name; strongest first.
_HASHES: dict[str, str] = {
    "SHA-512-256": "sha512_256",
    "SHA-256": "sha256",
    "MD5": "md5",
}
#: Algorithms we understand, strongest first (RFC 8760 §2.4 preference order).
ALGORITHMS: tuple[str, ...] = (
    "SHA-512-256",
    "SHA-512-256-sess",
    "SHA-256",
    "SHA-256-sess",
    "MD5",
    "MD5-sess",
)
_STRENGTH = {name.upper(): len(ALGORITHMS) - i for i, name in enumerate(ALGORITHMS)}

# RFC 3261 §25.1 token characters.
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_WS = " \t"
_NC_RE = re.compile(r"[0-9a-fA-F]{8}\Z")
# RFC 7616 §3.4: parameters that are always sent as quoted-strings.
_QUOTED = frozenset(
    {
        "username",
        "realm",
        "nonce",
        "uri",
        "response",
        "cnonce",
        "opaque",
        "domain",
        "nextnonce",
        "rspauth",
    }
)

_NONCE_RAND = 12
_NONCE_MAC = 16
_NONCE_LEN = 8 + _NONCE_RAND + _NONCE_MAC


def _canonical_algorithm(name: str) -> str | None:
    upper = name.upper()
    for alg in ALGORITHMS:
        if alg.upper() == upper:
            return alg
    return None


def _base(algorithm: str) -> str:
    return algorithm[:-5] if algorithm.endswith("-sess") else algorithm


def _h(algorithm: str, data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.new(_HASHES[_base(algorithm)], raw).hexdigest()


def ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """H(username ":" realm ":" password), the value a user database stores (RFC 7616 §3.4.2).

    For ``-sess`` algorithms this is still the plain hash; the session key is derived
    per nonce by the server and client.

    :param username: the user (SIP extension) name.
    :param realm: the realm of the challenge.
    :param password: the password, hashed as UTF-8.
    :param algorithm: ``MD5``, ``SHA-256`` or ``SHA-512-256`` (``-sess`` accepted).
    :raises AuthError: unknown algorithm.
    """
    alg = _canonical_algorithm(algorithm)
    if alg is None:
        raise AuthError(f"unsupported digest algorithm {algorithm!r}")
    return _h(alg, f"{username}:{realm}:{password}")


def _response(
    algorithm: str,
    ha1_value: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None,
    nc: str,
    cnonce: str,
    body: bytes,
) -> str:
    # RFC 7616 §3.4.2: for -sess, HA1 = H(H(user:realm:pass) ":" nonce ":" cnonce).
    key = ha1_value
    if algorithm.endswith("-sess"):
        key = _h(algorithm, f"{ha1_value}:{nonce}:{cnonce}")
    # RFC 7616 §3.4.3: A2 = method ":" uri, plus ":" H(body) for auth-int.
    a2 = f"{method}:{uri}" if qop != "auth-int" else f"{method}:{uri}:{_h(algorithm, body)}"
    ha2 = _h(algorithm, a2)
    if qop is None:
        # RFC 2069 / RFC 2617 §3.2.2.1 compatibility: no qop, no nc/cnonce.
        return _h(algorithm, f"{key}:{nonce}:{ha2}")
    return _h(algorithm, f"{key}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


# ------------------------------------------------------------------------- header syntax


def parse_auth_header(value: str) -> tuple[str, dict[str, str]]:
    """Parse a WWW-Authenticate, Proxy-Authenticate, Authorization or Proxy-Authorization value.

    Parameter names are lower-cased; quoted values are unescaped (RFC 3261 §25.1
    quoted-pair). Empty list elements are skipped (RFC 7230 §7).

    :param value: the header value, e.g. ``Digest realm="x", nonce="y"``.
    :return: the scheme as written and the parameters.
    :raises MalformedAuthHeader: on any grammar violation, with the character position.
    """
    if len(value) > MAX_HEADER_LENGTH:
        raise MalformedAuthHeader(
            f"auth header of {len(value)} characters exceeds {MAX_HEADER_LENGTH}"
        )
    # Unfold RFC 3261 §7.3.1 line folding: CRLF followed by whitespace is one space.
    text = re.sub(r"\r?\n[ \t]", " ", value)
    n = len(text)
    i = 0
    while i < n and text[i] in _WS:
        i += 1
    start = i
    while i < n and text[i] in _TOKEN_CHARS:
        i += 1
    if i == start:
        if start == n:
            raise MalformedAuthHeader("empty auth header value")
        raise MalformedAuthHeader(f"expected an auth-scheme token at position {start}")
    scheme = text[start:i]
    if i < n and text[i] not in _WS:
        raise MalformedAuthHeader(f"expected whitespace after auth-scheme at position {i}")
    params: dict[str, str] = {}
    expect_comma = False
    while True:
        while i < n and text[i] in _WS:
            i += 1
        if i >= n:
            break
        if text[i] == ",":
            i += 1
            expect_comma = False
            continue
        if expect_comma:
            raise MalformedAuthHeader(f"expected ',' between auth-params at position {i}")
        start = i
        while i < n and text[i] in _TOKEN_CHARS:
            i += 1
        if i == start:
            raise MalformedAuthHeader(f"expected an auth-param name at position {i}")
        written = text[start:i]
        name = written.lower()
        while i < n and text[i] in _WS:
            i += 1
        if i >= n or text[i] != "=":
            raise MalformedAuthHeader(f"expected '=' after {written!r} at position {i}")
        i += 1
        while i < n and text[i] in _WS:
            i += 1
        if i < n and text[i] == '"':
            quote_at = i
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise MalformedAuthHeader(f"unterminated quoted-string at position {quote_at}")
                c = text[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\":
                    # RFC 3261 §25.1: quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F).
                    if i + 1 >= n or text[i + 1] in "\r\n" or ord(text[i + 1]) > 0x7F:
                        raise MalformedAuthHeader(f"bad escape in quoted-string at position {i}")
                    chars.append(text[i + 1])
                    i += 2
                    continue
                if (ord(c) < 0x20 and c != "\t") or c == "\x7f":
                    raise MalformedAuthHeader(f"control character in quoted-string at position {i}")
                chars.append(c)
                i += 1
            param = "".join(chars)
        else:
            start = i
            while i < n and text[i] in _TOKEN_CHARS:
                i += 1
            if i == start:
                raise MalformedAuthHeader(f"expected a token or quoted-string at position {i}")
            param = text[start:i]
        if name in params:
            raise MalformedAuthHeader(f"duplicate auth-param {name!r}")
        params[name] = param
        expect_comma = True
    return scheme, params


def _quote(value: str) -> str:
    if any(c in value for c in "\r\n") or any(ord(c) < 0x20 and c != "\t" for c in value):
        raise LocalProtocolError(f"control character in auth-param value {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_auth_header(
    scheme: str, params: Iterable[tuple[str, str]], quoted: Collection[str] = _QUOTED
) -> str:
    """Build an auth header value, quoting exactly the params RFC 7616 §3.4 says to quote.

    :param scheme: ``Digest``.
    :param params: ``(name, value)`` pairs in output order.
    :param quoted: names always written as quoted-strings; others must be tokens.
    :raises LocalProtocolError: a value cannot be written (control characters, or an
        unquoted param that is not a token).
    """
    parts: list[str] = []
    for name, value in params:
        if name in quoted:
            parts.append(f"{name}={_quote(value)}")
        elif value and all(c in _TOKEN_CHARS for c in value):
            parts.append(f"{name}={value}")
        else:
            raise LocalProtocolError(f"auth-param {name} must be a token, got {value!r}")
    return f"{scheme} " + ", ".join(parts)


# ------------------------------------------------------------------------------- server


class AuthFailure(Enum):
    """Why ``DigestServer.verify`` refused credentials (for logs, never for the peer)."""

    MALFORMED = "malformed"
    """The header does not parse or lacks a required parameter."""
    BAD_REALM = "bad realm"
    """The credentials are for another realm."""
    UNSUPPORTED_ALGORITHM = "unsupported algorithm"
    """The algorithm or qop is not one we accept."""
    BAD_NONCE = "bad nonce"
    """We did not issue the nonce."""
    UNKNOWN_USER = "unknown user"
    """``ha1_lookup`` does not know the user."""
    WRONG_RESPONSE = "wrong response"
    """The digest does not match: wrong password (or a tampered request)."""
    STALE = "stale nonce"
    """The digest is right but the nonce expired: challenge again with stale=true."""
    NC_REPLAY = "nc replay"
    """The digest is right but the nonce-count was already used: a replay."""


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Outcome of ``DigestServer.verify``."""

    ok: bool
    """Whether the credentials are valid."""
    username: str | None
    """The username the client claimed (also set on failure, for logs/ban lists)."""
    reason: AuthFailure | None = None
    """Why verification failed; ``None`` when ``ok``."""
    detail: str = ""
    """Human-readable explanation for logs."""
    algorithm: str | None = None
    """The algorithm of the credentials, when known."""

    @property
    def stale(self) -> bool:
        """Whether to re-challenge with ``stale=true`` (RFC 7616 §3.3): the password was right."""
        return self.reason in (AuthFailure.STALE, AuthFailure.NC_REPLAY)


def _fail(
    reason: AuthFailure, detail: str, username: str | None = None, algorithm: str | None = None
) -> AuthResult:
    return AuthResult(False, username, reason, detail, algorithm)


class DigestServer:
    """Stateless-nonce Digest verifier for one realm (RFC 7616 §3.3-3.5, RFC 8760).

    :param realm: the realm, usually the SIP domain (RFC 3261 §22.1).
    :param secret: key for nonce HMACs; at least 16 random bytes, kept across restarts
        if outstanding nonces should stay valid.
    :param nonce_ttl: seconds a nonce stays fresh; after that it is stale.
    :param max_nonces: bound on the per-nonce nc replay table.
    :param random_bytes: source of randomness (``os.urandom``); injectable for tests.
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        nonce_ttl: float = 300,
        *,
        max_nonces: int = MAX_TRACKED_NONCES,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if len(secret) < 16:
            raise LocalProtocolError("the nonce secret must be at least 16 bytes")
        if nonce_ttl <= 0 or max_nonces <= 0:
            raise LocalProtocolError("nonce_ttl and max_nonces must be positive")
        self.realm = realm
        self.nonce_ttl = nonce_ttl
        self._secret = secret
        self._max_nonces = max_nonces
        self._random = random_bytes
        # nonce → (issue time, highest accepted nc), least recently used first.
        self._nc: OrderedDict[str, tuple[float, int]] = OrderedDict()
        # Nonces issued at or before this time and absent from _nc are stale.
        self._evicted_up_to = float("-inf")

    # -- nonces

    def _mac(self, body: bytes) -> bytes:
        msg = self.realm.encode("utf-8") + b"\0" + body
        return hmac.new(self._secret, msg, hashlib.sha256).digest()[:_NONCE_MAC]

    def make_nonce(self, now: float) -> str:
        """Issue a fresh nonce bound to ``now``.

        :param now: current time, seconds, in the same clock as ``verify``'s ``now``.
        """
        body = struct.pack(">q", int(now * 1000)) + self._random(_NONCE_RAND)
        return base64.urlsafe_b64encode(body + self._mac(body)).decode("ascii")

    def _nonce_time(self, nonce: str) -> float | None:
        if len(nonce) != 4 * _NONCE_LEN // 3:
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return None
        if len(raw) != _NONCE_LEN:
            return None
        body, mac = raw[:-_NONCE_MAC], raw[-_NONCE_MAC:]
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        return float(struct.unpack(">q", body[:8])[0]) / 1000.0

    def challenge(
        self,
        now: float,
        stale: bool = False,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
    ) -> list[str]:
        """Values for WWW-Authenticate (401) or Proxy-Authenticate (407) headers.

        One challenge per algorithm, in the given order; RFC 8760 §2.4 wants the
        preferred one (SHA-256) first. All share one nonce.

        :param now: current time, seconds.
        :param stale: set ``stale=TRUE`` (RFC 7616 §3.3) after ``AuthResult.stale``.
        :param algorithms: algorithm names, preferred first.
        :raises LocalProtocolError: an unknown algorithm name.
        """
        nonce = self.make_nonce(now)
        out: list[str] = []
        for name in algorithms:
            alg = _canonical_algorithm(name)
            if alg is None:
                raise LocalProtocolError(f"unsupported digest algorithm {name!r}")
            params = [("realm", self.realm), ("nonce", nonce), ("algorithm", alg), ("qop", "auth")]
            if stale:
                params.append(("stale", "TRUE"))
            # RFC 7616 §3.3: in a challenge, qop-options is a quoted list.
            out.append(format_auth_header("Digest", params, _QUOTED | {"qop"}))
        return out

    # -- verification

    def verify(
        self,
        authorization_value: str,
        method: str,
        ha1_lookup: Callable[[str, str, str], str | None],
        now: float,
        *,
        body: bytes = b"",
        request_uri: str | None = None,
    ) -> AuthResult:
        """Check an Authorization/Proxy-Authorization value.

        Security: the caller MUST answer ``UNKNOWN_USER`` and ``WRONG_RESPONSE`` (and
        every other failure) identically, with a 401/407 carrying a fresh
        ``challenge()``, so that responses never reveal whether an extension exists.
        This method already spends the same hashing work on an unknown user as on a
        wrong password. Only ``AuthResult.stale`` may change the answer (stale=true).
        Record failures in ``sip.security.AuthFailureTracker``.

        :param authorization_value: the header value (``Digest username=...``).
        :param method: the request method (``REGISTER``, ``INVITE``...); RFC 3261 §22.4.
        :param ha1_lookup: ``(username, realm, base_algorithm) -> H(user:realm:pass)``
            hex digest, or ``None`` for an unknown user; ``base_algorithm`` is ``MD5``,
            ``SHA-256`` or ``SHA-512-256`` (never ``-sess``).
        :param now: current time, seconds, same clock as ``challenge``.
        :param body: the message body, used only for qop=auth-int.
        :param request_uri: when given, the digest ``uri`` must equal it exactly.
        :return: the result; this method does not raise on bad input.
        """
        try:
            scheme, p = parse_auth_header(authorization_value)
        except MalformedAuthHeader as exc:
            return _fail(AuthFailure.MALFORMED, str(exc))
        username = p.get("username")
        if scheme.lower() != "digest":
            return _fail(AuthFailure.MALFORMED, f"scheme {scheme!r} is not Digest", username)
        for required in ("username", "realm", "nonce", "uri", "response"):
            if required not in p:
                return _fail(AuthFailure.MALFORMED, f"missing {required}", username)
        assert username is not None
        algorithm = _canonical_algorithm(p.get("algorithm", "MD5"))
        if algorithm is None:
            return _fail(
                AuthFailure.UNSUPPORTED_ALGORITHM, f"algorithm {p['algorithm']!r}", username
            )
        if p["realm"] != self.realm:
            return _fail(AuthFailure.BAD_REALM, f"realm {p['realm']!r}", username, algorithm)
        if request_uri is not None and p["uri"] != request_uri:
            return _fail(
                AuthFailure.MALFORMED,
                f"digest uri {p['uri']!r} is not the Request-URI",
                username,
                algorithm,
            )
        qop = p.get("qop")
        # RFC 7616 §3.4: qop is required; we always offer it, so its absence is a
        # downgrade to RFC 2069 without replay protection, which we refuse.
        if qop is None:
            return _fail(AuthFailure.UNSUPPORTED_ALGORITHM, "no qop", username, algorithm)
        if qop not in ("auth", "auth-int"):
            return _fail(AuthFailure.UNSUPPORTED_ALGORITHM, f"qop {qop!r}", username, algorithm)
        nc_text, cnonce = p.get("nc"), p.get("cnonce")
        if nc_text is None or cnonce is None or not _NC_RE.match(nc_text) or not cnonce:
            return _fail(
                AuthFailure.MALFORMED, "qop without a valid nc and cnonce", username, algorithm
            )
        nc = int(nc_text, 16)
        nonce = p["nonce"]
        issued = self._nonce_time(nonce)
        if issued is None:
            return _fail(AuthFailure.BAD_NONCE, "nonce was not issued here", username, algorithm)

        stored = ha1_lookup(username, self.realm, _base(algorithm))
        # Spend the same work whether or not the user exists (no timing oracle).
        key = stored if stored is not None else _h(algorithm, f"{username}:{self.realm}:")
        expected = _response(algorithm, key, nonce, method, p["uri"], qop, nc_text, cnonce, body)
        matches = hmac.compare_digest(
            expected.encode(), p["response"].lower().encode("utf-8", "replace")
        )
        if stored is None:
            return _fail(AuthFailure.UNKNOWN_USER, "no such user", username, algorithm)
        if not matches:
            return _fail(AuthFailure.WRONG_RESPONSE, "digest mismatch", username, algorithm)

        # RFC 7616 §3.3: stale only when the digest itself is valid.
        self._expire(now)
        record = self._nc.get(nonce)
        age = now - issued
        if age > self.nonce_ttl or age < -self.nonce_ttl:
            return _fail(AuthFailure.STALE, f"nonce is {age:.0f}s old", username, algorithm)
        if record is None and issued <= self._evicted_up_to:
            return _fail(AuthFailure.STALE, "nonce evicted from the nc table", username, algorithm)
        if record is not None and nc <= record[1]:
            # RFC 7616 §5.12: a repeated nonce-count is a replay.
            return _fail(AuthFailure.NC_REPLAY, f"nc {nc} after {record[1]}", username, algorithm)
        # Record nc only after a valid digest, so attackers cannot burn counts.
        self._nc[nonce] = (issued, nc)
        self._nc.move_to_end(nonce)
        while len(self._nc) > self._max_nonces:
            _, (old_issued, _) = self._nc.popitem(last=False)
            self._evicted_up_to = max(self._evicted_up_to, old_issued)
        return AuthResult(True, username, None, "", algorithm)

    def _expire(self, now: float) -> None:
        # Entries for nonces past their TTL are useless: those nonces are stale anyway.
        stale = [n for n, (issued, _) in self._nc.items() if now - issued > self.nonce_ttl]
        for n in stale:
            del self._nc[n]

    @property
    def tracked_nonces(self) -> int:
        """How many nonces the replay table holds now."""
        return len(self._nc)


# ------------------------------------------------------------------------------- client


def choose_challenge(values: Sequence[str]) -> str:
    """Pick the challenge with the strongest algorithm we support (RFC 8760 §2.4).

    Non-Digest schemes, malformed values and unknown algorithms are skipped. On a
    tie the earlier value wins (the server's preference).

    :param values: WWW-Authenticate or Proxy-Authenticate values of one response.
    :raises AuthError: none of them is usable.
    """
    best: tuple[int, str] | None = None
    for value in values:
        try:
            scheme, p = parse_auth_header(value)
        except MalformedAuthHeader:
            continue
        if scheme.lower() != "digest" or "nonce" not in p or "realm" not in p:
            continue
        alg = _canonical_algorithm(p.get("algorithm", "MD5"))
        if alg is None:
            continue
        strength = _STRENGTH[alg.upper()]
        if best is None or strength > best[0]:
            best = (strength, value)
    if best is None:
        raise AuthError(f"no usable Digest challenge among {len(values)} value(s)")
    return best[1]


class DigestClient:
    """Answers Digest challenges for one set of credentials (trunk registration, UAC legs).

    :param username: the user name.
    :param password: the password.
    :param cnonce_factory: returns a fresh client nonce; defaults to 16 random bytes hex.
    """

    MAX_NONCES = 64

    def __init__(
        self,
        username: str,
        password: str,
        *,
        cnonce_factory: Callable[[], str] | None = None,
    ) -> None:
        self.username = username
        self.password = password
        self._cnonce = cnonce_factory or (lambda: os.urandom(16).hex())
        self._nc: OrderedDict[str, int] = OrderedDict()

    def respond(
        self,
        challenge_value: str,
        method: str,
        uri: str,
        body: bytes = b"",
        *,
        cnonce: str | None = None,
    ) -> str:
        """Build the Authorization/Proxy-Authorization value answering one challenge.

        :param challenge_value: one WWW-Authenticate/Proxy-Authenticate value (see
            ``choose_challenge`` when there are several).
        :param method: the request method.
        :param uri: the Request-URI of the request being authorised (RFC 3261 §22.4).
        :param body: the request body, for qop=auth-int.
        :param cnonce: force the client nonce (tests); normally generated.
        :raises MalformedAuthHeader: the challenge does not parse.
        :raises AuthError: not Digest, missing realm/nonce, or unsupported algorithm/qop.
        """
        scheme, p = parse_auth_header(challenge_value)
        if scheme.lower() != "digest":
            raise AuthError(f"unsupported auth scheme {scheme!r}")
        if "realm" not in p or "nonce" not in p:
            raise AuthError("Digest challenge without realm or nonce")
        alg = _canonical_algorithm(p.get("algorithm", "MD5"))
        if alg is None:
            raise AuthError(f"unsupported digest algorithm {p['algorithm']!r}")
        realm, nonce = p["realm"], p["nonce"]
        qop: str | None = None
        if "qop" in p:
            options = [o.strip().lower() for o in p["qop"].split(",")]
            if "auth" in options:
                qop = "auth"
            elif "auth-int" in options:
                qop = "auth-int"
            else:
                raise AuthError(f"unsupported qop {p['qop']!r}")
        out = [("username", self.username), ("realm", realm), ("nonce", nonce), ("uri", uri)]
        key = ha1(self.username, realm, self.password, alg)
        if qop is None:
            # RFC 2617 §3.2.2.1 legacy form: no nc, no cnonce.
            response = _response(alg, key, nonce, method, uri, None, "", "", body)
            out.append(("response", response))
        else:
            count = self._nc.pop(nonce, 0) + 1
            self._nc[nonce] = count
            while len(self._nc) > self.MAX_NONCES:
                self._nc.popitem(last=False)
            nc = f"{count:08x}"
            cn = cnonce if cnonce is not None else self._cnonce()
            response = _response(alg, key, nonce, method, uri, qop, nc, cn, body)
            out += [("response", response), ("cnonce", cn), ("nc", nc), ("qop", qop)]
        if "algorithm" in p:
            out.append(("algorithm", alg))
        if "opaque" in p:
            out.append(("opaque", p["opaque"]))
        return format_auth_header("Digest", out)
