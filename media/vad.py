"""Voice activity detection per endpoint: webrtcvad with onset/hangover smoothing.

The media worker calls :meth:`SpeechDetector.process` once per 20 ms tick per endpoint
that has VAD enabled (Python per tick, allowed by the house rules); it returns
``SPEECH_START``/``SPEECH_STOP`` transitions. Onset needs ``onset_frames`` speech frames
in a row (default 3 = 60 ms); the end needs ``hangover_frames`` non-speech frames in a
row (default 15 = 300 ms), so a pause between words does not end the burst.

The upstream ``webrtcvad`` wrapper imports ``pkg_resources`` (absent from modern
setuptools), so the C module ``_webrtcvad`` it wraps is used directly.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

try:
    import _webrtcvad
except ImportError:  # pragma: no cover - only with a different webrtcvad build
    _webrtcvad = None

__all__ = ["NONE", "SPEECH_START", "SPEECH_STOP", "SpeechDetector"]

NONE = 0
SPEECH_START = 1
SPEECH_STOP = 2
RATE = 8000
FRAME = 160


class SpeechDetector:
    """One endpoint's VAD state.

    :param mode: webrtcvad aggressiveness 0 (least) .. 3 (most).
    :param onset_frames: consecutive speech frames that start speech.
    :param hangover_frames: consecutive non-speech frames that end it.
    """

    def __init__(self, mode: int = 2, onset_frames: int = 3, hangover_frames: int = 15) -> None:
        if not 0 <= mode <= 3:
            raise ValueError(f"VAD mode must be 0..3, got {mode}")
        if onset_frames < 1 or hangover_frames < 1:
            raise ValueError("onset_frames and hangover_frames must be >= 1")
        if _webrtcvad is None:
            raise RuntimeError("webrtcvad is not installed")
        self._vad = _webrtcvad.create()
        _webrtcvad.init(self._vad)
        _webrtcvad.set_mode(self._vad, mode)
        self._onset = onset_frames
        self._hang = hangover_frames
        self.speaking = False
        """True between a start and a stop."""
        self._run = 0
        self.burst_frames = 0
        """Frames since the current burst started (its length at stop)."""

    def is_speech(self, frame: npt.NDArray[np.int16]) -> bool:
        """Raw webrtcvad decision for one 160-sample frame."""
        return bool(_webrtcvad.process(self._vad, RATE, frame.tobytes(), FRAME))

    def process(self, frame: npt.NDArray[np.int16]) -> int:
        """Feed one 20 ms frame (160 int16 samples); return NONE, SPEECH_START or SPEECH_STOP."""
        speech = bool(_webrtcvad.process(self._vad, RATE, frame.tobytes(), FRAME))
        if self.speaking:
            self.burst_frames += 1
            self._run = 0 if speech else self._run + 1
            if self._run >= self._hang:
                self.speaking = False
                self._run = 0
                return SPEECH_STOP
            return NONE
        self._run = self._run + 1 if speech else 0
        if self._run >= self._onset:
            self.speaking = True
            self.burst_frames = self._run
            self._run = 0
            return SPEECH_START
        return NONE
