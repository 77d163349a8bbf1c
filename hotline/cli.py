"""The ``hotline`` command.

Subcommands::

    hotline serve [--config FILE] [--data-dir DIR] [--sip-port N] [--http-port N] [--grace S]
    hotline config check [--no-secrets] FILE...
    hotline dtmf FILE...
    hotline cdr export (--csv | --jsonl) [--config FILE] [--data-dir DIR] [--since DATE]
    hotline queuelog export [--config FILE] [--data-dir DIR] [--since DATE] [--until DATE]
    hotline report [--config FILE] [--data-dir DIR] [--since DATE] [--until DATE]
                   [--interval 15m|hour|day] [--agents] [--csv]

Exit status: 0 success, 1 a runtime failure (server missing, unreadable audio, no
database), 2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hotline import __version__
from hotline.config import (
    ConfigError,
    SiteConfig,
    apply_overrides,
    demo_config,
    demo_passwords,
    load_config,
)

__all__ = ["main"]

DEFAULT_DATA_DIR = Path("hotline-data")
DEFAULT_GRACE = 30.0
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port 0..65535, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def _since(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date such as 2024-05-01 or 2024-05-01T08:00, got {text!r}"
        ) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotline", description="A call-center server.")
    parser.add_argument("--version", action="version", version=f"hotline {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the server (the demo site without --config)")
    serve.add_argument("--config", type=Path, metavar="FILE", help="site.toml")
    serve.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help=f"overrides server.data_dir (demo default: ./{DEFAULT_DATA_DIR})",
    )
    serve.add_argument("--sip-port", type=_port, metavar="N", help="port of udp/tcp listeners")
    serve.add_argument("--http-port", type=_port, metavar="N", help="port of the HTTP listener")
    serve.add_argument(
        "--grace",
        type=_seconds,
        default=DEFAULT_GRACE,
        metavar="SECONDS",
        help=f"on SIGTERM, let calls finish for this long (default {DEFAULT_GRACE:g})",
    )
    serve.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), help="overrides logging"
    )
    serve.set_defaults(handler=_serve)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_sub.add_parser("check", help="validate site.toml files without starting")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.add_argument(
        "--no-secrets",
        action="store_true",
        help="do not require env:NAME variables to be set (for CI without secrets)",
    )
    check.set_defaults(handler=_config_check)

    dtmf = sub.add_parser("dtmf", help="print the DTMF digits heard in audio files")
    dtmf.add_argument("files", nargs="+", type=Path, metavar="FILE")
    dtmf.set_defaults(handler=_dtmf)

    cdr = sub.add_parser("cdr", help="call detail records")
    cdr_sub = cdr.add_subparsers(dest="cdr_command", required=True, metavar="ACTION")
    export = cdr_sub.add_parser("export", help="print CDRs")
    fmt = export.add_mutually_exclusive_group(required=True)
    fmt.add_argument("--csv", action="store_true", help="CSV with a header row")
    fmt.add_argument("--jsonl", action="store_true", help="one JSON object per line")
    _database_arguments(export, "only calls started at or after DATE")
    export.set_defaults(handler=_cdr_export)

    queuelog = sub.add_parser("queuelog", help="the ACD queue log")
    ql_sub = queuelog.add_subparsers(dest="queuelog_command", required=True, metavar="ACTION")
    ql_export = ql_sub.add_parser(
        "export", help="print the queue log as Asterisk queue_log lines (epoch|callid|...)"
    )
    _acd_window_arguments(ql_export)
    ql_export.set_defaults(handler=_queuelog_export)

    report = sub.add_parser("report", help="service level, ASA, AHT... per queue or agent")
    _acd_window_arguments(report)
    report.add_argument(
        "--interval",
        choices=("15m", "hour", "day"),
        help="one row per interval (local time); default: one row for the whole period",
    )
    report.add_argument("--agents", action="store_true", help="per agent instead of per queue")
    report.add_argument("--csv", action="store_true", help="CSV with a header row")
    report.set_defaults(handler=_report)
    return parser


def _database_arguments(parser: argparse.ArgumentParser, since: str) -> None:
    """``--config``, ``--data-dir`` and ``--since`` of the commands that read hotline.db."""
    parser.add_argument("--config", type=Path, metavar="FILE", help="take data_dir from here")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="where hotline.db is")
    parser.add_argument("--since", type=_since, metavar="DATE",
                        help=f"{since} (ISO 8601; site/local time if no offset)")


def _acd_window_arguments(parser: argparse.ArgumentParser) -> None:
    _database_arguments(parser, "from DATE on")
    parser.add_argument(
        "--until", type=_since, metavar="DATE", help="up to (not including) DATE, same format"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hotline`` command and return its exit status."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `hotline report | head`: stop quietly, as other tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    return status


def _error(message: str) -> None:
    print(f"hotline: {message}", file=sys.stderr)


def _print_warnings(config: SiteConfig) -> None:
    for warning in config.warnings:
        print(f"{config.source}: warning: {warning}", file=sys.stderr)


# --------------------------------------------------------------------------- serve


def _serve(args: argparse.Namespace) -> int:
    if args.config is not None:
        config = load_config(args.config)
    else:
        data_dir = args.data_dir if args.data_dir is not None else DEFAULT_DATA_DIR
        passwords = demo_passwords(data_dir)
        config = demo_config(data_dir)
        if passwords.created:
            print(f"Demo site. Passwords (shown once, kept in {passwords.path}):")
            for login, password in passwords.passwords.items():
                print(f"  {login:<8} {password}")
            sys.stdout.flush()
    config = apply_overrides(
        config, sip_port=args.sip_port, http_port=args.http_port, data_dir=args.data_dir
    )
    if args.log_level is not None:
        from dataclasses import replace

        config = replace(config, logging=replace(config.logging, level=args.log_level))
    _print_warnings(config)

    from hotline.logs import setup_logging

    setup_logging(config.logging.level, config.logging.format)
    try:
        from hotline import server
    except ModuleNotFoundError as exc:
        if exc.name == "hotline.server":
            _error("the server is not installed (hotline/server.py is missing)")
            return EXIT_FAILURE
        _error(f"cannot start the server: module {exc.name!r} is missing")
        return EXIT_FAILURE
    return int(server.run(config, grace=args.grace))


# --------------------------------------------------------------------------- config check


def _config_check(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for file in args.files:
        try:
            config = load_config(file, require_secrets=not args.no_secrets)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            status = EXIT_USAGE
            continue
        print(f"{file}: ok ({config.summary()})")
        _print_warnings(config)
    return status


# --------------------------------------------------------------------------- dtmf


def _dtmf(args: argparse.Namespace) -> int:
    try:
        from media.dtmf_file import digits_in_file
    except ModuleNotFoundError as exc:
        if exc.name in ("media", "media.dtmf_file"):
            _error("the DTMF file detector is not installed (media/dtmf_file.py is missing)")
        else:
            _error(f"the DTMF file detector needs module {exc.name!r}, which is missing")
        return EXIT_FAILURE
    status = EXIT_OK
    for file in args.files:
        try:
            digits = digits_in_file(file)
        except (OSError, ValueError) as exc:
            print(f"{file}: error: {exc}", file=sys.stderr)
            status = EXIT_FAILURE
            continue
        text = digits if isinstance(digits, str) else "".join(str(d) for d in digits)
        print(f"{file}: {text}")
    return status


# --------------------------------------------------------------------------- cdr export


def _cdr_export(args: argparse.Namespace) -> int:
    from hotline.storage import CDR_COLUMNS, Storage, StorageError

    data_dir, _config, tz = _database_source(args)
    since = _aware(args.since, tz)
    try:
        storage = Storage.open(data_dir, create=False)
    except StorageError as exc:
        _error(str(exc))
        return EXIT_FAILURE
    with storage:
        records = storage.cdrs_since(since)
    out = sys.stdout
    if args.csv:
        writer = csv.writer(out)
        writer.writerow(CDR_COLUMNS)
        for rec in records:
            writer.writerow([_cell(getattr(rec, c)) for c in CDR_COLUMNS])
    else:
        for rec in records:
            row = {c: getattr(rec, c) for c in CDR_COLUMNS}
            out.write(json.dumps(row, ensure_ascii=False, default=_cell) + "\n")
    return EXIT_OK


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    return value


# --------------------------------------------------------------------------- queuelog, report


def _acd_window(
    args: argparse.Namespace,
) -> tuple[Path, SiteConfig | None, ZoneInfo | None, float | None, float | None]:
    """data_dir, config, time zone and the --since/--until epochs, as ``cdr export``."""
    data_dir, config, tz = _database_source(args)
    bounds = [None if when is None else when.timestamp()
              for when in (_aware(args.since, tz), _aware(args.until, tz))]
    return data_dir, config, tz, bounds[0], bounds[1]


def _database_source(
    args: argparse.Namespace,
) -> tuple[Path, SiteConfig | None, ZoneInfo | None]:
    """The data dir (``--data-dir``, else the ``--config`` site's, else the default), the
    site and its time zone, for the commands that read hotline.db."""
    tz: ZoneInfo | None = None
    data_dir = DEFAULT_DATA_DIR
    config: SiteConfig | None = None
    if args.config is not None:
        config = load_config(args.config, require_secrets=False)
        data_dir = config.server.data_dir
        if config.server.timezone:
            tz = ZoneInfo(config.server.timezone)
    if args.data_dir is not None:
        data_dir = args.data_dir
    return data_dir, config, tz


def _aware(when: datetime | None, tz: ZoneInfo | None) -> datetime | None:
    """A --since/--until date without offset is in the site's zone (else the machine's)."""
    if when is not None and when.tzinfo is None:
        return when.replace(tzinfo=tz) if tz is not None else when.astimezone()
    return when


def _queuelog_export(args: argparse.Namespace) -> int:
    from acd.queuelog import format_lines
    from hotline.storage import Storage, StorageError

    data_dir, _config, _tz, since, until = _acd_window(args)
    try:
        storage = Storage.open(data_dir, create=False)
    except StorageError as exc:
        _error(str(exc))
        return EXIT_FAILURE
    with storage:
        events = storage.queue_log_since(since, until)
    sys.stdout.writelines(format_lines(events))
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    import time

    from acd.stats import AcdStats, stored_report
    from hotline.storage import Storage, StorageError

    data_dir, config, tz, since, until = _acd_window(args)
    if since is not None and until is not None and until <= since:
        _error("--until must be after --since")
        return EXIT_USAGE
    try:
        storage = Storage.open(data_dir, create=False)
    except StorageError as exc:
        _error(str(exc))
        return EXIT_FAILURE
    stats = AcdStats.for_queues(config.queues) if config is not None else AcdStats()
    with storage:
        rows = stored_report(storage, stats, since, until, args.interval, tz=tz,
                             now=time.time())
    return _print_report(args, rows, tz)


_QUEUE_TABLE = (
    # heading, QueueStats attribute, format
    ("offered", "offered", "d"),
    ("answered", "answered", "d"),
    ("in SL", "answered_in_sl", "d"),
    ("abandoned", "abandoned", "d"),
    ("short", "short_abandoned", "d"),
    ("other", "_other_exits", "d"),
    ("waiting", "waiting", "d"),
    ("SL", "sl", "%"),
    ("SL2", "sl2", "%"),
    ("ASA", "asa", "s"),
    ("AHT", "aht", "s"),
    ("abandon", "abandon_rate", "%"),
)
_AGENT_TABLE = (
    ("answered", "answered", "d"),
    ("handled", "handled", "d"),
    ("RNA", "ring_no_answer", "d"),
    ("logged in", "logged_in", "t"),
    ("ready", "ready", "t"),
    ("not ready", "not_ready", "t"),
    ("on call", "on_call", "t"),
    ("on hold", "on_hold", "t"),
    ("wrap-up", "wrapup", "t"),
    ("occupancy", "occupancy", "%"),
    ("AHT", "aht", "s"),
)


def _print_report(args: argparse.Namespace, rows: list[Any], tz: ZoneInfo | None) -> int:
    from acd.stats import report_csv_rows

    out = sys.stdout
    if args.csv:
        csv.writer(out).writerows(report_csv_rows(rows, agents=args.agents, tz=tz))
        return EXIT_OK
    if args.agents:
        names = sorted({a.agent for row in rows for a in row.agents})
        for name in names:
            _print_table(out, f"agent {name}", rows, lambda r, n=name: next(
                a for a in r.agents if a.agent == n), _AGENT_TABLE, tz)
    else:
        names = sorted({q.queue for row in rows for q in row.queues})
        for name in names:
            first = next(q for q in rows[0].queues if q.queue == name)
            title = (f"queue {name} (service level {first.service_level:g} s, "
                     f"short abandon {first.short_abandon:g} s)")
            _print_table(out, title, rows, lambda r, n=name: next(
                q for q in r.queues if q.queue == n), _QUEUE_TABLE, tz)
    return EXIT_OK


def _print_table(out: Any, title: str, rows: list[Any], pick: Any,
                 columns: tuple[tuple[str, str, str], ...], tz: ZoneInfo | None) -> None:
    widths = [max(len(h), 9) for h, _, _ in columns]
    spans = [f"{_local_time(row.start, tz)} - {_local_time(row.end, tz)}" for row in rows]
    first = max((len(s) for s in spans), default=8)
    out.write(f"{title}\n")
    out.write(f"{'interval':<{first}}" + "".join(f" {h:>{w}}" for (h, _, _), w in
                                                zip(columns, widths, strict=True)) + "\n")
    for row, span in zip(rows, spans, strict=True):
        item = pick(row)
        cells = [_text_cell(_attr(item, attr), kind) for _, attr, kind in columns]
        out.write(f"{span:<{first}}" + "".join(f" {c:>{w}}" for c, w in
                                               zip(cells, widths, strict=True)) + "\n")
    out.write("\n")


def _attr(item: Any, attr: str) -> Any:
    if attr == "_other_exits":
        return item.timed_out + item.exited_key + item.exited_empty
    if hasattr(item, "state_time") and attr in item.state_time:
        return item.state_time[attr]
    return getattr(item, attr)


def _text_cell(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "%":
        return f"{value * 100:.1f}%"
    if kind == "s":
        return f"{value:.1f}"
    if kind == "t":
        seconds = round(value)
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return str(value)


def _local_time(epoch: float, tz: ZoneInfo | None) -> str:
    return datetime.fromtimestamp(epoch, tz).strftime("%Y-%m-%d %H:%M")

