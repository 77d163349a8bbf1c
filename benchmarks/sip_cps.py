"""SIPp's uac scenario against hotline's echo route at increasing call rates.

Prints, per offered rate: calls attempted, successful, failed, the rate achieved and
the control process's CPU per call (user+system from /proc). The highest rate with
0 failed calls is the figure to quote. SIPp shares this machine, so its own CPU is
printed too: on 2 cores the generator is often the limit, not hotline.

    python benchmarks/sip_cps.py [--rates 100,200,400] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.peers import HotlineProcess, free_port, run_sipp, write_site  # noqa: E402

SITE = """
[server]
sip = ["udp:127.0.0.1:{sip}"]
http = "127.0.0.1:{http}"
rtp_ports = [40000, 59999]
data_dir = "{data}"

[logging]
level = "warning"

[[trunks]]
name = "carrier"
host = "127.0.0.1"
port = 5099
allow = ["127.0.0.2/32"]
options_interval = 0

[[routes]]
match = "*43"
to = "echo"
"""

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="100,200,300,400,500,600")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    rates = [int(r) for r in args.rates.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        sip = free_port()
        cfg = write_site(tmpd / "site.toml", SITE.format(sip=sip, http=free_port(),
                                                        data=tmpd / "data"))
        server = HotlineProcess(config=cfg, data_dir=tmpd / "data", sip_port=sip)
        server.start()
        assert server.proc is not None
        rows = []
        try:
            for rate in rates:
                calls = int(rate * args.seconds)
                cpu0 = cpu_seconds(server.proc.pid)
                sipp0 = children_cpu()
                t0 = time.monotonic()
                wd = tmpd / f"r{rate}"
                wd.mkdir()
                res = run_sipp(
                    ["-sn", "uac", f"127.0.0.1:{sip}", "-s", "*43", "-i", "127.0.0.2",
                     "-p", str(free_port(host="127.0.0.2")), "-r", str(rate), "-m", str(calls),
                     "-l", str(rate * 4), "-timeout", f"{int(args.seconds * 4 + 30)}s",
                     "-max_recv_loops", "10000", "-max_sched_loops", "10000"],
                    cwd=wd, timeout=args.seconds * 6 + 60,
                )
                wall = time.monotonic() - t0
                cpu = cpu_seconds(server.proc.pid) - cpu0
                ok = res.stats.get("Successful call", 0)
                failed = res.stats.get("Failed call", calls - ok)
                rows.append((rate, calls, ok, failed, ok / wall if wall else 0.0,
                             1e6 * cpu / max(ok, 1), cpu / wall * 100,
                             (children_cpu() - sipp0) / wall * 100))
        finally:
            server.stop()

    print(f"# sip_cps: SIPp uac → hotline echo, {args.seconds:.0f} s per rate, "
          f"{os.cpu_count()} cores")
    print(f"{'offered/s':>10} {'calls':>7} {'ok':>7} {'failed':>7} {'achieved/s':>11} "
          f"{'µs CPU/call':>12} {'hotline CPU%':>13} {'sipp CPU%':>10}")
    best = 0
    for rate, calls, ok, failed, achieved, us, hcpu, scpu in rows:
        print(f"{rate:>10} {calls:>7} {ok:>7} {failed:>7} {achieved:>11.1f} {us:>12.0f} "
              f"{hcpu:>13.1f} {scpu:>10.1f}")
        if failed == 0 and ok == calls:
            best = max(best, rate)
    print(f"highest offered rate with 0 failed calls: {best}/s")
    if rows:
        us = min(r[5] for r in rows if r[2])
        print(f"control-process CPU per call (best): {us:.0f} µs → "
              f"{1e6 / us:.0f} calls/s per core if CPU-bound")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
