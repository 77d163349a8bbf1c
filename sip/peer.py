"""Where a SIP message came from or goes to: transport, address and (for streams) connection."""

from __future__ import annotations

from dataclasses import dataclass

RELIABLE = frozenset(("tcp", "tls", "ws", "wss"))


@dataclass(frozen=True, slots=True)
class Peer:
    """A remote transport address.

    ``conn`` identifies an existing stream connection (TCP/TLS/WS) so responses and
    in-dialog requests reuse it (RFC 3261 §18.2.2, RFC 5923 spirit); ``None`` means
    "any connection to host:port, opening one if needed" (never used for WS, whose
    connections are opened by the browser only).
    """

    transport: str
    """``udp``, ``tcp``, ``tls``, ``ws`` or ``wss`` (lower case)."""
    host: str
    """IP address (no brackets for IPv6)."""
    port: int
    """Port."""
    conn: int | None = None
    """Stream connection id assigned by the transport adapter, or None."""

    @property
    def reliable(self) -> bool:
        """True for stream transports (no retransmission timers, RFC 3261 §17.1.1.2)."""
        return self.transport in RELIABLE

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"
