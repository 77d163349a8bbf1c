"""Typed events returned by the sans-IO SIP objects via ``next_event()``.

Callers dispatch on them with ``match``/``isinstance``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SipEvent:
    """Base of every event ``sip/`` emits."""
