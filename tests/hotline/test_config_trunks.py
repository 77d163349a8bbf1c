"""hotline.config: trunk failover lists in targets, channel limits and caller-ID keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.config import ConfigError, SiteConfig, Target, TrunkConfig, load_config, parse_target

TRUNKS = """
[[trunks]]
name = "telecom"
host = "198.51.100.7"

[[trunks]]
name = "unicom"
host = "sip.unicom.example"
username = "0755123456"
password = "secret-pass"
register = true

[[trunks]]
name = "backup"
host = "192.0.2.50"
"""


def load(tmp_path: Path, text: str) -> SiteConfig:
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, {})


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    message = str(info.value)
    prefix = f"{tmp_path / 'site.toml'}: "
    assert message.startswith(prefix) and info.value.file == str(tmp_path / "site.toml")
    return message[len(prefix):]


def test_trunk_defaults(tmp_path: Path) -> None:
    t = load(tmp_path, TRUNKS).trunks[0]
    assert (t.max_channels, t.caller_id, t.caller_id_mode, t.from_user, t.privacy) == (
        0, None, None, None, False)


def test_trunk_caller_id_keys(tmp_path: Path) -> None:
    cfg = load(tmp_path, TRUNKS.replace(
        'name = "telecom"\n',
        'name = "telecom"\nmax_channels = 30\ncaller_id = "+8675596116"\n'
        'caller_id_mode = "pass"\nfrom_user = "0755123456"\nprivacy = true\n'))
    t = cfg.trunk("telecom")
    assert t == TrunkConfig(
        name="telecom", host="198.51.100.7", allow=t.allow, max_channels=30,  # type: ignore[union-attr]
        caller_id="+8675596116", caller_id_mode="pass", from_user="0755123456", privacy=True)


@pytest.mark.parametrize(
    ("to", "arg"),
    [
        ("trunk:telecom", "telecom"),
        ("trunk:telecom,unicom", "telecom,unicom"),
        ("trunk:unicom, telecom ,backup", "unicom,telecom,backup"),
    ],
)
def test_route_to_trunks_in_failover_order(tmp_path: Path, to: str, arg: str) -> None:
    cfg = load(tmp_path, TRUNKS + f'\n[[routes]]\nmatch = "_0."\nto = "{to}"\nstrip = 1\n')
    route = cfg.routes[0]
    assert route.to == Target("trunk", arg) and str(route.to) == f"trunk:{arg}"
    assert (route.source, route.strip) == ("extension", 1)


def test_failover_lists_work_wherever_targets_do(tmp_path: Path) -> None:
    cfg = load(tmp_path, TRUNKS + """
[ivr.main]
greeting = "tts:hi"
menu = { "9" = "trunk:backup,telecom" }
""")
    assert cfg.ivr["main"].menu["9"] == Target("trunk", "backup,telecom")


def test_parse_target_trunk_lists() -> None:
    assert parse_target("trunk:a,b") == Target("trunk", "a,b")
    for bad in ("trunk:a,", "trunk:,a", "trunk:a,,b", "trunk:a,b,a", "trunk:a, a"):
        with pytest.raises(ValueError, match="naming each trunk once"):
            parse_target(bad)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            'max_channels = -1\n',
            "trunks[0].max_channels: expected an integer 0..100000 (got -1)",
        ),
        (
            'max_channels = "10"\n',
            'trunks[0].max_channels: expected an integer 0..100000 (got "10")',
        ),
        (
            'caller_id = "96116x"\n',
            "trunks[0].caller_id: expected a number: digits with an optional leading + "
            '(got "96116x")',
        ),
        (
            'caller_id = 96116\n',
            "trunks[0].caller_id: expected a number: digits with an optional leading + "
            "(got 96116)",
        ),
        (
            'caller_id_mode = "fixed"\n',
            'trunks[0].caller_id_mode: expected caller_id to be set with caller_id_mode = '
            '"fixed" (got "fixed")',
        ),
        (
            'caller_id = "1"\ncaller_id_mode = "restricted"\n',
            'trunks[0].caller_id_mode: expected one of pass, fixed (got "restricted")',
        ),
        (
            'from_user = "a b"\n',
            'trunks[0].from_user: expected a SIP user name of letters, digits, + _ . - '
            '(got "a b")',
        ),
        ('privacy = "yes"\n', 'trunks[0].privacy: expected true or false (got "yes")'),
        (
            "channels = 30\n",
            "trunks[0].channels: expected one of the keys allow, caller_id, caller_id_mode, "
            "expires, from_user, host, max_channels, name, options_interval, password, port, "
            'privacy, register, transport, username (got an unknown key; did you mean '
            '"max_channels"?)',
        ),
    ],
)
def test_bad_trunk_values(tmp_path: Path, extra: str, expected: str) -> None:
    text = TRUNKS.replace('host = "198.51.100.7"\n', 'host = "198.51.100.7"\n' + extra)
    assert error_of(tmp_path, text) == expected


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        (
            "trunk:telecom,nope",
            'routes[0].to: expected a trunk that exists (backup, telecom, unicom) '
            '(got "nope" in "trunk:telecom,nope")',
        ),
        (
            "trunk:nope",
            'routes[0].to: expected a trunk that exists (backup, telecom, unicom) '
            '(got "trunk:nope")',
        ),
        (
            "trunk:telecom,telecom",
            "routes[0].to: expected a target trunk:NAME or trunk:NAME,NAME,... (tried in that "
            'order) naming each trunk once (got "trunk:telecom,telecom")',
        ),
        (
            "trunk:telecom,",
            "routes[0].to: expected a target trunk:NAME or trunk:NAME,NAME,... (tried in that "
            'order) naming each trunk once (got "trunk:telecom,")',
        ),
    ],
)
def test_bad_trunk_lists(tmp_path: Path, to: str, expected: str) -> None:
    text = TRUNKS + f'\n[[routes]]\nmatch = "_0."\nto = "{to}"\n'
    assert error_of(tmp_path, text) == expected


def test_bad_trunk_list_in_an_ivr_menu(tmp_path: Path) -> None:
    text = TRUNKS + '[ivr.main]\ngreeting = "tts:hi"\nmenu = { "9" = "trunk:backup,x" }\n'
    assert error_of(tmp_path, text) == (
        'ivr.main.menu.9: expected a trunk that exists (backup, telecom, unicom) '
        '(got "x" in "trunk:backup,x")')
