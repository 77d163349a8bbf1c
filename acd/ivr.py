"""IVR flows, sans-IO: one :class:`IvrSession` per call in an ``[ivr.NAME]`` menu or flow.

Theory of operation
-------------------

A session walks the steps of :class:`hotline.config.IvrConfig` flows (the simple form, a
greeting and a key map, is run as a flow of one ``menu`` step). It never does I/O and
never reads a clock: call control feeds it events, each with ``now`` (seconds, any
monotonic time base), and executes the actions it returns, in order:

=====================================  =================================================
event (call control → session)         typical actions (session → call control)
=====================================  =================================================
``start(now)``                         :class:`Play`, :class:`HttpRequest`
``on_digit(key, now)``                 :class:`StopPlay` (barge-in), :class:`Play`
``on_prompt_done(play_id, now)``       the next step's actions
``on_http_result(id, status, json)``   the next step's actions
``on_timer(now)``                      replay/invalid prompts, fallback
``on_hangup(now)``                     nothing (the session ends)
=====================================  =================================================

After each call, :meth:`IvrSession.next_timer` is the deadline at which ``on_timer``
must run (or None); it is never before the ``now`` just passed in. The session ends
with exactly one :class:`Transfer` (queue, agent, voicemail, trunk, conference, echo)
or :class:`Hangup`; :attr:`IvrSession.result` holds it and later events are ignored.

Steps that need no event (``set``, ``branch``, ``time``, ``goto``, ``ivr:`` jumps) run
at once, in a loop, not by recursion. Every step entered counts against ``max_steps``
(200 by default): a flow that loops (``goto`` in a circle, a caller pressing ``*`` to
repeat a menu forever) ends with ``Hangup("max-steps")`` instead of spinning.

Digits: RFC 4733 and in-band detection reach the session alike. A key pressed during
an interruptible prompt stops it (barge-in) and counts; a key pressed during a
non-interruptible prompt, during an HTTP request, or during a ``play`` step is kept in
a type-ahead buffer that the next ``menu``/``collect`` step reads first, so callers
who know the menus can type ``1 2 #`` without listening. A wrong key or a timeout
clears the buffer. Menus and number input share :class:`DigitReader`.

Each session state has a literal transition table (``_TRANSITIONS``); an event with no
entry for the current state is stale (a prompt that finished after a barge-in, a key
after the transfer) and is ignored. An unexpected exception in a handler is logged and
ends the session with ``Hangup("error")``: a flow bug never reaches call control.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any
from urllib.parse import quote, urlencode

from hotline.config import (
    DTMF_KEYS,
    IvrBranchStep,
    IvrCase,
    IvrCollectStep,
    IvrConfig,
    IvrGotoStep,
    IvrHttpStep,
    IvrMenuStep,
    IvrNext,
    IvrPlayStep,
    IvrSetStep,
    IvrStep,
    IvrTimeStep,
    IvrTransferStep,
    Target,
    render_template,
)

from .ivr_actions import Hangup, HttpRequest, IvrAction, Play, StopPlay, Transfer

__all__ = [
    "DEFAULT_INVALID",
    "MAX_STEPS",
    "DigitReader",
    "Input",
    "IvrSession",
    "ReadSpec",
    "State",
    "flow_of",
]

logger = logging.getLogger("hotline.acd.ivr")

#: Steps one call may enter before it is hung up (loop guard).
MAX_STEPS = 200
#: Keys kept in the type-ahead buffer; more are dropped.
MAX_BUFFER = 32
#: Characters kept per variable value (web-hook answers can be large).
MAX_VALUE = 1024
#: Seconds past an HTTP step's timeout before the session gives up on call control.
HTTP_GRACE = 1.0
#: Played after an invalid key when the step names no ``invalid`` prompt.
DEFAULT_INVALID = ("tts:Sorry, that is not a valid choice.",)
#: Name of the one step a simple-form menu runs as.
SIMPLE_STEP = "menu"

_NOTHING: Any = object()


class Input(Enum):
    """Events a session (or a :class:`DigitReader`) is fed."""

    START = "start"
    RECV_DIGIT = "digit"
    RECV_PROMPT_DONE = "prompt_done"
    RECV_HTTP_RESULT = "http_result"
    RECV_HANGUP = "hangup"
    TIMER_EXPIRED = "timer"


def flow_of(cfg: IvrConfig) -> tuple[str, Mapping[str, IvrStep]]:
    """Return ``(start step, steps)`` of an IVR; the simple form is one ``menu`` step.

    :param cfg: a validated ``[ivr.NAME]``.
    """
    if cfg.steps:
        return cfg.start or next(iter(cfg.steps)), cfg.steps
    menu = IvrMenuStep(
        name=SIMPLE_STEP,
        prompts=(cfg.greeting,) if cfg.greeting else (),
        options=cfg.menu,
        timeout=cfg.timeout,
        retries=cfg.retries,
        invalid=(cfg.invalid,) if cfg.invalid else (),
        fallback=cfg.fallback,
    )
    return SIMPLE_STEP, {SIMPLE_STEP: menu}


#: Events before which an overdue timer is not run first (a hangup ends the call as is).
_NO_CATCH_UP = frozenset({Input.START, Input.TIMER_EXPIRED, Input.RECV_HANGUP})


def _push(buffer: list[str], key: str) -> None:
    if len(buffer) < MAX_BUFFER:
        buffer.append(key)


# --------------------------------------------------------------------------- digit reader


@dataclass(frozen=True, slots=True)
class ReadSpec:
    """What a :class:`DigitReader` plays and accepts (prompts already rendered)."""

    prompts: tuple[str, ...]
    #: Valid single keys (a menu), or None to read a number (``collect``).
    keys: frozenset[str] | None = None
    min_digits: int = 1
    max_digits: int = 1
    #: Key that ends a number early; None for none.
    terminator: str | None = None
    #: Seconds to wait for the first key after the prompt.
    timeout: float = 5.0
    #: Seconds to wait for each further key.
    inter_digit_timeout: float = 3.0
    #: Regular expression the whole input must match.
    pattern: str | None = None
    #: Replays after a timeout or an invalid input before giving up.
    retries: int = 3
    invalid: tuple[str, ...] = DEFAULT_INVALID
    timeout_prompts: tuple[str, ...] = ()
    interruptible: bool = True


class ReadState(Enum):
    """Where a :class:`DigitReader` is."""

    IDLE = "idle"
    PROMPT = "prompt"
    WAIT = "wait"
    DONE = "done"


class DigitReader:
    """Play a prompt and read one key or a number, with retries; sans-IO.

    The building block of ``menu`` and ``collect`` steps and of the voicemail menus.
    Once :attr:`done`, :attr:`value` holds the input, or :attr:`failure` says why there
    is none (``"timeout"`` or ``"invalid"``, from the last attempt). Nothing plays then.

    :param spec: prompts and rules.
    :param new_id: allocates play ids (the owner's counter, so ids never clash).
    :param buffer: the owner's type-ahead buffer, read first and cleared on an error.
    """

    def __init__(self, spec: ReadSpec, new_id: Callable[[], int], buffer: list[str]) -> None:
        self.spec = spec
        self.state = ReadState.IDLE
        #: When :meth:`on_timer` must run, or None.
        self.deadline: float | None = None
        #: The id of the prompt playing, or None.
        self.play_id: int | None = None
        #: Timeouts and invalid inputs so far.
        self.failures = 0
        self.value: str | None = None
        self.failure: str | None = None
        self._digits: list[str] = []
        self._new_id = new_id
        self._buffer = buffer
        self._out: list[IvrAction] = []

    @property
    def done(self) -> bool:
        """Whether the reader has a value or has given up."""
        return self.state is ReadState.DONE

    def start(self, now: float) -> list[IvrAction]:
        """Begin: use typed-ahead keys, else play the prompt.

        :param now: current time.
        """
        return self._run(Input.START, now, None)

    def on_digit(self, key: str, now: float) -> list[IvrAction]:
        """A key was pressed.

        :param key: one of ``0-9 * # A-D``.
        :param now: current time.
        """
        return self._run(Input.RECV_DIGIT, now, key)

    def on_prompt_done(self, play_id: int, now: float) -> list[IvrAction]:
        """A :class:`Play` finished (ignored unless it is the reader's current one).

        :param play_id: the :attr:`Play.id`.
        :param now: current time.
        """
        return self._run(Input.RECV_PROMPT_DONE, now, play_id)

    def on_timer(self, now: float) -> list[IvrAction]:
        """The deadline may have passed (early calls are ignored).

        :param now: current time.
        """
        if self.deadline is None or now < self.deadline:
            return []
        return self._run(Input.TIMER_EXPIRED, now, None)

    # -- transitions

    def _run(self, event: Input, now: float, arg: Any) -> list[IvrAction]:
        out: list[IvrAction] = []
        self._out = out
        if event not in _NO_CATCH_UP and self.deadline is not None and now >= self.deadline:
            self._timer(now, None)  # overdue: it happened before this event
        handler = _READ_TRANSITIONS.get((self.state, event))
        if handler is not None:
            handler(self, now, arg)
        return out

    def _start(self, now: float, _: Any) -> None:
        self.state = ReadState.WAIT
        self._consume(now)
        if self.state is ReadState.WAIT:
            if self._digits:
                self.deadline = now + self.spec.inter_digit_timeout
            else:
                self._prompt(self.spec.prompts, now)

    def _digit_in_prompt(self, now: float, key: str) -> None:
        if not self.spec.interruptible:
            _push(self._buffer, key)
            return
        assert self.play_id is not None
        self._out.append(StopPlay(self.play_id))
        self.play_id = None
        self.state = ReadState.WAIT
        self._feed(key, now)

    def _digit_in_wait(self, now: float, key: str) -> None:
        self._feed(key, now)

    def _prompt_done(self, now: float, play_id: int) -> None:
        if play_id != self.play_id:
            return
        self.play_id = None
        self.state = ReadState.WAIT
        self._consume(now)
        if self.state is ReadState.WAIT:
            self._arm(now)

    def _timer(self, now: float, _: Any) -> None:
        if self._digits:
            self._complete(now)
        else:
            self._fail("timeout", now)

    # -- helpers

    def _arm(self, now: float) -> None:
        s = self.spec
        self.deadline = now + (s.inter_digit_timeout if self._digits else s.timeout)

    def _prompt(self, prompts: tuple[str, ...], now: float) -> None:
        if not prompts:
            self.state = ReadState.WAIT
            self._arm(now)
            return
        self.deadline = None
        self.play_id = self._new_id()
        self._out.append(Play(self.play_id, prompts, self.spec.interruptible))
        self.state = ReadState.PROMPT

    def _consume(self, now: float) -> None:
        while self._buffer and self.state is ReadState.WAIT:
            self._feed(self._buffer.pop(0), now)

    def _feed(self, key: str, now: float) -> None:
        s = self.spec
        if s.terminator is not None and key == s.terminator and s.keys is None:
            self._complete(now)
            return
        self._digits.append(key)
        if len(self._digits) >= s.max_digits:
            self._complete(now)
        else:
            self.deadline = now + s.inter_digit_timeout

    def _complete(self, now: float) -> None:
        s = self.spec
        value = "".join(self._digits)
        self._digits = []
        if (
            s.min_digits <= len(value) <= s.max_digits
            and (s.keys is None or value in s.keys)
            and (s.pattern is None or re.fullmatch(s.pattern, value) is not None)
        ):
            self.value = value
            self.state = ReadState.DONE
            self.deadline = None
        else:
            self._fail("invalid", now)

    def _fail(self, why: str, now: float) -> None:
        self.failures += 1
        self._buffer.clear()
        self._digits = []
        if self.failures > self.spec.retries:
            self.failure = why
            self.state = ReadState.DONE
            self.deadline = None
            return
        notice = self.spec.invalid if why == "invalid" else self.spec.timeout_prompts
        self._prompt((*notice, *self.spec.prompts), now)


_ReadHandler = Callable[[DigitReader, float, Any], None]
_READ_TRANSITIONS: dict[tuple[ReadState, Input], _ReadHandler] = {
    (ReadState.IDLE, Input.START): DigitReader._start,
    (ReadState.PROMPT, Input.RECV_DIGIT): DigitReader._digit_in_prompt,
    (ReadState.PROMPT, Input.RECV_PROMPT_DONE): DigitReader._prompt_done,
    (ReadState.WAIT, Input.RECV_DIGIT): DigitReader._digit_in_wait,
    (ReadState.WAIT, Input.TIMER_EXPIRED): DigitReader._timer,
}


# --------------------------------------------------------------------------- session


class State(Enum):
    """Where an :class:`IvrSession` is."""

    IDLE = "idle"
    #: A ``play`` step or a ``play:`` target is playing.
    PLAYING = "playing"
    #: A ``menu`` or ``collect`` step is reading keys.
    READING = "reading"
    #: An ``http`` step waits for its answer (or its wait prompt).
    HTTP = "http"
    DONE = "done"


class IvrSession:
    """One call's walk through IVR flows.

    :param ivrs: every ``[ivr.NAME]`` of the site (``SiteConfig.ivr``), for ``ivr:`` jumps.
    :param name: the IVR the call enters.
    :param variables: initial variables; call control passes ``caller``, ``called`` and
        ``call_id``. They fill ``{name}`` in prompts and travel with :class:`Transfer`.
    :param priority: queue priority from the route, kept unless a step sets one.
    :param local_time: turns ``now`` into local wall-clock time for ``time`` steps;
        the default takes ``now`` as Unix time in the system's zone.
    :param max_steps: the loop guard.
    :param call_id: for log lines only.
    :raises ValueError: if ``name`` is not in ``ivrs``.
    """

    def __init__(
        self,
        ivrs: Mapping[str, IvrConfig],
        name: str,
        *,
        variables: Mapping[str, str] | None = None,
        priority: int = 0,
        local_time: Callable[[float], datetime] | None = None,
        max_steps: int = MAX_STEPS,
        call_id: str = "",
    ) -> None:
        if name not in ivrs:
            raise ValueError(f"no IVR named {name!r}")
        self._ivrs = ivrs
        #: The IVR being run (changes on ``ivr:`` jumps).
        self.ivr = name
        self._start_step, self._flow = flow_of(ivrs[name])
        #: The step being run, or None before :meth:`start`.
        self.step: str | None = None
        self.state = State.IDLE
        #: Variables; they go to the agent's screen pop with :class:`Transfer`.
        self.variables: dict[str, str] = {}
        for key, value in (variables or {}).items():
            self._set(key, value)
        self.priority = priority
        #: How the session ended, once it has.
        self.result: Transfer | Hangup | None = None
        #: Steps entered so far (see ``max_steps``).
        self.steps_run = 0
        self._max_steps = max_steps
        self._local_time = local_time or datetime.fromtimestamp
        self._log = logging.LoggerAdapter(logger, {"call_id": call_id})
        self._buffer: list[str] = []
        self._ids = 0
        self._deadline: float | None = None
        self._out: list[IvrAction] = []
        # PLAYING
        self._play_id: int | None = None
        self._play_next: IvrNext | Hangup | None = None
        self._play_interruptible = False
        # READING
        self._reader: DigitReader | None = None
        self._read_step: IvrMenuStep | IvrCollectStep | None = None
        # HTTP
        self._http_id: int | None = None
        self._http_step: IvrHttpStep | None = None
        self._http_next: IvrNext | None = None

    # -- public API

    @property
    def finished(self) -> bool:
        """Whether the session has ended (:attr:`result` is set)."""
        return self.state is State.DONE

    def start(self, now: float) -> list[IvrAction]:
        """Enter the first step. Call once, after the call is answered.

        :param now: current time.
        """
        return self._dispatch(Input.START, now, None)

    def on_digit(self, key: str, now: float) -> list[IvrAction]:
        """The caller pressed a key (RFC 4733 or in-band); unknown keys are ignored.

        :param key: one of ``0-9 * # A-D``.
        :param now: current time.
        """
        if not isinstance(key, str) or key.upper() not in DTMF_KEYS:
            return []
        return self._dispatch(Input.RECV_DIGIT, now, key.upper())

    def on_prompt_done(self, play_id: int, now: float) -> list[IvrAction]:
        """A :class:`Play` finished or was stopped; stale ids are ignored.

        :param play_id: the :attr:`Play.id`.
        :param now: current time.
        """
        return self._dispatch(Input.RECV_PROMPT_DONE, now, play_id)

    def on_http_result(
        self, request_id: int, status: int | None, body: Any, now: float
    ) -> list[IvrAction]:
        """An :class:`HttpRequest` completed; stale ids are ignored.

        :param request_id: the :attr:`HttpRequest.id`.
        :param status: the HTTP status, or None on a network error or timeout.
        :param body: the answer parsed as JSON, or None if it was not JSON.
        :param now: current time.
        """
        return self._dispatch(Input.RECV_HTTP_RESULT, now, (request_id, status, body))

    def on_timer(self, now: float) -> list[IvrAction]:
        """Run timeouts due at ``now``; an early call does nothing.

        :param now: current time, normally :meth:`next_timer`'s value or later.
        """
        deadline = self.next_timer()
        if deadline is None or now < deadline:
            return []
        return self._dispatch(Input.TIMER_EXPIRED, now, None)

    def on_hangup(self, now: float) -> list[IvrAction]:
        """The caller hung up; the session ends with ``Hangup("caller")``.

        :param now: current time.
        """
        return self._dispatch(Input.RECV_HANGUP, now, None)

    def next_timer(self) -> float | None:
        """When :meth:`on_timer` must be called, or None."""
        if self.state is State.READING and self._reader is not None:
            return self._reader.deadline
        if self.state is State.DONE:
            return None
        return self._deadline

    # -- dispatch

    def _dispatch(self, event: Input, now: float, arg: Any) -> list[IvrAction]:
        out: list[IvrAction] = []
        self._out = out
        if event not in _NO_CATCH_UP:
            # A timer call control delivered late happened before this event: run it first.
            due = self.next_timer()
            if due is not None and now >= due:
                self._handle(Input.TIMER_EXPIRED, now, None)
        self._handle(event, now, arg)
        return out

    def _handle(self, event: Input, now: float, arg: Any) -> None:
        handler = _TRANSITIONS.get((self.state, event))
        if handler is None:
            return
        try:
            handler(self, now, arg)
        except Exception:
            self._log.exception(
                "ivr_error", extra={"ivr": self.ivr, "step": self.step, "event": event.value}
            )
            if self._reader is not None and self._reader.play_id is not None:
                self._out.append(StopPlay(self._reader.play_id))
            self._finish(Hangup("error"))

    def _new_id(self) -> int:
        self._ids += 1
        return self._ids

    def _set(self, name: str, value: str) -> None:
        self.variables[name] = value[:MAX_VALUE]

    def _render(self, prompts: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(render_template(p, self.variables) for p in prompts)

    def _finish(self, action: Transfer | Hangup) -> None:
        if self._play_id is not None:
            self._out.append(StopPlay(self._play_id))
            self._play_id = None
        self._out.append(action)
        self.result = action
        self.state = State.DONE
        self._deadline = None
        self._reader = None
        self._http_id = None

    # -- transitions

    def _start(self, now: float, _: Any) -> None:
        self._go(self._start_step, now)

    def _hangup(self, now: float, _: Any) -> None:
        self._play_id = None
        if self._reader is not None:
            self._reader.play_id = None
        self.state = State.DONE
        self.result = Hangup("caller")
        self._deadline = None
        self._reader = None
        self._http_id = None

    def _play_digit(self, now: float, key: str) -> None:
        _push(self._buffer, key)
        if self._play_interruptible:
            assert self._play_id is not None
            self._out.append(StopPlay(self._play_id))
            self._play_id = None
            self._continue_play(now)

    def _play_done(self, now: float, play_id: int) -> None:
        if play_id != self._play_id:
            return
        self._play_id = None
        self._continue_play(now)

    def _continue_play(self, now: float) -> None:
        nxt = self._play_next
        self._play_next = None
        if isinstance(nxt, Hangup):
            self._finish(nxt)
        else:
            self._go(nxt, now)

    def _read_digit(self, now: float, key: str) -> None:
        assert self._reader is not None
        self._out += self._reader.on_digit(key, now)
        self._after_read(now)

    def _read_prompt_done(self, now: float, play_id: int) -> None:
        assert self._reader is not None
        self._out += self._reader.on_prompt_done(play_id, now)
        self._after_read(now)

    def _read_timer(self, now: float, _: Any) -> None:
        assert self._reader is not None
        self._out += self._reader.on_timer(now)
        self._after_read(now)

    def _after_read(self, now: float) -> None:
        reader, step = self._reader, self._read_step
        assert reader is not None and step is not None
        if not reader.done:
            return
        self._reader = None
        self._read_step = None
        self._go(self._read_result(reader, step), now)

    def _read_result(self, reader: DigitReader, step: IvrMenuStep | IvrCollectStep) -> IvrNext:
        if reader.value is None:
            return step.fallback
        if isinstance(step, IvrMenuStep):
            if step.variable:
                self._set(step.variable, reader.value)
            return step.options[reader.value]
        self._set(step.variable, reader.value)
        return step.next

    def _http_digit(self, now: float, key: str) -> None:
        _push(self._buffer, key)

    def _http_result(self, now: float, arg: tuple[int, int | None, Any]) -> None:
        request_id, status, body = arg
        if request_id != self._http_id or not isinstance(request_id, int):
            return
        self._http_done(status, body, now)

    def _http_timer(self, now: float, _: Any) -> None:
        if self._http_id is not None:
            self._http_done(None, None, now)

    def _http_done(self, status: int | None, body: Any, now: float) -> None:
        step = self._http_step
        assert step is not None
        self._http_id = None
        self._deadline = None
        nxt = self._http_outcome(step, status, body)
        if self._play_id is not None:
            self._http_next = nxt  # let the wait prompt finish
        else:
            self._go(nxt, now)

    def _http_prompt_done(self, now: float, play_id: int) -> None:
        if play_id != self._play_id:
            return
        self._play_id = None
        nxt = self._http_next
        if nxt is not None:
            self._http_next = None
            self._go(nxt, now)

    # -- steps

    def _go(self, nxt: IvrNext | None, now: float) -> None:
        """Enter steps until one waits for an event or the session ends."""
        while nxt is not None and self.state is not State.DONE:
            self.steps_run += 1
            if self.steps_run > self._max_steps:
                self._log.warning("ivr_max_steps", extra={"ivr": self.ivr, "step": self.step})
                self._finish(Hangup("max-steps"))
                return
            if isinstance(nxt, Target):
                nxt = self._enter_target(nxt, now, None, None)
                continue
            step = self._flow.get(nxt)
            if step is None:
                raise LookupError(f"ivr {self.ivr}: no step {nxt!r}")
            self.step = nxt
            nxt = _ENTER[type(step)](self, step, now)

    def _enter_target(
        self, target: Target, now: float, priority: int | None, number: str | None
    ) -> IvrNext | None:
        if target.kind == "ivr":
            cfg = self._ivrs.get(target.arg or "")
            if cfg is None:
                raise LookupError(f"no IVR named {target.arg!r}")
            self.ivr = cfg.name
            self._start_step, self._flow = flow_of(cfg)
            return self._start_step
        if target.kind == "hangup":
            self._finish(Hangup("hangup"))
        elif target.kind == "play":
            self._start_play((target.arg or "",), False, Hangup("played"))
        else:
            self._finish(
                Transfer(
                    target=target,
                    variables=dict(self.variables),
                    priority=self.priority if priority is None else priority,
                    number=render_template(number, self.variables) if number else None,
                )
            )
        return None

    def _start_play(
        self, prompts: tuple[str, ...], interruptible: bool, then: IvrNext | Hangup
    ) -> None:
        self._play_id = self._new_id()
        self._play_next = then
        self._play_interruptible = interruptible
        self._out.append(Play(self._play_id, self._render(prompts), interruptible))
        self.state = State.PLAYING
        self._deadline = None

    def _enter_play(self, step: IvrPlayStep, now: float) -> IvrNext | None:
        if (step.interruptible and self._buffer) or not step.prompts:
            return step.next  # the caller has typed ahead: skip what they would interrupt
        self._start_play(step.prompts, step.interruptible, step.next)
        return None

    def _enter_read(self, step: IvrMenuStep | IvrCollectStep, now: float) -> IvrNext | None:
        if isinstance(step, IvrMenuStep):
            spec = ReadSpec(
                prompts=self._render(step.prompts),
                keys=frozenset(step.options),
                timeout=step.timeout,
                retries=step.retries,
                invalid=self._render(step.invalid or DEFAULT_INVALID),
                timeout_prompts=self._render(step.timeout_prompts),
                interruptible=step.interruptible,
            )
        else:
            spec = ReadSpec(
                prompts=self._render(step.prompts),
                min_digits=step.min_digits,
                max_digits=step.max_digits,
                terminator=step.terminator,
                timeout=step.timeout,
                inter_digit_timeout=step.inter_digit_timeout,
                pattern=step.pattern,
                retries=step.retries,
                invalid=self._render(step.invalid or DEFAULT_INVALID),
                timeout_prompts=self._render(step.timeout_prompts),
                interruptible=step.interruptible,
            )
        self._reader = DigitReader(spec, self._new_id, self._buffer)
        self._read_step = step
        self.state = State.READING
        self._deadline = None
        self._out += self._reader.start(now)
        if not self._reader.done:
            return None
        # decided from typed-ahead keys, without a prompt: return to the _go loop
        reader = self._reader
        self._reader = None
        self._read_step = None
        return self._read_result(reader, step)

    def _enter_http(self, step: IvrHttpStep, now: float) -> IvrNext | None:
        url = render_template(step.url, self.variables, lambda v: quote(v, safe=""))
        body = None if step.body is None else _render_json(dict(step.body), self.variables)
        if step.method == "GET" and body is not None:
            if body:
                query = urlencode({k: _stringify(v) for k, v in body.items()})
                url += ("&" if "?" in url else "?") + query
            body = None
        self._http_id = self._new_id()
        self._http_step = step
        self._http_next = None
        self._out.append(
            HttpRequest(
                id=self._http_id,
                method=step.method,
                url=url,
                body=body,
                headers=dict(step.headers),
                timeout=float(step.timeout),
            )
        )
        self.state = State.HTTP
        self._deadline = now + step.timeout + HTTP_GRACE
        if step.prompts:
            self._play_id = self._new_id()
            self._out.append(Play(self._play_id, self._render(step.prompts), False))
        return None

    def _http_outcome(self, step: IvrHttpStep, status: int | None, body: Any) -> IvrNext:
        if step.status:
            self._set(step.status, "" if status is None else str(status))
        ok = isinstance(status, int) and 200 <= status < 300
        staged: dict[str, str] = {}
        if ok:
            for var, path in step.map.items():
                value = _lookup(body, path)
                if value is _NOTHING:
                    ok = False
                    break
                staged[var] = _stringify(value)
        if not ok:
            return step.failure
        for var, value in staged.items():
            self._set(var, value)
        return step.next

    def _enter_set(self, step: IvrSetStep, now: float) -> IvrNext | None:
        rendered = {k: render_template(v, self.variables) for k, v in step.variables.items()}
        for k, v in rendered.items():
            self._set(k, v)
        return step.next

    def _enter_branch(self, step: IvrBranchStep, now: float) -> IvrNext | None:
        for case in step.cases:
            name = case.variable or step.variable or ""
            if _case_holds(case, self.variables.get(name, "")):
                return case.next
        return step.default

    def _enter_time(self, step: IvrTimeStep, now: float) -> IvrNext | None:
        when = self._local_time(now)
        for case in step.cases:
            if case.matches(when):
                return case.next
        return step.default

    def _enter_transfer(self, step: IvrTransferStep, now: float) -> IvrNext | None:
        return self._enter_target(step.to, now, step.priority, step.number)

    def _enter_goto(self, step: IvrGotoStep, now: float) -> IvrNext | None:
        return step.to


_Handler = Callable[[IvrSession, float, Any], None]
_LIVE = (State.IDLE, State.PLAYING, State.READING, State.HTTP)
_TRANSITIONS: dict[tuple[State, Input], _Handler] = {
    (State.IDLE, Input.START): IvrSession._start,
    (State.PLAYING, Input.RECV_DIGIT): IvrSession._play_digit,
    (State.PLAYING, Input.RECV_PROMPT_DONE): IvrSession._play_done,
    (State.READING, Input.RECV_DIGIT): IvrSession._read_digit,
    (State.READING, Input.RECV_PROMPT_DONE): IvrSession._read_prompt_done,
    (State.READING, Input.TIMER_EXPIRED): IvrSession._read_timer,
    (State.HTTP, Input.RECV_DIGIT): IvrSession._http_digit,
    (State.HTTP, Input.RECV_PROMPT_DONE): IvrSession._http_prompt_done,
    (State.HTTP, Input.RECV_HTTP_RESULT): IvrSession._http_result,
    (State.HTTP, Input.TIMER_EXPIRED): IvrSession._http_timer,
    **{(s, Input.RECV_HANGUP): IvrSession._hangup for s in _LIVE},
}

_Enter = Callable[[IvrSession, Any, float], "IvrNext | None"]
_ENTER: dict[type, _Enter] = {
    IvrPlayStep: IvrSession._enter_play,
    IvrMenuStep: IvrSession._enter_read,
    IvrCollectStep: IvrSession._enter_read,
    IvrHttpStep: IvrSession._enter_http,
    IvrSetStep: IvrSession._enter_set,
    IvrBranchStep: IvrSession._enter_branch,
    IvrTimeStep: IvrSession._enter_time,
    IvrTransferStep: IvrSession._enter_transfer,
    IvrGotoStep: IvrSession._enter_goto,
}


# --------------------------------------------------------------------------- values


def _case_holds(case: IvrCase, value: str) -> bool:
    if case.equals is not None and value != case.equals:
        return False
    if case.one_of is not None and value not in case.one_of:
        return False
    if case.matches is not None and re.fullmatch(case.matches, value) is None:
        return False
    bounds = (case.lt, case.le, case.gt, case.ge)
    if all(b is None for b in bounds):
        return True
    try:
        x = float(value)
    except ValueError:
        return False
    if math.isnan(x):
        return False
    return (
        (case.lt is None or x < case.lt)
        and (case.le is None or x <= case.le)
        and (case.gt is None or x > case.gt)
        and (case.ge is None or x >= case.ge)
    )


def _lookup(data: Any, path: str) -> Any:
    """Follow a dotted path (``data.items.0.id``) into parsed JSON; _NOTHING if absent."""
    cur = data
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _NOTHING
    return cur


def _stringify(value: Any) -> str:
    """A JSON value as a variable: numbers as written, objects as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return str(value)


def _render_json(value: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(value, Mapping):
        return {k: _render_json(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_json(v, variables) for v in value]
    if isinstance(value, str):
        return render_template(value, variables)
    return value
