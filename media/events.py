"""Typed media events delivered to call control by :class:`media.client.MediaPool`.

Workers push events as msgpack maps (``{"event": "dtmf", ...}``); the pool turns each
into one of these frozen dataclasses with :func:`event_from_wire` and hands it to
``pool.on_event``. Dispatch with ``match``/``isinstance``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "DtmfReceived",
    "MediaEvent",
    "MediaTimeout",
    "PlaybackDone",
    "RecordingDone",
    "SpeechStarted",
    "SpeechStopped",
    "WebRtcStateChanged",
    "WorkerDied",
    "WorkerStarted",
    "event_from_wire",
]


@dataclass(frozen=True, slots=True)
class MediaEvent:
    """Base of all media events."""


@dataclass(frozen=True, slots=True)
class _EndpointEvent(MediaEvent):
    worker: int
    """Index of the worker that owns the endpoint."""
    endpoint: int
    """Endpoint id (unique within the worker)."""
    call_key: str | None
    """Call key the endpoint was created for (None if unknown to the pool)."""


@dataclass(frozen=True, slots=True)
class DtmfReceived(_EndpointEvent):
    """A DTMF digit was received."""

    digit: str
    """Keypad character ``0-9 * # A-D``."""
    duration_ms: int
    """How long the key was held."""
    source: str
    """``"rfc4733"`` or ``"inband"``."""


@dataclass(frozen=True, slots=True)
class SpeechStarted(_EndpointEvent):
    """VAD: the endpoint's received audio turned to speech."""


@dataclass(frozen=True, slots=True)
class SpeechStopped(_EndpointEvent):
    """VAD: speech ended (after the hangover)."""

    duration_ms: int
    """Length of the speech burst."""


@dataclass(frozen=True, slots=True)
class MediaTimeout(_EndpointEvent):
    """No RTP arrived on the endpoint for its media timeout."""

    seconds: float
    """Seconds since the last packet (or since creation)."""


@dataclass(frozen=True, slots=True)
class PlaybackDone(_EndpointEvent):
    """A ``play`` finished or was stopped/replaced."""

    play_id: int
    """Id returned by ``play``."""
    reason: str
    """``"done"``, ``"stopped"``, ``"replaced"`` or ``"destroyed"``."""


@dataclass(frozen=True, slots=True)
class WebRtcStateChanged(_EndpointEvent):
    """A WebRTC endpoint's peer connection changed state.

    ``failed`` and ``closed`` are final for the connection (the endpoint stays until
    ``destroy_endpoint``; a ``failed`` leg may recover through an ICE restart offer);
    ``disconnected`` may recover on its own.
    """

    state: str
    """``"connected"``, ``"disconnected"``, ``"failed"`` or ``"closed"``."""


@dataclass(frozen=True, slots=True)
class RecordingDone(MediaEvent):
    """A recording was finalised (stopped, or the worker shut down)."""

    worker: int
    """Worker index."""
    recording: int
    """Recording id."""
    path: str
    """The WAV file."""
    seconds: float
    """Recorded audio length."""


@dataclass(frozen=True, slots=True)
class WorkerDied(MediaEvent):
    """A media worker exited; its endpoints are gone and their calls must be hung up."""

    worker: int
    """Worker index (a replacement with the same index is being started)."""
    endpoints: tuple[int, ...]
    """Endpoint ids it owned."""
    call_keys: tuple[str, ...]
    """Call keys those endpoints belonged to."""
    returncode: int | None
    """Process exit status (negative: killed by that signal)."""


@dataclass(frozen=True, slots=True)
class WorkerStarted(MediaEvent):
    """A (replacement) worker is connected and serving."""

    worker: int
    """Worker index."""
    pid: int
    """Its process id."""


def event_from_wire(worker: int, msg: dict[str, Any], call_key: str | None) -> MediaEvent | None:
    """Build the typed event of a worker's event message (None for unknown kinds).

    :param worker: index of the worker that sent it.
    :param msg: the decoded message.
    :param call_key: the call key of ``msg["endpoint"]`` if the pool knows it.
    """
    kind = msg.get("event")
    ep = int(msg.get("endpoint", -1))
    if kind == "dtmf":
        return DtmfReceived(worker, ep, call_key, str(msg["digit"]), int(msg["duration_ms"]),
                            str(msg["source"]))
    if kind == "speech_start":
        return SpeechStarted(worker, ep, call_key)
    if kind == "speech_stop":
        return SpeechStopped(worker, ep, call_key, int(msg.get("duration_ms", 0)))
    if kind == "media_timeout":
        return MediaTimeout(worker, ep, call_key, float(msg["seconds"]))
    if kind == "playback_done":
        return PlaybackDone(worker, ep, call_key, int(msg["play_id"]), str(msg["reason"]))
    if kind == "webrtc_state":
        return WebRtcStateChanged(worker, ep, call_key, str(msg["state"]))
    if kind == "recording_done":
        return RecordingDone(worker, int(msg["recording"]), str(msg["path"]),
                             float(msg["seconds"]))
    return None
