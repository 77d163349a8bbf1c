"""Adaptive jitter buffer with packet-loss concealment: façade over cext._jitter.

One :class:`JitterBuffer` per received stream. The media worker inserts the rows of a
parsed :class:`cext.rtp.RtpBatch` that belong to the stream with
:meth:`JitterBuffer.put_batch` and calls :meth:`JitterBuffer.get_frame` once per 20 ms
tick into a reused int16[160] array. :func:`put_batch` and :func:`stats` here are
conveniences for the per-call / per-second control plane.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._jitter import (
    FRAME_CONCEALED,
    FRAME_REAL,
    FRAME_RESYNC,
    FRAME_SAMPLES,
    FRAME_SHRUNK,
    FRAME_SILENCE,
    FRAME_STRETCHED,
    JitterBuffer,
    find_pitch,
    plc_run,
)
from .rtp import RtpBatch

__all__ = [
    "FRAME_CONCEALED",
    "FRAME_REAL",
    "FRAME_RESYNC",
    "FRAME_SAMPLES",
    "FRAME_SHRUNK",
    "FRAME_SILENCE",
    "FRAME_STRETCHED",
    "JitterBuffer",
    "JitterStats",
    "conceal",
    "find_pitch",
    "plc_run",
    "put_batch",
    "stats",
]


def put_batch(jb: JitterBuffer, batch: RtpBatch, rows: npt.NDArray[np.int32]) -> int:
    """Insert the rows of a parsed batch that belong to ``jb``'s stream.

    :param jb: the stream's buffer.
    :param batch: a batch after :meth:`RtpBatch.parse`.
    :param rows: int32 row indices of this stream's packets.
    """
    return jb.put_batch(
        batch.packets,
        batch.payload_offset,
        batch.payload_len,
        batch.seq,
        batch.ts,
        batch.ssrc,
        batch.pt,
        batch.status,
        batch.arrival_ms,
        np.ascontiguousarray(rows, dtype=np.int32),
    )


def conceal(
    samples: npt.NDArray[np.int16], present: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int16]:
    """Offline concealment of the samples where ``present`` is False (e.g. recordings).

    :param samples: int16 audio at 8 kHz (missing positions are ignored).
    :param present: same length, True where the sample was received.
    """
    src = np.ascontiguousarray(samples, dtype=np.int16)
    mask = np.ascontiguousarray(present, dtype=np.uint8)
    out = np.empty_like(src)
    plc_run(src, mask, out)
    return out


@dataclass(frozen=True, slots=True)
class JitterStats:
    """Counters of one buffer, for metrics and call quality records."""

    packets: int
    """Packets stored."""
    duplicates: int
    """Packets dropped as duplicates."""
    late: int
    """Packets dropped because their playout time had passed."""
    ignored: int
    """Packets with a payload type that is not G.711 (CN, telephone-event...)."""
    resyncs: int
    """SSRC changes and timestamp jumps."""
    real_frames: int
    """Frames played from packets."""
    concealed_frames: int
    """Frames played from concealment (including stretch inserts)."""
    silence_frames: int
    """Frames with no audio at all."""
    shrunk_frames: int
    """Times 20 ms were dropped to shorten the delay."""
    stretched_frames: int
    """Times 20 ms were inserted to lengthen the delay."""
    target_delay_ms: float
    """Current target delay."""
    delay_ms: float
    """Delay measured at the last tick."""


def stats(jb: JitterBuffer) -> JitterStats:
    """Snapshot the counters of a buffer.

    :param jb: the buffer.
    """
    return JitterStats(
        jb.packets,
        jb.duplicates,
        jb.late,
        jb.ignored,
        jb.resyncs,
        jb.real_frames,
        jb.concealed_frames,
        jb.silence_frames,
        jb.shrunk_frames,
        jb.stretched_frames,
        jb.target_delay_ms,
        jb.delay_ms,
    )
