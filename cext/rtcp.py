"""RTCP (RFC 3550 section 6) SR, RR, SDES and BYE packets: build and parse.

RTCP is per-second control-plane work, so this is plain Python (struct). The numbers
in report blocks come from :class:`cext.rtp.RtpSourceTable` via
:func:`report_block_from_stats`. Wire objects follow aiortc: ``parse(data)`` and
``bytes(obj)``; :func:`parse_rtcp` splits a compound packet.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Self

from .exceptions import RtpParseError
from .rtp import RtpSourceStats

__all__ = [
    "RTCP_BYE",
    "RTCP_RR",
    "RTCP_SDES",
    "RTCP_SR",
    "SDES_CNAME",
    "RtcpByePacket",
    "RtcpPacket",
    "RtcpReportBlock",
    "RtcpRrPacket",
    "RtcpSdesChunk",
    "RtcpSdesPacket",
    "RtcpSenderInfo",
    "RtcpSrPacket",
    "dlsr_from_seconds",
    "middle_ntp",
    "ntp_from_unix",
    "parse_rtcp",
    "report_block_from_stats",
]

# RFC 3550 12.1: RTCP packet types
RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
# RFC 3550 12.2: SDES item types
SDES_END = 0
SDES_CNAME = 1

NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
_REPORT_BLOCK = struct.Struct("!IB3sIIII")


def ntp_from_unix(t: float) -> int:
    """64-bit NTP timestamp (RFC 3550 4) of a Unix time given by the caller.

    :param t: seconds since 1970 (time is injected, never read here).
    """
    secs = int(t) + NTP_EPOCH_OFFSET
    frac = int((t - int(t)) * (1 << 32)) & 0xFFFFFFFF
    return ((secs & 0xFFFFFFFF) << 32) | frac


def middle_ntp(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: the LSR field of a report block."""
    return (ntp >> 16) & 0xFFFFFFFF


def dlsr_from_seconds(delay: float) -> int:
    """DLSR field (units of 1/65536 s) from the delay since the last SR.

    :param delay: seconds since the last SR was received.
    """
    return max(0, min(0xFFFFFFFF, int(delay * 65536)))


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


def _header(count: int, pt: int, body_len: int) -> bytes:
    # RFC 3550 6.4.1: length is in 32-bit words minus one, header included.
    if count > 31:
        raise ValueError(f"RTCP packet cannot carry more than 31 items, got {count}")
    return struct.pack("!BBH", 0x80 | count, pt, (body_len + 4) // 4 - 1)


@dataclass(frozen=True, slots=True)
class RtcpReportBlock:
    """RFC 3550 6.4.1 reception report block."""

    ssrc: int
    """Source this block reports on."""
    fraction_lost: int
    """Fraction lost since the previous report, in 1/256."""
    packets_lost: int
    """Cumulative lost, 24-bit signed."""
    highest_sequence: int
    """Extended highest sequence number received."""
    jitter: int
    """Interarrival jitter, timestamp units."""
    lsr: int = 0
    """Middle 32 bits of the last SR's NTP timestamp (0 if none)."""
    dlsr: int = 0
    """Delay since that SR, 1/65536 s."""

    def __bytes__(self) -> bytes:
        if not 0 <= self.fraction_lost <= 255:
            raise ValueError(f"RTCP fraction lost {self.fraction_lost} is outside 0..255")
        if not -0x800000 <= self.packets_lost <= 0x7FFFFF:
            raise ValueError(f"RTCP packets lost {self.packets_lost} does not fit 24 bits")
        lost = (self.packets_lost & 0xFFFFFF).to_bytes(3, "big")
        return _REPORT_BLOCK.pack(
            self.ssrc,
            self.fraction_lost,
            lost,
            self.highest_sequence,
            self.jitter,
            self.lsr,
            self.dlsr,
        )

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """Parse a 24-byte report block.

        :param data: exactly 24 bytes.
        """
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack(data)
        packets_lost = int.from_bytes(lost, "big", signed=True)
        return cls(ssrc, fraction, packets_lost, highest, jitter, lsr, dlsr)


def report_block_from_stats(stats: RtpSourceStats, lsr: int = 0, dlsr: int = 0) -> RtcpReportBlock:
    """Build a report block from a source snapshot (take it with ``update_prior=True``).

    :param stats: :func:`cext.rtp.source_stats` result.
    :param lsr: middle 32 bits of the last SR from that source, or 0.
    :param dlsr: delay since that SR in 1/65536 s, or 0.
    """
    return RtcpReportBlock(
        stats.ssrc,
        stats.fraction_lost,
        stats.cumulative_lost,
        stats.extended_max_seq & 0xFFFFFFFF,
        stats.jitter,
        lsr,
        dlsr,
    )


@dataclass(frozen=True, slots=True)
class RtcpSenderInfo:
    """RFC 3550 6.4.1 sender info of an SR."""

    ntp_timestamp: int
    """64-bit NTP wallclock."""
    rtp_timestamp: int
    """RTP timestamp of the same instant."""
    packet_count: int
    """Packets sent."""
    octet_count: int
    """Payload octets sent."""


@dataclass(slots=True)
class RtcpSrPacket:
    """Sender report (PT 200)."""

    ssrc: int
    """Sender SSRC."""
    sender_info: RtcpSenderInfo
    """Sender info."""
    reports: list[RtcpReportBlock] = field(default_factory=list)
    """Reception report blocks (at most 31)."""

    def __bytes__(self) -> bytes:
        si = self.sender_info
        body = struct.pack(
            "!IQIII",
            self.ssrc,
            si.ntp_timestamp,
            si.rtp_timestamp,
            si.packet_count & 0xFFFFFFFF,
            si.octet_count & 0xFFFFFFFF,
        )
        body += b"".join(bytes(r) for r in self.reports)
        return _header(len(self.reports), RTCP_SR, len(body)) + body

    @classmethod
    def parse(cls, data: bytes, count: int) -> Self:
        """Parse the body (after the 4-byte common header).

        :param data: the body.
        :param count: RC field of the header.
        """
        if len(data) != 24 + 24 * count:
            raise RtpParseError("RTCP sender report length is invalid")
        ssrc, ntp, rtp_ts, pkts, octets = struct.unpack_from("!IQIII", data)
        reports = [RtcpReportBlock.parse(data[24 + 24 * i : 48 + 24 * i]) for i in range(count)]
        return cls(ssrc, RtcpSenderInfo(ntp, rtp_ts, pkts, octets), reports)


@dataclass(slots=True)
class RtcpRrPacket:
    """Receiver report (PT 201)."""

    ssrc: int
    """Reporter SSRC."""
    reports: list[RtcpReportBlock] = field(default_factory=list)
    """Reception report blocks (at most 31)."""

    def __bytes__(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(bytes(r) for r in self.reports)
        return _header(len(self.reports), RTCP_RR, len(body)) + body

    @classmethod
    def parse(cls, data: bytes, count: int) -> Self:
        """Parse the body (after the 4-byte common header).

        :param data: the body.
        :param count: RC field of the header.
        """
        if len(data) != 4 + 24 * count:
            raise RtpParseError("RTCP receiver report length is invalid")
        (ssrc,) = struct.unpack_from("!I", data)
        reports = [RtcpReportBlock.parse(data[4 + 24 * i : 28 + 24 * i]) for i in range(count)]
        return cls(ssrc, reports)


@dataclass(frozen=True, slots=True)
class RtcpSdesChunk:
    """One SDES chunk: a source and its items."""

    ssrc: int
    """Source described."""
    items: tuple[tuple[int, bytes], ...] = ()
    """(item type, value) pairs, e.g. ``((SDES_CNAME, b"hotline@host"),)``."""


@dataclass(slots=True)
class RtcpSdesPacket:
    """Source description (PT 202), RFC 3550 6.5."""

    chunks: list[RtcpSdesChunk] = field(default_factory=list)
    """Chunks (at most 31)."""

    def __bytes__(self) -> bytes:
        body = bytearray()
        for chunk in self.chunks:
            part = bytearray(struct.pack("!I", chunk.ssrc))
            for kind, value in chunk.items:
                if not 1 <= kind <= 255 or len(value) > 255:
                    raise ValueError("RTCP SDES item type or length is invalid")
                part += bytes([kind, len(value)]) + value
            # RFC 3550 6.5: a null item ends the list, then pad to a 32-bit boundary.
            part += b"\x00" * (1 + _pad4(len(part) + 1))
            body += part
        return _header(len(self.chunks), RTCP_SDES, len(body)) + bytes(body)

    @classmethod
    def parse(cls, data: bytes, count: int) -> Self:
        """Parse the body (after the 4-byte common header).

        :param data: the body.
        :param count: SC field of the header.
        """
        pos = 0
        chunks = []
        for _ in range(count):
            if pos + 4 > len(data):
                raise RtpParseError("RTCP SDES source is truncated")
            (ssrc,) = struct.unpack_from("!I", data, pos)
            pos += 4
            items = []
            while True:
                if pos >= len(data):
                    raise RtpParseError("RTCP SDES item is truncated")
                kind = data[pos]
                if kind == SDES_END:
                    pos += 1
                    pos += _pad4(pos)
                    break
                if pos + 2 > len(data) or pos + 2 + data[pos + 1] > len(data):
                    raise RtpParseError("RTCP SDES item is truncated")
                length = data[pos + 1]
                items.append((kind, bytes(data[pos + 2 : pos + 2 + length])))
                pos += 2 + length
            chunks.append(RtcpSdesChunk(ssrc, tuple(items)))
        return cls(chunks)


@dataclass(slots=True)
class RtcpByePacket:
    """Goodbye (PT 203), RFC 3550 6.6."""

    sources: list[int] = field(default_factory=list)
    """SSRCs leaving (at most 31)."""
    reason: bytes = b""
    """Optional reason text."""

    def __bytes__(self) -> bytes:
        body = b"".join(struct.pack("!I", s) for s in self.sources)
        if self.reason:
            if len(self.reason) > 255:
                raise ValueError("RTCP BYE reason is longer than 255 bytes")
            r = bytes([len(self.reason)]) + self.reason
            body += r + b"\x00" * _pad4(len(r))
        return _header(len(self.sources), RTCP_BYE, len(body)) + body

    @classmethod
    def parse(cls, data: bytes, count: int) -> Self:
        """Parse the body (after the 4-byte common header).

        :param data: the body.
        :param count: SC field of the header.
        """
        if len(data) < 4 * count:
            raise RtpParseError("RTCP bye length is invalid")
        sources = list(struct.unpack_from(f"!{count}I", data))
        reason = b""
        pos = 4 * count
        if pos < len(data):
            length = data[pos]
            if pos + 1 + length > len(data):
                raise RtpParseError("RTCP bye reason is truncated")
            reason = bytes(data[pos + 1 : pos + 1 + length])
        return cls(sources, reason)


RtcpPacket = RtcpSrPacket | RtcpRrPacket | RtcpSdesPacket | RtcpByePacket
_PARSERS: dict[
    int, type[RtcpSrPacket] | type[RtcpRrPacket] | type[RtcpSdesPacket] | type[RtcpByePacket]
] = {
    RTCP_SR: RtcpSrPacket,
    RTCP_RR: RtcpRrPacket,
    RTCP_SDES: RtcpSdesPacket,
    RTCP_BYE: RtcpByePacket,
}


def parse_rtcp(data: bytes | bytearray | memoryview) -> list[RtcpPacket]:
    """Parse a compound RTCP packet. Unknown packet types (APP, RTPFB, ...) are skipped.

    Raises :class:`RtpParseError` with an exact message on malformed input.

    :param data: the datagram.
    """
    raw = bytes(data)
    pos = 0
    packets: list[RtcpPacket] = []
    if len(raw) < 4:
        raise RtpParseError("RTCP packet length is less than 4 bytes")
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise RtpParseError("RTCP packet length is less than 4 bytes")
        b0, pt, words = struct.unpack_from("!BBH", raw, pos)
        if b0 >> 6 != 2:
            raise RtpParseError("RTCP packet has invalid version")
        end = pos + 4 + 4 * words
        if end > len(raw):
            raise RtpParseError("RTCP packet is truncated")
        body = raw[pos + 4 : end]
        if b0 & 0x20:
            # RFC 3550 6.4.1: padding, last octet is the count (only in the last packet)
            if not body or body[-1] == 0 or body[-1] > len(body):
                raise RtpParseError("RTCP packet padding length is invalid")
            body = body[: -body[-1]]
        parser = _PARSERS.get(pt)
        if parser is not None:
            packets.append(parser.parse(body, b0 & 0x1F))
        pos = end
    return packets
