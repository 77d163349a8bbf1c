"""RFC 4475 "SIP Torture Test Messages" against sip/message.py and sip/uri.py.

Valid messages (§3.1.1) parse, the fields the RFC points out come out right, and
``bytes(msg)`` re-parses to an equivalent message. Invalid ones (§3.1.2) raise
``MalformedMessage`` with an exact text, either in ``SipMessage.parse`` (eager checks) or
in the lazily parsed property that the transaction layer reads anyway (see the module
docstring of sip/message.py). §3.2-§3.4 messages are syntactically fine: the test says
which layer rejects them and asserts that the parser exposes what that layer needs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from sip.exceptions import MalformedMessage
from sip.message import SipMessage, SipRequest, SipResponse

CORPUS = Path(__file__).resolve().parents[1] / "data" / "rfc4475"

VALID = [
    "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq",
    "semiuri", "transports", "mpart01", "unreason", "noreason",
]  # fmt: skip
# §3.2-3.4: parseable, rejected (if at all) above the parser.
HIGHER_LAYER = [
    "badbranch", "unkscm", "novelsc", "unksm2", "bext01", "invut", "regaut01", "bcast",
    "zeromf", "cparam01", "cparam02", "regescrt", "sdp01", "inv2543",
]  # fmt: skip

# name -> (where it is caught, exact error, status_hint)
INVALID: dict[str, tuple[str, str, int]] = {
    "badinv01": ("vias", "empty parameter in ';'", 400),
    "clerr": ("parse", "Content-Length 9999 is larger than the 154 bytes of body received", 400),
    "ncl": ("parse", "bad Content-Length '-999'", 400),
    "scalar02": ("parse", "CSeq number 36893488147419103232 is not below 2**31", 400),
    "scalarlg": ("parse", "CSeq number 9292394834772304023312 is not below 2**31", 400),
    "quotbal": (
        "to",
        "unterminated display name in '\"Mr. J. User <sip:j.user@example.com>'",
        400,
    ),
    "ltgtruri": ("parse", "bad Request-URI '<sip:user@example.com>'", 400),
    "lwsruri": ("parse", "bad request line 'INVITE sip:user@example.com; lr SIP/2.0'", 400),
    "lwsstart": ("parse", "bad request line 'INVITE  sip:user@example.com  SIP/2.0'", 400),
    "trws": (
        "parse",
        "bad request line 'OPTIONS sip:remote-target@example.com SIP/2.0  '",
        400,
    ),
    "escruri": (
        "uri",
        "headers in the Request-URI 'sip:user@example.com?Route=%3Csip:example.com%3E'",
        400,
    ),
    "baddate": (
        "date",
        "bad Date 'Fri, 01 Jan 2010 16:00:00 EST': must be an RFC 1123 date in GMT",
        400,
    ),
    "regbadct": (
        "contacts",
        "URI with ',', '?' must be in <> in 'sip:user@example.com?Route=%3Csip:sip.example.com%3E'",
        400,
    ),
    "badaspec": (
        "to",
        "whitespace inside <> in '\"Watson, Thomas\" < sip:t.watson@example.org >'",
        400,
    ),
    "baddn": (
        "from_",
        "display name must be tokens or quoted in "
        "'Bell, Alexander <sip:a.g.bell@example.com>;tag=43'",
        400,
    ),
    "badvers": ("parse", "unsupported SIP version 'SIP/7.0'", 505),
    "mismatch01": ("parse", "CSeq method INVITE does not match the request method OPTIONS", 400),
    "mismatch02": (
        "parse",
        "CSeq method INVITE does not match the request method NEWMETHOD",
        400,
    ),
    "bigcode": ("parse", "bad status line 'SIP/2.0 4294967301 better not break the receiver'", 400),
    "insuf": ("parse", "missing mandatory header To", 400),
    "multi01": ("parse", "more than one Call-ID header", 400),
    "mcl01": ("parse", "conflicting Content-Length headers", 400),
}


def load(name: str) -> bytes:
    return (CORPUS / f"{name}.sip").read_bytes()


def parse(name: str) -> SipMessage:
    return SipMessage.parse(load(name))


def req(name: str) -> SipRequest:
    m = parse(name)
    assert isinstance(m, SipRequest)
    return m


def assert_equivalent(a: SipMessage, b: SipMessage) -> None:
    """Same start line, same headers (Content-Length aside), same body, same parsed fields."""
    assert type(a) is type(b)
    if isinstance(a, SipRequest):
        assert isinstance(b, SipRequest)
        assert (a.method, a.uri_text) == (b.method, b.uri_text)
    else:
        assert isinstance(a, SipResponse) and isinstance(b, SipResponse)
        assert (a.status, a.reason) == (b.status, b.reason)
    items_a = [(n, v) for n, v in a.items() if n != "Content-Length"]
    items_b = [(n, v) for n, v in b.items() if n != "Content-Length"]
    assert items_a == items_b
    assert a.body == b.body
    assert (a.cseq, a.call_id, a.vias, a.from_, a.to) == (b.cseq, b.call_id, b.vias, b.from_, b.to)
    assert a.contacts == b.contacts


# -- the corpus itself -------------------------------------------------------------
def test_corpus_files_match_the_rfc_markup() -> None:
    spec = importlib.util.spec_from_file_location("build_corpus", CORPUS / "build_corpus.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    built = mod.build()
    assert sorted(built) == sorted(VALID + HIGHER_LAYER + list(INVALID))
    for name, data in built.items():
        assert load(name) == data, name


def test_markup_expansion() -> None:
    spec = importlib.util.spec_from_file_location("build_corpus", CORPUS / "build_corpus.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    markup = "A<repeat count=3>ab</repeat>\n<allOneLine>\nB: x\ny<hex>00FF</hex>\n</allOneLine>\n\n"
    assert mod.expand(markup) == b"Aababab\r\nB: xy\x00\xff\r\n\r\n"


# -- §3.1.1 valid ------------------------------------------------------------------
@pytest.mark.parametrize("name", VALID + HIGHER_LAYER)
def test_parses_validates_and_round_trips(name: str) -> None:
    m = parse(name)
    m.validate()
    again = SipMessage.parse(bytes(m))
    assert_equivalent(m, again)
    assert bytes(again) == bytes(m)  # normalised form is a fixed point


def test_wsinv() -> None:
    m = req("wsinv")
    assert m.method == "INVITE"
    assert m.uri.user == "vivekg" and m.uri.params == {"unknownparam": None}
    assert (m.to.uri.user, m.to.tag, m.to.display) == ("vivekg", "1918181833n", None)
    assert m.from_.display == 'J Rosenberg \\"'
    assert m.from_.tag == "98asjd8"
    assert m.max_forwards == 68
    assert m.cseq == (9, "INVITE")
    assert m.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert [(v.transport, v.host, v.branch) for v in m.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert m.get("subject") == "" and m.get("s") == ""
    assert m.get("newfangledheader") == "newfangled value continued newfangled value"
    assert m.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert m.get_all("route") == [
        "<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"
    ]
    (c,) = m.contacts
    assert c.display == 'Quoted string ""'
    assert c.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert m.content_type == "application/sdp"
    assert len(m.body) == 150 and m.body.startswith(b"v=0\r\no=mhandley")


def test_intmeth() -> None:
    m = req("intmeth")
    assert m.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.cseq == (139122385, m.method)
    assert m.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert m.uri.host == "example.com"
    assert m.branch == "z9hG4bK-.!%66*_+`'~"
    assert m.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.to.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.from_.display == "token1~` token2'+_ token3*%!.-"
    assert m.from_.params["fromparam''~+*_!.-%"] == '"работающий"'
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"
    assert m.max_forwards == 255
    # the raw NUL/DEL octets survive serialisation
    assert b'"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f"' in bytes(m)


def test_esc01() -> None:
    m = req("esc01")
    assert m.uri.user == "sips%3Auser%40example.com"
    assert m.uri.user_unescaped == "sips:user@example.com"
    assert m.uri.host == "example.net"
    assert m.to.uri.user_unescaped == "user"
    assert m.from_.uri.user_unescaped == "I have spaces"
    assert m.call_id == "esc01.239409asdfakjkn23onasd0-3234"  # compact i:
    assert m.content_type == "application/sdp"  # compact C:
    (c,) = m.contacts
    assert c.uri.user_unescaped == "caller"
    assert c.uri.params == {"%6c%72": None, "n%61me": "v%61lue%25%34%31"}


def test_escnull() -> None:
    m = req("escnull")
    assert m.to.uri.user_unescaped == "null-\x00-null"
    assert [c.uri.user_unescaped for c in m.contacts] == ["\x00", "\x00\x00"]
    assert m.body == b""


def test_esc02() -> None:
    m = req("esc02")
    assert m.method == "RE%47IST%45R"  # % is not an escape in a method
    assert m.cseq == (29344, "RE%47IST%45R")
    assert m.to.display == "%Z%45" and m.from_.display == "%Z%45"
    assert m.branch == "z9hG4bK209%fzsnel234"
    assert [str(c.uri) for c in m.contacts] == [
        "sip:alias1@host1.example.com",
        "sip:alias3@host3.example.com",
    ]
    assert m.get("C%6Fntact") == "<sip:alias2@host2.example.com>"  # an unknown header


def test_lwsdisp() -> None:
    m = req("lwsdisp")
    assert (m.from_.display, m.from_.uri.user, m.from_.tag) == ("caller", "caller", "323")


def test_longreq() -> None:
    m = req("longreq")
    assert m.to.display == "I have a user name of " + "extreme" * 10 + " proportion"
    assert m.to.uri.port == 6000
    assert m.to.uri.params["longparam" + "name" * 25] == "shortvalue"
    assert m.to.uri.params["very" + "long" * 25 + "parameternamewithnovalue"] is None
    assert m.from_.tag == "12" + "982" * 50 + "424"
    assert m.from_.uri.user == "amazinglylongcallername" * 5
    assert m.call_id == "longreq.one" + "really" * 20 + "longcallid"
    assert len(m.vias) == 34
    assert [v.host for v in m.vias[:3]] == [
        "sip33.example.com",
        "sip32.example.com",
        "sip31.example.com",
    ]
    assert m.vias[-1].params["received"] == "192.0.2.5"
    assert m.vias[-1].branch == "very" + "long" * 50 + "branchvalue"
    assert m.get("Unknown-" + "Long" * 20 + "-Name") == (
        "unknown-" + "long" * 20 + "-value; unknown-" + "long" * 20
        + "-parameter-name = unknown-" + "long" * 20 + "-parameter-value"
    )  # fmt: skip
    assert len(m.body) == 150


def test_dblreq_only_first_message_of_datagram() -> None:
    m = req("dblreq")
    assert (m.method, m.cseq, m.body) == ("REGISTER", (8, "REGISTER"), b"")
    assert m.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    assert b"INVITE" not in bytes(m)


def test_semiuri() -> None:
    m = req("semiuri")
    assert (m.uri.user, m.uri.host, m.uri.params) == ("user;par=u%40example.net", "example.com", {})
    assert m.get_all("accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def test_transports() -> None:
    m = req("transports")
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert m.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def test_mpart01_body_intact() -> None:
    data = load("mpart01")
    m = req("mpart01")
    assert m.content_type == "multipart/mixed"
    assert len(m.body) == 553
    assert m.body == data[data.index(b"\r\n\r\n") + 4 :]
    parts = m.body.split(b"--7a9cbec02ceef655")
    assert parts[0] == b"" and parts[-1] == b"--\r\n"
    assert parts[1].endswith(b"\r\n\r\nHello\r\n")
    binary = parts[2].split(b"\r\n\r\n", 1)[1]
    assert binary.startswith(b"\x30\x82\x01\x52") and b"\x00" in binary
    assert m.vias[0].params["rport"] is None
    assert (m.get("identity") or "").startswith("r5mwreLuyDRYBi")


def test_unreason_utf8_reason_kept() -> None:
    m = parse("unreason")
    assert isinstance(m, SipResponse)
    assert m.status == 200
    assert m.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    assert bytes(m).split(b"\r\n")[0] == load("unreason").split(b"\r\n")[0]


def test_noreason_empty_reason() -> None:
    m = parse("noreason")
    assert isinstance(m, SipResponse)
    assert (m.status, m.reason) == (100, "")
    assert bytes(m).startswith(b"SIP/2.0 100 \r\n")


# -- §3.1.2 invalid ----------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid(name: str) -> None:
    where, error, status = INVALID[name]
    if where == "parse":
        with pytest.raises(MalformedMessage) as ei:
            parse(name)
    else:
        m = parse(name)  # framing is fine: the lazy check that the stack runs catches it
        with pytest.raises(MalformedMessage) as ei:
            getattr(m, where)
        with pytest.raises(MalformedMessage) as ei2:
            m.validate()
        assert str(ei2.value) == error
    assert str(ei.value) == error
    assert ei.value.status_hint == status


def test_scalar02_every_scalar_is_checked() -> None:
    data = load("scalar02").replace(b"36893488147419103232", b"1")
    with pytest.raises(MalformedMessage, match=r"^bad Max-Forwards '300': not in 0-255$"):
        SipMessage.parse(data)
    m = SipMessage.parse(data.replace(b"Max-Forwards: 300", b"Max-Forwards: 70"))
    with pytest.raises(MalformedMessage, match=r"^bad Expires '1000000000"):
        m.expires  # noqa: B018


def test_badinv01_contact_too() -> None:
    m = parse("badinv01")
    with pytest.raises(MalformedMessage, match=r"^empty parameter in ';;;'$"):
        m.contacts  # noqa: B018


def test_mcl01_and_clerr_on_a_stream() -> None:
    with pytest.raises(MalformedMessage, match="conflicting Content-Length"):
        SipMessage.parse(load("mcl01"), stream=True)


# -- §3.2 transaction layer, §3.3 application layer, §3.4 RFC 2543 ---------------
def test_badbranch_left_to_the_transaction_layer() -> None:
    # The branch is only the magic cookie: the transaction layer must not use it as a
    # unique id (RFC 3261 §17.2.3 falls back to RFC 2543 matching); the parser exposes it.
    assert req("badbranch").branch == "z9hG4bK"


def test_unknown_request_uri_schemes_for_the_tu_416() -> None:
    u = req("unkscm").uri
    assert (u.scheme, u.opaque) == ("nobodyknowsthisscheme", "totallyopaquecontent")
    u = req("novelsc").uri
    assert (u.scheme, u.opaque) == ("soap.beep", "//192.0.2.103:3002")


def test_unksm2_unknown_schemes_in_headers() -> None:
    m = req("unksm2")
    assert (m.to.uri.scheme, m.to.uri.opaque) == ("isbn", "2983792873")
    assert (m.from_.uri.scheme, m.from_.tag) == ("http", "3234233")
    assert [c.uri.scheme for c in m.contacts] == ["name"]  # registrar refuses: not sip:


def test_bext01_require_for_the_tu_420() -> None:
    m = req("bext01")
    assert m.get_all("require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert m.get_all("proxy-require") == ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]


def test_invut_content_type_for_the_tu_415() -> None:
    m = req("invut")
    assert m.content_type == "application/unknownformat"
    assert m.body == b'<audio>\r\n <pcmu port="443"/>\r\n</audio>\r\n'


def test_regaut01_unknown_auth_scheme_for_the_registrar_401() -> None:
    assert req("regaut01").get("authorization") == "NoOneKnowsThisScheme opaque-data=here"


def test_bcast_via_exposed() -> None:
    m = parse("bcast")
    assert [v.host for v in m.vias] == ["192.0.2.198", "255.255.255.255"]


def test_zeromf_for_the_tu_483() -> None:
    assert req("zeromf").max_forwards == 0


def test_cparam_parameter_ownership() -> None:
    (c,) = req("cparam01").contacts
    assert (c.uri.params, c.params) == ({}, {"unknownparam": None})
    (c,) = req("cparam02").contacts
    assert (c.uri.params, c.params) == ({"unknownparam": None}, {})


def test_regescrt_escaped_route_in_contact() -> None:
    (c,) = req("regescrt").contacts
    assert c.uri.headers == "Route=%3Csip:sip.example.com%3E"


def test_sdp01_accept_for_the_tu_406() -> None:
    assert req("sdp01").get_all("accept") == ["text/nobodyKnowsThis"]


def test_inv2543_on_udp_and_on_a_stream() -> None:
    m = req("inv2543")
    assert (m.branch, m.max_forwards) == (None, None)
    assert m.to.uri.params == {} and m.to.params == {"user": "phone"}
    assert m.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n")
    with pytest.raises(MalformedMessage, match="^Content-Length is mandatory on stream"):
        SipMessage.parse(load("inv2543"), stream=True)
