"""acd.ivr: IVR sessions driven by events and a fake clock (no sleeping, no I/O)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.ivr import DEFAULT_INVALID, MAX_STEPS, IvrSession, State
from acd.ivr_actions import Hangup, HttpRequest, Play, StopPlay, Transfer
from hotline.config import IvrConfig, Target, load_config

from .helpers import AGENT, QUEUES, Driver, site

DATA = Path(__file__).resolve().parents[1] / "data"
CALL = {"caller": "13900001234", "called": "95598", "call_id": "abc"}

SIMPLE = (
    QUEUES
    + """
[ivr.main]
greeting = "tts:Hello {caller}. 1 billing, 2 repair."
menu = { "1" = "queue:billing", "2" = "ivr:repair", "*" = "ivr:main", "9" = "play:bye.wav" }
timeout = 5
retries = 2
fallback = "queue:repair"

[ivr.repair]
greeting = "repair.wav"
invalid = "tts:No."
menu = { "1" = "queue:repair" }
retries = 0
"""
)


def simple(**kw: Any) -> Driver:
    cfg = site(SIMPLE)
    return Driver(IvrSession(cfg.ivr, "main", variables=CALL, **kw))


def flow(steps: str, *, head: str = "", name: str = "f", **kw: Any) -> Driver:
    cfg = site(QUEUES + AGENT + f"[ivr.{name}]\n{head}\n" + steps)
    return Driver(IvrSession(cfg.ivr, name, variables=CALL, **kw))


def balance(when: datetime = datetime(2024, 5, 6, 10, 0), **kw: Any) -> Driver:
    cfg = load_config(DATA / "site_ivr_flow.toml", {"BILLING_TOKEN": "Bearer t0ken"})
    return Driver(
        IvrSession(cfg.ivr, "balance", variables=CALL, local_time=lambda now: when, **kw)
    )


# --------------------------------------------------------------------------- simple form


def test_simple_menu_key_transfers_with_barge_in() -> None:
    d = simple(priority=3)
    [play] = d.start()
    assert play == Play(1, ("tts:Hello 13900001234. 1 billing, 2 repair.",), True)
    assert d.session.next_timer() is None  # waits for the prompt, not a clock
    assert d.key("1") == [
        StopPlay(1),
        Transfer(Target("queue", "billing"), CALL, priority=3),
    ]
    assert d.session.finished and d.session.result == d.actions[-1]
    assert d.key("2") == [] and d.call("on_prompt_done", 1) == [] and d.call("on_timer") == []


def test_simple_menu_timeouts_replay_then_fallback() -> None:
    d = simple()
    d.start()
    assert d.done() == []
    assert d.session.next_timer() == d.now + 5
    for _ in range(2):  # retries = 2: two replays of the greeting alone
        [replay] = d.wait()
        assert replay.prompts == ("tts:Hello 13900001234. 1 billing, 2 repair.",)
        d.done()
    assert d.wait() == [Transfer(Target("queue", "repair"), CALL)]


def test_simple_menu_invalid_key_plays_default_invalid_prompt() -> None:
    d = simple()
    d.start()
    d.done()
    [again] = d.key("5")
    assert again.prompts == (*DEFAULT_INVALID, "tts:Hello 13900001234. 1 billing, 2 repair.")
    d.key("7")  # barge-in on the invalid prompt, invalid again
    assert isinstance(d.actions[-1], Play) and isinstance(d.actions[-2], StopPlay)
    assert d.key("4")[-1] == Transfer(Target("queue", "repair"), CALL)


def test_simple_menu_jumps_to_other_ivr_and_plays_target() -> None:
    d = simple()
    d.start()
    d.done()
    [play] = d.key("2")
    assert play.prompts == ("repair.wav",) and d.session.ivr == "repair"
    d.done()
    # retries = 0 in repair: an invalid key goes straight to its fallback (hangup)
    assert d.key("3") == [Hangup("hangup")]

    d = simple()
    d.start()
    d.done()
    [bye] = d.key("9")
    assert bye.prompts == ("bye.wav",) and not bye.interruptible
    assert d.key("1") == []  # not interruptible: kept, ignored
    assert d.done() == [Hangup("played")]


def test_simple_menu_star_repeats_until_the_loop_guard() -> None:
    d = simple(max_steps=10)
    d.start()
    for _ in range(9):
        d.key("*")
    assert d.session.result == Hangup("max-steps")
    assert d.session.steps_run == 11


# --------------------------------------------------------------------------- collect

COLLECT = """
[ivr.f.steps.acct]
kind = "collect"
prompt = "tts:Account?"
variable = "acct"
min_digits = 4
max_digits = 6
timeout = 7
inter_digit_timeout = 3
retries = 1
timeout_prompt = "tts:Still there?"
pattern = "[0-8]+"
next = "done"
fallback = "queue:repair"

[ivr.f.steps.done]
kind = "transfer"
to = "queue:billing"
"""


def test_collect_terminator() -> None:
    d = flow(COLLECT)
    [play] = d.start()
    assert play.prompts == ("tts:Account?",) and play.interruptible
    assert d.key("1") == [StopPlay(1)]
    assert d.session.next_timer() == d.now + 3
    d.keys("23")
    # 3 digits < min_digits = 4: invalid, the default invalid prompt and the prompt again
    assert d.key("#") == [Play(2, (*DEFAULT_INVALID, "tts:Account?"), True)]
    d.keys("4321")
    assert d.key("#")[-1] == Transfer(Target("queue", "billing"), {**CALL, "acct": "4321"})


def test_collect_ends_at_max_digits_and_by_inter_digit_timeout() -> None:
    d = flow(COLLECT)
    d.start()
    d.done()
    d.keys("12345")
    assert d.key("6")[-1] == Transfer(Target("queue", "billing"), {**CALL, "acct": "123456"})

    d = flow(COLLECT)
    d.start()
    d.done()
    assert d.session.next_timer() == d.now + 7  # first-digit timeout
    d.keys("1234", dt=2.5)  # each key within the inter-digit timeout
    assert d.session.next_timer() == d.now + 3
    assert d.wait()[-1] == Transfer(Target("queue", "billing"), {**CALL, "acct": "1234"})


def test_collect_no_input_and_pattern_failures_reach_the_fallback() -> None:
    d = flow(COLLECT)
    d.start()
    d.done()
    [again] = d.wait()  # no first digit
    assert again.prompts == ("tts:Still there?", "tts:Account?")
    d.done()
    d.keys("9999#")  # does not match [0-8]+: second failure, retries = 1
    assert d.session.result == Transfer(Target("queue", "repair"), CALL)


def test_collect_min_zero_accepts_terminator_alone() -> None:
    d = flow(
        '[ivr.f.steps.x]\nkind = "collect"\nprompt = "p.wav"\nvariable = "ext"\n'
        'min_digits = 0\nnext = "queue:billing"\n'
    )
    d.start()
    assert d.key("#")[-1] == Transfer(Target("queue", "billing"), {**CALL, "ext": ""})


# --------------------------------------------------------------------------- play, type-ahead

TYPE_AHEAD = """
[ivr.f.steps.hello]
kind = "play"
prompt = ["a.wav", "tts:b"]
interruptible = false
next = "hello2"

[ivr.f.steps.hello2]
kind = "play"
prompt = "c.wav"
next = "menu"

[ivr.f.steps.menu]
kind = "menu"
prompt = "menu.wav"
options = { "1" = "acct", "2" = "queue:repair" }
variable = "choice"

[ivr.f.steps.acct]
kind = "collect"
prompt = "acct.wav"
variable = "acct"
next = "queue:billing"
"""


def test_keys_typed_during_prompts_are_kept_for_the_next_steps() -> None:
    d = flow(TYPE_AHEAD)
    [play] = d.start()
    assert play == Play(1, ("a.wav", "tts:b"), False)
    assert d.keys("1") == []  # not interruptible: buffered
    # the interruptible play and the menu prompt are skipped; the menu takes "1"
    [acct] = d.done()
    assert acct == Play(2, ("acct.wav",), True)
    assert d.session.variables["choice"] == "1"
    d.keys("42#")
    assert d.session.result == Transfer(
        Target("queue", "billing"), {**CALL, "choice": "1", "acct": "42"}
    )


def test_whole_input_typed_ahead_needs_no_prompt() -> None:
    d = flow(TYPE_AHEAD)
    d.start()
    d.keys("1987#")
    assert d.done() == [
        Transfer(Target("queue", "billing"), {**CALL, "choice": "1", "acct": "987"})
    ]


def test_interruptible_play_is_stopped_by_a_key_that_counts() -> None:
    d = flow(TYPE_AHEAD)
    d.start()
    d.done()
    [play] = d.playing
    assert play.prompts == ("c.wav",)
    assert d.key("2") == [
        StopPlay(play.id),
        Transfer(Target("queue", "repair"), {**CALL, "choice": "2"}),
    ]


def test_non_interruptible_menu_buffers_keys_until_the_prompt_ends() -> None:
    d = flow(
        '[ivr.f.steps.m]\nkind = "menu"\nprompt = "m.wav"\ninterruptible = false\n'
        'options = { "1" = "queue:billing" }\n'
    )
    d.start()
    assert d.key("1") == []
    assert d.done() == [Transfer(Target("queue", "billing"), CALL)]


# --------------------------------------------------------------------------- http, branch, set


def test_balance_flow_success() -> None:
    d = balance()
    [welcome] = d.start()
    assert welcome.prompts == ("tts:Welcome to the water company.",)
    d.done()
    d.done()  # account prompt
    d.keys("123456")
    [req, wait] = d.key("#")
    assert req == HttpRequest(
        id=req.id,
        method="POST",
        url="https://billing.example.com/api/balance",
        body={"account": "123456", "caller": "13900001234"},
        headers={"Authorization": "Bearer t0ken"},
        timeout=4.0,
    )
    assert wait == Play(wait.id, ("tts:One moment please.",), False)
    assert d.session.next_timer() == d.now + 5.0  # timeout + grace
    assert d.key("5") == []  # typed during the request: buffered
    # the answer comes while "one moment" plays: the session lets it finish
    assert d.http_result(200, {"data": {"balance": 12.5, "name": "Wang"}}) == []
    # "5" was typed ahead and is no option of the menu: the IVR's invalid prompt first
    [say] = d.done()
    assert say.prompts == (
        "tts:Sorry, I did not understand.",
        "tts:Dear Wang, your balance is 12.5 yuan.",
        "tts:Press 1 to hear it again, 2 for another account, 0 for an agent.",
    )
    assert d.session.variables["lookup_status"] == "200"
    [stop, transfer] = d.key("0")
    assert isinstance(stop, StopPlay)
    assert transfer == Transfer(
        Target("queue", "billing"),
        {
            **CALL,
            "account": "123456",
            "lookup_status": "200",
            "balance": "12.5",
            "name": "Wang",
            "choice": "0",
        },
        priority=5,
    )


def test_balance_flow_negative_balance_sets_a_variable() -> None:
    d = balance()
    d.start()
    d.done()
    d.keys("1234567#")
    d.done()  # the wait prompt ends first
    [say] = d.http_result(201, {"data": {"balance": -3, "name": "Li"}})
    assert say.prompts[0] == "tts:Dear Li, your balance is -3 yuan."
    assert d.session.variables["reason"] == "owing -3"
    d.done()
    d.key("1")  # hear it again
    assert d.play.prompts[0] == "tts:Dear Li, your balance is -3 yuan."


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, {"data": {"balance": 1, "name": "x"}}), (200, {"data": {"name": "x"}}), (200, None)],
)
def test_balance_flow_http_failure(status: int, body: Any) -> None:
    d = balance()
    d.start()
    d.done()
    d.keys("123456#")
    d.done()
    [sorry] = d.http_result(status, body)
    assert sorry.prompts == ("tts:Sorry, we cannot look up your account right now.",)
    assert "balance" not in d.session.variables
    assert d.done()[-1] == Transfer(
        Target("queue", "billing"),
        {**CALL, "account": "123456", "lookup_status": str(status)},
        priority=5,
    )


def test_balance_flow_http_timeout_and_late_answer() -> None:
    d = balance()
    d.start()
    d.done()
    d.keys("123456#")
    req_id = max(d.http)
    d.done()
    [sorry] = d.wait()
    assert sorry.prompts[0].startswith("tts:Sorry")
    assert d.session.variables["lookup_status"] == ""
    assert d.session.on_http_result(req_id, 200, {"data": {"balance": 1}}, d.now) == []


def test_collect_failure_goes_to_the_ivr_fallback_step() -> None:
    d = balance()
    d.start()
    d.done()
    d.done()
    for _ in range(3):  # retries = 2 at the IVR level
        d.wait()
        if not d.session.finished:
            d.done()
    assert d.session.result == Transfer(Target("queue", "billing"), CALL, priority=5)


def test_http_get_query_string_and_url_quoting() -> None:
    d = flow(
        """
[ivr.f.steps.s]
kind = "set"
variables = { acct = "a b/c", n = 3, yes = true }
next = "h"

[ivr.f.steps.h]
kind = "http"
url = "http://crm.local/c/{acct}?x=1"
body = { who = "{caller}", n = 2, deep = { k = ["{n}"] } }
method = "GET"
map = { vip = "customer.tags.0", raw = "customer" }
next = "queue:billing"
failure = "hangup"
"""
    )
    [req] = d.start()
    assert req.method == "GET" and req.body is None
    assert req.url == (
        "http://crm.local/c/a%20b%2Fc?x=1&who=13900001234&n=2&deep=%7B%22k%22%3A%5B%223%22%5D%7D"
    )
    assert d.session.variables["yes"] == "true"
    d.http_result(200, {"customer": {"tags": [True, "x"], "id": 7}})
    assert d.session.variables["vip"] == "true"
    assert d.session.variables["raw"] == '{"tags":[true,"x"],"id":7}'
    assert isinstance(d.session.result, Transfer)


BRANCH = """
[ivr.f.steps.b]
kind = "branch"
variable = "v"
cases = [
  { equals = "", next = "queue:repair" },
  { in = ["a", "b"], next = "hangup" },
  { matches = "9\\\\d+", next = "play:vip.wav" },
  { gt = 10, le = 100, next = "queue:billing" },
  { variable = "caller", matches = "139.*", lt = 0, next = "hangup" },
]
default = "echo"
"""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, Target("queue", "repair")),
        ("", Target("queue", "repair")),
        ("b", "hangup"),
        ("912", "play"),
        ("50", Target("queue", "billing")),
        ("100", Target("queue", "billing")),
        ("100.5", Target("echo")),
        ("10", Target("echo")),
        ("nan", Target("echo")),
        ("x", Target("echo")),
    ],
)
def test_branch(value: str | None, expected: Any) -> None:
    cfg = site(QUEUES + "[ivr.f]\n" + BRANCH)
    variables = dict(CALL) if value is None else {**CALL, "v": value}
    d = Driver(IvrSession(cfg.ivr, "f", variables=variables))
    d.start()
    result = d.session.result
    if expected == "hangup":
        assert result == Hangup("hangup")
    elif expected == "play":
        assert d.play.prompts == ("vip.wav",)
    else:
        assert isinstance(result, Transfer) and result.target == expected


def test_transfer_to_a_number_through_a_trunk() -> None:
    cfg = site(
        '[[trunks]]\nname = "pstn"\nhost = "192.0.2.1"\n'
        '[ivr.f.steps.n]\nkind = "collect"\nprompt = "n.wav"\nvariable = "n"\n'
        'next = "out"\n[ivr.f.steps.out]\nkind = "transfer"\nto = "trunk:pstn"\n'
        'number = "0{n}"\npriority = 9\n'
    )
    d = Driver(IvrSession(cfg.ivr, "f", variables=CALL))
    d.start()
    d.keys("1234#")
    assert d.session.result == Transfer(
        Target("trunk", "pstn"), {**CALL, "n": "1234"}, priority=9, number="01234"
    )


# --------------------------------------------------------------------------- time


@pytest.mark.parametrize(
    ("when", "first_prompt"),
    [
        (datetime(2024, 5, 6, 10, 0), "tts:Welcome to the water company."),  # Monday
        (datetime(2024, 5, 6, 20, 0), None),  # after hours (end excluded)
        (datetime(2024, 5, 5, 10, 0), None),  # Sunday
        (datetime(2024, 10, 1, 10, 0), None),  # holiday (a Tuesday)
        (datetime(2025, 1, 1, 9, 0), None),  # holiday every year
    ],
)
def test_time_step(when: datetime, first_prompt: str | None) -> None:
    d = balance(when)
    d.start()
    if first_prompt is None:
        assert d.session.result == Transfer(Target("voicemail", "billing"), CALL)
    else:
        assert d.play.prompts == (first_prompt,)


def test_time_window_wrapping_midnight() -> None:
    steps = (
        '[ivr.f.steps.t]\nkind = "time"\ndefault = "queue:billing"\n'
        'cases = [{ time = "22:00-06:00", next = "hangup" }]\n'
    )
    for hour, night in ((23, True), (5, True), (6, False), (21, False)):
        cfg = site(QUEUES + "[ivr.f]\n" + steps)
        s = IvrSession(cfg.ivr, "f", local_time=lambda now, h=hour: datetime(2024, 5, 6, h))
        s.start(0.0)
        assert (s.result == Hangup("hangup")) is night


# --------------------------------------------------------------------------- guards


def test_goto_loop_is_cut_by_max_steps() -> None:
    d = flow(
        '[ivr.f.steps.a]\nkind = "goto"\nto = "b"\n'
        '[ivr.f.steps.b]\nkind = "set"\nvariables = { x = "{x}1" }\nnext = "a"\n'
    )
    assert d.start() == [Hangup("max-steps")]
    assert d.session.steps_run == MAX_STEPS + 1
    assert len(d.session.variables["x"]) == MAX_STEPS // 2


def test_ivr_to_ivr_loop_is_cut() -> None:
    cfg = site("[ivr.a]\nstart = \"g\"\n[ivr.a.steps.g]\nkind = \"goto\"\nto = \"ivr:b\"\n"
               "[ivr.b]\nstart = \"g\"\n[ivr.b.steps.g]\nkind = \"goto\"\nto = \"ivr:a\"\n")
    s = IvrSession(cfg.ivr, "a")
    assert s.start(0.0) == [Hangup("max-steps")]


def test_hangup_ends_the_session_and_later_events_are_ignored() -> None:
    d = balance()
    d.start()
    assert d.call("on_hangup") == []
    assert d.session.result == Hangup("caller") and d.session.next_timer() is None
    assert d.key("1") == [] and d.done() == [] and d.start() == []


def test_stale_and_early_events_are_ignored() -> None:
    d = simple()
    d.start()
    assert d.session.on_prompt_done(99, d.now) == []
    assert d.session.on_http_result(1, 200, {}, d.now) == []
    assert d.session.on_digit("x", d.now) == [] and d.session.on_digit("12", d.now) == []
    d.done()
    deadline = d.session.next_timer()
    assert d.session.on_timer(deadline - 0.01) == []
    assert d.session.next_timer() == deadline


def test_lowercase_keys_are_accepted() -> None:
    d = flow('[ivr.f.steps.m]\nkind = "menu"\nprompt = "m.wav"\noptions = { "A" = "echo" }\n')
    d.start()
    assert d.key("a")[-1] == Transfer(Target("echo"), CALL)


def test_unknown_ivr_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="no IVR named 'nope'"):
        IvrSession({}, "nope")


def test_a_broken_flow_hangs_up_instead_of_raising() -> None:
    # Built by hand (the loader would refuse it): a step that names a missing step.
    from hotline.config import IvrGotoStep

    cfg = IvrConfig("x", None, start="a", steps={"a": IvrGotoStep("a", "missing")})
    s = IvrSession({"x": cfg}, "x")
    assert s.start(0.0) == [Hangup("error")]


# --------------------------------------------------------------------------- property

_FLOWS = site(
    SIMPLE
    + AGENT
    + """
[ivr.c]
start = "acct"

[ivr.c.steps.acct]
kind = "collect"
prompt = "tts:Account?"
variable = "acct"
min_digits = 2
max_digits = 4
pattern = "[0-8]+"
retries = 1
next = "to_t"
fallback = "queue:repair"

[ivr.c.steps.to_t]
kind = "goto"
to = "ivr:t"

[ivr.t]
start = "hello"

[ivr.t.steps.hello]
kind = "play"
prompt = ["a.wav", "tts:b"]
interruptible = false
next = "menu"

[ivr.t.steps.menu]
kind = "menu"
prompt = "menu.wav"
options = { "1" = "acct", "2" = "queue:repair", "*" = "ivr:main", "3" = "ivr:c" }
timeout_prompt = "tts:Hello?"

[ivr.t.steps.acct]
kind = "collect"
prompt = "acct.wav"
variable = "acct"
next = "http"

[ivr.t.steps.http]
kind = "http"
url = "https://x.example/{acct}"
map = { v = "v" }
prompt = "wait.wav"
next = "br"
failure = "ivr:main"

[ivr.t.steps.br]
kind = "branch"
variable = "v"
cases = [{ lt = 5, next = "menu" }, { equals = "x", next = "ivr:c" }]
default = "play:bye.wav"
"""
)

_EVENTS = st.lists(
    st.one_of(
        st.tuples(st.just("key"), st.sampled_from("1111122#*390A"), st.floats(0, 4)),
        st.tuples(st.just("done"), st.booleans(), st.floats(0, 8)),
        st.tuples(
            st.just("http"),
            st.sampled_from([200, 404, None]),
            st.sampled_from([None, {"v": 1}, {"v": "x"}, {"v": 9}, [1]]),
        ),
        st.tuples(st.just("timer"), st.booleans(), st.floats(0, 8)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(start=st.sampled_from(["main", "c", "t"]), events=_EVENTS)
def test_any_event_sequence_ends_in_transfer_or_hangup(start: str, events: list[Any]) -> None:
    """Random keys, prompt ends (some stale), HTTP answers and timer calls (some early or
    late): the session never raises, its timer is never in the past (Driver checks it
    after every call), and a silent caller afterwards always gets a Transfer or Hangup
    within the step bound."""
    d = Driver(IvrSession(_FLOWS.ivr, start, variables=CALL))
    d.start()
    for kind, a, b in events:
        if d.session.finished:
            break
        if kind == "key":
            d.key(a, dt=b)
        elif kind == "done" and a:
            d.call("on_prompt_done", 1000 + int(b), dt=b)  # stale id
        elif kind == "done" and d.playing:
            d.done(dt=b)
        elif kind == "http" and d.http:
            d.http_result(a, b)
        elif kind == "timer":
            d.now += b
            timer = d.session.next_timer()
            if a and timer is not None:
                d.now = max(d.now, timer)
            d.call("on_timer")
    for _ in range(MAX_STEPS * 5):
        if d.session.finished:
            break
        if d.playing:
            d.done()
        elif d.http:
            d.http_result(None, None)
        else:
            d.wait()
    result = d.session.result
    assert isinstance(result, Transfer | Hangup) and d.session.state is State.DONE
    assert result != Hangup("error")
    assert d.session.next_timer() is None
    assert d.session.steps_run <= MAX_STEPS + 1
