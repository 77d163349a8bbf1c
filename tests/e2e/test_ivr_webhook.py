"""IVR flows on real calls: the HTTP lookup step against a real local web service (the
"query your balance" self-service), its failure path, and barge-in (a key pressed during
a long prompt stops it and is taken as the answer). SIPp is the carrier."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from .peers import HotlineProcess, free_port, pcap_caller_scenario, run_sipp, server_bye

pytestmark = pytest.mark.e2e

PCAPS = Path("/usr/share/sip-tester")
ROUTE = '[[routes]]\nmatch = "95598"\nto = "ivr:self"\n'

# The carrier: answers, waits, presses 1 (RFC 4733), then waits for hotline's BYE.
SCENARIO = pcap_caller_scenario("IVR caller: one key, then the server hangs up", """\
  <pause milliseconds="{key_at_ms}"/>
  <nop><action><exec play_pcap_audio="pcap/dtmf_2833_1.pcap"/></action></nop>
""" + server_bye(20000))


class _Billing(BaseHTTPRequestHandler):
    """A billing service: GET /balance?caller=N answers {"data": {"balance": "42.50"}}."""

    calls: list[dict[str, list[str]]] = []
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        type(self).calls.append(parse_qs(url.query))
        body = json.dumps({"data": {"balance": "42.50"}}).encode()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def billing() -> Iterator[tuple[int, type[_Billing]]]:
    handler = type("Billing", (_Billing,), {"calls": [], "status": 200})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], handler
    httpd.shutdown()
    httpd.server_close()


def _wav(path: Path, seconds: float, hz: float) -> Path:
    import wave

    t = np.arange(int(8000 * seconds)) / 8000
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes((0.3 * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16).tobytes())
    return path


def _call(server: HotlineProcess, tmp_path: Path, key_at_ms: int) -> float:
    carrier = tmp_path / "carrier"
    carrier.mkdir(exist_ok=True)
    if not (carrier / "pcap").exists():
        (carrier / "pcap").symlink_to(PCAPS)
    (carrier / "caller.xml").write_text(SCENARIO.format(key_at_ms=key_at_ms))
    started = time.monotonic()
    res = run_sipp(["-sf", "caller.xml", f"127.0.0.1:{server.sip_port}", "-s", "95598",
                    "-i", "127.0.0.2", "-p", str(free_port(host="127.0.0.2")),
                    "-m", "1", "-timeout", "40s"], cwd=carrier, timeout=60)
    assert res.stats.get("Successful call") == 1, res.stdout[-3000:] + server.log()[-3000:]
    return time.monotonic() - started


def _flow(tmp_path: Path, port: int) -> str:
    rich = _wav(tmp_path / "rich.wav", 0.5, 600)
    sorry = _wav(tmp_path / "sorry.wav", 0.5, 900)
    return f"""
[ivr.self]
start = "lookup"

[ivr.self.steps.lookup]
kind = "http"
url = "http://127.0.0.1:{port}/balance?caller={{caller}}"
timeout = 3
map = {{ balance = "data.balance" }}
next = "check"
failure = "play:{sorry}"

[ivr.self.steps.check]
kind = "branch"
variable = "balance"
cases = [{{ ge = 10, next = "menu" }}]
default = "hangup"

[ivr.self.steps.menu]
kind = "menu"
prompt = "tts:your balance is {{balance}} yuan, press 1 to hear it again"
options = {{ "1" = "play:{rich}" }}
timeout = 10
retries = 0
"""


def test_http_lookup_feeds_the_menu_and_the_branch(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path, billing
) -> None:  # type: ignore[no-untyped-def]
    port, handler = billing
    server = hotline_factory(_flow(tmp_path, port), routes_first=ROUTE)
    _call(server, tmp_path, key_at_ms=1500)
    assert handler.calls and handler.calls[0].get("caller"), handler.calls
    log = server.log()
    # 200 with balance 42.50 >= 10: the menu, whose key 1 plays the prompt, then hang-up.
    assert "status=200" in log and "event=dtmf digit=1" in log, log[-3000:]
    assert "event=ivr_hangup reason=played" in log, log[-3000:]


def test_http_lookup_failure_takes_the_failure_path(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path, billing
) -> None:  # type: ignore[no-untyped-def]
    port, handler = billing
    handler.status = 500
    server = hotline_factory(_flow(tmp_path, port), routes_first=ROUTE)
    _call(server, tmp_path, key_at_ms=0)
    log = server.log()
    # 500: the failure path plays "sorry" (0.5 s) and hangs up; the menu never ran.
    assert "event=ivr_http" in log and "status=500" in log, log[-3000:]
    billsec = float(log.split("event=call_end")[-1].split("billsec=")[1].split()[0])
    assert "reason=played" in log and billsec < 1.5, log[-3000:]


def test_key_during_a_long_prompt_stops_it_and_answers_the_menu(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    long_prompt = _wav(tmp_path / "long.wav", 12.0, 500)
    server = hotline_factory(
        f'\n[ivr.self]\ngreeting = "{long_prompt}"\ntimeout = 5\nretries = 0\n'
        'menu = { "1" = "hangup" }\n', routes_first=ROUTE)
    elapsed = _call(server, tmp_path, key_at_ms=1500)
    # Hung up on the key, not after the 12 s prompt and its 5 s timeout.
    assert elapsed < 7.0, (elapsed, server.log()[-3000:])
    log = server.log()
    assert "event=dtmf digit=1" in log and "reason=hangup" in log, log[-3000:]
