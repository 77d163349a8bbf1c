"""baresip as a SIP phone: digest registration, a call to echo that it hears back, a clean BYE."""

from __future__ import annotations

import subprocess
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from .peers import Baresip, HotlineProcess

pytestmark = pytest.mark.e2e


def _tone(path: Path) -> Path:
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(path),
                    "synth", "4", "sine", "1000", "vol", "0.5"], check=True, timeout=30)
    return path


def test_register_with_digest_and_call_echo(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    server = hotline_factory()
    account = (f"<sip:1001@127.0.0.1:{server.sip_port};transport=udp>"
               ";auth_pass=pw-1001-secret;regint=300;audio_codecs=PCMU,PCMA")
    phone = Baresip(tmp_path / "phone", account, _tone(tmp_path / "tone.wav"))
    phone.start()
    try:
        # Registration runs at start-up, before ctrl_tcp is connected: read the console.
        phone.wait_log(r"1001@127\.0\.0\.1: \{0/UDP/v4\} 200 OK", timeout=10)
        phone.command("dial", f"sip:*43@127.0.0.1:{server.sip_port}")
        phone.wait_event(lambda e: e.get("type") == "CALL_ESTABLISHED", timeout=10)
        time.sleep(2.5)
        phone.command("hangup")
        closed = phone.wait_event(lambda e: e.get("type") == "CALL_CLOSED", timeout=10)
        # A clean end: baresip's BYE got its 200 (no "timeout"/error in the reason).
        assert "error" not in str(closed.get("param", "")).lower(), closed
    finally:
        phone.stop()
    log = server.log()
    assert "call_end" in log, log[-3000:]
    # The phone heard its own 1 kHz tone back: sndfile dumps what it decoded.
    received = sorted((tmp_path / "phone").glob("dump-*-dec.wav"))
    assert received, list((tmp_path / "phone").iterdir())
    with wave.open(str(received[-1])) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(float)
    assert len(pcm) > rate  # more than a second of audio came back
    tail = pcm[len(pcm) // 3 :]
    spectrum = np.abs(np.fft.rfft(tail * np.hanning(len(tail))))
    peak_hz = np.argmax(spectrum) * rate / len(tail)
    assert abs(peak_hz - 1000) < 20, peak_hz
    assert np.sqrt(np.mean(tail**2)) > 1000  # loud, not comfort noise


def test_wrong_password_fails_registration(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    server = hotline_factory()
    account = (f"<sip:1001@127.0.0.1:{server.sip_port};transport=udp>"
               ";auth_pass=not-the-password;regint=300")
    phone = Baresip(tmp_path / "phone", account, _tone(tmp_path / "tone.wav"))
    phone.start()
    try:
        phone.wait_log(r"Register: 403 Forbidden|: 403 Forbidden", timeout=10)
        assert "200 OK" not in phone.log()
    finally:
        phone.stop()


def test_play_route_plays_the_prompt_then_hangs_up(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    prompt = tmp_path / "beep.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(prompt),
                    "synth", "1.5", "sine", "700", "vol", "0.5"], check=True, timeout=30)
    server = hotline_factory(f'\n[[routes]]\nmatch = "*44"\nto = "play:{prompt}"\n')
    account = (f"<sip:1001@127.0.0.1:{server.sip_port};transport=udp>"
               ";auth_pass=pw-1001-secret;regint=300;audio_codecs=PCMU")
    phone = Baresip(tmp_path / "phone", account, _tone(tmp_path / "tone.wav"))
    phone.start()
    try:
        phone.wait_log(r"200 OK", timeout=10)
        phone.command("dial", f"sip:*44@127.0.0.1:{server.sip_port}")
        phone.wait_event(lambda e: e.get("type") == "CALL_ESTABLISHED", timeout=10)
        # We do not hang up: hotline does once the 1.5 s prompt has played.
        phone.wait_event(lambda e: e.get("type") == "CALL_CLOSED", timeout=10)
    finally:
        phone.stop()
    received = sorted((tmp_path / "phone").glob("dump-*-dec.wav"))
    with wave.open(str(received[-1])) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(float)
        rate = w.getframerate()
    loud = pcm[np.abs(pcm) > 500]
    assert len(loud) > rate  # about 1.5 s of prompt, resampled to 8 kHz by hotline
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    assert abs(np.argmax(spectrum) * rate / len(pcm) - 700) < 20
    assert "cause=normal" in server.log()
