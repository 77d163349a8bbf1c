"""The media side of a call: SDP offer/answer turned into media-worker endpoints and rooms.

Call control speaks SIP; this module speaks to :class:`media.client.MediaPool`. Every
leg of a call gets one RTP endpoint in the call's worker (the pool keys workers by
call id, so all legs of a call mix in one process), and the call's room says who
hears whom: an echo hears itself, a B2BUA bridge is two endpoints hearing each other.
Where audio must cross to another worker (a conference room mixed elsewhere), a *link*
is a pair of plain RTP endpoints, one per worker, sending to each other over loopback.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Mapping, Sequence

from media.client import EndpointHandle, MediaError, MediaPool
from sip import sdp as sdplib

PLACEHOLDER_PORT = 9  # RFC 3264 §5.1 "discard" port, only to compute a negotiation


def _endpoint_options(m: sdplib.NegotiatedMedia) -> dict[str, object]:
    remote = m.remote_address not in ("0.0.0.0", "::")
    return {
        "remote_ip": m.remote_address if remote else None,
        "remote_port": m.remote_port if remote else None,
        "codec": m.codec.lower(),
        "pt": m.payload_type,
        "te_pt": m.telephone_event_pt,
        "direction": m.direction.value,
    }


LOOPBACK_JITTER_MIN_MS = 5
"""The smallest jitter buffer delay of an RTP hop between two of our own workers over
loopback (a browser phone's leg: no network between them, only the two ticks drift;
benchmarks/README.md). Network legs keep the worker's default (20 ms)."""


class CallMedia:
    """Endpoint and room operations for call control.

    :param pool: the running media worker pool.
    :param media_timeout: seconds without RTP before a ``MediaTimeout`` event (0: never).
    """

    def __init__(self, pool: MediaPool, media_timeout: float = 60.0) -> None:
        self.pool = pool
        self.media_timeout = media_timeout
        self._session_ids = itertools.count(int(time.time()))

    async def answer(
        self, call_key: str, offer: sdplib.SessionDescription, local_ip: str,
        *, dtmf_inband: bool = False, jitter_min_ms: int | None = None,
    ) -> tuple[EndpointHandle, sdplib.SessionDescription, sdplib.NegotiatedMedia]:
        """Create the endpoint that answers ``offer`` (``jitter_min_ms``: the smallest
        jitter buffer delay, when not the worker's default).

        :raises sip.exceptions.IncompatibleMedia: nothing in the offer is acceptable (488).
        :raises media.client.MediaError: the worker refused or has no free port.
        """
        answer, negotiated = sdplib.answer_offer(
            offer, local_ip, PLACEHOLDER_PORT, session_id=next(self._session_ids), version=1,
            rtcp_mux=False)
        options = _endpoint_options(negotiated)
        if jitter_min_ms is not None:
            options["jitter_min_ms"] = jitter_min_ms
        ep = await self.pool.create_endpoint(
            call_key, media_timeout=self.media_timeout,
            dtmf_inband=dtmf_inband or negotiated.telephone_event_pt is None, **options)
        # The negotiation does not depend on our port: put the endpoint's in the answer.
        answer.media[negotiated.media_index].port = ep.local_port
        return ep, answer, negotiated

    async def reanswer(self, ep: EndpointHandle, offer: sdplib.SessionDescription,
                       local_ip: str, session_id: int, version: int
                       ) -> tuple[sdplib.SessionDescription, sdplib.NegotiatedMedia]:
        """Answer a re-INVITE's offer on an existing endpoint (hold/resume, new address)."""
        answer, negotiated = sdplib.answer_offer(
            offer, local_ip, ep.local_port, session_id=session_id, version=version,
            rtcp_mux=False)
        await self.pool.modify_endpoint(ep, **_endpoint_options(negotiated))
        return answer, negotiated

    async def offer(self, call_key: str, local_ip: str, *, jitter_min_ms: int | None = None,
                    ) -> tuple[EndpointHandle, sdplib.SessionDescription]:
        """Create the endpoint of an outgoing leg and the offer that advertises it
        (``jitter_min_ms``: as for :meth:`answer`)."""
        options: dict[str, object] = {}
        if jitter_min_ms is not None:
            options["jitter_min_ms"] = jitter_min_ms
        ep = await self.pool.create_endpoint(call_key, media_timeout=0.0, codec="pcmu", pt=0,
                                             te_pt=sdplib.TELEPHONE_EVENT.payload_type,
                                             **options)
        sdp = sdplib.build_offer(local_ip, ep.local_port, session_id=next(self._session_ids),
                                 version=1)
        return ep, sdp

    async def accept_answer(self, ep: EndpointHandle, offer: sdplib.SessionDescription,
                            answer: sdplib.SessionDescription) -> sdplib.NegotiatedMedia:
        """Point an outgoing leg's endpoint at the callee's answer."""
        negotiated = sdplib.negotiated_from_answer(offer, answer)
        await self.pool.modify_endpoint(ep, media_timeout=self.media_timeout,
                                        dtmf_inband=negotiated.telephone_event_pt is None,
                                        **_endpoint_options(negotiated))
        return negotiated

    async def link(self, near: EndpointHandle, far_key: str
                   ) -> tuple[EndpointHandle, EndpointHandle]:
        """Create a link between ``near``'s worker and ``far_key``'s: endpoint ``a`` in
        the former (call key ``near.call_key``) and ``b`` in the latter, each sending to
        the other (PCMU with telephone-event, the loopback jitter buffer, no media
        timeout). Put ``a`` in a room on one side and ``b`` in a room on the other, and
        the two rooms hear each other. Both workers' RTP sockets must be reachable at the
        pool's ``rtp_ip`` (loopback for a wildcard).

        :returns: ``(a, b)``.
        :raises media.client.MediaError: a worker refused; nothing is left behind.
        """
        ip = "127.0.0.1" if self.pool.rtp_ip in ("", "0.0.0.0") else self.pool.rtp_ip
        options: dict[str, object] = {
            "codec": "pcmu", "pt": 0, "te_pt": sdplib.TELEPHONE_EVENT.payload_type,
            "media_timeout": 0.0, "jitter_min_ms": LOOPBACK_JITTER_MIN_MS,
            "latch": False,  # both addresses are known: nobody else may redirect a half
        }
        made: list[EndpointHandle] = []
        try:
            made.append(await self.pool.create_endpoint(near.call_key, **options))
            made.append(await self.pool.create_endpoint(
                far_key, remote_ip=ip, remote_port=made[0].local_port, **options))
            await self.pool.modify_endpoint(made[0], remote_ip=ip,
                                            remote_port=made[1].local_port)
        except MediaError:
            await self.destroy_all(made)
            raise
        return made[0], made[1]

    async def destroy_all(self, eps: Sequence[EndpointHandle]) -> None:
        """Free endpoints on a failure path: one a worker refuses (or took with it when it
        died) does not stop the others."""
        for ep in eps:
            with contextlib.suppress(MediaError):
                await self.pool.destroy(ep)

    async def echo(self, room: str, ep: EndpointHandle) -> None:
        """The endpoint hears itself (Asterisk's *43)."""
        await self.pool.set_room(room, [ep], hears={ep: [ep]})

    async def bridge(self, room: str, a: EndpointHandle, b: EndpointHandle) -> None:
        """Two legs hear each other."""
        await self.pool.set_room(room, [a, b])

    async def set_vad(self, ep: EndpointHandle, on: bool) -> None:
        """Turn voice activity detection (speech start/stop events) on or off."""
        await self.pool.modify_endpoint(ep, vad=on)

    async def room(self, name: str, eps: list[EndpointHandle],
                   hears: Mapping[EndpointHandle, Sequence[EndpointHandle]] | None = None,
                   ) -> None:
        """Everyone in ``eps`` hears everyone else (a bridge for two, a conference for
        more) unless ``hears`` says who hears whom; an empty list dissolves the room."""
        await self.pool.set_room(name, eps, hears=dict(hears) if hears is not None else None)

    async def play(self, ep: EndpointHandle, prompt: str, *, loop: bool = False) -> int:
        """Play a prompt (file under the data dir, ``tts:``, ``tone:``); returns its play id."""
        return await self.pool.play(ep, prompt, loop=loop)

    async def stop_play(self, ep: EndpointHandle) -> bool:
        """Stop the endpoint's prompt (barge-in); True if something was playing."""
        return await self.pool.stop_play(ep)

    async def destroy(self, ep: EndpointHandle) -> None:
        """Free an endpoint (its port goes back to the worker)."""
        await self.pool.destroy(ep)
