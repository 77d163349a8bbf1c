# cython: boundscheck=False, wraparound=False
"""In-band DTMF detector (Goertzel) and RFC 4733 telephone-event payload batches.

Theory of operation (ITU-T Q.23 frequencies, Q.24 acceptance):

* Audio is cut into blocks of 102 samples (12.75 ms at 8 kHz). At any alignment a 40 ms
  tone or a 40 ms pause holds at least two whole blocks, which is what the Q.24
  minimum duration / minimum pause needs with two-block confirmation.
* Stage 1, every block: eight Goertzel filters (the Q.23 row and column frequencies) and
  the block energy. The strongest row and column must each reach the level threshold,
  the twist (row/column power ratio) must be within the normal/reverse limits, each must
  beat the other tones of its group by the relative-peak margin, and the two tones must
  hold most of the block energy (this is what keeps speech and music out: their energy
  is spread over harmonics and formants).
* Stage 2, only for blocks that pass stage 1: each of the two tones' frequency is
  measured from the phase advance of a Hann-windowed DFT between two 68-sample windows
  34 samples apart (unambiguous to +-117 Hz). Q.24 wants +-1.5 % accepted and +-3.5 %
  rejected; the cut is at +-2.5 %. A 102-sample Goertzel alone cannot make that cut (its
  main lobe is +-78 Hz wide).
* Decisions: a digit starts after two consecutive blocks agree on it and ends after two
  consecutive blocks do not; a single disagreeing block is bridged. Each digit is reported
  once, at its end, with its start sample and duration.

Levels: 0 dBm0 is the sine whose power is 3.17 dB below the µ-law full-scale sine
(G.711: T_max = 8159 in 14-bit units = 32636 in our int16 scaling, sample << 2), so a
0 dBm0 sine has peak 32636 * 10**(-3.17/20) = 22657 and power 22657**2 / 2.

RFC 4733 section 2.3: the telephone-event payload is event (8 bits), E (1), R (1),
volume (6), duration (16, network order). ``te_parse``/``te_build`` handle a batch of
such 4-byte blocks.
"""

from libc.math cimport cos, sin, atan2, M_PI, pow
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t

cdef double DBM0_PEAK = 22657.0
cdef double[8] TONES = [697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0]
# Q.23 keypad, row-major, as RFC 4733 section 3.2 event codes
# ("0"-"9" = 0-9, "*" = 10, "#" = 11, "A"-"D" = 12-15).
cdef int[16] KEYPAD = [1, 2, 3, 12, 4, 5, 6, 13, 7, 8, 9, 14, 10, 0, 11, 15]


cdef inline double _db(double db) noexcept nogil:
    return pow(10.0, db / 10.0)


cdef inline double _tone_power(double dbm0) noexcept nogil:
    return DBM0_PEAK * DBM0_PEAK / 2.0 * _db(dbm0)


cdef class DtmfDetector:
    """Stateful in-band DTMF detector for one channel of 8 kHz int16 audio.

    :param threshold_dbm0: minimum level of each tone (default -42 dBm0, 6 dB under the
        Q.24 -36 dBm0 operate level to allow for frequency deviation).
    :param normal_twist_db: how much the row (low) tone may exceed the column tone.
    :param reverse_twist_db: how much the column (high) tone may exceed the row tone.
    :param relative_peak_db: margin of each tone over the other tones of its group.
    :param tone_ratio: share of the block energy the two tones must hold.
    :param max_deviation: largest accepted relative frequency deviation of each tone.
    """

    def __init__(self, double threshold_dbm0=-42.0, double normal_twist_db=10.0,
                 double reverse_twist_db=6.0, double relative_peak_db=8.0,
                 double tone_ratio=0.75, double max_deviation=0.025):
        cdef int k, n
        cdef double w, win
        if not (-80.0 <= threshold_dbm0 <= 3.0):
            raise ValueError("threshold_dbm0 must be between -80 and 3")
        if not (0.0 <= normal_twist_db <= 20.0 and 0.0 <= reverse_twist_db <= 20.0):
            raise ValueError("twist limits must be between 0 and 20 dB")
        if not (0.0 <= relative_peak_db <= 30.0):
            raise ValueError("relative_peak_db must be between 0 and 30")
        if not (0.0 < tone_ratio <= 1.0):
            raise ValueError("tone_ratio must be in (0, 1]")
        if not (0.0 < max_deviation < 0.1):
            raise ValueError("max_deviation must be in (0, 0.1)")
        for k in range(8):
            w = 2.0 * M_PI * TONES[k] / 8000.0
            self._coef[k] = <float>(2.0 * cos(w))
            self._coef2[k] = self._coef[k] * self._coef[k] - 1.0
            for n in range(DTMF_FRAME):
                win = 0.5 - 0.5 * cos(2.0 * M_PI * n / DTMF_FRAME)
                self._wcos[k][n] = win * cos(w * n)
                self._wsin[k][n] = win * sin(w * n)
        # Stage-1 powers are 2|X|^2/N^2 per tone; compare in |X|^2 units.
        self._min_power = _tone_power(threshold_dbm0) * DTMF_BLOCK * DTMF_BLOCK / 2.0
        self._normal_twist = _db(normal_twist_db)
        self._reverse_twist = _db(reverse_twist_db)
        self._rel_peak = _db(relative_peak_db)
        self._tone_ratio = tone_ratio
        self._max_dev = max_deviation
        self.reset()

    def reset(self) -> None:
        """Forget all state (a new call on this channel)."""
        self._fill = 0
        self._pos = 0
        self._last = -1
        self._cur = -1
        self._start = 0
        self._end_cand = 0
        self._miss = 0

    @property
    def current_digit(self) -> int:
        """Event code of the digit being received now, or -1."""
        return self._cur

    @property
    def samples_seen(self) -> int:
        """Number of samples fed since the last reset."""
        return self._pos + self._fill

    @staticmethod
    def max_events(Py_ssize_t n_samples) -> int:
        """Capacity the output arrays of :meth:`process` need for ``n_samples``."""
        return n_samples // (2 * DTMF_BLOCK) + 2

    cdef int _analyze(self) noexcept nogil:
        """Decide one block: the event code of the digit it holds, or -1."""
        cdef float s1[8]
        cdef float s2[8]
        cdef float s0, x, x1
        cdef double energy = 0.0
        cdef double e[8]
        cdef double re_a, im_a, re_b, im_b, ph, dev, w
        cdef int n, k, r, c, t, tone
        cdef const int16_t* blk = self._blk
        for k in range(8):
            s1[k] = 0.0
            s2[k] = 0.0
        # Two samples per step: s[n+1] = (c^2-1) s[n-1] - c s[n-2] + c x[n] + x[n+1]
        # halves the recurrence's dependency chain (DTMF_BLOCK is even).
        for n in range(0, DTMF_BLOCK, 2):
            x = <float>blk[n]
            x1 = <float>blk[n + 1]
            energy += <double>x * x + <double>x1 * x1
            for k in range(8):
                s0 = self._coef[k] * s1[k] - s2[k] + x
                s1[k] = self._coef2[k] * s1[k] - self._coef[k] * s2[k] \
                    + (self._coef[k] * x + x1)
                s2[k] = s0
        for k in range(8):
            e[k] = <double>s1[k] * s1[k] + <double>s2[k] * s2[k] \
                - <double>self._coef[k] * s1[k] * s2[k]
        r = 0
        c = 4
        for k in range(1, 4):
            if e[k] > e[r]:
                r = k
            if e[4 + k] > e[c]:
                c = 4 + k
        if e[r] < self._min_power or e[c] < self._min_power:
            return -1
        # Twist: normal = row (low group) louder, reverse = column louder.
        if e[r] > e[c] * self._normal_twist or e[c] > e[r] * self._reverse_twist:
            return -1
        for k in range(4):
            if k != r and e[k] * self._rel_peak > e[r]:
                return -1
            if 4 + k != c and e[4 + k] * self._rel_peak > e[c]:
                return -1
        # Tone share of block energy: a tone of power P adds N*P to the energy and
        # N^2*P/2 to |X|^2.
        if (e[r] + e[c]) * (2.0 / DTMF_BLOCK) < self._tone_ratio * energy:
            return -1
        # Stage 2: frequency from the phase advance between two Hann windows.
        for t in range(2):
            tone = r if t == 0 else c
            re_a = 0.0
            im_a = 0.0
            re_b = 0.0
            im_b = 0.0
            for n in range(DTMF_FRAME):
                re_a += blk[n] * self._wcos[tone][n]
                im_a -= blk[n] * self._wsin[tone][n]
                re_b += blk[n + DTMF_HOP] * self._wcos[tone][n]
                im_b -= blk[n + DTMF_HOP] * self._wsin[tone][n]
            # arg(B * conj(A)) = omega * HOP (mod 2 pi)
            ph = atan2(im_b * re_a - re_b * im_a, re_b * re_a + im_b * im_a)
            w = 2.0 * M_PI * TONES[tone] / 8000.0
            ph -= w * DTMF_HOP
            while ph > M_PI:
                ph -= 2.0 * M_PI
            while ph <= -M_PI:
                ph += 2.0 * M_PI
            dev = ph / (w * DTMF_HOP)
            if dev > self._max_dev or dev < -self._max_dev:
                return -1
        return KEYPAD[r * 4 + (c - 4)]

    cdef Py_ssize_t _run(self, const int16_t* x, Py_ssize_t n, int32_t* dig, int64_t* st,
                         int32_t* dur, Py_ssize_t cap) noexcept nogil:
        cdef Py_ssize_t i = 0, m = 0, take, j
        cdef int res
        while i < n:
            take = DTMF_BLOCK - self._fill
            if take > n - i:
                take = n - i
            for j in range(take):
                self._blk[self._fill + j] = x[i + j]
            self._fill += <int>take
            i += take
            if self._fill < DTMF_BLOCK:
                break
            res = self._analyze()
            if self._cur >= 0:
                if res == self._cur:
                    self._miss = 0
                else:
                    if self._miss == 0:
                        self._end_cand = self._pos
                    self._miss += 1
                    if self._miss >= 2:
                        if m < cap:
                            dig[m] = self._cur
                            st[m] = self._start
                            dur[m] = <int32_t>(self._end_cand - self._start)
                            m += 1
                        self._cur = -1
                        self._miss = 0
            if self._cur < 0 and res >= 0 and res == self._last:
                self._cur = res
                self._start = self._pos - DTMF_BLOCK
                self._miss = 0
            self._last = res
            self._pos += DTMF_BLOCK
            self._fill = 0
        return m

    def process(self, const int16_t[::1] samples, int32_t[::1] out_digits,
                int64_t[::1] out_starts, int32_t[::1] out_durations) -> int:
        """Feed samples (a 20 ms tick or any length); write finished digits.

        Each finished digit is written as its RFC 4733 event code, its first sample
        (counted from the last reset) and its duration in samples.

        :param samples: 8 kHz mono int16 audio.
        :param out_digits: caller-allocated event codes, at least ``max_events(n)`` long.
        :param out_starts: caller-allocated start samples, same length.
        :param out_durations: caller-allocated durations in samples, same length.
        :return: the number of digits written.
        """
        cdef Py_ssize_t n = samples.shape[0]
        cdef Py_ssize_t cap = out_digits.shape[0]
        cdef Py_ssize_t m
        if out_starts.shape[0] < cap:
            cap = out_starts.shape[0]
        if out_durations.shape[0] < cap:
            cap = out_durations.shape[0]
        if cap < n // (2 * DTMF_BLOCK) + 2:
            raise ValueError(
                f"output arrays hold {cap} events, {n} samples need {n // (2 * DTMF_BLOCK) + 2}")
        if n == 0:
            return 0
        with nogil:
            m = self._run(&samples[0], n, &out_digits[0], &out_starts[0],
                          &out_durations[0], cap)
        return m

    def finish(self, int32_t[::1] out_digits, int64_t[::1] out_starts,
               int32_t[::1] out_durations) -> int:
        """End of stream: report the digit in progress, if any, and reset.

        :return: 0 or 1, the number of digits written.
        """
        cdef int m = 0
        cdef int64_t end
        if out_digits.shape[0] < 1 or out_starts.shape[0] < 1 or out_durations.shape[0] < 1:
            raise ValueError("output arrays hold 0 events, finish() needs 1")
        if self._cur >= 0:
            end = self._end_cand if self._miss > 0 else self._pos + self._fill
            out_digits[0] = self._cur
            out_starts[0] = self._start
            out_durations[0] = <int32_t>(end - self._start)
            m = 1
        self.reset()
        return m

    def analyze_block(self, const int16_t[::1] block) -> int:
        """Decide one 102-sample block in isolation (no state change); for tests.

        :return: the event code the block holds, or -1.
        """
        if block.shape[0] != DTMF_BLOCK:
            raise ValueError(f"block must have {DTMF_BLOCK} samples, got {block.shape[0]}")
        cdef int16_t saved[DTMF_BLOCK]
        cdef int j, res
        for j in range(DTMF_BLOCK):
            saved[j] = self._blk[j]
            self._blk[j] = block[j]
        res = self._analyze()
        for j in range(DTMF_BLOCK):
            self._blk[j] = saved[j]
        return res


def goertzel_energies(const int16_t[::1] block, double[::1] out) -> float:
    """Stage-1 Goertzel |X|^2 at the eight Q.23 frequencies, into ``out[0:8]``.

    :param block: samples of one block (any length).
    :param out: caller-allocated, at least 8 long.
    :return: the block energy (sum of squares).
    """
    cdef float s1[8]
    cdef float s2[8]
    cdef float c[8]
    cdef float s0, x
    cdef double energy = 0.0
    cdef Py_ssize_t n
    cdef int k
    if out.shape[0] < 8:
        raise ValueError(f"out must hold 8 energies, got {out.shape[0]}")
    for k in range(8):
        c[k] = <float>(2.0 * cos(2.0 * M_PI * TONES[k] / 8000.0))
        s1[k] = 0.0
        s2[k] = 0.0
    with nogil:
        for n in range(block.shape[0]):
            x = <float>block[n]
            energy += <double>x * x
            for k in range(8):
                s0 = c[k] * s1[k] - s2[k] + x
                s2[k] = s1[k]
                s1[k] = s0
        for k in range(8):
            out[k] = <double>s1[k] * s1[k] + <double>s2[k] * s2[k] - <double>c[k] * s1[k] * s2[k]
    return energy


# RFC 4733 section 2.3 payload batches -------------------------------------------------

def te_parse(const uint8_t[::1] data, int32_t[::1] event, uint8_t[::1] end,
             uint8_t[::1] volume, int32_t[::1] duration) -> int:
    """Parse concatenated 4-byte telephone-event payloads (RFC 4733 section 2.3).

    :param data: ``4 * n`` bytes.
    :param event: caller-allocated event codes (0-255), at least ``n`` long.
    :param end: caller-allocated E bits (0/1).
    :param volume: caller-allocated volumes (0-63, meaning -0 to -63 dBm0).
    :param duration: caller-allocated durations in timestamp units (0-65535).
    :return: ``n``, the number of payloads parsed. The R bit is ignored (section 2.3).
    """
    cdef Py_ssize_t size = data.shape[0]
    cdef Py_ssize_t n = size // 4, i
    cdef const uint8_t* p
    if size % 4 != 0:
        raise ValueError(f"telephone-event data must be a multiple of 4 bytes, got {size}")
    if event.shape[0] < n or end.shape[0] < n or volume.shape[0] < n or duration.shape[0] < n:
        raise ValueError(f"output arrays are shorter than the {n} payloads")
    if n == 0:
        return 0
    with nogil:
        for i in range(n):
            p = &data[4 * i]
            event[i] = p[0]
            end[i] = (p[1] >> 7) & 1
            volume[i] = p[1] & 0x3F
            duration[i] = (<int32_t>p[2] << 8) | p[3]
    return n


def te_build(const int32_t[::1] event, const uint8_t[::1] end, const uint8_t[::1] volume,
             const int32_t[::1] duration, uint8_t[::1] out) -> int:
    """Build concatenated 4-byte telephone-event payloads (RFC 4733 section 2.3).

    :param event: event codes (0-255).
    :param end: E bits (0 or 1).
    :param volume: volumes (0-63).
    :param duration: durations in timestamp units (0-65535).
    :param out: caller-allocated, at least ``4 * n`` bytes.
    :return: the number of bytes written.
    """
    cdef Py_ssize_t n = event.shape[0], i, bad = -1
    cdef uint8_t* p
    if end.shape[0] != n or volume.shape[0] != n or duration.shape[0] != n:
        raise ValueError("event, end, volume and duration must have the same length")
    if out.shape[0] < 4 * n:
        raise ValueError(f"out holds {out.shape[0]} bytes, {n} payloads need {4 * n}")
    if n == 0:
        return 0
    with nogil:
        for i in range(n):
            if (event[i] < 0 or event[i] > 255 or end[i] > 1 or volume[i] > 63
                    or duration[i] < 0 or duration[i] > 65535):
                bad = i
                break
            p = &out[4 * i]
            p[0] = <uint8_t>event[i]
            p[1] = <uint8_t>((end[i] << 7) | volume[i])
            p[2] = <uint8_t>(duration[i] >> 8)
            p[3] = <uint8_t>(duration[i] & 0xFF)
    if bad >= 0:
        raise ValueError(
            f"telephone-event {bad} out of range: event {event[bad]} (0-255), "
            f"end {end[bad]} (0-1), volume {volume[bad]} (0-63), "
            f"duration {duration[bad]} (0-65535)")
    return 4 * n
