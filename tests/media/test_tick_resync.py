"""A worker that stalls (SIGSTOP, a starved CPU) skips the ticks it missed; its outgoing
RTP timestamps must jump by the time skipped, so the far end sees a gap instead of a
stream that stays late for the rest of the call (found by benchmarks/calls.py: calls on
a starved worker stayed 0.7-1.7 s behind)."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from rtp_peer import Peer  # noqa: E402

from media.client import MediaPool  # noqa: E402

PORTS = (31000, 31999)
LO = "127.0.0.1"


def test_stalled_worker_jumps_rtp_timestamps_by_the_stall(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def main() -> list[tuple[float, int, int]]:
        pool = MediaPool(1, PORTS, str(tmp_path), rtp_ip=LO, data_dir=str(tmp_path))
        await asyncio.wait_for(pool.start(), 20)
        peer = Peer()
        arrivals: list[tuple[float, int, int]] = []

        async def collect(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                while True:
                    try:
                        data = peer.sock.recv(2048)
                    except BlockingIOError:
                        break
                    seq, ts = struct.unpack("!HI", data[2:8])
                    arrivals.append((time.monotonic(), seq, ts))
                await asyncio.sleep(0.005)

        try:
            ep = await pool.create_endpoint("t", remote_ip=LO, remote_port=peer.port)
            await pool.play(ep, "tone:ringback", loop=True)  # a packet every tick
            await collect(1.0)
            pid = pool.worker_pids()[0]
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            await asyncio.sleep(0.5)
            os.kill(pid, signal.SIGCONT)
            await collect(1.5)
            stats = await pool.stats()
            assert stats["skipped_ticks"] > 10, stats  # the stall went through the resync
        finally:
            peer.close()
            await pool.close()
        return arrivals

    arrivals = asyncio.run(main())
    assert len(arrivals) > 80, len(arrivals)
    # The stall: the biggest gap in arrival times.
    gaps = [(arrivals[i + 1][0] - arrivals[i][0], i) for i in range(len(arrivals) - 1)]
    stall, i = max(gaps)
    assert stall > 0.4, stall
    seqs = [seq for _, seq, _ in arrivals]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))

    def offset(part: list[tuple[float, int, int]]) -> float:
        """Median of arrival time minus media time (timestamps unwrapped from the first)."""
        t0, _, ts0 = arrivals[0]
        return statistics.median(t - t0 - ((ts - ts0) & 0xFFFFFFFF) / 8000 for t, _, ts in part)

    before, after = offset(arrivals[:i]), offset(arrivals[i + 3:])
    # Media time kept pace with real time across the stall: the stream is not late now.
    assert abs(after - before) < 0.1, (before, after, stall)
