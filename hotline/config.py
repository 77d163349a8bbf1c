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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as dtime
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from hotline import __version__
from hotline.dialplan import NumberPattern, PatternError, compile_pattern

__all__ = [
    "STRATEGIES",
    "TARGET_KINDS",
    "AcdConfig",
    "AgentConfig",
    "Address",
    "ConfigError",
    "DemoPasswords",
    "IVR_STEP_KINDS",
    "IvrBranchStep",
    "IvrCase",
    "IvrCollectStep",
    "IvrConfig",
    "IvrGotoStep",
    "IvrHttpStep",
    "IvrMenuStep",
    "IvrNext",
    "IvrPlayStep",
    "IvrSetStep",
    "IvrStep",
    "IvrTimeCase",
    "IvrTimeStep",
    "IvrTransferStep",
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
    "VoicemailConfig",
    "apply_overrides",
    "demo_config",
    "demo_passwords",
    "load_config",
    "parse_target",
    "render_template",
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
#: ``[[trunks]] caller_id_mode`` values.
CALLER_ID_MODES = ("pass", "fixed")
ROLES = ("agent", "supervisor", "admin")
RECORDING_FORMATS = ("wav", "opus", "mp3")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("logfmt", "json")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DTMF_KEYS = frozenset("0123456789*#ABCD")
#: Step kinds of an IVR flow (``[ivr.NAME.steps.STEP] kind = ...``).
IVR_STEP_KINDS = ("play", "menu", "collect", "branch", "http", "set", "time", "transfer", "goto")
#: Methods an IVR ``http`` step may use.
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: ``{name}`` refers to an IVR variable in prompts, URLs, bodies and ``set`` values;
#: ``{{`` and ``}}`` are literal braces.
TEMPLATE_RE = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
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
_VARIABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_DATE_RE = re.compile(r"^(?:(\d{4})-)?(\d{2})-(\d{2})$")
_URL_RE = re.compile(r"^https?://[^\s/]+(/\S*)?$")
_PIN_RE = re.compile(r"^[0-9]{1,16}$")
_HEADER_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_NUMBER_RE = re.compile(r"^\+?[0-9]{1,32}$")
_SIP_USER_RE = re.compile(r"^[A-Za-z0-9+_.-]{1,64}$")
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
    #: HTTPS; None disables it. Browsers need HTTPS for microphones except on
    #: localhost. Uses ``[tls]``, else a self-signed certificate made once in
    #: ``DATA_DIR/tls`` (:mod:`hotline.selfsigned`).
    https: Address | None = None
    #: Inclusive RTP port range; the first is even, RTCP uses port+1.
    rtp_ports: tuple[int, int] = (20000, 29999)
    #: Media worker processes; 0 means one per CPU core.
    media_workers: int = 0
    #: SCHED_RR priority 1..99 of the media workers' tick threads; 0 keeps normal
    #: scheduling (needs root, CAP_SYS_NICE or RLIMIT_RTPRIO; refused: a warning).
    media_priority: int = 0
    #: hotline.db, recordings/, prompts/ and the prompt cache live here.
    data_dir: Path = Path("hotline-data")
    #: Public IP to put in SDP and Contact when behind NAT; None uses the bound address.
    external_ip: str | None = None
    #: IANA time zone for route ``time``/``days``; None uses the system's local zone.
    timezone: str | None = None
    #: Music on hold for a party whose other side holds (queues have their own ``moh``);
    #: None uses the built-in melody.
    moh: str | None = None


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
    #: Most outbound calls at once on this trunk; 0 means no limit. A route tries its
    #: next trunk when this one is full (:mod:`hotline.trunkselect`).
    max_channels: int = 0
    #: Seconds between OPTIONS keepalives; 0 disables them.
    options_interval: int = 60
    #: Number presented on outbound calls (see ``caller_id_mode``); None presents the
    #: caller's own number.
    caller_id: str | None = None
    #: ``fixed``: always present ``caller_id``; ``pass``: present the caller's number on
    #: calls relayed from a trunk, ``caller_id`` (if set) on extensions' calls. None
    #: means ``fixed`` when ``caller_id`` is set, else ``pass``.
    caller_id_mode: str | None = None
    #: User part of the From URI instead of the presented number (carriers that know a
    #: registered account by its From); the number then travels in P-Asserted-Identity.
    from_user: str | None = None
    #: Withhold the number from the callee: anonymous From and ``Privacy: id``, the real
    #: number in P-Asserted-Identity for the carrier only (RFC 3323, RFC 3325).
    privacy: bool = False


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
    #: Route permissions this extension holds (a route with ``permission = "intl"``
    #: is used only by extensions that list ``"intl"``).
    permissions: tuple[str, ...] = ()


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
    #: Business hours ``(start, end)`` in local time; None is always open.
    hours: tuple[dtime, dtime] | None = None
    #: Weekdays (0 = Monday) the queue is open; empty means every day.
    days: frozenset[int] = frozenset()
    #: Where callers go outside business hours; None: ``overflow``.
    closed: Target | None = None
    #: Callers may join while no member is logged in (Asterisk ``joinempty``).
    join_empty: bool = True
    #: Waiting callers leave (to ``overflow``) when the last member logs out.
    leave_when_empty: bool = False
    #: Seconds between position / estimated-wait announcements; 0 is off.
    announce_every: int = 0
    #: What the announcement says: a prompt template with ``{position}`` and
    #: ``{minutes}`` (the estimated wait, rounded up, at least 1).
    announce: str = ("tts:You are caller number {position} in line. "
                     "Estimated wait in minutes: {minutes}.")
    #: The announcement while there is no estimate yet (no recent calls).
    announce_no_estimate: str = "tts:You are caller number {position} in line."
    #: Prompts played to waiting callers in turn, every ``message_every`` seconds.
    messages: tuple[str, ...] = ()
    message_every: int = 0
    #: DTMF keys a waiting caller may press to leave: digit → target, or ``"callback"``
    #: (hang up and be called back when an agent frees up, keeping one's place).
    keys: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: ``sticky``: seconds after a call within which the same agent is preferred.
    sticky_window: int = 7 * 86400
    #: ``sticky``: the strategy used when that agent is not ready.
    sticky_fallback: str = "longest-idle"
    #: Abandons within this many seconds are left out of the service level (SL).
    short_abandon: int = 5
    #: Record this queue's calls (when ``[recording] enabled``).
    record: bool = True
    #: Silent-call rule for this queue's callers once an agent answers (as ``[ivr.NAME]
    #: silent_prompt``): no voice for ``silent_seconds`` plays it, a second silence hangs
    #: up. An IVR's own setting, if the caller came through one, wins.
    silent_prompt: str | None = None
    silent_seconds: int = 5

    def is_open(self, when: datetime) -> bool:
        """Tell whether the queue is within its business hours at local time ``when``."""
        return _in_window(self.hours, when, self.days)


@dataclass(frozen=True, slots=True)
class AcdConfig:
    """``[acd]``: feature codes agents and supervisors dial from their phones."""

    #: Ready (logs in first if logged out).
    ready_code: str = "*50"
    #: Not ready; ``*51`` then a reason's number (1-based in ``reasons``) picks a reason.
    not_ready_code: str = "*51"
    logout_code: str = "*52"
    #: Supervisor codes, followed by the agent id: listen, whisper, barge. During the
    #: session the supervisor switches mode with DTMF 4 (listen), 5 (whisper), 6 (barge).
    listen_code: str = "*60"
    whisper_code: str = "*61"
    barge_code: str = "*62"
    #: Not-ready reason codes agents choose from.
    reasons: tuple[str, ...] = ("break", "lunch", "training", "meeting", "other")
    #: Wrap-up disposition codes an agent files a call under (``sale``, ``no_sale``...),
    #: saved with its CDRs; empty: any short code is accepted.
    dispositions: tuple[str, ...] = ()


#: Where an IVR step goes next: the name of a step of the same IVR, or a :class:`Target`.
IvrNext = str | Target


@dataclass(frozen=True, slots=True)
class IvrPlayStep:
    """``kind = "play"``: play prompts, then go on."""

    name: str
    #: Prompts played in order (files or ``tts:``; ``{variable}`` is substituted).
    prompts: tuple[str, ...]
    next: IvrNext
    #: A key pressed during the prompts stops them and is kept for the next step.
    interruptible: bool = True


@dataclass(frozen=True, slots=True)
class IvrMenuStep:
    """``kind = "menu"``: play a prompt and choose the next step by one key."""

    name: str
    prompts: tuple[str, ...]
    #: DTMF key to next step or target.
    options: Mapping[str, IvrNext]
    #: Seconds to wait for a key after the prompt.
    timeout: int = 5
    #: Times the prompt is replayed after a timeout or an invalid key.
    retries: int = 3
    #: Played before the replay after an invalid key; empty uses a built-in prompt.
    invalid: tuple[str, ...] = ()
    #: Played before the replay after a timeout; empty replays the prompt alone.
    timeout_prompts: tuple[str, ...] = ()
    #: Where the call goes once the retries are used up.
    fallback: IvrNext = Target("hangup")
    #: Variable that receives the key pressed, if any.
    variable: str | None = None
    interruptible: bool = True


@dataclass(frozen=True, slots=True)
class IvrCollectStep:
    """``kind = "collect"``: read a number (account, PIN, date...) into a variable."""

    name: str
    prompts: tuple[str, ...]
    #: Variable that receives the digits.
    variable: str
    next: IvrNext
    min_digits: int = 1
    max_digits: int = 20
    #: Key that ends the input early (not stored); None for none.
    terminator: str | None = "#"
    #: Seconds to wait for the first digit after the prompt.
    timeout: int = 5
    #: Seconds to wait for each further digit; then the input ends.
    inter_digit_timeout: int = 3
    #: Regular expression the whole input must match, if any.
    pattern: str | None = None
    retries: int = 3
    invalid: tuple[str, ...] = ()
    timeout_prompts: tuple[str, ...] = ()
    fallback: IvrNext = Target("hangup")
    interruptible: bool = True


@dataclass(frozen=True, slots=True)
class IvrCase:
    """One case of a ``branch`` step; every condition given must hold."""

    next: IvrNext
    #: Variable tested; None uses the step's ``variable``.
    variable: str | None = None
    equals: str | None = None
    #: TOML key ``in``: the value is one of these.
    one_of: tuple[str, ...] | None = None
    #: Regular expression the whole value must match.
    matches: str | None = None
    #: Numeric comparisons; a value that is not a number fails them.
    lt: float | None = None
    le: float | None = None
    gt: float | None = None
    ge: float | None = None


@dataclass(frozen=True, slots=True)
class IvrBranchStep:
    """``kind = "branch"``: go to the first case that holds, else to ``default``."""

    name: str
    cases: tuple[IvrCase, ...]
    default: IvrNext
    variable: str | None = None


@dataclass(frozen=True, slots=True)
class IvrHttpStep:
    """``kind = "http"``: call a JSON web hook and map its answer into variables."""

    name: str
    #: URL template; substituted values are percent-encoded.
    url: str
    next: IvrNext
    method: str = "GET"
    #: JSON object template (strings are templates); with GET it becomes the query string.
    body: Mapping[str, Any] | None = None
    #: Literal request headers (values may be ``env:NAME``).
    headers: Mapping[str, Secret] = field(default_factory=lambda: MappingProxyType({}))
    #: Seconds before the request counts as failed.
    timeout: int = 5
    #: Variable to dotted path in the JSON answer (``data.items.0.id``).
    map: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: Variable that receives the HTTP status ("" on timeout or network error), if any.
    status: str | None = None
    #: Played, not interruptible, while the request runs.
    prompts: tuple[str, ...] = ()
    #: Where the call goes on a non-2xx status, a timeout or a missing mapped field.
    failure: IvrNext = Target("hangup")


@dataclass(frozen=True, slots=True)
class IvrSetStep:
    """``kind = "set"``: set variables (values are templates)."""

    name: str
    variables: Mapping[str, str]
    next: IvrNext


def _in_window(window: tuple[dtime, dtime] | None, when: datetime,
               days: frozenset[int] = frozenset()) -> bool:
    """Whether local time ``when`` is on one of ``days`` (empty: any day) and inside
    ``window`` (None: always); an end before the start wraps past midnight."""
    if days and when.weekday() not in days:
        return False
    if window is None:
        return True
    start, end = window
    now = when.time().replace(tzinfo=None)
    return start <= now < end if start <= end else (now >= start or now < end)


@dataclass(frozen=True, slots=True)
class IvrTimeCase:
    """One case of a ``time`` step; every condition given must hold."""

    next: IvrNext
    #: Local time window; end before start wraps past midnight.
    time: tuple[dtime, dtime] | None = None
    #: Weekdays (0 = Monday); empty means every day.
    days: frozenset[int] = frozenset()
    #: Dates as (year, month, day), year 0 for every year; empty means every date.
    dates: frozenset[tuple[int, int, int]] = frozenset()

    def matches(self, when: datetime) -> bool:
        """Tell whether local time ``when`` satisfies this case."""
        if self.dates and not (
            (when.year, when.month, when.day) in self.dates
            or (0, when.month, when.day) in self.dates
        ):
            return False
        return _in_window(self.time, when, self.days)


@dataclass(frozen=True, slots=True)
class IvrTimeStep:
    """``kind = "time"``: go to the first case matching the local time, else ``default``."""

    name: str
    cases: tuple[IvrTimeCase, ...]
    default: IvrNext


@dataclass(frozen=True, slots=True)
class IvrTransferStep:
    """``kind = "transfer"``: leave the IVR for a target, with the variables."""

    name: str
    to: Target
    #: Queue priority; None keeps the route's.
    priority: int | None = None
    #: Number to dial (template), for ``trunk:`` targets; None dials the called number.
    number: str | None = None


@dataclass(frozen=True, slots=True)
class IvrGotoStep:
    """``kind = "goto"``: jump to a step or a target."""

    name: str
    to: IvrNext


IvrStep = (
    IvrPlayStep
    | IvrMenuStep
    | IvrCollectStep
    | IvrBranchStep
    | IvrHttpStep
    | IvrSetStep
    | IvrTimeStep
    | IvrTransferStep
    | IvrGotoStep
)


@dataclass(frozen=True, slots=True)
class IvrConfig:
    """One ``[ivr.NAME]`` menu or flow.

    The simple form is a ``greeting`` and a ``menu``; the flow form has ``steps`` (and
    ``start``), and then ``greeting`` and ``menu`` are None/empty.
    """

    name: str
    #: Prompt played on entry (file under data_dir/prompts or ``tts:TEXT``); None in a flow.
    greeting: str | None
    #: DTMF key to target.
    menu: Mapping[str, Target] = field(default_factory=lambda: MappingProxyType({}))
    #: Seconds to wait for a key after the greeting (in a flow: the default of its steps).
    timeout: int = 5
    #: Times the greeting is replayed after a timeout or invalid key.
    retries: int = 3
    #: Prompt played on an invalid key; None uses a built-in one.
    invalid: str | None = None
    #: Where the call goes after the retries are used up (in a flow: also a step name;
    #: the default of its menu/collect ``fallback`` and http ``failure``).
    fallback: IvrNext = Target("hangup")
    #: First step of a flow; None for the simple form.
    start: str | None = None
    #: Steps of a flow, by name; empty for the simple form.
    steps: Mapping[str, IvrStep] = field(default_factory=lambda: MappingProxyType({}))
    #: Silent-call rule: played when the caller sends no voice and no key for
    #: ``silent_seconds`` after answer; the call is hung up after a second silent period.
    #: None turns the rule off.
    silent_prompt: str | None = None
    #: Seconds of silence before the prompt, and again before hanging up.
    silent_seconds: int = 5


@dataclass(frozen=True, slots=True)
class VoicemailConfig:
    """One ``[voicemail.BOX]`` mailbox; a box without a table uses these defaults."""

    name: str
    #: Played before the beep; None uses a built-in text.
    greeting: str | None = None
    #: The tone that tells the caller to speak.
    beep: str = "tone:beep"
    #: Longest message, in seconds.
    max_seconds: int = 120
    #: Seconds of silence after speech that end the message; 0 disables it.
    silence_seconds: int = 5
    #: Shorter messages (or ones without speech) are discarded.
    min_seconds: int = 1
    #: PIN asked when the box is called to listen to messages; None asks none.
    pin: Secret | None = None
    #: Command run for each new message (argv; items are templates: {box} {path}
    #: {seconds} {caller} and the call's variables), e.g. a mail script.
    notify_command: tuple[str, ...] = ()
    #: URL that receives a JSON POST for each new message.
    notify_url: str | None = None


def render_template(
    text: str, variables: Mapping[str, str], quote: Callable[[str], str] | None = None
) -> str:
    """Substitute ``{name}`` with ``variables[name]`` (empty if unset); ``{{``/``}}`` → braces.

    :param quote: applied to each substituted value (e.g. percent-encoding for URLs).
    """

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name is None:
            return m.group(0)[0]
        value = variables.get(name, "")
        return quote(value) if quote is not None else value

    return TEMPLATE_RE.sub(sub, text)


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

    #: Called number (DID): a number, ``_`` Asterisk pattern, ``re:REGEX`` or
    #: ``list:NAME`` (see :mod:`hotline.dialplan`).
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
    #: Who may use the route: ``any``, ``trunk`` (calls from carriers) or ``extension``
    #: (calls from registered agents). Default ``extension`` for ``trunk:`` targets (a
    #: carrier's call is never sent back out to a paid route unless asked), else ``any``.
    source: str = "any"
    #: Only extensions holding this permission may use the route (trunks never do).
    permission: str | None = None
    #: Record calls on this route (when ``[recording] enabled``).
    record: bool = True
    #: Leading digits removed before dialling out a ``trunk:`` target.
    strip: int = 0
    #: Prefix added after ``strip`` before dialling out a ``trunk:`` target.
    prepend: str = ""
    _match: NumberPattern | None = field(default=None, compare=False, repr=False)
    _caller: NumberPattern | None = field(default=None, compare=False, repr=False)

    def matches(self, called: str, caller: str, when: datetime,
                extension: AgentConfig | None = None, *, from_trunk: bool = False) -> bool:
        """Tell whether a call matches this route.

        :param called: the called number (DID or dialled extension).
        :param caller: the caller's number.
        :param when: local time of the call, in the site's time zone.
        :param extension: the agent placing the call, when it comes from one.
        :param from_trunk: the call comes from a trunk.
        """
        m = self._match or compile_pattern(self.match)
        if not m.matches(called):
            return False
        if self.caller is not None:
            c = self._caller or compile_pattern(self.caller)
            if not c.matches(caller):
                return False
        if self.source == "trunk" and not from_trunk:
            return False
        if self.source == "extension" and from_trunk:
            return False
        if self.permission is not None and (
                extension is None or self.permission not in extension.permissions):
            return False
        return _in_window(self.time, when, self.days)


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
    #: Declared mailboxes; see :meth:`voicemail_box` for the others.
    voicemail: Mapping[str, VoicemailConfig] = field(
        default_factory=lambda: MappingProxyType({})
    )
    recording: RecordingConfig = RecordingConfig()
    routes: tuple[RouteConfig, ...] = ()
    #: ``[lists]``: named number lists (VIPs, blocked callers) for ``list:NAME``.
    lists: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    logging: LoggingConfig = LoggingConfig()
    acd: AcdConfig = AcdConfig()
    #: Things that are valid but probably not what was meant (e.g. short passwords).
    warnings: tuple[str, ...] = ()

    def agent(self, agent_id: str) -> AgentConfig | None:
        """Return the agent with this id, or None."""
        return next((a for a in self.agents if a.id == agent_id), None)

    def voicemail_box(self, name: str) -> VoicemailConfig:
        """Return mailbox ``name``: its ``[voicemail.NAME]`` table, or the defaults."""
        box = self.voicemail.get(name)
        return box if box is not None else VoicemailConfig(name)

    def queue(self, name: str) -> QueueConfig | None:
        """Return the queue with this name, or None."""
        return next((q for q in self.queues if q.name == name), None)

    def trunk(self, name: str) -> TrunkConfig | None:
        """Return the trunk with this name, or None."""
        return next((t for t in self.trunks if t.name == name), None)

    def route(self, called: str, caller: str, when: datetime,
              extension: AgentConfig | None = None, *,
              from_trunk: bool = False) -> RouteConfig | None:
        """Return the first route matching a call, or None.

        :param when: time of the call; an aware datetime is converted to the site's time
            zone (``server.timezone``, else the system's), a naive one is taken as local.
        :param extension: the agent placing the call (permissions), if any.
        :param from_trunk: the call comes from a trunk (``source`` condition).
        """
        local = self.local_time(when)
        return next((r for r in self.routes
                     if r.matches(called, caller, local, extension, from_trunk=from_trunk)),
                    None)

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
            "voicemail",
            "recording",
            "routes",
            "lists",
            "logging",
            "acd",
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
_IVR_KEYS = _keys(IvrConfig, without=("name", "start", "steps"))
_IVR_FLOW_KEYS = ("fallback", "invalid", "retries", "silent_prompt", "silent_seconds", "start",
                  "steps", "timeout")
_IVR_STEP_KEYS: dict[str, tuple[str, ...]] = {
    "play": ("interruptible", "kind", "next", "prompt"),
    "menu": (
        "fallback", "interruptible", "invalid", "kind", "options", "prompt", "retries",
        "timeout", "timeout_prompt", "variable",
    ),
    "collect": (
        "fallback", "inter_digit_timeout", "interruptible", "invalid", "kind", "max_digits",
        "min_digits", "next", "pattern", "prompt", "retries", "terminator", "timeout",
        "timeout_prompt", "variable",
    ),
    "branch": ("cases", "default", "kind", "variable"),
    "http": (
        "body", "failure", "headers", "kind", "map", "method", "next", "prompt", "status",
        "timeout", "url",
    ),
    "set": ("kind", "next", "variables"),
    "time": ("cases", "default", "kind"),
    "transfer": ("kind", "number", "priority", "to"),
    "goto": ("kind", "to"),
}
_IVR_CASE_KEYS = ("equals", "ge", "gt", "in", "le", "lt", "matches", "next", "variable")
_IVR_TIME_CASE_KEYS = ("dates", "days", "next", "time")
_VOICEMAIL_KEYS = _keys(VoicemailConfig, without=("name",))
_RECORDING_KEYS = _keys(RecordingConfig)
_ROUTE_KEYS = _keys(RouteConfig, without=("_match", "_caller"))
#: ``[[routes]] source`` values.
ROUTE_SOURCES = ("any", "trunk", "extension")
_DIGITS_RE = re.compile(r"^[0-9*#+]*$")
_LOGGING_KEYS = _keys(LoggingConfig)
_ACD_KEYS = _keys(AcdConfig)
_FEATURE_CODE_RE = re.compile(r"^[*#0-9]{2,8}$")
_DTMF_KEY_RE = re.compile(r"^[0-9*#]$")


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

    def pattern(self, t: _Table, name: str, default: Any = _MISSING,
                lists: Mapping[str, tuple[str, ...]] | None = None) -> NumberPattern | None:
        value = t.text(name, default, what='a number, an "_" pattern, "re:REGEX" or "list:NAME"')
        if value is None:
            return None
        try:
            return compile_pattern(value, lists)
        except PatternError as exc:
            t.fail(name, f'a number, an "_" pattern, "re:REGEX" or "list:NAME" ({exc})', value)

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
            media_priority=t.integer("media_priority", 0, lo=0, hi=99),
            data_dir=self.path(t, "data_dir", str(d.data_dir)),
            external_ip=external_ip,
            timezone=tz,
            moh=self.prompt(t, "moh", None),
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
        # HTTPS without [tls] is allowed: hotline.selfsigned makes a certificate for it.
        # SIP over TLS is not: phones and carriers would refuse a self-signed one.
        needs = [str(x) for x in server.sip if x.transport in ("tls", "wss")]
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
            caller_id = t.text("caller_id", None, regex=_NUMBER_RE,
                               what="a number: digits with an optional leading +")
            caller_id_mode = t.text("caller_id_mode", None, choices=CALLER_ID_MODES)
            if caller_id_mode == "fixed" and caller_id is None:
                t.fail("caller_id_mode", 'caller_id to be set with caller_id_mode = "fixed"',
                       caller_id_mode)
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
                    max_channels=t.integer("max_channels", 0, lo=0, hi=100000),
                    options_interval=t.integer("options_interval", 60, lo=0),
                    caller_id=caller_id,
                    caller_id_mode=caller_id_mode,
                    from_user=t.text("from_user", None, regex=_SIP_USER_RE,
                                     what="a SIP user name of letters, digits, + _ . -"),
                    privacy=t.flag("privacy", False),
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
                    permissions=t.str_list("permissions", regex=_NAME_RE,
                                           what="a permission name"),
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
                hours=self.time_window_key(t, "hours"),
                days=frozenset(self.weekdays(t)),
                closed=(self.target(t, t.key("closed"), t.raw("closed"))
                        if t.has("closed") else None),
                join_empty=t.flag("join_empty", True),
                leave_when_empty=t.flag("leave_when_empty", False),
                announce_every=t.integer("announce_every", 0, lo=0, hi=3600),
                announce=self.announce_template(t, "announce"),
                announce_no_estimate=self.announce_template(t, "announce_no_estimate"),
                messages=self.prompts(t, "messages", ()),
                message_every=t.integer("message_every", 0, lo=0, hi=3600),
                keys=self.queue_keys(t),
                sticky_window=t.integer("sticky_window", 7 * 86400, lo=1),
                sticky_fallback=t.text("sticky_fallback", "longest-idle",
                                       choices=tuple(x for x in STRATEGIES if x != "sticky")),
                short_abandon=t.integer("short_abandon", 5, lo=0, hi=600),
                record=t.flag("record", True),
                silent_prompt=self.prompt(t, "silent_prompt", None),
                silent_seconds=t.integer("silent_seconds", 5, lo=1, hi=120),
            )
            if q.messages and not q.message_every:
                t.fail("message_every", "seconds between messages (messages are set)", 0)
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
            if m.has("steps") or m.has("start"):
                out[name] = self.ivr_flow(name, m)
                continue
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
                silent_prompt=self.prompt(m, "silent_prompt", None),
                silent_seconds=m.integer("silent_seconds", 5, lo=1, hi=120),
            )
            m.done()
        return MappingProxyType(out)

    def ivr_flow(self, name: str, m: _Table) -> IvrConfig:
        """The flow form: ``[ivr.NAME]`` with ``start`` and ``[ivr.NAME.steps.STEP]`` tables.

        Step references (``next = "menu"``) are checked here, within the IVR; targets
        (``queue:billing``) are checked with every other target in :meth:`finish`.
        """
        for simple in ("greeting", "menu"):
            if m.has(simple):
                m.fail(
                    simple,
                    "no greeting or menu in a flow with steps (use a play or menu step)",
                    m.raw(simple),
                )
        m.expect(_IVR_FLOW_KEYS)
        refs: list[tuple[str, str]] = []
        timeout = m.integer("timeout", 5, lo=1, hi=120)
        retries = m.integer("retries", 3, lo=0, hi=20)
        invalid = self.prompt(m, "invalid", None)
        if invalid is not None:
            self.template_check(m.key("invalid"), invalid)
        fallback = self.ivr_next(m, "fallback", refs, Target("hangup"))
        silent_prompt = self.prompt(m, "silent_prompt", None)
        silent_seconds = m.integer("silent_seconds", 5, lo=1, hi=120)
        steps_t = m.table("steps")
        assert steps_t is not None
        if not steps_t.data:
            m.fail("steps", "at least one [ivr.NAME.steps.STEP] table", {})
        names = list(steps_t.data)
        for sname in names:
            if not _NAME_RE.match(sname) or sname in ("echo", "hangup"):
                steps_t.fail(
                    sname, "a step name of letters, digits, _ . - (not echo or hangup)", sname
                )
        defaults = _StepDefaults(timeout, retries, (invalid,) if invalid else (), fallback)
        steps: dict[str, IvrStep] = {}
        for sname in names:
            st = steps_t.table(sname)
            assert st is not None
            steps[sname] = self.ivr_step(st, sname, refs, defaults)
        steps_t.done()
        start = m.text("start", names[0], regex=_NAME_RE, what="the name of one of its steps")
        if start not in steps:
            m.fail("start", "one of its steps (" + ", ".join(names) + ")", start)
        for key, ref in refs:
            if ref not in steps:
                raise ConfigError(
                    self.file,
                    key,
                    f"a step of ivr.{name} (" + ", ".join(names) + ") or a target",
                    _show(ref),
                )
        reachable = _reachable_steps(start, steps)
        for sname in names:
            if sname not in reachable:
                self.warnings.append(f'{steps_t.key(sname)}: not reachable from start "{start}"')
        m.done()
        return IvrConfig(
            name=name,
            greeting=None,
            timeout=timeout,
            retries=retries,
            invalid=invalid,
            fallback=fallback,
            start=start,
            steps=MappingProxyType(steps),
            silent_prompt=silent_prompt,
            silent_seconds=silent_seconds,
        )

    def ivr_step(
        self, st: _Table, name: str, refs: list[tuple[str, str]], d: _StepDefaults
    ) -> IvrStep:
        """One ``[ivr.NAME.steps.STEP]`` table."""
        if "kind" not in st.data:
            st.expect(sorted({k for keys in _IVR_STEP_KEYS.values() for k in keys}))
        kind = st.text("kind", choices=IVR_STEP_KINDS)
        st.expect(_IVR_STEP_KEYS[kind])
        step: IvrStep
        if kind == "play":
            step = IvrPlayStep(
                name=name,
                prompts=self.prompts(st, "prompt"),
                next=self.ivr_next(st, "next", refs),
                interruptible=st.flag("interruptible", True),
            )
        elif kind == "menu":
            prompts = self.prompts(st, "prompt")
            opts = st.table("options")
            assert opts is not None
            if not opts.data:
                st.fail("options", 'at least one key, e.g. { "1" = "queue:billing" }', {})
            options: dict[str, IvrNext] = {}
            for digit in opts.data:
                key = opts.key(_quote_key(digit))
                opts.seen.add(digit)
                if digit not in DTMF_KEYS:
                    raise ConfigError(
                        self.file, key, "a single DTMF key 0-9, *, #, A-D", _show(digit)
                    )
                options[digit] = self.ivr_next_value(key, opts.data[digit], refs)
            step = IvrMenuStep(
                name=name,
                prompts=prompts,
                options=MappingProxyType(options),
                timeout=st.integer("timeout", d.timeout, lo=1, hi=120),
                retries=st.integer("retries", d.retries, lo=0, hi=20),
                invalid=self.prompts(st, "invalid", d.invalid),
                timeout_prompts=self.prompts(st, "timeout_prompt", ()),
                fallback=self.ivr_next(st, "fallback", refs, d.fallback),
                variable=self.variable(st, "variable", None),
                interruptible=st.flag("interruptible", True),
            )
        elif kind == "collect":
            min_digits = st.integer("min_digits", 1, lo=0, hi=64)
            max_digits = st.integer("max_digits", 20, lo=1, hi=64)
            if max_digits < min_digits:
                st.fail("max_digits", f"at least min_digits ({min_digits})", max_digits)
            terminator = st.raw("terminator", "#")
            if terminator != "" and terminator not in DTMF_KEYS:
                st.fail("terminator", 'a DTMF key such as "#", or "" for none', terminator)
            step = IvrCollectStep(
                name=name,
                prompts=self.prompts(st, "prompt"),
                variable=self.variable(st, "variable"),
                next=self.ivr_next(st, "next", refs),
                min_digits=min_digits,
                max_digits=max_digits,
                terminator=terminator or None,
                timeout=st.integer("timeout", d.timeout, lo=1, hi=120),
                inter_digit_timeout=st.integer("inter_digit_timeout", 3, lo=1, hi=60),
                pattern=self.regex(st, "pattern"),
                retries=st.integer("retries", d.retries, lo=0, hi=20),
                invalid=self.prompts(st, "invalid", d.invalid),
                timeout_prompts=self.prompts(st, "timeout_prompt", ()),
                fallback=self.ivr_next(st, "fallback", refs, d.fallback),
                interruptible=st.flag("interruptible", True),
            )
        elif kind == "branch":
            variable = self.variable(st, "variable", None)
            cases = tuple(
                self.ivr_case(ct, variable, refs) for ct in self.case_tables(st, "cases")
            )
            step = IvrBranchStep(
                name=name,
                cases=cases,
                default=self.ivr_next(st, "default", refs),
                variable=variable,
            )
        elif kind == "http":
            step = self.ivr_http(st, name, refs, d)
        elif kind == "set":
            vt = st.table("variables")
            assert vt is not None
            if not vt.data:
                st.fail("variables", "at least one variable, e.g. { lang = \"en\" }", {})
            values: dict[str, str] = {}
            for var in vt.data:
                if not _VARIABLE_RE.match(var):
                    vt.fail(var, "a variable name of letters, digits and _", var)
                value = vt.raw(var)
                if isinstance(value, bool):
                    value = "true" if value else "false"
                elif isinstance(value, int | float):
                    value = str(value)
                elif not isinstance(value, str):
                    vt.fail(var, "a string (a template), a number or true/false", value)
                self.template_check(vt.key(var), value)
                values[var] = value
            step = IvrSetStep(
                name=name,
                variables=MappingProxyType(values),
                next=self.ivr_next(st, "next", refs),
            )
        elif kind == "time":
            step = IvrTimeStep(
                name=name,
                cases=tuple(self.ivr_time_case(ct, refs) for ct in self.case_tables(st, "cases")),
                default=self.ivr_next(st, "default", refs),
            )
        elif kind == "transfer":
            to = self.target(st, st.key("to"), st.raw("to"))
            number = st.text("number", None, what="a number to dial (a template)")
            if number is not None:
                if to.kind != "trunk":
                    st.fail("number", "no number unless the target is trunk:NAME", number)
                self.template_check(st.key("number"), number)
            step = IvrTransferStep(
                name=name,
                to=to,
                priority=st.integer("priority", None, lo=0, hi=100),
                number=number,
            )
        else:
            step = IvrGotoStep(name=name, to=self.ivr_next(st, "to", refs))
        st.done()
        return step

    def ivr_http(
        self, st: _Table, name: str, refs: list[tuple[str, str]], d: _StepDefaults
    ) -> IvrHttpStep:
        url = st.text("url", regex=_URL_RE, what="an http:// or https:// URL (a template)")
        self.template_check(st.key("url"), url)
        body = None
        if st.has("body"):
            raw_body = st.raw("body")
            if not isinstance(raw_body, dict):
                st.fail("body", "a table (the JSON object sent)", raw_body)
            body = MappingProxyType(self.json_template(st.key("body"), raw_body))
        method = st.text("method", "POST" if body is not None else "GET", choices=HTTP_METHODS)
        headers: dict[str, Secret] = {}
        ht = st.table("headers", {})
        assert ht is not None
        for header in ht.data:
            if not _HEADER_RE.match(header):
                ht.fail(header, "an HTTP header name", header)
            value = self.secret(ht, header)
            assert value is not None
            headers[header] = value
        mapping: dict[str, str] = {}
        mt = st.table("map", {})
        assert mt is not None
        for var in mt.data:
            if not _VARIABLE_RE.match(var):
                mt.fail(var, "a variable name of letters, digits and _", var)
            mapping[var] = mt.text(
                var, what="a dotted path into the JSON answer, e.g. data.balance"
            )
        return IvrHttpStep(
            name=name,
            url=url,
            next=self.ivr_next(st, "next", refs),
            method=method,
            body=body,
            headers=MappingProxyType(headers),
            timeout=st.integer("timeout", 5, lo=1, hi=60),
            map=MappingProxyType(mapping),
            status=self.variable(st, "status", None),
            prompts=self.prompts(st, "prompt", ()),
            failure=self.ivr_next(st, "failure", refs, d.fallback),
        )

    def case_tables(self, st: _Table, name: str) -> list[_Table]:
        items = st.array(name)
        if not items:
            st.fail(name, 'at least one case, e.g. [{ equals = "1", next = "STEP" }]', items)
        out = []
        for i, item in enumerate(items):
            key = f"{st.key(name)}[{i}]"
            if not isinstance(item, dict):
                raise ConfigError(self.file, key, "a table with next and conditions", _show(item))
            out.append(_Table(self.file, key, item))
        return out

    def ivr_case(self, ct: _Table, variable: str | None, refs: list[tuple[str, str]]) -> IvrCase:
        ct.expect(_IVR_CASE_KEYS)
        conditions = [k for k in _IVR_CASE_KEYS if k not in ("next", "variable") and ct.has(k)]
        if not conditions:
            raise ConfigError(
                self.file, ct.path, "at least one of equals, in, matches, lt, le, gt, ge", "none"
            )
        case_var = self.variable(ct, "variable", None)
        if case_var is None and variable is None:
            ct.fail("variable", "a variable name (here or on the step)")
        equals = None
        if ct.has("equals"):
            equals = _case_text(ct, "equals", ct.raw("equals"))
        one_of = None
        if ct.has("in"):
            items = ct.array("in")
            one_of = tuple(_case_text(ct, f"in[{i}]", v) for i, v in enumerate(items))
        numbers: dict[str, float | None] = {}
        for op in ("lt", "le", "gt", "ge"):
            value = ct.raw(op, None)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                ct.fail(op, "a number", value)
            numbers[op] = None if value is None else float(value)
        case = IvrCase(
            next=self.ivr_next(ct, "next", refs),
            variable=case_var,
            equals=equals,
            one_of=one_of,
            matches=self.regex(ct, "matches"),
            lt=numbers["lt"],
            le=numbers["le"],
            gt=numbers["gt"],
            ge=numbers["ge"],
        )
        ct.done()
        return case

    def time_window(self, t: _Table) -> tuple[dtime, dtime] | None:
        """``time = "HH:MM-HH:MM"`` of a route or IVR time case, or None."""
        return self.time_window_key(t, "time")

    def time_window_key(self, t: _Table, key: str) -> tuple[dtime, dtime] | None:
        """A ``"HH:MM-HH:MM"`` key, or None when absent."""
        raw_time = t.text(key, None, what='a time range "HH:MM-HH:MM"')
        if raw_time is None:
            return None
        window = _parse_time_range(raw_time)
        if window is None:
            t.fail(key, 'a time range "HH:MM-HH:MM" (24-hour clock)', raw_time)
        return window

    def announce_template(self, t: _Table, name: str) -> str:
        """A queue announcement: a prompt whose only ``{names}`` are position, minutes."""
        default = getattr(QueueConfig(""), name)
        value: str = self.prompt(t, name, default)
        self.template_check(t.key(name), value)
        for m in TEMPLATE_RE.finditer(value):
            if m.group(1) is not None and m.group(1) not in ("position", "minutes"):
                t.fail(name, "a prompt with {position} and {minutes} only", value)
        return value

    def queue_keys(self, t: _Table) -> Mapping[str, str]:
        """``keys = { "1" = "voicemail:general", "2" = "callback" }`` of a queue."""
        sub = t.table("keys", {})
        assert sub is not None
        out: dict[str, str] = {}
        for digit in sub.data:
            if not _DTMF_KEY_RE.match(digit):
                sub.fail(digit, "a single DTMF key 0-9 * #", digit)
            value = sub.raw(digit)
            if value == "callback":
                out[digit] = "callback"
            else:
                out[digit] = str(self.target(sub, sub.key(digit), value))
        return MappingProxyType(out)

    def acd(self, doc: _Table) -> AcdConfig:
        t = doc.table("acd", {})
        assert t is not None
        t.expect(_ACD_KEYS)
        codes = {}
        defaults = AcdConfig()
        for name in ("ready_code", "not_ready_code", "logout_code", "listen_code",
                     "whisper_code", "barge_code"):
            codes[name] = t.text(name, getattr(defaults, name), regex=_FEATURE_CODE_RE,
                                 what="a feature code of 2-8 keys * # 0-9, such as *50")
        seen: dict[str, str] = {}
        for name, code in codes.items():
            if code in seen:
                t.fail(name, f"a code different from {seen[code]}", code)
            seen[code] = name
        reasons = t.str_list("reasons", regex=_NAME_RE, what="a reason code") or \
            defaults.reasons
        dispositions = t.str_list("dispositions", regex=_NAME_RE,
                                  what="a disposition code (letters, digits, _ . -; "
                                       "up to 64 characters)")
        for i, code in enumerate(dispositions):
            if code in dispositions[:i]:
                raise ConfigError(self.file, f"{t.key('dispositions')}[{i}]",
                                  "a code not given twice", _show(code))
        cfg = AcdConfig(**codes, reasons=tuple(reasons), dispositions=dispositions)
        t.done()
        return cfg

    def weekdays(self, t: _Table) -> set[int]:
        """``days = ["mon-fri", ...]`` of a route or IVR time case (empty: every day)."""
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
        return days

    def ivr_time_case(self, ct: _Table, refs: list[tuple[str, str]]) -> IvrTimeCase:
        ct.expect(_IVR_TIME_CASE_KEYS)
        if not any(ct.has(k) for k in ("time", "days", "dates")):
            raise ConfigError(self.file, ct.path, "at least one of time, days, dates", "none")
        window = self.time_window(ct)
        days = self.weekdays(ct)
        dates: set[tuple[int, int, int]] = set()
        for i, item in enumerate(ct.array("dates", [])):
            date = _parse_date(item)
            if date is None:
                raise ConfigError(
                    self.file,
                    f"{ct.key('dates')}[{i}]",
                    'a date "YYYY-MM-DD", or "MM-DD" for every year',
                    _show(item),
                )
            dates.add(date)
        case = IvrTimeCase(
            next=self.ivr_next(ct, "next", refs),
            time=window,
            days=frozenset(days),
            dates=frozenset(dates),
        )
        ct.done()
        return case

    def ivr_next(
        self, t: _Table, name: str, refs: list[tuple[str, str]], default: Any = _MISSING
    ) -> Any:
        value = t.raw(name, default)
        if value is default and default is not _MISSING:
            return value
        return self.ivr_next_value(t.key(name), value, refs)

    def ivr_next_value(self, key: str, value: Any, refs: list[tuple[str, str]]) -> IvrNext:
        """A step name of the same IVR (checked later) or a target (``queue:billing``)."""
        if isinstance(value, str) and (":" in value or value in ("echo", "hangup")):
            return self.target(None, key, value)
        if isinstance(value, str) and _NAME_RE.match(value):
            refs.append((key, value))
            return value
        raise ConfigError(
            self.file, key, "a step name or a target such as queue:NAME", _show(value)
        )

    def prompts(self, t: _Table, name: str, default: Any = _MISSING) -> Any:
        """A prompt or an array of prompts, each may hold ``{variable}`` templates."""
        value = t.raw(name, default)
        if value is default and default is not _MISSING:
            return value
        items = value if isinstance(value, list) else [value]
        if not items:
            t.fail(name, "a prompt or a non-empty array of prompts", value)
        out = []
        for i, item in enumerate(items):
            key = f"{t.key(name)}[{i}]" if isinstance(value, list) else t.key(name)
            if not isinstance(item, str) or not item.strip():
                raise ConfigError(self.file, key, "a prompt file name or tts:TEXT", _show(item))
            if item.startswith("tts:") and not item[4:].strip():
                raise ConfigError(self.file, key, "text after tts:", _show(item))
            self.template_check(key, item)
            out.append(item)
        return tuple(out)

    def variable(self, t: _Table, name: str, default: Any = _MISSING) -> Any:
        return t.text(
            name, default, regex=_VARIABLE_RE, what="a variable name of letters, digits and _"
        )

    def regex(self, t: _Table, name: str) -> str | None:
        value = t.text(name, None, what="a regular expression")
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                t.fail(name, f"a valid regular expression ({exc})", value)
        return value  # type: ignore[no-any-return]

    def template_check(self, key: str, text: str) -> None:
        rest = TEMPLATE_RE.sub("", text)
        if "{" in rest or "}" in rest:
            raise ConfigError(
                self.file,
                key,
                "a template of text and {VARIABLE} names (write {{ and }} for braces)",
                _show(text),
            )

    def json_template(self, key: str, value: Any) -> Any:
        """Check a JSON body template (strings are templates); return a deep copy."""
        if isinstance(value, dict):
            return {k: self.json_template(f"{key}.{k}", v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json_template(f"{key}[{i}]", v) for i, v in enumerate(value)]
        if isinstance(value, str):
            self.template_check(key, value)
            return value
        if isinstance(value, bool | int | float):
            return value
        raise ConfigError(
            self.file, key, "a string, number, true/false, array or table", _show(value)
        )

    def voicemails(self, doc: _Table) -> Mapping[str, VoicemailConfig]:
        t = doc.table("voicemail", {})
        assert t is not None
        out: dict[str, VoicemailConfig] = {}
        for name in list(t.data):
            if not _NAME_RE.match(name):
                t.fail(name, "a mailbox name of letters, digits, _ . -", name)
            b = t.table(name)
            assert b is not None
            b.expect(_VOICEMAIL_KEYS)
            d = VoicemailConfig(name)
            pin = self.secret(b, "pin", None)
            if pin is not None and not pin.startswith("<unset:") and not _PIN_RE.match(pin):
                raise ConfigError(self.file, b.key("pin"), "1 to 16 digits", "something else")
            max_seconds = b.integer("max_seconds", d.max_seconds, lo=5, hi=3600)
            min_seconds = b.integer("min_seconds", d.min_seconds, lo=0, hi=60)
            if min_seconds >= max_seconds:
                b.fail("min_seconds", f"less than max_seconds ({max_seconds})", min_seconds)
            command = b.str_list("notify_command", what="a command-line argument (a template)")
            for i, arg in enumerate(command):
                self.template_check(f"{b.key('notify_command')}[{i}]", arg)
            out[name] = VoicemailConfig(
                name=name,
                greeting=self.prompt(b, "greeting", None),
                beep=self.prompt(b, "beep", d.beep),
                max_seconds=max_seconds,
                silence_seconds=b.integer("silence_seconds", d.silence_seconds, lo=0, hi=60),
                min_seconds=min_seconds,
                pin=pin,
                notify_command=command,
                notify_url=b.text(
                    "notify_url", None, regex=_URL_RE, what="an http:// or https:// URL"
                ),
            )
            b.done()
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

    def lists(self, doc: _Table) -> Mapping[str, tuple[str, ...]]:
        t = doc.table("lists", {})
        assert t is not None
        out: dict[str, tuple[str, ...]] = {}
        for name in list(t.data):
            if not _NAME_RE.match(name):
                t.fail(name, "a list name of letters, digits, _ . -", name)
            entries = t.str_list(name, what="a number or pattern")
            for i, entry in enumerate(entries):
                try:
                    compile_pattern(entry)
                except PatternError as exc:
                    raise ConfigError(self.file, f"{t.key(name)}[{i}]",
                                      f'a number, an "_" pattern or "re:REGEX" ({exc})',
                                      _show(entry)) from None
            out[name] = tuple(entries)
        t.done()
        return MappingProxyType(out)

    def routes(self, doc: _Table,
               lists: Mapping[str, tuple[str, ...]]) -> tuple[RouteConfig, ...]:
        out: list[RouteConfig] = []
        for t in self.array_of_tables(doc, "routes"):
            t.expect(_ROUTE_KEYS)
            match = self.pattern(t, "match", lists=lists)
            assert match is not None
            caller = self.pattern(t, "caller", None, lists=lists)
            to = self.target(t, t.key("to"), t.raw("to"))
            window = self.time_window(t)
            days = self.weekdays(t)
            source = t.text("source", "extension" if to.kind == "trunk" else "any",
                            choices=ROUTE_SOURCES)
            if not to.kind == "trunk":
                for key in ("strip", "prepend"):
                    if t.has(key):
                        t.fail(key, "only with a trunk:NAME target", t.raw(key))
            out.append(
                RouteConfig(
                    match=match.text,
                    to=to,
                    caller=caller.text if caller is not None else None,
                    time=window,
                    days=frozenset(days),
                    priority=t.integer("priority", 0, lo=0, hi=100),
                    source=source,
                    permission=t.text("permission", None, regex=_NAME_RE,
                                      what="a permission name"),
                    record=t.flag("record", True),
                    strip=t.integer("strip", 0, lo=0, hi=20),
                    prepend=t.text("prepend", "", regex=_DIGITS_RE,
                                   what="digits, * # or +"),
                    _match=match,
                    _caller=caller,
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
            if pool is None or target.arg is None:
                continue
            # A trunk target may list several trunks (failover); each must exist.
            parts = target.arg.split(",") if target.kind == "trunk" else [target.arg]
            missing = [p for p in parts if p not in pool]
            if missing:
                known = ", ".join(sorted(pool)) or "none defined"
                got = _show(str(target))
                if len(parts) > 1:
                    got = f"{_show(missing[0])} in {got}"
                raise ConfigError(
                    self.file,
                    key,
                    f"{what[target.kind]} that exists ({known})",
                    got,
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


@dataclass(frozen=True, slots=True)
class _StepDefaults:
    """IVR-level values that a flow's menu/collect/http steps inherit."""

    timeout: int
    retries: int
    invalid: tuple[str, ...]
    fallback: IvrNext


def _parse_date(value: Any) -> tuple[int, int, int] | None:
    if not isinstance(value, str):
        return None
    m = _DATE_RE.match(value)
    if not m:
        return None
    year = int(m.group(1)) if m.group(1) else 0
    month, day = int(m.group(2)), int(m.group(3))
    try:
        datetime(year or 2000, month, day)  # 2000 is a leap year: 02-29 is a valid MM-DD
    except ValueError:
        return None
    return year, month, day


def _case_text(t: _Table, name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ConfigError(t.file, t.key(name), "a string or an integer", _show(value))
    return str(value)


def ivr_step_links(step: IvrStep) -> tuple[IvrNext, ...]:
    """Every place an IVR step may go next (step names and targets)."""
    if isinstance(step, IvrPlayStep | IvrSetStep):
        return (step.next,)
    if isinstance(step, IvrMenuStep):
        return (*step.options.values(), step.fallback)
    if isinstance(step, IvrCollectStep):
        return (step.next, step.fallback)
    if isinstance(step, IvrBranchStep | IvrTimeStep):
        return (*(c.next for c in step.cases), step.default)
    if isinstance(step, IvrHttpStep):
        return (step.next, step.failure)
    if isinstance(step, IvrGotoStep):
        return (step.to,)
    return (step.to,)


def _reachable_steps(start: str, steps: Mapping[str, IvrStep]) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        step = steps.get(todo.pop())
        if step is None:
            continue
        for link in ivr_step_links(step):
            if isinstance(link, str) and link not in seen:
                seen.add(link)
                todo.append(link)
    return seen


#: A mailbox name: it is also a folder under DATA_DIR/voicemail.
_VOICEMAIL_BOX_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


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
    if kind == "trunk" and sep and "," in arg:
        # Failover: the trunks are tried in this order (hotline.trunkselect).
        names = [n.strip() for n in arg.split(",")]
        if not all(names) or len(set(names)) != len(names):
            raise ValueError("a target trunk:NAME or trunk:NAME,NAME,... (tried in that "
                             "order) naming each trunk once")
        return Target(kind, ",".join(names))
    if kind == "voicemail" and sep:
        box = arg[1:] if arg.startswith("*") else arg  # *BOX: the owner listening
        if not _VOICEMAIL_BOX_RE.match(box) or box in (".", ".."):
            raise ValueError("a target voicemail:BOX or voicemail:*BOX (the owner listening), "
                             "BOX of letters, digits, _ . - (it names a folder)")
        return Target(kind, arg)
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
    voicemail = loader.voicemails(doc)
    recording = loader.recording(doc)
    lists = loader.lists(doc)
    routes = loader.routes(doc, lists)
    logging_cfg = loader.logging(doc)
    acd = loader.acd(doc)
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
        voicemail=voicemail,
        recording=recording,
        routes=routes,
        lists=lists,
        logging=logging_cfg,
        acd=acd,
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
        announce_every=45,
        keys=MappingProxyType({"1": "voicemail:support"}),
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
