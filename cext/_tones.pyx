# cython: boundscheck=False, wraparound=False
"""Tone generation (call-progress tones, DTMF, dual tones) and prompt playout.

Theory of operation. A tone is a table of segments ``(f1, f2, a1, a2, n_samples)``
played in order, optionally looped: a cadence such as ringback is "on" then "off"
(amplitudes 0), a DTMF string is one "on" and one "off" segment per digit. Each of the two
oscillators is a 32-bit phase accumulator (direct digital synthesis) read through a
1024-entry sine table with linear interpolation (error < 2e-6 of full scale, far below
one int16 step at telephone levels). Phases run on through silent segments and across
ticks, so the output is phase-continuous however the caller slices it.

A prompt is a preloaded int16 array; the player copies the next tick into the caller's
buffer, tracks the position, wraps when looping and reports when it is done.
"""

from libc.math cimport sin, M_PI
from libc.stdint cimport int16_t, int32_t, uint32_t

cdef float _SINE[(1 << SINE_BITS) + 1]


cdef void _init_table() noexcept:
    cdef int k
    for k in range((1 << SINE_BITS) + 1):
        _SINE[k] = <float>sin(2.0 * M_PI * k / (1 << SINE_BITS))


_init_table()


cdef inline float _osc(uint32_t ph) noexcept nogil:
    cdef uint32_t idx = ph >> (32 - SINE_BITS)
    cdef float frac = <float>(ph & ((1u << (32 - SINE_BITS)) - 1)) * \
        (1.0 / <float>(1u << (32 - SINE_BITS)))
    return _SINE[idx] + (_SINE[idx + 1] - _SINE[idx]) * frac


cdef class ToneGenerator:
    """Per-channel generator of a segment table, one tick at a time.

    :param inc1: per-segment 32-bit phase increment of oscillator 1 (``f / 8000 * 2**32``).
    :param inc2: same for oscillator 2.
    :param amp1: per-segment peak amplitude of oscillator 1 in int16 units (0 = silent).
    :param amp2: same for oscillator 2.
    :param lengths: per-segment length in samples (> 0).
    :param loop: repeat the table forever (cadences) instead of finishing (DTMF strings).
    """

    def __init__(self, const uint32_t[::1] inc1, const uint32_t[::1] inc2,
                 const float[::1] amp1, const float[::1] amp2,
                 const int32_t[::1] lengths, bint loop):
        import numpy as np
        cdef Py_ssize_t n = lengths.shape[0], i
        if inc1.shape[0] != n or inc2.shape[0] != n or amp1.shape[0] != n or amp2.shape[0] != n:
            raise ValueError("segment arrays must have the same length")
        for i in range(n):
            if lengths[i] <= 0:
                raise ValueError(f"segment {i} has length {lengths[i]}, must be > 0")
            if not (0.0 <= amp1[i] <= 32767.0 and 0.0 <= amp2[i] <= 32767.0):
                raise ValueError(f"segment {i} amplitude out of range 0..32767")
        self._inc1 = np.array(inc1, dtype=np.uint32)
        self._inc2 = np.array(inc2, dtype=np.uint32)
        self._amp1 = np.array(amp1, dtype=np.float32)
        self._amp2 = np.array(amp2, dtype=np.float32)
        self._len = np.array(lengths, dtype=np.int32)
        self._nseg = n
        self._loop = loop
        self.reset()

    def reset(self) -> None:
        """Start again from the first segment with zero phases."""
        self._ph1 = 0
        self._ph2 = 0
        self._seg = 0
        self._left = self._len[0] if self._nseg > 0 else 0
        self._done = self._nseg == 0

    @property
    def done(self) -> bool:
        """True once a non-looping table has been played completely."""
        return self._done

    cdef bint _fill(self, int16_t* out, Py_ssize_t n) noexcept nogil:
        cdef Py_ssize_t k = 0, take, j
        cdef uint32_t ph1 = self._ph1, ph2 = self._ph2, i1, i2
        cdef float a1, a2, v
        while k < n and not self._done:
            if self._left == 0:
                self._seg += 1
                if self._seg == self._nseg:
                    if not self._loop:
                        self._done = True
                        break
                    self._seg = 0
                self._left = self._len[self._seg]
                continue
            take = n - k
            if take > self._left:
                take = self._left
            i1 = self._inc1[self._seg]
            i2 = self._inc2[self._seg]
            a1 = self._amp1[self._seg]
            a2 = self._amp2[self._seg]
            if a1 == 0.0 and a2 == 0.0:
                for j in range(take):
                    out[k + j] = 0
                ph1 += <uint32_t>(i1 * <uint32_t>take)
                ph2 += <uint32_t>(i2 * <uint32_t>take)
            else:
                for j in range(take):
                    v = a1 * _osc(ph1) + a2 * _osc(ph2)
                    v = v + 0.5 if v >= 0 else v - 0.5
                    if v > 32767.0:
                        v = 32767.0
                    elif v < -32768.0:
                        v = -32768.0
                    out[k + j] = <int16_t>v
                    ph1 += i1
                    ph2 += i2
            k += take
            self._left -= <int32_t>take
        if not self._done and self._left == 0 and not self._loop \
                and self._seg == self._nseg - 1:
            self._done = True
        while k < n:
            out[k] = 0
            k += 1
        self._ph1 = ph1
        self._ph2 = ph2
        return self._done

    def fill(self, int16_t[::1] out) -> bool:
        """Write the next ``len(out)`` samples (zeros once done).

        :param out: the tick buffer.
        :return: True when a non-looping table has finished (now or before).
        """
        cdef bint done
        if out.shape[0] == 0:
            return self._done
        with nogil:
            done = self._fill(&out[0], out.shape[0])
        return done


cdef class PromptPlayer:
    """Plays a preloaded prompt (8 kHz int16) tick by tick.

    :param prompt: the samples; kept by reference, not copied.
    :param loop: wrap around at the end (music on hold) instead of finishing.
    """

    def __init__(self, const int16_t[::1] prompt, bint loop=False):
        self._prompt = prompt
        self._pos = 0
        self._loop = loop

    @property
    def position(self) -> int:
        """Index of the next sample to play."""
        return self._pos

    @property
    def length(self) -> int:
        """Number of samples in the prompt."""
        return self._prompt.shape[0]

    @property
    def done(self) -> bool:
        """True once a non-looping prompt has been played to its end."""
        return (not self._loop or self._prompt.shape[0] == 0) \
            and self._pos >= self._prompt.shape[0]

    def seek(self, Py_ssize_t position) -> None:
        """Move to ``position`` (0 <= position <= length)."""
        if position < 0 or position > self._prompt.shape[0]:
            raise ValueError(
                f"position {position} out of range 0..{self._prompt.shape[0]}")
        self._pos = position

    cdef bint _fill(self, int16_t* out, Py_ssize_t n) noexcept nogil:
        cdef Py_ssize_t size = self._prompt.shape[0], k = 0, take, j
        while k < n:
            if self._pos >= size:
                if not self._loop or size == 0:
                    break
                self._pos = 0
            take = size - self._pos
            if take > n - k:
                take = n - k
            for j in range(take):
                out[k + j] = self._prompt[self._pos + j]
            k += take
            self._pos += take
        if self._loop and size > 0 and self._pos >= size:
            self._pos = 0
        while k < n:
            out[k] = 0
            k += 1
        return (not self._loop or size == 0) and self._pos >= size

    def fill(self, int16_t[::1] out) -> bool:
        """Copy the next ``len(out)`` samples into ``out`` (zero-padded past the end).

        :param out: the tick buffer.
        :return: True when a non-looping prompt has been played to its end.
        """
        cdef bint done
        if out.shape[0] == 0:
            return self.done
        with nogil:
            done = self._fill(&out[0], out.shape[0])
        return done
