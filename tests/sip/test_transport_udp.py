"""UDP transport and the manager's transmit()/timer, through a real SipStack, on both loops."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from sip.message import SipMessage, SipResponse
from sip.peer import Peer
from sip.transport import parse_listen_spec

from .helpers import options_bytes, options_request


async def udp_exchange(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, data: bytes, addr: tuple[str, int]
) -> bytes:
    sock.sendto(data, addr)
    reply, _ = await loop.run_in_executor(None, sock.recvfrom, 65535)
    return reply


@pytest.fixture
def client_sock() -> Any:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def test_parse_listen_spec() -> None:
    assert parse_listen_spec("udp:0.0.0.0:5060") == ("udp", "0.0.0.0", 5060)
    assert parse_listen_spec("WSS:[::1]:443") == ("wss", "::1", 443)
    for bad in ("sctp:1.2.3.4:5", "udp:1.2.3.4", "udp:1.2.3.4:99999", "tcp::5060"):
        with pytest.raises(ValueError, match="listen spec"):
            parse_listen_spec(bad)


def test_options_roundtrip_and_malformed(
    loop: Any, run: Any, make_node: Any, client_sock: socket.socket
) -> None:
    from sip.events import MalformedMessageReceived, RequestReceived

    node = make_node()

    async def main() -> None:
        addr = await node.manager.listen("udp:127.0.0.1:0")
        assert node.manager.local_address("udp") == addr
        cport = client_sock.getsockname()[1]
        reply = SipMessage.parse(await udp_exchange(loop, client_sock, options_bytes(cport), addr))
        assert isinstance(reply, SipResponse) and reply.status == 200
        (ev,) = await node.event(RequestReceived)
        assert ev.peer == Peer("udp", "127.0.0.1", cport)
        # A bad Content-Length: the stack answers 400 and the server keeps going.
        bad = options_bytes(cport).replace(b"Content-Length: 0", b"Content-Length: zero")
        reply = SipMessage.parse(await udp_exchange(loop, client_sock, bad, addr))
        assert isinstance(reply, SipResponse) and reply.status == 400
        await node.event(MalformedMessageReceived)
        # pure garbage is dropped; the next request is still answered
        client_sock.sendto(b"\x00\xffgarbage", addr)
        reply = SipMessage.parse(await udp_exchange(loop, client_sock, options_bytes(cport), addr))
        assert isinstance(reply, SipResponse) and reply.status == 200

    run(main())


def test_large_datagram(loop: Any, run: Any, make_node: Any, client_sock: socket.socket) -> None:
    from sip.events import TransportError

    node = make_node()

    async def main() -> None:
        addr = await node.manager.listen("udp:127.0.0.1:0")
        cport = client_sock.getsockname()[1]
        big = options_bytes(cport).replace(
            b"Content-Length: 0\r\n\r\n",
            b"X-Pad: " + b"p" * 20000 + b"\r\nContent-Length: 0\r\n\r\n",
        )
        reply = SipMessage.parse(await udp_exchange(loop, client_sock, big, addr))
        assert isinstance(reply, SipResponse) and reply.status == 200
        # a message that cannot fit any datagram is a transport error, not an exception
        req = options_request("udp", "127.0.0.1", cport, addr)
        req.body = b"x" * 70000
        req.set("Content-Length", "70000")
        key = node.stack.send_request(req, Peer("udp", "127.0.0.1", cport), loop.time())
        node.manager.transmit()
        (ev,) = await node.event(TransportError)
        assert ev.key == key and "datagram" in ev.reason

    run(main())


def test_retransmission_timer_and_icmp_error(loop: Any, run: Any, make_node: Any) -> None:
    """The single call_at drives RFC 3261 Timer E; ICMP port unreachable → TransportError."""
    from sip.events import TransportError

    node = make_node()
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    silent.settimeout(5)
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()

    async def main() -> None:
        local = await node.manager.listen("udp:127.0.0.1:0")
        host, port = silent.getsockname()
        now = loop.time()
        node.stack.send_request(
            options_request("udp", host, port, local), Peer("udp", host, port), now
        )
        node.manager.transmit()
        assert node.manager._timer_at == node.stack.get_timer() is not None
        handle = node.manager._timer
        # a later deadline does not re-arm the single timer
        req2 = options_request("udp", host, port, local)
        node.stack.send_request(req2, Peer("udp", host, port), loop.time() + 0.01)
        node.manager.transmit()
        assert node.manager._timer is handle
        first, _ = await loop.run_in_executor(None, silent.recvfrom, 65535)
        seen = [first]
        while seen.count(first) < 2:
            data, _ = await loop.run_in_executor(None, silent.recvfrom, 65535)
            seen.append(data)
        assert loop.time() - now >= 0.45  # Timer E = T1

        req = options_request("udp", "127.0.0.1", closed_port, local)
        node.stack.send_request(req, Peer("udp", "127.0.0.1", closed_port), loop.time())
        node.manager.transmit()
        (ev,) = await node.event(TransportError)
        assert ev.peer == Peer("udp", "127.0.0.1", closed_port)
        assert ev.key is not None

    try:
        run(main())
    finally:
        silent.close()


def test_unknown_transport_is_reported(loop: Any, run: Any, make_node: Any) -> None:
    from sip.events import TransportError

    node = make_node()

    async def main() -> None:
        local = await node.manager.listen("udp:127.0.0.1:0")
        req = options_request("ws", "127.0.0.1", 9, local)
        node.stack.send_request(req, Peer("ws", "127.0.0.1", 9), loop.time())
        node.manager.transmit()  # WS never connects out
        (ev,) = await node.event(TransportError)
        assert ev.peer.transport == "ws"

    run(main())


SIPP_OPTIONS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="options">
  <send retrans="500">
    <![CDATA[
OPTIONS sip:hotline@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:sipp@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:hotline@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 OPTIONS
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed")
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sipp_options(loop: Any, run: Any, make_node: Any, tmp_path: Path, transport: str) -> None:
    """The real sipp binary sends 5 OPTIONS; every one must get our 200."""
    from sip.events import RequestReceived

    node = make_node()
    scenario = tmp_path / "options.xml"
    scenario.write_text(SIPP_OPTIONS)

    async def main() -> subprocess.CompletedProcess[bytes]:
        host, port = await node.manager.listen(f"{transport}:127.0.0.1:0")
        cmd = [
            "sipp",
            f"{host}:{port}",
            "-sf",
            str(scenario),
            "-m",
            "5",
            "-r",
            "50",
            "-timeout",
            "10s",
            "-timeout_error",
            "-i",
            "127.0.0.1",
            "-t",
            "u1" if transport == "udp" else "t1",
            "-nostdin",
            "-trace_err",
            "-error_file",
            str(tmp_path / "err.log"),
        ]
        run_sipp = partial(subprocess.run, cmd, capture_output=True, timeout=20, cwd=tmp_path)
        result: subprocess.CompletedProcess[bytes] = await loop.run_in_executor(None, run_sipp)
        return result

    result = run(main(), timeout=25)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    got = [e for e in node.events if isinstance(e, RequestReceived)]
    assert len(got) == 5 and all(e.peer.transport == transport for e in got)
