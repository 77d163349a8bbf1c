"""WebRTC endpoints: an aiortc ``RTCPeerConnection`` per browser leg, fed and read by the tick.

Theory of operation
-------------------
aiortc owns the network side (ICE, DTLS-SRTP, RTP/RTCP) on the worker's asyncio thread.
The worker's tick thread owns the audio. The two meet at two small thread-safe rings of
20 ms frames per endpoint, and nothing else crosses between threads (STYLE 13):

* **outbound**, tick -> browser: the tick calls :meth:`WebRtcEndpoint.push_pcm` with the
  endpoint's 160-sample int16 output row. The call never blocks: it appends to a ring of
  ``ring_frames`` frames, dropping the oldest when the ring is full, and wakes
  :class:`TickAudioTrack`. aiortc's ``RTCRtpSender`` loop awaits ``TickAudioTrack.recv()``.
  The track returns a frame as soon as one is pushed. When nothing has been pushed for
  20 ms plus ``SILENCE_SLACK_MS``, it returns silence on a 20 ms clock, so the browser's
  clock keeps running while the tick is not pushing. For PCMU/PCMA the track
  G.711-encodes in the core (``cext.g711``) and returns an ``av.Packet``. aiortc's sender
  then only packetises it (``PcmEncoder.pack``). This skips the PyAV resampler and
  encoder, and the ``run_in_executor`` thread hop that aiortc makes for every frame it
  encodes. For Opus it returns an ``av.AudioFrame`` (s16, mono, 8 kHz,
  ``time_base=1/8000``), and aiortc's Opus encoder resamples it to 48 kHz.

* **inbound**, browser -> tick: aiortc's ``RTCRtpReceiver`` puts audio through
  ``JitterBuffer(capacity=16, prefetch=4)``. That buffer releases a frame only after
  four *later* frames have arrived, so it adds 80 ms. Even with ``prefetch=0`` it waits
  for the next packet, which adds 20 ms. Each endpoint swaps that object for a
  :class:`_ReceiveTap` (see :func:`_install_tap`). The tap is contained: one
  name-mangled attribute, checked at install time, with a logged fallback. What it does
  depends on the codec:

  - G.711 payloads go straight into the inbound ring as ``(payload bytes, seq, ts,
    ssrc, arrival_ms)``. aiortc's decoder thread, PyAV and the ``asyncio.Queue`` hop are
    never involved. The tick decodes with ``cext.g711`` when it drains the ring.
  - Any other codec (Opus) is passed to aiortc's decoder at once (no prefetch), and
    :meth:`WebRtcEndpoint._consume` awaits ``track.recv()``. That method resamples with
    one ``av.AudioResampler`` per endpoint to s16 mono 8 kHz, cuts 160-sample frames and
    puts them in the same ring with a timestamp derived from the frame's ``pts``.

  Reordering, loss concealment and adaptive delay are done by the same
  ``cext.jitter.JitterBuffer`` as on any RTP leg. The tick calls
  :meth:`WebRtcEndpoint.drain_into` (``put_pcm`` per queued packet, with the packet's
  sequence number, timestamp, SSRC and arrival time) and then ``jb.get_frame`` as for
  RTP. :meth:`WebRtcEndpoint.pull_pcm` is the simpler, unbuffered alternative: it pops
  one frame or returns ``None``.

Once a G.711 leg is ``connected``, the worker moves its RTP out of both rings into the
tick kernel (:meth:`WebRtcEndpoint.go_native`, :mod:`media.webrtc_native`): the rings are
the path while negotiating, for Opus, and with ``HOTLINE_WEBRTC_NATIVE=0``.

Codec choice: the answer carries one codec, the first of PCMU, PCMA, Opus
(``DEFAULT_CODECS``) that the offer has (``_prefer_one``). Chrome offers PCMU/PCMA, so
a browser leg runs the same G.711 as a trunk, and bridging the two needs no resampling
or transcoding. Opus is used only when it is all the browser offers.

ICE restart: aiortc 1.16 ignores the new ``ice-ufrag``/``ice-pwd`` of a restart offer
(``RTCIceTransport.start`` runs once). When an offer restarts ICE, :func:`_ice_restart`
puts the new remote credentials into the aioice ``Connection``, gives it fresh local
credentials (which go into the answer; RFC 8839 section 4.4.1.1.2), and reopens it for
remote candidates. Checks from the browser's new path then authenticate. aioice learns
the new path as a peer-reflexive candidate, makes a triggered check, and the browser's
USE-CANDIDATE moves the selected pair (RFC 8445 sections 7.3.1.3-7.3.1.5).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import av
import numpy as np
import numpy.typing as npt
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket
from aiortc.sdp import SessionDescription

from cext.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

if TYPE_CHECKING:
    from .webrtc_native import NativeMedia

__all__ = [
    "DEFAULT_CODECS",
    "FRAME",
    "TickAudioTrack",
    "WebRtcEndpoint",
    "WebRtcError",
    "wake_tracks",
]

logger = logging.getLogger("hotline.media.webrtc")

FRAME = 160
"""Samples per 20 ms frame at 8 kHz: the worker's tick unit."""
RATE = 8000
TIME_BASE = fractions.Fraction(1, RATE)
FRAME_S = 0.020
SILENCE_SLACK_MS = 20.0
"""How long past the expected push the outbound track waits before sending silence."""
DEFAULT_CODECS = ("PCMU", "PCMA", "opus")
"""Answer preference: G.711 first (the core's own format), Opus only when it is all
the browser offers."""
RECEIVE_PATHS = ("tap", "track", "aiortc")
RESAMPLER_PRIME = 16
"""Samples (at 8 kHz) that libswresample keeps back when converting 8 <-> 48 kHz. aiortc's
Opus encoder cuts its resampler output into 960-sample frames, so without a prime the
first 20 ms comes out 96 samples short and every packet then lags by a whole frame
(measured: +20 ms). The first frame we hand it carries this much extra silence; the
inbound side pads the first resampled frame the same way."""
MEDIA_WAIT_S = 1.0
"""How long a connected leg waits for the browser's first RTP before its RTP moves to
the kernel on the selected pair's socket (see :meth:`WebRtcEndpoint.when_media`)."""
OUT_RING = 3
"""Outbound frames kept when the sender falls behind (60 ms); older frames are dropped."""
IN_RING = 50
"""Inbound packets kept when the tick does not drain (1 s); older packets are dropped."""
_G711 = {"pcmu": (ulaw_encode, ulaw_decode), "pcma": (alaw_encode, alaw_decode)}
_SILENCE = np.zeros(FRAME, np.int16)


class WebRtcError(ValueError):
    """An SDP that cannot be negotiated (no common audio codec, wrong state...)."""


def _now_ms() -> float:
    # same clock as cext.net.monotonic_ms (CLOCK_MONOTONIC), the jitter buffers' clock
    return time.monotonic() * 1000.0


def wake_tracks(loop: asyncio.AbstractEventLoop, tracks: Iterable[TickAudioTrack]) -> None:
    """Wake every given track with one ``call_soon_threadsafe`` (tick thread, once a tick).

    Use it with ``push_pcm(..., wake=False)`` when many endpoints are pushed in one tick:
    a hop per tick instead of one per endpoint.
    """
    waiting = [t for t in tracks if t._waiter is not None]
    if waiting:
        loop.call_soon_threadsafe(_wake_all, waiting)


def _wake_all(tracks: list[TickAudioTrack]) -> None:
    for t in tracks:
        t._wake()


class TickAudioTrack(MediaStreamTrack):
    """The outbound audio of a WebRTC leg: 20 ms int16 frames pushed by the tick.

    ``recv()`` is awaited by aiortc's RTP sender on the asyncio thread; ``push_pcm`` is
    called by the tick thread. See the module docstring for pacing and encoding.

    :param loop: the loop aiortc runs on (where ``recv()`` is awaited).
    :param ring_frames: frames kept when the sender falls behind; the oldest is dropped.
    """

    kind = "audio"

    def __init__(self, loop: asyncio.AbstractEventLoop, ring_frames: int = OUT_RING) -> None:
        super().__init__()
        self._aio_loop = loop
        self._aio_loop_thread = threading.get_ident()
        self._ring: deque[npt.NDArray[np.int16]] = deque(maxlen=ring_frames)
        self._waiter: asyncio.Future[None] | None = None
        self._pts = 0
        self._due: float | None = None
        self._last_pushed = False
        self._encode: Any = None
        self._enc_buf = np.empty(FRAME, np.uint8)
        self._primed = False
        self._parked = False
        self.pushed = 0
        """Frames pushed by the tick."""
        self.dropped = 0
        """Pushed frames dropped because the ring was full."""
        self.silence = 0
        """Silence frames sent because nothing was pushed in time."""
        self.sent = 0
        """Frames handed to aiortc."""

    def set_codec(self, name: str) -> None:
        """Select the negotiated codec: ``pcmu``/``pcma`` are encoded here, others by aiortc.

        :param name: lower-case codec name from the answer.
        """
        pair = _G711.get(name)
        self._encode = pair[0] if pair is not None else None

    def push_pcm(self, samples: npt.NDArray[np.int16], wake: bool = True) -> None:
        """Queue one 20 ms frame; never blocks (tick thread or loop thread).

        :param samples: int16[160] (copied: the tick may reuse its row).
        :param wake: wake the sender now; pass False and call :func:`wake_tracks` once per
            tick to batch the cross-thread wake-ups of many endpoints.
        """
        if samples.shape != (FRAME,) or samples.dtype != np.int16:
            raise ValueError(f"push_pcm needs int16[{FRAME}], got {samples.dtype}{samples.shape}")
        if len(self._ring) == self._ring.maxlen:
            self.dropped += 1
        self._ring.append(samples.copy())
        self.pushed += 1
        # the ring is appended before the waiter is read, and recv() sets the waiter before
        # it re-checks the ring, so one of the two always sees the other (no lost wake-up)
        if wake and self._waiter is not None:
            if threading.get_ident() == self._aio_loop_thread:
                self._wake()
            else:
                with contextlib.suppress(RuntimeError):  # loop closed
                    self._aio_loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def park(self) -> None:
        """Stop feeding aiortc's sender (loop thread): the tick kernel sends this leg's
        RTP itself (:meth:`WebRtcEndpoint.go_native`). ``recv()`` then raises
        ``MediaStreamError``, which ends aiortc's RTP loop for good (its RTCP goes on),
        so aiortc never sends RTP with the SSRC the kernel uses."""
        self._parked = True
        self._ring.clear()
        self._wake()

    async def _next_samples(self) -> npt.NDArray[np.int16]:
        loop = self._aio_loop
        while not self._ring:
            now = loop.time()
            if self._due is None:
                self._due = now + FRAME_S
            slack = SILENCE_SLACK_MS / 1000.0 if self._last_pushed else 0.0
            timeout = self._due + slack - now
            if timeout <= 0:
                self._due += FRAME_S
                if self._due < now - 5 * FRAME_S:  # the loop stalled: resync the clock
                    self._due = now + FRAME_S
                self._last_pushed = False
                self.silence += 1
                return _SILENCE
            # A plain timer resolving the future, not asyncio.wait_for: this runs for
            # every frame of every leg (wait_for's wrapping was ~5 % of the loop thread).
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(timeout, _resolve, waiter)
            try:
                if self._ring:
                    break
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        self._due = loop.time() + FRAME_S
        self._last_pushed = True
        return self._ring.popleft()

    async def recv(self) -> av.AudioFrame | av.Packet:  # type: ignore[type-arg]
        """The next 20 ms, as soon as the tick pushed it (or silence on the clock).

        :raises MediaStreamError: once the track is stopped.
        """
        if self.readyState != "live" or self._parked:
            raise MediaStreamError
        samples = await self._next_samples()
        if self.readyState != "live" or self._parked:
            raise MediaStreamError
        pts = self._pts
        self._pts += FRAME
        self.sent += 1
        if self._encode is not None:  # G.711 in the core; aiortc only packetises
            self._encode(samples, self._enc_buf)
            packet = av.Packet(self._enc_buf.tobytes())
            packet.pts = pts
            packet.time_base = TIME_BASE
            return packet
        if self._primed:
            pcm = samples.reshape(1, FRAME)
        else:  # see RESAMPLER_PRIME
            pcm = np.concatenate([np.zeros(RESAMPLER_PRIME, np.int16), samples]).reshape(1, -1)
            self._primed = True
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = pts
        frame.time_base = TIME_BASE
        return frame

    def stop(self) -> None:
        super().stop()
        self._wake()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _ReceiveTap:
    """Stands in for aiortc's audio ``JitterBuffer`` in one ``RTCRtpReceiver``.

    aiortc calls ``add(packet)`` per RTP packet (its own per-packet path, on the loop).
    G.711 payloads go to the endpoint's inbound ring and nothing goes to aiortc's
    decoder; other payloads are released to the decoder at once (no prefetch).
    """

    capacity = 16  # read by nothing today; kept for API shape parity with aiortc

    def __init__(self, inbound: deque[Any]) -> None:
        self._inbound = inbound
        self.g711_pts: dict[int, str] = {}
        """Payload type -> ``pcmu``/``pcma``, set after negotiation."""
        self.packets = 0
        self.dropped = 0

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        self.packets += 1
        codec = self.g711_pts.get(packet.payload_type)
        if codec is None:
            return False, JitterFrame(data=packet._data, timestamp=packet.timestamp)  # type: ignore[attr-defined]
        if len(self._inbound) == self._inbound.maxlen:
            self.dropped += 1
        self._inbound.append((codec, packet.payload, packet.sequence_number,
                              packet.timestamp, packet.ssrc, _now_ms()))
        return False, None

    def remove(self, count: int) -> None:  # called by nothing for audio; API parity
        pass


def _install_tap(transceiver: RTCRtpTransceiver, tap: _ReceiveTap) -> bool:
    """Replace the receiver's audio jitter buffer with ``tap`` (aiortc 1.x internals).

    Returns False (and the receiver keeps aiortc's 80 ms buffer) if the attribute is not
    where aiortc 1.16 has it.
    """
    receiver = transceiver.receiver
    attr = "_RTCRtpReceiver__jitter_buffer"
    if not hasattr(receiver, attr):
        logger.warning("aiortc RTCRtpReceiver has no %s: keeping its 80 ms audio buffer",
                       attr)
        return False
    setattr(receiver, attr, tap)
    return True


def _ice_params(sdp: SessionDescription) -> tuple[str | None, str | None]:
    for media in sdp.media:
        if media.ice is not None and media.ice.usernameFragment:
            return media.ice.usernameFragment, media.ice.password
    return None, None  # (aiortc's parser copies session-level ice-* into each media)


def _ice_restart(pc: RTCPeerConnection, ufrag: str, pwd: str) -> bool:
    """Apply an ICE restart offered by the peer to aiortc's (single, bundled) transport.

    aiortc 1.16 starts ICE once and ignores later credentials, so set them on the aioice
    ``Connection``: the peer's new ones, and new local ones that the answer will carry
    (RFC 8839 section 4.4.1.1.2: the answerer of a restart changes its credentials too).
    Returns False if aiortc's internals are not as expected (the restart is then not
    honoured and the peer will see ICE fail).
    """
    done = False
    for transceiver in pc.getTransceivers():
        ice = transceiver.receiver.transport.transport
        conn = getattr(ice, "_connection", None)
        gatherer = ice.iceGatherer
        if conn is None or not hasattr(conn, "_local_username"):
            return False
        if conn.remote_username == ufrag:
            continue  # already applied (bundled transceivers share the transport)
        conn.remote_username = ufrag
        conn.remote_password = pwd
        conn._local_username = secrets.token_hex(4)
        conn._local_password = secrets.token_hex(16)
        # accept the restart's candidates even if the first offer ended them
        conn._remote_candidates_end = False
        gatherer._remote_candidates_end = False
        done = True
    return done


class WebRtcEndpoint:
    """One WebRTC audio leg: an ``RTCPeerConnection`` on the worker's asyncio loop.

    Build and negotiate on the loop (``await accept_offer(sdp)`` or ``create_offer`` /
    ``accept_answer``); the tick thread then calls :meth:`push_pcm` and
    :meth:`drain_into` (or :meth:`pull_pcm`) once per tick.

    :param codecs: answer/offer preference, names as in aiortc's capabilities.
    :param on_state: called on the loop with the connection state (``connecting``,
        ``connected``, ``disconnected``, ``failed``, ``closed``).
    :param configuration: aiortc configuration (ICE servers); None = host candidates.
    :param receive_path: ``"tap"`` (default): G.711 through the tap, other codecs through
        aiortc's decoder with no prefetch; ``"track"``: every codec through aiortc's
        decoder and ``track.recv()``, no prefetch; ``"aiortc"``: aiortc untouched (its
        80 ms buffer). The last two exist to measure the first against.
    """

    def __init__(self, codecs: tuple[str, ...] = DEFAULT_CODECS,
                 on_state: Callable[[str], Any] | None = None,
                 configuration: RTCConfiguration | None = None,
                 receive_path: str = "tap") -> None:
        if receive_path not in RECEIVE_PATHS:
            raise ValueError(f"receive_path: {receive_path!r} is not one of "
                             f"{', '.join(RECEIVE_PATHS)}")
        self._loop = asyncio.get_running_loop()
        self.pc = RTCPeerConnection(configuration)
        self.codecs = codecs
        self.on_state = on_state
        self.receive_path = receive_path
        self.track = TickAudioTrack(self._loop)
        self.inbound: deque[Any] = deque(maxlen=IN_RING)
        """Queued inbound packets: ``(codec | None, payload, seq, ts, ssrc, arrival_ms)``
        with bytes for G.711 (codec name) or int16 samples (codec None)."""
        self._tap = _ReceiveTap(self.inbound)
        self._transceiver: RTCRtpTransceiver | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._remote_ice: tuple[str | None, str | None] = (None, None)
        self.codec: str | None = None
        """Negotiated codec, lower case (``pcmu``, ``pcma``, ``opus``)."""
        self.tap_installed = False
        self._media_path: tuple[Any, tuple[str, int]] | None = None
        self._watching = False
        self.native: NativeMedia | None = None
        """Set once the leg's RTP runs in the tick kernel (:meth:`go_native`)."""
        self.ice_restarts = 0
        self.renegotiations = 0
        self.in_dropped = 0
        self._dec_buf = np.empty(1024, np.int16)
        self.pc.on("connectionstatechange", self._on_state)
        self.pc.on("track", self._on_track)

    # ------------------------------------------------------------------ signaling

    def _ensure_transceiver(self) -> RTCRtpTransceiver:
        if self._transceiver is None:
            t = self.pc.addTransceiver(self.track, direction="sendrecv")
            caps = RTCRtpSender.getCapabilities("audio").codecs
            prefs = [c for name in self.codecs for c in caps
                     if c.mimeType.lower() == f"audio/{name.lower()}"]
            if not prefs:
                raise WebRtcError(f"codecs: none of {self.codecs} is supported by aiortc")
            t.setCodecPreferences(prefs)
            if self.receive_path != "aiortc":
                self.tap_installed = _install_tap(t, self._tap)
            self._transceiver = t
        return self._transceiver

    def _prefer_one(self, offer: SessionDescription) -> None:
        """Answer with one audio codec: the first of ``codecs`` that ``offer`` has (the
        one already in use on a renegotiation). An answer listing several lets the
        offerer send any of them (aiortc's own offerer sends its first, Opus), while the
        kernel's path for G.711 legs (media/webrtc_native.py) needs the browser to send
        what we send."""
        t = self._ensure_transceiver()
        offered = {c.mimeType.split("/")[-1].lower() for m in offer.media
                   if m.kind == "audio" for c in m.rtp.codecs}
        wanted = self.codec or next((n.lower() for n in self.codecs if n.lower() in offered),
                                    None)
        if wanted is None:
            return  # no common codec: setRemoteDescription reports it
        caps = RTCRtpSender.getCapabilities("audio").codecs
        t.setCodecPreferences([c for c in caps if c.mimeType.lower() == f"audio/{wanted}"])

    def _negotiated(self) -> None:
        t = self._transceiver
        assert t is not None
        codecs = [c for c in t._codecs if not c.mimeType.lower().endswith("/rtx")]
        if not codecs:
            raise WebRtcError("sdp: no common audio codec")
        name = codecs[0].mimeType.split("/")[1].lower()
        if self.codec is None:  # aiortc's sender keeps its first encoder
            self.codec = name
            self.track.set_codec(name)
        if self.receive_path == "tap":
            self._tap.g711_pts = {c.payloadType: c.mimeType.split("/")[1].lower()
                                  for c in codecs if c.payloadType is not None
                                  and c.mimeType.lower() in ("audio/pcmu", "audio/pcma")}

    async def accept_offer(self, sdp: str) -> str:
        """Answer an offer from the browser (first offer, renegotiation or ICE restart).

        :param sdp: the browser's offer (complete, non-trickle).
        :returns: our answer SDP with all host candidates.
        :raises WebRtcError: no common audio codec or a state aiortc refuses.
        """
        desc = SessionDescription.parse(sdp)
        ufrag, pwd = _ice_params(desc)
        restart = (self._remote_ice[0] is not None and ufrag is not None
                   and pwd is not None and ufrag != self._remote_ice[0])
        if self._remote_ice[0] is not None:
            self.renegotiations += 1
        self._prefer_one(desc)
        if restart:  # before setRemoteDescription, so the new candidates are accepted
            assert ufrag is not None and pwd is not None
            if _ice_restart(self.pc, ufrag, pwd):
                self.ice_restarts += 1
            else:
                logger.warning("ICE restart offered but aiortc internals differ")
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            self._negotiated()
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
        except WebRtcError:
            raise
        except Exception as exc:  # aiortc raises several unrelated types
            raise WebRtcError(f"sdp: {type(exc).__name__}: {exc}") from exc
        self._remote_ice = (ufrag, pwd)
        return self.pc.localDescription.sdp

    async def create_offer(self) -> str:
        """Server-initiated: our offer (all host candidates gathered)."""
        self._ensure_transceiver()
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        return self.pc.localDescription.sdp

    async def accept_answer(self, sdp: str) -> None:
        """Apply the browser's answer to :meth:`create_offer`.

        :raises WebRtcError: no common audio codec or a state aiortc refuses.
        """
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
            self._negotiated()
        except WebRtcError:
            raise
        except Exception as exc:
            raise WebRtcError(f"sdp: {type(exc).__name__}: {exc}") from exc
        self._remote_ice = _ice_params(SessionDescription.parse(sdp))

    def when_media(self, ready: Callable[[], Any], timeout: float = MEDIA_WAIT_S) -> None:
        """Loop thread, once ``connected``: call ``ready()`` when the browser's first RTP
        arrives (its socket and source are kept for :meth:`go_native`), or after
        ``timeout`` seconds if none does (a muted page: the selected pair is used)."""
        from .webrtc_native import watch_media_path

        if self._transceiver is None or self._watching:
            return
        self._watching = True
        fired = False

        def fire() -> None:
            nonlocal fired
            if not fired:
                fired = True
                self._watching = False
                stop()
                timer.cancel()
                ready()

        def found(protocol: Any, source: tuple[str, int]) -> None:
            self._media_path = (protocol, source)
            self._loop.call_soon(fire)

        stop = watch_media_path(self._transceiver, found)
        timer = self._loop.call_later(timeout, fire)

    def go_native(self) -> NativeMedia:
        """Loop thread, once ``connected``: take the leg's RTP socket for the tick
        kernel and stop aiortc's RTP sending (see :mod:`media.webrtc_native`): the socket
        the browser's RTP arrived on (:meth:`when_media`), else the selected pair's.

        :raises NativeMediaError: the leg stays on aiortc's path (nothing changed).
        """
        from .webrtc_native import NativeMediaError, take_over

        if self.native is not None:
            raise NativeMediaError("already native")
        if self.receive_path != "tap" or not self.tap_installed:
            raise NativeMediaError(f"receive path {self.receive_path} keeps aiortc's RTP")
        if self._transceiver is None:
            raise NativeMediaError("not negotiated")
        self.native = take_over(self.pc, self._transceiver, self.codec, self._media_path)
        self.track.park()
        return self.native

    @property
    def state(self) -> str:
        """aiortc's connection state."""
        return str(self.pc.connectionState)

    def _on_state(self) -> None:
        state = self.pc.connectionState
        logger.debug("webrtc endpoint %x: %s", id(self), state)
        if self.on_state is not None:
            try:
                self.on_state(state)
            except Exception:  # a callback must not break aiortc's emitter
                logger.exception("on_state callback failed")

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._consumer is None:
            self._consumer = asyncio.ensure_future(self._consume(track))

    async def _consume(self, track: MediaStreamTrack) -> None:
        """Decoded frames (Opus, or G.711 without the tap) -> 8 kHz frames in the ring."""
        resampler: av.AudioResampler | None = None
        acc: npt.NDArray[np.int16] = np.empty(0, np.int16)
        acc_ts: int | None = None
        try:
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                arrival = _now_ms()
                rate = frame.sample_rate
                ts = (frame.pts or 0) * RATE // rate if frame.pts is not None else None
                pcm: npt.NDArray[np.int16]
                if rate == RATE and frame.layout.name == "mono" and frame.format.name == "s16":
                    pcm = np.asarray(frame.to_ndarray(), np.int16).reshape(-1)
                else:
                    if resampler is None:
                        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
                    out = resampler.resample(frame)
                    pcm = (np.concatenate([f.to_ndarray().reshape(-1) for f in out])
                           if out else np.empty(0, np.int16))
                if ts is not None and acc_ts is not None and abs(ts - (acc_ts + len(acc))) > FRAME:
                    acc = np.empty(0, np.int16)  # a gap (loss, restart): re-anchor
                    acc_ts = None
                if acc_ts is None:
                    acc_ts = ts if ts is not None else 0
                    if 0 < len(pcm) < FRAME and not len(acc):  # see RESAMPLER_PRIME
                        pcm = np.concatenate([np.zeros(FRAME - len(pcm), np.int16), pcm])
                acc = np.concatenate([acc, pcm]) if len(acc) else pcm
                while len(acc) >= FRAME:
                    chunk = np.ascontiguousarray(acc[:FRAME], np.int16)
                    acc = acc[FRAME:]
                    t32 = acc_ts & 0xFFFFFFFF
                    if len(self.inbound) == self.inbound.maxlen:
                        self.in_dropped += 1
                    self.inbound.append((None, chunk, (acc_ts // FRAME) & 0xFFFF, t32, 1,
                                         arrival))
                    acc_ts += FRAME
        except (MediaStreamError, asyncio.CancelledError):
            pass

    # ------------------------------------------------------------------ tick side

    def push_pcm(self, samples: npt.NDArray[np.int16], wake: bool = True) -> None:
        """Tick thread: queue this tick's 160 samples for the browser (never blocks)."""
        self.track.push_pcm(samples, wake)

    def _decode(self, item: Any) -> tuple[npt.NDArray[np.int16], int, int, int, float]:
        codec, payload, seq, ts, ssrc, arrival = item
        if codec is None:
            return payload, seq, ts, ssrc, arrival
        n = len(payload)
        if n > len(self._dec_buf):
            self._dec_buf = np.empty(n, np.int16)
        out = self._dec_buf[:n]
        _G711[codec][1](np.frombuffer(payload, np.uint8), out)
        return out, seq, ts, ssrc, arrival

    def pull_pcm(self) -> npt.NDArray[np.int16] | None:
        """Tick thread: the oldest received packet's samples (160 at ptime 20), or None.

        No reordering or concealment: prefer :meth:`drain_into` with a jitter buffer.
        The array is reused by the next call for G.711: copy it to keep it.
        """
        try:
            item = self.inbound.popleft()
        except IndexError:
            return None
        return self._decode(item)[0]

    def drain_into(self, jb: Any) -> int:
        """Tick thread: ``jb.put_pcm`` every queued packet; returns how many were stored.

        :param jb: a :class:`cext.jitter.JitterBuffer`; then ``jb.get_frame(row, now)``.
        """
        stored = 0
        while True:
            try:
                item = self.inbound.popleft()
            except IndexError:
                return stored
            pcm, seq, ts, ssrc, arrival = self._decode(item)
            if jb.put_pcm(pcm, seq, ts, ssrc, arrival):
                stored += 1

    # ------------------------------------------------------------------ teardown

    async def close(self) -> None:
        """Stop the tracks and the peer connection; leaves no task behind."""
        self.track.stop()
        await self.pc.close()
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
            self._consumer = None
