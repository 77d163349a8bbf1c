# cython: boundscheck=False, wraparound=False
"""C-level declarations of the media worker's per-tick kernel (see _tick.pyx)."""

from cpython.ref cimport PyObject
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t

from cext._mixer cimport MixPlan
from cext._net cimport NetIO

cdef enum:
    TK_FRAME = 160           # samples per tick (20 ms at 8 kHz)
    TK_PKT = 172             # RTP header + 160 G.711 bytes
    TK_PKT_ROW = 320         # bytes per built-packet row: TK_PKT + SRTP tag (+ MKI) room
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
    # senders (per slot): bound by set_sender, scanned in slot order every tick
    cdef uint8_t* _send              # 1 = encode + build + send out[slot] this tick
    cdef uint8_t* _scodec            # 0 = PCMU, 1 = PCMA
    cdef uint8_t* _spt               # RTP payload type
    cdef uint8_t* _adv               # 1 = the outgoing timestamp advances every tick
    cdef Py_ssize_t _hi              # 1 + the highest slot with any state (scan bound)
    cdef int32_t[::1] _send_slots    # per tick: the slot of each built packet row
    cdef Py_ssize_t _n_send
    # rooms (per handle): a MixPlan over the room's own legs, gathered from / scattered
    # to the room's slots (in place when the slots are consecutive)
    cdef list _room_refs             # per handle: (plan, slots array) or None
    cdef PyObject** _room_plan
    cdef int32_t** _room_slots
    cdef Py_ssize_t* _room_n
    cdef uint8_t* _room_contig
    cdef int32_t* _room_list         # dense list of the active handles
    cdef int32_t* _room_pos          # handle -> index in _room_list, -1 = free
    cdef int32_t* _slot_room         # slot -> handle, -1 = in no room
    cdef Py_ssize_t _n_rooms
    cdef int16_t* _rin               # gather/scatter scratch, _scratch_legs rows each
    cdef int16_t* _rout
    cdef Py_ssize_t _scratch_legs
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
    cdef int32_t[::1] _rec_sptr        # right channel: slots whose sent audio is added
    cdef int32_t[::1] _rec_s
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
    cdef void _mix_rooms(self) noexcept nogil
    cdef bint _has_state(self, Py_ssize_t slot) noexcept nogil
    cdef void _fix_hi(self, Py_ssize_t slot) noexcept nogil
    cdef void _emit(self, int32_t kind, int32_t slot, int32_t a, int64_t b) noexcept nogil
