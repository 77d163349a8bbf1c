# cython: boundscheck=False, wraparound=False
"""Adaptive jitter buffer for 8 kHz G.711 with packet-loss concealment.

Theory of operation
-------------------
Storage is a sample ring indexed by the extended RTP timestamp (a power-of-two ring
of int16 samples with one "present" byte each), not a packet ring: reordering,
duplicates (the same samples written twice) and packets of any ptime fall out
naturally, and a 20 ms tick reads exactly 160 samples.

Delay model. Every packet gives a transit ``arrival_ms * 8 - ext_ts`` (samples). The
minimum and maximum transit over the last one to two 500 ms windows give the base
transit and the jitter spread (the spread is peak-held, decaying 10 ms per second);
``target = clamp(spread + margin, min_delay, max_delay)`` where the margin is 10 ms, or
``min_delay`` when that is lower (a floor under 10 ms is asked for on clean hops, such as
two of our own workers over loopback, and 10 ms on top of it would defeat it).
At a tick, ``ts_now = now_ms * 8 - base`` is where the sender's clock is, and the
playout delay is ``ts_now - play_ts``. The first tick after a (re)sync anchors
``play_ts`` on the frame grid of the first packet so that the delay is in
``[target, target + 160)``. When the delay error leaves that band the buffer shrinks
(two frames cross-faded into one, consuming 320 samples) or stretches (one concealed
frame inserted without consuming), preferably in low-energy frames and unconditionally
beyond a hard limit. Sender clock drift moves the base transit and so is corrected the
same way.

Resync: a new SSRC, a packet further ahead than ``max_delay`` + 80 ms, one more than
1 s behind, or 8 consecutive entirely-late packets re-anchor the buffer on the new
packet (the PLC bridges the gap).

Concealment follows ITU-T G.711 Appendix I: on the first missing sample the pitch
(40..120 samples) is found by normalised cross-correlation over the last 20 ms of
output history; the last pitch period is repeated, with its last quarter
cross-faded with the quarter period before it so the wrap is smooth. After 10 ms two
periods and after 20 ms three periods are cycled (quarter-period cross-fades at each
switch), the signal is attenuated by 20 % per 10 ms after the first 10 ms, and is
silent from 60 ms. The first real samples after an erasure are cross-faded with the
continued concealment over 4 ms plus 4 ms per further 10 ms of erasure (max 10 ms).
Unlike Appendix I there is no 3.75 ms output delay: the periodic extension starts in
phase with the last period, which keeps the junction continuous for voiced speech.
"""

from cpython.mem cimport PyMem_Calloc, PyMem_Free
from libc.math cimport floor, sqrt, fabs
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t
from libc.string cimport memchr, memcpy, memset

from cext._g711 cimport c_alaw_decode, c_ulaw_decode

from cext.exceptions import JitterBufferError

FRAME_SAMPLES = JB_FRAME
FRAME_REAL = 1
FRAME_CONCEALED = 2
FRAME_SILENCE = 4
FRAME_STRETCHED = 8
FRAME_SHRUNK = 16
FRAME_RESYNC = 32

cdef enum:
    F_REAL = 1
    F_CONCEALED = 2
    F_SILENCE = 4
    F_STRETCHED = 8
    F_SHRUNK = 16
    F_RESYNC = 32
    WINDOW_MS = 500
    MARGIN = 80                 # 10 ms added to the measured spread
    LATE_RESYNC = 8
    SPREAD_DECAY_PER_S = 80     # samples (10 ms) per second
    BACK_RESYNC = 8000          # 1 s behind play_ts
    SOFT_SHRINK = 240           # error (samples) above which low-energy frames are dropped
    HARD_SHRINK = 400
    SOFT_STRETCH = -40
    HARD_STRETCH = -80
    LOW_ENERGY = 512            # mean |x| of a "quiet" frame
    MAX_PAYLOAD = 1536
    PT_PCMU = 0
    PT_PCMA = 8

cdef double SPREAD_DECAY = SPREAD_DECAY_PER_S / 1000.0


# ---------------------------------------------------------------------------
# Packet-loss concealment (G.711 Appendix I style)

cdef void plc_reset(Plc* p) noexcept nogil:
    memset(p, 0, sizeof(Plc))


cdef int plc_find_pitch(const int16_t* h) noexcept nogil:
    """Pitch period maximising corr * |corr| / energy over the last CORR_LEN samples."""
    cdef int start = PLC_HIST_LEN - PLC_CORR_LEN
    cdef int lag, i, best = PLC_PITCH_MAX
    cdef int64_t c, e
    cdef double score, best_score = 0.0
    for lag in range(PLC_PITCH_MIN, PLC_PITCH_MAX + 1):
        c = 0
        e = 0
        for i in range(start, PLC_HIST_LEN):
            c += <int64_t>h[i] * h[i - lag]
            e += <int64_t>h[i - lag] * h[i - lag]
        if e > 0 and c > 0:
            score = (<double>c) * fabs(<double>c) / (<double>e)
            if score > best_score:
                best_score = score
                best = lag
    return best


cdef inline double _pbuf(Plc* p, int k, int j) noexcept nogil:
    # Sample j of the k-period pitch buffer; its last quarter period is cross-faded
    # with the quarter period that precedes the buffer, so the cyclic wrap is smooth.
    cdef int per = p.pitch
    cdef int ov = per >> 2
    cdef int span = k * per
    cdef int base = PLC_HIST_LEN - span
    cdef int i
    cdef double w
    if j < span - ov:
        return p.snap[base + j]
    i = j - (span - ov)
    w = (i + 1.0) / (ov + 1.0)
    return p.snap[base + j] * (1.0 - w) + p.snap[base - ov + i] * w


cdef double _conceal(Plc* p, int n) noexcept nogil:
    """Concealment sample n (0 = first missing sample) before rounding."""
    cdef int per = p.pitch
    cdef int ov = per >> 2
    cdef int k
    cdef double v, w, gain
    if n >= PLC_SILENCE_AT:
        return 0.0
    if n < PLC_FLAT_LEN:
        k = 1
    elif n < 2 * PLC_FLAT_LEN:
        k = 2
    else:
        k = 3
    v = _pbuf(p, k, n % (k * per))
    if k > 1 and n < (k - 1) * PLC_FLAT_LEN + ov:
        # quarter-period cross-fade from k-1 periods to k periods
        w = (n - (k - 1) * PLC_FLAT_LEN + 1.0) / (ov + 1.0)
        v = _pbuf(p, k - 1, n % ((k - 1) * per)) * (1.0 - w) + v * w
    if n < PLC_FLAT_LEN:
        gain = 1.0
    else:
        # 20 % per 10 ms after the first 10 ms: zero at 60 ms
        gain = 1.0 - (n - PLC_FLAT_LEN) / 400.0
    return v * gain


cdef inline int16_t _round16(double v) noexcept nogil:
    v = floor(v + 0.5)
    if v > 32767.0:
        return 32767
    if v < -32768.0:
        return -32768
    return <int16_t>v


cdef int16_t plc_step(Plc* p, int present, int16_t real, int* flags) noexcept nogil:
    """One output sample: the real sample (cross-faded after an erasure) or concealment."""
    cdef int16_t v
    cdef int i, e
    cdef double w
    if present:
        p.primed = 1
        if p.erasing:
            p.erasing = 0
            # 4 ms, plus 4 ms per additional 10 ms of erasure, at most 10 ms
            e = 32 * (1 + (p.n_erased - 1) // PLC_FLAT_LEN)
            p.rec_len = e if e < 80 else 80
            p.rec_pos = 0
        if p.rec_pos < p.rec_len:
            w = (p.rec_pos + 1.0) / (p.rec_len + 1.0)
            v = _round16(_conceal(p, p.n_erased + p.rec_pos) * (1.0 - w) + real * w)
            p.rec_pos += 1
        else:
            v = real
        flags[0] |= F_REAL
    elif not p.primed:
        v = 0
    else:
        if not p.erasing:
            for i in range(PLC_HIST_LEN):
                p.snap[i] = p.hist[(p.hpos - PLC_HIST_LEN + i) & (PLC_HIST_RING - 1)]
            p.pitch = plc_find_pitch(p.snap)
            p.erasing = 1
            p.n_erased = 0
            p.rec_len = 0
            p.rec_pos = 0
        if p.n_erased < PLC_SILENCE_AT:
            flags[0] |= F_CONCEALED
            v = _round16(_conceal(p, p.n_erased))
            p.n_erased += 1
        else:
            v = 0
    p.hist[p.hpos & (PLC_HIST_RING - 1)] = v
    p.hpos += 1
    return v


cdef inline int _run_len(int64_t idx, int n, int64_t size) noexcept nogil:
    """How many of ``n`` ring slots from ``idx`` come before the ring of ``size`` wraps
    (the rest start at slot 0)."""
    return n if idx + n <= size else <int>(size - idx)


cdef void plc_remember(Plc* p, const int16_t* frame, int n) noexcept nogil:
    """Append ``n`` output samples to the concealment history, as ``plc_step`` does one
    sample at a time."""
    cdef int64_t idx = p.hpos & (PLC_HIST_RING - 1)
    cdef int n1 = _run_len(idx, n, PLC_HIST_RING)
    memcpy(&p.hist[idx], frame, n1 * sizeof(int16_t))
    memcpy(&p.hist[0], frame + n1, (n - n1) * sizeof(int16_t))
    p.hpos += n


def find_pitch(const int16_t[::1] history) -> int:
    """Pitch period (samples) the PLC would pick from the last 390 samples of history."""
    if history.shape[0] != PLC_HIST_LEN:
        raise ValueError(f"PLC history must hold {PLC_HIST_LEN} samples, got {history.shape[0]}")
    return plc_find_pitch(&history[0])


def plc_run(const int16_t[::1] samples, const uint8_t[::1] present, int16_t[::1] out) -> int:
    """Run the concealment over a sample stream with a presence mask (test/offline kernel).

    Missing samples (``present[i] == 0``) are concealed. Returns the number of samples
    that were concealed with a non-zero gain.
    """
    cdef Py_ssize_t n = samples.shape[0], i
    cdef int flags, concealed = 0
    cdef Plc p
    if present.shape[0] != n or out.shape[0] < n:
        raise ValueError("PLC samples, mask and output lengths differ")
    plc_reset(&p)
    with nogil:
        for i in range(n):
            flags = 0
            out[i] = plc_step(&p, present[i], samples[i], &flags)
            if flags & F_CONCEALED:
                concealed += 1
    return concealed


# ---------------------------------------------------------------------------
# Jitter buffer

cdef class JitterBuffer:
    """Per-stream adaptive jitter buffer for 8 kHz G.711 (PCMU/PCMA), 20 ms ticks.

    :param min_delay_ms: lowest target playout delay.
    :param max_delay_ms: highest target playout delay.
    """

    # C attributes and cdef methods are declared in _jitter.pxd (cimported by _tick).

    def __cinit__(self, int min_delay_ms=40, int max_delay_ms=200):
        cdef int64_t need
        if not 0 <= min_delay_ms <= 1000 or not 0 <= max_delay_ms <= 1000:
            raise JitterBufferError("jitter buffer delays must be within 0..1000 ms")
        if min_delay_ms > max_delay_ms:
            raise JitterBufferError(
                f"jitter buffer min delay {min_delay_ms} ms exceeds max delay {max_delay_ms} ms")
        self._min_delay = min_delay_ms * 8
        self._max_delay = max_delay_ms * 8
        need = self._max_delay + 8 * JB_FRAME + 2 * MAX_PAYLOAD
        self._size = 1024
        while self._size < need:
            self._size <<= 1
        self._mask = self._size - 1
        self._data = <int16_t*>PyMem_Calloc(self._size, sizeof(int16_t))
        self._valid = <uint8_t*>PyMem_Calloc(self._size, 1)
        if self._data == NULL or self._valid == NULL:
            raise MemoryError()
        plc_reset(&self._plc)
        self._target = self._min_delay

    def __dealloc__(self):
        PyMem_Free(self._data)
        PyMem_Free(self._valid)

    # -- insertion ---------------------------------------------------------

    cdef void _clear(self) noexcept nogil:
        memset(self._valid, 0, self._size)
        memset(self._seen_ok, 0, JB_SEEN)
        self._playing = 0
        self._late_run = 0
        self._have_transit = 0

    cdef void _restart(self, int64_t ext) noexcept nogil:
        self._clear()
        self._first_ext = ext
        self._win_lo = ext - (self._size >> 1)

    cdef void _stats_sample(self, double transit, double arrival_ms) noexcept nogil:
        if not self._have_transit:
            self._cur_min = self._cur_max = self._prev_min = self._prev_max = transit
            self._win_start_ms = arrival_ms
            self._have_transit = 1
        elif arrival_ms - self._win_start_ms >= WINDOW_MS:
            self._prev_min = self._cur_min
            self._prev_max = self._cur_max
            self._cur_min = self._cur_max = transit
            self._win_start_ms = arrival_ms
        else:
            if transit < self._cur_min:
                self._cur_min = transit
            if transit > self._cur_max:
                self._cur_max = transit
        cdef double base = self._cur_min if self._cur_min < self._prev_min else self._prev_min
        cdef double top = self._cur_max if self._cur_max > self._prev_max else self._prev_max
        cdef double t
        # peak-hold of the spread, decaying 10 ms per second of arrivals
        if self._have_transit == 1:
            self._spread = top - base
            self._last_arrival_ms = arrival_ms
            self._have_transit = 2
        else:
            if arrival_ms > self._last_arrival_ms:
                self._spread -= (arrival_ms - self._last_arrival_ms) * SPREAD_DECAY
                self._last_arrival_ms = arrival_ms
            if top - base > self._spread:
                self._spread = top - base
        # the margin never exceeds the floor: a caller that sets a floor under 10 ms
        # knows the hop is clean (two of our workers over loopback)
        t = self._spread + (MARGIN if MARGIN < self._min_delay else self._min_delay)
        if t < self._min_delay:
            t = self._min_delay
        if t > self._max_delay:
            t = self._max_delay
        self._target = <int>t

    cdef inline double _base(self) noexcept nogil:
        return self._cur_min if self._cur_min < self._prev_min else self._prev_min

    cdef int _insert(self, const int16_t* pcm, Py_ssize_t n, uint16_t seq, uint32_t ts,
                     uint32_t ssrc, double arrival_ms) noexcept nogil:
        """Store one decoded packet. Returns 1 if stored, 0 if dropped."""
        cdef int64_t ext, s, lo, hi, ahead
        cdef Py_ssize_t i
        cdef int slot
        if n <= 0:
            return 0
        if not self._have_stream or ssrc != self._ssrc:
            # new source: RFC 3550 8.2, a different SSRC is a different timeline
            if self._have_stream:
                self.resyncs += 1
                self._pending_resync = 1
            self._have_stream = 1
            self._ssrc = ssrc
            self._last_ts = ts
            self._last_ext = <int64_t>ts + (<int64_t>1 << 32)
            self._restart(self._last_ext)
        ext = self._last_ext + <int32_t>(ts - self._last_ts)
        slot = seq & (JB_SEEN - 1)
        if self._seen_ok[slot] and self._seen_seq[slot] == seq and self._seen_ext[slot] == ext:
            self.duplicates += 1
            return 0
        if self._playing:
            ahead = ext - self._play_ts
            if (ahead > self._max_delay + 4 * JB_FRAME or ext < self._play_ts - BACK_RESYNC
                    or (ext + n <= self._play_ts and self._late_run + 1 >= LATE_RESYNC)):
                # timestamp jump (or the sender restarted its clock): re-anchor
                self.resyncs += 1
                self._pending_resync = 1
                self._restart(ext)
            elif ext + n <= self._play_ts:
                self.late += 1
                self._late_run += 1
                self._stats_sample(arrival_ms * 8.0 - ext, arrival_ms)
                return 0
        if self._playing:
            lo = self._play_ts
        else:
            # before the first tick the window is fixed around the first packet, so a
            # sample index never aliases another timestamp of the window
            if ext + n <= self._win_lo or ext >= self._win_lo + self._size:
                self.resyncs += 1
                self._restart(ext)
            if ext < self._first_ext:
                self._first_ext = ext
            lo = self._win_lo
        self._late_run = 0
        if ext > self._last_ext:
            self._last_ext = ext
            self._last_ts = ts
        self._seen_ok[slot] = 1
        self._seen_seq[slot] = seq
        self._seen_ext[slot] = ext
        self._stats_sample(arrival_ms * 8.0 - ext, arrival_ms)
        hi = lo + self._size
        for i in range(n):
            s = ext + i
            if lo <= s < hi:
                self._data[s & self._mask] = pcm[i]
                self._valid[s & self._mask] = 1
        self.packets += 1
        return 1

    def put_batch(self, const uint8_t[:, ::1] packets, const int32_t[::1] payload_offset,
                  const int32_t[::1] payload_len, const uint16_t[::1] seq,
                  const uint32_t[::1] ts, const uint32_t[::1] ssrc, const uint8_t[::1] pt,
                  const int8_t[::1] status, const double[::1] arrival_ms,
                  const int32_t[::1] rows) -> int:
        """Insert the packets ``rows`` of a parsed batch (arrays as filled by
        ``cext.rtp.parse_batch``). PCMU (PT 0) and PCMA (PT 8) are decoded; rows with a
        bad status or another payload type are skipped. Returns packets stored."""
        cdef Py_ssize_t n_rows = packets.shape[0], width = packets.shape[1]
        cdef Py_ssize_t i, r, off, ln, stored = 0
        for arr_len in (payload_offset.shape[0], payload_len.shape[0], seq.shape[0],
                        ts.shape[0], ssrc.shape[0], pt.shape[0], status.shape[0],
                        arrival_ms.shape[0]):
            if arr_len < n_rows:
                raise JitterBufferError(
                    f"jitter buffer batch arrays must hold {n_rows} entries")
        for i in range(rows.shape[0]):
            r = rows[i]
            if not 0 <= r < n_rows:
                raise JitterBufferError(f"jitter buffer row {r} is outside 0..{n_rows - 1}")
            if status[r] == 0:
                off = payload_offset[r]
                ln = payload_len[r]
                if off < 0 or ln < 0 or off + ln > width:
                    raise JitterBufferError(f"jitter buffer row {r} payload is out of bounds")
        with nogil:
            for i in range(rows.shape[0]):
                r = rows[i]
                if status[r] != 0:
                    continue
                ln = payload_len[r]
                if ln > MAX_PAYLOAD:
                    ln = MAX_PAYLOAD
                if pt[r] == PT_PCMU:
                    c_ulaw_decode(&packets[r, 0] + payload_offset[r], self._scratch, ln)
                elif pt[r] == PT_PCMA:
                    c_alaw_decode(&packets[r, 0] + payload_offset[r], self._scratch, ln)
                else:
                    self.ignored += 1
                    continue
                stored += self._insert(self._scratch, ln, seq[r], ts[r], ssrc[r],
                                       arrival_ms[r])
        return stored

    def put_pcm(self, const int16_t[::1] samples, uint16_t seq, uint32_t ts, uint32_t ssrc,
                double arrival_ms) -> bool:
        """Insert one already decoded packet (WebRTC legs, tests). Returns True if stored."""
        cdef int r
        if samples.shape[0] == 0 or samples.shape[0] > MAX_PAYLOAD:
            raise JitterBufferError(
                f"jitter buffer packet must hold 1..{MAX_PAYLOAD} samples, "
                f"got {samples.shape[0]}")
        with nogil:
            r = self._insert(&samples[0], samples.shape[0], seq, ts, ssrc, arrival_ms)
        return r == 1

    # -- playout -----------------------------------------------------------

    cdef int _run_frame(self, int16_t* out, int64_t start, int force_missing) noexcept nogil:
        cdef int flags = 0, i, n1
        cdef int64_t idx
        cdef int present
        cdef Plc* p = &self._plc
        if (not force_missing and not p.erasing and p.rec_pos >= p.rec_len
                and self._all_valid(start, JB_FRAME)):
            # The steady state (every sample real, no cross-fade pending: plc_step only
            # passes samples through into its history) as block copies of the rings.
            idx = start & self._mask
            n1 = _run_len(idx, JB_FRAME, self._size)
            memcpy(out, self._data + idx, n1 * sizeof(int16_t))
            memcpy(out + n1, self._data, (JB_FRAME - n1) * sizeof(int16_t))
            memset(self._valid + idx, 0, n1)
            memset(self._valid, 0, JB_FRAME - n1)
            plc_remember(p, out, JB_FRAME)
            p.primed = 1
            return F_REAL
        if ((not p.primed or (p.erasing and p.n_erased >= PLC_SILENCE_AT))
                and (force_missing or self._none_valid(start, JB_FRAME))):
            # Silence: no stream yet, or concealment long over and still nothing (an idle
            # or held leg). plc_step would output and remember zeros.
            memset(out, 0, JB_FRAME * sizeof(int16_t))
            plc_remember(p, out, JB_FRAME)
            return 0
        for i in range(JB_FRAME):
            idx = (start + i) & self._mask
            present = self._valid[idx] and not force_missing
            out[i] = plc_step(&self._plc, present, self._data[idx], &flags)
            if not force_missing:
                self._valid[idx] = 0
        return flags

    cdef int _all_valid(self, int64_t start, int n) noexcept nogil:
        cdef int64_t idx = start & self._mask
        cdef int n1 = _run_len(idx, n, self._size)
        return memchr(self._valid + idx, 0, n1) == NULL and memchr(self._valid, 0, n - n1) == NULL

    cdef int _none_valid(self, int64_t start, int n) noexcept nogil:
        cdef int i
        for i in range(n):
            if self._valid[(start + i) & self._mask]:
                return 0
        return 1

    cdef double _mean_abs(self, int64_t start) noexcept nogil:
        cdef int i
        cdef int64_t acc = 0
        cdef int16_t v
        for i in range(JB_FRAME):
            v = self._data[(start + i) & self._mask]
            acc += -v if v < 0 else v
        return acc / <double>JB_FRAME

    cdef double _history_mean_abs(self) noexcept nogil:
        cdef int i
        cdef int64_t acc = 0
        cdef int16_t v
        for i in range(JB_FRAME):
            v = self._plc.hist[(self._plc.hpos - 1 - i) & (PLC_HIST_RING - 1)]
            acc += -v if v < 0 else v
        return acc / <double>JB_FRAME

    cdef int _tick(self, int16_t* out, double now_ms) noexcept nogil:
        cdef int flags = 0, i
        cdef int64_t k, desired, s
        cdef double err, w
        cdef int quiet
        if self._pending_resync:
            flags |= F_RESYNC
            self._pending_resync = 0
        if not self._have_stream or not self._have_transit:
            flags |= self._run_frame(out, 0, 1)
            return flags
        if not self._playing:
            # anchor on the frame grid of the first packet: delay in [target, target+160)
            desired = <int64_t>floor(now_ms * 8.0 - self._base()) - self._target
            k = self._first_ext - desired
            k = (k + JB_FRAME - 1) // JB_FRAME if k > 0 else -((-k) // JB_FRAME)
            self._play_ts = self._first_ext - k * JB_FRAME
            if self._play_ts < self._win_lo:
                self._play_ts = self._win_lo  # clock nonsense: arrivals after "now"
            if self._play_ts - self._win_lo >= self._size:
                memset(self._valid, 0, self._size)
            else:
                s = self._win_lo
                while s < self._play_ts:
                    self._valid[s & self._mask] = 0
                    s += 1
            self._playing = 1
        self._last_delay = now_ms * 8.0 - self._base() - self._play_ts
        err = self._last_delay - self._target
        if err > SOFT_SHRINK and not self._plc.erasing and self._plc.rec_pos >= self._plc.rec_len \
                and self._all_valid(self._play_ts, 2 * JB_FRAME):
            quiet = (self._mean_abs(self._play_ts) < LOW_ENERGY
                     and self._mean_abs(self._play_ts + JB_FRAME) < LOW_ENERGY)
            if quiet or err > HARD_SHRINK:
                # drop 20 ms: cross-fade the next two frames into one
                for i in range(JB_FRAME):
                    w = (i + 1.0) / (JB_FRAME + 1.0)
                    s = self._play_ts + i
                    out[i] = _round16(self._data[s & self._mask] * (1.0 - w)
                                      + self._data[(s + JB_FRAME) & self._mask] * w)
                    self._valid[s & self._mask] = 0
                    self._valid[(s + JB_FRAME) & self._mask] = 0
                    self._plc.hist[self._plc.hpos & (PLC_HIST_RING - 1)] = out[i]
                    self._plc.hpos += 1
                self._play_ts += 2 * JB_FRAME
                self.shrunk_frames += 1
                self.real_frames += 1
                return flags | F_REAL | F_SHRUNK
        if err < SOFT_STRETCH and self._plc.primed and not self._plc.erasing:
            quiet = self._history_mean_abs() < LOW_ENERGY
            if quiet or err < HARD_STRETCH:
                # insert 20 ms of concealment without consuming the buffer
                flags |= self._run_frame(out, self._play_ts, 1) | F_STRETCHED
                self.stretched_frames += 1
                self.concealed_frames += 1
                return flags
        flags |= self._run_frame(out, self._play_ts, 0)
        self._play_ts += JB_FRAME
        return flags

    def get_frame(self, int16_t[::1] out, double now_ms) -> int:
        """Produce the next 20 ms (160 samples) into ``out``; call once per tick.

        Returns FRAME_* flags: REAL (some samples came from packets), CONCEALED (some
        samples were concealed), SILENCE (neither), plus STRETCHED/SHRUNK when the
        delay was adapted and RESYNC on the first frame after a resync.
        """
        cdef int flags
        if out.shape[0] < JB_FRAME:
            raise JitterBufferError(
                f"jitter buffer output must hold {JB_FRAME} samples, got {out.shape[0]}")
        with nogil:
            flags = self._tick(&out[0], now_ms)
            if not flags & (F_REAL | F_CONCEALED):
                flags |= F_SILENCE
                if not flags & F_STRETCHED:
                    self.silence_frames += 1
            elif not flags & (F_STRETCHED | F_SHRUNK):
                if flags & F_REAL:
                    self.real_frames += 1
                else:
                    self.concealed_frames += 1
        return flags

    def reset(self) -> None:
        """Forget the stream, the delay estimate and the concealment history."""
        self._clear()
        self._have_stream = 0
        self._pending_resync = 0
        plc_reset(&self._plc)
        self._target = self._min_delay

    @property
    def target_delay_ms(self) -> float:
        """Current target playout delay."""
        return self._target / 8.0

    @property
    def delay_ms(self) -> float:
        """Playout delay measured at the last tick."""
        return self._last_delay / 8.0

    @property
    def next_timestamp(self) -> int | None:
        """RTP timestamp of the next sample to play (None until playout starts)."""
        if not self._playing:
            return None
        return <uint32_t>(self._play_ts & 0xFFFFFFFF)

    @property
    def ring_samples(self) -> int:
        """Size of the sample ring."""
        return self._size
