"""One function per question the screens ask, all taking the same :class:`Filters`.

Every value is bound with ``?``; nothing the user typed is formatted into SQL. Definitions follow
EVENTS.md: cycle metrics count ``agent.cycle`` events only; ``avg_ms`` is the mean of non-null
durations rounded to an integer; percentiles interpolate (``quantile_cont``); error rate is cycles
with ``errors > 0`` over cycles; NULLs add nothing to sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from .db import EventsDB

MODES = ("think", "reflection", "housekeeping")
UNKNOWN = "unknown"  # the agent of events without one (EVENTS.md): shown apart, never an agent
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
        w, p = where(f)
        df = db.query(f"SELECT min(ts) AS lo, max(ts) AS hi FROM cycles WHERE {w}", p)
        lo, hi = df.iloc[0]["lo"], df.iloc[0]["hi"]
        return (
            None if pd.isna(lo) else lo.to_pydatetime(),
            None if pd.isna(hi) else hi.to_pydatetime(),
        )

    return db.per_generation("time_range", compute) if f == Filters() else compute()


# -- the seed's summary ----------------------------------------------------------------------


def summary(db: EventsDB, f: Filters = Filters()) -> pd.DataFrame:
    """agent, mode, cycles, avg_ms, tools, errors — by agent and mode, agent then cycles desc."""
    w, p = where(f)
    return db.query(
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


def totals(db: EventsDB, f: Filters = Filters()) -> dict[str, Any]:
    """The overview tiles: agents active, cycles, error rate, p50/p95/p99 duration, tool calls,
    errors; ``agents`` leaves ``unknown`` out, which is counted apart (``unknown_cycles``,
    ``unknown_errors``)."""
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
    row = df.iloc[0].to_dict()
    return {k: (None if pd.isna(v) else v) for k, v in row.items()}


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
    limit = _NO_LIMIT if top is None else max(0, int(top))
    sql = f"""
        WITH base AS (SELECT * FROM cycles WHERE {w}),
        top_agents AS (
            SELECT agent FROM base WHERE agent <> '{UNKNOWN}' GROUP BY agent
            ORDER BY {_rank_order(rank_by)} LIMIT ?
        ),
        grouped AS (
            SELECT base.*,
                   CASE WHEN t.agent IS NOT NULL THEN '{KIND_AGENT}'
                        WHEN base.agent = '{UNKNOWN}' THEN '{KIND_UNKNOWN}'
                        ELSE '{KIND_OTHERS}' END AS kind,
                   CASE WHEN t.agent IS NULL AND base.agent <> '{UNKNOWN}' THEN '{KIND_OTHERS}'
                        ELSE base.agent END AS key
            FROM base LEFT JOIN top_agents t ON base.agent = t.agent
        ),
        sizes AS (SELECT kind, count(DISTINCT agent) AS group_agents FROM grouped GROUP BY kind)
    """
    return sql, [*p, limit]


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
    """bucket, events, lag_p50_s, lag_p95_s, lag_p99_s: ingest lag (``ingest_ts - ts``)."""
    b = _bucket_for(db, f, bucket_s)
    w, p = where(f, cycles=False)
    return db.query(
        f"""
        SELECT o11y_bucket(ts, ?) AS bucket, count(*) AS events,
               quantile_cont(epoch(ingest_ts) - epoch(ts), 0.5) AS lag_p50_s,
               quantile_cont(epoch(ingest_ts) - epoch(ts), 0.95) AS lag_p95_s,
               quantile_cont(epoch(ingest_ts) - epoch(ts), 0.99) AS lag_p99_s
        FROM events WHERE {w} AND ingest_ts IS NOT NULL
        GROUP BY ALL ORDER BY bucket
        """,
        [b, *p],
    )


def events_per_hour(db: EventsDB, f: Filters = Filters()) -> pd.DataFrame:
    """hour, events: all event types landed per hour of ``ts``."""
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
    w, p = where(f)
    return db.query(
        f"""
        SELECT mode, {measures.format(part="")}
        FROM cycles WHERE {w}
        GROUP BY mode ORDER BY mode
        """,
        p,
    )


def duration_percentiles(
    db: EventsDB, f: Filters = Filters(), *, by: str | None = None
) -> pd.DataFrame:
    """key, cycles, avg_ms, p50_ms, p95_ms, p99_ms of ``duration_ms``."""
    w, p = where(f)
    return db.query(
        f"""
        SELECT {_by_expr(by)} AS key, count(duration_ms) AS cycles,
               CAST(round(avg(duration_ms)) AS BIGINT) AS avg_ms,
               quantile_cont(duration_ms, 0.5) AS p50_ms,
               quantile_cont(duration_ms, 0.95) AS p95_ms,
               quantile_cont(duration_ms, 0.99) AS p99_ms
        FROM cycles WHERE {w}
        GROUP BY ALL ORDER BY key
        """,
        p,
    )


def agent_overview(db: EventsDB, f: Filters = Filters()) -> pd.DataFrame:
    """Per agent: cycles, error_rate, p50/p95/p99, avg tool calls, mode mix, last seen;
    ``unknown`` (events without an agent) last, apart from the agents."""
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
               max(ts) AS last_seen
        FROM cycles WHERE {w}
        GROUP BY agent ORDER BY agent = '{UNKNOWN}', cycles DESC, agent
        """,
        p,
    )


def agent_last_seen(db: EventsDB, f: Filters = Filters()) -> pd.DataFrame:
    """agent, last_ts, last_mode, cycles: who was seen when (all time up to ``f.end``); agents
    only (``unknown`` is not an agent that can go quiet)."""

    def compute(g: Filters) -> pd.DataFrame:
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
    db: EventsDB, view: str, columns: str, w: str, p: list[Any], limit: int
) -> pd.DataFrame:
    """The ``limit`` newest rows of ``view`` under ``w``, read in two steps so wide columns (the
    raw JSON) are read only for the rows returned: find the ts of the limit-th newest row on the
    narrow ts column, then read whole rows from that time on."""
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
    return _newest(db, "cycles", "ts, agent, mode, duration_ms, tool_calls, errors", w, p, limit)


def recent_errors(db: EventsDB, f: Filters = Filters(), *, limit: int = 50) -> pd.DataFrame:
    """The most recent cycles with errors, each with its raw event."""
    w, p = where(f)
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
    return _newest(db, "events", cols, w, p, limit)


def count_events(db: EventsDB, f: Filters = Filters(), *, search: str = "") -> int:
    """How many events ``events_table`` would list without its limit."""
    w, p = _search_where(f, search)
    return int(db.query(f"SELECT count(*) AS n FROM events WHERE {w}", p).iloc[0]["n"])


def event_type_counts(db: EventsDB, f: Filters = Filters()) -> pd.DataFrame:
    """event_type, events: every type, cycles included, counted on its own."""
    w, p = where(f, cycles=False)
    return db.query(
        f"SELECT event_type, count(*) AS events FROM events WHERE {w} "
        "GROUP BY ALL ORDER BY events DESC, event_type",
        p,
    )


def choices(db: EventsDB) -> dict[str, list[str]]:
    """Distinct agents, modes and event types, for filter widgets (once per generation)."""

    def compute() -> dict[str, list[str]]:
        out = {}
        for col in ("agent", "mode", "event_type"):
            df = db.query(
                f"SELECT DISTINCT {col} AS v FROM events WHERE {col} IS NOT NULL ORDER BY v"
            )
            out[col] = [str(v) for v in df["v"]]
        return out

    return {k: list(v) for k, v in db.per_generation("choices", compute).items()}


def freshness(db: EventsDB) -> dict[str, Any]:
    """Newest event and landing time, store counts, and the last sync attempt."""
    # The newest times only change with a new generation: scan for them once per generation.
    row = dict(
        db.per_generation(
            "freshness", lambda: db.query("SELECT * FROM freshness").iloc[0].to_dict()
        )
    )
    out = {
        k: (None if (not isinstance(v, list | dict) and pd.isna(v)) else v) for k, v in row.items()
    }
    status = db.status()
    out["last_sync_at"] = _ts(status.get("last_success_at"))
    out["last_attempt_at"] = _ts(status.get("finished_at"))
    out["last_error"] = status.get("last_error")
    out["syncing"] = bool(status.get("running")) and db.store.is_syncing()
    out["progress"] = status.get("progress")
    out["damaged_segments"] = len(db.damaged)
    return out


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(float(value), UTC) if value else None


SET_ASIDE_COLUMNS = ["file", "reason", "tries", "set_aside_at", "next_retry_at"]


def set_aside_files(db: EventsDB) -> pd.DataFrame:
    """Source files set aside as unreadable: key, why, how many tries, when, and when the sync
    downloads them afresh to try again (UTC). Keys are the source's, hostile: show as text."""
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
