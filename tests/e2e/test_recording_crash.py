"""kill -9 of the whole server (control process and media workers) during 20 recorded
calls: the next start repairs, indexes and transcodes 20 playable recordings holding the
callers' audio, and closes 20 CDRs that point to them."""

from __future__ import annotations

import csv
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from .peers import HotlineProcess, free_port, process_tree, start_sipp
from .test_media_path import PCAPS, _alaw_decode, _best_correlation, _pcap_rtp_payloads

pytestmark = pytest.mark.e2e

CALLS = 20


def _query(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()


def _wait(pred: Callable[[], bool], timeout: float, what: str, log: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{log()[-4000:]}")


def _decode_left(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as f:
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=8000)
        chunks = []
        for frame in f.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1, 2))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1, 2))
    return np.concatenate(chunks)[:, 0].astype(float)


def test_kill_9_during_recorded_calls_leaves_recordings_and_cdrs(
    hotline_factory: Callable[..., HotlineProcess], tmp_path: Path
) -> None:
    server = hotline_factory('\n[recording]\nformat = "opus"\n')
    db = server.data_dir / "hotline.db"
    carrier = tmp_path / "carrier"
    carrier.mkdir()
    (carrier / "pcap").symlink_to(PCAPS)
    # 20 carrier calls to echo; each plays 8 s of g711a.pcap
    sipp = start_sipp(["-sn", "uac_pcap", f"127.0.0.1:{server.sip_port}", "-s", "*43",
                       "-i", "127.0.0.2", "-p", str(free_port(host="127.0.0.2")),
                       "-r", str(CALLS), "-l", str(CALLS), "-m", str(CALLS),
                       "-timeout", "40s"], cwd=carrier)
    restarted: HotlineProcess | None = None
    try:
        _wait(lambda: len(_query(db, "SELECT id FROM cdr WHERE end_time IS NULL")) == CALLS,
              20, "20 answered calls", server.log)
        time.sleep(4.0)  # audio flows into the recordings
        assert server.proc is not None
        victims = [server.proc.pid, *(process_tree(server.proc.pid) - {server.proc.pid})]
        assert len(victims) >= 2  # the control process and its media worker
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        server.proc.wait(5)
        sipp.kill()
        sipp.wait(5)
        assert len(_query(db, "SELECT id FROM recordings WHERE state = 'live'")) == CALLS

        restarted = HotlineProcess(config=server.config, data_dir=server.data_dir,
                                   sip_port=server.sip_port)
        restarted.start()
        _wait(lambda: len(_query(db, "SELECT id FROM recordings WHERE state = 'transcoded'"))
              == CALLS, 90, "20 transcoded recordings", restarted.log)
    finally:
        if sipp.poll() is None:
            sipp.kill()
        if restarted is not None:
            restarted.stop()

    out = subprocess.run([sys.executable, "-m", "hotline", "cdr", "export", "--csv",
                          "--config", str(server.config)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    cdrs = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(cdrs) == CALLS
    recs = {row[0]: row for row in _query(
        db, "SELECT id, path, format, seconds FROM recordings")}
    assert len(recs) == CALLS
    ref = _alaw_decode(_pcap_rtp_payloads(PCAPS / "g711a.pcap")).astype(float)
    for cdr in cdrs:
        assert cdr["end_time"] and cdr["hangup_cause"] == "server_restart", cdr
        assert int(cdr["billsec"]) >= 2, cdr
        rec_id, path, fmt, seconds = recs[cdr["recording_id"]]
        assert fmt == "opus" and float(seconds) >= 2.5, (rec_id, seconds)  # type: ignore[arg-type]
        left = _decode_left(server.data_dir / "recordings" / str(path))
        assert abs(len(left) / 8000 - float(seconds)) < 0.2  # type: ignore[arg-type]
        # the caller's side is the pcap's audio (through G.711 and Opus)
        assert _best_correlation(left, ref) > 0.8, rec_id
