"""Fixtures for end-to-end tests: a hotline server on free loopback ports."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .audio import TONES, tone_wav
from .peers import HotlineProcess, PjPhone, free_port, wait_listening, write_site

SITE = """
[server]
sip = ["udp:127.0.0.1:{sip}", "tcp:127.0.0.1:{sip}"]
http = "127.0.0.1:{http}"
rtp_ports = [{rtp_lo}, {rtp_hi}]
media_workers = {workers}
data_dir = "{data}"

[sip]
max_failures = 5
window = 60
ban_seconds = 30

[logging]
level = "info"

[[trunks]]
name = "carrier"
host = "127.0.0.1"
port = {trunk_port}
allow = ["127.0.0.2/32"]
options_interval = 0

[[agents]]
id = "1001"
name = "Li Na"
password = "pw-1001-secret"

[[agents]]
id = "1002"
name = "Wang Wei"
password = "pw-1002-secret"

{routes_first}
[[routes]]
match = "*43"
to = "echo"

[[routes]]
match = "_9."
to = "trunk:carrier"
source = "any"   # the tests' carrier calls back out through itself (SIPp uac -> uas)
"""


@pytest.fixture
def hotline_factory(tmp_path: Path) -> Iterator[Callable[..., HotlineProcess]]:
    """Start hotline servers with the test site (extra TOML may be appended)."""
    started: list[HotlineProcess] = []
    # Each pytest-xdist worker (gw0, gw1...) gets its own RTP range.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    rtp_lo = 31000 + 2000 * int(worker.removeprefix("gw") or 0)

    def make(extra: str = "", *, routes_first: str = "", workers: int = 1,
             **ports: int) -> HotlineProcess:
        """``routes_first`` is TOML put before the site's routes (``_9.`` goes to the
        trunk, so a ``9...`` number needs its route first); ``workers``: media workers."""
        sip = free_port()
        values = {
            "sip": sip, "http": free_port(), "trunk_port": ports.get("trunk_port", free_port()),
            "rtp_lo": rtp_lo, "rtp_hi": rtp_lo + 999, "data": str(tmp_path / "data"),
            "routes_first": routes_first, "workers": workers,
        }
        cfg = write_site(tmp_path / "site.toml", SITE.format(**values) + extra)
        proc = HotlineProcess(config=cfg, data_dir=tmp_path / "data", sip_port=sip)
        proc.http_port = values["http"]  # type: ignore[attr-defined]  # the [server] http port
        proc.start()
        started.append(proc)
        wait_listening(values["http"])  # HTTP opens last (after the SIP side answers)
        return proc

    yield make
    for p in started:
        p.stop()


@pytest.fixture
def phones(tmp_path: Path) -> Iterator[Callable[..., PjPhone]]:
    made: list[PjPhone] = []

    def make(server: HotlineProcess, user: str, answer_after: float = 0.0) -> PjPhone:
        p = PjPhone(tmp_path / f"phone-{user}-{len(made)}", user, f"pw-{user}-secret",
                    server.sip_port, tone_wav(tmp_path / f"tone-{user}.wav", TONES[user]),
                    answer_after=answer_after)
        made.append(p)
        ev = p.wait(event="registered", timeout=10)
        assert ev["code"] == 200, (ev, server.log()[-3000:])
        return p

    yield make
    for p in made:
        p.stop()
