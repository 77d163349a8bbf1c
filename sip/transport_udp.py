"""SIP over UDP (RFC 3261 §18): one asyncio datagram endpoint per listening socket.

Incoming datagrams go to the manager as they are; the stack parses them and answers a
malformed one with 400 itself. Outgoing datagrams larger than ``MAX_UDP_SIZE`` are still
sent (RFC 3261 §18.1.1 makes choosing TCP for them the transaction user's job, since it
writes the Via); datagrams that cannot be sent at all are reported as transport errors.

ICMP errors (port/host unreachable) are received with ``IP_RECVERR`` (Linux): the kernel
queues them with the original destination address, which we turn into
``stack.transport_error(Peer("udp", host, port))`` (RFC 3261 §18.4).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import struct
from typing import TYPE_CHECKING, cast

from .peer import Peer

if TYPE_CHECKING:
    from .transport import SipTransportManager

logger = logging.getLogger("hotline.sip")

MAX_UDP_SIZE = 1300  # RFC 3261 §18.1.1: above MTU - 200, requests should go over TCP
MAX_DATAGRAM_SIZE = 65507  # IPv4 UDP payload limit
RECV_BUFFER = 4 << 20  # a burst of INVITE retransmissions must not overflow it


def _grow_receive_buffer(sock: socket.socket) -> None:
    """Ask for RECV_BUFFER bytes; SO_RCVBUFFORCE passes net.core.rmem_max when we may
    (CAP_NET_ADMIN), otherwise the kernel caps SO_RCVBUF at rmem_max."""
    for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if opt is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, RECV_BUFFER)
            return
        except OSError:
            continue
IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
# struct sock_extended_err: ee_errno, ee_origin, ee_type, ee_code, ee_pad, ee_info, ee_data
_EXTENDED_ERR = struct.Struct("=IBBBBII")
UNREACHABLE = frozenset(
    (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN)
)


class _UdpEndpoint(asyncio.DatagramProtocol):
    """One bound socket; never lets an exception out of a callback."""

    def __init__(self, owner: UdpTransport, sock: socket.socket) -> None:
        self.owner = owner
        self.sock = sock
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        try:
            peer = Peer("udp", str(addr[0]), int(str(addr[1])))
            self.owner.manager.receive(bytes(data), peer)
        except Exception:
            logger.exception("UDP datagram from %r dropped", addr)

    def error_received(self, exc: Exception) -> None:
        try:
            self._drain_errors(exc)
        except Exception:
            logger.exception("UDP error handling failed")

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if exc is not None and not self.owner.closed:
            logger.error("UDP socket %s closed: %s", self.sock, exc)

    def _drain_errors(self, exc: Exception) -> None:
        reported = False
        # With IP_RECVERR every ICMP error waits in the error queue together with the
        # destination of the datagram that caused it; empty it, or the socket stays
        # readable (POLLERR) and the loop spins.
        for _ in range(64):
            try:
                payload, ancdata, _flags, addr = self.sock.recvmsg(1, 512, MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                logger.debug("UDP error queue: %s", e)
                break
            code = 0
            for _level, _type, cdata in ancdata:
                if len(cdata) >= _EXTENDED_ERR.size:
                    code = _EXTENDED_ERR.unpack_from(cdata)[0]
            if addr and code in UNREACHABLE:
                peer = Peer("udp", str(addr[0]), int(addr[1]))
                logger.info("UDP %s unreachable: %s", peer, errno.errorcode.get(code, code))
                self.owner.manager.report_error(peer, f"ICMP: {os.strerror(code)}")
                reported = True
        if not reported:
            logger.info("UDP socket error: %s", exc)


class UdpTransport:
    """The UDP adapter: bound sockets, one send path."""

    name = "udp"

    def __init__(self, manager: SipTransportManager) -> None:
        self.manager = manager
        self.closed = False
        self._endpoints: list[_UdpEndpoint] = []

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        """Bind a socket on host:port and return the bound address.

        :param host: IPv4 or IPv6 literal.
        :param port: UDP port, 0 for an ephemeral one.
        """
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            _grow_receive_buffer(sock)
            _enable_recverr(sock, family)
            sock.bind((host, port))
            endpoint = _UdpEndpoint(self, sock)
            await self.manager.loop.create_datagram_endpoint(lambda: endpoint, sock=sock)
        except BaseException:
            sock.close()
            raise
        self._endpoints.append(endpoint)
        name = sock.getsockname()
        return str(name[0]), int(name[1])

    def send(self, data: bytes, peer: Peer) -> None:
        """Send one datagram to peer; failures become transport errors.

        :param data: the serialised message.
        :param peer: the destination (conn is ignored).
        """
        if len(data) > MAX_DATAGRAM_SIZE:
            logger.warning("%d-byte message to %s does not fit a datagram", len(data), peer)
            self.manager.report_error(peer, f"{len(data)} bytes do not fit a UDP datagram")
            return
        family = socket.AF_INET6 if ":" in peer.host else socket.AF_INET
        for endpoint in self._endpoints:
            if endpoint.sock.family == family and endpoint.transport is not None:
                try:
                    endpoint.transport.sendto(data, (peer.host, peer.port))
                except OSError as e:
                    logger.info("UDP send to %s failed: %s", peer, e)
                    self.manager.report_error(peer, f"UDP send failed: {e}")
                return
        logger.warning("no UDP socket can reach %s", peer)
        self.manager.report_error(peer, "no UDP socket of that address family")

    def local_address(self) -> tuple[str, int] | None:
        """The first bound address, or None."""
        if not self._endpoints:
            return None
        name = self._endpoints[0].sock.getsockname()
        return str(name[0]), int(name[1])

    def connection_count(self) -> int:
        """Bound UDP sockets (UDP has no connections)."""
        return len(self._endpoints)

    def close(self) -> None:
        """Close every socket."""
        self.closed = True
        for endpoint in self._endpoints:
            if endpoint.transport is not None:
                endpoint.transport.close()
        self._endpoints.clear()

    async def wait_closed(self) -> None:
        """Nothing to wait for: datagram transports close on the next loop turn."""
        await asyncio.sleep(0)


def _enable_recverr(sock: socket.socket, family: int) -> None:
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    except OSError:  # not Linux: ICMP errors are then simply not reported
        pass
