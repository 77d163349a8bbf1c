"""Who is calling the API: logins, sessions, and what each login may see.

Why this exists: DESIGN.md requires a session on every endpoint but ``/api/login`` and
``/metrics``, with roles and team scopes enforced on the server. This module is the one
place that decides it; the data handlers only ask :func:`principal` and
:meth:`Principal.sees`.

Theory of operation:

* **Accounts** are the site's ``[[agents]]`` (login = agent id, role ``agent``) and
  ``[[users]]`` (login = name, role from the file). Each password is kept only as a
  salted scrypt hash (:func:`hashlib.scrypt`, a random 16-byte salt per account, drawn
  when :class:`Accounts` is built); a login hashes what was typed with the account's
  salt and compares with :func:`hmac.compare_digest`. An unknown login is hashed and
  compared against a random decoy the same way, so neither the answer nor its timing
  tells which logins exist. Hashing is slow on purpose (:data:`SCRYPT_N`), so it runs on
  worker threads, a few at a time (:data:`MAX_CONCURRENT_HASHES`), never on the loop.
* **Scope** is fixed at login as the set of agent ids whose calls the login may see:
  an agent sees its own calls, a supervisor the agents of its teams (every agent when
  it has no teams, as ``docs/config.md`` says), an admin everything (``None``).
* **Sessions** are random 256-bit tokens in an ``HttpOnly; SameSite=Strict`` cookie
  (``Secure`` over HTTPS), held in memory under their SHA-256 and dropped after
  :data:`SESSION_IDLE` seconds without a request or :data:`SESSION_MAX_AGE` after login.
  A restart logs everyone out, which is the safe failure.
* **Brute force**: failed logins are counted per source address with the SIP side's
  tracker (:class:`sip.security.AuthFailureTracker`, its own instance, with the
  ``[sip] max_failures / window / ban_seconds`` settings); a banned source gets 429.
* **Cross-site requests**: ``SameSite=Strict`` keeps the cookie off other sites'
  requests; in addition a state-changing request whose ``Origin`` names another host
  is refused, and login takes JSON only (a cross-site form cannot send it).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from sip.security import AuthFailureTracker

from ..config import SiteConfig
from .errors import ApiError
from .state import STATE

__all__ = [
    "COOKIE",
    "PUBLIC_PATHS",
    "Accounts",
    "LoginLimiter",
    "Principal",
    "Session",
    "SessionStore",
    "principal",
    "routes",
    "same_origin",
    "session_middleware",
    "session_token",
]

logger = logging.getLogger("hotline.api")

#: Name of the session cookie.
COOKIE = "hotline_session"
#: Seconds without a request after which a session ends.
SESSION_IDLE = 30 * 60.0
#: Seconds after login after which a session ends whatever its use (one long shift).
SESSION_MAX_AGE = 12 * 3600.0
#: Bound on live sessions (the least recently used goes first).
MAX_SESSIONS = 10000
#: Bound on live sessions of one login (its oldest goes first).
MAX_SESSIONS_PER_LOGIN = 32
#: Endpoints that need no session (DESIGN.md, "Interfaces"; the API description).
PUBLIC_PATHS = frozenset({"/api/login", "/metrics", "/api/openapi.json", "/", "/supervisor"})
#: Path prefix of the pages' static files (no data in them; the pages log in themselves).
PUBLIC_PREFIX = "/static/"
#: Methods that change nothing, so need no cross-site check.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: scrypt cost (RFC 7914): N = 2**14, r = 8, p = 1 is 16 MiB and about 60 ms per hash,
#: the parameters its author gives for interactive logins.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
#: Bytes of salt per account and of each hash.
SALT_BYTES = 16
HASH_BYTES = 32
#: Logins hashed at once (each takes 16 MiB and a core for ~60 ms); the rest wait.
MAX_CONCURRENT_HASHES = 4


@dataclass(frozen=True, slots=True)
class Principal:
    """A logged-in account and what it may see."""

    #: The login (agent id or user name).
    login: str
    #: Display name.
    name: str
    #: ``agent``, ``supervisor`` or ``admin``.
    role: str
    #: The agent id when the login is an ``[[agents]]`` entry, else None.
    agent: str | None
    #: Teams of the account (an agent's own, a user's data scope).
    teams: tuple[str, ...]
    #: Agent ids whose calls it may see; None means every call.
    scope: frozenset[str] | None

    def sees(self, agents: Iterable[str]) -> bool:
        """Whether a call handled by ``agents`` (ids) is visible to this login."""
        if self.scope is None:
            return True
        return any(a in self.scope for a in agents)

    def sees_agent(self, agent: str) -> bool:
        """Whether this login may look at agent ``agent``'s calls."""
        return self.scope is None or agent in self.scope

    def to_json(self) -> dict[str, object]:
        """The ``/api/login`` and ``/api/session`` answer."""
        return {
            "user": self.login,
            "name": self.name,
            "role": self.role,
            "agent": self.agent,
            "teams": list(self.teams),
        }


# Typed request keys where aiohttp has them (3.14+; plain strings warn there).
_PRINCIPAL: Any = (web.RequestKey("hotline.principal", Principal)
                   if hasattr(web, "RequestKey") else "hotline.principal")
_SESSION: Any = (web.RequestKey("hotline.session", str)
                 if hasattr(web, "RequestKey") else "hotline.session")


def password_hash(password: str, salt: bytes) -> bytes:
    """The salted scrypt hash of ``password`` (:data:`SCRYPT_N`, ``r``, ``p``)."""
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R,
                          p=SCRYPT_P, maxmem=2 * 128 * SCRYPT_R * SCRYPT_N,
                          dklen=HASH_BYTES)


@dataclass(frozen=True, slots=True)
class _Account:
    salt: bytes
    hash: bytes
    principal: Principal


class Accounts:
    """The site's logins with their salted password hashes.

    Building it hashes every password (on a pool of threads, one per core: about
    60 ms of CPU each), so a server builds it off the event loop.

    :param config: the site (``[[agents]]`` and ``[[users]]``).
    """

    def __init__(self, config: SiteConfig) -> None:
        entries: list[tuple[str, str, Principal]] = []
        for agent in config.agents:
            entries.append((agent.id, str(agent.password),
                            Principal(agent.id, agent.name, "agent", agent.id, agent.teams,
                                      frozenset({agent.id}))))
        for user in config.users:
            if user.role == "admin":
                scope: frozenset[str] | None = None
            elif user.role == "supervisor":
                wanted = set(user.teams)
                scope = None if not wanted else frozenset(
                    a.id for a in config.agents if wanted.intersection(a.teams))
            else:  # a [[users]] entry with role agent: no extension, so no calls of its own
                scope = frozenset()
            entries.append((user.name, str(user.password),
                            Principal(user.name, user.name, user.role, None, user.teams,
                                      scope)))
        salts = [secrets.token_bytes(SALT_BYTES) for _ in entries]
        workers = max(1, min(len(entries), os.cpu_count() or 1))
        with ThreadPoolExecutor(workers, thread_name_prefix="hotline-api-hash") as pool:
            hashes = list(pool.map(password_hash, [e[1] for e in entries], salts))
        self._accounts: dict[str, _Account] = {
            login: _Account(salt, digest, who)
            for (login, _, who), salt, digest in zip(entries, salts, hashes, strict=True)
        }
        # Unknown logins are hashed with this salt and compared with a hash nothing has.
        self._decoy = _Account(secrets.token_bytes(SALT_BYTES),
                               secrets.token_bytes(HASH_BYTES),
                               Principal("", "", "agent", None, (), frozenset()))
        self._gate: asyncio.Semaphore | None = None

    def __len__(self) -> int:
        return len(self._accounts)

    def check(self, login: str, password: str) -> Principal | None:
        """The account when ``password`` is right, else None (in about constant time:
        one scrypt hash and one comparison whether or not ``login`` exists). Blocks for
        the hash; on the event loop use :meth:`verify`."""
        entry = self._accounts.get(login)
        account = entry if entry is not None else self._decoy
        ok = hmac.compare_digest(password_hash(password, account.salt), account.hash)
        return entry.principal if ok and entry is not None else None

    async def verify(self, login: str, password: str) -> Principal | None:
        """:meth:`check` on a worker thread, at most :data:`MAX_CONCURRENT_HASHES` at
        once (a burst of logins queues instead of taking all memory and cores)."""
        if self._gate is None:
            self._gate = asyncio.Semaphore(MAX_CONCURRENT_HASHES)
        async with self._gate:
            return await asyncio.to_thread(self.check, login, password)


@dataclass(slots=True)
class Session:
    """One logged-in browser or script."""

    principal: Principal
    #: Clock time of the login.
    created: float
    #: Clock time of the last request.
    seen: float


class SessionStore:
    """Sessions by token, in memory, with idle and absolute expiry.

    :param clock: monotonic seconds (injected for tests).
    :param idle: seconds without a request after which a session ends.
    :param max_age: seconds after login after which it ends anyway.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        idle: float = SESSION_IDLE,
        max_age: float = SESSION_MAX_AGE,
    ) -> None:
        self.clock = clock
        self.idle = idle
        self.max_age = max_age
        # sha256(token) -> session, least recently used first.
        self._sessions: OrderedDict[bytes, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()

    def create(self, principal: Principal) -> str:
        """Start a session and return its token (the cookie value)."""
        now = self.clock()
        self.expire()
        mine = [k for k, s in self._sessions.items() if s.principal.login == principal.login]
        for key in mine[: max(0, len(mine) - MAX_SESSIONS_PER_LOGIN + 1)]:
            del self._sessions[key]
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.popitem(last=False)
        token = secrets.token_urlsafe(32)
        self._sessions[self._key(token)] = Session(principal, now, now)
        return token

    def get(self, token: str) -> Session | None:
        """The live session of ``token`` (its idle timer restarts), or None."""
        key = self._key(token)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self.clock()
        if now - session.seen >= self.idle or now - session.created >= self.max_age:
            del self._sessions[key]
            return None
        session.seen = now
        self._sessions.move_to_end(key)
        return session

    def drop(self, token: str) -> bool:
        """End a session (logout); returns whether it existed."""
        return self._sessions.pop(self._key(token), None) is not None

    def expire(self) -> int:
        """Forget ended sessions; returns how many."""
        now = self.clock()
        dead = [k for k, s in self._sessions.items()
                if now - s.seen >= self.idle or now - s.created >= self.max_age]
        for key in dead:
            del self._sessions[key]
        return len(dead)


class LoginLimiter:
    """Failed logins per source address, with bans (``[sip]`` brute-force settings).

    :param config: the site.
    :param clock: seconds (injected for tests).
    """

    def __init__(self, config: SiteConfig, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        sip = config.sip
        # ban_seconds = 0 turns bans off (the tracker needs a positive ban time).
        self._tracker = (
            AuthFailureTracker(sip.max_failures, float(sip.window), float(sip.ban_seconds))
            if sip.ban_seconds > 0 else None
        )

    def retry_after(self, ip: str) -> int | None:
        """Seconds until ``ip`` may try again, or None when it is not banned."""
        if self._tracker is None or not self._tracker.is_banned(ip, self.clock()):
            return None
        return max(1, round(self._tracker.ban_time))

    def failure(self, ip: str) -> bool:
        """Count a failed login; returns whether it started a ban."""
        return self._tracker is not None and self._tracker.record_failure(ip, self.clock())

    def success(self, ip: str) -> None:
        """Forget the failures of ``ip`` after a good login."""
        if self._tracker is not None:
            self._tracker.record_success(ip, self.clock())


# --------------------------------------------------------------------------- HTTP side


def principal(request: web.Request) -> Principal:
    """The logged-in account of a request that passed :func:`session_middleware`."""
    found = request.get(_PRINCIPAL)
    if not isinstance(found, Principal):  # a public endpoint asked: a bug, not the client
        raise RuntimeError(f"{request.path} has no session")
    return found


def session_token(request: web.Request) -> str:
    """The session token of a request that passed :func:`session_middleware` (a
    WebSocket checks with it that its session still lives)."""
    token = request.get(_SESSION)
    if not isinstance(token, str):
        raise RuntimeError(f"{request.path} has no session")
    return token


def same_origin(request: web.Request) -> bool:
    """False when the request's ``Origin`` names another host than its ``Host`` (a
    cross-site request); True without ``Origin`` (not a browser)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser, or a same-origin GET: SameSite covers the cookie
    return urlsplit(origin).netloc.lower() == request.host.lower()


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse cross-site writes; require a live session outside :data:`PUBLIC_PATHS`."""
    if request.method not in _SAFE_METHODS and not same_origin(request):
        raise ApiError(403, "cross-origin request refused")
    if request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIX):
        return await handler(request)
    token = request.cookies.get(COOKIE)
    session = request.app[STATE].sessions.get(token) if token else None
    if session is None:
        raise ApiError(401, "login required")
    request[_PRINCIPAL] = session.principal
    request[_SESSION] = token
    return await handler(request)


async def login(request: web.Request) -> web.Response:
    """``POST /api/login`` with ``{"username": ..., "password": ...}`` (``"user"`` is
    accepted for ``"username"``)."""
    state = request.app[STATE]
    ip = request.remote or ""
    wait = state.limiter.retry_after(ip)
    if wait is not None:
        state.metrics.logins.labels("banned").inc()
        raise ApiError(429, "too many failed logins; try again later",
                       {"Retry-After": str(wait)})
    if request.content_type != "application/json":
        raise ApiError(415, "expected a JSON body (Content-Type: application/json)")
    try:
        body = json.loads(await request.text())
    except ValueError:
        raise ApiError(400, "expected a JSON body") from None
    user = body.get("username", body.get("user")) if isinstance(body, dict) else None
    password = body.get("password") if isinstance(body, dict) else None
    if not isinstance(user, str) or not isinstance(password, str) or not user:
        raise ApiError(400, 'expected {"username": "...", "password": "..."}')
    try:  # JSON may carry lone surrogates ("\ud800"), which are no text at all
        user.encode("utf-8")
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "user and password must be valid Unicode text") from None
    who = await state.accounts.verify(user, password)
    try:  # the audit trail (auth_events, as for SIP); a busy database must not stop logins
        await state.db.run(state.db.storage.record_auth_event, time.time(), ip, user[:64],
                           "ok" if who is not None else "bad_password", "web")
    except Exception:  # noqa: BLE001
        logger.exception("auth_event_write_failed", extra={"ip": ip})
    if who is None:
        banned = state.limiter.failure(ip)
        state.metrics.logins.labels("failed").inc()
        logger.warning("web_login_failed", extra={"ip": ip, "user": user[:64],
                                                  "banned": banned})
        raise ApiError(401, "wrong user or password")
    state.limiter.success(ip)
    old = request.cookies.get(COOKIE)
    if old:
        state.sessions.drop(old)  # no session fixation: a login always gets a new token
    token = state.sessions.create(who)
    state.metrics.logins.labels("ok").inc()
    logger.info("web_login", extra={"ip": ip, "user": who.login, "role": who.role})
    resp = web.json_response(who.to_json())
    resp.set_cookie(COOKIE, token, path="/", httponly=True, samesite="Strict",
                    secure=request.secure or None)
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def logout(request: web.Request) -> web.Response:
    """``POST /api/logout``: end this session."""
    request.app[STATE].sessions.drop(request[_SESSION])
    resp = web.Response(status=204)
    resp.del_cookie(COOKIE, path="/", secure=request.secure or None, httponly=True,
                    samesite="Strict")
    return resp


async def session_info(request: web.Request) -> web.Response:
    """``GET /api/session``: who is logged in, and the idle timeout."""
    data = principal(request).to_json()
    data["idle_timeout"] = int(request.app[STATE].sessions.idle)
    resp = web.json_response(data)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def routes() -> list[web.RouteDef]:
    """The login, logout and session routes."""
    return [
        web.post("/api/login", login),
        web.post("/api/logout", logout),
        web.get("/api/session", session_info),
    ]
