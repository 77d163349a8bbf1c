"""WebSocket transport: the sans-IO handshake and frame codec, then aiohttp as a real peer."""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

import pytest

from sip.message import SipMessage, SipResponse
from sip.transport_ws import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    WsFrameParser,
    WsProtocolError,
    ws_accept_key,
    ws_frame,
    ws_handshake_response,
)

MASK = b"\x37\xfa\x21\x3d"


def upgrade(protocol: str | None = "sip", version: str = "13", key: str | None = None) -> bytes:
    key = key or base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /sip HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: keep-alive, Upgrade",
        f"Sec-WebSocket-Key: {key}",
        f"Sec-WebSocket-Version: {version}",
    ]
    if protocol:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_accept_key_rfc6455_example() -> None:
    # RFC 6455 §1.3
    assert ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_handshake_accepts_and_echoes_sip() -> None:
    resp, ok = ws_handshake_response(upgrade("foo, sip", key="dGhlIHNhbXBsZSBub25jZQ=="))
    assert ok
    assert resp.startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in resp
    assert b"Sec-WebSocket-Protocol: sip\r\n" in resp


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (upgrade(None), b"400"),
        (upgrade("xmpp"), b"400"),
        (upgrade(version="8"), b"426"),
        (upgrade(key="c2hvcnQ="), b"400"),
        (upgrade().replace(b"GET", b"POST"), b"400"),
        (upgrade().replace(b"Upgrade: websocket", b"Upgrade: h2c"), b"400"),
    ],
)
def test_handshake_refusals(request_bytes: bytes, status: bytes) -> None:
    resp, ok = ws_handshake_response(request_bytes)
    assert not ok
    assert resp.split(b" ")[1] == status
    assert b"Connection: close" in resp


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 70000])
def test_frame_roundtrip_lengths(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    parser = WsFrameParser(1 << 20)
    assert parser.feed(ws_frame(OP_BINARY, payload, mask=MASK)) == [(OP_BINARY, payload)]


def test_frame_server_frames_unmasked() -> None:
    frame = ws_frame(OP_TEXT, b"hello")
    assert frame == b"\x81\x05hello"
    assert WsFrameParser(100, require_mask=False).feed(frame) == [(OP_TEXT, b"hello")]


def frag(opcode: int, payload: bytes, fin: bool) -> bytes:
    frame = bytearray(ws_frame(opcode, payload, mask=MASK))
    if not fin:
        frame[0] &= 0x7F
    return bytes(frame)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 8, 13, 1000])
def test_fragmented_message_with_interleaved_ping(chunk_size: int) -> None:
    stream = (
        frag(OP_TEXT, b"OPTIONS ", False)
        + frag(OP_PING, b"p", True)
        + frag(OP_CONT, b"sip:x ", False)
        + frag(OP_CONT, b"SIP/2.0", True)
        + frag(OP_CLOSE, b"\x03\xe8", True)
    )
    parser = WsFrameParser(1000)
    out: list[tuple[int, bytes]] = []
    for i in range(0, len(stream), chunk_size):
        out += parser.feed(memoryview(stream)[i : i + chunk_size])
    assert out == [(OP_PING, b"p"), (OP_TEXT, b"OPTIONS sip:x SIP/2.0"), (OP_CLOSE, b"\x03\xe8")]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (ws_frame(OP_TEXT, b"x"), 1002),  # unmasked client frame
        (bytes([0x81 | 0x40, 0x80]) + MASK, 1002),  # RSV1
        (bytes([0x83, 0x80]) + MASK, 1002),  # reserved opcode
        (frag(OP_CONT, b"x", True), 1002),  # continuation without start
        (frag(OP_TEXT, b"a", False) + frag(OP_TEXT, b"b", True), 1002),
        (frag(OP_PING, b"x", False), 1002),  # fragmented control frame
        (ws_frame(OP_PING, b"x" * 126, mask=MASK), 1002),
        (ws_frame(OP_CLOSE, b"\x03", mask=MASK), 1002),
        (ws_frame(OP_TEXT, b"\xff\xfe", mask=MASK), 1007),
        (ws_frame(OP_BINARY, b"x" * 2000, mask=MASK)[:20], 1009),  # cap checked on the header
        (frag(OP_TEXT, b"x" * 600, False) + frag(OP_CONT, b"x" * 600, True), 1009),
        (bytes([0x82, 0xFF]) + (1 << 63).to_bytes(8, "big") + MASK, 1002),
    ],
)
def test_frame_errors(data: bytes, code: int) -> None:
    with pytest.raises(WsProtocolError) as info:
        WsFrameParser(1000).feed(data)
    assert info.value.code == code


# -- real sockets: aiohttp's WebSocket client is the peer, on asyncio and uvloop ----------


def ws_options(branch: str = "z9hG4bK-ws-1") -> str:
    return (
        "OPTIONS sip:hotline@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/WS df7jal23ls0d.invalid;branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:agent@invalid>;tag=ws1\r\n"
        "To: <sip:hotline@127.0.0.1>\r\n"
        f"Call-ID: {branch}@invalid\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    )


@pytest.mark.parametrize("secure", [False, True])
def test_ws_sip_roundtrip_ping_close(
    loop: Any, run: Any, make_node: Any, server_ctx: Any, client_ctx: Any, secure: bool
) -> None:
    aiohttp = pytest.importorskip("aiohttp")
    from sip.events import RequestReceived

    node = make_node(ssl_context=server_ctx)
    scheme = "wss" if secure else "ws"

    async def main() -> None:
        host, port = await node.manager.listen(f"{scheme}:127.0.0.1:0")
        url = f"{scheme}://{host}:{port}/"
        async with aiohttp.ClientSession() as session:
            tls = {"ssl": client_ctx} if secure else {}
            async with session.ws_connect(url, protocols=("sip",), autoping=False, **tls) as ws:
                assert ws.protocol == "sip"
                await ws.send_str(ws_options())
                msg = await ws.receive(timeout=5)
                assert msg.type == aiohttp.WSMsgType.TEXT
                resp = SipMessage.parse(msg.data.encode())
                assert isinstance(resp, SipResponse) and resp.status == 200
                (ev,) = await node.event(RequestReceived)
                assert ev.peer.transport == scheme and ev.peer.conn is not None
                assert node.manager.stats()[scheme] == 1
                await ws.ping(b"are-you-there")
                pong = await ws.receive(timeout=5)
                assert pong.type == aiohttp.WSMsgType.PONG and pong.data == b"are-you-there"
                # SIP.js-style keep-alive inside a message
                await ws.send_str("\r\n\r\n")
                assert (await ws.receive(timeout=5)).data == "\r\n"
                # a binary message carries SIP as well
                await ws.send_bytes(ws_options("z9hG4bK-ws-2").encode())
                msg = await ws.receive(timeout=5)
                assert SipMessage.parse(msg.data.encode()).call_id == "z9hG4bK-ws-2@invalid"
                assert await ws.close()
                assert ws.close_code == 1000
        for _ in range(50):
            if node.manager.stats()[scheme] == 0:
                break
            await asyncio.sleep(0.02)
        assert node.manager.stats()[scheme] == 0

    run(main())


def test_ws_handshake_requires_sip(loop: Any, run: Any, make_node: Any) -> None:
    aiohttp = pytest.importorskip("aiohttp")
    node = make_node()

    async def main() -> None:
        host, port = await node.manager.listen("ws:127.0.0.1:0")
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await session.ws_connect(f"ws://{host}:{port}/", protocols=("xmpp",))
            assert info.value.status == 400

    run(main())


def test_ws_oversize_and_bad_frames_close(loop: Any, run: Any, make_node: Any) -> None:
    aiohttp = pytest.importorskip("aiohttp")
    node = make_node(max_message_size=4096)

    async def main() -> None:
        host, port = await node.manager.listen("ws:127.0.0.1:0")
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"ws://{host}:{port}/", protocols=("sip",)) as ws:
                await ws.send_bytes(b"x" * 5000)
                msg = await ws.receive(timeout=5)
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                assert ws.close_code == 1009
        # unmasked frame from a raw socket: protocol error 1002, then EOF
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(upgrade() + ws_frame(OP_TEXT, b"hi"))
        data = await asyncio.wait_for(reader.read(), 5)
        assert data.startswith(b"HTTP/1.1 101 ")
        assert data.endswith(ws_frame(OP_CLOSE, (1002).to_bytes(2, "big")))
        writer.close()

    run(main())


def test_ws_send_without_connection_fails(loop: Any, run: Any, make_node: Any) -> None:
    """The stack can answer over a WS connection id but never opens a WS connection."""
    from sip.events import TransportError
    from sip.message import SipRequest
    from sip.peer import Peer

    node = make_node()

    async def main() -> None:
        await node.manager.listen("ws:127.0.0.1:0")
        req = SipRequest(
            "OPTIONS",
            "sip:agent@127.0.0.1",
            [
                ("Via", "SIP/2.0/WS 127.0.0.1;branch=z9hG4bK-out-1"),
                ("From", "<sip:hotline@127.0.0.1>;tag=a"),
                ("To", "<sip:agent@127.0.0.1>"),
                ("Call-ID", "out-1@127.0.0.1"),
                ("CSeq", "1 OPTIONS"),
                ("Max-Forwards", "70"),
                ("Content-Length", "0"),
            ],
        )
        key = node.stack.send_request(req, Peer("ws", "127.0.0.1", 9), loop.time())
        node.manager.transmit()
        (ev,) = await node.event(TransportError)
        assert ev.key == key

    run(main())


def test_ws_idle_close_sends_going_away(loop: Any, run: Any, make_node: Any) -> None:
    aiohttp = pytest.importorskip("aiohttp")
    node = make_node(ws_idle_timeout=0.2)

    async def main() -> None:
        host, port = await node.manager.listen("ws:127.0.0.1:0")
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"ws://{host}:{port}/", protocols=("sip",)) as ws:
                msg = await ws.receive(timeout=5)
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                assert ws.close_code == 1001

    run(main())
