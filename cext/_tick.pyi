"""Type stubs for cext._tick (the media worker's per-tick kernel)."""

from typing import Any

EV_DTMF: int
EV_TE: int
EV_PLAY_DONE: int
EV_TONE_DONE: int
FRAME: int
PACKET: int

class TickBatch:
    def __init__(self, rb: Any) -> None: ...

class TickKernel:
    capacity: int
    swept: int
    n_packets: int
    n_sent: int
    n_events: int
    events_kind: Any
    events_slot: Any
    events_a: Any
    events_b: Any
    packets: Any
    packet_lengths: Any
    packet_slots: Any
    rec_pos: Any
    rec_full: Any
    def __init__(self, net: Any, inp: Any, out: Any, batch0: Any, batch1: Any) -> None: ...
    def set_endpoint(self, slot: int, jb: Any, dtmf: Any = None, player: Any = None,
                     play_mix: bool = False, tone: Any = None, receives: bool = True,
                     echo: bool = False, te_pt: int = 255) -> None: ...
    @property
    def hi(self) -> int: ...
    @property
    def n_rooms(self) -> int: ...
    def set_sender(self, slot: int, send: bool, codec: int = 0, pt: int = 0,
                   advance: bool = True) -> None: ...
    def set_room(self, handle: int, plan: Any, slots: Any) -> None: ...
    def clear_room(self, handle: int) -> None: ...
    def set_lists(self, plan: Any, n_legs: int, send_slots: Any, send_codec: Any,
                  send_pt: Any, adv_slots: Any) -> None: ...
    def set_recordings(self, bufs: list[Any], left: list[Any], right: list[Any],
                       paused: Any, positions: Any, right_sent: Any = None) -> None: ...
    def set_paused(self, index: int, paused: bool) -> None: ...
    def run(self, batch: int, n: int, now_ms: float, full: bool = True,
            io: bool = True) -> int: ...
