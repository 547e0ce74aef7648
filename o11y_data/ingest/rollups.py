"""Rollups kept at sync time, so long windows read thousands of rows instead of millions.

Seven tables, stored as zstd Parquet under ``rollups/``, one file per table and calendar month
(UTC), named in the generation and published atomically with it:

- ``hourly`` and ``daily`` (``t`` = the hour or day): per event type × agent × mode × ``erred``
  (``errors > 0``): events, errors, duration count and sum, tool-call count and sum, first and
  last ``ts``, ingest-lag count and sum (µs). Counts and sums are exact, so every count, sum, mean
  and rate the screens show can be answered exactly from them.
- ``duration_hist`` (cycles) and ``lag_hist`` (every event type), per day × agent × mode ×
  ``erred`` (and event type for lag): log-spaced histograms that merge by addition. A value ``v``
  falls in bucket ``k`` (:data:`GAMMA`-spaced); the bucket's representative is within
  :data:`ALPHA` (0.9 %) of every value in it, so a percentile read from merged histograms is within
  1 % of the exact ``quantile_cont`` (docs/events.md: approximate only past 7 days, marked "≈").

- ``duration_hist_month`` and ``lag_hist_month``: the same histograms per calendar month (``t`` =
  the month's first instant, UTC), the sum of the month's daily rows. A day × agent × mode holds
  100-200 duration buckets, so a year of daily histograms is a third of the raw rows; a month
  holds few more buckets than one of its days, so all-time percentiles read several times fewer
  rows from months (queries.py reads whole months here, the other whole days from the daily
  tables, the partial days at the edges from the raw rows).

- ``lag_hist_net``: the daily lag histogram summed over every event type, agent, mode and
  ``erred`` (``t`` = the day, ``k``, ``n``), written from the day's ``lag_hist`` file like the
  monthly ones: an unfiltered lag over time reads a few hundred rows a day, not tens of
  thousands.

Histograms are kept per day, not per hour: at hour grain a histogram holds about as many buckets
as cycles, and the partial days at a window's edges are bucketed from the raw rows at query time.

A sync recomputes exactly the days its changes touch (days of new rows, days of rows of files
that left the snapshot) from the segments and rewrites only those days' months: a month's file of
each table, its monthly histograms summed from its daily histogram file just written (a month's
daily rows, not the segments). A store without rollups (or of an older :data:`VERSION`) is rolled
up whole.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .normalize import sql_literal

VERSION = 3  # 2: the monthly histograms; 3: the network's lag histogram
ALPHA = 0.009  # relative error of a histogram bucket's representative value
GAMMA = (1 + ALPHA) / (1 - ALPHA)
# A monthly histogram table and the daily one it sums (written after it, hence TABLES' order).
MONTHLY = {"duration_hist_month": "duration_hist", "lag_hist_month": "lag_hist"}
# The network's daily lag histogram: lag_hist summed over its keys (event type, agent, mode,
# erred), so the health page's unfiltered lag over time reads a day's ~200 buckets, not ~50,000.
NET = {"lag_hist_net": "lag_hist"}
DERIVED = {**MONTHLY, **NET}
TABLES = ("hourly", "daily", "duration_hist", "lag_hist", *DERIVED)
# How close to a bucket edge (in units of ln(GAMMA)) a value's key is worked out by this process's
# DuckDB rather than an engine's (see engine_rows_sql): far beyond any ulp of any libm's ln.
NEAR = 1e-6
NO_TIME = "none"  # the month of rows without a ts (no _ts and no __ingest_ts)

MACROS = f"""
CREATE OR REPLACE MACRO o11y_hist_key(v) AS CASE
    WHEN v = 0 THEN 0
    WHEN v > 0 THEN 1 + CAST(ceil(ln(v) / {math.log(GAMMA)!r}) AS BIGINT)
    ELSE -1 - CAST(ceil(ln(-v) / {math.log(GAMMA)!r}) AS BIGINT) END;
CREATE OR REPLACE MACRO o11y_hist_value(k) AS CASE
    WHEN k = 0 THEN 0.0
    WHEN k > 0 THEN 2 * pow({GAMMA!r}, k - 1) / {GAMMA + 1!r}
    ELSE -2 * pow({GAMMA!r}, -k - 1) / {GAMMA + 1!r} END;
CREATE OR REPLACE MACRO o11y_hist_near(v) AS v <> 0
    AND abs(ln(abs(v)) / {math.log(GAMMA)!r} - round(ln(abs(v)) / {math.log(GAMMA)!r})) < {NEAR!r};
CREATE OR REPLACE MACRO o11y_month(t) AS coalesce(strftime(t, '%Y-%m'), '{NO_TIME}');
"""

# The measures of hourly/daily rows, and how raw event rows produce them.
MEASURES: list[tuple[str, str, str]] = [
    # name, from raw rows (one row each), merge
    ("events", "1", "sum"),
    ("errors", "errors", "sum"),
    ("dur_n", "CAST(duration_ms IS NOT NULL AS INTEGER)", "sum"),
    ("dur_sum", "duration_ms", "sum"),
    ("tools_n", "CAST(tool_calls IS NOT NULL AS INTEGER)", "sum"),
    ("tools_sum", "tool_calls", "sum"),
    ("min_ts", "ts", "min"),
    ("max_ts", "ts", "max"),
    ("lag_n", "CAST(ingest_ts IS NOT NULL AND ts IS NOT NULL AS INTEGER)", "sum"),
    ("lag_sum", "epoch_us(ingest_ts) - epoch_us(ts)", "sum"),
]
KEYS = "event_type, agent, mode, erred"
ERRED = "coalesce(errors > 0, false)"


def prepare(conn: Any) -> None:
    for stmt in MACROS.split(";"):
        if stmt.strip():
            conn.execute(stmt)


def _agg(name: str, merge: str, source: str) -> str:
    if merge == "sum":  # DECIMAL(38,0): exact, and Parquet keeps it exact (no HUGEINT there)
        return f"CAST(coalesce(sum({source}), 0) AS DECIMAL(38,0)) AS {name}"
    return f"{merge}({source}) AS {name}"


def raw_facts_sql(grain: str, source: str, where: str = "true") -> str:
    """hourly/daily rows (``grain`` = hour/day) aggregated from raw event rows of ``source``."""
    measures = ", ".join(_agg(n, m, raw) for n, raw, m in MEASURES)
    return (
        f"SELECT date_trunc('{grain}', ts) AS t, event_type, agent, mode, {ERRED} AS erred, "
        f"{measures} FROM {source} WHERE parsed AND {where} GROUP BY ALL"
    )


def merged_facts_sql(grain: str, source: str) -> str:
    """Rollup rows of a finer grain (hourly) merged into ``grain`` (day)."""
    measures = ", ".join(
        _agg(n, m, n) if m == "sum" else f"{m}({n}) AS {n}" for n, _, m in MEASURES
    )
    return f"SELECT date_trunc('{grain}', t) AS t, {KEYS}, {measures} FROM {source} GROUP BY ALL"


def duration_hist_sql(source: str, where: str = "true") -> str:
    return (
        f"SELECT date_trunc('day', ts) AS t, agent, mode, {ERRED} AS erred, "
        "o11y_hist_key(duration_ms) AS k, count(*) AS n "
        f"FROM {source} WHERE parsed AND event_type = 'agent.cycle' "
        f"AND duration_ms IS NOT NULL AND {where} GROUP BY ALL"
    )


def lag_hist_sql(source: str, where: str = "true") -> str:
    return (
        f"SELECT date_trunc('day', ts) AS t, {KEYS.replace('erred', f'{ERRED} AS erred')}, "
        "o11y_hist_key(epoch_us(ingest_ts) - epoch_us(ts)) AS k, count(*) AS n "
        f"FROM {source} WHERE parsed AND ingest_ts IS NOT NULL AND ts IS NOT NULL "
        f"AND {where} GROUP BY ALL"
    )


# Rows rolled up from raw rows the store does not keep (history before the raw horizon, streamed
# through by the sync): per table, a connection's table of raw-aggregated rows, merged with the
# segments' own by ``update(..., partials=True)``. Several batches may add rows of one hour or
# day: counts and sums add, first/last times take min/max, histogram buckets add.
PARTIAL_SOURCES = ("hourly", "duration_hist", "lag_hist")
_HIST_COLUMNS = {
    "duration_hist": "t, agent, mode, erred, k",
    "lag_hist": "t, event_type, agent, mode, erred, k",
}


def partial_table(table: str) -> str:
    return f"o11y_p_{table}"


def start_partials(conn: Any) -> None:
    """Empty partial tables on ``conn`` (what ``add_partials`` fills)."""
    cur = conn.cursor()
    try:
        for table in PARTIAL_SOURCES:
            cur.execute(f"CREATE OR REPLACE TABLE {partial_table(table)} AS {_empty(table)}")
    finally:
        cur.close()


def add_partials(conn: Any, source: str, where: str, params: list[Any]) -> None:
    """Add the rollup rows of the raw event rows of ``source`` (a FROM item) matching ``where``
    to the partial tables."""
    cur = conn.cursor()
    try:
        for table, sql in (
            ("hourly", raw_facts_sql("hour", source, where)),
            ("duration_hist", duration_hist_sql(source, where)),
            ("lag_hist", lag_hist_sql(source, where)),
        ):
            cur.execute(f"INSERT INTO {partial_table(table)} BY NAME {sql}", params)
    finally:
        cur.close()


def _with_partials(table: str, sql: str) -> str:
    """``sql`` (rollup rows of ``table`` from the segments) merged with the partial rows."""
    both = f"(({sql}) UNION ALL BY NAME (SELECT * FROM {partial_table(table)}))"
    if table == "hourly":
        return merged_facts_sql("hour", both)
    cols = _HIST_COLUMNS[table]
    return f"SELECT {cols}, CAST(sum(n) AS BIGINT) AS n FROM {both} GROUP BY {cols}"


def month_hist_sql(daily_file: Path) -> str:
    """A month's histogram rows summed from its daily histogram rows in ``daily_file`` (the
    same key columns, ``t`` truncated to the month; rows without a ts stay apart, ``t`` NULL)."""
    return (
        "SELECT date_trunc('month', t) AS t, * EXCLUDE (t, n), CAST(sum(n) AS BIGINT) AS n "
        f"FROM {_files_sql([daily_file])} GROUP BY ALL"
    )


def net_hist_sql(daily_file: Path) -> str:
    """A day's histogram rows over every key, summed from the daily rows in ``daily_file``."""
    return f"SELECT t, k, CAST(sum(n) AS BIGINT) AS n FROM {_files_sql([daily_file])} GROUP BY t, k"


def _derived_sql(table: str, daily_file: Path) -> str:
    return (month_hist_sql if table in MONTHLY else net_hist_sql)(daily_file)


def _files_sql(paths: Sequence[Path]) -> str:
    return "read_parquet([" + ", ".join(sql_literal(str(p)) for p in paths) + "])"


def _days(conn: Any, sql: str, params: list[Any] | None = None) -> set[Any]:
    cur = conn.cursor()
    try:
        return {r[0] for r in cur.execute(sql, params or []).fetchall()}
    finally:
        cur.close()


def touched_days(
    conn: Any,
    *,
    new_segments: Sequence[Path],
    old_segments: Sequence[Path],
    gone: set[str],
) -> set[Any]:
    """Days (UTC; ``None`` for rows without a ts) whose rows a sync adds or removes."""
    days: set[Any] = set()
    if new_segments:
        days |= _days(
            conn, f"SELECT DISTINCT date_trunc('day', ts) FROM {_files_sql(new_segments)}"
        )
    if gone and old_segments:
        days |= _days(
            conn,
            f"SELECT DISTINCT date_trunc('day', ts) FROM {_files_sql(old_segments)} "
            "WHERE list_contains(?::VARCHAR[], file)",
            [sorted(gone)],
        )
    return days


def _day_filter(days: set[Any] | None) -> tuple[str, list[Any]]:
    """A WHERE clause on ``ts`` for ``days`` (None: every row). The range bound lets DuckDB skip
    row groups of the ts-sorted segments; the list makes it exact."""
    if days is None:
        return "true", []
    real = sorted(d for d in days if d is not None)
    parts = []
    params: list[Any] = []
    if real:
        parts.append(
            "(ts >= ? AND ts < ? + INTERVAL 1 DAY "
            "AND list_contains(?::TIMESTAMPTZ[], date_trunc('day', ts)))"
        )
        params += [real[0], real[-1], real]
    if None in days:
        parts.append("ts IS NULL")
    return ("(" + " OR ".join(parts) + ")") if parts else "false", params


def update(
    conn: Any,
    folder: Path,
    segments: Sequence[Path],
    *,
    previous: dict[str, Any] | None,
    days: set[Any] | None,
    partials: bool = False,
) -> dict[str, Any]:
    """The rollups for ``segments`` (the store's segments after this sync), written under
    ``folder``: ``previous`` (the published generation's rollups) with ``days`` recomputed, or
    everything recomputed when ``days`` is None or ``previous`` is not of this :data:`VERSION`.

    With ``partials``, the partial tables' rows (``add_partials``: history the segments no
    longer hold) are merged in; they must hold every row of the days they touch in ``days``
    (of all history when ``days`` is None).

    Returns the generation's ``rollups`` entry: ``{"version", "months": {month: {table: file}}}``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    months_prev: dict[str, dict[str, str]] = {}
    if previous and previous.get("version") == VERSION and days is not None:
        months_prev = {m: dict(t) for m, t in previous.get("months", {}).items()}
    else:
        days = None
    if days is not None and not days:
        return {"version": VERSION, "months": months_prev}
    where, params = _day_filter(days)
    src = _files_sql(segments) if segments else None
    cur = conn.cursor()
    try:
        for table, sql in (
            ("hourly", raw_facts_sql("hour", "o11y_src", where)),
            ("duration_hist", duration_hist_sql("o11y_src", where)),
            ("lag_hist", lag_hist_sql("o11y_src", where)),
        ):
            if src is None:
                sql, p = _empty(table), []
            else:
                cur.execute(f"CREATE OR REPLACE TEMP VIEW o11y_src AS SELECT * FROM {src}")
                p = params
            if partials:
                sql = _with_partials(table, sql)
            # The month of each row, computed once (the files are written per month).
            cur.execute(
                f"CREATE OR REPLACE TEMP TABLE o11y_r_{table} AS "
                f"SELECT *, o11y_month(t) AS o11y_m FROM ({sql})",
                p,
            )
        cur.execute(
            "CREATE OR REPLACE TEMP TABLE o11y_r_daily AS SELECT *, o11y_month(t) AS o11y_m "
            f"FROM ({merged_facts_sql('day', 'o11y_r_hourly')})"
        )
        if days is None:
            months = {
                r[0] for r in cur.execute("SELECT DISTINCT o11y_m FROM o11y_r_hourly").fetchall()
            }
            months |= {
                r[0] for r in cur.execute("SELECT DISTINCT o11y_m FROM o11y_r_lag_hist").fetchall()
            }
        else:
            months = {_month(d) for d in days}
        out = {m: t for m, t in months_prev.items() if m not in months}
        day_list = sorted(d for d in (days or ()) if d is not None)
        for month in sorted(months):
            files: dict[str, str] = {}
            for table in TABLES:
                name = f"{table}-{month}-{int(time.time())}-{uuid.uuid4().hex[:8]}.parquet"
                if table in DERIVED:
                    daily = files.get(DERIVED[table])
                    if daily is not None and _write(
                        cur, _derived_sql(table, folder / daily), [], folder / name
                    ):
                        files[table] = name
                    continue
                fresh = f"SELECT * EXCLUDE (o11y_m) FROM o11y_r_{table} WHERE o11y_m = ?"
                p: list[Any] = [month]
                old = months_prev.get(month, {}).get(table)
                if old is not None:
                    # The month's other days, as published; the touched days come fresh.
                    published = sql_literal(str(folder / old))
                    fresh += (
                        f" UNION ALL BY NAME SELECT * FROM read_parquet({published})"
                        " WHERE NOT (list_contains(?::TIMESTAMPTZ[], date_trunc('day', t))"
                        + (" OR t IS NULL" if None in (days or ()) else "")
                        + ")"
                    )
                    p.append(day_list)
                n = _write(cur, fresh, p, folder / name)
                if n:
                    files[table] = name
            if files.get("hourly") or files.get("lag_hist"):
                out[month] = files
    finally:
        cur.close()
    return {"version": VERSION, "months": out}


def _write(cur: Any, sql: str, params: list[Any], dest: Path) -> int:
    """COPY ``sql`` to ``dest`` through a temporary name; returns rows (none: no file)."""
    tmp = dest.parent / f".part-{dest.name}.tmp"
    cur.execute(
        f"COPY ({sql} ORDER BY t) TO {sql_literal(str(tmp))} (FORMAT parquet, COMPRESSION zstd)",
        params,
    )
    rows = cur.fetchall()
    n = int(rows[0][0]) if rows and rows[0] else 0
    if n:
        tmp.rename(dest)
    else:
        tmp.unlink(missing_ok=True)
    return n


def _month(day: Any) -> str:
    return NO_TIME if day is None else f"{day.year:04d}-{day.month:02d}"


def files(rollups: dict[str, Any], table: str) -> list[str]:
    """The file names of ``table`` in a generation's rollups entry."""
    return [t[table] for _, t in sorted(rollups.get("months", {}).items()) if table in t]


def names(rollups: dict[str, Any]) -> set[str]:
    """Every file a generation's rollups entry uses (kept by garbage collection)."""
    return {name for t in rollups.get("months", {}).values() for name in t.values()}


def is_current(rollups: dict[str, Any] | None) -> bool:
    return bool(rollups) and rollups.get("version") == VERSION


_EMPTY_COLS = {
    "hourly": "NULL::TIMESTAMPTZ AS t, NULL::VARCHAR AS event_type, NULL::VARCHAR AS agent, "
    "NULL::VARCHAR AS mode, NULL::BOOLEAN AS erred, "
    + ", ".join(
        f"NULL::{'TIMESTAMPTZ' if m in ('min', 'max') else 'DECIMAL(38,0)'} AS {n}"
        for n, _, m in MEASURES
    ),
    "duration_hist": "NULL::TIMESTAMPTZ AS t, NULL::VARCHAR AS agent, NULL::VARCHAR AS mode, "
    "NULL::BOOLEAN AS erred, NULL::BIGINT AS k, NULL::BIGINT AS n",
    "lag_hist": "NULL::TIMESTAMPTZ AS t, NULL::VARCHAR AS event_type, NULL::VARCHAR AS agent, "
    "NULL::VARCHAR AS mode, NULL::BOOLEAN AS erred, NULL::BIGINT AS k, NULL::BIGINT AS n",
}
_EMPTY_COLS["daily"] = _EMPTY_COLS["hourly"]
_EMPTY_COLS.update({m: _EMPTY_COLS[d] for m, d in MONTHLY.items()})
_EMPTY_COLS["lag_hist_net"] = "NULL::TIMESTAMPTZ AS t, NULL::BIGINT AS k, NULL::BIGINT AS n"


def _empty(table: str) -> str:
    return f"SELECT {_EMPTY_COLS[table]} WHERE false"


def view_sql(folder: Path, rollups: dict[str, Any], table: str) -> str:
    """A SELECT over ``table``'s files (typed and empty when there are none)."""
    names_ = files(rollups, table)
    if not names_:
        return _empty(table)
    return f"SELECT * FROM {_files_sql([folder / n for n in names_])}"


# -- history an engine rolled up (O11Y_HISTORY=engine; horizon.engine_cut) -----------------------
#
# The engine normalizes the raw rows with the store's own SQL (normalize.normalized_sql) and turns
# each into one row of ENGINE_ROW_COLUMNS (engine_rows_sql, in DuckDB on the engine's workers);
# the engine then only groups and adds: sums of BIGINTs, min/max of times, counts. What could
# differ between its arithmetic and ours is made to not matter:
# - sums: every summed measure is split into a high and a low part (x = hi * 2^32 + lo, lo in
#   [0, 2^32)), each summed as int64 by the engine without overflow (a lag of decades is 2^50 µs,
#   so a group would need 2^31 rows), and put back together here exactly as DECIMAL(38,0);
# - histogram keys: the key ceil(ln(v)/ln(GAMMA)) depends on the last bit of ln(v) only when
#   that quotient lies within an ulp or so of an integer. A row whose quotient lies within NEAR
#   of one (about two values in a million) carries its exact value ``v`` (others carry 0, the
#   grouping stays small), and this process's DuckDB
#   computes its key with o11y_hist_key; every other row's key is the same under any ln that is
#   not off by NEAR, which no libm is. So the keys are identical to streaming's.
HALF = 4_294_967_296
_SUMS = [(n, raw) for n, raw, m in MEASURES if m == "sum"]
_EXTREMES = [(n, raw, m) for n, raw, m in MEASURES if m != "sum"]
# Columns of an engine row: the keys of the three partial tables plus what the engine adds up.
FACT_KEYS = ("t", "event_type", "agent", "mode", "erred", "parsed", "out_of_range")
DUR_KEYS = ("day", "agent", "mode", "erred", "dur_k", "dur_v")
LAG_KEYS = ("day", "event_type", "agent", "mode", "erred", "lag_k", "lag_v")
SUM_COLUMNS = tuple(f"{n}_{part}" for n, _ in _SUMS for part in ("hi", "lo"))
EXTREME_COLUMNS = tuple((n, m) for n, _, m in _EXTREMES)


def _split(raw: str, name: str) -> str:
    lo = f"((({raw}) % {HALF}) + {HALF}) % {HALF}"
    return (
        f"CAST(({raw} - {lo}) // {HALF} AS BIGINT) AS {name}_hi, CAST({lo} AS BIGINT) AS {name}_lo"
    )


def _near(value: str) -> str:
    """The exact value where its key is left to this process, else 0 (never such a value: 0's
    key needs no logarithm). Not NULL: Daft 0.7 groups by a mostly-NULL integer key hundreds of
    times slower than by a filled one (measured: 20 s against 0.05 s for 50,000 rows)."""
    return f"CASE WHEN o11y_hist_near({value}) THEN {value} ELSE 0 END"


def engine_rows_sql(source: str) -> str:
    """One row per normalized event of ``source`` (normalize.normalized_sql's columns, every
    row, parsed or not): what an engine groups and adds up into the partial tables
    (``engine_partials``). The hourly measures are rollups.MEASURES, so this is their one
    definition; the histogram keys as explained above."""
    lag = "epoch_us(ingest_ts) - epoch_us(ts)"
    sums = ", ".join(_split(raw, n) for n, raw in _SUMS)
    extremes = ", ".join(f"{raw} AS {n}" for n, raw, _ in _EXTREMES)
    dur_in = "parsed AND event_type = 'agent.cycle' AND duration_ms IS NOT NULL"
    lag_in = "parsed AND ingest_ts IS NOT NULL AND ts IS NOT NULL"
    return (
        f"SELECT date_trunc('hour', ts) AS t, date_trunc('day', ts) AS day, event_type, agent, "
        f"mode, {ERRED} AS erred, parsed, CAST(out_of_range AS BIGINT) AS out_of_range, "
        f"{sums}, {extremes}, "
        f"coalesce({dur_in}, false) AS dur_in, "
        f"CASE WHEN {dur_in} THEN o11y_hist_key(duration_ms) END AS dur_k, "
        f"CASE WHEN {dur_in} THEN {_near('duration_ms')} END AS dur_v, "
        f"coalesce({lag_in}, false) AS lag_in, "
        f"CASE WHEN {lag_in} THEN o11y_hist_key({lag}) END AS lag_k, "
        f"CASE WHEN {lag_in} THEN {_near(lag)} END AS lag_v "
        f"FROM ({source})"
    )


def _joined(name: str, when: str = "true") -> str:
    """The exact sum of a measure an engine added up in two parts (of the rows ``when``)."""
    hi, lo = (f"sum(CASE WHEN {when} THEN CAST({name}_{p} AS HUGEINT) END)" for p in ("hi", "lo"))
    return f"CAST(coalesce({hi}, 0) * {HALF} + coalesce({lo}, 0) AS DECIMAL(38,0))"


def facts_from_engine_sql(facts: str) -> str:
    """hourly partial rows from an engine's grouped facts (``facts``: FACT_KEYS, the summed
    SUM_COLUMNS, the EXTREME_COLUMNS), parsed rows only, as raw_facts_sql makes them."""
    measures = ", ".join(
        f"{_joined(n)} AS {n}" if m == "sum" else f"{m}({n}) AS {n}" for n, _, m in MEASURES
    )
    return (
        f"SELECT t, event_type, agent, mode, erred, {measures} FROM {facts} "
        "WHERE parsed GROUP BY t, event_type, agent, mode, erred"
    )


def hist_from_engine_sql(table: str, rows: str) -> str:
    """``table``'s partial rows from an engine's grouped histogram rows (``rows``: DUR_KEYS or
    LAG_KEYS and ``n``): keys of values near a bucket edge computed here."""
    p = "dur" if table == "duration_hist" else "lag"
    cols = _HIST_COLUMNS[table].replace("t, ", "day AS t, ", 1).replace(", k", "")
    keys = _HIST_COLUMNS[table]
    return (
        f"SELECT {keys}, CAST(sum(n) AS BIGINT) AS n FROM (SELECT {cols}, "
        f"CASE WHEN {p}_v = 0 THEN {p}_k ELSE o11y_hist_key({p}_v) END AS k, n FROM {rows}) "
        f"GROUP BY {keys}"
    )


def add_engine_partials(conn: Any, *, facts: str, duration: str, lag: str) -> None:
    """Add an engine's grouped rows (FROM items; see engine_rows_sql) to the partial tables."""
    cur = conn.cursor()
    try:
        for table, sql in (
            ("hourly", facts_from_engine_sql(facts)),
            ("duration_hist", hist_from_engine_sql("duration_hist", duration)),
            ("lag_hist", hist_from_engine_sql("lag_hist", lag)),
        ):
            cur.execute(f"INSERT INTO {partial_table(table)} BY NAME {sql}")
    finally:
        cur.close()


def engine_totals_sql(facts: str) -> str:
    """rows, unparseable rows and rows per out-of-range flag (ranges.FLAGS order) of an
    engine's grouped facts."""
    from .ranges import FLAGS

    flags = ", ".join(
        _joined("events", f"(out_of_range & {bit}) <> 0") for bit, _ in FLAGS.values()
    )
    return f"SELECT {_joined('events')}, {_joined('events', 'NOT parsed')}, {flags} FROM {facts}"
