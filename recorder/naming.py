"""Recording ids and file names: one scheme, so a file found on disk names its call.

Why this exists: the index is the source of truth, but after a crash (or a restore from
backup) there can be WAV files the index does not know. Naming each file after its
recording id and its call lets recovery put such a file back in the index with the
right start time and call.

The scheme, relative to ``DATA_DIR/recordings``::

    YYYY/MM/DD/<recording id>_<call id, percent-encoded>.<wav|opus|mp3>
    2024/05/01/20240501T080000Z-3f9a1c2b_a84b4c76e66710%2F1@pc33.example.com.wav

* The recording id is the UTC start time to the second plus 8 random hex digits:
  unique, sortable by time, no ``_`` in it.
* The call id is the SIP Call-ID, percent-encoded (``urllib.parse.quote`` keeping ``@``)
  so ``/`` and other awkward bytes cannot escape the directory. Everything after the
  first ``_`` is the call id, so a Call-ID holding ``_`` round-trips.
* A Call-ID whose encoding is longer than :data:`MAX_CALL_ID_CHARS` is left out of the
  name (``<recording id>.wav``): a file name must stay under 255 bytes, and a cut
  Call-ID would be a wrong one.
* The date folders are the recording's UTC start date, so retention and backups can
  work folder by folder.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote

__all__ = [
    "EXTENSIONS",
    "MAX_CALL_ID_CHARS",
    "RECORDINGS_DIR",
    "ParsedName",
    "new_recording_id",
    "parse_name",
    "recording_path",
    "recordings_dir",
]

#: Folder of the recordings under the data directory.
RECORDINGS_DIR = "recordings"
#: File extension of each recording format.
EXTENSIONS = {"wav": ".wav", "opus": ".opus", "mp3": ".mp3"}
MAX_CALL_ID_CHARS = 160
_ID_RE = re.compile(r"(\d{8}T\d{6}Z)-([0-9a-f]{8})")
_TIME_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True, slots=True)
class ParsedName:
    """What a file name following the scheme says."""

    recording_id: str
    #: UTC, to the second.
    start_time: datetime
    #: The SIP Call-ID, or ``""`` when it was too long to be part of the name.
    call_id: str


def recordings_dir(data_dir: Path | str) -> Path:
    """``DATA_DIR/recordings``: the folder recording paths in the index are relative to."""
    return Path(data_dir) / RECORDINGS_DIR


def new_recording_id(start_time: datetime) -> str:
    """A new unique recording id for a recording starting at ``start_time`` (aware).

    :raises ValueError: for a naive datetime.
    """
    if start_time.tzinfo is None or start_time.utcoffset() is None:
        raise ValueError(f"datetime must be timezone-aware, got {start_time!r}")
    stamp = start_time.astimezone(UTC).strftime(_TIME_FORMAT)
    return f"{stamp}-{secrets.token_hex(4)}"


def recording_path(recording_id: str, call_id: str, fmt: str = "wav") -> PurePosixPath:
    """The path of a recording relative to :func:`recordings_dir` (see the module doc).

    :raises ValueError: for an id not made by :func:`new_recording_id` or an unknown format.
    """
    match = _ID_RE.fullmatch(recording_id)
    if match is None:
        raise ValueError(f"not a recording id: {recording_id!r}")
    if fmt not in EXTENSIONS:
        raise ValueError(f"unknown recording format {fmt!r} (expected wav, opus or mp3)")
    stamp = match.group(1)
    encoded = quote(call_id, safe="@")
    stem = recording_id
    if call_id and len(encoded) <= MAX_CALL_ID_CHARS:
        stem += "_" + encoded
    return PurePosixPath(stamp[:4], stamp[4:6], stamp[6:8], stem + EXTENSIONS[fmt])


def parse_name(name: str) -> ParsedName | None:
    """Read a file name (or path) written by :func:`recording_path`; None if it is not one."""
    stem = PurePosixPath(name).name
    for ext in EXTENSIONS.values():
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
            break
    else:
        return None
    rec_id, _, encoded = stem.partition("_")
    match = _ID_RE.fullmatch(rec_id)
    if match is None:
        return None
    try:
        start = datetime.strptime(match.group(1), _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:  # looks like an id, but e.g. month 13
        return None
    return ParsedName(recording_id=rec_id, start_time=start, call_id=unquote(encoded))
