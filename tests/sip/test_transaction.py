"""Transaction machines: exact timer values (RFC 3261 §17 Table 4, RFC 6026) and the
ACK built for non-2xx finals (§17.1.1.3)."""

from __future__ import annotations

import pytest

from sip.events import RequestReceived, ResponseReceived, TransactionTimeout
from sip.message import SipRequest, make_response
from sip.transaction import (
    INVITE_CLIENT_TRANSITIONS,
    InviteClientState,
    InviteServerState,
    NonInviteClientState,
    build_ack,
    server_key,
)

from .helpers import LossPattern, make_request, roundtrip, uac_uas_pair


def _answer(b, status: int, now: float, **kw):
    [ev] = [e for e in b.events() if isinstance(e, RequestReceived)]
    b.stack.send_response(make_response(ev.request, status, to_tag="x", **kw), now)
    return ev


def test_timer_d_is_32s_over_udp_and_zero_over_tcp() -> None:
    for transport, expected in (("udp", 32.0), ("tcp", None)):
        with uac_uas_pair(transport) as (a, b):
            key = a.stack.send_request(make_request(a, "INVITE", b), b.peer, 0.0)
            roundtrip(a, b, 0.0)
            _answer(b, 603, 0.0)
            roundtrip(a, b, 0.0)
            txn = a.stack._client.get(key)
            if expected is None:
                assert txn is None  # Terminated at once (§17.1.1.2)
            else:
                assert txn is not None and txn.state is InviteClientState.COMPLETED
                assert a.get_timer() == expected
                a.handle_timer(expected)
                assert a.stack.stats()["transactions"] == 0


def test_timer_k_is_t4() -> None:
    with uac_uas_pair() as (a, b):
        key = a.stack.send_request(make_request(a, "BYE", b), b.peer, 0.0)
        roundtrip(a, b, 0.0)
        _answer(b, 200, 0.2)
        roundtrip(a, b, 0.2)
        assert a.stack._client[key].state is NonInviteClientState.COMPLETED
        assert a.get_timer() == pytest.approx(5.2)
        assert b.get_timer() == pytest.approx(0.2 + 32)  # Timer J = 64*T1
        a.handle_timer(5.2)
        assert a.stack.stats()["transactions"] == 0


def test_invite_server_timers_g_h_i() -> None:
    with uac_uas_pair() as (a, b):
        a.stack.send_request(make_request(a, "INVITE", b), b.peer, 0.0)
        roundtrip(a, b, 0.0)
        ev = _answer(b, 480, 0.0)
        loss = LossPattern.all(b"ACK")
        roundtrip(a, b, 0.0, loss)
        key = server_key(ev.request)
        times = []
        while (t := b.get_timer()) is not None:
            b.handle_timer(t)
            times.append(t)
            if t >= 32.0:
                break
        # G at T1 doubling to T2, H at 64*T1.
        assert times[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
        assert times[-1] == 32.0
        [timeout] = [e for e in b.events() if isinstance(e, TransactionTimeout)]
        assert timeout.key == key and key.server
        assert b.stack.stats()["transactions"] == 0


def test_timer_i_after_ack() -> None:
    with uac_uas_pair() as (a, b):
        a.stack.send_request(make_request(a, "INVITE", b), b.peer, 0.0)
        roundtrip(a, b, 0.0)
        ev = _answer(b, 480, 1.0)
        roundtrip(a, b, 1.0)
        txn = b.stack._server[server_key(ev.request)]
        assert txn.state is InviteServerState.CONFIRMED
        assert b.get_timer() == pytest.approx(1.0 + 5.0)  # Timer I = T4


def test_2xx_is_retransmitted_even_over_tcp_but_invite_is_not() -> None:
    # RFC 3261 §13.3.1.4: 2xx retransmission is end to end, so it runs on reliable
    # transports too; §17.1.1.2: no Timer A on reliable transports.
    with uac_uas_pair("tcp") as (a, b):
        a.stack.send_request(make_request(a, "INVITE", b), b.peer, 0.0)
        roundtrip(a, b, 0.0)
        assert a.get_timer() == 32.0  # Timer B only
        _answer(b, 200, 0.0)
        roundtrip(a, b, 0.0, LossPattern.all(b"SIP/2.0 200"))
        assert b.get_timer() == 0.5


def test_accepted_state_absorbs_invite_retransmissions_and_timer_m() -> None:
    with uac_uas_pair() as (a, b):
        invite = make_request(a, "INVITE", b)
        key = a.stack.send_request(invite, b.peer, 0.0)
        roundtrip(a, b, 0.0)
        _answer(b, 200, 0.1)
        roundtrip(a, b, 0.1, LossPattern.first(1, b"SIP/2.0 200"))
        n = len(b.sent)
        b.stack.receive(bytes(invite), a.peer, 0.2)  # INVITE retransmission
        assert b.events() == [] and len(b.stack.datagrams_to_send(0.2)) == 0
        assert len(b.sent) == n
        b.handle_timer(0.6)
        roundtrip(a, b, 0.6)
        [ok] = [e for e in a.events() if isinstance(e, ResponseReceived)]
        assert ok.response.status == 200
        assert a.stack._client[key].state is InviteClientState.ACCEPTED
        a.handle_timer(0.6 + 32.0)  # Timer M = 64*T1
        assert a.stack.stats()["transactions"] == 0


def test_build_ack_headers() -> None:
    invite = SipRequest("INVITE", "sip:bob@b.example")
    invite.add("Via", "SIP/2.0/UDP a.example;branch=z9hG4bKack")
    invite.add("Via", "SIP/2.0/UDP proxy.example;branch=z9hG4bKp")
    invite.add("Route", "<sip:p1.example;lr>, <sip:p2.example;lr>")
    invite.add("From", "<sip:alice@a.example>;tag=a1")
    invite.add("To", "<sip:bob@b.example>")
    invite.add("Call-ID", "ack@test")
    invite.add("CSeq", "42 INVITE")
    invite.add("Contact", "<sip:alice@a.example>")
    invite.body = b"sdp"
    resp = make_response(invite, 404, to_tag="b9")
    ack = build_ack(invite, resp)
    assert bytes(ack) == (
        b"ACK sip:bob@b.example SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP a.example;branch=z9hG4bKack\r\n"
        b"Route: <sip:p1.example;lr>\r\nRoute: <sip:p2.example;lr>\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:alice@a.example>;tag=a1\r\n"
        b"To: <sip:bob@b.example>;tag=b9\r\n"
        b"Call-ID: ack@test\r\nCSeq: 42 ACK\r\nContent-Length: 0\r\n\r\n"
    )


def test_invite_client_table_has_rfc6026_accepted() -> None:
    assert INVITE_CLIENT_TRANSITIONS[
        (InviteClientState.PROCEEDING, next(i for (s, i) in INVITE_CLIENT_TRANSITIONS
                                            if i.name == "RECV_2XX"))
    ][1] is InviteClientState.ACCEPTED
