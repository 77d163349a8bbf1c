"""acd.voicemail: leaving messages and listening to them, driven by events and a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.ivr_actions import (
    DeleteMessage,
    DiscardMessage,
    Hangup,
    MarkHeard,
    Notify,
    Play,
    SaveMessage,
    StartRecording,
    StopPlay,
    StopRecording,
)
from acd.voicemail import (
    DEFAULT_GREETING,
    DELETED_PROMPT,
    FIRST_PROMPT,
    GOODBYE_PROMPT,
    NO_MESSAGES_PROMPT,
    NO_MORE_PROMPT,
    PIN_PROMPT,
    SAVED_PROMPT,
    Input,
    MenuState,
    State,
    VoicemailMenuSession,
    VoicemailMessage,
    VoicemailSession,
)
from hotline.config import Secret, VoicemailConfig

from .helpers import Driver

CALL = {"caller": "13900001234", "called": "95598", "call_id": "abc"}
PATH = "/data/voicemail/sales/abc.wav"
BOX = VoicemailConfig(
    "sales",
    greeting="tts:Sales is closed, {caller}.",
    max_seconds=60,
    silence_seconds=4,
    min_seconds=2,
    notify_command=("/usr/local/bin/vm-mail", "{box}", "{path}", "{seconds}", "{caller}"),
    notify_url="https://crm.example/vm",
)


def leave(box: VoicemailConfig = BOX) -> Driver:
    """A caller who has heard the greeting and the beep: recording has started."""
    d = Driver(VoicemailSession(box, PATH, variables=CALL))
    [greeting] = d.start()
    assert greeting == Play(1, (f"tts:Sales is closed, {CALL['caller']}.",), True)
    [beep] = d.done()
    assert beep == Play(2, ("tone:beep",), False)
    assert d.done() == [StartRecording(PATH, 60.0)]
    assert d.session.state is State.RECORDING
    return d


def saved(d: Driver, seconds: float) -> None:
    fields = {**CALL, "box": "sales", "path": PATH, "seconds": f"{seconds:.1f}"}
    assert d.call("on_recording_done", seconds, dt=0.1) == [
        SaveMessage("sales", PATH, seconds, CALL),
        Notify(
            ("/usr/local/bin/vm-mail", "sales", PATH, f"{seconds:.1f}", CALL["caller"]),
            "https://crm.example/vm",
            fields,
        ),
        Play(3, (SAVED_PROMPT,), False),
    ]
    assert d.done() == [Hangup("voicemail-saved")]
    assert d.session.finished and d.session.next_timer() is None


# --------------------------------------------------------------------------- leaving


def test_recording_ends_after_silence_following_speech() -> None:
    d = leave()
    start = d.now
    assert d.session.next_timer() == start + 4  # no speech yet: silence from the start
    d.call("on_speech_start", dt=1.0)
    assert d.session.next_timer() == start + 60  # only the length limit while speaking
    d.call("on_speech_stop", dt=8.0)
    d.call("on_speech_start", dt=3.0)  # a pause shorter than 4 s does not end it
    d.call("on_speech_stop", dt=5.0)
    assert d.session.next_timer() == d.now + 4
    assert d.wait() == [StopRecording("silence")]
    assert d.session.stop_reason == "silence"
    saved(d, 21.0)


def test_any_key_ends_the_recording() -> None:
    d = leave()
    d.call("on_speech_start", dt=0.5)
    assert d.key("#", dt=5.0) == [StopRecording("dtmf")]
    assert d.key("1") == []  # once stopping, keys are ignored
    saved(d, 5.5)


def test_max_length_ends_the_recording() -> None:
    d = leave()
    d.call("on_speech_start", dt=0.5)
    assert d.wait() == [StopRecording("max-length")]
    saved(d, 60.0)


def test_a_key_during_the_greeting_skips_to_the_beep() -> None:
    d = Driver(VoicemailSession(VoicemailConfig("x"), PATH))
    [greeting] = d.start()
    assert greeting.prompts == (DEFAULT_GREETING,)
    assert d.key("5") == [StopPlay(1), Play(2, ("tone:beep",), False)]
    assert d.key("5") == []  # the beep is not interruptible
    assert d.done() == [StartRecording(PATH, 120.0)]


def test_speech_during_the_beep_counts() -> None:
    d = Driver(VoicemailSession(BOX, PATH, variables=CALL))
    d.start()
    d.done()
    d.call("on_speech_start", dt=0.2)  # the caller starts talking over the beep
    d.done()
    assert d.session.next_timer() == d.now + 60  # no initial-silence deadline
    d.call("on_speech_stop", dt=6.0)
    d.wait()
    saved(d, 10.0)


@pytest.mark.parametrize(
    ("speech", "seconds", "reason"),
    [(False, 4.0, "no-speech"), (True, 5.5, "too-short"), (True, 0.0, "too-short")],
)
def test_short_or_silent_messages_are_discarded(speech: bool, seconds: float, reason: str) -> None:
    d = leave()
    if speech:
        d.call("on_speech_start", dt=0.1)
        d.call("on_speech_stop", dt=1.0)
    assert d.wait() == [StopRecording("silence")]
    # 5.5 s recorded minus the 4 s of silence that ended it: 1.5 s of speech < 2 s
    assert d.call("on_recording_done", seconds) == [
        DiscardMessage(PATH, reason),
        Hangup("no-message"),
    ]


def test_silence_detection_can_be_disabled() -> None:
    box = VoicemailConfig("x", silence_seconds=0, min_seconds=0, max_seconds=30)
    d = Driver(VoicemailSession(box, PATH))
    d.start()
    d.done()
    d.done()
    assert d.session.next_timer() == d.now + 30
    d.call("on_speech_stop", dt=1.0)
    assert d.session.next_timer() == d.now - 1.0 + 30
    d.key("1")
    assert d.call("on_recording_done", 0.5) == [
        SaveMessage("x", PATH, 0.5, {}),
        Play(3, (SAVED_PROMPT,), False),
    ]


def test_caller_hanging_up_while_recording_leaves_the_message() -> None:
    d = leave()
    d.call("on_speech_start", dt=0.3)
    assert d.call("on_hangup", dt=9.0) == [StopRecording("caller")]
    actions = d.call("on_recording_done", 9.3)
    assert actions[0] == SaveMessage("sales", PATH, 9.3, CALL)
    assert isinstance(actions[1], Notify) and actions[2] == Hangup("caller")
    assert len(actions) == 3


def test_caller_hanging_up_while_stopping() -> None:
    d = leave()
    d.call("on_speech_start", dt=0.3)
    d.key("1", dt=3.0)
    assert d.call("on_hangup") == []
    assert d.call("on_recording_done", 3.3)[-1] == Hangup("caller")


def test_caller_hanging_up_before_recording() -> None:
    d = Driver(VoicemailSession(BOX, PATH))
    d.start()
    assert d.call("on_hangup") == []
    assert d.session.result == Hangup("caller") and d.done() == []


def test_recording_done_that_never_comes() -> None:
    d = leave()
    d.key("1")
    assert d.wait() == [Hangup("error")]
    assert d.call("on_recording_done", 3.0) == []


def test_late_recording_done_still_saves() -> None:
    d = leave()
    d.call("on_speech_start", dt=0.5)
    d.key("1", dt=4.0)
    d.now += 60.0  # call control reports long after the deadline, before calling on_timer
    assert d.call("on_recording_done", 4.5)[0] == SaveMessage("sales", PATH, 4.5, CALL)


def test_stale_prompt_done_is_ignored() -> None:
    d = Driver(VoicemailSession(BOX, PATH))
    d.start()
    assert d.call("on_prompt_done", 7) == []
    assert d.session.state is State.GREETING


_VM_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(
            ["digit", "done", "stale", "speech_start", "speech_stop", "recorded", "timer"]
        ),
        st.floats(0, 30),
    ),
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(events=_VM_EVENTS, hang_up=st.booleans())
def test_voicemail_machine_always_ends(events: list[tuple[str, float]], hang_up: bool) -> None:
    """Every (state, input) a random walk reaches keeps the machine in a known state, the
    timer is never in the past, and DONE is reachable from wherever the walk stopped."""
    d = Driver(VoicemailSession(BOX, PATH, variables=CALL))
    d.start()
    for kind, dt in events:
        if kind == "digit":
            d.key("1", dt=dt)
        elif kind == "done" and d.playing:
            d.done(dt=dt)
        elif kind == "stale":
            d.call("on_prompt_done", 999, dt=dt)
        elif kind in ("speech_start", "speech_stop"):
            d.call(f"on_{kind}", dt=dt)
        elif kind == "recorded":
            d.call("on_recording_done", dt, dt=dt)
        elif kind == "timer":
            d.now += dt
            d.call("on_timer")
        assert d.session.state in State
    if hang_up:
        d.call("on_hangup", dt=1.0)
    for _ in range(10):
        if d.session.finished:
            break
        if d.playing:
            d.done()
        elif d.session.state is State.STOPPING:
            d.call("on_recording_done", 3.0, dt=0.1)
        else:
            d.wait()
    assert d.session.finished and isinstance(d.session.result, Hangup)
    assert d.session.next_timer() is None


def test_voicemail_transition_table_covers_every_live_state() -> None:
    from acd.voicemail import _TRANSITIONS

    for state in State:
        if state is State.DONE:
            assert not any(s is State.DONE for s, _ in _TRANSITIONS)
            continue
        # every live state can hear a hangup or is on its way out without one
        assert (state, Input.RECV_HANGUP) in _TRANSITIONS


# --------------------------------------------------------------------------- listening

MESSAGES = [
    VoicemailMessage("m1", "/vm/m1.wav", caller="1390", new=False),
    VoicemailMessage("m2", "/vm/m2.wav", caller="1391"),
    VoicemailMessage("m3", "/vm/m3.wav", intro="tts:Received at 10:30."),
]
MENU_BOX = VoicemailConfig("sales", pin=Secret("4321"))


def listen(messages: list[VoicemailMessage] = MESSAGES, **kw: Any) -> Driver:
    return Driver(VoicemailMenuSession(MENU_BOX, messages, **kw))


def test_pin_then_listen_delete_and_navigate() -> None:
    d = listen()
    [ask] = d.start()
    assert ask.prompts == (PIN_PROMPT,)
    d.keys("1234#")
    assert d.play.prompts[1] == PIN_PROMPT and d.play.prompts[0].startswith("tts:That PIN")
    d.keys("4321#")
    assert d.play.prompts == (
        "tts:You have 2 new messages and 1 saved message. "
        "Press 1 to listen to them, or pound to hang up.",
    )
    # new messages first: m2, m3, then the heard m1
    actions = d.key("1")
    assert actions[1] == MarkHeard("m2")
    assert actions[2] == Play(actions[2].id, ("tts:Message 1 from 1 3 9 1.", "/vm/m2.wav"), True)
    [stop, *menu] = d.key("6")  # barge-in on the message: next
    assert isinstance(stop, StopPlay)
    assert menu[0] == MarkHeard("m3")
    assert d.play.prompts == ("tts:Received at 10:30.", "/vm/m3.wav")
    d.done()  # the message menu prompt plays
    d.done()
    [delete, play] = d.key("7")
    assert delete == DeleteMessage("m3")
    assert play.prompts == (DELETED_PROMPT, "tts:Message 2 from 1 3 9 0.", "/vm/m1.wav")
    d.key("4")  # barge-in: previous
    assert d.play.prompts[1] == "/vm/m2.wav"
    d.key("4")
    assert d.play.prompts[0] == FIRST_PROMPT
    d.key("6")
    d.key("6")
    assert d.play.prompts[0] == NO_MORE_PROMPT
    assert "0 new messages and 2 saved messages" in d.play.prompts[1]
    menu_id = d.play.id
    assert d.key("#") == [StopPlay(menu_id), Play(menu_id + 1, (GOODBYE_PROMPT,), False)]
    assert d.done() == [Hangup("done")]
    heard = [a for a in d.actions if isinstance(a, MarkHeard)]
    assert heard == [MarkHeard("m2"), MarkHeard("m3")]


def test_three_wrong_pins_hang_up() -> None:
    d = listen()
    d.start()
    for _ in range(3):
        d.keys("0000#")
    assert d.session.result == Hangup("bad-pin")


def test_no_messages_and_no_input() -> None:
    d = listen([], authenticated=True)
    [main] = d.start()
    assert main.prompts[0].startswith("tts:You have 0 new messages and 0 saved messages.")
    d.key("1")
    assert d.play.prompts[0] == NO_MESSAGES_PROMPT
    d.done()
    for _ in range(3):  # retries = 2
        d.wait()
        if not d.session.finished:
            d.done()
    assert d.session.result == Hangup("no-input")


def test_box_without_pin_needs_none_and_star_returns_to_main() -> None:
    d = Driver(VoicemailMenuSession(VoicemailConfig("x"), MESSAGES[:1]))
    [main] = d.start()
    assert "0 new messages and 1 saved message." in main.prompts[0]
    d.key("1")
    assert not any(isinstance(a, MarkHeard) for a in d.actions)  # it was heard already
    d.done()
    d.key("*")
    assert d.session.state is MenuState.MAIN
    assert d.call("on_hangup") == [] and d.session.result == Hangup("caller")


def test_keys_typed_ahead_through_the_menus() -> None:
    d = listen(authenticated=True)
    d.start()
    d.keys("1")
    assert d.play.prompts[-1] == "/vm/m2.wav"
    # "7" deletes m2 during its playback; "#" typed right after ends the call
    d.keys("7#")
    assert DeleteMessage("m2") in d.actions
    assert d.play.prompts == (GOODBYE_PROMPT,)


@settings(max_examples=100, deadline=None)
@given(
    keys=st.lists(st.tuples(st.sampled_from("1234567*#09"), st.booleans()), max_size=40),
)
def test_menu_session_always_ends(keys: list[tuple[str, bool]]) -> None:
    d = listen(list(MESSAGES))
    d.start()
    for key, finish_prompt in keys:
        if d.session.finished:
            break
        if finish_prompt and d.playing:
            d.done()
        d.key(key)
    for _ in range(200):
        if d.session.finished:
            break
        if d.playing:
            d.done()
        else:
            d.wait()
    assert d.session.finished and isinstance(d.session.result, Hangup)
    deleted = {a.message_id for a in d.actions if isinstance(a, DeleteMessage)}
    assert len(deleted) == len([a for a in d.actions if isinstance(a, DeleteMessage)])
