"""A conference room reached through an IVR with two media workers: each caller's
endpoint is made where the pool puts its call, so callers land in both workers, and
those outside the room's worker join through a cross-worker link.

Four phones (tones 700, 1100, 1500, 1900 Hz) call an IVR that plays a beep and sends
them to ``conference:team``. Each must hear the three others and not itself, the call
recordings (one per call, in the caller's worker) must carry the caller on the left and
the room on the right, the last one left alone (a linked one) hears music on hold through
its link, and after the hangups no call, endpoint or RTP socket is left. When either
worker of a link dies, its caller is hung up and the link's other half is freed.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hotline.moh import NOTES_HZ

from .audio import TONES, levels, read_wav, tone_wav
from .peers import HotlineProcess, PjPhone, metric, process_tree

pytestmark = pytest.mark.e2e

USERS = ("1001", "1002", "1003", "1004")
SITE = """
[recording]
format = "wav"

[ivr.lobby]
start = "hello"

[ivr.lobby.steps.hello]
kind = "play"
prompt = "tone:beep"
next = "conference:team"
""" + "".join(f"""
[[agents]]
id = "{u}"
name = "Agent {u}"
password = "pw-{u}-secret"
""" for u in ("1003", "1004"))
ROUTE = '[[routes]]\nmatch = "801"\nto = "ivr:lobby"\n'
JOIN = re.compile(r"call_id=(\S+) event=conference_join room=team size=\d+ "
                  r"worker=(\d+) room_worker=(\d+)")


def _udp_ports_held(pids: set[int], lo: int, hi: int) -> list[int]:
    """Local UDP ports in ``lo..hi`` of sockets that processes ``pids`` hold."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = []
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        port = int(fields[1].split(":")[1], 16)
        if fields[9] in inodes and lo <= port <= hi:
            ports.append(port)
    return ports


def _wait(cond: Callable[[], bool], what: str, server: HotlineProcess,
          timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}:\n{server.log()[-4000:]}")


def _recordings(server: HotlineProcess) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{server.data_dir / 'hotline.db'}?mode=ro", uri=True,
                           timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM recordings").fetchall()
    finally:
        conn.close()


def _all_others(pcm: np.ndarray, rate: int, own: int) -> tuple[int, float]:
    """Frames (0.2 s) in which the three other callers' tones are all heard, and the
    median level of the caller's own tone in those frames."""
    freqs = [float(TONES[u]) for u in USERS]
    lv = levels(pcm, rate, freqs)
    others = [i for i, f in enumerate(freqs) if f != own]
    all_in = (lv[:, others] > 400).all(axis=1)
    mine = freqs.index(own)
    return int(all_in.sum()), float(np.median(lv[all_in, mine])) if all_in.any() else 0.0


def _join(server: HotlineProcess, tmp_path: Path, phones: dict[str, PjPhone],
          user: str) -> None:
    """Extension ``user``'s phone calls the IVR and is put in the room."""
    p = phones[user] = PjPhone(tmp_path / f"phone-{user}", user, f"pw-{user}-secret",
                               server.sip_port,
                               tone_wav(tmp_path / f"tone-{user}.wav", TONES[user]))
    assert p.wait(event="registered", timeout=10)["code"] == 200, server.log()[-3000:]
    p.send("call", uri=f"sip:801@127.0.0.1:{server.sip_port}")
    p.wait(event="state", call=0, state="CONFIRMED", timeout=10)
    _wait(lambda: len(JOIN.findall(server.log())) == len(phones),
          f"caller {user} did not join the room", server)


def _joins(server: HotlineProcess) -> dict[str, tuple[int, int]]:
    """Extension -> (its endpoint's worker, the room's worker) of each join so far."""
    log = server.log()
    callers = dict(re.findall(r"call_id=(\S+) event=invite called=801 caller=(\d+)", log))
    return {callers[c]: (int(w), int(rw)) for c, w, rw in JOIN.findall(log)}


def _worker_pid(server: HotlineProcess, index: int) -> int:
    assert server.proc is not None
    for pid in process_tree(server.proc.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"media.worker" in argv and argv[argv.index(b"--id") + 1] == str(index).encode():
            return pid
    raise AssertionError(f"no media worker {index}")


def _nothing_left(server: HotlineProcess, *, recordings: bool = True) -> None:
    """No call, no endpoint held by call control, no RTP socket in any worker (and no
    live recording, unless ``recordings`` is false: the recorder keeps the handle of a
    recording whose worker died until the next start repairs the file)."""
    _wait(lambda: metric(server, "hotline_calls") == 0
          and metric(server, "hotline_media_endpoints") == 0
          and (not recordings or metric(server, "hotline_recordings_live") == 0),
          "calls or endpoints left", server)
    assert server.proc is not None
    pids = process_tree(server.proc.pid)
    assert len(pids) >= 3, pids  # the server and its two media workers
    _wait(lambda: not _udp_ports_held(pids, *_rtp_ports()), "RTP sockets left", server)


def _rtp_ports() -> tuple[int, int]:
    """The site's RTP port range (tests/e2e/conftest.py)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    lo = 31000 + 2000 * int(worker.removeprefix("gw") or 0)
    return lo, lo + 999


def test_ivr_callers_in_two_workers_share_one_room(
        hotline_factory: Callable[..., HotlineProcess], tmp_path: Path) -> None:
    server = hotline_factory(SITE, routes_first=ROUTE, workers=2)
    phones: dict[str, PjPhone] = {}
    try:
        for user in USERS:
            _join(server, tmp_path, phones, user)
        time.sleep(3.0)  # all four talk

        joins = _joins(server)
        assert len({rw for _w, rw in joins.values()}) == 1, joins  # one room, one worker
        linked = [u for u, (w, rw) in joins.items() if w != rw]
        direct = [u for u, (w, rw) in joins.items() if w == rw]
        assert linked and direct, joins  # callers landed in both workers

        # The direct ones leave first (the room's first participant among them), then
        # all but one linked caller: it stays alone and hears music on hold.
        last = linked[-1]
        for user in [*direct, *(u for u in linked if u != last)]:
            phones[user].send("hangup", call=0)
            phones[user].wait(event="state", call=0, state="DISCONNECTED", timeout=10)
            time.sleep(0.5)
        time.sleep(2.5)
        phones[last].send("hangup", call=0)
        phones[last].wait(event="state", call=0, state="DISCONNECTED", timeout=10)
    finally:
        for p in phones.values():
            p.stop()

    # Everyone heard the three others and not itself: its own tone would be ~10000; the
    # others' intermodulation through G.711 puts ~100 at some callers' own frequency.
    for user, p in phones.items():
        pcm, rate = read_wav(p.recording(0))
        frames, own = _all_others(pcm, rate, TONES[user])
        assert frames >= 5 and own < 1000, (user, frames, own, joins)
    pcm, rate = read_wav(phones[last].recording(0))
    notes = sorted({f for f in NOTES_HZ if f})
    lv = levels(pcm[-int(rate * 1.6):], rate, notes)
    assert (lv.max(axis=1) > 200).sum() >= 3, lv.max(axis=1)
    _nothing_left(server)

    # One recording per call, in the caller's worker: caller left, the room right.
    _wait(lambda: len([r for r in _recordings(server) if r["state"] == "done"]) == 4,
          "recordings not finished", server)
    for rec in _recordings(server):
        own = TONES[rec["caller"]]
        left, rate = read_wav(server.data_dir / "recordings" / rec["path"], 0)
        right, _ = read_wav(server.data_dir / "recordings" / rec["path"], 1)
        mine = levels(left, rate, [own])[:, 0]
        assert (mine > 500).mean() > 0.7, (rec["caller"], mine.round())
        frames, echo = _all_others(right, rate, own)
        assert frames >= 5 and echo < 1000, (rec["caller"], frames, echo, joins)


def test_a_dead_worker_hangs_up_its_callers_and_frees_the_links_other_half(
        hotline_factory: Callable[..., HotlineProcess], tmp_path: Path) -> None:
    """1001 is in the room's worker, 1002 joins through a link: killing 1002's worker
    hangs 1002 up and frees the link's far half (1001 stays). 1003 then joins through a
    link from the restarted worker: killing the room's worker hangs up 1001 and 1003 and
    frees 1003's endpoint and the link's near half."""
    server = hotline_factory(SITE, routes_first=ROUTE, workers=2)
    phones: dict[str, PjPhone] = {}
    try:
        _join(server, tmp_path, phones, "1001")
        _join(server, tmp_path, phones, "1002")
        room, other = _joins(server)["1001"][1], _joins(server)["1002"][0]
        assert room != other, _joins(server)
        os.kill(_worker_pid(server, other), signal.SIGKILL)
        phones["1002"].wait(event="state", call=0, state="DISCONNECTED", timeout=10)
        _wait(lambda: metric(server, "hotline_media_endpoints") == 1
              and metric(server, "hotline_media_worker_restarts_total") == 1,
              "the link's far half was not freed", server)
        assert not phones["1001"].has(event="state", call=0, state="DISCONNECTED")
        room_pid = _worker_pid(server, room)  # holds 1001's endpoint, no more
        _wait(lambda: len(_udp_ports_held({room_pid}, *_rtp_ports())) == 1,
              "the link's far half still has its socket", server)
        time.sleep(1.0)  # the replacement worker answers

        _join(server, tmp_path, phones, "1003")
        assert _joins(server)["1003"] == (other, room), _joins(server)
        time.sleep(1.0)
        os.kill(_worker_pid(server, room), signal.SIGKILL)
        for user in ("1001", "1003"):
            phones[user].wait(event="state", call=0, state="DISCONNECTED", timeout=10)
    finally:
        for p in phones.values():
            p.stop()
    log = server.log()
    assert log.count("cause=media_worker_died") == 3, log[-4000:]
    # 1003 heard 1001 through its link before the room's worker died
    pcm, rate = read_wav(phones["1003"].recording(0))
    assert (levels(pcm, rate, [float(TONES["1001"])])[:, 0] > 500).sum() >= 3
    _nothing_left(server, recordings=False)
