"""Trunks seen from the carrier's side: digest registration and OPTIONS keepalives."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .peers import HotlineProcess, free_port, start_sipp

pytestmark = pytest.mark.e2e

SCENARIOS = Path(__file__).parent / "scenarios"


def _wait_log(server: HotlineProcess, needle: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = server.log()
        if needle in log:
            return log
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} not logged within {timeout}s:\n{server.log()[-4000:]}")


def test_registers_to_the_carrier_with_digest(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    port = free_port()
    carrier = start_sipp(["-sf", str(SCENARIOS / "registrar_auth.xml"), "-i", "127.0.0.1",
                          "-p", str(port), "-m", "1", "-timeout", "30s"], cwd=tmp_path)
    try:
        server = hotline_factory(f"""
[[trunks]]
name = "reg"
host = "127.0.0.1"
port = {port}
username = "trunkuser"
password = "trunkpass"
register = true
expires = 60
options_interval = 0
""")
        log = _wait_log(server, "event=trunk_registered trunk=reg", 15)
        assert "expires=60" in log
        out, _ = carrier.communicate(timeout=30)
        # sipp exits 0 only if the scenario ran to the end with a verified digest.
        assert carrier.returncode == 0, out.decode(errors="replace")[-3000:]
    finally:
        if carrier.poll() is None:
            carrier.kill()
            carrier.wait(5)


def test_options_keepalive_marks_trunk_up_then_down(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    port = free_port()
    carrier = start_sipp(["-sf", str(SCENARIOS / "options_responder.xml"), "-i", "127.0.0.1",
                          "-p", str(port), "-m", "2", "-timeout", "30s"], cwd=tmp_path)
    try:
        server = hotline_factory(f"""
[[trunks]]
name = "ka"
host = "127.0.0.1"
port = {port}
options_interval = 1
""")
        _wait_log(server, "event=trunk_up trunk=ka", 10)
        carrier.communicate(timeout=30)  # answers two pings, then the carrier is gone
        _wait_log(server, "event=trunk_down trunk=ka", 15)
    finally:
        if carrier.poll() is None:
            carrier.kill()
            carrier.wait(5)
