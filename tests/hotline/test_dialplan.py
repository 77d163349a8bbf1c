"""Dial plan: number patterns, lists, route sources, permissions and number rewriting."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.config import ConfigError, load_config
from hotline.dialplan import PatternError, compile_pattern, rewrite


@pytest.mark.parametrize(
    ("pattern", "yes", "no"),
    [
        ("95598", ["95598"], ["9559", "955981", "95599"]),
        ("*43", ["*43"], ["43", "*430"]),
        ("_9.", ["90", "907551234567"], ["9", "80", ""]),
        ("_9!", ["9", "90"], ["8"]),
        ("_NXXXXXX", ["2345678", "9999999"], ["1234567", "234567", "23456789"]),
        ("_1-800-NXX-XXXX", ["18002345678"], ["18001345678", "1-800-234-5678"]),
        ("_Z[13-5,7]X", ["113", "947", "950"], ["013", "123", "163", "19"]),
        ("_*5X", ["*50", "*59"], ["*5", "#50"]),
        ("re:0\\d{10,11}", ["07551234567", "075512345678"], ["0755123456", "1755123456"]),
    ],
)
def test_patterns(pattern: str, yes: list[str], no: list[str]) -> None:
    p = compile_pattern(pattern)
    for number in yes:
        assert p.matches(number), (pattern, number)
    for number in no:
        assert not p.matches(number), (pattern, number)


@pytest.mark.parametrize("bad", ["_", "_9Q", "_[12", "_[]", "re:(", "list:nope", ""])
def test_bad_patterns_are_refused(bad: str) -> None:
    with pytest.raises(PatternError):
        compile_pattern(bad, {"vip": ("1",)})


def _reference(pattern: str, number: str) -> bool:
    """Asterisk pattern semantics by plain recursion (no regular expressions)."""
    def classes(p: str) -> list[str]:
        out, i = [], 0
        while i < len(p):
            c = p[i]
            if c == "[":
                end = p.index("]", i)
                body, chars, j = p[i + 1:end].replace(",", ""), set(), 0
                while j < len(body):
                    if j + 2 < len(body) and body[j + 1] == "-":
                        chars |= {str(d) for d in range(int(body[j]), int(body[j + 2]) + 1)}
                        j += 3
                    else:
                        chars.add(body[j])
                        j += 1
                out.append("".join(sorted(chars)))
                i = end
            elif c != "-":
                out.append({"X": "0123456789", "Z": "123456789", "N": "23456789"}.get(c, c))
            i += 1
        return out

    def match(ps: list[str], s: str) -> bool:
        if not ps:
            return not s
        head = ps[0]
        if head == ".":
            return any(match(ps[1:], s[k:]) for k in range(1, len(s) + 1))
        if head == "!":
            return any(match(ps[1:], s[k:]) for k in range(0, len(s) + 1))
        return bool(s) and s[0] in head and match(ps[1:], s[1:])

    return match(classes(pattern[1:]), number)


@given(
    pattern=st.lists(st.sampled_from(["X", "Z", "N", "[2-4]", "[15,9]", "0", "9", "*", "."]),
                     min_size=1, max_size=6).map(lambda parts: "_" + "".join(parts)),
    number=st.text(alphabet="0123456789*", max_size=8),
)
def test_asterisk_patterns_match_a_plain_reference(pattern: str, number: str) -> None:
    assert compile_pattern(pattern).matches(number) == _reference(pattern, number)


def test_rewrite() -> None:
    assert rewrite("907551234567", 1) == "07551234567"
    assert rewrite("907551234567", 1, "17951") == "1795107551234567"
    assert rewrite("1001") == "1001"


SITE = """
[[trunks]]
name = "carrier"
host = "127.0.0.1"
allow = ["127.0.0.2/32"]

[[agents]]
id = "1001"
name = "A"
password = "a-long-enough-password"
permissions = ["intl"]

[[agents]]
id = "1002"
name = "B"
password = "b-long-enough-password"

[lists]
vip = ["13900001234", "_1390010XXXX"]
blocked = ["re:170\\\\d+"]

[[routes]]
match = "95598"
caller = "list:blocked"
to = "hangup"

[[routes]]
match = "95598"
caller = "list:vip"
to = "echo"
priority = 10

[[routes]]
match = "95598"
to = "play:tts:hello"

[[routes]]
match = "_900."
to = "trunk:carrier"
permission = "intl"
strip = 1

[[routes]]
match = "_9."
to = "trunk:carrier"
strip = 1
prepend = "17951"

[[routes]]
match = "_8."
to = "trunk:carrier"
source = "any"
"""


@pytest.fixture
def site(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "site.toml"
    path.write_text(SITE, encoding="utf-8")
    return load_config(path)


WHEN = datetime(2024, 5, 6, 10, 0)


@pytest.mark.parametrize(
    ("caller", "target", "priority"),
    [
        ("17012345678", "hangup", 0),
        ("13900001234", "echo", 10),
        ("13900105555", "echo", 10),
        ("13900205555", "play:tts:hello", 0),
    ],
)
def test_caller_lists(site, caller: str, target: str, priority: int) -> None:  # type: ignore[no-untyped-def]
    route = site.route("95598", caller, WHEN, from_trunk=True)
    assert route is not None
    assert (str(route.to), route.priority) == (target, priority)


def test_trunk_calls_are_not_sent_back_out(site) -> None:  # type: ignore[no-untyped-def]
    # a carrier's call to 9... matches no route: never tromboned to a paid trunk
    assert site.route("90755", "13900001234", WHEN, from_trunk=True) is None
    # unless the route asks for it
    route = site.route("80755", "13900001234", WHEN, from_trunk=True)
    assert route is not None and str(route.to) == "trunk:carrier"


def test_permissions_and_rewrite(site) -> None:  # type: ignore[no-untyped-def]
    intl, plain = site.agent("1001"), site.agent("1002")
    route = site.route("9001144123", "1001", WHEN, intl)
    assert route is not None and route.permission == "intl"
    assert rewrite("9001144123", route.strip, route.prepend) == "001144123"
    # without the permission the international route is skipped; the national one
    # (which also matches 9...) applies with its own rewriting
    route = site.route("9001144123", "1002", WHEN, plain)
    assert route is not None and route.permission is None
    assert rewrite("9001144123", route.strip, route.prepend) == "17951001144123"


def test_bad_list_entry_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text('[lists]\nvip = ["_1Q"]\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "lists.vip[0]" in str(info.value)
    assert "'Q' is not a digit" in str(info.value)
