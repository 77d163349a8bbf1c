"""Pure-Python twins of the RTP kernels: header parse (RFC 3550 5.1) and the
Appendix A.1 / A.8 receiver algorithms, transcribed from the RFC text."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2


def parse(data: bytes) -> tuple[str, dict[str, int]]:
    """Return (error message or "", fields)."""
    if len(data) < 12:
        return "RTP packet length is less than 12 bytes", {}
    b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
    if b0 >> 6 != 2:
        return "RTP packet has invalid version", {}
    marker, pt = b1 >> 7, b1 & 0x7F
    if marker and 72 <= pt <= 76:
        return "RTP packet is an RTCP packet (RFC 5761 payload type 72-76)", {}
    cc = b0 & 0x0F
    pos = 12 + 4 * cc
    if pos > len(data):
        return "RTP packet has truncated CSRC", {}
    if b0 & 0x10:
        if pos + 4 > len(data):
            return "RTP packet has truncated extension profile / length", {}
        _, words = struct.unpack_from("!HH", data, pos)
        pos += 4 + 4 * words
        if pos > len(data):
            return "RTP packet has truncated extension value", {}
    end = len(data)
    if b0 & 0x20:
        pad = data[-1]
        if pad == 0 or pad > len(data) - pos:
            return "RTP packet padding length is invalid", {}
        end -= pad
    return "", dict(
        seq=seq, ts=ts, ssrc=ssrc, pt=pt, marker=marker, payload_offset=pos, payload_len=end - pos
    )


@dataclass
class Source:
    """RFC 3550 A.1 ``source`` structure plus the A.8 jitter fields."""

    clock_rate: int = 8000
    ssrc: int = -1
    max_seq: int = 0
    cycles: int = 0
    base_seq: int = 0
    bad_seq: int = 0
    probation: int = 0
    received: int = 0
    expected_prior: int = 0
    received_prior: int = 0
    transit: int | None = None
    jitter: float = 0.0

    def init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0
        self.transit = None

    def update_seq(self, seq: int) -> bool:
        udelta = (seq - self.max_seq) % RTP_SEQ_MOD
        if self.probation:
            if seq == (self.max_seq + 1) % RTP_SEQ_MOD:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self.init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        elif udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                self.init_seq(seq)
            else:
                self.bad_seq = (seq + 1) & (RTP_SEQ_MOD - 1)
                return False
        self.received += 1
        return True

    def receive(self, seq: int, ts: int, ssrc: int, arrival_ms: float) -> bool:
        if ssrc != self.ssrc:
            self.ssrc = ssrc
            self.init_seq(seq)
            self.jitter = 0.0
            self.max_seq = (seq - 1) % RTP_SEQ_MOD
            self.probation = MIN_SEQUENTIAL
        if not self.update_seq(seq):
            return False
        arrival = math.floor(arrival_ms * self.clock_rate / 1000.0)
        transit = (arrival - ts) % (1 << 32)
        if transit >= 1 << 31:
            transit -= 1 << 32
        if self.transit is not None:
            self.jitter += (abs(transit - self.transit) - self.jitter) / 16.0
        self.transit = transit
        return True

    def stats(self, update_prior: bool = False) -> tuple[int, ...]:
        extended_max = self.cycles + self.max_seq
        expected = extended_max - self.base_seq + 1
        lost = max(-0x800000, min(0x7FFFFF, expected - self.received))
        expected_interval = expected - self.expected_prior
        lost_interval = expected_interval - (self.received - self.received_prior)
        if expected_interval == 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        if update_prior:
            self.expected_prior = expected
            self.received_prior = self.received
        return (
            self.ssrc,
            extended_max & 0xFFFFFFFF,
            expected,
            self.received,
            lost,
            fraction,
            int(self.jitter),
            self.probation != 0,
        )
