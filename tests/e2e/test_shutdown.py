"""SIGTERM: no new calls, live calls finish within the grace period, clean exit."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .peers import HotlineProcess, free_port, run_sipp, start_sipp

pytestmark = pytest.mark.e2e


def test_sigterm_drains_live_calls_and_refuses_new_ones(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    server = hotline_factory()
    assert server.proc is not None
    live_dir = tmp_path / "live"
    live_dir.mkdir()
    # One 2.5 s call from the carrier; the fixture's grace period is 3 s.
    live = start_sipp(["-sn", "uac", f"127.0.0.1:{server.sip_port}", "-s", "*43",
                       "-i", "127.0.0.2", "-p", str(free_port(host="127.0.0.2")),
                       "-d", "2500", "-m", "1", "-timeout", "20s"], cwd=live_dir)
    try:
        time.sleep(1.0)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        new_dir = tmp_path / "new"
        new_dir.mkdir()
        refused = run_sipp(["-sn", "uac", f"127.0.0.1:{server.sip_port}", "-s", "*43",
                            "-i", "127.0.0.2", "-p", str(free_port(host="127.0.0.2")),
                            "-m", "1", "-timeout", "5s"], cwd=new_dir, timeout=20)
        assert refused.stats.get("Successful call", 0) == 0
        errors = "".join(p.read_text(errors="replace") for p in new_dir.glob("*_errors.log"))
        assert "SIP/2.0 503" in errors, errors[-2000:]
        out, _ = live.communicate(timeout=20)
        assert live.returncode == 0, out.decode(errors="replace")[-3000:]
        assert server.proc.wait(10) == 0
    finally:
        if live.poll() is None:
            live.kill()
            live.wait(5)
    log = server.log()
    assert "event=stopping" in log and "event=stopped" in log, log[-3000:]
