"""SipStack end to end between two real stacks: flows, CANCEL, rport, malformed input."""

from __future__ import annotations

import pytest

from sip.dialog import SipDialog
from sip.events import (
    AckTimeout,
    CancelReceived,
    MalformedMessageReceived,
    RequestReceived,
    ResponseReceived,
    TransactionTimeout,
    TransportError,
)
from sip.exceptions import LocalProtocolError
from sip.message import SipMessage, SipResponse, make_response
from sip.peer import Peer
from sip.stack import SipStack

from .helpers import LossPattern, make_request, roundtrip, run_until, uac_uas_pair


def only(events, cls):
    found = [e for e in events if isinstance(e, cls)]
    assert len(found) == 1, events
    return found[0]


def assert_idle(*nodes) -> None:
    for n in nodes:
        stats = n.stack.stats()
        assert stats["transactions"] == 0, stats
        assert stats["awaiting_ack"] == 0, stats
        assert stats["bound_peers"] == 0, stats
        assert n.stack.get_timer() is None


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_invite_200_ack_bye_flow(transport: str) -> None:
    with uac_uas_pair(transport) as (a, b):
        invite = make_request(a, "INVITE", b, body=b"v=0\r\n")
        key = a.stack.send_request(invite, b.peer, 0.0)
        roundtrip(a, b, 0.0)
        req_ev = only(b.events(), RequestReceived)
        assert req_ev.request.method == "INVITE" and req_ev.request.body == b"v=0\r\n"
        ringing = make_response(req_ev.request, 180, to_tag="bt")
        b.stack.send_response(ringing, 0.1)
        roundtrip(a, b, 0.1)
        r180 = only(a.events(), ResponseReceived)
        assert (r180.response.status, r180.key, r180.retransmission) == (180, key, False)
        early = SipDialog.from_uac(invite, r180.response)
        ok = make_response(
            req_ev.request, 200, to_tag="bt", headers=[("Contact", "<sip:bob@10.0.0.2>")]
        )
        uas_dialog = SipDialog.from_uas(req_ev.request, ok)
        b.stack.send_response(ok, 1.0)
        roundtrip(a, b, 1.0)
        r200 = only(a.events(), ResponseReceived)
        assert r200.response.status == 200 and not r200.retransmission
        early.receive_response(r200.response)
        assert early.state.name == "CONFIRMED"
        a.stack.send_ack(early.create_ack(r200.response), b.peer, 1.0)
        roundtrip(a, b, 1.0)
        ack_ev = only(b.events(), RequestReceived)
        assert ack_ev.request.method == "ACK" and ack_ev.key is None
        uas_dialog.receive_request(ack_ev.request)
        # BYE from the callee.
        bye = uas_dialog.create_request("BYE")
        b.stack.add_via(bye, a.peer)
        bkey = b.stack.send_request(bye, a.peer, 2.0)
        roundtrip(a, b, 2.0)
        bye_ev = only(a.events(), RequestReceived)
        early.receive_request(bye_ev.request)
        assert early.state.name == "TERMINATED"
        a.stack.send_response(make_response(bye_ev.request, 200), 2.0)
        roundtrip(a, b, 2.0)
        bye_ok = only(b.events(), ResponseReceived)
        assert bye_ok.key == bkey and bye_ok.response.status == 200
        run_until(a, b, 100.0)
        assert a.events() == [] and b.events() == []
        assert_idle(a, b)
        assert a.misrouted == [] and b.misrouted == []


def test_invite_180_486_ack_generated_by_transaction() -> None:
    with uac_uas_pair() as (a, b):
        invite = make_request(a, "INVITE", b)
        invite.add("Route", "<sip:proxy.example;lr>")
        a.stack.send_request(invite, b.peer, 0.0)
        roundtrip(a, b, 0.0)
        req = only(b.events(), RequestReceived).request
        b.stack.send_response(make_response(req, 180, to_tag="x"), 0.0)
        b.stack.send_response(make_response(req, 486, to_tag="x"), 0.5)
        roundtrip(a, b, 0.5)
        statuses = [e.response.status for e in a.events()]
        assert statuses == [180, 486]
        ack = SipMessage.parse(a.sent[-1])
        assert ack.method == "ACK"  # type: ignore[attr-defined]
        # RFC 3261 §17.1.1.3: same branch and Request-URI, To of the response, Route.
        assert ack.branch == invite.branch
        assert ack.uri_text == invite.uri_text  # type: ignore[attr-defined]
        assert ack.to_tag == "x"
        assert ack.get_all("route") == ["<sip:proxy.example;lr>"]
        assert ack.cseq == (1, "ACK")
        assert b.events() == []  # the non-2xx ACK is absorbed by the server transaction
        run_until(a, b, 100.0)
        assert_idle(a, b)


def test_lost_486_is_retransmitted_and_ack_resent() -> None:
    with uac_uas_pair() as (a, b):
        a.stack.send_request(make_request(a, "INVITE", b), b.peer, 0.0)
        roundtrip(a, b, 0.0)
        req = only(b.events(), RequestReceived).request
        b.stack.send_response(make_response(req, 486, to_tag="x"), 0.1)
        loss = LossPattern.first(1, b"ACK")
        roundtrip(a, b, 0.1, loss)
        assert len(loss.dropped) == 1
        # Timer G at 0.1 + T1 re-sends the 486; the ICT answers it with the ACK again.
        run_until(a, b, 0.7)
        assert [e.response.status for e in a.events()] == [486]  # passed up once
        assert b.stack.stats()["server_invite"] == 1  # now Confirmed, Timer I running
        run_until(a, b, 100.0)
        assert_idle(a, b)


def test_retransmitted_invite_resends_last_provisional() -> None:
    with uac_uas_pair() as (a, b):
        a.stack.send_request(make_request(a, "INVITE", b), b.peer, 0.0)
        roundtrip(a, b, 0.0)
        req = only(b.events(), RequestReceived).request
        b.stack.send_response(make_response(req, 180, to_tag="x"), 0.1)
        loss = LossPattern.first(1, b"SIP/2.0 180")
        roundtrip(a, b, 0.1, loss)
        # Timer A at 0.5 retransmits the INVITE; the IST re-sends the 180.
        a.handle_timer(0.5)
        roundtrip(a, b, 0.5)
        assert b.events() == []  # the retransmission is absorbed
        evs = a.events()
        assert [e.response.status for e in evs] == [180]
        assert b.sent[-1].startswith(b"SIP/2.0 180")


def test_automatic_100_trying_after_200ms() -> None:
    with uac_uas_pair() as (a, b):
        a.stack.send_request(make_request(a, "INVITE", b), b.peer, 0.0)
        roundtrip(a, b, 0.0)
        b.events()
        assert b.stack.get_timer() == pytest.approx(0.2)
        b.handle_timer(0.2)
        roundtrip(a, b, 0.2)
        ev = only(a.events(), ResponseReceived)
        assert ev.response.status == 100 and ev.response.to_tag is None
        # The 100 stopped timer A: nothing more is sent at 0.5.
        n = len(a.sent)
        a.handle_timer(0.5)
        roundtrip(a, b, 0.5)
        assert len(a.sent) == n


def test_no_100_when_tu_answers_first() -> None:
    with uac_uas_pair() as (a, b):
        a.stack.send_request(make_request(a, "INVITE", b), b.peer, 0.0)
        roundtrip(a, b, 0.0)
        req = only(b.events(), RequestReceived).request
        b.stack.send_response(make_response(req, 180, to_tag="x"), 0.05)
        b.handle_timer(0.3)
        roundtrip(a, b, 0.3)
        assert [e.response.status for e in a.events()] == [180]


def test_2xx_retransmitted_until_ack() -> None:
    with uac_uas_pair() as (a, b):
        invite = make_request(a, "INVITE", b)
        a.stack.send_request(invite, b.peer, 0.0)
        roundtrip(a, b, 0.0)
        req = only(b.events(), RequestReceived).request
        ok = make_response(req, 200, to_tag="x", headers=[("Contact", "<sip:b@10.0.0.2>")])
        b.stack.send_response(ok, 0.0)
        loss = LossPattern.all(b"SIP/2.0 200")
        roundtrip(a, b, 0.0, loss)
        times = []
        for _ in range(4):
            t = b.get_timer()
            times.append(t)
            b.handle_timer(t)
            roundtrip(a, b, t, loss)
        # §13.3.1.4: T1, then doubling to T2.
        assert times == [0.5, 1.5, 3.5, 7.5]
        assert len(loss.dropped) == 5
        b.handle_timer(11.5)
        roundtrip(a, b, 11.5)  # this one gets through
        r = only(a.events(), ResponseReceived)
        assert r.response.status == 200 and not r.retransmission
        dialog = SipDialog.from_uac(invite, r.response)
        a.stack.send_ack(dialog.create_ack(r.response), b.peer, 11.5)
        roundtrip(a, b, 11.5)
        assert only(b.events(), RequestReceived).request.method == "ACK"
        n = len(b.sent)
        run_until(a, b, 100.0)
        assert len(b.sent) == n  # no more 2xx after the ACK
        assert b.events() == []  # and no AckTimeout
        assert_idle(a, b)


def test_2xx_retransmission_delivered_to_uac_and_ack_resent() -> None:
    with uac_uas_pair() as (a, b):
        invite = make_request(a, "INVITE", b)
        a.stack.send_request(invite, b.peer, 0.0)
        roundtrip(a, b, 0.0)
        req = only(b.events(), RequestReceived).request
        b.stack.send_response(make_response(req, 200, to_tag="x"), 0.0)
        roundtrip(a, b, 0.0)
        r = only(a.events(), ResponseReceived)
        dialog = SipDialog.from_uac(invite, r.response)
        loss = LossPattern.first(1, b"ACK")
        a.stack.send_ack(dialog.create_ack(r.response), b.peer, 0.0)
        roundtrip(a, b, 0.0, loss)
        b.handle_timer(0.5)
        roundtrip(a, b, 0.5)
        again = only(a.events(), ResponseReceived)
        assert again.retransmission is True
        a.stack.send_ack(dialog.create_ack(again.response), b.peer, 0.5)
        roundtrip(a, b, 0.5)
        ack = only(b.events(), RequestReceived).request
        assert ack.method == "ACK" and ack.branch == SipMessage.parse(loss.dropped[0]).branch
        run_until(a, b, 100.0)
        assert_idle(a, b)


def test_ack_timeout() -> None:
    with uac_uas_pair() as (a, b):
        a.stack.send_request(make_request(a, "INVITE", b), b.peer, 0.0)
        roundtrip(a, b, 0.0)
        req = only(b.events(), RequestReceived).request
        b.stack.send_response(make_response(req, 200, to_tag="x"), 0.0)
        roundtrip(a, b, 0.0)
        a.events()  # the UAC TU "forgets" to ACK
        run_until(a, b, 100.0)
        ev = only(b.events(), AckTimeout)
        assert ev.call_id == req.call_id and ev.cseq == 1
        # retransmissions at 0.5, 1.5, 3.5, 7.5, 11.5, ..., < 32 → 10 copies
        sent_200 = [d for d in b.sent if d.startswith(b"SIP/2.0 200")]
        assert len(sent_200) == 1 + 10
        assert_idle(a, b)


def test_forked_2xx_with_new_tag_is_not_a_retransmission() -> None:
    with uac_uas_pair() as (a, b):
        a.stack.send_request(make_request(a, "INVITE", b), b.peer, 0.0)
        roundtrip(a, b, 0.0)
        req = only(b.events(), RequestReceived).request
        first = make_response(req, 200, to_tag="fork1")
        second = make_response(req, 200, to_tag="fork2")
        b.stack.send_response(first, 0.0)
        b.stack.send_response(second, 0.0)  # RFC 6026: more 2xx pass in Accepted
        roundtrip(a, b, 0.0)
        evs = a.events()
        assert [(e.response.to_tag, e.retransmission) for e in evs] == [
            ("fork1", False),
            ("fork2", False),
        ]


def test_cancel_before_provisional_waits_for_it() -> None:
    with uac_uas_pair() as (a, b):
        key = a.stack.send_request(make_request(a, "INVITE", b), b.peer, 0.0)
        ckey = a.stack.cancel(key, 0.0)
        assert ckey is not None and ckey.method == "CANCEL"
        loss = LossPattern.all(b"INVITE")  # the INVITE is slow; nothing reaches b yet
        roundtrip(a, b, 0.0, loss)
        assert not any(d.startswith(b"CANCEL") for d in a.sent)  # §9.1: not yet
        roundtrip(a, b, 0.1)  # nothing queued
        a.handle_timer(0.5)  # timer A: INVITE retransmitted, now delivered
        roundtrip(a, b, 0.5)
        req = only(b.events(), RequestReceived).request
        b.stack.send_response(make_response(req, 180, to_tag="x"), 0.6)
        roundtrip(a, b, 0.6)
        # The 180 released the CANCEL; the stack answered it with 200 itself.
        cancel_ev = only(b.events(), CancelReceived)
        assert cancel_ev.invite_key.method == "INVITE"
        evs = a.events()
        statuses = [(e.response.status, e.response.cseq[1]) for e in evs]
        assert statuses == [(180, "INVITE"), (200, "CANCEL")]
        assert evs[1].key == ckey
        b.stack.send_response(make_response(req, 487, to_tag="x"), 0.7)
        roundtrip(a, b, 0.7)
        assert [e.response.status for e in a.events()] == [487]
        run_until(a, b, 100.0)
        assert_idle(a, b)


def test_cancel_crossing_200() -> None:
    with uac_uas_pair() as (a, b):
        key = a.stack.send_request(make_request(a, "INVITE", b), b.peer, 0.0)
        roundtrip(a, b, 0.0)
        req = only(b.events(), RequestReceived).request
        b.stack.send_response(make_response(req, 180, to_tag="x"), 0.1)
        roundtrip(a, b, 0.1)
        a.events()
        # Both act at 1.0 before seeing each other's message.
        a.stack.cancel(key, 1.0)
        b.stack.send_response(make_response(req, 200, to_tag="x"), 1.0)
        roundtrip(a, b, 1.0)
        assert b.events() == []  # no CancelReceived: the INVITE was already answered
        evs = a.events()
        got = sorted((e.response.status, e.response.cseq[1]) for e in evs)
        assert got == [(200, "CANCEL"), (200, "INVITE")]
        # The UAC must ACK (and then BYE) the 2xx; without ACK the UAS times out.
        run_until(a, b, 100.0)
        only(b.events(), AckTimeout)
        assert_idle(a, b)


def test_cancel_unknown_gets_481_and_cancel_after_final_is_noop() -> None:
    with uac_uas_pair() as (a, b):
        invite = make_request(a, "INVITE", b)
        key = a.stack.send_request(invite, b.peer, 0.0)
        roundtrip(a, b, 0.0)
        req = only(b.events(), RequestReceived).request
        b.stack.send_response(make_response(req, 404, to_tag="x"), 0.0)
        roundtrip(a, b, 0.0)
        assert [e.response.status for e in a.events()] == [404]
        assert a.stack.cancel(key, 0.1) is None
        # A stray CANCEL for an unknown INVITE.
        stray = make_request(a, "CANCEL", b)
        ckey = a.stack.send_request(stray, b.peer, 0.2)
        roundtrip(a, b, 0.2)
        r = [e for e in a.events() if isinstance(e, ResponseReceived)]
        assert [(e.key, e.response.status) for e in r] == [(ckey, 481)]
        assert b.events() == []


def test_timer_b_timeout_and_retransmission_schedule() -> None:
    with uac_uas_pair() as (a, b):
        req = make_request(a, "INVITE", b)
        key = a.stack.send_request(req, b.peer, 0.0)
        loss = LossPattern.all(b"INVITE")
        times = []
        now = 0.0
        while (t := a.get_timer()) is not None:
            now = t
            a.handle_timer(now)
            roundtrip(a, b, now, loss)
            times.append(now)
        # RFC 3261 §17.1.1.2: A at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5; B at 64*T1 = 32.
        assert times == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 32.0]
        assert len(loss.dropped) == 7
        ev = only(a.events(), TransactionTimeout)
        assert ev.key == key and ev.request is req
        assert_idle(a)


def test_timer_f_timeout_e_capped_at_t2() -> None:
    with uac_uas_pair() as (a, b):
        key = a.stack.send_request(make_request(a, "OPTIONS", b), b.peer, 0.0)
        loss = LossPattern.all(b"OPTIONS")
        times = []
        while (t := a.get_timer()) is not None:
            a.handle_timer(t)
            roundtrip(a, b, t, loss)
            times.append(t)
        assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5, 32.0]
        assert only(a.events(), TransactionTimeout).key == key
        assert_idle(a)


def test_timer_e_goes_to_t2_in_proceeding() -> None:
    with uac_uas_pair() as (a, b):
        a.stack.send_request(make_request(a, "OPTIONS", b), b.peer, 0.0)
        roundtrip(a, b, 0.0)
        req = only(b.events(), RequestReceived).request
        b.stack.send_response(make_response(req, 100), 0.1)
        roundtrip(a, b, 0.1)
        a.handle_timer(0.5)  # E fired in Proceeding: next one T2 later
        assert a.get_timer() == 4.5


def test_no_retransmissions_over_reliable_transport() -> None:
    with uac_uas_pair("tcp") as (a, b):
        a.stack.send_request(make_request(a, "OPTIONS", b), b.peer, 0.0)
        a.stack.send_request(make_request(a, "INVITE", b), b.peer, 0.0)
        assert a.stack.datagrams_to_send(0.0) and a.get_timer() == 32.0  # only B and F
        a.handle_timer(32.0)
        assert len([e for e in a.events() if isinstance(e, TransactionTimeout)]) == 2
        assert a.stack.datagrams_to_send(32.0) == []


def test_reliable_final_ends_transactions_at_once() -> None:
    with uac_uas_pair("tcp") as (a, b):
        a.stack.send_request(make_request(a, "OPTIONS", b), b.peer, 0.0)
        roundtrip(a, b, 0.0)
        req = only(b.events(), RequestReceived).request
        b.stack.send_response(make_response(req, 200), 0.0)
        roundtrip(a, b, 0.0)
        # Timers J and K are zero over TCP (RFC 3261 §17.1.2.2, §17.2.2).
        assert a.stack.stats()["transactions"] == 0
        assert b.stack.stats()["transactions"] == 0
        assert b.sent[-1].startswith(b"SIP/2.0 200")


def test_rport_and_received_behind_nat() -> None:
    with uac_uas_pair(nat=True) as (a, b):
        a.stack.send_request(make_request(a, "OPTIONS", b), b.peer, 0.0)
        roundtrip(a, b, 0.0)
        req = only(b.events(), RequestReceived).request
        via = req.top_via
        assert via.params["received"] == "203.0.113.7"
        assert via.params["rport"] == "40000"
        b.stack.send_response(make_response(req, 200), 0.0)
        roundtrip(a, b, 0.0)
        # Delivered to the NAT's public ip:port, not the private sent-by.
        assert b.misrouted == []
        assert only(a.events(), ResponseReceived).response.status == 200


def test_no_rport_answers_to_received_and_via_port() -> None:
    stack = SipStack()
    data = (
        b"OPTIONS sip:b@10.0.0.2 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP host.example:5070;branch=z9hG4bKabc\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
        b"Max-Forwards: 70\r\n\r\n"
    )
    stack.receive(data, Peer("udp", "198.51.100.1", 6000), 0.0)
    req = stack.next_event().request  # type: ignore[union-attr]
    assert req.top_via.params == {"branch": "z9hG4bKabc", "received": "198.51.100.1"}
    stack.send_response(make_response(req, 200), 0.0)
    [(out, dest)] = stack.datagrams_to_send(0.0)
    assert dest == Peer("udp", "198.51.100.1", 5070)  # §18.2.2: received + Via port
    assert b"received=198.51.100.1" in out


def test_rport_with_same_host_still_gets_received() -> None:
    stack = SipStack()
    data = (
        b"OPTIONS sip:b@10.0.0.2 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.9;rport;branch=z9hG4bKabc\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.8;branch=z9hG4bKold\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n\r\n"
    )
    stack.receive(data, Peer("udp", "10.0.0.9", 5099), 0.0)
    req = stack.next_event().request  # type: ignore[union-attr]
    assert req.get_all("via") == [
        "SIP/2.0/UDP 10.0.0.9;rport=5099;branch=z9hG4bKabc;received=10.0.0.9",
        "SIP/2.0/UDP 10.0.0.8;branch=z9hG4bKold",
    ]


def test_response_over_stream_uses_incoming_connection() -> None:
    stack = SipStack()
    data = (
        b"OPTIONS sip:b@10.0.0.2 SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP 192.168.0.5:5060;branch=z9hG4bKabc\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    src = Peer("tcp", "203.0.113.9", 51000, conn=17)
    stack.receive(data, src, 0.0)
    req = stack.next_event().request  # type: ignore[union-attr]
    stack.send_response(make_response(req, 200), 0.0)
    [(_, dest)] = stack.datagrams_to_send(0.0)
    assert dest == src


def test_stray_responses_are_dropped() -> None:
    stack = SipStack()
    for branch in (b"z9hG4bKnope", b"oldstyle"):
        data = (
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=" + branch + b"\r\n"
            b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c\r\n"
            b"CSeq: 1 INVITE\r\n\r\n"
        )
        stack.receive(data, Peer("udp", "10.0.0.2", 5060), 0.0)
    assert stack.next_event() is None
    assert stack.datagrams_to_send(0.0) == []
    assert stack.stats()["transactions"] == 0


def test_malformed_request_gets_400() -> None:
    stack = SipStack()
    data = (
        b"INVITE sip:b@10.0.0.2 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKm;rport\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
        b"Content-Length: 500\r\n\r\nv=0\r\n"
    )
    stack.receive(data, Peer("udp", "10.0.0.1", 7000), 0.0)
    ev = stack.next_event()
    assert isinstance(ev, MalformedMessageReceived)
    assert "Content-Length 500" in ev.reason
    [(out, dest)] = stack.datagrams_to_send(0.0)
    assert dest == Peer("udp", "10.0.0.1", 7000)
    resp = SipMessage.parse(out)
    assert isinstance(resp, SipResponse) and resp.status == 400
    assert resp.call_id == "c1" and resp.cseq == (1, "INVITE")
    assert resp.top_via.params["rport"] == "7000"
    assert (resp.get("warning") or "").startswith('399 hotline "Content-Length 500')
    assert stack.stats()["transactions"] == 0


def test_bad_version_gets_505() -> None:
    stack = SipStack()
    data = (
        b"OPTIONS sip:b@10.0.0.2 SIP/3.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKv\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n\r\n"
    )
    stack.receive(data, Peer("udp", "10.0.0.1", 5060), 0.0)
    [(out, _)] = stack.datagrams_to_send(0.0)
    assert out.startswith(b"SIP/2.0 505 ")


@pytest.mark.parametrize(
    "data",
    [
        # No Call-ID: cannot be answered.
        b"OPTIONS sip:b@y SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKq\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCSeq: 1 OPTIONS\r\n\r\n",
        # Unparseable Via: nowhere to send the answer.
        b"OPTIONS sip:b@y SIP/2.0\r\nVia: garbage\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
        # A malformed ACK is never answered.
        b"ACK sip:b@y SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKq\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
        # A malformed response is dropped.
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKq\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCSeq: 1 OPTIONS\r\n\r\n",
        b"\x00\xff garbage",
    ],
)
def test_unanswerable_malformed_input_is_dropped(data: bytes) -> None:
    stack = SipStack()
    stack.receive(data, Peer("udp", "10.0.0.1", 5060), 0.0)
    assert isinstance(stack.next_event(), MalformedMessageReceived)
    assert stack.datagrams_to_send(0.0) == []
    assert stack.stats()["transactions"] == 0


def test_transport_error_fails_bound_transactions() -> None:
    with uac_uas_pair("tcp") as (a, b):
        key = a.stack.send_request(make_request(a, "INVITE", b), b.peer, 0.0)
        a.stack.transport_error(b.peer, 0.1, "connection reset")
        ev = only(a.events(), TransportError)
        assert (ev.key, ev.reason) == (key, "connection reset")
        assert_idle(a)
        a.stack.transport_error(b.peer, 0.2)
        assert only(a.events(), TransportError).key is None


def test_send_response_errors_are_local_protocol_errors() -> None:
    with uac_uas_pair() as (a, b):
        a.stack.send_request(make_request(a, "OPTIONS", b), b.peer, 0.0)
        roundtrip(a, b, 0.0)
        req = only(b.events(), RequestReceived).request
        b.stack.send_response(make_response(req, 200), 0.0)
        with pytest.raises(LocalProtocolError):
            b.stack.send_response(make_response(req, 500), 0.0)  # a second final
        stray = make_request(a, "OPTIONS", b)
        with pytest.raises(LocalProtocolError):
            b.stack.send_response(make_response(stray, 200), 0.0)
        with pytest.raises(LocalProtocolError):
            a.stack.send_request(make_request(a, "ACK", b), b.peer, 0.0)


def test_rfc2543_client_without_branch_cookie() -> None:
    stack = SipStack()
    data = (
        b"INVITE sip:b@10.0.0.2 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.1:5060\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: old\r\nCSeq: 7 INVITE\r\n\r\n"
    )
    src = Peer("udp", "10.0.0.1", 5060)
    stack.receive(data, src, 0.0)
    req = stack.next_event().request  # type: ignore[union-attr]
    stack.receive(data, src, 0.1)  # retransmission matched RFC 2543-style
    assert stack.next_event() is None
    stack.send_response(make_response(req, 486, to_tag="t"), 0.2)
    ack = (
        b"ACK sip:b@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=t\r\nCall-ID: old\r\nCSeq: 7 ACK\r\n\r\n"
    )
    stack.receive(ack, src, 0.3)
    assert stack.next_event() is None  # absorbed by the transaction
    stack.handle_timer(100.0)
    assert stack.stats()["transactions"] == 0


def test_many_transactions_timer_heap() -> None:
    stack = SipStack()
    peer = Peer("udp", "10.0.0.2", 5060)
    n = 10_000
    for i in range(n):
        req = make_request_raw(i)
        stack.send_request(req, peer, i * 0.001)
    assert stack.stats()["client_non_invite"] == n
    assert stack.get_timer() == 0.5
    sent = len(stack.datagrams_to_send(0.0))
    fired = 0
    while (t := stack.get_timer()) is not None:
        stack.handle_timer(t)  # the adapter's loop: wake exactly at each deadline
        fired += 1
        sent += len(stack.datagrams_to_send(t))
    assert stack.stats()["transactions"] == 0
    assert stack.stats()["timer_heap"] == 0
    assert sent == n * 11  # 1 + 10 retransmissions each (E: 0.5 ... 31.5, F at 32)
    assert fired >= n  # distinct deadlines


def make_request_raw(i: int):
    from sip.message import SipRequest

    req = SipRequest("OPTIONS", "sip:b@10.0.0.2")
    req.add("Via", f"SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK{i}")
    req.add("From", "<sip:a@x>;tag=1")
    req.add("To", "<sip:b@y>")
    req.add("Call-ID", f"c{i}")
    req.add("CSeq", "1 OPTIONS")
    return req
