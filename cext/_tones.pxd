# cython: boundscheck=False, wraparound=False
"""C-level declarations of the tone generator and prompt player."""

from libc.stdint cimport int16_t, int32_t, uint32_t

cdef enum:
    SINE_BITS = 10           # 1024-entry sine table, linear interpolation


cdef class ToneGenerator:
    cdef uint32_t[::1] _inc1
    cdef uint32_t[::1] _inc2
    cdef float[::1] _amp1
    cdef float[::1] _amp2
    cdef int32_t[::1] _len
    cdef Py_ssize_t _nseg
    cdef bint _loop
    cdef uint32_t _ph1
    cdef uint32_t _ph2
    cdef Py_ssize_t _seg
    cdef int32_t _left
    cdef bint _done
    cdef bint _fill(self, int16_t* out, Py_ssize_t n) noexcept nogil


cdef class PromptPlayer:
    cdef const int16_t[::1] _prompt
    cdef Py_ssize_t _pos
    cdef bint _loop
    cdef bint _fill(self, int16_t* out, Py_ssize_t n) noexcept nogil
