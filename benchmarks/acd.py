"""Benchmark: the ACD matcher (``acd.engine.Acd``) at call-center scale.

Run: ``.venv/bin/python benchmarks/acd.py [--seconds 2] [--seed 1] [--profile]``

500 agents, 50 queues; each agent is a member of 3 random queues (about 30 members per
queue) with 3 random skills at random levels, and the queues cycle through the nine
strategies (``skills`` queues require two skills). Wrap-up is 10 s and nobody times
out. A fake call control answers every
offer at once, so each routing decision is one ``enqueue``/``ready``/``handle_timer``
that ends in a ``CallOffered``, then ``answered``, later ``call_ended`` and the wrap-up
timer. The clock is simulated: each step ends the longest call and moves time on 0.1 s.

Two regimes, because the matcher has two directions:

* *agents waiting*: 300 calls in progress, the other agents ready or wrapping up; each
  new call is ranked by its queue's strategy over the queue's ready members (rows per
  strategy run a center whose 50 queues all use that one strategy);
* *callers waiting*: 2000 callers in line across the 50 queues; every agent whose wrap-up
  ends takes the best-placed caller across its queues, and a new caller joins for each
  one served.

Throughput is routing decisions (calls connected to an agent) per CPU-second
(``time.process_time``, the fake call control included). Latency is wall time
(``time.perf_counter``) around the one engine call that produced the ``CallOffered``.
Position announcements are off in those runs (their number per match depends only on
the simulated call length); a last row times them alone: the 2000 callers in line with
``announce_every = 60`` and every agent busy, a minute of timers.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import statistics
import sys
import time
from collections import deque
from pathlib import Path
from types import MappingProxyType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from acd.agent import AgentState  # noqa: E402
from acd.engine import Acd  # noqa: E402
from acd.events import Announce, CallOffered  # noqa: E402
from hotline.config import STRATEGIES, AgentConfig, QueueConfig, Secret  # noqa: E402

AGENTS = 500
QUEUES = 50
QUEUES_PER_AGENT = 3
SKILLS = ("en", "es", "fr", "de", "billing", "tech")
WRAPUP = 10
DT = 0.1
TALKING = 300
"""Calls in progress in the agents-waiting regime."""
WAITING = 2000
"""Callers in line in the callers-waiting regime."""
PROBES = 50
"""Agents the callers-waiting regime toggles with ready()/not_ready() to time ready()."""


def build(seed: int, strategy: str | None = None, announce: int = 0) -> Acd:
    """The center: ``strategy`` for every queue, or the nine strategies in turn."""
    rng = random.Random(seed)
    queues = []
    for j in range(QUEUES):
        strat = strategy or STRATEGIES[j % len(STRATEGIES)]
        skills = dict.fromkeys(rng.sample(SKILLS, 2), 1) if strat == "skills" else {}
        queues.append(QueueConfig(
            f"q{j:02d}", strategy=strat, wrapup=WRAPUP, ring_timeout=15, max_wait=0,
            announce_every=announce, skills=MappingProxyType(skills)))
    agents = []
    members: dict[str, list[str]] = {q.name: [] for q in queues}
    for i in range(AGENTS):
        agent_id = str(1000 + i)
        skills = {s: rng.randint(1, 10) for s in rng.sample(SKILLS, 3)}
        agents.append(AgentConfig(agent_id, f"Agent {i}", Secret("bench-password"),
                                  MappingProxyType(skills)))
        for q in rng.sample(queues, QUEUES_PER_AGENT):
            members[q.name].append(agent_id)
    return Acd(queues, agents, members, seed=seed)


class Load:
    """Fake call control: answers every offer at once and hangs up the longest call."""

    def __init__(self, acd: Acd, seed: int) -> None:
        self.acd = acd
        self.rng = random.Random(seed)
        self.queues = sorted(acd.queues)
        self.now = 0.0
        self.calls = 0
        self.matches = 0
        self.talking: deque[str] = deque()
        self.probes: set[str] = set()

    def drain(self) -> int:
        """Answer the offers among the pending events; returns how many were offered."""
        offered = 0
        while (ev := self.acd.next_event()) is not None:
            if isinstance(ev, CallOffered):
                offered += 1
                # ring-all: the first answer wins, the other phones are withdrawn
                if self.acd.answered(ev.call_id, ev.agent, self.now):
                    self.matches += 1
                    self.talking.append(ev.call_id)
                    if ev.agent in self.probes:  # back to not ready after this call
                        self.acd.not_ready(ev.agent, self.now, "probe")
        return offered

    def enqueue(self) -> int:
        """A caller joins a random queue; returns the offers it caused."""
        self.calls += 1
        self.acd.enqueue(f"c{self.calls}", self.rng.choice(self.queues), self.now,
                         caller=f"+4930{self.rng.randrange(10**6):06d}")
        return self.drain()

    def hang_up(self) -> None:
        self.acd.call_ended(self.talking.popleft(), self.now)
        self.drain()

    def tick(self) -> tuple[float, int]:
        """Time moves on: wrap-ups end. Returns (seconds in handle_timer, offers made)."""
        self.now += DT
        t0 = time.perf_counter()
        self.acd.handle_timer(self.now)
        dt = time.perf_counter() - t0
        return dt, self.drain()

    def waiting(self) -> int:
        return len(self.acd.calls) - len(self.talking)


def agents_waiting(acd: Acd, seed: int, seconds: float) -> tuple[float, list[float]]:
    """Matches per CPU-second, and enqueue() latencies of calls offered at once."""
    load = Load(acd, seed)
    for a in acd.agents:
        acd.ready(a, load.now)
    load.drain()
    while len(load.talking) < TALKING:  # warm up to the steady state
        load.enqueue()
        load.tick()
    lat: list[float] = []
    m0, t0 = load.matches, time.process_time()
    while time.process_time() - t0 < seconds:
        c0 = time.perf_counter()
        load.calls += 1
        acd.enqueue(f"c{load.calls}", load.rng.choice(load.queues), load.now,
                    caller=f"+4930{load.rng.randrange(10**6):06d}")
        c1 = time.perf_counter()
        if load.drain():
            lat.append(c1 - c0)
        while len(load.talking) > TALKING:
            load.hang_up()
        load.tick()
    rate = (load.matches - m0) / (time.process_time() - t0)
    return rate, lat


def callers_waiting(acd: Acd, seed: int, seconds: float
                    ) -> tuple[float, list[float], list[float], list[int]]:
    """Matches per CPU-second with WAITING callers in line; ready() latencies of the
    probe agents, and handle_timer() latencies (with offers per call) of wrap-up ends."""
    load = Load(acd, seed)
    load.probes = set(list(acd.agents)[:: AGENTS // PROBES])
    for a in acd.agents:
        acd.ready(a, load.now)
    load.drain()
    while load.waiting() < WAITING:
        load.enqueue()
    ready_lat: list[float] = []
    timer_lat: list[float] = []
    timer_offers: list[int] = []
    m0, t0 = load.matches, time.process_time()
    while time.process_time() - t0 < seconds:
        load.hang_up()
        dt, offered = load.tick()
        if offered:
            timer_lat.append(dt)
            timer_offers.append(offered)
        for a in sorted(load.probes):  # one idle probe presses ready
            if acd.agents[a].state is AgentState.NOT_READY:
                c0 = time.perf_counter()
                acd.ready(a, load.now)
                c1 = time.perf_counter()
                if load.drain():
                    ready_lat.append(c1 - c0)
                break
        while load.waiting() < WAITING:
            load.enqueue()
    rate = (load.matches - m0) / (time.process_time() - t0)
    return rate, ready_lat, timer_lat, timer_offers


def announcements(seed: int) -> tuple[float, int]:
    """CPU-seconds per Announce, and how many, over a minute with WAITING in line: every
    agent logged in and busy, recent handle times known (so the estimate is computed)."""
    acd = build(seed, announce=60)
    load = Load(acd, seed)
    for a in acd.agents:
        acd.ready(a, load.now)
    load.drain()
    while load.waiting() < WAITING:
        load.enqueue()
    for _ in range(200):  # handle-time history for the estimated wait
        load.hang_up()
        load.tick()
        while load.waiting() < WAITING:
            load.enqueue()
    n = 0
    t0 = time.process_time()
    for _ in range(int(60 / DT)):  # a minute; only the last wrap-ups end (< 100 matches)
        load.now += DT
        acd.handle_timer(load.now)
        while (ev := acd.next_event()) is not None:
            if isinstance(ev, CallOffered):
                acd.answered(ev.call_id, ev.agent, load.now)
            elif isinstance(ev, Announce):
                n += 1
    return (time.process_time() - t0) / n, n


def pct(xs: list[float], p: float) -> float:
    if len(xs) < 2:
        return xs[0] if xs else float("nan")
    return statistics.quantiles(xs, n=100, method="inclusive")[int(p) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per row")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="cProfile the callers-waiting run")
    args = ap.parse_args()

    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        callers_waiting(build(args.seed), args.seed, args.seconds)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
        return

    print(f"python {sys.version.split()[0]}; {AGENTS} agents, {QUEUES} queues "
          f"({QUEUES_PER_AGENT} per agent), wrap-up {WRAPUP} s")
    print()
    print(f"{'regime':<34}{'strategy':<18}{'matches/CPU-s':>15}{'µs/match':>10}")
    rate, enq_lat = agents_waiting(build(args.seed), args.seed, args.seconds)
    print(f"{f'agents waiting ({TALKING} talking)':<34}{'mixed':<18}{rate:>15,.0f}"
          f"{1e6 / rate:>10.1f}")
    rate, ready_lat, timer_lat, timer_offers = callers_waiting(
        build(args.seed), args.seed, args.seconds)
    print(f"{f'callers waiting ({WAITING} in line)':<34}{'mixed':<18}{rate:>15,.0f}"
          f"{1e6 / rate:>10.1f}")
    for strat in STRATEGIES:
        r, _ = agents_waiting(build(args.seed, strat), args.seed, args.seconds / 2)
        print(f"{'agents waiting':<34}{strat:<18}{r:>15,.0f}{1e6 / r:>10.1f}")
    print()
    print("latency of the engine call that produced the CallOffered (wall clock)")
    print(f"{'call':<52}{'n':>7}{'p50 µs':>9}{'p99 µs':>9}{'max µs':>9}")
    rows = [
        (f"ready(), {WAITING} callers waiting", ready_lat),
        (f"handle_timer() at wrap-up end, {WAITING} waiting", timer_lat),
        (f"enqueue(), agents waiting ({TALKING} talking)", enq_lat),
    ]
    for name, xs in rows:
        print(f"{name:<52}{len(xs):>7}{pct(xs, 50) * 1e6:>9.1f}{pct(xs, 99) * 1e6:>9.1f}"
              f"{max(xs) * 1e6:>9.1f}")
    print(f"(handle_timer: {statistics.mean(timer_offers):.2f} offers per call)")
    per, n = announcements(args.seed)
    print()
    print(f"Announce (position + estimated wait), {WAITING} in line: {per * 1e6:.1f} µs of CPU "
          f"each ({n} in 60 s of timers)")


if __name__ == "__main__":
    main()
