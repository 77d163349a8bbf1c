"""baresip as a SIP phone: digest registration, a call to echo that it hears back, a clean BYE."""

from __future__ import annotations

import subprocess
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from .peers import Baresip, HotlineProcess, free_port, start_sipp

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


def _peak_hz(path: Path) -> tuple[float, float]:
    """Dominant frequency and RMS of the second half of a WAV."""
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(float)
    tail = pcm[len(pcm) // 2:]
    spectrum = np.abs(np.fft.rfft(tail * np.hanning(len(tail))))
    return float(np.argmax(spectrum) * rate / len(tail)), float(np.sqrt(np.mean(tail**2)))


def _sine(path: Path, hz: int) -> Path:
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(path),
                    "synth", "6", "sine", str(hz), "vol", "0.5"], check=True, timeout=30)
    return path


def test_extension_calls_extension_and_each_hears_the_other(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    server = hotline_factory()
    phones = []
    for user, hz in (("1001", 800), ("1002", 1300)):
        account = (f"<sip:{user}@127.0.0.1:{server.sip_port};transport=udp>"
                   f";auth_pass=pw-{user}-secret;regint=300;audio_codecs=PCMU;answermode=auto")
        phone = Baresip(tmp_path / user, account, _sine(tmp_path / f"{user}.wav", hz))
        phone.start()
        phones.append(phone)
    caller, callee = phones
    try:
        for p in phones:
            p.wait_log(r"\{0/UDP/v4\} 200 OK", timeout=10)
        caller.command("dial", f"sip:1002@127.0.0.1:{server.sip_port}")
        caller.wait_event(lambda e: e.get("type") == "CALL_ESTABLISHED", timeout=10)
        callee.wait_event(lambda e: e.get("type") == "CALL_ESTABLISHED", timeout=10)
        time.sleep(3.0)
        caller.command("hangup")
        callee.wait_event(lambda e: e.get("type") == "CALL_CLOSED", timeout=10)
    finally:
        for p in phones:
            p.stop()
    heard_by_caller = sorted((tmp_path / "1001").glob("dump-*-dec.wav"))[-1]
    heard_by_callee = sorted((tmp_path / "1002").glob("dump-*-dec.wav"))[-1]
    hz, rms = _peak_hz(heard_by_caller)
    assert abs(hz - 1300) < 20 and rms > 1000, (hz, rms)
    hz, rms = _peak_hz(heard_by_callee)
    assert abs(hz - 800) < 20 and rms > 1000, (hz, rms)
    log = server.log()
    assert "target=agent:1002" in log and "cause=caller_bye" in log, log[-3000:]


def test_extension_calls_out_through_the_trunk_to_sipp(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    uas_port = free_port()
    uas_dir = tmp_path / "uas"
    uas_dir.mkdir()
    # SIPp's uas echoes the RTP it gets: the phone hears itself through both legs.
    uas = start_sipp(["-sn", "uas", "-i", "127.0.0.1", "-p", str(uas_port), "-m", "1",
                      "-rtp_echo", "-timeout", "60s"], cwd=uas_dir)
    try:
        server = hotline_factory(trunk_port=uas_port)
        account = (f"<sip:1001@127.0.0.1:{server.sip_port};transport=udp>"
                   ";auth_pass=pw-1001-secret;regint=300;audio_codecs=PCMU")
        phone = Baresip(tmp_path / "phone", account, _sine(tmp_path / "tone.wav", 900))
        phone.start()
        try:
            phone.wait_log(r"\{0/UDP/v4\} 200 OK", timeout=10)
            phone.command("dial", f"sip:95550100@127.0.0.1:{server.sip_port}")
            phone.wait_event(lambda e: e.get("type") == "CALL_ESTABLISHED", timeout=10)
            time.sleep(3.0)
            phone.command("hangup")
            phone.wait_event(lambda e: e.get("type") == "CALL_CLOSED", timeout=10)
        finally:
            phone.stop()
        out, _ = uas.communicate(timeout=30)
        assert uas.returncode == 0, out.decode(errors="replace")[-3000:]
    finally:
        if uas.poll() is None:
            uas.kill()
            uas.wait(5)
    hz, rms = _peak_hz(sorted((tmp_path / "phone").glob("dump-*-dec.wav"))[-1])
    assert abs(hz - 900) < 20 and rms > 1000, (hz, rms)
    assert "target=trunk:carrier" in server.log()


def test_baresip_blind_transfer_hands_the_caller_to_a_third_extension(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    """baresip's own REFER (its ``transfer`` command): 1001 calls 1002, 1002 transfers
    1001 to 1003; 1001 then hears 1003 in the same call."""
    server = hotline_factory('\n[[agents]]\nid = "1003"\nname = "Zhang Min"\n'
                             'password = "pw-1003-secret"\n')
    phones = {}
    for user, hz in (("1001", 800), ("1002", 1300), ("1003", 1700)):
        account = (f"<sip:{user}@127.0.0.1:{server.sip_port};transport=udp>"
                   f";auth_pass=pw-{user}-secret;regint=300;audio_codecs=PCMU;answermode=auto")
        phones[user] = Baresip(tmp_path / user, account, _sine(tmp_path / f"{user}.wav", hz))
        phones[user].start()
    try:
        for p in phones.values():
            p.wait_log(r"\{0/UDP/v4\} 200 OK", timeout=10)
        phones["1001"].command("dial", f"sip:1002@127.0.0.1:{server.sip_port}")
        phones["1002"].wait_event(lambda e: e.get("type") == "CALL_ESTABLISHED", timeout=10)
        time.sleep(1.0)
        phones["1002"].command("transfer", f"sip:1003@127.0.0.1:{server.sip_port}")
        phones["1003"].wait_event(lambda e: e.get("type") == "CALL_ESTABLISHED", timeout=10)
        phones["1002"].wait_event(lambda e: e.get("type") == "CALL_CLOSED", timeout=10)
        time.sleep(3.0)
        phones["1001"].command("hangup")
        phones["1003"].wait_event(lambda e: e.get("type") == "CALL_CLOSED", timeout=10)
    finally:
        for p in phones.values():
            p.stop()
    hz, rms = _peak_hz(sorted((tmp_path / "1001").glob("dump-*-dec.wav"))[-1])
    assert abs(hz - 1700) < 20 and rms > 1000, (hz, rms)  # the caller ends up hearing 1003
    log = server.log()
    assert "event=blind_transfer target=agent:1003" in log, log[-3000:]
