"""hotline.api voicemail endpoints over real sockets: the aiohttp app on a free loopback
port, a real database and real WAV files written through
:class:`hotline.voicemail_store.VoicemailStore` (as the server files them), and a stdlib
HTTP client.

The site: agent 1001 (team ``tv``), users ``admin``, ``boss`` (supervisor of ``tv``) and
``chief`` (supervisor, no teams); boxes ``sales`` (declared, two messages and one
deleted), ``support`` (declared, empty) and ``night`` (not declared, one message).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import wave
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest

from hotline.api import ApiServer
from hotline.api.auth import COOKIE
from hotline.config import Address, AgentConfig, SiteConfig, UserConfig, VoicemailConfig
from hotline.config import Secret as S
from hotline.config import ServerConfig as Srv
from hotline.storage import Storage
from hotline.voicemail_store import VoicemailStore

T0 = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)
PASSWORDS = {"1001": "pw-1001-secret", "admin": "admin-secret-1", "boss": "boss-secret-1",
             "chief": "chief-secret-1"}


@dataclass
class Site:
    config: SiteConfig
    data_dir: Path
    #: Message ids by test name.
    ids: dict[str, int]
    files: dict[str, Path]


def write_message(path: Path, seconds: float, seed: int) -> None:
    """A message as the worker writes it: the caller on both channels."""
    voice = np.random.default_rng(seed).normal(0, 3000, int(seconds * 8000))
    pcm = np.repeat(voice.clip(-32768, 32767).astype(np.int16)[:, None], 2, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.tobytes())


def populate(data_dir: Path) -> tuple[dict[str, int], dict[str, Path]]:
    storage = Storage.open(data_dir)
    store = VoicemailStore(storage, data_dir)
    ids: dict[str, int] = {}
    files: dict[str, Path] = {}
    plan = [  # name, box, minutes after T0, caller, seconds
        ("old", "sales", 0, "13800000001", 2.0),
        ("new", "sales", 10, "13900000002", 3.0),
        ("gone", "sales", 20, "13700000003", 1.5),
        ("night", "night", 30, "13600000004", 1.0),
    ]
    for i, (name, box, minutes, caller, seconds) in enumerate(plan):
        when = T0 + timedelta(minutes=minutes)
        path = store.new_path(box, when)
        write_message(path, seconds, seed=i)
        rec = store.save(box, path, seconds, call_id=f"c-{name}@x", caller=caller,
                         variables={"caller": caller, "called": "95598"}, received_at=when)
        ids[name], files[name] = rec.id, path
    store.mark_heard(ids["old"], T0 + timedelta(hours=1))
    store.delete(ids["gone"], T0 + timedelta(hours=2))
    storage.close()
    return ids, files


def site_config(data_dir: Path) -> SiteConfig:
    return SiteConfig(
        source="<test>",
        server=Srv(http=Address("127.0.0.1", 0), data_dir=data_dir),
        agents=(AgentConfig(id="1001", name="Li Na", password=S(PASSWORDS["1001"]),
                            teams=("tv",)),),
        users=(
            UserConfig("admin", S(PASSWORDS["admin"]), role="admin"),
            UserConfig("boss", S(PASSWORDS["boss"]), role="supervisor", teams=("tv",)),
            UserConfig("chief", S(PASSWORDS["chief"]), role="supervisor"),
        ),
        voicemail=MappingProxyType({"sales": VoicemailConfig("sales"),
                                    "support": VoicemailConfig("support")}),
    )


@pytest.fixture
def site(tmp_path: Path) -> Site:
    data_dir = tmp_path / "data"
    ids, files = populate(data_dir)
    return Site(site_config(data_dir), data_dir, ids, files)


class Running:
    """An :class:`ApiServer` on its own event loop in a background thread."""

    def __init__(self, config: SiteConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = ApiServer(config)
        self.port = self.call(self.server.start())[0][2]

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(20)

    def close(self) -> None:
        self.call(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def api(site: Site) -> Iterator[Running]:
    running = Running(site.config)
    yield running
    running.close()


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        assert self.headers["Content-Type"].startswith("application/json"), self.headers
        return json.loads(self.body)


class Client:
    """A stdlib HTTP client that keeps the session cookie."""

    def __init__(self, port: int, user: str | None = None) -> None:
        self.port = port
        self.cookie: str | None = None
        if user is not None:
            assert self.request("POST", "/api/login",
                                {"user": user, "password": PASSWORDS[user]}).status == 200

    def request(self, method: str, path: str, body: Any = None,
                headers: Mapping[str, str] | None = None) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        h = dict(headers or {})
        if self.cookie is not None:
            h["Cookie"] = f"{COOKIE}={self.cookie}"
        if body is not None:
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        for line in resp.headers.get_all("Set-Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(line)
            if COOKIE in jar:
                self.cookie = jar[COOKIE].value
        return Reply(resp.status, resp.headers, data)

    def get(self, path: str, **headers: str) -> Reply:
        return self.request("GET", path, headers={k.replace("_", "-"): v
                                                  for k, v in headers.items()})


def test_a_session_is_required(api: Running, site: Site) -> None:
    c = Client(api.port)
    for method, path in (("GET", "/api/voicemail"), ("GET", "/api/voicemail/sales"),
                         ("GET", f"/api/voicemail/sales/{site.ids['new']}/audio"),
                         ("POST", f"/api/voicemail/sales/{site.ids['new']}/heard"),
                         ("DELETE", f"/api/voicemail/sales/{site.ids['new']}")):
        r = c.request(method, path)
        assert r.status == 401 and r.json() == {"error": "login required"}, (method, path)


def test_agents_see_no_box(api: Running, site: Site) -> None:
    c = Client(api.port, "1001")
    assert c.get("/api/voicemail").json() == {"boxes": []}
    new = site.ids["new"]
    for method, path in (("GET", "/api/voicemail/sales"),
                         ("GET", f"/api/voicemail/sales/{new}"),
                         ("GET", f"/api/voicemail/sales/{new}/audio"),
                         ("POST", f"/api/voicemail/sales/{new}/heard"),
                         ("DELETE", f"/api/voicemail/sales/{new}")):
        r = c.request(method, path)
        assert r.status == 403, (method, path, r.status)
        assert "supervisors and admins" in r.json()["error"]
    assert site.files["new"].exists()


@pytest.mark.parametrize("user", ["admin", "boss", "chief"])
def test_boxes_and_listing(api: Running, site: Site, user: str) -> None:
    c = Client(api.port, user)
    r = c.get("/api/voicemail")
    assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
    assert r.json() == {"boxes": [
        {"box": "night", "declared": False, "new": 1, "total": 1},
        {"box": "sales", "declared": True, "new": 1, "total": 2},
        {"box": "support", "declared": True, "new": 0, "total": 0},
    ]}
    listing = c.get("/api/voicemail/sales").json()
    new, old = site.ids["new"], site.ids["old"]
    assert [m["id"] for m in listing["messages"]] == [new, old]  # newest first, not deleted
    assert listing["new"] == 1 and listing["total"] == 2 and listing["next_offset"] is None
    first = listing["messages"][0]
    assert first == {
        "id": new, "box": "sales", "call_id": "c-new@x", "caller": "13900000002",
        "received_at": "2024-05-01T08:10:00.000+00:00", "seconds": 3.0, "new": True,
        "heard_at": None, "deleted_at": None,
        "variables": {"caller": "13900000002", "called": "95598"},
        "content_type": "audio/wav", "audio": f"/api/voicemail/sales/{new}/audio",
    }
    assert listing["messages"][1]["heard_at"] == "2024-05-01T09:00:00.000+00:00"
    page = c.get("/api/voicemail/sales?limit=1").json()
    assert [m["id"] for m in page["messages"]] == [new] and page["next_offset"] == 1
    page = c.get("/api/voicemail/sales?limit=1&offset=1").json()
    assert [m["id"] for m in page["messages"]] == [old] and page["next_offset"] is None
    only_new = c.get("/api/voicemail/sales?new=1").json()
    assert [m["id"] for m in only_new["messages"]] == [new] and only_new["total"] == 1
    assert c.get("/api/voicemail/support").json()["messages"] == []
    assert c.get("/api/voicemail/nobody").json()["total"] == 0  # a box without messages


def test_bad_parameters(api: Running, site: Site) -> None:
    c = Client(api.port, "admin")
    for path in ("/api/voicemail/sales?new=maybe", "/api/voicemail/sales?limit=0",
                 "/api/voicemail/sales?offset=-1", "/api/voicemail/a%20b",
                 "/api/voicemail/..", f"/api/voicemail/sales%2F..%2Fx/{site.ids['new']}"):
        r = c.get(path)
        assert r.status in (400, 404), (path, r.status)
        assert "error" in r.json()
    assert c.get("/api/voicemail/sales?new=maybe").json() == {"error": "new: expected 1 or 0"}
    # ids are reached through their own box only
    assert c.get(f"/api/voicemail/night/{site.ids['new']}").status == 404
    assert c.get(f"/api/voicemail/sales/{site.ids['night']}/audio").status == 404
    for bad in ("x", "1.5", "-1", "99999", "9" * 30):
        assert c.get(f"/api/voicemail/sales/{bad}").status == 404, bad


def test_audio_whole_and_ranges(api: Running, site: Site) -> None:
    c = Client(api.port, "chief")
    path = f"/api/voicemail/sales/{site.ids['new']}/audio"
    data = site.files["new"].read_bytes()
    size = len(data)
    r = c.get(path)
    assert r.status == 200 and r.body == data
    assert r.headers["Content-Type"] == "audio/wav"
    assert r.headers["Accept-Ranges"] == "bytes" and r.headers["ETag"]
    assert r.headers["Cache-Control"] == "private, no-cache"
    assert r.headers["Content-Disposition"] == \
        f'inline; filename="sales-{site.ids["new"]}.wav"'
    assert c.get(path + "?download=1").headers["Content-Disposition"].startswith("attachment")
    r = c.get(path, Range="bytes=0-43")
    assert r.status == 206 and r.body == data[:44]
    assert r.headers["Content-Range"] == f"bytes 0-43/{size}"
    r = c.get(path, Range="bytes=-100")
    assert r.status == 206 and r.body == data[-100:]
    r = c.get(path, Range=f"bytes={size}-")
    assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{size}"
    assert r.json() == {"error": "range not satisfiable"}
    r = c.get(path, Range="bytes=0-1,4-5")  # several ranges: the whole file
    assert r.status == 200 and r.body == data
    etag = c.get(path).headers["ETag"]
    r = c.get(path, Range="bytes=10-19", If_Range=etag)
    assert r.status == 206 and r.body == data[10:20]
    r = c.get(path, Range="bytes=10-19", If_Range='"stale"')
    assert r.status == 200 and r.body == data
    r = c.get(path, If_None_Match=etag)
    assert r.status == 304
    head = c.request("HEAD", path)
    assert head.status == 200 and head.body == b"" and head.headers["Content-Length"] == str(size)


def test_heard_and_delete(api: Running, site: Site) -> None:
    c = Client(api.port, "boss")
    new = site.ids["new"]
    r = c.request("POST", f"/api/voicemail/sales/{new}/heard")
    assert r.status == 200
    body = r.json()
    assert body["id"] == new and not body["new"] and body["heard_at"]
    again = c.request("POST", f"/api/voicemail/sales/{new}/heard").json()
    assert again["heard_at"] == body["heard_at"]  # the first listen counts
    assert c.get("/api/voicemail/sales").json()["new"] == 0
    # cross-site requests are refused before anything changes
    r = c.request("DELETE", f"/api/voicemail/sales/{new}",
                  headers={"Origin": "https://evil.example"})
    assert r.status == 403 and site.files["new"].exists()

    r = c.request("DELETE", f"/api/voicemail/sales/{new}")
    assert r.status == 204 and r.body == b""
    assert not site.files["new"].exists()
    assert [m["id"] for m in c.get("/api/voicemail/sales").json()["messages"]] \
        == [site.ids["old"]]
    one = c.get(f"/api/voicemail/sales/{new}").json()
    assert one["deleted_at"] and one["audio"] is None and one["content_type"] is None
    for method, path in (("GET", f"/api/voicemail/sales/{new}/audio"),
                         ("POST", f"/api/voicemail/sales/{new}/heard"),
                         ("DELETE", f"/api/voicemail/sales/{new}")):
        r = c.request(method, path)
        assert r.status == 410 and r.json() == {"error": "the message was deleted"}, method
    # deleted before the server started
    assert c.get(f"/api/voicemail/sales/{site.ids['gone']}/audio").status == 410
    with Storage.open(site.data_dir) as storage:
        rec = VoicemailStore(storage, site.data_dir).get(new)
    assert rec is not None and rec.deleted  # the row stays, for audit


def test_a_missing_file_is_404(api: Running, site: Site) -> None:
    site.files["old"].unlink()
    r = Client(api.port, "admin").get(f"/api/voicemail/sales/{site.ids['old']}/audio")
    assert r.status == 404 and r.json() == {"error": "the message file is missing"}
