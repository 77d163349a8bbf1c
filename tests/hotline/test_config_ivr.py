"""hotline.config: IVR flows (``[ivr.NAME.steps.STEP]``) and ``[voicemail.BOX]``."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from datetime import time
from pathlib import Path

import pytest

from hotline.config import (
    _IVR_CASE_KEYS,
    _IVR_STEP_KEYS,
    _IVR_TIME_CASE_KEYS,
    IVR_STEP_KINDS,
    ConfigError,
    IvrBranchStep,
    IvrCase,
    IvrCollectStep,
    IvrConfig,
    IvrHttpStep,
    IvrMenuStep,
    IvrPlayStep,
    IvrSetStep,
    IvrTimeCase,
    IvrTimeStep,
    IvrTransferStep,
    Secret,
    SiteConfig,
    Target,
    VoicemailConfig,
    load_config,
    render_template,
)

DATA = Path(__file__).resolve().parents[1] / "data"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "config.md"
FLOW = DATA / "site_ivr_flow.toml"
ENV = {"BILLING_TOKEN": "Bearer t0ken"}
FULL_ENV = {
    "UNICOM_PASSWORD": "unicom-secret",
    "AGENT_1001_PASSWORD": "li-na-secret",
    "BOSS_PASSWORD": "boss-secret",
}


def load_text(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> SiteConfig:
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env or {})


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    prefix = f"{tmp_path / 'site.toml'}: "
    assert str(info.value).startswith(prefix)
    return str(info.value)[len(prefix) :]


# --------------------------------------------------------------------------- good files


def test_flow_file_loads() -> None:
    cfg = load_config(FLOW, ENV)
    assert cfg.warnings == ()
    ivr = cfg.ivr["balance"]
    assert (ivr.greeting, dict(ivr.menu), ivr.start) == (None, {}, "hours")
    assert (ivr.timeout, ivr.retries, ivr.fallback) == (5, 2, "agent")
    assert list(ivr.steps) == [
        "hours", "closed", "welcome", "account", "lookup", "check", "owing", "say", "sorry",
        "agent",
    ]
    s = ivr.steps
    assert s["hours"] == IvrTimeStep(
        name="hours",
        cases=(
            IvrTimeCase(next="closed", dates=frozenset({(0, 1, 1), (0, 10, 1)})),
            IvrTimeCase(next="welcome", time=(time(8), time(20)), days=frozenset(range(5))),
        ),
        default="closed",
    )
    assert s["closed"] == IvrTransferStep("closed", Target("voicemail", "billing"))
    assert s["welcome"] == IvrPlayStep("welcome", ("tts:Welcome to the water company.",), "account")
    # IVR-level timeout/retries/invalid/fallback are inherited by collect and menu steps
    assert s["account"] == IvrCollectStep(
        name="account",
        prompts=("tts:Please enter your account number, then press pound.",),
        variable="account",
        next="lookup",
        min_digits=6,
        max_digits=10,
        inter_digit_timeout=4,
        retries=2,
        invalid=("tts:Sorry, I did not understand.",),
        fallback="agent",
    )
    lookup = s["lookup"]
    assert isinstance(lookup, IvrHttpStep)
    assert (lookup.method, lookup.url, lookup.timeout, lookup.status) == (
        "POST", "https://billing.example.com/api/balance", 4, "lookup_status"
    )
    assert dict(lookup.body or {}) == {"account": "{account}", "caller": "{caller}"}
    assert lookup.headers["Authorization"] == "Bearer t0ken"
    assert isinstance(lookup.headers["Authorization"], Secret)
    assert "t0ken" not in repr(cfg)
    assert dict(lookup.map) == {"balance": "data.balance", "name": "data.name"}
    assert (lookup.prompts, lookup.next, lookup.failure) == (
        ("tts:One moment please.",), "check", "sorry"
    )
    assert s["check"] == IvrBranchStep(
        "check", (IvrCase(next="owing", lt=0.0),), default="say", variable="balance"
    )
    assert s["owing"] == IvrSetStep("owing", {"reason": "owing {balance}"}, "say")
    say = s["say"]
    assert isinstance(say, IvrMenuStep)
    assert dict(say.options) == {"1": "say", "2": "account", "0": "agent"}
    assert (say.variable, say.fallback, say.retries) == ("choice", "agent", 2)
    assert s["agent"] == IvrTransferStep("agent", Target("queue", "billing"), priority=5)
    assert cfg.voicemail["billing"] == VoicemailConfig(
        name="billing",
        greeting="tts:Our office is closed. Please leave a message after the tone.",
        max_seconds=90,
        silence_seconds=4,
        notify_url="https://billing.example.com/hooks/voicemail",
    )


def test_simple_form_is_unchanged() -> None:
    cfg = load_config(DATA / "site_full.toml", FULL_ENV)
    main = cfg.ivr["main"]
    assert (main.start, dict(main.steps)) == (None, {})
    assert main.greeting is not None and main.greeting.startswith("tts:")
    assert cfg.voicemail == {}
    # a box only named in a target gets the defaults
    assert cfg.voicemail_box("general") == VoicemailConfig("general")


def test_every_step_kind_and_its_defaults(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        '[[trunks]]\nname = "t"\nhost = "192.0.2.1"\n'
        "[ivr.x]\n"
        "[ivr.x.steps.p]\nkind = \"play\"\nprompt = [\"a.wav\", \"tts:{{literal}}\"]\n"
        "next = \"m\"\ninterruptible = false\n"
        "[ivr.x.steps.m]\nkind = \"menu\"\nprompt = \"m.wav\"\ntimeout_prompt = \"t.wav\"\n"
        "options = { \"#\" = \"c\", \"*\" = \"p\", \"1\" = \"b\", \"2\" = \"h\", \"3\" = \"s\","
        " \"4\" = \"tm\", \"5\" = \"tr\", \"6\" = \"g\" }\n"
        "[ivr.x.steps.c]\nkind = \"collect\"\nprompt = \"c.wav\"\nvariable = \"n\"\n"
        "terminator = \"\"\nmin_digits = 0\npattern = \"\\\\d*\"\nnext = \"hangup\"\n"
        "[ivr.x.steps.b]\nkind = \"branch\"\n"
        "cases = [{ variable = \"n\", in = [\"1\", 2], matches = \"\\\\d\", ge = 1, le = 2,"
        " gt = 0, lt = 3, equals = 2, next = \"echo\" }]\ndefault = \"hangup\"\n"
        "[ivr.x.steps.h]\nkind = \"http\"\nurl = \"https://h/{n}\"\n"
        "body = { a = [1, \"{n}\", { b = true }], c = 1.5 }\nnext = \"echo\"\n"
        "[ivr.x.steps.s]\nkind = \"set\"\nvariables = { a = 1, b = true, c = \"{n}\" }\n"
        "next = \"hangup\"\n"
        "[ivr.x.steps.tm]\nkind = \"time\"\n"
        "cases = [{ dates = [\"2024-02-29\"], next = \"hangup\" }]\ndefault = \"echo\"\n"
        "[ivr.x.steps.tr]\nkind = \"transfer\"\nto = \"trunk:t\"\nnumber = \"0{n}\"\n"
        "[ivr.x.steps.g]\nkind = \"goto\"\nto = \"ivr:x\"\n",
    )
    s = cfg.ivr["x"].steps
    assert cfg.ivr["x"].start == "p"
    assert s["p"] == IvrPlayStep("p", ("a.wav", "tts:{{literal}}"), "m", interruptible=False)
    m = s["m"]
    assert isinstance(m, IvrMenuStep)
    assert (m.timeout, m.retries, m.invalid, m.timeout_prompts, m.fallback) == (
        5, 3, (), ("t.wav",), Target("hangup")
    )
    c = s["c"]
    assert isinstance(c, IvrCollectStep)
    assert (c.terminator, c.min_digits, c.max_digits, c.pattern, c.next) == (
        None, 0, 20, "\\d*", Target("hangup")
    )
    b = s["b"]
    assert isinstance(b, IvrBranchStep)
    assert b.cases[0] == IvrCase(
        next=Target("echo"), variable="n", equals="2", one_of=("1", "2"), matches="\\d",
        lt=3.0, le=2.0, gt=0.0, ge=1.0,
    )
    h = s["h"]
    assert isinstance(h, IvrHttpStep)
    assert (h.method, dict(h.body or {}), h.failure) == (
        "POST", {"a": [1, "{n}", {"b": True}], "c": 1.5}, Target("hangup")
    )
    assert dict(s["s"].variables) == {"a": "1", "b": "true", "c": "{n}"}  # type: ignore[union-attr]
    assert s["tm"].cases[0].dates == frozenset({(2024, 2, 29)})  # type: ignore[union-attr]
    assert s["tr"] == IvrTransferStep("tr", Target("trunk", "t"), number="0{n}")
    assert s["g"].to == Target("ivr", "x")  # type: ignore[union-attr]


def test_unreachable_steps_are_warned_about(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        '[ivr.x]\nstart = "b"\n'
        '[ivr.x.steps.a]\nkind = "goto"\nto = "c"\n'
        '[ivr.x.steps.b]\nkind = "goto"\nto = "hangup"\n'
        '[ivr.x.steps.c]\nkind = "goto"\nto = "a"\n',
    )
    assert cfg.warnings == (
        'ivr.x.steps.a: not reachable from start "b"',
        'ivr.x.steps.c: not reachable from start "b"',
    )


def test_render_template() -> None:
    v = {"a": "x y", "b": "{a}"}
    assert render_template("{a}-{b}-{c}-{{a}}-}}", v) == "x y-{a}--{a}-}"
    assert render_template("u/{a}", v, lambda s: s.replace(" ", "%20")) == "u/x%20y"
    assert render_template("{ a } {", v) == "{ a } {"  # not a reference: kept


# --------------------------------------------------------------------------- bad values

M = '[ivr.m]\nstart = "a"\n'
A = M + "[ivr.m.steps.a]\n"
Q = '[[queues]]\nname = "billing"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (M, "ivr.m.steps: expected a value (this key is required)"),
        (
            "[ivr.m]\nsteps = {}\n",
            "ivr.m.steps: expected at least one [ivr.NAME.steps.STEP] table (got a table)",
        ),
        (
            '[ivr.m]\ngreeting = "x"\nstart = "a"\n[ivr.m.steps.a]\nkind = "goto"\nto = "echo"\n',
            "ivr.m.greeting: expected no greeting or menu in a flow with steps "
            '(use a play or menu step) (got "x")',
        ),
        (
            '[ivr.m]\nstart = "b"\n[ivr.m.steps.a]\nkind = "goto"\nto = "hangup"\n',
            'ivr.m.start: expected one of its steps (a) (got "b")',
        ),
        (
            '[ivr.m]\nsteps.hangup = { kind = "goto", to = "echo" }\n',
            "ivr.m.steps.hangup: expected a step name of letters, digits, _ . - "
            '(not echo or hangup) (got "hangup")',
        ),
        (
            A + 'kind = "dance"\n',
            "ivr.m.steps.a.kind: expected one of play, menu, collect, branch, http, set, time, "
            'transfer, goto (got "dance")',
        ),
        (
            A + 'kind = "play"\nprompt = "x.wav"\nnext = "b"\nnxt = 1\n',
            "ivr.m.steps.a.nxt: expected one of the keys interruptible, kind, next, prompt "
            '(got an unknown key; did you mean "next"?)',
        ),
        (
            A + 'kind = "play"\nprompt = "x.wav"\nnext = "b"\n',
            'ivr.m.steps.a.next: expected a step of ivr.m (a) or a target (got "b")',
        ),
        (
            A + 'kind = "play"\nprompt = "tts:{name"\nnext = "hangup"\n',
            "ivr.m.steps.a.prompt: expected a template of text and {VARIABLE} names "
            '(write {{ and }} for braces) (got "tts:{name")',
        ),
        (
            A + 'kind = "play"\nprompt = ["x", "tts: "]\nnext = "hangup"\n',
            'ivr.m.steps.a.prompt[1]: expected text after tts: (got "tts: ")',
        ),
        (
            A + 'kind = "goto"\nto = "queue:nope"\n',
            'ivr.m.steps.a.to: expected a queue that exists (none defined) (got "queue:nope")',
        ),
        (
            A + 'kind = "goto"\nto = "ivr:nope"\n',
            'ivr.m.steps.a.to: expected an [ivr.NAME] menu that exists (m) (got "ivr:nope")',
        ),
        (
            A + 'kind = "goto"\nto = "bad name!"\n',
            "ivr.m.steps.a.to: expected a step name or a target such as queue:NAME "
            '(got "bad name!")',
        ),
        (
            A + 'kind = "menu"\nprompt = "x"\noptions = { "12" = "hangup" }\n',
            'ivr.m.steps.a.options.12: expected a single DTMF key 0-9, *, #, A-D (got "12")',
        ),
        (
            A + 'kind = "menu"\nprompt = "x"\noptions = { "1" = "nope" }\n',
            'ivr.m.steps.a.options.1: expected a step of ivr.m (a) or a target (got "nope")',
        ),
        (
            A + 'kind = "menu"\nprompt = "x"\noptions = { "1" = "echo" }\nvariable = "1x"\n',
            "ivr.m.steps.a.variable: expected a variable name of letters, digits and _ "
            '(got "1x")',
        ),
        (
            A + 'kind = "collect"\nprompt = "x"\nvariable = "v"\nnext = "echo"\n'
            "min_digits = 5\nmax_digits = 4\n",
            "ivr.m.steps.a.max_digits: expected at least min_digits (5) (got 4)",
        ),
        (
            A + 'kind = "collect"\nprompt = "x"\nvariable = "v"\nnext = "echo"\n'
            'terminator = "x"\n',
            'ivr.m.steps.a.terminator: expected a DTMF key such as "#", or "" for none '
            '(got "x")',
        ),
        (
            A + 'kind = "collect"\nprompt = "x"\nvariable = "v"\nnext = "echo"\npattern = "(["\n',
            "ivr.m.steps.a.pattern: expected a valid regular expression "
            '(unterminated character set at position 1) (got "([")',
        ),
        (
            A + 'kind = "collect"\nprompt = "x"\nnext = "echo"\n',
            "ivr.m.steps.a.variable: expected a value (this key is required)",
        ),
        (
            A + 'kind = "http"\nurl = "ftp://x"\nnext = "echo"\n',
            'ivr.m.steps.a.url: expected an http:// or https:// URL (a template) (got "ftp://x")',
        ),
        (
            A + 'kind = "http"\nurl = "https://x/"\nmethod = "get"\nnext = "echo"\n',
            'ivr.m.steps.a.method: expected one of GET, POST, PUT, PATCH, DELETE (got "get")',
        ),
        (
            A + 'kind = "http"\nurl = "https://x/"\nbody = { a = 2024-01-01 }\nnext = "echo"\n',
            "ivr.m.steps.a.body.a: expected a string, number, true/false, array or table "
            "(got 2024-01-01)",
        ),
        (
            A + 'kind = "http"\nurl = "https://x/"\nheaders = { X = "env:TOKEN" }\n'
            'next = "echo"\n',
            "ivr.m.steps.a.headers.X: expected environment variable TOKEN to be set "
            "(got TOKEN unset)",
        ),
        (
            A + 'kind = "http"\nurl = "https://x/"\nmap = { v = "" }\nnext = "echo"\n',
            "ivr.m.steps.a.map.v: expected a dotted path into the JSON answer, "
            'e.g. data.balance (got "")',
        ),
        (
            A + 'kind = "branch"\nvariable = "v"\ncases = [{ next = "echo" }]\ndefault = "echo"\n',
            "ivr.m.steps.a.cases[0]: expected at least one of equals, in, matches, lt, le, gt, "
            "ge (got none)",
        ),
        (
            A + 'kind = "branch"\ncases = [{ equals = "1", next = "echo" }]\ndefault = "echo"\n',
            "ivr.m.steps.a.cases[0].variable: expected a variable name (here or on the step) "
            "(got nothing)",
        ),
        (
            A + 'kind = "branch"\nvariable = "v"\ncases = [{ lt = "5", next = "echo" }]\n'
            'default = "echo"\n',
            'ivr.m.steps.a.cases[0].lt: expected a number (got "5")',
        ),
        (
            A + 'kind = "branch"\nvariable = "v"\ncases = [{ equal = "5", next = "echo" }]\n'
            'default = "echo"\n',
            "ivr.m.steps.a.cases[0].equal: expected one of the keys equals, ge, gt, in, le, lt, "
            'matches, next, variable (got an unknown key; did you mean "equals"?)',
        ),
        (
            A + 'kind = "time"\ncases = [{ dates = ["02-30"], next = "echo" }]\n'
            'default = "echo"\n',
            "ivr.m.steps.a.cases[0].dates[0]: expected a date \"YYYY-MM-DD\", or \"MM-DD\" "
            'for every year (got "02-30")',
        ),
        (
            A + 'kind = "time"\ncases = [{ next = "echo" }]\ndefault = "echo"\n',
            "ivr.m.steps.a.cases[0]: expected at least one of time, days, dates (got none)",
        ),
        (
            A + 'kind = "set"\nvariables = { a = [1] }\nnext = "echo"\n',
            "ivr.m.steps.a.variables.a: expected a string (a template), a number or true/false "
            "(got [1])",
        ),
        (
            Q + A + 'kind = "transfer"\nto = "queue:billing"\nnumber = "1"\n',
            'ivr.m.steps.a.number: expected no number unless the target is trunk:NAME (got "1")',
        ),
        (
            A + 'kind = "transfer"\nto = "a"\n',
            "ivr.m.steps.a.to: expected a target ivr:NAME, queue:NAME, agent:ID, trunk:NAME, "
            'voicemail:BOX, conference:ROOM, play:PROMPT, echo or hangup (got "a")',
        ),
        ('[voicemail.b]\npin = "12a"\n', "voicemail.b.pin: expected 1 to 16 digits "
         "(got something else)"),
        (
            "[voicemail.b]\nmin_seconds = 10\nmax_seconds = 10\n",
            "voicemail.b.min_seconds: expected less than max_seconds (10) (got 10)",
        ),
        (
            '[voicemail.b]\nnotify_url = "mailto:x"\n',
            'voicemail.b.notify_url: expected an http:// or https:// URL (got "mailto:x")',
        ),
        (
            '[voicemail.b]\nnotify_command = ["mail", "{box"]\n',
            "voicemail.b.notify_command[1]: expected a template of text and {VARIABLE} names "
            '(write {{ and }} for braces) (got "{box")',
        ),
        (
            '[voicemail.b]\ngreting = "x"\n',
            "voicemail.b.greting: expected one of the keys beep, greeting, max_seconds, "
            "min_seconds, notify_command, notify_url, pin, silence_seconds "
            '(got an unknown key; did you mean "greeting"?)',
        ),
        (
            '[voicemail]\n"a b" = {}\n',
            'voicemail.a b: expected a mailbox name of letters, digits, _ . - (got "a b")',
        ),
    ],
)
def test_bad_flow_value(tmp_path: Path, text: str, expected: str) -> None:
    assert error_of(tmp_path, text) == expected


def test_pin_from_environment(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, '[voicemail.b]\npin = "env:PIN"\n', {"PIN": "0420"})
    assert cfg.voicemail["b"].pin == "0420" and "0420" not in repr(cfg)


# --------------------------------------------------------------------------- docs


def _ivr_docs() -> str:
    text = DOCS.read_text(encoding="utf-8")
    heading = re.search(r"^## `\[ivr\.NAME\]`", text, re.M)
    assert heading is not None
    return text[heading.end() :].split("\n## ", 1)[0]


def test_docs_cover_every_step_key() -> None:
    body = _ivr_docs()
    for kind in IVR_STEP_KINDS:
        assert f"**`{kind}`**" in body, kind
        keys = set(_IVR_STEP_KEYS[kind]) - {"kind"}
        missing = sorted(k for k in keys if f"`{k}`" not in body)
        assert not missing, f"{kind}: undocumented keys {missing}"
    for key in (*_IVR_CASE_KEYS, *_IVR_TIME_CASE_KEYS):
        assert f"`{key}`" in body, key


def test_docs_cover_every_voicemail_key() -> None:
    text = DOCS.read_text(encoding="utf-8")
    heading = re.search(r"^## `\[voicemail\.BOX\]`", text, re.M)
    assert heading is not None
    body = text[heading.end() :].split("\n## ", 1)[0]
    keys = {f.name for f in dataclasses.fields(VoicemailConfig)} - {"name"}
    assert not sorted(k for k in keys if f"| `{k}` |" not in body)


def test_docs_example_is_the_tested_flow() -> None:
    """The "query your balance" example in docs/config.md is tests/data/site_ivr_flow.toml."""
    body = _ivr_docs()
    example = body.split("### Example: query your balance", 1)[1]
    block = example.split("```toml\n", 1)[1].split("```", 1)[0]
    tested = tomllib.loads(FLOW.read_text(encoding="utf-8"))["ivr"]
    assert tomllib.loads(block)["ivr"] == tested


# --------------------------------------------------------------------------- robustness


def test_any_flow_document_loads_or_raises_config_error(tmp_path: Path) -> None:
    """Random step tables: the outcome is a SiteConfig or a ConfigError, never a crash."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    path = tmp_path / "site.toml"
    all_keys = sorted({k for keys in _IVR_STEP_KEYS.values() for k in keys} | {"bogus"})
    words = st.sampled_from(
        ["", "a", "b", "echo", "hangup", "queue:q", "ivr:x", "tts:{v}", "{", "#", "x.wav",
         "https://h/{v}", "GET", "08:00-09:00", "mon", "01-01", "v", "\\d+", *IVR_STEP_KINDS]
    )
    scalars = st.one_of(words, st.integers(-1, 70), st.booleans(), st.floats(-1, 1))
    values = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.sampled_from(["1", "v", "next", "lt", "equals", "time"]),
                            inner, max_size=3),
        ),
        max_leaves=6,
    )
    step = st.dictionaries(st.sampled_from(all_keys), values, max_size=6).map(
        lambda d: d if "kind" in d else {**d, "kind": "goto"}
    )
    doc = st.fixed_dictionaries(
        {"steps": st.dictionaries(st.sampled_from(["a", "b"]), step, min_size=1, max_size=2)},
        optional={"start": words, "fallback": words, "timeout": st.integers(0, 9)},
    )

    def toml(value: object) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return repr(value)
        if isinstance(value, str):
            return json.dumps(value)
        if isinstance(value, list):
            return "[" + ", ".join(toml(v) for v in value) + "]"
        assert isinstance(value, dict)
        return "{" + ", ".join(f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()) + "}"

    @settings(max_examples=200, deadline=None)
    @given(doc)
    def check(ivr: dict[str, object]) -> None:
        text = '[[queues]]\nname = "q"\n[ivr.x]\n' + "".join(
            f"{k} = {toml(v)}\n" for k, v in ivr.items()
        )
        path.write_text(text, encoding="utf-8")
        try:
            cfg = load_config(path, {})
        except ConfigError as exc:
            assert exc.file == str(path) and exc.key.startswith("ivr.x")
        else:
            assert isinstance(cfg.ivr["x"], IvrConfig)
            assert cfg.ivr["x"].start in cfg.ivr["x"].steps

    check()
