# cython: boundscheck=False, wraparound=False
"""C-level adaptive jitter buffer and G.711 Appendix I style packet-loss concealment."""

from libc.stdint cimport int16_t, int64_t, uint8_t, uint16_t, uint32_t

cdef enum:
    JB_FRAME = 160          # 20 ms at 8 kHz
    PLC_PITCH_MIN = 40      # 200 Hz
    PLC_PITCH_MAX = 120     # 66.7 Hz
    PLC_HIST_LEN = 390      # 3.25 x PITCH_MAX: three periods plus a quarter overlap
    PLC_HIST_RING = 512
    PLC_CORR_LEN = 160      # 20 ms correlation window
    PLC_FLAT_LEN = 80       # first 10 ms: one period, no attenuation
    PLC_SILENCE_AT = 480    # 60 ms: output is silent from here on
    JB_SEEN = 64
    JB_MAX_PAYLOAD = 1536   # = MAX_PAYLOAD of _jitter.pyx (decode scratch)

ctypedef struct Plc:
    int16_t hist[PLC_HIST_RING]
    int16_t snap[PLC_HIST_LEN]
    int64_t hpos
    int pitch
    int primed
    int erasing
    int n_erased
    int rec_len
    int rec_pos

cdef void plc_reset(Plc* p) noexcept nogil
cdef int plc_find_pitch(const int16_t* h) noexcept nogil
cdef int16_t plc_step(Plc* p, int present, int16_t real, int* flags) noexcept nogil


cdef class JitterBuffer:
    cdef int16_t* _data
    cdef uint8_t* _valid
    cdef int64_t _size
    cdef int64_t _mask
    cdef Plc _plc
    # stream / timeline
    cdef uint32_t _ssrc
    cdef uint32_t _last_ts
    cdef int64_t _last_ext
    cdef int64_t _play_ts
    cdef int64_t _first_ext
    cdef int64_t _win_lo
    cdef int _have_stream
    cdef int _playing
    cdef int _pending_resync
    cdef int _late_run
    cdef uint16_t _seen_seq[JB_SEEN]
    cdef int64_t _seen_ext[JB_SEEN]
    cdef uint8_t _seen_ok[JB_SEEN]
    # delay estimation
    cdef int _have_transit
    cdef double _cur_min, _cur_max, _prev_min, _prev_max, _win_start_ms
    cdef double _spread, _last_arrival_ms
    cdef int _min_delay, _max_delay, _target
    cdef double _last_delay
    cdef int16_t _scratch[JB_MAX_PAYLOAD]
    # counters
    cdef readonly int64_t packets, duplicates, late, ignored, resyncs
    cdef readonly int64_t real_frames, concealed_frames, silence_frames
    cdef readonly int64_t shrunk_frames, stretched_frames
    cdef void _clear(self) noexcept nogil
    cdef void _restart(self, int64_t ext) noexcept nogil
    cdef void _stats_sample(self, double transit, double arrival_ms) noexcept nogil
    cdef double _base(self) noexcept nogil
    cdef int _insert(self, const int16_t* pcm, Py_ssize_t n, uint16_t seq, uint32_t ts,
                     uint32_t ssrc, double arrival_ms) noexcept nogil
    cdef int _run_frame(self, int16_t* out, int64_t start, int force_missing) noexcept nogil
    cdef int _all_valid(self, int64_t start, int n) noexcept nogil
    cdef int _none_valid(self, int64_t start, int n) noexcept nogil
    cdef double _mean_abs(self, int64_t start) noexcept nogil
    cdef double _history_mean_abs(self) noexcept nogil
    cdef int _tick(self, int16_t* out, double now_ms) noexcept nogil
