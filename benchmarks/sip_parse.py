"""Benchmark: SIP messages parsed per second, hotline vs the ``sipmessage`` PyPI package.

Run: ``.venv/bin/python benchmarks/sip_parse.py [--seconds 0.5] [--profile]``

Each iteration does what a transaction layer needs from a received message: parse the
bytes, then read the top Via's branch, CSeq (number and method), Call-ID and the From and
To tags. For ``sipmessage`` the equivalent calls are ``Message.parse``, ``.via[0]``,
``.cseq``, ``.call_id`` and ``.from_address``/``.to_address`` parameters. Same messages,
same process, best of several rounds.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sip.message import SipMessage  # noqa: E402

DATA = ROOT / "tests" / "data"


def _crlf(text: str) -> bytes:
    return text.strip("\n").replace("\n", "\r\n").encode() + b"\r\n\r\n"


OK_200 = (
    _crlf(
        """
SIP/2.0 200 OK
Via: SIP/2.0/UDP 198.51.100.20:5060;rport=5060;received=198.51.100.20;branch=z9hG4bKPj1f0e8b8c-4d0a
Record-Route: <sip:203.0.113.10;lr>
From: "Li Na" <sip:1001@198.51.100.20>;tag=5c2a9a0e-7d4f-4c1b-8f0e-2b6f0a9c1d33
To: <sip:+8613800138000@203.0.113.10>;tag=as58f4201b
Call-ID: 8f2c1a6e-3b7d-4e9f-a1c2-5d6e7f8a9b0c
CSeq: 16043 INVITE
Server: Carrier-SBC 4.2
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO
Supported: replaces, timer
Contact: <sip:+8613800138000@203.0.113.10:5060>
Content-Type: application/sdp
Content-Length: 116
"""
    )
    + b"v=0\r\no=root 1 1 IN IP4 203.0.113.10\r\ns=call\r\nc=IN IP4 203.0.113.10\r\n"
    b"t=0 0\r\nm=audio 30000 RTP/AVP 0 101\r\na=sendrecv\r\n"
)
BYE = _crlf(
    """
BYE sip:+8613800138000@203.0.113.10:5060 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.20:5060;rport;branch=z9hG4bKPj77c2b1e0-1b8e-4c0a-9d3a-0c1a2b3c4d5e
From: "Li Na" <sip:1001@198.51.100.20>;tag=5c2a9a0e-7d4f-4c1b-8f0e-2b6f0a9c1d33
To: <sip:+8613800138000@203.0.113.10>;tag=as58f4201b
Call-ID: 8f2c1a6e-3b7d-4e9f-a1c2-5d6e7f8a9b0c
CSeq: 16044 BYE
Route: <sip:203.0.113.10;lr>
Reason: Q.850;cause=16;text="Normal Clearing"
Max-Forwards: 70
User-Agent: Asterisk PBX 18.20.0
Content-Length:  0
"""
)
ACK = _crlf(
    """
ACK sip:+8613800138000@203.0.113.10:5060 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.20:5060;rport;branch=z9hG4bKPj0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d
From: "Li Na" <sip:1001@198.51.100.20>;tag=5c2a9a0e-7d4f-4c1b-8f0e-2b6f0a9c1d33
To: <sip:+8613800138000@203.0.113.10>;tag=as58f4201b
Call-ID: 8f2c1a6e-3b7d-4e9f-a1c2-5d6e7f8a9b0c
CSeq: 16043 ACK
Route: <sip:203.0.113.10;lr>
Max-Forwards: 70
User-Agent: Asterisk PBX 18.20.0
Content-Length:  0
"""
)
# sipmessage does not expand compact forms in its properties' values and needs CRLFCRLF;
# these captures use long forms except OPTIONS (compact), which both handle.
MESSAGES: dict[str, bytes] = {
    "INVITE+SDP": (DATA / "invite_asterisk.sip").read_bytes(),
    "200 OK": OK_200,
    "REGISTER": (DATA / "register_baresip.sip").read_bytes(),
    "BYE": BYE,
    "ACK": ACK,
    "OPTIONS": (DATA / "options_sipp.sip").read_bytes(),
}


def hotline_work(data: bytes) -> tuple[object, ...]:
    m = SipMessage.parse(data)
    return (m.vias[0].branch, m.cseq, m.call_id, m.from_.tag, m.to.tag)


def sipmessage_work(data: bytes) -> tuple[object, ...]:
    import sipmessage

    m = sipmessage.Message.parse(data)
    cseq = m.cseq
    return (
        m.via[0].parameters.get("branch"),
        (cseq.sequence, cseq.method),
        m.call_id,
        m.from_address.parameters.get("tag"),
        m.to_address.parameters.get("tag"),
    )


def _batch(fn: Callable[[bytes], object], data: bytes, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn(data)
    return n / (time.perf_counter() - t0)


def rates(
    fns: list[Callable[[bytes], object]], data: bytes, seconds: float, rounds: int = 7
) -> list[float]:
    """Best messages/second of each function, rounds interleaved so that load from other
    processes on a shared machine hits every contender alike."""
    sizes = []
    for fn in fns:  # calibrate each batch to about seconds / rounds
        n = 1
        while (dt := n / _batch(fn, data, n)) < 0.01:
            n *= 2
        sizes.append(max(1, int(n * seconds / rounds / dt)))
    best = [0.0] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            best[i] = max(best[i], _batch(fn, data, sizes[i]))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="time per message and parser")
    ap.add_argument("--profile", action="store_true", help="cProfile hotline on the set")
    args = ap.parse_args()

    try:
        import sipmessage
    except ImportError:
        sipmessage = None  # type: ignore[assignment]

    # Both parsers must agree on what they extract before we time them.
    for name, data in MESSAGES.items():
        ours = hotline_work(data)
        if sipmessage is not None:
            theirs = sipmessage_work(data)
            assert ours[0] == theirs[0] and ours[2:] == theirs[2:], (name, ours, theirs)
            assert ours[1] == theirs[1], (name, ours[1], theirs[1])

    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(20000):
            for data in MESSAGES.values():
                hotline_work(data)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        return

    version = getattr(sipmessage, "__version__", "-") if sipmessage else "not installed"
    print(f"python {sys.version.split()[0]}, sipmessage {version}")
    print(f"{'message':<12}{'bytes':>7}{'hotline msg/s':>16}{'sipmessage msg/s':>19}{'ratio':>8}")
    tot_ours = tot_theirs = 0.0
    for name, data in MESSAGES.items():
        if sipmessage is not None:
            r_ours, r_theirs = rates([hotline_work, sipmessage_work], data, args.seconds)
        else:
            (r_ours,), r_theirs = rates([hotline_work], data, args.seconds), float("nan")
        tot_ours += 1 / r_ours
        tot_theirs += 1 / r_theirs
        ratio = r_ours / r_theirs
        print(f"{name:<12}{len(data):>7}{r_ours:>16,.0f}{r_theirs:>19,.0f}{ratio:>7.2f}x")
    n = len(MESSAGES)
    mix_ours, mix_theirs = n / tot_ours, n / tot_theirs
    print(f"{'mix':<12}{'':>7}{mix_ours:>16,.0f}{mix_theirs:>19,.0f}{mix_ours / mix_theirs:>7.2f}x")


if __name__ == "__main__":
    main()
