"""SIPp against hotline: the built-in uac scenario to echo, and uas answering trunk calls."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .peers import HotlineProcess, free_port, run_sipp, start_sipp

pytestmark = pytest.mark.e2e


def test_uac_1000_calls_at_50_per_second_to_echo(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    server = hotline_factory()
    # The carrier (127.0.0.2, trusted by the trunk's allow list) calls *43 1000 times.
    res = run_sipp(
        ["-sn", "uac", f"127.0.0.1:{server.sip_port}", "-s", "*43", "-i", "127.0.0.2",
         "-p", str(free_port(host="127.0.0.2")), "-r", "50", "-m", "1000", "-l", "200",
         "-timeout", "90s", "-timeout_error", "-max_recv_loops", "1000"],
        cwd=tmp_path, timeout=120,
    )
    assert res.returncode == 0, res.stdout[-4000:] + server.log()[-4000:]
    assert res.stats.get("Successful call") == 1000, res.stats
    assert res.stats.get("Failed call") == 0, res.stats
    # Every call left a CDR, and the server is still answering.
    out = subprocess.run(
        [sys.executable, "-m", "hotline", "cdr", "export", "--csv",
         "--config", str(server.config)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = out.stdout.strip().splitlines()
    assert len(rows) == 1001  # header + one per call


def test_uas_answers_calls_placed_out_through_the_trunk(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    uas_port = free_port()
    uas_dir = tmp_path / "uas"
    uas_dir.mkdir()
    uas = start_sipp(["-sn", "uas", "-i", "127.0.0.1", "-p", str(uas_port), "-m", "20",
                      "-timeout", "60s"], cwd=uas_dir)
    try:
        server = hotline_factory(trunk_port=uas_port)
        uac_dir = tmp_path / "uac"
        uac_dir.mkdir()
        res = run_sipp(
            ["-sn", "uac", f"127.0.0.1:{server.sip_port}", "-s", "95551234", "-i", "127.0.0.2",
             "-p", str(free_port(host="127.0.0.2")), "-r", "10", "-m", "20",
             "-timeout", "60s", "-timeout_error"],
            cwd=uac_dir, timeout=90,
        )
        assert res.returncode == 0, res.stdout[-4000:] + server.log()[-4000:]
        assert res.stats.get("Successful call") == 20, res.stats
        out, _ = uas.communicate(timeout=30)
        assert uas.returncode == 0, out.decode(errors="replace")[-3000:]
    finally:
        if uas.poll() is None:
            uas.kill()
            uas.wait(5)
