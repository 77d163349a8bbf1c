"""The queue log in Asterisk's ``queue_log`` text format.

One line per :class:`acd.events.QueueEvent`::

    epoch|callid|queue|agent|EVENT|data1|data2|...
    1714550400|c1@pbx|billing|NONE|ENTERQUEUE||13900001234|1
    1714550412|c1@pbx|billing|1001|CONNECT|12|c1@pbx|3

As Asterisk writes it: ``epoch`` is whole Unix seconds (truncated; ``decimals`` keeps
more), ``callid`` and ``agent`` are ``NONE`` when the event has none (member events such
as ADDMEMBER have no call), and the data fields follow in the order :data:`FIELDS` gives.
An event without data ends in one empty field (``...|ADDMEMBER|``), like Asterisk's.
A ``|``, carriage return or newline inside a field would break the line, so it is
written as ``_`` (:func:`format_line` never produces an unparseable line).

Tools written for Asterisk (QueueMetrics, queue_log parsers, ``awk -F'|'``) read these
lines; :func:`parse_line` reads them back (for tests and imports).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .events import QueueEvent

__all__ = ["FIELDS", "NONE", "format_line", "format_lines", "parse_line"]

NONE = "NONE"
"""What Asterisk writes for a missing call id, queue or agent."""

FIELDS: dict[str, tuple[str, ...]] = {
    "ENTERQUEUE": ("url", "callerid", "position"),
    "CONNECT": ("holdtime", "bridged_uniqueid", "ringtime"),
    "COMPLETECALLER": ("holdtime", "calltime", "origposition"),
    "COMPLETEAGENT": ("holdtime", "calltime", "origposition"),
    "ABANDON": ("position", "origposition", "waittime"),
    "RINGNOANSWER": ("ringtime_ms",),
    "EXITWITHTIMEOUT": ("position", "origposition", "waittime"),
    "EXITWITHKEY": ("key", "position", "origposition", "waittime"),
    "EXITEMPTY": ("position", "origposition", "waittime"),
    "JOINEMPTY": (),
    "TRANSFER": ("extension", "context", "holdtime", "calltime", "origposition"),
    "ADDMEMBER": (),
    "REMOVEMEMBER": (),
    "PAUSE": ("reason",),
    "UNPAUSE": (),
}
"""The data fields of each event, in order (Asterisk's ``queue_log`` documentation).
Times are whole seconds except ``ringtime_ms``; positions start at 1."""

_BAD = str.maketrans({"|": "_", "\r": "_", "\n": "_"})


def _clean(text: str) -> str:
    return text.translate(_BAD)


def format_line(event: QueueEvent, *, wall_offset: float = 0.0, decimals: int = 0) -> str:
    """One ``queue_log`` line for ``event`` (no newline).

    :param wall_offset: added to ``event.at`` to get Unix seconds (0 when ``at`` already
        is, as for events read back from storage).
    :param decimals: digits after the point of the epoch; 0 (Asterisk's format) truncates
        to whole seconds.
    :raises ValueError: for a negative ``decimals``.
    """
    if decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    at = event.at + wall_offset
    epoch = str(int(at)) if decimals == 0 else f"{at:.{decimals}f}"
    head = [
        epoch,
        _clean(event.call_id) or NONE,
        _clean(event.queue) or NONE,
        _clean(event.agent) or NONE,
        _clean(event.event),
    ]
    data = [_clean(d) for d in event.data] or [""]
    return "|".join(head + data)


def format_lines(events: Iterable[QueueEvent], *, wall_offset: float = 0.0,
                 decimals: int = 0) -> Iterator[str]:
    """:func:`format_line` for each event, each line ending in ``\\n``."""
    for event in events:
        yield format_line(event, wall_offset=wall_offset, decimals=decimals) + "\n"


def parse_line(line: str) -> QueueEvent:
    """Read one ``queue_log`` line (a trailing newline is allowed).

    ``NONE`` is kept as written (the engine itself uses ``NONE`` for "no agent" and
    "no call"); one empty data field is read as no data.

    :raises ValueError: if the line has fewer than six ``|``-separated fields, or its
        epoch is not a number, or its event name is empty.
    """
    text = line.rstrip("\r\n")
    parts = text.split("|")
    if len(parts) < 6:
        raise ValueError(f"queue_log line needs at least 6 fields, got {len(parts)}: {text!r}")
    epoch, call_id, queue, agent, event, *data = parts
    try:
        at = float(epoch)
    except ValueError:
        raise ValueError(f"queue_log epoch is not a number: {epoch!r}") from None
    if not event:
        raise ValueError(f"queue_log line has no event name: {text!r}")
    if data == [""]:
        data = []
    return QueueEvent(at, call_id, queue, agent, event, tuple(data))
