"""Outbound calls over several trunks: failover when a carrier is congested or dead,
channel limits, digest authentication of the INVITE and the caller ID presented.

The carriers are SIPp ``uas`` processes; the caller is a SIPp ``uac`` on 127.0.0.2 (the
test site's trusted carrier), dialling numbers that routes send to ``trunk:a,b``.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .peers import HotlineProcess, free_port, run_sipp, start_sipp

pytestmark = pytest.mark.e2e

SCENARIOS = Path(__file__).parent / "scenarios"

ROUTES = """
[[routes]]
match = "_81."
to = "trunk:first,second"
source = "any"

[[routes]]
match = "_82."
to = "trunk:first"
source = "any"
"""


def trunks(first_port: int, second_port: int, first: str = "", second: str = "",
           first_options: int = 0) -> str:
    """TOML for trunks ``first`` and ``second`` (extra keys for each), no keepalives
    unless ``first_options`` (seconds) for the first."""
    return f"""
[[trunks]]
name = "first"
host = "127.0.0.1"
port = {first_port}
allow = []
options_interval = {first_options}
{first}

[[trunks]]
name = "second"
host = "127.0.0.1"
port = {second_port}
allow = []
options_interval = 0
{second}
"""


@contextmanager
def carrier(args: list[str], cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A SIPp carrier in the background, killed if the test leaves it running."""
    cwd.mkdir(parents=True, exist_ok=True)
    proc = start_sipp(args, cwd=cwd)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def uas(port: int, calls: int, scenario: str | None = None) -> list[str]:
    how = ["-sf", str(SCENARIOS / scenario)] if scenario else ["-sn", "uas"]
    return [*how, "-i", "127.0.0.1", "-p", str(port), "-m", str(calls), "-timeout", "60s"]


def call(server: HotlineProcess, number: str, cwd: Path, *, calls: int = 1,
         hold_ms: int = 0) -> dict[str, int]:
    """Place ``calls`` calls (all at once) to ``number``; sipp's final counters."""
    cwd.mkdir(parents=True, exist_ok=True)
    args = ["-sn", "uac", f"127.0.0.1:{server.sip_port}", "-s", number, "-i", "127.0.0.2",
            "-p", str(free_port(host="127.0.0.2")), "-m", str(calls), "-l", str(calls),
            "-r", "10", "-timeout", "40s"]
    if hold_ms:
        args += ["-d", str(hold_ms)]
    res = run_sipp(args, cwd=cwd, timeout=60)
    return res.stats


def finished(proc: subprocess.Popen[bytes]) -> str:
    out, _ = proc.communicate(timeout=30)
    text = out.decode(errors="replace")[-3000:]
    assert proc.returncode == 0, text
    return text


def wait_log(server: HotlineProcess, needle: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = server.log()
        if needle in log:
            return log
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} not logged within {timeout}s:\n{server.log()[-4000:]}")


def outbound_cdrs(server: HotlineProcess) -> list[tuple[str, str]]:
    """(trunk, disposition) of every outbound leg's CDR row, in start order."""
    deadline = time.monotonic() + 5
    while True:
        out = subprocess.run(
            [sys.executable, "-m", "hotline", "cdr", "export", "--csv", "--config",
             str(server.config)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        rows = [r for r in csv.DictReader(io.StringIO(out.stdout)) if r["leg"] == "outbound"]
        if rows or time.monotonic() > deadline:
            return [(r["trunk"], r["disposition"])
                    for r in sorted(rows, key=lambda r: r["start_time"])]
        time.sleep(0.2)


def test_a_congested_trunk_fails_over_to_the_next(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    p1, p2 = free_port(), free_port()
    with carrier(uas(p1, 1, "trunk_congested.xml"), tmp_path / "first") as first, \
            carrier(uas(p2, 1), tmp_path / "second") as second:
        server = hotline_factory(trunks(p1, p2), routes_first=ROUTES)
        stats = call(server, "8155501234", tmp_path / "uac")
        assert stats.get("Successful call") == 1, (stats, server.log()[-4000:])
        finished(first)
        finished(second)
        log = server.log()
        assert "event=trunk_failover" in log and "trunk=second after=first status=503" in log
        assert outbound_cdrs(server) == [("first", "failed"), ("second", "answered")]


@pytest.mark.parametrize("keepalive", [True, False], ids=["known-down", "unknown"])
def test_a_dead_trunk_is_skipped_or_failed_over(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path, keepalive: bool
) -> None:
    """Nothing listens at the first trunk. With OPTIONS keepalives it is known down and
    not tried; without, its INVITE fails at once (ICMP unreachable) and the call moves
    on. Either way the call completes on the second trunk."""
    dead, p2 = free_port(), free_port()
    with carrier(uas(p2, 1), tmp_path / "second") as second:
        server = hotline_factory(trunks(dead, p2, first_options=1 if keepalive else 0),
                                 routes_first=ROUTES)
        if keepalive:
            wait_log(server, "event=trunk_down trunk=first")
        stats = call(server, "8155501234", tmp_path / "uac")
        assert stats.get("Successful call") == 1, (stats, server.log()[-4000:])
        finished(second)
        log = server.log()
        if keepalive:
            assert "event=trunk_skipped trunk=first reason=down" in log
            assert outbound_cdrs(server) == [("second", "answered")]
        else:
            assert "trunk=second after=first status=408" in log
            assert outbound_cdrs(server) == [("first", "no-answer"), ("second", "answered")]


def test_a_full_trunk_passes_calls_to_the_next_or_answers_503(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    """``max_channels = 1``: of two calls at once, the second goes to the next trunk; on
    a route with no other trunk it gets 503."""
    p1, p2 = free_port(), free_port()
    with carrier(uas(p1, 2), tmp_path / "first") as first, \
            carrier(uas(p2, 1), tmp_path / "second") as second:
        server = hotline_factory(trunks(p1, p2, first="max_channels = 1"),
                                 routes_first=ROUTES)
        stats = call(server, "8155501234", tmp_path / "uac1", calls=2, hold_ms=2000)
        assert stats.get("Successful call") == 2, (stats, server.log()[-4000:])
        finished(second)  # exactly one call reached the second trunk
        assert "event=trunk_skipped trunk=first reason=full" in server.log()
        # The channel was given back: first takes one call again, a second gets 503.
        stats = call(server, "8255501234", tmp_path / "uac2", calls=2, hold_ms=2000)
        assert (stats.get("Successful call"), stats.get("Failed call")) == (1, 1), (
            stats, server.log()[-4000:])
        finished(first)
        log = server.log()
        assert "event=trunk_unavailable trunks=first full=true" in log
        assert sorted(outbound_cdrs(server)) == [("first", "answered")] * 2 + [
            ("second", "answered")]


def test_digest_challenge_is_answered_and_caller_id_presented(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    """The carrier challenges the INVITE; the second INVITE carries the digest, a From
    and P-Asserted-Identity with the site's number (checked by the scenario)."""
    p1, p2 = free_port(), free_port()
    with carrier(uas(p1, 1, "trunk_auth_uas.xml"), tmp_path / "first") as first:
        server = hotline_factory(trunks(p1, p2, first='username = "trunkuser"\n'
                                        'password = "trunkpass"\ncaller_id = "96116"'),
                                 routes_first=ROUTES)
        stats = call(server, "8255501234", tmp_path / "uac", hold_ms=500)
        assert stats.get("Successful call") == 1, (stats, server.log()[-4000:])
        finished(first)
        assert outbound_cdrs(server) == [("first", "answered")]
