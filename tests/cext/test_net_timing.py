"""Arrival times of cext.net.NetIO: read time by default, the kernel's receive time with
``kernel_timestamps`` (what the media_load generator uses so that its own wake-up delay is
not counted as the server's latency)."""

from __future__ import annotations

import socket
import time

import numpy as np

from cext.net import NetIO, RecvBatch, ip_to_be, monotonic_ms


def _pair(stamps: bool) -> tuple[NetIO, socket.socket, socket.socket]:
    net = NetIO(1)
    net.kernel_timestamps = stamps
    ours = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ours.bind(("127.0.0.1", 0))
    ours.setblocking(False)
    net.add(0, ours.fileno())
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return net, ours, peer


def _sent_then_read_late(stamps: bool) -> tuple[float, float, float, bytes]:
    """Send one datagram, read it 150 ms later: (sent, arrival, read time, payload)."""
    net, ours, peer = _pair(stamps)
    rb = RecvBatch(8)
    try:
        # Linux turns receive stamping on for the whole stack from a work queue after the
        # first socket asks: until then a datagram is stamped when read. Let it settle.
        time.sleep(0.2)
        sent = monotonic_ms()
        peer.sendto(b"\x80\x00" + bytes(170), ours.getsockname())
        time.sleep(0.15)
        n = rb.poll(net, monotonic_ms() + 50.0)
        read = monotonic_ms()
        assert n == 1
        return sent, float(rb.arrival_ms[0]), read, bytes(rb.packets[0, :int(rb.lengths[0])])
    finally:
        net.remove(0)
        ours.close()
        peer.close()


def test_kernel_timestamps_give_the_time_the_datagram_arrived_not_when_it_was_read() -> None:
    sent, arrival, read, data = _sent_then_read_late(True)
    assert data == b"\x80\x00" + bytes(170)
    assert sent - 1.0 <= arrival <= sent + 20.0, (sent, arrival)
    assert read - arrival >= 100.0, (read, arrival)


def test_without_kernel_timestamps_arrival_is_the_read_time() -> None:
    sent, arrival, read, _ = _sent_then_read_late(False)
    assert arrival - sent >= 100.0, (sent, arrival)
    assert arrival <= read


def test_poll_never_returns_before_its_deadline_without_traffic() -> None:
    net, ours, peer = _pair(False)
    rb = RecvBatch(8)
    try:
        for wait_ms in (0.3, 2.7, 5.05):
            deadline = monotonic_ms() + wait_ms
            assert rb.poll(net, deadline) == 0
            assert monotonic_ms() >= deadline
    finally:
        net.remove(0)
        ours.close()
        peer.close()


def test_send_stamped_writes_each_rows_own_send_time_into_what_leaves() -> None:
    net, ours, peer = _pair(False)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(2.0)
    net.set_remote(0, ip_to_be("127.0.0.1"), peer.getsockname()[1])
    net.send_enabled[0] = 1
    rows = np.zeros((40, 180), np.uint8)
    rows[:, 0] = 0x80
    try:
        before = monotonic_ms()
        assert net.send_stamped(rows, np.full(40, 180, np.int32), np.zeros(40, np.int32),
                                40, 12) == 40
        after = monotonic_ms()
        got = [peer.recv(2048) for _ in range(40)]
    finally:
        net.remove(0)
        ours.close()
        peer.close()
    stamps = [float(np.frombuffer(g[12:20], "<f8")[0]) for g in got]
    assert all(len(g) == 180 for g in got)
    assert before <= stamps[0] and stamps[-1] <= after, (before, stamps, after)
    assert stamps == sorted(stamps) and stamps[-1] > stamps[0]  # per row, not per batch
    assert [float(np.frombuffer(r[12:20].tobytes(), "<f8")[0]) for r in rows] == stamps
