"""acd.stats: a scripted day through the real engine, figures checked against hand counts.

The day (``t`` = seconds after 08:00:00 UTC on 2024-05-01; the engine runs on ``t``, the
server's wall offset turns it into Unix seconds). Queues:

* ``billing``: agents 1001, 1002 (linear), SL 20 s, short abandon 5 s, wrap-up 10 s,
  ring timeout 25 s, no max wait.
* ``repair``: agents 1003, 1002 (linear), SL 20 s, short abandon 10 s, no wrap-up,
  ring timeout 30 s, max wait 60 s, key 1 → voicemail.
* ``vip``: agent 1003, who never logs into it; join_empty = false.

Every agent logs in ready at t=0 (1003 to repair only). Then::

    b1  billing enter 10  → 1001 rings 10, answers 15 (hold 5: in SL), hold 40-70,
                            caller hangs up 130 (calltime 115); wrap-up 130-140
    b2  billing enter 20  → 1002 rings 20, ring-no-answer 45 (1002 not ready until 300);
                            1001 ready 140 rings, answers 145 (holdtime 125: not in SL),
                            transfers 205 (calltime 60); wrap-up 205-215
    b3  billing enter 50, abandons 53 (wait 3 < 5: short)
    b4  billing enter 60, abandons 100 (wait 40)
    r1  repair  enter 400 → 1003 rings 400, answers 410 (10: in SL), agent hangs up 470
    r2  repair  enter 405 → 1002 rings 405, answers 430 (25: not in SL), caller 490
    r3  repair  enter 408, times out 468 (max wait 60)
    r4  repair  enter 420, presses 1 at 428 (wait 8)
    r5  repair  enter 440, abandons 447 (wait 7 < 10: short)
    v1  vip     500: nobody logged in → JOINEMPTY
    b5  billing enter 3600 → 1001 rings 3600, answers 3620 (20: in SL, the edge),
                            holds 3650-3660 and 3700-3705, caller 3740 (calltime 120),
                            1001 ready at 3745 (wrap-up cut to 5 s)
    b6  billing enter 3610 → 1002 rings 3610, answers 3612 (2: in SL), 1002 ends 3662
                            (calltime 50); wrap-up 3662-3672
        1002 not ready (lunch) 3700, logs out 4000
        1003 direct call 5000-5100; 1001 and 1003 log out 7200
    b7  billing enter 7300 (nobody logged in): still waiting at the end
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from acd.engine import Acd
from acd.events import AcdEvent, AgentStateChanged, QueueEvent
from acd.stats import (
    AGENT_STATES,
    AcdStats,
    AgentStats,
    QueueStats,
    QueueTargets,
    bucket_bounds,
)
from hotline.config import AgentConfig, QueueConfig, Secret
from hotline.storage import Storage

H8 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC).timestamp()  # t = 0
OFFSET = H8
H9, H10, H11 = H8 + 3600, H8 + 7200, H8 + 10800

QUEUES = [
    QueueConfig("billing", strategy="linear", ring_timeout=25, max_wait=0, wrapup=10,
                service_level=20, short_abandon=5),
    QueueConfig("repair", strategy="linear", ring_timeout=30, max_wait=60, wrapup=0,
                service_level=20, short_abandon=10, keys={"1": "voicemail:repair"}),
    QueueConfig("vip", strategy="linear", join_empty=False),
]
AGENTS = [AgentConfig(a, f"Agent {a}", Secret("a-long-password"))
          for a in ("1001", "1002", "1003")]
MEMBERS = {"billing": ["1001", "1002"], "repair": ["1003", "1002"], "vip": ["1003"]}


class Day:
    """Drives the engine at scripted times; each batch of events goes to the live
    accumulator and to storage, as the server does."""

    def __init__(self, db: Storage) -> None:
        self.acd = Acd(QUEUES, AGENTS, MEMBERS)
        self.live = AcdStats.for_queues(QUEUES)
        self.db = db
        self.now = 0.0
        self.events: list[AcdEvent] = []

    def at(self, t: float) -> Acd:
        """Advance to ``t`` (firing the engine's timers on the way)."""
        while (timer := self.acd.get_timer()) is not None and timer <= t:
            self.now = timer
            self.acd.handle_timer(timer)
            self.flush()
        self.now = t
        return self.acd

    def flush(self) -> None:
        batch = []
        while (ev := self.acd.next_event()) is not None:
            batch.append(ev)
            self.live.feed(ev, OFFSET)
        if batch:
            self.db.append_acd_events(batch, OFFSET)
        self.events += batch


def run_day(day: Day) -> None:
    def do(t: float, action: str, *args: object, **kw: object) -> None:
        acd = day.at(t)
        getattr(acd, action)(*args, now=t, **kw)
        day.flush()

    do(0, "login", "1001", ready=True)
    do(0, "login", "1002", ready=True)
    do(0, "login", "1003", queues=["repair"], ready=True)
    do(10, "enqueue", "b1", "billing", caller="139001")
    do(15, "answered", "b1", "1001")
    do(20, "enqueue", "b2", "billing", caller="139002")
    do(40, "hold", "1001")
    do(50, "enqueue", "b3", "billing")
    do(53, "call_ended", "b3")
    do(60, "enqueue", "b4", "billing")
    do(70, "hold", "1001", on=False)
    do(100, "call_ended", "b4")
    do(130, "call_ended", "b1")
    do(145, "answered", "b2", "1001")  # 1001 was offered b2 at 140, after wrap-up
    do(205, "transferred", "b2", to="2000")
    do(300, "ready", "1002")
    do(400, "enqueue", "r1", "repair")
    do(405, "enqueue", "r2", "repair")
    do(408, "enqueue", "r3", "repair")
    do(410, "answered", "r1", "1003")
    do(420, "enqueue", "r4", "repair")
    do(428, "key", "r4", "1")
    do(430, "answered", "r2", "1002")
    do(440, "enqueue", "r5", "repair")
    do(447, "call_ended", "r5")
    do(470, "call_ended", "r1", by_agent=True)
    do(490, "call_ended", "r2")
    do(500, "enqueue", "v1", "vip")
    do(3600, "enqueue", "b5", "billing")
    do(3610, "enqueue", "b6", "billing")
    do(3612, "answered", "b6", "1002")
    do(3620, "answered", "b5", "1001")
    do(3650, "hold", "1001")
    do(3660, "hold", "1001", on=False)
    do(3662, "call_ended", "b6", by_agent=True)
    do(3700, "hold", "1001")
    do(3700, "not_ready", "1002", reason="lunch")
    do(3705, "hold", "1001", on=False)
    do(3740, "call_ended", "b5")
    do(3745, "ready", "1001")
    do(4000, "logout", "1002")
    do(5000, "direct_call", "1003")
    do(5100, "direct_end", "1003")
    do(7200, "logout", "1001")
    do(7200, "logout", "1003")
    do(7300, "enqueue", "b7", "billing")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Storage]:
    with Storage.open(tmp_path) as storage:
        yield storage


@pytest.fixture
def day(db: Storage) -> Day:
    d = Day(db)
    run_day(d)
    return d


def _queue_events(day: Day, name: str) -> list[tuple[float, str, str, tuple[str, ...]]]:
    return [(e.at, e.call_id, e.agent, e.data) for e in day.events
            if isinstance(e, QueueEvent) and e.event == name]


def test_the_engine_did_what_the_script_says(day: Day) -> None:
    """The hand counts below rest on these events; check the script produced them."""
    assert _queue_events(day, "CONNECT") == [
        (15, "b1", "1001", ("5", "b1", "5")),
        (145, "b2", "1001", ("125", "b2", "5")),
        (410, "r1", "1003", ("10", "r1", "10")),
        (430, "r2", "1002", ("25", "r2", "25")),
        (3612, "b6", "1002", ("2", "b6", "2")),
        (3620, "b5", "1001", ("20", "b5", "20")),
    ]
    assert _queue_events(day, "RINGNOANSWER") == [(45, "b2", "1002", ("25000",))]
    assert _queue_events(day, "ABANDON") == [
        (53, "b3", "NONE", ("2", "2", "3")),
        (100, "b4", "NONE", ("2", "2", "40")),  # b2 is still ahead of b4
        (447, "r5", "NONE", ("2", "2", "7")),  # behind r3
    ]
    assert _queue_events(day, "EXITWITHTIMEOUT") == [(468, "r3", "NONE", ("1", "3", "60"))]
    assert _queue_events(day, "EXITWITHKEY") == [(428, "r4", "NONE", ("1", "3", "3", "8"))]
    assert _queue_events(day, "TRANSFER") == [
        (205, "b2", "1001", ("2000", "hotline", "125", "60", "1"))]
    assert _queue_events(day, "COMPLETECALLER") == [
        (130, "b1", "1001", ("5", "115", "1")),
        (490, "r2", "1002", ("25", "60", "2")),
        (3740, "b5", "1001", ("20", "120", "1")),
    ]
    assert _queue_events(day, "COMPLETEAGENT") == [
        (470, "r1", "1003", ("10", "60", "1")),
        (3662, "b6", "1002", ("2", "50", "2")),
    ]
    assert _queue_events(day, "JOINEMPTY") == [(500, "v1", "NONE", ())]
    wrapups = [(e.at, e.agent, e.call_id) for e in day.events
               if isinstance(e, AgentStateChanged) and e.state == "wrapup"]
    assert wrapups == [(130, "1001", "b1"), (205, "1001", "b2"), (470, "1003", "r1"),
                       (490, "1002", "r2"), (3662, "1002", "b6"), (3740, "1001", "b5")]


def _q(report: list[QueueStats] | tuple[QueueStats, ...], name: str) -> QueueStats:
    return next(q for q in report if q.queue == name)


def _a(report: tuple[AgentStats, ...], name: str) -> AgentStats:
    return next(a for a in report if a.agent == name)


def test_queue_figures_for_the_whole_day(day: Day) -> None:
    billing = day.live.queue_stats("billing", H8, H11)
    # Offered b1..b7 = 7; answered b1 b2 b5 b6 = 4; within 20 s: b1 (5), b5 (20, the
    # edge counts), b6 (2) = 3; b2 waited 125. Abandoned b3 (3 s: short) and b4 (40 s).
    # b7 still waits, so it has no outcome: resolved = 7 - 1 = 6.
    assert (billing.offered, billing.answered, billing.answered_in_sl) == (7, 4, 3)
    assert (billing.abandoned, billing.short_abandoned, billing.waiting) == (2, 1, 1)
    assert (billing.timed_out, billing.exited_key, billing.exited_empty) == (0, 0, 0)
    assert billing.resolved == 6
    assert billing.sl == 3 / 5  # 3 / (6 resolved - 1 short abandon)
    assert billing.sl2 == 3 / 6  # 3 / 6 resolved
    assert billing.asa == 38.0  # (5 + 125 + 20 + 2) / 4 = 152 / 4
    assert billing.longest_wait_answered == 125
    assert billing.abandon_rate == 2 / 6
    assert billing.avg_abandon_wait == 21.5  # (3 + 40) / 2
    assert (billing.transferred, billing.ring_no_answer, billing.handled) == (1, 1, 4)
    # Talk = calltime - hold: b1 115-30 = 85, b2 60, b5 120-15 = 105, b6 50 → 300.
    # Hold: b1 30, b5 10+5 → 45. Wrap-up: b1 10, b2 10, b5 5 (ready early), b6 10 → 35.
    assert (billing.talk, billing.hold, billing.wrapup) == (300, 45, 35)
    assert billing.aht == 95.0  # (300 + 45 + 35) / 4 = 380 / 4
    assert billing.avg_talk == 75 and billing.avg_hold == 11.25 and billing.avg_wrapup == 8.75

    repair = day.live.queue_stats("repair", H8, H11)
    # Offered r1..r5 = 5; answered r1 (10, in SL) and r2 (25, not); r3 timed out, r4
    # left by key, r5 abandoned after 7 s (< 10: short). Resolved 5.
    assert (repair.offered, repair.answered, repair.answered_in_sl) == (5, 2, 1)
    assert (repair.abandoned, repair.short_abandoned) == (1, 1)
    assert (repair.timed_out, repair.exited_key, repair.waiting) == (1, 1, 0)
    assert repair.sl == 1 / 4  # 1 / (5 - 1)
    assert repair.sl2 == 1 / 5
    assert repair.asa == 17.5  # (10 + 25) / 2
    assert repair.abandon_rate == 1 / 5
    # r1 and r2: 60 s each, no hold, wrap-up 0 (the queue has none).
    assert (repair.handled, repair.talk, repair.hold, repair.wrapup, repair.aht) == (
        2, 120, 0, 0, 60)

    vip = day.live.queue_stats("vip", H8, H11)
    assert (vip.offered, vip.joined_empty, vip.sl, vip.asa, vip.aht) == (0, 1, None, None, None)


def test_queue_figures_by_hour(day: Day) -> None:
    rows = day.live.report(H8, H11, "hour", tz=UTC)
    assert [(r.start, r.end) for r in rows] == [(H8, H9), (H9, H10), (H10, H11)]
    h8, h9, h10 = (_q(r.queues, "billing") for r in rows)
    # 08:00: b1..b4. Answered b1 (5, in SL) and b2 (125); b3 short, b4 long abandon.
    assert (h8.offered, h8.answered, h8.answered_in_sl, h8.abandoned) == (4, 2, 1, 2)
    assert h8.sl == 1 / 3 and h8.sl2 == 1 / 4  # 1 / (4 - 1) and 1 / 4
    assert h8.asa == 65  # (5 + 125) / 2
    # b2 is counted at 08:00 though answered and transferred in the same hour; its
    # handle time: 60 + 10 wrap-up; b1: 115 + 10 → (125 + 70) / 2.
    assert h8.aht == 97.5
    # 09:00: b5 (20) and b6 (2), both in SL; AHT (120 + 5 + 50 + 10) / 2.
    assert (h9.offered, h9.answered_in_sl, h9.sl, h9.asa, h9.aht) == (2, 2, 1.0, 11, 92.5)
    # 10:00: b7, waiting: offered but not resolved, so no rate yet.
    assert (h10.offered, h10.waiting, h10.resolved, h10.sl, h10.abandon_rate) == (
        1, 1, 0, None, None)
    # Counts and sums add up across buckets to the whole-day figures.
    total = day.live.queue_stats("billing", H8, H11)
    for name in ("offered", "answered", "answered_in_sl", "abandoned", "short_abandoned",
                 "waiting", "handled", "wait_answered", "talk", "hold", "wrapup"):
        assert getattr(h8, name) + getattr(h9, name) + getattr(h10, name) == \
            getattr(total, name), name
    # 15-minute buckets: 12 of them, b1..b4 all in the first.
    quarter = day.live.report(H8, H11, "15m", tz=UTC)
    assert len(quarter) == 12
    assert [_q(r.queues, "billing").offered for r in quarter] == [4, 0, 0, 0, 2, 0, 0, 0,
                                                                  1, 0, 0, 0]
    assert _q(quarter[0].queues, "repair").offered == 5


def test_agent_figures(day: Day) -> None:
    a1 = day.live.agent_stats("1001", H8, H11)
    # 1001: ready 0-10, 215-3600, 3745-7200 = 10 + 3385 + 3455 = 6850 (the offer of b2
    # at 140 came the moment its wrap-up ended: no ready time there).
    # ringing 10-15, 140-145, 3600-3620 = 30; on call 15-40, 70-130, 145-205, 3620-3650,
    # 3660-3700, 3705-3740 = 25+60+60+30+40+35 = 250; on hold 30+10+5 = 45;
    # wrap-up 130-140, 205-215, 3740-3745 = 25. Logged in 0-7200.
    assert dict(a1.state_time) == {"ready": 6850, "not_ready": 0, "ringing": 30,
                                   "on_call": 250, "on_hold": 45, "wrapup": 25}
    assert a1.logged_in == 7200 and a1.staffed == 7200 and a1.busy == 350
    assert a1.occupancy == 350 / 7200
    # Answered b1, b2, b5; b2 transferred. Talk 85 + 60 + 105, hold 45, wrap-up 25.
    assert (a1.answered, a1.handled, a1.transferred, a1.ring_no_answer) == (3, 3, 1, 0)
    assert (a1.talk, a1.hold, a1.wrapup) == (250, 45, 25)
    assert a1.aht == 320 / 3

    a2 = day.live.agent_stats("1002", H8, H11)
    # 1002: ready 0-20, 300-405, 490-3610, 3672-3700 = 20 + 105 + 3120 + 28 = 3273;
    # ringing 20-45, 405-430, 3610-3612 = 52; on call 430-490, 3612-3662 = 110;
    # wrap-up 490-490 (none in repair), 3662-3672 = 10; not ready 45-300 (ring-no-answer)
    # = 255 and 3700-4000 (lunch) = 300. Logged in 0-4000.
    assert dict(a2.state_time) == {"ready": 3273, "not_ready": 555, "ringing": 52,
                                   "on_call": 110, "on_hold": 0, "wrapup": 10}
    assert dict(a2.not_ready_time) == {"lunch": 300, "ring-no-answer": 255}
    # staffed = 4000 - 555; busy = 52 + 110 + 10.
    assert a2.logged_in == 4000 and a2.staffed == 3445 and a2.busy == 172
    assert a2.occupancy == 172 / 3445
    assert (a2.answered, a2.handled, a2.ring_no_answer) == (2, 2, 1)
    assert (a2.talk, a2.wrapup, a2.aht) == (110, 10, 60)  # (60 + 0 + 50 + 10) / 2

    a3 = day.live.agent_stats("1003", H8, H11)
    # 1003: ringing 400-410, on call 410-470 and the direct call 5000-5100 = 160,
    # ready the rest of 0-7200: 7200 - 10 - 160 = 7030.
    assert dict(a3.state_time) == {"ready": 7030, "not_ready": 0, "ringing": 10,
                                   "on_call": 160, "on_hold": 0, "wrapup": 0}
    assert a3.occupancy == 170 / 7200
    assert (a3.answered, a3.handled, a3.aht) == (1, 1, 60)


def test_agent_time_is_cut_at_interval_edges(day: Day) -> None:
    rows = day.live.report(H8, H10, "hour", tz=UTC)
    h8, h9 = (_a(r.agents, "1001") for r in rows)
    # 08:00-09:00: ready 10 + 3385; ringing 5 + 5; on call 25 + 60 + 60; hold 30;
    # wrap-up 10 + 10. 09:00-10:00: ready 3455, ringing 20, on call 30 + 40 + 35,
    # hold 15, wrap-up 5.
    assert dict(h8.state_time) == {"ready": 3395, "not_ready": 0, "ringing": 10,
                                   "on_call": 145, "on_hold": 30, "wrapup": 20}
    assert dict(h9.state_time) == {"ready": 3455, "not_ready": 0, "ringing": 20,
                                   "on_call": 105, "on_hold": 15, "wrapup": 5}
    assert (h8.answered, h9.answered) == (2, 1)
    # A window inside a state: 08:00:45-08:01:05 is all on hold (40-70).
    mid = day.live.agent_stats("1001", H8 + 45, H8 + 65)
    assert dict(mid.state_time)["on_hold"] == 20 and mid.logged_in == 20


def test_live_figures_while_the_day_runs(db: Storage) -> None:
    """Midway, a call talking or wrapping up is answered but not yet handled, and an
    agent's current state counts up to ``now``."""
    d = Day(db)
    d.at(0)
    d.acd.login("1001", 0, ready=True)
    d.acd.enqueue("c", "billing", 10)
    d.acd.answered("c", "1001", 12)
    d.flush()
    q = d.live.queue_stats("billing", H8, H9)
    assert (q.answered, q.handled, q.asa, q.aht, q.sl) == (1, 0, 2, None, 1.0)
    a = d.live.agent_stats("1001", H8, H9, now=H8 + 30)
    assert dict(a.state_time) == {"ready": 10, "not_ready": 0, "ringing": 2, "on_call": 18,
                                  "on_hold": 0, "wrapup": 0}
    d.acd.call_ended("c", 40)
    d.flush()
    assert d.live.queue_stats("billing", H8, H9).handled == 0  # wrapping up until 50
    d.at(50)
    assert d.live.queue_stats("billing", H8, H9).aht == 38  # 28 talk + 10 wrap-up


def _from_storage(db: Storage, since: float | None) -> AcdStats:
    """What ``hotline report`` does."""
    stats = AcdStats.for_queues(QUEUES)
    if since is not None:
        stats.feed_all(db.agent_states_at(since))
    stats.feed_all(db.agent_states_since(since))
    stats.feed_all(db.queue_log_since(since))
    return stats


def test_live_equals_history_read_back_from_storage(day: Day) -> None:
    stored = _from_storage(day.db, None)
    assert stored.report(H8, H11, "hour", tz=UTC) == day.live.report(H8, H11, "hour", tz=UTC)
    assert stored.report(H8, H11, "15m", tz=UTC) == day.live.report(H8, H11, "15m", tz=UTC)
    # A report that starts in the middle of the day reads only from its start (plus each
    # agent's state at that moment) and still agrees with the live accumulator.
    since = H8 + 120  # 08:02: b1 talking, b2 waiting
    partial = _from_storage(day.db, since)
    assert partial.report(since, H11, "hour", tz=UTC) == \
        day.live.report(since, H11, "hour", tz=UTC)
    first = _q(partial.report(since, H9, None)[0].queues, "billing")
    assert first.offered == 0  # b1..b4 entered before 08:02
    assert _a(partial.report(since, H9)[0].agents, "1001").answered == 1  # b2, at 145


def test_storage_round_trip_is_exact(day: Day) -> None:
    stored: list[QueueEvent | AgentStateChanged] = [*day.db.queue_log_since(None),
                                                    *day.db.agent_states_since(None)]
    expected = [e for e in day.events if isinstance(e, QueueEvent | AgentStateChanged)]
    moved = sorted(e.at + OFFSET for e in expected)
    assert sorted(e.at for e in stored) == moved
    q = day.db.queue_log_since(H8 + 400, H8 + 430)
    assert [(e.event, e.call_id) for e in q] == [
        ("ENTERQUEUE", "r1"), ("ENTERQUEUE", "r2"), ("ENTERQUEUE", "r3"),
        ("CONNECT", "r1"), ("ENTERQUEUE", "r4"), ("EXITWITHKEY", "r4")]
    assert q[0].data == ("", "", "1") and q[0].at == H8 + 400
    at_1000 = day.db.agent_states_at(H8 + 1000)
    assert [(s.agent, s.state) for s in at_1000] == [
        ("1001", "ready"), ("1002", "ready"), ("1003", "ready")]


def test_json_is_plain(day: Day) -> None:
    import json

    row = day.live.report(H8, H9, tz=UTC)[0]
    data = json.loads(json.dumps(row.to_json()))
    billing = next(q for q in data["queues"] if q["queue"] == "billing")
    assert billing["sl"] == 1 / 3 and billing["aht"] == 97.5 and billing["offered"] == 4
    agent = next(a for a in data["agents"] if a["agent"] == "1001")
    assert agent["state_time"]["on_call"] == 145 and agent["occupancy"] == 205 / 3600


def test_prune_keeps_what_is_still_needed(day: Day) -> None:
    before = day.live.report(H9, H11, "hour", tz=UTC)
    day.live.prune(H9)
    assert day.live.report(H9, H11, "hour", tz=UTC) == before
    assert [c.call_id for c in day.live._calls] == ["b5", "b6", "b7"]
    assert set(day.live._current) == {"b5", "b6", "b7"}
    assert set(day.live._work) == {("b5", "billing"), ("b6", "billing")}
    assert day.live.queue_stats("billing", H8, H9).offered == 0  # forgotten
    assert day.live.queue_stats("billing", H10, H11).waiting == 1  # b7 kept


def test_targets_and_unknown_queues() -> None:
    stats = AcdStats({"a": QueueTargets(service_level=10, short_abandon=3)})
    stats.feed(QueueEvent(0, "c1", "a", "NONE", "ENTERQUEUE", ("", "", "1")))
    stats.feed(QueueEvent(11, "c1", "a", "7", "CONNECT", ("11", "c1", "1")))
    stats.feed(QueueEvent(0, "c2", "z", "NONE", "ENTERQUEUE", ("", "", "1")))
    stats.feed(QueueEvent(3, "c2", "z", "NONE", "ABANDON", ("1", "1", "3")))
    assert stats.queues() == ["a", "z"]
    a = stats.queue_stats("a", 0, 60)
    assert (a.service_level, a.answered, a.answered_in_sl) == (10, 1, 0)
    z = stats.queue_stats("z", 0, 60)  # default thresholds: SL 20, short abandon 5
    assert (z.service_level, z.short_abandoned, z.sl, z.sl2) == (20, 1, None, 0.0)
    # A CONNECT whose ENTERQUEUE was not fed counts for the agent, not the queue.
    stats.feed(QueueEvent(30, "old", "a", "7", "CONNECT", ("99", "old", "1")))
    assert stats.queue_stats("a", 0, 60).answered == 1
    assert stats.agent_stats("7", 0, 60).answered == 2
    assert set(AGENT_STATES) == set(stats.agent_stats("7", 0, 60).state_time)


def test_bucket_bounds_follow_local_time() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    start = datetime(2024, 5, 1, 6, 30, tzinfo=shanghai).timestamp()
    end = datetime(2024, 5, 3, 0, 0, tzinfo=shanghai).timestamp()
    assert [datetime.fromtimestamp(b, shanghai).isoformat() for b in
            bucket_bounds(start, end, "day", shanghai)] == [
        "2024-05-01T06:30:00+08:00", "2024-05-02T00:00:00+08:00", "2024-05-03T00:00:00+08:00"]
    # New York's spring-forward day has 23 hours.
    ny = ZoneInfo("America/New_York")
    s = datetime(2024, 3, 10, tzinfo=ny).timestamp()
    e = datetime(2024, 3, 11, tzinfo=ny).timestamp()
    assert bucket_bounds(s, e, "day", ny) == [s, e] and e - s == 23 * 3600
    assert len(bucket_bounds(s, e, "hour", ny)) == 24  # 23 buckets
    # Kolkata hours start at :30 UTC; 15-minute buckets cut the first partial one.
    kolkata = ZoneInfo("Asia/Kolkata")
    s = datetime(2024, 5, 1, 8, 50, tzinfo=kolkata).timestamp()
    bounds = bucket_bounds(s, s + 3600, "hour", kolkata)
    assert [datetime.fromtimestamp(b, kolkata).strftime("%H:%M") for b in bounds] == [
        "08:50", "09:00", "09:50"]
    assert [datetime.fromtimestamp(b, UTC).strftime("%H:%M") for b in bounds] == [
        "03:20", "03:30", "04:20"]
    bounds = bucket_bounds(s, s + 1800, "15m", kolkata)
    assert [datetime.fromtimestamp(b, kolkata).strftime("%H:%M") for b in bounds] == [
        "08:50", "09:00", "09:15", "09:20"]
    with pytest.raises(ValueError, match="interval must be one of 15m, hour, day"):
        bucket_bounds(0, 1, "week")
    with pytest.raises(ValueError, match="empty interval"):
        bucket_bounds(1, 1)
