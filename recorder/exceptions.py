"""The one error type of the recorder layer.

Recording files come from disk, after crashes, and are handled by background jobs
(recovery at start, transcoding, retention). The control process catches a single
:class:`RecorderError`, logs it and carries on with the next file, so every message names
the file and says what is wrong with it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["RecorderError"]


class RecorderError(Exception):
    """A recording file cannot be read, repaired or transcoded (the message says why)."""

    def __init__(self, path: Path | str, message: str) -> None:
        #: The file concerned.
        self.path = Path(path)
        #: What is wrong with it.
        self.message = message
        super().__init__(f"{path}: {message}")

    def __reduce__(self) -> tuple[type[RecorderError], tuple[str, str]]:
        # Transcoding jobs run in a process pool: the error must survive pickling.
        return (type(self), (str(self.path), self.message))
