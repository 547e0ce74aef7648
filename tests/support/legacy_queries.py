"""TEST ONLY: o11y_data/queries.py as it was before the planner (issue 17), kept verbatim as
the oracle the planner's answers are compared with (tests/test_planner.py). Not used by the app.

One function per question the screens ask, all taking the same :class:`Filters`.

Every value is bound with ``?``; nothing the user typed is formatted into SQL. Definitions follow
docs/events.md: cycle metrics count ``agent.cycle`` events only; ``avg_ms`` is the mean of non-null
durations rounded to an integer; percentiles interpolate (``quantile_cont``); error rate is cycles
with ``errors > 0`` over cycles; NULLs add nothing to sums.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from o11y_data.ingest.store import CHOICES, choices_sql
from o11y_data.query.db import STORE_INFO, EventsDB, store_info

if TYPE_CHECKING:  # imported where a DataFrame is built, so the CLI's status does not pay for it
    import pandas as pd

    from o11y_data.ingest.store import GenerationHead

MODES = ("think", "reflection", "housekeeping")
UNKNOWN = "unknown"  # the agent of events without one (docs/events.md): shown apart, never an agent
RANKS = ("cycles", "errors")  # what "top N agents" ranks by
# ``kind`` of a row of a per-agent breakdown: one of the top agents, the rest folded together,
# or the events without an agent.
KIND_AGENT, KIND_OTHERS, KIND_UNKNOWN = "agent", "others", "unknown"
_NO_LIMIT = 2**62

# Bucket widths the time axes may use, in seconds.
_BUCKETS = [
    1,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
    172800,
    604800,
]


@dataclass(frozen=True)
class Filters:
    """The filters every screen shares: ``start`` inclusive, ``end`` exclusive, both on ``ts``."""

    start: datetime | None = None
    end: datetime | None = None
    agents: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    errors_only: bool = False

    def previous(self) -> Filters | None:
        """The period of the same length just before this one (for deltas)."""
        if self.start is None or self.end is None:
            return None
        span = self.end - self.start
        return Filters(
            self.start - span,
            self.start,
            self.agents,
            self.modes,
            self.event_types,
            self.errors_only,
        )


def where(f: Filters, *, cycles: bool = True) -> tuple[str, list[Any]]:
    """A WHERE clause and its parameters for ``f``; event types apply outside cycle metrics."""
    parts, params = ["true"], []
    if f.start is not None:
        parts.append("ts >= ?")
        params.append(f.start)
    if f.end is not None:
        parts.append("ts < ?")
        params.append(f.end)
    if f.agents:
        parts.append("list_contains(?::VARCHAR[], agent)")
        params.append(list(f.agents))
    if f.modes:
        parts.append("list_contains(?::VARCHAR[], mode)")
        params.append(list(f.modes))
    if f.event_types and not cycles:
        parts.append("list_contains(?::VARCHAR[], event_type)")
        params.append(list(f.event_types))
    if f.errors_only:
        parts.append("errors > 0")
    return " AND ".join(parts), params


def pick_bucket(start: datetime, end: datetime, *, points: int = 200) -> int:
    """A round bucket width (seconds) giving roughly 100-300 points over the range."""
    span = max((end - start).total_seconds(), 1.0)
    for b in _BUCKETS:
        if span / b <= points * 1.5:
            return b
    return _BUCKETS[-1]


def _bucket_for(db: EventsDB, f: Filters, bucket_s: int | None) -> int:
    if bucket_s:
        return int(bucket_s)
    start, end = f.start, f.end
    if start is None or end is None:
        lo, hi = time_range(db, f)
        start, end = start or lo, end or hi
    if start is None or end is None:
        return 60
    return pick_bucket(start, end)


def time_range(db: EventsDB, f: Filters) -> tuple[datetime | None, datetime | None]:
    """First and last cycle ``ts`` under the filters (unfiltered: once per generation)."""

    def compute() -> tuple[datetime | None, datetime | None]:
        facts = _facts(db, f)
        if facts is not None:
            sql, p = facts
            row = db.fetch(f"SELECT min(min_ts) AS lo, max(max_ts) AS hi FROM ({sql})", p)[0]
            return row["lo"], row["hi"]
        w, p = where(f)
        row = db.fetch(f"SELECT min(ts) AS lo, max(ts) AS hi FROM cycles WHERE {w}", p)[0]
        return row["lo"], row["hi"]

    return db.per_generation("time_range", compute) if f == Filters() else compute()


# -- the seed's summary ----------------------------------------------------------------------


def _summary_sql(db: EventsDB, f: Filters) -> tuple[str, list[Any]]:
    facts = _facts(db, f)
    if facts is not None:
        sql, p = facts
        return (
            f"SELECT agent, mode, {_CYCLES} AS cycles, {_AVG_MS} AS avg_ms, "
            f"CAST(coalesce(sum(tools_sum), 0) AS BIGINT) AS tools, "
            f"CAST(coalesce(sum(errors), 0) AS BIGINT) AS errors FROM ({sql}) "
            "GROUP BY agent, mode ORDER BY agent, cycles DESC, mode",
            p,
        )
    w, p = where(f)
    return (
        f"""
        SELECT agent, mode, count(*) AS cycles,
               CAST(round(avg(duration_ms)) AS BIGINT) AS avg_ms,
               CAST(coalesce(sum(tool_calls), 0) AS BIGINT) AS tools,
               CAST(coalesce(sum(errors), 0) AS BIGINT) AS errors
        FROM cycles WHERE {w}
        GROUP BY agent, mode
        ORDER BY agent, cycles DESC, mode
        """,
        p,
    )


SUMMARY_EXTRA = ("error_rate", "p50_ms", "p95_ms", "p99_ms", "approx")


def summary(db: EventsDB, f: Filters = Filters(), *, extended: bool = False) -> pd.DataFrame:
    """agent, mode, cycles, avg_ms, tools, errors — by agent and mode, agent then cycles desc.

    ``extended`` (the Summary page) adds error_rate (cycles with errors / cycles), p50_ms, p95_ms,
    p99_ms of ``duration_ms`` and ``approx`` (percentiles read from histograms: windows longer
    than 7 days with rollups, within 1 %); the seed's six columns are the same either way."""
    seed, sp = _summary_sql(db, f)
    if not extended:
        return db.query(seed, sp)
    facts = _facts(db, f)
    if facts is not None:
        fsql, rp = facts
        rate = f"SELECT agent, mode, {_ERR_RATE} AS error_rate FROM ({fsql}) GROUP BY agent, mode"
    else:
        w, rp = where(f)
        rate = (
            "SELECT agent, mode, count(*) FILTER (WHERE errors > 0) / count(*) AS error_rate "
            f"FROM cycles WHERE {w} GROUP BY agent, mode"
        )
    qs = {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99}
    pct, pp, approx = _percentiles(db, f, {"agent": "agent", "mode": "mode"}, qs)
    return db.query(
        f"""
        WITH s AS ({seed}), r AS ({rate}), q AS ({pct})
        SELECT s.*, r.error_rate, q.p50_ms, q.p95_ms, q.p99_ms, ? AS approx
        FROM s LEFT JOIN r USING (agent, mode) LEFT JOIN q USING (agent, mode)
        ORDER BY s.agent, s.cycles DESC, s.mode
        """,
        [*sp, *rp, *pp, approx],
    )


def summary_rows(db: EventsDB, f: Filters = Filters()) -> list[dict[str, Any]]:
    """:func:`summary` as plain rows (no pandas: the CLI prints them)."""
    return db.fetch(*_summary_sql(db, f))


def totals(db: EventsDB, f: Filters = Filters()) -> dict[str, Any]:
    """The overview tiles: agents active, cycles, error rate, p50/p95/p99 duration, tool calls,
    errors; ``agents`` leaves ``unknown`` out, which is counted apart (``unknown_cycles``,
    ``unknown_errors``). ``p95_approx`` says whether the percentiles came from histograms (a
    window longer than 7 days)."""
    qs = {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99}
    facts = _facts(db, f)
    if facts is not None:
        sql, p = facts
        pct, pct_p, approx = _percentiles(db, f, {}, qs)
        row = db.fetch(
            f"SELECT count(DISTINCT agent) FILTER (WHERE agent <> '{UNKNOWN}') AS agents, "
            f"{_CYCLES} AS cycles, {_ERR_RATE} AS error_rate, {_TOOLS} AS tools, "
            f"{_ERRORS} AS errors, "
            f"CAST(coalesce(sum(events) FILTER (WHERE agent = '{UNKNOWN}'), 0) AS BIGINT) "
            "AS unknown_cycles, "
            f"CAST(coalesce(sum(errors) FILTER (WHERE agent = '{UNKNOWN}'), 0) AS HUGEINT) "
            f"AS unknown_errors FROM ({sql})",
            p,
        )[0]
        got = db.fetch(pct, pct_p)
        pcts = {k: (got[0][k] if got else None) for k in qs}
        return {
            "agents": row["agents"],
            "cycles": row["cycles"],
            "error_rate": row["error_rate"],
            **pcts,
            "tools": row["tools"],
            "errors": row["errors"],
            "unknown_cycles": row["unknown_cycles"],
            "unknown_errors": row["unknown_errors"],
            "p95_approx": approx and pcts["p95_ms"] is not None,
        }
    w, p = where(f)
    df = db.query(
        f"""
        SELECT count(DISTINCT agent) FILTER (WHERE agent <> '{UNKNOWN}') AS agents,
               count(*) AS cycles,
               count(*) FILTER (WHERE errors > 0) / nullif(count(*), 0) AS error_rate,
               quantile_cont(duration_ms, 0.5) AS p50_ms,
               quantile_cont(duration_ms, 0.95) AS p95_ms,
               quantile_cont(duration_ms, 0.99) AS p99_ms,
               coalesce(sum(tool_calls), 0) AS tools,
               coalesce(sum(errors), 0) AS errors,
               count(*) FILTER (WHERE agent = '{UNKNOWN}') AS unknown_cycles,
               coalesce(sum(errors) FILTER (WHERE agent = '{UNKNOWN}'), 0) AS unknown_errors
        FROM cycles WHERE {w}
        """,
        p,
    )
    import pandas as pd

    row = df.iloc[0].to_dict()
    return {k: (None if pd.isna(v) else v) for k, v in row.items()} | {"p95_approx": False}


# -- over time -------------------------------------------------------------------------------


def _by_expr(by: str | None) -> str:
    if by is None:
        return "'all'"
    if by not in {"agent", "mode"}:
        raise ValueError(f"by must be agent, mode or None, not {by!r}")
    return by


def _rank_order(rank_by: str) -> str:
    if rank_by == "cycles":
        return "count(*) DESC, agent"
    if rank_by == "errors":
        return (
            "coalesce(sum(errors), 0) DESC, count(*) FILTER (WHERE errors > 0) DESC, "
            "count(*) DESC, agent"
        )
    raise ValueError(f"rank_by must be one of {', '.join(RANKS)}, not {rank_by!r}")


def agent_groups_sql(f: Filters, *, top: int | None, rank_by: str = "cycles") -> tuple[str, list]:
    """CTEs ending in ``grouped``: the cycles under ``f`` with ``kind`` and ``key``.

    The ``top`` agents by ``rank_by`` (``None``: every agent) keep their own ``key`` (kind
    ``agent``); every other agent folds into one row of kind ``others`` (key ``others``), and
    ``unknown`` stays apart (kind ``unknown``), never ranked. ``group_agents`` in ``sizes`` is
    how many distinct agents each kind holds. Done in SQL so 5,000 agents never reach pandas.
    """
    w, p = where(f)
    return _groups_sql(f"SELECT * FROM cycles WHERE {w}", p, _rank_order(rank_by), top)


def _rollup_agent_groups(
    facts: str, params: list[Any], *, top: int | None, rank_by: str
) -> tuple[str, list[Any]]:
    """:func:`agent_groups_sql` over rollup-shaped rows (``facts``): the same top agents by the
    same order (cycles, or errors then cycles with errors then cycles), ``others``, ``unknown``."""
    if rank_by == "cycles":
        order = f"{_CYCLES} DESC, agent"
    elif rank_by == "errors":
        order = f"{_ERRORS} DESC, {_ERR_CYCLES} DESC, {_CYCLES} DESC, agent"
    else:
        raise ValueError(f"rank_by must be one of {', '.join(RANKS)}, not {rank_by!r}")
    return _groups_sql(facts, params, order, top)


def _groups_sql(base: str, params: list[Any], order: str, top: int | None) -> tuple[str, list[Any]]:
    """The grouping CTEs of :func:`agent_groups_sql` over any ``base`` rows with an ``agent``
    column, the top agents picked by ``order``."""
    limit = _NO_LIMIT if top is None else max(0, int(top))
    sql = f"""
        WITH base AS ({base}),
        top_agents AS (
            SELECT agent FROM base WHERE agent <> '{UNKNOWN}' GROUP BY agent
            ORDER BY {order} LIMIT ?
        ),
        grouped AS (
            SELECT base.*,
                   CASE WHEN t_.agent IS NOT NULL THEN '{KIND_AGENT}'
                        WHEN base.agent = '{UNKNOWN}' THEN '{KIND_UNKNOWN}'
                        ELSE '{KIND_OTHERS}' END AS kind,
                   CASE WHEN t_.agent IS NULL AND base.agent <> '{UNKNOWN}' THEN '{KIND_OTHERS}'
                        ELSE base.agent END AS key
            FROM base LEFT JOIN top_agents t_ ON base.agent = t_.agent
        ),
        sizes AS (SELECT kind, count(DISTINCT agent) AS group_agents FROM grouped GROUP BY kind)
    """
    return sql, [*params, limit]


def cycles_over_time(
    db: EventsDB,
    f: Filters = Filters(),
    *,
    by: str | None = "agent",
    bucket_s: int | None = None,
    top: int | None = None,
    rank_by: str = "cycles",
) -> pd.DataFrame:
    """bucket, kind, key, cycles, error_cycles, errors, avg_ms per time bucket and agent/mode.

    By agent: the ``top`` agents by ``rank_by`` plus ``others`` plus ``unknown`` (see
    :func:`agent_groups_sql`; ``group_agents`` says how many agents a row stands for). Buckets
    without cycles are absent: the figures decide what an empty bucket means (0 or a gap).
    """
    b = _bucket_for(db, f, bucket_s)
    measures = """count(*) AS cycles,
               count(*) FILTER (WHERE errors > 0) AS error_cycles,
               coalesce(sum(errors), 0) AS errors,
               CAST(round(avg(duration_ms)) AS BIGINT) AS avg_ms"""
    facts = _facts(db, f, grain_s=b)
    if by == "agent" and facts is not None:
        sql, p = facts
        groups, gp = _rollup_agent_groups(sql, p, top=top, rank_by=rank_by)
        return db.query(
            f"""
            {groups},
            agg AS (
                SELECT o11y_bucket(t, ?) AS bucket, kind, key, {_CYCLES} AS cycles,
                       {_ERR_CYCLES} AS error_cycles, {_ERRORS} AS errors, {_AVG_MS} AS avg_ms
                FROM grouped GROUP BY ALL
            )
            SELECT agg.*, sizes.group_agents FROM agg JOIN sizes USING (kind)
            ORDER BY bucket, kind, key
            """,
            [*gp, b],
        )
    if by == "agent":
        groups, gp = agent_groups_sql(f, top=top, rank_by=rank_by)
        return db.query(
            f"""
            {groups},
            agg AS (
                SELECT o11y_bucket(ts, ?) AS bucket, kind, key, {measures}
                FROM grouped GROUP BY ALL
            )
            SELECT agg.*, sizes.group_agents FROM agg JOIN sizes USING (kind)
            ORDER BY bucket, kind, key
            """,
            [*gp, b],
        )
    if facts is not None:
        sql, p = facts
        return db.query(
            f"SELECT o11y_bucket(t, ?) AS bucket, '{by or 'all'}' AS kind, "
            f"{_by_expr(by)} AS key, {_CYCLES} AS cycles, {_ERR_CYCLES} AS error_cycles, "
            f"{_ERRORS} AS errors, {_AVG_MS} AS avg_ms "
            f"FROM ({sql}) GROUP BY ALL ORDER BY bucket, key",
            [b, *p],
        )
    w, p = where(f)
    return db.query(
        f"""
        SELECT o11y_bucket(ts, ?) AS bucket, '{by or "all"}' AS kind, {_by_expr(by)} AS key,
               {measures}
        FROM cycles WHERE {w}
        GROUP BY ALL ORDER BY bucket, key
        """,
        [b, *p],
    )


def error_rate_over_time(
    db: EventsDB,
    f: Filters = Filters(),
    *,
    by: str | None = None,
    bucket_s: int | None = None,
    top: int | None = None,
    rank_by: str = "errors",
) -> pd.DataFrame:
    """bucket, kind, key, cycles, error_cycles, errors, error_rate, errors_per_cycle."""
    df = cycles_over_time(db, f, by=by, bucket_s=bucket_s, top=top, rank_by=rank_by)
    df["error_rate"] = df["error_cycles"] / df["cycles"]
    df["errors_per_cycle"] = df["errors"] / df["cycles"]
    return df


def ingest_lag_over_time(
    db: EventsDB, f: Filters = Filters(), *, bucket_s: int | None = None
) -> pd.DataFrame:
    """bucket, events, lag_p50_s, lag_p95_s, lag_p99_s: ingest lag (``ingest_ts - ts``) per
    bucket; approx: percentiles from the lag histograms (a window longer than 7 days, whole-day
    buckets)."""
    b = _bucket_for(db, f, bucket_s)
    if b % _DAY == 0 and approximate(db, f):
        only_time = not (f.agents or f.modes or f.event_types or f.errors_only)
        h = LAG_HIST_NET if only_time else LAG_HIST
        rows = _hist_rows(db, f, h, lambda t: f"o11y_bucket({t}, {b}) AS bucket", bucket_s=b)
        if rows is not None:
            sql, p = rows
            qs = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
            # events is the histogram's own count: the rows are read once, not twice
            pct = hist_percentiles_sql(sql, ["bucket"], qs, count="events")
            return db.query(
                f"""
                SELECT bucket, events, p50 / 1e6 AS lag_p50_s, p95 / 1e6 AS lag_p95_s,
                       p99 / 1e6 AS lag_p99_s, true AS approx
                FROM ({pct}) ORDER BY bucket
                """,
                p,
            )
    w, p = where(f, cycles=False)
    return db.query(
        f"""
        SELECT o11y_bucket(ts, ?) AS bucket, count(*) AS events,
               quantile_cont(epoch(ingest_ts) - epoch(ts), 0.5) AS lag_p50_s,
               quantile_cont(epoch(ingest_ts) - epoch(ts), 0.95) AS lag_p95_s,
               quantile_cont(epoch(ingest_ts) - epoch(ts), 0.99) AS lag_p99_s,
               false AS approx
        FROM events WHERE {w} AND ingest_ts IS NOT NULL
        GROUP BY ALL ORDER BY bucket
        """,
        [b, *p],
    )


def events_per_hour(db: EventsDB, f: Filters = Filters()) -> pd.DataFrame:
    """hour, events: all event types landed per hour of ``ts``."""
    facts = _facts(db, f, cycles=False, grain_s=_HOUR)
    if facts is not None:
        sql, p = facts
        return db.query(
            f"SELECT date_trunc('hour', t) AS hour, {_CYCLES} AS events FROM ({sql}) "
            "GROUP BY ALL ORDER BY hour",
            p,
        )
    w, p = where(f, cycles=False)
    return db.query(
        f"SELECT date_trunc('hour', ts) AS hour, count(*) AS events FROM events WHERE {w} "
        "GROUP BY ALL ORDER BY hour",
        p,
    )


# -- breakdowns ------------------------------------------------------------------------------


def mode_breakdown(
    db: EventsDB,
    f: Filters = Filters(),
    *,
    by_agent: bool = False,
    top: int | None = None,
    rank_by: str = "cycles",
) -> pd.DataFrame:
    """[kind, agent,] mode, cycles, share, avg_ms, p50/p95/p99_ms, tools, avg_tools, error_rate.

    ``by_agent``: per agent for the ``top`` agents, then ``others`` and ``unknown`` (``agent`` is
    the group's key, ``kind`` says which, see :func:`agent_groups_sql`)."""
    measures = """count(*) AS cycles,
               count(*) / sum(count(*)) OVER ({part}) AS share,
               CAST(round(avg(duration_ms)) AS BIGINT) AS avg_ms,
               quantile_cont(duration_ms, 0.5) AS p50_ms,
               quantile_cont(duration_ms, 0.95) AS p95_ms,
               quantile_cont(duration_ms, 0.99) AS p99_ms,
               coalesce(sum(tool_calls), 0) AS tools,
               avg(tool_calls) AS avg_tools,
               count(*) FILTER (WHERE errors > 0) / count(*) AS error_rate"""
    facts = _facts(db, f)
    if by_agent and facts is not None:
        return _mode_breakdown_by_agent(db, f, facts, top=top, rank_by=rank_by)
    if by_agent:
        groups, gp = agent_groups_sql(f, top=top, rank_by=rank_by)
        return db.query(
            f"""
            {groups},
            agg AS (
                SELECT kind, key AS agent, mode,
                       {measures.format(part="PARTITION BY kind, key")}
                FROM grouped GROUP BY kind, key, mode
            )
            SELECT agg.*, sizes.group_agents FROM agg JOIN sizes USING (kind)
            ORDER BY kind, agent, mode
            """,
            gp,
        )
    if facts is not None:
        sql, p = facts
        qs = {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99}
        pct, pct_p, approx = _percentiles(db, f, {"mode": "mode"}, qs)
        return db.query(
            f"""
            WITH a AS (
                SELECT mode, {_CYCLES} AS cycles, {_CYCLES} / sum({_CYCLES}) OVER () AS share,
                       {_AVG_MS} AS avg_ms, {_TOOLS} AS tools, {_AVG_TOOLS} AS avg_tools,
                       {_ERR_RATE} AS error_rate
                FROM ({sql}) GROUP BY mode
            ), q AS ({pct})
            SELECT a.mode, cycles, share, avg_ms, q.p50_ms, q.p95_ms, q.p99_ms, tools,
                   avg_tools, error_rate, ? AS approx
            FROM a LEFT JOIN q USING (mode) ORDER BY mode
            """,
            [*p, *pct_p, approx],
        )
    w, p = where(f)
    return db.query(
        f"""
        SELECT mode, {measures.format(part="")}
        FROM cycles WHERE {w}
        GROUP BY mode ORDER BY mode
        """,
        p,
    )


def _mode_breakdown_by_agent(
    db: EventsDB, f: Filters, facts: tuple[str, list[Any]], *, top: int | None, rank_by: str
) -> pd.DataFrame:
    """:func:`mode_breakdown` per agent group from the rollups: counts from the facts, the
    percentiles of each (kind, key, mode) exact from the raw rows up to EXACT_PERCENTILES, else
    merged from the histograms of the group's agents (``approx``)."""
    sql, p = facts
    groups, gp = _rollup_agent_groups(sql, p, top=top, rank_by=rank_by)
    qs = {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99}
    rows = _hist_rows(db, f, DURATION_HIST, lambda _: "agent, mode") if approximate(db, f) else None
    group_of = f"""
        CASE WHEN t_.agent IS NOT NULL THEN '{KIND_AGENT}'
             WHEN r.agent = '{UNKNOWN}' THEN '{KIND_UNKNOWN}' ELSE '{KIND_OTHERS}' END AS kind,
        CASE WHEN t_.agent IS NULL AND r.agent <> '{UNKNOWN}' THEN '{KIND_OTHERS}'
             ELSE r.agent END AS key"""
    if rows is not None:
        hist, hp = rows
        mapped = (
            f"SELECT {group_of}, r.mode, r.k, r.n FROM ({hist}) r "
            "LEFT JOIN top_agents t_ ON r.agent = t_.agent"
        )
        pct, pp, approx = hist_percentiles_sql(mapped, ["kind", "key", "mode"], qs), hp, True
    else:
        w, wp = where(f)
        cols = ", ".join(f"quantile_cont(duration_ms, {v!r}) AS {n}" for n, v in qs.items())
        pct = (
            f"SELECT kind, key, mode, {cols} FROM (SELECT {group_of}, r.mode, r.duration_ms "
            f"FROM (SELECT * FROM cycles WHERE {w}) r "
            "LEFT JOIN top_agents t_ ON r.agent = t_.agent) GROUP BY kind, key, mode"
        )
        pp, approx = wp, False
    return db.query(
        f"""
        {groups},
        agg AS (
            SELECT kind, key, mode, {_CYCLES} AS cycles,
                   {_CYCLES} / sum({_CYCLES}) OVER (PARTITION BY kind, key) AS share,
                   {_AVG_MS} AS avg_ms, {_TOOLS} AS tools, {_AVG_TOOLS} AS avg_tools,
                   {_ERR_RATE} AS error_rate
            FROM grouped GROUP BY kind, key, mode
        ), q AS ({pct})
        SELECT agg.kind, agg.key AS agent, agg.mode, cycles, share, avg_ms, q.p50_ms, q.p95_ms,
               q.p99_ms, tools, avg_tools, error_rate, sizes.group_agents, ? AS approx
        FROM agg LEFT JOIN q USING (kind, key, mode) JOIN sizes USING (kind)
        ORDER BY agg.kind, agent, agg.mode
        """,
        [*gp, *pp, approx],
    )


def agent_overview(db: EventsDB, f: Filters = Filters()) -> pd.DataFrame:
    """Per agent: cycles, error_rate, p50/p95/p99, avg tool calls, mode mix, last seen;
    ``unknown`` (events without an agent) last, apart from the agents; approx: percentiles from
    histograms (a window longer than 7 days)."""
    facts = _facts(db, f)
    if facts is not None:
        sql, p = facts
        qs = {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99}
        pct, pct_p, approx = _percentiles(db, f, {"agent": "agent"}, qs)
        mix = ", ".join(
            f"CAST(coalesce(sum(events) FILTER (WHERE mode = '{m}'), 0) AS DOUBLE) "
            f"/ {_CYCLES} AS {m}_share"
            for m in MODES
        )
        return db.query(
            f"""
            WITH a AS (
                SELECT agent, {_CYCLES} AS cycles, {_ERR_RATE} AS error_rate,
                       {_ERRORS} AS errors, {_AVG_TOOLS} AS avg_tools, {mix},
                       max(max_ts) AS last_seen
                FROM ({sql}) GROUP BY agent
            ), q AS ({pct})
            SELECT a.agent, cycles, error_rate, errors, q.p50_ms, q.p95_ms, q.p99_ms, avg_tools,
                   {", ".join(f"{m}_share" for m in MODES)}, last_seen, ? AS approx
            FROM a LEFT JOIN q USING (agent) ORDER BY agent = '{UNKNOWN}', cycles DESC, agent
            """,
            [*p, *pct_p, approx],
        )
    w, p = where(f)
    shares = ", ".join(
        f"count(*) FILTER (WHERE mode = '{m}') / count(*) AS {m}_share" for m in MODES
    )
    return db.query(
        f"""
        SELECT agent, count(*) AS cycles,
               count(*) FILTER (WHERE errors > 0) / count(*) AS error_rate,
               coalesce(sum(errors), 0) AS errors,
               quantile_cont(duration_ms, 0.5) AS p50_ms,
               quantile_cont(duration_ms, 0.95) AS p95_ms,
               quantile_cont(duration_ms, 0.99) AS p99_ms,
               avg(tool_calls) AS avg_tools, {shares},
               max(ts) AS last_seen, false AS approx
        FROM cycles WHERE {w}
        GROUP BY agent ORDER BY agent = '{UNKNOWN}', cycles DESC, agent
        """,
        p,
    )


def agent_last_seen(db: EventsDB, f: Filters = Filters()) -> pd.DataFrame:
    """agent, last_ts, last_mode, cycles: who was seen when (all time up to ``f.end``); agents
    only (``unknown`` is not an agent that can go quiet)."""

    def compute(g: Filters) -> pd.DataFrame:
        facts = _facts(db, g)
        if facts is not None:
            sql, p = facts
            return db.query(
                f"""
                SELECT agent, max(max_ts) AS last_ts, arg_max(mode, max_ts) AS last_mode,
                       {_CYCLES} AS cycles
                FROM ({sql}) WHERE agent <> '{UNKNOWN}'
                GROUP BY agent ORDER BY last_ts DESC, agent
                """,
                p,
            )
        w, p = where(g)
        return db.query(
            f"""
            SELECT agent, max(ts) AS last_ts, arg_max(mode, ts) AS last_mode, count(*) AS cycles
            FROM cycles WHERE {w} AND agent <> '{UNKNOWN}'
            GROUP BY agent ORDER BY last_ts DESC, agent
            """,
            p,
        )

    newest = freshness(db).get("newest_ts")
    if f.modes or (f.end is not None and (newest is None or f.end <= newest)):
        return compute(Filters(end=f.end, agents=f.agents, modes=f.modes))
    # Up to now with no mode filter: the all-time answer, computed once per generation.
    df = db.per_generation("agent_last_seen", lambda: compute(Filters()))
    if f.agents:
        df = df[df["agent"].isin(f.agents)]
    return df.reset_index(drop=True).copy()


def top_error_agents(db: EventsDB, f: Filters = Filters(), *, limit: int = 10) -> pd.DataFrame:
    """agent, cycles, error_cycles, errors, error_rate — most errors first; agents only
    (``unknown``'s errors are in :func:`totals`)."""
    facts = _facts(db, f)
    if facts is not None:
        sql, p = facts
        return db.query(
            f"SELECT agent, {_CYCLES} AS cycles, {_ERR_CYCLES} AS error_cycles, "
            f"{_ERRORS} AS errors, {_ERR_RATE} AS error_rate FROM ({sql}) "
            f"WHERE agent <> '{UNKNOWN}' GROUP BY agent "
            f"HAVING {_ERR_CYCLES} > 0 ORDER BY errors DESC, error_rate DESC, agent LIMIT ?",
            [*p, int(limit)],
        )
    w, p = where(f)
    return db.query(
        f"""
        SELECT agent, count(*) AS cycles, count(*) FILTER (WHERE errors > 0) AS error_cycles,
               coalesce(sum(errors), 0) AS errors,
               count(*) FILTER (WHERE errors > 0) / count(*) AS error_rate
        FROM cycles WHERE {w} AND agent <> '{UNKNOWN}' GROUP BY agent
        HAVING count(*) FILTER (WHERE errors > 0) > 0
        ORDER BY errors DESC, error_rate DESC, agent LIMIT ?
        """,
        [*p, int(limit)],
    )


# -- rows ------------------------------------------------------------------------------------


def _newest(
    db: EventsDB,
    view: str,
    columns: str,
    w: str,
    p: list[Any],
    limit: int,
    *,
    hint: Filters | None = None,
) -> pd.DataFrame:
    """The ``limit`` newest rows of ``view`` under ``w``, read in two steps so wide columns (the
    raw JSON) are read only for the rows returned: find the ts of the limit-th newest row on the
    narrow ts column, then read whole rows from that time on.

    ``hint`` (the same rows as Filters) lets the hourly rollup bound the first step to the
    newest hours that hold at least ``limit`` rows, instead of sorting every row's ts."""
    since = _newest_hours(db, hint, cycles=view == "cycles", limit=limit) if hint else None
    if since is not None:
        w += " AND ts >= ?"
        p = [*p, since]
    edge = db.query(
        f"SELECT ts FROM {view} WHERE {w} ORDER BY ts DESC LIMIT 1 OFFSET ?", [*p, int(limit) - 1]
    )
    if len(edge):
        w += " AND ts >= ?"
        p = [*p, edge.iloc[0]["ts"].to_pydatetime()]
    return db.query(
        f"SELECT {columns} FROM {view} WHERE {w} ORDER BY ts DESC LIMIT ?", [*p, int(limit)]
    )


def cycle_points(db: EventsDB, f: Filters = Filters(), *, limit: int = 20000) -> pd.DataFrame:
    """ts, agent, mode, duration_ms, tool_calls, errors of single cycles, newest first, capped."""
    w, p = where(f)
    cols = "ts, agent, mode, duration_ms, tool_calls, errors"
    return _newest(db, "cycles", cols, w, p, limit, hint=f)


def recent_errors(db: EventsDB, f: Filters = Filters(), *, limit: int = 50) -> pd.DataFrame:
    """The most recent cycles with errors, each with its raw event."""
    w, p = where(f)
    since = _newest_hours(db, _sub(f, f.start, f.end, errors_only=True), cycles=True, limit=limit)
    if since is not None:
        w += " AND ts >= ?"
        p = [*p, since]
    return db.query(
        f"SELECT ts, agent, mode, errors, duration_ms, tool_calls, raw FROM cycles "
        f"WHERE {w} AND errors > 0 ORDER BY ts DESC LIMIT ?",
        [*p, int(limit)],
    )


def _search_where(f: Filters, search: str) -> tuple[str, list[Any]]:
    """The explorer's filter: ``f`` over every event type, plus a text search on agent and raw."""
    w, p = where(f, cycles=False)
    if search:
        w += " AND (contains(lower(agent), lower(?)) OR contains(lower(raw), lower(?)))"
        p += [search, search]
    return w, p


def events_table(
    db: EventsDB, f: Filters = Filters(), *, search: str = "", limit: int = 5000
) -> pd.DataFrame:
    """The explorer: filtered events of every type, newest first, with a text search."""
    w, p = _search_where(f, search)
    cols = "ts, ingest_ts, event_type, agent, mode, duration_ms, tool_calls, errors, raw"
    return _newest(db, "events", cols, w, p, limit, hint=None if search else f)


def count_events(db: EventsDB, f: Filters = Filters(), *, search: str = "") -> int:
    """How many events ``events_table`` would list without its limit."""
    facts = None if search else _facts(db, f, cycles=False)
    if facts is not None:
        sql, p = facts
        return int(db.fetch(f"SELECT {_CYCLES} AS n FROM ({sql})", p)[0]["n"])
    w, p = _search_where(f, search)
    return int(db.query(f"SELECT count(*) AS n FROM events WHERE {w}", p).iloc[0]["n"])


def event_type_counts(db: EventsDB, f: Filters = Filters()) -> pd.DataFrame:
    """event_type, events: every type, cycles included, counted on its own."""
    facts = _facts(db, f, cycles=False)
    if facts is not None:
        sql, p = facts
        return db.query(
            f"SELECT event_type, {_CYCLES} AS events FROM ({sql}) "
            "GROUP BY ALL ORDER BY events DESC, event_type",
            p,
        )
    w, p = where(f, cycles=False)
    return db.query(
        f"SELECT event_type, count(*) AS events FROM events WHERE {w} "
        "GROUP BY ALL ORDER BY events DESC, event_type",
        p,
    )


def choices(db: EventsDB) -> dict[str, list[str]]:
    """Distinct agents, modes and event types, for filter widgets (once per generation)."""

    def compute() -> dict[str, list[str]]:
        recorded = db.generation.choices
        if recorded is not None and db.rollups_ok:  # found by the sync from the same rollup
            return recorded
        view = "daily" if db.rollups_ok else "events"  # the daily rollup holds every value
        row = db.fetch(f"SELECT {choices_sql()} FROM {view}")[0]
        return {c: [str(v) for v in row[c] or []] for c in CHOICES}

    return {k: list(v) for k, v in db.per_generation("choices", compute).items()}


def freshness(db: EventsDB) -> dict[str, Any]:
    """Newest event and landing time, store counts, and the last sync attempt."""

    # The newest times only change with a new generation: scan for them once per generation.
    def compute() -> dict[str, Any]:
        head = db.generation
        if times_recorded(head) and not db.damaged:
            return recorded_freshness(head)
        row = db.fetch("SELECT * FROM freshness")[0]
        row["newest_ingest_ts"] = db.newest_ingest_ts()
        return row

    out = dict(db.per_generation("freshness", compute))
    status = db.status()
    out["last_sync_at"] = _ts(status.get("last_success_at"))
    out["last_attempt_at"] = _ts(status.get("finished_at"))
    out["last_error"] = status.get("last_error")
    out["syncing"] = bool(status.get("running")) and db.store.is_syncing()
    out["progress"] = status.get("progress")
    out["damaged_segments"] = len(db.damaged)
    return out


def times_recorded(head: GenerationHead) -> bool:
    """Whether ``head`` carries the newest times (the sync records them; an empty store has
    none to record), so :func:`recorded_freshness` needs no query."""
    return head.newest_ingest_us is not None or not head.rows


def recorded_freshness(head: GenerationHead) -> dict[str, Any]:
    """The ``freshness`` view's row as the sync recorded it in ``head``, without a query."""
    row = dict(zip((name for name, _ in STORE_INFO), store_info(head), strict=True))
    return row | {
        "published_at": utc_time(head.published_at),
        "newest_ts": utc_time_us(head.newest_ts_us),
        "newest_ingest_ts": utc_time_us(head.newest_ingest_us),
    }


def utc_time(value: Any) -> datetime | None:
    """A stored epoch-seconds time as a UTC datetime (None when unset)."""
    return datetime.fromtimestamp(float(value), UTC) if value else None


def utc_time_us(value: int | None) -> datetime | None:
    """A stored epoch-microseconds time as a UTC datetime, exactly (None when unset)."""
    return (
        None if value is None else datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)
    )


_ts = utc_time


SET_ASIDE_COLUMNS = ["file", "reason", "tries", "set_aside_at", "next_retry_at"]


def set_aside_files(db: EventsDB) -> pd.DataFrame:
    """Source files set aside as unreadable: key, why, how many tries, when, and when the sync
    downloads them afresh to try again (UTC). Keys are the source's, hostile: show as text."""
    import pandas as pd

    gen = db.refresh()
    rows = [
        (key, bad.reason, bad.attempts, _ts(bad.set_aside_at), _ts(bad.next_retry_at))
        for key, bad in sorted(gen.bad_files.items())
    ]
    return pd.DataFrame(rows, columns=SET_ASIDE_COLUMNS)


def since(spec: str, *, now: datetime | None = None) -> datetime:
    """``"1h"``, ``"7d"``, ``"30m"`` before now, or an ISO-8601 time (UTC unless it says)."""
    now = now or datetime.now(UTC)
    spec = spec.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if spec and spec[-1] in units and spec[:-1].isdigit():
        return now - timedelta(seconds=int(spec[:-1]) * units[spec[-1]])
    try:
        t = datetime.fromisoformat(spec.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {spec!r} (use ISO-8601 or 15m, 1h, 7d)") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


# -- wall ------------------------------------------------------------------------------------
# Added for the wall status screen (issue 4, pages/wall.py).


def wall_agents(
    db: EventsDB,
    f: Filters,
    *,
    seen_since: datetime,
    buckets: int = 30,
) -> pd.DataFrame:
    """Per agent, in one pass: last cycle, window stats and an activity series for a sparkline.

    ``f.start`` and ``f.end`` (both required) bound the window; agents are those with a cycle at
    or after ``seen_since`` (and before ``f.end``), each with ``last_ts`` (newest cycle before
    ``f.end``), ``cycles``, ``error_cycles`` (cycles with ``errors > 0``), ``errors`` and
    ``p95_ms`` over the window, and ``spark_n`` / ``spark_err``: cycles and error cycles in each of
    ``buckets`` equal slices of the window, oldest first (zeros included). ``f.agents`` and
    ``f.modes`` narrow it like everywhere else.
    """
    if f.start is None or f.end is None:
        raise ValueError("wall_agents needs a window with a start and an end")
    n = max(1, int(buckets))
    width = (f.end - f.start).total_seconds() / n
    w, p = where(f)
    seen_w, seen_p = where(Filters(seen_since, f.end, f.agents, f.modes))
    df = db.query(
        f"""
        WITH seen AS (
            SELECT agent, max(ts) AS last_ts FROM cycles WHERE {seen_w} GROUP BY agent
        ),
        win AS (
            SELECT agent, errors, duration_ms,
                   least(CAST(floor((epoch(ts) - epoch(?::TIMESTAMPTZ)) / ?) AS BIGINT), ?) AS b
            FROM cycles WHERE {w}
        ),
        per_bucket AS (
            SELECT agent, b, count(*) AS n, count(*) FILTER (WHERE errors > 0) AS e
            FROM win GROUP BY agent, b
        ),
        stats AS (
            SELECT agent, count(*) AS cycles,
                   count(*) FILTER (WHERE errors > 0) AS error_cycles,
                   CAST(coalesce(sum(errors), 0) AS BIGINT) AS errors,
                   quantile_cont(duration_ms, 0.95) AS p95_ms
            FROM win GROUP BY agent
        ),
        spark AS (
            SELECT agent, list(b ORDER BY b) AS spark_b, list(n ORDER BY b) AS spark_bn,
                   list(e ORDER BY b) AS spark_be
            FROM per_bucket GROUP BY agent
        )
        SELECT seen.agent, seen.last_ts,
               coalesce(stats.cycles, 0) AS cycles,
               coalesce(stats.error_cycles, 0) AS error_cycles,
               coalesce(stats.errors, 0) AS errors,
               stats.p95_ms, spark.spark_b, spark.spark_bn, spark.spark_be
        FROM seen LEFT JOIN stats USING (agent) LEFT JOIN spark USING (agent)
        ORDER BY seen.agent
        """,
        [*seen_p, f.start, width, n - 1, *p],
    )
    import pandas as pd

    spark_n, spark_err = [], []
    for bs, ns, es in zip(df["spark_b"], df["spark_bn"], df["spark_be"], strict=True):
        counts, errs = [0] * n, [0] * n
        if not pd.api.types.is_scalar(bs):  # NULL (None, NaN, NA): no cycles in the window
            for b, c, e in zip(bs, ns, es, strict=True):
                counts[int(b)], errs[int(b)] = int(c), int(e)
        spark_n.append(counts)
        spark_err.append(errs)
    out = df.drop(columns=["spark_b", "spark_bn", "spark_be"])
    out["spark_n"] = spark_n
    out["spark_err"] = spark_err
    return out


# -- rollups ---------------------------------------------------------------------------------
# Long windows read the rollups kept at sync time (rollups.py): whole days from ``daily``, whole
# hours from ``hourly``, and only the partial hours at the window's edges from the raw rows, so
# counts, sums and rates stay exact at every window. Percentiles are exact (``quantile_cont``)
# for windows up to EXACT_PERCENTILES; beyond, they come from the histograms (within 1 %: whole
# months from the monthly ones, other whole days from the daily ones, see _hist_rows) and the
# result says so (``approx``), for the screen to mark them "≈" (docs/events.md).

EXACT_PERCENTILES = timedelta(days=7)
_HOUR, _DAY = 3600, 86400

# Rollup columns and, for raw rows, the same columns (one row each).
_FACT_COLS = "t, event_type, agent, mode, erred, events, errors, dur_n, dur_sum, tools_n, "
_FACT_COLS += "tools_sum, min_ts, max_ts, lag_n, lag_sum"
_RAW_FACTS = (
    "ts AS t, event_type, agent, mode, coalesce(errors > 0, false) AS erred, 1 AS events, errors, "
    "CAST(duration_ms IS NOT NULL AS INTEGER) AS dur_n, duration_ms AS dur_sum, "
    "CAST(tool_calls IS NOT NULL AS INTEGER) AS tools_n, tool_calls AS tools_sum, "
    "ts AS min_ts, ts AS max_ts, "
    "CAST(ingest_ts IS NOT NULL AND ts IS NOT NULL AS INTEGER) AS lag_n, "
    "epoch_us(ingest_ts) - epoch_us(ts) AS lag_sum"
)


def _floor(t: datetime, unit: int) -> datetime:
    return datetime.fromtimestamp(t.timestamp() // unit * unit, UTC)


def _ceil(t: datetime, unit: int) -> datetime:
    f = _floor(t, unit)
    return f if f == t else f + timedelta(seconds=unit)


def _pieces(
    f: Filters, *, grain_s: int | None
) -> list[tuple[str, datetime | None, datetime | None]] | None:
    """The window cut into (source, lo, hi): ``daily``/``hourly`` for whole days/hours (only
    those the bucket width ``grain_s`` keeps whole), ``raw`` for the partial edges; None when
    rollups cannot help (less than one whole hour, or buckets finer than an hour)."""
    if grain_s is not None and grain_s % _HOUR:
        return None
    h0 = _ceil(f.start, _HOUR) if f.start else None
    h1 = _floor(f.end, _HOUR) if f.end else None
    if h0 is not None and h1 is not None and h0 >= h1:
        return None
    out: list[tuple[str, datetime | None, datetime | None]] = []
    if f.start is not None and f.start < h0:
        out.append(("raw", f.start, h0))
    d0 = _ceil(h0, _DAY) if h0 else None
    d1 = _floor(h1, _DAY) if h1 else None
    days = (grain_s is None or grain_s % _DAY == 0) and (d0 is None or d1 is None or d0 < d1)
    if days:
        if h0 is not None and h0 < d0:
            out.append(("hourly", h0, d0))
        out.append(("daily", d0, d1))
        if h1 is not None and d1 < h1:
            out.append(("hourly", d1, h1))
    else:
        out.append(("hourly", h0, h1))
    if f.end is not None and h1 < f.end:
        out.append(("raw", h1, f.end))
    return out


def _rollup_where(f: Filters, lo: datetime | None, hi: datetime | None, *, cycles: bool):
    parts, params = ["true"], []
    if lo is not None:
        parts.append("t >= ?")
        params.append(lo)
    if hi is not None:
        parts.append("t < ?")
        params.append(hi)
    if cycles:
        parts.append("event_type = 'agent.cycle'")
    elif f.event_types:
        parts.append("list_contains(?::VARCHAR[], event_type)")
        params.append(list(f.event_types))
    if f.agents:
        parts.append("list_contains(?::VARCHAR[], agent)")
        params.append(list(f.agents))
    if f.modes:
        parts.append("list_contains(?::VARCHAR[], mode)")
        params.append(list(f.modes))
    if f.errors_only:
        parts.append("erred")
    return " AND ".join(parts), params


def _sub(
    f: Filters, lo: datetime | None, hi: datetime | None, *, errors_only: bool | None = None
) -> Filters:
    only = f.errors_only if errors_only is None else errors_only
    return Filters(lo, hi, f.agents, f.modes, f.event_types, only)


def _facts(
    db: EventsDB, f: Filters, *, cycles: bool = True, grain_s: int | None = None
) -> tuple[str, list[Any]] | None:
    """A SELECT of rollup-shaped rows covering exactly ``f`` (see :func:`_pieces`), or None."""
    if not db.rollups_ok:
        return None
    pieces = _pieces(f, grain_s=grain_s)
    if pieces is None:
        return None
    sqls, params = [], []
    for source, lo, hi in pieces:
        if source == "raw":
            w, p = where(_sub(f, lo, hi), cycles=cycles)
            view = "cycles" if cycles else "events"
            sqls.append(f"SELECT {_RAW_FACTS} FROM {view} WHERE {w}")
        else:
            w, p = _rollup_where(f, lo, hi, cycles=cycles)
            sqls.append(f"SELECT {_FACT_COLS} FROM {source} WHERE {w}")
        params += p
    return " UNION ALL ".join(sqls), params


def approximate(db: EventsDB, f: Filters) -> bool:
    """Whether percentiles over ``f`` come from histograms: rollups are in use and the window
    (the data's own range where ``f`` is open) is longer than EXACT_PERCENTILES."""
    if not db.rollups_ok:
        return False
    start, end = f.start, f.end
    if start is None or end is None:
        lo, hi = time_range(db, Filters())
        start, end = start or lo, end or hi
    if start is None or end is None:
        return False
    return end - start > EXACT_PERCENTILES


@dataclass(frozen=True)
class _Hist:
    """A histogram kept at sync time (rollups.py) and how the raw rows produce its values."""

    daily: str
    monthly: str | None  # the same histogram per month (sums of the daily rows)
    view: str  # the raw rows bucketed at the partial-day edges
    value: str  # the value a row adds to the histogram (NULL: none)
    cycles: bool  # cycle metrics: event types do not filter (where(cycles=True))


DURATION_HIST = _Hist("duration_hist", "duration_hist_month", "cycles", "duration_ms", True)
LAG_HIST = _Hist(
    "lag_hist", "lag_hist_month", "events", "epoch_us(ingest_ts) - epoch_us(ts)", False
)
# The same over every event type, agent and mode (day × k only): for windows nothing else filters.
LAG_HIST_NET = _Hist("lag_hist_net", None, "events", "epoch_us(ingest_ts) - epoch_us(ts)", False)
# A bucket shorter than the shortest month never holds a whole month.
_MIN_MONTH_S = 28 * _DAY


def _floor_month(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    return datetime(t.year, t.month, 1, tzinfo=UTC)


def _ceil_month(t: datetime) -> datetime:
    f = _floor_month(t)
    if f == t:
        return f
    return datetime(f.year + f.month // 12, f.month % 12 + 1, 1, tzinfo=UTC)


def _hist_rows(
    db: EventsDB,
    f: Filters,
    h: _Hist,
    keys: Callable[[str], str],
    *,
    bucket_s: int | None = None,
) -> tuple[str, list[Any]] | None:
    """Rows (keys..., k, n) of histogram ``h`` over ``f``, ``keys(t)`` selecting the grouping
    columns given the time column (``t`` of rollup rows, ``ts`` of raw rows): whole calendar
    months (UTC) from the monthly table, the other whole days from the daily one, the partial
    days at the edges from the raw rows, bucketed the same way. None: no whole day in ``f``.

    Given a time bucket width ``bucket_s`` (``keys`` then groups by ``o11y_bucket(t, b)``), a
    month row is read only where one bucket holds the whole month (its first and last instant
    fall in the same bucket); the other months' days come from the daily table."""
    d0 = _ceil(f.start, _DAY) if f.start else None
    d1 = _floor(f.end, _DAY) if f.end else None
    if d0 is not None and d1 is not None and d0 >= d1:
        return None
    # (table, lo, hi, extra condition): rollup pieces; None bounds are open
    pieces: list[tuple[str, datetime | None, datetime | None, str]] = []
    m0 = _ceil_month(d0) if d0 else None
    m1 = _floor_month(d1) if d1 else None
    whole_months = m0 is None or m1 is None or m0 < m1
    months_ok = db.hist_months and h.monthly is not None
    if months_ok and whole_months and (bucket_s is None or bucket_s >= _MIN_MONTH_S):
        if d0 is not None and d0 < m0:
            pieces.append((h.daily, d0, m0, "true"))
        if bucket_s is None:
            pieces.append((h.monthly, m0, m1, "true"))
        else:
            b = int(bucket_s)

            def fits(m: str) -> str:  # NULL t (no ts) reads as fitting: months hold those rows
                end = f"{m} + INTERVAL 1 MONTH - INTERVAL 1 MICROSECOND"
                return f"o11y_bucket({m}, {b}) IS NOT DISTINCT FROM o11y_bucket({end}, {b})"

            pieces.append((h.monthly, m0, m1, fits("t")))
            pieces.append((h.daily, m0, m1, "NOT " + fits("date_trunc('month', t)")))
        if d1 is not None and m1 < d1:
            pieces.append((h.daily, m1, d1, "true"))
    else:
        pieces.append((h.daily, d0, d1, "true"))
    # Cycle histograms have no event type: event types do not filter cycle metrics.
    rf = Filters(None, None, f.agents, f.modes, () if h.cycles else f.event_types, f.errors_only)
    sqls, params = [], []
    for table, lo, hi, extra in pieces:
        w, p = _rollup_where(rf, lo, hi, cycles=False)
        sqls.append(f"SELECT {keys('t')}, k, n FROM {table} WHERE {w} AND {extra}")
        params += p
    for lo, hi in ((f.start, d0), (d1, f.end)):
        if lo is not None and hi is not None and lo < hi:
            w, p = where(_sub(f, lo, hi), cycles=h.cycles)
            sqls.append(
                f"SELECT {keys('ts')}, o11y_hist_key({h.value}) AS k, 1 AS n FROM {h.view} "
                f"WHERE {w} AND {h.value} IS NOT NULL"
            )
            params += p
    return " UNION ALL ".join(sqls), params


def hist_percentiles_sql(
    rows: str, keys: list[str], qs: dict[str, float], *, count: str | None = None
) -> str:
    """Percentiles per ``keys`` from histogram rows (keys..., k, n), interpolated between order
    statistics as ``quantile_cont`` does, each order statistic read as its bucket's value; with
    ``count``, also the number of values per ``keys`` (BIGINT) under that name."""
    part = f"PARTITION BY {', '.join(keys)}" if keys else ""
    sel = "".join(f"{k}, " for k in keys)

    def at(r: str) -> str:
        return f"min(v) FILTER (WHERE cum > {r})"

    cols = []
    for name, q in qs.items():
        h = f"((total - 1) * {q!r})"
        lo, hi = at(f"floor({h})"), at(f"ceil({h})")
        cols.append(f"{lo} + (any_value({h}) - floor(any_value({h}))) * ({hi} - {lo}) AS {name}")
    if count is not None:
        cols.append(f"CAST(any_value(total) AS BIGINT) AS {count}")
    group = f"GROUP BY {', '.join(keys)}" if keys else ""
    return f"""
        WITH h AS (SELECT {sel}k, sum(n) AS n FROM ({rows}) GROUP BY {sel}k),
        c AS (
            SELECT *, o11y_hist_value(k) AS v,
                   sum(n) OVER ({part} ORDER BY k ROWS UNBOUNDED PRECEDING) AS cum,
                   sum(n) OVER ({part}) AS total
            FROM h
        )
        SELECT {sel}{", ".join(cols)} FROM c {group}
    """


def _percentiles(
    db: EventsDB, f: Filters, keys: dict[str, str], qs: dict[str, float]
) -> tuple[str, list[Any], bool]:
    """A SELECT of ``keys`` (name -> expression over agent/mode) and percentiles of
    ``duration_ms`` over ``f``'s cycles, and whether they are approximate: exact
    ``quantile_cont`` up to EXACT_PERCENTILES, histograms beyond."""
    sel = "".join(f"{e} AS {n}, " for n, e in keys.items())
    if approximate(db, f):
        rows = _hist_rows(db, f, DURATION_HIST, lambda _: sel + "1 AS one")
        if rows is not None:
            sql, p = rows
            return hist_percentiles_sql(sql, list(keys), qs), p, True
    w, p = where(f)
    cols = ", ".join(f"quantile_cont(duration_ms, {q!r}) AS {n}" for n, q in qs.items())
    group = "GROUP BY ALL" if keys else ""
    return f"SELECT {sel}{cols} FROM cycles WHERE {w} {group}", p, False


_CYCLES = "CAST(coalesce(sum(events), 0) AS BIGINT)"
_ERR_CYCLES = "CAST(coalesce(sum(events) FILTER (WHERE erred), 0) AS BIGINT)"
_ERRORS = "CAST(coalesce(sum(errors), 0) AS HUGEINT)"
_TOOLS = "CAST(coalesce(sum(tools_sum), 0) AS HUGEINT)"
_AVG_MS = "CAST(round(CAST(sum(dur_sum) AS DOUBLE) / nullif(sum(dur_n), 0)) AS BIGINT)"
_AVG_TOOLS = "CAST(sum(tools_sum) AS DOUBLE) / nullif(sum(tools_n), 0)"
_ERR_RATE = f"CAST({_ERR_CYCLES} AS DOUBLE) / nullif({_CYCLES}, 0)"


def _newest_hours(db: EventsDB, f: Filters, *, cycles: bool, limit: int) -> datetime | None:
    """The start of the newest whole hours inside ``f`` that hold at least ``limit`` of its rows
    (by the hourly rollup), or None. Only hours wholly inside the window are counted, so the rows
    at or after that time are at least ``limit``: the newest ``limit`` rows all lie there.

    The hourly rollup grows with history (12M rows at 100M events), so it is read backwards from
    the window's newest hour in spans of 1, 8, 64… days until one holds ``limit`` rows: the
    running sum from the newest hour down is the same within a span as over the whole window."""
    if not db.rollups_ok:
        return None
    lo = _ceil(f.start, _HOUR) if f.start else None
    hi = _floor(f.end, _HOUR) if f.end else None
    top = hi or _newest_hour(db)
    oldest = lo or db.per_generation(
        "oldest_day", lambda: db.fetch("SELECT min(t) AS t FROM daily")[0]["t"]
    )
    span = timedelta(days=1)
    while True:
        start = top - span if top is not None else None
        bounded = start is not None and oldest is not None and start > oldest
        w, p = _rollup_where(f, start if bounded else lo, hi, cycles=cycles)
        row = db.fetch(
            "SELECT max(t) AS since FROM (SELECT t, sum(sum(events)) OVER (ORDER BY t DESC) "
            f"AS cum FROM hourly WHERE {w} AND t IS NOT NULL GROUP BY t) WHERE cum >= ?",
            [*p, int(limit)],
        )
        since = row[0]["since"] if row else None
        if since is not None or not bounded:
            return since
        span *= 8


def _newest_hour(db: EventsDB) -> datetime | None:
    """The hour after the newest event's (an upper bound of every hourly row), if known."""
    newest = utc_time_us(db.generation.newest_ts_us)
    if newest is None:  # a store synced before the newest time was recorded
        newest = db.fetch("SELECT max(t) AS t FROM hourly")[0]["t"]
    return None if newest is None else _floor(newest, _HOUR) + timedelta(hours=1)


_ISO_UTC = "'%Y-%m-%dT%H:%M:%S.%fZ'"


def export_events(
    db: EventsDB, f: Filters, *, dest: Path, fmt: str, search: str = "", limit: int
) -> int:
    """Write the explorer's filtered view (every matching event, newest first, at most ``limit``)
    to ``dest`` as CSV (times as ISO-8601 UTC text) or zstd Parquet. DuckDB streams the rows to
    the file: nothing is materialised in Python. Returns the rows written."""
    from o11y_data.ingest.normalize import sql_literal

    w, p = _search_where(f, search)
    if fmt == "csv":
        cols = (
            f"strftime(ts, {_ISO_UTC}) AS ts, strftime(ingest_ts, {_ISO_UTC}) AS ingest_ts, "
            "event_type, agent, mode, duration_ms, tool_calls, errors, raw"
        )
        options = "FORMAT csv, HEADER"
    elif fmt == "parquet":
        cols = "ts, ingest_ts, event_type, agent, mode, duration_ms, tool_calls, errors, raw"
        options = "FORMAT parquet, COMPRESSION zstd"
    else:
        raise ValueError(f"fmt must be csv or parquet, not {fmt!r}")
    return db.copy(
        f"COPY (SELECT {cols} FROM events WHERE {w} ORDER BY ts DESC LIMIT ?) "
        f"TO {sql_literal(str(dest))} ({options})",
        [*p, int(limit)],
    )
