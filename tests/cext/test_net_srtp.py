"""SRTP slots of cext.net.NetIO and the tick kernel's SRTP send (WebRTC legs in C).

The peer side is plain pylibsrtp (the same library aiortc uses), on loopback sockets:
what the kernel sends must unprotect there to the RTP the kernel built, and what the
peer protects must come out of ``poll`` as the plain RTP it sent; STUN, DTLS and SRTCP
datagrams go to ``take_foreign`` untouched; a forged packet is dropped and counted."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
from pylibsrtp import Policy, Session

from cext.jitter import JitterBuffer
from cext.net import NetIO, RecvBatch, ip_to_be, monotonic_ms, set_srtp_functions
from cext.tick import TickKernel
from media.native_srtp import session_pointer, srtp_functions

FRAME = 160
KEY_A = bytes(range(30))           # AES128_CM_SHA1_80: 16-byte key + 14-byte salt
KEY_B = bytes(range(100, 130))


def _policy(key: bytes, outbound: bool) -> Policy:
    return Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND if outbound
                  else Policy.SSRC_ANY_INBOUND,
                  srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80)


def _rtp(seq: int, ts: int, ssrc: int = 0x1234, pt: int = 0, fill: int = 0x55) -> bytes:
    return (bytes([0x80, pt]) + seq.to_bytes(2, "big") + ts.to_bytes(4, "big")
            + ssrc.to_bytes(4, "big") + bytes([fill]) * FRAME)


def _udp(host: str = "127.0.0.1", timeout: float | None = None) -> socket.socket:
    """A bound UDP socket: non-blocking (ours, for NetIO) or with a timeout (a peer)."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    if timeout is None:
        s.setblocking(False)
    else:
        s.settimeout(timeout)
    return s


def _sessions() -> tuple[Session, Session, Session, Session]:
    """Our (tx, rx) and the peer's (tx, rx): KEY_A peer -> us, KEY_B us -> peer."""
    return (Session(_policy(KEY_B, outbound=True)), Session(_policy(KEY_A, outbound=False)),
            Session(_policy(KEY_A, outbound=True)), Session(_policy(KEY_B, outbound=False)))


@pytest.fixture()
def pair():
    set_srtp_functions(*srtp_functions())
    ours, peer = _udp(), _udp(timeout=2.0)
    yield ours, peer
    ours.close()
    peer.close()


def _poll_all(net: NetIO, rb: RecvBatch, want: int) -> int:
    n = 0
    deadline = monotonic_ms() + 1000
    while n < want and monotonic_ms() < deadline:
        n = rb.poll(net, monotonic_ms() + 20, n)
    return n


def test_srtp_slot_receives_plain_rtp_and_holds_the_rest(pair) -> None:
    ours, peer = pair
    net = NetIO(4)
    _, rx, peer_tx, _ = _sessions()
    net.add(2, ours.fileno())
    net.latch[2] = 1
    net.set_srtp(2, 0, session_pointer(rx))
    dest = ours.getsockname()
    stun = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + os.urandom(12)
    dtls = b"\x16\xfe\xfd" + os.urandom(40)
    rtcp = b"\x80\xc8\x00\x06" + os.urandom(40)  # SR (PT 200): never unprotected here
    plain = [_rtp(100 + i, 1000 + 160 * i, fill=i) for i in range(3)]
    forged = bytearray(peer_tx.protect(_rtp(200, 99)))
    forged[20] ^= 1
    for d in (stun, peer_tx.protect(plain[0]), dtls, bytes(forged),
              peer_tx.protect(plain[1]), rtcp, peer_tx.protect(plain[2])):
        peer.sendto(d, dest)
    rb = RecvBatch(16)
    n = _poll_all(net, rb, 3)
    assert n == 3
    for i in range(3):
        assert rb.packets[i, :rb.lengths[i]].tobytes() == plain[i]
        assert rb.slots[i] == 2
    assert int(net.srtp_errors[2]) == 1
    assert int(net.rx_packets[2]) == 3
    assert net.foreign_count == 3
    held = net.take_foreign()
    assert [d for _, d, _, _ in held] == [stun, dtls, rtcp]
    assert all(s == 2 and host == "127.0.0.1" and port == peer.getsockname()[1]
               for s, _, host, port in held)
    assert net.foreign_count == 0 and net.take_foreign() == []
    # latched on to the authenticated source
    assert net.remote_addr(2) == ("127.0.0.1", peer.getsockname()[1])


def test_removed_slot_hands_nothing_to_python(pair) -> None:
    ours, peer = pair
    net = NetIO(2)
    rx = Session(_policy(KEY_A, outbound=False))
    net.add(0, ours.fileno())
    net.set_srtp(0, 0, session_pointer(rx))
    peer.sendto(b"\x00\x01\x00\x00" + os.urandom(16), ours.getsockname())
    rb = RecvBatch(4)
    deadline = monotonic_ms() + 1000
    while net.foreign_count == 0 and monotonic_ms() < deadline:
        rb.poll(net, monotonic_ms() + 20)
    assert net.foreign_count == 1
    net.remove(0)
    assert net.take_foreign() == []


def test_tick_kernel_sends_srtp_the_peer_can_read(pair) -> None:
    ours, peer = pair
    net = NetIO(2)
    tx, _, _, peer_rx = _sessions()
    net.add(1, ours.fileno())
    host, port = peer.getsockname()
    net.set_remote(1, ip_to_be(host), port)
    net.send_enabled[1] = 1
    net.out_ssrc[1] = 0xCAFE
    net.out_seq[1] = 65535
    net.out_ts[1] = 7
    net.set_srtp(1, session_pointer(tx), 0)
    inp = np.zeros((2, FRAME), np.int16)
    out = np.zeros((2, FRAME), np.int16)
    k = TickKernel(net, inp, out, RecvBatch(4), RecvBatch(4))
    k.set_endpoint(1, JitterBuffer(), receives=False)
    k.set_sender(1, True, 0, 0, True)
    got = []
    for t in range(3):
        k.run(t % 2, 0, monotonic_ms(), True, True)
        assert k.n_sent == 1
        data = peer.recv(2048)
        assert len(data) == 172 + 10  # HMAC-SHA1-80 tag
        assert data[:12] == k.packets[0, :12].tobytes()  # the header is not encrypted
        assert data[12:172] != b"\xff" * FRAME          # the payload is
        plain = peer_rx.unprotect(data)
        assert plain[12:] == b"\xff" * FRAME            # mu-law silence, as mixed
        got.append(plain)
    seqs = [int.from_bytes(p[2:4], "big") for p in got]
    assert seqs == [65535, 0, 1]
    assert {int.from_bytes(p[8:12], "big") for p in got} == {0xCAFE}


def test_set_srtp_needs_the_functions() -> None:
    set_srtp_functions(0, 0)
    try:
        with pytest.raises(ValueError, match="set_srtp_functions"):
            NetIO(1).set_srtp(0, 1, 1)
    finally:
        set_srtp_functions(*srtp_functions())


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_srtp_slot_over_ipv6() -> None:
    """Browsers often pick an IPv6 ICE pair: receive, latch, send and hold all work."""
    set_srtp_functions(*srtp_functions())
    try:
        ours = _udp("::1")
    except OSError:
        pytest.skip("no ::1")
    peer = _udp("::1", timeout=2.0)
    try:
        net = NetIO(1)
        tx, rx, peer_tx, peer_rx = _sessions()
        net.add(0, ours.fileno())
        net.latch[0] = 1
        net.send_enabled[0] = 1
        net.set_remote6(0, socket.inet_pton(socket.AF_INET6, "::1"), 9)  # wrong port
        net.set_srtp(0, session_pointer(tx), session_pointer(rx))
        plain = _rtp(7, 1234)
        stun = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + os.urandom(12)
        peer.sendto(peer_tx.protect(plain), ours.getsockname()[:2])
        peer.sendto(stun, ours.getsockname()[:2])
        rb = RecvBatch(4)
        assert _poll_all(net, rb, 1) == 1
        assert rb.packets[0, :rb.lengths[0]].tobytes() == plain
        assert rb.src_ip[0] == 0 and rb.src_port[0] == peer.getsockname()[1]
        assert net.remote_addr(0) == ("::1", peer.getsockname()[1])
        deadline = monotonic_ms() + 1000
        while net.foreign_count == 0 and monotonic_ms() < deadline:
            rb.poll(net, monotonic_ms() + 20)
        assert net.take_foreign() == [(0, stun, "::1", peer.getsockname()[1])]
        inp = np.zeros((1, FRAME), np.int16)
        out = np.zeros((1, FRAME), np.int16)
        k = TickKernel(net, inp, out, RecvBatch(4), RecvBatch(4))
        k.set_endpoint(0, JitterBuffer(), receives=False)
        k.set_sender(0, True, 0, 0, True)
        k.run(0, 0, monotonic_ms(), True, True)
        assert k.n_sent == 1
        assert peer_rx.unprotect(peer.recv(2048))[12:] == b"\xff" * FRAME
    finally:
        ours.close()
        peer.close()


def test_send_srtp_protects_rows_in_place(pair) -> None:
    ours, peer = pair
    net = NetIO(2)
    tx = Session(_policy(KEY_B, outbound=True))
    peer_rx = Session(_policy(KEY_B, outbound=False))
    other = _udp()
    net.add(0, ours.fileno())
    net.add(1, other.fileno())
    host, port = peer.getsockname()
    for slot in (0, 1):
        net.set_remote(slot, ip_to_be(host), port)
        net.send_enabled[slot] = 1
    net.set_srtp(0, session_pointer(tx), 0)  # slot 1 stays plain RTP
    plain = [_rtp(1, 160, fill=1), _rtp(2, 320, fill=2), _rtp(3, 480, fill=3)]
    rows = np.zeros((3, 172 + 148), np.uint8)
    for i, p in enumerate(plain):
        rows[i, :len(p)] = np.frombuffer(p, np.uint8)
    lengths = np.full(3, 172, np.int32)
    assert net.send_srtp(rows, lengths, np.array([0, 1, 0], np.int32), 3) == 3
    assert lengths.tolist() == [182, 172, 182]
    got = [peer.recv(2048) for _ in range(3)]
    assert peer_rx.unprotect(got[0]) == plain[0]
    assert got[1] == plain[1]
    assert peer_rx.unprotect(got[2]) == plain[2]
    narrow = np.zeros((1, 180), np.uint8)  # no room for the tag: not sent
    narrow[0, :172] = np.frombuffer(plain[0], np.uint8)
    assert net.send_srtp(narrow, np.full(1, 172, np.int32), np.zeros(1, np.int32), 1) == 0
    assert int(net.srtp_errors[0]) == 1
    other.close()


def test_relay_between_srtp_and_plain_slots_drops_header_extensions(pair) -> None:
    """A two-party bridge of a WebRTC leg and an RTP leg is relayed in C both ways:
    unprotected on the way in, protected on the way out, the sender's RTP header
    extensions (RFC 8285: they belong to their hop) removed."""
    ours, peer = pair
    trunk, far = _udp(), _udp(timeout=2.0)
    try:
        net = NetIO(2)
        tx, rx, peer_tx, peer_rx = _sessions()
        net.add(0, ours.fileno())   # the browser's leg
        net.add(1, trunk.fileno())  # the trunk's leg
        net.set_srtp(0, session_pointer(tx), session_pointer(rx))
        for slot, sock in ((0, peer), (1, far)):
            host, port = sock.getsockname()
            net.set_remote(slot, ip_to_be(host), port)
            net.send_enabled[slot] = 1
        net.relay_to[0], net.relay_to[1] = 1, 0
        net.audio_pt[:] = 0
        net.out_pt[:] = 0
        net.out_ssrc[0], net.out_ssrc[1] = 0xB0B, 0x7777
        # browser -> trunk: one-byte header extension block (0xBEDE, 1 word)
        ext = b"\xbe\xde\x00\x01" + b"\x10\xaa\x00\x00"
        body = bytes([0x55]) * FRAME
        with_ext = bytes([0x90, 0]) + (5).to_bytes(2, "big") + (800).to_bytes(4, "big") \
            + (0x1234).to_bytes(4, "big") + ext + body
        peer.sendto(peer_tx.protect(with_ext), ours.getsockname())
        # trunk -> browser: plain RTP
        far.sendto(_rtp(9, 4000, ssrc=0x4242, fill=0x66), trunk.getsockname())
        rb = RecvBatch(8)
        assert _poll_all(net, rb, 2) == 2
        got = far.recv(2048)
        assert got[0] == 0x80 and len(got) == 12 + FRAME and got[12:] == body
        assert int.from_bytes(got[8:12], "big") == 0x7777
        to_browser = peer_rx.unprotect(peer.recv(2048))
        assert to_browser[12:] == bytes([0x66]) * FRAME
        assert int.from_bytes(to_browser[8:12], "big") == 0xB0B
        assert int(net.relayed[0]) == 1 and int(net.relayed[1]) == 1
    finally:
        trunk.close()
        far.close()
