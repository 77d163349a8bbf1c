"""Type stubs for cext._jitter (adaptive jitter buffer with G.711 Appendix I PLC)."""

from typing import Any

FRAME_SAMPLES: int
FRAME_REAL: int
FRAME_CONCEALED: int
FRAME_SILENCE: int
FRAME_STRETCHED: int
FRAME_SHRUNK: int
FRAME_RESYNC: int

def find_pitch(history: Any) -> int: ...
def plc_run(samples: Any, present: Any, out: Any) -> int: ...

class JitterBuffer:
    packets: int
    duplicates: int
    late: int
    ignored: int
    resyncs: int
    real_frames: int
    concealed_frames: int
    silence_frames: int
    shrunk_frames: int
    stretched_frames: int
    def __init__(self, min_delay_ms: int = 40, max_delay_ms: int = 200) -> None: ...
    def put_batch(
        self,
        packets: Any,
        payload_offset: Any,
        payload_len: Any,
        seq: Any,
        ts: Any,
        ssrc: Any,
        pt: Any,
        status: Any,
        arrival_ms: Any,
        rows: Any,
    ) -> int: ...
    def put_pcm(self, samples: Any, seq: int, ts: int, ssrc: int, arrival_ms: float) -> bool: ...
    def get_frame(self, out: Any, now_ms: float) -> int: ...
    def reset(self) -> None: ...
    @property
    def target_delay_ms(self) -> float: ...
    @property
    def delay_ms(self) -> float: ...
    @property
    def next_timestamp(self) -> int | None: ...
    @property
    def ring_samples(self) -> int: ...
