"""``python -m o11y_data``: the agent network's events from the command line.

Commands: sync, prepare, doctor, status, summary, sql, demo, alerts and watch, each a few lines
over the library; user-facing help (examples, exit codes) is in ``HELP`` below and in docs/cli.md.

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
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from . import routes
from .config import Settings, load_settings
from .errors import O11yError
from .ingest import ranges
from .ingest.store import GenerationHead, Store
from .query import queries
from .query.db import EventsDB
from .text import aligned_table, clip

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = ["agent", "mode", "cycles", "avg_ms", "tools", "errors"]

# Exit codes (documented in --help's epilog and docs/cli.md).
EXIT_OK = 0  # done (an empty answer, "No data", is an answer)
EXIT_FAILED = 1  # the command could not do its job: configuration, source, cache, query, rules
EXIT_USAGE = 2  # the command line is wrong (argparse's own code)
EXIT_UNKNOWN_NAME = 3  # an --agent or --mode the data has never seen (the nearest are named)
EXIT_BUG = 70  # an unexpected failure: a bug (its cause is in the log)
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_CLOSED_PIPE = 141  # stdout was closed early (``| head``): stops quietly, as a shell's 128+13
NEAREST = 3  # known names suggested for an unknown one
FORMATS = ["table", "csv", "json"]


class UnknownName(O11yError):
    """An --agent or --mode value that no event has (a typo, most often)."""


@dataclass(frozen=True)
class Window:
    """The time window a command reads: a preset (``24h``, ``all``) or --since/--until."""

    label: str
    start: datetime | None
    end: datetime | None

    def line(self, *, applies_to: str = "") -> str:
        """``window: last 24h (2026-12-03 10:00 → 2026-12-04 10:00 UTC)``."""
        if self.start is None and self.end is None:
            return f"window: {self.label}{applies_to}"
        start = "the first event" if self.start is None else f"{self.start:%Y-%m-%d %H:%M}"
        end = "now" if self.end is None else f"{self.end:%Y-%m-%d %H:%M}"
        return f"window: {self.label} ({start} → {end} UTC){applies_to}"


def window_of(args: argparse.Namespace, *, now: datetime | None = None) -> Window:
    """--since/--until when given, else the --range preset (the UI's default, 24h)."""
    now = now or datetime.now(UTC)
    try:
        if args.since or args.until:
            start = queries.since(args.since, now=now) if args.since else None
            end = queries.since(args.until, now=now) if args.until else None
            return Window("--since/--until", start, end or (now if start else None))
    except ValueError as exc:
        raise O11yError("Bad time", str(exc)) from exc
    span = routes.RANGE_PRESETS[args.range]
    if span is None:
        return Window("all time", None, None)
    return Window(f"last {args.range}", now - timedelta(seconds=span), now)


def say(line: str) -> None:
    """A note for the person at the terminal: stderr, so stdout stays the data."""
    print(line, file=sys.stderr)


def check_names(db: EventsDB, args: argparse.Namespace) -> None:
    """:class:`UnknownName` for an --agent or --mode no event has, naming the nearest known."""
    import difflib

    known = queries.choices(db)
    for option, column in (("agent", "agent"), ("mode", "mode")):
        names = known.get(column, [])
        for given in getattr(args, option) or ():
            if given in names:
                continue
            near = difflib.get_close_matches(given, names, n=NEAREST, cutoff=0.5)
            hint = (
                f"nearest: {', '.join(clip(n, 60) for n in near)}"
                if near
                else f"{len(names):,} {option}s are known"
            )
            raise UnknownName(f"No {option} named {clip(given, 60)!r} in the data", hint)


def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    """Download new live files of the table into the local cache and normalize them."""
    from . import sync

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
    from .ingest import horizon
    from .query import route

    f, head = _status_facts(settings)
    us = head.raw_from_us
    raw_from = None if us is None else horizon.as_datetime(us)
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
        ("raw rows", route.raw_rows_line(raw_from, settings.raw_horizon_s)),
        ("engine", route.engine_line(settings)),
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
    say("window: all time (the whole cache)")
    return 0


def _filters(window: Window, args: argparse.Namespace) -> queries.Filters:
    return queries.Filters(
        start=window.start,
        end=window.end if args.until else None,  # "now" is open-ended, as on the screens
        agents=tuple(args.agent or ()),
        modes=tuple(args.mode or ()),
    )


def cmd_summary(settings: Settings, args: argparse.Namespace) -> int:
    """Cycles, mean duration, tool calls and errors per agent and mode."""
    window = window_of(args)
    f = _filters(window, args)
    db = EventsDB(settings.store_dir, query_timeout_s=settings.query_timeout_s)
    try:
        check_names(db, args)
        from .query import route  # local, or the engine before the raw horizon

        if args.format == "csv" and route.summary_needs_engine(db, f):
            from .query.csv_out import table_csv

            data = table_csv(route.summary(db, settings, f)[0])
            say(window.line())
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            return 0
        if args.format == "csv":  # csv_out's rules: formulas neutralised, CR/LF quoted
            with tempfile.TemporaryDirectory(prefix="o11y-summary-") as tmp:
                queries.summary_csv(db, f, Path(tmp) / "summary.csv")
                say(window.line())
                sys.stdout.flush()
                sys.stdout.buffer.write((Path(tmp) / "summary.csv").read_bytes())
                sys.stdout.flush()
            return 0
        found, where = route.summary(db, settings, f)
        unparseable = db.generation.unparseable
    finally:
        db.close()
    say(window.line())  # once the answer is there: a failure is one line
    rows = [[r[c] for c in SUMMARY_COLUMNS] for r in found]
    if args.format == "json":
        print(json.dumps([dict(zip(SUMMARY_COLUMNS, r, strict=True)) for r in rows], indent=1))
    else:
        cells = [["-" if v is None else str(v) for v in r] for r in rows]
        numbers = range(2, len(SUMMARY_COLUMNS))  # agent and mode on the left, figures right
        print(aligned_table(SUMMARY_COLUMNS, cells, align_right=numbers))
        if not rows:
            print("No data for these filters in this window.")
        note = f"source: {settings.source_label}; {where}"
        if unparseable:
            note += f"; {unparseable:,} unparseable rows left out"
        say(f"({note})")
    return EXIT_OK


def cmd_sql(settings: Settings, args: argparse.Namespace) -> int:
    """Run one read-only SELECT over the events (sandboxed)."""
    from .query import route, sandbox

    limits = sandbox.Limits(timeout_s=args.timeout, max_rows=args.max_rows)
    window = window_of(args)
    db = EventsDB(settings.store_dir, query_timeout_s=settings.query_timeout_s)
    try:
        check_names(db, args)
        result = sandbox.run_sql(db, args.query, filters=_filters(window, args), limits=limits)
        horizon = route.console_notice(db, args.query)
    finally:
        db.close()
    say(window.line(applies_to="; for filtered_events and filtered_cycles (the others: all time)"))
    if args.format == "csv":
        sys.stdout.buffer.write(sandbox.to_csv(result.table))
        sys.stdout.flush()
    elif args.format == "json":
        print(json.dumps(sandbox.to_json_rows(result.table), indent=1, default=str))
    else:
        print(sandbox.text_table(result.table))
    if horizon:  # events holds the horizon's rows only: never a silently short answer
        print(f"(note: {horizon})", file=sys.stderr)
    note = f"{result.rows:,} rows in {result.elapsed_s:.2f} s"
    if result.truncated:
        note += f"; stopped at --max-rows {args.max_rows:,}, the query has more"
    say(f"({note})")
    return EXIT_OK


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
    """Check the alert rules once, send the notices due, and print each rule's state."""
    import time

    from . import alerts

    now = datetime.now(UTC)
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
    if ev.errors or ev.problems:
        return EXIT_FAILED  # its problems are the lines on stderr, one each
    say(f"window: each rule's own, ending now ({now:%Y-%m-%d %H:%M} UTC)")
    return EXIT_OK


def cmd_watch(settings: Settings, args: argparse.Namespace) -> int:
    """Sync and evaluate the alert rules in a loop (for a service or a terminal); Ctrl-C stops."""
    import signal
    import time

    from . import alerts, sync
    from .errors import SyncBusy

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


PROG = "python -m o11y_data"

EXIT_CODES = f"""exit codes:
  {EXIT_OK}    done (an empty answer, "No data for these filters", is still 0)
  {EXIT_FAILED}    failed: configuration, source, cache or query problem; for alerts, a rule in
       error or a problem in the rules file; for doctor, a check that did not pass
  {EXIT_USAGE}    the command line is wrong (unknown option, bad value)
  {EXIT_UNKNOWN_NAME}    --agent or --mode names nothing in the data (the nearest names are shown)
  {EXIT_BUG}   unexpected failure, a bug: one line here, the cause in the log
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
  {EXIT_CLOSED_PIPE}  the output was closed early, e.g. by `| head`: stops quietly"""

MAIN_HELP = """Look at the agent network's events from a terminal: bring them into the local cache,
check the set-up, and ask questions. The dashboard (`make run`) reads the same cache.

Notes for people go to stderr (the window used, row counts); stdout holds only the answer, so
`--format csv` and `--format json` can be piped as they are."""

MAIN_EXAMPLES = f"""examples:
  {PROG} doctor                       is everything set up? one line per check, with its fix
  {PROG} sync                         fetch what is new from the bucket
  {PROG} summary                      cycles and errors per agent and mode, last 24h
  {PROG} summary --range 7d --format csv > week.csv
  {PROG} sql "SELECT mode, count(*) AS cycles FROM cycles GROUP BY mode"
  {PROG} alerts                       check the alert rules now

Run `{PROG} COMMAND --help` for a command's options and examples. More in docs/cli.md.

{EXIT_CODES}"""


@dataclass(frozen=True)
class Help:
    """A command's help for people: one line for the command list, a paragraph, examples."""

    line: str
    text: str
    examples: tuple[str, ...]

    def epilog(self) -> str:
        lines = "\n".join(f"  {PROG} {e}" for e in self.examples)
        return f"examples:\n{lines}\n\n{EXIT_CODES}"


HELP = {
    "sync": Help(
        "fetch new events from the bucket into the local cache",
        "Download the table's new live files into the local cache and prepare them for the "
        "dashboard and the other commands. Prints one line: what was new.",
        ("sync", "sync --wait          wait for a sync already running instead of failing"),
    ),
    "prepare": Help(
        "get the demo ready before the dashboard serves (make run runs it)",
        "On a cache never synced, build the demo table and sync it once, so the dashboard's "
        "first page draws at once; a synced cache is reused as it is. With a bucket or folder "
        "configured it does nothing: the app syncs it in the background.",
        ("prepare",),
    ),
    "doctor": Help(
        "check the set-up, one line per check with its fix",
        "Check the configuration, credentials, bucket, catalog, table, newest data and cache, "
        "one line each with what to do when it fails. Exits 0 when every check passes.",
        ("doctor",),
    ),
    "status": Help(
        "what the cache holds: source, rows, newest event, last sync",
        "Show where the events come from, how many rows and files the cache holds, rows that "
        "could not be read, and how fresh the newest event and the last sync are.",
        ("status",),
    ),
    "summary": Help(
        "cycles, mean duration, tools and errors per agent and mode",
        "Per agent and mode: cycles, avg_ms (mean duration), tools (tool calls) and errors, "
        "agents in order, most cycles first. The window is the dashboard's default, the last "
        "24h, unless --range or --since/--until say otherwise; it is printed to stderr.",
        (
            "summary                             the last 24h",
            "summary --range all                 everything in the cache",
            "summary --since 2026-12-01 --until 2026-12-02",
            "summary --agent did:cf:abc --mode think --format json",
            "summary --format csv | head -3",
        ),
    ),
    "sql": Help(
        "ask your own question in SQL (one read-only SELECT)",
        "Run one read-only SELECT (DuckDB SQL) over the views events, cycles, unparseable, "
        "freshness, the rollups hourly, daily, duration_hist, lag_hist, duration_hist_month, "
        "lag_hist_month, lag_hist_net, and filtered_events, filtered_cycles, which keep to the "
        "window (--range, default 24h, or --since/--until) and --agent/--mode. The query reads "
        "the cache and nothing else (no other file, no writing, no settings) and is stopped "
        "after --timeout seconds; at most --max-rows rows are printed. The SQL console in the "
        "dashboard lists every view's columns.",
        (
            'sql "SELECT mode, count(*) AS cycles FROM filtered_cycles GROUP BY mode"',
            'sql "SELECT agent, max(ts) AS last_seen FROM cycles GROUP BY agent" --format csv',
            'sql "SELECT * FROM filtered_cycles WHERE errors > 0" --range 1h --agent did:cf:abc',
        ),
    ),
    "demo": Help(
        "build a demo table of made-up agents (no bucket needed)",
        "Build (or rebuild) a demo Iceberg table of made-up agents, for trying the dashboard "
        "without a bucket; with --out, into that folder instead of the cache.",
        ("demo", "demo --out /tmp/demo --now 2026-12-01T12:00:00Z"),
    ),
    "alerts": Help(
        "check the alert rules now and send the notices due",
        "Evaluate every alert rule once, send the notices that are due (and any a stopped "
        "process left waiting), and print one line per rule: its state and what it saw. Each "
        "rule reads its own window, ending now.",
        ("alerts", "O11Y_ALERTS_FILE=alerts.toml python -m o11y_data alerts"),
    ),
    "watch": Help(
        "sync and check the alert rules in a loop (a service); Ctrl-C stops",
        "Sync and evaluate the alert rules every --interval seconds, printing one line per "
        "sync and per notice, until stopped (Ctrl-C, or SIGTERM from a service manager).",
        ("watch", "watch --interval 120"),
    ),
}


def _command(sub: Any, name: str, func: Any) -> argparse.ArgumentParser:
    h = HELP[name]
    s = sub.add_parser(
        name,
        help=h.line,
        description=textwrap.fill(h.text, 78),
        epilog=h.epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.set_defaults(func=func)
    return s


def _window_options(s: argparse.ArgumentParser, *, views: str = "") -> None:
    presets = ", ".join(routes.RANGE_PRESETS)
    s.add_argument(
        "--range",
        choices=list(routes.RANGE_PRESETS),
        default=routes.DEFAULT_RANGE,
        metavar="RANGE",
        help=f"{views}how far back from now: {presets} (default {routes.DEFAULT_RANGE}, as the "
        "dashboard)",
    )
    s.add_argument(
        "--since", help=f"{views}start: a time (2026-12-01T08:00Z) or 15m/1h/7d ago; beats --range"
    )
    s.add_argument("--until", help=f"{views}end (not included): a time or 15m/1h/7d ago")
    s.add_argument("--agent", action="append", help=f"{views}only this agent (repeatable)")
    s.add_argument("--mode", action="append", help=f"{views}only this mode (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=MAIN_HELP,
        epilog=MAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    s = _command(sub, "sync", cmd_sync)
    s.add_argument("--wait", action="store_true", help="wait for a running sync instead of failing")
    _command(sub, "prepare", cmd_prepare)
    _command(sub, "doctor", cmd_doctor)
    _command(sub, "status", cmd_status)
    s = _command(sub, "summary", cmd_summary)
    _window_options(s)
    s.add_argument(
        "--format", choices=FORMATS, default="table", help="table for people (default), csv or json"
    )
    s = _command(sub, "sql", cmd_sql)
    s.add_argument("query", help='one SELECT, e.g. "SELECT mode, count(*) FROM cycles GROUP BY 1"')
    s.add_argument(
        "--format", choices=FORMATS, default="table", help="table for people (default), csv or json"
    )
    s.add_argument("--timeout", type=_positive(float), default=10.0, help="seconds (default 10)")
    s.add_argument(
        "--max-rows", type=_positive(int), default=10_000, help="rows at most (default 10,000)"
    )
    _window_options(s, views="filtered_* views: ")
    s = _command(sub, "demo", cmd_demo)
    s.add_argument("--out", type=Path, help="folder to write the demo table into")
    s.add_argument("--now", help="pretend it is this time (ISO-8601), for reproducible data")
    s.add_argument("--seed", type=int, default=7, help="random seed of the made-up agents")
    _command(sub, "alerts", cmd_alerts)
    s = _command(sub, "watch", cmd_watch)
    s.add_argument(
        "--interval", type=float, help="seconds between syncs (default O11Y_SYNC_INTERVAL, 60)"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code (EXIT_*). A closed stdout (``| head``) ends it quietly,
    the way the Python docs advise for SIGPIPE: stdout goes to /dev/null so the interpreter's
    own flush at exit cannot complain either."""
    try:
        code = _run(build_parser().parse_args(argv))
        sys.stdout.flush()  # inside the try: a pipe closed after the last write fails here
        return code
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_CLOSED_PIPE


def _run(args: argparse.Namespace) -> int:
    from .logs import setup_logging

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
    except BrokenPipeError:
        raise
    except UnknownName as exc:
        say(f"error: {exc.one_line()}")
        return EXIT_UNKNOWN_NAME
    except O11yError as exc:
        log.info("%s failed: %s", args.command, exc.one_line(), exc_info=exc)
        say(f"error: {exc.one_line()}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        say("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug, not a data problem: still one line, never a traceback
        log.exception("%s failed unexpectedly", args.command)
        say(f"error: unexpected {type(exc).__name__}: {exc}".splitlines()[0])
        return EXIT_BUG
