"""Conference rooms for ``conference:ROOM`` targets: everyone hears everyone else.

The media core mixes N-1 per participant in one kernel call, so a room is only the list
of its participants' endpoints, set on the worker whenever someone joins or leaves. A
participant alone in the room hears music on hold rather than silence. Rooms exist while
they have participants; no configuration is needed.

The kernel mixes a room within one media worker: the room lives in its first
participant's. Callers who dial the room get a media key that puts their endpoint there
(:meth:`ConferenceRooms.media_key`); a participant whose endpoint is in another worker
(an IVR's caller) joins through a link (:meth:`hotline.mediactl.CallMedia.link`): its far
end takes the participant's place in the room.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from media.client import EndpointHandle, MediaError

from .mediactl import CallMedia

ROOM_PREFIX = "conf:"
"""Worker room names and media keys of conference rooms (distinct from call ids)."""


@dataclass(eq=False)
class _Room:
    members: list[EndpointHandle] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    playing: EndpointHandle | None = None
    """The lone participant hearing music on hold."""


class ConferenceRooms:
    """The live rooms of a site.

    :param media: endpoint and room operations.
    :param moh: what a participant alone in a room hears.
    """

    def __init__(self, media: CallMedia, moh: str) -> None:
        self._media = media
        self._moh = moh
        self._rooms: dict[str, _Room] = {}

    def size(self, name: str) -> int:
        """Participants in room ``name`` now."""
        room = self._rooms.get(name)
        return len(room.members) if room is not None else 0

    def media_key(self, name: str) -> str:
        """The media key that puts an endpoint in room ``name``'s worker: a participant's
        (the pool keeps the endpoints of a key in one worker), ``conf:ROOM`` while the
        room is empty."""
        room = self._rooms.get(name)
        return room.members[0].call_key if room is not None and room.members else (
            ROOM_PREFIX + name)

    async def join(self, name: str, ep: EndpointHandle
                   ) -> tuple[int, tuple[EndpointHandle, EndpointHandle] | None]:
        """Add ``ep`` to room ``name``, through a new link if the room is in another
        worker (the link's far end is then the participant); returns the participants
        now in it and the link (the caller destroys it after :meth:`leave`).

        :raises MediaError: the worker refused (the room is left as it was, no link).
        """
        while True:
            room = self._rooms.setdefault(name, _Room())
            async with room.lock:
                if self._rooms.get(name) is not room:
                    continue  # emptied and dropped while we waited for it
                link = None
                if room.members and room.members[0].worker != ep.worker:
                    link = await self._media.link(ep, self.media_key(name))
                member = ep if link is None else link[1]
                room.members.append(member)
                try:
                    await self._apply(name, room)
                except MediaError:
                    room.members.remove(member)
                    await self._media.destroy_all(link or ())
                    raise
                return len(room.members), link

    def worker_died(self, worker: int) -> None:
        """Forget the rooms that lived in a dead worker (their endpoints are gone)."""
        for name, room in list(self._rooms.items()):
            if room.members and room.members[0].worker == worker:
                del self._rooms[name]

    async def leave(self, name: str, ep: EndpointHandle) -> None:
        """Take ``ep`` out of room ``name`` (before it is destroyed)."""
        room = self._rooms.get(name)
        if room is None or ep not in room.members:
            return
        async with room.lock:
            room.members.remove(ep)
            if room.playing == ep:
                room.playing = None
            try:
                await self._apply(name, room)
            except MediaError:
                pass  # the worker is gone: nothing left to mix
            if not room.members and self._rooms.get(name) is room:
                del self._rooms[name]

    async def _apply(self, name: str, room: _Room) -> None:
        members = room.members
        worker_room = ROOM_PREFIX + name
        if len(members) >= 2:
            if room.playing is not None:
                await self._media.stop_play(room.playing)
                room.playing = None
            await self._media.room(worker_room, list(members))
            return
        await self._media.room(worker_room, [])
        if len(members) == 1 and room.playing is None:
            await self._media.play(members[0], self._moh, loop=True)
            room.playing = members[0]
