"""AuthFailureTracker: sliding window, bans, exemptions, bounded memory."""

from __future__ import annotations

import pytest

from sip.exceptions import LocalProtocolError
from sip.security import AuthFailureTracker, looks_like_scanner, source_key


def test_ban_after_n_failures_within_window() -> None:
    t = AuthFailureTracker(max_failures=5, window=60, ban_time=600)
    for i in range(4):
        assert not t.record_failure("203.0.113.9", 10.0 + i)
    assert t.failures("203.0.113.9", 14.0) == 4
    assert not t.is_banned("203.0.113.9", 14.0)
    assert t.record_failure("203.0.113.9", 15.0)
    assert t.is_banned("203.0.113.9", 15.0)
    assert t.banned(20.0) == [("203.0.113.9", 615.0)]
    assert t.get_timer() == 615.0
    assert t.is_banned("203.0.113.9", 614.9)
    assert not t.is_banned("203.0.113.9", 615.0)
    assert t.banned(615.0) == []
    assert t.failures("203.0.113.9", 615.0) == 0


def test_sliding_window_forgets_old_failures() -> None:
    t = AuthFailureTracker(max_failures=3, window=60, ban_time=100)
    ip = "198.51.100.1"
    assert not t.record_failure(ip, 0.0)
    assert not t.record_failure(ip, 30.0)
    # The failure at t=0 leaves the window at t=60.
    assert not t.record_failure(ip, 60.0)
    assert t.failures(ip, 60.0) == 2
    assert t.record_failure(ip, 61.0)


def test_success_clears_failures_but_not_a_ban() -> None:
    t = AuthFailureTracker(max_failures=2, window=60, ban_time=100)
    t.record_failure("192.0.2.1", 0.0)
    t.record_success("192.0.2.1", 1.0)
    assert not t.record_failure("192.0.2.1", 2.0)
    assert t.record_failure("192.0.2.1", 3.0)
    t.record_success("192.0.2.1", 4.0)
    assert t.is_banned("192.0.2.1", 4.0)
    assert t.unban("192.0.2.1") and not t.is_banned("192.0.2.1", 4.0)
    assert not t.unban("192.0.2.1")


def test_failures_while_banned_do_not_extend_the_ban() -> None:
    t = AuthFailureTracker(max_failures=1, window=60, ban_time=100)
    assert t.record_failure("192.0.2.1", 0.0)
    assert not t.record_failure("192.0.2.1", 50.0)
    assert t.banned(50.0) == [("192.0.2.1", 100.0)]


def test_exempt_networks_are_never_banned() -> None:
    t = AuthFailureTracker(max_failures=1, exempt=["10.0.0.0/8", "192.0.2.7"])
    assert not t.record_failure("10.1.2.3", 0.0)
    assert not t.record_failure("192.0.2.7", 0.0)
    assert not t.is_banned("10.1.2.3", 0.0)
    assert t.record_failure("192.0.2.8", 0.0)
    with pytest.raises(LocalProtocolError, match="bad exempt network"):
        AuthFailureTracker(exempt=["10.0.0.0/33"])


def test_ipv6_sources_grouped_by_prefix() -> None:
    t = AuthFailureTracker(max_failures=3, window=60, ban_time=100)
    assert not t.record_failure("2001:db8:1:2::1", 0.0)
    assert not t.record_failure("2001:db8:1:2::2", 1.0)
    assert t.record_failure("[2001:db8:1:2:ffff::3]", 2.0)
    assert t.is_banned("2001:db8:1:2:abcd::9", 3.0)
    assert not t.is_banned("2001:db8:1:3::1", 3.0)
    assert t.banned(3.0) == [("2001:db8:1:2::/64", 102.0)]
    assert source_key("::ffff:192.0.2.5") == "192.0.2.5"
    assert source_key("2001:db8::1", 128) == "2001:db8::1"
    assert source_key("not-an-ip") == "not-an-ip"


def test_memory_is_bounded() -> None:
    t = AuthFailureTracker(max_failures=2, window=60, ban_time=100, max_sources=100, max_bans=10)
    for i in range(1000):
        t.record_failure(f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}", float(i) / 100)
    assert t.tracked_sources == 100
    for i in range(50):
        ip = f"172.16.0.{i}"
        t.record_failure(ip, 20.0 + i)
        t.record_failure(ip, 20.0 + i)
    bans = t.banned(70.0)
    assert len(bans) == 10
    # The soonest-ending bans were dropped; the latest ones stay.
    assert bans[-1] == ("172.16.0.49", 169.0)
    t.expire(1000.0)
    assert t.tracked_sources == 0 and t.banned(1000.0) == []


def test_bad_configuration() -> None:
    with pytest.raises(LocalProtocolError):
        AuthFailureTracker(max_failures=0)
    with pytest.raises(LocalProtocolError):
        AuthFailureTracker(ipv6_prefix=0)


@pytest.mark.parametrize(
    ("ua", "scanner"),
    [
        ("friendly-scanner", True),
        ("sipvicious", True),
        ("SIPVicious 0.3.4", True),
        ("sipcli/v1.8", True),
        ("VaxSIPUserAgent/3.1", True),
        ("Yealink SIP-T46S 66.86.0.15", False),
        ("baresip v3.10.1 (x86_64/linux)", False),
        ("", False),
        (None, False),
    ],
)
def test_scanner_user_agents(ua: str | None, scanner: bool) -> None:
    assert looks_like_scanner(ua) is scanner
