# cython: boundscheck=False, wraparound=False
"""C-level declarations of the mixer plan, cimportable by other cext modules."""

from libc.stdint cimport int16_t, int32_t, uint8_t

cdef enum:
    MIX_CHUNK = 160          # samples per accumulation chunk (one 20 ms tick)
    GAIN_UNITY = 4096        # Q12


cdef class MixPlan:
    cdef readonly Py_ssize_t n_legs
    cdef readonly Py_ssize_t n_rooms
    cdef int32_t[::1] _gain          # per-leg Q12 gain of what others hear from it
    cdef int32_t[::1] _room_ptr      # CSR: rooms -> legs
    cdef int32_t[::1] _room_legs
    cdef uint8_t[::1] _room_sum      # 1 if any leg of the room uses the room total
    cdef uint8_t[::1] _subtract      # per leg: 1 = total minus list, 0 = sum of list
    cdef int32_t[::1] _src_ptr       # CSR: legs -> source legs
    cdef int32_t[::1] _src
    cdef void _mix(self, const int16_t* inp, int16_t* out, Py_ssize_t stride,
                   Py_ssize_t n) noexcept nogil
