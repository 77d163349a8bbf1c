"""Digest authentication: RFC 7616 §3.9.1 vectors, server/client round trips, replay, fuzz."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sip.auth import (
    AuthFailure,
    DigestClient,
    DigestServer,
    choose_challenge,
    format_auth_header,
    ha1,
    parse_auth_header,
)
from sip.exceptions import AuthError, LocalProtocolError, MalformedAuthHeader

# RFC 7616 §3.9.1 (published values).
RFC_REALM = "http-auth@example.org"
RFC_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}

SECRET = b"0123456789abcdef0123456789abcdef"
REALM = "pbx.example.com"
USERS = {"1001": "s3cret-1001", "1002": 'we"ird\\pass'}


def lookup(username: str, realm: str, algorithm: str) -> str | None:
    password = USERS.get(username)
    return None if password is None else ha1(username, realm, password, algorithm)


def counter_random() -> object:
    counter = itertools.count()
    return lambda n: next(counter).to_bytes(n, "big")


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_worked_example(algorithm: str) -> None:
    challenge = (
        f'Digest realm="{RFC_REALM}", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC_NONCE}", opaque="{RFC_OPAQUE}"'
    )
    client = DigestClient("Mufasa", "Circle of Life")
    value = client.respond(challenge, "GET", "/dir/index.html", cnonce=RFC_CNONCE)
    assert value == (
        f'Digest username="Mufasa", realm="{RFC_REALM}", nonce="{RFC_NONCE}", '
        f'uri="/dir/index.html", response="{RFC_RESPONSES[algorithm]}", '
        f'cnonce="{RFC_CNONCE}", nc=00000001, qop=auth, algorithm={algorithm}, '
        f'opaque="{RFC_OPAQUE}"'
    )


def test_rfc2617_example_without_algorithm_defaults_to_md5() -> None:
    # RFC 2617 §3.5: Mufasa / "Circle Of Life", response 6629fae4...
    challenge = (
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    value = DigestClient("Mufasa", "Circle Of Life").respond(
        challenge, "GET", "/dir/index.html", cnonce="0a4f113b"
    )
    assert 'response="6629fae49393a05397450978507c4ef1"' in value
    assert "algorithm" not in value


def test_ha1_matches_definition() -> None:
    assert (
        ha1("Mufasa", RFC_REALM, "Circle of Life", "SHA-256")
        == hashlib.sha256(b"Mufasa:http-auth@example.org:Circle of Life").hexdigest()
    )
    with pytest.raises(AuthError, match="unsupported digest algorithm 'SHA-1'"):
        ha1("a", "b", "c", "SHA-1")


def test_challenge_format_sha256_first() -> None:
    server = DigestServer(REALM, SECRET, random_bytes=counter_random())  # type: ignore[arg-type]
    values = server.challenge(1000.0)
    assert len(values) == 2
    nonce = parse_auth_header(values[0])[1]["nonce"]
    assert values == [
        f'Digest realm="{REALM}", nonce="{nonce}", algorithm=SHA-256, qop="auth"',
        f'Digest realm="{REALM}", nonce="{nonce}", algorithm=MD5, qop="auth"',
    ]
    assert server.challenge(1000.0, stale=True, algorithms=["MD5"])[0].endswith(", stale=TRUE")
    with pytest.raises(LocalProtocolError):
        server.challenge(1.0, algorithms=["SHA-1"])


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "SHA-512-256", "MD5-sess", "SHA-256-sess"])
def test_round_trip(algorithm: str) -> None:
    server = DigestServer(REALM, SECRET)
    client = DigestClient("1002", USERS["1002"])
    (challenge,) = server.challenge(10.0, algorithms=[algorithm])
    uri = "sip:pbx.example.com"
    value = client.respond(challenge, "REGISTER", uri)
    result = server.verify(value, "REGISTER", lookup, 11.0, request_uri=uri)
    assert result.ok and result.username == "1002" and result.algorithm == algorithm
    # Same nonce, next nc: accepted again.
    again = client.respond(challenge, "INVITE", "sip:200@pbx.example.com")
    assert "nc=00000002" in again
    assert server.verify(again, "INVITE", lookup, 12.0).ok


def test_client_picks_strongest_and_server_accepts() -> None:
    server = DigestServer(REALM, SECRET)
    values = list(reversed(server.challenge(0.0, algorithms=["SHA-256", "MD5"])))
    chosen = choose_challenge(['Basic realm="x"', "Digest garbage", *values])
    assert "algorithm=SHA-256" in chosen
    value = DigestClient("1001", USERS["1001"]).respond(chosen, "REGISTER", "sip:x")
    assert server.verify(value, "REGISTER", lookup, 1.0).algorithm == "SHA-256"
    with pytest.raises(AuthError, match=r"no usable Digest challenge among 2 value\(s\)"):
        choose_challenge(['Basic realm="x"', 'Digest realm="x", nonce="n", algorithm=SHA-1'])


def test_wrong_password_and_unknown_user_look_the_same_to_the_caller() -> None:
    server = DigestServer(REALM, SECRET)
    (challenge,) = server.challenge(0.0)[:1]
    wrong = server.verify(
        DigestClient("1001", "guess").respond(challenge, "REGISTER", "sip:x"),
        "REGISTER",
        lookup,
        1.0,
    )
    unknown = server.verify(
        DigestClient("9999", "guess").respond(challenge, "REGISTER", "sip:x"),
        "REGISTER",
        lookup,
        1.0,
    )
    assert (wrong.ok, wrong.stale) == (unknown.ok, unknown.stale) == (False, False)
    assert wrong.reason is AuthFailure.WRONG_RESPONSE
    assert unknown.reason is AuthFailure.UNKNOWN_USER
    # What the caller answers with depends only on ok/stale: identical challenges.
    assert (
        server.challenge(2.0, stale=wrong.stale)[0].split('nonce="')[0]
        == server.challenge(2.0, stale=unknown.stale)[0].split('nonce="')[0]
    )


def test_stale_nonce_only_with_correct_password() -> None:
    server = DigestServer(REALM, SECRET, nonce_ttl=300)
    (challenge,) = server.challenge(100.0)[:1]
    good = DigestClient("1001", USERS["1001"]).respond(challenge, "REGISTER", "sip:x")
    result = server.verify(good, "REGISTER", lookup, 401.0)
    assert result.reason is AuthFailure.STALE and result.stale
    bad = DigestClient("1001", "nope").respond(challenge, "REGISTER", "sip:x")
    assert server.verify(bad, "REGISTER", lookup, 401.0).reason is AuthFailure.WRONG_RESPONSE
    # Still fresh at exactly the TTL.
    fresh = DigestClient("1001", USERS["1001"]).respond(challenge, "REGISTER", "sip:x")
    assert server.verify(fresh, "REGISTER", lookup, 400.0).ok


def test_nc_replay_is_refused() -> None:
    server = DigestServer(REALM, SECRET)
    (challenge,) = server.challenge(0.0)[:1]
    client = DigestClient("1001", USERS["1001"])
    first = client.respond(challenge, "REGISTER", "sip:x")
    second = client.respond(challenge, "REGISTER", "sip:x")
    assert server.verify(second, "REGISTER", lookup, 1.0).ok
    # Replaying the same message, or an older nc, fails.
    replay = server.verify(second, "REGISTER", lookup, 2.0)
    assert replay.reason is AuthFailure.NC_REPLAY and replay.stale
    assert server.verify(first, "REGISTER", lookup, 2.0).reason is AuthFailure.NC_REPLAY


def test_failed_attempts_do_not_burn_nc() -> None:
    server = DigestServer(REALM, SECRET)
    (challenge,) = server.challenge(0.0)[:1]
    attacker = DigestClient("1001", "guess")
    for _ in range(5):
        attacker.respond(challenge, "REGISTER", "sip:x")
    forged = attacker.respond(challenge, "REGISTER", "sip:x")  # nc=6, wrong password
    assert server.verify(forged, "REGISTER", lookup, 1.0).reason is AuthFailure.WRONG_RESPONSE
    legit = DigestClient("1001", USERS["1001"]).respond(challenge, "REGISTER", "sip:x")
    assert server.verify(legit, "REGISTER", lookup, 1.0).ok


def test_nc_table_is_bounded_and_eviction_does_not_reopen_replay() -> None:
    server = DigestServer(REALM, SECRET, max_nonces=3)
    client = DigestClient("1001", USERS["1001"])
    answers = []
    for t in range(5):
        (challenge,) = server.challenge(float(t))[:1]
        value = client.respond(challenge, "REGISTER", "sip:x")
        assert server.verify(value, "REGISTER", lookup, float(t)).ok
        answers.append(value)
    assert server.tracked_nonces == 3
    # The evicted nonces (t=0, t=1) cannot be replayed: they are now stale.
    assert server.verify(answers[0], "REGISTER", lookup, 6.0).reason is AuthFailure.STALE
    assert server.verify(answers[4], "REGISTER", lookup, 6.0).reason is AuthFailure.NC_REPLAY
    # Entries go away with the TTL.
    (challenge,) = server.challenge(1000.0)[:1]
    assert server.verify(
        client.respond(challenge, "REGISTER", "sip:x"), "REGISTER", lookup, 1000.0
    ).ok
    assert server.tracked_nonces == 1


def test_forged_and_foreign_nonces() -> None:
    server = DigestServer(REALM, SECRET)
    other = DigestServer(REALM, b"another secret of 32 bytes......")
    (foreign,) = other.challenge(0.0)[:1]
    value = DigestClient("1001", USERS["1001"]).respond(foreign, "REGISTER", "sip:x")
    assert server.verify(value, "REGISTER", lookup, 1.0).reason is AuthFailure.BAD_NONCE
    tampered = value.replace('nonce="', 'nonce="A', 1)
    assert server.verify(tampered, "REGISTER", lookup, 1.0).reason is AuthFailure.BAD_NONCE


@pytest.mark.parametrize(
    ("value", "reason", "detail"),
    [
        ("Digest", AuthFailure.MALFORMED, "missing username"),
        (
            "Basic dXNlcjpwYXNz",
            AuthFailure.MALFORMED,
            "expected '=' after 'dXNlcjpwYXNz' at position 18",
        ),
        ('Bearer token="x"', AuthFailure.MALFORMED, "scheme 'Bearer' is not Digest"),
        (
            'Digest username="1001", realm="other", nonce="n", uri="sip:x", response="0"',
            AuthFailure.BAD_REALM,
            "realm 'other'",
        ),
        (
            f'Digest username="1001", realm="{REALM}", nonce="n", uri="sip:x", response="0", '
            "algorithm=SHA-1",
            AuthFailure.UNSUPPORTED_ALGORITHM,
            "algorithm 'SHA-1'",
        ),
        (
            f'Digest username="1001", realm="{REALM}", nonce="n", uri="sip:x", response="0"',
            AuthFailure.UNSUPPORTED_ALGORITHM,
            "no qop",
        ),
        (
            f'Digest username="1001", realm="{REALM}", nonce="n", uri="sip:x", response="0", '
            'qop=auth, nc=1, cnonce="c"',
            AuthFailure.MALFORMED,
            "qop without a valid nc and cnonce",
        ),
        (
            f'Digest username="1001", realm="{REALM}", nonce="n", uri="sip:x", response="0", '
            'qop=auth, nc=00000001, cnonce="c"',
            AuthFailure.BAD_NONCE,
            "nonce was not issued here",
        ),
        (
            'Digest username="1001", realm="x',
            AuthFailure.MALFORMED,
            "unterminated quoted-string at position 30",
        ),
    ],
)
def test_verify_failures(value: str, reason: AuthFailure, detail: str) -> None:
    result = DigestServer(REALM, SECRET).verify(value, "REGISTER", lookup, 0.0)
    assert not result.ok
    assert (result.reason, result.detail) == (reason, detail)


def test_request_uri_must_match_when_given() -> None:
    server = DigestServer(REALM, SECRET)
    (challenge,) = server.challenge(0.0)[:1]
    value = DigestClient("1001", USERS["1001"]).respond(challenge, "INVITE", "sip:200@a")
    result = server.verify(value, "INVITE", lookup, 0.0, request_uri="sip:300@a")
    assert result.reason is AuthFailure.MALFORMED
    assert server.verify(value, "INVITE", lookup, 0.0, request_uri="sip:200@a").ok


def test_method_is_covered_by_the_digest() -> None:
    server = DigestServer(REALM, SECRET)
    (challenge,) = server.challenge(0.0)[:1]
    value = DigestClient("1001", USERS["1001"]).respond(challenge, "REGISTER", "sip:x")
    assert server.verify(value, "INVITE", lookup, 0.0).reason is AuthFailure.WRONG_RESPONSE


def test_auth_int_when_it_is_all_the_server_offers() -> None:
    server = DigestServer(REALM, SECRET)
    (challenge,) = server.challenge(0.0)[:1]
    challenge = challenge.replace('qop="auth"', 'qop="auth-int"')
    value = DigestClient("1001", USERS["1001"]).respond(challenge, "INVITE", "sip:x", b"v=0\r\n")
    assert "qop=auth-int" in value
    assert server.verify(value, "INVITE", lookup, 0.0, body=b"v=0\r\n").ok
    assert not server.verify(value, "INVITE", lookup, 0.0, body=b"v=1\r\n").ok


def test_client_legacy_no_qop() -> None:
    value = DigestClient("Mufasa", "Circle Of Life").respond(
        'Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"',
        "GET",
        "/dir/index.html",
    )
    # RFC 2069: H(HA1:nonce:HA2), no nc/cnonce.
    h = hashlib.md5
    a1 = h(b"Mufasa:testrealm@host.com:Circle Of Life").hexdigest()
    a2 = h(b"GET:/dir/index.html").hexdigest()
    expected = h(f"{a1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:{a2}".encode()).hexdigest()
    assert value == (
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", '
        f'response="{expected}"'
    )


@pytest.mark.parametrize(
    ("challenge", "error", "message"),
    [
        ('Basic realm="x"', AuthError, "unsupported auth scheme 'Basic'"),
        ('Digest realm="x"', AuthError, "Digest challenge without realm or nonce"),
        (
            'Digest realm="x", nonce="n", algorithm=SHA-1',
            AuthError,
            "unsupported digest algorithm 'SHA-1'",
        ),
        ('Digest realm="x", nonce="n", qop="auth-conf"', AuthError, "unsupported qop 'auth-conf'"),
        (
            'Digest realm="x" nonce="n"',
            MalformedAuthHeader,
            "expected ',' between auth-params at position 17",
        ),
    ],
)
def test_client_rejects_bad_challenges(
    challenge: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        DigestClient("u", "p").respond(challenge, "REGISTER", "sip:x")
    assert str(info.value) == message


# ----------------------------------------------------------------------------- parser


def test_parse_quoted_escapes_folding_and_case() -> None:
    scheme, params = parse_auth_header(
        'Digest  Realm="a\\"b\\\\c" ,\r\n\tNONCE = "x,y", , algorithm=MD5,qop="auth, auth-int"'
    )
    assert scheme == "Digest"
    assert params == {
        "realm": 'a"b\\c',
        "nonce": "x,y",
        "algorithm": "MD5",
        "qop": "auth, auth-int",
    }


def test_format_quotes_and_escapes_round_trip() -> None:
    value = format_auth_header("Digest", [("username", 'a"b\\'), ("nc", "00000001")])
    assert value == 'Digest username="a\\"b\\\\", nc=00000001'
    assert parse_auth_header(value)[1] == {"username": 'a"b\\', "nc": "00000001"}
    with pytest.raises(LocalProtocolError):
        format_auth_header("Digest", [("username", "a\r\nb")])
    with pytest.raises(LocalProtocolError):
        format_auth_header("Digest", [("nc", "not a token")])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty auth header value"),
        ("   ", "empty auth header value"),
        ('"Digest"', "expected an auth-scheme token at position 0"),
        ("Digest,realm=x", "expected whitespace after auth-scheme at position 6"),
        ("Digest realm", "expected '=' after 'realm' at position 12"),
        ("Digest realm=", "expected a token or quoted-string at position 13"),
        ('Digest realm="x', "unterminated quoted-string at position 13"),
        ('Digest realm="x\\', "bad escape in quoted-string at position 15"),
        ('Digest realm="a\x01"', "control character in quoted-string at position 15"),
        ('Digest realm="x", realm="y"', "duplicate auth-param 'realm'"),
        ('Digest realm="x" nonce="y"', "expected ',' between auth-params at position 17"),
        ("Digest =x", "expected an auth-param name at position 7"),
        ("Digest a=" + "x" * 9000, "auth header of 9009 characters exceeds 8192"),
    ],
)
def test_parse_errors(value: str, message: str) -> None:
    with pytest.raises(MalformedAuthHeader) as info:
        parse_auth_header(value)
    assert str(info.value) == message
    assert info.value.status_hint == 400


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('Digest realm=",\\ \t\r\nabc\x00é')), max_size=80))
def test_fuzz_parser_raises_only_malformed(value: str) -> None:
    try:
        scheme, params = parse_auth_header(value)
    except MalformedAuthHeader:
        return
    assert scheme and all(name == name.lower() for name in params)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_fuzz_verify_never_raises(value: str) -> None:
    result = DigestServer(REALM, SECRET).verify(value, "REGISTER", lookup, 0.0)
    assert not result.ok and result.reason is not None


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["username", "realm", "nonce", "uri", "cnonce"]),
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)),
        min_size=1,
    )
)
def test_fuzz_format_parse_round_trip(params: dict[str, str]) -> None:
    assert parse_auth_header(format_auth_header("Digest", params.items()))[1] == params
