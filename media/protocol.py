"""The msgpack control protocol between the control process and a media worker.

Framing: every message is a msgpack map preceded by its length as a 4-byte big-endian
unsigned integer, over a Unix stream socket. Three kinds of message:

* request (control -> worker): ``{"id": n, "op": "...", ...arguments}``
* reply (worker -> control): ``{"id": n, "ok": true, ...results}`` or
  ``{"id": n, "ok": false, "error": "..."}``; the error names the offending field.
* event (worker -> control): ``{"event": "...", ...fields}``, pushed at any time.

WebRTC legs (``create_webrtc_endpoint``, ``webrtc_offer``, ``webrtc_answer``) carry SDP
offers/answers as strings; every other op takes their endpoint id like an RTP one's.

:func:`validate_request` checks a request against :data:`OPS` (every argument's type,
range and presence) and returns the arguments with defaults filled in; a bad request
raises :class:`ProtocolError`, which the worker turns into an ``ok: false`` reply. It
never kills the worker. This module is sans-IO: :class:`FrameDecoder` takes bytes,
:func:`encode_frame` returns bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import msgpack

__all__ = [
    "CODECS",
    "DIRECTIONS",
    "EVENTS",
    "MAX_FRAME",
    "MAX_SDP",
    "OPS",
    "WEBRTC_CODECS",
    "WEBRTC_STATES",
    "FrameDecoder",
    "ProtocolError",
    "encode_frame",
    "error_reply",
    "ok_reply",
    "validate_request",
]

#: Largest frame accepted (a set_room of a big conference is the largest message).
MAX_FRAME = 1 << 20
_LEN = struct.Struct("!I")

CODECS = {"pcmu": 0, "pcma": 8}
#: RFC 3264 section 5.1 directions (what *we* do: sendonly = we send, do not receive).
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
EVENTS = ("dtmf", "speech_start", "speech_stop", "media_timeout", "playback_done",
          "endpoint_stats", "recording_done", "webrtc_state")
#: Codecs a WebRTC endpoint may negotiate, as aiortc names them (answer preference order).
WEBRTC_CODECS = ("PCMU", "PCMA", "opus")
#: ``webrtc_state`` event values (aiortc connection states the worker reports).
WEBRTC_STATES = ("connected", "disconnected", "failed", "closed")
#: Largest SDP accepted (Chrome's offers are 2-6 KB; candidates and extensions add more).
MAX_SDP = 65536


class ProtocolError(ValueError):
    """A frame or request is malformed; ``str()`` names the field."""


def encode_frame(msg: dict[str, Any]) -> bytes:
    """Serialise one message with its length prefix.

    :raises ProtocolError: if the message is larger than :data:`MAX_FRAME`.
    """
    body = msgpack.packb(msg, use_bin_type=True)
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds {MAX_FRAME}")
    return _LEN.pack(len(body)) + body


class FrameDecoder:
    """Incremental decoder: ``feed(bytes)`` returns the complete messages so far.

    :param max_frame: size cap; a larger announced length raises :class:`ProtocolError`.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self._max = max_frame

    def feed(self, data: bytes | bytearray | memoryview) -> list[dict[str, Any]]:
        """Add received bytes; return the messages they completed.

        :raises ProtocolError: on an oversized frame or a frame that is not a msgpack map.
        """
        self._buf += data
        out: list[dict[str, Any]] = []
        while len(self._buf) >= 4:
            (n,) = _LEN.unpack_from(self._buf, 0)
            if n > self._max:
                raise ProtocolError(f"frame of {n} bytes exceeds {self._max}")
            if len(self._buf) < 4 + n:
                break
            body = bytes(self._buf[4:4 + n])
            del self._buf[:4 + n]
            try:
                msg = msgpack.unpackb(body, raw=False, strict_map_key=False)
            except Exception as exc:  # msgpack raises several unrelated types
                raise ProtocolError(f"frame is not valid msgpack: {exc}") from exc
            if not isinstance(msg, dict):
                raise ProtocolError("frame is not a msgpack map")
            out.append(msg)
        return out


def ok_reply(req_id: int, **fields: Any) -> dict[str, Any]:
    """A successful reply."""
    return {"id": req_id, "ok": True, **fields}


def error_reply(req_id: int | None, error: str) -> dict[str, Any]:
    """A failed reply."""
    return {"id": req_id, "ok": False, "error": error}


# -- argument validators ---------------------------------------------------------

Check = Callable[[str, Any], Any]


def _int(lo: int, hi: int) -> Check:
    def check(name: str, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ProtocolError(f"{name}: expected an integer, got {type(v).__name__}")
        if not lo <= v <= hi:
            raise ProtocolError(f"{name}: {v} is outside {lo}..{hi}")
        return v
    return check


def _num(lo: float, hi: float) -> Check:
    def check(name: str, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ProtocolError(f"{name}: expected a number, got {type(v).__name__}")
        if not lo <= v <= hi:
            raise ProtocolError(f"{name}: {v} is outside {lo}..{hi}")
        return float(v)
    return check


def _str(max_len: int = 4096, choices: tuple[str, ...] | None = None) -> Check:
    def check(name: str, v: Any) -> str:
        if not isinstance(v, str):
            raise ProtocolError(f"{name}: expected a string, got {type(v).__name__}")
        if not v or len(v) > max_len:
            raise ProtocolError(f"{name}: length must be 1..{max_len}")
        if choices is not None and v not in choices:
            raise ProtocolError(f"{name}: {v!r} is not one of {', '.join(choices)}")
        return v
    return check


def _bool(name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ProtocolError(f"{name}: expected true or false, got {type(v).__name__}")
    return v


def _optional(inner: Check) -> Check:
    def check(name: str, v: Any) -> Any:
        return None if v is None else inner(name, v)
    return check


def _sdp(name: str, v: Any) -> str:
    if not isinstance(v, str):
        raise ProtocolError(f"{name}: expected an SDP string, got {type(v).__name__}")
    if not v.startswith("v=0"):
        raise ProtocolError(f"{name}: not an SDP (must start with v=0)")
    if len(v) > MAX_SDP:
        raise ProtocolError(f"{name}: SDP longer than {MAX_SDP} characters")
    return v


def _webrtc_codecs(name: str, v: Any) -> tuple[str, ...]:
    if not isinstance(v, list | tuple) or not v:
        raise ProtocolError(f"{name}: expected a non-empty list of codec names")
    names = {c.lower(): c for c in WEBRTC_CODECS}
    out: list[str] = []
    for i, c in enumerate(v):
        if not isinstance(c, str) or c.lower() not in names:
            raise ProtocolError(f"{name}[{i}]: {c!r} is not one of {', '.join(WEBRTC_CODECS)}")
        out.append(names[c.lower()])
    return tuple(out)


def _ipv4(name: str, v: Any) -> str:
    if not isinstance(v, str):
        raise ProtocolError(f"{name}: expected an IPv4 address string")
    parts = v.split(".")
    if len(parts) != 4 or not all(p.isdigit() and 0 <= int(p) <= 255 for p in parts):
        raise ProtocolError(f"{name}: {v!r} is not an IPv4 address")
    return v


def _ids(name: str, v: Any, max_len: int = 4096) -> list[int]:
    if not isinstance(v, list | tuple):
        raise ProtocolError(f"{name}: expected a list of endpoint ids")
    if len(v) > max_len:
        raise ProtocolError(f"{name}: more than {max_len} entries")
    return [_int(0, 2**31 - 1)(f"{name}[{i}]", x) for i, x in enumerate(v)]


def _hears(name: str, v: Any) -> dict[int, list[int]]:
    if not isinstance(v, dict):
        raise ProtocolError(f"{name}: expected a map of endpoint id -> list of ids")
    out: dict[int, list[int]] = {}
    for k, heard in v.items():
        try:
            key = int(k)
        except (TypeError, ValueError):
            raise ProtocolError(f"{name}: key {k!r} is not an endpoint id") from None
        out[key] = _ids(f"{name}[{k}]", heard)
    return out


def _gains(name: str, v: Any) -> dict[int, float]:
    if not isinstance(v, dict):
        raise ProtocolError(f"{name}: expected a map of endpoint id -> gain")
    out: dict[int, float] = {}
    for k, g in v.items():
        try:
            key = int(k)
        except (TypeError, ValueError):
            raise ProtocolError(f"{name}: key {k!r} is not an endpoint id") from None
        out[key] = _num(0.0, 8.0)(f"{name}[{k}]", g)
    return out


_ID = _int(0, 2**31 - 1)
REQUIRED = object()

# op -> {field: (check, default or REQUIRED)}
OPS: dict[str, dict[str, tuple[Check, Any]]] = {
    "ping": {},
    "create_endpoint": {
        "kind": (_str(16, ("rtp",)), "rtp"),
        "remote_ip": (_optional(_ipv4), None),
        "remote_port": (_optional(_int(1, 65535)), None),
        "pt": (_int(0, 127), None),
        "codec": (_str(8, tuple(CODECS)), "pcmu"),
        "te_pt": (_optional(_int(96, 127)), None),
        "ptime": (_int(20, 20), 20),
        "direction": (_str(16, DIRECTIONS), "sendrecv"),
        "media_timeout": (_num(0.0, 86400.0), 0.0),
        "dtmf_inband": (_bool, False),
        "vad": (_bool, False),
        "latch": (_bool, True),
        "jitter_min_ms": (_int(0, 1000), 20),
        "jitter_max_ms": (_int(0, 1000), 200),
    },
    "modify_endpoint": {
        "endpoint": (_ID, REQUIRED),
        "remote_ip": (_optional(_ipv4), None),
        "remote_port": (_optional(_int(1, 65535)), None),
        "pt": (_optional(_int(0, 127)), None),
        "codec": (_optional(_str(8, tuple(CODECS))), None),
        "te_pt": (_optional(_int(96, 127)), None),
        "direction": (_optional(_str(16, DIRECTIONS)), None),
        "media_timeout": (_optional(_num(0.0, 86400.0)), None),
        "dtmf_inband": (_optional(_bool), None),
        "vad": (_optional(_bool), None),
    },
    "destroy_endpoint": {"endpoint": (_ID, REQUIRED)},
    # WebRTC (browser) legs; see docs/webrtc.md. With ``offer`` the browser offered and
    # the reply has ``answer``; without, the reply has our ``offer`` (then webrtc_answer).
    "create_webrtc_endpoint": {
        "offer": (_optional(_sdp), None),
        "codecs": (_optional(_webrtc_codecs), None),
        "direction": (_str(16, DIRECTIONS), "sendrecv"),
        "media_timeout": (_num(0.0, 86400.0), 0.0),
        "dtmf_inband": (_bool, False),
        "vad": (_bool, False),
        "jitter_min_ms": (_int(0, 1000), 20),
        "jitter_max_ms": (_int(0, 1000), 200),
    },
    "webrtc_offer": {"endpoint": (_ID, REQUIRED), "offer": (_sdp, REQUIRED)},
    "webrtc_answer": {"endpoint": (_ID, REQUIRED), "answer": (_sdp, REQUIRED)},
    "set_room": {
        "room": (_str(256), REQUIRED),
        "endpoints": (_ids, REQUIRED),
        "hears": (_optional(_hears), None),
        "gains": (_optional(_gains), None),
    },
    "play": {
        "endpoint": (_ID, REQUIRED),
        "source": (_str(4096), REQUIRED),
        "loop": (_bool, False),
        "mode": (_str(8, ("replace", "mix")), "replace"),
    },
    "stop_play": {"endpoint": (_ID, REQUIRED)},
    # left/right: endpoints whose received audio each channel sums; while right is
    # empty, the right channel is what the worker sends to the left endpoints
    "record": {
        "path": (_str(4096), REQUIRED),
        "left": (_ids, REQUIRED),
        "right": (_ids, REQUIRED),
    },
    # who is recorded may change during a contact (IVR -> agent -> transfer -> agent)
    "record_update": {
        "recording": (_ID, REQUIRED),
        "left": (_ids, REQUIRED),
        "right": (_ids, REQUIRED),
    },
    "record_pause": {"recording": (_ID, REQUIRED)},
    "record_resume": {"recording": (_ID, REQUIRED)},
    "record_stop": {"recording": (_ID, REQUIRED)},
    "dtmf_send": {
        "endpoint": (_ID, REQUIRED),
        "digits": (_str(64), REQUIRED),
        "duration_ms": (_int(40, 2000), 100),
    },
    "stats": {"endpoint": (_optional(_ID), None)},
}


def validate_request(msg: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
    """Check a request; return ``(id, op, arguments)`` with defaults filled in.

    :raises ProtocolError: naming the field: a missing/bad ``id`` or ``op``, an unknown
        argument, a missing required one, or a wrong type or range.
    """
    req_id = msg.get("id")
    if isinstance(req_id, bool) or not isinstance(req_id, int):
        raise ProtocolError("id: expected an integer request id")
    op = msg.get("op")
    if not isinstance(op, str):
        raise ProtocolError("op: expected a string")
    spec = OPS.get(op)
    if spec is None:
        raise ProtocolError(f"op: unknown operation {op!r}")
    args: dict[str, Any] = {}
    for key, value in msg.items():
        if key in ("id", "op"):
            continue
        if key not in spec:
            raise ProtocolError(f"{key}: unknown argument of {op}")
        args[key] = spec[key][0](key, value)
    for key, (_check, default) in spec.items():
        if key not in args:
            if default is REQUIRED:
                raise ProtocolError(f"{key}: required by {op}")
            args[key] = default
    if op == "create_webrtc_endpoint" and args["jitter_min_ms"] > args["jitter_max_ms"]:
        raise ProtocolError("jitter_min_ms: larger than jitter_max_ms")
    if op == "create_endpoint":
        if args["pt"] is None:
            args["pt"] = CODECS[args["codec"]]
        if (args["remote_ip"] is None) != (args["remote_port"] is None):
            raise ProtocolError("remote_port: remote_ip and remote_port go together")
        if args["jitter_min_ms"] > args["jitter_max_ms"]:
            raise ProtocolError("jitter_min_ms: larger than jitter_max_ms")
    if op == "modify_endpoint" and (args["remote_ip"] is None) != (args["remote_port"] is None):
        raise ProtocolError("remote_port: remote_ip and remote_port go together")
    return req_id, op, args
