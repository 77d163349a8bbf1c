"""Test-side RTP peers (the far end: per-packet Python is fine here) and pcap reading."""

from __future__ import annotations

import socket
import struct
import time

import numpy as np

from cext.g711 import decode, encode


def read_pcap_udp(path: str) -> list[tuple[float, bytes]]:
    """(timestamp, UDP payload) of every IPv4/UDP packet of a classic pcap file."""
    data = open(path, "rb").read()
    magic = struct.unpack_from("<I", data, 0)[0]
    e = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    linktype = struct.unpack_from(e + "I", data, 20)[0]
    off, out = 24, []
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack_from(e + "IIII", data, off)
        pkt = data[off + 16: off + 16 + incl]
        off += 16 + incl
        l2 = {1: 14, 113: 16, 101: 0}.get(linktype, 14)
        if linktype == 1 and pkt[12:14] == b"\x81\x00":
            l2 = 18
        ip = pkt[l2:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 15) * 4
        udp = ip[ihl:]
        ulen = struct.unpack_from("!H", udp, 4)[0]
        out.append((sec + frac / (1e9 if nano else 1e6), bytes(udp[8:ulen])))
    return out


def tone(freq: float, n: int, amp: float = 8000.0, start: int = 0) -> np.ndarray:
    t = np.arange(start, start + n) / 8000.0
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def dominant_freq(x: np.ndarray) -> float:
    x = x.astype(np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * 8000.0 / len(x))


def ncc_peak(signal: np.ndarray, ref: np.ndarray) -> tuple[float, int]:
    """Peak of the normalised cross-correlation of ``ref`` slid along ``signal``:
    (peak in -1..1, the sample offset of ``ref`` in ``signal``). 1.0 means ``signal``
    holds an exact (scaled) copy of ``ref``; unrelated audio stays near 0."""
    x = signal.astype(np.float64)
    r = ref.astype(np.float64)
    n = len(r)
    if len(x) < n:
        x = np.concatenate([x, np.zeros(n - len(x))])
    size = 1 << int(np.ceil(np.log2(len(x) + n)))
    num = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(r, size)), size)
    num = num[:len(x) - n + 1]
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    energy = c[n:] - c[:len(x) - n + 1]
    den = np.sqrt(np.maximum(energy, 0.0)) * np.sqrt(float(np.dot(r, r)))
    ncc = num / np.maximum(den, 1e-9 * (1.0 + den.max()))
    k = int(np.argmax(ncc))
    return float(ncc[k]), k


class Peer:
    """A UDP socket that plays one side of an RTP stream."""

    def __init__(self, pt: int = 0, codec: str = "pcmu") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.pt, self.codec = pt, codec
        self.seq, self.ts, self.ssrc = 1000, 5000, 0x1234
        self.received: list[bytes] = []

    def packet(self, payload: bytes, pt: int | None = None, marker: bool = False,
               ts: int | None = None) -> bytes:
        hdr = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | (self.pt if pt is None else pt),
                          self.seq & 0xFFFF, (self.ts if ts is None else ts) & 0xFFFFFFFF,
                          self.ssrc)
        self.seq += 1
        return hdr + payload

    def send_audio(self, pcm: np.ndarray, dest: tuple[str, int]) -> None:
        self.sock.sendto(self.packet(encode(pcm, self.codec)), dest)
        self.ts += len(pcm)

    def drain(self) -> int:
        n = 0
        while True:
            try:
                self.received.append(self.sock.recv(2048))
                n += 1
            except BlockingIOError:
                return n

    def audio(self, pt: int | None = None) -> np.ndarray:
        pt = self.pt if pt is None else pt
        parts = [decode(p[12:], self.codec) for p in self.received if (p[1] & 0x7F) == pt]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    def close(self) -> None:
        self.sock.close()


def stream(peers_and_pcm: list[tuple[Peer, np.ndarray, tuple[str, int]]], seconds: float) -> None:
    """Send each peer's signal 20 ms at a time, paced in real time, draining as we go."""
    t0 = time.monotonic()
    n = int(seconds * 50)
    for i in range(n):
        for peer, pcm, dest in peers_and_pcm:
            peer.send_audio(pcm[i * 160:(i + 1) * 160], dest)
            peer.drain()
        delay = t0 + (i + 1) * 0.02 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
