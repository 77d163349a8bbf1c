"""The asyncio side of the SIP stack: one manager that owns every listener and connection.

Theory of operation (aioquic ``asyncio/protocol.py``): the sans-IO :class:`SipStack`
never touches a socket or a clock. This module feeds it bytes with ``now = loop.time()``
and then calls :meth:`SipTransportManager.transmit`, the only place that moves bytes
out: it flushes ``stack.datagrams_to_send(now)`` to the adapter named by each
``Peer.transport`` and re-arms a *single* ``loop.call_at`` for ``stack.get_timer()``.

The adapters (``transport_udp``, ``transport_stream`` for TCP/TLS, ``transport_ws`` for
WS/WSS) are thin: they frame, assign connection ids and report failures back through
:meth:`SipTransportManager.report_error`, which becomes ``stack.transport_error``.
No exception ever leaves an asyncio callback: it is logged and the server keeps going.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from collections.abc import Callable
from typing import Protocol

from .message import MAX_MESSAGE_SIZE
from .peer import Peer
from .transport_stream import StreamTransport
from .transport_udp import UdpTransport
from .transport_ws import WsTransport

logger = logging.getLogger("hotline.sip")

TRANSPORTS = ("udp", "tcp", "tls", "ws", "wss")
IDLE_TIMEOUT = 300.0  # close stream connections after 5 min without traffic
CONNECT_TIMEOUT = 10.0


class SipStackLike(Protocol):
    """The sans-IO verbs the manager drives (``sip.stack.SipStack``)."""

    def receive(self, data: bytes, peer: Peer, now: float) -> None: ...
    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Peer]]: ...
    def get_timer(self) -> float | None: ...
    def handle_timer(self, now: float) -> None: ...
    def transport_error(self, peer: Peer, now: float, reason: str = ...) -> None: ...


Adapter = UdpTransport | StreamTransport


def parse_listen_spec(spec: str) -> tuple[str, str, int]:
    """Split ``"udp:HOST:PORT"`` (``[v6]`` in brackets) into (transport, host, port).

    :raises ValueError: with a text naming the spec and what was expected.
    """
    transport, sep, rest = spec.partition(":")
    transport = transport.lower()
    if not sep or transport not in TRANSPORTS:
        raise ValueError(f"listen spec {spec!r}: expected one of {', '.join(TRANSPORTS)}:HOST:PORT")
    if rest.startswith("["):
        host, sep, port_s = rest[1:].partition("]:")
    else:
        host, sep, port_s = rest.rpartition(":")
    if not sep or not host or not port_s.isdigit() or int(port_s) > 65535:
        raise ValueError(f"listen spec {spec!r}: expected {transport}:HOST:PORT")
    return transport, host, int(port_s)


class SipTransportManager:
    """Own the listeners and connections of every transport and drive a sans-IO stack.

    :param stack: the sans-IO core (``SipStack``).
    :param loop: the event loop (asyncio or uvloop); the running loop if None.
    :param ssl_context: server context for ``tls:``/``wss:`` listeners (cert + key).
    :param client_ssl_context: context for outbound TLS; a verifying default context
        (``ssl.create_default_context()``) if None.
    :param on_events: called after each receive, timer and transport error so the
        application can drain ``stack.next_event()``; :meth:`transmit` follows it.
    :param idle_timeout: seconds without traffic after which a TCP/TLS connection is
        closed (None = never).
    :param ws_idle_timeout: the same for WS/WSS (browsers stay connected for a shift;
        None = never).
    :param max_message_size: the stream framing cap (bigger → connection closed).
    """

    def __init__(
        self,
        stack: SipStackLike,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        client_ssl_context: ssl.SSLContext | None = None,
        on_events: Callable[[], None] | None = None,
        idle_timeout: float | None = IDLE_TIMEOUT,
        ws_idle_timeout: float | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        max_message_size: int = MAX_MESSAGE_SIZE,
    ) -> None:
        self.stack = stack
        self.loop = loop if loop is not None else asyncio.get_running_loop()
        self.on_events = on_events
        self.ssl_context = ssl_context
        self.client_ssl_context = client_ssl_context
        self.idle_timeout = idle_timeout
        self.ws_idle_timeout = ws_idle_timeout
        self.connect_timeout = connect_timeout
        self.max_message_size = max_message_size
        self._adapters: dict[str, Adapter] = {}
        self._addresses: dict[str, tuple[str, int]] = {}
        self._conn_ids = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = False

    # -- public API ------------------------------------------------------------------
    async def listen(self, spec: str, ssl_context: ssl.SSLContext | None = None) -> tuple[str, int]:
        """Open a listener and return the bound (host, port) (port 0 = ephemeral).

        :param spec: ``udp:HOST:PORT``, ``tcp:…``, ``tls:…``, ``ws:…`` or ``wss:…``.
        :param ssl_context: server context for tls/wss, else the constructor's.
        :raises ValueError: bad spec, or tls/wss without a server context.
        :raises OSError: the address cannot be bound.
        """
        transport, host, port = parse_listen_spec(spec)
        ctx = ssl_context or self.ssl_context
        if transport in ("tls", "wss") and ctx is None:
            raise ValueError(f"listen spec {spec!r}: {transport} needs an ssl.SSLContext")
        adapter = self._adapter(transport)
        if isinstance(adapter, UdpTransport):
            bound = await adapter.listen(host, port)
        else:
            bound = await adapter.listen(host, port, ctx if transport in ("tls", "wss") else None)
        self._addresses.setdefault(transport, bound)
        logger.info("listening on %s:%s:%d", transport, bound[0], bound[1])
        return bound

    def local_address(self, transport: str) -> tuple[str, int]:
        """The (host, port) of the first listener of ``transport``, for Via and Contact.

        :raises KeyError: nothing listens on that transport.
        """
        return self._addresses[transport]

    def set_client_ssl_context(
        self, host: str, port: int, context: ssl.SSLContext, server_hostname: str | None = None
    ) -> None:
        """Use ``context`` for outbound TLS to host:port (a trunk), instead of the default.

        :param host: the IP address the stack sends to.
        :param port: the port.
        :param context: e.g. one trusting the carrier's CA, or with verification off.
        :param server_hostname: the name to check the certificate against (SNI too);
            ``host`` if None.
        """
        adapter = self._adapter("tls")
        assert isinstance(adapter, StreamTransport)
        adapter.client_ssl_for[(host, port)] = (context, server_hostname or host)

    def stats(self) -> dict[str, int]:
        """Open connections per stream transport; bound sockets for ``udp``."""
        return {name: a.connection_count() for name, a in self._adapters.items()}

    def transmit(self) -> None:
        """Flush the stack's outgoing messages and re-arm the single timer."""
        if self._closed:
            return
        now = self.loop.time()
        try:
            outgoing = self.stack.datagrams_to_send(now)
        except Exception:
            logger.exception("stack.datagrams_to_send failed")
            outgoing = []
        for data, peer in outgoing:
            adapter = self._adapter(peer.transport) if peer.transport in TRANSPORTS else None
            if adapter is None:
                logger.warning("no %r transport for a message to %s", peer.transport, peer)
                self.report_error(peer, f"unknown transport {peer.transport!r}")
                continue
            try:
                adapter.send(data, peer)
            except Exception:
                logger.exception("sending to %s failed", peer)
                self.report_error(peer, "send failed")
        self._arm_timer()

    def close(self) -> None:
        """Close every listener and connection and cancel the timer."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None
        for adapter in self._adapters.values():
            adapter.close()

    async def wait_closed(self) -> None:
        """Wait until the listeners closed by :meth:`close` are gone."""
        for adapter in list(self._adapters.values()):
            await adapter.wait_closed()

    # -- called by the adapters ----------------------------------------------------
    def receive(self, data: bytes, peer: Peer) -> None:
        """Hand one datagram or framed message to the stack, then notify and transmit."""
        if self._closed:
            return
        try:
            self.stack.receive(data, peer, self.loop.time())
        except Exception:
            logger.exception("stack.receive failed for a message from %s", peer)
        self._after_input()

    def report_error(self, peer: Peer, reason: str = "transport error") -> None:
        """A send failed or a connection closed; tell the stack on the next loop turn.

        Deferred so the stack is never re-entered from inside :meth:`transmit`.

        :param peer: the peer (with ``conn`` for a stream connection).
        :param reason: what happened, for the event and the log.
        """
        if not self._closed:
            self.loop.call_soon(self._transport_error, peer, reason)

    def next_conn_id(self) -> int:
        """A connection id unique across every stream transport of this manager."""
        return next(self._conn_ids)

    # -- internals -----------------------------------------------------------------
    def _adapter(self, transport: str) -> Adapter:
        adapter = self._adapters.get(transport)
        if adapter is None:
            if transport == "udp":
                adapter = UdpTransport(self)
            elif transport in ("ws", "wss"):
                adapter = WsTransport(self, transport, idle_timeout=self.ws_idle_timeout)
            else:
                client = self.client_ssl_context
                if transport == "tls" and client is None:
                    client = self.client_ssl_context = ssl.create_default_context()
                adapter = StreamTransport(
                    self, transport, client_ssl=client, idle_timeout=self.idle_timeout
                )
            self._adapters[transport] = adapter
        return adapter

    def _transport_error(self, peer: Peer, reason: str) -> None:
        if self._closed:
            return
        try:
            self.stack.transport_error(peer, self.loop.time(), reason)
        except Exception:
            logger.exception("stack.transport_error failed for %s", peer)
        self._after_input()

    def _after_input(self) -> None:
        if self.on_events is not None:
            try:
                self.on_events()
            except Exception:
                logger.exception("on_events callback failed")
        self.transmit()

    def _arm_timer(self) -> None:
        try:
            at = self.stack.get_timer()
        except Exception:
            logger.exception("stack.get_timer failed")
            at = None
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self.loop.call_at(at, self._on_timer) if at is not None else None

    def _on_timer(self) -> None:
        at = self._timer_at
        self._timer = self._timer_at = None
        # call_at may fire up to one clock tick early: never hand the stack a time
        # before the deadline it asked for (aioquic does the same).
        now = self.loop.time()
        if at is not None and now < at:
            now = at
        try:
            self.stack.handle_timer(now)
        except Exception:
            logger.exception("stack.handle_timer failed")
        self._after_input()
