"""All-time percentile queries with daily-only and monthly histogram routing, side by side.

    .venv/bin/python -m bench.hist_levels                       # 2.5M events over 400 days
    .venv/bin/python -m bench.hist_levels --events 5m --days 730 --root /tmp/hist-bench

Writes a plain folder of zstd Parquet (the pipeline's unstructured shape) in DuckDB, with
long-tailed durations (lognormal) and ingest lags (lognormal seconds, 1 % delayed by hours), syncs
it into a fresh cache (kept under ``--root`` and reused when it already holds this many events),
then times the screens' all-time percentile calls on the same store and in the same run, once
reading whole months from ``duration_hist_month``/``lag_hist_month`` and once whole days only
(``EventsDB.hist_months``). *first* is the call on a fresh ``EventsDB`` (as after a new
generation; view building excluded), *warm* the best of five repeats (on a shared machine the
best is the call's own cost, the median mostly the neighbours'); the two routings alternate call
by call, so the machine's load falls on both alike. Also prints the histogram
tables' row counts.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from bench.gen import file_ranges, parse_size

AGENTS = 32
FILES = 24
REPEATS = 5
POINTS_HEALTH = 80  # pages/health.py: P.bucket_s(c, points=80)


def write_source(folder: Path, *, events: int, days: int, end: datetime) -> None:
    """``events`` events over the ``days`` days before ``end`` as ``FILES`` Parquet files: 88 %
    cycles, ``AGENTS`` agents, four modes, durations and lags long-tailed, ~10 % erred."""
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for f, lo, hi in file_ranges(events, FILES):
            dest = folder / f"part-{f:03d}.parquet"
            con.execute(
                f"""
                COPY (
                  WITH r AS (
                    SELECT i, ?::TIMESTAMPTZ - to_microseconds(
                             CAST((? - i) * ? * 86400e6 / ? AS BIGINT)) AS ts,
                           CAST(hash(i * 7 + 1) % 1000000007 AS BIGINT) AS h,
                           (hash(i * 7 + 2) % 1000000 + 0.5) / 1e6 AS u1,
                           (hash(i * 7 + 3) % 1000000 + 0.5) / 1e6 AS u2
                    FROM range({lo}, {hi}) t(i)
                  ), z AS (
                    SELECT *, sqrt(-2 * ln(u1)) * cos(2 * pi() * u2) AS z1,
                           sqrt(-2 * ln(u1)) * sin(2 * pi() * u2) AS z2
                    FROM r
                  )
                  SELECT ts + to_microseconds(CAST(
                           (exp(1.5 + 1.2 * z2) + CASE WHEN h % 100 = 0
                            THEN 3600 * (1 + h % 7) ELSE 0 END) * 1e6 AS BIGINT)) AS __ingest_ts,
                         json_object(
                           'event_type', CASE WHEN h % 100 < 88 THEN 'agent.cycle'
                                              WHEN h % 100 < 96 THEN 'agent.wake'
                                              ELSE 'agent.message' END,
                           'agent', 'did:cf:agent' || lpad(CAST((h // 100) % {AGENTS} AS VARCHAR),
                                                           2, '0'),
                           'mode', ['think', 'think', 'reflection', 'housekeeping'][
                                     1 + (h // 10000) % 4],
                           'durationMs', CAST(exp(9 + 1.3 * z1) AS BIGINT),
                           'toolCalls', (h // 40000) % 7,
                           'errors', CASE WHEN (h // 300000) % 10 = 0
                                          THEN 1 + (h // 3000000) % 3 ELSE 0 END,
                           '_ts', strftime(ts, '%Y-%m-%dT%H:%M:%S.%gZ')
                         )::VARCHAR AS value
                  FROM z ORDER BY ts
                ) TO '{dest}' (FORMAT parquet, COMPRESSION zstd)
                """,
                [end, events, days, events],
            )
    finally:
        con.close()


def build(root: Path, *, events: int, days: int) -> Path:
    """The synced store under ``root`` (written and synced unless it is already there)."""
    from o11y_data import load_settings, sync
    from o11y_data.query.db import EventsDB

    env = {
        "O11Y_SOURCE_DIR": str(root / "src"),
        "O11Y_CACHE_DIR": str(root / "cache"),
        "O11Y_BACKGROUND_SYNC": "0",
        "O11Y_AGENTS_FILE": str(root / "none.toml"),
    }
    settings = load_settings(env, secrets_paths=[])
    if (root / "src").is_dir():
        db = EventsDB(settings.store_dir)
        rows, ok = int(db.generation.rows), db.rollups_ok
        db.close()
        if rows == events and ok:
            print(f"[hist] reusing the store under {root} ({rows:,} events)")
            return settings.store_dir
    t = time.monotonic()
    write_source(root / "src", events=events, days=days, end=datetime.now(UTC))
    print(f"[hist] {events:,} events over {days} days written in {time.monotonic() - t:.1f}s")
    t = time.monotonic()
    report = sync(settings)
    print(f"[hist] synced in {time.monotonic() - t:.1f}s: {report}")
    return settings.store_dir


def calls(db: Any) -> dict[str, Callable[[], Any]]:
    """The screens' all-time calls that carry histogram percentiles (as the pages make them)."""
    from o11y_data.query import queries as q

    f = q.Filters()
    lo, hi = q.time_range(db, f)
    lag_bucket = q.pick_bucket(lo, hi, points=POINTS_HEALTH)
    return {
        "mode_breakdown(by_agent)": lambda: q.mode_breakdown(db, f, by_agent=True),
        "agent_overview": lambda: q.agent_overview(db, f),
        "totals (p50/p95/p99)": lambda: q.totals(db, f),
        "summary(extended)": lambda: q.summary(db, f, extended=True),
        f"ingest_lag_over_time({lag_bucket // 86400}d)": lambda: q.ingest_lag_over_time(
            db, f, bucket_s=lag_bucket
        ),
        "ingest_lag_over_time(1d)": lambda: q.ingest_lag_over_time(db, f, bucket_s=86400),
    }


def timed(store_dir: Path, months: bool, name: str) -> tuple[float, float, Any]:
    """(first, best warm) seconds of call ``name`` on a fresh EventsDB, and its result."""
    from o11y_data.query.db import EventsDB

    db = EventsDB(store_dir)
    try:
        db.hist_months = months
        fn = calls(db)[name]  # time_range (memoised per generation) is not the call's cost
        t = time.perf_counter()
        result = fn()
        first = time.perf_counter() - t
        warm = []
        for _ in range(REPEATS):
            t = time.perf_counter()
            fn()
            warm.append(time.perf_counter() - t)
        return first, min(warm), result
    finally:
        db.close()


def main(argv: list[str] | None = None) -> None:
    import pandas as pd

    from o11y_data.query.db import EventsDB

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", default="2500k", help="2500k, 5m …")
    ap.add_argument("--days", type=int, default=400)
    ap.add_argument("--root", type=Path, default=None, help="keep the store here (reused)")
    args = ap.parse_args(argv)
    events = parse_size(args.events)
    root = args.root or Path(tempfile.mkdtemp(prefix="hist-levels-"))
    store_dir = build(root, events=events, days=args.days)
    load0 = os.getloadavg()

    db = EventsDB(store_dir)
    sizes = {
        t: db.fetch(f"SELECT count(*) AS n FROM {t}")[0]["n"]
        for t in ("duration_hist", "duration_hist_month", "lag_hist", "lag_hist_month")
    }
    names = list(calls(db))
    db.close()
    print(
        "[hist] rows: "
        + ", ".join(f"{t} {n:,}" for t, n in sizes.items())
        + f" ({sizes['duration_hist'] / max(sizes['duration_hist_month'], 1):.1f}× and "
        f"{sizes['lag_hist'] / max(sizes['lag_hist_month'], 1):.1f}× fewer monthly)"
    )
    timed(store_dir, True, names[0])  # the first read of the files off disk, counted for neither
    rows = []
    for i, name in enumerate(names):
        order = (False, True) if i % 2 == 0 else (True, False)
        got = {m: timed(store_dir, m, name) for m in order}
        days_r, months_r = got[False][2], got[True][2]
        same = days_r.equals(months_r) if isinstance(days_r, pd.DataFrame) else days_r == months_r
        if not same and isinstance(days_r, pd.DataFrame):
            pd.testing.assert_frame_equal(days_r, months_r)  # says where they differ
        assert same, name  # a silent wrong number is worse than a slow one
        rows.append((name, got[False][:2], got[True][:2]))
    print()
    print(f"All-time percentile calls, {events:,} events over {args.days} days (ms; same store, "
          f"same run; first = fresh EventsDB, warm = best of {REPEATS}):")  # fmt: skip
    print("| call | days only: first | warm | months: first | warm | ratio first | ratio warm |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, (d_first, d_warm), (m_first, m_warm) in rows:
        print(
            f"| {name} | {d_first * 1e3:.0f} | {d_warm * 1e3:.0f} | {m_first * 1e3:.0f} "
            f"| {m_warm * 1e3:.0f} | {d_first / m_first:.1f}× | {d_warm / m_warm:.1f}× |"
        )
    print(
        "ingest_lag_over_time's buckets (at most 7 days) hold no whole month, so it reads days "
        "either way: its two columns run the same SQL and differ by the machine's noise only."
    )
    load1 = os.getloadavg()
    print(
        f"load average: start {' '.join(f'{x:.1f}' for x in load0)}, "
        f"end {' '.join(f'{x:.1f}' for x in load1)} (2 shared cores); results equal: yes"
    )


if __name__ == "__main__":
    main()
