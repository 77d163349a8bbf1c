"""SIP over WebSocket (RFC 7118) on RFC 6455, stdlib only; ``wss`` is the same over TLS.

The handshake (:func:`ws_handshake_response`) and the frame codec
(:class:`WsFrameParser`, :func:`ws_frame`) are sans-IO. :class:`WsConnection` plugs them
into the stream adapter: one WebSocket message = one SIP message (RFC 7118 §5), pings are
answered, the close handshake is honoured. WS connections are only ever opened by the
browser: a send with ``Peer.conn is None`` fails (RFC 7118 §5: no outbound WS here).
"""

from __future__ import annotations

import base64
import hashlib
import logging

from .transport_stream import PONG, StreamConnection, StreamTransport

logger = logging.getLogger("hotline.sip")

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
MAX_HANDSHAKE_SIZE = 8192
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_PROTOCOL = 1000, 1001, 1002
CLOSE_BAD_DATA, CLOSE_TOO_BIG = 1007, 1009


class WsProtocolError(Exception):
    """The peer broke RFC 6455; ``code`` is the close status to send (§7.4.1)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def ws_accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + WS_GUID).digest()).decode()


def ws_handshake_response(request: bytes) -> tuple[bytes, bool]:
    """Answer an HTTP/1.1 Upgrade request (RFC 6455 §4.2, RFC 7118 §4).

    :param request: the request up to and including the blank line.
    :returns: the response bytes and whether the connection is now a SIP WebSocket.
    """
    lines = request.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()

    def tokens(name: str) -> list[str]:
        return [t.strip() for t in headers.get(name, "").split(",") if t.strip()]

    if len(parts) != 3 or parts[0] != "GET" or parts[2] != "HTTP/1.1":
        return _http_error(400, "Bad Request", "expected GET ... HTTP/1.1"), False
    if "websocket" not in [t.lower() for t in tokens("upgrade")] or "upgrade" not in [
        t.lower() for t in tokens("connection")
    ]:
        return _http_error(400, "Bad Request", "not a WebSocket upgrade"), False
    if headers.get("sec-websocket-version") != "13":
        return _http_error(426, "Upgrade Required", "WebSocket version 13 only"), False
    key = headers.get("sec-websocket-key", "")
    try:
        raw = base64.b64decode(key, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 16:
        return _http_error(400, "Bad Request", "bad Sec-WebSocket-Key"), False
    # RFC 7118 §4.1: the "sip" subprotocol is mandatory and echoed.
    if "sip" not in tokens("sec-websocket-protocol"):
        return _http_error(400, "Bad Request", "Sec-WebSocket-Protocol: sip required"), False
    response = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {ws_accept_key(key)}\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
    )
    return response.encode("ascii"), True


def _http_error(status: int, reason: str, text: str) -> bytes:
    extra = "Sec-WebSocket-Version: 13\r\n" if status == 426 else ""
    return (
        f"HTTP/1.1 {status} {reason}\r\n{extra}Connection: close\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {len(text)}\r\n\r\n{text}"
    ).encode("ascii")


def _unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    if not n:
        return payload
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def ws_frame(opcode: int, payload: bytes = b"", *, mask: bytes | None = None) -> bytes:
    """Build one final frame; server frames are unmasked (RFC 6455 §5.1).

    :param opcode: ``OP_TEXT``, ``OP_BINARY``, ``OP_CLOSE``, ``OP_PING`` or ``OP_PONG``.
    :param mask: 4 masking bytes (client side and tests only).
    """
    n = len(payload)
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes((0x80 | opcode, mbit | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, mbit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, mbit | 127)) + n.to_bytes(8, "big")
    if mask is not None:
        return head + mask + _unmask(payload, mask)
    return head + payload


class WsFrameParser:
    """Sans-IO RFC 6455 §5 frame parser (server side: client frames must be masked).

    :param max_message_size: cap on a (reassembled) message; exceeding it is 1009.
    """

    def __init__(self, max_message_size: int, *, require_mask: bool = True) -> None:
        self.max_message_size = max_message_size
        self.require_mask = require_mask
        self._buf = bytearray()
        self._frag_op: int | None = None
        self._frags: list[bytes] = []
        self._frag_size = 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[int, bytes]]:
        """Add bytes; return complete (opcode, payload) messages and control frames.

        :raises WsProtocolError: the stream is broken; send a close with ``code``.
        """
        buf = self._buf
        buf += data
        out: list[tuple[int, bytes]] = []
        pos = 0
        while len(buf) - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            fin, opcode, masked, n = b0 & 0x80, b0 & 0x0F, b1 & 0x80, b1 & 0x7F
            if b0 & 0x70:
                raise WsProtocolError(CLOSE_PROTOCOL, "RSV bits set without an extension")
            if opcode not in (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG):
                raise WsProtocolError(CLOSE_PROTOCOL, f"unknown opcode {opcode:#x}")
            if self.require_mask and not masked:
                raise WsProtocolError(CLOSE_PROTOCOL, "client frames must be masked")
            hlen = 2
            if n == 126:
                hlen = 4
            elif n == 127:
                hlen = 10
            if len(buf) - pos < hlen:
                break
            if n == 126:
                n = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            elif n == 127:
                n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                if n >> 63:
                    raise WsProtocolError(CLOSE_PROTOCOL, "64-bit length with the MSB set")
            if opcode >= OP_CLOSE:
                if n > 125 or not fin:  # §5.5: control frames are short and unfragmented
                    raise WsProtocolError(CLOSE_PROTOCOL, "bad control frame")
            elif self._frag_size + n > self.max_message_size:
                raise WsProtocolError(CLOSE_TOO_BIG, f"message over {self.max_message_size}")
            mlen = 4 if masked else 0
            end = pos + hlen + mlen + n
            if len(buf) < end:
                break
            payload = bytes(buf[pos + hlen + mlen : end])
            if masked:
                payload = _unmask(payload, bytes(buf[pos + hlen : pos + hlen + 4]))
            pos = end
            if opcode >= OP_CLOSE:
                if opcode == OP_CLOSE and len(payload) == 1:
                    raise WsProtocolError(CLOSE_PROTOCOL, "1-byte close payload")
                out.append((opcode, payload))
                continue
            self._data_frame(opcode, bool(fin), payload, out)
        del buf[:pos]
        return out

    def _data_frame(
        self, opcode: int, fin: bool, payload: bytes, out: list[tuple[int, bytes]]
    ) -> None:
        if opcode == OP_CONT:
            if self._frag_op is None:
                raise WsProtocolError(CLOSE_PROTOCOL, "continuation without a start")
        elif self._frag_op is not None:
            raise WsProtocolError(CLOSE_PROTOCOL, "new message inside a fragmented one")
        else:
            self._frag_op = opcode
        self._frags.append(payload)
        self._frag_size += len(payload)
        if not fin:
            return
        message = b"".join(self._frags)
        op = self._frag_op
        self._frag_op, self._frags, self._frag_size = None, [], 0
        if op == OP_TEXT:
            try:
                message.decode("utf-8")
            except UnicodeDecodeError:
                raise WsProtocolError(CLOSE_BAD_DATA, "text message is not UTF-8") from None
        out.append((op, message))


class WsConnection(StreamConnection):
    """One WebSocket connection carrying SIP (server side)."""

    def __init__(self, adapter: StreamTransport, outbound: bool) -> None:
        super().__init__(adapter, outbound)
        self.open = False
        self._handshake: bytearray | None = bytearray()
        self._parser = WsFrameParser(adapter.manager.max_message_size)
        self._close_sent = False

    def on_data(self, data: bytes) -> None:
        """Handshake first, then frames."""
        if self._handshake is not None:
            self._handshake += data
            end = self._handshake.find(b"\r\n\r\n")
            if end < 0:
                if len(self._handshake) > MAX_HANDSHAKE_SIZE:
                    self.write(_http_error(431, "Request Header Fields Too Large", "too big"))
                    self.close()
                return
            response, ok = ws_handshake_response(bytes(self._handshake[: end + 4]))
            rest = bytes(self._handshake[end + 4 :])
            self._handshake = None
            self.write(response)
            if not ok:
                logger.info("%s: WebSocket handshake refused", self.peer)
                self.close()
                return
            self.open = True
            data = rest
            if not data:
                return
        try:
            frames = self._parser.feed(data)
        except WsProtocolError as e:
            logger.info("%s: %s; closing with %d", self.peer, e, e.code)
            self.send_close(e.code)
            self.close()
            return
        for opcode, payload in frames:
            if self.closing:
                return
            if opcode in (OP_TEXT, OP_BINARY):
                if payload == b"\r\n\r\n":  # SIP.js-style keep-alive ping in a message
                    self.write(ws_frame(OP_TEXT, PONG))
                elif payload.strip(b"\r\n"):
                    self.adapter.manager.receive(payload, self.peer)
            elif opcode == OP_PING:
                self.write(ws_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                # §5.5.1: echo the status code, then (server) close the TCP connection.
                self.send_close(int.from_bytes(payload[:2], "big") if payload else None)
                self.close()

    def send_message(self, data: bytes) -> bool:
        """Send one SIP message as one text (or, if not UTF-8, binary) message."""
        if not self.open or self._close_sent:
            return False
        try:
            data.decode("utf-8")
            opcode = OP_TEXT
        except UnicodeDecodeError:
            opcode = OP_BINARY
        return self.write(ws_frame(opcode, data))

    def send_close(self, code: int | None = CLOSE_GOING_AWAY) -> None:
        """Start (or answer) the close handshake."""
        if self.open and not self._close_sent:
            self.write(ws_frame(OP_CLOSE, code.to_bytes(2, "big") if code else b""))
            self._close_sent = True

    def close(self) -> None:
        """Send a close frame if none was sent, then close the connection."""
        if self.open and not self._close_sent and not self.closing:
            self.send_close(CLOSE_GOING_AWAY)
        super().close()


class WsTransport(StreamTransport):
    """The WS/WSS adapter: listeners only, never connects out."""

    connection_class = WsConnection
    can_connect = False
