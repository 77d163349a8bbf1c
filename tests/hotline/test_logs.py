"""hotline.logs: one line per event, logfmt and JSON, call ids on every line of a call."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from hotline.logs import CallLogAdapter, setup_logging

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    out = io.StringIO()
    yield out
    root.handlers[:] = saved[1]
    root.setLevel(saved[0])


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_logfmt_line(stream: io.StringIO) -> None:
    setup_logging("info", "logfmt", stream)
    log = logging.getLogger("hotline.sip")
    log.info("registered %s", "1001", extra={"aor": "sip:1001@h", "expires": 3600, "ok": True})
    log.debug("not shown")
    log.warning("odd", extra={"reason": 'say "hi"\nbye', "empty": "", "none": None})
    first, second = lines(stream)
    assert re.fullmatch(
        rf'ts={TS} level=info logger=hotline.sip event="registered 1001" aor=sip:1001@h '
        r"expires=3600 ok=true",
        first,
    )
    assert second.endswith(
        r'level=warning logger=hotline.sip event=odd reason="say \"hi\"\nbye" empty="" none=null'
    )


def test_call_adapter_puts_call_id_on_every_line(stream: io.StringIO) -> None:
    setup_logging("debug", "logfmt", stream)
    log = CallLogAdapter(logging.getLogger("hotline.call"), "a84b4c76e66710@pc33", leg="caller")
    assert log.call_id == "a84b4c76e66710@pc33"
    log.debug("invite")
    log.info("answered", extra={"agent": "1001"})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    out = lines(stream)
    assert len(out) == 3  # the traceback stays on its line
    for line in out:
        assert " logger=hotline.call call_id=a84b4c76e66710@pc33 event=" in line
        assert " leg=caller" in line
    assert out[1].endswith("event=answered leg=caller agent=1001")
    assert 'exc="Traceback (most recent call last):\\n' in out[2]
    assert out[2].endswith('RuntimeError: boom"')


def test_json_lines(stream: io.StringIO) -> None:
    setup_logging("info", "json", stream)
    log = CallLogAdapter(logging.getLogger("hotline.acd"), "c1")
    log.info("queued", extra={"queue": "billing", "position": 2, "obj": object()})
    (line,) = lines(stream)
    data = json.loads(line)
    assert list(data)[:5] == ["ts", "level", "logger", "call_id", "event"]
    assert re.fullmatch(TS, data["ts"])
    assert data["level"] == "info" and data["logger"] == "hotline.acd"
    assert data["call_id"] == "c1" and data["event"] == "queued"
    assert data["queue"] == "billing" and data["position"] == 2
    assert data["obj"].startswith("<object object at")


def test_setup_replaces_its_own_handler_only(stream: io.StringIO) -> None:
    root = logging.getLogger()
    other = logging.StreamHandler(io.StringIO())
    root.addHandler(other)
    setup_logging("info", "logfmt", stream)
    setup_logging("warning", "json", stream)
    assert other in root.handlers
    assert sum(1 for h in root.handlers if getattr(h, "_hotline_handler", False)) == 1
    logging.getLogger("x").info("dropped")
    logging.getLogger("x").error("kept")
    assert [json.loads(x)["event"] for x in lines(stream)] == ["kept"]
    root.removeHandler(other)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="log level must be one of debug, info"):
        setup_logging("loud", "logfmt")
    with pytest.raises(ValueError, match="log format must be one of logfmt, json"):
        setup_logging("info", "xml")
