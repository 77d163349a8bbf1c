# cython: boundscheck=False, wraparound=False
"""C-level declarations of the media worker's per-tick kernel (see _tick.pyx)."""

from cpython.ref cimport PyObject
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t

from cext._mixer cimport MixPlan
from cext._net cimport NetIO

cdef enum:
    TK_FRAME = 160           # samples per tick (20 ms at 8 kHz)
    TK_PKT = 172             # RTP header + 160 G.711 bytes
    TK_DTMF_CAP = 4          # digits one endpoint can finish in one tick (2 at most)
    TK_SWEEP_EVERY = 64      # endpoints between two non-blocking network sweeps


cdef class TickBatch:
    """Memoryviews of one RecvBatch (packets plus the parse outputs)."""
    cdef uint8_t[:, ::1] packets
    cdef int32_t[::1] lengths
    cdef int32_t[::1] slots
    cdef double[::1] arrival_ms
    cdef uint32_t[::1] src_ip
    cdef uint16_t[::1] src_port
    cdef uint16_t[::1] seq
    cdef uint32_t[::1] ts
    cdef uint32_t[::1] ssrc
    cdef uint8_t[::1] pt
    cdef uint8_t[::1] marker
    cdef int32_t[::1] payload_offset
    cdef int32_t[::1] payload_len
    cdef int8_t[::1] status
    cdef Py_ssize_t capacity


cdef class TickKernel:
    cdef readonly Py_ssize_t capacity
    cdef NetIO _net
    cdef int16_t[:, ::1] _inp
    cdef int16_t[:, ::1] _out
    cdef list _refs                  # per slot: the objects the raw pointers borrow
    cdef PyObject** _jb
    cdef PyObject** _dtmf
    cdef PyObject** _player
    cdef PyObject** _tone
    cdef uint8_t* _pkind             # 0 none, 1 ToneGenerator, 2 PromptPlayer
    cdef uint8_t* _pmix              # player mixed into (1) or replacing (0) the output
    cdef uint8_t* _rx                # endpoint receives (jitter buffer put/get)
    cdef uint8_t* _echo
    cdef uint8_t* _te_pt             # 255 = no telephone-event payload type
    cdef MixPlan _plan
    cdef Py_ssize_t _nlegs
    cdef int32_t[::1] _rx_slots
    cdef int32_t[::1] _dtmf_slots
    cdef int32_t[::1] _echo_slots
    cdef int32_t[::1] _play_slots
    cdef int32_t[::1] _send_slots
    cdef uint8_t[::1] _send_codec    # 0 = PCMU, 1 = PCMA
    cdef uint8_t[::1] _send_pt
    cdef int32_t[::1] _adv_slots
    cdef Py_ssize_t _n_rx, _n_dtmf, _n_echo, _n_play, _n_send, _n_adv
    # recordings
    cdef list _rec_refs
    cdef int16_t** _rec_buf
    cdef Py_ssize_t _n_rec
    cdef int32_t[::1] _rec_len       # samples (frames of 2 channels) per buffer
    cdef int32_t[::1] _rec_pos
    cdef uint8_t[::1] _rec_paused
    cdef uint8_t[::1] _rec_full
    cdef int32_t[::1] _rec_lptr
    cdef int32_t[::1] _rec_l
    cdef int32_t[::1] _rec_rptr
    cdef int32_t[::1] _rec_r
    # batches
    cdef TickBatch _b0
    cdef TickBatch _b1
    # outputs
    cdef int32_t[::1] _ev_kind
    cdef int32_t[::1] _ev_slot
    cdef int32_t[::1] _ev_a
    cdef int64_t[::1] _ev_b
    cdef Py_ssize_t _ev_cap
    cdef uint8_t[:, ::1] _pkt
    cdef int32_t[::1] _pkt_len
    cdef int16_t _scratch[TK_FRAME]
    cdef int16_t _dec[1536]
    cdef public object events_kind, events_slot, events_a, events_b
    cdef public object packets, packet_lengths, packet_slots
    cdef public object rec_pos, rec_full
    cdef readonly Py_ssize_t swept, n_packets, n_sent, n_events
    cdef void _sweep(self, TickBatch nxt) noexcept nogil
    cdef Py_ssize_t _route(self, TickBatch b, Py_ssize_t n, TickBatch nxt) noexcept nogil
    cdef void _frames(self, double now_ms, TickBatch nxt, bint sweep) noexcept nogil
    cdef void _emit(self, int32_t kind, int32_t slot, int32_t a, int64_t b) noexcept nogil
