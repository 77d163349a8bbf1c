"""A recording of a call with one leg (a caller in an IVR) has on its right channel what
the caller hears; once an agent is attached (record_update), the agent's audio.

Real worker (MediaPool), real RTP on loopback; every signal is seeded noise, so a
normalised cross-correlation peak near 1 finds it in a channel and unrelated audio stays
near 0 (swapped or silent channels fail).
"""

from __future__ import annotations

import asyncio
import os
import sys
import wave

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from rtp_peer import Peer, ncc_peak, stream  # noqa: E402

from media.audiofile import write_wav  # noqa: E402
from media.client import MediaPool  # noqa: E402
from media.events import PlaybackDone  # noqa: E402

PORTS = (31000, 31999)
LO = "127.0.0.1"


def noise(seed: int, seconds: float, std: float = 3000.0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(0, std, int(8000 * seconds))
    return np.clip(x, -32000, 32000).astype(np.int16)


async def in_thread(fn, *a):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *a)


def test_one_leg_recording_has_the_prompt_then_the_agent(tmp_path):
    prompt = noise(1, 1.2)
    caller, agent = noise(2, 4.0), noise(3, 2.0)
    (tmp_path / "prompts").mkdir()
    write_wav(str(tmp_path / "prompts" / "menu.wav"), prompt, rate=8000)
    path = tmp_path / "rec" / "call.wav"

    async def main():
        events: list[object] = []
        pool = MediaPool(1, PORTS, str(tmp_path), rtp_ip=LO, data_dir=str(tmp_path))
        pool.on_event = events.append
        await asyncio.wait_for(pool.start(), 20)
        try:
            pa, pb = Peer(), Peer()
            a = await pool.create_endpoint("c", remote_ip=LO, remote_port=pa.port)
            rec = await pool.record(str(path), left=[a], right=[])
            play_id = await pool.play(a, "menu.wav")  # a name under DATA_DIR/prompts
            await in_thread(stream, [(pa, caller[:16000], (LO, a.local_port))], 2.0)
            assert any(isinstance(e, PlaybackDone) and e.play_id == play_id
                       and e.reason == "done" for e in events)
            b = await pool.create_endpoint("c", remote_ip=LO, remote_port=pb.port)
            await pool.set_room("c", [a, b])
            await pool.record_update(rec, [a], [b])
            await in_thread(stream, [(pa, caller[16000:], (LO, a.local_port)),
                                     (pb, agent, (LO, b.local_port))], 1.8)
            await pool.record_stop(rec)
            pa.close()
            pb.close()
        finally:
            await pool.close()

    asyncio.run(asyncio.wait_for(main(), 60))
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 2
        frames = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2)
    left, right = frames[:, 0], frames[:, 1]
    assert len(frames) > 8000 * 3
    # right: the prompt the caller heard (the samples sent to it, before G.711)
    peak, at = ncc_peak(right, prompt)
    assert peak > 0.95, peak
    # ... and, after record_update, the agent (through G.711 and the jitter buffer)
    agent_mid = agent[2400:10400]
    peak_agent, at_agent = ncc_peak(right, agent_mid)
    assert peak_agent > 0.9 and at_agent > at + len(prompt), (peak_agent, at_agent, at)
    # left: the caller's own audio all along, never the prompt or the agent
    assert ncc_peak(left, caller[4000:12000])[0] > 0.9
    assert ncc_peak(left, caller[20000:28000])[0] > 0.9
    assert ncc_peak(left, prompt)[0] < 0.3
    assert ncc_peak(left, agent_mid)[0] < 0.3
    # the right channel never carries the caller
    assert ncc_peak(right, caller[4000:12000])[0] < 0.3
