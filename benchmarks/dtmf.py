"""DTMF detection: our Goertzel kernel vs spandsp's dtmf_rx (the anchor).

Prints channel-seconds of audio processed per CPU-second for both on the same input,
their ratio, and the ITU-T Q.24 pass matrix of both detectors. The anchor is
benchmarks/_spandsp_dtmf.c, compiled here at run time with ``cc -O2 ... -lspandsp``.

Run: .venv/bin/python benchmarks/dtmf.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "cext"))

import reference_dsp as ref  # noqa: E402

from cext.dtmf import DtmfDetector, detect_digits  # noqa: E402

ALL = "0123456789*#ABCD"
CASES: list[tuple[str, dict, bool]] = [
    ("nominal -10 dBm0", {}, True),
    ("row +1.5%", {"dev": (0.015, 0.0)}, True),
    ("row -1.5%", {"dev": (-0.015, 0.0)}, True),
    ("col +1.5%", {"dev": (0.0, 0.015)}, True),
    ("col -1.5%", {"dev": (0.0, -0.015)}, True),
    ("row +3.5% (reject)", {"dev": (0.035, 0.0)}, False),
    ("row -3.5% (reject)", {"dev": (-0.035, 0.0)}, False),
    ("col +3.5% (reject)", {"dev": (0.0, 0.035)}, False),
    ("col -3.5% (reject)", {"dev": (0.0, -0.035)}, False),
    ("normal twist 8 dB", {"twist": 8.0}, True),
    ("reverse twist 4 dB", {"twist": -4.0}, True),
    ("0 dBm0", {"level": 0.0}, True),
    ("-30 dBm0", {"level": -30.0}, True),
    ("-36 dBm0", {"level": -36.0}, True),
    ("noise 15 dB below", {"level": -20.0, "snr": 15.0}, True),
    ("noise 20 dB below", {"level": -20.0, "snr": 20.0}, True),
    ("40 ms on / 40 ms off", {"on": 0.04, "off": 0.04}, True),
]


def signal(seq: str, seed: int, on: float = 0.05, off: float = 0.05, level: float = -10.0,
           dev: tuple[float, float] = (0.0, 0.0), twist: float = 0.0,
           snr: float | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(rng.integers(200, 600)))]
    for ch in seq:
        fr, fc = ref.dtmf_freqs(ch)
        lr, lc = (level, level - twist) if twist >= 0 else (level + twist, level)
        parts.append(ref.dual_tone(fr * (1 + dev[0]), fc * (1 + dev[1]), lr, lc,
                                   int(on * ref.RATE), rng))
        parts.append(np.zeros(int(off * ref.RATE)))
    parts.append(np.zeros(400))
    x = np.concatenate(parts)
    if snr is not None:
        x = x + ref.white_noise(level - snr, len(x), rng)
    return ref.ulaw_roundtrip(ref.to_int16(x))


def build_anchor(tmp: str) -> str:
    exe = os.path.join(tmp, "spandsp_dtmf")
    cc = shutil.which("cc") or "cc"
    subprocess.run([cc, "-O2", "-o", exe, os.path.join(HERE, "_spandsp_dtmf.c"), "-lspandsp",
                    "-lm"], check=True)
    return exe


def run_anchor(exe: str, files: list[str], repeat: int = 1) -> list[tuple[str, float]]:
    res = subprocess.run([exe, "-r", str(repeat), *files], check=True, capture_output=True,
                         text=True)
    out = []
    for line in res.stdout.splitlines():
        digits, cpu = line.split("\t")
        out.append(("" if digits == "-" else digits, float(cpu)))
    return out


def main() -> None:
    seeds = (1, 2, 3)
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_anchor(tmp)
        # ---- throughput: 60 s of digits in noise followed by 60 s of noise-only audio
        rng = np.random.default_rng(0)
        digits_part = signal(ALL * 40, 11, on=0.06, off=0.06, level=-15.0, snr=25.0)
        quiet = ref.to_int16(ref.white_noise(-30.0, 60 * 8000, rng))
        x = np.concatenate([digits_part, quiet])
        path = os.path.join(tmp, "bench.raw")
        x.tofile(path)
        seconds = len(x) / 8000
        repeat = 10
        (sp_digits, sp_cpu), = run_anchor(exe, [path], repeat)
        det = DtmfDetector()
        cap = DtmfDetector.max_events(len(x))
        codes, starts, durs = (np.zeros(cap, np.int32), np.zeros(cap, np.int64),
                               np.zeros(cap, np.int32))
        t0 = time.process_time()
        for _ in range(repeat):
            det.reset()
            det.process(x, codes, starts, durs)
        ours_whole = time.process_time() - t0
        cap1 = DtmfDetector.max_events(160)
        c1, s1, d1 = np.zeros(cap1, np.int32), np.zeros(cap1, np.int64), np.zeros(cap1, np.int32)
        t0 = time.process_time()
        for _ in range(repeat):
            det.reset()
            for i in range(0, len(x), 160):
                det.process(x[i:i + 160], c1, s1, d1)
        ours_tick = time.process_time() - t0
        ours_digits = "".join(d.digit for d in detect_digits(x))
        total = seconds * repeat
        print(f"DTMF detection throughput ({seconds:.0f} s of audio x {repeat}, CPU time)")
        print(f"{'detector':<38}{'ch-s / CPU-s':>14}{'ratio':>8}")
        base = total / sp_cpu
        print(f"{'spandsp dtmf_rx (C, 160-sample calls)':<38}{base:>14.0f}{1.0:>8.2f}")
        print(f"{'hotline kernel (whole buffer)':<38}{total / ours_whole:>14.0f}"
              f"{total / ours_whole / base:>8.2f}")
        print(f"{'hotline kernel (160-sample Python calls)':<38}{total / ours_tick:>14.0f}"
              f"{total / ours_tick / base:>8.2f}")
        want = ALL * 40
        print(f"digits correct: spandsp {sp_digits == want}, hotline {ours_digits == want}")
        print()
        # ---- Q.24 matrix
        files = []
        for _name, kw, _ in CASES:
            for s in seeds:
                p = os.path.join(tmp, f"case{len(files)}.raw")
                signal(ALL, s, **kw).tofile(p)
                files.append(p)
        anchor = run_anchor(exe, files)
        print("ITU-T Q.24 matrix (16 digits x 3 random-phase seeds; pass = all digits, or "
              "none for a reject case)")
        print(f"{'case':<26}{'expect':>8}{'spandsp':>10}{'hotline':>10}")
        score = [0, 0]
        k = 0
        for name, kw, accept in CASES:
            res = []
            for who in (0, 1):
                ok = True
                for j, s in enumerate(seeds):
                    if who == 0:
                        got = anchor[k + j][0]
                    else:
                        got = "".join(d.digit for d in detect_digits(signal(ALL, s, **kw)))
                    ok &= got == (ALL if accept else "")
                res.append(ok)
                score[who] += ok
            k += len(seeds)
            print(f"{name:<26}{'detect' if accept else 'reject':>8}"
                  f"{'pass' if res[0] else 'FAIL':>10}{'pass' if res[1] else 'FAIL':>10}")
        print(f"{'passed':<34}{score[0]:>10}{score[1]:>10}   of {len(CASES)}")


if __name__ == "__main__":
    main()
