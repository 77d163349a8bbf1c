"""G.711 kernels against the numpy twin, pinned ITU-T vectors and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import reference_g711 as ref
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cext import _g711, g711

ALL_CODES = np.arange(256, dtype=np.uint8)
ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)


def test_pcmu_silence_decodes_to_zeros() -> None:
    assert not g711.decode(b"\xff" * 160, "pcmu").any()
    assert g711.decode(b"\x7f", "pcmu")[0] == 0  # negative zero


def test_alaw_zero() -> None:
    assert g711.encode(np.zeros(4, np.int16), "pcma") == b"\xd5" * 4
    assert g711.decode(b"\xd5\x55", "pcma").tolist() == [8, -8]
    assert g711.encode(np.zeros(3, np.int16), "PCMU") == b"\xff" * 3


def test_pinned_extremes() -> None:
    # G.711 Table 2: µ-law code 0x80 is +8031 (x4 = 32124) and 0x00 is -32124.
    assert g711.decode(b"\x80\x00", "pcmu").tolist() == [32124, -32124]
    # G.711 Table 1: A-law 0xAA is +4032 (x8 = 32256) and 0x2A is -32256.
    assert g711.decode(b"\xaa\x2a", "pcma").tolist() == [32256, -32256]
    assert g711.encode(np.array([32767, -32768], np.int16), "pcmu") == b"\x80\x00"
    assert g711.encode(np.array([32767, -32768], np.int16), "pcma") == b"\xaa\x2a"


@pytest.mark.parametrize("codec", ["pcmu", "pcma"])
def test_full_decode_table(codec: str) -> None:
    want = ref.ulaw_decode(ALL_CODES) if codec == "pcmu" else ref.alaw_decode(ALL_CODES)
    got = g711.decode(ALL_CODES.tobytes(), codec)
    np.testing.assert_array_equal(got, want)
    # the decode table is odd-symmetric and strictly monotonic per sign
    assert len(set(got.tolist())) == (255 if codec == "pcmu" else 256)


@pytest.mark.parametrize("codec", ["pcmu", "pcma"])
def test_encode_all_int16(codec: str) -> None:
    want = ref.ulaw_encode(ALL_INT16) if codec == "pcmu" else ref.alaw_encode(ALL_INT16)
    got = np.empty(65536, np.uint8)
    fn = _g711.ulaw_encode if codec == "pcmu" else _g711.alaw_encode
    assert fn(ALL_INT16, got) == 65536
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("codec", ["pcmu", "pcma"])
def test_decode_encode_is_identity_on_codes(codec: str) -> None:
    pcm = g711.decode(ALL_CODES.tobytes(), codec)
    back = np.frombuffer(g711.encode(pcm, codec), np.uint8)
    if codec == "pcmu":
        # 0x7F (-0) re-encodes as 0xFF (+0); every other code is a fixed point.
        expect = ALL_CODES.copy()
        expect[0x7F] = 0xFF
        np.testing.assert_array_equal(back, expect)
    else:
        np.testing.assert_array_equal(back, ALL_CODES)


def test_transcode_tables() -> None:
    u2a = np.empty(256, np.uint8)
    a2u = np.empty(256, np.uint8)
    _g711.ulaw_to_alaw(ALL_CODES, u2a)
    _g711.alaw_to_ulaw(ALL_CODES, a2u)
    np.testing.assert_array_equal(u2a, ref.alaw_encode(ref.ulaw_decode(ALL_CODES)))
    np.testing.assert_array_equal(a2u, ref.ulaw_encode(ref.alaw_decode(ALL_CODES)))
    assert u2a[0xFF] == 0xD5 and a2u[0xD5] == 0xFE  # A-law "zero" is +8
    assert g711.transcode(b"\x80\xff", "pcmu", "pcma") == b"\xaa\xd5"
    assert g711.transcode(b"\x01", "pcma", "pcma") == b"\x01"


@settings(max_examples=60, deadline=None)
@given(arrays(np.int16, st.integers(0, 400)))
def test_roundtrip_random(x: np.ndarray) -> None:
    for codec, enc, dec in (
        ("pcmu", ref.ulaw_encode, ref.ulaw_decode),
        ("pcma", ref.alaw_encode, ref.alaw_decode),
    ):
        payload = g711.encode(x, codec)
        assert payload == enc(x).tobytes()
        np.testing.assert_array_equal(g711.decode(payload, codec), dec(enc(x)))


def test_kernels_write_only_n_and_accept_bigger_dst() -> None:
    dst = np.full(10, 7, np.int16)
    assert _g711.ulaw_decode(np.array([0xFF, 0xFF], np.uint8), dst) == 2
    assert dst.tolist() == [0, 0] + [7] * 8
    assert _g711.alaw_decode(np.zeros(0, np.uint8), dst) == 0


def test_bad_input() -> None:
    with pytest.raises(
        ValueError, match="^G.711 destination holds 3 samples but the source has 4$"
    ):
        _g711.ulaw_decode(np.zeros(4, np.uint8), np.zeros(3, np.int16))
    with pytest.raises(ValueError, match="Buffer dtype mismatch"):
        _g711.ulaw_encode(np.zeros(4, np.int32), np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="^unknown G.711 codec 'g729', expected 'pcmu' or 'pcma'$"):
        g711.decode(b"", "g729")
    with pytest.raises(ValueError, match="^G.711 encode samples are outside the int16 range$"):
        g711.encode(np.array([40000]), "pcmu")
    with pytest.raises(ValueError, match="^G.711 encode needs integer samples, got dtype float64$"):
        g711.encode(np.array([0.5]), "pcmu")
    with pytest.raises(ValueError, match="^G.711 encode needs a 1-D array, got 2 dimensions$"):
        g711.encode(np.zeros((2, 2), np.int16), "pcma")
    with pytest.raises(ValueError, match="^payload type 9 is not G.711"):
        g711.codec_for_payload_type(9)
    assert g711.codec_for_payload_type(8) == "pcma"
    # non-contiguous input is rejected by the kernel, accepted (copied) by the façade
    strided = np.arange(20, dtype=np.int16)[::2]
    with pytest.raises(ValueError, match="contiguous"):
        _g711.ulaw_encode(strided, np.zeros(10, np.uint8))
    assert g711.encode(strided, "pcmu") == g711.encode(strided.copy(), "pcmu")
