"""One function per question the screens ask, all taking the same :class:`Filters`.

Each screen's numbers are the catalog's metrics (metrics.py) asked of the planner (planner.py),
which decides whether the raw rows or the rollups answer; this module only names the columns and
orders the rows. Every value is bound with ``?``; nothing the user typed is formatted into SQL.
Definitions follow docs/events.md.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ..ingest.store import CHOICES, choices_sql
from . import metrics as M
from . import planner
from .db import STORE_INFO, EventsDB, naming, store_info
from .metrics import MODES as MODES  # re-exported: the screens' words
from .metrics import UNKNOWN
from .planner import (
    AGENT,
    EVENT_ROWS,
    EVENT_TYPE,
    HOUR_KEY,
    LAGGED_ROWS,
    MODE,
    Filters,
    Plan,
    TopAgents,
    bucket,
    constant,
    where,
)
from .planner import KIND_AGENT as KIND_AGENT
from .planner import KIND_OTHERS as KIND_OTHERS
from .planner import KIND_UNKNOWN as KIND_UNKNOWN
from .planner import RANKS as RANKS
from .planner import approximate as approximate

if TYPE_CHECKING:  # imported where a DataFrame is built, so the CLI's status does not pay for it
    import pandas as pd

    from ..ingest.store import GenerationHead


_P = ParamSpec("_P")
_R = TypeVar("_R")


# Every question the screens may ask, by name (the result cache keys by name; pages pass the
# function itself, so a reader follows a page to its SQL).
SCREENS: dict[str, Callable[..., Any]] = {}


def screen(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """A question the screens ask: its queries carry its name into their errors ("totals: Query
    timed out after 30 s"), and the name is how the result cache and the warmer know it."""

    @functools.wraps(fn)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with naming(fn.__name__):
            return fn(*args, **kwargs)

    SCREENS[fn.__name__] = run
    return run


def screen_name(fn: Callable[..., Any]) -> str:
    """The name ``fn`` is known by, if it is one of :data:`SCREENS` (else a ValueError)."""
    name = getattr(fn, "__name__", "")
    if SCREENS.get(name) is not fn:
        raise ValueError(f"{fn!r} is not a question of o11y_data.query.queries")
    return name


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
BUCKET_WIDTHS = tuple(_BUCKETS)  # the widths a chart may pick from (e.g. a rate's, from its data)


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


@screen
def time_range(db: EventsDB, f: Filters) -> tuple[datetime | None, datetime | None]:
    """First and last cycle ``ts`` under the filters (unfiltered: once per generation)."""
    return planner.time_range(db, f)


def _frame(db: EventsDB, p: Plan, select: str, tail: str = "", *, extra: list[Any] = ()):
    """``SELECT {select} FROM (plan) {tail}``: ``?`` in ``select`` take ``approx`` (the plan's),
    ``?`` in ``tail`` take ``extra``."""
    marks = select.count("?")
    return db.query(
        f"SELECT {select} FROM ({p.sql}) {tail}", [*[p.approx] * marks, *p.params, *extra]
    )


# -- the seed's summary ----------------------------------------------------------------------

_SEED = "agent, mode, cycles, avg_ms, CAST(tools AS BIGINT) AS tools, "
_SEED += "CAST(errors AS BIGINT) AS errors"
_SEED_ORDER = "ORDER BY agent, cycles DESC, mode"


def _summary_plan(db: EventsDB, f: Filters, *, extended: bool) -> Plan:
    more = [M.ERROR_RATE, *M.DURATION_PERCENTILES] if extended else []
    return planner.plan(db, [M.CYCLES, M.AVG_MS, M.TOOLS, M.ERRORS, *more], f, keys=[AGENT, MODE])


SUMMARY_EXTRA = ("error_rate", "p50_ms", "p95_ms", "p99_ms", "approx")


@screen
def summary(db: EventsDB, f: Filters = Filters(), *, extended: bool = False) -> pd.DataFrame:
    """agent, mode, cycles, avg_ms, tools, errors — by agent and mode, agent then cycles desc.

    ``extended`` (the Summary page) adds error_rate (cycles with errors / cycles), p50_ms, p95_ms,
    p99_ms of ``duration_ms`` and ``approx`` (percentiles read from histograms: windows longer
    than 7 days with rollups, within 1 %); the seed's six columns are the same either way."""
    p = _summary_plan(db, f, extended=extended)
    extra = ", error_rate, p50_ms, p95_ms, p99_ms, ? AS approx" if extended else ""
    return _frame(db, p, _SEED + extra, _SEED_ORDER)


def _summary_rows_sql(db: EventsDB, f: Filters) -> tuple[str, list[Any]]:
    p = _summary_plan(db, f, extended=False)
    return f"SELECT {_SEED} FROM ({p.sql}) {_SEED_ORDER}", p.params


def summary_csv(db: EventsDB, f: Filters, dest: Path) -> int:
    """:func:`summary_rows` written to ``dest`` as CSV (csv_out's rules); returns the rows."""
    return db.copy_csv(*_summary_rows_sql(db, f), dest)


@screen
def summary_rows(db: EventsDB, f: Filters = Filters()) -> list[dict[str, Any]]:
    """:func:`summary` as plain rows (no pandas: the CLI prints them)."""
    return db.fetch(*_summary_rows_sql(db, f))


_TOTALS = [
    M.AGENTS,
    M.CYCLES,
    M.ERROR_RATE,
    *M.DURATION_PERCENTILES,
    M.TOOLS,
    M.ERRORS,
    M.UNKNOWN_CYCLES,
    M.UNKNOWN_ERRORS,
]


@dataclass(frozen=True)
class Totals:
    """A window's headline numbers (:func:`totals`). ``agents`` leaves ``unknown`` out, which is
    counted apart (``unknown_cycles``, ``unknown_errors``); the rate and the percentiles are None
    without cycles (without durations); ``p95_approx`` says whether the percentiles came from
    histograms (a window longer than 7 days)."""

    agents: int
    cycles: int
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    tools: int
    errors: int
    unknown_cycles: int
    unknown_errors: int
    p95_approx: bool


@screen
def totals(db: EventsDB, f: Filters = Filters()) -> Totals:
    """The overview tiles: agents active, cycles, error rate, p50/p95/p99 duration, tool calls,
    errors (see :class:`Totals`)."""
    p = planner.plan(db, _TOTALS, f)
    row = db.fetch(p.sql, p.params)[0]
    out = {m.name: row[m.name] for m in _TOTALS}
    return Totals(**out, p95_approx=p.approx and out["p95_ms"] is not None)


# -- over time -------------------------------------------------------------------------------

_OVER_TIME = [M.CYCLES, M.ERROR_CYCLES, M.ERRORS, M.AVG_MS]


def _over_time(
    db: EventsDB,
    f: Filters,
    more: list[M.Metric],
    *,
    by: str | None,
    bucket_s: int | None,
    top: int | None,
    rank_by: str,
) -> pd.DataFrame:
    b = _bucket_for(db, f, bucket_s)
    names = ", ".join(m.name for m in [*_OVER_TIME, *more])
    if by == "agent":
        p = planner.plan(db, _OVER_TIME + more, f, keys=[bucket(b)], top=TopAgents(top, rank_by))
        base = "bucket, kind, key, " + ", ".join(m.name for m in _OVER_TIME) + ", group_agents"
        cols = base + "".join(f", {m.name}" for m in more)
        return _frame(db, p, cols, "ORDER BY bucket, kind, key")
    if by not in {None, "mode"}:
        raise ValueError(f"by must be agent, mode or None, not {by!r}")
    key = MODE.named("key") if by == "mode" else constant("key", "all")
    p = planner.plan(db, _OVER_TIME + more, f, keys=[bucket(b), key])
    return _frame(db, p, f"bucket, '{by or 'all'}' AS kind, key, {names}", "ORDER BY bucket, key")


@screen
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
    :class:`planner.TopAgents`; ``group_agents`` says how many agents a row stands for). Buckets
    without cycles are absent: the figures decide what an empty bucket means (0 or a gap).
    """
    return _over_time(db, f, [], by=by, bucket_s=bucket_s, top=top, rank_by=rank_by)


@screen
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
    more = [M.ERROR_RATE, M.ERRORS_PER_CYCLE]
    return _over_time(db, f, more, by=by, bucket_s=bucket_s, top=top, rank_by=rank_by)


@screen
def ingest_lag_over_time(
    db: EventsDB, f: Filters = Filters(), *, bucket_s: int | None = None
) -> pd.DataFrame:
    """bucket, events, lag_p50_s, lag_p95_s, lag_p99_s: ingest lag (``ingest_ts - ts``) per
    bucket; approx: percentiles from the lag histograms (a window longer than 7 days, whole-day
    buckets)."""
    b = _bucket_for(db, f, bucket_s)
    p = planner.plan(db, [M.LAGGED, *M.LAG_PERCENTILES], f, keys=[bucket(b)], rows=LAGGED_ROWS)
    cols = "bucket, events, lag_p50_s, lag_p95_s, lag_p99_s, ? AS approx"
    return _frame(db, p, cols, "ORDER BY bucket")


@screen
def events_per_hour(db: EventsDB, f: Filters = Filters()) -> pd.DataFrame:
    """hour, events: all event types landed per hour of ``ts``."""
    p = planner.plan(db, [M.EVENTS], f, keys=[HOUR_KEY], rows=EVENT_ROWS)
    return _frame(db, p, "hour, events", "ORDER BY hour")


# -- breakdowns ------------------------------------------------------------------------------

_MODES_MEASURES = [M.CYCLES, M.AVG_MS, *M.DURATION_PERCENTILES, M.TOOLS, M.AVG_TOOLS, M.ERROR_RATE]
_MODES_COLS = "cycles, cycles / sum(cycles) OVER ({part}) AS share, avg_ms, p50_ms, p95_ms, "
_MODES_COLS += "p99_ms, tools, avg_tools, error_rate"


@screen
def mode_breakdown(
    db: EventsDB,
    f: Filters = Filters(),
    *,
    by_agent: bool = False,
    top: int | None = None,
    rank_by: str = "cycles",
) -> pd.DataFrame:
    """[kind, agent,] mode, cycles, share, avg_ms, p50/p95/p99_ms, tools, avg_tools, error_rate,
    [group_agents,] approx (percentiles from histograms: a window longer than 7 days).

    ``by_agent``: per agent for the ``top`` agents, then ``others`` and ``unknown`` (``agent`` is
    the group's key, ``kind`` says which, see :class:`planner.TopAgents`)."""
    if by_agent:
        p = planner.plan(db, _MODES_MEASURES, f, keys=[MODE], top=TopAgents(top, rank_by))
        cols = _MODES_COLS.format(part="PARTITION BY kind, key")
        return _frame(
            db,
            p,
            f"kind, key AS agent, mode, {cols}, group_agents, ? AS approx",
            "ORDER BY kind, agent, mode",
        )
    p = planner.plan(db, _MODES_MEASURES, f, keys=[MODE])
    return _frame(db, p, f"mode, {_MODES_COLS.format(part='')}, ? AS approx", "ORDER BY mode")


_AGENTS = [
    M.CYCLES,
    M.ERROR_RATE,
    M.ERRORS,
    *M.DURATION_PERCENTILES,
    M.AVG_TOOLS,
    *M.MODE_SHARES,
    M.LAST_TS.as_("last_seen"),
]


@screen
def agent_overview(db: EventsDB, f: Filters = Filters()) -> pd.DataFrame:
    """Per agent: cycles, error_rate, p50/p95/p99, avg tool calls, mode mix, last seen;
    ``unknown`` (events without an agent) last, apart from the agents; approx: percentiles from
    histograms (a window longer than 7 days)."""
    p = planner.plan(db, _AGENTS, f, keys=[AGENT])
    cols = "agent, " + ", ".join(m.name for m in _AGENTS) + ", ? AS approx"
    return _frame(db, p, cols, f"ORDER BY agent = '{UNKNOWN}', cycles DESC, agent")


@screen
def agent_last_seen(db: EventsDB, f: Filters = Filters()) -> pd.DataFrame:
    """agent, last_ts, last_mode, cycles: who was seen when (all time up to ``f.end``); agents
    only (``unknown`` is not an agent that can go quiet)."""

    def compute(g: Filters) -> pd.DataFrame:
        p = planner.plan(db, [M.LAST_TS, M.LAST_MODE, M.CYCLES], g, keys=[AGENT])
        return _frame(
            db,
            p,
            "agent, last_ts, last_mode, cycles",
            f"WHERE agent <> '{UNKNOWN}' ORDER BY last_ts DESC, agent",
        )

    newest = freshness(db).get("newest_ts")
    if f.modes or (f.end is not None and (newest is None or f.end <= newest)):
        return compute(Filters(end=f.end, agents=f.agents, modes=f.modes))
    # Up to now with no mode filter: the all-time answer, computed once per generation.
    df = db.per_generation("agent_last_seen", lambda: compute(Filters()))
    if f.agents:
        df = df[df["agent"].isin(f.agents)]
    return df.reset_index(drop=True).copy()


@screen
def top_error_agents(db: EventsDB, f: Filters = Filters(), *, limit: int = 10) -> pd.DataFrame:
    """agent, cycles, error_cycles, errors, error_rate — most errors first; agents only
    (``unknown``'s errors are in :func:`totals`)."""
    ms = [M.CYCLES, M.ERROR_CYCLES, M.ERRORS, M.ERROR_RATE]
    p = planner.plan(db, ms, f, keys=[AGENT])
    return _frame(
        db,
        p,
        "agent, cycles, error_cycles, errors, error_rate",
        f"WHERE agent <> '{UNKNOWN}' AND error_cycles > 0 "
        "ORDER BY errors DESC, error_rate DESC, agent LIMIT ?",
        extra=[int(limit)],
    )


# -- silences --------------------------------------------------------------------------------
# An agent's silences (docs/events.md, "Silence"): its usual cadence is the median gap between its
# consecutive cycles over the CADENCE_BASELINE before the window's end; a silence is a gap longer
# than SILENCE_FACTOR times that cadence and at least SILENCE_MIN_S. The gap still open at the
# network's newest cycle (not the clock: a stalled pipeline silences everyone) counts too.
SILENCE_FACTOR = 5
SILENCE_MIN_S = 600.0
CADENCE_BASELINE = timedelta(days=7)
CADENCE_MIN_GAPS = 5  # fewer gaps than this: no cadence to judge a gap against


@dataclass(frozen=True)
class Silence:
    """A gap with no cycle: from the cycle ``start`` to the next one at ``end`` (None: still
    silent at :attr:`Silences.until`), ``seconds`` long."""

    start: datetime
    end: datetime | None
    seconds: float


@dataclass(frozen=True)
class Silences:
    """One agent's silences in a window, newest first (at most ``limit``; ``count`` in all), the
    cadence they are judged against (None: too few cycles to know one) and the moment an open gap
    is measured to (the network's newest cycle, or the window's end if earlier)."""

    cadence_s: float | None
    threshold_s: float | None
    until: datetime | None
    gaps: tuple[Silence, ...] = ()
    count: int = 0


@screen
def silences(db: EventsDB, f: Filters, *, limit: int = 50) -> Silences:
    """The silences of the one agent ``f.agents`` names over ``f``'s window (see above). Only
    the agent and the window apply: a silence is about any cycle, whatever its mode or errors."""
    if len(f.agents) != 1:
        raise ValueError("silences are measured for exactly one agent")
    newest = planner.time_range(db, Filters())[1]
    if newest is None:
        return Silences(None, None, None)
    until = newest if f.end is None else min(f.end, newest)
    base_lo = until - CADENCE_BASELINE
    lo = None if f.start is None else min(f.start, base_lo)
    w, p = where(Filters(lo, until, f.agents))
    before_w, before_p = where(Filters(None, lo, f.agents)) if lo else ("false", [])
    gaps = f"""
        WITH pts AS (
            SELECT ts FROM cycles WHERE {w} AND ts IS NOT NULL
            UNION ALL SELECT max(ts) FROM cycles WHERE {before_w}
        ),
        g AS (SELECT lag(ts) OVER (ORDER BY ts) AS a, ts AS b FROM pts WHERE ts IS NOT NULL)
        SELECT a, b, epoch(b) - epoch(a) AS s FROM g WHERE a IS NOT NULL
        UNION ALL SELECT max(ts), NULL, epoch(?::TIMESTAMPTZ) - epoch(max(ts)) FROM pts
    """
    params = [*p, *before_p, until]
    row = db.fetch(
        f"SELECT quantile_cont(s, 0.5) AS cadence, count(*) AS n FROM ({gaps}) "
        "WHERE b IS NOT NULL AND a >= ?",
        [*params, base_lo],
    )[0]
    if row["n"] < CADENCE_MIN_GAPS:
        return Silences(None, None, until)
    cadence = float(row["cadence"])
    threshold = max(SILENCE_FACTOR * cadence, SILENCE_MIN_S)
    start = f.start or datetime(1, 1, 1, tzinfo=UTC)
    found = db.fetch(
        f"SELECT a, b, s, count(*) OVER () AS total FROM ({gaps}) "
        "WHERE a IS NOT NULL AND s > ? AND coalesce(b, ?::TIMESTAMPTZ) > ? "
        "ORDER BY a DESC LIMIT ?",
        [*params, threshold, until, start, int(limit)],
    )
    out = tuple(Silence(r["a"], r["b"], float(r["s"])) for r in found)
    return Silences(cadence, threshold, until, out, int(found[0]["total"]) if found else 0)


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


@screen
def cycle_points(db: EventsDB, f: Filters = Filters(), *, limit: int = 20000) -> pd.DataFrame:
    """ts, agent, mode, duration_ms, tool_calls, errors of single cycles, newest first, capped."""
    w, p = where(f)
    cols = "ts, agent, mode, duration_ms, tool_calls, errors"
    return _newest(db, "cycles", cols, w, p, limit, hint=f)


@screen
def recent_errors(db: EventsDB, f: Filters = Filters(), *, limit: int = 50) -> pd.DataFrame:
    """The most recent cycles with errors, each with its raw event."""
    w, p = where(f)
    since = _newest_hours(db, f.within(f.start, f.end, errors_only=True), cycles=True, limit=limit)
    if since is not None:
        w += " AND ts >= ?"
        p = [*p, since]
    return db.query(
        f"SELECT ts, agent, mode, errors, duration_ms, tool_calls, raw FROM cycles "
        f"WHERE {w} AND errors > 0 ORDER BY ts DESC LIMIT ?",
        [*p, int(limit)],
    )


def search_where(f: Filters, search: str) -> tuple[str, list[Any]]:
    """The explorer's filter: ``f`` over every event type, plus a text search on agent and raw."""
    w, p = where(f, cycles=False)
    if search:
        w += " AND (contains(lower(agent), lower(?)) OR contains(lower(raw), lower(?)))"
        p += [search, search]
    return w, p


@screen
def events_table(
    db: EventsDB, f: Filters = Filters(), *, search: str = "", limit: int = 5000
) -> pd.DataFrame:
    """The explorer: filtered events of every type, newest first, with a text search."""
    w, p = search_where(f, search)
    cols = "ts, ingest_ts, event_type, agent, mode, duration_ms, tool_calls, errors, raw"
    return _newest(db, "events", cols, w, p, limit, hint=None if search else f)


@screen
def count_events(db: EventsDB, f: Filters = Filters(), *, search: str = "") -> int:
    """How many events ``events_table`` would list without its limit."""
    if not search:
        plan = planner.plan(db, [M.EVENTS], f, rows=EVENT_ROWS)
        return int(db.fetch(plan.sql, plan.params)[0]["events"])
    w, p = search_where(f, search)
    return int(db.query(f"SELECT count(*) AS n FROM events WHERE {w}", p).iloc[0]["n"])


@screen
def event_type_counts(db: EventsDB, f: Filters = Filters()) -> pd.DataFrame:
    """event_type, events: every type, cycles included, counted on its own."""
    p = planner.plan(db, [M.EVENTS], f, keys=[EVENT_TYPE], rows=EVENT_ROWS)
    return _frame(db, p, "event_type, events", "ORDER BY events DESC, event_type")


@screen
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


@screen
def freshness(db: EventsDB) -> dict[str, Any]:
    """Newest event and landing time, store counts, and the last sync attempt."""

    # The newest times only change with a new generation: scan for them once per generation.
    def compute() -> dict[str, Any]:
        head = db.generation
        if times_recorded(head) and not db.damaged:
            return recorded_freshness(head)
        row = db.fetch("SELECT * FROM freshness")[0]
        row["newest_ingest_ts"] = db.newest_ingest_ts()
        row["out_of_range"] = dict(head.out_of_range)
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
        "out_of_range": dict(head.out_of_range),  # by field: ranges.describe words them
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


@screen
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
    except ValueError as exc:
        raise ValueError(f"not a time: {spec!r} (use ISO-8601 or 15m, 1h, 7d)") from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


# -- wall ------------------------------------------------------------------------------------
# Added for the wall status screen (issue 4, pages/wall.py).


@screen
def wall_agents(
    db: EventsDB,
    f: Filters,
    *,
    seen_for: timedelta | None,
    buckets: int = 30,
) -> pd.DataFrame:
    """Per agent, in one pass: last cycle, window stats and an activity series for a sparkline.

    ``f.start`` and ``f.end`` (both required) bound the window; agents are those with a cycle
    within ``seen_for`` before ``f.end`` (None: ever), each with ``last_ts`` (newest cycle before
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
    # Relative to f.end, not a moment of its own, so a call whose window moves with the clock
    # (ui/warm.shift) moves whole.
    seen_since = None if seen_for is None else f.end - seen_for
    seen_w, seen_p = where(Filters(seen_since, f.end, f.agents, f.modes))
    df = db.query(
        f"""
        WITH seen AS (
            SELECT agent, {M.LAST_TS.raw} AS last_ts FROM cycles WHERE {seen_w} GROUP BY agent
        ),
        win AS (
            SELECT agent, errors, duration_ms,
                   least(CAST(floor((epoch(ts) - epoch(?::TIMESTAMPTZ)) / ?) AS BIGINT), ?) AS b
            FROM cycles WHERE {w}
        ),
        per_bucket AS (
            SELECT agent, b, {M.CYCLES.raw} AS n, {M.ERROR_CYCLES.raw} AS e
            FROM win GROUP BY agent, b
        ),
        stats AS (
            SELECT agent, {M.CYCLES.raw} AS cycles, {M.ERROR_CYCLES.raw} AS error_cycles,
                   CAST({M.ERRORS.raw} AS BIGINT) AS errors, {M.P95_MS.raw} AS p95_ms
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


def _newest_hours(db: EventsDB, f: Filters, *, cycles: bool, limit: int) -> datetime | None:
    """The start of the newest whole hours inside ``f`` that hold at least ``limit`` of its rows
    (by the hourly rollup), or None. Only hours wholly inside the window are counted, so the rows
    at or after that time are at least ``limit``: the newest ``limit`` rows all lie there.

    The hourly rollup grows with history (12M rows at 100M events), so it is read backwards from
    the window's newest hour in spans of 1, 8, 64… days until one holds ``limit`` rows: the
    running sum from the newest hour down is the same within a span as over the whole window."""
    if not db.rollups_ok:
        return None
    lo = planner.ceil(f.start, planner.HOUR) if f.start else None
    hi = planner.floor(f.end, planner.HOUR) if f.end else None
    top = hi or _newest_hour(db)
    oldest = lo or db.per_generation(
        "oldest_day", lambda: db.fetch("SELECT min(t) AS t FROM daily")[0]["t"]
    )
    span = timedelta(days=1)
    while True:
        start = top - span if top is not None else None
        bounded = start is not None and oldest is not None and start > oldest
        w, p = planner.rollup_where(f, start if bounded else lo, hi, cycles=cycles)
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
    return None if newest is None else planner.floor(newest, planner.HOUR) + timedelta(hours=1)


_ISO_UTC = "'%Y-%m-%dT%H:%M:%S.%fZ'"


@screen
def export_events(
    db: EventsDB, f: Filters, *, dest: Path, fmt: str, search: str = "", limit: int
) -> int:
    """Write the explorer's filtered view (every matching event, newest first, at most ``limit``)
    to ``dest`` as CSV (times as ISO-8601 UTC text) or zstd Parquet. DuckDB streams the rows to
    the file: nothing is materialised in Python. Returns the rows written."""
    from ..ingest.normalize import sql_literal

    w, p = search_where(f, search)
    if fmt == "csv":
        cols = (
            f"strftime(ts, {_ISO_UTC}) AS ts, strftime(ingest_ts, {_ISO_UTC}) AS ingest_ts, "
            "event_type, agent, mode, duration_ms, tool_calls, errors, raw"
        )
        select = f"SELECT {cols} FROM events WHERE {w} ORDER BY ts DESC LIMIT ?"
        return db.copy_csv(select, [*p, int(limit)], dest)  # csv_out: formulas neutralised
    if fmt == "parquet":
        cols = "ts, ingest_ts, event_type, agent, mode, duration_ms, tool_calls, errors, raw"
        options = "FORMAT parquet, COMPRESSION zstd"
    else:
        raise ValueError(f"fmt must be csv or parquet, not {fmt!r}")
    return db.copy(
        f"COPY (SELECT {cols} FROM events WHERE {w} ORDER BY ts DESC LIMIT ?) "
        f"TO {sql_literal(str(dest))} ({options})",
        [*p, int(limit)],
    )
