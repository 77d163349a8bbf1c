"""recorder.transcode: Opus and MP3 outputs decode back right, and the WAV is only
deleted once a verified output is in place."""

from __future__ import annotations

import asyncio
import pickle
from datetime import UTC, datetime
from pathlib import Path

import av
import numpy as np
import pytest

from hotline.storage import Storage
from recorder import transcode as tc
from recorder.exceptions import RecorderError
from recorder.index import RecordingIndex, RecordingState
from recorder.naming import recordings_dir
from recorder.wav import header

from .helpers import RATE, decode_float, write_like_worker

TAGS = {
    "call_id": "c1@host",
    "caller": "13800138000",
    "callee": "95598",
    "queue": "billing",
    "agent": "1001",
    "start_time": "2024-05-01T08:00:00.000+00:00",
}


def left_tone(seconds: float, freq: float = 440.0) -> np.ndarray:
    """A tone in the left channel only (caller), silence on the right (agent)."""
    n = int(seconds * RATE)
    pcm = np.zeros((n, 2), np.int16)
    pcm[:, 0] = (10000 * np.sin(2 * np.pi * freq * np.arange(n) / RATE)).astype(np.int16)
    return pcm


def metadata(path: Path) -> dict[str, str]:
    with av.open(str(path)) as c:
        return {**dict(c.metadata), **dict(c.streams.audio[0].metadata)}


@pytest.mark.parametrize("fmt", ["opus", "mp3"])
def test_stereo_output_with_tags(tmp_path: Path, fmt: str) -> None:
    wav_path = tmp_path / "rec.wav"
    write_like_worker(wav_path, left_tone(2.5), finish=True)
    result = tc.transcode(wav_path, fmt, TAGS)

    assert result.path == tmp_path / f"rec.{fmt}" and result.format == fmt
    assert not wav_path.exists() and list(tmp_path.iterdir()) == [result.path]
    assert result.channels == 2 and abs(result.seconds - 2.5) <= 0.1
    assert result.size == result.path.stat().st_size < 2.5 * RATE * 4 / 6  # 6x smaller

    audio, rate = decode_float(result.path)
    assert audio.shape[0] == 2
    assert abs(audio.shape[1] / rate - 2.5) <= 0.1
    middle = audio[:, rate // 2 : -rate // 2]
    left, right = np.sqrt((middle**2).mean(axis=1))
    assert left > 0.15 and right < 0.01 * left, (left, right)  # not swapped, channels kept apart
    spectrum = np.abs(np.fft.rfft(middle[0]))
    assert abs(np.argmax(spectrum) * rate / middle.shape[1] - 440) < 5
    tags = metadata(result.path)
    assert {k: tags.get(k) for k in TAGS} == TAGS


def test_wav_format_keeps_the_file(tmp_path: Path) -> None:
    wav_path = tmp_path / "rec.wav"
    write_like_worker(wav_path, left_tone(0.4), finish=True)
    result = tc.transcode(wav_path, "wav", TAGS)
    assert result.path == wav_path and wav_path.exists() and result.seconds == 0.4


def test_failed_verification_keeps_the_wav(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wav_path = tmp_path / "rec.wav"
    write_like_worker(wav_path, left_tone(1.0), finish=True)
    before = wav_path.read_bytes()
    monkeypatch.setattr(tc, "probe", lambda path: (0.7, 2, 48000))
    with pytest.raises(RecorderError, match=r"output lasts 0\.700 s, the WAV 1\.000 s"):
        tc.transcode(wav_path, "opus")
    assert list(tmp_path.iterdir()) == [wav_path] and wav_path.read_bytes() == before


def test_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav at all")
    with pytest.raises(RecorderError, match="bad.wav: not a WAV file"):
        tc.transcode(bad, "opus")
    good = tmp_path / "good.wav"
    good.write_bytes(header(0))
    with pytest.raises(RecorderError, match="good.wav: unknown recording format 'flac'"):
        tc.transcode(good, "flac")
    err = RecorderError(good, "boom")
    copy = pickle.loads(pickle.dumps(err))  # crosses the process pool intact
    assert (copy.path, copy.message, str(copy)) == (good, "boom", str(err))


def test_live_recordings_are_not_transcoded(tmp_path: Path) -> None:
    async def main() -> None:
        with Storage.open(tmp_path) as storage:
            index = RecordingIndex(storage)
            rec = index.start("c", datetime(2024, 5, 1, tzinfo=UTC))
            async with tc.Transcoder(processes=False) as transcoder:
                with pytest.raises(
                    RecorderError, match=f"recording {rec.id} is live, not finished"
                ):
                    await transcoder.transcode_recording(index, tmp_path, rec, "opus")

    asyncio.run(main())


def test_encoders_available() -> None:
    assert set(tc.available_formats()) == {"wav", "opus", "mp3"}


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_transcoder_updates_the_index(tmp_path: Path, processes: bool) -> None:
    start = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)

    async def main() -> tuple[object, ...]:
        with Storage.open(tmp_path) as storage:
            index = RecordingIndex(storage)
            recs = []
            for i in range(2):
                rec = index.start(f"c{i}", start, caller="100", agents=["1001"])
                path = recordings_dir(tmp_path) / rec.path
                write_like_worker(path, left_tone(1.0 + i), finish=True)
                recs.append(index.finish(rec.id, start, 1.0 + i))
            async with tc.Transcoder(1, processes=processes) as transcoder:
                jobs = [
                    asyncio.create_task(transcoder.transcode_recording(index, tmp_path, r, "opus"))
                    for r in recs
                ]
                await asyncio.sleep(0)
                pending = transcoder.pending
                out = await asyncio.gather(*jobs)
                assert (
                    await transcoder.transcode_recording(index, tmp_path, out[0], "opus") == out[0]
                )
            return pending, out

    pending, out = asyncio.run(main())
    assert pending == 2
    for i, rec in enumerate(out):
        assert rec.state == RecordingState.TRANSCODED and rec.format == "opus"  # type: ignore[attr-defined]
        assert rec.path.endswith(f"_c{i}.opus")  # type: ignore[attr-defined]
        path = recordings_dir(tmp_path) / rec.path  # type: ignore[attr-defined]
        assert path.exists() and not path.with_suffix(".wav").exists()
        assert abs(rec.seconds - (1.0 + i)) <= 0.1  # type: ignore[attr-defined]
        assert metadata(path)["agent"] == "1001"
