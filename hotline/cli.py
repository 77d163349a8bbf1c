"""The ``hotline`` command.

Subcommands::

    hotline serve [--config FILE] [--data-dir DIR] [--sip-port N] [--http-port N] [--grace S]
    hotline config check [--no-secrets] FILE...
    hotline dtmf FILE...
    hotline cdr export (--csv | --jsonl) [--config FILE] [--data-dir DIR] [--since DATE]

Exit status: 0 success, 1 a runtime failure (server missing, unreadable audio, no
database), 2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import csv
import json
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
    export.add_argument("--config", type=Path, metavar="FILE", help="take data_dir from here")
    export.add_argument("--data-dir", type=Path, metavar="DIR", help="where hotline.db is")
    export.add_argument(
        "--since",
        type=_since,
        metavar="DATE",
        help="only calls started at or after DATE (ISO 8601; site/local time if no offset)",
    )
    export.set_defaults(handler=_cdr_export)
    return parser


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

    tz: ZoneInfo | None = None
    data_dir = DEFAULT_DATA_DIR
    if args.config is not None:
        config = load_config(args.config, require_secrets=False)
        data_dir = config.server.data_dir
        if config.server.timezone:
            tz = ZoneInfo(config.server.timezone)
    if args.data_dir is not None:
        data_dir = args.data_dir
    since: datetime | None = args.since
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=tz) if tz is not None else since.astimezone()
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
