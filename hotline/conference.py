"""Conference rooms for ``conference:ROOM`` targets: everyone hears everyone else.

The media core mixes N-1 per participant in one kernel call, so a room is only the list
of its participants' endpoints, set on the worker whenever someone joins or leaves. A
participant alone in the room hears music on hold rather than silence. Rooms exist while
they have participants; no configuration is needed.

All of a room's endpoints must live in one media worker: call control creates them with
the media key ``conf:ROOM``, so the pool puts them together.
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

    def accepts(self, name: str, ep: EndpointHandle) -> bool:
        """Whether ``ep`` can join ``name``: the room is empty or in ``ep``'s worker."""
        room = self._rooms.get(name)
        return room is None or not room.members or room.members[0].worker == ep.worker

    async def join(self, name: str, ep: EndpointHandle) -> int:
        """Add ``ep`` to room ``name``; returns the participants now in it.

        :raises MediaError: the worker refused (the room is left as it was).
        """
        room = self._rooms.setdefault(name, _Room())
        async with room.lock:
            room.members.append(ep)
            try:
                await self._apply(name, room)
            except MediaError:
                room.members.remove(ep)
                raise
            return len(room.members)

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
