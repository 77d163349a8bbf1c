"""Supervision: a supervisor's leg joins an agent's call to listen, whisper or barge.

The supervisor's leg is one more endpoint in the call's room; only the room's "hears"
sets change between modes, so neither the caller nor the agent gets a re-INVITE, a new
SSRC or a gap: nothing in signalling or media gives a listener away.

=========  =====================  ===================  ==================
mode       supervisor hears       agent hears sup.     caller hears sup.
=========  =====================  ===================  ==================
listen     caller and agent       no                   no
whisper    caller and agent       yes                  no
barge      caller and agent       yes                  yes
=========  =====================  ===================  ==================

From a phone: ``*60AGENT`` / ``*61AGENT`` / ``*62AGENT`` (``[acd]`` codes) start in a
mode, DTMF 4/5/6 switch, 7 takes the call over (the agent's leg is released and the
supervisor stays with the caller). The caller's recording carries the supervisor only
when barging (what the caller heard).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import AcdConfig, SiteConfig

if TYPE_CHECKING:
    from .callmodel import Leg

__all__ = ["MODES", "MODE_KEYS", "TAKE_OVER_KEY", "audible", "parse_code", "may_supervise"]

MODES = ("listen", "whisper", "barge")
MODE_KEYS = {"4": "listen", "5": "whisper", "6": "barge"}
"""DTMF a supervisor presses to switch mode (ChanSpy's keys)."""
TAKE_OVER_KEY = "7"
PERMISSION = "supervise"
"""The ``[[agents]] permissions`` entry a phone needs for the supervision codes."""


def parse_code(codes: AcdConfig, called: str) -> tuple[str, str] | None:
    """``(mode, agent id)`` when ``called`` is a supervision code followed by an agent."""
    for mode, code in (("listen", codes.listen_code), ("whisper", codes.whisper_code),
                       ("barge", codes.barge_code)):
        if called.startswith(code) and len(called) > len(code):
            return mode, called[len(code):]
    return None


def may_supervise(config: SiteConfig, user: str | None, agent: str) -> bool:
    """Whether extension ``user`` may supervise ``agent``: it holds the ``supervise``
    permission and shares a team with the agent (or the agent has no team)."""
    if user is None or user == agent:
        return False
    sup = config.agent(user)
    target = config.agent(agent)
    if sup is None or target is None or PERMISSION not in sup.permissions:
        return False
    return not target.teams or bool(set(sup.teams) & set(target.teams))


def audible(src: Leg, dst: Leg) -> bool:
    """Whether ``dst`` hears ``src`` in the call's room."""
    if src.monitor is None or src.monitor == "barge":
        return True
    if src.monitor == "whisper":
        return dst.monitor is None and dst.user is not None and dst.user == src.monitor_of
    return False
