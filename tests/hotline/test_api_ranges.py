"""hotline.api.ranges: RFC 9110 Range and If-Range decisions, without a server."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest

from hotline.api.ranges import (
    ByteRange,
    RangeNotSatisfiable,
    choose_range,
    file_etag,
    file_last_modified,
    if_range_holds,
    parse_range,
)

SIZE = 1000


@pytest.mark.parametrize("value, expected", [
    ("bytes=0-0", (0, 0)),
    ("bytes=0-499", (0, 499)),
    ("bytes=500-999", (500, 999)),
    ("bytes=500-", (500, 999)),
    ("bytes=999-", (999, 999)),
    ("bytes=900-5000", (900, 999)),  # last past the end: the end
    ("bytes=-1", (999, 999)),
    ("bytes=-500", (500, 999)),
    ("bytes=-1000", (0, 999)),
    ("bytes=-5000", (0, 999)),  # suffix longer than the file: all of it
    ("Bytes=1-2", (1, 2)),  # the unit is case-insensitive
    (" bytes=1-2 ", (1, 2)),
])  # fmt: skip
def test_satisfiable_ranges(value: str, expected: tuple[int, int]) -> None:
    assert parse_range(value, SIZE) == ByteRange(*expected)


@pytest.mark.parametrize("value", [
    "bytes=1000-", "bytes=1000-1000", "bytes=5000-6000", "bytes=-0", "bytes=-00",
])  # fmt: skip
def test_unsatisfiable_ranges(value: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(value, SIZE)


@pytest.mark.parametrize("value", [
    "bytes=5-1",  # last before first: invalid
    "bytes=2000-1",  # invalid, even though it also starts past the end
    "bytes=0-1,3-4",  # several ranges: we send the whole file
    "items=0-1",  # unknown unit
    "bytes=-",
    "bytes=",
    "bytes",
    "bytes=a-b",
    "bytes=1-2-3",
    "bytes=+1-2",
    "bytes=١-٢",  # non-ASCII digits are not digits here
    "",
])  # fmt: skip
def test_ranges_that_are_ignored(value: str) -> None:
    assert parse_range(value, SIZE) is None


def test_an_empty_file_has_no_range() -> None:
    assert parse_range("bytes=0-0", 0) is None
    assert parse_range("bytes=-1", 0) is None


def test_header_is_absolute() -> None:
    assert ByteRange(10, 19).header == "bytes=10-19"


@pytest.fixture
def st(tmp_path: Path) -> os.stat_result:
    path = tmp_path / "a.wav"
    path.write_bytes(b"x" * SIZE)
    os.utime(path, ns=(1_714_550_400_250_000_000, 1_714_550_400_250_000_000))
    return path.stat()


def test_validators_match_what_aiohttp_sends(st: os.stat_result) -> None:
    assert file_etag(st) == f'"{st.st_mtime_ns:x}-{SIZE:x}"'
    assert file_last_modified(st) == 1_714_550_401  # rounded up, as aiohttp does


def test_if_range(st: os.stat_result) -> None:
    modified = format_datetime(datetime.fromtimestamp(file_last_modified(st), UTC),
                               usegmt=True)
    assert if_range_holds(None, st)
    assert if_range_holds(file_etag(st), st)
    assert if_range_holds(modified, st)
    assert not if_range_holds('"other"', st)
    assert not if_range_holds("W/" + file_etag(st), st)  # weak tags never match
    assert not if_range_holds("Wed, 01 May 2024 08:00:00 GMT", st)  # a second off
    assert not if_range_holds("not a date", st)


def test_choose_range(st: os.stat_result) -> None:
    assert choose_range(None, None, st) is None
    assert choose_range("bytes=0-9", None, st) == ByteRange(0, 9)
    assert choose_range("bytes=0-9", file_etag(st), st) == ByteRange(0, 9)
    assert choose_range("bytes=0-9", '"stale"', st) is None
    assert choose_range("bytes=5000-", '"stale"', st) is None  # stale: whole file, no 416
    with pytest.raises(RangeNotSatisfiable):
        choose_range("bytes=5000-", file_etag(st), st)
