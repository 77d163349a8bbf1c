"""Two-peer in-process harnesses for the SIP stack (aioquic ``client_and_server`` /
``transfer`` / ``roundtrip`` and h11 ``ConnectionPair`` style).

Two real :class:`SipStack` objects are wired to each other by address: a datagram is
delivered only if its destination is the other node's address, so wrong response
routing (Via, received, rport) makes a test fail instead of passing silently.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sip.events import SipEvent
from sip.message import SipRequest
from sip.peer import Peer
from sip.stack import SipStack

_call_ids = itertools.count(1)


@dataclass
class Node:
    """One side: a stack, the address the other side sees, and what it received."""

    name: str
    stack: SipStack
    peer: Peer
    """This node's address as the other side sees it (source of its datagrams)."""
    misrouted: list[tuple[bytes, Peer]] = field(default_factory=list)
    """Datagrams it sent to an address where nobody listens."""
    sent: list[bytes] = field(default_factory=list)
    """Every datagram it put on the wire (delivered or lost), in order."""

    def events(self) -> list[SipEvent]:
        """Drain every pending event."""
        out = []
        while (ev := self.stack.next_event()) is not None:
            out.append(ev)
        return out

    def get_timer(self) -> float | None:
        return self.stack.get_timer()

    def handle_timer(self, now: float) -> None:
        self.stack.handle_timer(now)


class LossPattern:
    """Decides which datagrams the network drops.

    :param drop: called with each datagram; True drops it.
    """

    def __init__(self, drop: Callable[[bytes], bool]) -> None:
        self._drop = drop
        self.dropped: list[bytes] = []

    def __call__(self, data: bytes) -> bool:
        if self._drop(data):
            self.dropped.append(data)
            return True
        return False

    @classmethod
    def first(cls, n: int, startswith: bytes) -> LossPattern:
        """Drop the first ``n`` datagrams that start with ``startswith``."""
        left = [n]

        def drop(data: bytes) -> bool:
            if left[0] > 0 and data.startswith(startswith):
                left[0] -= 1
                return True
            return False

        return cls(drop)

    @classmethod
    def all(cls, startswith: bytes) -> LossPattern:
        """Drop every datagram that starts with ``startswith``."""
        return cls(lambda data: data.startswith(startswith))


@contextmanager
def uac_uas_pair(
    transport: str = "udp", *, nat: bool = False, **patches: Any
) -> Iterator[tuple[Node, Node]]:
    """Two stacks wired to each other.

    :param transport: ``udp``, ``tcp``, ``tls``...
    :param nat: the UAC puts a private address in its Via (192.168.1.10:5060) but is
        seen from 203.0.113.7:40000, as behind a NAT.
    :param patches: SipStack keyword arguments (``t1=...``).
    """
    reliable = transport in ("tcp", "tls", "ws", "wss")
    a_seen = Peer(transport, "203.0.113.7", 40000, 1 if reliable else None) if nat else Peer(
        transport, "10.0.0.1", 5060, 1 if reliable else None
    )
    a_via = ("192.168.1.10", 5060) if nat else ("10.0.0.1", 5060)
    b_seen = Peer(transport, "10.0.0.2", 5060, 2 if reliable else None)
    a = Node("uac", SipStack(sent_by={transport: a_via}, **patches), a_seen)
    b = Node("uas", SipStack(sent_by={transport: ("10.0.0.2", 5060)}, **patches), b_seen)
    yield a, b


def _same_addr(dest: Peer, node: Node) -> bool:
    return (dest.transport, dest.host, dest.port) == (
        node.peer.transport,
        node.peer.host,
        node.peer.port,
    ) and (dest.conn is None or node.peer.conn is None or dest.conn == node.peer.conn)


def _move(src: Node, dst: Node, now: float, loss: LossPattern | None) -> int:
    n = 0
    for data, dest in src.stack.datagrams_to_send(now):
        src.sent.append(data)
        if loss is not None and loss(data):
            continue
        if not _same_addr(dest, dst):
            src.misrouted.append((data, dest))
            continue
        dst.stack.receive(data, src.peer, now)
        n += 1
    return n


def transfer(a: Node, b: Node, now: float, loss: LossPattern | None = None) -> int:
    """Move what is queued a→b, then b→a; return how many datagrams were delivered.

    :param loss: drops chosen datagrams in both directions.
    """
    return _move(a, b, now, loss) + _move(b, a, now, loss)


def roundtrip(a: Node, b: Node, now: float, loss: LossPattern | None = None) -> int:
    """Transfer until nothing is queued on either side; return the datagram count."""
    total = 0
    while True:
        n = transfer(a, b, now, loss)
        if n == 0 and not a.stack.stats()["outgoing"] and not b.stack.stats()["outgoing"]:
            return total
        total += n


def advance(obj: Node | SipStack, to: float | None = None) -> float:
    """Run ``obj``'s timers up to ``to`` (default: its next deadline); return the time."""
    when = obj.get_timer() if to is None else to
    assert when is not None, "no timer armed"
    obj.handle_timer(when)
    return when


def run_until(a: Node, b: Node, end: float, loss: LossPattern | None = None) -> float:
    """Fire both nodes' timers in deadline order up to ``end``, transferring after each."""
    now = 0.0
    while True:
        times = [t for t in (a.get_timer(), b.get_timer()) if t is not None and t <= end]
        if not times:
            return now
        now = min(times)
        a.handle_timer(now)
        b.handle_timer(now)
        roundtrip(a, b, now, loss)


def make_request(
    node: Node,
    method: str,
    to: Node,
    *,
    call_id: str | None = None,
    from_tag: str = "ft1",
    cseq: int = 1,
    body: bytes = b"",
) -> SipRequest:
    """An out-of-dialog request from ``node`` to ``to``, with its Via already added."""
    uri = f"sip:bob@{to.peer.host}:{to.peer.port}"
    host, port = node.stack.sent_by[node.peer.transport]
    req = SipRequest(method, uri)
    req.add("Max-Forwards", "70")
    req.add("From", f"<sip:alice@{host}>;tag={from_tag}")
    req.add("To", f"<{uri}>")
    req.add("Call-ID", call_id or f"call-{next(_call_ids)}@test")
    req.add("CSeq", f"{cseq} {method}")
    req.add("Contact", f"<sip:alice@{host}:{port}>")
    req.body = body
    node.stack.add_via(req, node.peer.transport)
    return req


def options_bytes(port: int, transport: str = "UDP", branch: str | None = None) -> bytes:
    branch = branch or f"z9hG4bK-{uuid.uuid4().hex}"
    return (
        "OPTIONS sip:hotline@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:{port};branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:probe@127.0.0.1>;tag=probe1\r\n"
        "To: <sip:hotline@127.0.0.1>\r\n"
        f"Call-ID: {uuid.uuid4().hex}@127.0.0.1\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def options_request(transport: str, host: str, port: int, local: tuple[str, int]) -> SipRequest:
    """An OPTIONS for ``stack.send_request`` (the TU writes Via/Contact from local_address)."""
    return SipRequest(
        "OPTIONS",
        f"sip:probe@{host}:{port}",
        [
            (
                "Via",
                f"SIP/2.0/{transport.upper()} {local[0]}:{local[1]}"
                f";branch=z9hG4bK-{uuid.uuid4().hex}",
            ),
            ("Max-Forwards", "70"),
            ("From", f"<sip:hotline@{local[0]}>;tag=hl1"),
            ("To", f"<sip:probe@{host}>"),
            ("Call-ID", f"{uuid.uuid4().hex}@{local[0]}"),
            ("CSeq", "1 OPTIONS"),
            ("Content-Length", "0"),
        ],
    )
