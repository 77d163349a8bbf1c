"""Voicemail, sans-IO: leaving a message (:class:`VoicemailSession`) and listening to a
box by phone (:class:`VoicemailMenuSession`).

Theory of operation
-------------------

Leaving a message, for a call sent to ``voicemail:BOX``::

    IDLE --start--> GREETING --prompt done / any key--> BEEP --prompt done--> RECORDING
    RECORDING --key | silence after speech | max length | caller hangs up--> STOPPING
    STOPPING --recording done--> GOODBYE (kept) --prompt done--> DONE
                               \\-> DONE (discarded, or the caller has gone)

The session asks for :class:`StartRecording`/:class:`StopRecording`; call control
answers the stop with ``on_recording_done(seconds, now)``. Silence is judged from the
media worker's VAD events (``speech_start``/``speech_stop``), so call control must
enable VAD on the caller's endpoint while a voicemail session runs: recording ends
``silence_seconds`` after the caller stops speaking, or after ``silence_seconds`` if
they never start. A message shorter than ``min_seconds`` of speech, or without any
speech when silence detection is on, is discarded (:class:`DiscardMessage`); a kept one
gives :class:`SaveMessage` and, if the box has a hook, :class:`Notify`. A caller who
hangs up while recording still leaves the message (the most common way to end one).

Listening (:class:`VoicemailMenuSession`) is a small menu built on the IVR engine's
:class:`~acd.ivr.DigitReader`: PIN (if the box has one), "you have N new messages",
``1`` to listen, then per message ``4`` previous, ``5`` repeat, ``6`` next, ``7``
delete, ``*`` main menu, ``#`` hang up. Messages are played new first, marked heard
(:class:`MarkHeard`) as they start, and deleted with :class:`DeleteMessage`; call
control applies both to storage.

Both machines use literal ``{(state, input): handler}`` tables; events without an entry
are stale and ignored.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from hotline.config import VoicemailConfig, render_template

from .ivr import MAX_BUFFER, DigitReader, ReadSpec
from .ivr_actions import (
    DeleteMessage,
    DiscardMessage,
    Hangup,
    IvrAction,
    MarkHeard,
    Notify,
    Play,
    SaveMessage,
    StartRecording,
    StopPlay,
    StopRecording,
)

__all__ = [
    "DEFAULT_GREETING",
    "Input",
    "MenuState",
    "State",
    "VoicemailMenuSession",
    "VoicemailMessage",
    "VoicemailSession",
]

#: Played when the box has no ``greeting``.
DEFAULT_GREETING = (
    "tts:The person you are calling is not available. "
    "Please leave a message after the tone, and press any key when you are done."
)
SAVED_PROMPT = "tts:Your message has been saved. Goodbye."
GOODBYE_PROMPT = "tts:Goodbye."
PIN_PROMPT = "tts:Please enter your PIN, followed by the pound key."
BAD_PIN_PROMPT = "tts:That PIN is not correct."
MESSAGE_MENU_PROMPT = (
    "tts:Press 4 for the previous message, 5 to repeat it, 6 for the next message, "
    "7 to delete it, star for the main menu, or pound to hang up."
)
NO_MESSAGES_PROMPT = "tts:You have no messages."
NO_MORE_PROMPT = "tts:There are no more messages."
FIRST_PROMPT = "tts:This is the first message."
DELETED_PROMPT = "tts:Message deleted."
#: Seconds to wait for ``on_recording_done`` after :class:`StopRecording`.
RECORDING_DONE_TIMEOUT = 10.0
#: Wrong PINs before the call is hung up.
PIN_ATTEMPTS = 3
#: Menu states one listening call may enter (loop guard).
MAX_MENU_STEPS = 500


class Input(Enum):
    """Events the voicemail sessions are fed."""

    START = "start"
    RECV_DIGIT = "digit"
    RECV_PROMPT_DONE = "prompt_done"
    RECV_SPEECH_START = "speech_start"
    RECV_SPEECH_STOP = "speech_stop"
    RECV_RECORDING_DONE = "recording_done"
    RECV_HANGUP = "hangup"
    TIMER_EXPIRED = "timer"


#: Events before which an overdue timer is not run first. (Unlike an IVR, a hangup does
#: not skip it: the timers here only stop a recording or give up on one.)
_NO_CATCH_UP = frozenset({Input.START, Input.TIMER_EXPIRED})


class State(Enum):
    """Where a :class:`VoicemailSession` is."""

    IDLE = "idle"
    GREETING = "greeting"
    BEEP = "beep"
    RECORDING = "recording"
    #: Waiting for call control to close the file and report its length.
    STOPPING = "stopping"
    GOODBYE = "goodbye"
    DONE = "done"


class _Session:
    """The event methods both voicemail sessions share. Each subclass brings its own
    ``_dispatch`` (transition table and catch-up rule) and ``next_timer``."""

    def start(self, now: float) -> list[IvrAction]:
        """Begin. Call once, after the call is answered.

        :param now: current time.
        """
        return self._dispatch(Input.START, now, None)

    def on_digit(self, key: str, now: float) -> list[IvrAction]:
        """A key was pressed.

        :param key: one of ``0-9 * # A-D``.
        :param now: current time.
        """
        return self._dispatch(Input.RECV_DIGIT, now, key)

    def on_prompt_done(self, play_id: int, now: float) -> list[IvrAction]:
        """A :class:`Play` finished or was stopped; stale ids are ignored.

        :param play_id: the :attr:`Play.id`.
        :param now: current time.
        """
        return self._dispatch(Input.RECV_PROMPT_DONE, now, play_id)

    def on_hangup(self, now: float) -> list[IvrAction]:
        """The caller hung up.

        :param now: current time.
        """
        return self._dispatch(Input.RECV_HANGUP, now, None)

    def on_timer(self, now: float) -> list[IvrAction]:
        """Run timeouts due at ``now``; an early call does nothing.

        :param now: current time.
        """
        deadline = self.next_timer()
        if deadline is None or now < deadline:
            return []
        return self._dispatch(Input.TIMER_EXPIRED, now, None)

    def next_timer(self) -> float | None:
        """When :meth:`on_timer` must be called, or None."""
        raise NotImplementedError

    def _dispatch(self, event: Input, now: float, arg: Any) -> list[IvrAction]:
        raise NotImplementedError


class VoicemailSession(_Session):
    """One caller leaving a message in a box. :meth:`start` plays the greeting; a key
    skips it or ends the recording; :meth:`on_hangup` stops and keeps a recording in
    progress.

    :param box: the mailbox (``SiteConfig.voicemail_box(name)``).
    :param path: where call control should record (e.g.
        ``DATA_DIR/voicemail/BOX/CALL-ID.wav``); passed back in the actions.
    :param variables: the call's variables (``caller``, ``called``, ``call_id``, IVR
        input); they fill ``{name}`` in the greeting and go with the message.
    """

    def __init__(
        self, box: VoicemailConfig, path: str, *, variables: Mapping[str, str] | None = None
    ) -> None:
        self.box = box
        self.path = path
        self.variables: dict[str, str] = dict(variables or {})
        self.state = State.IDLE
        #: How the session ended, once it has.
        self.result: Hangup | None = None
        #: Why the recording stopped (``dtmf``, ``silence``, ``max-length``, ``caller``).
        self.stop_reason: str | None = None
        self._ids = 0
        self._play_id: int | None = None
        self._speaking = False
        self._heard_speech = False
        self._caller_gone = False
        self._max_deadline: float | None = None
        self._silence_deadline: float | None = None
        self._deadline: float | None = None
        self._out: list[IvrAction] = []

    @property
    def finished(self) -> bool:
        """Whether the session has ended."""
        return self.state is State.DONE

    def on_speech_start(self, now: float) -> list[IvrAction]:
        """VAD: the caller started speaking.

        :param now: current time.
        """
        return self._dispatch(Input.RECV_SPEECH_START, now, None)

    def on_speech_stop(self, now: float) -> list[IvrAction]:
        """VAD: the caller stopped speaking.

        :param now: current time.
        """
        return self._dispatch(Input.RECV_SPEECH_STOP, now, None)

    def on_recording_done(self, seconds: float, now: float) -> list[IvrAction]:
        """The recording asked to stop is closed.

        :param seconds: its length.
        :param now: current time.
        """
        return self._dispatch(Input.RECV_RECORDING_DONE, now, seconds)

    def next_timer(self) -> float | None:
        """When :meth:`on_timer` must be called, or None."""
        if self.state is State.RECORDING:
            times = [t for t in (self._max_deadline, self._silence_deadline) if t is not None]
            return min(times) if times else None
        return self._deadline

    # -- dispatch

    def _dispatch(self, event: Input, now: float, arg: Any) -> list[IvrAction]:
        out: list[IvrAction] = []
        self._out = out
        due = self.next_timer()
        # A late recording report still saves the message rather than losing it to the
        # overdue "recording lost" timer.
        late_report = event is Input.RECV_RECORDING_DONE and self.state is State.STOPPING
        if event not in _NO_CATCH_UP and not late_report and due is not None and now >= due:
            self._handle(Input.TIMER_EXPIRED, now, None)  # overdue: it came first
        self._handle(event, now, arg)
        return out

    def _handle(self, event: Input, now: float, arg: Any) -> None:
        handler = _TRANSITIONS.get((self.state, event))
        if handler is not None:
            handler(self, now, arg)

    def _play(self, prompt: str, interruptible: bool, state: State) -> None:
        self._ids += 1
        self._play_id = self._ids
        self._out.append(
            Play(self._play_id, (render_template(prompt, self.variables),), interruptible)
        )
        self.state = state

    def _finish(self, reason: str) -> None:
        self.result = Hangup(reason)
        self._out.append(self.result)
        self.state = State.DONE
        self._deadline = None

    # -- transitions

    def _start(self, now: float, _: Any) -> None:
        self._play(self.box.greeting or DEFAULT_GREETING, True, State.GREETING)

    def _skip_greeting(self, now: float, _: Any) -> None:
        assert self._play_id is not None
        self._out.append(StopPlay(self._play_id))
        self._play(self.box.beep, False, State.BEEP)

    def _greeting_done(self, now: float, play_id: int) -> None:
        if play_id == self._play_id:
            self._play(self.box.beep, False, State.BEEP)

    def _beep_done(self, now: float, play_id: int) -> None:
        if play_id != self._play_id:
            return
        self._play_id = None
        self._out.append(StartRecording(self.path, float(self.box.max_seconds)))
        self.state = State.RECORDING
        self._max_deadline = now + self.box.max_seconds
        self._heard_speech = self._speaking
        if self.box.silence_seconds and not self._speaking:
            self._silence_deadline = now + self.box.silence_seconds

    def _speech_start(self, now: float, _: Any) -> None:
        self._speaking = True
        if self.state is State.RECORDING:
            self._heard_speech = True
            self._silence_deadline = None

    def _speech_stop(self, now: float, _: Any) -> None:
        self._speaking = False
        if self.state is State.RECORDING and self.box.silence_seconds:
            self._silence_deadline = now + self.box.silence_seconds

    def _stop_by_key(self, now: float, _: Any) -> None:
        self._stop("dtmf", now)

    def _record_timer(self, now: float, _: Any) -> None:
        if self._max_deadline is not None and now >= self._max_deadline:
            self._stop("max-length", now)
        else:
            self._stop("silence", now)

    def _stop_by_hangup(self, now: float, _: Any) -> None:
        self._caller_gone = True
        self._stop("caller", now)

    def _stop(self, reason: str, now: float) -> None:
        self.stop_reason = reason
        self._out.append(StopRecording(reason))
        self.state = State.STOPPING
        self._max_deadline = self._silence_deadline = None
        self._deadline = now + RECORDING_DONE_TIMEOUT

    def _gone_while_stopping(self, now: float, _: Any) -> None:
        self._caller_gone = True

    def _recorded(self, now: float, seconds: Any) -> None:
        self._deadline = None
        length = float(seconds) if isinstance(seconds, int | float) else 0.0
        speech = length
        if self.stop_reason == "silence":
            speech -= self.box.silence_seconds  # the trailing silence that ended it
        if self.box.silence_seconds and not self._heard_speech:
            why = "no-speech"
        elif speech < self.box.min_seconds or length <= 0:
            why = "too-short"
        else:
            why = ""
        if why:
            self._out.append(DiscardMessage(self.path, why))
            self._finish("caller" if self._caller_gone else "no-message")
            return
        self._out.append(SaveMessage(self.box.name, self.path, length, dict(self.variables)))
        if self.box.notify_command or self.box.notify_url:
            fields = {
                **self.variables,
                "box": self.box.name,
                "path": self.path,
                "seconds": f"{length:.1f}",
            }
            argv = tuple(render_template(a, fields) for a in self.box.notify_command)
            self._out.append(Notify(argv, self.box.notify_url, fields))
        if self._caller_gone:
            self._finish("caller")
        else:
            self._play(SAVED_PROMPT, False, State.GOODBYE)

    def _recording_lost(self, now: float, _: Any) -> None:
        self._finish("error")

    def _goodbye_done(self, now: float, play_id: int) -> None:
        if play_id == self._play_id:
            self._finish("voicemail-saved")

    def _gone(self, now: float, _: Any) -> None:
        self._caller_gone = True
        self.result = Hangup("caller")
        self.state = State.DONE
        self._deadline = None


_Handler = Callable[[VoicemailSession, float, Any], None]
_S, _I = State, Input
_TRANSITIONS: dict[tuple[State, Input], _Handler] = {
    (_S.IDLE, _I.START): VoicemailSession._start,
    (_S.GREETING, _I.RECV_DIGIT): VoicemailSession._skip_greeting,
    (_S.GREETING, _I.RECV_PROMPT_DONE): VoicemailSession._greeting_done,
    (_S.BEEP, _I.RECV_PROMPT_DONE): VoicemailSession._beep_done,
    (_S.RECORDING, _I.RECV_DIGIT): VoicemailSession._stop_by_key,
    (_S.RECORDING, _I.TIMER_EXPIRED): VoicemailSession._record_timer,
    (_S.RECORDING, _I.RECV_HANGUP): VoicemailSession._stop_by_hangup,
    (_S.STOPPING, _I.RECV_RECORDING_DONE): VoicemailSession._recorded,
    (_S.STOPPING, _I.RECV_HANGUP): VoicemailSession._gone_while_stopping,
    (_S.STOPPING, _I.TIMER_EXPIRED): VoicemailSession._recording_lost,
    (_S.GOODBYE, _I.RECV_PROMPT_DONE): VoicemailSession._goodbye_done,
    **{
        (s, i): h
        for s in (_S.IDLE, _S.GREETING, _S.BEEP, _S.RECORDING, _S.STOPPING, _S.GOODBYE)
        for i, h in (
            (_I.RECV_SPEECH_START, VoicemailSession._speech_start),
            (_I.RECV_SPEECH_STOP, VoicemailSession._speech_stop),
        )
    },
    **{
        (s, _I.RECV_HANGUP): VoicemailSession._gone
        for s in (_S.IDLE, _S.GREETING, _S.BEEP, _S.GOODBYE)
    },
}


# --------------------------------------------------------------------------- listening


@dataclass(frozen=True, slots=True)
class VoicemailMessage:
    """A stored message, as call control loads it for :class:`VoicemailMenuSession`."""

    id: str
    #: The recording, playable as a prompt.
    path: str
    caller: str = ""
    #: Not yet heard.
    new: bool = True
    #: Played before the message (e.g. ``tts:Received on May 5 at 10:30``); None says
    #: "Message N from CALLER".
    intro: str | None = None


class MenuState(Enum):
    """Where a :class:`VoicemailMenuSession` is."""

    IDLE = "idle"
    PIN = "pin"
    MAIN = "main"
    #: A message is playing.
    MESSAGE = "message"
    #: The per-message menu (4 previous, 5 repeat, 6 next, 7 delete, * main, # hang up).
    MESSAGE_MENU = "message_menu"
    GOODBYE = "goodbye"
    DONE = "done"


class VoicemailMenuSession(_Session):
    """The box owner listening to messages by phone; same events as :class:`IvrSession`.
    :meth:`start` asks for the PIN or announces the messages.

    :param box: the mailbox.
    :param messages: its messages, in the order to play them within new and heard ones.
    :param authenticated: skip the PIN (e.g. the owner calls from their own extension).
    """

    def __init__(
        self,
        box: VoicemailConfig,
        messages: Sequence[VoicemailMessage],
        *,
        authenticated: bool = False,
    ) -> None:
        self.box = box
        self.messages = [m for m in messages if m.new] + [m for m in messages if not m.new]
        self.state = MenuState.IDLE
        #: How the session ended, once it has.
        self.result: Hangup | None = None
        self.steps_run = 0
        self._authenticated = authenticated or box.pin is None
        self._heard: set[str] = {m.id for m in messages if not m.new}
        self._index = 0
        self._pin_failures = 0
        self._buffer: list[str] = []
        self._ids = 0
        self._reader: DigitReader | None = None
        self._play_id: int | None = None
        self._out: list[IvrAction] = []

    @property
    def finished(self) -> bool:
        """Whether the session has ended."""
        return self.state is MenuState.DONE

    def next_timer(self) -> float | None:
        """When :meth:`on_timer` must be called, or None."""
        return self._reader.deadline if self._reader is not None else None

    # -- dispatch

    def _dispatch(self, event: Input, now: float, arg: Any) -> list[IvrAction]:
        out: list[IvrAction] = []
        self._out = out
        due = self.next_timer()
        if event not in _NO_CATCH_UP and due is not None and now >= due:
            self._handle(Input.TIMER_EXPIRED, now, None)  # overdue: it came first
        self._handle(event, now, arg)
        return out

    def _handle(self, event: Input, now: float, arg: Any) -> None:
        handler = _MENU_TRANSITIONS.get((self.state, event))
        if handler is not None:
            handler(self, now, arg)

    def _new_id(self) -> int:
        self._ids += 1
        return self._ids

    def _count(self) -> bool:
        """Count a state entry; False (and hang up) past the loop guard."""
        self.steps_run += 1
        if self.steps_run > MAX_MENU_STEPS:
            self._finish("max-steps")
            return False
        return True

    def _finish(self, reason: str) -> None:
        self.result = Hangup(reason)
        self._out.append(self.result)
        self.state = MenuState.DONE
        self._reader = None

    def _read(self, state: MenuState, spec: ReadSpec, now: float) -> None:
        if not self._count():
            return
        self.state = state
        self._reader = DigitReader(spec, self._new_id, self._buffer)
        self._out += self._reader.start(now)
        self._after_read(now)

    # -- transitions

    def _start(self, now: float, _: Any) -> None:
        if self._authenticated:
            self._main((), now)
        else:
            self._ask_pin((), now)

    def _ask_pin(self, notice: tuple[str, ...], now: float) -> None:
        spec = ReadSpec(
            prompts=(*notice, PIN_PROMPT),
            min_digits=1,
            max_digits=16,
            terminator="#",
            timeout=10.0,
            inter_digit_timeout=5.0,
            retries=2,
        )
        self._read(MenuState.PIN, spec, now)

    def _main(self, notice: tuple[str, ...], now: float) -> None:
        new = sum(1 for m in self.messages if m.id not in self._heard)
        old = len(self.messages) - new
        summary = (
            f"tts:You have {new} new {_plural(new, 'message')} "
            f"and {old} saved {_plural(old, 'message')}. "
            "Press 1 to listen to them, or pound to hang up."
        )
        spec = ReadSpec(prompts=(*notice, summary), keys=frozenset("1#"), retries=2)
        self._read(MenuState.MAIN, spec, now)

    def _message(self, index: int, notice: tuple[str, ...], now: float) -> None:
        if not self._count():
            return
        self._index = index
        msg = self.messages[index]
        intro = msg.intro
        if intro is None:
            caller = " ".join(msg.caller) if msg.caller.isdigit() else msg.caller
            intro = f"tts:Message {index + 1}" + (f" from {caller}." if caller else ".")
        if msg.id not in self._heard:
            self._heard.add(msg.id)
            self._out.append(MarkHeard(msg.id))
        self.state = MenuState.MESSAGE
        if self._buffer:  # the owner typed ahead: go straight to the message menu
            self._message_menu((), now)
            return
        self._play_id = self._new_id()
        self._out.append(Play(self._play_id, (*notice, intro, msg.path), True))

    def _message_menu(self, notice: tuple[str, ...], now: float) -> None:
        spec = ReadSpec(
            prompts=(*notice, MESSAGE_MENU_PROMPT), keys=frozenset("4567*#"), retries=2
        )
        self._read(MenuState.MESSAGE_MENU, spec, now)

    def _goodbye(self, now: float) -> None:
        self.state = MenuState.GOODBYE
        self._play_id = self._new_id()
        self._out.append(Play(self._play_id, (GOODBYE_PROMPT,), False))

    def _message_digit(self, now: float, key: str) -> None:
        assert self._play_id is not None
        self._out.append(StopPlay(self._play_id))
        self._play_id = None
        if len(self._buffer) < MAX_BUFFER:
            self._buffer.append(key)
        self._message_menu((), now)

    def _message_done(self, now: float, play_id: int) -> None:
        if play_id == self._play_id:
            self._play_id = None
            self._message_menu((), now)

    def _goodbye_done(self, now: float, play_id: int) -> None:
        if play_id == self._play_id:
            self._finish("done")

    def _hangup(self, now: float, _: Any) -> None:
        self.result = Hangup("caller")
        self.state = MenuState.DONE
        self._reader = None

    def _reader_digit(self, now: float, key: str) -> None:
        assert self._reader is not None
        self._out += self._reader.on_digit(key, now)
        self._after_read(now)

    def _reader_prompt_done(self, now: float, play_id: int) -> None:
        assert self._reader is not None
        self._out += self._reader.on_prompt_done(play_id, now)
        self._after_read(now)

    def _reader_timer(self, now: float, _: Any) -> None:
        assert self._reader is not None
        self._out += self._reader.on_timer(now)
        self._after_read(now)

    def _after_read(self, now: float) -> None:
        reader = self._reader
        if reader is None or not reader.done:
            return
        self._reader = None
        value = reader.value
        if value is None:
            self._finish("no-input")
        elif self.state is MenuState.PIN:
            self._pin_entered(value, now)
        elif self.state is MenuState.MAIN:
            self._main_choice(value, now)
        else:
            self._message_choice(value, now)

    def _pin_entered(self, value: str, now: float) -> None:
        pin = self.box.pin or ""
        if hmac.compare_digest(value.encode(), pin.encode()):
            self._authenticated = True
            self._main((), now)
            return
        self._pin_failures += 1
        if self._pin_failures >= PIN_ATTEMPTS:
            self._finish("bad-pin")
        else:
            self._ask_pin((BAD_PIN_PROMPT,), now)

    def _main_choice(self, value: str, now: float) -> None:
        if value == "#":
            self._goodbye(now)
        elif not self.messages:
            self._main((NO_MESSAGES_PROMPT,), now)
        else:
            self._message(0, (), now)

    def _message_choice(self, value: str, now: float) -> None:
        i = self._index
        if value == "4":
            if i == 0:
                self._message_menu((FIRST_PROMPT,), now)
            else:
                self._message(i - 1, (), now)
        elif value == "5":
            self._message(i, (), now)
        elif value == "6":
            if i + 1 < len(self.messages):
                self._message(i + 1, (), now)
            else:
                self._main((NO_MORE_PROMPT,), now)
        elif value == "7":
            msg = self.messages.pop(i)
            self._out.append(DeleteMessage(msg.id))
            if i < len(self.messages):
                self._message(i, (DELETED_PROMPT,), now)
            else:
                self._main((DELETED_PROMPT,), now)
        elif value == "*":
            self._main((), now)
        else:
            self._goodbye(now)


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


_MenuHandler = Callable[[VoicemailMenuSession, float, Any], None]
_M = MenuState
_READING = (_M.PIN, _M.MAIN, _M.MESSAGE_MENU)
_MENU_TRANSITIONS: dict[tuple[MenuState, Input], _MenuHandler] = {
    (_M.IDLE, _I.START): VoicemailMenuSession._start,
    (_M.MESSAGE, _I.RECV_DIGIT): VoicemailMenuSession._message_digit,
    (_M.MESSAGE, _I.RECV_PROMPT_DONE): VoicemailMenuSession._message_done,
    (_M.GOODBYE, _I.RECV_PROMPT_DONE): VoicemailMenuSession._goodbye_done,
    **{(s, _I.RECV_DIGIT): VoicemailMenuSession._reader_digit for s in _READING},
    **{(s, _I.RECV_PROMPT_DONE): VoicemailMenuSession._reader_prompt_done for s in _READING},
    **{(s, _I.TIMER_EXPIRED): VoicemailMenuSession._reader_timer for s in _READING},
    **{
        (s, _I.RECV_HANGUP): VoicemailMenuSession._hangup
        for s in (_M.IDLE, *_READING, _M.MESSAGE, _M.GOODBYE)
    },
}
