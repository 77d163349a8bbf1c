"""Plain numpy twin of G.711 (the classic segment algorithm of ITU-T G.711 Tables 1/2).

Written independently of cext/_g711.pyx: vectorised with numpy.searchsorted instead of
lookup tables, so a shared mistake is unlikely.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# Segment end points (inclusive) in the 14-bit (µ) and 13-bit (A) magnitude domains.
SEG_UEND = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
SEG_AEND = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def ulaw_encode(x: npt.NDArray[np.int16]) -> npt.NDArray[np.uint8]:
    v = x.astype(np.int32) >> 2
    mask = np.where(v < 0, 0x7F, 0xFF)
    v = np.minimum(np.abs(v), 8159) + 33
    seg = np.searchsorted(SEG_UEND, v, side="left")
    code = (seg << 4) | ((v >> (seg + 1)) & 0x0F)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def ulaw_decode(c: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    u = (~c.astype(np.int32)) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def alaw_encode(x: npt.NDArray[np.int16]) -> npt.NDArray[np.uint8]:
    v = x.astype(np.int32) >> 3
    mask = np.where(v < 0, 0x55, 0xD5)
    v = np.where(v < 0, -v - 1, v)
    seg = np.searchsorted(SEG_AEND, v, side="left")
    shift = np.where(seg < 2, 1, seg)
    code = (seg << 4) | ((v >> shift) & 0x0F)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def alaw_decode(c: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    a = c.astype(np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)
