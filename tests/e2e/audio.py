"""Audio helpers for end-to-end tests: tone files for phones to send, and reading who
is heard in a recording (the amplitude of each party's tone frequency)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

TONES = {"1001": 700, "1002": 1100, "1003": 1500, "1004": 1900}
"""The tone each extension's test phone sends (the ``phones`` fixture)."""


def tone_wav(path: Path, hz: int, rate: int = 8000, seconds: float = 4.0) -> Path:
    """A mono 16-bit WAV of a tone at ``hz`` (phones loop it; at 48 kHz it is
    Chromium's fake microphone)."""
    t = np.arange(int(rate * seconds)) / rate
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def read_wav(path: Path, channel: int = 0) -> tuple[np.ndarray, int]:
    """One channel of a 16-bit WAV file and its sample rate."""
    with wave.open(str(path)) as w:
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(float)
    return pcm.reshape(-1, channels)[:, channel], rate


def levels(pcm: np.ndarray, rate: int, freqs: list[float], frame_s: float = 0.2
            ) -> np.ndarray:
    """Per frame, the amplitude of each frequency in ``freqs`` (Goertzel-like DFT bins)."""
    n = int(rate * frame_s)
    frames = len(pcm) // n
    out = np.zeros((frames, len(freqs)))
    t = np.arange(n) / rate
    win = np.hanning(n)
    for i in range(frames):
        seg = pcm[i * n:(i + 1) * n] * win
        for j, f in enumerate(freqs):
            out[i, j] = abs(np.dot(seg, np.exp(-2j * np.pi * f * t))) * 2 / win.sum()
    return out


def hears(path: Path, hz: float, last_s: float = 1.5, level: float = 500.0) -> bool:
    """Whether the last ``last_s`` seconds of a recording carry a tone at ``hz``."""
    pcm, rate = read_wav(path)
    tail = pcm[-int(rate * last_s):]
    lv = levels(tail, rate, [hz])
    return bool(np.median(lv[:, 0]) > level)


def hears_during(path: Path, hz: float, start_s: float, end_s: float,
                 level: float = 500.0, channel: int = 0) -> bool:
    """Whether a recording (its ``channel``) carries a tone at ``hz`` between
    ``start_s`` and ``end_s`` seconds from its start."""
    pcm, rate = read_wav(path, channel)
    seg = pcm[int(rate * start_s):int(rate * end_s)]
    assert len(seg) >= rate * 0.4, f"{path}: {len(pcm) / rate:.1f} s, no {start_s}-{end_s} s"
    lv = levels(seg, rate, [hz])
    return bool(np.median(lv[:, 0]) > level)


def tone_pcap(path: Path, hz: int, seconds: float, *, pt: int = 8) -> Path:
    """A pcap of one RTP stream (PCMA by default, 20 ms packets) carrying a tone at
    ``hz``: SIPp's ``play_pcap_audio`` sends its payloads (tests/e2e/peers.py)."""
    import struct

    from cext import g711

    n = int(seconds * 50)
    t = np.arange(160 * n) / 8000
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    payload = g711.encode(pcm, "pcma" if pt == 8 else "pcmu")
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i in range(n):
        rtp = struct.pack("!BBHII", 0x80, pt, i & 0xFFFF, 160 * i, 0x1234ABCD) \
            + payload[160 * i:160 * (i + 1)]
        udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        sec, usec = divmod(i * 20000, 1_000_000)
        out += struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))
    return path
