"""RFC 4733 telephone-events (DTMF over RTP): sans-IO receiver and sender.

Theory of operation (receiver, RFC 4733 section 2.5.2):

* An event is identified by its RTP timestamp, the instant it began (2.5.1.2); every
  packet of one event, updates and the three redundant end packets alike, carries the
  same timestamp and a growing duration.
* The first packet seen for a new timestamp starts an event, whether or not it has the
  marker bit: the start packet may be lost (2.5.2.1). If it already has the E bit (all
  earlier packets lost) the event is reported at once.
* The first packet with the E bit reports the event; its retransmissions (2.5.1.4) and
  any other packet with that timestamp are then ignored.
* A packet with a newer timestamp while an event is open ends the open event with the
  last duration seen (its end packets were lost). A packet older than the open event
  (serial-number comparison, RFC 3550 style) is late and is dropped.
* Long events (2.5.1.3): a packet without marker, same event code, whose open segment
  is near the 16-bit duration limit and whose timestamp lies within that limit after
  the segment's start continues the event.
* An open event with no packet for ``timeout`` seconds is reported by ``handle_timer``.

Parsing of the 4-byte payload (2.3) is done by the Cython batch kernel
:func:`cext._dtmf.te_parse`; building by :func:`cext._dtmf.te_build`. Time is injected:
``receive(..., now)``, ``get_timer()``, ``handle_timer(now)``, ``next_event()``.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ._dtmf import te_build, te_parse

__all__ = [
    "EndReason",
    "TelephoneEvent",
    "TelephoneEventPacket",
    "TelephoneEventReceiver",
    "TelephoneEventSender",
    "parse_payload",
]

#: RFC 4733 section 3.2: events 0-15 are the DTMF keys.
DTMF_DIGITS = "0123456789*#ABCD"
MAX_DURATION = 0xFFFF
_TS_MOD = 1 << 32


class EndReason(enum.Enum):
    """How the receiver learned that an event ended."""

    END_BIT = "end"
    """A packet with the E bit arrived."""
    SUPERSEDED = "superseded"
    """A newer event started before any end packet arrived."""
    TIMEOUT = "timeout"
    """No packet arrived for the receiver's timeout."""


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One complete telephone-event (one key press)."""

    event: int
    """RFC 4733 event code (0-255)."""
    digit: str
    """Keypad character for codes 0-15, ``""`` otherwise."""
    timestamp: int
    """RTP timestamp of the event's start (its identity)."""
    duration: int
    """Duration in timestamp units (all segments of a long event)."""
    duration_ms: int
    """Duration in milliseconds."""
    volume: int
    """Power level as -dBm0 (0-63) from the last packet."""
    reason: EndReason
    """How the end was learned."""


class TelephoneEventPacket(NamedTuple):
    """One packet the sender wants on the wire, to be wrapped in RTP by the caller."""

    payload: bytes
    """The 4-byte telephone-event payload."""
    marker: bool
    """RTP marker bit (set on the first packet of an event, RFC 4733 2.5.1.2)."""
    timestamp: int
    """RTP timestamp (the event's start, the same for all its packets)."""
    offset_ms: int
    """When to send it, in ms after the event's start."""


def parse_payload(payload: bytes | bytearray | memoryview) -> tuple[int, bool, int, int]:
    """Parse one telephone-event payload: ``(event, end, volume, duration)``.

    :raises ValueError: if the payload is not exactly 4 bytes (RFC 4733 section 2.3).
    """
    data = np.frombuffer(bytes(payload), dtype=np.uint8)
    if len(data) != 4:
        raise ValueError(f"telephone-event payload must be 4 bytes, got {len(data)}")
    ev = np.zeros(1, np.int32)
    end = np.zeros(1, np.uint8)
    vol = np.zeros(1, np.uint8)
    dur = np.zeros(1, np.int32)
    te_parse(data, ev, end, vol, dur)
    return int(ev[0]), bool(end[0]), int(vol[0]), int(dur[0])


def _newer(a: int, b: int) -> bool:
    """RFC 3550 serial-number arithmetic: is timestamp ``a`` after ``b``?"""
    d = (a - b) % _TS_MOD
    return 0 < d < (1 << 31)


class TelephoneEventReceiver:
    """Turns a stream of telephone-event packets into one :class:`TelephoneEvent` each.

    :param clock_rate: RTP clock rate of the telephone-event payload type.
    :param timeout: seconds without packets after which an open event is reported.
    """

    def __init__(self, clock_rate: int = 8000, timeout: float = 0.5) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock_rate must be > 0, got {clock_rate}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        self._rate = clock_rate
        self._timeout = timeout
        self._events: deque[TelephoneEvent] = deque()
        self._open = False  # an event is in progress
        self._ts: int | None = None  # timestamp of the current (open or last) event
        self._seg_ts = 0  # timestamp of the current segment of a long event
        self._base = 0  # duration of earlier segments of a long event
        self._event = 0
        self._dur = 0
        self._vol = 0
        self._last_rx = 0.0
        self._scratch = (np.zeros(1, np.int32), np.zeros(1, np.uint8),
                         np.zeros(1, np.uint8), np.zeros(1, np.int32))

    def receive(self, payload: bytes | bytearray | memoryview, timestamp: int, marker: bool,
                now: float) -> None:
        """Feed one RTP packet of the telephone-event payload type.

        :param payload: the RTP payload (4 bytes).
        :param timestamp: the packet's RTP timestamp.
        :param marker: the packet's RTP marker bit.
        :param now: the current time in seconds.
        :raises ValueError: if the payload is not 4 bytes.
        """
        data = np.frombuffer(payload, dtype=np.uint8)
        if len(data) != 4:
            raise ValueError(f"telephone-event payload must be 4 bytes, got {len(data)}")
        ev, end, vol, dur = self._scratch
        te_parse(data, ev, end, vol, dur)
        self._on_packet(int(ev[0]), bool(end[0]), int(vol[0]), int(dur[0]),
                        timestamp % _TS_MOD, marker, now)

    def _on_packet(self, event: int, end: bool, volume: int, duration: int, ts: int,
                   marker: bool, now: float) -> None:
        if self._ts is not None:
            if ts == self._seg_ts or ts == self._ts:
                if not self._open or event != self._event:
                    return  # RFC 4733 2.5.1.4: redundant end packet (or bogus code)
                self._touch(volume, duration, now)
                if end:
                    self._close(EndReason.END_BIT)
                return
            if not _newer(ts, self._seg_ts):
                return  # late packet of an earlier event
            if self._open:
                gap = (ts - self._seg_ts) % _TS_MOD
                if (not marker and event == self._event and self._dur >= MAX_DURATION // 2
                        and self._dur <= gap <= MAX_DURATION):
                    # RFC 4733 2.5.1.3: next segment of a long-duration event (the
                    # previous segment was near the 16-bit duration limit).
                    self._base += gap
                    self._seg_ts = ts
                    self._dur = 0
                    self._touch(volume, duration, now)
                    if end:
                        self._close(EndReason.END_BIT)
                    return
                self._close(EndReason.SUPERSEDED)
        # RFC 4733 2.5.2.1: a new timestamp starts a new event, marker or not.
        self._ts = ts
        self._seg_ts = ts
        self._base = 0
        self._event = event
        self._dur = 0
        self._open = True
        self._touch(volume, duration, now)
        if end:
            self._close(EndReason.END_BIT)

    def _touch(self, volume: int, duration: int, now: float) -> None:
        self._dur = max(self._dur, duration)
        self._vol = volume
        self._last_rx = now

    def _close(self, reason: EndReason) -> None:
        total = self._base + self._dur
        assert self._ts is not None
        self._events.append(TelephoneEvent(
            event=self._event,
            digit=DTMF_DIGITS[self._event] if self._event < 16 else "",
            timestamp=self._ts,
            duration=total,
            duration_ms=total * 1000 // self._rate,
            volume=self._vol,
            reason=reason,
        ))
        self._open = False

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` should be called next, or None."""
        return self._last_rx + self._timeout if self._open else None

    def handle_timer(self, now: float) -> None:
        """Report an open event whose packets stopped arriving.

        :param now: the current time in seconds.
        """
        if self._open and now >= self._last_rx + self._timeout:
            self._close(EndReason.TIMEOUT)

    def next_event(self) -> TelephoneEvent | None:
        """The next completed event, or None."""
        return self._events.popleft() if self._events else None


class TelephoneEventSender:
    """Produces the packets of one event (RFC 4733 section 2.5.1).

    The first packet has the marker bit; updates follow every ``interval_ms`` with the
    duration so far; then the final packet, with the E bit and the full duration, is sent
    ``end_repeats`` times (2.5.1.4), ``interval_ms`` apart. All carry the event's start
    timestamp. Events longer than 0xFFFF timestamp units are split into segments with
    new timestamps and no marker (2.5.1.3).

    :param clock_rate: RTP clock rate of the telephone-event payload type.
    :param interval_ms: update interval (RFC 4733 suggests 50 ms, or the audio packet
        interval).
    :param volume: power level as -dBm0 (0-63) put in every packet.
    :param end_repeats: how many times the end packet is sent.
    """

    def __init__(self, clock_rate: int = 8000, interval_ms: int = 50, volume: int = 10,
                 end_repeats: int = 3) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock_rate must be > 0, got {clock_rate}")
        if not 1 <= interval_ms <= 1000:
            raise ValueError(f"interval_ms must be between 1 and 1000, got {interval_ms}")
        if not 0 <= volume <= 63:
            raise ValueError(f"volume must be between 0 and 63, got {volume}")
        if not 1 <= end_repeats <= 10:
            raise ValueError(f"end_repeats must be between 1 and 10, got {end_repeats}")
        self._rate = clock_rate
        self._interval = interval_ms
        self._volume = volume
        self._repeats = end_repeats

    def packets(self, digit: str | int, duration_ms: int,
                timestamp: int) -> list[TelephoneEventPacket]:
        """All packets of one event, in sending order.

        :param digit: a keypad character or an event code 0-255.
        :param duration_ms: how long the key is pressed (>= 1 ms).
        :param timestamp: RTP timestamp of the event's start.
        :raises ValueError: on an unknown digit, a bad code or a non-positive duration.
        """
        if isinstance(digit, str):
            code = DTMF_DIGITS.find(digit.upper()) if len(digit) == 1 else -1
            if code < 0:
                raise ValueError(f"not a DTMF digit: {digit!r}")
        else:
            code = int(digit)
            if not 0 <= code <= 255:
                raise ValueError(f"event code {code} out of range 0..255")
        if duration_ms < 1:
            raise ValueError(f"duration_ms must be >= 1, got {duration_ms}")
        total = duration_ms * self._rate // 1000
        step = self._interval * self._rate // 1000
        offsets: list[int] = []
        stamps: list[int] = []
        durs: list[int] = []
        ends: list[int] = []
        markers: list[bool] = []
        seg_ts = timestamp % _TS_MOD
        seg_start = 0  # elapsed units at which the current segment began
        elapsed = 0
        first = True
        while elapsed < total:
            if elapsed - seg_start > MAX_DURATION:
                seg_start += MAX_DURATION
                seg_ts = (seg_ts + MAX_DURATION) % _TS_MOD
            offsets.append(elapsed * 1000 // self._rate)
            stamps.append(seg_ts)
            durs.append(min(elapsed - seg_start, MAX_DURATION))
            ends.append(0)
            markers.append(first)
            first = False
            elapsed += step
        if total - seg_start > MAX_DURATION:
            seg_start += MAX_DURATION
            seg_ts = (seg_ts + MAX_DURATION) % _TS_MOD
        for k in range(self._repeats):
            offsets.append(duration_ms + k * self._interval)
            stamps.append(seg_ts)
            durs.append(total - seg_start)
            ends.append(1)
            markers.append(False)
        n = len(durs)
        out = np.zeros(4 * n, dtype=np.uint8)
        te_build(np.full(n, code, np.int32), np.array(ends, np.uint8),
                 np.full(n, self._volume, np.uint8), np.array(durs, np.int32), out)
        raw = out.tobytes()
        return [TelephoneEventPacket(raw[4 * i:4 * i + 4], markers[i], stamps[i], offsets[i])
                for i in range(n)]
