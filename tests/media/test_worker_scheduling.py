"""How the pool's workers are scheduled: each ticks at its own phase of the 20 ms period,
and with ``rt_priority`` its tick thread runs under SCHED_RR (what ``[server]
media_priority`` sets)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from media.client import MediaPool
from media.worker import TICK_MS, first_deadline

SCHED_RR = 2  # the policy field of /proc/PID/task/TID/stat


def _threads(pid: int) -> list[tuple[int, int]]:
    """(policy, RT priority) of each thread of a process."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        out.append((int(fields[38]), int(fields[37])))  # stat fields 41, 40
    return out


def _can_use_rr() -> bool:
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
    except OSError:
        return False
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return True


@pytest.mark.parametrize("priority", [0, 7])
def test_tick_thread_runs_under_sched_rr_only_when_asked(tmp_path: Path, priority: int) -> None:
    if priority and not _can_use_rr():
        pytest.skip("this user may not use SCHED_RR (no root, CAP_SYS_NICE or RLIMIT_RTPRIO)")

    async def run() -> list[tuple[int, int]]:
        pool = MediaPool(1, (42000, 42099), str(tmp_path), rtp_ip="127.0.0.1",
                         data_dir=str(tmp_path), rt_priority=priority)
        await pool.start()
        try:
            pid = pool.worker_pids()[0]
            assert pid is not None
            await asyncio.sleep(0.2)  # the tick thread sets its policy as it starts
            return _threads(pid)
        finally:
            await pool.close()

    threads = asyncio.run(run())
    assert len(threads) >= 3, threads  # asyncio, tick, recording writer
    rr = [t for t in threads if t[0] == SCHED_RR]
    assert rr == ([(SCHED_RR, priority)] if priority else []), threads  # the tick thread


@pytest.mark.parametrize("phase", [0.0, 5.0, 10.0, 19.5])
@pytest.mark.parametrize("now", [1000.0, 1004.9, 1005.0, 1010.2, 1019.99])
def test_first_deadline_is_the_next_point_of_the_workers_phase(phase: float, now: float) -> None:
    d = first_deadline(now, phase)
    assert now < d <= now + TICK_MS + 1e-9
    assert abs((d - phase) / TICK_MS - round((d - phase) / TICK_MS)) < 1e-9
