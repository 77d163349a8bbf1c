"""sip/message.py: parsing, serialisation, captures (stream framing: test_transport_stream)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sip.exceptions import MalformedMessage, MessageTooLarge, ProtocolError
from sip.message import (
    MAX_MESSAGE_SIZE,
    SipMessage,
    SipRequest,
    SipResponse,
    make_response,
    parse_message,
)

DATA = Path(__file__).resolve().parents[1] / "data"


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def crlf(text: str, body: bytes = b"") -> bytes:
    """Header block written with \\n, sent with CRLF, plus the empty line and body."""
    return text.strip("\n").replace("\n", "\r\n").encode() + b"\r\n\r\n" + body


def req(data: bytes, *, stream: bool = False) -> SipRequest:
    m = SipMessage.parse(data, stream=stream)
    assert isinstance(m, SipRequest)
    return m


BASIC = crlf(
    """
INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds
Max-Forwards: 70
To: Bob <sip:bob@biloxi.example.com>
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:alice@pc33.atlanta.example.com>
Content-Length: 0
"""
)


# -- structure ------------------------------------------------------------------------
def test_basic_request() -> None:
    m = req(BASIC)
    assert (m.method, m.uri.user, m.uri.host) == ("INVITE", "bob", "biloxi.example.com")
    assert m.branch == "z9hG4bK776asdhds"
    assert (m.cseq, m.call_id) == ((314159, "INVITE"), "a84b4c76e66710@pc33.atlanta.example.com")
    assert (m.from_tag, m.to_tag) == ("1928301774", None)
    assert m.max_forwards == 70
    assert bytes(m) == BASIC
    assert repr(m) == "<SipRequest INVITE sip:bob@biloxi.example.com>"


def test_compact_headers_and_case_insensitive_names() -> None:
    data = crlf(
        """
OPTIONS sip:a@b.example SIP/2.0
v: SIP/2.0/UDP h.example;branch=z9hG4bK1
VIA: SIP/2.0/TCP g.example;branch=z9hG4bK2
f: <sip:c@d.example>;tag=1
T: <sip:a@b.example>
i: cid-1
cSeQ: 2 OPTIONS
m: <sip:c@h.example>
k: timer
L: 0
"""
    )
    m = req(data)
    assert [v.host for v in m.vias] == ["h.example", "g.example"]
    assert m.get("VIA") == "SIP/2.0/UDP h.example;branch=z9hG4bK1"
    assert m.get("v") == m.get("Via")
    assert "call-id" in m and "I" in m and "Content-Length" in m
    assert m.get("Supported") == "timer"
    assert bytes(m) == crlf(
        """
OPTIONS sip:a@b.example SIP/2.0
Via: SIP/2.0/UDP h.example;branch=z9hG4bK1
Via: SIP/2.0/TCP g.example;branch=z9hG4bK2
From: <sip:c@d.example>;tag=1
To: <sip:a@b.example>
Call-ID: cid-1
CSeq: 2 OPTIONS
Contact: <sip:c@h.example>
Supported: timer
Content-Length: 0
"""
    )


def test_folding_is_one_space() -> None:
    data = BASIC.replace(
        b"Max-Forwards: 70\r\n", b"Subject: first\r\n  second\r\n\tthird\r\nMax-Forwards: 70\r\n"
    ).replace(b"To: Bob", b"To:\r\n Bob")
    m = req(data)
    assert m.get("subject") == "first second third"
    assert m.get("to") == "Bob <sip:bob@biloxi.example.com>"
    assert b"Subject: first second third\r\n" in bytes(m)


def test_multi_value_headers() -> None:
    data = BASIC.replace(
        b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n",
        b'Contact: "Doe, John" <sip:j@a.example;x=1,2>;q=0.7, <sip:k@b.example>\r\n'
        b"Contact: sip:l@c.example;expires=60\r\n"
        b"Via: SIP/2.0/TCP [2001:db8::9]:5070;branch=z9hG4bKx, SIP/2.0/UDP 10.0.0.1\r\n",
    )
    m = req(data)
    assert [c.display for c in m.contacts] == ["Doe, John", None, None]
    assert m.contacts[0].uri.params == {"x": "1,2"}
    assert m.contacts[0].params == {"q": "0.7"}
    assert m.contacts[2].params == {"expires": "60"}
    assert [(v.host, v.port) for v in m.vias] == [
        ("pc33.atlanta.example.com", None),
        ("[2001:db8::9]", 5070),
        ("10.0.0.1", None),
    ]
    assert m.get_all("via")[1] == "SIP/2.0/TCP [2001:db8::9]:5070;branch=z9hG4bKx"
    # a header that is not a list is never split at commas
    assert req(BASIC.replace(b"Max-", b"Subject: a, b\r\nMax-")).get_all("subject") == ["a, b"]


def test_sips_tel_and_ipv6_request_uris() -> None:
    m = req(BASIC.replace(b"INVITE sip:bob@biloxi.example.com", b"INVITE sips:bob@[::1]:5061"))
    assert (m.uri.scheme, m.uri.host, m.uri.port, m.uri.transport) == ("sips", "[::1]", 5061, "tls")
    m = req(BASIC.replace(b"INVITE sip:bob@biloxi.example.com", b"INVITE tel:+8610123"))
    assert (m.uri.scheme, m.uri.user) == ("tel", "+8610123")
    m = req(BASIC.replace(b"To: Bob <sip:bob@biloxi.example.com>", b"To: <tel:+8610123>"))
    assert m.to.uri.user == "+8610123"


def test_uri_setter_and_copy() -> None:
    m = req(BASIC)
    c = m.copy()
    c.uri = c.uri.copy()
    c.uri.params["transport"] = "tcp"
    c.set("Max-Forwards", "69")
    c.add("Via", "SIP/2.0/UDP proxy.example;branch=z9hG4bKp", first=True)
    assert bytes(c).startswith(b"INVITE sip:bob@biloxi.example.com;transport=tcp SIP/2.0\r\n")
    assert c.branch == "z9hG4bKp" and m.branch == "z9hG4bK776asdhds"
    assert (c.max_forwards, m.max_forwards) == (69, 70)


def test_pop_first_and_remove() -> None:
    m = req(BASIC.replace(b"Max-", b"Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\nMax-"))
    assert m.pop_first("route") == "<sip:p1.example;lr>"
    assert m.get_all("route") == ["<sip:p2.example;lr>"]
    assert m.pop_first("route") == "<sip:p2.example;lr>"
    assert "route" not in m and m.pop_first("route") is None
    m.remove("contact")
    assert m.contacts == [] and b"Contact" not in bytes(m)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview], ids=lambda w: w.__name__)
def test_any_buffer(wrap: Callable[[bytes], object]) -> None:
    m = SipMessage.parse(wrap(BASIC))  # type: ignore[arg-type]
    assert bytes(m) == BASIC
    assert bytes(parse_message(wrap(BASIC))) == BASIC  # type: ignore[arg-type]


def test_body_framing_on_datagrams_and_streams() -> None:
    body = b"v=0\r\n"
    with_body = BASIC.replace(b"Content-Length: 0", b"Content-Length: 5") + body
    assert req(with_body).body == body
    assert req(with_body + b"trailing junk").body == body  # §18.3: extra octets dropped
    no_cl = BASIC.replace(b"Content-Length: 0\r\n", b"")
    assert req(no_cl + b"abc").body == b"abc"  # UDP: the rest of the datagram
    with pytest.raises(MalformedMessage) as ei:
        req(no_cl, stream=True)
    assert str(ei.value) == "Content-Length is mandatory on stream transports"
    assert req(with_body, stream=True).body == body
    # two equal Content-Length headers are fine, different ones are not
    assert req(with_body.replace(b"Max-", b"l: 5\r\nMax-")).body == body


def test_lf_only_and_leading_crlf_and_missing_final_empty_line() -> None:
    lf = BASIC.replace(b"\r\n", b"\n")
    assert bytes(req(lf)) == BASIC
    assert bytes(req(b"\r\n\r\n" + BASIC)) == BASIC
    assert bytes(req(BASIC[:-2])) == BASIC


def test_size_cap() -> None:
    big = BASIC.replace(b"Content-Length: 0", f"Content-Length: {MAX_MESSAGE_SIZE}".encode())
    big += b"x" * (MAX_MESSAGE_SIZE + 1 - len(big))
    with pytest.raises(MessageTooLarge) as ei:
        SipMessage.parse(big)
    assert str(ei.value) == f"message of {MAX_MESSAGE_SIZE + 1} bytes exceeds {MAX_MESSAGE_SIZE}"
    assert ei.value.status_hint == 513
    assert isinstance(ei.value, ProtocolError)


@pytest.mark.parametrize(
    ("old", "new", "error", "status"),
    [
        (b"INVITE sip", b" INVITE sip", "whitespace before the start line", 400),
        (b"SIP/2.0\r\nVia", b"SIP/2.1\r\nVia", "unsupported SIP version 'SIP/2.1'", 505),
        (b"SIP/2.0\r\nVia", b"HTTP/1.1\r\nVia", "bad request line "
         "'INVITE sip:bob@biloxi.example.com HTTP/1.1'", 400),
        (b"INVITE sip", b"INV\xc3\x8bTE sip", "bad method 'INV\u00cbTE'", 400),
        (b"INVITE sip:bob@biloxi.example.com", b"INVITE bob@biloxi.example.com",
         "bad Request-URI 'bob@biloxi.example.com'", 400),
        (b"Max-Forwards: 70", b"Max-Forwards: 256", "bad Max-Forwards '256': not in 0-255", 400),
        (b"Max-Forwards: 70", b"Max-Forwards: -1", "bad Max-Forwards '-1': not in 0-255", 400),
        (b"CSeq: 314159 INVITE", b"CSeq: \xc2\xb23 INVITE", "bad CSeq '\u00b23 INVITE'", 400),
        (b"CSeq: 314159 INVITE", b"CSeq: 2147483648 INVITE",
         "CSeq number 2147483648 is not below 2**31", 400),
        (b"CSeq: 314159 INVITE", b"CSeq: 1 IN VITE", "bad CSeq '1 IN VITE'", 400),
        (b"CSeq: 314159 INVITE", b"CSeq: 1 INV;ITE", "bad CSeq method 'INV;ITE'", 400),
        (b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com", b"Call-ID: a b",
         "bad Call-ID 'a b'", 400),
        (b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com", b"Call-ID:", "bad Call-ID ''", 400),
        (b"Content-Length: 0", b"Content-Length: \xd9\xa1", "bad Content-Length '\u0661'", 400),
        (b"Content-Length: 0", b"Content-Length: 0x10", "bad Content-Length '0x10'", 400),
        (b"Content-Length: 0", b"Content-Length: 5", "Content-Length 5 is larger than the 0 "
         "bytes of body received", 400),
        (b"Max-Forwards: 70", b"Max Forwards: 70", "bad header name 'Max Forwards'", 400),
        (b"Max-Forwards: 70", b"Max-Forwards 70", "header line without a colon: "
         "'Max-Forwards 70'", 400),
        (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\nX-Smuggled: 1\r\n",
         "bare CR or LF inside the header block", 400),
        (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\r\n", "bare CR or LF inside the header "
         "block", 400),
        (b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n",
         b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n Folded: x\r\n",
         "continuation line before any header", 400),
        (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nCall-ID: other\r\n",
         "more than one Call-ID header", 400),
        (b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n", b"",
         "missing mandatory header Via", 400),
    ],
)  # fmt: skip
def test_eager_errors(old: bytes, new: bytes, error: str, status: int) -> None:
    assert old in BASIC
    with pytest.raises(MalformedMessage) as ei:
        SipMessage.parse(BASIC.replace(old, new))
    assert str(ei.value) == error
    assert ei.value.status_hint == status


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "empty message"),
        (b"\r\n\r\n", "empty message"),
        (b"INVITE sip:a@b SIP/2.0", "no empty line after the header block"),
    ],
)
def test_degenerate_input(data: bytes, error: str) -> None:
    with pytest.raises(MalformedMessage) as ei:
        SipMessage.parse(data)
    assert str(ei.value) == error


def test_responses() -> None:
    data = crlf(
        """
SIP/2.0 180 Ringing
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.1
To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.example.com
CSeq: 314159 INVITE
Content-Length: 0
"""
    )
    m = SipMessage.parse(data)
    assert isinstance(m, SipResponse)
    assert (m.status, m.reason, m.to_tag, m.cseq) == (180, "Ringing", "a6c85cf", (314159, "INVITE"))
    assert bytes(m) == data
    assert repr(m) == "<SipResponse 180 Ringing>"
    for bad, error, status in [
        (b"SIP/2.0 1800 Ringing", "bad status line 'SIP/2.0 1800 Ringing'", 400),
        (b"SIP/2.0 099 Odd", "bad status line 'SIP/2.0 099 Odd'", 400),
        (b"SIP/3.0 180 Ringing", "unsupported SIP version 'SIP/3.0'", 505),
    ]:
        with pytest.raises(MalformedMessage) as ei:
            SipMessage.parse(data.replace(b"SIP/2.0 180 Ringing", bad))
        assert (str(ei.value), ei.value.status_hint) == (error, status)


def test_lazy_properties_and_validate() -> None:
    m = req(BASIC.replace(b"Max-", b"Expires: 3600\r\nDate: Sat, 13 Nov 2010 23:29:00 GMT\r\nMax-"))
    m.validate()
    assert (m.expires, m.date) == (3600, "Sat, 13 Nov 2010 23:29:00 GMT")
    assert m.vias is m.vias  # cached
    m = req(BASIC.replace(b"To: Bob <sip:bob@biloxi.example.com>", b"To: Bob <sip:bob@>"))
    with pytest.raises(MalformedMessage, match="^bad host '' in 'sip:bob@'$"):
        m.validate()


def test_make_response() -> None:
    r = req(BASIC.replace(b"Max-", b"Record-Route: <sip:p1.example;lr>\r\nMax-"))
    resp = make_response(r, 180, to_tag="xyz")
    assert (resp.status, resp.reason, resp.to_tag, resp.from_tag) == (
        180,
        "Ringing",
        "xyz",
        r.from_tag,
    )
    assert (resp.cseq, resp.call_id, resp.vias) == (r.cseq, r.call_id, r.vias)
    assert resp.get_all("record-route") == ["<sip:p1.example;lr>"]
    assert make_response(r, 100, to_tag="xyz").to_tag is None  # 100 Trying carries no tag
    assert "record-route" not in make_response(r, 486, to_tag="xyz")
    ok = make_response(r, 200, "Fine", to_tag="t", headers=[("Contact", "<sip:me@h>")], body=b"x")
    assert bytes(ok).startswith(b"SIP/2.0 200 Fine\r\n")
    assert bytes(ok).endswith(b"Contact: <sip:me@h>\r\nContent-Length: 1\r\n\r\nx")
    back = SipMessage.parse(bytes(ok))
    assert isinstance(back, SipResponse) and back.body == b"x" and back.to_tag == "t"
    tagged = req(BASIC.replace(b"Bob <sip:bob@biloxi.example.com>", b"<sip:b@c>;tag=old"))
    assert make_response(tagged, 200, to_tag="new").to_tag == "old"


def test_make_response_to_a_request_with_a_broken_to() -> None:
    bad_to = '"Watson, Thomas" < sip:t.watson@example.org >'
    r = req(BASIC.replace(b"Bob <sip:bob@biloxi.example.com>", bad_to.encode()))
    with pytest.raises(MalformedMessage):
        r.to  # noqa: B018
    resp = make_response(r, 400, "Bad To", to_tag="t1")
    assert resp.get("to") == bad_to
    assert bytes(resp).startswith(b"SIP/2.0 400 Bad To\r\nVia: SIP/2.0/UDP pc33")


def test_build_request_from_scratch() -> None:
    m = SipRequest(
        "OPTIONS",
        "sip:a@b.example",
        [
            ("Via", "SIP/2.0/UDP h;branch=z9hG4bKq"),
            ("From", "<sip:c@d>;tag=1"),
            ("To", "<sip:a@b.example>"),
            ("Call-ID", "x"),
            ("CSeq", "1 OPTIONS"),
        ],
    )
    again = SipMessage.parse(bytes(m), stream=True)
    assert bytes(again) == bytes(m)
    assert bytes(m).endswith(b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")


# -- captures ---------------------------------------------------------------------
OPTIONS_SIPP_NORMALISED = crlf(
    """
OPTIONS sip:hotline@192.0.2.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.1.1:5061;branch=z9hG4bK-2961-1-0
From: sipp <sip:sipp@127.0.1.1:5061>;tag=2961SIPpTag001
To: <sip:hotline@192.0.2.1:5060>
Call-ID: 1-2961@127.0.1.1
CSeq: 1 OPTIONS
Contact: <sip:sipp@127.0.1.1:5061>
Max-Forwards: 70
Subject: Performance Test
Accept: application/sdp
Content-Length: 0
"""
)


def test_capture_invite_asterisk() -> None:
    data = load("invite_asterisk.sip")
    m = req(data)
    assert (m.uri.user, m.uri.host, m.uri.port) == ("+8613800138000", "203.0.113.10", 5060)
    assert m.branch == "z9hG4bKPj1f0e8b8c-4d0a-4b4e-9a4c-3c1f5b2d7e61"
    assert m.vias[0].params["rport"] is None
    assert (m.from_.display, m.from_tag, m.to_tag) == (
        "Li Na",
        "5c2a9a0e-7d4f-4c1b-8f0e-2b6f0a9c1d33",
        None,
    )
    assert m.cseq == (16043, "INVITE")
    assert len(m.get_all("allow")) == 14 and "PRACK" in m.get_all("allow")
    assert m.get_all("supported") == ["100rel", "timer", "replaces", "norefersub", "histinfo"]
    assert m.content_type == "application/sdp"
    assert m.body.startswith(b"v=0\r\n") and m.body.endswith(b"a=sendrecv\r\n")
    n = len(m.body)
    # Asterisk pads Content-Length; the normalised form does not.
    assert bytes(m) == data.replace(
        f"Content-Length:   {n}".encode(), f"Content-Length: {n}".encode()
    )
    with pytest.raises(MalformedMessage) as ei:
        SipMessage.parse(load("invite_asterisk_invalid.sip"))
    assert str(ei.value) == "CSeq method BYE does not match the request method INVITE"
    with pytest.raises(MalformedMessage) as ei:
        SipMessage.parse(load("invite_asterisk_truncated.sip"))
    assert str(ei.value) == f"Content-Length {n} is larger than the 100 bytes of body received"


def test_capture_invite_freeswitch() -> None:
    data = load("invite_freeswitch.sip")
    m = req(data, stream=True)
    assert (m.uri.transport, m.vias[0].transport, m.max_forwards) == ("tcp", "TCP", 69)
    assert m.from_.display == "Outbound Call" and m.from_tag == "NjgQH2y8QDpvF"
    assert m.get("remote-party-id").startswith('"Outbound Call"')  # type: ignore[union-attr]
    assert m.get("X-FS-Support") == "update_display,send_info"
    assert m.get_all("allow-events") == ["talk", "hold", "conference", "refer"]
    assert bytes(m) == data
    with pytest.raises(MalformedMessage) as ei:
        SipMessage.parse(load("invite_freeswitch_invalid.sip"))
    assert (str(ei.value), ei.value.status_hint) == ("unsupported SIP version 'SIP/3.0'", 505)
    with pytest.raises(MalformedMessage) as ei:
        SipMessage.parse(load("invite_freeswitch_truncated.sip"))
    assert str(ei.value) == "no empty line after the header block"


def test_capture_register_linphone() -> None:
    data = load("register_linphone.sip")
    m = req(data)
    v = m.vias[0]
    assert (v.transport, v.host, v.port, v.params["alias"]) == (
        "TLS",
        "[2001:db8::25]",
        43210,
        None,
    )
    (c,) = m.contacts  # commas inside the quoted +org.linphone.specs do not split it
    assert (c.uri.host_bare, c.uri.port, c.uri.transport) == ("2001:db8::25", 43210, "tls")
    assert c.params["+sip.instance"] == '"<urn:uuid:a1b2c3d4-0000-1111-2222-333344445555>"'
    assert c.params["+org.linphone.specs"] == '"ephemeral,groupchat,groupchat/1.1,lime"'
    assert (c.params["expires"], m.expires) == ("600", 600)
    assert m.to.uri.user == "1002" and m.to.display is None
    assert len(m.get_all("accept")) == 3
    assert bytes(m) == data
    bad = SipMessage.parse(load("register_linphone_invalid.sip"))  # Expires is checked lazily
    with pytest.raises(MalformedMessage) as ei:
        bad.validate()
    assert str(ei.value) == "bad Expires '4294967296': not in 0-4294967295"
    with pytest.raises(MalformedMessage) as ei:
        SipMessage.parse(load("register_linphone_truncated.sip"))
    assert str(ei.value) == "no empty line after the header block"


def test_capture_register_baresip() -> None:
    data = load("register_baresip.sip")
    m = req(data, stream=True)
    assert m.contacts[0].uri.user == "1003-0x55d0c9e8b2a0"
    assert m.contacts[0].params == {"expires": "3600"}
    assert m.get_all("allow")[:3] == ["INVITE", "ACK", "BYE"]
    assert (m.cseq, m.from_tag) == ((43210, "REGISTER"), "3f1c6a4b9e8d7c21")
    assert bytes(m) == data
    with pytest.raises(MalformedMessage) as ei:
        SipMessage.parse(load("register_baresip_invalid.sip"))
    assert str(ei.value) == "header line without a colon: 'Max-Forwards 70'"
    with pytest.raises(MalformedMessage) as ei:
        SipMessage.parse(load("register_baresip_truncated.sip"))
    assert str(ei.value) == "no empty line after the header block"


def test_capture_options_sipp() -> None:
    m = req(load("options_sipp.sip"), stream=True)
    assert (m.from_.display, m.call_id, m.get("subject")) == (
        "sipp",
        "1-2961@127.0.1.1",
        "Performance Test",
    )
    assert bytes(m) == OPTIONS_SIPP_NORMALISED
    with pytest.raises(MalformedMessage) as ei:
        SipMessage.parse(load("options_sipp_invalid.sip"))
    assert str(ei.value) == "missing mandatory header Call-ID"
    with pytest.raises(MalformedMessage) as ei:
        SipMessage.parse(load("options_sipp_truncated.sip"))
    assert str(ei.value) == "no empty line after the header block"


