"""RTP port allocation for SDP: even RTP ports from ``[server] rtp_ports``, RTCP on port+1.

Until media workers own the sockets (the media-core issue), the control process only
allocates numbers so that every leg gets a distinct, valid SDP address; the counts
are exposed so tests can check that no port leaks when calls end.
"""

from __future__ import annotations

from collections import deque


class PortExhausted(Exception):
    """Every RTP port of the configured range is in use."""


class RtpPortPool:
    """A FIFO pool of even ports (FIFO so a just-freed port is reused last)."""

    def __init__(self, lo: int, hi: int) -> None:
        """:param lo: first port of the range (made even).
        :param hi: last port of the range (inclusive)."""
        start = lo + (lo & 1)
        self._free: deque[int] = deque(range(start, hi, 2))
        self._used: set[int] = set()
        self.capacity = len(self._free)

    def allocate(self) -> int:
        """Take an even port; raises :class:`PortExhausted` when none is free."""
        if not self._free:
            raise PortExhausted(f"all {self.capacity} RTP ports are in use")
        port = self._free.popleft()
        self._used.add(port)
        return port

    def release(self, port: int) -> None:
        """Give a port back (releasing a port twice is harmless)."""
        if port in self._used:
            self._used.remove(port)
            self._free.append(port)

    @property
    def in_use(self) -> int:
        """How many ports are allocated."""
        return len(self._used)
