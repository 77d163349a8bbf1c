"""Real worker subprocesses driven through MediaPool, with real RTP peers on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import wave

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from rtp_peer import Peer, dominant_freq, read_pcap_udp, stream, tone  # noqa: E402

from cext.tones import dtmf_string  # noqa: E402
from media.client import MediaError, MediaPool  # noqa: E402
from media.events import DtmfReceived, MediaTimeout, WorkerDied  # noqa: E402

PORTS = (31000, 31999)
LO = "127.0.0.1"


def run(coro_fn, tmp_path, n_workers=1):
    async def main():
        events = []
        pool = MediaPool(n_workers, PORTS, str(tmp_path), rtp_ip=LO, data_dir=str(tmp_path))
        pool.on_event = events.append
        await asyncio.wait_for(pool.start(), 20)
        try:
            return await asyncio.wait_for(coro_fn(pool, events), 45)
        finally:
            await pool.close()
    return asyncio.run(main())


async def in_thread(fn, *a):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *a)


def test_bridge_transcoding_and_recording(tmp_path):
    async def body(pool, events):
        pa, pb = Peer(0, "pcmu"), Peer(8, "pcma")
        a = await pool.create_endpoint("c1", remote_ip=LO, remote_port=pa.port, codec="pcmu")
        b = await pool.create_endpoint("c1", remote_ip=LO, remote_port=pb.port, codec="pcma")
        await pool.set_room("c1", [a, b])
        rec = await pool.record(str(tmp_path / "rec.wav"), left=[a], right=[b])
        await in_thread(stream, [(pa, tone(1000, 8000 * 2), (LO, a.local_port)),
                                 (pb, tone(440, 8000 * 2), (LO, b.local_port))], 1.6)
        await asyncio.sleep(0.2)
        pa.drain(), pb.drain()
        secs = await pool.record_stop(rec)
        st = await pool.stats(a)
        assert st["endpoint"]["relaying"] is False
        return pa.audio(), pb.audio(), secs

    got_a, got_b, secs = run(body, tmp_path)
    assert len(got_a) > 8000 and len(got_b) > 8000
    assert abs(dominant_freq(got_a[-4000:]) - 440) < 10    # A hears B
    assert abs(dominant_freq(got_b[-4000:]) - 1000) < 10   # B hears A
    with wave.open(str(tmp_path / "rec.wav")) as w:
        assert w.getnchannels() == 2 and w.getframerate() == 8000
        frames = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2)
    assert abs(len(frames) / 8000 - secs) < 0.05 and secs > 1.0
    assert abs(dominant_freq(frames[-4000:, 0]) - 1000) < 10  # caller left
    assert abs(dominant_freq(frames[-4000:, 1]) - 440) < 10   # agent right


def test_recording_follows_the_contact_and_never_a_reused_slot(tmp_path):
    """One recording per contact: caller alone (IVR), then an agent joins the right
    channel (record_update); after the agent's endpoint is destroyed, an unrelated
    endpoint that gets its slot is not recorded."""
    async def body(pool, events):
        pa, pb, pc = Peer(), Peer(), Peer()
        a = await pool.create_endpoint("r", remote_ip=LO, remote_port=pa.port)
        rec = await pool.record(str(tmp_path / "contact.wav"), left=[a], right=[])
        await in_thread(stream, [(pa, tone(1000, 8000), (LO, a.local_port))], 0.6)
        b = await pool.create_endpoint("r", remote_ip=LO, remote_port=pb.port)
        await pool.set_room("r", [a, b])
        await pool.record_update(rec, [a], [b])
        await in_thread(stream, [(pa, tone(1000, 8000, start=4800), (LO, a.local_port)),
                                 (pb, tone(440, 8000), (LO, b.local_port))], 0.8)
        await pool.destroy(b)
        c = await pool.create_endpoint("other", remote_ip=LO, remote_port=pc.port)
        await in_thread(stream, [(pa, tone(1000, 8000), (LO, a.local_port)),
                                 (pc, tone(2000, 8000), (LO, c.local_port))], 0.6)
        return await pool.record_stop(rec)

    secs = run(body, tmp_path)
    with wave.open(str(tmp_path / "contact.wav")) as w:
        frames = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2)
    assert secs > 1.5
    left, right = frames[:, 0].astype(float), frames[:, 1].astype(float)
    n = len(frames)

    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0

    assert abs(dominant_freq(left[n // 2 - 2000:n // 2 + 2000]) - 1000) < 10
    # before the agent joined: right silent; with the agent: 440 Hz
    assert rms(right[800:3200]) < 50
    mid = right[int(0.75 * 8000):int(1.3 * 8000)]
    assert rms(mid) > 1000 and abs(dominant_freq(mid) - 440) < 10
    # after the agent left: the 2000 Hz of the unrelated endpoint never appears
    tail = right[-3200:]
    assert rms(tail) < 50, rms(tail)


def test_same_codec_bridge_relays(tmp_path):
    async def body(pool, events):
        pa, pb = Peer(), Peer()
        a = await pool.create_endpoint("c", remote_ip=LO, remote_port=pa.port)
        b = await pool.create_endpoint("c", remote_ip=LO, remote_port=pb.port)
        await pool.set_room("c", [a, b])
        await in_thread(stream, [(pa, tone(1000, 8000), (LO, a.local_port)),
                                 (pb, tone(440, 8000), (LO, b.local_port))], 1.0)
        await asyncio.sleep(0.1)
        pa.drain(), pb.drain()
        return pa.audio(), pb.audio(), (await pool.stats(b))["endpoint"]

    ga, gb, st = run(body, tmp_path)
    assert st["relaying"] and st["relayed"] >= 45
    assert abs(dominant_freq(ga[-2400:]) - 440) < 10 and abs(dominant_freq(gb[-2400:]) - 1000) < 10


def test_rfc4733_from_pcap_and_inband_dtmf(tmp_path):
    pkts = read_pcap_udp("/usr/share/sip-tester/dtmf_2833_1.pcap")
    expected = "0123456789*#ABCD"[pkts[0][1][12]]

    async def body(pool, events):
        p1, p2 = Peer(), Peer()
        a = await pool.create_endpoint("d", remote_ip=LO, remote_port=p1.port, te_pt=101)
        b = await pool.create_endpoint("d", remote_ip=LO, remote_port=p2.port,
                                       dtmf_inband=True)

        def replay():
            t0 = pkts[0][0]
            start = time.monotonic()
            for ts, payload in pkts:
                d = start + (ts - t0) - time.monotonic()
                if d > 0:
                    time.sleep(d)
                p1.sock.sendto(payload, (LO, a.local_port))
            gen = dtmf_string("159#", on=0.08, off=0.08)
            buf = np.zeros(160, np.int16)
            sig = []
            for _ in range(80):
                gen.fill(buf)
                sig.append(buf.copy())
            stream([(p2, np.concatenate(sig), (LO, b.local_port))], 1.6)
        await in_thread(replay)
        await asyncio.sleep(0.6)
        return [e for e in events if isinstance(e, DtmfReceived)], a, b

    evs, a, b = run(body, tmp_path)
    te = [e for e in evs if e.endpoint == a.id]
    assert [(e.digit, e.source) for e in te] == [(expected, "rfc4733")]
    assert te[0].call_key == "d" and te[0].duration_ms > 0
    assert "".join(e.digit for e in evs if e.endpoint == b.id and e.source == "inband") == "159#"


def test_echo_hold_timeout_latching(tmp_path):
    async def body(pool, events):
        p = Peer()
        e = await pool.create_endpoint("e", remote_ip=LO, remote_port=p.port, media_timeout=1.0)
        await pool.set_room("e", [e], hears={e: [e]})
        await in_thread(stream, [(p, tone(700, 8000), (LO, e.local_port))], 0.8)
        await asyncio.sleep(0.1)
        p.drain()
        echo = p.audio()
        # hold: we stop sending
        await pool.modify_endpoint(e, direction="inactive")
        await asyncio.sleep(0.1)
        p.drain()
        p.received.clear()
        await asyncio.sleep(0.4)
        held = p.drain()
        await pool.modify_endpoint(e, direction="sendrecv")
        await asyncio.sleep(0.3)
        resumed = p.drain()
        # silence at packet level -> media_timeout after ~1 s
        await asyncio.sleep(1.5)
        timeouts = [x for x in events if isinstance(x, MediaTimeout)]
        # latching: the peer moves to a new source port
        q = Peer()
        await in_thread(stream, [(q, tone(700, 4000), (LO, e.local_port))], 0.3)
        await asyncio.sleep(0.1)
        got_q = q.drain() + len(q.received)
        st = (await pool.stats(e))["endpoint"]
        return echo, held, resumed, timeouts, got_q, st, q.port

    echo, held, resumed, timeouts, got_q, st, qport = run(body, tmp_path)
    assert abs(dominant_freq(echo[-2400:]) - 700) < 10
    assert held == 0 and resumed >= 10
    assert len(timeouts) == 1 and timeouts[0].seconds >= 1.0
    assert got_q > 5 and st["remote_port"] == qport and st["latched"] >= 1


def test_worker_kill_and_bad_commands(tmp_path):
    async def body(pool, events):
        e0 = await pool.create_endpoint("k0")
        e1 = await pool.create_endpoint("k1")
        assert e0.worker != e1.worker
        with pytest.raises(MediaError, match="op: unknown operation"):
            await pool.request(0, "explode")
        with pytest.raises(MediaError, match="codec"):
            await pool.create_endpoint("k0", codec="opus")
        with pytest.raises(MediaError, match="endpoint: no endpoint 999"):
            await pool.request(0, "destroy_endpoint", endpoint=999)
        with pytest.raises(MediaError, match="remote_port"):
            await pool.request(0, "create_endpoint", remote_port=70000)
        assert (await pool.request(0, "ping"))["ok"]
        pid = pool.worker_pids()[e0.worker]
        os.kill(pid, signal.SIGKILL)
        for _ in range(200):
            await asyncio.sleep(0.05)
            died = [x for x in events if isinstance(x, WorkerDied)]
            if died and pool.worker_pids()[e0.worker] not in (None, pid):
                break
        assert (await pool.request(e1.worker, "ping"))["ok"]
        again = await pool.create_endpoint("k2")
        assert (await pool.request(e0.worker, "ping"))["pid"] != pid
        return died, e0, again

    died, e0, again = run(body, tmp_path, n_workers=2)
    assert len(died) == 1 and died[0].worker == e0.worker
    assert died[0].endpoints == (e0.id,) and died[0].call_keys == ("k0",)
    assert died[0].returncode == -signal.SIGKILL
    assert again.local_port > 0
