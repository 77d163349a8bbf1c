"""Type stubs for cext._rtp (RTP parse/build kernels, RFC 3550 source state)."""

from typing import Any

STATUS_OK: int
STATUS_SHORT: int
STATUS_VERSION: int
STATUS_CSRC: int
STATUS_EXT_HEADER: int
STATUS_EXT_VALUE: int
STATUS_PADDING: int
STATUS_LENGTH: int
STATUS_RTCP: int

def parse_batch(
    packets: Any,
    lengths: Any,
    seq: Any,
    ts: Any,
    ssrc: Any,
    pt: Any,
    marker: Any,
    payload_offset: Any,
    payload_len: Any,
    status: Any,
    count: int = -1,
) -> int: ...
def parse_one(
    data: Any,
) -> tuple[int, int, int, int, int, int, int, int, int, int, int, int, int]: ...
def build_one(
    out: Any, pt: int, marker: bool, seq: int, ts: int, ssrc: int, payload: Any
) -> int: ...
def build_batch(
    payloads: Any,
    payload_len: Any,
    pt: Any,
    marker: Any,
    seq: Any,
    ts: Any,
    ssrc: Any,
    out: Any,
    out_len: Any,
    count: int = -1,
) -> int: ...

class RtpSourceTable:
    capacity: int
    def __init__(self, capacity: int, clock_rate: int = 8000) -> None: ...
    def reset(self, slot: int, clock_rate: int = 0) -> None: ...
    def update(
        self,
        slot: Any,
        seq: Any,
        ts: Any,
        ssrc: Any,
        arrival_ms: Any,
        status: Any,
        valid: Any,
        count: int = -1,
    ) -> int: ...
    def stats(
        self, slot: int, update_prior: bool = False
    ) -> tuple[int, int, int, int, int, int, int, bool]: ...
