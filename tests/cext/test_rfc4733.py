"""RFC 4733 telephone-event payload batches, receiver state machine and sender."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cext import _dtmf
from cext.rfc4733 import (
    EndReason,
    TelephoneEventReceiver,
    TelephoneEventSender,
    parse_payload,
)


def py_parse(b: bytes) -> tuple[int, int, int, int]:
    """RFC 4733 section 2.3 by hand: event, E, volume, duration."""
    event, flags, duration = struct.unpack("!BBH", b)
    return event, flags >> 7, flags & 0x3F, duration


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=40).map(lambda b: b[: len(b) // 4 * 4]))
def test_parse_batch_matches_struct(data: bytes) -> None:
    n = len(data) // 4
    ev, end, vol, dur = (np.zeros(n, np.int32), np.zeros(n, np.uint8), np.zeros(n, np.uint8),
                         np.zeros(n, np.int32))
    assert _dtmf.te_parse(np.frombuffer(data, np.uint8), ev, end, vol, dur) == n
    for i in range(n):
        assert (ev[i], end[i], vol[i], dur[i]) == py_parse(data[4 * i:4 * i + 4])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 1), st.integers(0, 63),
                          st.integers(0, 65535)), max_size=10))
def test_build_batch_matches_struct(items: list[tuple[int, int, int, int]]) -> None:
    n = len(items)
    out = np.zeros(4 * n, np.uint8)
    cols = list(zip(*items, strict=True)) if items else [[], [], [], []]
    written = _dtmf.te_build(np.array(cols[0], np.int32), np.array(cols[1], np.uint8),
                             np.array(cols[2], np.uint8), np.array(cols[3], np.int32), out)
    assert written == 4 * n
    want = b"".join(struct.pack("!BBH", e, (x << 7) | v, d) for e, x, v, d in items)
    assert out.tobytes() == want


def test_reserved_bit_is_ignored() -> None:
    assert parse_payload(b"\x05\x4a\x01\x90") == (5, False, 10, 400)
    assert parse_payload(b"\x0b\x8a\xff\xff") == (11, True, 10, 65535)


def test_batch_errors() -> None:
    z32, z8 = np.zeros(2, np.int32), np.zeros(2, np.uint8)
    with pytest.raises(ValueError, match=r"^telephone-event data must be a multiple of 4 "
                                         r"bytes, got 5$"):
        _dtmf.te_parse(np.zeros(5, np.uint8), z32, z8, z8, z32)
    with pytest.raises(ValueError, match=r"^output arrays are shorter than the 3 payloads$"):
        _dtmf.te_parse(np.zeros(12, np.uint8), z32, z8, z8, z32)
    with pytest.raises(ValueError, match=r"^telephone-event 1 out of range: event 5 \(0-255\), "
                                         r"end 0 \(0-1\), volume 64 \(0-63\), "
                                         r"duration 10 \(0-65535\)$"):
        _dtmf.te_build(np.array([1, 5], np.int32), np.array([0, 0], np.uint8),
                       np.array([0, 64], np.uint8), np.array([10, 10], np.int32),
                       np.zeros(8, np.uint8))
    with pytest.raises(ValueError, match=r"^telephone-event payload must be 4 bytes, got 3$"):
        parse_payload(b"abc")
    with pytest.raises(ValueError, match=r"^telephone-event payload must be 4 bytes, got 8$"):
        TelephoneEventReceiver().receive(b"\x00" * 8, 0, True, 0.0)


def pkt(event: int, end: bool, duration: int, volume: int = 10) -> bytes:
    return struct.pack("!BBH", event, (int(end) << 7) | volume, duration)


def drain(rx: TelephoneEventReceiver) -> list:
    out = []
    while (ev := rx.next_event()) is not None:
        out.append(ev)
    return out


def test_sender_sequence() -> None:
    tx = TelephoneEventSender(interval_ms=50)
    pk = tx.packets("5", 120, 1000)
    assert [p.marker for p in pk] == [True, False, False, False, False, False]
    assert {p.timestamp for p in pk} == {1000}
    assert [parse_payload(p.payload) for p in pk] == [
        (5, False, 10, 0), (5, False, 10, 400), (5, False, 10, 800),
        (5, True, 10, 960), (5, True, 10, 960), (5, True, 10, 960)]
    assert [p.offset_ms for p in pk] == [0, 50, 100, 120, 170, 220]
    pk20 = TelephoneEventSender(interval_ms=20, volume=7).packets("#", 100, 5)
    assert len(pk20) == 5 + 3
    assert parse_payload(pk20[-1].payload) == (11, True, 7, 800)


def test_receiver_normal_and_redundant_ends() -> None:
    rx = TelephoneEventReceiver()
    for p in TelephoneEventSender().packets("7", 200, 160):
        rx.receive(p.payload, p.timestamp, p.marker, p.offset_ms / 1000)
    events = drain(rx)
    assert len(events) == 1
    ev = events[0]
    assert (ev.digit, ev.event, ev.duration, ev.duration_ms, ev.timestamp, ev.reason) == \
        ("7", 7, 1600, 200, 160, EndReason.END_BIT)
    assert rx.get_timer() is None


def test_receiver_lost_start_and_only_end() -> None:
    rx = TelephoneEventReceiver()
    rx.receive(pkt(3, False, 400), 8000, False, 0.0)  # start packet (marker) lost
    rx.receive(pkt(3, True, 800), 8000, False, 0.05)
    rx.receive(pkt(9, True, 640), 16000, False, 0.5)  # everything but an end lost
    rx.receive(pkt(9, True, 640), 16000, False, 0.52)
    assert [(e.digit, e.duration) for e in drain(rx)] == [("3", 800), ("9", 640)]


def test_receiver_superseded_late_and_timeout() -> None:
    rx = TelephoneEventReceiver(timeout=0.5)
    rx.receive(pkt(1, False, 160), 1000, True, 0.0)
    rx.receive(pkt(1, False, 480), 1000, False, 0.05)
    rx.receive(pkt(2, False, 160), 5000, True, 0.5)  # ends of "1" all lost
    rx.receive(pkt(1, True, 800), 1000, False, 0.51)  # late end of "1": dropped
    assert [(e.digit, e.duration, e.reason) for e in drain(rx)] == \
        [("1", 480, EndReason.SUPERSEDED)]
    assert rx.get_timer() == pytest.approx(1.0)
    rx.handle_timer(0.9)
    assert drain(rx) == []
    rx.handle_timer(1.0)
    assert [(e.digit, e.duration, e.reason) for e in drain(rx)] == \
        [("2", 160, EndReason.TIMEOUT)]
    rx.receive(pkt(2, True, 800), 5000, False, 1.1)  # its end after the timeout
    assert drain(rx) == []


def test_receiver_timestamp_wraps() -> None:
    rx = TelephoneEventReceiver()
    ts = 2**32 - 100
    for p in TelephoneEventSender().packets("0", 100, ts):
        rx.receive(p.payload, p.timestamp, p.marker, 0.0)
    for p in TelephoneEventSender().packets("1", 100, 700):
        rx.receive(p.payload, p.timestamp, p.marker, 1.0)
    assert [(e.digit, e.timestamp) for e in drain(rx)] == [("0", ts), ("1", 700)]


def test_long_event_segments() -> None:
    tx = TelephoneEventSender(interval_ms=50)
    pk = tx.packets("#", 20000, 123)
    stamps = sorted({p.timestamp for p in pk})
    assert stamps == [123, 123 + 65535, 123 + 2 * 65535]
    assert sum(p.marker for p in pk) == 1
    rx = TelephoneEventReceiver()
    for p in pk:
        rx.receive(p.payload, p.timestamp, p.marker, p.offset_ms / 1000)
    events = drain(rx)
    assert [(e.digit, e.duration, e.timestamp) for e in events] == [("#", 160000, 123)]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("0123456789*#ABCD"), st.integers(40, 400)),
                min_size=1, max_size=6),
       st.lists(st.booleans(), min_size=64, max_size=64), st.randoms())
def test_exactly_one_digit_per_event_under_loss(keys: list[tuple[str, int]],
                                                 keep: list[bool], rnd) -> None:
    tx = TelephoneEventSender(interval_ms=20)
    rx = TelephoneEventReceiver()
    ts = rnd.randrange(2**32)
    now = 0.0
    sent = []
    i = 0
    for digit, ms in keys:
        pk = tx.packets(digit, ms, ts)
        survivors = []
        for p in pk:
            if keep[i % len(keep)]:
                survivors.append(p)
            i += 1
        if not survivors:
            survivors = [pk[-1]]
        # mild reordering inside an event, duplicates of the end
        if len(survivors) > 2 and rnd.random() < 0.5:
            survivors[0], survivors[1] = survivors[1], survivors[0]
        survivors.append(survivors[-1])
        for p in survivors:
            rx.receive(p.payload, p.timestamp, p.marker, now + p.offset_ms / 1000)
        sent.append((digit, ms * 8, any(parse_payload(p.payload)[1] for p in survivors)))
        now += ms / 1000 + 0.2
        ts = (ts + (ms + 200) * 8) % 2**32
    rx.handle_timer(now + 10)
    events = drain(rx)
    assert [e.digit for e in events] == [d for d, _, _ in sent]
    for e, (_, dur, got_end) in zip(events, sent, strict=True):
        assert e.duration <= dur
        if got_end:
            assert e.duration == dur


def test_sender_and_receiver_argument_errors() -> None:
    with pytest.raises(ValueError, match=r"^not a DTMF digit: 'x'$"):
        TelephoneEventSender().packets("x", 100, 0)
    with pytest.raises(ValueError, match=r"^duration_ms must be >= 1, got 0$"):
        TelephoneEventSender().packets("1", 0, 0)
    with pytest.raises(ValueError, match=r"^volume must be between 0 and 63, got 64$"):
        TelephoneEventSender(volume=64)
    with pytest.raises(ValueError, match=r"^timeout must be > 0, got 0$"):
        TelephoneEventReceiver(timeout=0)
