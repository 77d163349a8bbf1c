"""Hypothesis mutates real messages and feeds them to SipStack.receive: no exception
escapes, and once a well-behaved TU has answered and the timers have run out, no
state is left (stats return to zero)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sip.events import RequestReceived, ResponseReceived
from sip.message import SipRequest, make_response
from sip.peer import Peer
from sip.stack import SipStack

SRC = Peer("udp", "10.0.0.1", 5060)
ME = Peer("udp", "10.0.0.2", 5060)
BR = "z9hG4bKfuzzc"  # branch of our own client INVITE, so responses can match it

COMMON = (
    "From: Alice <sip:alice@10.0.0.1>;tag=ft\r\n"
    "To: <sip:bob@10.0.0.2>{to_tag}\r\n"
    "Call-ID: fuzz@10.0.0.1\r\n"
    "CSeq: {cseq}\r\n"
)


def _req(method: str, branch: str, cseq: str, to_tag: str = "", body: str = "") -> bytes:
    text = (
        f"{method} sip:bob@10.0.0.2 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 10.0.0.1:5060;branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        + COMMON.format(to_tag=to_tag, cseq=cseq)
        + "Contact: <sip:alice@10.0.0.1:5060>\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    )
    return text.encode()


def _resp(status: str, cseq: str, to_tag: str = ";tag=tt") -> bytes:
    text = (
        f"SIP/2.0 {status}\r\n"
        f"Via: SIP/2.0/UDP 10.0.0.2:5060;branch={BR};received=10.0.0.2\r\n"
        + COMMON.format(to_tag=to_tag, cseq=cseq)
        + "Contact: <sip:bob@10.0.0.2>\r\nContent-Length: 0\r\n\r\n"
    )
    return text.encode()


SEEDS = [
    _req("INVITE", "z9hG4bKs1", "1 INVITE", body="v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\n"),
    _req("OPTIONS", "z9hG4bKs2", "2 OPTIONS"),
    _req("BYE", "z9hG4bKs3", "3 BYE", to_tag=";tag=x"),
    _req("CANCEL", "z9hG4bKs1", "1 CANCEL"),
    _req("ACK", "z9hG4bKs1", "1 ACK", to_tag=";tag=x"),
    _req("ACK", "z9hG4bKs9", "1 ACK", to_tag=";tag=x"),
    _req("INVITE", "oldstyle", "4 INVITE"),
    _resp("180 Ringing", "1 INVITE"),
    _resp("200 OK", "1 INVITE"),
    _resp("486 Busy Here", "1 INVITE"),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "delete", "dup", "insert", "random"]))
        if op == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        elif op in ("delete", "dup"):
            lines = bytes(data).split(b"\r\n")
            if len(lines) > 1:
                i = draw(st.integers(0, len(lines) - 1))
                if op == "delete":
                    del lines[i]
                else:
                    lines.insert(i, lines[i])
                data = bytearray(b"\r\n".join(lines))
        elif op == "insert":
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "random":
            data = bytearray(draw(st.binary(max_size=200)))
    return bytes(data)


def _client_invite(stack: SipStack) -> None:
    req = SipRequest("INVITE", "sip:alice@10.0.0.1")
    req.add("Via", f"SIP/2.0/UDP 10.0.0.2:5060;branch={BR}")
    req.add("From", "Alice <sip:alice@10.0.0.1>;tag=ft")
    req.add("To", "<sip:bob@10.0.0.2>")
    req.add("Call-ID", "fuzz@10.0.0.1")
    req.add("CSeq", "1 INVITE")
    stack.send_request(req, SRC, 0.0)


def _tu(stack: SipStack, now: float) -> None:
    """A well-behaved TU: answers every request, cancels an INVITE that rings."""
    while (ev := stack.next_event()) is not None:
        if isinstance(ev, RequestReceived) and ev.key is not None:
            status = 486 if ev.request.method == "INVITE" else 200
            stack.send_response(make_response(ev.request, status, to_tag="me"), now)
        elif isinstance(ev, ResponseReceived) and ev.response.status < 200:
            stack.cancel(ev.key, now)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=6), st.booleans())
def test_mutated_messages_never_raise_and_never_leak(datas: list[bytes], reliable: bool) -> None:
    stack = SipStack()
    _client_invite(stack)
    src = Peer("tcp", "10.0.0.1", 5060, 3) if reliable else SRC
    now = 0.0
    for data in datas:
        now += 0.1
        stack.receive(data, src, now)
        _tu(stack, now)
        stack.datagrams_to_send(now)
    for _ in range(500):
        t = stack.get_timer()
        if t is None:
            break
        stack.handle_timer(t)
        _tu(stack, t)
        stack.datagrams_to_send(t)
    stats = stack.stats()
    assert stats["transactions"] == 0, stats
    assert stats["awaiting_ack"] == 0 and stats["bound_peers"] == 0, stats
    assert stack.get_timer() is None


def test_seeds_are_valid() -> None:
    stack = SipStack()
    _client_invite(stack)
    for data in SEEDS:
        stack.receive(data, SRC, 0.0)
    kinds = set()
    while (ev := stack.next_event()) is not None:
        kinds.add(type(ev).__name__)
    assert "MalformedMessageReceived" not in kinds
    assert {"RequestReceived", "ResponseReceived"} <= kinds
