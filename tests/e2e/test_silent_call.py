"""The silent-call rule on real calls: a caller put through from the IVR to an agent who
says nothing hears the "we cannot hear you" prompt and is hung up; one who speaks is not.
Caller and agent are PJSIP phones; the caller's "voice" is espeak-ng speech. The agent's
phone rings for 2 s first, during which the caller hears ringback."""

from __future__ import annotations

import subprocess
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from .peers import HotlineProcess, PjPhone

pytestmark = pytest.mark.e2e

PROMPT_HZ = 520  # not 450 Hz: that is China's ringback


def _wav(path: Path, pcm: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.astype(np.int16).tobytes())
    return path


def _sine(path: Path, hz: float, seconds: float) -> Path:
    t = np.arange(int(8000 * seconds)) / 8000
    return _wav(path, 0.3 * 32767 * np.sin(2 * np.pi * hz * t))


def _site(tmp_path: Path) -> tuple[str, str]:
    prompt = _sine(tmp_path / "cannot-hear.wav", PROMPT_HZ, 1.5)
    extra = (f'\n[ivr.main]\ngreeting = "tts:hi"\ntimeout = 15\nretries = 0\n'
             f'menu = {{ "1" = "agent:1001" }}\nsilent_prompt = "{prompt}"\n'
             f'silent_seconds = 3\n')
    return extra, '[[routes]]\nmatch = "95598"\nto = "ivr:main"\n'


def _call_through_ivr(server: HotlineProcess, caller: PjPhone, agent: PjPhone) -> None:
    caller.send("call", uri=f"sip:95598@127.0.0.1:{server.sip_port}")
    caller.wait(event="state", call=0, state="CONFIRMED", timeout=10)
    time.sleep(0.5)
    caller.send("dtmf", call=0, digits="1")
    agent.wait(event="incoming", timeout=10)
    agent.wait(event="state", call=0, state="CONFIRMED", timeout=10)


@pytest.mark.parametrize("speaks", [False, True], ids=["silent", "speaking"])
def test_silent_caller_is_prompted_then_hung_up(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path, speaks: bool
) -> None:
    extra, route = _site(tmp_path)
    server = hotline_factory(extra, routes_first=route)
    if speaks:
        voice = tmp_path / "voice.wav"
        subprocess.run(["espeak-ng", "-w", str(voice), "-s", "150",
                        "Hello, I am calling about my bill. " * 4], check=True, timeout=60)
    else:
        voice = _wav(tmp_path / "silence.wav", np.zeros(8000 * 4))
    caller = PjPhone(tmp_path / "caller", "1002", "pw-1002-secret", server.sip_port, voice)
    agent = PjPhone(tmp_path / "agent", "1001", "pw-1001-secret", server.sip_port,
                    _sine(tmp_path / "agent.wav", 700, 4), answer_after=2.0)
    try:
        for p in (caller, agent):
            assert p.wait(event="registered", timeout=10)["code"] == 200
        _call_through_ivr(server, caller, agent)
        connected = time.monotonic()
        if speaks:
            time.sleep(9.0)  # three rule periods: nothing happens to a caller who talks
            assert not caller.has(event="state", call=0, state="DISCONNECTED"), server.log()
            caller.send("hangup", call=0)
            agent.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
        else:
            caller.wait(event="state", call=0, state="DISCONNECTED", timeout=15)
            elapsed = time.monotonic() - connected
            agent.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
            assert 5.0 < elapsed < 9.0, elapsed  # 3 s, the prompt, 3 s more
    finally:
        caller.stop()
        agent.stop()
    log = server.log()
    if speaks:
        assert "silent_call" not in log and "event=caller_heard" in log, log[-3000:]
        return
    assert "event=silent_call_prompt" in log and "cause=silent_call" in log, log[-3000:]
    # The caller heard the prompt (and the agent before it).
    with wave.open(str(caller.recording(0))) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(float)
    spectrum = np.abs(np.fft.rfft(pcm))
    freqs = np.fft.rfftfreq(len(pcm), 1 / 8000)
    def band(hz: float) -> float:
        return float(spectrum[(freqs > hz - 15) & (freqs < hz + 15)].max())
    assert band(PROMPT_HZ) > 10 * np.median(spectrum), band(PROMPT_HZ)
    assert band(700) > 10 * np.median(spectrum)
    # While the agent's phone rang (2 s), the caller heard ringback (450 Hz in China).
    assert band(450) > 10 * np.median(spectrum), band(450)


def test_silent_rule_from_the_queue_configuration(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    """A queue's own silent_prompt: the silent caller is prompted and hung up once the
    queue's agent (ready by *50) has answered."""
    prompt = _sine(tmp_path / "cannot-hear.wav", PROMPT_HZ, 1.5)
    server = hotline_factory(
        f'\n[[queues]]\nname = "care"\nagents = ["1001"]\nwrapup = 0\n'
        f'silent_prompt = "{prompt}"\nsilent_seconds = 3\n',
        routes_first='[[routes]]\nmatch = "200"\nto = "queue:care"\n')
    caller = PjPhone(tmp_path / "caller", "1002", "pw-1002-secret", server.sip_port,
                     _wav(tmp_path / "silence.wav", np.zeros(8000 * 4)))
    agent = PjPhone(tmp_path / "agent", "1001", "pw-1001-secret", server.sip_port,
                    _sine(tmp_path / "agent.wav", 700, 4))
    try:
        for p in (caller, agent):
            assert p.wait(event="registered", timeout=10)["code"] == 200
        agent.send("call", uri=f"sip:*50@127.0.0.1:{server.sip_port}")
        agent.wait(event="state", call=0, state="DISCONNECTED", timeout=10)
        caller.send("call", uri=f"sip:200@127.0.0.1:{server.sip_port}")
        agent.wait(event="state", call=1, state="CONFIRMED", timeout=10)
        connected = time.monotonic()
        caller.wait(event="state", call=0, state="DISCONNECTED", timeout=15)
        elapsed = time.monotonic() - connected
    finally:
        caller.stop()
        agent.stop()
    assert 5.0 < elapsed < 9.0, elapsed  # 3 s, the prompt, 3 s more
    log = server.log()
    assert "event=silent_call_prompt" in log and "cause=silent_call" in log, log[-3000:]
