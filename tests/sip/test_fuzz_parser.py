"""Hypothesis fuzzing of the SIP parser: only ProtocolError subclasses may escape.

Seeds are the RFC 4475 corpus and the captures under tests/data/; mutations are byte
flips, insertions, deletions, truncation, header-line duplication and splicing in random
bytes. Every lazily parsed property is read too, because the stack reads them on every
message. A bounded number of examples keeps this fast; fuzz/sip/ holds the seeds for a
long atheris run.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sip.exceptions import ProtocolError
from sip.message import SipMessage, SipRequest
from sip.transport_stream import SipStreamFramer

DATA = Path(__file__).resolve().parents[1] / "data"
SEEDS = sorted(p.read_bytes() for p in [*DATA.glob("*.sip"), *(DATA / "rfc4475").glob("*.sip")])
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=False,
)
INTERESTING = [b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b";", b",", b'"', b"\\", b"<", b">",
               b"@", b"%", b"\x00", b"\xff", b"[", b"]", b"=", b"?", b"/", b"0", b"9" * 12,
               b"\xc2\xb2", b"\xd9\xa1", b"Content-Length: 99999\r\n", b"l:-1\r\n",
               b"SIP/2.0", b"Via: SIP/2.0/UDP [::1\r\n", b"\r\n\r\n"]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup", "random"]))
        n = len(data)
        pos = draw(st.integers(0, max(0, n - 1)))
        if op == "flip" and n:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(INTERESTING) | st.binary(min_size=1, max_size=8))
        elif op == "delete" and n:
            del data[pos : pos + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[pos:]
        elif op == "dup":
            lines = bytes(data).split(b"\r\n")
            if len(lines) > 2:
                i = draw(st.integers(1, len(lines) - 2))
                j = draw(st.integers(1, len(lines) - 1))
                lines.insert(j, lines[i])
                data = bytearray(b"\r\n".join(lines))
        elif op == "random":
            data[pos : pos + draw(st.integers(0, 8))] = draw(st.binary(max_size=32))
    return bytes(data)


def exercise(data: bytes, *, stream: bool = False) -> SipMessage | None:
    """Parse and read every lazy property; return the message if it was fully valid."""
    try:
        m = SipMessage.parse(data, stream=stream)
    except ProtocolError:
        return None
    ok = True
    for name in ("vias", "cseq", "from_", "to", "contacts", "call_id", "branch", "from_tag",
                 "to_tag", "max_forwards", "expires", "date", "content_type"):  # fmt: skip
        try:
            getattr(m, name)
        except ProtocolError:
            ok = False
    if isinstance(m, SipRequest):
        try:
            m.uri  # noqa: B018
        except ProtocolError:
            ok = False
    try:
        m.validate()
    except ProtocolError:
        ok = False
    # Whatever was accepted must serialise, and the normalised form must parse again.
    again = SipMessage.parse(bytes(m), stream=stream)
    assert again.cseq == m.cseq and again.call_id == m.call_id and again.body == m.body
    return m if ok else None


@FUZZ
@given(mutated())
def test_mutated_messages_raise_only_protocol_errors(data: bytes) -> None:
    exercise(data)


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_protocol_errors(data: bytes) -> None:
    exercise(data)
    exercise(data, stream=True)


@FUZZ
@given(st.lists(mutated(), min_size=1, max_size=4), st.integers(1, 97), st.integers(200, 4000))
def test_framer_survives_mutated_streams(msgs: list[bytes], chunk: int, cap: int) -> None:
    stream = b"\r\n\r\n".join(msgs)
    f = SipStreamFramer(max_message_size=cap)
    for i in range(0, len(stream), chunk):
        if f.failed:
            break
        for item in f.feed(stream[i : i + chunk]):
            if isinstance(item, bytes):
                exercise(item, stream=True)
        assert f.buffered <= cap


def test_seeds_are_loaded() -> None:
    assert len(SEEDS) >= 60
    valid = [s for s in SEEDS if exercise(s) is not None]
    assert len(valid) >= 30


def test_atheris_harness_runs_on_the_seed_corpus() -> None:
    import importlib.util
    import sys

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("fuzz_parser", root / "fuzz/sip/fuzz_parser.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert "atheris" not in sys.modules  # imported only under __main__
    seeds = sorted((root / "fuzz/sip/corpus").glob("*.sip"))
    assert len(seeds) >= 30
    for p in seeds:
        assert SipMessage.parse(p.read_bytes()) is not None  # seeds are valid messages
        mod.one_input(p.read_bytes())
