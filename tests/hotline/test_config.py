"""hotline.config: loading site.toml, the exact error for each kind of mistake, the demo."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import stat
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from hotline.config import (
    STRATEGIES,
    AcdConfig,
    AgentConfig,
    ConfigError,
    IvrConfig,
    Listener,
    LoggingConfig,
    QueueConfig,
    RecordingConfig,
    RouteConfig,
    Secret,
    ServerConfig,
    SipConfig,
    SiteConfig,
    Target,
    TlsConfig,
    TrunkConfig,
    UserConfig,
    apply_overrides,
    demo_config,
    demo_passwords,
    load_config,
    parse_target,
)

DATA = Path(__file__).resolve().parents[1] / "data"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "config.md"
FULL_ENV = {
    "UNICOM_PASSWORD": "unicom-secret",
    "AGENT_1001_PASSWORD": "li-na-secret",
    "BOSS_PASSWORD": "boss-secret",
}


def load_text(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> SiteConfig:
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env or {})


def error_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text, env)
    message = str(info.value)
    prefix = f"{tmp_path / 'site.toml'}: "
    assert message.startswith(prefix)
    return message[len(prefix) :]


# --------------------------------------------------------------------------- the full site


def test_full_site_loads_every_section() -> None:
    cfg = load_config(DATA / "site_full.toml", FULL_ENV)
    assert cfg.source == str(DATA / "site_full.toml")
    assert cfg.warnings == ()
    assert cfg.server.sip == (
        Listener("udp", "0.0.0.0", 5060),
        Listener("tcp", "0.0.0.0", 5060),
        Listener("udp", "::", 5060),
        Listener("ws", "127.0.0.1", 5066),
    )
    assert str(cfg.server.sip[2]) == "udp:[::]:5060"
    assert str(cfg.server.http) == "127.0.0.1:8080"
    assert cfg.server.https is None
    assert cfg.server.rtp_ports == (20000, 29999)
    assert cfg.server.media_workers == 2
    assert cfg.server.data_dir == Path("/var/lib/hotline")
    assert cfg.server.external_ip == "203.0.113.10"
    assert cfg.server.timezone == "Asia/Shanghai"
    assert cfg.sip == SipConfig(
        realm="hotline.example.cn",
        user_agent="WaterHotline/1.0",
        max_failures=3,
        window=120,
        ban_seconds=3600,
        session_expires=900,
        min_se=90,
        min_expires=120,
        max_expires=1800,
    )
    assert cfg.tls is None

    telecom, unicom = cfg.trunks
    assert telecom.allow == (
        ipaddress.ip_network("198.51.100.0/28"),
        ipaddress.ip_network("2001:db8::/64"),
    )
    assert (telecom.max_channels, telecom.options_interval, telecom.caller_id) == (60, 30, "96116")
    assert telecom.register is False and telecom.password is None
    assert unicom.register and unicom.username == "0755123456"
    assert unicom.password == "unicom-secret" and isinstance(unicom.password, Secret)
    assert (unicom.port, unicom.transport, unicom.expires, unicom.allow) == (5060, "tcp", 600, ())

    a1001 = cfg.agent("1001")
    assert a1001 is not None and a1001.password == "li-na-secret"
    assert dict(a1001.skills) == {"billing": 5, "repair": 2} and a1001.teams == ("east",)
    assert cfg.agents[1].name == "王伟"
    assert [(u.name, u.role, u.teams) for u in cfg.users] == [
        ("boss", "supervisor", ("east",)),
        ("root", "admin", ()),
    ]
    assert cfg.users[0].password == "boss-secret"

    billing = cfg.queue("billing")
    assert billing == QueueConfig(
        name="billing",
        strategy="longest-idle",
        skills={"billing": 1},
        ring_timeout=15,
        max_wait=300,
        overflow=Target("voicemail", "general"),
        wrapup=10,
        service_level=20,
        moh="moh/spring.wav",
    )
    repair, vip = cfg.queues[1:]
    assert (repair.strategy, repair.overflow, repair.priority) == (
        "skills",
        Target("queue", "billing"),
        1,
    )
    assert (vip.agents, vip.max_wait, vip.overflow) == (("1003",), 0, None)
    assert [a.id for a in cfg.queue_members(billing)] == ["1001", "1003"]
    assert [a.id for a in cfg.queue_members(repair)] == ["1002"]
    assert [a.id for a in cfg.queue_members(vip)] == ["1003"]

    main = cfg.ivr["main"]
    assert main.greeting.startswith("tts:您好")
    assert dict(main.menu) == {
        "1": Target("queue", "billing"),
        "2": Target("ivr", "repair"),
        "0": Target("queue", "billing"),
        "*": Target("ivr", "main"),
    }
    assert (main.timeout, main.retries, main.fallback) == (5, 3, Target("queue", "billing"))
    assert main.invalid == "tts:输入有误，请重新输入。"
    repair_menu = cfg.ivr["repair"]
    assert repair_menu.menu["2"] == Target("play", "tts:停水通知：今日无计划停水。")
    assert (repair_menu.timeout, repair_menu.retries, repair_menu.invalid) == (5, 3, None)
    assert repair_menu.fallback == Target("hangup")

    assert cfg.recording == RecordingConfig(enabled=True, format="opus", retention_days=365)
    assert cfg.logging == LoggingConfig(level="debug", format="json")
    assert len(cfg.routes) == 9
    assert cfg.routes[1].time == (time(18, 0), time(8, 0))
    assert cfg.routes[2].days == frozenset({5, 6})
    assert cfg.routes[3].days == frozenset(range(5))
    assert cfg.routes[0].priority == 50
    assert cfg.summary() == (
        "4 SIP listeners, 2 trunks, 3 agents, 2 users, 3 queues, 2 IVR menus, 9 routes"
    )


def test_secrets_do_not_show_in_repr() -> None:
    cfg = load_config(DATA / "site_full.toml", FULL_ENV)
    text = repr(cfg)
    for secret in (*FULL_ENV.values(), "correct-horse-battery", "an-admin-password"):
        assert secret not in text
    assert "Secret('***')" in text


@pytest.mark.parametrize(
    ("called", "caller", "when", "target"),
    [
        # VIP caller wins whatever the time
        ("96116", "13900001234", datetime(2024, 5, 4, 3, 0), "queue:vip"),
        # after hours, wrapping past midnight
        ("96116", "010", datetime(2024, 5, 6, 20, 0), "voicemail:general"),
        ("96116", "010", datetime(2024, 5, 6, 7, 59), "voicemail:general"),
        # weekend daytime
        ("96116", "010", datetime(2024, 5, 4, 10, 0), "play:closed.wav"),
        # weekday office hours (end excluded)
        ("96116", "010", datetime(2024, 5, 6, 8, 0), "ivr:main"),
        ("96116", "010", datetime(2024, 5, 10, 17, 59), "ivr:main"),
        ("*43", "1001", datetime(2024, 5, 6, 10, 0), "echo"),
        ("075512345678", "1001", datetime(2024, 5, 6, 10, 0), "trunk:telecom,unicom"),
        ("1002", "1001", datetime(2024, 5, 6, 10, 0), "agent:1001"),
        ("1", "1001", datetime(2024, 5, 6, 10, 0), "hangup"),
        # an aware time is converted to the site's zone: 02:00 UTC is 10:00 in Shanghai
        ("96116", "010", datetime(2024, 5, 6, 2, 0, tzinfo=UTC), "ivr:main"),
    ],
)
def test_route_matching(called: str, caller: str, when: datetime, target: str) -> None:
    cfg = load_config(DATA / "site_full.toml", FULL_ENV)
    route = cfg.route(called, caller, when)
    assert route is not None and str(route.to) == target


def test_minimal_site_gets_defaults() -> None:
    cfg = load_config(DATA / "site_minimal.toml", {})
    assert cfg.server == dataclasses.replace(ServerConfig(), data_dir=DATA / "hotline-data")
    assert cfg.sip == SipConfig()
    assert cfg.recording == RecordingConfig()
    assert cfg.logging == LoggingConfig()
    assert (cfg.trunks, cfg.users, cfg.queues) == ((), (), ())
    assert cfg.agents == (AgentConfig(id="1001", name="Li Na", password=Secret("a-long-password")),)
    assert cfg.routes == (RouteConfig(match="*43", to=Target("echo")),)
    assert cfg.route("*43", "x", datetime(2024, 1, 1)) is not None
    assert cfg.route("*44", "x", datetime(2024, 1, 1)) is None


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "site.pem").write_text("cert")
    (tmp_path / "certs" / "site.key").write_text("key")
    cfg = load_text(
        tmp_path,
        '[server]\nsip = ["tls:0.0.0.0:5061", "wss:0.0.0.0:7443"]\nhttps = "0.0.0.0:8443"\n'
        'data_dir = "data"\n[tls]\ncert = "certs/site.pem"\nkey = "certs/site.key"\n',
    )
    assert cfg.tls == TlsConfig(tmp_path / "certs" / "site.pem", tmp_path / "certs" / "site.key")
    assert cfg.server.data_dir == tmp_path / "data"
    assert str(cfg.server.https) == "0.0.0.0:8443"


def test_http_can_be_disabled(tmp_path: Path) -> None:
    assert load_text(tmp_path, '[server]\nhttp = ""\n').server.http is None


def test_env_secret_and_trunk_allow_default(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        '[[trunks]]\nname = "pbx"\nhost = "192.0.2.9"\npassword = "env:PBX"\n',
        {"PBX": "from-env"},
    )
    assert cfg.trunks[0].password == "from-env"
    assert cfg.trunks[0].allow == (ipaddress.ip_network("192.0.2.9/32"),)


def test_no_secrets_mode_accepts_missing_variables() -> None:
    cfg = load_config(DATA / "site_full.toml", {}, require_secrets=False)
    assert cfg.users[0].password == "<unset:BOSS_PASSWORD>"


def test_warnings(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        '[[trunks]]\nname = "out"\nhost = "sip.example.com"\n'
        '[[agents]]\nid = "1001"\nname = "A"\npassword = "short"\n'
        '[[queues]]\nname = "q"\nskills = { french = 1 }\n',
    )
    assert cfg.warnings == (
        "trunks[0].allow: no networks, so no inbound calls are accepted from this trunk",
        "agents[0].password: shorter than 8 characters; "
        "SIP passwords are brute-forced on the internet",
        "routes: none defined, so inbound calls are rejected",
        "queues: q: no agent can take its calls",
    )


# --------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "site_bad_strategy.toml",
            "queues[1].strategy: expected one of ring-all, longest-idle, round-robin, "
            'fewest-calls, least-talk-time, skills, random, linear, sticky (got "fastest")',
        ),
        (
            "site_bad_unknown_key.toml",
            "trunks[1].hots: expected one of the keys allow, caller_id, caller_id_mode, "
            "expires, from_user, host, max_channels, name, options_interval, password, port, "
            "privacy, register, transport, username "
            '(got an unknown key; did you mean "host"?)',
        ),
        (
            "site_bad_target.toml",
            'routes[0].to: expected an [ivr.NAME] menu that exists (none defined) (got "ivr:main")',
        ),
        (
            "site_bad_listener.toml",
            "server.sip[1]: expected TRANSPORT:HOST:PORT with TRANSPORT one of udp, tcp, tls, "
            'ws, wss and a port 1..65535 (got "sctp:0.0.0.0:5060")',
        ),
        (
            "site_bad_rtp_ports.toml",
            "server.rtp_ports: expected [LOW, HIGH] with 1024 <= LOW < HIGH <= 65535 and LOW "
            "even (got [20001, 29999])",
        ),
        (
            "site_bad_duplicate_agent.toml",
            'agents[1].id: expected an agent id not used by another agent (got "1001")',
        ),
        (
            "site_bad_cidr.toml",
            "trunks[0].allow[1]: expected a network in CIDR notation with no host bits set, "
            'e.g. 192.0.2.0/24 (got "10.0.0.1/8")',
        ),
        (
            "site_bad_skill_level.toml",
            "agents[0].skills.repair: expected an integer 1..10 (got 11)",
        ),
        (
            "site_bad_syntax.toml",
            "line 2, column 11: expected valid TOML "
            "(Expected newline or end of document after a statement)",
        ),
        (
            "site_bad_menu_key.toml",
            'ivr.main.menu.12: expected a single DTMF key 0-9, *, #, A-D (got "12")',
        ),
        (
            "site_bad_env.toml",
            "users[0].password: expected environment variable BOSS_PASSWORD to be set "
            "(got BOSS_PASSWORD unset)",
        ),
        (
            "site_bad_section.toml",
            "queue: expected one of the sections acd, agents, ivr, lists, logging, queues, "
            "recording, routes, server, sip, tls, trunks, users, voicemail "
            '(got an unknown section; did you mean "queues"?)',
        ),
        (
            "site_bad_tls.toml",
            "tls: expected a [tls] section with cert and key, because of tls:0.0.0.0:5061 "
            "(got no [tls] section)",
        ),
        # DESIGN.md's example menu sends "2" to a queue it never defines.
        (
            "site_design.toml",
            'ivr.main.menu.2: expected a queue that exists (billing) (got "queue:repair")',
        ),
    ],
)
def test_bad_file(name: str, expected: str) -> None:
    path = DATA / name
    with pytest.raises(ConfigError) as info:
        load_config(path, FULL_ENV if name == "site_design.toml" else {})
    assert str(info.value) == f"{path}: {expected}"
    err = info.value
    assert err.file == str(path)
    assert str(err) == f"{err.file}: {err.key}: expected {err.expected} (got {err.got})" or (
        err.got is None
    )


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert str(info.value) == f"{path}: expected a readable file (got No such file or directory)"


AGENT = '[[agents]]\nid = "1001"\nname = "A"\npassword = "a-long-password"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[server]\nsip = []\n",
            'server.sip: expected at least one listener such as "udp:0.0.0.0:5060" (got [])',
        ),
        (
            '[server]\nsip = ["udp:0.0.0.0:5060", "udp:0.0.0.0:5060"]\n',
            'server.sip[1]: expected a listener not given twice (got "udp:0.0.0.0:5060")',
        ),
        (
            '[server]\nsip = ["udp:0.0.0.0:70000"]\n',
            "server.sip[0]: expected TRANSPORT:HOST:PORT "
            "with TRANSPORT one of udp, tcp, tls, ws, wss and a port 1..65535 "
            '(got "udp:0.0.0.0:70000")',
        ),
        (
            '[server]\nsip = ["udp:::1:5060"]\n',
            "server.sip[0]: expected TRANSPORT:HOST:PORT with "
            'TRANSPORT one of udp, tcp, tls, ws, wss and a port 1..65535 (got "udp:::1:5060")',
        ),
        (
            '[server]\nsip = ["ws:0.0.0.0:8080"]\n',
            "server.http: expected a TCP port not already used by server.sip[0] "
            '(got "0.0.0.0:8080")',
        ),
        (
            '[server]\nsip = ["udp:0.0.0.0:5060", "udp:127.0.0.1:5060"]\n',
            "server.sip[1]: expected a UDP port not already used by server.sip[0] "
            '(got "127.0.0.1:5060")',
        ),
        (
            '[server]\nsip = ["tcp:[::]:5060", "tls:[::1]:5060"]\n[tls]\ncert="a"\nkey="b"\n',
            "server.sip[1]: expected a TCP port not already used by server.sip[0] "
            '(got "[::1]:5060")',
        ),
        (
            '[server]\nhttp = "8080"\n',
            'server.http: expected HOST:PORT with a port 1..65535 (got "8080")',
        ),
        (
            "[server]\nmedia_workers = -1\n",
            "server.media_workers: expected an integer 0..256 (got -1)",
        ),
        (
            "[server]\nmedia_workers = true\n",
            "server.media_workers: expected an integer 0..256 (got true)",
        ),
        (
            "[server]\nmedia_priority = 100\n",
            "server.media_priority: expected an integer 0..99 (got 100)",
        ),
        (
            "[server]\nrtp_ports = [30000, 20000]\n",
            "server.rtp_ports: expected [LOW, HIGH] with "
            "1024 <= LOW < HIGH <= 65535 and LOW even (got [30000, 20000])",
        ),
        (
            '[server]\nexternal_ip = "my.host"\n',
            'server.external_ip: expected an IP address (got "my.host")',
        ),
        (
            '[server]\ntimezone = "Mars/Olympus"\n',
            "server.timezone: expected an IANA time zone "
            'such as Asia/Shanghai (got "Mars/Olympus")',
        ),
        ('[tls]\ncert = "x.pem"\nkey = "x.key"\n', None),  # checked below: file must exist
        ("[sip]\nmin_se = 30\n", "sip.min_se: expected an integer >= 90 (got 30)"),
        (
            "[sip]\nsession_expires = 60\n",
            "sip.session_expires: expected 0 or at least min_se (90) (got 60)",
        ),
        (
            "[sip]\nmin_expires = 600\nmax_expires = 300\n",
            "sip.max_expires: expected at least min_expires (600) (got 300)",
        ),
        ('[sip]\nrealm = ""\n', 'sip.realm: expected a non-empty string (got "")'),
        (
            '[[trunks]]\nname = "t"\nhost = "bad host"\n',
            'trunks[0].host: expected a host name or IP address (got "bad host")',
        ),
        (
            '[[trunks]]\nname = "t"\nhost = "h.example"\nregister = true\n',
            "trunks[0].register: expected username and password when register = true (got true)",
        ),
        (
            '[[trunks]]\nname = "t"\nhost = "h.example"\ntransport = "sctp"\n',
            'trunks[0].transport: expected one of udp, tcp, tls (got "sctp")',
        ),
        (
            '[[trunks]]\nname = "t"\nhost = "h.example"\n[[trunks]]\nname = "t"\nhost = "h2"\n',
            'trunks[1].name: expected a trunk name not used by another trunk (got "t")',
        ),
        (
            '[[trunks]]\nname = "t"\nhost = "h.example"\npassword = "env:1BAD"\n',
            "trunks[0].password: expected env: followed by an environment variable name "
            '(got "env:1BAD")',
        ),
        ('trunks = { name = "t" }\n', "trunks: expected an array (got a table)"),
        (
            '[[agents]]\nid = 1001\nname = "A"\npassword = "a-long-password"\n',
            'agents[0].id: expected a string such as "1001" (quote it) (got 1001)',
        ),
        (
            '[[agents]]\nname = "A"\npassword = "a-long-password"\n',
            "agents[0].id: expected a value (this key is required)",
        ),
        (
            '[[agents]]\nid = "1001"\nname = "A"\npassword = "env:NOPE"\n',
            "agents[0].password: expected environment variable NOPE to be set (got NOPE unset)",
        ),
        (
            AGENT + 'skills = { "bad skill" = 1 }\n',
            "agents[0].skills.bad skill: expected a skill name of letters, digits, _ . - "
            '(got "bad skill")',
        ),
        (AGENT + 'teams = ["east", 3]\n', "agents[0].teams[1]: expected a team name (got 3)"),
        (
            AGENT + '[[users]]\nname = "1001"\npassword = "a-long-password"\n',
            'users[0].name: expected a user name different from every agent id (got "1001")',
        ),
        (
            '[[users]]\nname = "u"\npassword = "a-long-password"\nrole = "god"\n',
            'users[0].role: expected one of agent, supervisor, admin (got "god")',
        ),
        (
            '[[queues]]\nname = "q"\n[[queues]]\nname = "q"\n',
            'queues[1].name: expected a queue name not used by another queue (got "q")',
        ),
        (
            '[[queues]]\nname = "q"\nstrategy = "skills"\n',
            'queues[0].skills: expected at least one skill when strategy = "skills" (got a table)',
        ),
        (
            '[[queues]]\nname = "q"\nagents = ["9999"]\n',
            'queues[0].agents[0]: expected the id of an agent (got "9999")',
        ),
        (
            '[[queues]]\nname = "q"\noverflow = "queue:q2"\n',
            'queues[0].overflow: expected a queue that exists (q) (got "queue:q2")',
        ),
        (
            '[[queues]]\nname = "q"\noverflow = "voicemail"\n',
            "queues[0].overflow: expected a target ivr:NAME, queue:NAME, agent:ID, trunk:NAME, "
            'voicemail:BOX, conference:ROOM, play:PROMPT, echo or hangup (got "voicemail")',
        ),
        (
            '[[queues]]\nname = "q"\nring_timeout = 0\n',
            "queues[0].ring_timeout: expected an integer 1..600 (got 0)",
        ),
        (
            '[[queues]]\nname = "q"\nmoh = "tts:  "\n',
            'queues[0].moh: expected text after tts: (got "tts:  ")',
        ),
        (
            '[ivr.main]\nmenu = { "1" = "echo" }\n',
            "ivr.main.greeting: expected a value (this key is required)",
        ),
        (
            '[ivr.main]\ngreeting = "x.wav"\nmenu = { "1" = "agent:1001" }\n',
            'ivr.main.menu.1: expected an agent that exists (none defined) (got "agent:1001")',
        ),
        (
            '[ivr.main]\ngreeting = "x.wav"\nfallback = "echo:now"\n',
            "ivr.main.fallback: expected a target ivr:NAME, queue:NAME, agent:ID, trunk:NAME, "
            'voicemail:BOX, conference:ROOM, play:PROMPT, echo or hangup (got "echo:now")',
        ),
        (
            '[ivr.main]\ngreeting = "x.wav"\ntimout = 3\n',
            "ivr.main.timout: expected one of the keys fallback, greeting, invalid, menu, retries, "
            "silent_prompt, silent_seconds, "
            'timeout (got an unknown key; did you mean "timeout"?)',
        ),
        ('[ivr]\nmain = "x"\n', 'ivr.main: expected a table (got "x")'),
        (
            '[recording]\nformat = "flac"\n',
            'recording.format: expected one of wav, opus, mp3 (got "flac")',
        ),
        ('[recording]\nenabled = "yes"\n', 'recording.enabled: expected true or false (got "yes")'),
        (
            '[[routes]]\nmatch = "re:(["\nto = "echo"\n',
            'routes[0].match: expected a number, an "_" pattern, "re:REGEX" or "list:NAME" '
            '(bad regular expression (unterminated character set at position 1)) '
            '(got "re:([")',
        ),
        (
            '[[routes]]\nmatch = "_9Q."\nto = "echo"\n',
            'routes[0].match: expected a number, an "_" pattern, "re:REGEX" or "list:NAME" '
            "('Q' is not a digit, X, Z, N, [set], . or !) (got \"_9Q.\")",
        ),
        (
            '[[routes]]\nmatch = "1"\ncaller = "list:vip"\nto = "echo"\n',
            'routes[0].caller: expected a number, an "_" pattern, "re:REGEX" or "list:NAME" '
            "(no list 'vip' in [lists] (none defined)) (got \"list:vip\")",
        ),
        (
            '[[routes]]\nmatch = "1"\nto = "echo"\nstrip = 1\n',
            "routes[0].strip: expected only with a trunk:NAME target (got 1)",
        ),
        (
            '[[routes]]\nmatch = "1"\nto = "trunk:none"\n',
            'routes[0].to: expected a trunk that exists (none defined) (got "trunk:none")',
        ),
        (
            '[[routes]]\nmatch = "1"\nto = "echo"\ntime = "25:00-08:00"\n',
            'routes[0].time: expected a time range "HH:MM-HH:MM" (24-hour clock) '
            '(got "25:00-08:00")',
        ),
        (
            '[[routes]]\nmatch = "1"\nto = "echo"\ndays = ["mon", "funday"]\n',
            'routes[0].days[1]: expected a day mon..sun or a range such as mon-fri (got "funday")',
        ),
        (
            '[[routes]]\nmatch = 95598\nto = "echo"\n',
            'routes[0].match: expected a number, an "_" pattern, "re:REGEX" or "list:NAME" '
            "(got 95598)",
        ),
        (
            '[logging]\nlevel = "verbose"\n',
            'logging.level: expected one of debug, info, warning, error, critical (got "verbose")',
        ),
        (
            '[logging]\nformat = "text"\n',
            'logging.format: expected one of logfmt, json (got "text")',
        ),
    ],
)
def test_bad_value(tmp_path: Path, text: str, expected: str | None) -> None:
    if expected is None:
        expected = f'tls.cert: expected an existing file (got "{tmp_path / "x.pem"}")'
    assert error_of(tmp_path, text) == expected


def test_every_strategy_is_accepted(tmp_path: Path) -> None:
    for strategy in STRATEGIES:
        skills = "skills = { s = 1 }\n" if strategy == "skills" else ""
        cfg = load_text(tmp_path, f'[[queues]]\nname = "q"\nstrategy = "{strategy}"\n{skills}')
        assert cfg.queues[0].strategy == strategy


def test_parse_target() -> None:
    assert parse_target("queue:billing") == Target("queue", "billing")
    assert parse_target("play:tts:hello: world") == Target("play", "tts:hello: world")
    assert parse_target("hangup") == Target("hangup", None)
    assert str(parse_target("conference:room1")) == "conference:room1"
    for bad in ("", "queue:", "queue", "echo:x", "dial:123", 5, "play:tts:"):
        with pytest.raises(ValueError):
            parse_target(bad)


def test_route_days_wrap_and_time_24() -> None:
    route = RouteConfig(
        match="re:9\\d+",
        to=Target("echo"),
        days=frozenset({5, 6, 0}),
        time=(time(22, 0), time(0, 0)),
    )
    assert route.matches("95598", "x", datetime(2024, 5, 6, 23, 30))  # Monday
    assert not route.matches("95598", "x", datetime(2024, 5, 7, 23, 30))  # Tuesday
    assert not route.matches("95598", "x", datetime(2024, 5, 6, 21, 59))
    assert not route.matches("1", "x", datetime(2024, 5, 6, 23, 30))


# --------------------------------------------------------------------------- overrides, demo


def test_apply_overrides() -> None:
    cfg = load_config(DATA / "site_full.toml", FULL_ENV)
    new = apply_overrides(cfg, sip_port=15060, http_port=18080, data_dir=Path("/tmp/x"))
    assert [str(x) for x in new.server.sip] == [
        "udp:0.0.0.0:15060",
        "tcp:0.0.0.0:15060",
        "udp:[::]:15060",
        "ws:127.0.0.1:5066",
    ]
    assert str(new.server.http) == "127.0.0.1:18080"
    assert new.server.data_dir == Path("/tmp/x")
    assert apply_overrides(cfg) == cfg
    with pytest.raises(ValueError):
        apply_overrides(cfg, sip_port=70000)


def test_demo_site(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = demo_passwords(data_dir)
    assert first.created and set(first.passwords) == {
        "1001",
        "1002",
        "1003",
        "1004",
        "1005",
        "admin",
    }
    assert all(re.fullmatch(r"[A-Za-z0-9]{12}", p) for p in first.passwords.values())
    assert len(set(first.passwords.values())) == 6
    assert stat.S_IMODE(os.stat(first.path).st_mode) == 0o600
    assert json.loads(first.path.read_text()) == dict(first.passwords)

    cfg = demo_config(data_dir)
    second = demo_passwords(data_dir)
    assert not second.created and second.passwords == first.passwords
    assert [a.id for a in cfg.agents] == ["1001", "1002", "1003", "1004", "1005"]
    assert {a.id: str(a.password) for a in cfg.agents} == {
        k: v for k, v in first.passwords.items() if k != "admin"
    }
    assert cfg.users[0].name == "admin" and cfg.users[0].password == first.passwords["admin"]
    assert cfg.server.data_dir == data_dir
    assert [str(x) for x in cfg.server.sip] == ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"]
    assert str(cfg.server.http) == "0.0.0.0:8080"
    when = datetime(2024, 5, 6, 10, 0)
    assert {n: str(cfg.route(n, "1001", when).to) for n in ("100", "200", "*43")} == {  # type: ignore[union-attr]
        "100": "ivr:demo",
        "200": "queue:support",
        "*43": "echo",
    }
    assert cfg.queue_members(cfg.queues[0])
    assert cfg.warnings == ()


def test_demo_config_is_a_valid_site(tmp_path: Path) -> None:
    """The demo, written back out as TOML, passes the same validation as a file."""
    cfg = demo_config(tmp_path)
    lines = ["[server]", f'data_dir = "{tmp_path}"']
    for t in cfg.trunks:
        allow = ", ".join(f'"{n}"' for n in t.allow)
        lines += [
            "[[trunks]]",
            f'name = "{t.name}"',
            f'host = "{t.host}"',
            f"port = {t.port}",
            f"allow = [{allow}]",
            f"options_interval = {t.options_interval}",
        ]
    for a in cfg.agents:
        skills = ", ".join(f"{k} = {v}" for k, v in a.skills.items())
        lines += [
            "[[agents]]",
            f'id = "{a.id}"',
            f'name = "{a.name}"',
            f'password = "{a.password}"',
            f"skills = {{ {skills} }}",
            'teams = ["demo"]',
        ]
    for u in cfg.users:
        lines += [
            "[[users]]",
            f'name = "{u.name}"',
            f'password = "{u.password}"',
            f'role = "{u.role}"',
        ]
    for q in cfg.queues:
        skills = ", ".join(f"{k} = {v}" for k, v in q.skills.items())
        lines += [
            "[[queues]]",
            f'name = "{q.name}"',
            f'strategy = "{q.strategy}"',
            f"skills = {{ {skills} }}",
            f'overflow = "{q.overflow}"',
            f"max_wait = {q.max_wait}",
            f"wrapup = {q.wrapup}",
            f"announce_every = {q.announce_every}",
            "keys = { " + ", ".join(f'"{k}" = "{v}"' for k, v in q.keys.items()) + " }",
        ]
    for ivr in cfg.ivr.values():
        menu = ", ".join(f'"{k}" = "{v}"' for k, v in ivr.menu.items())
        lines += [
            f"[ivr.{ivr.name}]",
            f'greeting = "{ivr.greeting}"',
            f"menu = {{ {menu} }}",
            f'invalid = "{ivr.invalid}"',
            f'fallback = "{ivr.fallback}"',
        ]
    lines += ["[recording]", 'format = "wav"', "retention_days = 30"]
    for r in cfg.routes:
        lines += ["[[routes]]", f'match = "{r.match}"', f'to = "{r.to}"']
    reloaded = load_text(tmp_path, "\n".join(lines) + "\n")
    assert dataclasses.replace(reloaded, source="<demo>") == cfg


# --------------------------------------------------------------------------- docs


@pytest.mark.parametrize(
    ("section", "cls"),
    [
        ("server", ServerConfig),
        ("sip", SipConfig),
        ("tls", TlsConfig),
        ("trunks", TrunkConfig),
        ("agents", AgentConfig),
        ("users", UserConfig),
        ("queues", QueueConfig),
        ("ivr.NAME", IvrConfig),
        ("recording", RecordingConfig),
        ("routes", RouteConfig),
        ("logging", LoggingConfig),
        ("acd", AcdConfig),
    ],
)
def test_docs_cover_every_key(section: str, cls: type) -> None:
    """docs/config.md has a row ``| `key` |`` for each key of each section."""
    text = DOCS.read_text(encoding="utf-8")
    heading = re.search(rf"^## `\[{re.escape(section)}\]`|^## `\[\[{section}\]\]`", text, re.M)
    assert heading is not None, f"no heading for {section}"
    body = text[heading.end() :].split("\n## ", 1)[0]
    keys = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
    keys -= {"name"} if cls is IvrConfig else set()
    missing = sorted(k for k in keys if f"| `{k}` |" not in body)
    assert not missing, f"{section}: undocumented keys {missing}"


# --------------------------------------------------------------------------- robustness

_SECTION_CLASSES: dict[str, type] = {
    "server": ServerConfig,
    "sip": SipConfig,
    "tls": TlsConfig,
    "recording": RecordingConfig,
    "logging": LoggingConfig,
    "trunks": TrunkConfig,
    "agents": AgentConfig,
    "users": UserConfig,
    "queues": QueueConfig,
    "routes": RouteConfig,
    "ivr": IvrConfig,
}
_ARRAYS = {"trunks", "agents", "users", "queues", "routes"}


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


def _documents():  # type: ignore[no-untyped-def]
    from hypothesis import strategies as st

    words = st.sampled_from(
        [
            "",
            "1001",
            "billing",
            "queue:billing",
            "ivr:main",
            "echo",
            "env:X",
            "udp:0.0.0.0:5060",
            "10.0.0.0/8",
            "re:1.*",
            "mon-fri",
            "08:00-18:00",
            "tts:hi",
            "wav",
            "agent:1001",
            "trunk:t",
            "127.0.0.1",
            "x" * 9,
        ]
    )
    scalars = st.one_of(words, st.integers(-3, 70000), st.booleans())
    values = st.one_of(
        scalars,
        st.lists(st.one_of(words, st.integers(0, 30000)), max_size=3),
        st.dictionaries(
            st.sampled_from(["1", "billing", "*", "12"]),
            st.one_of(words, st.integers(0, 11)),
            max_size=3,
        ),
    )

    def table(cls: type) -> st.SearchStrategy[dict[str, object]]:
        keys = [f.name for f in dataclasses.fields(cls)] * 8 + ["bogus"]
        return st.dictionaries(st.sampled_from(keys), values, max_size=6)

    optional: dict[str, st.SearchStrategy[object]] = {}
    for section, cls in _SECTION_CLASSES.items():
        if section in _ARRAYS:
            optional[section] = st.lists(table(cls), max_size=3)
        elif section == "ivr":
            optional[section] = st.dictionaries(
                st.sampled_from(["main", "x"]), table(cls), max_size=2
            )
        else:
            optional[section] = table(cls)
    return st.fixed_dictionaries({}, optional=optional)


def test_any_document_loads_or_raises_config_error(tmp_path: Path) -> None:
    """Whatever the content, the outcome is a SiteConfig or a ConfigError, never a crash."""
    from hypothesis import given, settings

    path = tmp_path / "site.toml"

    @settings(max_examples=200, deadline=None)
    @given(_documents())
    def check(doc: dict[str, object]) -> None:
        path.write_text("\n".join(f"{k} = {_toml(v)}" for k, v in doc.items()) + "\n")
        try:
            cfg = load_config(path, {"X": "from-env"})
        except ConfigError as exc:
            assert exc.file == str(path)
            assert str(exc).startswith(f"{path}: ")
            assert exc.key.split(".")[0].split("[")[0] in {*doc, "tls"} or exc.key.startswith(
                "line"
            )
        else:
            assert isinstance(cfg, SiteConfig)

    check()


def test_voicemail_targets_name_a_folder_safe_box(tmp_path: Path) -> None:
    ok = load_text(tmp_path, '[[routes]]\nmatch = "5000"\nto = "voicemail:sales"\n\n'
                             '[[routes]]\nmatch = "5001"\nto = "voicemail:*sales"\n')
    assert [str(r.to) for r in ok.routes] == ["voicemail:sales", "voicemail:*sales"]
    err = error_of(tmp_path, '[[routes]]\nmatch = "5000"\nto = "voicemail:../etc"\n')
    assert err is not None and err.startswith("routes[0].to: expected a target voicemail:BOX")
    assert '(got "voicemail:../etc")' in err
