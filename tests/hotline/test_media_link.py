"""Cross-worker links (:meth:`hotline.mediactl.CallMedia.link`) between two real media
workers: audio and RFC 4733 digits cross both ways, and nothing is left behind."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "media"))
from rtp_peer import Peer, dominant_freq, stream, tone  # noqa: E402

from hotline.conference import ConferenceRooms  # noqa: E402
from hotline.mediactl import CallMedia  # noqa: E402
from media.client import MediaError, MediaPool  # noqa: E402
from media.events import DtmfReceived, MediaEvent  # noqa: E402

PORTS = (26000, 26999)  # below the ephemeral range, apart from e2e and benchmarks
LO = "127.0.0.1"


def _run(body: Callable[[CallMedia, list[MediaEvent]], Awaitable[Any]], tmp_path: Path,
         ports: tuple[int, int] = PORTS) -> Any:
    async def main() -> Any:
        # the default rtp_ip, a wildcard: the link must address the workers on loopback
        pool = MediaPool(2, ports, str(tmp_path), data_dir=str(tmp_path))
        events: list[MediaEvent] = []
        pool.on_event = events.append
        await asyncio.wait_for(pool.start(), 30)
        try:
            return await asyncio.wait_for(body(CallMedia(pool), events), 60)
        finally:
            await pool.close()
    return asyncio.run(main())


async def _endpoint_counts(pool: MediaPool) -> list[int]:
    return [int((await pool.stats(worker=i))["endpoints"]) for i in range(pool.n_workers)]


async def _wait_for(events: list[MediaEvent], match: Callable[[MediaEvent], bool],
                    timeout: float = 10.0) -> MediaEvent:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = next((e for e in events if match(e)), None)
        if found is not None:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"no such event in {events}")


def test_a_link_carries_audio_and_digits_both_ways_and_leaves_nothing(tmp_path: Path) -> None:
    async def body(media: CallMedia, events: list[MediaEvent]) -> tuple[np.ndarray, ...]:
        pool = media.pool
        pa, pb = Peer(), Peer()
        near = await pool.create_endpoint("caller", remote_ip=LO, remote_port=pa.port)
        far = await pool.create_endpoint("room", remote_ip=LO, remote_port=pb.port)
        assert near.worker != far.worker  # a new key goes to the least loaded worker
        a, b = await media.link(near, "room")
        assert (a.worker, a.call_key) == (near.worker, "caller")
        assert (b.worker, b.call_key) == (far.worker, "room")
        await media.bridge("caller", near, a)
        await media.bridge("room", far, b)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, stream, [
            (pa, tone(1000, 8000 * 3), (LO, near.local_port)),
            (pb, tone(440, 8000 * 3), (LO, far.local_port))], 2.0)
        await asyncio.sleep(0.3)
        pa.drain(), pb.drain()
        # RFC 4733 crosses too (telephone-event on both halves)
        await pool.dtmf_send(a, "7")
        digit = await _wait_for(events, lambda e: isinstance(e, DtmfReceived)
                                and (e.worker, e.endpoint) == (b.worker, b.id))
        assert isinstance(digit, DtmfReceived) and digit.digit == "7"
        assert (await pool.stats(b))["endpoint"]["remote_port"] == a.local_port
        for ep in (a, b, near, far):
            await media.destroy(ep)
        assert await _endpoint_counts(pool) == [0, 0]
        pa.close(), pb.close()
        return pa.audio(), pb.audio()

    heard_a, heard_b = _run(body, tmp_path)
    assert len(heard_a) > 8000 and len(heard_b) > 8000, (len(heard_a), len(heard_b))
    assert abs(dominant_freq(heard_a[-4000:]) - 440) < 10    # near's phone hears far's
    assert abs(dominant_freq(heard_b[-4000:]) - 1000) < 10   # and far's phone near's
    assert np.sqrt(np.mean(heard_a[-4000:].astype(float) ** 2)) > 2000


def test_a_link_that_cannot_be_made_leaves_nothing_behind(tmp_path: Path) -> None:
    """Each worker has two ports' worth of endpoints; the far worker is full, so the far
    half fails and the near half already made is destroyed."""
    async def body(media: CallMedia, events: list[MediaEvent]) -> list[int]:
        pool = media.pool
        near = await pool.create_endpoint("caller")
        await pool.create_endpoint("room")
        await pool.create_endpoint("room")
        assert await _endpoint_counts(pool) == [1, 2] or await _endpoint_counts(pool) == [2, 1]
        with pytest.raises(MediaError):
            await media.link(near, "room")
        return await _endpoint_counts(pool)

    counts = _run(body, tmp_path, ports=(26000, 26007))
    assert sorted(counts) == [1, 2], counts


def test_a_room_in_another_worker_is_joined_through_a_link(tmp_path: Path) -> None:
    """ConferenceRooms: the room lives in its first participant's worker; an endpoint
    made elsewhere joins through a link whose far end takes its place; one made with
    the room's media key joins directly."""
    async def body(media: CallMedia, events: list[MediaEvent]) -> list[int]:
        pool = media.pool
        rooms = ConferenceRooms(media, "tone:beep")
        first = await pool.create_endpoint(rooms.media_key("team"))
        assert first.call_key == "conf:team"
        assert await rooms.join("team", first) == (1, None)
        caller = await pool.create_endpoint("ivr-call")  # the other, less loaded, worker
        assert caller.worker != first.worker
        size, link = await rooms.join("team", caller)
        assert size == 2 and link is not None
        a, b = link
        assert (a.worker, a.call_key) == (caller.worker, "ivr-call")
        assert (b.worker, b.call_key) == (first.worker, "conf:team")
        second = await pool.create_endpoint(rooms.media_key("team"))
        assert await rooms.join("team", second) == (3, None)
        # the first participant leaves: the room stays where it is, and so does its key
        await rooms.leave("team", first)
        await media.destroy(first)
        assert rooms.media_key("team") == "conf:team" and rooms.size("team") == 2
        probe = await pool.create_endpoint("conf:team")
        assert probe.worker == second.worker
        await rooms.leave("team", b)
        await rooms.leave("team", second)
        assert rooms.size("team") == 0
        for ep in (caller, a, b, second, probe):
            await media.destroy(ep)
        return await _endpoint_counts(pool)

    assert _run(body, tmp_path) == [0, 0]
