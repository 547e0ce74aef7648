"""``python -m o11y_data``: sync, prepare, status, summary, sql, demo, alerts and watch, each a
few lines over the library.

Each command imports what it uses inside its function (pandas, pyarrow, boto3 and fastavro are
loaded only by the commands that need them), so ``status`` and ``summary`` start in a fraction of
a second; new commands follow the same pattern.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import Settings, load_settings
from .errors import O11yError
from .ingest import ranges
from .ingest.store import GenerationHead, Store
from .query import queries
from .query.db import EventsDB
from .text import aligned_table

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = ["agent", "mode", "cycles", "avg_ms", "tools", "errors"]


def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    """Download new live files of the table into the local cache and normalize them."""
    from .ingest.sync import sync

    tty = sys.stderr.isatty()

    def progress(phase: str, done: int, total: int) -> None:
        if tty:
            print(f"\r{phase}: {done}/{total} files", end="", file=sys.stderr, flush=True)

    report = sync(settings, progress=progress, wait=args.wait)
    if tty:
        print("\r\033[K", end="", file=sys.stderr)
    print(report.one_line())
    for key, reason in report.bad_files.items():
        print(f"set aside: {key}: {reason}", file=sys.stderr)
    return 0


def cmd_prepare(settings: Settings, args: argparse.Namespace) -> int:
    """Get the built-in demo ready before the dashboard serves (``make run`` runs this first):
    on a cache that has never been synced, build the demo table and sync it once, so the first
    page draws its charts at once; a cache synced before is used as it is (the app's background
    sync brings it up to date). With a bucket or folder configured it does nothing: the app's
    first sync shows its progress on the page."""
    if settings.kind != "demo":
        print(f"{settings.source_label}: the app syncs it in the background")
        return 0
    number = Store(settings.store_dir).current_number()
    if number > 0:
        print(f"demo data: reusing the cache in {settings.store_dir} (generation {number})")
        return 0
    print("demo data: building it and syncing it once (first run only)…", flush=True)
    args.wait = True  # another process syncing this cache: wait for it, then reuse its work
    return cmd_sync(settings, args)


def cmd_doctor(settings: Settings | None, args: argparse.Namespace) -> int:
    """Check the set-up (configuration, credentials, bucket, REST catalog, table, metadata, delete
    files, newest data, cache) in plain lines, each with its fix; exit 0 when all is well."""
    from .doctor import run_checks

    checks = run_checks(lambda: settings if settings is not None else load_settings())
    for check in checks:
        print(check.line())
    return 0 if all(c.ok for c in checks) else 1


def _fmt_time(value: Any) -> str:
    if value is None:
        return "never"
    age = datetime.now(UTC) - value
    return f"{value:%Y-%m-%d %H:%M:%S} UTC ({_age(age.total_seconds())} ago)"


def _age(seconds: float) -> str:
    """``"23d 4h"``, ``"2h 5m"``, ``"3m 20s"``, ``"42s"``: the unit and the next one down."""
    seconds = max(0, int(seconds))
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for (unit, size), (sub, sub_size) in zip(units, units[1:], strict=False):
        if seconds >= size:
            return f"{seconds // size}{unit} {seconds % size // sub_size}{sub}"
    return f"{seconds}s"


def _status_facts(settings: Settings) -> tuple[dict[str, Any], GenerationHead]:
    """What ``status`` shows, from the generation's head and ``status.json``: no query runs,
    since the sync records the newest times (a store published before that is queried)."""
    store = Store(settings.store_dir)
    head = store.load_head()
    if not queries.times_recorded(head):
        db = EventsDB(settings.store_dir, query_timeout_s=settings.query_timeout_s)
        try:
            return queries.freshness(db), db.generation
        finally:
            db.close()
    status = store.read_status()
    return queries.recorded_freshness(head) | {
        "last_sync_at": queries.utc_time(status.get("last_success_at")),
        "last_error": status.get("last_error"),
    }, head


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    """Show the source, table, snapshot, live files, rows, unparseable rows and freshness."""
    f, head = _status_facts(settings)
    lines = [
        ("source", settings.source_label),
        ("table", f.get("table_prefix") or "(not synced yet)"),
        ("snapshot", f.get("snapshot_id") or "-"),
        ("live files", f"{int(f.get('files') or 0):,}"),
        ("rows", f"{int(f.get('rows') or 0):,}"),
        ("unparseable rows", f"{int(f.get('unparseable') or 0):,}"),
        *(("out of range", line) for line in ranges.describe(head.out_of_range)),
        ("unreadable files", f"{int(f.get('bad_files') or 0):,}"),
        ("newest event", _fmt_time(f.get("newest_ts"))),
        ("newest landed", _fmt_time(f.get("newest_ingest_ts"))),
        ("last sync", _fmt_time(f.get("last_sync_at"))),
        ("cache", str(settings.store_dir)),
    ]
    if f.get("last_error"):
        lines.append(("last error", f["last_error"]))
    for key, bad in sorted(head.bad_files.items()):
        retry = queries.utc_time(bad.next_retry_at)
        when = f"{retry:%Y-%m-%d %H:%M:%S} UTC" if retry else "next sync"
        lines.append(("set aside", f"{key}: {bad.reason} (tried again from {when})"))
    lines += [("warning", w) for w in head.warnings]
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k:<{width}}  {v}")
    return 0


def _filters(args: argparse.Namespace) -> queries.Filters:
    try:
        return queries.Filters(
            start=queries.since(args.since) if args.since else None,
            end=queries.since(args.until) if args.until else None,
            agents=tuple(args.agent or ()),
            modes=tuple(args.mode or ()),
        )
    except ValueError as exc:
        raise O11yError("Bad time", str(exc)) from exc


def cmd_summary(settings: Settings, args: argparse.Namespace) -> int:
    """The seed's summary: agent, mode, cycles, avg_ms, tools, errors by agent and mode."""
    f = _filters(args)
    db = EventsDB(settings.store_dir, query_timeout_s=settings.query_timeout_s)
    try:
        if args.format == "csv":  # csv_out's rules: formulas neutralised, CR/LF quoted
            with tempfile.TemporaryDirectory(prefix="o11y-summary-") as tmp:
                queries.summary_csv(db, f, Path(tmp) / "summary.csv")
                sys.stdout.flush()
                sys.stdout.buffer.write((Path(tmp) / "summary.csv").read_bytes())
                sys.stdout.flush()
            return 0
        found = queries.summary_rows(db, f)
        unparseable = db.generation.unparseable
    finally:
        db.close()
    rows = [[r[c] for c in SUMMARY_COLUMNS] for r in found]
    if args.format == "json":
        print(json.dumps([dict(zip(SUMMARY_COLUMNS, r, strict=True)) for r in rows], indent=1))
    else:
        cells = [["-" if v is None else str(v) for v in r] for r in rows]
        numbers = range(2, len(SUMMARY_COLUMNS))  # agent and mode on the left, figures right
        print(aligned_table(SUMMARY_COLUMNS, cells, align_right=numbers))
        if not rows:
            print("No data for these filters.")
        note = f"source: {settings.source_label}"
        if unparseable:
            note += f"; {unparseable:,} unparseable rows left out"
        print(f"({note})", file=sys.stderr)
    return 0


def cmd_sql(settings: Settings, args: argparse.Namespace) -> int:
    """Run one read-only SELECT over the views events, cycles, unparseable, freshness, the
    rollups (hourly, daily, duration_hist, lag_hist, duration_hist_month, lag_hist_month,
    lag_hist_net), filtered_events and filtered_cycles (these two apply --since/--until/--agent/
    --mode).

    The query runs in a sandbox that can read the store's events and nothing else (no other file,
    no write, no ATTACH/INSTALL/LOAD/SET/PRAGMA), interrupted after --timeout seconds; at most
    --max-rows rows are printed (a note on stderr says when there were more). A refused or failed
    query prints one line and exits 1.
    """
    from .query import sandbox

    limits = sandbox.Limits(timeout_s=args.timeout, max_rows=args.max_rows)
    db = EventsDB(settings.store_dir, query_timeout_s=settings.query_timeout_s)
    try:
        result = sandbox.run_sql(db, args.query, filters=_filters(args), limits=limits)
    finally:
        db.close()
    if args.format == "csv":
        sys.stdout.buffer.write(sandbox.to_csv(result.table))
        sys.stdout.flush()
    elif args.format == "json":
        print(json.dumps(sandbox.to_json_rows(result.table), indent=1, default=str))
    else:
        print(sandbox.text_table(result.table))
    note = f"{result.rows:,} rows in {result.elapsed_s:.2f} s"
    if result.truncated:
        note += f"; stopped at --max-rows {args.max_rows:,}, the query has more"
    print(f"({note})", file=sys.stderr)
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    """(Re)build the demo source; with --out, into that folder instead of the cache."""
    from .ingest import demo

    folder = args.out or demo.demo_folder(settings)
    now = queries.since(args.now) if args.now else None
    demo.build(folder, now=now, seed=args.seed)
    print(f"demo table written to {folder}")
    return 0


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be a number above 0, not {text!r}")
        return value

    return parse


def _print_problems(problems: Sequence[str]) -> None:
    for line in problems:
        print(f"alerts: {line}", file=sys.stderr)


def cmd_alerts(settings: Settings, args: argparse.Namespace) -> int:
    """Evaluate the alert rules once, send the notices due (and any a stopped process left
    pending), print each rule's state. Exit 1 when a rule is in error or the rules file has a
    problem (every other rule was evaluated)."""
    import time

    from . import alerts

    db = EventsDB(settings.store_dir, query_timeout_s=settings.query_timeout_s)
    try:
        ev = alerts.evaluate(settings, db, who=f"alerts pid {os.getpid()}")
    finally:
        db.close()
    if settings.alert_webhooks:
        alerts.deliver_all(settings)  # this run's notices and any a stopped process left
    alerts.ping_heartbeat(settings)
    _print_problems(ev.problems)
    state = alerts.read_state(settings.store_dir)
    for line in alerts.state_lines(state):
        print(line)
    for n in ev.notices:
        print(f"notice: {n.text}")
    for line in alerts.failed_lines(state, since=time.time() - 86400):
        print(line)
    for line in ev.errors:
        print(f"alerts: {line}", file=sys.stderr)
    return 1 if ev.errors or ev.problems else 0


def cmd_watch(settings: Settings, args: argparse.Namespace) -> int:
    """Sync and evaluate the alert rules in a loop (for a service or a terminal); Ctrl-C stops."""
    import signal
    import time

    from . import alerts
    from .errors import SyncBusy
    from .ingest.sync import sync

    def stamp() -> str:
        return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")

    def report(ev: alerts.Evaluation, _: list) -> None:
        for n in ev.notices:
            print(f"{stamp()} notice: {n.text}", flush=True)
        for line in ev.errors:
            print(f"{stamp()} {line}", flush=True)

    def delivered(sent: list[alerts.Delivery]) -> None:
        for d in sent:
            if not d.ok:
                print(f"{stamp()} not delivered to {d.target}: {d.error}", flush=True)

    class Stopped(BaseException):  # not an Exception: the loop's catch-all must not swallow it
        pass

    def stop(*_: object) -> None:
        raise Stopped

    signal.signal(signal.SIGTERM, stop)  # systemd stops the unit with SIGTERM: a clean exit 0
    interval = max(1.0, float(args.interval or settings.sync_interval_s))
    db = EventsDB(settings.store_dir, query_timeout_s=settings.query_timeout_s)
    worker = alerts.AlertWorker(
        settings,
        db,
        on_result=report,
        on_delivered=delivered,
        who=f"watch pid {os.getpid()}",
        interval_s=interval,
    )
    print(f"{stamp()} watching {settings.source_label} every {interval:g}s", flush=True)
    _print_problems((*settings.alert_problems, *alerts.load_rules(settings.alerts_file).problems))
    try:
        while True:
            try:
                line = sync(settings).one_line()
            except SyncBusy:
                line = "sync skipped: another process is syncing this cache"
            except O11yError as exc:
                line = f"sync failed: {exc.one_line()}"
            except Exception as exc:  # a service keeps going; the cause goes to the log
                log.exception("sync failed")
                line = f"sync failed: unexpected {type(exc).__name__}"
            print(f"{stamp()} {line}", flush=True)
            worker.request()  # evaluates and delivers on its own thread
            time.sleep(interval)
    except Stopped:
        print(f"{stamp()} stopped", flush=True)
        return 0
    finally:
        worker.wait_idle(timeout=60)
        worker.stop()
        db.close()


def build_parser() -> argparse.ArgumentParser:
    from pathlib import Path

    p = argparse.ArgumentParser(prog="python -m o11y_data", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sync", help=cmd_sync.__doc__, description=cmd_sync.__doc__)
    s.add_argument("--wait", action="store_true", help="wait for a running sync instead of failing")
    s.set_defaults(func=cmd_sync)
    s = sub.add_parser(
        "prepare",
        help="build and sync the demo once before serving (make run)",
        description=cmd_prepare.__doc__,
    )
    s.set_defaults(func=cmd_prepare)
    s = sub.add_parser("doctor", help=cmd_doctor.__doc__, description=cmd_doctor.__doc__)
    s.set_defaults(func=cmd_doctor)
    s = sub.add_parser("status", help=cmd_status.__doc__, description=cmd_status.__doc__)
    s.set_defaults(func=cmd_status)
    s = sub.add_parser("summary", help=cmd_summary.__doc__, description=cmd_summary.__doc__)
    s.add_argument("--since", help="ISO-8601 time or 15m/1h/7d before now (on ts)")
    s.add_argument("--until", help="ISO-8601 time or 15m/1h/7d before now (exclusive)")
    s.add_argument("--agent", action="append", help="only this agent (repeatable)")
    s.add_argument("--mode", action="append", help="only this mode (repeatable)")
    s.add_argument("--format", choices=["table", "csv", "json"], default="table")
    s.set_defaults(func=cmd_summary)
    s = sub.add_parser(
        "sql",
        help="run one read-only SELECT over the events (sandboxed)",
        description=cmd_sql.__doc__,
    )
    s.add_argument("query", help='e.g. "SELECT mode, count(*) FROM cycles GROUP BY mode"')
    s.add_argument("--format", choices=["table", "csv", "json"], default="table")
    s.add_argument("--timeout", type=_positive(float), default=10.0, help="seconds (default 10)")
    s.add_argument(
        "--max-rows", type=_positive(int), default=10_000, help="rows at most (default 10,000)"
    )
    s.add_argument("--since", help="filtered_* views: ISO-8601 time or 15m/1h/7d before now")
    s.add_argument("--until", help="filtered_* views: end, exclusive")
    s.add_argument("--agent", action="append", help="filtered_* views: this agent (repeatable)")
    s.add_argument("--mode", action="append", help="filtered_* views: this mode (repeatable)")
    s.set_defaults(func=cmd_sql)
    s = sub.add_parser("demo", help=cmd_demo.__doc__, description=cmd_demo.__doc__)
    s.add_argument("--out", type=Path, help="folder to write the demo table into")
    s.add_argument("--now", help="pretend it is this time (ISO-8601), for reproducible data")
    s.add_argument("--seed", type=int, default=7)
    s.set_defaults(func=cmd_demo)
    s = sub.add_parser("alerts", help=cmd_alerts.__doc__, description=cmd_alerts.__doc__)
    s.set_defaults(func=cmd_alerts)
    s = sub.add_parser("watch", help=cmd_watch.__doc__, description=cmd_watch.__doc__)
    s.add_argument(
        "--interval", type=float, help="seconds between syncs (default O11Y_SYNC_INTERVAL, 60)"
    )
    s.set_defaults(func=cmd_watch)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from .logs import setup_logging

    args = build_parser().parse_args(argv)
    try:
        if args.func is cmd_doctor:  # doctor reports a configuration error as its first check
            try:
                settings = load_settings()
            except O11yError:
                return cmd_doctor(None, args)
        else:
            settings = load_settings()
        setup_logging(settings)
        return int(args.func(settings, args))
    except O11yError as exc:
        log.info("%s failed: %s", args.command, exc.one_line(), exc_info=exc)
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not a data problem: still one line, never a traceback
        log.exception("%s failed unexpectedly", args.command)
        print(f"error: unexpected {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 2
