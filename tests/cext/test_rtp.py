"""RTP kernels against the pure-Python twin; RtpHeader and RTCP round trips."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import reference_rtp as ref
from hypothesis import given, settings
from hypothesis import strategies as st

from cext import _rtp, rtcp, rtp
from cext.exceptions import RtpParseError

# A PCMU packet as Asterisk sends it: seq 0x1a2b, ts 0x000a0000, ssrc 0x12345678, M=1.
PCMU_PACKET = bytes.fromhex("80801a2b000a000012345678") + b"\xff" * 160


def test_parse_pinned_packet() -> None:
    h = rtp.RtpHeader.parse(PCMU_PACKET)
    assert (h.payload_type, h.marker, h.sequence_number, h.timestamp, h.ssrc) == (
        0,
        True,
        0x1A2B,
        0xA0000,
        0x12345678,
    )
    assert h.payload == b"\xff" * 160 and h.csrc == () and h.extension_profile is None
    assert bytes(h) == PCMU_PACKET


def test_parse_all_features() -> None:
    # V=2 P=1 X=1 CC=2, PT 8, two CSRC, one-word extension, 3 bytes padding
    data = (
        bytes([0xB2, 0x08])
        + struct.pack("!HII", 7, 99, 5)
        + struct.pack("!II", 10, 11)
        + struct.pack("!HH", 0xBEDE, 1)
        + b"\x10\x20\x00\x00"
        + b"PAY"
        + b"\x00\x00\x03"
    )
    h = rtp.RtpHeader.parse(data)
    assert h.csrc == (10, 11) and h.extension_profile == 0xBEDE
    assert h.extension == b"\x10\x20\x00\x00" and h.payload == b"PAY" and h.padding_size == 3
    assert bytes(h) == data
    assert rtp.RtpHeader.parse(memoryview(bytearray(data))) == h


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "RTP packet length is less than 12 bytes"),
        (PCMU_PACKET[:11], "RTP packet length is less than 12 bytes"),
        (b"\x40" + PCMU_PACKET[1:], "RTP packet has invalid version"),
        (b"\x81" + PCMU_PACKET[1:12], "RTP packet has truncated CSRC"),
        (
            b"\x90" + PCMU_PACKET[1:12] + b"\xbe\xde",
            "RTP packet has truncated extension profile / length",
        ),
        (
            b"\x90" + PCMU_PACKET[1:12] + b"\xbe\xde\x00\x02abcd",
            "RTP packet has truncated extension value",
        ),
        (b"\xa0" + PCMU_PACKET[1:12] + b"ab\x00", "RTP packet padding length is invalid"),
        (b"\xa0" + PCMU_PACKET[1:12] + b"ab\x04", "RTP packet padding length is invalid"),
        (
            b"\x80\xc8" + PCMU_PACKET[2:],
            "RTP packet is an RTCP packet (RFC 5761 payload type 72-76)",
        ),
    ],
)
def test_parse_errors(data: bytes, message: str) -> None:
    with pytest.raises(RtpParseError) as exc:
        rtp.RtpHeader.parse(data)
    assert str(exc.value) == message
    assert isinstance(exc.value, ValueError)
    assert ref.parse(data)[0] == message


def test_serialise_errors() -> None:
    with pytest.raises(ValueError, match="^RTP payload type 128 is outside 0..127$"):
        bytes(rtp.RtpHeader(payload_type=128))
    with pytest.raises(ValueError, match="^RTP header extension length must be a multiple of 4$"):
        bytes(rtp.RtpHeader(extension_profile=1, extension=b"abc"))


packet_strategy = st.one_of(
    st.binary(max_size=40),
    st.builds(
        lambda b0, rest, tail: bytes([0x80 | (b0 & 0x3F)]) + rest + tail,
        st.integers(0, 255),
        st.binary(min_size=11, max_size=11),
        st.binary(max_size=120),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(packet_strategy, min_size=1, max_size=20))
def test_parse_batch_matches_reference(datagrams: list[bytes]) -> None:
    batch = rtp.RtpBatch(32, width=100)
    batch.load(datagrams, 0.0)
    good = batch.parse()
    n_ok = 0
    for i, d in enumerate(datagrams):
        st_code = int(batch.status[i])
        if len(d) > 100:
            assert st_code == _rtp.STATUS_LENGTH
            continue
        err, fields = ref.parse(d)
        if err:
            assert rtp.STATUS_MESSAGES[st_code] == err
            continue
        n_ok += 1
        assert st_code == 0
        for name, value in fields.items():
            assert int(getattr(batch, name)[i]) == value, name
        assert batch.payload(i) == rtp.RtpHeader.parse(d).payload
    assert good == n_ok


def test_parse_batch_bad_arrays() -> None:
    b = rtp.RtpBatch(4)
    with pytest.raises(ValueError, match="^RTP batch count 5 exceeds the 4 packet rows$"):
        _rtp.parse_batch(
            b.packets,
            b.lengths,
            b.seq,
            b.ts,
            b.ssrc,
            b.pt,
            b.marker,
            b.payload_offset,
            b.payload_len,
            b.status,
            5,
        )
    with pytest.raises(ValueError, match="^RTP batch arrays must hold at least 4 entries$"):
        _rtp.parse_batch(
            b.packets,
            b.lengths,
            b.seq[:2],
            b.ts,
            b.ssrc,
            b.pt,
            b.marker,
            b.payload_offset,
            b.payload_len,
            b.status,
        )
    b.lengths[:] = -3
    b.count = 4
    assert b.parse() == 0 and (b.status == _rtp.STATUS_LENGTH).all()


def test_build_one_and_batch() -> None:
    out = np.zeros(200, np.uint8)
    payload = np.full(160, 0xFF, np.uint8)
    n = _rtp.build_one(out, 0, True, 0x1A2B, 0xA0000, 0x12345678, payload)
    assert out[:n].tobytes() == PCMU_PACKET
    with pytest.raises(
        ValueError, match="^RTP build buffer holds 100 bytes, the packet needs 172$"
    ):
        _rtp.build_one(out[:100], 0, False, 0, 0, 0, payload)
    with pytest.raises(ValueError, match="^RTP payload type 200 is outside 0..127$"):
        _rtp.build_one(out, 200, False, 0, 0, 0, payload)

    rng = np.random.default_rng(1)
    k = 8
    payloads = rng.integers(0, 256, (k, 160), dtype=np.uint8)
    plen = rng.integers(0, 161, k).astype(np.int32)
    pt = rng.integers(0, 128, k).astype(np.uint8)
    marker = rng.integers(0, 2, k).astype(np.uint8)
    seq = rng.integers(0, 65536, k).astype(np.uint16)
    ts = rng.integers(0, 2**32, k, dtype=np.uint64).astype(np.uint32)
    ssrc = rng.integers(0, 2**32, k, dtype=np.uint64).astype(np.uint32)
    pkts = np.zeros((k, 200), np.uint8)
    lens = np.zeros(k, np.int32)
    assert _rtp.build_batch(payloads, plen, pt, marker, seq, ts, ssrc, pkts, lens) == k
    for i in range(k):
        want = rtp.RtpHeader(
            payload_type=int(pt[i]),
            marker=bool(marker[i]),
            sequence_number=int(seq[i]),
            timestamp=int(ts[i]),
            ssrc=int(ssrc[i]),
            payload=payloads[i, : plen[i]].tobytes(),
        )
        assert pkts[i, : lens[i]].tobytes() == bytes(want)
    plen[3] = 300
    with pytest.raises(ValueError, match="^RTP payload length 300 of row 3 does not fit$"):
        _rtp.build_batch(payloads, plen, pt, marker, seq, ts, ssrc, pkts, lens)


def test_seq_helpers() -> None:
    assert rtp.seq_lt(65535, 0) and rtp.seq_gt(0, 65535) and not rtp.seq_lt(5, 5)
    assert rtp.seq_lt(1, 2) and not rtp.seq_lt(2, 1)
    assert rtp.is_rtcp(b"\x80\xc8") and not rtp.is_rtcp(PCMU_PACKET)


def _run_table(events: list[tuple[int, int, int, float]]) -> tuple[rtp.RtpSourceTable, ref.Source]:
    table = rtp.RtpSourceTable(2)
    n = len(events)
    slot = np.zeros(n, np.int32)
    seq = np.array([e[0] for e in events], np.uint16)
    ts = np.array([e[1] for e in events], np.uint32)
    ssrc = np.array([e[2] for e in events], np.uint32)
    arr = np.array([e[3] for e in events], np.float64)
    status = np.zeros(n, np.int8)
    valid = np.zeros(n, np.uint8)
    good = table.update(slot, seq, ts, ssrc, arr, status, valid)
    src = ref.Source()
    want_valid = [src.receive(*e) for e in events]
    assert valid.tolist() == [int(v) for v in want_valid]
    assert good == sum(want_valid)
    return table, src


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 65535),
    st.integers(0, 2**32 - 1),
    st.lists(
        st.tuples(
            st.sampled_from([1, 1, 1, 1, 2, 0, -1, -3, 5, 40, 3500, 40000, -200]),
            st.floats(0, 80),
            st.sampled_from([7, 7, 7, 7, 7, 8]),
        ),
        min_size=1,
        max_size=200,
    ),
)
def test_source_table_matches_rfc_appendix_a(
    seq0: int, ts0: int, steps: list[tuple[int, float, int]]
) -> None:
    events = []
    seq, ts, t = seq0, ts0, 1000.0
    for dseq, jitter, ssrc in steps:
        seq = (seq + dseq) & 0xFFFF
        ts = (ts + 160 * dseq) & 0xFFFFFFFF
        t += 20 * max(dseq, 0)
        events.append((seq, ts, ssrc, t + jitter))
    table, src = _run_table(events)
    assert table.stats(0) == src.stats()
    assert table.stats(0, True) == src.stats(True)
    assert table.stats(0) == src.stats()


def test_source_statistics_pinned() -> None:
    # 100 packets, every 10th lost, a wrap in the middle, one duplicate, 2-tick jitter
    events = []
    for k in range(100):
        if k % 10 == 9:
            continue
        seq = (65500 + k) & 0xFFFF
        events.append((seq, 160 * k, 42, 20.0 * k + (5.0 if k % 2 else 0.0)))
    events.append(events[-1])
    table, _ = _run_table(events)
    s = rtp.source_stats(table, 0, update_prior=True)
    assert s.ssrc == 42 and not s.in_probation
    assert s.extended_max_seq == 65536 + (65500 + 98 - 65536)
    assert s.expected == 98  # base is the 2nd packet (k=1): probation consumes the first
    assert s.received == 90  # k=1..98 minus 9 lost, plus the duplicate (A.1 counts it)
    assert s.cumulative_lost == 8 and s.fraction_lost == (8 << 8) // 98
    assert 30 <= s.jitter <= 40  # |D| alternates 40 samples (5 ms); J -> 40
    block = rtcp.report_block_from_stats(s)
    assert rtcp.RtcpReportBlock.parse(bytes(block)) == block
    # no new packets: the interval fraction is 0 after update_prior
    assert rtp.source_stats(table, 0).fraction_lost == 0


def test_source_table_errors() -> None:
    with pytest.raises(ValueError, match="^RTP source table capacity must be positive, got 0$"):
        rtp.RtpSourceTable(0)
    t = rtp.RtpSourceTable(1)
    with pytest.raises(IndexError, match=r"^RTP source slot 3 is outside 0..0$"):
        t.stats(3)
    one = np.ones(1)
    with pytest.raises(IndexError, match=r"^RTP source slot 1 is outside 0..0$"):
        t.update(
            np.array([1], np.int32),
            one.astype(np.uint16),
            one.astype(np.uint32),
            one.astype(np.uint32),
            one,
            np.zeros(1, np.int8),
            np.zeros(1, np.uint8),
        )
    assert t.stats(0) == (0, 0, 0, 0, 0, 0, 0, True)


def test_rtcp_round_trip() -> None:
    blocks = [
        rtcp.RtcpReportBlock(1, 25, -5, 70000, 12, 0x12345678, 65536),
        rtcp.RtcpReportBlock(2, 0, 0x7FFFFF, 1, 0),
    ]
    sr = rtcp.RtcpSrPacket(
        0xAABBCCDD, rtcp.RtcpSenderInfo(rtcp.ntp_from_unix(1.5), 160, 10, 1600), blocks
    )
    rr = rtcp.RtcpRrPacket(0x01020304, blocks[:1])
    sdes = rtcp.RtcpSdesPacket(
        [rtcp.RtcpSdesChunk(0xAABBCCDD, ((rtcp.SDES_CNAME, b"hotline@pbx"),))]
    )
    bye = rtcp.RtcpByePacket([0xAABBCCDD], b"call ended")
    compound = bytes(sr) + bytes(sdes) + bytes(bye)
    assert len(compound) % 4 == 0
    assert rtcp.parse_rtcp(compound) == [sr, sdes, bye]
    assert rtcp.parse_rtcp(bytes(rr)) == [rr]
    assert len(bytes(rr)) == 32 and bytes(rr)[:4] == b"\x81\xc9\x00\x07"
    assert sr.sender_info.ntp_timestamp == ((2208988801 << 32) | (1 << 31))
    assert rtcp.middle_ntp(sr.sender_info.ntp_timestamp) == ((2208988801 & 0xFFFF) << 16) | 0x8000
    assert rtcp.dlsr_from_seconds(0.5) == 32768


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x80\xc9", "RTCP packet length is less than 4 bytes"),
        (b"\x40\xc9\x00\x01\x00\x00\x00\x00", "RTCP packet has invalid version"),
        (b"\x81\xc9\x00\x07" + bytes(8), "RTCP packet is truncated"),
        (b"\x81\xc9\x00\x01" + bytes(4), "RTCP receiver report length is invalid"),
        (b"\x80\xc8\x00\x01" + bytes(4), "RTCP sender report length is invalid"),
        (b"\xa0\xc9\x00\x01" + bytes(3) + b"\x09", "RTCP packet padding length is invalid"),
        (b"\x81\xca\x00\x01" + bytes(4), "RTCP SDES item is truncated"),
        (b"\x82\xcb\x00\x01" + bytes(4), "RTCP bye length is invalid"),
    ],
)
def test_rtcp_errors(data: bytes, message: str) -> None:
    with pytest.raises(RtpParseError) as exc:
        rtcp.parse_rtcp(data)
    assert str(exc.value) == message


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_rtcp_fuzz_never_crashes(data: bytes) -> None:
    try:
        rtcp.parse_rtcp(b"\x80\xc9" + data)
    except RtpParseError:
        pass
