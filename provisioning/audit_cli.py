"""`appliance audit verify|export|rotate`: prove the audit log intact, hand it to a reviewer, apply its retention."""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timedelta

from appliance.config import load_config
from appliance.errors import ApplianceError
from appliance.platform import audit


def _log(args: argparse.Namespace) -> audit.AuditLog:
    from appliance.platform.context import open_appliance

    return audit.sink(open_appliance(load_config(args.config)))


def parse_time(value: str, *, end: bool = False) -> float:
    """ISO 8601 date or date-time → epoch seconds. Without an offset: the box's local time.

    A bare date as an --until bound means the end of that day (the whole day is included).
    """
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day) + (timedelta(days=1) if end else timedelta())
        else:
            moment = datetime.fromisoformat(value)
    except ValueError:
        raise ApplianceError(f"'{value}' is not an ISO 8601 date or date-time (e.g. 2025-03-01 or "
                             "2025-03-01T08:00+01:00)") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.timestamp()


def _cmd_verify(args: argparse.Namespace) -> int:
    result = _log(args).verify()
    print(result, file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def _cmd_export(args: argparse.Namespace) -> int:
    log = _log(args)
    if not args.no_verify:
        result = log.verify()
        if not result.ok:
            print(f"{result}\nThe log does not verify; nothing exported (use --no-verify to export anyway).",
                  file=sys.stderr)
            return 1
    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until, end=True) if args.until else None
    records = audit.iter_entries(log, since=since, until=until)
    out = sys.stdout
    if args.format == "csv":
        out.write(audit.csv_text(records))
    else:
        for rec in records:
            out.write(audit.canonical(rec).decode("ascii") + "\n")  # the signed line, byte for byte
    return 0


def _cmd_rotate(args: argparse.Namespace) -> int:
    if args.keep_days < 1:
        raise ApplianceError("--keep-days must be at least 1")
    dropped = _log(args).rotate(args.keep_days)
    print(f"Dropped {dropped} audit records older than {args.keep_days} days.")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="the tamper-evident audit log").add_subparsers(dest="sub", required=True)
    p.add_parser("verify", help="check every record's MAC, the hash chain and the head (exit 1 if not intact)"
                 ).set_defaults(fn=_cmd_verify)
    e = p.add_parser("export", help="print records in a time range (verifies the log first)")
    e.add_argument("--since", help="ISO date or date-time, inclusive (default: the start)")
    e.add_argument("--until", help="ISO date (whole day included) or date-time, exclusive (default: now)")
    e.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    e.add_argument("--no-verify", action="store_true", help="export even if the log does not verify")
    e.set_defaults(fn=_cmd_export)
    r = p.add_parser("rotate", help="drop records older than the audit retention (the purge does this)")
    r.add_argument("--keep-days", type=int, default=audit.DEFAULT_AUDIT_RETENTION_DAYS)
    r.set_defaults(fn=_cmd_rotate)
