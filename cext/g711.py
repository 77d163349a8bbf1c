"""G.711 µ-law (PCMU) and A-law (PCMA) codecs: allocating façade over cext._g711.

The kernels in :mod:`cext._g711` write into caller-allocated arrays (the media worker
reuses its tick buffers); the functions here allocate, for the control plane and tests.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._g711 import (
    alaw_decode,
    alaw_encode,
    alaw_to_ulaw,
    ulaw_decode,
    ulaw_encode,
    ulaw_to_alaw,
)

__all__ = [
    "ALAW_SILENCE",
    "CODECS",
    "PT_PCMA",
    "PT_PCMU",
    "ULAW_SILENCE",
    "alaw_decode",
    "alaw_encode",
    "alaw_to_ulaw",
    "codec_for_payload_type",
    "decode",
    "encode",
    "transcode",
    "ulaw_decode",
    "ulaw_encode",
    "ulaw_to_alaw",
]

#: RFC 3551 section 6, Table 4: static payload types of G.711.
PT_PCMU = 0
PT_PCMA = 8
CODECS = ("pcmu", "pcma")
#: The byte a silent (all-zero) sample encodes to.
ULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5

_DECODERS = {"pcmu": ulaw_decode, "pcma": alaw_decode}
_ENCODERS = {"pcmu": ulaw_encode, "pcma": alaw_encode}


def _codec(codec: str) -> str:
    name = codec.lower()
    if name not in _DECODERS:
        raise ValueError(f"unknown G.711 codec {codec!r}, expected 'pcmu' or 'pcma'")
    return name


def codec_for_payload_type(pt: int) -> str:
    """Return the codec name of a static G.711 payload type.

    :param pt: RTP payload type (0 = PCMU, 8 = PCMA).
    """
    if pt == PT_PCMU:
        return "pcmu"
    if pt == PT_PCMA:
        return "pcma"
    raise ValueError(f"payload type {pt} is not G.711 (expected 0 or 8)")


def decode(payload: bytes | bytearray | memoryview, codec: str) -> npt.NDArray[np.int16]:
    """Decode a G.711 payload into a new int16 array.

    :param payload: encoded bytes, one per sample.
    :param codec: ``"pcmu"`` or ``"pcma"`` (case-insensitive).
    """
    fn = _DECODERS[_codec(codec)]
    src = np.frombuffer(payload, dtype=np.uint8)
    out = np.empty(src.shape[0], dtype=np.int16)
    fn(src, out)
    return out


def encode(samples: npt.ArrayLike, codec: str) -> bytes:
    """Encode int16 samples to a G.711 payload.

    :param samples: anything numpy turns into a 1-D array of int16 (other integer
        dtypes must already be in int16 range).
    :param codec: ``"pcmu"`` or ``"pcma"`` (case-insensitive).
    """
    fn = _ENCODERS[_codec(codec)]
    arr = np.asarray(samples)
    if arr.ndim != 1:
        raise ValueError(f"G.711 encode needs a 1-D array, got {arr.ndim} dimensions")
    if arr.dtype != np.int16:
        if arr.dtype.kind not in "iu":
            raise ValueError(f"G.711 encode needs integer samples, got dtype {arr.dtype}")
        if arr.size and (arr.min() < -32768 or arr.max() > 32767):
            raise ValueError("G.711 encode samples are outside the int16 range")
        arr = arr.astype(np.int16)
    src = np.ascontiguousarray(arr)
    out = np.empty(src.shape[0], dtype=np.uint8)
    fn(src, out)
    return out.tobytes()


def transcode(payload: bytes | bytearray | memoryview, src_codec: str, dst_codec: str) -> bytes:
    """Transcode between PCMU and PCMA without going through Python ints.

    :param payload: encoded bytes in ``src_codec``.
    :param src_codec: codec of ``payload``.
    :param dst_codec: wanted codec; equal codecs return a copy.
    """
    a, b = _codec(src_codec), _codec(dst_codec)
    src = np.frombuffer(payload, dtype=np.uint8)
    if a == b:
        return src.tobytes()
    out = np.empty(src.shape[0], dtype=np.uint8)
    (ulaw_to_alaw if a == "pcmu" else alaw_to_ulaw)(src, out)
    return out.tobytes()
