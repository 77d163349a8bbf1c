"""Session timers (RFC 4028) against SIPp carriers: a peer that promised to refresh and
does not is hung up at the expiry; when we are the refresher we send UPDATE at half the
interval and end the call when the peer says the dialog is gone (481)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .peers import HotlineProcess, free_port, start_sipp

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCENARIOS = Path(__file__).parent / "scenarios"


def test_session_expiry_and_refresh(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    server = hotline_factory()
    procs = {}
    started = time.monotonic()
    for who in ("uac", "uas"):  # both calls run at once: the test takes ~60 s, not ~105
        d = tmp_path / who
        d.mkdir()
        procs[who] = start_sipp(
            ["-sf", str(SCENARIOS / f"session_timer_{who}.xml"), f"127.0.0.1:{server.sip_port}",
             "-i", "127.0.0.2", "-p", str(free_port(host="127.0.0.2")), "-m", "1",
             "-timeout", "90s", "-timeout_error"], cwd=d)
    ended = {}
    for who, proc in procs.items():
        out, _ = proc.communicate(timeout=100)
        ended[who] = time.monotonic() - started
        assert proc.returncode == 0, (who, out.decode(errors="replace")[-3000:],
                                      server.log()[-3000:])
    log = server.log()
    assert "event=session_expired" in log, log[-3000:]
    assert "cause=session_refresh_failed" in log, log[-3000:]
    # Expiry at 90 - min(32, 90/3) = 60 s; the refresh at 45 s.
    assert ended["uac"] >= 59, ended
