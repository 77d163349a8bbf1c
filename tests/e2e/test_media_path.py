"""Audio through hotline's media workers, checked on the audio itself.

SIPp (carrier) plays Debian's g711a.pcap then an RFC 4733 digit into a call that
hotline bridges to a baresip extension: the phone's decoded audio must be the pcap's
audio, and hotline must report the digit. A baresip caller sending in-band DTMF gets
its digits detected.
"""

from __future__ import annotations

import re
import struct
import subprocess
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from .peers import Baresip, HotlineProcess, free_port, run_sipp

pytestmark = pytest.mark.e2e

PCAPS = Path("/usr/share/sip-tester")


def _alaw_decode(data: bytes) -> np.ndarray:
    a = np.frombuffer(data, dtype=np.uint8) ^ 0x55
    sign = a & 0x80
    exp = (a >> 4) & 0x07
    mant = (a & 0x0F).astype(np.int32)
    mag = np.where(exp == 0, (mant << 4) + 8, ((mant << 4) + 0x108) << (exp - 1))
    return np.where(sign != 0, mag, -mag).astype(np.int16)


def _pcap_rtp_payloads(path: Path) -> bytes:
    """Concatenated RTP payloads (PT 8) of a classic pcap, in file order."""
    data = path.read_bytes()
    endian = "<" if struct.unpack_from("<I", data, 0)[0] in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    link = struct.unpack_from(endian + "I", data, 20)[0]
    off, out = 24, bytearray()
    while off + 16 <= len(data):
        incl = struct.unpack_from(endian + "I", data, off + 8)[0]
        frame = data[off + 16 : off + 16 + incl]
        off += 16 + incl
        ip = frame[14:] if link == 1 else frame[16:] if link == 113 else frame
        if not ip or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        udp = ip[(ip[0] & 0x0F) * 4 :]
        rtp = udp[8:]
        if len(rtp) > 12 and rtp[1] & 0x7F == 8:
            out += rtp[12 + 4 * (rtp[0] & 0x0F) :]
    return bytes(out)


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == 8000 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(float)


def _best_correlation(got: np.ndarray, ref: np.ndarray) -> float:
    """Peak normalised cross-correlation of a 2 s window of ``ref`` within ``got``."""
    win = ref[8000:24000]
    win = (win - win.mean()) / (win.std() + 1e-9)
    best = 0.0
    n = len(win)
    for lag in range(0, max(1, len(got) - n), 8):
        seg = got[lag : lag + n]
        if len(seg) < n or seg.std() < 1:
            continue
        c = float(np.dot((seg - seg.mean()) / seg.std(), win) / n)
        best = max(best, c)
    return best


def test_pcap_audio_and_rfc4733_digit_through_a_bridge(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    server = hotline_factory('\n[[routes]]\nmatch = "2001"\nto = "agent:1001"\n')
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
        res = run_sipp(["-sn", "uac_pcap", f"127.0.0.1:{server.sip_port}", "-s", "2001",
                        "-i", "127.0.0.2", "-p", str(free_port(host="127.0.0.2")),
                        "-m", "1", "-timeout", "40s"], cwd=carrier, timeout=60)
        assert res.stats.get("Successful call") == 1, res.stdout[-3000:] + server.log()[-3000:]
        agent.wait_event(lambda e: e.get("type") == "CALL_CLOSED", timeout=10)
    finally:
        agent.stop()
    ref = _alaw_decode(_pcap_rtp_payloads(PCAPS / "g711a.pcap")).astype(float)
    dumps = sorted((tmp_path / "agent").glob("dump-*-dec.wav"))
    assert dumps, list((tmp_path / "agent").iterdir())
    got = _read_wav(dumps[-1])
    assert _best_correlation(got, ref) > 0.9
    log = server.log()
    assert re.search(r"event=dtmf .*digit=1 .*source=rfc4733", log), log[-3000:]


def test_inband_dtmf_from_a_phone_is_detected(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    from cext.tones import dtmf_string
    from media.audiofile import write_wav

    digits = "159#"
    gen = dtmf_string(",," + digits + ",,,,", on=0.1, off=0.1, level=-10.0)
    chunks = []
    while True:
        buf = np.zeros(160, dtype=np.int16)
        done = gen.fill(buf)
        chunks.append(buf)
        if done:
            break
    wav = tmp_path / "dtmf.wav"
    write_wav(str(wav), np.concatenate(chunks))
    server = hotline_factory()
    phone = Baresip(tmp_path / "phone",
                    f"<sip:1001@127.0.0.1:{server.sip_port};transport=udp>"
                    ";auth_pass=pw-1001-secret;regint=300;audio_codecs=PCMU", wav)
    phone.start()
    try:
        phone.wait_log(r"200 OK", timeout=10)
        phone.command("dial", f"sip:*43@127.0.0.1:{server.sip_port}")
        phone.wait_event(lambda e: e.get("type") == "CALL_ESTABLISHED", timeout=10)
        time.sleep(len(chunks) * 0.02 + 1.0)
        phone.command("hangup")
        phone.wait_event(lambda e: e.get("type") == "CALL_CLOSED", timeout=10)
    finally:
        phone.stop()
    heard = "".join(re.findall(r"event=dtmf .*digit=(\S) .*source=inband", server.log()))
    assert heard == digits, server.log()[-3000:]
