# cython: boundscheck=False, wraparound=False
"""C-level declarations of the batch UDP socket I/O of the media worker."""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t

cdef enum:
    NET_VLEN = 64            # datagrams per recvmmsg/sendmmsg call
    NET_MAX_EVENTS = 256     # epoll events per epoll_wait


cdef double c_monotonic_ms() noexcept nogil


cdef class NetIO:
    cdef readonly Py_ssize_t capacity
    cdef int _epfd
    cdef public object fds            # numpy views, shared with Python (see .pyi)
    cdef public object remote_ip
    cdef public object remote_port
    cdef public object latch
    cdef public object send_enabled
    cdef public object relay_to
    cdef public object audio_pt
    cdef public object out_pt
    cdef public object out_ssrc
    cdef public object out_seq
    cdef public object out_ts
    cdef public object relay_active
    cdef public object rx_packets
    cdef public object tx_packets
    cdef public object relayed
    cdef public object latched
    cdef public object last_rx_ms
    cdef int32_t[::1] _fds
    cdef uint32_t[::1] _rip
    cdef uint16_t[::1] _rport
    cdef uint8_t[::1] _latch
    cdef uint8_t[::1] _send
    cdef int32_t[::1] _relay
    cdef uint8_t[::1] _apt
    cdef uint8_t[::1] _opt
    cdef uint32_t[::1] _ossrc
    cdef uint16_t[::1] _oseq
    cdef uint32_t[::1] _ots
    cdef uint32_t[::1] _tsoff
    cdef uint8_t[::1] _ractive
    cdef int64_t[::1] _rx
    cdef int64_t[::1] _tx
    cdef int64_t[::1] _relayed
    cdef int64_t[::1] _latched
    cdef double[::1] _last_rx
    cdef void _relay_one(self, int32_t src, uint8_t* pkt, Py_ssize_t n) noexcept nogil
    cdef Py_ssize_t _poll_rows(self, uint8_t* packets, Py_ssize_t width, Py_ssize_t start,
                          Py_ssize_t cap, int32_t* lengths, int32_t* slots,
                          double* arrival_ms, uint32_t* src_ip, uint16_t* src_port,
                          double deadline_ms) noexcept nogil
    cdef Py_ssize_t _send_rows(self, const uint8_t* packets, Py_ssize_t width,
                          const int32_t* lengths, const int32_t* slots,
                          Py_ssize_t count) noexcept nogil
