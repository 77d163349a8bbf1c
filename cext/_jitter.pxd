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
