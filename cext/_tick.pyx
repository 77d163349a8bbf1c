# cython: boundscheck=False, wraparound=False
"""The media worker's tick kernel: one nogil call per 20 ms tick over all endpoints.

Theory of operation
-------------------
A :class:`TickKernel` holds, per endpoint *slot* (the row of the worker's ``inp``/``out``
int16 arrays and of :class:`cext.net.NetIO`), borrowed C pointers to that endpoint's
kernels: its :class:`~cext.jitter.JitterBuffer`, its :class:`~cext.dtmf.DtmfDetector`
(in-band DTMF, optional), the prompt/tone player and the in-band DTMF tone being sent.
The Python objects themselves are kept alive in ``_refs``; the worker (the only owner,
on the tick thread) re-binds a slot with :meth:`TickKernel.set_endpoint` whenever one of
them changes, its sending with :meth:`TickKernel.set_sender` and a room's mix plan with
:meth:`TickKernel.set_room` / :meth:`TickKernel.clear_room`. Every setter is O(1) (a
room's: O(its legs)); there are no derived slot lists to rebuild, because the tick
scans the per-slot flags of slots ``0.._hi-1`` in C (a few bytes per slot, next to the
~1.5 us of real work per endpoint). So a control command costs the same with 10 or
5000 endpoints, and no Python object is touched inside the tick.

:meth:`TickKernel.run` does, with the GIL released:

1. parse every received row of the current batch (as ``cext.rtp.parse_batch``) and
   route it: RFC 4733 rows (the endpoint's telephone-event PT) become ``EV_TE`` events for
   the Python receiver; audio rows are G.711-decoded and inserted into the endpoint's
   jitter buffer (exactly ``JitterBuffer.put_batch``, row order = arrival order);
2. pull one 20 ms frame per receiving endpoint (``JitterBuffer.get_frame``) into
   ``inp[slot]`` and run the in-band DTMF detector on it, finished digits becoming
   ``EV_DTMF`` events; every ``TK_SWEEP_EVERY`` endpoints it makes one non-blocking
   network sweep (``NetIO._poll_rows`` with a past deadline) into the *other* batch, so
   same-codec relaying goes on while the tick computes;
3. silence every output row, mix each room with its own ``MixPlan`` (over the room's
   legs: gathered into a scratch block, or in place when its slots are consecutive),
   add the echo endpoints' own input, apply the players (tone > prompt, replace or mix; ``EV_TONE_DONE``/``EV_PLAY_DONE``);
4. copy the received frames into the recordings' stereo buffers (left/right = the
   saturated sum of the side's endpoints; the right channel may also take what some
   slots *send*, their output rows, so a one-leg call records the prompts its caller
   hears); a buffer that fills is flagged in ``rec_full`` for the worker to hand to its
   writer thread;
5. G.711-encode every sender's output row, build its RTP packet (the NetIO's
   ``out_seq``/``out_ts``/``out_ssrc``) into ``packets`` and send all of them
   (``NetIO._send_rows``: sendmmsg per slot); advance the timestamps of the advancing slots.

Everything is preallocated; the only outputs the worker reads in Python are the small
event arrays (``n_events`` rows), ``rec_full`` and the counters.
"""

from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cpython.ref cimport PyObject
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy, memset

from cext._dtmf cimport DtmfDetector
from cext._g711 cimport c_alaw_decode, c_alaw_encode, c_ulaw_decode, c_ulaw_encode
from cext._jitter cimport JitterBuffer
from cext._mixer cimport MixPlan
from cext._net cimport NetIO, c_srtp_protect
from cext._rtp cimport RTP_ERR_LENGTH, RTP_OK, RtpFields, c_build_header, c_parse
from cext._tones cimport PromptPlayer, ToneGenerator

import numpy as np

EV_DTMF = 1
EV_TE = 2
EV_PLAY_DONE = 3
EV_TONE_DONE = 4
FRAME = TK_FRAME
PACKET = TK_PKT

cdef enum:
    K_DTMF = 1
    K_TE = 2
    K_PLAY_DONE = 3
    K_TONE_DONE = 4
    # JitterBuffer.get_frame flags (cext.jitter.FRAME_*)
    F_REAL = 1
    F_CONCEALED = 2
    F_SILENCE = 4
    F_STRETCHED = 8
    F_SHRUNK = 16
    JB_MAX_DECODE = 1536
    P_NONE = 0
    P_TONE = 1
    P_PROMPT = 2


cdef inline int16_t _sat(int32_t v) noexcept nogil:
    if v > 32767:
        return 32767
    if v < -32768:
        return -32768
    return <int16_t>v


cdef void _tap(int16_t* dst, const int16_t* inp, const int32_t* rx, Py_ssize_t p,
               Py_ssize_t q, const int16_t* out, const int32_t* tx, Py_ssize_t ps,
               Py_ssize_t qs) noexcept nogil:
    # one channel of a recording tick (every other int16 of ``dst``): the saturated sum
    # of what slots rx[p:q] received (their ``inp`` rows) and of what slots tx[ps:qs]
    # are sent (their ``out`` rows); silence when both ranges are empty
    cdef Py_ssize_t j, k
    cdef const int16_t* row
    cdef int32_t acc
    if (q - p) + (qs - ps) == 0:
        for j in range(TK_FRAME):
            dst[2 * j] = 0
        return
    if (q - p) + (qs - ps) == 1:
        row = inp + rx[p] * TK_FRAME if q > p else out + tx[ps] * TK_FRAME
        for j in range(TK_FRAME):
            dst[2 * j] = row[j]
        return
    for j in range(TK_FRAME):
        acc = 0
        for k in range(p, q):
            acc = acc + inp[rx[k] * TK_FRAME + j]
        for k in range(ps, qs):
            acc = acc + out[tx[k] * TK_FRAME + j]
        dst[2 * j] = _sat(acc)


cdef void _jb_count(JitterBuffer jb, int which) noexcept nogil:
    # the counters JitterBuffer.put_batch / get_frame keep (0 = ignored packet)
    if which == F_SILENCE:
        jb.silence_frames += 1
    elif which == F_REAL:
        jb.real_frames += 1
    elif which == F_CONCEALED:
        jb.concealed_frames += 1
    else:
        jb.ignored += 1


cdef class TickBatch:
    """Memoryviews of one :class:`cext.net.RecvBatch` for the kernel."""

    def __init__(self, rb):
        self.packets = rb.packets
        self.lengths = rb.lengths
        self.slots = rb.slots
        self.arrival_ms = rb.arrival_ms
        self.src_ip = rb.src_ip
        self.src_port = rb.src_port
        self.seq = rb.seq
        self.ts = rb.ts
        self.ssrc = rb.ssrc
        self.pt = rb.pt
        self.marker = rb.marker
        self.payload_offset = rb.payload_offset
        self.payload_len = rb.payload_len
        self.status = rb.status
        self.capacity = self.packets.shape[0]
        for name in ("lengths", "slots", "arrival_ms", "src_ip", "src_port", "seq", "ts",
                     "ssrc", "pt", "marker", "payload_offset", "payload_len", "status"):
            if len(getattr(rb, name)) < self.capacity:
                raise ValueError("batch arrays must hold one entry per packet row")


cdef class TickKernel:
    """Per-tick kernel over all endpoints of a worker; see the module docstring.

    :param net: the worker's NetIO (send state, sockets, sweeps).
    :param inp: int16 (capacity, 160): what each slot received this tick.
    :param out: int16 (capacity, 160): what each slot sends this tick.
    :param batch0: first RecvBatch; :param batch1: second (the sweeps' target).
    """

    def __cinit__(self, NetIO net, int16_t[:, ::1] inp, int16_t[:, ::1] out, batch0, batch1):
        cdef Py_ssize_t cap = inp.shape[0], i
        if inp.shape[1] != TK_FRAME or out.shape[1] != TK_FRAME or out.shape[0] != cap:
            raise ValueError(f"inp/out must both be (capacity, {TK_FRAME}) int16")
        if net.capacity < cap:
            raise ValueError(f"NetIO capacity {net.capacity} < {cap} slots")
        if &inp[0, 0] == &out[0, 0]:
            raise ValueError("out must not be the input array")
        self.capacity = cap
        self._net = net
        self._inp = inp
        self._out = out
        self._refs = [None] * cap
        self._jb = <PyObject**>PyMem_Calloc(cap, sizeof(PyObject*))
        self._dtmf = <PyObject**>PyMem_Calloc(cap, sizeof(PyObject*))
        self._player = <PyObject**>PyMem_Calloc(cap, sizeof(PyObject*))
        self._tone = <PyObject**>PyMem_Calloc(cap, sizeof(PyObject*))
        self._pkind = <uint8_t*>PyMem_Calloc(cap, 1)
        self._pmix = <uint8_t*>PyMem_Calloc(cap, 1)
        self._rx = <uint8_t*>PyMem_Calloc(cap, 1)
        self._echo = <uint8_t*>PyMem_Calloc(cap, 1)
        self._te_pt = <uint8_t*>PyMem_Calloc(cap, 1)
        if (self._jb == NULL or self._dtmf == NULL or self._player == NULL
                or self._tone == NULL or self._pkind == NULL or self._pmix == NULL
                or self._rx == NULL or self._echo == NULL or self._te_pt == NULL):
            raise MemoryError()
        memset(self._te_pt, 255, cap)
        self._b0 = TickBatch(batch0)
        self._b1 = TickBatch(batch1)
        self._send = <uint8_t*>PyMem_Calloc(cap, 1)
        self._scodec = <uint8_t*>PyMem_Calloc(cap, 1)
        self._spt = <uint8_t*>PyMem_Calloc(cap, 1)
        self._adv = <uint8_t*>PyMem_Calloc(cap, 1)
        self._room_plan = <PyObject**>PyMem_Calloc(cap, sizeof(PyObject*))
        self._room_slots = <int32_t**>PyMem_Calloc(cap, sizeof(int32_t*))
        self._room_n = <Py_ssize_t*>PyMem_Calloc(cap, sizeof(Py_ssize_t))
        self._room_contig = <uint8_t*>PyMem_Calloc(cap, 1)
        self._room_list = <int32_t*>PyMem_Calloc(cap, sizeof(int32_t))
        self._room_pos = <int32_t*>PyMem_Calloc(cap, sizeof(int32_t))
        self._slot_room = <int32_t*>PyMem_Calloc(cap, sizeof(int32_t))
        if (self._send == NULL or self._scodec == NULL or self._spt == NULL
                or self._adv == NULL or self._room_plan == NULL or self._room_slots == NULL
                or self._room_n == NULL or self._room_contig == NULL
                or self._room_list == NULL or self._room_pos == NULL
                or self._slot_room == NULL):
            raise MemoryError()
        for i in range(cap):
            self._room_pos[i] = -1
            self._slot_room[i] = -1
        self._room_refs = [None] * cap
        self._n_rooms = 0
        self._rin = self._rout = NULL
        self._scratch_legs = 0
        self._hi = 0
        self._n_send = 0
        self._ev_cap = 8 * cap + max(self._b0.capacity, self._b1.capacity) + 16
        self.events_kind = np.zeros(self._ev_cap, np.int32)
        self.events_slot = np.zeros(self._ev_cap, np.int32)
        self.events_a = np.zeros(self._ev_cap, np.int32)
        self.events_b = np.zeros(self._ev_cap, np.int64)
        self._ev_kind = self.events_kind
        self._ev_slot = self.events_slot
        self._ev_a = self.events_a
        self._ev_b = self.events_b
        rows = np.zeros((cap, TK_PKT_ROW), np.uint8)
        self.packets = rows[:, :TK_PKT]  # as built (SRTP rows: protected in place, tag beyond)
        self.packet_lengths = np.full(cap, TK_PKT, np.int32)
        self.packet_slots = np.zeros(cap, np.int32)
        self._send_slots = self.packet_slots
        self._pkt = rows
        self._pkt_len = self.packet_lengths
        self._rec_refs = []
        self._rec_buf = NULL
        self._n_rec = 0
        self.set_recordings([], [], [], [], [])

    def __dealloc__(self):
        PyMem_Free(self._jb)
        PyMem_Free(self._dtmf)
        PyMem_Free(self._player)
        PyMem_Free(self._tone)
        PyMem_Free(self._pkind)
        PyMem_Free(self._pmix)
        PyMem_Free(self._rx)
        PyMem_Free(self._echo)
        PyMem_Free(self._te_pt)
        PyMem_Free(self._rec_buf)
        PyMem_Free(self._send)
        PyMem_Free(self._scodec)
        PyMem_Free(self._spt)
        PyMem_Free(self._adv)
        PyMem_Free(self._room_plan)
        PyMem_Free(self._room_slots)
        PyMem_Free(self._room_n)
        PyMem_Free(self._room_contig)
        PyMem_Free(self._room_list)
        PyMem_Free(self._room_pos)
        PyMem_Free(self._slot_room)
        PyMem_Free(self._rin)
        PyMem_Free(self._rout)

    # -- configuration (tick thread, per call / per topology change) ------------

    cdef bint _has_state(self, Py_ssize_t slot) noexcept nogil:
        return (self._jb[slot] != NULL or self._send[slot] or self._adv[slot]
                or self._slot_room[slot] >= 0)

    cdef void _fix_hi(self, Py_ssize_t slot) noexcept nogil:
        # keep _hi = 1 + the highest slot with state; amortised O(1) (slots are
        # allocated lowest first, so the scan down stops at once in practice)
        if self._has_state(slot):
            if slot >= self._hi:
                self._hi = slot + 1
        elif slot == self._hi - 1:
            while self._hi > 0 and not self._has_state(self._hi - 1):
                self._hi -= 1

    @property
    def hi(self) -> int:
        """1 + the highest slot with any state: the per-tick scans stop there."""
        return self._hi

    @property
    def n_rooms(self) -> int:
        """Number of rooms with a mix plan."""
        return self._n_rooms

    def set_endpoint(self, Py_ssize_t slot, JitterBuffer jb, DtmfDetector dtmf=None,
                     player=None, bint play_mix=False, ToneGenerator tone=None,
                     bint receives=True, bint echo=False, int te_pt=255) -> None:
        """Bind (``jb`` not None) or clear (``jb`` None) the kernels of ``slot``. O(1).

        Clearing also stops the slot's sending (:meth:`set_sender`) and silences its
        ``inp``/``out`` rows; a slot bound as not receiving gets a silent ``inp`` row
        (what its room hears from it). Remove the slot from its room first
        (:meth:`clear_room`): a room keeps mixing the (silent) rows of its slots.

        :param player: a PromptPlayer or a ToneGenerator, or None.
        :param tone: in-band DTMF being sent (replaces the output while it plays).
        """
        if not 0 <= slot < self.capacity:
            raise ValueError(f"slot {slot} outside 0..{self.capacity - 1}")
        if player is not None and not isinstance(player, (PromptPlayer, ToneGenerator)):
            raise TypeError(f"player must be a PromptPlayer or ToneGenerator, "
                            f"not {type(player).__name__}")
        if not 0 <= te_pt <= 255:
            raise ValueError(f"te_pt {te_pt} outside 0..255")
        if jb is None:
            self._refs[slot] = None
            self._jb[slot] = self._dtmf[slot] = self._player[slot] = self._tone[slot] = NULL
            self._pkind[slot] = P_NONE
            self._rx[slot] = self._echo[slot] = self._pmix[slot] = 0
            self._te_pt[slot] = 255
            self._send[slot] = self._adv[slot] = 0
            memset(&self._inp[slot, 0], 0, TK_FRAME * sizeof(int16_t))
            memset(&self._out[slot, 0], 0, TK_FRAME * sizeof(int16_t))
            self._fix_hi(slot)
            return
        self._refs[slot] = (jb, dtmf, player, tone)
        self._jb[slot] = <PyObject*>jb
        self._dtmf[slot] = NULL if dtmf is None else <PyObject*>dtmf
        self._player[slot] = NULL if player is None else <PyObject*>player
        self._tone[slot] = NULL if tone is None else <PyObject*>tone
        self._pkind[slot] = (P_NONE if player is None else
                             P_TONE if isinstance(player, ToneGenerator) else P_PROMPT)
        self._pmix[slot] = play_mix
        self._rx[slot] = receives
        self._echo[slot] = echo
        self._te_pt[slot] = <uint8_t>te_pt
        if not receives:
            memset(&self._inp[slot, 0], 0, TK_FRAME * sizeof(int16_t))
        self._fix_hi(slot)

    def set_sender(self, Py_ssize_t slot, bint send, int codec=0, int pt=0,
                   bint advance=True) -> None:
        """Whether ``slot`` sends ``out[slot]`` every tick (``codec`` 0 = PCMU, 1 = PCMA,
        RTP payload type ``pt``) and whether its outgoing timestamp advances every tick
        (False for the slots a relay feeds: the relay rewrites their timestamps). O(1).
        """
        if not 0 <= slot < self.capacity:
            raise ValueError(f"slot {slot} outside 0..{self.capacity - 1}")
        if not 0 <= codec <= 1:
            raise ValueError(f"codec {codec} is not 0 (PCMU) or 1 (PCMA)")
        if not 0 <= pt <= 127:
            raise ValueError(f"pt {pt} outside 0..127")
        self._send[slot] = send
        self._scodec[slot] = <uint8_t>codec
        self._spt[slot] = <uint8_t>pt
        self._adv[slot] = advance
        self._fix_hi(slot)

    def set_room(self, Py_ssize_t handle, MixPlan plan, const int32_t[::1] slots) -> None:
        """Mix ``slots`` (distinct, in no other room) with ``plan``, whose leg ``i`` is
        ``slots[i]``; replaces what ``handle`` (0..capacity-1, chosen by the caller)
        mixed before. O(len(slots)). ``plan`` None is :meth:`clear_room`.

        Every slot's output row is silent unless a room writes it.
        """
        cdef Py_ssize_t n, i
        cdef int32_t s
        cdef bint contig
        cdef int16_t* rin
        cdef int16_t* rout
        if not 0 <= handle < self.capacity:
            raise ValueError(f"room handle {handle} outside 0..{self.capacity - 1}")
        if plan is None:
            self.clear_room(handle)
            return
        n = slots.shape[0]
        if plan.n_legs != n:
            raise ValueError(f"plan has {plan.n_legs} legs for {n} slots")
        contig = True
        for i in range(n):
            s = slots[i]
            if not 0 <= s < self.capacity:
                raise ValueError(f"slot {s} outside 0..{self.capacity - 1}")
            if self._slot_room[s] >= 0 and self._slot_room[s] != handle:
                raise ValueError(f"slot {s} is in room {self._slot_room[s]}")
            if i and s != slots[i - 1] + 1:
                contig = False
        arr = np.array(slots, np.int32)
        if len(np.unique(arr)) != n:
            raise ValueError("slots must be distinct")
        if not contig and n > self._scratch_legs:
            rin = <int16_t*>PyMem_Calloc(n * TK_FRAME, sizeof(int16_t))
            rout = <int16_t*>PyMem_Calloc(n * TK_FRAME, sizeof(int16_t))
            if rin == NULL or rout == NULL:
                PyMem_Free(rin)
                PyMem_Free(rout)
                raise MemoryError()
            PyMem_Free(self._rin)
            PyMem_Free(self._rout)
            self._rin, self._rout, self._scratch_legs = rin, rout, n
        self.clear_room(handle)
        cdef int32_t[::1] view = arr
        self._room_refs[handle] = (plan, arr)
        self._room_plan[handle] = <PyObject*>plan
        self._room_slots[handle] = &view[0] if n else NULL
        self._room_n[handle] = n
        self._room_contig[handle] = contig
        self._room_pos[handle] = <int32_t>self._n_rooms
        self._room_list[self._n_rooms] = <int32_t>handle
        self._n_rooms += 1
        for i in range(n):
            self._slot_room[view[i]] = <int32_t>handle
            self._fix_hi(view[i])

    def clear_room(self, Py_ssize_t handle) -> None:
        """Stop mixing room ``handle`` (its slots' outputs become silent). O(its legs)."""
        cdef Py_ssize_t i, pos, last
        cdef int32_t s
        if not 0 <= handle < self.capacity:
            raise ValueError(f"room handle {handle} outside 0..{self.capacity - 1}")
        pos = self._room_pos[handle]
        if pos < 0:
            return
        for i in range(self._room_n[handle]):
            s = self._room_slots[handle][i]
            self._slot_room[s] = -1
            memset(&self._out[s, 0], 0, TK_FRAME * sizeof(int16_t))
            self._fix_hi(s)
        last = self._room_list[self._n_rooms - 1]   # swap-remove from the dense list
        self._room_list[pos] = <int32_t>last
        self._room_pos[last] = <int32_t>pos
        self._n_rooms -= 1
        self._room_pos[handle] = -1
        self._room_plan[handle] = NULL
        self._room_slots[handle] = NULL
        self._room_n[handle] = 0
        self._room_refs[handle] = None

    def set_lists(self, MixPlan plan, Py_ssize_t n_legs, const int32_t[::1] send_slots,
                  const uint8_t[::1] send_codec, const uint8_t[::1] send_pt,
                  const int32_t[::1] adv_slots) -> None:
        """Bulk form of :meth:`set_room` and :meth:`set_sender` (tests, tools): one room
        ``plan`` (None = nothing mixed) over slots ``0..n_legs-1`` replaces every room;
        exactly the ``send_slots`` (codec 0 = PCMU / 1 = PCMA, payload type) send and
        exactly the ``adv_slots`` advance. O(capacity)."""
        cdef Py_ssize_t i
        if not 0 <= n_legs <= self.capacity:
            raise ValueError(f"n_legs {n_legs} outside 0..{self.capacity}")
        if plan is not None and plan.n_legs != n_legs:
            raise ValueError(f"plan has {plan.n_legs} legs, n_legs is {n_legs}")
        if send_codec.shape[0] != send_slots.shape[0] or send_pt.shape[0] != send_slots.shape[0]:
            raise ValueError("send_slots, send_codec and send_pt lengths differ")
        for i in range(send_slots.shape[0]):
            if not 0 <= send_slots[i] < self.capacity or send_codec[i] > 1:
                raise ValueError(f"bad sender {i}: slot {send_slots[i]} codec {send_codec[i]}")
        for i in range(adv_slots.shape[0]):
            if not 0 <= adv_slots[i] < self.capacity:
                raise ValueError(f"advance slot {adv_slots[i]} out of range")
        while self._n_rooms:
            self.clear_room(self._room_list[0])
        for i in range(self.capacity):
            self._send[i] = self._adv[i] = 0
        for i in range(send_slots.shape[0]):
            self.set_sender(send_slots[i], True, send_codec[i], send_pt[i], False)
        for i in range(adv_slots.shape[0]):
            self._adv[adv_slots[i]] = 1
            self._fix_hi(adv_slots[i])
        for i in range(self.capacity - 1, -1, -1):
            self._fix_hi(i)
        if plan is not None:
            self.set_room(0, plan, np.arange(n_legs, dtype=np.int32))

    def set_recordings(self, list bufs, list left, list right, paused, positions,
                       right_sent=None) -> None:
        """Bind the recordings: ``bufs[i]`` an int16 (n, 2) C-contiguous buffer,
        ``left[i]``/``right[i]`` lists of slots whose *received* audio (``inp`` rows) is
        summed into the channel, ``paused[i]`` and the current ``positions[i]`` (samples
        already in the buffer). ``right_sent[i]`` (optional) lists slots whose *sent*
        audio (``out`` rows: the mix, prompts and tones they play) is added to the right
        channel: a one-leg call records what its caller hears. ``rec_pos``/``rec_full``
        are then indexed like ``bufs``."""
        cdef Py_ssize_t n = len(bufs), i
        cdef int16_t[:, ::1] b
        cdef int16_t** ptrs
        if right_sent is None:
            right_sent = [()] * n
        if not (len(left) == len(right) == len(paused) == len(positions)
                == len(right_sent) == n):
            raise ValueError("recording lists differ in length")
        ptrs = <int16_t**>PyMem_Calloc(n + 1, sizeof(int16_t*))
        if ptrs == NULL:
            raise MemoryError()
        lens = np.zeros(n, np.int32)
        try:
            for i in range(n):
                b = bufs[i]
                if b.shape[1] != 2 or b.shape[0] < TK_FRAME or b.shape[0] % TK_FRAME:
                    raise ValueError(f"recording buffer {i} must be (k*{TK_FRAME}, 2) int16")
                ptrs[i] = &b[0, 0]
                lens[i] = b.shape[0]
                pos = int(positions[i])
                if not 0 <= pos <= b.shape[0] or pos % TK_FRAME:
                    raise ValueError(f"recording {i} position {pos} invalid")
                for s in list(left[i]) + list(right[i]) + list(right_sent[i]):
                    if not 0 <= s < self.capacity:
                        raise ValueError(f"recording {i} slot {s} out of range")
        except BaseException:
            PyMem_Free(ptrs)
            raise
        PyMem_Free(self._rec_buf)
        self._rec_buf = ptrs
        self._rec_refs = list(bufs)
        self._n_rec = n
        self._rec_len = lens
        self.rec_pos = np.array([int(p) for p in positions], np.int32)
        self._rec_pos = self.rec_pos
        self._rec_paused = np.array([1 if p else 0 for p in paused], np.uint8)
        self.rec_full = np.zeros(n, np.uint8)
        self._rec_full = self.rec_full
        self._rec_lptr = np.cumsum([0] + [len(x) for x in left], dtype=np.int64).astype(np.int32)
        self._rec_l = np.array([s for x in left for s in x], np.int32)
        self._rec_rptr = np.cumsum([0] + [len(x) for x in right], dtype=np.int64).astype(np.int32)
        self._rec_r = np.array([s for x in right for s in x], np.int32)
        self._rec_sptr = np.cumsum([0] + [len(x) for x in right_sent],
                                   dtype=np.int64).astype(np.int32)
        self._rec_s = np.array([s for x in right_sent for s in x], np.int32)

    def set_paused(self, Py_ssize_t index, bint paused) -> None:
        """Pause or resume recording ``index``."""
        if not 0 <= index < self._n_rec:
            raise ValueError(f"recording index {index} outside 0..{self._n_rec - 1}")
        self._rec_paused[index] = paused

    # -- the tick ------------------------------------------------------------

    cdef void _emit(self, int32_t kind, int32_t slot, int32_t a, int64_t b) noexcept nogil:
        cdef Py_ssize_t k = self.n_events
        if k < self._ev_cap:
            self._ev_kind[k] = kind
            self._ev_slot[k] = slot
            self._ev_a[k] = a
            self._ev_b[k] = b
            self.n_events = k + 1

    cdef void _sweep(self, TickBatch nxt) noexcept nogil:
        if self.swept < nxt.capacity:
            self.swept = self._net._poll_rows(&nxt.packets[0, 0], nxt.packets.shape[1],
                                         self.swept, nxt.capacity, &nxt.lengths[0],
                                         &nxt.slots[0], &nxt.arrival_ms[0], &nxt.src_ip[0],
                                         &nxt.src_port[0], -1.0)

    cdef Py_ssize_t _route(self, TickBatch b, Py_ssize_t n, TickBatch nxt) noexcept nogil:
        cdef Py_ssize_t r, ln, width = b.packets.shape[1], stored = 0
        cdef int st
        cdef int32_t s
        cdef RtpFields f
        for r in range(n):
            ln = b.lengths[r]
            if ln < 0 or ln > width:
                st = RTP_ERR_LENGTH
            else:
                st = c_parse(&b.packets[r, 0], ln, &f)
            b.status[r] = <int8_t>st
            if st != RTP_OK:
                b.payload_offset[r] = 0
                b.payload_len[r] = 0
                continue
            b.seq[r] = f.seq
            b.ts[r] = f.ts
            b.ssrc[r] = f.ssrc
            b.pt[r] = f.pt
            b.marker[r] = f.marker
            b.payload_offset[r] = f.payload_offset
            b.payload_len[r] = f.payload_len
            s = b.slots[r]
            if s < 0 or s >= self.capacity or self._jb[s] == NULL or not self._rx[s]:
                continue
            if f.pt == self._te_pt[s]:
                self._emit(K_TE, s, <int32_t>r, 0)
            ln = f.payload_len
            if ln > JB_MAX_DECODE:
                ln = JB_MAX_DECODE
            if f.pt == 0:
                c_ulaw_decode(&b.packets[r, 0] + f.payload_offset, self._dec, ln)
            elif f.pt == 8:
                c_alaw_decode(&b.packets[r, 0] + f.payload_offset, self._dec, ln)
            else:
                _jb_count(<JitterBuffer>self._jb[s], 0)
                continue
            stored += (<JitterBuffer>self._jb[s])._insert(self._dec, ln, f.seq, f.ts, f.ssrc, b.arrival_ms[r])
            if (r & 255) == 255:
                self._sweep(nxt)
        return stored

    cdef void _frames(self, double now_ms, TickBatch nxt, bint sweep) noexcept nogil:
        cdef Py_ssize_t k, m, done = 0
        cdef int32_t s
        cdef int flags
        cdef int32_t dig[TK_DTMF_CAP]
        cdef int64_t st[TK_DTMF_CAP]
        cdef int32_t dur[TK_DTMF_CAP]
        for s in range(self._hi):
            if self._jb[s] == NULL or not self._rx[s]:
                continue
            # JitterBuffer.get_frame
            flags = (<JitterBuffer>self._jb[s])._tick(&self._inp[s, 0], now_ms)
            if not flags & (F_REAL | F_CONCEALED):
                if not flags & F_STRETCHED:
                    _jb_count(<JitterBuffer>self._jb[s], F_SILENCE)
            elif not flags & (F_STRETCHED | F_SHRUNK):
                if flags & F_REAL:
                    _jb_count(<JitterBuffer>self._jb[s], F_REAL)
                else:
                    _jb_count(<JitterBuffer>self._jb[s], F_CONCEALED)
            if self._dtmf[s] != NULL:
                m = (<DtmfDetector>self._dtmf[s])._run(&self._inp[s, 0], TK_FRAME, dig, st,
                                                      dur, TK_DTMF_CAP)
                for k in range(m):
                    self._emit(K_DTMF, s, dig[k], dur[k])
            done += 1
            if sweep and (done % TK_SWEEP_EVERY) == 0:
                self._sweep(nxt)

    cdef void _mix_rooms(self) noexcept nogil:
        cdef Py_ssize_t r, h, n, i
        cdef int32_t* sl
        if self._hi > 0:
            memset(&self._out[0, 0], 0, self._hi * TK_FRAME * sizeof(int16_t))
        for r in range(self._n_rooms):
            h = self._room_list[r]
            n = self._room_n[h]
            sl = self._room_slots[h]
            if n == 0:
                continue
            if self._room_contig[h]:
                (<MixPlan>self._room_plan[h])._mix(&self._inp[sl[0], 0], &self._out[sl[0], 0],
                                                   TK_FRAME, TK_FRAME)
                continue
            for i in range(n):
                memcpy(self._rin + i * TK_FRAME, &self._inp[sl[i], 0], TK_FRAME * sizeof(int16_t))
            (<MixPlan>self._room_plan[h])._mix(self._rin, self._rout, TK_FRAME, TK_FRAME)
            for i in range(n):
                memcpy(&self._out[sl[i], 0], self._rout + i * TK_FRAME, TK_FRAME * sizeof(int16_t))

    def run(self, int batch, Py_ssize_t n, double now_ms, bint full=True, bint io=True) -> int:
        """One tick over rows ``0..n-1`` of batch ``batch`` (0 or 1); the sweeps fill the
        other batch from row 0 (``swept`` rows). ``full=False`` only routes the rows
        (a receive buffer that filled before the deadline). ``io=False`` neither sweeps
        nor sends (tests): the built packets stay in ``packets[:n_packets]``.
        Returns the number of events."""
        cdef TickBatch b, nxt
        cdef Py_ssize_t i, j, k, pos, hi = self._hi
        cdef int32_t s
        cdef int16_t* row
        cdef int16_t* buf
        cdef bint done
        cdef int plen
        if batch == 0:
            b, nxt = self._b0, self._b1
        elif batch == 1:
            b, nxt = self._b1, self._b0
        else:
            raise ValueError(f"batch must be 0 or 1, got {batch}")
        if not 0 <= n <= b.capacity:
            raise ValueError(f"row count {n} outside 0..{b.capacity}")
        self.n_events = 0
        self.swept = 0
        self.n_packets = 0
        self.n_sent = 0
        with nogil:
            if io:
                self._sweep(nxt)
            self._route(b, n, nxt)
            if full:
                self._frames(now_ms, nxt, io)
                # mix; rows of slots outside any room are silent
                self._mix_rooms()
                for s in range(hi):
                    if self._jb[s] == NULL or not self._echo[s]:
                        continue
                    for j in range(TK_FRAME):
                        self._out[s, j] = _sat(<int32_t>self._out[s, j] + self._inp[s, j])
                for s in range(hi):
                    if self._pkind[s] == P_NONE and self._tone[s] == NULL:
                        continue
                    row = &self._out[s, 0]
                    if self._tone[s] != NULL:  # in-band DTMF being sent replaces everything
                        if (<ToneGenerator>self._tone[s])._fill(row, TK_FRAME):
                            self._tone[s] = NULL
                            self._emit(K_TONE_DONE, s, 0, 0)
                        continue
                    if self._pkind[s] == P_NONE:
                        continue
                    if self._pmix[s]:
                        if self._pkind[s] == P_TONE:
                            done = (<ToneGenerator>self._player[s])._fill(self._scratch, TK_FRAME)
                        else:
                            done = (<PromptPlayer>self._player[s])._fill(self._scratch, TK_FRAME)
                        for j in range(TK_FRAME):
                            row[j] = _sat(<int32_t>row[j] + self._scratch[j])
                    elif self._pkind[s] == P_TONE:
                        done = (<ToneGenerator>self._player[s])._fill(row, TK_FRAME)
                    else:
                        done = (<PromptPlayer>self._player[s])._fill(row, TK_FRAME)
                    if done:
                        self._pkind[s] = P_NONE
                        self._player[s] = NULL
                        self._emit(K_PLAY_DONE, s, 0, 0)
                if io:
                    self._sweep(nxt)
                # recordings
                for i in range(self._n_rec):
                    if self._rec_paused[i]:
                        continue
                    pos = self._rec_pos[i]
                    if pos + TK_FRAME > self._rec_len[i]:
                        self._rec_full[i] = 1
                        continue
                    buf = self._rec_buf[i] + 2 * pos
                    _tap(buf, &self._inp[0, 0], &self._rec_l[0], self._rec_lptr[i],
                         self._rec_lptr[i + 1], &self._out[0, 0], &self._rec_s[0], 0, 0)
                    _tap(buf + 1, &self._inp[0, 0], &self._rec_r[0], self._rec_rptr[i],
                         self._rec_rptr[i + 1], &self._out[0, 0], &self._rec_s[0],
                         self._rec_sptr[i], self._rec_sptr[i + 1])
                    self._rec_pos[i] = <int32_t>(pos + TK_FRAME)
                    if pos + TK_FRAME == self._rec_len[i]:
                        self._rec_full[i] = 1
                # encode + build, senders in slot order (packet row k = k-th sender)
                k = 0
                for s in range(hi):
                    if not self._send[s]:
                        continue
                    if self._scodec[s] == 0:
                        c_ulaw_encode(&self._out[s, 0], &self._pkt[k, 12], TK_FRAME)
                    else:
                        c_alaw_encode(&self._out[s, 0], &self._pkt[k, 12], TK_FRAME)
                    c_build_header(&self._pkt[k, 0], self._spt[s], 0, self._net._oseq[s],
                                   self._net._ots[s], self._net._ossrc[s])
                    self._net._oseq[s] = <uint16_t>(self._net._oseq[s] + 1)
                    plen = TK_PKT
                    if self._net._stx[s] != 0 and c_srtp_protect(self._net._stx[s],
                                                                  &self._pkt[k, 0], &plen) != 0:
                        self._net._serr[s] += 1
                        continue
                    self._pkt_len[k] = plen
                    self._send_slots[k] = s
                    k += 1
                self._n_send = k
                self.n_packets = k
                if io and k > 0:
                    self.n_sent = self._net._send_rows(&self._pkt[0, 0], TK_PKT_ROW,
                                                  &self._pkt_len[0], &self._send_slots[0], k)
                for s in range(hi):
                    if self._adv[s]:
                        self._net._ots[s] = self._net._ots[s] + TK_FRAME
        return self.n_events
