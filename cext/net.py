"""Batch UDP socket I/O façade over :mod:`cext._net` (epoll + recvmmsg/sendmmsg).

The media worker keeps all its RTP sockets in one :class:`NetIO` (slot = endpoint row)
and one :class:`RecvBatch`; once per 20 ms tick it calls ``NetIO.poll`` (which also
sleeps until the tick's deadline, latches remote addresses and relays same-codec
bridged audio at once) and ``NetIO.send`` for everything it built. The load generator
of ``benchmarks/media_load.py`` uses the same two calls.
"""

from __future__ import annotations

import socket

import numpy as np
import numpy.typing as npt

from ._net import NetIO, monotonic_ms, set_srtp_functions

__all__ = ["NetIO", "RecvBatch", "ip_from_be", "ip_to_be", "monotonic_ms", "set_remote_addr",
           "set_srtp_functions"]


def ip_to_be(ip: str) -> int:
    """IPv4 dotted quad -> the uint32 :class:`NetIO` stores (network byte order in memory).

    :raises OSError: for a string that is not an IPv4 address.
    """
    return int.from_bytes(socket.inet_aton(ip), "little")


def ip_from_be(value: int) -> str:
    """Inverse of :func:`ip_to_be`."""
    return socket.inet_ntoa(int(value).to_bytes(4, "little"))


def set_remote_addr(net: NetIO, slot: int, host: str, port: int) -> None:
    """Point ``slot`` at ``host:port``, IPv4 or IPv6 (a WebRTC leg's ICE pair may be either;
    the slot's socket must be of the same family)."""
    if ":" in host:
        net.set_remote6(slot, socket.inet_pton(socket.AF_INET6, host), port)
    else:
        net.set_remote(slot, ip_to_be(host), port)


class RecvBatch:
    """Preallocated arrays for :meth:`NetIO.poll`, laid out like :class:`cext.rtp.RtpBatch`
    (``packets``/``lengths``/``arrival_ms`` plus the parse outputs) so that the same arrays
    go straight into ``parse_batch`` and ``JitterBuffer.put_batch``.

    :param capacity: rows (datagrams per tick at most).
    :param width: bytes per row.
    """

    def __init__(self, capacity: int, width: int = 1500) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.packets: npt.NDArray[np.uint8] = np.zeros((capacity, width), np.uint8)
        self.lengths = np.zeros(capacity, np.int32)
        self.slots = np.zeros(capacity, np.int32)
        self.arrival_ms = np.zeros(capacity, np.float64)
        self.src_ip = np.zeros(capacity, np.uint32)
        self.src_port = np.zeros(capacity, np.uint16)
        self.seq = np.zeros(capacity, np.uint16)
        self.ts = np.zeros(capacity, np.uint32)
        self.ssrc = np.zeros(capacity, np.uint32)
        self.pt = np.zeros(capacity, np.uint8)
        self.marker = np.zeros(capacity, np.uint8)
        self.payload_offset = np.zeros(capacity, np.int32)
        self.payload_len = np.zeros(capacity, np.int32)
        self.status = np.zeros(capacity, np.int8)
        self.count = 0

    def poll(self, net: NetIO, deadline_ms: float, start: int = 0) -> int:
        """Receive into rows ``start..`` until ``deadline_ms``; returns the row count
        (rows ``0..start-1``, e.g. filled by the tick kernel's sweeps, are kept)."""
        self.count = net.poll(self.packets, self.lengths, self.slots, self.arrival_ms,
                              self.src_ip, self.src_port, deadline_ms, start)
        return self.count
