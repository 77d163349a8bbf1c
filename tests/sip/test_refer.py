"""REFER (RFC 3515), Referred-By (RFC 3892), Refer-Sub (RFC 4488) and Replaces in
Refer-To (RFC 3891 §6.1): parsing what phones send, and the NOTIFYs we send back.

The messages are written in the shape desk phones and softphones send them, following
the examples of RFC 3515 §4, RFC 5589 §6-§7 (blind and attended transfer) and RFC 4488
§5; addresses and tags are ours.
"""

from __future__ import annotations

import pytest

from sip.dialog import SipDialog
from sip.exceptions import LocalProtocolError, ProtocolError
from sip.message import SipMessage, SipRequest, make_response
from sip.refer import (
    SIPFRAG_CONTENT_TYPE,
    BadEvent,
    MalformedRefer,
    ReferProgress,
    ReferRejected,
    ReferRequest,
    ReferTo,
    build_refer,
    build_refer_notify,
    build_referred_by,
    parse_sipfrag_status,
)
from sip.replaces import Replaces
from sip.uri import SipUri

# The agent's phone (1001) is in a call through hotline (the B2BUA, 203.0.113.10).
HEAD = [
    "Via: SIP/2.0/UDP 192.168.1.50:5062;branch=z9hG4bK1874012354;rport",
    'From: "Li Na" <sip:1001@203.0.113.10>;tag=1853424478',
    "To: <sip:95598@203.0.113.10>;tag=hl-5c2a9a0e",
    "Call-ID: 0_3412378452@192.168.1.50",
    "CSeq: 4 REFER",
    "Contact: <sip:1001@192.168.1.50:5062>",
    "Max-Forwards: 70",
]

BLIND = [
    "REFER sip:hotline@203.0.113.10:5060 SIP/2.0",
    *HEAD,
    "User-Agent: desk phone",
    "Refer-To: <sip:1002@203.0.113.10>",
    "Referred-By: <sip:1001@203.0.113.10>",
    "Content-Length: 0",
]

# RFC 5589 §7.1: the consultation call's dialog, escaped in the Refer-To URI.
ATTENDED = [
    "REFER sip:hotline@203.0.113.10:5060 SIP/2.0",
    *HEAD,
    "Refer-To: <sip:1002@203.0.113.10?Replaces=090459243588173445%40192.168.1.50"
    "%3Bto-tag%3D7553452%3Bfrom-tag%3D31431>",
    'Referred-By: "Li Na" <sip:1001@203.0.113.10>',
    "Supported: replaces, norefersub",
    "Content-Length: 0",
]


def _parse(lines: list[str]) -> SipRequest:
    msg = SipMessage.parse(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(msg, SipRequest)
    return msg


def _with(lines: list[str], **replace: str | None) -> list[str]:
    """``lines`` with the headers named in ``replace`` (``Refer_To=...``) replaced or
    dropped (None)."""
    names = {k.replace("_", "-").lower(): v for k, v in replace.items()}
    out = []
    for line in lines:
        name = line.partition(":")[0].lower()
        if name in names:
            value = names.pop(name)
            if value is not None:
                out.append(f"{line.partition(':')[0]}: {value}")
            continue
        out.append(line)
    out[-1:-1] = [f"{k}: {v}" for k, v in names.items() if v is not None]
    return out


def _dialog() -> SipDialog:
    """hotline's dialog with the phone (the phone called in, hotline is the UAS)."""
    inv = SipRequest("INVITE", "sip:95598@203.0.113.10")
    inv.add("Via", "SIP/2.0/UDP 192.168.1.50:5062;branch=z9hG4bK-inv")
    inv.add("From", '"Li Na" <sip:1001@203.0.113.10>;tag=1853424478')
    inv.add("To", "<sip:95598@203.0.113.10>")
    inv.add("Call-ID", "0_3412378452@192.168.1.50")
    inv.add("CSeq", "1 INVITE")
    inv.add("Contact", "<sip:1001@192.168.1.50:5062>")
    ok = make_response(
        inv, 200, to_tag="hl-5c2a9a0e", headers=[("Contact", "<sip:hotline@203.0.113.10>")]
    )
    return SipDialog.from_uas(inv, ok)


# -- parsing a received REFER ------------------------------------------------------------


def test_blind_transfer() -> None:
    refer = ReferRequest.from_request(_parse(BLIND))
    assert str(refer.refer_to.uri) == "sip:1002@203.0.113.10"
    assert refer.refer_to.replaces is None and not refer.refer_to.is_attended
    assert refer.refer_to.headers == ()
    assert refer.referred_by is not None
    assert str(refer.referred_by.uri) == "sip:1001@203.0.113.10"
    assert refer.subscribe and refer.accept_headers() == []
    assert refer.event_id == "4"
    assert refer.invite_headers() == [("Referred-By", "<sip:1001@203.0.113.10>")]


def test_attended_transfer_rfc5589() -> None:
    refer = ReferRequest.from_request(_parse(ATTENDED))
    rt = refer.refer_to
    assert rt.is_attended
    assert rt.replaces == Replaces("090459243588173445@192.168.1.50", "7553452", "31431")
    assert str(rt.uri) == "sip:1002@203.0.113.10" and rt.uri.headers is None
    assert rt.headers == (
        ("Replaces", "090459243588173445@192.168.1.50;to-tag=7553452;from-tag=31431"),
    )
    assert refer.invite_headers() == [
        ("Referred-By", '"Li Na" <sip:1001@203.0.113.10>'),
        ("Replaces", "090459243588173445@192.168.1.50;to-tag=7553452;from-tag=31431"),
        ("Require", "replaces"),
    ]
    assert ("Require", "replaces") not in refer.invite_headers(require_replaces=False)
    # Serialising escapes it back as RFC 5589 writes it.
    assert str(rt) == (
        "<sip:1002@203.0.113.10?Replaces=090459243588173445%40192.168.1.50"
        "%3Bto-tag%3D7553452%3Bfrom-tag%3D31431>"
    )


@pytest.mark.parametrize(
    "refer_to",
    [
        # Lower-case escapes, header name in lower case, compact form r: below.
        "<sip:1002@203.0.113.10?replaces=090459243588173445%40192.168.1.50%3bto-tag%3d7553452"
        "%3bfrom-tag%3d31431>",
        # Tags in the other order and '@' left bare (RFC 3261 allows neither to matter).
        "<sip:1002@203.0.113.10?Replaces=090459243588173445@192.168.1.50%3Bfrom-tag%3D31431"
        "%3Bto-tag%3D7553452>",
        # Not escaped at all: ';' and '=' in the header part. Lenient, as the URI's
        # params end at '?'.
        "<sip:1002@203.0.113.10?Replaces=090459243588173445%40192.168.1.50;to-tag=7553452"
        ";from-tag=31431>",
        # A display name and a URI parameter before the headers.
        '"Wang Wei" <sip:1002@203.0.113.10;user=phone?Replaces=090459243588173445%40'
        "192.168.1.50%3Bto-tag%3D7553452%3Bfrom-tag%3D31431>",
    ],
)
def test_replaces_spellings(refer_to: str) -> None:
    lines = [line for line in ATTENDED if not line.startswith("Refer-To")]
    lines.insert(-1, f"r: {refer_to}")
    rt = ReferRequest.from_request(_parse(lines)).refer_to
    assert rt.replaces == Replaces("090459243588173445@192.168.1.50", "7553452", "31431")
    assert rt.uri.user == "1002" and rt.uri.host == "203.0.113.10"


def test_bare_at_in_replaces_of_a_userless_target() -> None:
    rt = ReferTo.parse("<sip:203.0.113.10?Replaces=abc@10.0.0.5%3Bto-tag%3D1%3Bfrom-tag%3D2>")
    assert str(rt.uri) == "sip:203.0.113.10"
    assert rt.replaces == Replaces("abc@10.0.0.5", "1", "2")


def test_early_only_survives_the_escaping() -> None:
    rt = ReferTo.parse("<sip:1002@h?Replaces=c%40h%3Bto-tag%3D1%3Bfrom-tag%3D2%3Bearly-only>")
    assert rt.replaces is not None and rt.replaces.early_only


def test_refer_sub_false_rfc4488() -> None:
    refer = ReferRequest.from_request(_parse(_with(BLIND, Refer_Sub="false")))
    assert not refer.subscribe
    assert refer.accept_headers() == [("Refer-Sub", "false")]
    assert ReferRequest.from_request(_parse(_with(BLIND, Refer_Sub="TRUE;x=1"))).subscribe


def test_compact_forms_and_referred_by_cid() -> None:
    # RFC 3892 §3: cid names a signed token in the body (we do not verify tokens).
    lines = [line for line in BLIND if not line.startswith(("Refer-To", "Referred-By"))]
    lines[-1:-1] = [
        "r: sip:1002@203.0.113.10",
        'b: <sip:1001@203.0.113.10>;cid="20398823.2UWQFN309shb3@referrer.example"',
    ]
    refer = ReferRequest.from_request(_parse(lines))
    assert str(refer.refer_to.uri) == "sip:1002@203.0.113.10"
    assert refer.referred_by is not None
    assert refer.referred_by.cid == "20398823.2UWQFN309shb3@referrer.example"


def test_no_referred_by_and_a_tel_target() -> None:
    refer = ReferRequest.from_request(
        _parse(_with(BLIND, Referred_By=None, Refer_To="<tel:+86-10-95598>"))
    )
    assert refer.referred_by is None and refer.invite_headers() == []
    assert refer.refer_to.uri.scheme == "tel" and refer.refer_to.uri.user == "+86-10-95598"


def test_embedded_headers_are_filtered_for_the_invite() -> None:
    # RFC 3261 §19.1.5: do not honour From, Call-ID, Via, Route, Contact... from a URI.
    rt = (
        "<sip:1002@203.0.113.10?Subject=VIP%20caller&Call-ID=evil&Route=%3Csip%3Ax%3E"
        "&Contact=%3Csip%3Aevil%3E&Accept-Contact=*%3Bmobility%3D%22fixed%22&body=hi>"
    )
    refer = ReferRequest.from_request(_parse(_with(BLIND, Refer_To=rt, Referred_By=None)))
    assert refer.refer_to.headers[0] == ("Subject", "VIP caller")
    assert refer.invite_headers() == [
        ("Subject", "VIP caller"),
        ("Accept-Contact", '*;mobility="fixed"'),
    ]


@pytest.mark.parametrize(
    ("change", "exc", "status", "message"),
    [
        ({"Refer_To": None}, MalformedRefer, 400, "a REFER needs exactly one Refer-To, got 0"),
        (
            {"Refer_To": "<sip:1002@h>, <sip:1003@h>"},
            MalformedRefer,
            400,
            "Refer-To must hold one URI",
        ),
        ({"Refer_To": "<sip:1002@h"}, MalformedRefer, 400, "bad Refer-To: missing '>'"),
        (
            {"Refer_To": "sip:1002@h?Replaces=a%3Bto-tag%3D1%3Bfrom-tag%3D2"},
            MalformedRefer,
            400,
            "bad Refer-To: URI with ',', '?' must be in <>",
        ),
        (
            {"Refer_To": "<sip:1002@h?Replaces=a%3Bfrom-tag%3D2>"},
            MalformedRefer,
            400,
            "bad Replaces in Refer-To: Replaces without to-tag",
        ),
        (
            {"Refer_To": "<sip:1002@h?Replaces=a%3Bto-tag%3D1%3Bfrom-tag%3D2&Replaces=b>"},
            MalformedRefer,
            400,
            "more than one Replaces in Refer-To",
        ),
        ({"Refer_To": "<sip:1002@h?Subject=%zz>"}, MalformedRefer, 400, "bad %-escape"),
        ({"Refer_To": "<sip:1002@h?Subject=%ff>"}, MalformedRefer, 400, "non-UTF-8 %-escape"),
        ({"Refer_To": "<sip:1002@h?Subject>"}, MalformedRefer, 400, "bad header 'Subject'"),
        ({"Refer_To": "*"}, MalformedRefer, 400, "bad Refer-To '*'"),
        ({"Refer_Sub": "maybe"}, MalformedRefer, 400, "Refer-Sub must be true or false"),
        ({"Referred_By": "<sip:a@h"}, MalformedRefer, 400, "bad Referred-By: missing '>'"),
        (
            {"Refer_To": "<http://www.example.com/transfer>"},
            ReferRejected,
            403,
            "Refer-To scheme 'http' is not sip, sips or tel",
        ),
        (
            {"Refer_To": "<sip:1002@h;method=BYE>"},
            ReferRejected,
            403,
            "Refer-To asks for BYE, only INVITE is supported",
        ),
    ],
)
def test_errors(
    change: dict[str, str | None], exc: type[ProtocolError], status: int, message: str
) -> None:
    with pytest.raises(exc) as err:
        ReferRequest.from_request(_parse(_with(BLIND, **change)))
    assert str(err.value).startswith(message), str(err.value)
    assert err.value.status_hint == status


def test_two_refer_to_headers_and_two_referred_by() -> None:
    lines = list(BLIND)
    lines.insert(-1, "Refer-To: <sip:1003@203.0.113.10>")
    with pytest.raises(MalformedRefer, match="exactly one Refer-To, got 2"):
        ReferRequest.from_request(_parse(lines))
    lines = list(BLIND)
    lines.insert(-1, "Referred-By: <sip:1003@203.0.113.10>")
    with pytest.raises(MalformedRefer, match="more than one Referred-By"):
        ReferRequest.from_request(_parse(lines))
    with pytest.raises(MalformedRefer, match="INVITE is not a REFER"):
        ReferRequest.from_request(SipRequest("INVITE", "sip:a@b"))


def test_method_invite_is_accepted() -> None:
    rt = ReferTo.parse("<sip:1002@h;user=phone;method=INVITE>")
    assert str(rt.uri) == "sip:1002@h;user=phone"  # the INVITE's Request-URI


# -- what we send back -------------------------------------------------------------------


def test_notify_progress_rfc3515() -> None:
    dialog = _dialog()
    refer = ReferRequest.from_request(_parse(BLIND))
    dialog.receive_request(_parse(BLIND))
    trying = build_refer_notify(dialog, refer.event_id, 100)
    ok = build_refer_notify(dialog, refer.event_id, 200)
    # In the phone's dialog, From/To/Call-ID per RFC 3261 §12.2.1.1.
    assert trying.method == "NOTIFY" and trying.uri_text == "sip:1001@192.168.1.50:5062"
    assert trying.cseq == (1, "NOTIFY") and ok.cseq == (2, "NOTIFY")
    assert trying.get("to") == "Li Na <sip:1001@203.0.113.10>;tag=1853424478"
    assert trying.get("event") == "refer;id=4"
    assert trying.get("subscription-state") == "active;expires=180"
    assert trying.get("content-type") == SIPFRAG_CONTENT_TYPE
    assert trying.get("contact") == "<sip:hotline@203.0.113.10>"
    # RFC 3515 §4 example: Content-Length 20 for "SIP/2.0 100 Trying" and 16 for 200 OK.
    assert trying.body == b"SIP/2.0 100 Trying\r\n"
    assert b"\r\nContent-Length: 20\r\n\r\nSIP/2.0 100 Trying\r\n" in bytes(trying)
    assert ok.get("subscription-state") == "terminated;reason=noresource"
    assert b"\r\nContent-Length: 16\r\n\r\nSIP/2.0 200 OK\r\n" in bytes(ok)


def test_notify_failure_and_ringing() -> None:
    dialog = _dialog()
    busy = build_refer_notify(dialog, 4, 486)
    assert busy.body == b"SIP/2.0 486 Busy Here\r\n"
    assert busy.get("subscription-state") == "terminated;reason=noresource"
    ringing = build_refer_notify(dialog, 4, 180, expires=30)
    assert ringing.get("subscription-state") == "active;expires=30"
    timeout = build_refer_notify(dialog, 4, 408, "No Answer From Target")
    assert timeout.body == b"SIP/2.0 408 No Answer From Target\r\n"
    with pytest.raises(LocalProtocolError):
        build_refer_notify(dialog, 4, 99)


def test_notify_round_trip_through_the_wire() -> None:
    sent = build_refer_notify(_dialog(), "4", 603)
    received = SipMessage.parse(bytes(_add_via(sent)))
    assert isinstance(received, SipRequest)
    progress = ReferProgress.from_notify(received)
    assert progress == ReferProgress("4", 603, "Decline", True)
    assert progress.final and not progress.succeeded


def _add_via(req: SipRequest) -> SipRequest:
    req.add("Via", "SIP/2.0/UDP 203.0.113.10;branch=z9hG4bK-n1", first=True)
    return req


def test_progress_from_a_phones_notify() -> None:
    # RFC 3515 §4 message flow, a NOTIFY whose sipfrag carries headers too (RFC 3420).
    body = (
        "SIP/2.0 180 Ringing\r\n"
        "From: <sip:1001@203.0.113.10>;tag=a\r\n"
        "To: <sip:1002@203.0.113.10>;tag=b\r\n"
    )
    notify = _parse(
        [
            "NOTIFY sip:hotline@203.0.113.10:5060 SIP/2.0",
            "Via: SIP/2.0/UDP 192.168.1.50:5062;branch=z9hG4bK-nt;rport",
            "From: <sip:1001@203.0.113.10>;tag=1853424478",
            "To: <sip:hotline@203.0.113.10>;tag=hl-1",
            "Call-ID: c1@192.168.1.50",
            "CSeq: 7 NOTIFY",
            "o: refer",
            "Subscription-State: active; expires=60",
            "Content-Type: message/sipfrag;version=2.0",
            f"Content-Length: {len(body)}",
            "",
            body.rstrip("\r\n"),
        ]
    )
    progress = ReferProgress.from_notify(notify)
    assert progress == ReferProgress(None, 180, "Ringing", False)
    assert not progress.final
    notify.set("Event", "dialog")
    with pytest.raises(BadEvent) as err:
        ReferProgress.from_notify(notify)
    assert err.value.status_hint == 489
    notify.set("Event", "refer;id=7")
    notify.remove("Subscription-State")
    with pytest.raises(MalformedRefer, match="without Subscription-State"):
        ReferProgress.from_notify(notify)


@pytest.mark.parametrize("body", [b"", b"hello\r\n", b"SIP/2.0 99 Odd\r\n", b"SIP/2.0 abc X"])
def test_sipfrag_without_status_line(body: bytes) -> None:
    with pytest.raises(MalformedRefer, match="message/sipfrag without a status line"):
        parse_sipfrag_status(body)


def test_sipfrag_status_without_reason() -> None:
    assert parse_sipfrag_status(b"SIP/2.0 200\r\n") == (200, "")


# -- when we are the referrer ------------------------------------------------------------


def test_build_blind_refer() -> None:
    dialog = _dialog()
    refer = build_refer(
        dialog,
        "sip:1002@203.0.113.10",
        referred_by=build_referred_by("sip:hotline@203.0.113.10", display="Hotline"),
    )
    assert refer.method == "REFER" and refer.cseq == (1, "REFER")
    assert refer.get("refer-to") == "<sip:1002@203.0.113.10>"
    assert refer.get("referred-by") == "Hotline <sip:hotline@203.0.113.10>"
    assert "refer-sub" not in refer
    assert refer.get("contact") == "<sip:hotline@203.0.113.10>"  # RFC 3515 §2.4.1


def test_build_attended_refer_round_trips() -> None:
    # Our consultation leg to 1002, whose dialog the transferee's INVITE must replace.
    consult_inv = SipRequest("INVITE", "sip:1002@192.168.1.51")
    consult_inv.add("Via", "SIP/2.0/UDP 203.0.113.10;branch=z9hG4bK-c")
    consult_inv.add("From", "<sip:hotline@203.0.113.10>;tag=hl-9")
    consult_inv.add("To", "<sip:1002@203.0.113.10>")
    consult_inv.add("Call-ID", "b2b-7@203.0.113.10")
    consult_inv.add("CSeq", "1 INVITE")
    consult = SipDialog.from_uac(consult_inv, make_response(consult_inv, 200, to_tag="ph-3"))
    target = ReferTo.build(
        SipUri.parse("sip:1002@192.168.1.51?Subject=old"),
        replaces=Replaces.for_dialog(consult),
        display="Wang Wei",
    )
    refer = build_refer(_dialog(), target, subscribe=False)
    value = refer.get("refer-to")
    assert value == (
        "Wang Wei <sip:1002@192.168.1.51?Replaces=b2b-7%40203.0.113.10%3Bto-tag%3Dph-3"
        "%3Bfrom-tag%3Dhl-9>"
    )
    assert refer.get("refer-sub") == "false"
    # The transferee parses it back to the dialog the target knows.
    parsed = ReferTo.parse(value or "")
    assert parsed.replaces == Replaces("b2b-7@203.0.113.10", "ph-3", "hl-9")
    assert parsed.display == "Wang Wei" and parsed.uri.headers is None


def test_referred_by_builder() -> None:
    assert build_referred_by("sip:1001@h") == "<sip:1001@h>"
    assert build_referred_by(SipUri.parse("sip:1001@h"), cid="x@y") == '<sip:1001@h>;cid="x@y"'
    na_text = build_referred_by(ReferTo.parse('"A" <sip:a@h>;foo=1').uri, display="Li Na")
    assert na_text == "Li Na <sip:a@h>"
    assert build_referred_by('"Li, Na" <sip:a@h>;x=1') == '"Li, Na" <sip:a@h>;x=1'
