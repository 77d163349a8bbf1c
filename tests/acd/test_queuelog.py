"""acd.queuelog: Asterisk queue_log lines, written and read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from acd.events import QueueEvent
from acd.queuelog import FIELDS, format_line, format_lines, parse_line
from hotline.storage import Storage
from tests.acd.test_stats import OFFSET, Day, run_day

# Lines as Asterisk's ast_queue_log writes them ("%ld|%s|%s|%s|%s|" then the data).
ASTERISK = """\
1366720308|1366720308.303251|support|NONE|ENTERQUEUE||8005551212|1
1366720314|1366720308.303251|support|SIP/8082|RINGNOANSWER|15000
1366720340|1366720308.303251|support|SIP/8081|CONNECT|32|1366720334.303266|6
1366720346|1366720308.303251|support|SIP/8081|COMPLETECALLER|32|6|1
1366720400|NONE|support|SIP/8082|ADDMEMBER|
1366720401|NONE|support|SIP/8082|PAUSE|lunch
1366720409|1366720409.303300|support|NONE|EXITWITHKEY|5|2|2|11
1366720500|1366720500.303301|support|SIP/8081|TRANSFER|2000|from-internal|4|60|1
"""


def test_format_as_asterisk_does() -> None:
    enter = QueueEvent(1714550410.75, "c1@pbx", "billing", "NONE", "ENTERQUEUE",
                       ("", "13900001234", "1"))
    assert format_line(enter) == "1714550410|c1@pbx|billing|NONE|ENTERQUEUE||13900001234|1"
    assert format_line(enter, decimals=3) == \
        "1714550410.750|c1@pbx|billing|NONE|ENTERQUEUE||13900001234|1"
    # The engine's loop time plus the wall offset.
    assert format_line(QueueEvent(10.2, "c1", "billing", "1001", "CONNECT", ("5", "c1", "5")),
                       wall_offset=1714550400) == "1714550410|c1|billing|1001|CONNECT|5|c1|5"
    # No data: one empty field, as Asterisk; no agent or call: NONE.
    assert format_line(QueueEvent(5, "NONE", "billing", "1001", "ADDMEMBER")) == \
        "5|NONE|billing|1001|ADDMEMBER|"
    assert format_line(QueueEvent(5, "", "billing", "", "JOINEMPTY")) == \
        "5|NONE|billing|NONE|JOINEMPTY|"
    assert format_line(QueueEvent(5, "NONE", "q", "1001", "PAUSE", ("lunch",))) == \
        "5|NONE|q|1001|PAUSE|lunch"
    # A separator or line break inside a field cannot split the line.
    odd = QueueEvent(5, "a|b", "q", "1001", "ENTERQUEUE", ("", "x|y\nz", "1"))
    assert format_line(odd) == "5|a_b|q|1001|ENTERQUEUE||x_y_z|1"
    assert list(format_lines([odd, odd])) == [format_line(odd) + "\n"] * 2
    with pytest.raises(ValueError, match="decimals must be >= 0, got -1"):
        format_line(odd, decimals=-1)


def test_asterisk_lines_round_trip() -> None:
    for line in ASTERISK.splitlines(keepends=True):
        event = parse_line(line)
        assert format_line(event) + "\n" == line
    connect = parse_line(ASTERISK.splitlines()[2])
    assert connect == QueueEvent(1366720340.0, "1366720308.303251", "support", "SIP/8081",
                                 "CONNECT", ("32", "1366720334.303266", "6"))
    assert parse_line("1366720400|NONE|support|SIP/8082|ADDMEMBER|\r\n").data == ()
    assert parse_line("1|c|q|a|ENTERQUEUE|||1").data == ("", "", "1")


def test_every_event_of_a_day_round_trips(tmp_path: Path) -> None:
    with Storage.open(tmp_path) as db:
        day = Day(db)
        run_day(day)
        stored = db.queue_log_since(None)
    emitted = [e for e in day.events if isinstance(e, QueueEvent)]
    assert len(stored) == len(emitted)
    for event in stored:
        again = parse_line(format_line(event, decimals=6))
        assert again == event
        # Each event has the fields FIELDS documents for it.
        assert len(event.data) == len(FIELDS[event.event]), event
    # Whole seconds (Asterisk's format) keep everything but the fraction.
    assert {e.event for e in stored} >= {"ENTERQUEUE", "CONNECT", "ABANDON", "TRANSFER",
                                         "RINGNOANSWER", "EXITWITHTIMEOUT", "EXITWITHKEY",
                                         "COMPLETECALLER", "COMPLETEAGENT", "JOINEMPTY",
                                         "ADDMEMBER", "REMOVEMEMBER", "PAUSE", "UNPAUSE"}
    assert parse_line(format_line(emitted[0], wall_offset=OFFSET)).at == OFFSET


@pytest.mark.parametrize(("line", "message"), [
    ("1|c|q|a|EVENT", "queue_log line needs at least 6 fields, got 5: '1|c|q|a|EVENT'"),
    ("", "queue_log line needs at least 6 fields, got 1: ''"),
    ("yesterday|c|q|a|CONNECT|1", "queue_log epoch is not a number: 'yesterday'"),
    ("1|c|q|a||1", "queue_log line has no event name: '1|c|q|a||1'"),
])
def test_bad_lines(line: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_line(line)
    assert str(info.value) == message
