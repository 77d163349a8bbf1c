"""recorder.index on a real hotline database (migration m0002)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hotline.storage import Storage
from recorder.exceptions import RecorderError
from recorder.index import TRANSITIONS, Recording, RecordingIndex, RecordingState

T0 = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)
S = RecordingState


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    with Storage.open(tmp_path) as s:
        yield s


@pytest.fixture
def index(storage: Storage) -> RecordingIndex:
    return RecordingIndex(storage)


def test_migration_creates_the_tables(storage: Storage) -> None:
    tables = {r[0] for r in storage.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"recordings", "recording_agents"} <= tables
    assert storage.schema_version >= 2


def test_lifecycle_and_agents(index: RecordingIndex) -> None:
    rec = index.start(
        "c1@x", T0, caller="13800138000", callee="95598", queue="billing", agents=["1001"]
    )
    assert rec.state == S.LIVE and rec.format == "wav" and rec.seconds is None
    assert rec.path.startswith("2024/05/01/") and rec.path.endswith("_c1@x.wav")
    assert rec.agents == ("1001",)
    assert index.add_agent(rec.id, "1002", T0 + timedelta(seconds=30))
    assert not index.add_agent(rec.id, "1001", T0 + timedelta(seconds=60))  # rejoin
    with pytest.raises(KeyError):
        index.add_agent("nope", "1001", T0)

    done = index.finish(rec.id, T0 + timedelta(seconds=90), 89.5)
    assert done.state == S.DONE and done.seconds == 89.5
    assert done.end_time == T0 + timedelta(seconds=90)
    assert done.agents == ("1001", "1002")
    assert index.pending_transcode() == [done]

    opus = done.path.replace(".wav", ".opus")
    out = index.mark_transcoded(rec.id, opus, "opus", 89.49)
    assert (out.state, out.format, out.path, out.seconds) == (S.TRANSCODED, "opus", opus, 89.49)
    assert index.pending_transcode() == []
    assert index.for_call("c1@x") == [out]
    tags = out.tags()
    assert tags["call_id"] == "c1@x" and tags["agent"] == "1001,1002"
    assert tags["start_time"] == "2024-05-01T08:00:00.000+00:00"


def test_transitions_are_enforced(index: RecordingIndex) -> None:
    rec = index.start("c1", T0)
    with pytest.raises(
        RecorderError, match=f"recording {rec.id} cannot go from live to transcoded"
    ):
        index.mark_transcoded(rec.id, "x.opus", "opus")
    index.mark_deleted(rec.id)
    for move in (index.mark_deleted, lambda i: index.finish(i, T0, 1.0)):
        with pytest.raises(RecorderError, match="cannot go from deleted"):
            move(rec.id)
    with pytest.raises(KeyError):
        index.mark_deleted("missing")
    assert index.get(rec.id).state == S.DELETED  # type: ignore[union-attr]


@pytest.mark.parametrize("state", list(RecordingState))
def test_every_state_can_reach_deleted(state: RecordingState) -> None:
    seen, todo = {state}, [state]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert S.DELETED in seen


def _fill(index: RecordingIndex) -> list[Recording]:
    rows = [
        ("a", "13800138000", "95598", "billing", ["1001"], 0),
        ("b", "13900000001", "95598", "repair", ["1002"], 60),
        ("c", "021-5550000", "4008", "billing", ["1001", "1003"], 3600),
        ("d", "100%_off", "95598", None, [], 7200),
    ]
    out = []
    for call, caller, callee, queue, agents, offset in rows:
        start = T0 + timedelta(seconds=offset)
        rec = index.start(call, start, caller=caller, callee=callee, queue=queue)
        for agent in agents:
            index.add_agent(rec.id, agent, start)
        out.append(index.get(rec.id))
    return out  # type: ignore[return-value]


def test_search_filters(index: RecordingIndex) -> None:
    a, b, c, d = _fill(index)

    def ids(**kw: object) -> list[str]:
        return [r.call_id for r in index.search(**kw)]  # type: ignore[arg-type]

    assert ids() == ["d", "c", "b", "a"]  # newest first
    assert ids(since=T0 + timedelta(seconds=60)) == ["d", "c", "b"]
    assert ids(since=T0, until=T0 + timedelta(seconds=60)) == ["a"]
    assert ids(number="1380013") == ["a"]
    assert ids(number="95598") == ["d", "b", "a"]  # callee matches too
    assert ids(number="555") == ["c"]
    assert ids(number="%") == ["d"] and ids(number="0_o") == []  # wildcards are literal
    assert ids(agent="1001") == ["c", "a"]
    assert ids(agent="1003") == ["c"]
    assert ids(queue="billing") == ["c", "a"]
    assert ids(queue="billing", agent="1001", number="021") == ["c"]
    assert ids(call_id="b") == ["b"]
    assert ids(limit=2) == ["d", "c"] and ids(limit=2, offset=2) == ["b", "a"]
    assert index.count() == 4 and index.count(queue="billing") == 2
    assert index.search(agent="1003")[0].agents == ("1001", "1003")

    index.mark_deleted(d.id)
    assert ids() == ["c", "b", "a"] and ids(include_deleted=True)[0] == "d"
    assert index.count(include_deleted=True) == 4


def test_naive_times_are_refused(index: RecordingIndex) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        index.start("c", datetime(2024, 5, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        index.search(since=datetime(2024, 5, 1))


def test_rows_survive_reopen(tmp_path: Path) -> None:
    with Storage.open(tmp_path / "db") as s:
        rec = RecordingIndex(s).start("c", T0, caller="1", agents=["1001"])
    with Storage.open(tmp_path / "db") as s:
        assert RecordingIndex(s).get(rec.id) == rec
