"""``POST /api/cdrs/{call_id}/wrapup``: disposition codes and notes saved on the call's
CDRs, seen in ``GET /api/cdrs`` and ``hotline cdr export --csv``; the ``[acd]
dispositions`` setting.

CDR rows are written with :meth:`hotline.storage.Storage.write_cdrs` as the server's
batches write them; the site is ``test_api_acd``'s (1001, 1002 in team tv supervised by
``boss``; 1003 in team water) with dispositions ``sale``, ``no_sale``, ``callback``.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_api_acd import site_config as acd_site_config
from test_api_http import cdr_export
from test_api_reports import SiteHarness

from hotline.api import wrapup
from hotline.config import ConfigError, SiteConfig, load_config
from hotline.storage import CDR_COLUMNS, Storage

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
CODES = ("sale", "no_sale", "callback")


def site_config(data_dir: Path, codes: tuple[str, ...] = CODES) -> SiteConfig:
    base = acd_site_config(data_dir)
    return dataclasses.replace(base, acd=dataclasses.replace(base.acd, dispositions=codes))


def leg(call_id: str, leg: str, agent: str | None, minute: int, **more: Any) -> dict[str, Any]:
    start = T0 + timedelta(minutes=minute)
    return {"call_id": call_id, "leg": leg, "start_time": start, "direction": "inbound",
            "caller": "13900000001", "callee": "95598", "agent": agent,
            "answer_time": start + timedelta(seconds=5), "disposition": "answered",
            "end_time": start + timedelta(seconds=65), "billsec": 60, **more}


def populate(data_dir: Path) -> None:
    """A billing call answered by 1001, a water call by 1003, an IVR-only call."""
    with Storage.open(data_dir) as db:
        db.write_cdrs([
            ("insert", leg("tv@x", "caller", "1001", 0, queue="billing")),
            ("insert", leg("tv@x", "agent", "1001", 0, queue="billing")),
            ("insert", leg("water@x", "caller", "1003", 1, queue="water")),
            ("insert", leg("ivr@x", "caller", None, 2, route="ivr:main")),
        ])


def run(data_dir: Path, body: Callable[[SiteHarness], Awaitable[None]],
        codes: tuple[str, ...] = CODES) -> None:
    async def main() -> None:
        async with SiteHarness(site_config(data_dir, codes), with_acd=False) as h:
            await body(h)
    asyncio.run(main())


async def post(s: aiohttp.ClientSession, call_id: str, body: Any) -> tuple[int, Any]:
    async with s.post(f"/api/cdrs/{call_id}/wrapup", json=body) as r:
        return r.status, await r.json()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    populate(d)
    return d


# --------------------------------------------------------------------------- saving


def test_the_agent_files_its_call_and_the_cdrs_carry_it(data_dir: Path) -> None:
    notes = "wants the HD box,\nasks for a \"discount\""

    async def body(h: SiteHarness) -> None:
        s = await h.session("1001")
        status, data = await post(s, "tv@x", {"code": "sale", "notes": notes})
        assert status == 200, data
        assert (data["call_id"], data["code"], data["notes"]) == ("tv@x", "sale", notes)
        assert [(r["leg"], r["wrapup_code"], r["wrapup_notes"]) for r in data["cdrs"]] == [
            ("caller", "sale", notes), ("agent", "sale", notes)]
        async with s.get("/api/cdrs?call_id=tv@x") as r:
            rows = (await r.json())["cdrs"]
        assert {(row["wrapup_code"], row["wrapup_notes"]) for row in rows} == {("sale", notes)}
        # Saving again replaces it (a slip corrected).
        status, data = await post(s, "tv@x", {"code": "callback"})
        assert status == 200 and data["notes"] is None
        assert {r["wrapup_code"] for r in data["cdrs"]} == {"callback"}
        await post(s, "tv@x", {"code": "sale", "notes": notes})

    run(data_dir, body)
    exported = cdr_export(data_dir, "--csv")
    rows = list(csv.DictReader(io.StringIO(exported.decode())))
    assert list(rows[0])[-2:] == ["wrapup_code", "wrapup_notes"] == list(CDR_COLUMNS[-2:])
    tv = [r for r in rows if r["call_id"] == "tv@x"]
    assert [(r["wrapup_code"], r["wrapup_notes"]) for r in tv] == [("sale", notes)] * 2
    others = [r for r in rows if r["call_id"] != "tv@x"]
    assert {(r["wrapup_code"], r["wrapup_notes"]) for r in others} == {("", "")}
    jsonl = cdr_export(data_dir, "--jsonl").decode()
    assert '"wrapup_code": "sale"' in jsonl and '"wrapup_code": null' in jsonl


def test_the_api_csv_export_is_the_cli_one_with_the_wrapup(data_dir: Path) -> None:
    async def body(h: SiteHarness) -> None:
        status, _ = await post(await h.session("1003"), "water@x", {"code": "no_sale"})
        assert status == 200
        async with (await h.session("admin")).get("/api/cdrs?format=csv") as r:
            assert await r.read() == cdr_export(data_dir, "--csv")

    run(data_dir, body)
    assert b",no_sale," in cdr_export(data_dir, "--csv")


@pytest.mark.parametrize(("user", "call_id", "status"), [
    ("1001", "tv@x", 200),
    ("1002", "tv@x", 403),       # its colleague's call
    ("1001", "water@x", 403),
    ("1003", "water@x", 200),
    ("viewer", "tv@x", 403),     # a [[users]] agent handles no calls
    ("boss", "tv@x", 200),       # team tv
    ("boss", "water@x", 403),
    ("boss", "ivr@x", 403),      # no agent: only logins that see everything
    ("chief", "water@x", 200),
    ("admin", "ivr@x", 200),
    ("1001", "nosuch@x", 404),
    ("admin", "nosuch@x", 404),
])  # fmt: skip
def test_who_may_file_a_wrapup(data_dir: Path, user: str, call_id: str, status: int) -> None:
    async def body(h: SiteHarness) -> None:
        got, data = await post(await h.session(user), call_id, {"code": "sale"})
        assert got == status, data
        if status == 404:
            assert data == {"error": "no such call"}
        if status == 403:
            assert data["error"].startswith("the call is outside your scope")

    run(data_dir, body)
    with Storage.open(data_dir) as db:
        codes = {r.wrapup_code for r in db.cdrs_for_call(call_id)}
        audit = db.audit_since(0)
    assert codes == ({"sale"} if status == 200 else {None} if status == 403 else set())
    # A supervisor's or admin's wrap-up is audited; an agent's own is not.
    expect = [(user, "wrapup", call_id)] if status == 200 and user in ("boss", "chief",
                                                                       "admin") else []
    assert [(a[1], a[2], a[4]) for a in audit] == expect


@pytest.mark.parametrize(("body", "status", "error"), [
    ({"code": "maybe"}, 400, "code: expected one of sale, no_sale, callback (got 'maybe')"),
    ({"notes": "no code"}, 400, "code: expected one of sale, no_sale, callback (got nothing)"),
    ({"code": 1}, 400, "code: expected a string"),
    ({"code": "sale", "notes": ["x"]}, 400, "notes: expected a string"),
    ({"code": "sale", "notes": "x" * 2001}, 400, "notes: longer than 2000 characters"),
    ({"code": "sale", "note": "typo"}, 400, "unknown field 'note' (expected code and notes)"),
    (["sale"], 400, "the body must be a JSON object"),
])  # fmt: skip
def test_bad_wrapups(data_dir: Path, body: Any, status: int, error: str) -> None:
    async def main(h: SiteHarness) -> None:
        got = await post(await h.session("1001"), "tv@x", body)
        assert got == (status, {"error": error})
        s = await h.session("1001")
        async with s.post("/api/cdrs/tv@x/wrapup", data=b"code=sale") as r:
            assert r.status == 415
        assert (await post(s, "tv@x", {"code": "sale", "notes": "x" * 2000}))[0] == 200

    run(data_dir, main)


def test_free_text_codes_without_dispositions(data_dir: Path) -> None:
    async def body(h: SiteHarness) -> None:
        s = await h.session("1001")
        status, data = await post(s, "tv@x", {"code": " promised a visit ", "notes": ""})
        assert status == 200 and (data["code"], data["notes"]) == ("promised a visit", None)
        status, data = await post(s, "tv@x", {"notes": "just notes"})
        assert status == 200 and (data["code"], data["notes"]) == (None, "just notes")
        status, data = await post(s, "tv@x", {"code": "x" * 65})
        assert (status, data) == (400, {"error": "code: longer than 64 characters"})

    run(data_dir, body, codes=())


# --------------------------------------------------------------------------- timing


def test_a_wrapup_waits_for_rows_the_server_has_not_written_yet(data_dir: Path) -> None:
    """The desktop sends the wrap-up as the call ends; the server's batch comes after."""
    async def body(h: SiteHarness) -> None:
        s = await h.session("1002")

        async def server_batch() -> None:
            await asyncio.sleep(0.3)
            with Storage.open(data_dir) as db:
                db.write_cdrs([("insert", leg("late@x", "caller", "1002", 5)),
                               ("insert", leg("late@x", "agent", "1002", 5))])

        writer = asyncio.create_task(server_batch())
        status, data = await post(s, "late@x", {"code": "callback", "notes": "at 5"})
        await writer
        assert status == 200, data
        assert [r["wrapup_code"] for r in data["cdrs"]] == ["callback", "callback"]

    run(data_dir, body)


def test_rows_written_after_the_wrapup_inherit_it(data_dir: Path) -> None:
    """Filed during the call: the agent leg's row, written at the end, carries it too."""
    with Storage.open(data_dir) as db:
        db.write_cdrs([("insert", {"call_id": "live@x", "leg": "caller", "agent": "1001",
                                   "start_time": T0, "answer_time": T0})])

    async def body(h: SiteHarness) -> None:
        status, _ = await post(await h.session("1001"), "live@x",
                               {"code": "sale", "notes": "mid-call"})
        assert status == 200

    run(data_dir, body)
    with Storage.open(data_dir) as db:  # the call ends: finish the caller row, add the leg
        db.write_cdrs([
            ("finish", {"call_id": "live@x", "leg": "caller", "end_time": T0 + timedelta(
                minutes=1), "disposition": "answered", "billsec": 60}),
            ("insert", leg("live@x", "agent", "1001", 0)),
            ("insert", leg("other@x", "agent", "1001", 0)),
        ])
        rows = db.cdrs_for_call("live@x")
        other = db.cdrs_for_call("other@x")
    assert [(r.leg, r.wrapup_code, r.wrapup_notes) for r in rows] == [
        ("caller", "sale", "mid-call"), ("agent", "sale", "mid-call")]
    assert rows[0].billsec == 60
    assert (other[0].wrapup_code, other[0].wrapup_notes) == (None, None)


# --------------------------------------------------------------------------- config


def test_dispositions_for_the_hello_message(tmp_path: Path) -> None:
    assert wrapup.dispositions(site_config(tmp_path)) == list(CODES)
    assert wrapup.dispositions(site_config(tmp_path, ())) == []


@pytest.mark.parametrize(("toml", "error"), [
    ('dispositions = ["sale", "no sale"]',
     "site.toml: acd.dispositions[1]: expected a disposition code (letters, digits, _ . -; "
     'up to 64 characters) (got "no sale")'),
    ('dispositions = ["sale", "sale"]',
     'site.toml: acd.dispositions[1]: expected a code not given twice (got "sale")'),
    ('dispositions = "sale"', 'site.toml: acd.dispositions: expected an array (got "sale")'),
    ('disposition = ["sale"]', None),
])  # fmt: skip
def test_dispositions_config_errors(tmp_path: Path, toml: str, error: str | None) -> None:
    path = tmp_path / "site.toml"
    path.write_text(f"[acd]\n{toml}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    if error is not None:
        assert str(exc.value).replace(str(path), "site.toml") == error
    else:
        assert exc.value.key == "acd.disposition"
        assert 'did you mean "dispositions"' in str(exc.value)
    path.write_text('[acd]\ndispositions = ["sale", "no_sale", "callback-later"]\n')
    assert load_config(path).acd.dispositions == ("sale", "no_sale", "callback-later")
    path.write_text("[acd]\n")
    assert load_config(path).acd.dispositions == ()
