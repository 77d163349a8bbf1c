"""Structured logging: one line per event, logfmt or JSON lines.

Theory of operation: code logs an *event* (a short message) plus fields passed as
``extra``::

    logger = logging.getLogger("hotline.sip")
    logger.info("registered", extra={"aor": "1001", "expires": 3600})

and the formatter installed by :func:`setup_logging` writes one line::

    ts=2024-05-01T08:00:00.123Z level=info logger=hotline.sip event=registered aor=1001 expires=3600

(or ``{"ts": ..., "level": ..., ...}`` with ``fmt="json"``). A :class:`CallLogAdapter` puts
``call_id=`` on every line logged about one call, so ``grep call_id=abc`` shows a call's
whole story. Tracebacks are folded into the same line (``exc="..."`` with ``\\n`` escapes),
so a line is always one event.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = [
    "FORMATS",
    "LEVELS",
    "CallLogAdapter",
    "JsonFormatter",
    "LogfmtFormatter",
    "setup_logging",
]

LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
FORMATS = ("logfmt", "json")

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_FIRST = ("ts", "level", "logger", "call_id", "event")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ordered fields of one line: fixed ones first, then extras, then exc."""
    out: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
    }
    call_id = record.__dict__.get("call_id")
    if call_id is not None:
        out["call_id"] = call_id
    out["event"] = record.getMessage()
    for key, value in record.__dict__.items():
        if key not in _RESERVED and key not in out and not key.startswith("_"):
            out[key] = value
    if record.exc_info:
        out["exc"] = logging.Formatter().formatException(record.exc_info)
    elif record.exc_text:
        out["exc"] = record.exc_text
    if record.stack_info:
        out["stack"] = record.stack_info
    return out


def _logfmt_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if text and not any(c in text for c in ' ="\\') and text.isprintable():
        return text
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def _logfmt_key(key: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_.-" else "_" for c in key)
    return cleaned or "_"


class LogfmtFormatter(logging.Formatter):
    """Formats a record as one ``key=value`` line (values quoted only when needed)."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one logfmt line without a trailing newline."""
        return " ".join(f"{_logfmt_key(k)}={_logfmt_value(v)}" for k, v in _fields(record).items())


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object per line (non-JSON values become strings)."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        return json.dumps(_fields(record), ensure_ascii=False, default=str)


class CallLogAdapter(logging.LoggerAdapter[logging.Logger]):
    """A logger for one call: every line carries ``call_id=``.

    Fields given per call (``extra=``) are merged with the call id, not replaced.
    """

    def __init__(self, logger: logging.Logger, call_id: str, **fields: Any) -> None:
        """:param fields: more fields put on every line (``leg="agent"``)."""
        super().__init__(logger, {"call_id": call_id, **fields})

    @property
    def call_id(self) -> str:
        """The call this adapter logs for."""
        assert self.extra is not None
        return str(self.extra["call_id"])

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        """Merge the adapter's fields under the call's own ``extra``."""
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


_HANDLER_MARK = "_hotline_handler"


def setup_logging(level: str = "info", fmt: str = "logfmt", stream: TextIO | None = None) -> None:
    """Install the structured formatter on the root logger.

    Calling it again replaces the handler it installed before (other handlers are kept).

    :param level: debug, info, warning, error or critical.
    :param fmt: ``logfmt`` or ``json``.
    :param stream: where lines go; stderr by default.
    :raises ValueError: for an unknown level or format.
    """
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(LogfmtFormatter() if fmt == "logfmt" else JsonFormatter())
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
