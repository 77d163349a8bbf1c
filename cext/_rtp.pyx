# cython: boundscheck=False, wraparound=False
"""RTP (RFC 3550) header parse/build kernels and per-source sequence/jitter state.

Theory of operation: the media worker receives datagrams into a preallocated
``uint8[packets, 1500]`` array with a ``lengths`` array (recvmmsg style) and calls
:func:`parse_batch` once per tick; it fills field arrays and a status array, creating
no Python object per packet. :class:`RtpSourceTable` holds one C struct per remote
source (RFC 3550 Appendix A.1 sequence state, A.8 interarrival jitter) and is updated
with whole batches; RTCP reports read it once per second.
"""

from cpython.mem cimport PyMem_Calloc, PyMem_Free
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy, memset
from libc.math cimport floor

cdef enum:
    RTP_HEADER_SIZE = 12
    # RFC 3550 A.1
    RTP_SEQ_MOD = 65536
    MAX_DROPOUT = 3000
    MAX_MISORDER = 100
    MIN_SEQUENTIAL = 2

STATUS_OK = RTP_OK
STATUS_SHORT = RTP_ERR_SHORT
STATUS_VERSION = RTP_ERR_VERSION
STATUS_CSRC = RTP_ERR_CSRC
STATUS_EXT_HEADER = RTP_ERR_EXT_HEADER
STATUS_EXT_VALUE = RTP_ERR_EXT_VALUE
STATUS_PADDING = RTP_ERR_PADDING
STATUS_LENGTH = RTP_ERR_LENGTH
STATUS_RTCP = RTP_IS_RTCP


cdef inline uint16_t _be16(const uint8_t* p) noexcept nogil:
    return <uint16_t>((p[0] << 8) | p[1])


cdef inline uint32_t _be32(const uint8_t* p) noexcept nogil:
    return ((<uint32_t>p[0]) << 24) | ((<uint32_t>p[1]) << 16) | ((<uint32_t>p[2]) << 8) | p[3]


cdef inline void _put16(uint8_t* p, uint16_t v) noexcept nogil:
    p[0] = v >> 8
    p[1] = v & 0xFF


cdef inline void _put32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = v >> 24
    p[1] = (v >> 16) & 0xFF
    p[2] = (v >> 8) & 0xFF
    p[3] = v & 0xFF


cdef int c_parse(const uint8_t* p, Py_ssize_t n, RtpFields* f) noexcept nogil:
    """Parse one RTP header. Returns an RTP_* status; fields are valid only on RTP_OK."""
    cdef Py_ssize_t pos, end, ext_words
    if n < RTP_HEADER_SIZE:
        return RTP_ERR_SHORT
    # RFC 3550 5.1: V must be 2.
    if (p[0] >> 6) != 2:
        return RTP_ERR_VERSION
    f.cc = p[0] & 0x0F
    f.marker = p[1] >> 7
    f.pt = p[1] & 0x7F
    f.seq = _be16(p + 2)
    f.ts = _be32(p + 4)
    f.ssrc = _be32(p + 8)
    # RFC 5761 4: RTCP multiplexed on the RTP port shows M=1 and PT 72..76 (SR..APP).
    if 72 <= f.pt <= 76 and f.marker:
        return RTP_IS_RTCP
    pos = RTP_HEADER_SIZE + 4 * f.cc
    if pos > n:
        return RTP_ERR_CSRC
    f.has_extension = (p[0] >> 4) & 1
    f.ext_profile = 0
    f.ext_offset = <int32_t>pos
    f.ext_len = 0
    if f.has_extension:
        # RFC 3550 5.3.1: 16-bit profile, 16-bit length in 32-bit words, then data.
        if pos + 4 > n:
            return RTP_ERR_EXT_HEADER
        f.ext_profile = _be16(p + pos)
        ext_words = _be16(p + pos + 2)
        pos += 4
        if pos + 4 * ext_words > n:
            return RTP_ERR_EXT_VALUE
        f.ext_offset = <int32_t>pos
        f.ext_len = <int32_t>(4 * ext_words)
        pos += 4 * ext_words
    end = n
    f.padding_size = 0
    if p[0] & 0x20:
        # RFC 3550 5.1: the last octet counts the padding octets, itself included.
        f.padding_size = p[n - 1]
        if f.padding_size == 0 or f.padding_size > n - pos:
            return RTP_ERR_PADDING
        end = n - f.padding_size
    f.payload_offset = <int32_t>pos
    f.payload_len = <int32_t>(end - pos)
    return RTP_OK


cdef Py_ssize_t c_build_header(uint8_t* out, int pt, int marker, uint16_t seq, uint32_t ts,
                               uint32_t ssrc) noexcept nogil:
    out[0] = 0x80  # V=2, P=0, X=0, CC=0
    out[1] = ((marker & 1) << 7) | (pt & 0x7F)
    _put16(out + 2, seq)
    _put32(out + 4, ts)
    _put32(out + 8, ssrc)
    return RTP_HEADER_SIZE


def parse_batch(const uint8_t[:, ::1] packets, const int32_t[::1] lengths,
                uint16_t[::1] seq, uint32_t[::1] ts, uint32_t[::1] ssrc,
                uint8_t[::1] pt, uint8_t[::1] marker, int32_t[::1] payload_offset,
                int32_t[::1] payload_len, int8_t[::1] status, Py_ssize_t count=-1) -> int:
    """Parse the first ``count`` rows of ``packets`` (all rows if -1).

    Fills the field arrays row by row; ``status[i]`` is 0 (STATUS_OK) or an error code,
    and field values of rows with a non-zero status are unspecified. Returns the number
    of rows parsed successfully.
    """
    cdef Py_ssize_t n = packets.shape[0] if count < 0 else count
    cdef Py_ssize_t width = packets.shape[1]
    cdef Py_ssize_t i, ln
    cdef int st
    cdef Py_ssize_t good = 0
    cdef RtpFields f
    if n > packets.shape[0]:
        raise ValueError(f"RTP batch count {n} exceeds the {packets.shape[0]} packet rows")
    for arr_len in (lengths.shape[0], seq.shape[0], ts.shape[0], ssrc.shape[0], pt.shape[0],
                    marker.shape[0], payload_offset.shape[0], payload_len.shape[0],
                    status.shape[0]):
        if arr_len < n:
            raise ValueError(f"RTP batch arrays must hold at least {n} entries")
    with nogil:
        for i in range(n):
            ln = lengths[i]
            if ln < 0 or ln > width:
                st = RTP_ERR_LENGTH
            else:
                st = c_parse(&packets[i, 0], ln, &f)
            status[i] = <int8_t>st
            if st == RTP_OK:
                seq[i] = f.seq
                ts[i] = f.ts
                ssrc[i] = f.ssrc
                pt[i] = f.pt
                marker[i] = f.marker
                payload_offset[i] = f.payload_offset
                payload_len[i] = f.payload_len
                good += 1
            else:
                payload_offset[i] = 0
                payload_len[i] = 0
    return good


def parse_one(const uint8_t[::1] data) -> tuple:
    """Parse one packet for the control plane.

    Returns ``(status, pt, marker, seq, ts, ssrc, cc, ext_profile_or_-1, ext_offset,
    ext_len, payload_offset, payload_len, padding_size)``.
    """
    cdef RtpFields f
    cdef int st
    memset(&f, 0, sizeof(f))
    st = c_parse(&data[0] if data.shape[0] else NULL, data.shape[0], &f)
    return (st, f.pt, f.marker, f.seq, f.ts, f.ssrc, f.cc,
            f.ext_profile if f.has_extension else -1, f.ext_offset, f.ext_len,
            f.payload_offset, f.payload_len, f.padding_size)


def build_one(uint8_t[::1] out, int pt, bint marker, uint16_t seq, uint32_t ts, uint32_t ssrc,
              const uint8_t[::1] payload) -> int:
    """Write a 12-byte header (V=2, no CSRC/extension/padding) and the payload into
    ``out``; returns the packet length."""
    cdef Py_ssize_t n = payload.shape[0]
    if not 0 <= pt <= 127:
        raise ValueError(f"RTP payload type {pt} is outside 0..127")
    if out.shape[0] < RTP_HEADER_SIZE + n:
        raise ValueError(f"RTP build buffer holds {out.shape[0]} bytes, "
                         f"the packet needs {RTP_HEADER_SIZE + n}")
    with nogil:
        c_build_header(&out[0], pt, marker, seq, ts, ssrc)
        if n:
            memcpy(&out[RTP_HEADER_SIZE], &payload[0], n)
    return RTP_HEADER_SIZE + n


def build_batch(const uint8_t[:, ::1] payloads, const int32_t[::1] payload_len,
                const uint8_t[::1] pt, const uint8_t[::1] marker, const uint16_t[::1] seq,
                const uint32_t[::1] ts, const uint32_t[::1] ssrc,
                uint8_t[:, ::1] out, int32_t[::1] out_len, Py_ssize_t count=-1) -> int:
    """Build ``count`` packets (all payload rows if -1): row i of ``out`` receives the
    header from the field arrays and ``payloads[i, :payload_len[i]]``; ``out_len[i]``
    receives the packet length. Returns the number of packets built."""
    cdef Py_ssize_t n = payloads.shape[0] if count < 0 else count
    cdef Py_ssize_t i, ln, width = out.shape[1], maxp = payloads.shape[1]
    if n > payloads.shape[0] or n > out.shape[0]:
        raise ValueError(f"RTP batch count {n} exceeds the payload or output rows")
    for arr_len in (payload_len.shape[0], pt.shape[0], marker.shape[0], seq.shape[0],
                    ts.shape[0], ssrc.shape[0], out_len.shape[0]):
        if arr_len < n:
            raise ValueError(f"RTP batch arrays must hold at least {n} entries")
    for i in range(n):
        ln = payload_len[i]
        if ln < 0 or ln > maxp or ln + RTP_HEADER_SIZE > width:
            raise ValueError(f"RTP payload length {ln} of row {i} does not fit")
        if pt[i] > 127:
            raise ValueError(f"RTP payload type {pt[i]} of row {i} is outside 0..127")
    with nogil:
        for i in range(n):
            ln = payload_len[i]
            c_build_header(&out[i, 0], pt[i], marker[i], seq[i], ts[i], ssrc[i])
            if ln:
                memcpy(&out[i, RTP_HEADER_SIZE], &payloads[i, 0], ln)
            out_len[i] = <int32_t>(ln + RTP_HEADER_SIZE)
    return n


# ---------------------------------------------------------------------------
# RFC 3550 Appendix A.1 (sequence number validity) and A.8 (interarrival jitter)

cdef void _init_seq(RtpSource* s, uint16_t seq) noexcept nogil:
    s.base_seq = seq
    s.max_seq = seq
    s.bad_seq = RTP_SEQ_MOD + 1  # so seq == bad_seq is false
    s.cycles = 0
    s.received = 0
    s.received_prior = 0
    s.expected_prior = 0
    s.has_transit = 0  # a restart re-bases timestamps: no jitter sample across it


cdef void _new_source(RtpSource* s, uint32_t ssrc, uint16_t seq) noexcept nogil:
    # RFC 3550 A.1: a new source starts in probation, max_seq one below the first seq.
    _init_seq(s, seq)
    s.jitter = 0.0
    s.ssrc = ssrc
    s.active = 1
    s.max_seq = <uint16_t>(seq - 1)
    s.probation = MIN_SEQUENTIAL


cdef int _update_seq(RtpSource* s, uint16_t seq) noexcept nogil:
    cdef uint16_t udelta = <uint16_t>(seq - s.max_seq)
    # Source is not valid until MIN_SEQUENTIAL packets with sequential numbers arrive.
    if s.probation:
        # (max_seq + 1) is taken modulo 2^16 so probation survives a wrap.
        if seq == <uint16_t>(s.max_seq + 1):
            s.probation -= 1
            s.max_seq = seq
            if s.probation == 0:
                _init_seq(s, seq)
                s.received += 1
                return 1
        else:
            s.probation = MIN_SEQUENTIAL - 1
            s.max_seq = seq
        return 0
    elif udelta < MAX_DROPOUT:
        # in order, with permissible gap
        if seq < s.max_seq:
            s.cycles += RTP_SEQ_MOD  # sequence number wrapped
        s.max_seq = seq
    elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
        # the sequence number made a very large jump
        if seq == s.bad_seq:
            # two sequential packets: assume the other side restarted without telling us
            _init_seq(s, seq)
        else:
            s.bad_seq = (seq + 1) & (RTP_SEQ_MOD - 1)
            return 0
    # else: duplicate or reordered packet
    s.received += 1
    return 1


cdef int c_update(RtpSource* s, uint16_t seq, uint32_t ts, uint32_t ssrc,
                  double arrival_ms) noexcept nogil:
    """Account one received packet; returns 1 if the packet is valid (A.1)."""
    cdef int64_t arrival, transit, d
    if not s.active or s.ssrc != ssrc:
        _new_source(s, ssrc, seq)
    if not _update_seq(s, seq):
        return 0
    # RFC 3550 A.8: arrival in timestamp units, transit = arrival - timestamp,
    # J += (|D| - J) / 16.
    arrival = <int64_t>floor(arrival_ms * s.clock_rate / 1000.0)
    transit = <int32_t>(<uint32_t>arrival - ts)
    if s.has_transit:
        d = transit - s.transit
        if d < 0:
            d = -d
        s.jitter += (1.0 / 16.0) * (<double>d - s.jitter)
    s.transit = transit
    s.has_transit = 1
    return 1


cdef class RtpSourceTable:
    """Fixed-capacity table of RFC 3550 receiver-side source states, one per stream slot.

    :param capacity: number of stream slots.
    :param clock_rate: default RTP clock rate (Hz) of every slot.
    """

    cdef RtpSource* _s
    cdef readonly Py_ssize_t capacity

    def __cinit__(self, Py_ssize_t capacity, uint32_t clock_rate=8000):
        if capacity <= 0:
            raise ValueError(f"RTP source table capacity must be positive, got {capacity}")
        if clock_rate == 0:
            raise ValueError("RTP clock rate must be positive")
        self._s = <RtpSource*>PyMem_Calloc(capacity, sizeof(RtpSource))
        if self._s == NULL:
            raise MemoryError()
        self.capacity = capacity
        for i in range(capacity):
            self._s[i].clock_rate = clock_rate

    def __dealloc__(self):
        PyMem_Free(self._s)

    cdef inline RtpSource* _slot(self, Py_ssize_t i) except NULL:
        if not 0 <= i < self.capacity:
            raise IndexError(f"RTP source slot {i} is outside 0..{self.capacity - 1}")
        return &self._s[i]

    def reset(self, Py_ssize_t slot, uint32_t clock_rate=0) -> None:
        """Forget the source in ``slot`` (call end); optionally change its clock rate."""
        cdef RtpSource* s = self._slot(slot)
        cdef uint32_t rate = clock_rate or s.clock_rate
        memset(s, 0, sizeof(RtpSource))
        s.clock_rate = rate

    def update(self, const int32_t[::1] slot, const uint16_t[::1] seq, const uint32_t[::1] ts,
               const uint32_t[::1] ssrc, const double[::1] arrival_ms,
               const int8_t[::1] status, uint8_t[::1] valid, Py_ssize_t count=-1) -> int:
        """Account a parsed batch. Rows with ``status != 0`` or ``slot < 0`` are skipped.

        ``valid[i]`` is set to 1 for rows that RFC 3550 A.1 accepts (0 otherwise; a
        source in probation or a large jump is not valid). Returns the count of valid rows.
        """
        cdef Py_ssize_t n = slot.shape[0] if count < 0 else count
        cdef Py_ssize_t i, good = 0
        cdef int32_t k
        for arr_len in (slot.shape[0], seq.shape[0], ts.shape[0], ssrc.shape[0],
                        arrival_ms.shape[0], status.shape[0], valid.shape[0]):
            if arr_len < n:
                raise ValueError(f"RTP batch arrays must hold at least {n} entries")
        for i in range(n):
            if slot[i] >= self.capacity:
                raise IndexError(f"RTP source slot {slot[i]} is outside 0..{self.capacity - 1}")
        with nogil:
            for i in range(n):
                k = slot[i]
                valid[i] = 0
                if k < 0 or status[i] != RTP_OK:
                    continue
                if c_update(&self._s[k], seq[i], ts[i], ssrc[i], arrival_ms[i]):
                    valid[i] = 1
                    good += 1
        return good

    def stats(self, Py_ssize_t slot, bint update_prior=False) -> tuple:
        """Return ``(ssrc, extended_max_seq, expected, received, cumulative_lost,
        fraction_lost, jitter, in_probation)`` of a slot (RFC 3550 A.3, A.8).

        :param update_prior: set when building an RTCP report block, so the next
            ``fraction_lost`` covers only the interval since this report.
        """
        cdef RtpSource* s = self._slot(slot)
        cdef int64_t extended_max, expected, lost, expected_interval, received_interval
        cdef int64_t lost_interval
        cdef int fraction
        if not s.active:
            return (0, 0, 0, 0, 0, 0, 0, True)
        extended_max = <int64_t>s.cycles + s.max_seq
        expected = extended_max - s.base_seq + 1
        lost = expected - s.received
        # clamp to the signed 24-bit field of the report block (RFC 3550 6.4.1)
        if lost > 0x7FFFFF:
            lost = 0x7FFFFF
        elif lost < -0x800000:
            lost = -0x800000
        expected_interval = expected - s.expected_prior
        received_interval = <int64_t>s.received - s.received_prior
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = <int>((lost_interval << 8) // expected_interval)
            if fraction > 255:  # the field is 8 bits (RFC 3550 6.4.1)
                fraction = 255
        if update_prior:
            s.expected_prior = <uint32_t>expected
            s.received_prior = s.received
        return (s.ssrc, <uint32_t>extended_max, expected, s.received, lost, fraction,
                <uint32_t>s.jitter, s.probation != 0)
