"""TCP/TLS transport: the sans-IO framer, then real sockets on asyncio and uvloop."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from sip.exceptions import MalformedMessage, MessageTooLarge
from sip.message import SipMessage, SipResponse
from sip.peer import Peer
from sip.transport_stream import KEEPALIVE, SipStreamFramer

from .helpers import options_bytes, options_request


def options(n: int = 1, body: bytes = b"", extra: str = "") -> bytes:
    head = (
        "OPTIONS sip:hotline@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-frame-{n}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:probe@127.0.0.1>;tag=f1\r\n"
        "To: <sip:hotline@127.0.0.1>\r\n"
        f"Call-ID: frame-{n}@127.0.0.1\r\n"
        f"CSeq: {n} OPTIONS\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


STREAM = (
    b"\r\n\r\n"
    + options(1)
    + options(2, b"v=0\r\n", "Content-Type: application/sdp\r\n")
    + b"\r\n\r\n"
    + options(3, b"x" * 300)
)


def collect(framer: SipStreamFramer, data: bytes, chunk: int, wrap: type = bytes) -> list[object]:
    out: list[object] = []
    for i in range(0, len(data), chunk):
        out += framer.feed(wrap(data[i : i + chunk]))
    return out


@pytest.mark.parametrize("chunk_size", list(range(1, 40)) + [97, 512, len(STREAM)])
def test_framer_drip_feed(chunk_size: int) -> None:
    items = collect(SipStreamFramer(), STREAM, chunk_size)
    assert items == [
        KEEPALIVE,
        options(1),
        options(2, b"v=0\r\n", "Content-Type: application/sdp\r\n"),
        KEEPALIVE,
        options(3, b"x" * 300),
    ]
    assert [SipMessage.parse(m, stream=True).cseq[0] for m in items if isinstance(m, bytes)] == [
        1,
        2,
        3,
    ]


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_framer_buffer_types(wrap: type) -> None:
    items = collect(SipStreamFramer(), STREAM, 7, wrap)
    assert sum(isinstance(i, bytes) for i in items) == 3


def test_framer_compact_content_length_and_pong() -> None:
    msg = options(4).replace(b"Content-Length: 0", b"l : 3") + b"abc"
    framer = SipStreamFramer()
    # a lone CRLF (pong) before a message is skipped, not reported
    assert framer.feed(b"\r\n" + msg) == [msg]
    assert framer.buffered == 0


def test_framer_waits_on_partial_crlf() -> None:
    framer = SipStreamFramer()
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n") == [KEEPALIVE]


@pytest.mark.parametrize(
    ("data", "error", "text"),
    [
        (options(1).replace(b"Content-Length: 0\r\n", b""), MalformedMessage, "mandatory"),
        (
            options(1).replace(b"Content-Length: 0", b"Content-Length: 1x"),
            MalformedMessage,
            "bad Content-Length",
        ),
        (options(1, extra="Content-Length: 5\r\n"), MalformedMessage, "conflicting"),
        (
            options(1).replace(b"Content-Length: 0", b"Content-Length: 70000"),
            MessageTooLarge,
            "exceeds",
        ),
        (b"\rjunk", MalformedMessage, "stray CR"),
    ],
)
def test_framer_errors(data: bytes, error: type, text: str) -> None:
    framer = SipStreamFramer()
    items = framer.feed(data)
    assert len(items) == 1 and isinstance(items[0], error) and text in str(items[0])
    assert framer.failed
    assert framer.feed(options(2)) == []  # dead: the stream cannot be resynchronised


def test_framer_header_cap() -> None:
    framer = SipStreamFramer(max_message_size=1000)
    assert framer.feed(b"OPTIONS sip:x SIP/2.0\r\n") == []
    items = framer.feed(b"X-Pad: " + b"a" * 1000)
    assert len(items) == 1 and isinstance(items[0], MessageTooLarge)
    assert items[0].status_hint == 513


# -- real sockets, asyncio and uvloop ---------------------------------------------------


async def read_messages(reader: asyncio.StreamReader, n: int) -> list[SipMessage]:
    framer = SipStreamFramer()
    out: list[SipMessage] = []
    while len(out) < n:
        data = await asyncio.wait_for(reader.read(65536), 5)
        assert data, "connection closed early"
        for item in framer.feed(data):
            assert isinstance(item, bytes)
            out.append(SipMessage.parse(item, stream=True))
    return out


async def connect(
    addr: tuple[str, int], **kw: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(addr[0], addr[1], **kw)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 8, 13, 64, 4096])
def test_tcp_drip_fed(loop: Any, run: Any, make_node: Any, chunk_size: int) -> None:
    from sip.events import RequestReceived

    node = make_node()

    async def main() -> None:
        addr = await node.manager.listen("tcp:127.0.0.1:0")
        reader, writer = await connect(addr)
        data = b"\r\n\r\n" + options_bytes(5999, "TCP")
        for i in range(0, len(data), chunk_size):
            writer.write(data[i : i + chunk_size])
            await writer.drain()
            await asyncio.sleep(0)
        assert await asyncio.wait_for(reader.readexactly(2), 5) == b"\r\n"  # RFC 5626 pong
        (resp,) = await read_messages(reader, 1)
        assert isinstance(resp, SipResponse) and resp.status == 200
        (ev,) = await node.event(RequestReceived)
        assert ev.peer.transport == "tcp" and ev.peer.conn is not None
        assert node.manager.stats()["tcp"] == 1
        writer.close()

    run(main())


def test_tcp_pipelined_and_keepalive(loop: Any, run: Any, make_node: Any) -> None:
    node = make_node()

    async def main() -> None:
        addr = await node.manager.listen("tcp:127.0.0.1:0")
        reader, writer = await connect(addr)
        writer.write(b"".join(options_bytes(5999, "TCP") for _ in range(3)))
        replies = await read_messages(reader, 3)
        assert [r.status for r in replies if isinstance(r, SipResponse)] == [200, 200, 200]
        assert len({r.call_id for r in replies}) == 3
        writer.write(b"\r\n\r\n")
        assert await asyncio.wait_for(reader.readexactly(2), 5) == b"\r\n"
        writer.close()

    run(main())


def test_tcp_oversize_closes_connection(loop: Any, run: Any, make_node: Any) -> None:
    node = make_node()

    async def main() -> None:
        addr = await node.manager.listen("tcp:127.0.0.1:0")
        reader, writer = await connect(addr)
        writer.write(
            options_bytes(5999, "TCP").replace(b"Content-Length: 0", b"Content-Length: 100000")
        )
        assert await asyncio.wait_for(reader.read(), 5) == b""  # nothing sent, then EOF
        reader, writer = await connect(addr)
        writer.write(b"OPTIONS sip:x SIP/2.0\r\nX-Pad: " + b"a" * 70000)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        await asyncio.sleep(0.05)
        assert node.manager.stats()["tcp"] == 0

    run(main())


def test_tcp_idle_timeout(loop: Any, run: Any, make_node: Any) -> None:
    node = make_node(idle_timeout=0.3)

    async def main() -> None:
        addr = await node.manager.listen("tcp:127.0.0.1:0")
        # Before connecting: the server's idle timer starts at accept, which may come
        # before connect() returns here.
        start = loop.time()
        reader, writer = await connect(addr)
        await asyncio.sleep(0.1)
        assert node.manager.stats()["tcp"] == 1
        assert await asyncio.wait_for(reader.read(), 5) == b""
        # uvloop's clock counts whole milliseconds: compare at that resolution, or a float
        # subtraction such as 25796.785 - 25796.485 = 0.29999... fails an exact 0.300.
        assert 0.3 <= round(loop.time() - start, 3) < 2.0
        assert node.manager.stats()["tcp"] == 0

    run(main())


def test_tcp_connection_reuse(loop: Any, run: Any, make_node: Any) -> None:
    """Two requests from the stack to one TCP peer share one connection, both answered."""
    from sip.events import RequestReceived, ResponseReceived

    uac, uas = make_node(), make_node()

    async def main() -> None:
        local = await uac.manager.listen("tcp:127.0.0.1:0")
        host, port = await uas.manager.listen("tcp:127.0.0.1:0")
        for _ in range(2):
            req = options_request("tcp", host, port, local)
            uac.stack.send_request(req, Peer("tcp", host, port), loop.time())
            uac.manager.transmit()
        got = await uac.event(ResponseReceived, 2)
        assert [e.response.status for e in got] == [200, 200]
        reqs = await uas.event(RequestReceived, 2)
        assert reqs[0].peer.conn == reqs[1].peer.conn
        assert uac.manager.stats()["tcp"] == 1 and uas.manager.stats()["tcp"] == 1

    run(main())


def test_tcp_peer_closes_in_flight(loop: Any, run: Any, make_node: Any) -> None:
    """A connection closed under an in-flight transaction → TransportError for it."""
    from sip.events import TransportError

    uac = make_node()

    async def slam(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.close()

    async def main() -> None:
        local = await uac.manager.listen("tcp:127.0.0.1:0")
        server = await asyncio.start_server(slam, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]
        req = options_request("tcp", host, port, local)
        key = uac.stack.send_request(req, Peer("tcp", host, port), loop.time())
        uac.manager.transmit()
        events = await uac.event(TransportError)
        assert key in [e.key for e in events]
        server.close()
        # connect refused: also a TransportError
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
        sock.close()
        req = options_request("tcp", host, dead, local)
        key = uac.stack.send_request(req, Peer("tcp", host, dead), loop.time())
        uac.manager.transmit()
        events = await uac.event(TransportError, len(events) + 1)
        assert key in [e.key for e in events]

    run(main())


def test_tls_roundtrip(
    loop: Any, run: Any, make_node: Any, server_ctx: Any, client_ctx: Any
) -> None:
    from sip.events import ResponseReceived, TransportError

    uac = make_node(client_ssl_context=client_ctx)
    uas = make_node(ssl_context=server_ctx)
    strict = make_node()  # default client context: verifies against the system CAs

    async def main() -> None:
        host, port = await uas.manager.listen("tls:127.0.0.1:0")
        local = ("127.0.0.1", 5061)
        key = uac.stack.send_request(
            options_request("tls", host, port, local), Peer("tls", host, port), loop.time()
        )
        uac.manager.transmit()
        (ev,) = await uac.event(ResponseReceived)
        assert ev.key == key and ev.response.status == 200
        assert uas.manager.stats()["tls"] == 1
        # a raw TLS client too
        reader, writer = await connect((host, port), ssl=client_ctx)
        writer.write(options_bytes(5999, "TLS"))
        (resp,) = await read_messages(reader, 1)
        assert isinstance(resp, SipResponse) and resp.status == 200
        writer.close()
        # self-signed and not trusted → the handshake fails → TransportError
        key = strict.stack.send_request(
            options_request("tls", host, port, local), Peer("tls", host, port), loop.time()
        )
        strict.manager.transmit()
        (err,) = await strict.event(TransportError)
        assert err.key == key

    run(main())


def test_tls_trunk_context(
    loop: Any, run: Any, make_node: Any, server_ctx: Any, client_ctx: Any
) -> None:
    """A per-destination client context (a trunk's CA) overrides the verifying default."""
    from sip.events import ResponseReceived

    uac = make_node()
    uas = make_node(ssl_context=server_ctx)

    async def main() -> None:
        host, port = await uas.manager.listen("tls:127.0.0.1:0")
        uac.manager.set_client_ssl_context(host, port, client_ctx)
        req = options_request("tls", host, port, ("127.0.0.1", 5061))
        uac.stack.send_request(req, Peer("tls", host, port), loop.time())
        uac.manager.transmit()
        (ev,) = await uac.event(ResponseReceived)
        assert ev.response.status == 200

    run(main())
