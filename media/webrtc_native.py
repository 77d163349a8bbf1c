"""Hand a connected WebRTC leg's RTP to the tick kernel; aiortc keeps ICE, DTLS and RTCP.

Why: aiortc receives, decrypts, packetises, encrypts and sends every RTP packet in
Python on the worker's event loop, plus a thread hop each way to the tick. That was
about three quarters of a WebRTC leg's server CPU and the reason 200 browser legs did
not fit two cores (benchmarks/README.md). RTP is the only per-packet traffic; ICE
(STUN consent every few seconds), DTLS (once) and RTCP (about once a second) are not.

How, once the peer connection is ``connected`` (DTLS done) and the codec is G.711:

1. New SRTP sessions from the DTLS keys (:mod:`media.native_srtp`).
2. The socket of the ICE pair aiortc selected is taken from uvloop: a ``dup`` of its
   file descriptor goes to the worker's ``NetIO`` (epoll + recvmmsg on the tick thread),
   uvloop's transport is closed (its own descriptor), and aioice's ``StunProtocol`` gets
   a :class:`TakenTransport` for what it sends (plain ``sendto`` on the dup).
3. The kernel demultiplexes every datagram of that socket (RFC 5764 section 5.1.2): RTP
   is unprotected in C and goes straight into the leg's jitter buffer; STUN, DTLS and
   SRTCP are handed back, once a tick, to ``StunProtocol.datagram_received`` on the loop,
   so aiortc's ICE consent, DTLS and RTCP work as before.
4. The outbound track is parked (aiortc's RTP loop ends); the kernel G.711-encodes,
   builds, protects and sends the leg's RTP with the SSRC aiortc announced in the SDP.
   It latches on to the source of authenticated SRTP, so after an ICE restart (the
   browser's new path) it answers where the browser now sends from.

Not covered (the leg then stays on aiortc's path, which still works): Opus, aiortc
internals other than 1.16's. An ICE restart that moves the selected pair to
another *local* socket keeps receiving on the old one through aiortc (the tap) but sends
from the old socket; browsers keep their host candidates on a restart, so on a LAN the
pair's local side does not change.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pylibsrtp import Session

from .native_srtp import NativeSrtpError, dtls_sessions, session_pointer

__all__ = ["NativeMedia", "NativeMediaError", "TakenTransport", "deliver_datagrams", "take_over",
           "watch_media_path"]

logger = logging.getLogger("hotline.media.webrtc")


class NativeMediaError(ValueError):
    """The leg cannot move to the kernel (the reason says why); it stays on aiortc."""


class TakenTransport(asyncio.DatagramTransport):
    """Stands in for uvloop's transport under aioice's ``StunProtocol`` once the kernel
    reads the socket: sends with ``sendto`` on the dup'd descriptor, and on ``close``
    waits for the worker to take the descriptor out of the kernel (``release``) before
    closing it and telling the protocol (aioice awaits that in ``Connection.close``).
    """

    def __init__(self, sock: socket.socket, protocol: asyncio.DatagramProtocol) -> None:
        super().__init__()
        self._sock = sock
        self._protocol = protocol
        self._closing = False
        self.release: Callable[[Callable[[], None]], None] = lambda done: done()
        """Set by the worker: detach the descriptor from the kernel, then call ``done``
        on the loop."""

    def sendto(self, data: Any, addr: Any = None) -> None:
        if self._closing:
            return
        with contextlib.suppress(OSError):  # a full buffer or a gone route: UDP drops
            self._sock.sendto(data, addr)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self._sock
        if name == "sockname":
            return self._sock.getsockname()
        return default

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self.release(self._closed)

    def abort(self) -> None:
        self.close()

    def _closed(self) -> None:
        self._sock.close()
        self._protocol.connection_lost(None)


@dataclass
class NativeMedia:
    """What the tick needs to run a WebRTC leg's RTP in the kernel (see the module)."""

    fd: int
    remote: tuple[str, int]
    ssrc: int
    pt: int
    codec: str
    tx: Session
    rx: Session
    transport: TakenTransport
    protocol: asyncio.DatagramProtocol
    next_seq: int | None = None
    """Where the kernel's RTP continues aiortc's (None: aiortc sent nothing; any start)."""
    next_ts: int | None = None
    detached: bool = False
    """Set by the tick thread once the kernel no longer uses ``fd``."""
    taken_ms: float = field(default_factory=lambda: time.monotonic() * 1000.0)
    """When the socket was taken (CLOCK_MONOTONIC ms): RTP that aiortc read before may
    still reach the leg's ring for a moment after."""
    tx_ptr: int = field(init=False)
    rx_ptr: int = field(init=False)

    def __post_init__(self) -> None:
        self.tx_ptr = session_pointer(self.tx)
        self.rx_ptr = session_pointer(self.rx)


def _ice_connection(transceiver: Any) -> Any:
    return getattr(getattr(transceiver.sender.transport, "transport", None), "_connection", None)


def _is_rtp(data: bytes) -> bool:
    # RFC 5764 5.1.2 and RFC 5761 4: RTP, not RTCP
    return len(data) >= 12 and 128 <= data[0] <= 191 and not 192 <= data[1] <= 223


def watch_media_path(transceiver: Any, found: Callable[[Any, tuple[str, int]], None]) -> (
        Callable[[], None]):
    """Call ``found(protocol, source)`` (loop thread) with the aioice protocol (local
    socket) and the source of the first RTP datagram the peer sends; returns a function
    that stops watching.

    Why: the pair aioice reports as selected on the controlled side is not always the one
    the browser sends on (aioice's own controlling side nominates aggressively, so a later
    pair can win on our side: 6 of 100 stand-in legs). Taking the socket the media
    actually arrives on makes the kernel read what the browser sends. It costs one
    wrapper call per datagram until the first RTP, then nothing.
    """
    conn = _ice_connection(transceiver)
    protocols = list(getattr(conn, "_protocols", []) or [])
    wrapped: list[Any] = []

    def stop() -> None:
        for p in wrapped:
            with contextlib.suppress(AttributeError):
                del p.datagram_received  # back to the class's method
        wrapped.clear()

    for p in protocols:
        def datagram_received(data: bytes, addr: Any, p: Any = p,
                              orig: Any = p.datagram_received) -> None:
            orig(data, addr)
            if wrapped and _is_rtp(data):
                stop()
                found(p, (addr[0], int(addr[1])))

        p.datagram_received = datagram_received  # an instance attribute: uvloop looks it up
        wrapped.append(p)
    return stop


def take_over(pc: Any, transceiver: Any, codec: str | None,
              path: tuple[Any, tuple[str, int]] | None = None) -> NativeMedia:
    """Move a connected leg's RTP socket out of uvloop (loop thread). See the module.

    :param pc: the connected ``RTCPeerConnection``.
    :param transceiver: its audio transceiver.
    :param codec: the negotiated codec (lower case).
    :param path: the aioice protocol and peer address the peer's RTP arrives on
        (:func:`watch_media_path`); None: the pair aioice reports as selected.
    :raises NativeMediaError: the leg must stay on aiortc's path (nothing was changed).
    """
    if codec not in ("pcmu", "pcma"):
        raise NativeMediaError(f"codec {codec}: only G.711 runs in the kernel")
    if pc.connectionState != "connected":
        raise NativeMediaError(f"connection is {pc.connectionState}")
    dtls = transceiver.sender.transport
    if path is not None:
        protocol: Any = path[0]
        host, port = path[1]
    else:
        nominated = getattr(_ice_connection(transceiver), "_nominated", None)
        pair = nominated.get(1) if isinstance(nominated, dict) else None
        if pair is None:
            raise NativeMediaError("no selected ICE pair (aiortc/aioice internals differ?)")
        protocol = getattr(pair, "protocol", None)
        host, port = pair.remote_addr[0], int(pair.remote_addr[1])
    uv_transport = getattr(protocol, "transport", None)
    if protocol is None or uv_transport is None:
        raise NativeMediaError("no socket for the ICE pair (aiortc/aioice internals differ?)")
    if isinstance(uv_transport, TakenTransport):
        raise NativeMediaError("the pair's socket is already taken")
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = uv_transport.get_extra_info("socket")
    if sock is None or sock.family != family or sock.type != socket.SOCK_DGRAM:
        raise NativeMediaError(f"the pair's local socket is not a UDP socket for {host}")
    try:
        tx, rx = dtls_sessions(dtls)
    except NativeSrtpError as exc:
        raise NativeMediaError(str(exc)) from exc
    pts = [c.payloadType for c in transceiver._codecs
           if c.mimeType.lower() == f"audio/{codec}"]
    if not pts:
        raise NativeMediaError(f"no payload type for {codec}")
    fd = os.dup(sock.fileno())
    dup = socket.socket(family, socket.SOCK_DGRAM, fileno=fd)
    dup.setblocking(False)
    taken = TakenTransport(dup, protocol)
    # uvloop stops reading once its transport closes; its protocol must not hear of it
    # (aioice would drop the candidate), so give the transport a throwaway protocol first
    uv_transport.set_protocol(asyncio.DatagramProtocol())
    uv_transport.close()
    protocol.transport = taken
    next_seq, next_ts = _continuation(transceiver.sender)
    return NativeMedia(fd=fd, remote=(host, port), ssrc=int(transceiver.sender._ssrc),
                       pt=int(pts[0]), codec=codec, tx=tx, rx=rx, transport=taken,
                       protocol=protocol, next_seq=next_seq, next_ts=next_ts)


def deliver_datagrams(items: list[tuple[Any, bytes, tuple[str, int]]]) -> None:
    """Loop thread: the STUN, DTLS and SRTCP datagrams that the kernel read on taken
    sockets (``NetIO.take_foreign``) -> their aioice protocol, as uvloop would have."""
    for protocol, data, addr in items:
        try:
            protocol.datagram_received(data, addr)
        except Exception:  # noqa: BLE001 - one bad datagram must not stop the others
            logger.exception("aioice rejected a datagram from %s", addr)


def _continuation(sender: Any) -> tuple[int | None, int | None]:
    """The sequence number and timestamp after the last RTP packet aiortc sent.

    The kernel must continue them: the receiver's SRTP replay window (RFC 3711 section
    3.3.2) rejects a packet whose index is more than the window behind the highest seen,
    so a fresh random sequence number would be refused about half the time. aiortc keeps
    its last 128 packets (``__rtp_history``, a run of consecutive sequence numbers);
    the last is the one whose successor is not there.
    """
    history = getattr(sender, "_RTCRtpSender__rtp_history", None)
    if not history:
        return None, None
    by_seq = {p.sequence_number: p for p in history.values()}
    last = next((p for seq, p in by_seq.items() if (seq + 1) & 0xFFFF not in by_seq), None)
    if last is None:
        return None, None
    return (last.sequence_number + 1) & 0xFFFF, (last.timestamp + 160) & 0xFFFFFFFF
