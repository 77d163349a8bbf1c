"""SIP over TCP and TLS (RFC 3261 §18.3, RFC 5626 §4.4.1, RFC 5923 reuse).

:class:`SipStreamFramer` is sans-IO: bytes in, framed messages out (sliced raw from the
buffer), CRLF keep-alives recognised, a size cap enforced. :class:`StreamConnection` is
one asyncio protocol per connection; :class:`StreamTransport` owns listeners, connection
ids, the host:port → connection map used to reuse connections, on-demand outbound
connects and the idle sweep. The WebSocket adapter subclasses both.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, cast

from .exceptions import MalformedMessage, MessageTooLarge, ProtocolError
from .message import MAX_MESSAGE_SIZE
from .peer import Peer

if TYPE_CHECKING:
    from .transport import SipTransportManager

logger = logging.getLogger("hotline.sip")

MAX_WRITE_BUFFER = 4 << 20  # a peer that does not read gets disconnected
PONG = b"\r\n"


class KeepAlive:
    """A ``CRLFCRLF`` ping (RFC 5626 §4.4.1): answer it with a single CRLF."""

    __slots__ = ()


KEEPALIVE = KeepAlive()
FramedItem = bytes | KeepAlive | ProtocolError


class SipStreamFramer:
    """Cut a byte stream into SIP messages by Content-Length (RFC 3261 §18.3).

    :param max_message_size: cap on one message (header block + body); exceeding it
        yields :class:`MessageTooLarge` (513).

    ``feed`` returns the raw bytes of each complete message, :data:`KEEPALIVE` for each
    ping, and at most one :class:`ProtocolError`, after which the framer is dead (the
    stream cannot be resynchronised: close the connection).
    """

    def __init__(self, max_message_size: int = MAX_MESSAGE_SIZE) -> None:
        self.max_message_size = max_message_size
        self._buf = bytearray()
        self._scan = 0  # where to resume looking for the end of the header block
        self._total = -1  # length of the current message once its headers are in
        self.failed = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet framed."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[FramedItem]:
        """Add received bytes and return what is now complete.

        :param data: the next chunk of the stream, any size.
        """
        if self.failed:
            return []
        buf = self._buf
        buf += data
        out: list[FramedItem] = []
        try:
            while buf:
                if self._total < 0:
                    if self._scan == 0 and buf[0] in b"\r\n":
                        if not self._skip_crlf(out):
                            break
                        continue
                    end = buf.find(b"\r\n\r\n", self._scan)
                    if end < 0:
                        if len(buf) > self.max_message_size:
                            raise MessageTooLarge(
                                f"header block exceeds {self.max_message_size} bytes"
                            )
                        self._scan = max(0, len(buf) - 3)
                        break
                    self._total = end + 4 + _content_length(bytes(buf[:end]))
                    if self._total > self.max_message_size:
                        raise MessageTooLarge(
                            f"message of {self._total} bytes exceeds {self.max_message_size}"
                        )
                if len(buf) < self._total:
                    break
                out.append(bytes(buf[: self._total]))
                del buf[: self._total]
                self._total = -1
                self._scan = 0
        except ProtocolError as e:
            self.failed = True
            buf.clear()
            out.append(e)
        return out

    def _skip_crlf(self, out: list[FramedItem]) -> bool:
        # RFC 5626 §4.4.1: CRLFCRLF is a ping, a lone CRLF a pong; RFC 3261 §7.5 lets
        # CRLFs precede a message. Returns False when more bytes are needed to decide.
        buf = self._buf
        if buf[:4] == b"\r\n\r\n":
            out.append(KEEPALIVE)
            del buf[:4]
            return True
        if buf[:2] == b"\r\n" and len(buf) >= 3 and buf[2:3] != b"\r":
            del buf[:2]
            return True
        if buf[:1] == b"\n":  # bare LF between messages: tolerate
            del buf[:1]
            return True
        if len(buf) < 4 and b"\r\n\r\n".startswith(bytes(buf)):
            return False
        if buf[:2] != b"\r\n":
            raise MalformedMessage("stray CR before a message")
        del buf[:2]  # "\r\n\r" + junk: drop the pong, the rest fails as a stray CR
        return True


def _content_length(head: bytes) -> int:
    found: int | None = None
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if not sep or line[:1] in b" \t":
            continue
        key = name.strip().lower()
        if key == b"content-length" or key == b"l":
            text = value.strip()
            if not text.isdigit():
                raise MalformedMessage(f"bad Content-Length {text[:20]!r}")
            n = int(text)
            if found is not None and found != n:
                raise MalformedMessage("conflicting Content-Length headers")
            found = n
    if found is None:
        raise MalformedMessage("Content-Length is mandatory on stream transports")
    return found


class StreamConnection(asyncio.Protocol):
    """One TCP/TLS connection; subclasses change the framing (WebSocket)."""

    def __init__(self, adapter: StreamTransport, outbound: bool) -> None:
        self.adapter = adapter
        self.outbound = outbound
        self.conn_id = adapter.manager.next_conn_id()
        self.peer = Peer(adapter.name, "", 0, self.conn_id)
        self.transport: asyncio.Transport | None = None
        self.closing = False
        self.last_activity = adapter.manager.loop.time()
        self._framer = SipStreamFramer(adapter.manager.max_message_size)

    # -- asyncio callbacks ---------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        addr = transport.get_extra_info("peername") or ("", 0)
        self.peer = Peer(self.adapter.name, str(addr[0]), int(addr[1]), self.conn_id)
        self.adapter.attach(self)

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.adapter.manager.loop.time()
        try:
            self.on_data(data)
        except Exception:
            logger.exception("%s: input handling failed; closing", self.peer)
            self.close()

    def eof_received(self) -> bool | None:
        return None  # half-closed by the peer: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.transport = None
        try:
            self.adapter.detach(self, exc)
        except Exception:
            logger.exception("%s: detach failed", self.peer)

    # -- framing (overridden by WebSocket) ------------------------------------------
    def on_data(self, data: bytes) -> None:
        """Frame received bytes and hand complete messages to the manager."""
        for item in self._framer.feed(data):
            if self.closing:
                return
            if isinstance(item, bytes):
                self.adapter.manager.receive(item, self.peer)
            elif isinstance(item, KeepAlive):
                self.write(PONG)
            else:
                # Framing is lost: nothing we could send would be parseable. Close.
                logger.info("%s: %s; closing", self.peer, item)
                self.close()

    def send_message(self, data: bytes) -> bool:
        """Send one serialised message; False if the connection cannot take it."""
        return self.write(data)

    # -- helpers -------------------------------------------------------------------
    def write(self, data: bytes) -> bool:
        """Write raw bytes; False (and the connection aborted) if it is unusable."""
        t = self.transport
        if t is None or self.closing or t.is_closing():
            return False
        t.write(data)
        self.last_activity = self.adapter.manager.loop.time()
        if t.get_write_buffer_size() > MAX_WRITE_BUFFER:
            logger.warning("%s: peer does not read; aborting", self.peer)
            self.closing = True
            t.abort()
        return True

    def close(self) -> None:
        """Close after flushing what is already written."""
        self.closing = True
        if self.transport is not None:
            self.transport.close()


class StreamTransport:
    """The TCP or TLS adapter: listeners, connections by id and by address, reuse.

    :param manager: the owning :class:`SipTransportManager`.
    :param name: ``tcp`` or ``tls`` (``ws``/``wss`` in the subclass).
    :param client_ssl: context for outbound TLS connections.
    :param idle_timeout: close connections silent for this long (None = never).
    """

    connection_class: type[StreamConnection] = StreamConnection
    can_connect = True

    def __init__(
        self,
        manager: SipTransportManager,
        name: str,
        *,
        client_ssl: ssl.SSLContext | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        self.manager = manager
        self.name = name
        self.client_ssl = client_ssl
        self.idle_timeout = idle_timeout
        self.closed = False
        self._servers: list[asyncio.Server] = []
        self._conns: dict[int, StreamConnection] = {}
        self._by_addr: dict[tuple[str, int], StreamConnection] = {}
        self._pending: dict[tuple[str, int], list[tuple[bytes, Peer]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self.client_ssl_for: dict[tuple[str, int], tuple[ssl.SSLContext, str | None]] = {}
        """Per-destination TLS context and server name (e.g. a trunk without verification)."""

    async def listen(
        self, host: str, port: int, ssl_context: ssl.SSLContext | None = None
    ) -> tuple[str, int]:
        """Accept connections on host:port and return the bound address."""
        loop = self.manager.loop
        server = await loop.create_server(
            lambda: self.connection_class(self, outbound=False),
            host,
            port,
            ssl=ssl_context,
            reuse_address=True,
        )
        self._servers.append(server)
        name = server.sockets[0].getsockname()
        return str(name[0]), int(name[1])

    def send(self, data: bytes, peer: Peer) -> None:
        """Send over ``peer.conn``, or any connection to host:port, or a new one."""
        if peer.conn is not None:
            conn = self._conns.get(peer.conn)
            if conn is None or not conn.send_message(data):
                logger.info("%s: connection %s is gone", peer, peer.conn)
                self.manager.report_error(peer, f"connection {peer.conn} is closed")
            return
        key = (peer.host, peer.port)
        conn = self._by_addr.get(key)
        if conn is not None and conn.send_message(data):
            return
        if not self.can_connect or self.closed:
            logger.info("%s: no connection and %s never connects out", peer, self.name)
            self.manager.report_error(peer, f"no open {self.name} connection to the peer")
            return
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = []
            task = self.manager.loop.create_task(self._connect(key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        pending.append((data, peer))

    async def _connect(self, key: tuple[str, int]) -> None:
        host, port = key
        ctx, server_name = self.client_ssl_for.get(key, (self.client_ssl, host))
        if self.name not in ("tls", "wss"):
            ctx = None
        conn: StreamConnection | None = None
        reason = "connection closed"
        try:
            _, proto = await asyncio.wait_for(
                self.manager.loop.create_connection(
                    lambda: self.connection_class(self, outbound=True),
                    host,
                    port,
                    ssl=ctx,
                    server_hostname=host if ctx else None,
                ),
                self.manager.connect_timeout,
            )
            conn = proto
        except (OSError, TimeoutError, ssl.SSLError) as e:
            logger.info("%s:%s:%d: connect failed: %s", self.name, host, port, e)
            reason = f"connect failed: {e or type(e).__name__}"
        except asyncio.CancelledError:
            self._pending.pop(key, None)
            raise
        queued = self._pending.pop(key, [])
        for data, peer in queued:
            if conn is None or not conn.send_message(data):
                self.manager.report_error(peer, reason)

    def attach(self, conn: StreamConnection) -> None:
        """Register a connection once it is established (and TLS is up)."""
        self._conns[conn.conn_id] = conn
        key = (conn.peer.host, conn.peer.port)
        if key not in self._by_addr or self._by_addr[key].closing:
            self._by_addr[key] = conn
        logger.debug("%s: connected (%s)", conn.peer, "out" if conn.outbound else "in")
        if self.idle_timeout and self._sweep is None:
            self._arm_sweep()

    def detach(self, conn: StreamConnection, exc: Exception | None) -> None:
        """Forget a closed connection and report it so in-flight transactions fail."""
        if self._conns.pop(conn.conn_id, None) is None:
            return
        key = (conn.peer.host, conn.peer.port)
        if self._by_addr.get(key) is conn:
            del self._by_addr[key]
        logger.debug("%s: closed (%s)", conn.peer, exc or "clean")
        self.manager.report_error(
            conn.peer, f"connection closed: {exc}" if exc else "connection closed"
        )

    def _arm_sweep(self) -> None:
        assert self.idle_timeout
        self._sweep = self.manager.loop.call_later(
            min(self.idle_timeout / 4, 30.0), self._sweep_idle
        )

    def _sweep_idle(self) -> None:
        self._sweep = None
        if self.closed or not self.idle_timeout:
            return
        limit = self.manager.loop.time() - self.idle_timeout
        for conn in list(self._conns.values()):
            if conn.last_activity <= limit and not conn.closing:
                logger.info("%s: idle for %.0f s; closing", conn.peer, self.idle_timeout)
                conn.close()
        if self._conns:
            self._arm_sweep()

    def local_address(self) -> tuple[str, int] | None:
        """The first listener's address, or None."""
        if not self._servers:
            return None
        name = self._servers[0].sockets[0].getsockname()
        return str(name[0]), int(name[1])

    def connection_count(self) -> int:
        """Open connections."""
        return len(self._conns)

    def close(self) -> None:
        """Stop listening and close every connection."""
        self.closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for task in list(self._tasks):
            task.cancel()
        for server in self._servers:
            server.close()
        for conn in list(self._conns.values()):
            conn.close()

    async def wait_closed(self) -> None:
        """Wait for the listeners to close."""
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
