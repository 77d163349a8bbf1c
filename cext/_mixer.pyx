# cython: boundscheck=False, wraparound=False
"""The mixer: one kernel for bridges, conferences, listen, whisper and barge.

Theory of operation. Every leg of a media worker is a row of a 2-D int16 array (legs x
samples). Who hears whom is a directed graph: ``hears[i]`` is the set of legs mixed into
leg ``i``'s output (never ``i`` itself). The Python planner (:mod:`cext.mixer`) compiles
that graph, once per topology change, into a :class:`MixPlan`:

* rooms: the connected components of the graph (CSR ``room_ptr``/``room_legs``);
* per leg, the cheaper of two forms: ``sum`` of its sources, or the room ``total``
  minus its non-sources (itself included). A full N-party conference is then one total
  (N row adds) and one subtraction per leg, O(N) instead of O(N^2); a supervisor who
  hears the whole room costs one copy of the total.

The kernel walks the rooms in 160-sample chunks, accumulates in int32 on the stack (no
allocation, so one plan may be used from several threads), applies each source leg's Q12
gain (4096 = unity, 0 = muted) and saturates to int16.
"""

from libc.stdint cimport int16_t, int32_t, uint8_t


cdef inline void _add(int32_t* acc, const int16_t* src, int32_t g, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t k
    if g == GAIN_UNITY:
        for k in range(n):
            acc[k] += src[k]
    elif g != 0:
        for k in range(n):
            acc[k] += (src[k] * g + (GAIN_UNITY >> 1)) >> 12


cdef inline void _sub(int32_t* acc, const int16_t* src, int32_t g, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t k
    if g == GAIN_UNITY:
        for k in range(n):
            acc[k] -= src[k]
    elif g != 0:
        for k in range(n):
            acc[k] -= (src[k] * g + (GAIN_UNITY >> 1)) >> 12


cdef inline void _store(int16_t* dst, const int32_t* acc, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t k
    cdef int32_t v
    for k in range(n):
        v = acc[k]
        if v > 32767:
            v = 32767
        elif v < -32768:
            v = -32768
        dst[k] = <int16_t>v


cdef class MixPlan:
    """A compiled hears-graph; build it with :func:`cext.mixer.plan_from_hears`.

    :param gain: per-leg Q12 gain (int32, 0..32768).
    :param room_ptr: CSR row pointers of rooms (int32, ``n_rooms + 1``).
    :param room_legs: legs of each room (int32); every leg in exactly one room.
    :param subtract: per leg, 1 if its output is the room total minus its sources list.
    :param src_ptr: CSR row pointers of the per-leg source lists (int32, ``n_legs + 1``).
    :param src: source legs (int32).
    """

    def __init__(self, const int32_t[::1] gain, const int32_t[::1] room_ptr,
                 const int32_t[::1] room_legs, const uint8_t[::1] subtract,
                 const int32_t[::1] src_ptr, const int32_t[::1] src):
        cdef Py_ssize_t n = gain.shape[0], r, i, p
        cdef int32_t[::1] room_of
        if subtract.shape[0] != n or src_ptr.shape[0] != n + 1 or room_legs.shape[0] != n:
            raise ValueError("gain, subtract, room_legs and src_ptr disagree on the leg count")
        if room_ptr.shape[0] < 1 or room_ptr[0] != 0 or room_ptr[room_ptr.shape[0] - 1] != n:
            raise ValueError("room_ptr must start at 0 and end at the leg count")
        if src_ptr[0] != 0 or src_ptr[n] != src.shape[0]:
            raise ValueError("src_ptr must start at 0 and end at len(src)")
        for i in range(n):
            if gain[i] < 0 or gain[i] > 8 * GAIN_UNITY:
                raise ValueError(f"gain of leg {i} out of range 0..{8 * GAIN_UNITY}: {gain[i]}")
            if src_ptr[i + 1] < src_ptr[i]:
                raise ValueError("src_ptr must be non-decreasing")
        import numpy as np
        room_of = np.full(n, -1, dtype=np.int32)
        for r in range(room_ptr.shape[0] - 1):
            if room_ptr[r + 1] < room_ptr[r]:
                raise ValueError("room_ptr must be non-decreasing")
            if room_ptr[r + 1] - room_ptr[r] > 4096:
                raise ValueError("a room holds at most 4096 legs")
            for p in range(room_ptr[r], room_ptr[r + 1]):
                i = room_legs[p]
                if i < 0 or i >= n or room_of[i] != -1:
                    raise ValueError(f"room_legs must list every leg exactly once (leg {i})")
                room_of[i] = <int32_t>r
        for i in range(n):
            for p in range(src_ptr[i], src_ptr[i + 1]):
                if src[p] < 0 or src[p] >= n or room_of[src[p]] != room_of[i]:
                    raise ValueError(f"source {src[p]} of leg {i} is not in leg {i}'s room")
                if src[p] == i and not subtract[i]:
                    raise ValueError(f"leg {i} cannot hear itself")
            if subtract[i] > 1:
                raise ValueError("subtract must be 0 or 1")
        self.n_legs = n
        self.n_rooms = room_ptr.shape[0] - 1
        self._gain = np.array(gain, dtype=np.int32)
        self._room_ptr = np.array(room_ptr, dtype=np.int32)
        self._room_legs = np.array(room_legs, dtype=np.int32)
        self._subtract = np.array(subtract, dtype=np.uint8)
        self._src_ptr = np.array(src_ptr, dtype=np.int32)
        self._src = np.array(src, dtype=np.int32)
        self._room_sum = np.zeros(self.n_rooms, dtype=np.uint8)
        for r in range(self.n_rooms):
            for p in range(room_ptr[r], room_ptr[r + 1]):
                if subtract[room_legs[p]]:
                    self._room_sum[r] = 1

    @property
    def arrays(self) -> dict:
        """The plan's CSR arrays (copies), for references and benchmarks."""
        import numpy as np
        return {"gain": np.array(self._gain), "room_ptr": np.array(self._room_ptr),
                "room_legs": np.array(self._room_legs),
                "subtract": np.array(self._subtract), "src_ptr": np.array(self._src_ptr),
                "src": np.array(self._src)}

    cdef void _mix(self, const int16_t* inp, int16_t* out, Py_ssize_t stride,
                   Py_ssize_t n) noexcept nogil:
        cdef int32_t total[MIX_CHUNK]
        cdef int32_t acc[MIX_CHUNK]
        cdef Py_ssize_t c0, m, r, p, q, i, j, k
        c0 = 0
        while c0 < n:
            m = n - c0
            if m > MIX_CHUNK:
                m = MIX_CHUNK
            for r in range(self.n_rooms):
                if self._room_sum[r]:
                    for k in range(m):
                        total[k] = 0
                    for p in range(self._room_ptr[r], self._room_ptr[r + 1]):
                        j = self._room_legs[p]
                        _add(total, inp + j * stride + c0, self._gain[j], m)
                for p in range(self._room_ptr[r], self._room_ptr[r + 1]):
                    i = self._room_legs[p]
                    if self._subtract[i]:
                        for k in range(m):
                            acc[k] = total[k]
                        for q in range(self._src_ptr[i], self._src_ptr[i + 1]):
                            j = self._src[q]
                            _sub(acc, inp + j * stride + c0, self._gain[j], m)
                    else:
                        for k in range(m):
                            acc[k] = 0
                        for q in range(self._src_ptr[i], self._src_ptr[i + 1]):
                            j = self._src[q]
                            _add(acc, inp + j * stride + c0, self._gain[j], m)
                    _store(out + i * stride + c0, acc, m)
            c0 += m

    def mix(self, const int16_t[:, ::1] inp, int16_t[:, ::1] out) -> None:
        """Mix one tick: ``out[i] = sat16(sum of gain[j] * inp[j] for j heard by i)``.

        :param inp: legs x samples int16, C-contiguous.
        :param out: caller-allocated, same shape; must not be ``inp``.
        """
        cdef Py_ssize_t legs = inp.shape[0], n = inp.shape[1]
        if legs != self.n_legs:
            raise ValueError(f"input has {legs} legs, the plan has {self.n_legs}")
        if out.shape[0] != legs or out.shape[1] != n:
            raise ValueError(f"out shape ({out.shape[0]}, {out.shape[1]}) != input shape "
                             f"({legs}, {n})")
        if legs == 0 or n == 0:
            return
        if &out[0, 0] == &inp[0, 0]:
            raise ValueError("out must not be the input array")
        with nogil:
            self._mix(&inp[0, 0], &out[0, 0], n, n)
