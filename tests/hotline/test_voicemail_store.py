"""hotline.voicemail_store: file naming, save/list/mark heard/delete on a real database,
durability across a killed process, and the prompt-cache copy removed with a message."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from hotline.storage import Storage
from hotline.voicemail_store import VoicemailStore, valid_box, voicemail_dir
from hotline.voicemailcall import parse_voicemail_target
from media.audiofile import write_wav
from media.prompts import PromptCache

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[VoicemailStore]:
    storage = Storage.open(tmp_path)
    yield VoicemailStore(storage, tmp_path)
    storage.close()


def message_file(store: VoicemailStore, box: str, when: datetime, seconds: float = 1.0) -> Path:
    path = store.new_path(box, when)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(str(path), np.zeros(int(8000 * seconds), np.int16), rate=8000)
    return path


def test_box_names_and_targets() -> None:
    for good in ("sales", "1001", "a.b-c_d", "A" * 64):
        assert valid_box(good), good
    for bad in ("", ".", "..", "../x", "a/b", "a b", "x\x00", "A" * 65, "é"):
        assert not valid_box(bad), bad
    assert parse_voicemail_target("sales") == ("sales", False)
    assert parse_voicemail_target("*sales") == ("sales", True)
    for bad in ("*", "../etc", "**sales", "*a/b"):
        with pytest.raises(ValueError, match="voicemail box"):
            parse_voicemail_target(bad)


def test_new_path_is_under_the_box_folder_and_named_by_utc_time(
    store: VoicemailStore, tmp_path: Path
) -> None:
    when = datetime(2024, 5, 1, 16, 0, 0, tzinfo=UTC)
    path = store.new_path("sales", when.astimezone())
    assert path.parent == voicemail_dir(tmp_path) / "sales" == tmp_path / "voicemail" / "sales"
    assert path.name.startswith("20240501T160000Z-") and path.suffix == ".wav"
    assert len(path.stem) == len("20240501T160000Z-") + 8
    assert store.new_path("sales", when) != path  # a random part: two calls, two files
    with pytest.raises(ValueError, match="voicemail box"):
        store.new_path("../secrets", when)


def test_save_list_count_and_boxes(store: VoicemailStore) -> None:
    a = message_file(store, "sales", T0)
    b = message_file(store, "sales", T0 + timedelta(minutes=5))
    c = message_file(store, "support", T0 + timedelta(minutes=1))
    ra = store.save("sales", a, 12.5, call_id="c-a@x", caller="13900000001",
                    variables={"caller": "13900000001", "account": "123456"}, received_at=T0)
    rb = store.save("sales", b, 3.0, call_id="c-b@x", caller="13900000002",
                    received_at=T0 + timedelta(minutes=5))
    store.save("support", c, 4.0, received_at=T0 + timedelta(minutes=1))
    assert ra.id != rb.id
    assert ra.path == f"sales/{a.name}" and store.file(ra) == a
    assert ra.received_at == T0 and ra.seconds == 12.5 and ra.new and not ra.deleted
    assert ra.variables == {"caller": "13900000001", "account": "123456"}
    assert ra.call_id == "c-a@x" and ra.caller == "13900000001"
    assert [m.id for m in store.messages("sales")] == [ra.id, rb.id]
    assert [m.id for m in store.messages("sales", newest_first=True)] == [rb.id, ra.id]
    assert [m.id for m in store.messages("sales", newest_first=True, limit=1, offset=1)] \
        == [ra.id]
    assert store.messages("nobody") == []
    assert store.counts("sales") == (2, 2) and store.counts("nobody") == (0, 0)
    assert store.boxes() == {"sales": (2, 2), "support": (1, 1)}
    assert store.get(999) is None


def test_save_refuses_paths_outside_the_folder_and_naive_times(
    store: VoicemailStore, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="not under"):
        store.save("sales", tmp_path / "elsewhere.wav", 1.0)
    with pytest.raises(ValueError, match="not under"):
        store.save("sales", tmp_path / "voicemail" / ".." / "x.wav", 1.0)
    with pytest.raises(ValueError, match="voicemail box"):
        store.save("..", tmp_path / "voicemail" / "x.wav", 1.0)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.save("sales", store.new_path("sales"), 1.0, received_at=datetime(2024, 5, 1))
    assert store.boxes() == {}


def test_mark_heard_once(store: VoicemailStore) -> None:
    rec = store.save("sales", message_file(store, "sales", T0), 2.0, received_at=T0)
    first = T0 + timedelta(hours=1)
    assert store.mark_heard(rec.id, first)
    assert store.mark_heard(rec.id, first + timedelta(hours=1))  # already heard: kept
    again = store.get(rec.id)
    assert again is not None and again.heard_at == first and not again.new
    assert store.counts("sales") == (0, 1)
    assert [m.id for m in store.messages("sales", new_only=True)] == []
    assert not store.mark_heard(12345)


def test_delete_keeps_the_row_removes_the_file_and_its_cached_copy(
    store: VoicemailStore, tmp_path: Path
) -> None:
    path = message_file(store, "sales", T0, seconds=0.5)
    rec = store.save("sales", path, 0.5, received_at=T0)
    # the phone menu played it: the workers' prompt cache holds a copy
    cache = PromptCache(str(tmp_path))
    cache.load(str(path))
    cached = list(Path(cache.dir).glob("*.s16"))
    assert len(cached) == 1
    assert store.delete(rec.id, T0 + timedelta(days=1))
    assert not path.exists() and not cached[0].exists()
    gone = store.get(rec.id)
    assert gone is not None and gone.deleted and gone.deleted_at == T0 + timedelta(days=1)
    assert store.messages("sales") == [] and store.counts("sales") == (0, 0)
    assert store.boxes() == {}
    assert not store.delete(rec.id)  # twice
    assert not store.mark_heard(rec.id)  # a deleted message is not heard any more
    assert not store.delete(999)


def test_delete_with_the_file_already_gone(store: VoicemailStore) -> None:
    path = message_file(store, "sales", T0)
    rec = store.save("sales", path, 1.0, received_at=T0)
    path.unlink()
    assert store.delete(rec.id)
    assert store.messages("sales") == []


def test_a_saved_message_survives_kill_9(tmp_path: Path) -> None:
    """save() commits (fsynced) before it returns: a SIGKILL right after keeps the row."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from hotline.storage import Storage
        from hotline.voicemail_store import VoicemailStore
        store = VoicemailStore(Storage.open({str(tmp_path)!r}), {str(tmp_path)!r})
        path = store.new_path("sales")
        rec = store.save("sales", path, 7.5, caller="13900000001")
        print(rec.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == -9, proc.stderr
    msg_id = int(proc.stdout.split()[0])
    with Storage.open(tmp_path) as storage:
        (rec,) = VoicemailStore(storage, tmp_path).messages("sales")
    assert rec.id == msg_id and rec.seconds == 7.5 and rec.caller == "13900000001"


def test_the_prompt_cache_key_matches_the_workers(store: VoicemailStore, tmp_path: Path) -> None:
    from hotline.voicemail_store import _prompt_cache_file

    path = message_file(store, "sales", T0, seconds=0.2)
    key = PromptCache(str(tmp_path))._key_file(str(path))
    assert _prompt_cache_file(store.data_dir, path) == tmp_path / "prompts-cache" / f"{key}.s16"


def test_recover_indexes_what_a_crash_left(store: VoicemailStore, tmp_path: Path) -> None:
    """A worker killed mid-message leaves a WAV whose header counts no data: recovery
    repairs it and files it; a too-short leftover and a stray file are deleted; a
    message already indexed is left alone."""
    kept = store.save("sales", message_file(store, "sales", T0, seconds=2.0), 2.0,
                      caller="13900000001", received_at=T0)
    crashed = message_file(store, "sales", datetime(2024, 5, 2, 9, 30, tzinfo=UTC), 3.0)
    with open(crashed, "r+b") as f:  # the header as the worker first writes it
        f.seek(40)
        f.write((0).to_bytes(4, "little"))
    short = message_file(store, "support", T0, seconds=0.25)
    stray = store.root / "sales" / "notes.wav"
    stray.write_bytes(crashed.read_bytes())
    (recovered,) = store.recover()
    assert recovered.box == "sales" and recovered.caller == ""
    assert recovered.received_at == datetime(2024, 5, 2, 9, 30, tzinfo=UTC)
    assert abs(recovered.seconds - 1.5) < 0.01  # mono 3 s = stereo 1.5 s of frames
    assert recovered.variables == {"recovered": "1"}
    assert not short.exists() and not stray.exists() and crashed.exists()
    assert [m.id for m in store.messages("sales")] == [kept.id, recovered.id]
    assert store.recover() == []  # idempotent
