"""``hotline serve`` answers HTTP on the configured ``[server] http`` port: metrics
without a session, login with an agent's password, the session cookie, and a clean stop."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from .peers import HotlineProcess

pytestmark = pytest.mark.e2e


def _get(port: int, path: str, cookie: str | None = None) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if cookie is not None:
        req.add_header("Cookie", cookie)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def test_serve_listens_on_the_http_port(hotline_factory: Callable[..., HotlineProcess]) -> None:
    server = hotline_factory()
    port: int = server.http_port  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10  # SIP answers first; HTTP starts right after
    while True:
        try:
            status, body, headers = _get(port, "/metrics")
            break
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"no HTTP on port {port}:\n{server.log()}") from None
            time.sleep(0.1)
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    lines = body.decode().splitlines()
    assert "hotline_calls 0.0" in lines and "hotline_media_workers 1.0" in lines

    assert _get(port, "/api/recordings")[0] == 401
    login = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/login", method="POST",
        data=json.dumps({"user": "1001", "password": "pw-1001-secret"}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(login, timeout=5) as resp:
        assert resp.status == 200 and json.loads(resp.read())["agent"] == "1001"
        cookie = resp.headers["Set-Cookie"].split(";")[0]
    status, body, _ = _get(port, "/api/session", cookie)
    assert status == 200 and json.loads(body)["user"] == "1001"
    status, body, _ = _get(port, "/api/cdrs", cookie)
    assert status == 200 and json.loads(body)["cdrs"] == []

    assert server.stop() == 0
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))
