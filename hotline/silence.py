"""The silent-call rule: a caller put through to a person who sends no voice and no key
for N seconds hears "we cannot hear you", and is hung up after another N seconds.

Silent calls are pocket dials, dead microphones and one-way audio; without the rule they
hold an agent until the agent gives up. Sans-IO like the SIP layer: call control feeds
voice and key events and asks for the next deadline; ``now`` is always passed in.
"""

from __future__ import annotations

from enum import Enum


class SilentAction(Enum):
    """What the rule asks for when its deadline passes."""

    PROMPT = "prompt"
    HANGUP = "hangup"


class SilentCallRule:
    """One call's rule, armed when the caller is connected.

    :param seconds: silence before the prompt, and again before hanging up.
    :param now: when the caller was connected.
    """

    def __init__(self, seconds: float, now: float) -> None:
        self.seconds = seconds
        self._deadline: float | None = now + seconds
        self.prompted = False

    def heard(self) -> None:
        """The caller spoke or pressed a key: the call is not silent; the rule ends."""
        self._deadline = None

    @property
    def active(self) -> bool:
        return self._deadline is not None

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` has something to do; None once the rule is over."""
        return self._deadline

    def on_timer(self, now: float) -> SilentAction | None:
        """Call at :meth:`next_deadline`: the prompt first, then the hang-up."""
        if self._deadline is None or now < self._deadline:
            return None
        if not self.prompted:
            self.prompted = True
            self._deadline = now + self.seconds
            return SilentAction.PROMPT
        self._deadline = None
        return SilentAction.HANGUP
