"""``tone:`` prompts played by a real worker (MediaPool), measured on the RTP received.

``tone:beep`` is what voicemail plays before recording (acd/voicemail.py): 1000 Hz for
400 ms at -10 dBm0, then ``playback_done``. Call-progress tones played without ``loop``
are finite prompts of whole cadence cycles.
"""

from __future__ import annotations

import asyncio
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from rtp_peer import Peer, dominant_freq  # noqa: E402

from cext.tones import DBM0_PEAK  # noqa: E402
from media.client import MediaError, MediaPool  # noqa: E402
from media.events import PlaybackDone  # noqa: E402
from media.prompts import tone_prompt  # noqa: E402

PORTS = (31000, 31999)
LO = "127.0.0.1"


def run(coro_fn, tmp_path):
    async def main():
        events = []
        pool = MediaPool(1, PORTS, str(tmp_path), rtp_ip=LO, data_dir=str(tmp_path))
        pool.on_event = events.append
        await asyncio.wait_for(pool.start(), 20)
        try:
            return await asyncio.wait_for(coro_fn(pool, events), 45)
        finally:
            await pool.close()
    return asyncio.run(main())


async def _play_and_capture(pool, events, ep, peer: Peer, source: str,
                            timeout: float) -> tuple[np.ndarray, PlaybackDone]:
    """Play ``source`` and collect what the peer receives until ``playback_done`` plus
    0.2 s."""
    peer.drain()
    peer.received.clear()
    play_id = await pool.play(ep, source)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    done = None
    while done is None and loop.time() < deadline:
        await asyncio.sleep(0.02)
        peer.drain()
        done = next((e for e in events if isinstance(e, PlaybackDone)
                     and e.play_id == play_id), None)
    assert done is not None, f"no playback_done for {source} within {timeout} s"
    await asyncio.sleep(0.2)
    peer.drain()
    return peer.audio(), done


def _bursts(x: np.ndarray, threshold: float = 1000.0) -> list[tuple[int, int]]:
    """(first, last + 1) sample of each run of tone (gaps shorter than 4 ms bridged)."""
    loud = np.flatnonzero(np.abs(x.astype(np.int32)) > threshold)
    if not len(loud):
        return []
    out, start, prev = [], int(loud[0]), int(loud[0])
    for i in loud[1:].tolist():
        if i - prev > 32:
            out.append((start, prev + 1))
            start = i
        prev = i
    out.append((start, prev + 1))
    return out


def _level_dbm0(x: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    return 20 * np.log10(rms * np.sqrt(2) / DBM0_PEAK)


def test_beep_and_finite_call_progress_tones(tmp_path):
    async def body(pool, events):
        peer = Peer()
        ep = await pool.create_endpoint("t", remote_ip=LO, remote_port=peer.port)
        beep, beep_done = await _play_and_capture(pool, events, ep, peer, "tone:beep", 5.0)
        busy, busy_done = await _play_and_capture(pool, events, ep, peer, "tone:busy:2", 6.0)
        with pytest.raises(MediaError, match="source: tone:nope"):
            await pool.play(ep, "tone:nope")
        peer.close()
        return beep, beep_done, busy, busy_done

    beep, beep_done, busy, busy_done = run(body, tmp_path)
    assert beep_done.reason == "done" and busy_done.reason == "done"
    (b0, b1), = _bursts(beep)  # exactly one burst
    assert abs((b1 - b0) / 8 - 400) <= 2, (b1 - b0) / 8  # ms (edges within a 1 kHz period)
    tone = beep[b0 + 80:b1 - 80]
    assert abs(dominant_freq(tone) - 1000) < 10
    assert abs(_level_dbm0(tone) - -10.0) < 0.5, _level_dbm0(tone)  # G.711 keeps the level
    # busy (China): 450 Hz at -10 dBm0, 0.35 s on / 0.35 s off, two cycles then done
    bursts = _bursts(busy)
    assert len(bursts) == 2, bursts
    for b0, b1 in bursts:
        assert abs((b1 - b0) / 8 - 350) <= 4, (b1 - b0) / 8
        assert abs(dominant_freq(busy[b0 + 80:b1 - 80]) - 450) < 10
    assert abs((bursts[1][0] - bursts[0][0]) / 8 - 700) <= 4


def test_tone_sources() -> None:
    """The generators behind the sources (no worker): lengths, looping, errors."""
    def length(spec: str, loop: bool, cap: int = 8000 * 20) -> int:
        gen, buf, n = tone_prompt(spec, loop), np.zeros(160, np.int16), 0
        while n < cap:
            n += 160
            if gen.fill(buf):
                return n
        return n

    assert length("beep", False) == 3200
    assert length("busy", False) == 5 * 5600        # >= 3 s of whole 0.7 s cycles
    assert length("ringback", False) == 40000       # one 5 s cycle
    assert length("busy:us:2", False) == 16000
    assert length("congestion:3", False) == 3 * 11200
    assert length("ringback", True) == 8000 * 20    # loop: never done
    assert length("beep", True) == 8000 * 20
    assert length("dtmf:12", False) == 2 * 1600
    for bad in ("nope", "beep:us", "busy:0", "busy:xx", "reorder", "busy:us:1:2", "dtmf"):
        with pytest.raises(ValueError, match=f"tone:{bad}"):
            tone_prompt(bad, False)
