"""A fake call control for the sans-IO IVR and voicemail sessions: it keeps the clock,
executes nothing, and remembers what plays and which HTTP requests are in flight."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from acd.ivr_actions import HttpRequest, IvrAction, Play, StopPlay
from hotline.config import SiteConfig, load_config

AGENT = '[[agents]]\nid = "1001"\nname = "A"\npassword = "a-long-password"\n'
QUEUES = '[[queues]]\nname = "billing"\n[[queues]]\nname = "repair"\n'


def site(text: str, env: dict[str, str] | None = None) -> SiteConfig:
    """Load a site.toml given as text."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "site.toml"
        path.write_text(text, encoding="utf-8")
        return load_config(path, env or {})


class Driver:
    """Feeds one session events at a fake time and records what it asks for."""

    def __init__(self, session: Any, now: float = 1000.0) -> None:
        self.session = session
        self.now = now
        self.actions: list[IvrAction] = []
        #: Plays started and neither finished nor stopped, oldest first.
        self.playing: list[Play] = []
        self.http: dict[int, HttpRequest] = {}

    def _take(self, actions: list[IvrAction]) -> list[IvrAction]:
        for a in actions:
            if isinstance(a, Play):
                self.playing.append(a)
            elif isinstance(a, StopPlay):
                self.playing = [p for p in self.playing if p.id != a.id]
            elif isinstance(a, HttpRequest):
                self.http[a.id] = a
        self.actions += actions
        timer = self.session.next_timer()
        assert timer is None or timer >= self.now, (timer, self.now)
        return actions

    @property
    def play(self) -> Play:
        """The play in progress (the newest)."""
        assert self.playing, "nothing is playing"
        return self.playing[-1]

    def start(self) -> list[IvrAction]:
        return self._take(self.session.start(self.now))

    def key(self, key: str, dt: float = 0.2) -> list[IvrAction]:
        self.now += dt
        return self._take(self.session.on_digit(key, self.now))

    def keys(self, keys: str, dt: float = 0.2) -> list[IvrAction]:
        out: list[IvrAction] = []
        for k in keys:
            out += self.key(k, dt)
        return out

    def done(self, dt: float = 2.0) -> list[IvrAction]:
        """The newest play finishes."""
        self.now += dt
        play = self.playing.pop()
        return self._take(self.session.on_prompt_done(play.id, self.now))

    def wait(self) -> list[IvrAction]:
        """Time passes until the session's deadline."""
        timer = self.session.next_timer()
        assert timer is not None, "no timer armed"
        self.now = timer
        return self._take(self.session.on_timer(self.now))

    def http_result(self, status: int | None, body: Any, dt: float = 0.3) -> list[IvrAction]:
        self.now += dt
        req_id = max(self.http)
        del self.http[req_id]
        return self._take(self.session.on_http_result(req_id, status, body, self.now))

    def call(self, method: str, *args: Any, dt: float = 0.0) -> list[IvrAction]:
        self.now += dt
        return self._take(getattr(self.session, method)(*args, self.now))
