# cython: boundscheck=False, wraparound=False
"""C-level RTP header parse/build and RFC 3550 A.1/A.8 source state."""

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t

cdef enum:
    RTP_OK = 0
    RTP_ERR_SHORT = 1
    RTP_ERR_VERSION = 2
    RTP_ERR_CSRC = 3
    RTP_ERR_EXT_HEADER = 4
    RTP_ERR_EXT_VALUE = 5
    RTP_ERR_PADDING = 6
    RTP_ERR_LENGTH = 7
    RTP_IS_RTCP = 8

ctypedef struct RtpFields:
    uint8_t pt
    uint8_t marker
    uint8_t cc
    uint8_t has_extension
    uint16_t seq
    uint16_t ext_profile
    uint32_t ts
    uint32_t ssrc
    int32_t ext_offset
    int32_t ext_len
    int32_t payload_offset
    int32_t payload_len
    int32_t padding_size

ctypedef struct RtpSource:
    uint32_t ssrc
    uint32_t clock_rate
    uint16_t max_seq
    uint32_t cycles
    uint32_t base_seq
    uint32_t bad_seq
    uint32_t probation
    uint32_t received
    uint32_t expected_prior
    uint32_t received_prior
    int64_t transit
    double jitter
    uint8_t active
    uint8_t has_transit

cdef int c_parse(const uint8_t* p, Py_ssize_t n, RtpFields* f) noexcept nogil
cdef Py_ssize_t c_build_header(uint8_t* out, int pt, int marker, uint16_t seq, uint32_t ts,
                               uint32_t ssrc) noexcept nogil
cdef int c_update(RtpSource* s, uint16_t seq, uint32_t ts, uint32_t ssrc,
                  double arrival_ms) noexcept nogil
