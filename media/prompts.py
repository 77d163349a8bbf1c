"""Prompt sources: audio files and ``tts:TEXT`` rendered once to 8 kHz mono int16
(the cache), and ``tone:`` sources built as tone generators (:func:`tone_prompt`).

* A file (any format PyAV reads) is converted with :func:`media.audiofile.load_audio_8k`
  and cached as raw int16 under ``data_dir/prompts-cache``, keyed by the file's absolute
  path, size and mtime (editing the file invalidates the entry).
* ``tts:TEXT`` is rendered with espeak-ng (Mandarin voice ``cmn`` when the text contains
  CJK characters, English ``en`` otherwise), cached by a hash of text + voice.

Loaded prompts are also kept in memory (an LRU of :data:`MEMORY_ITEMS` entries), so a
prompt played to a thousand callers is one shared read-only array.

Tones are not cached: a :class:`cext.tones.ToneGenerator` is a few segments that the
tick kernel synthesises 160 samples at a time (phase-accumulator oscillators in C), so
there is nothing to render; each play gets its own generator (its own phase).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import subprocess
import tempfile
import threading
from collections import OrderedDict

import numpy as np
import numpy.typing as npt

from cext.tones import ToneGenerator, beep, cadence_seconds, call_progress, dtmf_string

from .audiofile import load_audio_8k

__all__ = ["FINITE_TONE_SECONDS", "MEMORY_ITEMS", "PromptCache", "tone_prompt", "tts_voice"]

#: A call-progress tone played as a prompt (``loop`` false) lasts this long at least,
#: in whole cadence cycles (busy in China: 5 x 0.7 s), unless the source gives a count.
FINITE_TONE_SECONDS = 3.0
_PROGRESS = ("ringback", "busy", "congestion", "reorder")

MEMORY_ITEMS = 256
ESPEAK = "espeak-ng"
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")


def tts_voice(text: str) -> str:
    """espeak-ng voice for a text: ``cmn`` if it has CJK characters, else ``en``."""
    return "cmn" if _CJK.search(text) else "en"


def tone_prompt(spec: str, loop: bool) -> ToneGenerator:
    """The generator for a ``tone:`` source (``spec`` is what follows ``tone:``).

    * ``beep``: 1000 Hz for 400 ms at -10 dBm0, once (``loop``: every second).
    * ``ringback``, ``busy``, ``congestion``, ``reorder`` with an optional country
      (``cn`` default, ``us``) and cycle count: ``busy``, ``busy:us``, ``busy:us:2``,
      ``busy:2``. ``loop`` plays the cadence until stopped; otherwise it is a finite
      prompt of the given number of cycles, by default the fewest whole cycles that
      last :data:`FINITE_TONE_SECONDS`.
    * ``dtmf:DIGITS``: in-band DTMF (``,`` = 0.5 s pause), once.

    :raises ValueError: naming the source for an unknown tone, country or count.
    """
    parts = spec.split(":")
    name = parts[0].lower()
    try:
        if name == "dtmf" and len(parts) == 2:
            return dtmf_string(parts[1])
        if name == "beep" and len(parts) == 1:
            return beep(gap=0.6 if loop else None)
        if name in _PROGRESS and len(parts) <= 3:
            country, cycles = "cn", None
            rest = parts[1:]
            if rest and not rest[0].isdigit():
                country = rest.pop(0)
            if rest:
                if not rest[0].isdigit() or int(rest[0]) < 1 or len(rest) > 1:
                    raise ValueError(f"cycle count {':'.join(rest)!r} is not a number >= 1")
                cycles = int(rest[0])
            if loop:
                return call_progress(name, country)
            if cycles is None:
                cycles = max(1, math.ceil(FINITE_TONE_SECONDS / cadence_seconds(name, country)
                                          - 1e-9))
            return call_progress(name, country, cycles)
    except ValueError as exc:
        raise ValueError(f"tone:{spec}: {exc}") from None
    raise ValueError(f"tone:{spec}: unknown tone, expected beep, dtmf:DIGITS or "
                     f"{'|'.join(_PROGRESS)}[:cn|us][:CYCLES]")


class PromptCache:
    """Load prompts by source string.

    :param data_dir: the site's data directory; the cache lives in ``prompts-cache``.
    """

    def __init__(self, data_dir: str) -> None:
        self.prompts_dir = os.path.join(data_dir, "prompts")
        """Where relative prompt names are looked up first (``DATA_DIR/prompts``)."""
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

        :param source: a file path or ``tts:TEXT``; a relative path names a file under
            ``DATA_DIR/prompts`` (else it is taken relative to the working directory).
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
            if not os.path.isabs(source):
                under = os.path.join(self.prompts_dir, source)
                if os.path.isfile(under):
                    source = under
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
