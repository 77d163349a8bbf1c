"""Jitter buffer and concealment: twin comparison, exact playout, and hypothesis chaos."""

from __future__ import annotations

import numpy as np
import pytest
import reference_jitter as ref
from hypothesis import given, settings
from hypothesis import strategies as st

from cext import g711, jitter, rtp
from cext.exceptions import JitterBufferError
from cext.jitter import (
    FRAME_CONCEALED,
    FRAME_REAL,
    FRAME_RESYNC,
    FRAME_SHRUNK,
    FRAME_SILENCE,
    FRAME_STRETCHED,
    JitterBuffer,
)

F = 160
ALL_FLAGS = (
    FRAME_REAL | FRAME_CONCEALED | FRAME_SILENCE | FRAME_STRETCHED | FRAME_SHRUNK | FRAME_RESYNC
)


def voice(n: int, seed: int = 0, period: int = 57) -> np.ndarray:
    """A voiced-speech-like test signal: a decaying pulse train plus noise, full scale-ish."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = 8000 * np.exp(-(t % period) / 12.0) * np.sin(2 * np.pi * t / 19.0)
    x += rng.normal(0, 1500, n)
    return np.clip(x, -32768, 32767).astype(np.int16)


# -- concealment kernel against its twin ---------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(40, 130))
def test_find_pitch_matches_reference(seed: int, period: int) -> None:
    h = voice(390, seed, period)
    assert jitter.find_pitch(h) == ref.find_pitch(h.tolist())


def test_find_pitch_finds_period() -> None:
    for period in (45, 57, 80, 113):
        t = np.arange(390)
        h = (10000 * np.exp(-(t % period) / 6.0)).astype(np.int16) - 3000
        assert jitter.find_pitch(h) == period
    assert jitter.find_pitch(np.zeros(390, np.int16)) == 120  # no energy: PITCH_MAX
    with pytest.raises(ValueError, match="^PLC history must hold 390 samples, got 10$"):
        jitter.find_pitch(np.zeros(10, np.int16))


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 10_000),
    st.lists(st.tuples(st.integers(0, 1400), st.integers(1, 600)), max_size=4),
)
def test_plc_matches_reference(seed: int, holes: list[tuple[int, int]]) -> None:
    n = 1600
    x = voice(n, seed, 40 + seed % 80)
    present = np.ones(n, bool)
    for start, length in holes:
        present[start : start + length] = False
    got = jitter.conceal(x, present)
    want = ref.plc_run(x.tolist(), present.tolist())
    np.testing.assert_array_equal(got, np.array(want, np.int16))
    # present samples outside recovery windows are untouched, concealment is bounded
    assert np.abs(got.astype(np.int32)).max() <= np.abs(x.astype(np.int32)).max()


def test_plc_shape_of_an_erasure() -> None:
    x = voice(2000, 3, 64)
    present = np.ones(2000, bool)
    present[800:1400] = False  # 75 ms hole
    y = jitter.conceal(x, present)
    np.testing.assert_array_equal(y[:800], x[:800])
    # first 10 ms: unattenuated repetition, energy comparable to the signal before it
    e_before = np.abs(x[720:800].astype(float)).mean()
    e_first = np.abs(y[800:880].astype(float)).mean()
    assert 0.5 * e_before < e_first < 1.5 * e_before
    # attenuated in the middle, silent from 60 ms (480 samples) on
    assert np.abs(y[1100:1180].astype(float)).mean() < e_first
    assert not y[800 + 480 : 1400].any()
    # recovery cross-fade lasts 10 ms (long erasure) then the signal is exact again
    np.testing.assert_array_equal(y[1480:], x[1480:])
    assert not np.array_equal(y[1400:1410], x[1400:1410])


def test_plc_no_audio_before_first_packet() -> None:
    present = np.zeros(400, bool)
    present[300:] = True
    x = voice(400)
    y = jitter.conceal(x, present)
    assert not y[:300].any()
    np.testing.assert_array_equal(y[300:], x[300:])


# -- playout simulation helpers -------------------------------------------------

Packet = tuple[float, int, int, int, np.ndarray]  # arrival_ms, seq, ts, ssrc, pcm


def stream(
    audio: np.ndarray,
    ts0: int = 1000,
    seq0: int = 100,
    ssrc: int = 7,
    t0: float = 0.0,
    rate: float = 1.0,
) -> list[Packet]:
    """20 ms packets of ``audio``; ``rate`` > 1 is a sender whose clock runs fast."""
    return [
        (
            t0 + 20.0 * k / rate,
            (seq0 + k) & 0xFFFF,
            (ts0 + F * k) & 0xFFFFFFFF,
            ssrc,
            audio[k * F : (k + 1) * F],
        )
        for k in range(len(audio) // F)
    ]


def play(
    jb: JitterBuffer, packets: list[Packet], ticks: int, phase: float = 7.0, first_tick: int = 0
) -> tuple[np.ndarray, list[int], list[int | None]]:
    """Tick every 20 ms (at ``phase`` ms into the tick), inserting arrived packets first."""
    packets = sorted(packets, key=lambda p: p[0])
    out = np.zeros(F, np.int16)
    frames, flags, stamps = [], [], []
    i = 0
    for t in range(first_tick, first_tick + ticks):
        now = 20.0 * t + phase
        while i < len(packets) and packets[i][0] <= now:
            a, seq, ts, ssrc, pcm = packets[i]
            jb.put_pcm(pcm, seq, ts, ssrc, a)
            i += 1
        flags.append(jb.get_frame(out, now))
        assert out.shape == (F,)
        frames.append(out.copy())
        stamps.append(jb.next_timestamp)
    return np.concatenate(frames), flags, stamps


def check_real_frames(
    audio: np.ndarray, out: np.ndarray, flags: list[int], stamps: list[int | None], ts0: int = 1000
) -> int:
    """Every clean REAL frame (not after concealment) equals the input at its timestamp."""
    checked = 0
    for k, f in enumerate(flags):
        if f == FRAME_REAL and k and not flags[k - 1] & (FRAME_CONCEALED | FRAME_SILENCE):
            assert stamps[k] is not None
            start = (stamps[k] - F - ts0) & 0xFFFFFFFF
            np.testing.assert_array_equal(out[k * F : (k + 1) * F], audio[start : start + F])
            checked += 1
    return checked


# -- jitter buffer behaviour ------------------------------------------------------


@pytest.mark.parametrize("phase", [0.0, 7.5, 19.9])
def test_clean_stream_is_reproduced_exactly(phase: float) -> None:
    audio = voice(F * 150, 1)
    jb = JitterBuffer(min_delay_ms=40)
    out, flags, _ = play(jb, stream(audio), 152, phase)
    assert flags[:2] == [FRAME_SILENCE, FRAME_SILENCE]  # 40 ms target delay
    assert set(flags[2:]) == {FRAME_REAL}
    np.testing.assert_array_equal(out[2 * F :], audio)
    s = jitter.stats(jb)
    assert (s.real_frames, s.silence_frames, s.concealed_frames, s.late) == (150, 2, 0, 0)
    assert 40.0 <= s.delay_ms < 60.0


@pytest.mark.parametrize(("floor", "want"), [(5, 5.0), (10, 10.0), (20, 20.0), (40, 40.0)])
def test_margin_never_exceeds_a_low_floor(floor: int, want: float) -> None:
    """A regular stream (spread 0) plays at the floor: the 10 ms margin over the
    measured spread is capped at the floor, so a 5 ms floor means 5 ms, not 10."""
    audio = voice(F * 60, 2)
    jb = JitterBuffer(min_delay_ms=floor, max_delay_ms=200)
    out, flags, _ = play(jb, stream(audio), 62, 7.0)
    assert jb.target_delay_ms == want
    assert want <= jitter.stats(jb).delay_ms < want + 20.0
    assert flags.count(FRAME_REAL) >= 58 and not jb.late


def test_put_batch_from_parser_pcmu_and_pcma() -> None:
    audio = voice(F * 20, 2)
    batch = rtp.RtpBatch(4)
    jb = JitterBuffer(min_delay_ms=20)
    out = np.zeros(F, np.int16)
    got = []
    for k in range(20):
        codec, pt = ("pcmu", 0) if k % 2 else ("pcma", 8)
        payload = g711.encode(audio[k * F : (k + 1) * F], codec)
        pkt = bytes(
            rtp.RtpHeader(
                payload_type=pt, sequence_number=k, timestamp=F * k, ssrc=9, payload=payload
            )
        )
        dtmf = bytes(
            rtp.RtpHeader(
                payload_type=101,
                sequence_number=k,
                timestamp=F * k,
                ssrc=9,
                payload=b"\x01\x0a\x00\xa0",
            )
        )
        batch.load([pkt, b"junk", dtmf], 20.0 * k)
        assert batch.parse() == 2
        assert jitter.put_batch(jb, batch, np.array([0, 1, 2], np.int32)) == 1
        jb.get_frame(out, 20.0 * k + 1)
        got.append(out.copy())
    want = np.concatenate(
        [
            g711.decode(
                g711.encode(audio[k * F : (k + 1) * F], "pcmu" if k % 2 else "pcma"),
                "pcmu" if k % 2 else "pcma",
            )
            for k in range(19)
        ]
    )
    np.testing.assert_array_equal(np.concatenate(got)[F:], want)
    assert jb.ignored == 20
    with pytest.raises(JitterBufferError, match=r"^jitter buffer row 9 is outside 0..3$"):
        jitter.put_batch(jb, batch, np.array([9], np.int32))


def test_duplicates_never_double_audio() -> None:
    audio = voice(F * 60, 4)
    pk = stream(audio)
    a, fa, _ = play(JitterBuffer(), pk, 62)
    jb = JitterBuffer()
    b, fb, _ = play(jb, pk + pk + pk[::3], 62)
    np.testing.assert_array_equal(a, b)
    assert fa == fb and jb.duplicates == 60 + 20


def test_reordering_within_delay_is_exact() -> None:
    audio = voice(F * 100, 5)
    pk = stream(audio)
    # swap neighbours: each odd packet arrives 25 ms late (after its successor)
    pk = [(a + (25.0 if i % 2 else 0.0), *rest) for i, (a, *rest) in enumerate(pk)]
    jb = JitterBuffer(min_delay_ms=60)
    out, flags, stamps = play(jb, pk, 102)
    assert jb.late == 0 and jb.concealed_frames == 0
    assert check_real_frames(audio, out, flags, stamps) >= 95


def test_loss_is_concealed_then_silent() -> None:
    audio = voice(F * 80, 6)
    pk = stream(audio)
    del pk[30:35]  # 100 ms burst
    del pk[50]  # single loss (packet 55 after the burst removal)
    jb = JitterBuffer()
    out, flags, stamps = play(jb, pk, 82)
    kinds = [f & (FRAME_REAL | FRAME_CONCEALED | FRAME_SILENCE) for f in flags]
    assert kinds[32:35] == [FRAME_CONCEALED] * 3  # 60 ms of concealment
    assert kinds[35:37] == [FRAME_SILENCE] * 2 and not out[35 * F : 37 * F].any()
    assert kinds[37] == FRAME_REAL and kinds[56:59] == [FRAME_REAL, FRAME_CONCEALED, FRAME_REAL]
    assert jb.concealed_frames == 4 and jb.silence_frames == 4
    assert check_real_frames(audio, out, flags, stamps) >= 70
    assert np.abs(out.astype(int)).max() <= np.abs(audio.astype(int)).max()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.sets(st.integers(3, 196), max_size=25))
def test_lossy_stream_at_a_steady_delay_matches_the_reference_plc(
    seed: int, lost: set[int]
) -> None:
    # Long enough to wrap the sample ring (1024+) and the PLC history ring (512) many
    # times, with erasures and recoveries anywhere and one 100 ms burst (concealment runs
    # out into silence): the buffer's output is its delay line with the reference
    # concealment over the lost packets' samples.
    lost = lost | set(range(120, 125))
    audio = voice(F * 200, seed, 40 + seed % 80)
    pk = [p for k, p in enumerate(stream(audio)) if k not in lost]
    jb = JitterBuffer(min_delay_ms=40, max_delay_ms=40)
    out, flags, _ = play(jb, pk, 203)
    assert flags[:2] == [FRAME_SILENCE, FRAME_SILENCE]
    present = np.ones(len(audio), bool)
    for k in lost:
        present[k * F : (k + 1) * F] = False
    want = np.array(ref.plc_run(audio.tolist(), present.tolist()), np.int16)
    np.testing.assert_array_equal(out[2 * F : 202 * F], want)


def test_ssrc_change_and_timestamp_jump_resync() -> None:
    a1, a2, a3 = voice(F * 40, 7), voice(F * 40, 8), voice(F * 40, 9)
    pk = (
        stream(a1)
        + stream(a2, ts0=555_555, seq0=9, ssrc=8, t0=800.0)
        + stream(a3, ts0=555_555 + 80_000 * F, seq0=49, ssrc=8, t0=1600.0)
    )
    jb = JitterBuffer()
    out, flags, stamps = play(jb, pk, 125)
    resync_ticks = [k for k, f in enumerate(flags) if f & FRAME_RESYNC]
    assert len(resync_ticks) == 2 and jb.resyncs == 2
    for k in resync_ticks:
        # real audio of the new timeline within 3 ticks (target delay + a tick)
        assert any(f & FRAME_REAL for f in flags[k : k + 4])
    np.testing.assert_array_equal(out[2 * F : 40 * F], a1[: 38 * F])
    assert jb.late == 0


@pytest.mark.parametrize("rate", [1.01, 0.99, 1.005])
def test_clock_drift_keeps_delay_bounded(rate: float) -> None:
    n = 1500  # 30 s
    audio = voice(F * n, 10)
    jb = JitterBuffer(min_delay_ms=40, max_delay_ms=200)
    out, flags, stamps = play(jb, stream(audio, rate=rate), int(n / rate) - 5)
    s = jitter.stats(jb)
    if rate > 1:
        # sender faster: the buffer must drop ~(rate-1)*n frames
        assert s.shrunk_frames >= int((rate - 1) * n * 0.7)
        assert s.stretched_frames <= 2
    else:
        assert s.stretched_frames >= int((1 - rate) * n * 0.7)
        assert s.shrunk_frames <= 2
    assert s.late <= 3
    assert 30.0 <= s.delay_ms <= 120.0
    assert check_real_frames(audio, out, flags, stamps) >= n * 0.9


def test_adapts_to_jitter() -> None:
    n = 400
    audio = voice(F * n, 11)
    rng = np.random.default_rng(3)
    pk = [(a + float(rng.uniform(0, 70)), *rest) for a, *rest in stream(audio)]
    jb = JitterBuffer(min_delay_ms=20, max_delay_ms=200)
    first = [p for p in pk if p[0] <= 20.0 * 99 + 7.0]
    out1, flags1, stamps1 = play(jb, first, 100)
    late_ramp = jb.late
    out2, flags2, stamps2 = play(jb, pk[len(first) :], n - 90, first_tick=100)
    assert 70.0 <= jb.target_delay_ms <= 90.0  # spread ~70 ms + 10 ms margin
    assert jb.stretched_frames >= 2  # 20 ms start -> within 20 ms of ~75 ms
    assert late_ramp <= 25 and jb.late == late_ramp  # late only while adapting
    out = np.concatenate([out1, out2])
    assert check_real_frames(audio, out, flags1 + flags2, stamps1 + stamps2) >= n * 0.8


def test_bad_configuration_and_input() -> None:
    with pytest.raises(
        JitterBufferError, match="^jitter buffer min delay 100 ms exceeds max delay 50 ms$"
    ):
        JitterBuffer(100, 50)
    with pytest.raises(
        JitterBufferError, match=r"^jitter buffer delays must be within 0..1000 ms$"
    ):
        JitterBuffer(0, 5000)
    jb = JitterBuffer()
    with pytest.raises(
        JitterBufferError, match=r"^jitter buffer packet must hold 1..1536 samples, got 0$"
    ):
        jb.put_pcm(np.zeros(0, np.int16), 0, 0, 0, 0.0)
    with pytest.raises(
        JitterBufferError, match="^jitter buffer output must hold 160 samples, got 80$"
    ):
        jb.get_frame(np.zeros(80, np.int16), 0.0)
    assert isinstance(JitterBufferError("x"), ValueError)
    out = np.ones(F, np.int16)
    assert jb.get_frame(out, 0.0) == FRAME_SILENCE and not out.any()
    assert jb.next_timestamp is None


events = st.lists(
    st.one_of(
        st.tuples(
            st.just("pkt"), st.integers(-3, 6), st.floats(0, 150), st.sampled_from([1, 1, 1, 2])
        ),
        st.tuples(st.just("jump"), st.integers(-100_000, 100_000), st.just(0.0), st.just(1)),
        st.tuples(st.just("tick"), st.just(0), st.just(0.0), st.just(1)),
    ),
    min_size=1,
    max_size=300,
)


@settings(max_examples=60, deadline=None)
@given(events, st.integers(0, 2**32 - 1), st.integers(0, 80), st.integers(80, 300))
def test_chaos_never_crashes(
    evs: list[tuple[str, int, float, int]], ts0: int, min_ms: int, max_ms: int
) -> None:
    audio = voice(F * 8, 12)
    peak = int(np.abs(audio.astype(int)).max())
    jb = JitterBuffer(min(min_ms, max_ms), max_ms)
    out = np.zeros(F, np.int16)
    seq, ts, now = 0, ts0, 0.0
    for kind, step, delay, ssrc in evs:
        if kind == "pkt":
            seq = (seq + step) & 0xFFFF
            ts = (ts + F * step) & 0xFFFFFFFF
            jb.put_pcm(audio[(seq % 8) * F : (seq % 8 + 1) * F], seq, ts, ssrc, now + delay)
        elif kind == "jump":
            ts = (ts + step) & 0xFFFFFFFF
        else:
            now += 20.0
            flags = jb.get_frame(out, now)
            assert flags & ~ALL_FLAGS == 0
            assert bool(flags & FRAME_SILENCE) != bool(flags & (FRAME_REAL | FRAME_CONCEALED))
            assert np.abs(out.astype(int)).max() <= peak
    s = jitter.stats(jb)
    assert min(s.packets, s.duplicates, s.late, s.resyncs) >= 0
    assert min(jb.target_delay_ms, max_ms) >= min(min_ms, max_ms)
