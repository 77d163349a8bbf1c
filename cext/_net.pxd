# cython: boundscheck=False, wraparound=False
"""C-level declarations of the batch UDP socket I/O of the media worker."""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

cdef enum:
    NET_VLEN = 64            # datagrams per recvmmsg/sendmmsg call
    NET_MAX_EVENTS = 256     # epoll events per epoll_wait
    NET_FOREIGN = 128        # non-RTP datagrams of SRTP slots held for Python per tick
    NET_FOREIGN_WIDTH = 1500
    NET_CTRL = 64            # control-message bytes per datagram (one SO_TIMESTAMPNS)
    SRTP_TRAILER_ROOM = 148  # libsrtp 2's SRTP_MAX_TRAILER_LEN (16-byte tag + MKI) + 4


cdef int c_srtp_protect(uint64_t ctx, uint8_t* pkt, int* length) noexcept nogil


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
    cdef public object srtp_tx
    cdef public object srtp_rx
    cdef public object srtp_errors
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
    cdef uint64_t[::1] _stx
    cdef uint64_t[::1] _srx
    cdef int64_t[::1] _serr
    cdef uint8_t[:, ::1] _fdata       # foreign datagrams (STUN, DTLS, SRTCP) for Python
    cdef int32_t[::1] _flen
    cdef int32_t[::1] _fslot
    cdef uint32_t[::1] _fip
    cdef uint16_t[::1] _fport
    cdef uint8_t[::1] _ffam
    cdef uint8_t[:, ::1] _fip6
    cdef Py_ssize_t _fcount
    cdef uint8_t[::1] _fam             # 4 or 6: the family of the remote address
    cdef uint8_t[:, ::1] _rip6
    cdef uint32_t[::1] _rscope
    cdef readonly int64_t foreign_dropped
    cdef public bint kernel_timestamps
    cdef void _relay_one(self, int32_t src, uint8_t* pkt, Py_ssize_t n) noexcept nogil
    cdef bint _srtp_in(self, int32_t slot, uint8_t* row, int32_t* length,
                       const void* src) noexcept nogil
    cdef unsigned int _dest(self, Py_ssize_t slot, void* sa) noexcept nogil
    cdef bint _latch_from(self, Py_ssize_t slot, const void* src) noexcept nogil
    cdef Py_ssize_t _poll_rows(self, uint8_t* packets, Py_ssize_t width, Py_ssize_t start,
                          Py_ssize_t cap, int32_t* lengths, int32_t* slots,
                          double* arrival_ms, uint32_t* src_ip, uint16_t* src_port,
                          double deadline_ms) noexcept nogil
    cdef Py_ssize_t _send_rows(self, const uint8_t* packets, Py_ssize_t width,
                          const int32_t* lengths, const int32_t* slots,
                          Py_ssize_t count) noexcept nogil
