"""Session timers (RFC 4028): UAS negotiation (§9), UAC requests and 422 retries (§7),
deadlines (§10). Request headers are as Asterisk, FreeSWITCH and desk phones send them
(tests/data/invite_asterisk.sip is a captured INVITE)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sip.exceptions import LocalProtocolError
from sip.message import SipMessage, SipRequest, SipResponse, make_response
from sip.session_timer import (
    DEFAULT_CONFIG,
    MalformedSessionTimer,
    SessionExpires,
    SessionTimer,
    SessionTimerConfig,
    SessionTimerRequest,
    UasTimerDecision,
    negotiate_uas,
    parse_min_se,
    parse_session_expires,
    refresh_method,
    supports_timer,
)

DATA = Path(__file__).resolve().parent.parent / "data"
M = TypeVar("M", bound=SipMessage)


def _invite(*headers: tuple[str, str]) -> SipRequest:
    inv = SipRequest("INVITE", "sip:1001@203.0.113.10")
    inv.add("Via", "SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK-st")
    inv.add("From", "<sip:caller@198.51.100.20>;tag=f1")
    inv.add("To", "<sip:1001@203.0.113.10>")
    inv.add("Call-ID", "st-1@198.51.100.20")
    inv.add("CSeq", "1 INVITE")
    for name, value in headers:
        inv.add(name, value)
    return inv


def _ok(request: SipRequest, *headers: tuple[str, str]) -> SipResponse:
    return make_response(request, 200, to_tag="t1", headers=headers)


# -- parsing ---------------------------------------------------------------------------


def test_asterisk_invite() -> None:
    msg = SipMessage.parse((DATA / "invite_asterisk.sip").read_bytes())
    assert isinstance(msg, SipRequest)
    assert parse_session_expires(msg) == SessionExpires(1800, None)
    assert parse_min_se(msg) == 90
    assert supports_timer(msg)
    d = negotiate_uas(msg)
    # No refresher in the request, the caller supports timers: we choose, we refresh.
    assert d == UasTimerDecision(
        None,
        (("Session-Expires", "1800;refresher=uas"), ("Require", "timer")),
        SessionTimer(1800, True, 90),
    )
    assert refresh_method(msg) == "UPDATE"  # Allow lists UPDATE


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("1800", SessionExpires(1800)),
        ("1800;refresher=uac", SessionExpires(1800, "uac")),
        ("4000 ; refresher = UAS ; x-foo", SessionExpires(4000, "uas")),
    ],
)
def test_session_expires_values(value: str, parsed: SessionExpires) -> None:
    assert SessionExpires.parse(value) == parsed


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ((("Session-Expires", "abc"),), "Session-Expires must be a positive number"),
        ((("Session-Expires", "0"),), "Session-Expires must be a positive number"),
        ((("Session-Expires", "-90"),), "Session-Expires must be a positive number"),
        ((("Session-Expires", "1800;refresher=both"),), "refresher must be uac or uas"),
        ((("Session-Expires", "1800;refresher"),), "refresher must be uac or uas"),
        ((("Session-Expires", "1800;;x"),), "bad Session-Expires"),
        ((("Session-Expires", "1800"), ("x", "900")), "more than one Session-Expires"),
        ((("Session-Expires", "1800, 900"),), "more than one Session-Expires"),
        ((("Session-Expires", "1800"), ("Min-SE", "ninety")), "Min-SE must be a positive"),
        ((("Session-Expires", "1800"), ("Min-SE", "90"), ("Min-SE", "120")), "more than one"),
    ],
)
def test_malformed_headers_are_400(headers: tuple[tuple[str, str], ...], message: str) -> None:
    with pytest.raises(MalformedSessionTimer) as err:
        negotiate_uas(_invite(("Supported", "timer"), *headers))
    assert message in str(err.value)
    assert err.value.status_hint == 400


def test_compact_form_and_min_se_params() -> None:
    inv = _invite(("k", "timer, 100rel"), ("x", "600;refresher=uac"), ("Min-SE", "300;x=1"))
    assert parse_session_expires(inv) == SessionExpires(600, "uac")
    assert parse_min_se(inv) == 300
    d = negotiate_uas(inv)
    assert d.timer == SessionTimer(600, False, 300)
    assert d.headers[0] == ("Session-Expires", "600;refresher=uac")


# -- UAS: RFC 4028 §9 ------------------------------------------------------------------


TIMER = ("Supported", "timer")


def _se(value: str) -> tuple[str, str]:
    return ("Session-Expires", value)


@pytest.mark.parametrize(
    ("headers", "session_expires", "require", "local"),
    [
        # §9 table 2: UAC supports, refresher given → copied.
        ((TIMER, _se("1800;refresher=uac")), "1800;refresher=uac", True, False),
        ((TIMER, _se("1800;refresher=uas")), "1800;refresher=uas", True, True),
        # UAC supports, no refresher → the UAS chooses (we: uas).
        ((TIMER, _se("1800")), "1800;refresher=uas", True, True),
        # Require: timer counts as support.
        ((("Require", "timer"), _se("900")), "900;refresher=uas", True, True),
        # UAC does not support (a proxy inserted Session-Expires) → uas, no Require.
        ((_se("1800;refresher=uac"),), "1800;refresher=uas", False, True),
        # An interval above ours is reduced to ours (§9 MAY)...
        ((TIMER, _se("7200")), "1800;refresher=uas", True, True),
        # ...never below the request's Min-SE.
        ((TIMER, _se("7200"), ("Min-SE", "3600")), "3600;refresher=uas", True, True),
        # A Session-Expires below the request's own Min-SE is raised to it.
        ((TIMER, _se("300"), ("Min-SE", "600")), "600;refresher=uas", True, True),
        # Min-SE below 90 from the peer is harmless: the floor stays 90 s.
        ((TIMER, _se("90"), ("Min-SE", "30")), "90;refresher=uas", True, True),
    ],
)
def test_uas_negotiation(
    headers: tuple[tuple[str, str], ...], session_expires: str, require: bool, local: bool
) -> None:
    d = negotiate_uas(_invite(*headers))
    assert d.status is None
    assert d.headers[0] == ("Session-Expires", session_expires)
    assert (("Require", "timer") in d.headers) is require
    assert d.timer is not None
    assert d.timer.local_refresher is local
    assert d.timer.interval == int(session_expires.split(";")[0])


def test_too_small_is_422_with_min_se() -> None:
    inv = _invite(("Supported", "timer"), ("Session-Expires", "60"))
    d = negotiate_uas(inv)
    assert d == UasTimerDecision(422, (("Min-SE", "90"),), None)
    resp = make_response(inv, d.status or 0)
    d.apply(resp)
    assert b"SIP/2.0 422 Session Interval Too Small\r\n" in bytes(resp)
    assert resp.get("min-se") == "90"
    # Our configured minimum wins over the request's smaller one.
    strict = SessionTimerConfig(interval=1800, min_se=600)
    inv2 = _invite(("Supported", "timer"), ("Session-Expires", "300"), ("Min-SE", "120"))
    assert negotiate_uas(inv2, strict).headers == (("Min-SE", "600"),)


def test_too_small_without_support_is_raised_not_rejected() -> None:
    # The UAC would not understand a 422: raise the interval as a proxy would (§8).
    d = negotiate_uas(_invite(("Session-Expires", "60")))
    assert d.status is None
    assert d.headers == (("Session-Expires", "90;refresher=uas"),)
    assert d.timer == SessionTimer(90, True, 90)


def test_no_session_expires() -> None:
    # Supported: timer but no request for one: we ask in our 2xx (§9 MAY).
    d = negotiate_uas(_invite(("Supported", "timer, replaces")))
    assert d.headers == (("Session-Expires", "1800;refresher=uas"), ("Require", "timer"))
    assert d.timer == SessionTimer(1800, True, 90)
    d = negotiate_uas(_invite(("Supported", "timer"), ("Min-SE", "2400")))
    assert d.headers[0] == ("Session-Expires", "2400;refresher=uas")
    # Not when configured off, and never to a UAC without timer support.
    no_insert = SessionTimerConfig(insert=False)
    assert negotiate_uas(_invite(("Supported", "timer")), no_insert) == UasTimerDecision(
        None, (), None
    )
    assert negotiate_uas(_invite(("Supported", "replaces"))) == UasTimerDecision(None, (), None)


def test_peer_refreshes_when_configured() -> None:
    cfg = SessionTimerConfig(local_refresh=False)
    d = negotiate_uas(_invite(("Supported", "timer"), ("Session-Expires", "1800")), cfg)
    assert d.headers[0] == ("Session-Expires", "1800;refresher=uac")
    assert d.timer is not None and not d.timer.local_refresher


def test_apply_merges_require() -> None:
    inv = _invite(("Supported", "timer"), ("Session-Expires", "1800"))
    ok = _ok(inv, ("Require", "100rel"), ("Session-Expires", "1"))
    negotiate_uas(inv).apply(ok)
    assert ok.get_all("require") == ["100rel", "timer"]
    assert ok.get_all("session-expires") == ["1800;refresher=uas"]
    negotiate_uas(inv).apply(ok)
    assert ok.get_all("require") == ["100rel", "timer"]


@pytest.mark.parametrize(("min_se", "interval"), [(89, 1800), (30, 30), (1800, 900)])
def test_bad_config(min_se: int, interval: int) -> None:
    with pytest.raises(LocalProtocolError):
        SessionTimerConfig(interval=interval, min_se=min_se)


# -- deadlines: RFC 4028 §10 -----------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "refresh", "expire"),
    [(1800, 900.0, 1768.0), (90, 45.0, 60.0), (96, 48.0, 64.0), (120, 60.0, 88.0)],
)
def test_deadlines(interval: int, refresh: float, expire: float) -> None:
    ours = SessionTimer(interval, True)
    theirs = SessionTimer(interval, False)
    now = 1000.5
    assert ours.refresh_at(now) == now + refresh
    assert ours.expire_at(now) == now + expire
    assert ours.next_deadline(now) == now + refresh
    assert theirs.next_deadline(now) == now + expire


# -- UAC: RFC 4028 §7 ------------------------------------------------------------------


def test_uac_initial_request() -> None:
    req = SessionTimerRequest.initial()
    assert req.headers == (("Session-Expires", "1800;refresher=uac"), ("Min-SE", "90"))
    inv = _invite(("Supported", "replaces, 100rel"))
    req.apply(inv)
    assert inv.get_all("supported") == ["replaces", "100rel", "timer"]
    assert inv.get("session-expires") == "1800;refresher=uac" and inv.get("min-se") == "90"
    req.apply(inv)  # idempotent
    assert inv.get_all("supported").count("timer") == 1
    let_uas_choose = SessionTimerRequest.initial(SessionTimerConfig(local_refresh=False))
    assert let_uas_choose.headers[0] == ("Session-Expires", "1800")


def test_uac_422_retry() -> None:
    req = SessionTimerRequest(120, 90, "uac")
    inv = _invite()
    req.apply(inv)
    r422 = make_response(inv, 422, headers=[("Min-SE", "600")])
    retry = req.after_422(r422)
    assert retry == SessionTimerRequest(600, 600, "uac")
    assert retry.headers == (("Session-Expires", "600;refresher=uac"), ("Min-SE", "600"))
    # A 422 that does not ask for more than we sent, or has no usable Min-SE: give up.
    assert retry.after_422(make_response(inv, 422, headers=[("Min-SE", "600")])) is None
    assert retry.after_422(make_response(inv, 422, headers=[("Min-SE", "300")])) is None
    assert req.after_422(make_response(inv, 422)) is None
    assert req.after_422(make_response(inv, 422, headers=[("Min-SE", "soon")])) is None


@pytest.mark.parametrize(
    ("session_expires", "timer"),
    [
        ("1800;refresher=uac", SessionTimer(1800, True, 90)),
        ("900;refresher=uas", SessionTimer(900, False, 90)),
        ("1800", SessionTimer(1800, True, 90)),  # no refresher: we refresh (safe side)
        (None, None),  # the UAS does not do timers
    ],
)
def test_uac_reads_the_2xx(session_expires: str | None, timer: SessionTimer | None) -> None:
    inv = _invite()
    headers = [("Session-Expires", session_expires)] if session_expires else []
    assert SessionTimerRequest.initial().negotiated(_ok(inv, *headers)) == timer


def test_refresh_request_keeps_the_refresher() -> None:
    # RFC 4028 §7.4: a refresh carries the current interval and the same refresher,
    # written relative to the new transaction.
    assert SessionTimer(1800, True, 90).refresh_request() == SessionTimerRequest(1800, 90, "uac")
    assert SessionTimer(600, False, 120).refresh_request() == SessionTimerRequest(600, 120, "uas")


def test_refresh_method() -> None:
    assert refresh_method(_invite(("Allow", "INVITE, ACK, BYE, CANCEL, UPDATE"))) == "UPDATE"
    assert refresh_method(_invite(("Allow", "INVITE, ACK, BYE, CANCEL"))) == "INVITE"
    assert refresh_method(_invite()) == "INVITE"


# -- both sides together ---------------------------------------------------------------

_configs = st.builds(
    lambda min_se, extra, local, insert: SessionTimerConfig(
        interval=min_se + extra, min_se=min_se, local_refresh=local, insert=insert
    ),
    st.integers(90, 4000),
    st.integers(0, 4000),
    st.booleans(),
    st.booleans(),
)


def _wire(msg: SipMessage, kind: type[M]) -> M:
    """``msg`` after a trip over the wire (serialised and parsed again)."""
    out = SipMessage.parse(bytes(msg))
    assert isinstance(out, kind)
    return out


@given(uac_cfg=_configs, uas_cfg=_configs)
def test_two_peers_agree_on_one_refresher(
    uac_cfg: SessionTimerConfig, uas_cfg: SessionTimerConfig
) -> None:
    """Whatever both sides' policies, after at most one 422 both sides run the same
    interval, exactly one of them refreshes, and the interval suits both minimums."""
    req: SessionTimerRequest | None = SessionTimerRequest.initial(uac_cfg)
    for _attempt in range(2):
        assert req is not None
        inv = _invite()
        req.apply(inv)
        decision = negotiate_uas(_wire(inv, SipRequest), uas_cfg)
        if decision.status == 422:
            r422 = make_response(inv, 422)
            decision.apply(r422)
            req = req.after_422(_wire(r422, SipResponse))
            continue
        ok = _ok(inv)
        decision.apply(ok)
        ours = req.negotiated(_wire(ok, SipResponse))
        theirs = decision.timer
        assert ours is not None and theirs is not None
        assert ours.interval == theirs.interval
        assert ours.local_refresher != theirs.local_refresher
        assert ours.interval >= max(uac_cfg.min_se, uas_cfg.min_se)
        return
    pytest.fail("no agreement after one 422 retry")


def test_default_config() -> None:
    assert DEFAULT_CONFIG == SessionTimerConfig(1800, 90, True, True)
