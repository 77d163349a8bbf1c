# cython: boundscheck=False, wraparound=False
"""Batch UDP socket I/O for the media worker: epoll + recvmmsg/sendmmsg, nogil.

One :class:`NetIO` owns the RTP sockets of a worker as *slots* (slot = endpoint row).
:meth:`NetIO.poll` sleeps in ``epoll_wait`` until an absolute deadline (the next 20 ms
tick) and meanwhile drains every readable socket with ``recvmmsg`` into the rows of a
preallocated 2-D buffer, recording per row the slot, the arrival time and the source
address. While a packet is in C it also does the two per-packet jobs that must not wait
for the tick:

* symmetric RTP latching (RFC 4961, "comedia"): a slot with ``latch`` set sends to
  wherever its peer's packets come from;
* relaying: a slot with ``relay_to >= 0`` forwards audio packets of its ``audio_pt`` at
  once from the target slot's socket to the target's remote address, rewriting PT, SSRC,
  sequence number and timestamp into the target's outgoing stream (a same-codec
  two-party bridge then adds microseconds, not a tick, of latency). The row is still
  returned so that recording, DTMF detection and VAD see the audio.

:meth:`NetIO.send` sends built rows, one ``sendmmsg`` per run of rows of the same slot.
No Python object is created per packet.

With ``kernel_timestamps`` set before the sockets are added, a row's arrival time is when
the kernel received the datagram rather than when it was read: a load generator measures
the server's latency without its own wake-up delay.
"""

from libc.errno cimport EINTR, ENOSYS, errno
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memmove, memset

import socket

import numpy as np


cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec* ts)
    int CLOCK_MONOTONIC
    int CLOCK_REALTIME


cdef extern from "<sys/uio.h>" nogil:
    cdef struct iovec:
        void* iov_base
        size_t iov_len


cdef extern from "<netinet/in.h>" nogil:
    ctypedef uint32_t in_addr_t
    cdef struct in_addr:
        in_addr_t s_addr
    cdef struct sockaddr_in:
        unsigned short sin_family
        uint16_t sin_port
        in_addr sin_addr
    cdef struct in6_addr:
        unsigned char s6_addr[16]
    cdef struct sockaddr_in6:
        unsigned short sin6_family
        uint16_t sin6_port
        uint32_t sin6_flowinfo
        in6_addr sin6_addr
        uint32_t sin6_scope_id
    int AF_INET
    int AF_INET6
    uint16_t htons(uint16_t)
    uint16_t ntohs(uint16_t)


cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    cdef struct msghdr:
        void* msg_name
        socklen_t msg_namelen
        iovec* msg_iov
        size_t msg_iovlen
        void* msg_control
        size_t msg_controllen
        int msg_flags
    cdef struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len
    cdef struct cmsghdr:
        size_t cmsg_len
        int cmsg_level
        int cmsg_type
    cmsghdr* CMSG_FIRSTHDR(msghdr* m)
    cmsghdr* CMSG_NXTHDR(msghdr* m, cmsghdr* c)
    unsigned char* CMSG_DATA(cmsghdr* c)
    int SOL_SOCKET
    int SCM_TIMESTAMPNS
    int SO_TIMESTAMPNS
    int setsockopt(int fd, int level, int name, const void* val, socklen_t n)
    int recvmmsg(int fd, mmsghdr* msgs, unsigned int vlen, int flags, timespec* timeout)
    int sendmmsg(int fd, mmsghdr* msgs, unsigned int vlen, int flags)
    ssize_t sendto(int fd, const void* buf, size_t n, int flags, const void* addr,
                   socklen_t alen)
    int MSG_DONTWAIT


cdef extern from "<sys/epoll.h>" nogil:
    cdef union epoll_data_t:
        void* ptr
        int fd
        uint32_t u32
        uint64_t u64
    cdef struct epoll_event:
        uint32_t events
        epoll_data_t data
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event* ev)
    int epoll_wait(int epfd, epoll_event* evs, int maxevents, int timeout)
    int epoll_pwait2(int epfd, epoll_event* evs, int maxevents, const timespec* timeout,
                     const void* sigmask)
    int EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLLIN, EPOLL_CLOEXEC


cdef extern from "<unistd.h>" nogil:
    int close(int fd)


# libsrtp 2's srtp_protect / srtp_unprotect: (srtp_t ctx, void* packet, int* length).
# The worker passes the addresses of the library aiortc already loads (pylibsrtp's), so the
# sessions it creates there are used with the functions of the same build.
ctypedef int (*srtp_fn)(void* ctx, void* pkt, int* length) noexcept nogil
cdef srtp_fn _srtp_protect = NULL
cdef srtp_fn _srtp_unprotect = NULL


def set_srtp_functions(size_t protect, size_t unprotect) -> None:
    """Install the addresses of libsrtp 2's ``srtp_protect`` and ``srtp_unprotect``
    (see :func:`media.native_srtp.srtp_functions`); 0 uninstalls them."""
    global _srtp_protect, _srtp_unprotect
    _srtp_protect = <srtp_fn><void*>protect
    _srtp_unprotect = <srtp_fn><void*>unprotect


cdef int c_srtp_protect(uint64_t ctx, uint8_t* pkt, int* length) noexcept nogil:
    """SRTP-protect ``pkt`` in place (the buffer must have room for the tag); 0 = ok."""
    if _srtp_protect == NULL or ctx == 0:
        return -1
    return _srtp_protect(<void*><size_t>ctx, pkt, length)


cdef inline double _ms(const timespec* t) noexcept nogil:
    return t.tv_sec * 1000.0 + t.tv_nsec / 1e6


cdef double c_monotonic_ms() noexcept nogil:
    cdef timespec t
    clock_gettime(CLOCK_MONOTONIC, &t)
    return _ms(&t)


cdef double _realtime_ms() noexcept nogil:
    cdef timespec t
    clock_gettime(CLOCK_REALTIME, &t)
    return _ms(&t)


cdef bint _has_pwait2 = True


cdef void _no_pwait2() noexcept nogil:
    global _has_pwait2
    _has_pwait2 = False  # a kernel older than 5.11


cdef double _stamp_ms(msghdr* h, double fallback, double offset) noexcept nogil:
    """The kernel's receive time of a datagram (SO_TIMESTAMPNS, CLOCK_REALTIME) on the
    monotonic clock, or ``fallback`` when the socket does not stamp."""
    cdef cmsghdr* c = CMSG_FIRSTHDR(h)
    cdef timespec t
    while c != NULL:
        if c.cmsg_level == SOL_SOCKET and c.cmsg_type == SCM_TIMESTAMPNS:
            memcpy(&t, CMSG_DATA(c), sizeof(timespec))
            return _ms(&t) + offset
        c = CMSG_NXTHDR(h, c)
    return fallback


def monotonic_ms() -> float:
    """CLOCK_MONOTONIC in milliseconds (the same clock as ``time.monotonic()``)."""
    return c_monotonic_ms()


cdef class NetIO:
    """The UDP sockets of one worker, addressed by slot. See the module docstring."""

    def __cinit__(self, Py_ssize_t capacity):
        if capacity <= 0 or capacity > 1 << 20:
            raise ValueError(f"NetIO capacity must be within 1..{1 << 20}, got {capacity}")
        self.capacity = capacity
        self._epfd = epoll_create1(EPOLL_CLOEXEC)
        if self._epfd < 0:
            raise OSError(errno, "epoll_create1 failed")
        self.fds = np.full(capacity, -1, np.int32)
        self.remote_ip = np.zeros(capacity, np.uint32)
        self.remote_port = np.zeros(capacity, np.uint16)
        self.latch = np.zeros(capacity, np.uint8)
        self.send_enabled = np.zeros(capacity, np.uint8)
        self.relay_to = np.full(capacity, -1, np.int32)
        self.audio_pt = np.zeros(capacity, np.uint8)
        self.out_pt = np.zeros(capacity, np.uint8)
        self.out_ssrc = np.zeros(capacity, np.uint32)
        self.out_seq = np.zeros(capacity, np.uint16)
        self.out_ts = np.zeros(capacity, np.uint32)
        self.relay_active = np.zeros(capacity, np.uint8)
        self.rx_packets = np.zeros(capacity, np.int64)
        self.tx_packets = np.zeros(capacity, np.int64)
        self.relayed = np.zeros(capacity, np.int64)
        self.latched = np.zeros(capacity, np.int64)
        self.last_rx_ms = np.zeros(capacity, np.float64)
        self.srtp_tx = np.zeros(capacity, np.uint64)
        self.srtp_rx = np.zeros(capacity, np.uint64)
        self.srtp_errors = np.zeros(capacity, np.int64)
        self._stx = self.srtp_tx
        self._srx = self.srtp_rx
        self._serr = self.srtp_errors
        self._fdata = np.zeros((NET_FOREIGN, NET_FOREIGN_WIDTH), np.uint8)
        self._flen = np.zeros(NET_FOREIGN, np.int32)
        self._fslot = np.zeros(NET_FOREIGN, np.int32)
        self._fip = np.zeros(NET_FOREIGN, np.uint32)
        self._fport = np.zeros(NET_FOREIGN, np.uint16)
        self._ffam = np.zeros(NET_FOREIGN, np.uint8)
        self._fip6 = np.zeros((NET_FOREIGN, 16), np.uint8)
        self._fcount = 0
        self.foreign_dropped = 0
        self._fam = np.zeros(capacity, np.uint8)
        self._rip6 = np.zeros((capacity, 16), np.uint8)
        self._rscope = np.zeros(capacity, np.uint32)
        self._fds = self.fds
        self._rip = self.remote_ip
        self._rport = self.remote_port
        self._latch = self.latch
        self._send = self.send_enabled
        self._relay = self.relay_to
        self._apt = self.audio_pt
        self._opt = self.out_pt
        self._ossrc = self.out_ssrc
        self._oseq = self.out_seq
        self._ots = self.out_ts
        self._tsoff = np.zeros(capacity, np.uint32)
        self._ractive = self.relay_active
        self._rx = self.rx_packets
        self._tx = self.tx_packets
        self._relayed = self.relayed
        self._latched = self.latched
        self._last_rx = self.last_rx_ms

    def __dealloc__(self):
        if self._epfd >= 0:
            close(self._epfd)
            self._epfd = -1

    def _check_slot(self, Py_ssize_t slot):
        if not 0 <= slot < self.capacity:
            raise ValueError(f"slot {slot} outside 0..{self.capacity - 1}")

    def add(self, Py_ssize_t slot, int fd) -> None:
        """Register a non-blocking UDP socket ``fd`` as ``slot`` (the caller keeps the
        socket object alive and closes it after :meth:`remove`). With
        ``kernel_timestamps`` set, the socket gets ``SO_TIMESTAMPNS``."""
        cdef epoll_event ev
        cdef int one = 1
        self._check_slot(slot)
        if self._fds[slot] >= 0:
            raise ValueError(f"slot {slot} is in use")
        memset(&ev, 0, sizeof(ev))
        ev.events = EPOLLIN
        ev.data.u32 = <uint32_t>slot
        if self.kernel_timestamps and setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one,
                                                 sizeof(one)) != 0:
            raise OSError(errno, "setsockopt(SO_TIMESTAMPNS) failed")
        if epoll_ctl(self._epfd, EPOLL_CTL_ADD, fd, &ev) != 0:
            raise OSError(errno, "epoll_ctl(ADD) failed")
        self._fds[slot] = fd
        self._rip[slot] = 0
        self._rport[slot] = 0
        self._fam[slot] = 4
        self._relay[slot] = -1
        self._ractive[slot] = 0
        self._rx[slot] = 0
        self._tx[slot] = 0
        self._relayed[slot] = 0
        self._latched[slot] = 0
        self._last_rx[slot] = 0.0
        self._stx[slot] = 0
        self._srx[slot] = 0
        self._serr[slot] = 0

    def remove(self, Py_ssize_t slot) -> None:
        """Unregister ``slot`` and clear every relay that points at it."""
        cdef Py_ssize_t i
        cdef epoll_event ev
        self._check_slot(slot)
        if self._fds[slot] < 0:
            return
        epoll_ctl(self._epfd, EPOLL_CTL_DEL, self._fds[slot], &ev)
        self._fds[slot] = -1
        self._send[slot] = 0
        self._relay[slot] = -1
        self._stx[slot] = 0
        self._srx[slot] = 0
        for i in range(self._fcount):  # nothing of a removed slot goes to Python
            if self._fslot[i] == slot:
                self._fslot[i] = -1
        for i in range(self.capacity):
            if self._relay[i] == slot:
                self._relay[i] = -1

    def set_remote(self, Py_ssize_t slot, uint32_t ip_be, uint16_t port) -> None:
        """Set where ``slot`` sends (``ip_be`` in network byte order as read by
        ``int.from_bytes(socket.inet_aton(ip), 'little')``; port in host order)."""
        self._check_slot(slot)
        self._rip[slot] = ip_be
        self._rport[slot] = port
        self._fam[slot] = 4

    def set_remote6(self, Py_ssize_t slot, const uint8_t[::1] addr, uint16_t port,
                    uint32_t scope_id=0) -> None:
        """Set an IPv6 remote address for ``slot`` (``addr``: the 16 bytes of
        ``socket.inet_pton(AF_INET6, ip)``; the slot's socket must be AF_INET6). Only
        WebRTC legs use IPv6 (their ICE sockets); ``remote_ip`` then reads 0."""
        self._check_slot(slot)
        if addr.shape[0] != 16:
            raise ValueError(f"set_remote6 needs 16 address bytes, got {addr.shape[0]}")
        memcpy(&self._rip6[slot, 0], &addr[0], 16)
        self._rip[slot] = 0
        self._rport[slot] = port
        self._rscope[slot] = scope_id
        self._fam[slot] = 6

    def remote_addr(self, Py_ssize_t slot) -> tuple:
        """``(host, port)`` where ``slot`` sends (IPv4 or IPv6), ``("", 0)`` if unset."""
        self._check_slot(slot)
        if self._rport[slot] == 0:
            return ("", 0)
        if self._fam[slot] == 6:
            return (socket.inet_ntop(socket.AF_INET6, bytes(self._rip6[slot])),
                    self._rport[slot])
        return (socket.inet_ntoa(int(self._rip[slot]).to_bytes(4, "little")),
                self._rport[slot])

    cdef unsigned int _dest(self, Py_ssize_t slot, void* out) noexcept nogil:
        """Fill ``out`` (a sockaddr_in6: room for either family) with ``slot``'s
        remote; returns its length."""
        cdef sockaddr_in6* sa = <sockaddr_in6*>out
        cdef sockaddr_in* s4 = <sockaddr_in*>out
        memset(sa, 0, sizeof(sockaddr_in6))
        if self._fam[slot] == 6:
            sa.sin6_family = AF_INET6
            sa.sin6_port = htons(self._rport[slot])
            memcpy(&sa.sin6_addr, &self._rip6[slot, 0], 16)
            sa.sin6_scope_id = self._rscope[slot]
            return sizeof(sockaddr_in6)
        s4.sin_family = AF_INET
        s4.sin_port = htons(self._rport[slot])
        s4.sin_addr.s_addr = self._rip[slot]
        return sizeof(sockaddr_in)

    cdef bint _latch_from(self, Py_ssize_t slot, const void* addr) noexcept nogil:
        """Point ``slot`` at ``addr`` (a received sockaddr of either family); True if
        it changed."""
        cdef const sockaddr_in6* src = <const sockaddr_in6*>addr
        cdef const sockaddr_in* s4 = <const sockaddr_in*>addr
        if src.sin6_family == AF_INET6:
            if (self._fam[slot] == 6 and self._rport[slot] == ntohs(src.sin6_port)
                    and memcmp(&self._rip6[slot, 0], &src.sin6_addr, 16) == 0):
                return False
            memcpy(&self._rip6[slot, 0], &src.sin6_addr, 16)
            self._rscope[slot] = src.sin6_scope_id
            self._rport[slot] = ntohs(src.sin6_port)
            self._rip[slot] = 0
            self._fam[slot] = 6
            return True
        if (self._fam[slot] != 6 and self._rip[slot] == s4.sin_addr.s_addr
                and self._rport[slot] == ntohs(s4.sin_port)):
            return False
        self._rip[slot] = s4.sin_addr.s_addr
        self._rport[slot] = ntohs(s4.sin_port)
        self._fam[slot] = 4
        return True

    def set_srtp(self, Py_ssize_t slot, size_t tx, size_t rx) -> None:
        """Make ``slot`` an SRTP leg sharing its socket with ICE and DTLS (a WebRTC
        endpoint's, RFC 5764 section 5.1.2): ``tx`` and ``rx`` are libsrtp ``srtp_t``
        sessions (0 = none) that the caller keeps alive until :meth:`remove`.

        With ``rx`` set, each RTP datagram is unprotected in place before anything else
        sees it (one that fails authentication is dropped and counted in
        ``srtp_errors``), and every other datagram (STUN, DTLS, SRTCP) is held for
        :meth:`take_foreign`. The tick kernel protects what it sends with ``tx``.
        :func:`set_srtp_functions` must have been called."""
        self._check_slot(slot)
        if (tx or rx) and (_srtp_protect == NULL or _srtp_unprotect == NULL):
            raise ValueError("set_srtp: call set_srtp_functions first")
        self._stx[slot] = tx
        self._srx[slot] = rx

    @property
    def foreign_count(self) -> int:
        """Datagrams held for :meth:`take_foreign`."""
        return self._fcount

    def take_foreign(self) -> list:
        """The held non-RTP datagrams of SRTP slots, oldest first, as
        ``(slot, data, host, port)``; the hold is emptied. Call on the thread that polls."""
        cdef Py_ssize_t i
        out = []
        for i in range(self._fcount):
            if self._fslot[i] < 0:
                continue
            if self._ffam[i] == 6:
                host = socket.inet_ntop(socket.AF_INET6, bytes(self._fip6[i]))
            else:
                host = socket.inet_ntoa(int(self._fip[i]).to_bytes(4, "little"))
            out.append((self._fslot[i], bytes(self._fdata[i, :self._flen[i]]), host,
                        self._fport[i]))
        self._fcount = 0
        return out

    cdef bint _srtp_in(self, int32_t slot, uint8_t* row, int32_t* length,
                       const void* addr) noexcept nogil:
        """An SRTP slot's datagram: True if it is now plain, authenticated RTP in
        ``row`` (``length`` updated); else it was dropped or held for Python."""
        cdef int n = length[0]
        cdef Py_ssize_t f
        cdef const sockaddr_in6* src = <const sockaddr_in6*>addr
        # RFC 5764 5.1.2: 128..191 is RTP or RTCP; RFC 5761 4: PT 192..223 is RTCP
        if n >= 12 and 128 <= row[0] <= 191 and not (192 <= row[1] <= 223):
            if n > NET_FOREIGN_WIDTH or _srtp_unprotect(<void*><size_t>self._srx[slot],
                                                        row, &n) != 0:
                self._serr[slot] += 1
                return False
            length[0] = n
            return True
        f = self._fcount
        if f >= NET_FOREIGN or n > NET_FOREIGN_WIDTH:
            self.foreign_dropped += 1
            return False
        memcpy(&self._fdata[f, 0], row, n)
        self._flen[f] = n
        self._fslot[f] = slot
        if src.sin6_family == AF_INET6:
            self._ffam[f] = 6
            memcpy(&self._fip6[f, 0], &src.sin6_addr, 16)
            self._fip[f] = 0
            self._fport[f] = ntohs(src.sin6_port)
        else:
            self._ffam[f] = 4
            self._fip[f] = (<const sockaddr_in*>src).sin_addr.s_addr
            self._fport[f] = ntohs((<const sockaddr_in*>src).sin_port)
        self._fcount = f + 1
        return False

    cdef void _relay_one(self, int32_t src, uint8_t* pkt, Py_ssize_t n) noexcept nogil:
        cdef int32_t dst = self._relay[src]
        cdef sockaddr_in6 sa
        cdef socklen_t salen
        cdef uint32_t ts, outts, ssrc
        cdef uint16_t seq
        cdef uint8_t hdr[12]
        cdef uint8_t buf[1500]
        cdef int plen
        cdef Py_ssize_t hlen, elen
        if dst < 0 or self._fds[dst] < 0 or not self._send[dst] or self._rport[dst] == 0:
            return
        if n < 12 or n > 1500 or (pkt[0] >> 6) != 2 or (pkt[1] & 0x7F) != self._apt[src]:
            return
        ts = (<uint32_t>pkt[4] << 24) | (<uint32_t>pkt[5] << 16) | (<uint32_t>pkt[6] << 8) | pkt[7]
        memcpy(buf, pkt, n)
        if buf[0] & 0x10:
            # Header extensions (RFC 8285) belong to the hop they came on: a browser's
            # mid/abs-send-time mean nothing to a trunk, and a trunk's IDs could collide
            # with those negotiated with a browser. Drop them (and the X bit).
            hlen = 12 + 4 * (buf[0] & 0x0F)
            if hlen + 4 > n:
                return
            elen = 4 + 4 * ((<Py_ssize_t>buf[hlen + 2] << 8) | buf[hlen + 3])
            if hlen + elen > n:
                return
            memmove(buf + hlen, buf + hlen + elen, n - hlen - elen)
            n -= elen
            buf[0] &= 0xEF
        if not self._ractive[dst]:
            # First relayed packet: continue the target's outgoing timestamp line and
            # mark the discontinuity (RFC 3551 4.1: marker on the first packet of a talkspurt).
            self._tsoff[dst] = self._ots[dst] - ts
            self._ractive[dst] = 1
            buf[1] = 0x80 | self._opt[dst]
        else:
            buf[1] = (pkt[1] & 0x80) | self._opt[dst]
        outts = ts + self._tsoff[dst]
        seq = self._oseq[dst]
        self._oseq[dst] = <uint16_t>(seq + 1)
        self._ots[dst] = outts + 160
        ssrc = self._ossrc[dst]
        buf[2] = seq >> 8
        buf[3] = seq & 0xFF
        buf[4] = outts >> 24
        buf[5] = (outts >> 16) & 0xFF
        buf[6] = (outts >> 8) & 0xFF
        buf[7] = outts & 0xFF
        buf[8] = ssrc >> 24
        buf[9] = (ssrc >> 16) & 0xFF
        buf[10] = (ssrc >> 8) & 0xFF
        buf[11] = ssrc & 0xFF
        if self._stx[dst] != 0:  # into a WebRTC leg: SRTP (the tag needs room)
            plen = <int>n
            if n > 1500 - SRTP_TRAILER_ROOM or c_srtp_protect(self._stx[dst], buf, &plen) != 0:
                self._serr[dst] += 1
                return
            n = plen
        salen = self._dest(dst, &sa)
        if sendto(self._fds[dst], buf, n, MSG_DONTWAIT, &sa, salen) == n:
            self._tx[dst] += 1
            self._relayed[dst] += 1

    cdef Py_ssize_t _poll_rows(self, uint8_t* packets, Py_ssize_t width, Py_ssize_t start,
                          Py_ssize_t cap, int32_t* lengths, int32_t* slots,
                          double* arrival_ms, uint32_t* src_ip, uint16_t* src_port,
                          double deadline_ms) noexcept nogil:
        """Body of :meth:`poll` over raw row pointers: fill rows ``start..cap-1``, return
        the new row count. A deadline in the past makes one non-blocking sweep (the tick
        kernel of ``cext._tick`` calls this between endpoint chunks)."""
        cdef Py_ssize_t n = start, i, j, m, want, base, ln
        cdef int k, timeout, fd
        cdef int32_t slot
        cdef double now, remaining, clock_offset = 0.0
        cdef uint8_t* row
        cdef epoll_event events[NET_MAX_EVENTS]
        cdef mmsghdr msgs[NET_VLEN]
        cdef iovec iov[NET_VLEN]
        cdef sockaddr_in6 addrs[NET_VLEN]   # room for either family
        cdef sockaddr_in* a4
        cdef unsigned char ctrl[NET_VLEN * NET_CTRL]
        cdef timespec wait
        cdef bint stamps = self.kernel_timestamps
        while n < cap:
            now = c_monotonic_ms()
            remaining = deadline_ms - now
            if remaining <= 0:
                k = epoll_wait(self._epfd, events, NET_MAX_EVENTS, 0)
            elif _has_pwait2:
                # to the microsecond: epoll_wait's whole milliseconds would wake the tick
                # up to 1 ms late, and its mixed legs' packets with it
                wait.tv_sec = <time_t>(remaining / 1000.0)
                wait.tv_nsec = <long>((remaining - wait.tv_sec * 1000.0) * 1e6)
                k = epoll_pwait2(self._epfd, events, NET_MAX_EVENTS, &wait, NULL)
                if k < 0 and errno == ENOSYS:
                    _no_pwait2()
                    continue
            else:
                timeout = <int>remaining
                if timeout < remaining:
                    timeout += 1
                k = epoll_wait(self._epfd, events, NET_MAX_EVENTS, timeout)
            if k < 0:
                if errno == EINTR:
                    continue
                break
            if stamps:
                clock_offset = c_monotonic_ms() - _realtime_ms()
            for i in range(k):
                slot = <int32_t>events[i].data.u32
                if slot < 0 or slot >= self.capacity:
                    continue
                fd = self._fds[slot]
                if fd < 0:
                    continue
                while n < cap:
                    want = cap - n
                    if want > NET_VLEN:
                        want = NET_VLEN
                    for j in range(want):
                        iov[j].iov_base = packets + (n + j) * width
                        iov[j].iov_len = width
                        memset(&msgs[j], 0, sizeof(mmsghdr))
                        msgs[j].msg_hdr.msg_name = &addrs[j]
                        msgs[j].msg_hdr.msg_namelen = sizeof(sockaddr_in6)
                        msgs[j].msg_hdr.msg_iov = &iov[j]
                        msgs[j].msg_hdr.msg_iovlen = 1
                        if stamps:
                            msgs[j].msg_hdr.msg_control = &ctrl[j * NET_CTRL]
                            msgs[j].msg_hdr.msg_controllen = NET_CTRL
                    m = recvmmsg(fd, msgs, <unsigned int>want, MSG_DONTWAIT, NULL)
                    if m <= 0:
                        break
                    now = c_monotonic_ms()
                    base = n
                    for j in range(m):
                        row = packets + n * width
                        if n != base + j:  # an earlier datagram of this batch was held
                            ln = msgs[j].msg_len if msgs[j].msg_len < width else width
                            memcpy(row, packets + (base + j) * width, ln)
                        lengths[n] = <int32_t>msgs[j].msg_len
                        slots[n] = slot
                        arrival_ms[n] = now
                        if stamps:
                            arrival_ms[n] = _stamp_ms(&msgs[j].msg_hdr, now, clock_offset)
                        if addrs[j].sin6_family == AF_INET6:  # WebRTC legs only
                            src_ip[n] = 0
                            src_port[n] = ntohs(addrs[j].sin6_port)
                        else:
                            a4 = <sockaddr_in*>&addrs[j]
                            src_ip[n] = a4.sin_addr.s_addr
                            src_port[n] = ntohs(a4.sin_port)
                        if self._srx[slot] != 0:
                            if lengths[n] > width:  # truncated: neither RTP nor usable
                                self._serr[slot] += 1
                                continue
                            if not self._srtp_in(slot, row, &lengths[n], &addrs[j]):
                                continue
                        self._rx[slot] += 1
                        self._last_rx[slot] = now
                        if lengths[n] >= 12 and (row[0] >> 6) == 2:
                            # RFC 4961 symmetric RTP: latch on to the peer's source.
                            if self._latch[slot] and self._latch_from(slot, &addrs[j]):
                                self._latched[slot] += 1
                            if self._relay[slot] >= 0 and lengths[n] <= width:
                                self._relay_one(slot, row, lengths[n])
                        n += 1
                    if m < want:
                        break
            if remaining <= 0:
                break
        return n

    def poll(self, uint8_t[:, ::1] packets, int32_t[::1] lengths, int32_t[::1] slots,
             double[::1] arrival_ms, uint32_t[::1] src_ip, uint16_t[::1] src_port,
             double deadline_ms, Py_ssize_t start=0) -> int:
        """Receive until ``deadline_ms`` (CLOCK_MONOTONIC ms) or until the buffer is full.

        Fills rows ``start..n-1`` and returns ``n``. Datagrams longer than a row are
        truncated and get their real length in ``lengths`` (the RTP parser then flags
        them). With a deadline in the past it makes one non-blocking sweep.
        """
        cdef Py_ssize_t cap = packets.shape[0], width = packets.shape[1]
        cdef Py_ssize_t n
        if (lengths.shape[0] < cap or slots.shape[0] < cap or arrival_ms.shape[0] < cap
                or src_ip.shape[0] < cap or src_port.shape[0] < cap):
            raise ValueError("NetIO.poll arrays must hold one entry per packet row")
        if start < 0 or start > cap:
            raise ValueError(f"NetIO.poll start {start} outside 0..{cap}")
        if start == cap:
            return cap
        with nogil:
            n = self._poll_rows(&packets[0, 0], width, start, cap, &lengths[0], &slots[0],
                           &arrival_ms[0], &src_ip[0], &src_port[0], deadline_ms)
        return n

    cdef Py_ssize_t _send_rows(self, const uint8_t* packets, Py_ssize_t width,
                          const int32_t* lengths, const int32_t* slots,
                          Py_ssize_t count) noexcept nogil:
        """Body of :meth:`send` over raw row pointers."""
        cdef Py_ssize_t i = 0, j, run, sent = 0
        cdef int32_t slot
        cdef int r
        cdef mmsghdr msgs[NET_VLEN]
        cdef iovec iov[NET_VLEN]
        cdef sockaddr_in6 sa
        cdef socklen_t salen
        while i < count:
            slot = slots[i]
            run = 1
            while (i + run < count and run < NET_VLEN and slots[i + run] == slot):
                run += 1
            if (0 <= slot < self.capacity and self._fds[slot] >= 0 and self._send[slot]
                    and self._rport[slot] != 0):
                salen = self._dest(slot, &sa)
                for j in range(run):
                    iov[j].iov_base = <void*>(packets + (i + j) * width)
                    iov[j].iov_len = lengths[i + j]
                    memset(&msgs[j], 0, sizeof(mmsghdr))
                    msgs[j].msg_hdr.msg_name = &sa
                    msgs[j].msg_hdr.msg_namelen = salen
                    msgs[j].msg_hdr.msg_iov = &iov[j]
                    msgs[j].msg_hdr.msg_iovlen = 1
                r = sendmmsg(self._fds[slot], msgs, <unsigned int>run, MSG_DONTWAIT)
                if r > 0:
                    sent += r
                    self._tx[slot] += r
            i += run
        return sent

    def send_stamped(self, uint8_t[:, ::1] packets, const int32_t[::1] lengths,
                     const int32_t[::1] slots, Py_ssize_t count, Py_ssize_t offset) -> int:
        """:meth:`send`, one row at a time, each row first stamped at byte ``offset`` with
        the time it is handed to the kernel (float64 ms, CLOCK_MONOTONIC, host order): a
        load generator's packets then carry when each one left, not when its batch was
        built (later rows of a batch wait for the earlier ones' loopback delivery)."""
        cdef Py_ssize_t i, width = packets.shape[1], sent = 0
        cdef double t
        if count < 0 or count > packets.shape[0] or count > lengths.shape[0] \
                or count > slots.shape[0]:
            raise ValueError("NetIO.send_stamped count exceeds the arrays")
        if not 0 <= offset <= width - 8:
            raise ValueError(f"stamp offset {offset} outside 0..{width - 8}")
        with nogil:
            for i in range(count):
                t = c_monotonic_ms()
                memcpy(&packets[i, offset], &t, 8)
                sent += self._send_rows(&packets[i, 0], width, &lengths[i], &slots[i], 1)
        return sent

    def send_srtp(self, uint8_t[:, ::1] packets, int32_t[::1] lengths,
                  const int32_t[::1] slots, Py_ssize_t count) -> int:
        """:meth:`send`, after SRTP-protecting in place every row whose slot has an SRTP
        ``tx`` session (:meth:`set_srtp`; ``lengths`` grow by the tag). Rows need
        ``SRTP_TRAILER_ROOM`` (148) spare bytes; a row without them, or that libsrtp
        refuses, is counted in ``srtp_errors`` and not sent."""
        cdef Py_ssize_t i, width = packets.shape[1], sent = 0
        cdef int32_t s
        cdef int plen
        if count < 0 or count > packets.shape[0] or count > lengths.shape[0] \
                or count > slots.shape[0]:
            raise ValueError("NetIO.send_srtp count exceeds the arrays")
        if count == 0:
            return 0
        drop = np.empty(count, np.int32)
        cdef int32_t[::1] dslots = drop
        with nogil:
            for i in range(count):
                s = slots[i]
                dslots[i] = s
                if s < 0 or s >= self.capacity or self._stx[s] == 0:
                    continue
                plen = lengths[i]
                if (plen + SRTP_TRAILER_ROOM > width
                        or c_srtp_protect(self._stx[s], &packets[i, 0], &plen) != 0):
                    self._serr[s] += 1
                    dslots[i] = -1  # _send_rows skips slot -1
                    continue
                lengths[i] = plen
            sent = self._send_rows(&packets[0, 0], width, &lengths[0], &dslots[0], count)
        return sent

    def send(self, const uint8_t[:, ::1] packets, const int32_t[::1] lengths,
             const int32_t[::1] slots, Py_ssize_t count) -> int:
        """Send rows ``0..count-1``, row ``i`` from ``slots[i]``'s socket to its remote
        address; one ``sendmmsg`` per run of consecutive rows of one slot. Rows of a slot
        without a remote address or with sending disabled are skipped. Returns the
        number of datagrams the kernel accepted."""
        cdef Py_ssize_t sent = 0
        if count < 0 or count > packets.shape[0] or count > lengths.shape[0] \
                or count > slots.shape[0]:
            raise ValueError("NetIO.send count exceeds the arrays")
        if count == 0:
            return 0
        with nogil:
            sent = self._send_rows(&packets[0, 0], packets.shape[1], &lengths[0], &slots[0], count)
        return sent
