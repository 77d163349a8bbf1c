"""HTTP Range and If-Range decisions for recording playback (RFC 9110 section 14).

Why this exists: aiohttp's ``FileResponse`` sends files efficiently (``sendfile``) and
answers conditional GETs, but its own Range handling is looser than RFC 9110 in ways
that matter for recordings: ``bytes=-0`` gets the whole file instead of 416, an
unknown unit or several ranges get 416 instead of being ignored, ``If-Range`` with an
entity tag is not compared (a growing live WAV could be spliced from two versions), and
its 416 has no JSON body. The recordings handler therefore decides here, answers 416
itself, and hands ``FileResponse`` either one absolute ``bytes=FIRST-LAST`` range or
none.

Rules (RFC 9110 14.1.1, 14.2, 13.1.5):

* ``Range`` with a unit other than ``bytes``, a syntax error, ``last < first``, or
  more than one range is ignored: the whole file is sent with 200 (a server MAY ignore
  such headers; one player never needs several ranges of an audio file).
* ``bytes=FIRST-[LAST]`` with FIRST at or past the end, and ``bytes=-0``, are
  unsatisfiable: 416 with ``Content-Range: bytes */SIZE``.
* ``bytes=-N`` is the last N bytes (the whole file when N >= SIZE); LAST past the end
  means the end.
* ``If-Range`` holding a strong entity tag keeps the range only when it equals the
  file's current ETag; holding a date, only when it equals the file's Last-Modified to
  the second. Otherwise the whole file is sent.
* An empty file has no satisfiable range; Range is then ignored.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

__all__ = [
    "ByteRange",
    "RangeNotSatisfiable",
    "choose_range",
    "file_etag",
    "file_last_modified",
    "if_range_holds",
    "parse_range",
]

_SPEC_RE = re.compile(r"^(\d*)-(\d*)$", re.ASCII)


class RangeNotSatisfiable(Exception):
    """No byte of the requested range exists (answer 416)."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    """One range of bytes, both ends inclusive, within the file."""

    first: int
    last: int

    @property
    def header(self) -> str:
        """The normalised ``Range`` value: ``bytes=FIRST-LAST``."""
        return f"bytes={self.first}-{self.last}"


def file_etag(st: os.stat_result) -> str:
    """The strong ETag ``FileResponse`` sends for a file (quoted), for If-Range."""
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


def file_last_modified(st: os.stat_result) -> int:
    """The Last-Modified ``FileResponse`` sends for a file (whole seconds, rounded up)."""
    return math.ceil(st.st_mtime)


def parse_range(value: str, size: int) -> ByteRange | None:
    """The single byte range ``value`` asks of a ``size``-byte file, or None to send it
    whole.

    :raises RangeNotSatisfiable: when the range starts past the end or is ``-0``.
    """
    unit, sep, spec = value.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec or size <= 0:
        return None
    match = _SPEC_RE.match(spec.strip())
    if match is None or match.group(0) == "-":
        return None
    first_text, last_text = match.groups()
    if not first_text:  # suffix range: the last N bytes
        suffix = int(last_text)
        if suffix == 0:
            raise RangeNotSatisfiable
        return ByteRange(max(0, size - suffix), size - 1)
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None
    if first >= size:
        raise RangeNotSatisfiable
    last = int(last_text) if last_text else size - 1
    return ByteRange(first, min(last, size - 1))


def if_range_holds(value: str | None, st: os.stat_result) -> bool:
    """Whether an ``If-Range`` value (None: absent) lets a range be sent."""
    if value is None:
        return True
    value = value.strip()
    if value.startswith('"'):
        return value == file_etag(st)
    if value.startswith("W/"):
        return False  # weak tags never match for If-Range (RFC 9110 13.1.5)
    try:
        date = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return False
    return date.tzinfo is not None and int(date.timestamp()) == file_last_modified(st)


def choose_range(
    range_value: str | None, if_range: str | None, st: os.stat_result
) -> ByteRange | None:
    """What to send of the file ``st`` describes: one range, or None for all of it.

    :raises RangeNotSatisfiable: answer 416.
    """
    if range_value is None or not if_range_holds(if_range, st):
        return None
    return parse_range(range_value, st.st_size)
