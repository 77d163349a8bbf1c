"""SipDialog (RFC 3261 §12): creation, routing, CSeq order, target refresh, 481."""

from __future__ import annotations

import pytest

from sip.dialog import DialogSet, DialogState, SipDialog
from sip.events import RequestReceived, ResponseReceived
from sip.exceptions import CallTransactionDoesNotExist, MalformedMessage, RequestOutOfOrder
from sip.message import SipRequest, make_response

from .helpers import make_request, roundtrip, uac_uas_pair


def _invite() -> SipRequest:
    inv = SipRequest("INVITE", "sip:bob@b.example")
    inv.add("Via", "SIP/2.0/UDP a.example;branch=z9hG4bKd1")
    inv.add("Record-Route", "<sip:p1.example;lr>")
    inv.add("Record-Route", "<sip:p2.example;lr>")
    inv.add("From", "Alice <sip:alice@a.example>;tag=at")
    inv.add("To", "<sip:bob@b.example>")
    inv.add("Call-ID", "dlg@test")
    inv.add("CSeq", "10 INVITE")
    inv.add("Contact", "<sip:alice@10.0.0.1:5060>")
    return inv


def _ok(inv: SipRequest, status: int = 200, contact: str = "<sip:bob@10.0.0.2:5070>"):
    return make_response(inv, status, to_tag="bt", headers=[("Contact", contact)])


def test_uac_dialog_loose_routes_and_ack() -> None:
    inv = _invite()
    d = SipDialog.from_uac(inv, _ok(inv))
    assert d.state is DialogState.CONFIRMED
    assert d.id == ("dlg@test", "at", "bt")
    assert d.route_set == ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]  # reversed
    bye = d.create_request("BYE")
    assert bye.uri_text == "sip:bob@10.0.0.2:5070"
    assert bye.get_all("route") == ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
    assert bye.cseq == (11, "BYE")
    assert bye.from_tag == "at" and bye.to_tag == "bt"
    assert bye.get("from") == "Alice <sip:alice@a.example>;tag=at"
    assert d.state is DialogState.TERMINATED
    ack = d.create_ack(_ok(inv))
    assert ack.cseq == (10, "ACK") and ack.uri_text == "sip:bob@10.0.0.2:5070"
    assert d.create_ack(_ok(inv)) is ack  # same ACK for a retransmitted 2xx
    assert str(d.next_hop()) == "sip:p2.example;lr"


def test_strict_route() -> None:
    inv = _invite()
    ok = _ok(inv)
    ok.set("Record-Route", "<sip:strict.example;method=INVITE>")
    d = SipDialog.from_uac(inv, ok)
    req = d.create_request("INFO")
    # RFC 3261 §12.2.1.1: first route → Request-URI, remote target appended to Route.
    assert req.uri_text == "sip:strict.example"
    assert req.get_all("route") == ["<sip:bob@10.0.0.2:5070>"]


def test_uas_dialog_cseq_order_and_target_refresh() -> None:
    inv = _invite()
    d = SipDialog.from_uas(inv, _ok(inv))
    assert d.id == ("dlg@test", "bt", "at")
    assert d.route_set == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]  # in order
    assert str(d.remote_target) == "sip:alice@10.0.0.1:5060"
    reinvite = SipDialog.from_uac(inv, _ok(inv)).create_request("INVITE")
    reinvite.set("Contact", "<sip:alice@10.9.9.9:5090>")
    d.receive_request(reinvite)
    assert str(d.remote_target) == "sip:alice@10.9.9.9:5090"
    assert d.remote_seq == 11
    old = reinvite.copy()
    old.set("CSeq", "9 INFO")
    old.method = "INFO"
    with pytest.raises(RequestOutOfOrder) as err:
        d.receive_request(old)
    assert err.value.status_hint == 500
    # Our first request from the UAS side chooses a local CSeq.
    assert d.create_request("OPTIONS").cseq == (1, "OPTIONS")
    bye = reinvite.copy()
    bye.method = "BYE"
    bye.set("CSeq", "12 BYE")
    d.receive_request(bye)
    assert d.state is DialogState.TERMINATED
    with pytest.raises(CallTransactionDoesNotExist):
        d.receive_request(bye)


def test_early_dialog_confirmed_by_2xx_and_ended_by_failure() -> None:
    inv = _invite()
    ringing = make_response(inv, 180, to_tag="bt", headers=[("Contact", "<sip:x@1.1.1.1>")])
    d = SipDialog.from_uac(inv, ringing)
    assert d.state is DialogState.EARLY
    ok = _ok(inv)
    ok.set("Record-Route", "<sip:only.example;lr>")
    d.receive_response(ok)
    assert d.state is DialogState.CONFIRMED
    assert d.route_set == ["<sip:only.example;lr>"]  # recomputed from the 2xx
    assert str(d.remote_target) == "sip:bob@10.0.0.2:5070"
    d2 = SipDialog.from_uac(inv, ringing)
    d2.receive_response(make_response(inv, 486, to_tag="bt"))
    assert d2.state is DialogState.TERMINATED
    with pytest.raises(MalformedMessage):
        SipDialog.from_uac(inv, make_response(inv, 100))


def test_in_dialog_481_ends_dialog_and_2xx_refreshes_target() -> None:
    inv = _invite()
    d = SipDialog.from_uac(inv, _ok(inv))
    upd = d.create_request("UPDATE")
    upd.add("Via", "SIP/2.0/UDP a.example;branch=z9hG4bKu")
    d.receive_response(_ok(upd, contact="<sip:bob@10.7.7.7>"))
    assert str(d.remote_target) == "sip:bob@10.7.7.7"
    info = d.create_request("INFO")
    info.add("Via", "SIP/2.0/UDP a.example;branch=z9hG4bKi")
    d.receive_response(make_response(info, 481, to_tag="bt"))
    assert d.state is DialogState.TERMINATED


def test_reinvite_target_refresh_over_stacks_and_481_for_unknown_dialog() -> None:
    with uac_uas_pair() as (a, b):
        a_dialogs, b_dialogs = DialogSet(), DialogSet()
        invite = make_request(a, "INVITE", b)
        a.stack.send_request(invite, b.peer, 0.0)
        roundtrip(a, b, 0.0)
        [req_ev] = b.events()
        assert isinstance(req_ev, RequestReceived)
        ok = make_response(req_ev.request, 200, to_tag="bt",
                           headers=[("Contact", "<sip:bob@10.0.0.2:5060>")])
        b_dialogs.add(SipDialog.from_uas(req_ev.request, ok))
        b.stack.send_response(ok, 0.0)
        roundtrip(a, b, 0.0)
        [resp_ev] = a.events()
        assert isinstance(resp_ev, ResponseReceived)
        ad = SipDialog.from_uac(invite, resp_ev.response)
        a_dialogs.add(ad)
        a.stack.send_ack(ad.create_ack(resp_ev.response), b.peer, 0.0)
        roundtrip(a, b, 0.0)
        [ack_ev] = b.events()
        bd = b_dialogs.find(ack_ev.request)
        assert bd is not None
        bd.receive_request(ack_ev.request)
        # re-INVITE from a with a new Contact.
        ad.local_target = "<sip:alice@10.0.0.1:5999>"
        reinv = ad.create_request("INVITE")
        a.stack.add_via(reinv, b.peer)
        a.stack.send_request(reinv, b.peer, 1.0)
        roundtrip(a, b, 1.0)
        [re_ev] = b.events()
        assert b_dialogs.find(re_ev.request) is bd
        bd.receive_request(re_ev.request)
        assert str(bd.remote_target) == "sip:alice@10.0.0.1:5999"
        b.stack.send_response(make_response(re_ev.request, 200, headers=[
            ("Contact", "<sip:bob@10.0.0.2:6000>")]), 1.0)
        roundtrip(a, b, 1.0)
        [re_ok] = a.events()
        ad.receive_response(re_ok.response)
        assert str(ad.remote_target) == "sip:bob@10.0.0.2:6000"
        a.stack.send_ack(ad.create_ack(re_ok.response), b.peer, 1.0)
        roundtrip(a, b, 1.0)
        [ack2] = b.events()
        assert ack2.request.cseq == (2, "ACK")
        # An in-dialog request for a dialog b does not know → 481.
        stray = make_request(a, "INFO", b)
        stray.set("To", stray.get("to") + ";tag=nope")  # type: ignore[operator]
        a.stack.send_request(stray, b.peer, 2.0)
        roundtrip(a, b, 2.0)
        [st_ev] = b.events()
        assert b_dialogs.find(st_ev.request) is None
        b.stack.send_response(make_response(st_ev.request, 481), 2.0)
        roundtrip(a, b, 2.0)
        [r481] = a.events()
        assert r481.response.status == 481
