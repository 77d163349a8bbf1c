"""The silent-call rule's timeline, driven with explicit times."""

from __future__ import annotations

from hotline.silence import SilentAction, SilentCallRule


def test_silence_prompts_then_hangs_up() -> None:
    rule = SilentCallRule(5, now=100.0)
    assert rule.next_deadline() == 105.0
    assert rule.on_timer(104.9) is None
    assert rule.on_timer(105.0) is SilentAction.PROMPT
    assert rule.next_deadline() == 110.0
    assert rule.on_timer(110.0) is SilentAction.HANGUP
    assert rule.next_deadline() is None and not rule.active
    assert rule.on_timer(200.0) is None


def test_voice_before_the_prompt_ends_the_rule() -> None:
    rule = SilentCallRule(5, now=0.0)
    rule.heard()
    assert rule.on_timer(5.0) is None and rule.next_deadline() is None


def test_voice_after_the_prompt_cancels_the_hangup() -> None:
    rule = SilentCallRule(5, now=0.0)
    assert rule.on_timer(5.0) is SilentAction.PROMPT
    rule.heard()
    assert rule.on_timer(10.0) is None and not rule.active
