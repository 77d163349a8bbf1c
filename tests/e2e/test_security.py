"""A PBX on the internet: sipvicious scans learn nothing, guessing gets banned,
unauthenticated calls never reach a trunk."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .peers import HotlineProcess, free_port, run_sipp

pytestmark = pytest.mark.e2e

# Agent 1003's password is a number svcrack's range covers: only the ban stops it.
WEAK_AGENT = """
[[agents]]
id = "1003"
name = "Zhang Min"
password = "1025"
"""


def _sv(tool: str, args: list[str], cwd: Path) -> str:
    exe = shutil.which(tool)
    assert exe, f"{tool} missing: `make test` installs Debian's sipvicious"
    proc = subprocess.run([exe, *args], cwd=str(cwd), capture_output=True, text=True,
                          timeout=120, input="")
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("method", ["REGISTER", "INVITE", "OPTIONS"])
def test_svwar_cannot_tell_which_extensions_exist(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path, method: str
) -> None:
    server = hotline_factory()
    out = _sv("svwar", ["-e995-1010", "--force", "-m", method, "-p", str(server.sip_port),
                        "127.0.0.1"], tmp_path)
    # svwar prints a table row per extension it tells apart; 1001/1002 exist here.
    assert "found nothing" in out, out
    assert "| 1001" not in out and "| 1002" not in out, out


def test_svcrack_is_banned_before_it_finds_the_password(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    server = hotline_factory(WEAK_AGENT)
    out = _sv("svcrack", ["-u", "1003", "-r", "1000-1030", "-p", str(server.sip_port),
                          "127.0.0.1"], tmp_path)
    assert "1025" not in out.replace("1000-1030", ""), out
    log = server.log()
    assert "event=source_banned" in log, log[-3000:]
    # The banned source gets no answer at all, even to OPTIONS.
    from .peers import sip_options

    assert sip_options("127.0.0.1", server.sip_port) is None


def test_unauthenticated_invite_never_reaches_the_trunk(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    trunk_port = free_port()
    carrier = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    carrier.bind(("127.0.0.1", trunk_port))
    carrier.settimeout(3.0)
    try:
        server = hotline_factory(trunk_port=trunk_port)
        # 127.0.0.1 is not in the trunk's allow list: an internet caller dialing out.
        res = run_sipp(["-sn", "uac", f"127.0.0.1:{server.sip_port}", "-s", "900861234567",
                        "-i", "127.0.0.1", "-p", str(free_port()), "-m", "3",
                        "-timeout", "10s"], cwd=tmp_path, timeout=30)
        assert res.stats.get("Successful call", 0) == 0, res.stdout[-3000:]
        errors = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*_errors.log"))
        assert "SIP/2.0 401 Unauthorized" in errors, errors[-3000:]
        with pytest.raises(TimeoutError):
            data = carrier.recv(65535)
            pytest.fail(f"the trunk received {data[:200]!r}")
    finally:
        carrier.close()
