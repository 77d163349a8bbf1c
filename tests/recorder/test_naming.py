"""recorder.naming: ids and file names that give back their call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from recorder.naming import (
    MAX_CALL_ID_CHARS,
    new_recording_id,
    parse_name,
    recording_path,
)

T0 = datetime(2024, 5, 1, 8, 0, 0, 250_000, tzinfo=UTC)


@pytest.mark.parametrize(
    "call_id",
    [
        "a84b4c76e66710@pc33.atlanta.com",
        "x/../../etc_passwd%41",
        "with space_and:colon",
        "",
        "呼叫",
    ],
)
def test_round_trip(call_id: str) -> None:
    rec_id = new_recording_id(T0)
    path = recording_path(rec_id, call_id, "wav")
    assert path.parts[:3] == ("2024", "05", "01") and len(path.parts) == 4
    parsed = parse_name(str(path))
    assert parsed is not None
    assert parsed.recording_id == rec_id and parsed.call_id == call_id
    assert parsed.start_time == T0.replace(microsecond=0)
    opus = recording_path(rec_id, call_id, "opus")
    assert opus.suffix == ".opus" and opus.with_suffix(".wav") == path


def test_ids_are_unique_utc_and_sortable() -> None:
    local = T0.astimezone(timezone(timedelta(hours=8)))
    ids = {new_recording_id(local) for _ in range(100)}
    assert len(ids) == 100 and all(i.startswith("20240501T080000Z-") for i in ids)
    assert new_recording_id(T0 + timedelta(seconds=1)) > max(ids)
    with pytest.raises(ValueError, match="timezone-aware"):
        new_recording_id(datetime(2024, 5, 1))


def test_long_call_id_is_left_out() -> None:
    rec_id = new_recording_id(T0)
    path = recording_path(rec_id, "x" * (MAX_CALL_ID_CHARS + 1))
    assert path.name == f"{rec_id}.wav"
    parsed = parse_name(path.name)
    assert parsed is not None and parsed.call_id == ""


@pytest.mark.parametrize(
    "name",
    [
        "call.wav",
        "20241301T080000Z-0011aabb_x.wav",
        "20240501T080000Z-0011aabb.flac",
        "20240501T080000Z-0011AABB.wav",
    ],
)
def test_foreign_names(name: str) -> None:
    assert parse_name(name) is None


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="not a recording id"):
        recording_path("../x", "c")
    with pytest.raises(ValueError, match="unknown recording format 'flac'"):
        recording_path(new_recording_id(T0), "c", "flac")
