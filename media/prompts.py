"""Prompt cache: audio files and ``tts:TEXT`` rendered once to 8 kHz mono int16.

* A file (any format PyAV reads) is converted with :func:`media.audiofile.load_audio_8k`
  and cached as raw int16 under ``data_dir/prompts-cache``, keyed by the file's absolute
  path, size and mtime (editing the file invalidates the entry).
* ``tts:TEXT`` is rendered with espeak-ng (Mandarin voice ``cmn`` when the text contains
  CJK characters, English ``en`` otherwise), cached by a hash of text + voice.

Loaded prompts are also kept in memory (an LRU of :data:`MEMORY_ITEMS` entries), so a
prompt played to a thousand callers is one shared read-only array.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
import threading
from collections import OrderedDict

import numpy as np
import numpy.typing as npt

from .audiofile import load_audio_8k

__all__ = ["MEMORY_ITEMS", "PromptCache", "tts_voice"]

MEMORY_ITEMS = 256
ESPEAK = "espeak-ng"
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")


def tts_voice(text: str) -> str:
    """espeak-ng voice for a text: ``cmn`` if it has CJK characters, else ``en``."""
    return "cmn" if _CJK.search(text) else "en"


class PromptCache:
    """Load prompts by source string.

    :param data_dir: the site's data directory; the cache lives in ``prompts-cache``.
    """

    def __init__(self, data_dir: str) -> None:
        self.dir = os.path.join(data_dir, "prompts-cache")
        os.makedirs(self.dir, exist_ok=True)
        self._mem: OrderedDict[str, npt.NDArray[np.int16]] = OrderedDict()
        self._lock = threading.Lock()
        self.conversions = 0
        """Files converted or texts rendered (cache misses), for tests and metrics."""

    def _key_file(self, path: str) -> str:
        st = os.stat(path)
        raw = f"file\0{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    def load(self, source: str) -> npt.NDArray[np.int16]:
        """Return the prompt as a read-only 1-D int16 array at 8 kHz.

        :param source: a file path or ``tts:TEXT``.
        :raises FileNotFoundError: for a missing file.
        :raises ValueError: for an undecodable file, empty text or a failed TTS run.
        """
        if source.startswith("tts:"):
            text = source[4:].strip()
            if not text:
                raise ValueError("tts: text is empty")
            voice = tts_voice(text)
            key = hashlib.sha256(f"tts\0{voice}\0{text}".encode()).hexdigest()[:32]
            render = lambda out: self._render_tts(text, voice, out)  # noqa: E731
        else:
            if not os.path.isfile(source):
                raise FileNotFoundError(f"prompt file not found: {source}")
            key = self._key_file(source)
            render = lambda out: self._convert(source, out)  # noqa: E731
        with self._lock:
            hit = self._mem.get(key)
            if hit is not None:
                self._mem.move_to_end(key)
                return hit
        cached = os.path.join(self.dir, key + ".s16")
        if os.path.exists(cached):
            samples = np.fromfile(cached, dtype=np.int16)
        else:
            samples = render(cached)
            self.conversions += 1
        samples = np.ascontiguousarray(samples, dtype=np.int16)
        samples.flags.writeable = False
        with self._lock:
            self._mem[key] = samples
            while len(self._mem) > MEMORY_ITEMS:
                self._mem.popitem(last=False)
        return samples

    def _store(self, samples: npt.NDArray[np.int16], out: str) -> npt.NDArray[np.int16]:
        tmp = f"{out}.{os.getpid()}.tmp"
        samples.astype(np.int16).tofile(tmp)
        os.replace(tmp, out)  # atomic: concurrent workers never read a half file
        return samples

    def _convert(self, path: str, out: str) -> npt.NDArray[np.int16]:
        return self._store(load_audio_8k(path), out)

    def _render_tts(self, text: str, voice: str, out: str) -> npt.NDArray[np.int16]:
        with tempfile.TemporaryDirectory() as tmp:
            wav = os.path.join(tmp, "tts.wav")
            try:
                subprocess.run([ESPEAK, "-v", voice, "-w", wav, "--", text], check=True,
                               capture_output=True, timeout=60)
            except (OSError, subprocess.SubprocessError) as exc:
                raise ValueError(f"tts: espeak-ng failed: {exc}") from exc
            return self._store(load_audio_8k(wav), out)
