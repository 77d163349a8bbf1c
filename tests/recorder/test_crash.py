"""A real crash: a media worker recording a call is killed with SIGKILL; recovery then
repairs the file and the audio that was sent is in it, caller left and agent right."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cext.g711 import decode as g711_decode
from cext.g711 import encode as g711_encode
from hotline.storage import Storage
from media.client import MediaPool
from media.events import MediaEvent, WorkerDied
from recorder.index import RecordingIndex, RecordingState
from recorder.naming import recordings_dir
from recorder.recovery import recover
from recorder.wav import inspect
from tests.media.rtp_peer import Peer, stream

from .helpers import decode

PORTS = (36400, 36599)
LO = "127.0.0.1"
SEND_SECONDS = 1.5


def pattern(seed: int, seconds: float = 2.0) -> npt.NDArray[np.int16]:
    """Noise (nothing periodic, so the alignment is unique) as PCMU carries it."""
    noise = np.random.default_rng(seed).normal(0, 4000, int(seconds * 8000))
    pcm = noise.clip(-32000, 32000).astype(np.int16)
    return g711_decode(g711_encode(pcm, "pcmu"), "pcmu")


def aligned_correlation(got: npt.NDArray[np.int16], ref: npt.NDArray[np.int16]) -> float:
    """Correlation of the non-silent part of ``got`` with ``ref`` at the best lag."""
    loud = np.flatnonzero(np.abs(got.astype(np.int32)) > 200)
    if len(loud) < 800:
        return 0.0
    seg = got[loud[0] : loud[-1] + 1].astype(np.float64)
    n = len(seg) + len(ref)
    xc = np.fft.irfft(np.fft.rfft(ref.astype(np.float64), n) * np.conj(np.fft.rfft(seg, n)), n)
    lag = int(np.argmax(xc[: len(ref)]))  # ref[lag + i] ~ seg[i]
    m = min(len(seg), len(ref) - lag)
    return float(np.corrcoef(seg[:m], ref[lag : lag + m])[0, 1])


def test_worker_killed_while_recording(tmp_path: Path) -> None:
    caller, agent = pattern(1), pattern(2)
    storage = Storage.open(tmp_path)
    index = RecordingIndex(storage)
    rec = index.start("crash@test", datetime.now(UTC), caller="100", agents=["1001"])
    path = recordings_dir(tmp_path) / rec.path

    async def main() -> list[MediaEvent]:
        events: list[MediaEvent] = []
        pool = MediaPool(1, PORTS, str(tmp_path), rtp_ip=LO, data_dir=str(tmp_path),
                         restart=False)  # fmt: skip
        pool.on_event = events.append
        await asyncio.wait_for(pool.start(), 20)
        pa, pb = Peer(0, "pcmu"), Peer(0, "pcmu")
        try:
            a = await pool.create_endpoint("k", remote_ip=LO, remote_port=pa.port, codec="pcmu")
            b = await pool.create_endpoint("k", remote_ip=LO, remote_port=pb.port, codec="pcmu")
            await pool.set_room("k", [a, b])
            await pool.record(str(path), left=[a], right=[b])
            await asyncio.to_thread(
                stream,
                [(pa, caller, (LO, a.local_port)), (pb, agent, (LO, b.local_port))],
                SEND_SECONDS,
            )
            pid = pool.worker_pids()[0]
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            for _ in range(200):
                if any(isinstance(e, WorkerDied) for e in events):
                    break
                await asyncio.sleep(0.02)
        finally:
            pa.close()
            pb.close()
            await pool.close()
        return events

    try:
        events = asyncio.run(main())
        assert any(isinstance(e, WorkerDied) for e in events)
        before = inspect(path)
        assert before.declared_size < before.data_size  # the header is behind the disk

        out = recover(tmp_path, storage)
        assert [(i.action, i.recording.id) for i in out] == [("repaired", rec.id)]  # type: ignore[union-attr]
        after = index.get(rec.id)
        assert after is not None and after.state == RecordingState.REPAIRED
        pcm, rate = decode(path)
        assert rate == 8000 and pcm.shape[1] == 2
        assert after.seconds == len(pcm) / 8000 >= 0.5
        assert aligned_correlation(pcm[:, 0], caller) > 0.9  # caller left
        assert aligned_correlation(pcm[:, 1], agent) > 0.9  # agent right
        assert abs(aligned_correlation(pcm[:, 0], agent)) < 0.2  # not swapped
    finally:
        storage.close()
