"""IVR menus on real calls: SIPp calls the hotline number, hotline answers with the menu.

A carrier (SIPp ``uac_pcap``) sends RFC 4733 digit 1 after 8 s of audio; the menu sends
key 1 to agent 1001 (baresip, auto-answer), which must then be bridged to the caller.
A caller that presses nothing (SIPp ``uac``) hears the menu again and is hung up.
"""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .peers import Baresip, HotlineProcess, free_port, run_sipp

pytestmark = pytest.mark.e2e

PCAPS = Path("/usr/share/sip-tester")

ROUTE = '[[routes]]\nmatch = "95598"\nto = "ivr:main"\n'


def _cdrs(server: HotlineProcess) -> list[dict[str, str]]:
    server.stop()  # flushes the CDR batch
    out = subprocess.run(
        [sys.executable, "-m", "hotline", "cdr", "export", "--csv",
         "--config", str(server.config)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return list(csv.DictReader(io.StringIO(out.stdout)))


def test_menu_key_sends_the_caller_to_an_agent(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    server = hotline_factory(
        '\n[ivr.main]\ngreeting = "tts:hi"\ntimeout = 15\nretries = 0\n'
        'menu = { "1" = "agent:1001" }\n', routes_first=ROUTE)
    quiet = tmp_path / "quiet.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(quiet), "trim", "0",
                    "20"], check=True, timeout=30)
    agent = Baresip(tmp_path / "agent",
                    f"<sip:1001@127.0.0.1:{server.sip_port};transport=udp>"
                    ";auth_pass=pw-1001-secret;regint=300;answermode=auto", quiet)
    agent.start()
    try:
        agent.wait_log(r"1001@127\.0\.0\.1: \{0/UDP/v4\} 200 OK", timeout=10)
        carrier = tmp_path / "carrier"
        carrier.mkdir()
        (carrier / "pcap").symlink_to(PCAPS)
        res = run_sipp(["-sn", "uac_pcap", f"127.0.0.1:{server.sip_port}", "-s", "95598",
                        "-i", "127.0.0.2", "-p", str(free_port(host="127.0.0.2")),
                        "-m", "1", "-timeout", "40s"], cwd=carrier, timeout=60)
        assert res.stats.get("Successful call") == 1, res.stdout[-3000:] + server.log()[-3000:]
        agent.wait_event(lambda e: e.get("type") == "CALL_ESTABLISHED", timeout=10)
        agent.wait_event(lambda e: e.get("type") == "CALL_CLOSED", timeout=10)
    finally:
        agent.stop()
    log = server.log()
    assert re.search(r"event=dtmf .*digit=1 ", log), log[-3000:]
    assert re.search(r"event=ivr_transfer .*target=agent:1001", log), log[-3000:]
    assert re.search(r"event=transferred ", log), log[-3000:]
    rows = {r["leg"]: r for r in _cdrs(server)}
    caller, leg = rows["caller"], rows["agent"]
    assert caller["route"] == "ivr:main" and caller["agent"] == "1001", caller
    assert caller["disposition"] == "answered" and caller["hangup_cause"] == "caller_bye", caller
    assert leg["agent"] == "1001" and leg["disposition"] == "answered", leg


def test_no_key_gets_the_fallback_after_the_retries(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    server = hotline_factory(
        '\n[ivr.main]\ngreeting = "tts:hi"\ntimeout = 1\nretries = 1\n'
        'menu = { "1" = "agent:1001" }\n', routes_first=ROUTE)
    # The caller stays 30 s unless hung up: the menu (twice 1 s wait) hangs up first.
    res = run_sipp(["-sn", "uac", f"127.0.0.1:{server.sip_port}", "-s", "95598",
                    "-i", "127.0.0.2", "-p", str(free_port(host="127.0.0.2")),
                    "-d", "30000", "-m", "1", "-timeout", "25s"], cwd=tmp_path, timeout=40)
    log = server.log()
    assert res.stats.get("Successful call") != 1, res.stdout[-3000:]
    assert re.search(r"event=ivr_hangup .*reason=hangup", log), log[-3000:]
    assert not re.search(r"event=dtmf ", log), log[-3000:]
    (caller,) = _cdrs(server)
    assert caller["route"] == "ivr:main" and caller["agent"] == "", caller
    assert caller["disposition"] == "answered" and caller["hangup_cause"] == "hangup", caller
    assert 2 <= int(caller["billsec"]) <= 10, caller
