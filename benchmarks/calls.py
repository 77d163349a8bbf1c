"""IVR calls end to end: how many calls per second, and how many at once, one box takes.

Issue 4 asks for the two figures an operator sizes a site by: the highest sustained rate
of IVR calls with no failed call, and the concurrent-call ceiling with every call
recorded, each with the server's CPU per call. ``sip_cps.py`` measures SIP setup alone
(echo, no prompt, no recording); this benchmark runs the whole IVR path: a real
``hotline serve`` with a site that records every call, SIPp as the carrier, a prompt, a
RFC 4733 digit, a second prompt and the server's BYE.

Phase 1, call rate (``scenarios/ivr_digit.xml``): the caller talks (g711a.pcap) during a
1.5 s greeting, presses 1, key 1 plays a 0.5 s prompt and hangs up. The offered rate
steps up until a step has a failed call or falls short of its rate; the highest step
with 0 failed calls is the sustained rate.

Phase 2, concurrent calls (``scenarios/ivr_hold.xml``): the caller presses 2 and hears a
long notice (``--hold`` seconds) while talking all along; N such calls are set up and
held together, N stepping up until a call fails or the audio suffers.

Audio is checked, not assumed: every call's media port is a socket of an RTP sink (a
process of its own, one :class:`cext.net.NetIO`), which times each packet hotline sends.
A packet is *lost* when its sequence number never arrives; a call is *late* when its
audio falls more than ``--late-ms`` behind real time (20 ms per packet from its earliest
one), and what falls behind beyond that is audio a 60 ms jitter buffer cannot play in
time (*missed*). Recordings are checked in hotline.db: one per call, closed, as long as
the call. Server CPU is user+system time from /proc of the control process and its
children (media workers, the transcoder), less the idle server's.

    .venv/bin/python benchmarks/calls.py                 # 7-8 minutes
    .venv/bin/python benchmarks/calls.py --quick         # ~1 minute smoke run
    .venv/bin/python benchmarks/calls.py --rates 20,40 --seconds 10 --concurrency 100,200

SIPp, the sink and hotline share the machine: on 2 cores the load generator takes a
good part of the CPU, so the figures are what this box does with its own load on it.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import wave
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cext.net import NetIO, RecvBatch, monotonic_ms  # noqa: E402
from tests.e2e.peers import HotlineProcess, free_port, sipp_bin, write_site  # noqa: E402

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
DEBIAN_PCAPS = Path("/usr/share/sip-tester")
PCAPS = ("g711a.pcap", "dtmf_2833_1.pcap", "dtmf_2833_2.pcap")
TICKS = os.sysconf("SC_CLK_TCK")
SERVICE = "5000"  # the IVR's number
GREETING_S = 1.5
BYE_S = 0.5
MEDIA_IP = "127.0.0.3"  # SIPp's media address and the sink's
SINK_BASE = 20000  # SIPp -mp; call n's port is SINK_BASE + 4 (n - 1) % 10000 + 4
SINK_SLOTS = 2500  # SIPp's auto media port wraps after 2500 calls
PTIME_MS = 20.0
CPU_LEGEND = ("## CPU % of one core: srv = hotline (control + workers + transcoder), "
              "sipp = SIPp, rest = the machine's busy time not charged to hotline, SIPp or "
              "the RTP sink (kernel network work, other programs)")
AUDIO_LEGEND = ("## hotline's audio as the caller got it: lost = packets never received; "
                "late = calls whose audio fell over {late:g} ms behind real time; missed % "
                "= audio a {late:g} ms jitter buffer could not play in time")

SITE = """\
[server]
sip = ["udp:127.0.0.1:{sip}"]
http = ""
rtp_ports = [40000, 59999]
media_workers = {workers}
data_dir = "{data}"

[logging]
level = "warning"

[[trunks]]
name = "carrier"
host = "127.0.0.1"
port = {trunk_port}
allow = ["127.0.0.0/8"]
options_interval = 0

[recording]
enabled = true
format = "{fmt}"

# Prompts by absolute path: relative names are not looked up under DATA_DIR/prompts.
[ivr.bench]
greeting = "{prompts}/greeting.wav"
menu = {{ "1" = "play:{prompts}/bye.wav", "2" = "play:{prompts}/notice.wav" }}
timeout = 10
retries = 0

[[routes]]
match = "{service}"
to = "ivr:bench"
"""


# -- inputs: prompts and the caller's audio -----------------------------------------------
def write_prompt(path: Path, seconds: float, f0: float) -> None:
    """A speech-like prompt: harmonics of ``f0`` under a 4 Hz syllable envelope, 8 kHz."""
    t = np.arange(int(seconds * 8000)) / 8000.0
    voice = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t) ** 2
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    samples = (6000 * voice * envelope * fade).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(samples.tobytes())


def pcap_payloads(path: Path) -> bytes:
    """The RTP payloads of an Ethernet/IPv4/UDP capture, concatenated."""
    data = path.read_bytes()
    off, out = 24, bytearray()
    while off + 16 <= len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        pkt = data[off + 16 : off + 16 + incl]
        off += 16 + incl
        ihl = (pkt[14] & 0x0F) * 4
        rtp = pkt[14 + ihl + 8 :]
        if len(rtp) > 12:
            out += rtp[12 + 4 * (rtp[0] & 0x0F) :]
    return bytes(out)


def write_caller_pcap(path: Path, seconds: float, speech: bytes) -> None:
    """``seconds`` of PCMA RTP (20 ms packets, one SSRC) looping ``speech``, as a pcap
    that SIPp's ``play_pcap_audio`` replays (it rewrites addresses and ports)."""
    n = int(seconds * 1000 / PTIME_MS)
    loop = speech * (n * 160 // max(1, len(speech)) + 2)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i in range(n):
        rtp = struct.pack("!BBHII", 0x80, 8 | (0x80 if i == 0 else 0), (4000 + i) & 0xFFFF,
                          160 * i, 0x5EED0001) + loop[i * 160 : i * 160 + 160]
        udp = struct.pack("!HHHH", 10000, 20000, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                         bytes((10, 0, 0, 1)), bytes((10, 0, 0, 2))) + udp
        frame = bytes(12) + b"\x08\x00" + ip
        us = i * int(PTIME_MS * 1000)
        out.append(struct.pack("<IIII", 1_000_000_000 + us // 1_000_000, us % 1_000_000,
                               len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))


# -- the RTP sink ---------------------------------------------------------------------------
@dataclass
class AudioStats:
    """What the sink heard of hotline's outgoing streams in one step."""

    streams: int = 0
    """Calls (port + SSRC) that sent at least one packet."""
    received: int = 0
    lost: int = 0
    """Sequence numbers that never arrived."""
    audio_ms: float = 0.0
    """Audio the streams carried (20 ms per packet, lost ones included)."""
    missed_ms: float = 0.0
    """Audio a listener with a ``late_ms`` jitter buffer cannot have played in time:
    per stream, how far its packets fell behind real time at worst, less the buffer."""
    late_streams: int = 0
    """Streams that fell more than ``late_ms`` behind real time."""
    max_late_ms: float = 0.0
    """The furthest any packet was behind its stream's best-case schedule."""
    short: int = 0
    """Streams shorter than ``min_s`` (a call that heard less than its prompts)."""
    answered_per_s: float = 0.0
    """Rate at which streams started (calls answered), first to last."""
    answer_window: tuple[float, float] | None = None
    """Monotonic seconds from the first call answered to the last."""
    peak: int = 0
    """Most streams live at one time."""
    full_window: tuple[float, float] | None = None
    """Monotonic seconds during which at least ``full`` streams were live."""

    @property
    def bad_pct(self) -> float:
        """Percent of the audio lost or too late."""
        bad = PTIME_MS * self.lost + self.missed_ms
        return 100.0 * bad / self.audio_ms if self.audio_ms else 0.0


def analyse(slot: npt.NDArray[np.int64], ssrc: npt.NDArray[np.int64],
            seq: npt.NDArray[np.int64], arr: npt.NDArray[np.float64], *, late_ms: float,
            min_s: float, full: int) -> AudioStats:
    """Per-stream loss and lateness of packets (``arr``: arrival, monotonic ms).

    A stream's schedule is 20 ms per sequence number from its earliest packet (hotline
    sends every tick, and its RTP timestamps advance 160 per packet, so a tick it skips
    under load delays the rest of the prompt rather than dropping a frame): how far a
    packet is behind that schedule is its lateness, and a stream's worst lateness less
    the jitter buffer is audio its listener had to conceal.
    """
    st = AudioStats()
    if not len(arr):
        return st
    key = (slot << 32) | ssrc
    order = np.lexsort((arr, key))
    key, seq, arr = key[order], seq[order], arr[order]
    new = np.ones(len(key), bool)
    new[1:] = key[1:] != key[:-1]
    step = np.zeros(len(key), np.int64)
    step[1:] = (seq[1:] - seq[:-1]) & 0xFFFF
    step[new | (step > 0x8000)] = 0  # stream starts; reordered or repeated packets
    starts = np.flatnonzero(new)
    group = np.cumsum(new) - 1
    cs = np.cumsum(step)
    index = cs - cs[starts][group]  # packet number in its stream
    delay = arr - PTIME_MS * index
    behind = delay - np.minimum.reduceat(delay, starts)[group]
    worst = np.maximum.reduceat(behind, starts)
    ends = np.append(starts[1:], len(key)) - 1
    first, last = arr[starts], arr[ends]
    st.streams = len(starts)
    st.received = len(key)
    st.lost = int(np.sum(step[step > 1] - 1))
    st.audio_ms = float(PTIME_MS * np.sum(index[ends] + 1))
    st.missed_ms = float(np.sum(np.maximum(0.0, worst - late_ms)))
    st.late_streams = int(np.count_nonzero(worst > late_ms))
    st.max_late_ms = float(worst.max())
    st.short = int(np.count_nonzero(last - first < min_s * 1000.0))
    if st.streams > 1:
        span = (first.max() - first.min()) / 1000.0
        st.answered_per_s = (st.streams - 1) / span if span > 0 else 0.0
        st.answer_window = (first.min() / 1000.0, first.max() / 1000.0)
    # live streams over time: +1 at a stream's first packet, -1 after its last
    t = np.concatenate([first, last])
    d = np.concatenate([np.ones_like(first), -np.ones_like(last)])
    o = np.lexsort((-d, t))
    t, live = t[o], np.cumsum(d[o])
    st.peak = int(live.max())
    if full:
        at = np.flatnonzero(live >= full)
        if len(at):
            end = t[at[-1] + 1] if at[-1] + 1 < len(t) else t[at[-1]]
            st.full_window = (t[at[0]] / 1000.0, end / 1000.0)
    return st


class RtpSink:
    """One UDP socket per SIPp media port (``MEDIA_IP``), in a process of its own (so
    that nothing here delays its timestamps), drained with ``NetIO.poll`` (recvmmsg, no
    Python per packet). It keeps slot, SSRC, sequence number and arrival time of every
    RTP packet until :meth:`take` asks for the statistics."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.conn, child = mp.Pipe()
        self.proc = mp.Process(target=self._main, args=(child, slots), name="rtp-sink",
                               daemon=True)

    def start(self) -> None:
        self.proc.start()
        ok = self.conn.recv()
        if ok is not True:
            raise SystemExit(f"RTP sink: {ok}")

    def take(self, *, late_ms: float, min_s: float = 0.0, full: int = 0,
             dump: Path | None = None) -> AudioStats:
        """Statistics of everything received since the last call (which is forgotten)."""
        self.conn.send({"late_ms": late_ms, "min_s": min_s, "full": full, "dump": dump})
        st = self.conn.recv()
        assert isinstance(st, AudioStats), st
        return st

    def close(self) -> None:
        if self.proc.is_alive():
            self.conn.send(None)
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()

    @staticmethod
    def _main(conn: Connection, slots: int) -> None:
        net = NetIO(slots)
        socks: list[socket.socket] = []
        try:
            for k in range(slots):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((MEDIA_IP, SINK_BASE + 4 * k + 4))
                s.setblocking(False)
                socks.append(s)
                net.add(k, s.fileno())
        except OSError as exc:
            conn.send(f"cannot bind {MEDIA_IP}:{SINK_BASE + 4 * len(socks) + 4}: {exc}")
            return
        conn.send(True)
        b = RecvBatch(8192, 16)
        parts: list[tuple[npt.NDArray[np.int32], npt.NDArray[np.uint32],
                          npt.NDArray[np.uint16], npt.NDArray[np.uint32],
                          npt.NDArray[np.uint16], npt.NDArray[np.float64]]] = []
        while True:
            n = b.poll(net, monotonic_ms() + 20.0)
            if n:
                p = b.packets[:n]
                pt = p[:, 1] & 0x7F
                rtp = ((p[:, 0] >> 6) == 2) & (b.lengths[:n] >= 12) & ((pt < 72) | (pt > 76))
                p = p[rtp]
                seq = (p[:, 2].astype(np.uint16) << 8) | p[:, 3]
                ssrc = p[:, 8:12].copy().view(">u4").ravel().astype(np.uint32)
                ts = p[:, 4:8].copy().view(">u4").ravel().astype(np.uint32)
                parts.append((b.slots[:n][rtp].copy(), ssrc, seq.astype(np.uint16), ts,
                              b.src_port[:n][rtp].copy(), b.arrival_ms[:n][rtp].copy()))
            if not conn.poll():
                continue
            req = conn.recv()
            if req is None:
                return
            cols = [np.concatenate([x[i] for x in parts]) if parts else np.zeros(0)
                    for i in range(6)]
            parts = []
            if req["dump"] is not None:
                np.savez(req["dump"], slot=cols[0], ssrc=cols[1], seq=cols[2], ts=cols[3],
                         src_port=cols[4], arrival_ms=cols[5])
            conn.send(analyse(cols[0].astype(np.int64), cols[1].astype(np.int64),
                              cols[2].astype(np.int64), cols[5].astype(np.float64),
                              late_ms=req["late_ms"], min_s=req["min_s"], full=req["full"]))


# -- server CPU -----------------------------------------------------------------------------
def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass
class Cpu:
    """CPU seconds of the server: control process (with reaped helpers such as espeak),
    media workers, and other children (the low-priority transcoder)."""

    control: float = 0.0
    media: float = 0.0
    other: float = 0.0

    @property
    def total(self) -> float:
        return self.control + self.media + self.other

    def __sub__(self, o: Cpu) -> Cpu:
        return Cpu(self.control - o.control, self.media - o.media, self.other - o.other)

    def __mul__(self, k: float) -> Cpu:
        return Cpu(self.control * k, self.media * k, self.other * k)


def server_cpu(pid: int) -> Cpu:
    cpu = Cpu()
    f = _stat(pid)
    if f is None:
        return cpu
    cpu.control = sum(int(x) for x in f[11:15]) / TICKS  # utime stime cutime cstime
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        c = _stat(int(entry))
        if c is None or int(c[1]) != pid:
            continue
        secs = sum(int(x) for x in c[11:15]) / TICKS
        if "media.worker" in _cmdline(int(entry)):
            cpu.media += secs
        else:
            cpu.other += secs
    return cpu


def children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def proc_cpu(pid: int | None) -> float:
    """User + system CPU seconds of one process (0 once it is gone)."""
    f = _stat(pid) if pid else None
    return (int(f[11]) + int(f[12])) / TICKS if f else 0.0


@dataclass
class Sample:
    """CPU seconds used so far, at monotonic time ``t``: hotline, SIPp, the sink, and the
    whole machine (busy and total, all cores) to see what else ran."""

    t: float
    server: Cpu
    sipp: float
    sink: float
    busy: float
    total: float

    def __sub__(self, o: Sample) -> Sample:
        return Sample(self.t - o.t, self.server - o.server, self.sipp - o.sipp,
                      self.sink - o.sink, self.busy - o.busy, self.total - o.total)

    @property
    def rest(self) -> float:
        """Machine CPU not charged to hotline, SIPp or the sink: kernel network work
        done outside their time, and other programs."""
        return self.busy - self.server.total - self.sipp - self.sink


def take_sample(server_pid: int, sipp_pid: int | None, sink_pid: int | None) -> Sample:
    f = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    ticks = [int(x) for x in f]  # user nice system idle iowait irq softirq steal
    total = sum(ticks) / TICKS
    busy = total - (ticks[3] + ticks[4]) / TICKS
    return Sample(time.monotonic(), server_cpu(server_pid), proc_cpu(sipp_pid),
                  proc_cpu(sink_pid), busy, total)


# -- running SIPp ---------------------------------------------------------------------------
@dataclass
class SippRun:
    ok: int
    failed: int
    retrans: int
    wall: float
    cpu: float
    """SIPp's own CPU seconds."""
    samples: list[Sample] = field(default_factory=list)
    """Every 0.25 s while SIPp ran."""
    errors: str = ""


def _sipp_counter(text: str, name: str) -> int | None:
    m = re.findall(rf"{name}\s*\|\s*\d+\s*\|\s*(\d+)", text)
    return int(m[-1]) if m else None


def run_sipp(scenario: Path, args: list[str], cwd: Path, calls: int, timeout: float,
             server_pid: int, sink_pid: int | None) -> SippRun:
    """Run SIPp to completion, sampling CPU every 0.25 s meanwhile."""
    cwd.mkdir(parents=True, exist_ok=True)
    cmd = [sipp_bin(), "-sf", str(scenario), *args, "-nostdin", "-trace_screen",
           "-trace_err", "-max_recv_loops", "10000", "-max_sched_loops", "10000"]
    cpu0 = children_cpu()
    t0 = time.monotonic()
    samples = [take_sample(server_pid, None, sink_pid)]
    with open(cwd / "sipp.out", "wb") as out:
        proc = subprocess.Popen(cmd, cwd=str(cwd), stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            if time.monotonic() - t0 > timeout:
                proc.kill()
            time.sleep(0.25)
            samples.append(take_sample(server_pid, proc.pid, sink_pid))
    wall = time.monotonic() - t0
    text = (cwd / "sipp.out").read_text(errors="replace")
    screens = sorted(cwd.glob("*_screen.log"))
    if screens:
        text += screens[-1].read_text(errors="replace")
    ok = _sipp_counter(text, "Successful call") or 0
    m = re.findall(r"INVITE ---------->\s+\d+\s+(\d+)", text)
    errors = "".join(p.read_text(errors="replace") for p in cwd.glob("*_errors.log"))
    return SippRun(ok=ok, failed=calls - ok, retrans=int(m[-1]) if m else 0, wall=wall,
                   cpu=children_cpu() - cpu0, samples=samples, errors=errors)


def between(samples: list[Sample], t0: float, t1: float) -> Sample:
    """CPU used between the samples nearest to ``t0`` and ``t1`` (``t``: the time between)."""
    times = np.array([s.t for s in samples])
    i = int(np.argmin(np.abs(times - t0)))
    j = int(np.argmin(np.abs(times - t1)))
    return samples[j] - samples[i]


# -- the server's side ----------------------------------------------------------------------
def query(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return []
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def drain(db: Path, tag: str, fmt: str, limit: float = 90.0) -> tuple[int, int, float]:
    """Wait until the step's recordings are closed (and transcoded, unless WAV): returns
    (recordings, still open, seconds waited)."""
    open_states = ("live",) if fmt == "wav" else ("live", "done")
    marks = ",".join("?" * len(open_states))
    t0 = time.monotonic()
    while True:
        rows = query(db, f"SELECT state IN ({marks}), COUNT(*) FROM recordings "
                         "WHERE call_id LIKE ? GROUP BY 1", *open_states, tag + "-%")
        counts = {bool(k): int(str(v)) for k, v in rows}
        pending = counts.get(True, 0)
        if not pending or time.monotonic() - t0 > limit:
            return sum(counts.values()), pending, time.monotonic() - t0
        time.sleep(0.25)


def short_recordings(db: Path, tag: str, min_s: float) -> int:
    rows = query(db, "SELECT COUNT(*) FROM recordings WHERE call_id LIKE ? AND "
                     "(seconds IS NULL OR seconds < ?)", tag + "-%", min_s)
    return int(str(rows[0][0])) if rows else 0


# -- the benchmark ----------------------------------------------------------------------------
@dataclass
class RateRow:
    rate: int
    calls: int
    run: SippRun
    cpu: Cpu
    """Server CPU of the step above the idle baseline (all the calls' work)."""
    busy: Sample | None
    """CPU used while calls were being answered (None if that was under 2 s)."""
    audio: AudioStats
    recordings: int
    pending: int

    @property
    def clean(self) -> bool:
        """No failed call, every call heard its prompts, every recording closed."""
        return (self.run.failed == 0 and self.pending == 0 and self.audio.short == 0
                and self.audio.streams >= self.calls)

    @property
    def sustained(self) -> bool:
        return self.clean and self.audio.answered_per_s >= 0.9 * self.rate


@dataclass
class HoldRow:
    target: int
    rate: float
    run: SippRun
    audio: AudioStats
    full: Sample | None
    """CPU used while all the calls were live (None if that was under 2 s)."""
    recordings: int
    short_recs: int

    def clean(self, max_loss: float) -> bool:
        return (self.run.failed == 0 and self.audio.bad_pct <= max_loss
                and self.audio.short == 0 and self.short_recs == 0)


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.data = tmp / "data"
        self.media = tmp / "media"  # scenario copies + pcaps, so SIPp finds them together
        self.sip = free_port()
        self.sipp_port = free_port(host="127.0.0.2")
        self.server: HotlineProcess | None = None
        self.sink: RtpSink | None = None
        self.idle = Cpu()
        """Server CPU per second with no call (the workers' 20 ms ticks)."""
        self.step = 0
        self.t_start = time.monotonic()

    # setup
    def prepare(self) -> None:
        pcap_dir = Path(self.args.pcap_dir)
        missing = [p for p in PCAPS if not (pcap_dir / p).is_file()]
        if missing:
            raise SystemExit(f"missing {', '.join(missing)} in {pcap_dir} (Debian sip-tester)")
        self.media.mkdir(parents=True)
        for name in PCAPS:
            (self.media / name).symlink_to(pcap_dir / name)
        for name in ("ivr_digit.xml", "ivr_hold.xml"):
            shutil.copy(SCENARIOS / name, self.media / name)
        write_caller_pcap(self.media / "caller.pcap", self.args.hold + 10,
                          pcap_payloads(pcap_dir / "g711a.pcap"))
        prompts = self.data / "prompts"
        write_prompt(prompts / "greeting.wav", GREETING_S, 140.0)
        write_prompt(prompts / "bye.wav", BYE_S, 180.0)
        write_prompt(prompts / "notice.wav", self.args.hold, 120.0)
        cfg = write_site(self.tmp / "site.toml", SITE.format(
            sip=self.sip, workers=self.args.workers, data=self.data, fmt=self.args.format,
            trunk_port=free_port(), prompts=prompts, service=SERVICE))
        self.sink = RtpSink(SINK_SLOTS)  # forked before the server's pipes exist
        self.sink.start()
        self.server = HotlineProcess(config=cfg, data_dir=self.data, sip_port=self.sip)
        self.server.start()

    @property
    def pid(self) -> int:
        assert self.server is not None and self.server.proc is not None
        return self.server.proc.pid

    def elapsed(self) -> float:
        return time.monotonic() - self.t_start

    def sipp(self, scenario: str, rate: float, calls: int, limit: int, timeout: float,
             extra: list[str] | None = None) -> tuple[SippRun, str]:
        """Run one step; its calls' Call-IDs (and so their recordings) start with the
        returned tag."""
        self.step += 1
        tag = f"s{self.step}"
        args = [f"127.0.0.1:{self.sip}", "-s", SERVICE, "-i", "127.0.0.2",
                "-p", str(self.sipp_port), "-mi", MEDIA_IP, "-mp", str(SINK_BASE),
                "-r", f"{rate:g}", "-m", str(calls), "-l", str(limit),
                "-cid_str", f"{tag}-%u-%p@%s", "-timeout", f"{int(timeout)}s",
                *(extra or [])]
        assert self.sink is not None
        run = run_sipp(self.media / scenario, args, self.tmp / tag, calls, timeout + 30,
                       self.pid, self.sink.proc.pid)
        dump = self.dump(tag + "_cpu")
        if dump is not None:
            cols = ("t", "control", "media", "other", "sipp", "sink", "busy", "total")
            rows = [(x.t, x.server.control, x.server.media, x.server.other, x.sipp, x.sink,
                     x.busy, x.total) for x in run.samples]
            np.savez(dump, **dict(zip(cols, np.array(rows).T, strict=True)))
        return run, tag

    def warm_up(self) -> None:
        """A few calls first (prompt cache, worker code paths, SQLite pages), then the
        idle baseline."""
        assert self.sink is not None
        run, tag = self.sipp("ivr_digit.xml", 2, 4, 10, 30)
        drain(self.data / "hotline.db", tag, self.args.format)
        self.sink.take(late_ms=self.args.late_ms)
        if run.failed:
            raise SystemExit(f"warm-up calls failed ({run.failed}/4): SIPp said\n"
                             f"{run.errors[-2000:]}\nserver log:\n{self.log_tail()}")
        time.sleep(1.0)
        c0, t0 = server_cpu(self.pid), time.monotonic()
        time.sleep(3.0)
        self.idle = (server_cpu(self.pid) - c0) * (1.0 / (time.monotonic() - t0))

    def dump(self, tag: str) -> Path | None:
        if not self.args.dump:
            return None
        Path(self.args.dump).mkdir(parents=True, exist_ok=True)
        return Path(self.args.dump) / f"{tag}.npz"

    def log_tail(self) -> str:
        return self.server.log()[-3000:] if self.server else ""

    # phase 1
    def rate_phase(self, budget: float) -> list[RateRow]:
        assert self.sink is not None
        rows: list[RateRow] = []
        min_s = GREETING_S + BYE_S - 0.3
        for rate in self.args.rate_list:
            if self.elapsed() + self.args.seconds + 12 > budget:
                print(f"# {rate}/s and up skipped: time budget", flush=True)
                break
            calls = max(1, round(rate * self.args.seconds))
            run, tag = self.sipp("ivr_digit.xml", rate, calls, max(50, rate * 8),
                                 self.args.seconds + 30)
            recs, pending, _ = drain(self.data / "hotline.db", tag, self.args.format)
            time.sleep(0.3)
            run.samples.append(take_sample(self.pid, None, self.sink.proc.pid))
            whole = run.samples[-1] - run.samples[0]
            cpu = whole.server - self.idle * whole.t
            audio = self.sink.take(late_ms=self.args.late_ms, min_s=min_s,
                                   dump=self.dump(tag))
            busy: Sample | None = None
            if audio.answer_window is not None:
                busy = between(run.samples, audio.answer_window[0] + 1.0,
                               audio.answer_window[1])
                busy = busy if busy.t >= 2.0 else None
            row = RateRow(rate, calls, run, cpu, busy, audio, recs, pending)
            rows.append(row)
            print_rate_row(row, len(rows) == 1)
            sipp_errors(run)
            if not row.sustained:
                break
        return rows

    # phase 2
    def hold_phase(self, best_rate: float) -> list[HoldRow]:
        assert self.sink is not None
        rows: list[HoldRow] = []
        hold = self.args.hold
        for n in self.args.concurrency_list:
            rate = self.args.hold_rate or max(
                5.0, min(best_rate * self.args.hold_rate_share, n / self.args.ramp))
            ramp = n / rate
            if self.elapsed() + ramp + hold + 15 > self.args.budget:
                print(f"# {n} calls and up skipped: time budget", flush=True)
                break
            run, tag = self.sipp(
                "ivr_hold.xml", rate, n, n, ramp + hold + 40,
                ["-recv_timeout", str(int((hold + 15) * 1000))])
            recs, _, _ = drain(self.data / "hotline.db", tag, self.args.format)
            short_recs = short_recordings(self.data / "hotline.db", tag, hold)
            audio = self.sink.take(late_ms=self.args.late_ms, min_s=hold, full=n,
                                   dump=self.dump(tag))
            full: Sample | None = None
            if audio.full_window is not None:
                full = between(run.samples, audio.full_window[0] + 0.5,
                               audio.full_window[1] - 0.5)
                full = full if full.t >= 2.0 else None
            row = HoldRow(n, rate, run, audio, full, recs, short_recs)
            rows.append(row)
            print_hold_row(row, len(rows) == 1, self.idle)
            sipp_errors(run)
            if not row.clean(self.args.max_audio_loss):
                break
        return rows

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()
        if self.server is not None:
            self.server.stop()


# -- output ---------------------------------------------------------------------------------
def _shares(s: Sample | None) -> dict[str, str]:
    """CPU % of one core over a window, formatted, or dashes without a window."""
    if s is None:
        return dict.fromkeys(("server", "media", "sipp", "rest"), "-")
    return {"server": f"{100 * s.server.total / s.t:.0f}",
            "media": f"{100 * s.server.media / s.t:.0f}",
            "sipp": f"{100 * s.sipp / s.t:.0f}", "rest": f"{100 * s.rest / s.t:.0f}"}


def print_rate_row(r: RateRow, header: bool) -> None:
    if header:
        print(f"{'offered/s':>9} {'calls':>6} {'failed':>6} {'retx':>5} {'answered/s':>10} "
              f"{'ctl ms':>7} {'media ms':>8} {'other ms':>8} {'total ms':>8} {'srv CPU%':>8} "
              f"{'sipp %':>6} {'rest %':>6} {'recs':>6} {'lost':>5} {'late':>5} "
              f"{'missed %':>8} {'max late':>8}")
    n = max(1, r.run.ok)
    a, c = r.audio, _shares(r.busy)
    print(f"{r.rate:>9} {r.calls:>6} {r.run.failed:>6} {r.run.retrans:>5} "
          f"{a.answered_per_s:>10.1f} {1e3 * r.cpu.control / n:>7.2f} "
          f"{1e3 * r.cpu.media / n:>8.2f} {1e3 * r.cpu.other / n:>8.2f} "
          f"{1e3 * r.cpu.total / n:>8.2f} {c['server']:>8} {c['sipp']:>6} {c['rest']:>6} "
          f"{r.recordings:>6} {a.lost:>5} {a.late_streams:>5} {a.bad_pct:>8.2f} "
          f"{a.max_late_ms:>6.0f}ms", flush=True)


def print_hold_row(r: HoldRow, header: bool, idle: Cpu) -> None:
    if header:
        print(f"{'calls':>6} {'setup/s':>7} {'failed':>6} {'retx':>5} {'peak live':>9} "
              f"{'full s':>6} {'srv CPU%':>8} {'media %':>7} {'ms/call-s':>9} "
              f"{'sipp %':>6} {'rest %':>6} {'recs':>5} {'short':>5} {'packets':>9} "
              f"{'lost':>6} {'late':>5} {'missed %':>8} {'max late':>8}")
    a, f, c = r.audio, r.full, _shares(r.full)
    per = f"{call_second_ms(r, idle):>9.2f}" if f is not None else f"{'-':>9}"
    print(f"{r.target:>6} {r.rate:>7.0f} {r.run.failed:>6} {r.run.retrans:>5} {a.peak:>9} "
          f"{f.t if f else 0.0:>6.1f} {c['server']:>8} {c['media']:>7} {per} "
          f"{c['sipp']:>6} {c['rest']:>6} "
          f"{r.recordings:>5} {r.short_recs:>5} {a.received:>9} {a.lost:>6} "
          f"{a.late_streams:>5} {a.bad_pct:>8.2f} {a.max_late_ms:>6.0f}ms", flush=True)


def sipp_errors(run: SippRun) -> None:
    """The end of SIPp's error log, after a step with failed calls."""
    if run.failed and run.errors.strip():
        lines = run.errors.strip().splitlines()[-6:]
        print("\n".join("#   sipp: " + line[:160] for line in lines), flush=True)


def call_second_ms(r: HoldRow, idle: Cpu) -> float:
    """Server CPU ms per second of one held call, above the idle baseline."""
    assert r.full is not None
    f = r.full
    return 1e3 * (f.server.total - idle.total * f.t) / (r.target * f.t)


def log_problems(log: str) -> list[str]:
    """Warning and error events in the server log, most frequent first."""
    events: Counter[str] = Counter()
    for line in log.splitlines():
        if "level=warning" in line or "level=error" in line or "Traceback" in line:
            m = re.search(r"event=(\"[^\"]*\"|\S+)", line)
            events[m.group(1) if m else line[:120]] += 1
    return [f"{n}x {e}" for e, n in events.most_common(8)]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rates", default="10,20,40,60,80,100,120,150,200",
                    help="offered call rates of phase 1, per second (stops at the first "
                         "step with a failed call)")
    ap.add_argument("--seconds", type=float, default=15.0,
                    help="seconds of calls per rate step")
    ap.add_argument("--concurrency", default="50,100,200,300,400,500,600,800,1000",
                    help="simultaneous calls of phase 2 (stops at the first step with a "
                         "failed call or audio loss)")
    ap.add_argument("--hold", type=float, default=30.0,
                    help="seconds of the notice each phase-2 call listens to")
    ap.add_argument("--ramp", type=float, default=10.0,
                    help="phase 2 sets its calls up in about this many seconds ...")
    ap.add_argument("--hold-rate-share", type=float, default=0.5,
                    help="... at no more than this share of phase 1's sustained rate")
    ap.add_argument("--hold-rate", type=float, default=0.0,
                    help="fixed setup rate for phase 2 (overrides the two above)")
    ap.add_argument("--late-ms", type=float, default=60.0,
                    help="a packet this far behind its schedule counts as lost audio")
    ap.add_argument("--max-audio-loss", type=float, default=0.1,
                    help="percent of lost + late packets a phase-2 step may have")
    ap.add_argument("--format", choices=("wav", "opus", "mp3"), default="wav",
                    help="[recording] format (opus/mp3: CPU includes the transcode)")
    ap.add_argument("--workers", type=int, default=0, help="media workers (0: one per core)")
    ap.add_argument("--budget", type=float, default=600.0,
                    help="seconds: steps that would end past it are skipped")
    ap.add_argument("--skip-rate", action="store_true", help="phase 2 only")
    ap.add_argument("--skip-hold", action="store_true", help="phase 1 only")
    ap.add_argument("--quick", action="store_true", help="a ~1 minute smoke run")
    ap.add_argument("--pcap-dir", default=str(DEBIAN_PCAPS),
                    help="where SIPp's g711a.pcap and dtmf_2833_*.pcap are")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--dump", metavar="DIR",
                    help="save each step's RTP arrivals (slot, ssrc, seq, ts, src_port, "
                         "arrival_ms) as DIR/sN.npz and its CPU samples as DIR/sN_cpu.npz")
    args = ap.parse_args()
    if args.quick:
        args.rates, args.seconds = "5,20", 8.0
        args.concurrency, args.hold, args.ramp = "20,60", 10.0, 4.0
        args.budget = 120.0
    args.rate_list = _ints(args.rates)
    args.concurrency_list = [n for n in _ints(args.concurrency) if n <= SINK_SLOTS]
    # phase 1 gets up to 45 % of the time budget when phase 2 runs too
    rate_budget = args.budget * (1.0 if args.skip_hold else 0.45)

    tmp = Path(tempfile.mkdtemp(prefix="hotline-calls-"))
    bench = Bench(args, tmp)
    cores = os.cpu_count() or 1
    workers = args.workers or cores
    rate_rows: list[RateRow] = []
    hold_rows: list[HoldRow] = []
    log = ""
    try:
        bench.prepare()
        bench.warm_up()
        idle = bench.idle
        print(f"# calls: SIPp (UDP, PCMA, RFC 4733) -> hotline IVR; recording on, "
              f"format {args.format} (stereo, caller left); {workers} media workers; "
              f"{cores} cores shared with SIPp and the RTP sink; server log level warning")
        print(f"# idle server: {100 * idle.total:.1f} % of a core (control "
              f"{100 * idle.control:.1f}, media {100 * idle.media:.1f}); CPU per call below "
              "is above this baseline")
        if not args.skip_rate:
            print(f"\n## phase 1: call rate. Each call: answer, {GREETING_S:g} s greeting "
                  f"(caller talks), digit 1, {BYE_S:g} s prompt, server BYE; "
                  f"{args.seconds:g} s of calls per step.")
            print("## ms = server CPU per call above idle (ctl: control process; media: "
                  "workers; other: transcoder); srv CPU% while answering; retx: INVITE "
                  "retransmissions")
            print(CPU_LEGEND)
            print(AUDIO_LEGEND.format(late=args.late_ms))
            rate_rows = bench.rate_phase(rate_budget)
        best = max((r.rate for r in rate_rows if r.sustained), default=0)
        if not args.skip_hold:
            print(f"\n## phase 2: concurrent calls. Each call: greeting, digit 2, a "
                  f"{args.hold:g} s notice while the caller talks (PCMA both ways, "
                  "recorded), server BYE.")
            print("## full s: seconds all calls were live, srv CPU% over them; ms/call-s: "
                  "server CPU per second of a call above idle; short: recordings shorter "
                  "than the notice")
            print(CPU_LEGEND)
            print(AUDIO_LEGEND.format(late=args.late_ms))
            hold_rows = bench.hold_phase(float(best or 20))
    finally:
        bench.close()
        if bench.server is not None:
            log = bench.server.log_path.read_text(errors="replace") \
                if bench.server.log_path.is_file() else ""
        if args.keep:
            print(f"# kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print()
    if rate_rows:
        good = [r for r in rate_rows if r.sustained]
        if good:
            b = max(good, key=lambda r: r.rate)
            n = max(1, b.run.ok)
            print(f"highest sustained rate with 0 failed calls: {b.rate} calls/s "
                  f"(answered {b.audio.answered_per_s:.1f}/s); server CPU per call "
                  f"{1e3 * b.cpu.total / n:.1f} ms (control {1e3 * b.cpu.control / n:.1f}, "
                  f"media {1e3 * b.cpu.media / n:.1f}, other {1e3 * b.cpu.other / n:.1f})")
        else:
            print("highest sustained rate with 0 failed calls: none of the rates tried")
        clean = [r.rate for r in good if r.audio.bad_pct <= args.max_audio_loss]
        print(f"  of which with clean audio (<= {args.max_audio_loss:g} % missed): "
              f"{max(clean) if clean else 'none'}" + (" calls/s" if clean else ""))
        last = rate_rows[-1]
        if not last.sustained:
            print(f"  at {last.rate}/s: {last.run.failed} failed, "
                  f"{last.audio.answered_per_s:.1f}/s answered, {last.pending} recordings "
                  f"left open, {last.audio.short} calls that did not hear their prompts")
        else:
            print("  (the highest rate tried: the limit may be higher)")
    if hold_rows:
        good_h = [r for r in hold_rows if r.clean(args.max_audio_loss)]
        if good_h:
            h = max(good_h, key=lambda r: r.target)
            per = (f"; server CPU {call_second_ms(h, idle):.2f} ms per call-second above "
                   f"idle, {100 * h.full.server.total / h.full.t:.0f} % of a core with all "
                   f"{h.target} live") if h.full is not None else ""
            print(f"concurrent-call ceiling with recording ({args.format}) on: "
                  f"{h.target} calls (0 failed, {h.audio.bad_pct:.2f} % of audio missed)"
                  f"{per}")
        else:
            print("concurrent-call ceiling: none of the steps tried was clean")
        last_h = hold_rows[-1]
        if not last_h.clean(args.max_audio_loss):
            print(f"  at {last_h.target}: {last_h.run.failed} failed, "
                  f"{last_h.audio.bad_pct:.2f} % of audio missed ({last_h.audio.late_streams} "
                  f"calls fell behind, up to {last_h.audio.max_late_ms:.0f} ms), "
                  f"{last_h.short_recs} short recordings")
        else:
            print("  (the largest step tried: the ceiling may be higher)")
    problems = log_problems(log)
    if problems:
        print("server warnings/errors: " + "; ".join(problems))
    print(f"total time {bench.elapsed():.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
