"""Load and validate ``site.toml`` into typed, frozen dataclasses.

Theory of operation: :func:`load_config` parses the file with :mod:`tomllib` and walks it
section by section with a small reader (:class:`_Table`) that knows the dotted path of every
value (``queues[2].strategy``). Each reader takes the keys it understands and, when done,
rejects whatever is left, so an unknown or misspelt key is an error rather than a silently
ignored setting. Route targets (``queue:billing``) are parsed where they appear and their
references (does queue ``billing`` exist?) are checked once every section is read.

Every problem raises :class:`ConfigError`, which names the file, the key and what was
expected, e.g. ``site.toml: queues[1].strategy: expected one of ring-all, ... (got "fastest")``.

Relative paths (``server.data_dir``, ``tls.cert``, ``tls.key``) are resolved against the
directory holding the config file, so a site behaves the same whatever the working directory.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import os
import re
import secrets
import string
import tomllib
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as dtime
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from hotline import __version__

__all__ = [
    "STRATEGIES",
    "TARGET_KINDS",
    "AgentConfig",
    "Address",
    "ConfigError",
    "DemoPasswords",
    "IvrConfig",
    "Listener",
    "LoggingConfig",
    "QueueConfig",
    "RecordingConfig",
    "RouteConfig",
    "Secret",
    "ServerConfig",
    "SipConfig",
    "SiteConfig",
    "Target",
    "TlsConfig",
    "TrunkConfig",
    "UserConfig",
    "apply_overrides",
    "demo_config",
    "demo_passwords",
    "load_config",
    "parse_target",
]

#: Queue strategies, in the order they are listed in error messages.
STRATEGIES = (
    "ring-all",
    "longest-idle",
    "round-robin",
    "fewest-calls",
    "least-talk-time",
    "skills",
    "random",
    "linear",
    "sticky",
)
#: Route target kinds; the first group takes an argument after a colon.
TARGET_KINDS = (
    "ivr",
    "queue",
    "agent",
    "trunk",
    "voicemail",
    "conference",
    "play",
    "echo",
    "hangup",
)
TARGETS_WITH_ARG = frozenset(TARGET_KINDS[:7])
SIP_TRANSPORTS = ("udp", "tcp", "tls", "ws", "wss")
TRUNK_TRANSPORTS = ("udp", "tcp", "tls")
ROLES = ("agent", "supervisor", "admin")
RECORDING_FORMATS = ("wav", "opus", "mp3")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("logfmt", "json")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DTMF_KEYS = frozenset("0123456789*#ABCD")
SKILL_MIN, SKILL_MAX = 1, 10
MIN_PASSWORD_LENGTH = 8
DEMO_AGENT_IDS = ("1001", "1002", "1003", "1004", "1005")
DEMO_PASSWORDS_FILE = "demo-passwords.json"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_AGENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TIME_RANGE_RE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_MISSING: Any = object()


# --------------------------------------------------------------------------- errors


class ConfigError(Exception):
    """A site configuration problem, with what an operator needs to fix it.

    ``str(err)`` reads ``FILE: KEY: expected EXPECTED (got GOT)``; the key and the
    ``(got ...)`` part are left out where they do not apply.
    """

    def __init__(self, file: str, key: str, expected: str, got: str | None = None) -> None:
        #: The config file as the user named it (or ``<demo>`` for the built-in site).
        self.file = file
        #: Dotted path of the offending key, e.g. ``queues[1].strategy``; empty for the file.
        self.key = key
        #: What would have been accepted.
        self.expected = expected
        #: What was found, already formatted for display, or None.
        self.got = got
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}: " if self.key else f"{self.file}: "
        tail = f" (got {self.got})" if self.got is not None else ""
        return f"{where}expected {self.expected}{tail}"


def _show(value: Any) -> str:
    """Format a TOML value for an error message, TOML-like and short."""
    if value is _MISSING:
        return "nothing"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, int | float):
        text = repr(value)
    elif isinstance(value, list):
        text = "[" + ", ".join(_show(v) for v in value) + "]"
    elif isinstance(value, dict):
        text = "a table"
    else:
        text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --------------------------------------------------------------------------- value types


class Secret(str):
    """A password or other secret: a ``str`` whose ``repr`` does not reveal it.

    Dataclass reprs (and so log lines and tracebacks) show ``Secret('***')``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('***')"


@dataclass(frozen=True, slots=True)
class Address:
    """A host and port to listen on or to connect to."""

    #: IP literal or host name, without brackets for IPv6.
    host: str
    #: TCP/UDP port.
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Listener:
    """One SIP listener, parsed from ``"udp:0.0.0.0:5060"``."""

    #: One of udp, tcp, tls, ws, wss.
    transport: str
    #: Address to bind, without brackets for IPv6.
    host: str
    #: Port to bind.
    port: int

    def __str__(self) -> str:
        return f"{self.transport}:{Address(self.host, self.port)}"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a route, IVR key or queue overflow sends a call: ``kind[:arg]``."""

    #: One of :data:`TARGET_KINDS`.
    kind: str
    #: Queue/IVR/trunk name, agent id, mailbox, room or prompt; None for echo and hangup.
    arg: str | None = None

    def __str__(self) -> str:
        return self.kind if self.arg is None else f"{self.kind}:{self.arg}"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """``[server]``: listeners, media workers and where data lives."""

    #: SIP listeners.
    sip: tuple[Listener, ...] = (
        Listener("udp", "0.0.0.0", 5060),
        Listener("tcp", "0.0.0.0", 5060),
    )
    #: Plain HTTP (web softphone, REST, metrics); None disables it.
    http: Address | None = Address("0.0.0.0", 8080)
    #: HTTPS (needs ``[tls]``); None disables it. Browsers need HTTPS for microphones
    #: except on localhost.
    https: Address | None = None
    #: Inclusive RTP port range; the first is even, RTCP uses port+1.
    rtp_ports: tuple[int, int] = (20000, 29999)
    #: Media worker processes; 0 means one per CPU core.
    media_workers: int = 0
    #: hotline.db, recordings/, prompts/ and the prompt cache live here.
    data_dir: Path = Path("hotline-data")
    #: Public IP to put in SDP and Contact when behind NAT; None uses the bound address.
    external_ip: str | None = None
    #: IANA time zone for route ``time``/``days``; None uses the system's local zone.
    timezone: str | None = None


@dataclass(frozen=True, slots=True)
class SipConfig:
    """``[sip]``: protocol defaults and brute-force protection."""

    #: Digest authentication realm.
    realm: str = "hotline"
    #: User-Agent and Server header value.
    user_agent: str = f"hotline/{__version__}"
    #: Failed authentications from one IP within ``window`` seconds that trigger a ban.
    max_failures: int = 5
    #: Sliding window, in seconds, over which failures are counted.
    window: int = 60
    #: How long an IP stays banned, in seconds.
    ban_seconds: int = 600
    #: RFC 4028 session refresh interval offered/accepted, in seconds (0 disables timers).
    session_expires: int = 1800
    #: RFC 4028 Min-SE, at least 90 seconds.
    min_se: int = 90
    #: REGISTER expiry bounds, in seconds (RFC 3261 10.3: 423 below the minimum).
    min_expires: int = 60
    max_expires: int = 3600
    #: Digest algorithms challenged with, one WWW-Authenticate each, in this order
    #: (RFC 8760). Only MD5 by default: deployed phones such as baresip/libre 1.x
    #: reject the whole 401 when any challenge has an algorithm they do not know.
    #: Sites whose phones all support RFC 8760 set ["SHA-256", "MD5"].
    digest_algorithms: tuple[str, ...] = ("MD5",)


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """``[tls]``: certificate and key for tls:/wss: listeners and HTTPS."""

    #: PEM certificate chain.
    cert: Path
    #: PEM private key.
    key: Path


@dataclass(frozen=True, slots=True)
class TrunkConfig:
    """One ``[[trunks]]`` entry: a carrier or PBX we exchange calls with."""

    name: str
    #: Where outbound calls (and REGISTER) go.
    host: str
    port: int = 5060
    #: Inbound calls are accepted only from these networks.
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    username: str | None = None
    password: Secret | None = None
    #: Register to the carrier with username/password.
    register: bool = False
    #: Registration interval asked for, in seconds.
    expires: int = 3600
    transport: str = "udp"
    #: Maximum concurrent calls on this trunk; 0 means no limit.
    channels: int = 0
    #: Seconds between OPTIONS keepalives; 0 disables them.
    options_interval: int = 60
    #: Caller number presented on outbound calls; None passes the caller through.
    caller_id: str | None = None


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """One ``[[agents]]`` entry: a SIP extension and a web-softphone login."""

    #: Extension number and login, e.g. ``"1001"``.
    id: str
    name: str
    password: Secret
    #: Skill name to level (1..10).
    skills: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    teams: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UserConfig:
    """One ``[[users]]`` entry: a supervisor or admin of the web console."""

    name: str
    password: Secret
    #: agent | supervisor | admin.
    role: str = "supervisor"
    #: Data scope; empty means every team (admins only see everything regardless).
    teams: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """One ``[[queues]]`` entry."""

    name: str
    strategy: str = "longest-idle"
    #: Minimum skill levels an agent needs to take calls from this queue.
    skills: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    #: Explicit members (agent ids); empty means every agent that has the skills.
    agents: tuple[str, ...] = ()
    #: Seconds an agent's phone rings before the next agent is tried.
    ring_timeout: int = 15
    #: Seconds a caller waits before ``overflow``; 0 means forever.
    max_wait: int = 300
    #: Where callers go after ``max_wait``; None hangs up.
    overflow: Target | None = None
    #: Seconds of after-call work before the agent gets the next call.
    wrapup: int = 10
    #: Service-level threshold in seconds (answered within it counts as "in SL").
    service_level: int = 20
    #: Higher-priority queues are served first when an agent is in several.
    priority: int = 0
    #: Music on hold prompt; None uses the built-in tone.
    moh: str | None = None


@dataclass(frozen=True, slots=True)
class IvrConfig:
    """One ``[ivr.NAME]`` menu."""

    name: str
    #: Prompt played on entry (file under data_dir/prompts or ``tts:TEXT``).
    greeting: str
    #: DTMF key to target.
    menu: Mapping[str, Target] = field(default_factory=lambda: MappingProxyType({}))
    #: Seconds to wait for a key after the greeting.
    timeout: int = 5
    #: Times the greeting is replayed after a timeout or invalid key.
    retries: int = 3
    #: Prompt played on an invalid key; None uses a built-in one.
    invalid: str | None = None
    #: Where the call goes after the retries are used up.
    fallback: Target = Target("hangup")


@dataclass(frozen=True, slots=True)
class RecordingConfig:
    """``[recording]``."""

    enabled: bool = True
    format: str = "opus"
    #: Recordings older than this are deleted; 0 keeps them forever.
    retention_days: int = 365


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """One ``[[routes]]`` entry; the first matching route wins."""

    #: Called number (DID): a literal, or ``re:REGEX`` matched against the whole number.
    match: str
    to: Target
    #: Caller number condition, same syntax as ``match``; None matches any caller.
    caller: str | None = None
    #: Local time window ``(start, end)``; end before start wraps past midnight.
    time: tuple[dtime, dtime] | None = None
    #: Weekdays (0 = Monday) the route applies on; empty means every day.
    days: frozenset[int] = frozenset()
    #: Queue priority given to callers on this route (VIP > 0).
    priority: int = 0

    def matches(self, called: str, caller: str, when: datetime) -> bool:
        """Tell whether a call matches this route.

        :param called: the called number (DID or dialled extension).
        :param caller: the caller's number.
        :param when: local time of the call, in the site's time zone.
        """
        if not _pattern_matches(self.match, called):
            return False
        if self.caller is not None and not _pattern_matches(self.caller, caller):
            return False
        if self.days and when.weekday() not in self.days:
            return False
        if self.time is not None:
            start, end = self.time
            now = when.time().replace(tzinfo=None)
            inside = start <= now < end if start <= end else (now >= start or now < end)
            if not inside:
                return False
        return True


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """``[logging]``."""

    level: str = "info"
    format: str = "logfmt"


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """A whole validated site."""

    #: Where it came from (path as given, or ``<demo>``).
    source: str
    server: ServerConfig = ServerConfig()
    sip: SipConfig = SipConfig()
    tls: TlsConfig | None = None
    trunks: tuple[TrunkConfig, ...] = ()
    agents: tuple[AgentConfig, ...] = ()
    users: tuple[UserConfig, ...] = ()
    queues: tuple[QueueConfig, ...] = ()
    ivr: Mapping[str, IvrConfig] = field(default_factory=lambda: MappingProxyType({}))
    recording: RecordingConfig = RecordingConfig()
    routes: tuple[RouteConfig, ...] = ()
    logging: LoggingConfig = LoggingConfig()
    #: Things that are valid but probably not what was meant (e.g. short passwords).
    warnings: tuple[str, ...] = ()

    def agent(self, agent_id: str) -> AgentConfig | None:
        """Return the agent with this id, or None."""
        return next((a for a in self.agents if a.id == agent_id), None)

    def queue(self, name: str) -> QueueConfig | None:
        """Return the queue with this name, or None."""
        return next((q for q in self.queues if q.name == name), None)

    def trunk(self, name: str) -> TrunkConfig | None:
        """Return the trunk with this name, or None."""
        return next((t for t in self.trunks if t.name == name), None)

    def route(self, called: str, caller: str, when: datetime) -> RouteConfig | None:
        """Return the first route matching a call, or None.

        :param when: time of the call; an aware datetime is converted to the site's time
            zone (``server.timezone``, else the system's), a naive one is taken as local.
        """
        local = self.local_time(when)
        return next((r for r in self.routes if r.matches(called, caller, local)), None)

    def local_time(self, when: datetime) -> datetime:
        """Convert an aware datetime to the site's time zone; naive ones pass unchanged."""
        if when.tzinfo is None:
            return when
        if self.server.timezone:
            return when.astimezone(zoneinfo.ZoneInfo(self.server.timezone))
        return when.astimezone()

    def queue_members(self, queue: QueueConfig) -> tuple[AgentConfig, ...]:
        """Return the agents that may take calls from ``queue``.

        Explicit ``agents`` if given, else every agent whose skills meet the queue's minimums.
        """
        if queue.agents:
            return tuple(a for a in self.agents if a.id in queue.agents)
        return tuple(
            a
            for a in self.agents
            if all(a.skills.get(s, 0) >= lvl for s, lvl in queue.skills.items())
        )

    def summary(self) -> str:
        """One line of counts, for ``hotline config check``."""
        return (
            f"{len(self.server.sip)} SIP listeners, {len(self.trunks)} trunks, "
            f"{len(self.agents)} agents, {len(self.users)} users, {len(self.queues)} queues, "
            f"{len(self.ivr)} IVR menus, {len(self.routes)} routes"
        )


def _keys(cls: type, *, without: tuple[str, ...] = ()) -> tuple[str, ...]:
    return tuple(sorted(f.name for f in dataclasses.fields(cls) if f.name not in without))


SECTIONS = tuple(
    sorted(
        (
            "server",
            "sip",
            "tls",
            "trunks",
            "agents",
            "users",
            "queues",
            "ivr",
            "recording",
            "routes",
            "logging",
        )
    )
)
_SERVER_KEYS = _keys(ServerConfig)
_SIP_KEYS = _keys(SipConfig)
_DIGEST_ALG_RE = re.compile(r"^(MD5|SHA-256|SHA-512-256)$")
_TLS_KEYS = _keys(TlsConfig)
_TRUNK_KEYS = _keys(TrunkConfig)
_AGENT_KEYS = _keys(AgentConfig)
_USER_KEYS = _keys(UserConfig)
_QUEUE_KEYS = _keys(QueueConfig)
_IVR_KEYS = _keys(IvrConfig, without=("name",))
_RECORDING_KEYS = _keys(RecordingConfig)
_ROUTE_KEYS = _keys(RouteConfig)
_LOGGING_KEYS = _keys(LoggingConfig)


def _pattern_matches(pattern: str, number: str) -> bool:
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], number) is not None
    return pattern == number


# --------------------------------------------------------------------------- reader


class _Table:
    """A TOML table being read: takes keys by name and rejects the leftovers."""

    def __init__(self, file: str, path: str, data: Mapping[str, Any]) -> None:
        self.file = file
        self.path = path
        self.data = data
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, expected: str, got: Any = _MISSING) -> NoReturn:
        raise ConfigError(self.file, self.key(name), expected, _show(got))

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str, default: Any = _MISSING) -> Any:
        self.seen.add(name)
        if name in self.data:
            return self.data[name]
        if default is _MISSING:
            raise ConfigError(self.file, self.key(name), "a value (this key is required)")
        return default

    def text(
        self,
        name: str,
        default: Any = _MISSING,
        *,
        choices: Sequence[str] | None = None,
        regex: re.Pattern[str] | None = None,
        what: str = "a non-empty string",
    ) -> Any:
        value = self.raw(name, default)
        if value is default and default is not _MISSING:
            return value
        if choices is not None:
            if value not in choices:
                self.fail(name, "one of " + ", ".join(choices), value)
            return value
        if not isinstance(value, str) or not value.strip():
            self.fail(name, what, value)
        if regex is not None and not regex.match(value):
            self.fail(name, what, value)
        return value

    def integer(
        self, name: str, default: Any = _MISSING, *, lo: int = 0, hi: int | None = None
    ) -> Any:
        value = self.raw(name, default)
        if value is default and default is not _MISSING:
            return value
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < lo
            or (hi is not None and value > hi)
        ):
            rng = f"an integer {lo}..{hi}" if hi is not None else f"an integer >= {lo}"
            self.fail(name, rng, value)
        return value

    def flag(self, name: str, default: Any = _MISSING) -> Any:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            self.fail(name, "true or false", value)
        return value

    def array(self, name: str, default: Any = _MISSING) -> Any:
        value = self.raw(name, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, list):
            self.fail(name, "an array", value)
        return value

    def str_list(self, name: str, *, regex: re.Pattern[str] | None = None, what: str = "") -> Any:
        items = self.array(name, [])
        out = []
        for i, item in enumerate(items):
            if (
                not isinstance(item, str)
                or not item.strip()
                or (regex is not None and not regex.match(item))
            ):
                raise ConfigError(
                    self.file, f"{self.key(name)}[{i}]", what or "a non-empty string", _show(item)
                )
            out.append(item)
        return tuple(out)

    def table(self, name: str, default: Any = _MISSING) -> _Table | None:
        value = self.raw(name, default)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(name, "a table", value)
        return _Table(self.file, self.key(name), value)

    def expect(self, known: Sequence[str], what: str = "keys") -> None:
        """Reject keys not in ``known`` before anything else is read.

        Checking first means a misspelt key is reported as such, not as the required key
        it was meant to be.
        """
        for name in self.data:
            if name not in known:
                hint = difflib.get_close_matches(name, known, n=1)
                got = "an unknown key" if what == "keys" else "an unknown section"
                if hint:
                    got += f'; did you mean "{hint[0]}"?'
                raise ConfigError(
                    self.file, self.key(name), f"one of the {what} " + ", ".join(known), got
                )

    def done(self) -> None:
        """Backstop: every key present must have been read."""
        extra = sorted(set(self.data) - self.seen)
        if extra:
            raise ConfigError(self.file, self.key(extra[0]), "no such key", "an unknown key")


class _Loader:
    """Reads one document; collects target references to check at the end."""

    def __init__(self, file: str, base: Path, env: Mapping[str, str], require: bool) -> None:
        self.file = file
        self.base = base
        self.env = env
        self.require_secrets = require
        self.refs: list[tuple[str, Target]] = []
        self.warnings: list[str] = []

    # -- helpers

    def secret(self, t: _Table, name: str, default: Any = _MISSING) -> Secret | None:
        value = t.text(name, default, what="a non-empty string or env:VARIABLE")
        if value is None:
            return None
        if value.startswith("env:"):
            var = value[4:]
            if not _ENV_RE.match(var):
                t.fail(name, "env: followed by an environment variable name", value)
            if var not in self.env or not self.env[var]:
                if not self.require_secrets:
                    return Secret("<unset:" + var + ">")
                raise ConfigError(
                    self.file,
                    t.key(name),
                    f"environment variable {var} to be set",
                    f"{var} unset" if var not in self.env else f"{var} empty",
                )
            return Secret(self.env[var])
        return Secret(value)

    def path(self, t: _Table, name: str, default: Any = _MISSING) -> Path:
        value = t.text(name, default, what="a path")
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base / p

    def target(self, t: _Table | None, key: str, value: Any) -> Target:
        """Parse a route target syntactically; references are checked in :meth:`finish`."""
        try:
            target = parse_target(value)
        except ValueError as exc:
            raise ConfigError(self.file, key, str(exc), _show(value)) from None
        self.refs.append((key, target))
        return target

    def skills(self, t: _Table, name: str) -> Mapping[str, int]:
        sub = t.table(name, {})
        assert sub is not None
        out: dict[str, int] = {}
        for skill in sub.data:
            if not _NAME_RE.match(skill):
                sub.fail(skill, "a skill name of letters, digits, _ . -", skill)
            out[skill] = sub.integer(skill, lo=SKILL_MIN, hi=SKILL_MAX)
        return MappingProxyType(out)

    def address(self, value: Any, key: str) -> Address:
        host, port = _split_host_port(value)
        if host is None or port is None or not _valid_host(host) or not 1 <= port <= 65535:
            raise ConfigError(self.file, key, "HOST:PORT with a port 1..65535", _show(value))
        return Address(host, port)

    def pattern(self, t: _Table, name: str, default: Any = _MISSING) -> Any:
        value = t.text(name, default, what='a number, or "re:" followed by a regular expression')
        if value is None:
            return None
        if value.startswith("re:"):
            try:
                re.compile(value[3:])
            except re.error as exc:
                t.fail(name, f"a valid regular expression ({exc})", value)
        return value

    def prompt(self, t: _Table, name: str, default: Any = _MISSING) -> Any:
        value = t.text(name, default, what="a prompt file name or tts:TEXT")
        if value is not None and value.startswith("tts:") and not value[4:].strip():
            t.fail(name, "text after tts:", value)
        return value

    def array_of_tables(self, doc: _Table, name: str) -> list[_Table]:
        items = doc.array(name, [])
        out = []
        for i, item in enumerate(items):
            key = f"{name}[{i}]"
            if not isinstance(item, dict):
                raise ConfigError(self.file, key, "a table ([[" + name + "]])", _show(item))
            out.append(_Table(self.file, key, item))
        return out

    # -- sections

    def server(self, doc: _Table) -> ServerConfig:
        t = doc.table("server", {})
        assert t is not None
        t.expect(_SERVER_KEYS)
        d = ServerConfig()
        listeners: list[Listener] = []
        raw = t.array("sip", _MISSING) if t.has("sip") else None
        if raw is None:
            t.seen.add("sip")
            listeners = list(d.sip)
        else:
            if not raw:
                t.fail("sip", 'at least one listener such as "udp:0.0.0.0:5060"', raw)
            for i, item in enumerate(raw):
                key = f"{t.key('sip')}[{i}]"
                listener = _parse_listener(item)
                if listener is None:
                    raise ConfigError(
                        self.file,
                        key,
                        "TRANSPORT:HOST:PORT with TRANSPORT one of "
                        + ", ".join(SIP_TRANSPORTS)
                        + " and a port 1..65535",
                        _show(item),
                    )
                if listener in listeners:
                    raise ConfigError(self.file, key, "a listener not given twice", _show(item))
                listeners.append(listener)
        http = https = None
        for name, default in (("http", d.http), ("https", None)):
            value = t.raw(name, _MISSING) if t.has(name) else _MISSING
            if value is _MISSING:
                t.seen.add(name)
                addr = default
            elif value == "" or value is False:
                addr = None
            else:
                addr = self.address(value, t.key(name))
            if name == "http":
                http = addr
            else:
                https = addr
        self._check_port_clashes(listeners, http, https)
        rtp = t.array("rtp_ports", list(d.rtp_ports))
        if (
            len(rtp) != 2
            or not all(isinstance(p, int) and not isinstance(p, bool) for p in rtp)
            or not 1024 <= rtp[0] < rtp[1] <= 65535
            or rtp[0] % 2
        ):
            t.fail(
                "rtp_ports",
                "[LOW, HIGH] with 1024 <= LOW < HIGH <= 65535 and LOW even",
                rtp,
            )
        external_ip = t.text("external_ip", None, what="an IP address")
        if external_ip is not None:
            try:
                ipaddress.ip_address(external_ip)
            except ValueError:
                t.fail("external_ip", "an IP address", external_ip)
        tz = t.text("timezone", None, what="an IANA time zone such as Asia/Shanghai")
        if tz is not None:
            try:
                zoneinfo.ZoneInfo(tz)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                t.fail("timezone", "an IANA time zone such as Asia/Shanghai", tz)
        cfg = ServerConfig(
            sip=tuple(listeners),
            http=http,
            https=https,
            rtp_ports=(rtp[0], rtp[1]),
            media_workers=t.integer("media_workers", 0, lo=0, hi=256),
            data_dir=self.path(t, "data_dir", str(d.data_dir)),
            external_ip=external_ip,
            timezone=tz,
        )
        t.done()
        return cfg

    def _check_port_clashes(
        self, listeners: list[Listener], http: Address | None, https: Address | None
    ) -> None:
        """Two sockets of the same kind may not bind overlapping addresses on one port."""
        bound: list[tuple[str, str, int, str]] = []  # (udp|tcp, host, port, key)
        for i, x in enumerate(listeners):
            kind = "udp" if x.transport == "udp" else "tcp"
            bound.append((kind, x.host, x.port, f"server.sip[{i}]"))
        for name, addr in (("http", http), ("https", https)):
            if addr is not None:
                bound.append(("tcp", addr.host, addr.port, f"server.{name}"))
        for i, (kind, host, port, key) in enumerate(bound):
            for kind2, host2, port2, key2 in bound[:i]:
                if kind == kind2 and port == port2 and _hosts_overlap(host, host2):
                    raise ConfigError(
                        self.file,
                        key,
                        f"a {kind.upper()} port not already used by {key2}",
                        _show(f"{Address(host, port)}"),
                    )

    def sip(self, doc: _Table) -> SipConfig:
        t = doc.table("sip", {})
        assert t is not None
        t.expect(_SIP_KEYS)
        d = SipConfig()
        cfg = SipConfig(
            realm=t.text("realm", d.realm),
            user_agent=t.text("user_agent", d.user_agent),
            max_failures=t.integer("max_failures", d.max_failures, lo=1),
            window=t.integer("window", d.window, lo=1),
            ban_seconds=t.integer("ban_seconds", d.ban_seconds, lo=0),
            session_expires=t.integer("session_expires", d.session_expires, lo=0),
            min_se=t.integer("min_se", d.min_se, lo=90),
            min_expires=t.integer("min_expires", d.min_expires, lo=1),
            max_expires=t.integer("max_expires", d.max_expires, lo=1),
            digest_algorithms=(
                t.str_list("digest_algorithms", regex=_DIGEST_ALG_RE,
                           what="MD5, SHA-256 or SHA-512-256")
                if t.has("digest_algorithms") else d.digest_algorithms
            ),
        )
        if not cfg.digest_algorithms:
            t.fail("digest_algorithms", "at least one of MD5, SHA-256, SHA-512-256", [])
        if cfg.session_expires and cfg.session_expires < cfg.min_se:
            t.fail(
                "session_expires",
                f"0 or at least min_se ({cfg.min_se})",
                cfg.session_expires,
            )
        if cfg.max_expires < cfg.min_expires:
            t.fail("max_expires", f"at least min_expires ({cfg.min_expires})", cfg.max_expires)
        t.done()
        return cfg

    def tls(self, doc: _Table, server: ServerConfig) -> TlsConfig | None:
        needs = [str(x) for x in server.sip if x.transport in ("tls", "wss")]
        if server.https is not None:
            needs.append(f"https {server.https}")
        t = doc.table("tls", None)
        if t is not None:
            t.expect(_TLS_KEYS)
        if t is None:
            if needs:
                raise ConfigError(
                    self.file,
                    "tls",
                    f"a [tls] section with cert and key, because of {needs[0]}",
                    "no [tls] section",
                )
            return None
        cfg = TlsConfig(cert=self.path(t, "cert"), key=self.path(t, "key"))
        for name in ("cert", "key"):
            p: Path = getattr(cfg, name)
            if not p.is_file():
                t.fail(name, "an existing file", str(p))
        t.done()
        return cfg

    def trunks(self, doc: _Table) -> tuple[TrunkConfig, ...]:
        out: list[TrunkConfig] = []
        for t in self.array_of_tables(doc, "trunks"):
            t.expect(_TRUNK_KEYS)
            name = t.text("name", regex=_NAME_RE, what="a name of letters, digits, _ . -")
            if any(x.name == name for x in out):
                t.fail("name", "a trunk name not used by another trunk", name)
            host = t.text("host", what="a host name or IP address")
            if not _valid_host(host):
                t.fail("host", "a host name or IP address", host)
            allow_default: list[str] = []
            try:
                allow_default = [str(ipaddress.ip_network(host))]
            except ValueError:
                pass
            allow = []
            for i, item in enumerate(t.array("allow", allow_default)):
                try:
                    if not isinstance(item, str):
                        raise ValueError
                    allow.append(ipaddress.ip_network(item, strict=True))
                except ValueError:
                    raise ConfigError(
                        self.file,
                        f"{t.key('allow')}[{i}]",
                        "a network in CIDR notation with no host bits set, e.g. 192.0.2.0/24",
                        _show(item),
                    ) from None
            username = t.text("username", None)
            password = self.secret(t, "password", None)
            register = t.flag("register", False)
            if register and (username is None or password is None):
                t.fail("register", "username and password when register = true", register)
            out.append(
                TrunkConfig(
                    name=name,
                    host=host,
                    port=t.integer("port", 5060, lo=1, hi=65535),
                    allow=tuple(allow),
                    username=username,
                    password=password,
                    register=register,
                    expires=t.integer("expires", 3600, lo=60),
                    transport=t.text("transport", "udp", choices=TRUNK_TRANSPORTS),
                    channels=t.integer("channels", 0, lo=0),
                    options_interval=t.integer("options_interval", 60, lo=0),
                    caller_id=t.text("caller_id", None),
                )
            )
            if not allow and not register:
                self.warnings.append(
                    f"{t.key('allow')}: no networks, so no inbound calls are accepted "
                    "from this trunk"
                )
            t.done()
        return tuple(out)

    def agents(self, doc: _Table) -> tuple[AgentConfig, ...]:
        out: list[AgentConfig] = []
        for t in self.array_of_tables(doc, "agents"):
            t.expect(_AGENT_KEYS)
            aid = t.raw("id")
            if isinstance(aid, int) and not isinstance(aid, bool):
                t.fail("id", 'a string such as "1001" (quote it)', aid)
            aid = t.text("id", regex=_AGENT_ID_RE, what="an extension of letters, digits, _ . -")
            if any(x.id == aid for x in out):
                t.fail("id", "an agent id not used by another agent", aid)
            password = self.secret(t, "password")
            assert password is not None
            self._check_password(t, password)
            out.append(
                AgentConfig(
                    id=aid,
                    name=t.text("name"),
                    password=password,
                    skills=self.skills(t, "skills"),
                    teams=t.str_list("teams", regex=_NAME_RE, what="a team name"),
                )
            )
            t.done()
        return tuple(out)

    def users(self, doc: _Table, agents: tuple[AgentConfig, ...]) -> tuple[UserConfig, ...]:
        out: list[UserConfig] = []
        for t in self.array_of_tables(doc, "users"):
            t.expect(_USER_KEYS)
            name = t.text("name", regex=_AGENT_ID_RE, what="a login of letters, digits, _ . -")
            if any(x.name == name for x in out):
                t.fail("name", "a user name not used by another user", name)
            if any(a.id == name for a in agents):
                t.fail("name", "a user name different from every agent id", name)
            password = self.secret(t, "password")
            assert password is not None
            self._check_password(t, password)
            out.append(
                UserConfig(
                    name=name,
                    password=password,
                    role=t.text("role", "supervisor", choices=ROLES),
                    teams=t.str_list("teams", regex=_NAME_RE, what="a team name"),
                )
            )
            t.done()
        return tuple(out)

    def _check_password(self, t: _Table, password: Secret) -> None:
        if len(password) < MIN_PASSWORD_LENGTH and not password.startswith("<unset:"):
            self.warnings.append(
                f"{t.key('password')}: shorter than {MIN_PASSWORD_LENGTH} characters; "
                "SIP passwords are brute-forced on the internet"
            )

    def queues(self, doc: _Table, agents: tuple[AgentConfig, ...]) -> tuple[QueueConfig, ...]:
        out: list[QueueConfig] = []
        ids = {a.id for a in agents}
        for t in self.array_of_tables(doc, "queues"):
            t.expect(_QUEUE_KEYS)
            name = t.text("name", regex=_NAME_RE, what="a name of letters, digits, _ . -")
            if any(x.name == name for x in out):
                t.fail("name", "a queue name not used by another queue", name)
            strategy = t.text("strategy", "longest-idle", choices=STRATEGIES)
            skills = self.skills(t, "skills")
            if strategy == "skills" and not skills:
                t.fail("skills", 'at least one skill when strategy = "skills"', {})
            members = t.str_list("agents", what="an agent id")
            for i, m in enumerate(members):
                if m not in ids:
                    raise ConfigError(
                        self.file, f"{t.key('agents')}[{i}]", "the id of an agent", _show(m)
                    )
            overflow = None
            if t.has("overflow"):
                overflow = self.target(t, t.key("overflow"), t.raw("overflow"))
            q = QueueConfig(
                name=name,
                strategy=strategy,
                skills=skills,
                agents=members,
                ring_timeout=t.integer("ring_timeout", 15, lo=1, hi=600),
                max_wait=t.integer("max_wait", 300, lo=0),
                overflow=overflow,
                wrapup=t.integer("wrapup", 10, lo=0, hi=3600),
                service_level=t.integer("service_level", 20, lo=1),
                priority=t.integer("priority", 0, lo=0, hi=100),
                moh=self.prompt(t, "moh", None),
            )
            out.append(q)
            t.done()
        return tuple(out)

    def ivrs(self, doc: _Table) -> Mapping[str, IvrConfig]:
        t = doc.table("ivr", {})
        assert t is not None
        out: dict[str, IvrConfig] = {}
        for name in list(t.data):
            if not _NAME_RE.match(name):
                t.fail(name, "an IVR name of letters, digits, _ . -", name)
            m = t.table(name)
            assert m is not None
            m.expect(_IVR_KEYS)
            menu_t = m.table("menu", {})
            assert menu_t is not None
            menu: dict[str, Target] = {}
            for digit in menu_t.data:
                menu_t.seen.add(digit)
                if digit not in DTMF_KEYS:
                    raise ConfigError(
                        self.file,
                        menu_t.key(_quote_key(digit)),
                        "a single DTMF key 0-9, *, #, A-D",
                        _show(digit),
                    )
                menu[digit] = self.target(menu_t, menu_t.key(_quote_key(digit)), menu_t.data[digit])
            fallback = Target("hangup")
            if m.has("fallback"):
                fallback = self.target(m, m.key("fallback"), m.raw("fallback"))
            out[name] = IvrConfig(
                name=name,
                greeting=self.prompt(m, "greeting"),
                menu=MappingProxyType(menu),
                timeout=m.integer("timeout", 5, lo=1, hi=120),
                retries=m.integer("retries", 3, lo=0, hi=20),
                invalid=self.prompt(m, "invalid", None),
                fallback=fallback,
            )
            m.done()
        return MappingProxyType(out)

    def recording(self, doc: _Table) -> RecordingConfig:
        t = doc.table("recording", {})
        assert t is not None
        t.expect(_RECORDING_KEYS)
        cfg = RecordingConfig(
            enabled=t.flag("enabled", True),
            format=t.text("format", "opus", choices=RECORDING_FORMATS),
            retention_days=t.integer("retention_days", 365, lo=0),
        )
        t.done()
        return cfg

    def routes(self, doc: _Table) -> tuple[RouteConfig, ...]:
        out: list[RouteConfig] = []
        for t in self.array_of_tables(doc, "routes"):
            t.expect(_ROUTE_KEYS)
            match = self.pattern(t, "match")
            to = self.target(t, t.key("to"), t.raw("to"))
            window = None
            raw_time = t.text("time", None, what='a time range "HH:MM-HH:MM"')
            if raw_time is not None:
                window = _parse_time_range(raw_time)
                if window is None:
                    t.fail("time", 'a time range "HH:MM-HH:MM" (24-hour clock)', raw_time)
            days: set[int] = set()
            for i, item in enumerate(t.array("days", [])):
                parsed = _parse_days(item)
                if parsed is None:
                    raise ConfigError(
                        self.file,
                        f"{t.key('days')}[{i}]",
                        "a day mon..sun or a range such as mon-fri",
                        _show(item),
                    )
                days |= parsed
            out.append(
                RouteConfig(
                    match=match,
                    to=to,
                    caller=self.pattern(t, "caller", None),
                    time=window,
                    days=frozenset(days),
                    priority=t.integer("priority", 0, lo=0, hi=100),
                )
            )
            t.done()
        return tuple(out)

    def logging(self, doc: _Table) -> LoggingConfig:
        t = doc.table("logging", {})
        assert t is not None
        t.expect(_LOGGING_KEYS)
        cfg = LoggingConfig(
            level=t.text("level", "info", choices=LOG_LEVELS),
            format=t.text("format", "logfmt", choices=LOG_FORMATS),
        )
        t.done()
        return cfg

    def finish(self, cfg: SiteConfig) -> None:
        """Check that every target refers to something that exists."""
        names: dict[str, set[str]] = {
            "ivr": set(cfg.ivr),
            "queue": {q.name for q in cfg.queues},
            "agent": {a.id for a in cfg.agents},
            "trunk": {t.name for t in cfg.trunks},
        }
        what = {
            "ivr": "an [ivr.NAME] menu",
            "queue": "a queue",
            "agent": "an agent",
            "trunk": "a trunk",
        }
        for key, target in self.refs:
            pool = names.get(target.kind)
            if pool is not None and target.arg not in pool:
                known = ", ".join(sorted(pool)) or "none defined"
                raise ConfigError(
                    self.file,
                    key,
                    f"{what[target.kind]} that exists ({known})",
                    _show(str(target)),
                )
        if not cfg.routes and cfg.trunks:
            self.warnings.append("routes: none defined, so inbound calls are rejected")
        for q in cfg.queues:
            if not cfg.queue_members(q):
                self.warnings.append(f"queues: {q.name}: no agent can take its calls")


def _quote_key(key: str) -> str:
    return f'"{key}"' if not key.isalnum() else key


def _split_host_port(value: Any) -> tuple[str | None, int | None]:
    if not isinstance(value, str):
        return None, None
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]:")
        if not sep:
            return None, None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None, None
    else:
        host, sep, rest = value.rpartition(":")
        if not sep or ":" in host:
            return None, None
    if not rest.isdigit():
        return host, None
    return host, int(rest)


def _hosts_overlap(a: str, b: str) -> bool:
    """Whether binding both addresses on one port would clash (wildcards per family)."""
    if a == b:
        return True
    try:
        ia, ib = ipaddress.ip_address(a), ipaddress.ip_address(b)
    except ValueError:
        return False
    return ia.version == ib.version and (ia.is_unspecified or ib.is_unspecified)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME_RE.match(host)) and not host.replace(".", "").isdigit()


def _parse_listener(value: Any) -> Listener | None:
    if not isinstance(value, str):
        return None
    transport, sep, rest = value.partition(":")
    if not sep or transport not in SIP_TRANSPORTS:
        return None
    host, port = _split_host_port(rest)
    if host is None or port is None or not _valid_host(host) or not 1 <= port <= 65535:
        return None
    return Listener(transport, host, port)


def _parse_time_range(value: str) -> tuple[dtime, dtime] | None:
    m = _TIME_RANGE_RE.match(value)
    if not m:
        return None
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        return None
    end = dtime(0, 0) if h2 == 24 else dtime(h2, m2)
    start = dtime(h1, m1)
    if start == end and h2 != 24:
        return None
    return start, end


def _parse_days(value: Any) -> set[int] | None:
    if not isinstance(value, str):
        return None
    a, sep, b = value.lower().partition("-")
    if a not in DAYS or (sep and b not in DAYS):
        return None
    i, j = DAYS.index(a), DAYS.index(b) if sep else DAYS.index(a)
    if i <= j:
        return set(range(i, j + 1))
    return set(range(i, 7)) | set(range(0, j + 1))


def parse_target(value: Any) -> Target:
    """Parse a route target such as ``queue:billing`` or ``echo``.

    Only the syntax is checked here; :func:`load_config` also checks references.

    :raises ValueError: with the expected form as message.
    """
    expected = (
        "a target ivr:NAME, queue:NAME, agent:ID, trunk:NAME, voicemail:BOX, "
        "conference:ROOM, play:PROMPT, echo or hangup"
    )
    if not isinstance(value, str):
        raise ValueError(expected)
    kind, sep, arg = value.partition(":")
    if kind in TARGETS_WITH_ARG and sep and arg.strip():
        if kind == "play" and arg.startswith("tts:") and not arg[4:].strip():
            raise ValueError(expected)
        return Target(kind, arg)
    if kind in ("echo", "hangup") and not sep:
        return Target(kind)
    raise ValueError(expected)


# --------------------------------------------------------------------------- entry points


def load_config(
    path: str | Path,
    env: Mapping[str, str] = os.environ,
    *,
    require_secrets: bool = True,
) -> SiteConfig:
    """Load and validate a ``site.toml``.

    :param path: the file; relative paths inside it are resolved against its directory.
    :param env: where ``env:NAME`` secrets are looked up.
    :param require_secrets: when False (``config check --no-secrets``), a missing
        ``env:NAME`` variable is not an error and the secret holds a placeholder.
    :raises ConfigError: naming the file, the key and what was expected.
    """
    file = str(path)
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(file, "", "a readable file", exc.strerror or str(exc)) from None
    except UnicodeDecodeError:
        raise ConfigError(file, "", "a UTF-8 text file", "undecodable bytes") from None
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.match(r"^(.*) \(at (line \d+, column \d+)\)$", msg)
        if m:
            raise ConfigError(file, m.group(2), f"valid TOML ({m.group(1)})") from None
        raise ConfigError(file, "", f"valid TOML ({msg})") from None
    return _build(file, p.resolve().parent, data, env, require_secrets)


def _build(
    file: str, base: Path, data: Mapping[str, Any], env: Mapping[str, str], require: bool
) -> SiteConfig:
    loader = _Loader(file, base, env, require)
    doc = _Table(file, "", data)
    doc.expect(SECTIONS, "sections")
    server = loader.server(doc)
    sip = loader.sip(doc)
    tls = loader.tls(doc, server)
    trunks = loader.trunks(doc)
    agents = loader.agents(doc)
    users = loader.users(doc, agents)
    queues = loader.queues(doc, agents)
    ivr = loader.ivrs(doc)
    recording = loader.recording(doc)
    routes = loader.routes(doc)
    logging_cfg = loader.logging(doc)
    doc.done()
    cfg = SiteConfig(
        source=file,
        server=server,
        sip=sip,
        tls=tls,
        trunks=trunks,
        agents=agents,
        users=users,
        queues=queues,
        ivr=ivr,
        recording=recording,
        routes=routes,
        logging=logging_cfg,
    )
    loader.finish(cfg)
    return dataclasses.replace(cfg, warnings=tuple(loader.warnings))


def apply_overrides(
    config: SiteConfig,
    *,
    sip_port: int | None = None,
    http_port: int | None = None,
    data_dir: Path | None = None,
) -> SiteConfig:
    """Return ``config`` with command-line overrides applied (``hotline serve`` flags).

    :param sip_port: new port for every udp and tcp listener (tls/ws/wss keep theirs);
        0 asks the OS for a free port per listener.
    :param http_port: new port for the HTTP listener (enabling it on 0.0.0.0 if it was off).
    :param data_dir: replaces ``server.data_dir``.
    """
    server = config.server
    if sip_port is not None:
        if not 0 <= sip_port <= 65535:
            raise ValueError(f"sip_port must be 0..65535, got {sip_port}")
        server = dataclasses.replace(
            server,
            sip=tuple(
                dataclasses.replace(x, port=sip_port) if x.transport in ("udp", "tcp") else x
                for x in server.sip
            ),
        )
    if http_port is not None:
        if not 0 <= http_port <= 65535:
            raise ValueError(f"http_port must be 0..65535, got {http_port}")
        host = server.http.host if server.http is not None else "0.0.0.0"
        server = dataclasses.replace(server, http=Address(host, http_port))
    if data_dir is not None:
        server = dataclasses.replace(server, data_dir=Path(data_dir))
    return dataclasses.replace(config, server=server)


# --------------------------------------------------------------------------- demo site


@dataclass(frozen=True, slots=True)
class DemoPasswords:
    """Passwords of the demo site's logins (agents 1001-1005 and ``admin``)."""

    #: Login to password.
    passwords: Mapping[str, str]
    #: True when they were generated just now (print them once), False when reused.
    created: bool
    #: The file they are kept in (mode 0600).
    path: Path


def demo_passwords(data_dir: Path) -> DemoPasswords:
    """Load the demo site's passwords from ``data_dir``, generating them on first start.

    :raises ConfigError: if the password file exists but is unreadable or malformed.
    """
    path = Path(data_dir) / DEMO_PASSWORDS_FILE
    logins = (*DEMO_AGENT_IDS, "admin")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = None
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), "", "a JSON object of login to password", str(exc)) from None
    if data is not None:
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), str) and data[k] for k in logins
        ):
            raise ConfigError(
                str(path),
                "",
                "a JSON object with a password for " + ", ".join(logins),
                "something else (delete the file to generate new passwords)",
            )
        return DemoPasswords(MappingProxyType({k: data[k] for k in logins}), False, path)
    alphabet = string.ascii_letters + string.digits
    fresh = {k: "".join(secrets.choice(alphabet) for _ in range(12)) for k in logins}
    tmp = path.with_suffix(".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(fresh, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(
            str(path), "", "a writable data directory (--data-dir)", exc.strerror or str(exc)
        ) from None
    return DemoPasswords(MappingProxyType(fresh), True, path)


def demo_config(data_dir: Path) -> SiteConfig:
    """Build the embedded demo site of DESIGN.md.

    IVR ``demo`` on route 100, queue ``support`` on 200, echo on ``*43``; agents 1001-1005
    and a web ``admin``, with passwords from :func:`demo_passwords`; SIP on udp and tcp
    0.0.0.0:5060, HTTP on 0.0.0.0:8080; a trunk ``local`` accepting calls from 127.0.0.1.
    """
    data_dir = Path(data_dir)
    pw = demo_passwords(data_dir).passwords
    names = ("Li Na", "Wang Wei", "Zhang Min", "Liu Yang", "Chen Jing")
    agents = tuple(
        AgentConfig(
            id=aid,
            name=name,
            password=Secret(pw[aid]),
            skills=MappingProxyType({"support": 5 if i < 3 else 2, "sales": 2 if i < 3 else 5}),
            teams=("demo",),
        )
        for i, (aid, name) in enumerate(zip(DEMO_AGENT_IDS, names, strict=True))
    )
    support = QueueConfig(
        name="support",
        strategy="longest-idle",
        skills=MappingProxyType({"support": 1}),
        ring_timeout=15,
        max_wait=300,
        overflow=Target("voicemail", "support"),
        wrapup=5,
        service_level=20,
    )
    sales = QueueConfig(
        name="sales",
        strategy="skills",
        skills=MappingProxyType({"sales": 3}),
        overflow=Target("queue", "support"),
        max_wait=120,
        wrapup=5,
    )
    ivr = IvrConfig(
        name="demo",
        greeting=(
            "tts:Welcome to the hotline demo. For support, press 1. For sales, press 2. "
            "For an echo test, press 3."
        ),
        menu=MappingProxyType(
            {
                "1": Target("queue", "support"),
                "2": Target("queue", "sales"),
                "3": Target("echo"),
                "0": Target("queue", "support"),
            }
        ),
        invalid="tts:Sorry, that is not a valid choice.",
        fallback=Target("queue", "support"),
    )
    return SiteConfig(
        source="<demo>",
        server=ServerConfig(data_dir=data_dir),
        trunks=(
            TrunkConfig(
                name="local",
                host="127.0.0.1",
                port=5070,
                allow=(ipaddress.ip_network("127.0.0.1/32"),),
                options_interval=0,
            ),
        ),
        agents=agents,
        users=(UserConfig(name="admin", password=Secret(pw["admin"]), role="admin"),),
        queues=(support, sales),
        ivr=MappingProxyType({"demo": ivr}),
        recording=RecordingConfig(enabled=True, format="wav", retention_days=30),
        routes=(
            RouteConfig(match="100", to=Target("ivr", "demo")),
            RouteConfig(match="200", to=Target("queue", "support")),
            RouteConfig(match="*43", to=Target("echo")),
        ),
    )
