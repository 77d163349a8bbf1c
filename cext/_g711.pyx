# cython: boundscheck=False, wraparound=False
"""G.711 µ-law / A-law kernels (ITU-T G.711, table driven).

Theory of operation: decoding is a 256-entry lookup. Encoding is a lookup in a table
indexed by the top 14 (µ-law) or 13 (A-law) bits of the int16 sample: G.711 works on
14-bit (µ) and 13-bit (A) linear PCM, so the low bits of a 16-bit sample never change
the code. The tables are computed once at import with the classic segment algorithm
(G.711 Tables 1a/2a, as in the Sun reference implementation), so every kernel is a
branch-free gather. Transcoding µ↔A is a 256-entry lookup built by composition.
"""

from libc.stdint cimport int16_t, uint8_t, int32_t

# G.711 µ-law: bias 0x84 (132) in the 16-bit domain, 33 in the 14-bit domain; clip 8159.
cdef enum:
    ULAW_BIAS = 0x84
    ULAW_CLIP = 8159

cdef int16_t _ulaw_dec[256]
cdef int16_t _alaw_dec[256]
cdef uint8_t _ulaw_enc[16384]
cdef uint8_t _alaw_enc[8192]
cdef uint8_t _u2a[256]
cdef uint8_t _a2u[256]


cdef int16_t _ulaw_to_linear(uint8_t code) noexcept nogil:
    # G.711 Table 2a: invert all bits, then mantissa/segment expansion with bias.
    cdef int32_t u = (~code) & 0xFF
    cdef int32_t t = (((u & 0x0F) << 3) + ULAW_BIAS) << ((u & 0x70) >> 4)
    if u & 0x80:
        return <int16_t>(ULAW_BIAS - t)
    return <int16_t>(t - ULAW_BIAS)


cdef int16_t _alaw_to_linear(uint8_t code) noexcept nogil:
    # G.711 Table 1a: even bits inverted (XOR 0x55); sign bit 1 means positive.
    cdef int32_t a = code ^ 0x55
    cdef int32_t seg = (a & 0x70) >> 4
    cdef int32_t t = (a & 0x0F) << 4
    if seg == 0:
        t += 8
    else:
        t = (t + 0x108) << (seg - 1)
    if a & 0x80:
        return <int16_t>t
    return <int16_t>(-t)


cdef uint8_t _linear14_to_ulaw(int32_t v) noexcept nogil:
    """Encode a 14-bit two's complement value (the int16 sample >> 2)."""
    cdef int32_t mask = 0xFF
    cdef int32_t seg = 0
    if v < 0:
        v = -v
        mask = 0x7F
    if v > ULAW_CLIP:
        v = ULAW_CLIP
    v += ULAW_BIAS >> 2
    # segment end points 0x3F, 0x7F, ..., 0x1FFF
    while seg < 8 and v > (0x3F << seg) | ((1 << seg) - 1):
        seg += 1
    if seg >= 8:
        return <uint8_t>(0x7F ^ mask)
    return <uint8_t>(((seg << 4) | ((v >> (seg + 1)) & 0x0F)) ^ mask)


cdef uint8_t _linear13_to_alaw(int32_t v) noexcept nogil:
    """Encode a 13-bit two's complement value (the int16 sample >> 3)."""
    cdef int32_t mask = 0xD5
    cdef int32_t seg = 0
    cdef int32_t aval
    if v < 0:
        mask = 0x55
        v = -v - 1
    # segment end points 0x1F, 0x3F, ..., 0xFFF
    while seg < 8 and v > (0x1F << seg) | ((1 << seg) - 1):
        seg += 1
    if seg >= 8:
        return <uint8_t>(0x7F ^ mask)
    aval = seg << 4
    if seg < 2:
        aval |= (v >> 1) & 0x0F
    else:
        aval |= (v >> seg) & 0x0F
    return <uint8_t>(aval ^ mask)


cdef void _build_tables() noexcept nogil:
    cdef int32_t i
    for i in range(256):
        _ulaw_dec[i] = _ulaw_to_linear(<uint8_t>i)
        _alaw_dec[i] = _alaw_to_linear(<uint8_t>i)
    for i in range(16384):
        # index is the 14-bit pattern; sign-extend it
        _ulaw_enc[i] = _linear14_to_ulaw(i - 16384 if i >= 8192 else i)
    for i in range(8192):
        _alaw_enc[i] = _linear13_to_alaw(i - 8192 if i >= 4096 else i)
    for i in range(256):
        _u2a[i] = _alaw_enc[((<int32_t>_ulaw_dec[i]) >> 3) & 0x1FFF]
        _a2u[i] = _ulaw_enc[((<int32_t>_alaw_dec[i]) >> 2) & 0x3FFF]


_build_tables()


cdef void c_ulaw_decode(const uint8_t* src, int16_t* dst, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dst[i] = _ulaw_dec[src[i]]


cdef void c_alaw_decode(const uint8_t* src, int16_t* dst, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dst[i] = _alaw_dec[src[i]]


cdef void c_ulaw_encode(const int16_t* src, uint8_t* dst, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dst[i] = _ulaw_enc[((<int32_t>src[i]) >> 2) & 0x3FFF]


cdef void c_alaw_encode(const int16_t* src, uint8_t* dst, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dst[i] = _alaw_enc[((<int32_t>src[i]) >> 3) & 0x1FFF]


cdef void _lookup8(const uint8_t* table, const uint8_t* src, uint8_t* dst,
                   Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dst[i] = table[src[i]]


cdef inline void _check(Py_ssize_t n_src, Py_ssize_t n_dst) except *:
    if n_dst < n_src:
        raise ValueError(
            f"G.711 destination holds {n_dst} samples but the source has {n_src}")


def ulaw_decode(const uint8_t[::1] src, int16_t[::1] dst) -> int:
    """Decode µ-law bytes into int16 samples; returns the number of samples written."""
    cdef Py_ssize_t n = src.shape[0]
    _check(n, dst.shape[0])
    if n:
        with nogil:
            c_ulaw_decode(&src[0], &dst[0], n)
    return n


def alaw_decode(const uint8_t[::1] src, int16_t[::1] dst) -> int:
    """Decode A-law bytes into int16 samples; returns the number of samples written."""
    cdef Py_ssize_t n = src.shape[0]
    _check(n, dst.shape[0])
    if n:
        with nogil:
            c_alaw_decode(&src[0], &dst[0], n)
    return n


def ulaw_encode(const int16_t[::1] src, uint8_t[::1] dst) -> int:
    """Encode int16 samples to µ-law bytes; returns the number of bytes written."""
    cdef Py_ssize_t n = src.shape[0]
    _check(n, dst.shape[0])
    if n:
        with nogil:
            c_ulaw_encode(&src[0], &dst[0], n)
    return n


def alaw_encode(const int16_t[::1] src, uint8_t[::1] dst) -> int:
    """Encode int16 samples to A-law bytes; returns the number of bytes written."""
    cdef Py_ssize_t n = src.shape[0]
    _check(n, dst.shape[0])
    if n:
        with nogil:
            c_alaw_encode(&src[0], &dst[0], n)
    return n


def ulaw_to_alaw(const uint8_t[::1] src, uint8_t[::1] dst) -> int:
    """Transcode µ-law bytes to A-law bytes; returns the number of bytes written."""
    cdef Py_ssize_t n = src.shape[0]
    _check(n, dst.shape[0])
    if n:
        with nogil:
            _lookup8(_u2a, &src[0], &dst[0], n)
    return n


def alaw_to_ulaw(const uint8_t[::1] src, uint8_t[::1] dst) -> int:
    """Transcode A-law bytes to µ-law bytes; returns the number of bytes written."""
    cdef Py_ssize_t n = src.shape[0]
    _check(n, dst.shape[0])
    if n:
        with nogil:
            _lookup8(_a2u, &src[0], &dst[0], n)
    return n
