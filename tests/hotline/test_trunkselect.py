"""Outbound trunk policy: failover order and channel counting, which failures fail over,
caller-ID headers, digest answers to a carrier's challenge, trunk health."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.config import Secret, TrunkConfig
from hotline.trunks import TrunkMonitor
from hotline.trunkselect import (
    ANONYMOUS_FROM,
    TrunkSelector,
    authorize,
    caller_withheld,
    outbound_identity,
    presented_number,
    q850_cause,
    should_failover,
    trunk_names,
)
from sip.auth import DigestServer, ha1
from sip.message import SipRequest, SipResponse, make_response
from sip.peer import Peer
from sip.stack import SipStack
from sip.uri import SipUri


def trunk(name: str, **kw: object) -> TrunkConfig:
    return TrunkConfig(name=name, host=kw.pop("host", f"{name}.example"), **kw)  # type: ignore[arg-type]


def selector(*trunks: TrunkConfig, down: tuple[str, ...] = ()) -> TrunkSelector:
    return TrunkSelector(trunks, health=lambda n: False if n in down else None)


# --------------------------------------------------------------------------- selection


def test_plan_keeps_the_route_order() -> None:
    sel = selector(trunk("a"), trunk("b"), trunk("c"))
    plan = sel.plan("c,a,b")
    assert [t.name for t in plan.trunks] == ["c", "a", "b"]
    assert [plan.take().name, plan.take().name, plan.take().name] == ["c", "a", "b"]  # type: ignore[union-attr]
    assert plan.take() is None
    assert plan.tried == ["c", "a", "b"]
    assert (sel.in_use("a"), sel.in_use("b"), sel.in_use("c")) == (1, 1, 1)


def test_known_down_trunks_are_skipped() -> None:
    sel = selector(trunk("a"), trunk("b"), trunk("c"), down=("a",))
    plan = sel.plan("a,b,c")
    assert [t.name for t in plan.trunks] == ["b", "c"]
    assert plan.skipped == (("a", "down"),)
    assert not plan.full


def test_unknown_and_up_trunks_are_both_tried() -> None:
    health = {"a": True, "b": None}
    sel = TrunkSelector([trunk("a"), trunk("b")], health=health.get)
    assert [t.name for t in sel.plan("b,a").trunks] == ["b", "a"]


def test_all_down_are_still_tried_in_order() -> None:
    """A health check is a guess: when it leaves nothing, the call tries them all."""
    sel = selector(trunk("a"), trunk("b"), down=("a", "b"))
    plan = sel.plan("b,a")
    assert [t.name for t in plan.trunks] == ["b", "a"]
    assert plan.skipped == ()


def test_down_trunks_are_tried_when_the_up_ones_are_full() -> None:
    sel = selector(trunk("a", max_channels=1), trunk("b"), down=("b",))
    sel.acquire("a")
    plan = sel.plan("a,b")
    assert [t.name for t in plan.trunks] == ["b"]
    assert plan.skipped == (("a", "full"),)


def test_full_trunks_are_skipped_and_all_full_is_503() -> None:
    sel = selector(trunk("a", max_channels=2), trunk("b", max_channels=1))
    sel.acquire("a")
    assert not sel.at_limit("a")
    sel.acquire("a")
    assert sel.at_limit("a") and not sel.at_limit("b")
    assert [t.name for t in sel.plan("a,b").trunks] == ["b"]
    sel.acquire("b")
    plan = sel.plan("a,b")
    assert plan.trunks == () and plan.full and plan.take() is None
    assert plan.skipped == (("a", "full"), ("b", "full"))
    sel.release("b")
    assert [t.name for t in sel.plan("a,b").trunks] == ["b"]


def test_unlimited_trunks_never_fill() -> None:
    sel = selector(trunk("a"))
    for _ in range(1000):
        sel.acquire("a")
    assert not sel.at_limit("a") and sel.in_use("a") == 1000


def test_take_counts_a_channel_and_passes_over_a_trunk_filled_since() -> None:
    sel = selector(trunk("a", max_channels=1), trunk("b", max_channels=1), trunk("c"))
    plan = sel.plan("a,b,c")
    first = plan.take()
    assert first is not None and first.name == "a" and sel.in_use("a") == 1
    sel.acquire("b")  # another call took b's last channel meanwhile
    second = plan.take()
    assert second is not None and second.name == "c"
    assert plan.tried == ["a", "c"]


def test_release_frees_a_channel_and_never_goes_negative() -> None:
    sel = selector(trunk("a", max_channels=1))
    plan = sel.plan("a")
    assert plan.take() is not None and sel.at_limit("a")
    assert sel.plan("a").full
    sel.release("a")
    assert sel.in_use("a") == 0 and not sel.at_limit("a")
    sel.release("a")
    assert sel.in_use("a") == 0


def test_health_can_be_attached_later() -> None:
    sel = TrunkSelector([trunk("a"), trunk("b")])
    assert [t.name for t in sel.plan("a,b").trunks] == ["a", "b"]
    sel.health = lambda n: n != "a"
    assert [t.name for t in sel.plan("a,b").trunks] == ["b"]


def test_unknown_names_are_ignored() -> None:
    sel = selector(trunk("a"))
    assert [t.name for t in sel.plan(["x", "a"]).trunks] == ["a"]
    assert sel.plan("x").trunks == () and not sel.plan("x").full


def test_trunk_names() -> None:
    assert trunk_names("a") == ("a",)
    assert trunk_names("a,b, c") == ("a", "b", "c")
    assert trunk_names(["a", "b"]) == ("a", "b")


@given(st.lists(st.tuples(st.sampled_from("abc"), st.booleans()), max_size=60))
def test_counts_stay_within_limits(ops: list[tuple[str, bool]]) -> None:
    """Whatever calls take and release, take() never exceeds a trunk's max_channels and
    the counts equal what was taken minus what was released."""
    sel = selector(trunk("a", max_channels=1), trunk("b", max_channels=2), trunk("c"))
    held: list[str] = []
    for name, take in ops:
        if take:
            got = sel.plan(name + ",a,b").take()
            if got is not None:
                held.append(got.name)
        elif name in held:
            held.remove(name)
            sel.release(name)
        for n, limit in (("a", 1), ("b", 2)):
            assert sel.in_use(n) == held.count(n) <= limit
        assert sel.in_use("c") == held.count("c")


# --------------------------------------------------------------------------- failover rule


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504, 501, 580, 599, 403, 401, 407,
                                    402, 400, 405, 415, 420, 488, 482, 483, 499])
def test_trunk_failures_fail_over(status: int) -> None:
    assert should_failover(status)


@pytest.mark.parametrize("status", [404, 410, 433, 480, 484, 485, 486, 487,
                                    600, 603, 604, 606, 699, 300, 302, 380, 200, 180, 100])
def test_callee_answers_do_not_fail_over(status: int) -> None:
    assert not should_failover(status)


@pytest.mark.parametrize(
    ("status", "cause", "expected"),
    [
        (404, 3, True),     # "no route to destination": this carrier cannot reach it
        (404, 2, True),
        (404, 1, False),    # unallocated number
        (503, 34, True),    # no circuit available
        (480, 41, True),    # temporary failure, whatever the status says
        (403, 21, False),   # call rejected by the callee
        (403, None, True),  # carrier refusal
        (408, 18, False),   # no user responding (RFC 3398)
        (502, 27, False),   # destination out of order
        (503, 17, False),   # user busy
        (503, 99, True),    # an unlisted cause: the status decides
        (486, 99, False),
        (487, 34, False),   # we cancelled: never
        (603, 34, False),   # 6xx is final for the callee everywhere
        (302, 34, True),
    ],
)
def test_q850_cause_decides(status: int, cause: int | None, expected: bool) -> None:
    assert should_failover(status, cause=cause) is expected


@pytest.mark.parametrize(
    ("values", "cause"),
    [
        (['Q.850;cause=34;text="No circuit/channel available"'], 34),
        (["q.850 ; cause = 3"], 3),
        (['SIP;cause=503;text="x"', "Q.850;cause=41"], 41),
        (['Q.850;text="a;b";cause=16'], 16),  # cause after the text
        (["SIP;cause=200"], None),
        ([], None),
        (["Q.850;cause=abc"], None),
    ],
)
def test_q850_cause(values: list[str], cause: int | None) -> None:
    assert q850_cause(values) == cause


# --------------------------------------------------------------------------- caller ID


def invite(from_: str = "<sip:13900001234@carrier.example>;tag=1",
           privacy: str | None = None) -> SipRequest:
    req = SipRequest("INVITE", SipUri.parse("sip:95598@hotline.example"))
    req.add("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc")
    req.add("From", from_)
    req.add("To", "<sip:95598@hotline.example>")
    req.add("Call-ID", "abc@192.0.2.1")
    req.add("CSeq", "1 INVITE")
    if privacy is not None:
        req.add("Privacy", privacy)
    return req


@pytest.mark.parametrize(
    ("kw", "from_trunk", "number"),
    [
        ({}, False, "1001"),                                        # nothing set: pass
        ({}, True, "13900001234"),
        ({"caller_id": "96116"}, False, "96116"),                   # implied fixed
        ({"caller_id": "96116"}, True, "96116"),
        ({"caller_id": "96116", "caller_id_mode": "pass"}, False, "96116"),
        ({"caller_id": "96116", "caller_id_mode": "pass"}, True, "13900001234"),
        ({"caller_id_mode": "pass"}, False, "1001"),
    ],
)
def test_presented_number(kw: dict[str, str], from_trunk: bool, number: str) -> None:
    caller = "13900001234" if from_trunk else "1001"
    assert presented_number(trunk("t", **kw), caller, from_trunk=from_trunk) == number


def test_identity_presents_the_number_in_from_and_pai() -> None:
    ident = outbound_identity(trunk("t", host="198.51.100.7", caller_id="96116"), "1001",
                              display="Li Na")
    assert ident.number == "96116"
    assert ident.from_header("f00") == "<sip:96116@198.51.100.7>;tag=f00"
    assert ident.headers == (("P-Asserted-Identity", "<sip:96116@198.51.100.7>"),)


def test_identity_passes_a_forwarded_callers_number_and_name() -> None:
    t = trunk("t", host="sip.carrier.example", caller_id="96116", caller_id_mode="pass")
    ident = outbound_identity(t, "+8613900001234", from_trunk=True, display='Li "Na"')
    assert ident.from_addr == '"Li \\"Na\\"" <sip:+8613900001234@sip.carrier.example>'
    assert ident.headers == (
        ("P-Asserted-Identity", '"Li \\"Na\\"" <sip:+8613900001234@sip.carrier.example>'),)


def test_identity_from_user_keeps_the_number_in_pai() -> None:
    t = trunk("t", host="2001:db8::7", caller_id="96116", from_user="0755123456")
    ident = outbound_identity(t, "1001")
    assert ident.from_addr == "<sip:0755123456@[2001:db8::7]>"
    assert ident.headers == (("P-Asserted-Identity", "<sip:96116@[2001:db8::7]>"),)


def test_privacy_hides_the_from_and_asserts_to_the_carrier() -> None:
    """RFC 3325 §9.3 / RFC 3323 §4.1.1.3."""
    ident = outbound_identity(trunk("t", host="192.0.2.5", caller_id="96116", privacy=True),
                              "1001")
    assert ident.from_addr == ANONYMOUS_FROM == '"Anonymous" <sip:anonymous@anonymous.invalid>'
    assert ident.headers == (("P-Asserted-Identity", "<sip:96116@192.0.2.5>"),
                             ("Privacy", "id"))


def test_a_withheld_caller_stays_withheld_when_its_number_is_presented() -> None:
    t = trunk("t", host="192.0.2.5", caller_id="96116", caller_id_mode="pass")
    ident = outbound_identity(t, "13900001234", from_trunk=True, withheld=True)
    assert ident.from_addr == ANONYMOUS_FROM
    assert ident.headers == (("P-Asserted-Identity", "<sip:13900001234@192.0.2.5>"),
                             ("Privacy", "id"))
    # With the site's number presented, the caller's identity does not leave anyway.
    ident = outbound_identity(trunk("t", host="192.0.2.5", caller_id="96116"), "13900001234",
                              from_trunk=True, withheld=True)
    assert ident.from_addr == "<sip:96116@192.0.2.5>"


@pytest.mark.parametrize("caller", ["", "anonymous", "Anonymous"])
def test_no_number_to_present_gives_an_anonymous_from(caller: str) -> None:
    ident = outbound_identity(trunk("t"), caller, from_trunk=True, withheld=True)
    assert (ident.number, ident.from_addr, ident.headers) == ("", ANONYMOUS_FROM,
                                                              (("Privacy", "id"),))
    assert outbound_identity(trunk("t"), caller, from_trunk=True).headers == ()


@pytest.mark.parametrize(
    ("from_", "privacy", "withheld"),
    [
        ("<sip:13900001234@carrier.example>;tag=1", None, False),
        ("<sip:13900001234@carrier.example>;tag=1", "none", False),
        ("<sip:13900001234@carrier.example>;tag=1", "id", True),
        ("<sip:13900001234@carrier.example>;tag=1", "header;user", True),
        ("<sip:13900001234@carrier.example>;tag=1", "ID", True),
        ('"Anonymous" <sip:anonymous@anonymous.invalid>;tag=1', None, True),
        ("<sip:13900001234@anonymous.invalid>;tag=1", None, True),
    ],
)
def test_caller_withheld(from_: str, privacy: str | None, withheld: bool) -> None:
    assert caller_withheld(invite(from_, privacy)) is withheld


# --------------------------------------------------------------------------- digest


def challenged(request: SipRequest, status: int, server: DigestServer,
               stale: bool = False) -> SipResponse:
    header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    values = server.challenge(0.0, stale=stale) if stale else server.challenge(0.0)
    return make_response(request, status, to_tag="x",
                         headers=tuple((header, v) for v in values))


@pytest.mark.parametrize("status", [401, 407])
def test_authorize_answers_a_challenge_once(status: int) -> None:
    server = DigestServer("carrier.example", secret=b"k" * 32)
    t = trunk("t", username="trunkuser", password=Secret("trunkpass"))
    first = invite()
    retry = authorize(first, challenged(first, status, server), t)
    assert retry is not None
    assert retry.cseq == (2, "INVITE") and retry.call_id == first.call_id
    assert retry.from_tag == first.from_tag and retry.get("via") is None
    assert first.get("via") is not None and first.cseq == (1, "INVITE")  # untouched
    name = "Authorization" if status == 401 else "Proxy-Authorization"
    value = retry.get(name)
    assert value is not None and 'username="trunkuser"' in value
    result = server.verify(value, "INVITE", lambda user, realm, alg: ha1(
        user, realm, "trunkpass", alg) if user == "trunkuser" else None, 0.0)
    assert result.ok, result
    # A second challenge means the credentials were refused: do not loop.
    retry.add("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKdef")
    assert authorize(retry, challenged(retry, status, server), t) is None


def test_authorize_retries_on_a_stale_nonce() -> None:
    server = DigestServer("carrier.example", secret=b"k" * 32)
    t = trunk("t", username="u", password=Secret("p"))
    first = invite()
    retry = authorize(first, challenged(first, 407, server), t)
    assert retry is not None
    retry.add("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKdef")
    again = authorize(retry, challenged(retry, 407, server, stale=True), t)
    assert again is not None and again.cseq == (3, "INVITE")


def test_authorize_needs_credentials_and_a_usable_challenge() -> None:
    server = DigestServer("carrier.example", secret=b"k" * 32)
    req = invite()
    assert authorize(req, challenged(req, 407, server), trunk("t")) is None
    t = trunk("t", username="u", password=Secret("p"))
    bad = make_response(req, 407, to_tag="x", headers=(("Proxy-Authenticate", "Basic x"),))
    assert authorize(req, bad, t) is None
    assert authorize(req, make_response(req, 503, to_tag="x"), t) is None


# --------------------------------------------------------------------------- health


def monitor(*trunks: TrunkConfig) -> tuple[TrunkMonitor, SipStack]:
    stack = SipStack()
    mon = TrunkMonitor(trunks, stack, lambda transport: ("127.0.0.1", 5060), "test", 0.0,
                       lambda req, peer: req.add("Via", "SIP/2.0/UDP 127.0.0.1:5060;"
                                                 "branch=z9hG4bK" + str(id(req)), first=True))
    return mon, stack


def test_monitor_health_follows_options_and_registration() -> None:
    mon, stack = monitor(trunk("ka", options_interval=10),
                         trunk("reg", username="u", password=Secret("p"), register=True,
                               options_interval=0),
                         trunk("quiet", options_interval=0))
    assert [mon.health(n) for n in ("ka", "reg", "quiet", "nope")] == [None] * 4
    mon.handle_timer(0.0)
    keys = {method: key for key, (_, method) in mon._pending.items()}
    mon.handle_timeout(keys["OPTIONS"], 1.0)
    assert mon.health("ka") is False
    mon.handle_response(keys["REGISTER"], SipResponse(403), 1.0)
    assert mon.health("reg") is False
    mon.handle_timer(10.0)
    key = next(k for k, (st_, m) in mon._pending.items() if m == "OPTIONS")
    mon.handle_response(key, SipResponse(404), 10.0)  # any answer: the carrier is there
    assert mon.health("ka") is True
    assert mon.health("quiet") is None
    sel = TrunkSelector([mon.states[n].config for n in ("ka", "reg", "quiet")],
                        health=mon.health)
    assert [t.name for t in sel.plan("reg,quiet,ka").trunks] == ["quiet", "ka"]


def test_peer_is_the_trunk_host() -> None:
    mon, _ = monitor(trunk("t", host="192.0.2.9", port=5070, transport="tcp"))
    assert mon.states["t"].peer == Peer("tcp", "192.0.2.9", 5070)
