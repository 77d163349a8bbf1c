"""Queue announcements: the operator's templates, in any language, and their checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.config import ConfigError, QueueConfig, load_config
from hotline.queuecall import announcement


def test_default_announcement_says_position_and_rounded_up_minutes() -> None:
    q = QueueConfig("support")
    assert announcement(q, 3, 61) == ("tts:You are caller number 3 in line. "
                                      "Estimated wait in minutes: 2.")
    assert announcement(q, 1, 20) == ("tts:You are caller number 1 in line. "
                                      "Estimated wait in minutes: 1.")
    assert announcement(q, 2, 0) == "tts:You are caller number 2 in line."


def _site(tmp_path: Path, announce: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(f'[server]\ndata_dir = "{tmp_path}"\n\n[[queues]]\nname = "care"\n'
                    f'announce_every = 30\nannounce = "{announce}"\n', encoding="utf-8")
    return path


def test_a_mandarin_template_is_rendered(tmp_path: Path) -> None:
    cfg = load_config(_site(tmp_path, "tts:您前面还有{position}位客户，预计等待{minutes}分钟。"))
    assert announcement(cfg.queues[0], 4, 300) == "tts:您前面还有4位客户，预计等待5分钟。"


def test_an_unknown_placeholder_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_site(tmp_path, "tts:number {place}"))
    assert info.value.key == "queues[0].announce"
    assert "{position} and {minutes} only" in str(info.value)
