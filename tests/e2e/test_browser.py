"""The agent desktop and the supervisor console in real headless Chromium (Debian's, driven
by Playwright), with fake microphones playing a tone per page.

A SIPp carrier caller plays 1500 Hz into the queue. The agent's page (microphone 700 Hz)
logs in, goes ready, sees the screen pop and answers; the tone reaches the page (a
WebAudio analyser in the page says which frequency it hears), and the page's microphone
reaches the call (the recording's right channel). Hold silences the caller for the agent
and resume brings it back. A supervisor page (microphone 1100 Hz) listens in from the
console and hears the call; nothing of it reaches the caller's recording. The agent
transfers the caller to extension 1002 (a PJSIP phone), which hears the caller; 1002
hangs up and SIPp gets its BYE. Screenshots of both pages go to ``test-artifacts/``.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright import sync_api as playwright

from .audio import hears, hears_during, levels, read_wav, tone_pcap, tone_wav
from .peers import (
    HotlineProcess,
    PjPhone,
    free_port,
    pcap_caller_scenario,
    server_bye,
    start_sipp,
)
from .test_web_phone import QUEUE, RECORD_WAV, ROUTE

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CALLER_HZ, AGENT_HZ, SUP_HZ = 1500, 700, 1100

SITE = QUEUE + RECORD_WAV


def _launch(pw: object, tone: Path) -> object:
    return pw.chromium.launch(  # type: ignore[attr-defined]
        executable_path=CHROMIUM, headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--use-fake-device-for-media-stream",
              "--use-fake-ui-for-media-stream", f"--use-file-for-fake-audio-capture={tone}",
              "--autoplay-policy=no-user-gesture-required"])


def _login(page: object, base: str, path: str, user: str, password: str) -> None:
    page.goto(base + path)  # type: ignore[attr-defined]
    page.get_by_test_id("login-user").fill(user)  # type: ignore[attr-defined]
    page.get_by_test_id("login-pass").fill(password)  # type: ignore[attr-defined]
    page.get_by_test_id("login-submit").click()  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        "window.hotlineRtcState && window.hotlineRtcState() === 'connected'", timeout=20000)


def _hears(page: object, hz: int, timeout_ms: int = 5000) -> float:
    """Wait until the page's strongest remote frequency is ``hz``; seconds it took."""
    t0 = time.monotonic()
    page.wait_for_function(  # type: ignore[attr-defined]
        f"Math.abs((window.hotlineRemoteToneHz() || 0) - {hz}) < 80", timeout=timeout_ms)
    return time.monotonic() - t0


@pytest.fixture
def chromium() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make peers` installs Debian's chromium")
    with playwright.sync_playwright() as pw:
        yield pw


def test_agent_desktop_and_supervisor_console_in_chromium(
        hotline_factory: Callable[..., HotlineProcess], phones: Callable[..., PjPhone],
        chromium: object, tmp_path: Path) -> None:
    server = hotline_factory(SITE, routes_first=ROUTE)
    base = f"http://127.0.0.1:{server.http_port}"  # type: ignore[attr-defined]
    ARTIFACTS.mkdir(exist_ok=True)
    work = tmp_path / "caller"
    work.mkdir()
    tone_pcap(work / "tone.pcap", CALLER_HZ, 40.0)
    (work / "scenario.xml").write_text(pcap_caller_scenario(
        "tone caller", '  <nop><action><exec play_pcap_audio="tone.pcap"/></action></nop>\n'
        + server_bye(90000)).replace("sipp <sip:sipp@", "sipp <sip:95550123@"))

    agent_browser = _launch(chromium, tone_wav(tmp_path / "agent.wav", AGENT_HZ, 48000, 10.0))
    page = agent_browser.new_page(viewport={"width": 1366, "height": 768}, bypass_csp=True)  # type: ignore[attr-defined]
    _login(page, base, "/", "1001", "pw-1001-secret")
    page.get_by_test_id("btn-ready").click()
    page.wait_for_function("window.hotlineAgentState() === 'ready'", timeout=5000)

    sipp = start_sipp(["-sf", "scenario.xml", f"127.0.0.1:{server.sip_port}", "-s", "200",
                       "-i", "127.0.0.2", "-p", str(free_port(host="127.0.0.2")),
                       "-m", "1", "-timeout", "120s"], cwd=work)
    try:
        page.get_by_test_id("screen-pop").wait_for(state="visible", timeout=10000)
        assert "95550123" in page.get_by_test_id("pop-caller").inner_text()
        assert "support" in page.get_by_test_id("pop-queue").inner_text()
        page.wait_for_function("window.hotlineRinging()", timeout=5000)
        page.screenshot(path=str(ARTIFACTS / "agent-ringing.png"))
        # Click answer in the page and time the first caller audio its analyser hears.
        answer_to_audio = page.evaluate("""async () => {
            const t0 = performance.now();
            document.querySelector("[data-testid=btn-answer]").click();
            while (!(window.hotlineRemoteLevel() > -40)) {
                await new Promise((r) => setTimeout(r, 2));
                if (performance.now() - t0 > 5000) return null;
            }
            return (performance.now() - t0) / 1000;
        }""")
        assert answer_to_audio is not None, "no audio within 5 s of answering"
        _hears(page, CALLER_HZ)
        # A network blip's recovery: an ICE restart on the same connection, mid-call.
        ufrag = "window.hotline.phone.pc.remoteDescription.sdp.match(/ice-ufrag:(\\S+)/)[1]"
        before = page.evaluate(ufrag)
        page.evaluate("window.hotlineRestartIce()")
        page.wait_for_timeout(1000)
        assert page.evaluate(ufrag) != before  # the server's answer has new credentials
        assert page.evaluate("window.hotlineRtcState()") == "connected"
        _hears(page, CALLER_HZ)
        t_answer = time.monotonic()

        sup_browser = _launch(chromium, tone_wav(tmp_path / "sup.wav", SUP_HZ, 48000, 10.0))
        sp = sup_browser.new_page(viewport={"width": 1366, "height": 768}, bypass_csp=True)  # type: ignore[attr-defined]
        _login(sp, base, "/supervisor", "boss", "pw-boss-secret")
        row = sp.locator("[data-testid^='call-row-']").first
        row.wait_for(timeout=10000)
        row.get_by_test_id("btn-listen").click()
        sp.wait_for_function("window.hotlinePhoneState() === 'talking'", timeout=10000)
        sp.wait_for_function("window.hotlineRemoteLevel() > -45", timeout=5000)
        # the supervisor hears the call: its strongest tone is the caller's or the agent's
        # (polled: the first frames after the level rises may mix both onsets)
        sp.wait_for_function(
            f"(h => h !== null && Math.min(Math.abs(h - {CALLER_HZ}), Math.abs(h - {AGENT_HZ}))"
            " < 80)(window.hotlineRemoteToneHz())", timeout=5000)
        time.sleep(2.0)
        t_sup_end = time.monotonic()
        sp.screenshot(path=str(ARTIFACTS / "supervisor-console.png"))
        page.screenshot(path=str(ARTIFACTS / "agent-in-call.png"))
        sp.get_by_test_id("btn-hangup").click()
        sp.wait_for_function("window.hotlinePhoneState() === 'idle'", timeout=5000)

        # Hold: the agent no longer hears the caller; resume brings the caller back.
        page.get_by_test_id("btn-hold").click()
        page.wait_for_function(
            f"Math.abs((window.hotlineRemoteToneHz() || 0) - {CALLER_HZ}) > 80", timeout=5000)
        page.get_by_test_id("btn-hold").click()
        _hears(page, CALLER_HZ)

        # Blind transfer to 1002's desk phone.
        other = phones(server, "1002")
        page.get_by_test_id("transfer-number").fill("1002")
        page.get_by_test_id("btn-transfer").click()
        other.wait(event="state", call=0, state="CONFIRMED", timeout=10)
        page.wait_for_function("window.hotlinePhoneState() === 'idle'", timeout=10000)
        time.sleep(2.0)
        other.send("hangup", call=0)
        out, _ = sipp.communicate(timeout=30)
        assert sipp.returncode == 0, out.decode(errors="replace")[-2000:] + server.log()[-3000:]
        # Chromium's legs ran their RTP in the media kernel (media/webrtc_native.py)
        assert "RTP in the kernel (pcmu" in server.log()
        assert "stays on aiortc's RTP path" not in server.log()
        other.stop()
        assert hears(other.recording(0), CALLER_HZ, last_s=1.5)
        # Wrap-up: a code and notes saved with the call's CDR.
        page.get_by_test_id("wrapup-panel").wait_for(state="visible", timeout=10000)
        page.get_by_test_id("wrapup-code").fill("billing")
        page.get_by_test_id("wrapup-notes").fill("asked about the November bill")
        page.get_by_test_id("wrapup-save").click()
        page.wait_for_function(
            "document.querySelector('[data-testid=wrapup-panel]').hidden", timeout=10000)
        page.screenshot(path=str(ARTIFACTS / "agent-after-call.png"))
        page.get_by_test_id("lang-toggle").click()  # 中文
        page.wait_for_function("document.documentElement.lang.startsWith('zh')", timeout=5000)
        assert "就绪" in page.get_by_test_id("btn-ready").inner_text()
        page.screenshot(path=str(ARTIFACTS / "agent-zh.png"))
        # The supervisor finds the call's recording and plays it with its waveform.
        sp.get_by_test_id("tab-recordings").click()
        sp.get_by_test_id("rec-search").click()
        rec_row = sp.locator("[data-testid^='rec-row-']").first
        rec_row.wait_for(timeout=10000)
        rec_row.click()
        sp.wait_for_function("window.hotline.state.rec.buffer && "
                             "window.hotline.state.rec.buffer.duration > 5", timeout=10000)
        assert sp.get_by_test_id("rec-download").is_visible()
        sp.screenshot(path=str(ARTIFACTS / "supervisor-recordings.png"))
        sp.get_by_test_id("lang-toggle").click()
        sp.wait_for_function("document.documentElement.lang.startsWith('zh')", timeout=5000)
        sp.screenshot(path=str(ARTIFACTS / "supervisor-zh.png"))
        agent_browser.close()  # type: ignore[attr-defined]
        sup_browser.close()  # type: ignore[attr-defined]
    finally:
        if sipp.poll() is None:
            sipp.kill()
    print(f"answer-to-audio in the page: {answer_to_audio * 1000:.0f} ms")
    assert answer_to_audio < 2.0

    con = sqlite3.connect(server.data_dir / "hotline.db")
    try:
        (path,) = con.execute("SELECT path FROM recordings ORDER BY start_time DESC").fetchone()
        wrapup = con.execute("SELECT wrapup_code, wrapup_notes FROM cdr WHERE agent = '1001' "
                             "AND wrapup_code IS NOT NULL").fetchall()
    finally:
        con.close()
    assert ("billing", "asked about the November bill") in wrapup, wrapup
    rec = server.data_dir / "recordings" / path
    shutil.copy(rec, ARTIFACTS / "browser-call-recording.wav")
    # Caller on the left, the browser's microphone on the right; the supervisor nowhere.
    on = _tone_start(rec, AGENT_HZ, channel=1)
    span = t_sup_end - t_answer
    assert hears_during(rec, CALLER_HZ, on + 0.5, on + span, channel=0)
    assert hears_during(rec, AGENT_HZ, on + 0.5, on + span, channel=1)
    for ch in (0, 1):
        assert not hears_during(rec, SUP_HZ, on + 0.5, on + span, channel=ch)


def _tone_start(path: Path, hz: int, channel: int) -> float:
    pcm, rate = read_wav(path, channel)
    lv = levels(pcm, rate, [hz], frame_s=0.1)
    on = [i for i, x in enumerate(lv[:, 0]) if x > 500.0]
    assert on, f"{path}: no {hz} Hz on channel {channel}"
    return on[0] * 0.1

