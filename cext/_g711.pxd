# cython: boundscheck=False, wraparound=False
"""C-level G.711 kernels, cimportable by other cext modules (jitter buffer, mixer)."""

from libc.stdint cimport int16_t, uint8_t, int64_t

cdef void c_ulaw_decode(const uint8_t* src, int16_t* dst, Py_ssize_t n) noexcept nogil
cdef void c_alaw_decode(const uint8_t* src, int16_t* dst, Py_ssize_t n) noexcept nogil
cdef void c_ulaw_encode(const int16_t* src, uint8_t* dst, Py_ssize_t n) noexcept nogil
cdef void c_alaw_encode(const int16_t* src, uint8_t* dst, Py_ssize_t n) noexcept nogil
