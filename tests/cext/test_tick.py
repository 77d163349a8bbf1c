"""The tick kernel (cext._tick) against the composition of the existing kernels
(parse_batch, JitterBuffer.put_batch/get_frame, DtmfDetector.process, MixPlan.mix, echo,
players, recording taps, G.711 encode, build_batch), plus a thread test."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cext.dtmf import DtmfDetector
from cext.g711 import alaw_encode, ulaw_encode
from cext.jitter import JitterBuffer
from cext.mixer import plan_from_hears
from cext.net import NetIO, RecvBatch
from cext.rtp import RtpHeader, build_batch, parse_batch
from cext.tick import EV_DTMF, EV_PLAY_DONE, EV_TE, EV_TONE_DONE, TickKernel
from cext.tones import PromptPlayer, dtmf_string

FRAME = 160
N_REC = 4
DTMF_CHARS = "0123456789*#ABCD"


def _signal(rng: np.random.Generator, n: int, digit_at: int | None) -> np.ndarray:
    x = (rng.normal(0, 1500, n)).astype(np.int16)
    if digit_at is not None:
        tone = np.zeros(n, np.int16)
        dtmf_string("5", on=0.12, off=0.1).fill(tone[digit_at:digit_at + 1760])
        x = np.clip(x.astype(np.int32) // 8 + tone, -32768, 32767).astype(np.int16)
    return x


class Scenario:
    """6 endpoints: 0-1 bridged (0 PCMU, 1 PCMA), 2-3-4 a conference, 5 echo with a
    prompt mixed in, 2 sends in-band DTMF; recordings (0 | 1), (2+3 | 4), (5 | what 5
    is sent: a one-leg call) and (0 | 1 + what 2 is sent: the sum of both kinds of tap);
    endpoint 4 has telephone-event PT 101; every endpoint detects in-band DTMF."""

    N = 6
    TICKS = 40

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.codec = [0, 8, 0, 0, 8, 0]
        self.audio = [_signal(rng, FRAME * self.TICKS, 800 if i in (0, 3) else None)
                      for i in range(self.N)]
        self.prompt = rng.integers(-2000, 2000, FRAME * 10).astype(np.int16)
        self.hears = {0: [1], 1: [0], 2: [3, 4], 3: [2, 4], 4: [2, 3]}
        self.gains = [1.0, 1.0, 0.5, 1.0, 1.0, 1.0]

    def packets(self, t: int) -> list[tuple[int, bytes, float]]:
        """Rows of tick t: (slot, datagram, arrival ms); some lost, some reordered."""
        rows = []
        for s in range(self.N):
            if (t * 7 + s) % 11 == 0:
                continue  # lost
            pcm = self.audio[s][t * FRAME:(t + 1) * FRAME]
            pay = np.empty(FRAME, np.uint8)
            (ulaw_encode if self.codec[s] == 0 else alaw_encode)(pcm, pay)
            pkt = bytes(RtpHeader(payload_type=self.codec[s], sequence_number=100 + t,
                                  timestamp=1000 + FRAME * t, ssrc=77 + s,
                                  payload=pay.tobytes()))
            rows.append((s, pkt, 1000.0 + 20 * t + (s % 3)))
        if t == 5:
            te = bytes(RtpHeader(payload_type=101, sequence_number=900, timestamp=1,
                                 ssrc=1, payload=b"\x05\x0a\x00\xa0"))
            rows.append((4, te, 1000.0 + 20 * t))
        if t % 4 == 1 and len(rows) > 2:
            rows[0], rows[1] = rows[1], rows[0]
        return rows


def _load(rb: RecvBatch, rows: list[tuple[int, bytes, float]]) -> int:
    for r, (slot, pkt, arr) in enumerate(rows):
        rb.packets[r, :len(pkt)] = np.frombuffer(pkt, np.uint8)
        rb.lengths[r] = len(pkt)
        rb.slots[r] = slot
        rb.arrival_ms[r] = arr
    return len(rows)


def run_kernel(sc: Scenario, incremental: bool = False):
    """``incremental``: configure with set_room/set_sender (one plan per room, the
    bridge's slots listed out of order so it takes the gather/scatter path) instead of
    the bulk set_lists."""
    n = sc.N
    net = NetIO(n)
    net.out_seq[:] = np.arange(n) * 1000
    net.out_ts[:] = np.arange(n) * 100000
    net.out_ssrc[:] = np.arange(n) + 5000
    inp = np.zeros((n, FRAME), np.int16)
    out = np.zeros((n, FRAME), np.int16)
    rbs = (RecvBatch(64, 256), RecvBatch(64, 256))
    k = TickKernel(net, inp, out, rbs[0], rbs[1])
    jbs = [JitterBuffer(20, 100) for _ in range(n)]
    for s in range(n):
        k.set_endpoint(s, jbs[s], DtmfDetector(),
                       PromptPlayer(sc.prompt) if s == 5 else None, s == 5,
                       dtmf_string("7", on=0.1, off=0.05) if s == 2 else None,
                       True, s == 5, 101 if s == 4 else 255)
    if incremental:
        for h, slots in ((3, [1, 0]), (0, [2, 3, 4])):
            idx = {s: i for i, s in enumerate(slots)}
            k.set_room(h, plan_from_hears(len(slots), {idx[s]: [idx[x] for x in sc.hears[s]]
                                                       for s in slots},
                                          [sc.gains[s] for s in slots]),
                       np.array(slots, np.int32))
        for s in (5, 3, 1, 0, 4, 2):  # any order: packets come out in slot order
            k.set_sender(s, True, 0 if sc.codec[s] == 0 else 1, sc.codec[s], True)
        assert k.n_rooms == 2 and k.hi == n
    else:
        plan = plan_from_hears(n, sc.hears, sc.gains)
        send = np.arange(n, dtype=np.int32)
        codec = np.array([0 if c == 0 else 1 for c in sc.codec], np.uint8)
        pts = np.array(sc.codec, np.uint8)
        k.set_lists(plan, n, send, codec, pts, send)
    recbufs = [np.zeros((FRAME * 4, 2), np.int16) for _ in range(N_REC)]
    k.set_recordings(recbufs, [[0], [2, 3], [5], [0]], [[1], [4], [], [1]],
                     [False] * N_REC, [0] * N_REC, [[], [], [5], [2]])
    pkts, events, recorded, inps = [], [], [[] for _ in range(N_REC)], []
    for t in range(sc.TICKS):
        cur = t % 2
        nrows = _load(rbs[cur], sc.packets(t))
        nev = k.run(cur, nrows, 1000.0 + 20 * t + 30, True, False)
        assert k.n_packets == n
        pkts.append(k.packets[:n].copy())
        inps.append(inp.copy())
        for i in range(nev):
            events.append((t, int(k.events_kind[i]), int(k.events_slot[i]),
                           int(k.events_a[i]), int(k.events_b[i])))
        for i in np.flatnonzero(k.rec_full).tolist():
            recorded[i].append(recbufs[i][:k.rec_pos[i]].copy())
            k.rec_pos[i] = 0
            k.rec_full[i] = 0
    counters = [(j.packets, j.ignored, j.real_frames, j.concealed_frames, j.silence_frames)
                for j in jbs]
    return pkts, events, [np.concatenate(r) for r in recorded], inps, counters


def run_reference(sc: Scenario):
    n = sc.N
    out_seq = np.arange(n).astype(np.uint16) * np.uint16(1000)
    out_ts = (np.arange(n) * 100000).astype(np.uint32)
    ssrc = (np.arange(n) + 5000).astype(np.uint32)
    jbs = [JitterBuffer(20, 100) for _ in range(n)]
    dets = [DtmfDetector() for _ in range(n)]
    player = PromptPlayer(sc.prompt)
    tone = dtmf_string("7", on=0.1, off=0.05)
    plan = plan_from_hears(n, sc.hears, sc.gains)
    rb = RecvBatch(64, 256)
    inp = np.zeros((n, FRAME), np.int16)
    out = np.zeros((n, FRAME), np.int16)
    codes, starts, durs = np.zeros(8, np.int32), np.zeros(8, np.int64), np.zeros(8, np.int32)
    pkts, events, inps = [], [], []
    rec: list[list[np.ndarray]] = [[] for _ in range(N_REC)]
    for t in range(sc.TICKS):
        m = _load(rb, sc.packets(t))
        parse_batch(rb.packets, rb.lengths, rb.seq, rb.ts, rb.ssrc, rb.pt, rb.marker,
                    rb.payload_offset, rb.payload_len, rb.status, m)
        for r in range(m):
            s = int(rb.slots[r])
            if rb.status[r] == 0 and s == 4 and rb.pt[r] == 101:
                events.append((t, EV_TE, s, r, 0))
        for s in range(n):
            rows = np.flatnonzero(rb.slots[:m] == s).astype(np.int32)
            jbs[s].put_batch(rb.packets, rb.payload_offset, rb.payload_len, rb.seq, rb.ts,
                             rb.ssrc, rb.pt, rb.status, rb.arrival_ms, rows)
        now = 1000.0 + 20 * t + 30
        for s in range(n):
            jbs[s].get_frame(inp[s], now)
            k = dets[s].process(inp[s], codes, starts, durs)
            events += [(t, EV_DTMF, s, int(codes[i]), int(durs[i])) for i in range(k)]
        plan.mix(inp, out)
        out[5] = np.clip(out[5].astype(np.int32) + inp[5], -32768, 32767)
        if tone is not None:
            if tone.fill(out[2]):
                tone = None
                events.append((t, EV_TONE_DONE, 2, 0, 0))
        scratch = np.zeros(FRAME, np.int16)
        if player is not None:
            if player.fill(scratch):
                player = None
                events.append((t, EV_PLAY_DONE, 5, 0, 0))
            out[5] = np.clip(out[5].astype(np.int32) + scratch, -32768, 32767)
        rec[0].append(np.stack([inp[0], inp[1]], 1))
        rec[1].append(np.stack([np.clip(inp[2].astype(np.int32) + inp[3], -32768, 32767),
                                inp[4]], 1).astype(np.int16))
        rec[2].append(np.stack([inp[5], out[5]], 1))  # out rows: after players and tones
        rec[3].append(np.stack([inp[0], np.clip(inp[1].astype(np.int32) + out[2],
                                                -32768, 32767)], 1).astype(np.int16))
        pay = np.empty((n, FRAME), np.uint8)
        for s in range(n):
            (ulaw_encode if sc.codec[s] == 0 else alaw_encode)(out[s], pay[s])
        built = np.zeros((n, 172), np.uint8)
        blen = np.zeros(n, np.int32)
        build_batch(pay, np.full(n, FRAME, np.int32), np.array(sc.codec, np.uint8),
                    np.zeros(n, np.uint8), out_seq, out_ts, ssrc, built, blen, n)
        out_seq += np.uint16(1)
        out_ts += np.uint32(FRAME)
        pkts.append(built)
        inps.append(inp.copy())
    counters = [(j.packets, j.ignored, j.real_frames, j.concealed_frames, j.silence_frames)
                for j in jbs]
    whole = [np.concatenate(r).astype(np.int16) for r in rec]
    return pkts, events, whole, inps, counters


def _by_tick(events):
    return sorted(events)


def test_tick_kernel_matches_composition() -> None:
    sc = Scenario(1)
    k_pkts, k_ev, k_rec, k_inp, k_cnt = run_kernel(sc)
    r_pkts, r_ev, r_rec, r_inp, r_cnt = run_reference(sc)
    for t in range(sc.TICKS):
        np.testing.assert_array_equal(k_inp[t], r_inp[t], err_msg=f"inp tick {t}")
        np.testing.assert_array_equal(k_pkts[t], r_pkts[t], err_msg=f"packets tick {t}")
    assert _by_tick(k_ev) == _by_tick(r_ev)
    kinds = {e[1] for e in k_ev}
    assert {EV_DTMF, EV_TE, EV_TONE_DONE} <= kinds
    digits = {(e[2], DTMF_CHARS[e[3]]) for e in k_ev if e[1] == EV_DTMF}
    assert (0, "5") in digits and (3, "5") in digits
    for i in range(N_REC):  # 40 ticks = 10 full buffers of 4 ticks
        np.testing.assert_array_equal(k_rec[i], r_rec[i][:len(k_rec[i])])
        assert len(k_rec[i]) == FRAME * sc.TICKS
    # the one-leg recording's right channel is the prompt (mixed with the echo) it hears
    assert np.abs(k_rec[2][:, 1].astype(np.int32)).max() > 1000
    assert k_cnt == r_cnt


def test_tick_kernel_incremental_matches_composition() -> None:
    """Per-room plans bound with set_room (gather/scatter and in place) and per-slot
    senders give exactly what the one global plan gives."""
    sc = Scenario(2)
    k_pkts, k_ev, k_rec, k_inp, k_cnt = run_kernel(sc, incremental=True)
    r_pkts, r_ev, r_rec, r_inp, r_cnt = run_reference(sc)
    for t in range(sc.TICKS):
        np.testing.assert_array_equal(k_inp[t], r_inp[t], err_msg=f"inp tick {t}")
        np.testing.assert_array_equal(k_pkts[t], r_pkts[t], err_msg=f"packets tick {t}")
    assert _by_tick(k_ev) == _by_tick(r_ev)
    for i in range(N_REC):
        np.testing.assert_array_equal(k_rec[i], r_rec[i][:len(k_rec[i])])
    assert k_cnt == r_cnt


def test_tick_kernel_rooms_and_senders_incremental() -> None:
    """set_room/clear_room/set_sender/set_endpoint(None) change only their own slots;
    ``hi`` follows the highest slot in use."""
    import pytest
    cap = 8
    net = NetIO(cap)
    inp = np.zeros((cap, FRAME), np.int16)
    out = np.zeros((cap, FRAME), np.int16)
    k = TickKernel(net, inp, out, RecvBatch(8, 256), RecvBatch(8, 256))
    jbs = [JitterBuffer() for _ in range(cap)]
    for s in (1, 4, 6):
        k.set_endpoint(s, jbs[s], receives=False)
    assert k.hi == 7
    k.set_room(2, plan_from_hears(2, {0: [1], 1: [0]}), np.array([6, 1], np.int32))
    with pytest.raises(ValueError):  # slot 6 is in room 2
        k.set_room(5, plan_from_hears(2, {0: [1]}), np.array([4, 6], np.int32))
    with pytest.raises(ValueError):
        k.set_room(5, plan_from_hears(3, {}), np.array([4, 5], np.int32))
    with pytest.raises(ValueError):
        k.set_sender(4, True, 2, 0)
    for s in (1, 4, 6):
        k.set_sender(s, True, 0, 0, True)
    # what a non-receiving slot "hears" is its inp row: fill them by hand
    inp[1] = 100
    inp[4] = 200
    inp[6] = 300
    assert k.run(0, 0, 0.0, True, False) == 0
    assert k.n_packets == 3 and k.packet_slots[:3].tolist() == [1, 4, 6]
    assert (out[1] == 300).all() and (out[6] == 100).all() and (out[4] == 0).all()
    k.clear_room(2)
    k.set_sender(4, False)
    k.run(1, 0, 20.0, True, False)
    assert k.n_rooms == 0 and k.n_packets == 2 and k.packet_slots[:2].tolist() == [1, 6]
    assert not out[:cap].any()
    k.set_endpoint(6, None)
    assert k.hi == 5 and not inp[6].any()
    k.set_endpoint(4, None)  # also stops its sending
    assert k.hi == 2
    k.set_sender(3, False, advance=True)  # a slot with only an advancing timestamp
    assert k.hi == 4
    k.set_sender(3, False, advance=False)
    assert k.hi == 2


def test_tick_kernel_config_errors() -> None:
    net = NetIO(4)
    inp = np.zeros((4, FRAME), np.int16)
    out = np.zeros((4, FRAME), np.int16)
    rbs = (RecvBatch(8, 256), RecvBatch(8, 256))
    k = TickKernel(net, inp, out, *rbs)
    import pytest
    with pytest.raises(ValueError):
        TickKernel(net, inp, inp, *rbs)
    with pytest.raises(ValueError):
        k.set_endpoint(4, JitterBuffer())
    with pytest.raises(TypeError):
        k.set_endpoint(0, JitterBuffer(), None, object())
    with pytest.raises(ValueError):
        k.set_lists(plan_from_hears(3, {}), 4, np.zeros(0, np.int32), np.zeros(0, np.uint8),
                    np.zeros(0, np.uint8), np.zeros(0, np.int32))
    with pytest.raises(ValueError):
        k.set_recordings([np.zeros((100, 2), np.int16)], [[0]], [[1]], [False], [0])
    with pytest.raises(ValueError):  # a sent-audio slot out of range
        k.set_recordings([np.zeros((160, 2), np.int16)], [[0]], [[]], [False], [0], [[4]])
    with pytest.raises(ValueError):  # one right_sent list per recording
        k.set_recordings([np.zeros((160, 2), np.int16)], [[0]], [[]], [False], [0], [])
    with pytest.raises(ValueError):
        k.run(2, 0, 0.0)
    with pytest.raises(ValueError):
        k.run(0, 9, 0.0)
    assert k.run(0, 0, 0.0, True, False) == 0


def test_tick_kernel_threads() -> None:
    """Kernels of separate workers run concurrently (GIL released) and give the same
    results as run serially."""
    serial = [run_kernel(Scenario(seed)) for seed in range(4)]
    with ThreadPoolExecutor(4) as pool:
        par = list(pool.map(lambda s: run_kernel(Scenario(s)), range(4)))
    for a, b in zip(serial, par, strict=True):
        for t in range(Scenario.TICKS):
            np.testing.assert_array_equal(a[0][t], b[0][t])
        assert a[1] == b[1]
        for i in range(N_REC):
            np.testing.assert_array_equal(a[2][i], b[2][i])
