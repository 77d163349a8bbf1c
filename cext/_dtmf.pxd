# cython: boundscheck=False, wraparound=False
"""C-level declarations of the DTMF detector, cimportable by other cext modules."""

from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t

cdef enum:
    DTMF_BLOCK = 102        # Goertzel block: 12.75 ms at 8 kHz
    DTMF_FRAME = 68         # Hann window of the frequency check
    DTMF_HOP = 34           # hop between the two frequency-check windows


cdef class DtmfDetector:
    cdef float _coef[8]
    cdef float _coef2[8]       # coef^2 - 1, for the two-sample step
    cdef double _wcos[8][DTMF_FRAME]
    cdef double _wsin[8][DTMF_FRAME]
    cdef int16_t _blk[DTMF_BLOCK]
    cdef int _fill
    cdef int64_t _pos          # absolute sample index of the current block's start
    cdef int _last             # previous block's decision (-1 = none)
    cdef int _cur              # digit in progress (-1 = none)
    cdef int64_t _start        # first sample of the digit in progress
    cdef int64_t _end_cand     # first sample of the first non-matching block
    cdef int _miss             # consecutive blocks not matching _cur
    cdef double _min_power     # per-tone power threshold (int16 units squared)
    cdef double _normal_twist  # linear power ratios
    cdef double _reverse_twist
    cdef double _rel_peak
    cdef double _tone_ratio
    cdef double _max_dev
    cdef int _analyze(self) noexcept nogil
    cdef Py_ssize_t _run(self, const int16_t* x, Py_ssize_t n, int32_t* dig, int64_t* st,
                         int32_t* dur, Py_ssize_t cap) noexcept nogil
