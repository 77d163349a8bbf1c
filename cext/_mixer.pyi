"""Type stubs for cext._mixer (the hears-graph mixer)."""

from typing import Any

class MixPlan:
    n_legs: int
    n_rooms: int
    def __init__(
        self, gain: Any, room_ptr: Any, room_legs: Any, subtract: Any, src_ptr: Any, src: Any
    ) -> None: ...
    @property
    def arrays(self) -> dict[str, Any]: ...
    def mix(self, inp: Any, out: Any) -> None: ...
