"""What IVR and voicemail sessions ask call control to do.

The sessions in :mod:`acd.ivr` and :mod:`acd.voicemail` are sans-IO: each event method
returns a list of these actions, which call control executes *in order* on the call's
media worker (or over HTTP, or in storage) and answers with events. The ids in
:class:`Play` and :class:`HttpRequest` are the session's own; call control maps them to
the media worker's play ids and its HTTP tasks, and reports completion with the same id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hotline.config import Target

__all__ = [
    "DeleteMessage",
    "DiscardMessage",
    "Hangup",
    "HttpRequest",
    "IvrAction",
    "MarkHeard",
    "Notify",
    "Play",
    "SaveMessage",
    "StartRecording",
    "StopPlay",
    "StopRecording",
    "Transfer",
]


class IvrAction:
    """Base of every action."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Play(IvrAction):
    """Play prompts one after another to the caller, replacing whatever plays.

    Report ``on_prompt_done(id, now)`` once, when the last prompt has finished, or when
    the play was stopped or replaced (the session ignores reports for plays it stopped).
    A prompt that cannot be played (missing file) counts as finished.
    """

    #: The session's id for this play.
    id: int
    #: Files under ``DATA_DIR/prompts``, ``tts:TEXT`` or ``tone:NAME``, variables filled in.
    prompts: tuple[str, ...]
    #: Whether a key stops it (the session then sends :class:`StopPlay` itself).
    interruptible: bool


@dataclass(frozen=True, slots=True)
class StopPlay(IvrAction):
    """Stop the play with this id (barge-in, or the session moved on)."""

    id: int


@dataclass(frozen=True, slots=True)
class HttpRequest(IvrAction):
    """Send a JSON web-hook request; report ``on_http_result(id, status, json, now)``.

    Report ``status`` None on a network error or after ``timeout`` seconds, and ``json``
    None when the answer is not JSON.
    """

    id: int
    method: str
    #: Full URL, variables filled in and percent-encoded (GET bodies are in the query).
    url: str
    #: JSON object to send, or None (always None for GET).
    body: Mapping[str, Any] | None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class Transfer(IvrAction):
    """The session is over: send the call to ``target`` (queue, agent, voicemail, trunk...)."""

    target: Target
    #: IVR variables (caller input, web-hook data) for the agent's screen pop.
    variables: Mapping[str, str]
    #: Queue priority (VIP > 0).
    priority: int = 0
    #: For ``trunk:`` targets, the number to dial; None dials the called number.
    number: str | None = None


@dataclass(frozen=True, slots=True)
class Hangup(IvrAction):
    """The session is over: hang up the call."""

    #: Why, for CDRs and logs: ``hangup`` (the flow says so), ``max-steps`` (loop guard),
    #: ``error``, ``caller`` (the caller hung up), ``no-input``, ``voicemail-saved``...
    reason: str


@dataclass(frozen=True, slots=True)
class StartRecording(IvrAction):
    """Start recording what the caller says into ``path`` (mono WAV is enough)."""

    path: str
    #: A safety limit for call control; the session stops the recording itself before.
    max_seconds: float


@dataclass(frozen=True, slots=True)
class StopRecording(IvrAction):
    """Stop the recording; report ``on_recording_done(seconds, now)`` once it is closed."""

    #: ``dtmf``, ``silence``, ``max-length`` or ``caller`` (hung up).
    reason: str


@dataclass(frozen=True, slots=True)
class SaveMessage(IvrAction):
    """Keep a voicemail message: index it for the box (and its notification, if any)."""

    box: str
    path: str
    seconds: float
    #: The call's variables (``caller``, ``called``, ``call_id`` and IVR input).
    variables: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class DiscardMessage(IvrAction):
    """Delete a recording that is not worth keeping (too short, no speech)."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class Notify(IvrAction):
    """Tell the box owner about a new message: run ``argv`` (no shell) and/or POST
    ``payload`` as JSON to ``url``. Failures are logged, never retried by the session."""

    argv: tuple[str, ...]
    url: str | None
    payload: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class MarkHeard(IvrAction):
    """A new voicemail message has been played to the box owner."""

    message_id: str


@dataclass(frozen=True, slots=True)
class DeleteMessage(IvrAction):
    """The box owner deleted a voicemail message."""

    message_id: str
