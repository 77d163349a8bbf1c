"""The media worker's per-tick kernel: façade over :mod:`cext._tick`.

One :class:`TickKernel` per worker turns a tick into one nogil call: route the received
rows into the jitter buffers, pull one frame per endpoint, in-band DTMF, mix, echo,
playout, recording taps, G.711 encode, RTP build and sendmmsg, with network sweeps
(relay) in between. See ``cext/_tick.pyx`` for the theory of operation and
``docs/media.md`` for how the worker drives it.
"""

from __future__ import annotations

from ._tick import EV_DTMF, EV_PLAY_DONE, EV_TE, EV_TONE_DONE, FRAME, PACKET, TickBatch, TickKernel

__all__ = ["EV_DTMF", "EV_PLAY_DONE", "EV_TE", "EV_TONE_DONE", "FRAME", "PACKET", "TickBatch",
           "TickKernel"]
