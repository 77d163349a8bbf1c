"""SIP/tel URIs, name-addr, Via and the small helpers of sip/uri.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sip.exceptions import MalformedMessage, ProtocolError
from sip.uri import NameAddr, SipUri, Via, parse_params, quote, split_quoted, unquote


# -- SipUri ---------------------------------------------------------------------
def test_full_sip_uri() -> None:
    u = SipUri.parse("sip:alice:secret@Example.COM:5070;transport=TCP;lr?subject=hi&x=1")
    assert (u.scheme, u.user, u.password, u.host, u.port) == (
        "sip",
        "alice",
        "secret",
        "example.com",
        5070,
    )
    assert u.params == {"transport": "TCP", "lr": None}
    assert u.transport == "tcp"
    assert u.headers == "subject=hi&x=1"
    assert str(u) == "sip:alice:secret@example.com:5070;transport=TCP;lr?subject=hi&x=1"


def test_sips_and_default_transport() -> None:
    u = SipUri.parse("SIPS:bob@b.example")
    assert u.scheme == "sips"
    assert u.transport == "tls"
    assert SipUri.parse("sip:b.example").transport == "udp"
    assert str(u) == "sips:bob@b.example"


@pytest.mark.parametrize(
    ("text", "host", "bare", "port"),
    [
        ("sip:alice@[2001:db8::1]:5061", "[2001:db8::1]", "2001:db8::1", 5061),
        ("sip:[::1]", "[::1]", "::1", None),
        ("sip:alice@[2001:DB8::A];transport=tls", "[2001:db8::a]", "2001:db8::a", None),
    ],
)
def test_ipv6_reference(text: str, host: str, bare: str, port: int | None) -> None:
    u = SipUri.parse(text)
    assert (u.host, u.host_bare, u.port) == (host, bare, port)


def test_tel_uri() -> None:
    u = SipUri.parse("tel:+86-10-1234-5678;phone-context=example.com")
    assert (u.scheme, u.user, u.host) == ("tel", "+86-10-1234-5678", "")
    assert u.params == {"phone-context": "example.com"}
    assert str(u) == "tel:+86-10-1234-5678;phone-context=example.com"


def test_opaque_scheme_kept() -> None:
    u = SipUri.parse("urn:service:sos")
    assert (u.scheme, u.opaque) == ("urn", "service:sos")
    assert str(u) == "urn:service:sos"


def test_user_with_semicolon_and_question_mark() -> None:
    # RFC 4475 semiuri/intmeth: the first '@' ends the userinfo.
    u = SipUri.parse("sip:user;par=u%40example.net@example.com")
    assert (u.user, u.host, u.params) == ("user;par=u%40example.net", "example.com", {})
    u = SipUri.parse("sip:a?,/;b:p&w@h.example;x=1")
    assert (u.user, u.password, u.host, u.params) == ("a?,/;b", "p&w", "h.example", {"x": "1"})


def test_user_unescaped() -> None:
    assert SipUri.parse("sip:%75se%72@example.com").user_unescaped == "user"
    assert SipUri.parse("sip:null-%00-null@example.com").user_unescaped == "null-\x00-null"
    assert SipUri.parse("sip:example.com").user_unescaped is None


def test_copy_is_independent() -> None:
    u = SipUri.parse("sip:a@b;lr")
    c = u.copy()
    c.params["maddr"] = "x"
    assert "maddr" not in u.params


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("alice@example.com", "URI without a scheme: 'alice@example.com'"),
        ("sip:", "bad SIP URI 'sip:'"),
        ("sip:a b@example.com", "bad SIP URI 'sip:a b@example.com'"),
        ("sip:@example.com", "empty user part in 'sip:@example.com'"),
        ("sip:al<ce@example.com", "bad SIP URI 'sip:al<ce@example.com'"),
        ("sip:al[ce@example.com", "bad character in the user part of 'sip:al[ce@example.com'"),
        ("sip:a%4@example.com", "bad %-escape in 'sip:a%4@example.com'"),
        ("sip:a:p@ss@example.com", "bad host 'ss@example.com' in 'sip:a:p@ss@example.com'"),
        ("sip:a@[2001:db8::1", "unterminated IPv6 reference in 'sip:a@[2001:db8::1'"),
        ("sip:a@example.com:99999", "bad port '99999' in 'sip:a@example.com:99999'"),
        ("sip:a@example.com:5o60", "bad port '5o60' in 'sip:a@example.com:5o60'"),
        ("sip:a@example.com:\u00b2", "bad port '\u00b2' in 'sip:a@example.com:\u00b2'"),
        ("sip:a@exa$mple.com", "bad host 'exa$mple.com' in 'sip:a@exa$mple.com'"),
        ("sip:a@example.com;;lr", "empty parameter in ';lr'"),
        ("sip:a@example.com;l@r", "bad parameter name 'l@r'"),
        ("tel:", "tel URI without a number: 'tel:'"),
        ("tel:+1 555", "bad tel number '+1 555'"),
        ("http:", "bad URI 'http:'"),
    ],
)
def test_bad_uris(text: str, error: str) -> None:
    with pytest.raises(MalformedMessage) as ei:
        SipUri.parse(text)
    assert str(ei.value) == error
    assert ei.value.status_hint == 400


# -- NameAddr ------------------------------------------------------------------
def test_name_addr_quoted_display_and_params() -> None:
    na = NameAddr.parse('"Bob \\"B\\", Jr" <sip:bob@b.example;transport=tcp>;tag=12;q=0.5')
    assert na.display == 'Bob "B", Jr'
    assert na.uri.params == {"transport": "tcp"}  # inside <>: the URI's
    assert na.params == {"tag": "12", "q": "0.5"}  # outside: the header's
    assert na.tag == "12"
    assert str(na) == '"Bob \\"B\\", Jr" <sip:bob@b.example;transport=tcp>;tag=12;q=0.5'


def test_addr_spec_params_belong_to_the_header() -> None:
    # RFC 3261 §20.10 / RFC 4475 cparam01: after a bare addr-spec, params are the header's.
    na = NameAddr.parse("sip:+19725552222@gw1.example.net;unknownparam;tag=x")
    assert na.uri.params == {}
    assert na.params == {"unknownparam": None, "tag": "x"}
    assert str(na) == "<sip:+19725552222@gw1.example.net>;unknownparam;tag=x"


def test_token_display_name_and_no_space_before_laquot() -> None:
    na = NameAddr.parse("caller<sip:caller@example.com>;tag=323")
    assert (na.display, na.uri.user, na.tag) == ("caller", "caller", "323")
    na = NameAddr.parse("Li Na <sip:1001@pbx.example>")
    assert na.display == "Li Na"
    assert str(na) == "Li Na <sip:1001@pbx.example>"


def test_wildcard_contact() -> None:
    assert NameAddr.parse(" * ").wildcard
    assert str(NameAddr.parse("*")) == "*"


def test_ipv6_in_name_addr() -> None:
    na = NameAddr.parse("<sip:1002@[2001:db8::25]:43210;transport=tls>;expires=600")
    assert (na.uri.host, na.uri.port, na.params["expires"]) == ("[2001:db8::25]", 43210, "600")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            '"Mr. J. User <sip:j.user@example.com>',
            "unterminated display name in '\"Mr. J. User <sip:j.user@example.com>'",
        ),
        (
            '"Watson, Thomas" < sip:t.watson@example.org >',
            "whitespace inside <> in '\"Watson, Thomas\" < sip:t.watson@example.org >'",
        ),
        (
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            "display name must be tokens or quoted in "
            "'Bell, Alexander <sip:a.g.bell@example.com>;tag=43'",
        ),
        (
            '"Joe" sip:joe@example.org',
            "display name without <URI> in '\"Joe\" sip:joe@example.org'",
        ),
        ("<sip:joe@example.org", "missing '>' in '<sip:joe@example.org'"),
        ("<sip:joe@example.org> x", "garbage after '>' in '<sip:joe@example.org> x'"),
        ("sip:joe@example.org>", "'>' without '<' in 'sip:joe@example.org>'"),
        (
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "URI with ',', '?' must be in <> in "
            "'sip:user@example.com?Route=%3Csip:sip.example.com%3E'",
        ),
        ('"Joe" <sip:joe@example.org>;;;;', "empty parameter in ';;;'"),
    ],
)
def test_bad_name_addrs(text: str, error: str) -> None:
    with pytest.raises(MalformedMessage) as ei:
        NameAddr.parse(text)
    assert str(ei.value) == error


# -- Via -----------------------------------------------------------------------
def test_via_with_lws_everywhere() -> None:
    v = Via.parse("SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8  ")
    assert (v.transport, v.host, v.port, v.branch) == (
        "TCP",
        "spindle.example.com",
        None,
        "z9hG4bK9ikj8",
    )
    assert str(v) == "SIP/2.0/TCP spindle.example.com;branch=z9hG4bK9ikj8"


def test_via_ipv6_rport_received() -> None:
    v = Via.parse("SIP/2.0/TLS [2001:db8::25]:43210;alias;branch=z9hG4bK.X;rport")
    assert (v.transport, v.host, v.port) == ("TLS", "[2001:db8::25]", 43210)
    assert v.params == {"alias": None, "branch": "z9hG4bK.X", "rport": None}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("SIP/7.0/UDP c.example.com", "bad Via 'SIP/7.0/UDP c.example.com'"),
        ("SIP/2.0/UDP", "bad Via 'SIP/2.0/UDP'"),
        ("SIP/2.0/UDP 192.0.2.15;;", "empty parameter in ';'"),
        ("SIP/2.0/UDP h x", "bad Via parameters in 'SIP/2.0/UDP h x'"),
        ("SIP/2.0/UDP h:70000", "bad port '70000' in 'SIP/2.0/UDP h:70000'"),
        ("SIP/2.0/UDP -h", "bad host '-h' in Via 'SIP/2.0/UDP -h'"),
    ],
)
def test_bad_vias(text: str, error: str) -> None:
    with pytest.raises(MalformedMessage) as ei:
        Via.parse(text)
    assert str(ei.value) == error


# -- helpers -------------------------------------------------------------------
def test_split_quoted_respects_quotes_and_angles() -> None:
    value = '"A, B" <sip:a@b;x=1,2>, <sip:c@d>, sip:e@f'
    assert split_quoted(value, ",") == ['"A, B" <sip:a@b;x=1,2>', " <sip:c@d>", " sip:e@f"]
    with pytest.raises(MalformedMessage, match="unterminated quoted string"):
        split_quoted('"abc, d', ",")


def test_params_quote_unquote() -> None:
    assert parse_params('q=0.33;Foo="a;b";flag') == {"q": "0.33", "foo": '"a;b"', "flag": None}
    assert unquote(quote('a "b" \\c')) == 'a "b" \\c'
    assert quote('x"y') == '"x\\"y"'


def test_errors_are_protocol_errors() -> None:
    assert issubclass(MalformedMessage, ProtocolError)


# -- the NameAddr fast path agrees with the general parser -------------------------------
_TOKENISH = st.text("abcXYZ09-.!%*_+`'~", min_size=1, max_size=6)
_DISPLAY = st.one_of(
    st.just(""),
    st.lists(_TOKENISH, min_size=1, max_size=3).map(" ".join),
    st.text('ab c,;<>\\"é\t', max_size=8).map(lambda s: f'"{s}"'),
)
_URI = st.sampled_from(
    ["sip:a@b.example", "sips:[::1]:5061;transport=tls", "tel:+123", "sip:a b@c", "sip:a@b;;x",
     "http://x", "sip:%zz@h", "sip:a@b?h=v", "urn:x:y", ""]
)  # fmt: skip
_PARAMS = st.lists(
    st.sampled_from([";tag=1", " ; q = 0.5", ";lr", ";;", ';x="a;b"', " junk", ";=v"]), max_size=3
).map("".join)


def _outcome(fn: Callable[[], NameAddr]) -> object:
    try:
        return fn()
    except MalformedMessage as exc:
        return ("error", str(exc))


@settings(max_examples=300, deadline=None)
@given(_DISPLAY, st.sampled_from(["", " ", "\t"]), _URI, _PARAMS)
def test_name_addr_fast_path_matches_general_parser(d: str, sp: str, uri: str, p: str) -> None:
    text = f"{d}{sp}<{uri}>{p}"
    s = text.strip()
    assert _outcome(lambda: NameAddr.parse(text)) == _outcome(
        lambda: NameAddr._parse_general(text, s)
    )


def test_unquoted_utf8_display_name_is_accepted_but_ascii_separators_are_not() -> None:
    # Phones in China send unquoted UTF-8 names; RFC 4475 baddn's comma stays an error.
    na = NameAddr.parse("李娜 <sip:1001@pbx.example>;tag=7")
    assert na.display == "李娜" and na.tag == "7" and na.uri.user == "1001"
    with pytest.raises(MalformedMessage):
        NameAddr.parse("Bell, Alexander <sip:a.g.bell@example.com>;tag=43")
