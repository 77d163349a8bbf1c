"""Server-added latency of a WebRTC leg: ``python benchmarks/webrtc_leg.py [--seconds S]``.

An aiortc peer plays the browser over loopback (helpers from tests/media/test_webrtc.py).
Both sides send a 20 ms 1 kHz burst every 200 ms. A thread like the worker's tick pushes
a frame every 20 ms and polls the endpoint's inbound ring every millisecond.

* out: ``push_pcm`` of the burst -> the browser's DTLS transport hands the decrypted RTP
  packet to its receiver. This covers our track, aiortc's sender, SRTP and loopback.
* in: the browser's sender hands the burst packet to SRTP -> ``pull_pcm`` returns it.
  This covers loopback, aiortc's receive path (SRTP, parse), our tap or aiortc's decoder,
  and the resampler.

Neither direction includes the worker's jitter buffer (the same on every leg) or the
browser's own buffering. Rows per receive path: ``tap`` (default), ``track`` (aiortc's
decoder, no prefetch) and ``aiortc`` (aiortc untouched: JitterBuffer prefetch=4).
``--legs N`` runs N legs at once in one process. The browser peers share that process
and its loop, so the loaded figures are pessimistic.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "media"))

from test_webrtc import measure  # noqa: E402


def pct(x: list[float], q: float) -> float:
    return float(np.percentile(x, q)) if x else float("nan")


async def many(n: int, codecs: tuple[str, ...], seconds: float, path: str) -> list[dict]:
    return list(await asyncio.gather(*(measure(codecs, seconds, path) for _ in range(n))))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--legs", type=int, nargs="*", default=[1])
    p.add_argument("--paths", nargs="*", default=["tap", "track", "aiortc"])
    args = p.parse_args()
    print(f"{'codec':6} {'path':7} {'legs':>4} {'n':>5} {'out p50':>8} {'out p99':>8} "
          f"{'in p50':>8} {'in p99':>8} {'cpu%':>6}")
    for legs in args.legs:
        for codecs in (("PCMU",), ("opus",)):
            for path in args.paths:
                c0, t0 = time.process_time(), time.monotonic()
                rs = asyncio.run(many(legs, codecs, args.seconds, path))
                cpu = 100.0 * (time.process_time() - c0) / (time.monotonic() - t0)
                out = [x for r in rs for x in r["out"]]
                inn = [x for r in rs for x in r["in"]]
                print(f"{codecs[0]:6} {path:7} {legs:>4} {len(out):>5} {pct(out, 50):8.1f} "
                      f"{pct(out, 99):8.1f} {pct(inn, 50):8.1f} {pct(inn, 99):8.1f} "
                      f"{cpu:6.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
