"""Pure-Python twin of the concealment in cext/_jitter.pyx (G.711 Appendix I style),
plus an ideal playout model used by the jitter-buffer tests."""

from __future__ import annotations

import math

PITCH_MIN, PITCH_MAX = 40, 120
HIST_LEN = 390
CORR_LEN = 160
FLAT = 80
SILENT_AT = 480


def find_pitch(h: list[int]) -> int:
    best, best_score = PITCH_MAX, 0.0
    start = HIST_LEN - CORR_LEN
    for lag in range(PITCH_MIN, PITCH_MAX + 1):
        c = sum(h[i] * h[i - lag] for i in range(start, HIST_LEN))
        e = sum(h[i - lag] * h[i - lag] for i in range(start, HIST_LEN))
        if e > 0 and c > 0:
            score = float(c) * abs(float(c)) / float(e)
            if score > best_score:
                best, best_score = lag, score
    return best


def _r16(v: float) -> int:
    return max(-32768, min(32767, math.floor(v + 0.5)))


class Plc:
    def __init__(self) -> None:
        self.hist: list[int] = [0] * HIST_LEN
        self.snap: list[int] = []
        self.pitch = 0
        self.primed = False
        self.erasing = False
        self.n = 0
        self.rec_len = 0
        self.rec_pos = 0

    def pbuf(self, k: int, j: int) -> float:
        per, ov = self.pitch, self.pitch >> 2
        span = k * per
        base = HIST_LEN - span
        if j < span - ov:
            return float(self.snap[base + j])
        i = j - (span - ov)
        w = (i + 1.0) / (ov + 1.0)
        return self.snap[base + j] * (1.0 - w) + self.snap[base - ov + i] * w

    def conceal(self, n: int) -> float:
        if n >= SILENT_AT:
            return 0.0
        per, ov = self.pitch, self.pitch >> 2
        k = 1 if n < FLAT else 2 if n < 2 * FLAT else 3
        v = self.pbuf(k, n % (k * per))
        if k > 1 and n < (k - 1) * FLAT + ov:
            w = (n - (k - 1) * FLAT + 1.0) / (ov + 1.0)
            v = self.pbuf(k - 1, n % ((k - 1) * per)) * (1.0 - w) + v * w
        gain = 1.0 if n < FLAT else 1.0 - (n - FLAT) / 400.0
        return v * gain

    def step(self, present: bool, real: int) -> int:
        if present:
            self.primed = True
            if self.erasing:
                self.erasing = False
                self.rec_len = min(32 * (1 + (self.n - 1) // FLAT), 80)
                self.rec_pos = 0
            if self.rec_pos < self.rec_len:
                w = (self.rec_pos + 1.0) / (self.rec_len + 1.0)
                v = _r16(self.conceal(self.n + self.rec_pos) * (1.0 - w) + real * w)
                self.rec_pos += 1
            else:
                v = real
        elif not self.primed:
            v = 0
        else:
            if not self.erasing:
                self.snap = self.hist[-HIST_LEN:]
                self.pitch = find_pitch(self.snap)
                self.erasing, self.n, self.rec_len, self.rec_pos = True, 0, 0, 0
            if self.n < SILENT_AT:
                v = _r16(self.conceal(self.n))
                self.n += 1
            else:
                v = 0
        self.hist.append(v)
        del self.hist[0]
        return v


def plc_run(samples: list[int], present: list[bool]) -> list[int]:
    p = Plc()
    return [p.step(bool(m), int(s)) for s, m in zip(samples, present, strict=True)]
