"""Type stubs for cext._net (epoll + recvmmsg/sendmmsg batch UDP I/O)."""

from typing import Any

def monotonic_ms() -> float: ...
def set_srtp_functions(protect: int, unprotect: int) -> None: ...

class NetIO:
    capacity: int
    fds: Any
    remote_ip: Any
    remote_port: Any
    latch: Any
    send_enabled: Any
    relay_to: Any
    audio_pt: Any
    out_pt: Any
    out_ssrc: Any
    out_seq: Any
    out_ts: Any
    relay_active: Any
    rx_packets: Any
    tx_packets: Any
    relayed: Any
    latched: Any
    last_rx_ms: Any
    srtp_tx: Any
    srtp_rx: Any
    srtp_errors: Any
    foreign_dropped: int
    kernel_timestamps: bool
    @property
    def foreign_count(self) -> int: ...
    def __init__(self, capacity: int) -> None: ...
    def set_srtp(self, slot: int, tx: int, rx: int) -> None: ...
    def take_foreign(self) -> list[tuple[int, bytes, str, int]]: ...
    def set_remote6(self, slot: int, addr: bytes, port: int, scope_id: int = 0) -> None: ...
    def remote_addr(self, slot: int) -> tuple[str, int]: ...
    def add(self, slot: int, fd: int) -> None: ...
    def remove(self, slot: int) -> None: ...
    def set_remote(self, slot: int, ip_be: int, port: int) -> None: ...
    def poll(
        self,
        packets: Any,
        lengths: Any,
        slots: Any,
        arrival_ms: Any,
        src_ip: Any,
        src_port: Any,
        deadline_ms: float,
        start: int = 0,
    ) -> int: ...
    def send(self, packets: Any, lengths: Any, slots: Any, count: int) -> int: ...
    def send_stamped(self, packets: Any, lengths: Any, slots: Any, count: int,
                     offset: int) -> int: ...
    def send_srtp(self, packets: Any, lengths: Any, slots: Any, count: int) -> int: ...
