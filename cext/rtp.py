"""RTP (RFC 3550) façade: the :class:`RtpHeader` wire object for the control plane and
tests, :class:`RtpBatch` preallocated arrays for the batch kernels, and
:class:`RtpSourceStats` snapshots of :class:`RtpSourceTable` slots for RTCP.

Per-packet work in the media worker goes through :func:`parse_batch` /
:func:`build_batch` and :meth:`RtpSourceTable.update` only; nothing here allocates
per packet except :meth:`RtpHeader.parse`, which the hot path never calls.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Self

import numpy as np
import numpy.typing as npt

from ._rtp import (
    STATUS_CSRC,
    STATUS_EXT_HEADER,
    STATUS_EXT_VALUE,
    STATUS_LENGTH,
    STATUS_OK,
    STATUS_PADDING,
    STATUS_RTCP,
    STATUS_SHORT,
    STATUS_VERSION,
    RtpSourceTable,
    build_batch,
    build_one,
    parse_batch,
    parse_one,
)
from .exceptions import RtpParseError

__all__ = [
    "MAX_PACKET_SIZE",
    "RTP_HEADER_SIZE",
    "STATUS_MESSAGES",
    "RtpBatch",
    "RtpHeader",
    "RtpSourceStats",
    "RtpSourceTable",
    "build_batch",
    "build_one",
    "is_rtcp",
    "parse_batch",
    "parse_one",
    "seq_gt",
    "seq_lt",
    "source_stats",
]

RTP_HEADER_SIZE = 12
#: Row width of batch arrays: an Ethernet MTU datagram.
MAX_PACKET_SIZE = 1500

#: Status code of the kernels -> exact error message (aiortc wording).
STATUS_MESSAGES: dict[int, str] = {
    STATUS_SHORT: "RTP packet length is less than 12 bytes",
    STATUS_VERSION: "RTP packet has invalid version",
    STATUS_CSRC: "RTP packet has truncated CSRC",
    STATUS_EXT_HEADER: "RTP packet has truncated extension profile / length",
    STATUS_EXT_VALUE: "RTP packet has truncated extension value",
    STATUS_PADDING: "RTP packet padding length is invalid",
    STATUS_LENGTH: "RTP packet length is larger than its buffer row",
    STATUS_RTCP: "RTP packet is an RTCP packet (RFC 5761 payload type 72-76)",
}


def seq_lt(a: int, b: int) -> bool:
    """True if 16-bit sequence number ``a`` precedes ``b`` (RFC 1982 serial arithmetic)."""
    return a != b and ((b - a) & 0xFFFF) < 0x8000


def seq_gt(a: int, b: int) -> bool:
    """True if 16-bit sequence number ``a`` follows ``b``."""
    return seq_lt(b, a)


def is_rtcp(data: bytes | bytearray | memoryview) -> bool:
    """RFC 5761 section 4: tell RTCP from RTP on a multiplexed port (PT 64-95 with M)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


@dataclass(slots=True)
class RtpHeader:
    """One RTP packet: RFC 3550 section 5.1 fixed header plus payload.

    ``bytes(h)`` serialises it; :meth:`parse` is the inverse. Padding is kept only as
    its size (``padding_size``); serialising writes zero bytes and the count octet.
    """

    payload_type: int = 0
    """PT, 7 bits."""
    marker: bool = False
    """M bit."""
    sequence_number: int = 0
    """16-bit sequence number."""
    timestamp: int = 0
    """32-bit RTP timestamp."""
    ssrc: int = 0
    """Synchronisation source."""
    csrc: tuple[int, ...] = ()
    """Contributing sources (at most 15)."""
    extension_profile: int | None = None
    """RFC 3550 5.3.1 header extension profile, or None when X=0."""
    extension: bytes = b""
    """Header extension data (a multiple of 4 bytes)."""
    payload: bytes = b""
    """Payload with padding removed."""
    padding_size: int = 0
    """Number of padding octets, including the count octet (0 = none)."""
    version: int = field(default=2, repr=False)
    """Always 2."""

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> Self:
        """Parse a datagram; raises :class:`RtpParseError` (a ValueError) with an exact
        message from :data:`STATUS_MESSAGES`.

        :param data: the whole datagram.
        """
        buf = np.frombuffer(data, dtype=np.uint8)
        (st, pt, marker, seq, ts, ssrc, cc, ext_profile, ext_off, ext_len, off, plen, pad) = (
            parse_one(buf)
        )
        if st != STATUS_OK:
            raise RtpParseError(STATUS_MESSAGES[st])
        raw = bytes(data)
        csrc = struct.unpack_from(f"!{cc}I", raw, 12) if cc else ()
        return cls(
            payload_type=pt,
            marker=bool(marker),
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            csrc=tuple(csrc),
            extension_profile=None if ext_profile < 0 else ext_profile,
            extension=raw[ext_off : ext_off + ext_len],
            payload=raw[off : off + plen],
            padding_size=pad,
        )

    def __bytes__(self) -> bytes:
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"RTP payload type {self.payload_type} is outside 0..127")
        if len(self.csrc) > 15:
            raise ValueError("RTP packet cannot carry more than 15 CSRC")
        if len(self.extension) % 4:
            raise ValueError("RTP header extension length must be a multiple of 4")
        if not 0 <= self.padding_size <= 255:
            raise ValueError(f"RTP padding size {self.padding_size} is outside 0..255")
        x = self.extension_profile is not None
        b0 = 0x80 | (0x20 if self.padding_size else 0) | (0x10 if x else 0) | len(self.csrc)
        out = bytearray(
            struct.pack(
                "!BBHII",
                b0,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence_number & 0xFFFF,
                self.timestamp & 0xFFFFFFFF,
                self.ssrc & 0xFFFFFFFF,
            )
        )
        for c in self.csrc:
            out += struct.pack("!I", c)
        if x:
            out += struct.pack("!HH", self.extension_profile, len(self.extension) // 4)
            out += self.extension
        out += self.payload
        if self.padding_size:
            out += bytes(self.padding_size - 1) + bytes([self.padding_size])
        return bytes(out)


class RtpBatch:
    """Preallocated arrays for :func:`parse_batch` / :class:`RtpSourceTable` (one per
    socket, reused every tick).

    :param capacity: maximum packets per batch.
    :param width: bytes per packet row (datagram size cap).
    """

    def __init__(self, capacity: int, width: int = MAX_PACKET_SIZE) -> None:
        if capacity <= 0:
            raise ValueError(f"RTP batch capacity must be positive, got {capacity}")
        if width < RTP_HEADER_SIZE:
            raise ValueError(f"RTP batch width must be at least 12 bytes, got {width}")
        self.capacity = capacity
        self.packets: npt.NDArray[np.uint8] = np.zeros((capacity, width), np.uint8)
        self.lengths: npt.NDArray[np.int32] = np.zeros(capacity, np.int32)
        self.arrival_ms: npt.NDArray[np.float64] = np.zeros(capacity, np.float64)
        self.seq: npt.NDArray[np.uint16] = np.zeros(capacity, np.uint16)
        self.ts: npt.NDArray[np.uint32] = np.zeros(capacity, np.uint32)
        self.ssrc: npt.NDArray[np.uint32] = np.zeros(capacity, np.uint32)
        self.pt: npt.NDArray[np.uint8] = np.zeros(capacity, np.uint8)
        self.marker: npt.NDArray[np.uint8] = np.zeros(capacity, np.uint8)
        self.payload_offset: npt.NDArray[np.int32] = np.zeros(capacity, np.int32)
        self.payload_len: npt.NDArray[np.int32] = np.zeros(capacity, np.int32)
        self.status: npt.NDArray[np.int8] = np.zeros(capacity, np.int8)
        self.count = 0

    def load(self, datagrams: list[bytes], arrival_ms: float | list[float]) -> None:
        """Copy datagrams into the rows (tests and the non-recvmmsg path).

        :param datagrams: at most ``capacity`` datagrams; longer ones than a row are
            marked with a length that makes :meth:`parse` report STATUS_LENGTH.
        :param arrival_ms: one arrival time for all, or one per datagram.
        """
        if len(datagrams) > self.capacity:
            raise ValueError(f"RTP batch holds {self.capacity} packets, got {len(datagrams)}")
        width = self.packets.shape[1]
        for i, d in enumerate(datagrams):
            n = min(len(d), width)
            self.packets[i, :n] = np.frombuffer(d, np.uint8, count=n)
            self.lengths[i] = len(d)
        if isinstance(arrival_ms, list):
            if len(arrival_ms) != len(datagrams):
                raise ValueError("RTP batch needs one arrival time per datagram")
            self.arrival_ms[: len(datagrams)] = arrival_ms
        else:
            self.arrival_ms[: len(datagrams)] = arrival_ms
        self.count = len(datagrams)

    def parse(self) -> int:
        """Parse the loaded rows; returns the number of valid RTP packets."""
        return parse_batch(
            self.packets,
            self.lengths,
            self.seq,
            self.ts,
            self.ssrc,
            self.pt,
            self.marker,
            self.payload_offset,
            self.payload_len,
            self.status,
            self.count,
        )

    def payload(self, i: int) -> bytes:
        """Payload bytes of row ``i`` (control plane / tests only)."""
        off = int(self.payload_offset[i])
        return self.packets[i, off : off + int(self.payload_len[i])].tobytes()


@dataclass(frozen=True, slots=True)
class RtpSourceStats:
    """Receiver statistics of one source (RFC 3550 A.3 and A.8), for an RTCP report block."""

    ssrc: int
    """SSRC of the source."""
    extended_max_seq: int
    """Extended highest sequence number received (cycles + max_seq)."""
    expected: int
    """Packets expected since the base sequence number."""
    received: int
    """Valid packets received (duplicates included, as in A.1)."""
    cumulative_lost: int
    """expected - received, clamped to 24-bit signed."""
    fraction_lost: int
    """Lost fraction since the previous report, in 1/256."""
    jitter: int
    """Interarrival jitter in timestamp units."""
    in_probation: bool
    """True until MIN_SEQUENTIAL sequential packets have arrived."""


def source_stats(table: RtpSourceTable, slot: int, update_prior: bool = False) -> RtpSourceStats:
    """Snapshot one slot of a :class:`RtpSourceTable`.

    :param table: the table.
    :param slot: slot index.
    :param update_prior: set when the snapshot goes into an RTCP report (A.3 interval).
    """
    return RtpSourceStats(*table.stats(slot, update_prior))
