"""Per-endpoint and per-recording state of a media worker (owned by the tick thread).

An :class:`RtpEndpoint` is one RTP stream pair (one call leg) bound to a local UDP port;
its *slot* is its row in the worker's tick arrays and in :class:`cext.net.NetIO`.
Nothing here runs per packet: the objects hold the per-stream kernels (jitter buffer,
DTMF detector, RFC 4733 receiver, VAD, players) that the worker calls once per tick.
"""

from __future__ import annotations

import os
import socket
import struct
from collections import deque
from typing import Any

import numpy as np
import numpy.typing as npt

from cext.dtmf import DtmfDetector
from cext.jitter import JitterBuffer
from cext.rfc4733 import TelephoneEventReceiver

from .vad import SpeechDetector

__all__ = ["Recording", "RtpEndpoint", "wav_header"]

SENDING = ("sendrecv", "sendonly")
RECEIVING = ("sendrecv", "recvonly")


class RtpEndpoint:
    """One RTP endpoint. Attributes are plain (the tick thread is the only writer)."""

    def __init__(self, ep_id: int, slot: int, sock: socket.socket, port: int,
                 args: dict[str, Any], in_row: npt.NDArray[np.int16],
                 out_row: npt.NDArray[np.int16], now_ms: float) -> None:
        self.id = ep_id
        self.slot = slot
        self.sock = sock
        self.port = port
        self.codec: str = args["codec"]
        self.pt: int = args["pt"]
        self.te_pt: int | None = args["te_pt"]
        self.direction: str = args["direction"]
        self.media_timeout: float = args["media_timeout"]
        self.latch: bool = args["latch"]
        self.jb = JitterBuffer(args["jitter_min_ms"], args["jitter_max_ms"])
        self.dtmf: DtmfDetector | None = DtmfDetector() if args["dtmf_inband"] else None
        self.vad: SpeechDetector | None = SpeechDetector() if args["vad"] else None
        self.te_rx = TelephoneEventReceiver()
        self.in_row = in_row
        """Row of the worker's input array: what this endpoint received this tick."""
        self.out_row = out_row
        """Row of the worker's output array: what it sends this tick."""
        self.room: str | None = None
        self.echo = False
        self.player: Any = None
        """A PromptPlayer or ToneGenerator, or None."""
        self.play_id = 0
        self.play_mix = False
        self.tone_tx: Any = None
        """In-band DTMF being sent (a ToneGenerator), or None."""
        self.te_tx: deque[tuple[float, bytes, bool, int]] = deque()
        """RFC 4733 packets to send: (due ms, payload, marker, timestamp)."""
        self.armed_ms = now_ms
        self.timeout_fired = False

    @property
    def sends(self) -> bool:
        """RFC 3264: our direction lets us send (sendrecv or sendonly)."""
        return self.direction in SENDING

    @property
    def receives(self) -> bool:
        """RFC 3264: our direction lets us receive (sendrecv or recvonly)."""
        return self.direction in RECEIVING


def wav_header(data_bytes: int, channels: int = 2, rate: int = 8000) -> bytes:
    """44-byte RIFF/WAVE header for 16-bit PCM with ``data_bytes`` of samples."""
    block = channels * 2
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, 16)
            + b"data" + struct.pack("<I", data_bytes))


class Recording:
    """A stereo WAV being written: left = sum of ``left`` endpoints' received audio,
    right = sum of ``right``'s; while ``right`` is empty (a caller alone in an IVR, a
    queue, ringing an agent), right = what is sent to the ``left`` endpoints (prompts,
    tones, music on hold), so the file has what the caller heard. Samples collect in
    ``buf`` (200 ms) and are handed to the worker's writer thread as one block; the
    header sizes are rewritten once a second, so a killed worker leaves a valid file
    that is at most ~1 s short."""

    FLUSH_TICKS = 10

    def __init__(self, rec_id: int, path: str, left: list[int], right: list[int]) -> None:
        self.id = rec_id
        self.path = path
        self.left = left
        self.right = right
        self.paused = False
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(self.fd, wav_header(0))
        self.buf = np.zeros((self.FLUSH_TICKS * 160, 2), np.int16)
        self.pos = 0
        self.data_bytes = 0
        """Bytes handed to the writer so far."""
        self.flushes = 0

    @property
    def right_sent(self) -> list[int]:
        """Slots whose sent audio (their output rows) makes the right channel: the left
        side's while no endpoint is on the right, else none."""
        return [] if self.right else self.left
