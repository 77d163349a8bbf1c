"""Media worker load: N bridged G.711 calls (2N RTP streams) with recording and in-band
DTMF detection on every leg, driven by a separate load-generator process, and the same
load through a bare C relay (the floor) side by side.

    .venv/bin/python benchmarks/media_load.py [--calls 50,200,500] [--seconds 6]
        [--workers 2] [--rt PRIORITY] [--no-floor]

The generator (this file with ``--generator``) owns 2N UDP sockets in one
:class:`cext.net.NetIO`; every 20 ms it sets each pre-built packet's sequence number and
timestamp with numpy; the streams are spread over 20 send phases 1 ms apart (as real
calls are), each phase one ``NetIO.send_stamped`` call, which writes each packet's own
send time (float64, CLOCK_MONOTONIC) into its payload as it hands it to the kernel; it
receives with ``NetIO.poll`` between phases, with ``kernel_timestamps``. Added latency =
the kernel's receive time of a packet back through the bridge - its embedded send time
(``read p99``: to when the generator read it, its own wake-ups included). Server CPU is
utime+stime of the worker (or bare relay) processes from /proc over the measured window.

``--rt PRIORITY`` runs the workers' tick threads (``[server] media_priority``) and the
bare relay under SCHED_RR; the generator keeps normal scheduling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from cext.net import NetIO  # noqa: E402

BUDGET_US = 600.0  # per channel-second: 3000 channels on 2 cores
PHASES = 20  # send phases per 20 ms period (1 ms apart)


def loopback_sockets(net: NetIO, n: int, rcvbuf: int | None = None) -> list[socket.socket]:
    """``n`` non-blocking UDP sockets on 127.0.0.1 as slots ``0..n-1`` of ``net``, sending
    enabled (the caller keeps them open)."""
    socks = []
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        socks.append(s)
        net.add(i, s.fileno())
    net.send_enabled[:] = 1
    return socks


def generator(cfg_path: str) -> None:
    from cext.net import RecvBatch, ip_to_be, monotonic_ms

    cfg = json.load(open(cfg_path))
    ports: list[int] = cfg["ports"]
    seconds: float = cfg["seconds"]
    warmup: float = cfg["warmup"]
    n = len(ports)
    net = NetIO(n)
    net.kernel_timestamps = True
    socks = loopback_sockets(net, n, 1 << 20)  # noqa: F841 (open while NetIO uses their fds)
    for i, port in enumerate(ports):
        net.set_remote(i, ip_to_be("127.0.0.1"), port)
    pkts = np.zeros((n, 172), np.uint8)
    pkts[:, 0] = 0x80
    pkts[:, 1] = 0
    pkts[:, 20:] = 0xFF  # µ-law silence after the stamp
    ssrc = np.arange(1, n + 1, dtype=np.uint32).byteswap()
    pkts[:, 8:12] = ssrc.view(np.uint8).reshape(n, 4)
    lengths = np.full(n, 172, np.int32)
    slots = np.arange(n, dtype=np.int32)
    rb = RecvBatch(max(1024, 4 * n), 256)
    lat: list[np.ndarray] = []
    lat_user: list[np.ndarray] = []
    sent = received = 0
    # Real calls' packets are not synchronised: stream i sends at phase (i % PHASES) ms of
    # each 20 ms period, stamped just before its group's sendmmsg.
    order = np.argsort(np.arange(n) % PHASES, kind="stable")
    pkts, slots = pkts[order].copy(), slots[order].copy()
    bounds = np.searchsorted(np.sort(np.arange(n) % PHASES), np.arange(PHASES + 1))
    bounds[-1] = n
    seq = 0
    t0 = monotonic_ms() + 50
    deadline = t0
    end = t0 + (warmup + seconds) * 1000
    measuring = False
    print("ready", flush=True)

    def drain(until: float) -> None:
        nonlocal received
        while True:
            k = rb.poll(net, until)
            if k:
                read = monotonic_ms()
                body = rb.packets[:k, 12:21]
                flag = body[:, 8] == 1
                stamp = np.ascontiguousarray(body[:, :8]).view("<f8").reshape(-1)
                if flag.any():
                    lat.append(rb.arrival_ms[:k][flag] - stamp[flag])
                    lat_user.append(read - stamp[flag])
                    received += int(flag.sum())
            if monotonic_ms() >= until:
                return

    while deadline < end + 200:
        stop_sending = deadline >= end
        if not stop_sending:
            measuring = deadline >= t0 + warmup * 1000
            pkts[:, 2] = (seq >> 8) & 0xFF
            pkts[:, 3] = seq & 0xFF
            ts = np.uint32(seq * 160)
            pkts[:, 4:8] = np.frombuffer(np.array([ts], ">u4").tobytes(), np.uint8)
            pkts[:, 20] = 1 if measuring else 0  # flag: counted packet
            for g in range(PHASES):
                lo, hi = int(bounds[g]), int(bounds[g + 1])
                drain(deadline + g * 20.0 / PHASES)
                if hi > lo:
                    net.send_stamped(pkts[lo:hi], lengths[lo:hi], slots[lo:hi], hi - lo, 12)
            if measuring:
                sent += n
            seq += 1
        deadline += 20.0
        drain(deadline)
    allat = np.concatenate(lat) if lat else np.zeros(1)
    user = np.concatenate(lat_user) if lat_user else np.zeros(1)
    print(json.dumps({"sent": sent, "received": received,
                      "p50": float(np.percentile(allat, 50)),
                      "p99": float(np.percentile(allat, 99)),
                      "max": float(allat.max()),
                      "p99_read": float(np.percentile(user, 99))}), flush=True)


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(ports: list[int], pids: list[int], seconds: float, tmp: str
                ) -> dict[str, float]:
    """Run the generator against ``ports``; server CPU is that of ``pids`` meanwhile."""
    cfg = os.path.join(tmp, "gen.json")
    warmup = 1.0
    json.dump({"ports": ports, "seconds": seconds, "warmup": warmup}, open(cfg, "w"))
    gen = subprocess.Popen([sys.executable, __file__, "--generator", cfg],
                           stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert gen.stdout is not None
    gen.stdout.readline()
    await asyncio.sleep(warmup + 0.05)
    c0 = sum(proc_cpu_s(p) for p in pids)
    w0 = time.monotonic()
    await asyncio.sleep(seconds)
    c1 = sum(proc_cpu_s(p) for p in pids)
    wall = time.monotonic() - w0
    out = await asyncio.get_running_loop().run_in_executor(None, gen.stdout.read)
    gen.wait(timeout=30)
    res = json.loads(out.strip().splitlines()[-1])
    channels = len(ports)
    cpu_us = (c1 - c0) * 1e6
    pkts = channels * 50 * wall * 2  # in + out
    return {
        "channels": channels, "cpu_pct": 100 * (c1 - c0) / wall,
        "us_per_pkt": cpu_us / pkts, "us_per_chan_s": cpu_us / (channels * wall),
        "lost": res["sent"] - res["received"], "sent": res["sent"],
        "p50": res["p50"], "p99": res["p99"], "p99_read": res["p99_read"],
    }


async def run_n(n_calls: int, seconds: float, workers: int, tmp: str,
                record: bool, dtmf: bool, rt: int) -> dict[str, float]:
    from media.client import MediaPool

    pool = MediaPool(workers, (40000, 40000 + 8 * max(n_calls, 50) * workers + 99), tmp,
                     rtp_ip="127.0.0.1", data_dir=tmp, rt_priority=rt)
    await pool.start()
    try:
        ports = []
        recs = []
        for c in range(n_calls):
            key = f"call{c}"
            a = await pool.create_endpoint(key, dtmf_inband=dtmf, jitter_min_ms=20)
            b = await pool.create_endpoint(key, dtmf_inband=dtmf, jitter_min_ms=20)
            await pool.set_room(key, [a, b])
            if record:
                recs.append(await pool.record(os.path.join(tmp, f"{key}.wav"), [a], [b]))
            ports += [a.local_port, b.local_port]
        r = await drive(ports, [p for p in pool.worker_pids() if p], seconds, tmp)
        st = [await pool.stats(worker=i) for i in range(workers)]
        for rec in recs:
            await pool.record_stop(rec)
    finally:
        await pool.close()
    r.update({
        "calls": n_calls,
        "late_ticks": sum(s["late_ticks"] for s in st),
        "max_busy_ms": max(s["max_busy_ms"] for s in st),
        "avg_busy_ms": max(s["avg_busy_ms"] for s in st),
    })
    return r


def bare_relay(n_pairs: int, rt: int) -> None:
    """The floor: relay ``n_pairs`` pairs of sockets with NetIO's C relay only (no tick,
    no jitter buffer, no recording, no Python per wake-up), at the server's priority;
    prints the ports, then runs until killed."""
    from cext.net import RecvBatch, monotonic_ms
    from media.worker import set_realtime

    if rt:
        set_realtime(rt, "the bare relay")
    net = NetIO(2 * n_pairs)
    socks = loopback_sockets(net, 2 * n_pairs)
    net.latch[:] = 1
    for i in range(n_pairs):  # PCMU both ways
        net.relay_to[2 * i], net.relay_to[2 * i + 1] = 2 * i + 1, 2 * i
    print(json.dumps([s.getsockname()[1] for s in socks]), flush=True)
    rb = RecvBatch(4096)
    while True:
        rb.poll(net, monotonic_ms() + 20.0)


async def floor_n(n_calls: int, seconds: float, workers: int, tmp: str, rt: int
                  ) -> dict[str, float]:
    """The same load through ``workers`` bare relay processes (see :func:`bare_relay`)."""
    procs, ports = [], []
    try:
        for w in range(workers):
            pairs = n_calls // workers + (w < n_calls % workers)
            p = subprocess.Popen([sys.executable, __file__, "--bare-relay", str(pairs),
                                  "--rt", str(rt)],
                                 stdout=subprocess.PIPE, text=True, cwd=ROOT)
            procs.append(p)
            assert p.stdout is not None
            ports += json.loads(p.stdout.readline())
        return await drive(ports, [p.pid for p in procs], seconds, tmp)
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", default="50,200,500")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--no-dtmf", action="store_true")
    ap.add_argument("--no-floor", action="store_true",
                    help="skip the bare C relay run at each load")
    ap.add_argument("--rt", type=int, default=0, metavar="PRIORITY",
                    help="SCHED_RR priority of the workers ([server] media_priority) and "
                    "of the bare relay; the generator keeps normal scheduling")
    ap.add_argument("--generator")
    ap.add_argument("--bare-relay", type=int)
    args = ap.parse_args()
    if args.generator:
        generator(args.generator)
        return
    if args.bare_relay is not None:
        bare_relay(args.bare_relay, args.rt)
        return
    print(f"{'calls':>6} {'chans':>6} {'run':>8} {'cpu%':>6} {'us/pkt':>7} {'us/ch-s':>8} "
          f"{'lost':>6} {'p50 ms':>7} {'p99 ms':>7} {'read p99':>8} {'late':>5} "
          f"{'tick avg/max ms':>16} {'max chans':>10}")
    best = 0
    for n in (int(x) for x in args.calls.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            r = asyncio.run(run_n(n, args.seconds, args.workers, tmp,
                                  not args.no_record, not args.no_dtmf, args.rt))
            f = None if args.no_floor else asyncio.run(floor_n(n, args.seconds,
                                                               args.workers, tmp, args.rt))
        for name, x in (("hotline", r), ("floor", f)):
            if x is None:
                continue
            cap = int(os.cpu_count() or 1) * 1e6 / max(x["us_per_chan_s"], 1e-9)
            tick = (f"{x['avg_busy_ms']:>7.2f}/{x['max_busy_ms']:<8.2f}" if "late_ticks" in x
                    else f"{'':>16}")
            late = f"{x['late_ticks']:>5}" if "late_ticks" in x else f"{'':>5}"
            print(f"{n:>6} {x['channels']:>6} {name:>8} {x['cpu_pct']:>6.1f} "
                  f"{x['us_per_pkt']:>7.2f} {x['us_per_chan_s']:>8.1f} {x['lost']:>6} "
                  f"{x['p50']:>7.3f} {x['p99']:>7.3f} {x['p99_read']:>8.3f} {late} {tick} "
                  f"{cap:>10.0f}", flush=True)
        if f is not None:
            print(f"{'':>14} hotline/floor: CPU {r['us_per_chan_s'] / f['us_per_chan_s']:.2f}x, "
                  f"p99 +{r['p99'] - f['p99']:.3f} ms", flush=True)
        if r["lost"] == 0:
            best = max(best, n)
    print(f"largest N with 0 loss: {best} calls ({2 * best} channels); "
          f"budget {BUDGET_US:.0f} us/channel-second = 3000 channels on 2 cores")


if __name__ == "__main__":
    main()
