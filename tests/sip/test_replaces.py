"""Replaces (RFC 3891): parsing, building, and matching against our dialogs (§3)."""

from __future__ import annotations

import pytest

from sip.dialog import DialogSet, SipDialog
from sip.message import SipMessage, SipRequest, make_response
from sip.replaces import (
    MalformedReplaces,
    Replaces,
    check_replaces,
    match_replaces,
    parse_replaces_header,
)


def _msg(*lines: str) -> SipRequest:
    msg = SipMessage.parse(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(msg, SipRequest)
    return msg


def _invite(call_id: str = "consult-1@10.0.0.5", from_tag: str = "31431") -> SipRequest:
    inv = SipRequest("INVITE", "sip:carol@10.0.0.9")
    inv.add("Via", "SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKc1")
    inv.add("From", f"<sip:alice@pbx.example>;tag={from_tag}")
    inv.add("To", "<sip:carol@pbx.example>")
    inv.add("Call-ID", call_id)
    inv.add("CSeq", "1 INVITE")
    inv.add("Contact", "<sip:alice@10.0.0.5>")
    return inv


def _pair(status: int = 200) -> tuple[SipDialog, SipDialog]:
    """Alice called Carol: (Alice's dialog as UAC, Carol's dialog as UAS)."""
    inv = _invite()
    resp = make_response(inv, status, to_tag="7553452", headers=[("Contact", "<sip:c@10.0.0.9>")])
    return SipDialog.from_uac(inv, resp), SipDialog.from_uas(inv, resp)


# -- parsing ---------------------------------------------------------------------------


def test_parse_rfc3891_example() -> None:
    # RFC 3891 §6.1 example, with its blanks before the semicolons.
    r = Replaces.parse("98732@sip.example.com ;from-tag=r33th4x0r ;to-tag=ff87ff")
    assert r == Replaces("98732@sip.example.com", "ff87ff", "r33th4x0r", False)
    assert str(r) == "98732@sip.example.com;to-tag=ff87ff;from-tag=r33th4x0r"
    assert r.dialog_id == ("98732@sip.example.com", "ff87ff", "r33th4x0r")


def test_parse_early_only_and_extension_params() -> None:
    r = Replaces.parse("abc@h;to-tag=1;from-tag=2;early-only;x-vendor=7")
    assert r.early_only
    assert str(r) == "abc@h;to-tag=1;from-tag=2;early-only"
    assert Replaces.parse(str(r)) == r
    # Parameter names are case-insensitive.
    assert Replaces.parse("abc;TO-TAG=1;From-Tag=2;Early-Only").early_only


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("abc@h;from-tag=2", "Replaces without to-tag: 'abc@h;from-tag=2'"),
        ("abc@h;to-tag=1", "Replaces without from-tag: 'abc@h;to-tag=1'"),
        ("abc@h;to-tag=1;to-tag=3;from-tag=2", "more than one to-tag in Replaces"),
        ("abc@h;to-tag=;from-tag=2", "bad to-tag in Replaces"),
        ("abc@h;to-tag;from-tag=2", "bad to-tag in Replaces"),
        (";to-tag=1;from-tag=2", "bad Call-ID in Replaces"),
        ("a b;to-tag=1;from-tag=2", "bad Call-ID in Replaces"),
        ("a@;to-tag=1;from-tag=2", "bad Call-ID in Replaces"),
        ("abc;to-tag=1;from-tag=2, def;to-tag=1;from-tag=2", "more than one Replaces value"),
        ("abc;to-tag=1;;from-tag=2", "bad parameter"),
    ],
)
def test_parse_errors(value: str, error: str) -> None:
    with pytest.raises(MalformedReplaces) as err:
        Replaces.parse(value)
    assert str(err.value).startswith(error)
    assert err.value.status_hint == 400


def test_header_in_a_pickup_invite() -> None:
    # An INVITE picking up a ringing call (RFC 3891 §1 call pickup), Require: replaces.
    inv = _msg(
        "INVITE sip:hotline@203.0.113.10 SIP/2.0",
        "Via: SIP/2.0/UDP 192.168.1.51:5060;branch=z9hG4bK-pick-1;rport",
        'From: "Wang Wei" <sip:1002@203.0.113.10>;tag=9fxced76sl',
        "To: <sip:hotline@203.0.113.10>",
        "Call-ID: 3848276298220188511@192.168.1.51",
        "CSeq: 1 INVITE",
        "Contact: <sip:1002@192.168.1.51:5060>",
        "Require: replaces",
        "Replaces: 8f2c1a6e-3b7d@203.0.113.10;to-tag=hl-77a1;from-tag=1928301774;early-only",
        "Max-Forwards: 70",
        "Content-Length: 0",
    )
    r = parse_replaces_header(inv)
    assert r == Replaces("8f2c1a6e-3b7d@203.0.113.10", "hl-77a1", "1928301774", True)


def test_header_absent_repeated_or_on_wrong_method() -> None:
    inv = _invite()
    assert parse_replaces_header(inv) is None
    inv.add("Replaces", "a;to-tag=1;from-tag=2")
    inv.add("Replaces", "b;to-tag=1;from-tag=2")
    with pytest.raises(MalformedReplaces, match="2 Replaces values in one INVITE"):
        parse_replaces_header(inv)
    bye = SipRequest("BYE", "sip:x@y", [("Replaces", "a;to-tag=1;from-tag=2")])
    with pytest.raises(MalformedReplaces, match="Replaces in a BYE request"):
        parse_replaces_header(bye)


# -- building and matching -------------------------------------------------------------


def test_for_dialog_is_written_from_the_peers_view() -> None:
    alice, carol = _pair()
    assert alice.id == ("consult-1@10.0.0.5", "31431", "7553452")
    assert carol.id == ("consult-1@10.0.0.5", "7553452", "31431")
    # Alice (transferor) writes the Replaces that Carol must match (RFC 3891 §3).
    r = Replaces.for_dialog(alice)
    assert str(r) == "consult-1@10.0.0.5;to-tag=7553452;from-tag=31431"
    assert r.matches(carol) and not r.matches(alice)
    # And the other way round, whoever sent the original INVITE.
    assert Replaces.for_dialog(carol).matches(alice)
    assert str(Replaces.for_dialog(carol, early_only=True)).endswith(";early-only")


def test_confirmed_dialog_is_replaced_with_bye() -> None:
    alice, carol = _pair()
    m = check_replaces(Replaces.for_dialog(alice), carol)
    assert m.accepted and m.status is None and m.end_with == "BYE" and m.dialog is carol


def test_early_only_on_confirmed_dialog_is_486() -> None:
    alice, carol = _pair()
    m = check_replaces(Replaces.for_dialog(alice, early_only=True), carol)
    assert (m.status, m.end_with, m.dialog) == (486, None, carol)
    assert not m.accepted


def test_early_dialog_we_initiated_is_cancelled() -> None:
    # Call pickup: Alice's INVITE is ringing at Carol; Bob sends Alice an INVITE with
    # Replaces naming that early dialog. Alice initiated it: accept, CANCEL the old one.
    alice, carol = _pair(180)
    m = check_replaces(Replaces.for_dialog(carol, early_only=True), alice)
    assert (m.status, m.end_with) == (None, "CANCEL")


def test_early_dialog_we_did_not_initiate_is_481() -> None:
    alice, carol = _pair(180)
    m = check_replaces(Replaces.for_dialog(alice), carol)
    assert (m.status, m.end_with, m.dialog) == (481, None, carol)


def test_terminated_dialog_is_603_and_unknown_is_481() -> None:
    alice, carol = _pair()
    carol.terminate()
    assert check_replaces(Replaces.for_dialog(alice), carol).status == 603
    assert check_replaces(Replaces.for_dialog(alice), None).status == 481
    other = Replaces("nope@x", carol.local_tag, carol.remote_tag)
    assert check_replaces(other, carol).status == 481  # a dialog that is not the one named


def test_tags_must_not_be_swapped() -> None:
    # RFC 3891 §3 matching is by (Call-ID, to-tag = local, from-tag = remote), exactly.
    alice, carol = _pair()
    swapped = Replaces(carol.call_id, carol.remote_tag, carol.local_tag)
    assert check_replaces(swapped, carol).status == 481


def test_match_in_a_dialog_set() -> None:
    alice, carol = _pair()
    dialogs = DialogSet()
    inv2 = _invite("other@10.0.0.5", "x1")
    unrelated = SipDialog.from_uas(inv2, make_response(inv2, 200, to_tag="y1"))
    dialogs.add(unrelated)
    dialogs.add(carol)
    r = Replaces.for_dialog(alice)
    assert match_replaces(r, dialogs).dialog is carol
    carol.terminate()
    # Still filed (not pruned): the answer is 603, not 481.
    assert match_replaces(r, dialogs).status == 603
    dialogs.prune()
    assert match_replaces(r, dialogs).status == 481
    assert match_replaces(r, []).status == 481
