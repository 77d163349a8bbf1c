"""Audio file loading (PyAV, resampled once to 8 kHz mono) and WAV writing."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import wave

import av
import numpy as np
import pytest

from cext.tones import dtmf_string
from media.audiofile import load_audio_8k, write_wav
from media.dtmf_file import digits_in_file, digits_with_times


def _dtmf(seq: str) -> np.ndarray:
    gen = dtmf_string(seq, on=0.08, off=0.08, level=-10)
    out = []
    while True:
        buf = np.zeros(160, np.int16)
        done = gen.fill(buf)
        out.append(buf)
        if done:
            break
    return np.concatenate(out)


def test_wav_round_trip_at_8k(tmp_path) -> None:  # type: ignore[no-untyped-def]
    x = np.random.default_rng(1).integers(-32768, 32768, 8000).astype(np.int16)
    path = str(tmp_path / "a.wav")
    write_wav(path, x)
    with wave.open(path) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == \
            (1, 2, 8000, 8000)
    np.testing.assert_array_equal(load_audio_8k(path), x)


def test_stereo_44k_is_downmixed_and_resampled(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rate = 44100
    t = np.arange(rate) / rate
    left = (8000 * np.sin(2 * math.pi * 1000 * t)).astype(np.int16)
    right = left.copy()
    path = str(tmp_path / "s.wav")
    write_wav(path, np.stack([left, right], axis=1), rate=rate, channels=2)
    y = load_audio_8k(path)
    assert y.dtype == np.int16 and y.ndim == 1
    assert abs(len(y) - 8000) <= 64
    mid = y[1000:7000].astype(np.float64)
    spec = np.abs(np.fft.rfft(mid))
    assert np.fft.rfftfreq(len(mid), 1 / 8000)[np.argmax(spec)] == pytest.approx(1000, abs=2)
    # level preserved within 1 dB (downmix of two equal channels keeps the amplitude)
    rms = np.sqrt(np.mean(mid**2))
    assert 20 * math.log10(rms / (8000 / math.sqrt(2))) == pytest.approx(0, abs=1.0)


def test_compressed_formats_and_dtmf_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    seq = "95598#"
    x = _dtmf(seq)
    # Encode with PyAV itself (FLAC at 16 kHz) and, if sox is there, Ogg Vorbis.
    path = str(tmp_path / "d.flac")
    with av.open(path, "w") as out:
        stream = out.add_stream("flac", rate=16000)
        stream.layout = "mono"
        up = np.repeat(x, 2)  # crude 2x upsampling: DTMF stays in band
        frame = av.AudioFrame.from_ndarray(up.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    assert digits_in_file(path) == seq
    wav = str(tmp_path / "d.wav")
    write_wav(wav, x)
    found = digits_with_times(wav)
    assert "".join(d.digit for d in found) == seq
    assert all(abs(d.duration - 640) <= 102 for d in found)
    if shutil.which("sox"):
        ogg = str(tmp_path / "d.ogg")
        subprocess.run(["sox", wav, "-r", "22050", ogg], check=True, capture_output=True)
        assert digits_in_file(ogg) == seq


def test_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    missing = str(tmp_path / "nope.wav")
    with pytest.raises(FileNotFoundError, match=r"^audio file not found: .*nope.wav$"):
        load_audio_8k(missing)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(ValueError, match=r"^cannot (open|decode) audio file "):
        load_audio_8k(str(bad))
    with pytest.raises(ValueError, match=r"^samples must be int16, got float64$"):
        write_wav(str(tmp_path / "x.wav"), np.zeros(4))
    with pytest.raises(ValueError, match=r"^5 samples is not a multiple of 2 channels$"):
        write_wav(str(tmp_path / "x.wav"), np.zeros(5, np.int16), channels=2)
    assert not os.path.exists(str(tmp_path / "x.wav"))
