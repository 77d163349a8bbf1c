"""Prompt cache (PyAV conversion, espeak-ng TTS) and VAD on real audio."""

import os

import numpy as np

from media.audiofile import write_wav
from media.prompts import PromptCache, tts_voice
from media.vad import SPEECH_START, SPEECH_STOP, SpeechDetector


def test_file_prompt_cached_by_mtime(tmp_path):
    src = tmp_path / "p.wav"
    t = np.arange(16000) / 16000
    write_wav(str(src), (8000 * np.sin(2 * np.pi * 500 * t)).astype(np.int16), rate=16000)
    cache = PromptCache(str(tmp_path))
    a = cache.load(str(src))
    assert abs(len(a) - 8000) < 100 and not a.flags.writeable
    assert PromptCache(str(tmp_path)).load(str(src)).tolist() == a.tolist()
    assert cache.conversions == 1
    os.utime(src, ns=(1, 1))
    c2 = PromptCache(str(tmp_path))
    c2.load(str(src))
    assert c2.conversions == 1  # new mtime: converted again


def test_tts_voices_and_vad(tmp_path):
    assert tts_voice("您好，欢迎") == "cmn" and tts_voice("hello") == "en"
    cache = PromptCache(str(tmp_path))
    speech = cache.load("tts:Hello, thank you for calling the hotline.")
    zh = cache.load("tts:您好，欢迎致电客服热线")
    assert len(speech) > 8000 and len(zh) > 8000 and cache.conversions == 2
    cache.load("tts:Hello, thank you for calling the hotline.")
    assert cache.conversions == 2
    det = SpeechDetector()
    sig = np.concatenate([np.zeros(8000, np.int16), speech, np.zeros(8000, np.int16)])
    evs = [(i, det.process(sig[i:i + 160])) for i in range(0, len(sig) - 159, 160)]
    starts = [i for i, e in evs if e == SPEECH_START]
    stops = [i for i, e in evs if e == SPEECH_STOP]
    assert starts and stops and 6000 <= starts[0] <= 12000 and stops[-1] > starts[0]


def test_relative_names_are_under_the_data_dirs_prompts(tmp_path):
    (tmp_path / "prompts" / "menu").mkdir(parents=True)
    samples = np.arange(-4000, 4000, 7, dtype=np.int16)
    write_wav(str(tmp_path / "prompts" / "menu" / "main.wav"), samples)
    cache = PromptCache(str(tmp_path))
    assert cache.load("menu/main.wav").tolist() == samples.tolist()
    try:
        cache.load("menu/missing.wav")
    except FileNotFoundError as exc:
        assert "menu/missing.wav" in str(exc)
    else:
        raise AssertionError("a missing prompt must raise FileNotFoundError")
