"""Plain numpy/pure-Python twins of the DSP kernels (DTMF, mixer, tones, prompts).

Everything here is written for clarity, not speed: the tests compare the Cython kernels
against these. Signal generators for the Q.24 matrix and talk-off tests live here too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

RATE = 8000
#: 0 dBm0 sine peak in int16 units: G.711 µ-law T_max (8159 in 14 bits, x4) 3.17 dB down.
DBM0_PEAK = 32636 * 10 ** (-3.17 / 20)
ROWS = (697.0, 770.0, 852.0, 941.0)
COLS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")
DIGITS = "0123456789*#ABCD"  # RFC 4733 event code = index

I16 = npt.NDArray[np.int16]
F64 = npt.NDArray[np.float64]


def dtmf_freqs(digit: str) -> tuple[float, float]:
    """Row and column frequency of a keypad digit."""
    for r, row in enumerate(KEYS):
        c = row.find(digit)
        if c >= 0:
            return ROWS[r], COLS[c]
    raise ValueError(f"not a DTMF digit: {digit!r}")


def amplitude(dbm0: float) -> float:
    """Peak amplitude (int16 units) of a sine at ``dbm0``."""
    return DBM0_PEAK * 10 ** (dbm0 / 20)


def to_int16(x: F64) -> I16:
    """Round and saturate a float signal to int16 (what a codec path does)."""
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def dual_tone(
    f1: float,
    f2: float,
    dbm0_1: float,
    dbm0_2: float,
    n: int,
    rng: np.random.Generator | None = None,
) -> F64:
    """Two sines with random phases, float (not yet rounded)."""
    t = np.arange(n) / RATE
    p1, p2 = (0.0, 0.0) if rng is None else rng.uniform(0, 2 * math.pi, 2)
    return amplitude(dbm0_1) * np.sin(2 * math.pi * f1 * t + p1) + amplitude(dbm0_2) * np.sin(
        2 * math.pi * f2 * t + p2
    )


def white_noise(dbm0: float, n: int, rng: np.random.Generator) -> F64:
    """Gaussian noise whose power equals that of a sine at ``dbm0``."""
    return rng.normal(0.0, amplitude(dbm0) / math.sqrt(2), n)


def ulaw_roundtrip(x: I16) -> I16:
    """µ-law encode then decode (G.711, bias 33 in the 14-bit domain), in numpy."""
    v = x.astype(np.int32) >> 2
    sign = v < 0
    mag = np.minimum(np.abs(v), 8159) + 33
    seg = np.zeros_like(mag)
    for s in range(8):
        seg = np.where(mag >= (64 << s), s + 1, seg)
    seg = np.minimum(seg, 7)
    mant = (mag >> (seg + 1)) & 0x0F
    dec = (((mant << 1) + 33) << seg) - 33
    out = np.where(sign, -dec, dec) << 2
    return out.astype(np.int16)


def goertzel_energies(block: Sequence[int] | I16) -> tuple[F64, float]:
    """|X(f)|^2 at the eight Q.23 frequencies via an explicit DFT sum, and the energy."""
    x = np.asarray(block, dtype=np.float64)
    n = np.arange(len(x))
    out = np.empty(8)
    for k, f in enumerate(ROWS + COLS):
        w = 2 * math.pi * f / RATE
        out[k] = abs(np.sum(x * np.exp(-1j * w * n))) ** 2
    return out, float(np.sum(x * x))


# --- mixer ------------------------------------------------------------------------------

UNITY = 4096  # Q12 gain


def mix_reference(
    inp: I16, hears: Sequence[Sequence[int]], gains_q12: Sequence[int] | None = None
) -> I16:
    """out[i] = saturate(sum over j in hears[i], j != i, of round(in[j] * g[j]))."""
    legs, n = inp.shape
    g = [UNITY] * legs if gains_q12 is None else list(gains_q12)
    out = np.zeros((legs, n), dtype=np.int16)
    for i in range(legs):
        acc = np.zeros(n, dtype=np.int64)
        for j in set(hears[i]):
            if j == i:
                continue
            acc += (inp[j].astype(np.int64) * g[j] + UNITY // 2) >> 12
        out[i] = np.clip(acc, -32768, 32767)
    return out


# --- tones and prompts ------------------------------------------------------------------


def dds_increment(freq: float) -> int:
    """32-bit phase increment of ``freq`` at 8 kHz."""
    return int(round(freq / RATE * 2**32)) & 0xFFFFFFFF


def tone_reference(
    segments: Sequence[tuple[float, float, float, float, int]], total: int, loop: bool
) -> tuple[I16, bool]:
    """Exact-sine twin of the segment tone generator: (samples, done).

    Each segment is (f1, f2, amplitude1, amplitude2, n_samples); phases run continuously
    from 0 across segments and loops; amplitude 0 is silence.
    """
    out = np.zeros(total, dtype=np.float64)
    inc1 = [dds_increment(s[0]) for s in segments]
    inc2 = [dds_increment(s[1]) for s in segments]
    ph1 = ph2 = 0
    seg = 0
    left = segments[0][4] if segments else 0
    done = not segments
    for k in range(total):
        while not done and left == 0:
            seg += 1
            if seg == len(segments):
                if not loop:
                    done = True
                    break
                seg = 0
            left = segments[seg][4]
        if done:
            break
        a1, a2 = segments[seg][2], segments[seg][3]
        out[k] = a1 * math.sin(2 * math.pi * ph1 / 2**32) + a2 * math.sin(2 * math.pi * ph2 / 2**32)
        ph1 = (ph1 + inc1[seg]) & 0xFFFFFFFF
        ph2 = (ph2 + inc2[seg]) & 0xFFFFFFFF
        left -= 1
    if not done and left == 0 and not loop and seg == len(segments) - 1:
        done = True
    return to_int16(out), done


def prompt_reference(prompt: I16, pos: int, n: int, loop: bool) -> tuple[I16, int, bool]:
    """Next ``n`` samples of a prompt from ``pos``: (tick, new position, done)."""
    out = np.zeros(n, dtype=np.int16)
    size = len(prompt)
    if size == 0:
        return out, 0, True
    k = 0
    while k < n:
        if pos >= size:
            if not loop:
                break
            pos = 0
        take = min(n - k, size - pos)
        out[k : k + take] = prompt[pos : pos + take]
        k += take
        pos += take
    if loop and pos >= size:
        pos = 0
    return out, pos, (not loop) and pos >= size
