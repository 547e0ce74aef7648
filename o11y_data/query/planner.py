"""One planner: (metrics, filters, window, grouping) → SQL over the raw rows or the rollups.

:func:`plan` is the only place that decides where a number is read from. Whole days come from
``daily``, whole hours from ``hourly``, and only the partial hours at the window's edges from the
raw rows (projected to the rollups' shape, :data:`metrics.RAW_FACTS`), so counts, sums, means and
rates are exact at every window. Percentiles are exact (``quantile_cont`` over the raw rows) for
windows up to :data:`metrics.EXACT_PERCENTILES`; beyond, they come from the histograms (whole
months from the monthly ones, other whole days from the daily ones, the partial days at the edges
bucketed from the raw rows) and the plan says so (``approx``), for screens to mark them "≈".

When rollups cannot answer (``db.rollups_ok`` false, buckets finer than an hour, less than one
whole hour, or exact percentiles that must read the raw rows anyway) the plan is one pass over the
raw rows with the same metrics' ``raw`` expressions: one definition, two sources.

Every value is bound with ``?``; nothing the user typed is formatted into SQL (bucket widths and
top-N sizes are integers we convert, metric and key expressions are ours).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from ..errors import O11yError
from . import metrics as M

if TYPE_CHECKING:
    from .db import EventsDB

HOUR, DAY = 3600, 86400
# A bucket shorter than the shortest month never holds a whole month.
_MIN_MONTH_S = 28 * DAY
_NO_LIMIT = 2**62
RANKS = ("cycles", "errors")  # what "top N agents" ranks by
# ``kind`` of a row of a per-agent breakdown: one of the top agents, the rest folded together,
# or the events without an agent.
KIND_AGENT, KIND_OTHERS, KIND_UNKNOWN = "agent", "others", "unknown"


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

    def within(
        self, lo: datetime | None, hi: datetime | None, *, errors_only: bool | None = None
    ) -> Filters:
        """The same filters over [lo, hi)."""
        only = self.errors_only if errors_only is None else errors_only
        return Filters(lo, hi, self.agents, self.modes, self.event_types, only)


def _conditions(
    f: Filters,
    *,
    time: str,
    lo: datetime | None,
    hi: datetime | None,
    cycles: bool,
    cycles_only: str | None,
    erred: str,
) -> tuple[str, list[Any]]:
    """``f``'s conditions over rows whose time column is ``time``, in [lo, hi). Cycle metrics
    keep ``cycles_only`` (None: the rows are cycles already) instead of the event types."""
    parts, params = ["true"], []
    for cond, value in ((f"{time} >= ?", lo), (f"{time} < ?", hi)):
        if value is not None:
            parts.append(cond)
            params.append(value)
    if cycles and cycles_only:
        parts.append(cycles_only)
    for column, values in (
        ("event_type", () if cycles else f.event_types),
        ("agent", f.agents),
        ("mode", f.modes),
    ):
        if values:
            parts.append(f"list_contains(?::VARCHAR[], {column})")
            params.append(list(values))
    if f.errors_only:
        parts.append(erred)
    return " AND ".join(parts), params


def where(f: Filters, *, cycles: bool = True) -> tuple[str, list[Any]]:
    """A WHERE clause and its parameters for ``f`` over raw rows (the ``cycles`` view holds only
    cycles); event types apply outside cycle metrics."""
    return _conditions(
        f, time="ts", lo=f.start, hi=f.end, cycles=cycles, cycles_only=None, erred="errors > 0"
    )


def rollup_where(
    f: Filters, lo: datetime | None, hi: datetime | None, *, cycles: bool
) -> tuple[str, list[Any]]:
    """:func:`where` over rollup rows (``t`` in [lo, hi), ``erred``), the window given apart."""
    return _conditions(
        f,
        time="t",
        lo=lo,
        hi=hi,
        cycles=cycles,
        cycles_only="event_type = 'agent.cycle'",
        erred="erred",
    )


# -- what is measured, over which rows, grouped how --------------------------------------------


@dataclass(frozen=True)
class Rows:
    """The rows metrics aggregate: a raw view, whether event types filter them, and the extra
    condition a raw row (``raw``) and a rollup row (``facts``) must meet."""

    view: Literal["cycles", "events"]
    cycles: bool
    raw: str = "true"
    facts: str = "true"


CYCLE_ROWS = Rows("cycles", True)
EVENT_ROWS = Rows("events", False)
# Events with an ingest lag (both times known): the lag's count and percentiles.
LAGGED_ROWS = Rows("events", False, "ingest_ts IS NOT NULL", "lag_n > 0")


@dataclass(frozen=True)
class Key:
    """A grouping column ``name``: ``expr`` with ``{t}`` for the time column (``ts`` of raw rows,
    ``t`` of rollup rows), reading the row columns ``reads``; ``grain_s`` the time grain it needs
    (None: not a time key)."""

    name: str
    expr: str
    reads: tuple[str, ...] = ()
    grain_s: int | None = None

    def sql(self, t: str) -> str:
        return f"{self.expr.format(t=t)} AS {self.name}"

    def in_hist(self, h: M.Hist) -> bool:
        """Whether histogram ``h`` keeps this key (times: whole days only)."""
        if self.grain_s is not None:
            return self.grain_s % DAY == 0
        return all(c in h.keys for c in self.reads)

    def named(self, name: str) -> Key:
        """The same grouping under another column name."""
        return Key(name, self.expr, self.reads, self.grain_s)


AGENT = Key("agent", "agent", ("agent",))
MODE = Key("mode", "mode", ("mode",))
EVENT_TYPE = Key("event_type", "event_type", ("event_type",))
HOUR_KEY = Key("hour", "date_trunc('hour', {t})", grain_s=HOUR)


def constant(name: str, value: str) -> Key:
    """One group labelled ``value`` (our word, never user text): none when there are no rows."""
    if not value.isidentifier():
        raise ValueError(f"a constant key is a plain word, not {value!r}")
    return Key(name, f"'{value}'")


def bucket(seconds: int) -> Key:
    """Time buckets of ``seconds`` (``o11y_bucket``), the column ``bucket``."""
    b = int(seconds)
    if b <= 0:
        raise ValueError(f"bucket width must be positive, not {seconds!r}")
    return Key("bucket", f"o11y_bucket({{t}}, {b})", grain_s=b)


@dataclass(frozen=True)
class TopAgents:
    """Group by agent as the ``top`` agents by ``rank_by`` (None: every agent), every other agent
    folded into one row of kind ``others`` (key ``others``), ``unknown`` apart (kind
    ``unknown``, never ranked): columns ``kind`` and ``key`` first, ``group_agents`` (how many
    distinct agents the row's kind holds) last. Done in SQL so 5,000 agents never reach pandas."""

    top: int | None = None
    rank_by: str = "cycles"

    def __post_init__(self) -> None:
        if self.rank_by not in RANKS:
            raise ValueError(f"rank_by must be one of {', '.join(RANKS)}, not {self.rank_by!r}")

    def order(self, source: Literal["raw", "facts"]) -> str:
        """The ranking, spelled with the catalog's metrics over ``source``."""

        def e(m: M.Metric) -> str:
            return m.raw if source == "raw" else m.facts

        if self.rank_by == "cycles":
            return f"{e(M.CYCLES)} DESC, agent"
        return f"{e(M.ERRORS)} DESC, {e(M.ERROR_CYCLES)} DESC, {e(M.CYCLES)} DESC, agent"


@dataclass(frozen=True)
class Plan:
    """A SELECT of the grouping columns then the measures (under their names), its parameters,
    whether its percentiles are approximate, and what it reads (``raw`` or ``rollups``)."""

    sql: str
    params: list[Any]
    approx: bool
    source: Literal["raw", "rollups"]
    # Partial hours (days, for histograms) at a window's edges before the raw horizon were read
    # as whole ones from the rollups: the store holds no raw rows there (O11Y_RAW_HORIZON).
    widened: bool = False


class BeforeHorizon(O11yError):
    """A question that needs raw rows from before the store's raw horizon."""

    def __init__(self, raw_from: datetime) -> None:
        super().__init__(
            f"Before the raw horizon ({raw_from:%Y-%m-%d})",
            "this question needs raw rows older than the store keeps; configure an engine, "
            "see docs/scaling.md",
        )


def horizon_of(db: EventsDB, f: Filters) -> datetime | None:
    """The store's raw horizon when the window ``f`` reaches rows before it (None otherwise)."""
    raw_from = db.raw_from()
    if raw_from is None or (f.start is not None and f.start >= raw_from):
        return None
    if not db.rollups_ok:
        return raw_from

    def oldest() -> datetime | None:  # the first event time of all history (the rollups')
        return db.fetch("SELECT min(min_ts) AS t FROM daily")[0]["t"]

    first = db.per_generation("oldest_ts", oldest)
    return raw_from if first is not None and first < raw_from else None


# -- the planner -------------------------------------------------------------------------------


def plan(
    db: EventsDB,
    measures: Sequence[M.Measure],
    f: Filters = Filters(),
    *,
    keys: Sequence[Key] = (),
    top: TopAgents | None = None,
    rows: Rows = CYCLE_ROWS,
    force: Literal["raw", "rollups"] | None = None,
) -> Plan:
    """SQL answering ``measures`` over ``rows`` under ``f``, one row per ``keys`` (and agent
    group, given ``top``). ``force`` picks the source (tests compare the two); by default:

    - exact percentiles (a window up to EXACT_PERCENTILES, or a grouping the histograms do not
      keep) read the raw rows, and so does everything else in the same pass;
    - otherwise rollups when they are usable and the grain is whole hours, else the raw rows.
    """
    pcts = [m for m in measures if isinstance(m, M.Percentile)]
    grain = _grain(keys)
    hist = _hist_for(pcts, f, keys, top) if pcts else None
    # Before the raw horizon only the rollups hold the rows: they answer, edges widened.
    horizon = horizon_of(db, f) if force != "raw" else None
    use_hist = hist is not None and (approximate(db, f) or horizon is not None)
    pieces = _pieces(f, grain_s=grain) if db.rollups_ok else None
    widened = False
    if horizon is not None and db.rollups_ok:
        pieces, widened = _widen(f, pieces, grain_s=grain, raw_from=horizon)
    rollups = pieces is not None and (not pcts or use_hist)
    if force == "raw":
        rollups = False
    elif force == "rollups":
        if not db.rollups_ok:
            raise ValueError("rollups are not in use for this store")
        pieces = _pieces(f, grain_s=grain) or [("raw", f.start, f.end)]
        use_hist = bool(pcts) and hist is not None and _whole_days(f)
        rollups = True
    if not rollups:
        if horizon is not None:
            raise BeforeHorizon(horizon)
        sql, params = _raw_plan(measures, f, keys, top, rows)
        return Plan(sql, params, False, "raw")
    assert pieces is not None
    hf = _widen_days(f, horizon) if horizon is not None and use_hist else f
    widened = widened or hf != f
    sql, params = _rollup_plan(
        db, measures, f, keys, top, rows, pieces, hist if use_hist else None, hf
    )
    return Plan(sql, params, bool(pcts) and use_hist, "rollups", widened)


def _widen(
    f: Filters, pieces: list[Piece] | None, *, grain_s: int | None, raw_from: datetime
) -> tuple[list[Piece] | None, bool]:
    """``pieces`` with every raw edge before ``raw_from`` read as its whole hours from the
    hourly rollup (a window inside one hour: that hour); None when buckets are finer than an
    hour. Returns whether anything was widened."""
    if grain_s is not None and grain_s % HOUR:
        return None, False
    if pieces is None:  # less than one whole hour
        if f.start is None or f.end is None:
            return None, False
        return [("hourly", floor(f.start, HOUR), ceil(f.end, HOUR))], True
    out: list[Piece] = []
    widened = False
    for source, lo, hi in pieces:
        if source == "raw" and lo is not None and hi is not None and lo < raw_from:
            out.append(("hourly", floor(lo, HOUR), ceil(hi, HOUR)))
            widened = True
        else:
            out.append((source, lo, hi))
    return out, widened


def _widen_days(f: Filters, raw_from: datetime) -> Filters:
    """``f`` for the histograms: an edge before ``raw_from`` widened to its whole day (the
    histograms are daily)."""
    start = floor(f.start, DAY) if f.start is not None and f.start < raw_from else f.start
    end = f.end
    if end is not None and end < raw_from:
        end = ceil(end, DAY)
    return f.within(start, end) if (start, end) != (f.start, f.end) else f


Span = tuple[datetime | None, datetime | None]


def raw_spans(
    db: EventsDB,
    measures: Sequence[M.Measure],
    f: Filters = Filters(),
    *,
    keys: Sequence[Key] = (),
    rows: Rows = CYCLE_ROWS,
) -> list[Span]:
    """The time spans [lo, hi) whose raw rows :func:`plan` reads for these arguments (None: open):
    the whole window for a raw plan, else the partial hours at the edges and, for percentiles
    from histograms, the partial days. Routing (route.py) compares them with the raw horizon."""
    p = plan(db, measures, f, keys=keys, rows=rows)
    if p.source == "raw":
        return [(f.start, f.end)]
    if p.approx and not approximate(db, f):  # histograms only for the horizon: exact needs rows
        return [(f.start, f.end)]
    pieces = _pieces(f, grain_s=_grain(keys)) or []
    spans: list[Span] = [(lo, hi) for source, lo, hi in pieces if source == "raw"]
    if p.approx:  # hist_rows: the partial days at the edges (or the window, without a whole day)
        d0 = ceil(f.start, DAY) if f.start else None
        d1 = floor(f.end, DAY) if f.end else None
        if d0 is not None and d1 is not None and d0 >= d1:
            spans.append((f.start, f.end))
        else:
            spans += [(lo, hi) for lo, hi in ((f.start, d0), (d1, f.end)) if lo and hi and lo < hi]
    return spans


def _grain(keys: Sequence[Key]) -> int | None:
    """The time grain every time key's buckets are made of (their greatest common divisor)."""
    grains = [k.grain_s for k in keys if k.grain_s is not None]
    return math.gcd(*grains) if grains else None


def _hist_for(
    pcts: list[M.Percentile], f: Filters, keys: Sequence[Key], top: TopAgents | None
) -> M.Hist | None:
    """The one histogram every percentile reads, if it keeps the grouping; the network's lag
    histogram when nothing but time filters or groups the lag."""
    hists = {p.hist for p in pcts}
    if len(hists) != 1:
        return None
    (h,) = hists
    need = [*keys, *([AGENT] if top is not None else [])]
    if not all(k.in_hist(h) for k in need):
        return None
    bare = not (f.agents or f.modes or f.event_types or f.errors_only)
    if h == M.LAG_HIST and bare and top is None and all(k.grain_s for k in keys):
        return M.LAG_HIST_NET
    return h


def _whole_days(f: Filters) -> bool:
    d0 = ceil(f.start, DAY) if f.start else None
    d1 = floor(f.end, DAY) if f.end else None
    return d0 is None or d1 is None or d0 < d1


def _select(measures: Sequence[M.Measure], source: Literal["raw", "facts"]) -> str:
    return ", ".join(f"{m.raw if source == 'raw' else m.facts} AS {m.name}" for m in measures)


def _raw_plan(
    measures: Sequence[M.Measure],
    f: Filters,
    keys: Sequence[Key],
    top: TopAgents | None,
    rows: Rows,
) -> tuple[str, list[Any]]:
    """One pass over the raw rows with the metrics' ``raw`` expressions."""
    w, p = where(f, cycles=rows.cycles)
    base = f"SELECT * FROM {rows.view} WHERE {w} AND {rows.raw}"
    ks = "".join(f"{k.sql('ts')}, " for k in keys)
    if top is None:
        group = " GROUP BY ALL" if keys else ""
        return f"SELECT {ks}{_select(measures, 'raw')} FROM ({base}){group}", p
    groups, gp = _groups_sql(base, p, top.order("raw"), top.top)
    return (
        f"""WITH {groups},
        agg AS (SELECT kind, key, {ks}{_select(measures, "raw")} FROM grouped GROUP BY ALL)
        SELECT agg.*, sizes.group_agents FROM agg JOIN sizes USING (kind)""",
        gp,
    )


def _rollup_plan(
    db: EventsDB,
    measures: Sequence[M.Measure],
    f: Filters,
    keys: Sequence[Key],
    top: TopAgents | None,
    rows: Rows,
    pieces: list[Piece],
    hist: M.Hist | None,
    hist_f: Filters | None = None,
) -> tuple[str, list[Any]]:
    """Counts and sums from rollup-shaped rows, percentiles from histogram ``hist`` (over
    ``hist_f``, the window with edges before the raw horizon widened to whole days)."""
    hist_f = hist_f or f
    mets = [m for m in measures if isinstance(m, M.Metric)]
    pcts = [m for m in measures if isinstance(m, M.Percentile)]
    names = [k.name for k in keys]
    group_cols = (["kind", "key"] if top is not None else []) + names
    bucket_s = _grain(keys)
    if pcts and hist is None:
        raise ValueError("percentiles over rollups need a histogram keeping the grouping")
    lagged = all(m.facts == M.LAGGED.facts for m in mets)
    if hist is not None and top is None and len(mets) <= 1 and rows == LAGGED_ROWS and lagged:
        # The histogram's own count is the number of lagged events: rows are read once.
        hsql, hp = hist_rows(db, hist_f, hist, lambda t: _hist_keys(keys, t), bucket_s=bucket_s)
        sql = hist_percentiles_sql(hsql, names, _qs(pcts), count=mets[0].name if mets else None)
        cols = ", ".join([*names, *(m.name for m in measures)])
        return f"SELECT {cols} FROM ({sql})", hp
    facts, fp = facts_sql(f, pieces, rows)
    # Percentiles alone still need the groups (or the one row) the histograms join to.
    selected = [k.sql("t") for k in keys] + ([_select(mets, "facts")] if mets else [])
    items = ", ".join(selected)
    group = " GROUP BY ALL" if group_cols else ""
    ctes: list[str] = []
    if top is not None:
        groups, params = _groups_sql(facts, fp, top.order("facts"), top.top)
        ctes.append(groups)
        agg = f"SELECT kind, key{', ' if items else ''}{items} FROM grouped{group}"
    else:
        params = list(fp)
        agg = f"SELECT {items or '1 AS one_'} FROM ({facts}){group}"
    ctes.append(f"a AS ({agg})")
    if hist is not None:
        hsql, hp = hist_rows(
            db,
            hist_f,
            hist,
            lambda t: _hist_keys(keys, t, agent=top is not None),
            bucket_s=bucket_s,
        )
        if top is not None:
            others = "".join(f", r.{n}" for n in names)
            hsql = (
                f"SELECT {group_of('r')}{others}, r.k, r.n FROM ({hsql}) r "
                "LEFT JOIN top_agents t_ ON r.agent = t_.agent"
            )
        ctes.append(f"q AS ({hist_percentiles_sql(hsql, group_cols, _qs(pcts))})")
        params += hp
    cols = [*(f"a.{c}" for c in group_cols), *(f"{_side(m)}.{m.name}" for m in measures)]
    joins = ""
    if hist is not None:
        on = f"USING ({', '.join(group_cols)})" if group_cols else "ON true"
        joins += f" LEFT JOIN q {on}"
    if top is not None:
        joins += " JOIN sizes USING (kind)"
        cols.append("sizes.group_agents")
    return f"WITH {', '.join(ctes)} SELECT {', '.join(cols)} FROM a{joins}", params


def _side(m: M.Measure) -> str:
    return "q" if isinstance(m, M.Percentile) else "a"


def _qs(pcts: list[M.Percentile]) -> dict[str, tuple[float, float]]:
    return {p.name: (p.q, p.scale) for p in pcts}


def _hist_keys(keys: Sequence[Key], t: str, *, agent: bool = False) -> str:
    cols = (["agent"] if agent else []) + [k.sql(t) for k in keys]
    return ", ".join(cols) if cols else "1 AS one"


def group_of(r: str) -> str:
    """``kind`` and ``key`` of rows ``r`` joined to ``top_agents`` (alias ``t_``)."""
    return f"""
        CASE WHEN t_.agent IS NOT NULL THEN '{KIND_AGENT}'
             WHEN {r}.agent = '{M.UNKNOWN}' THEN '{KIND_UNKNOWN}' ELSE '{KIND_OTHERS}' END AS kind,
        CASE WHEN t_.agent IS NULL AND {r}.agent <> '{M.UNKNOWN}' THEN '{KIND_OTHERS}'
             ELSE {r}.agent END AS key"""


def _groups_sql(base: str, params: list[Any], order: str, top: int | None) -> tuple[str, list[Any]]:
    """CTEs (without WITH) ending in ``grouped`` (``base``'s rows with ``kind`` and ``key``) and
    ``sizes`` (``group_agents`` per kind), the top agents picked by ``order``."""
    limit = _NO_LIMIT if top is None else max(0, int(top))
    sql = f"""
        base AS ({base}),
        top_agents AS (
            SELECT agent FROM base WHERE agent <> '{M.UNKNOWN}' GROUP BY agent
            ORDER BY {order} LIMIT ?
        ),
        grouped AS (
            SELECT base.*, {group_of("base")}
            FROM base LEFT JOIN top_agents t_ ON base.agent = t_.agent
        ),
        sizes AS (SELECT kind, count(DISTINCT agent) AS group_agents FROM grouped GROUP BY kind)
    """
    return sql, [*params, limit]


# -- the window cut into sources ---------------------------------------------------------------

Piece = tuple[str, datetime | None, datetime | None]


def floor(t: datetime, unit: int) -> datetime:
    """``t`` rounded down to a multiple of ``unit`` seconds (UTC)."""
    return datetime.fromtimestamp(t.timestamp() // unit * unit, UTC)


def ceil(t: datetime, unit: int) -> datetime:
    """``t`` rounded up to a multiple of ``unit`` seconds (UTC)."""
    f = floor(t, unit)
    return f if f == t else f + timedelta(seconds=unit)


def _pieces(f: Filters, *, grain_s: int | None) -> list[Piece] | None:
    """The window cut into (source, lo, hi): ``daily``/``hourly`` for whole days/hours (only
    those the bucket width ``grain_s`` keeps whole), ``raw`` for the partial edges; None when
    rollups cannot help (less than one whole hour, or buckets finer than an hour)."""
    if grain_s is not None and grain_s % HOUR:
        return None
    h0 = ceil(f.start, HOUR) if f.start else None
    h1 = floor(f.end, HOUR) if f.end else None
    if h0 is not None and h1 is not None and h0 >= h1:
        return None
    out: list[Piece] = []
    if f.start is not None and f.start < h0:
        out.append(("raw", f.start, h0))
    d0 = ceil(h0, DAY) if h0 else None
    d1 = floor(h1, DAY) if h1 else None
    days = (grain_s is None or grain_s % DAY == 0) and (d0 is None or d1 is None or d0 < d1)
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


def facts_sql(f: Filters, pieces: list[Piece], rows: Rows = CYCLE_ROWS) -> tuple[str, list[Any]]:
    """A SELECT of rollup-shaped rows covering exactly ``f`` cut into ``pieces``."""
    sqls, params = [], []
    for source, lo, hi in pieces:
        if source == "raw":
            w, p = where(f.within(lo, hi), cycles=rows.cycles)
            sqls.append(f"SELECT {M.RAW_FACTS} FROM {rows.view} WHERE {w} AND {rows.raw}")
        else:
            w, p = rollup_where(f, lo, hi, cycles=rows.cycles)
            sqls.append(f"SELECT {M.FACT_COLS} FROM {source} WHERE {w} AND {rows.facts}")
        params += p
    return " UNION ALL ".join(sqls), params


def facts(db: EventsDB, f: Filters, *, rows: Rows = CYCLE_ROWS, grain_s: int | None = None):
    """Rollup-shaped rows covering exactly ``f`` (SQL, params), or None when rollups cannot
    answer (for screens that read the rows themselves, e.g. the newest hours)."""
    if not db.rollups_ok:
        return None
    pieces = _pieces(f, grain_s=grain_s)
    return None if pieces is None else facts_sql(f, pieces, rows)


# -- percentiles from histograms ---------------------------------------------------------------


def time_range(db: EventsDB, f: Filters) -> tuple[datetime | None, datetime | None]:
    """First and last ``ts`` of the cycles under ``f`` (unfiltered: once per generation)."""

    def compute() -> tuple[datetime | None, datetime | None]:
        p = plan(db, [M.FIRST_TS, M.LAST_TS], f)
        row = db.fetch(p.sql, p.params)[0]
        return row["first_ts"], row["last_ts"]

    return db.per_generation("time_range", compute) if f == Filters() else compute()


def approximate(db: EventsDB, f: Filters) -> bool:
    """Whether percentiles over ``f`` come from histograms (and screens mark them "≈"): rollups
    are in use and the window cut to the data's own range (first to last cycle) spans more than
    EXACT_PERCENTILES. The one rule: "Last 30 days" and "All time" over the same 5 days of data
    are both exact, and over the same 60 days both approximate."""
    if not db.rollups_ok:
        return False
    lo, hi = time_range(db, Filters())
    if lo is None or hi is None:
        return False
    start = lo if f.start is None else max(f.start, lo)
    end = hi if f.end is None else min(f.end, hi)
    return end - start > M.EXACT_PERCENTILES


def floor_month(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    return datetime(t.year, t.month, 1, tzinfo=UTC)


def ceil_month(t: datetime) -> datetime:
    f = floor_month(t)
    if f == t:
        return f
    return datetime(f.year + f.month // 12, f.month % 12 + 1, 1, tzinfo=UTC)


def hist_rows(
    db: EventsDB,
    f: Filters,
    h: M.Hist,
    keys: Callable[[str], str],
    *,
    bucket_s: int | None = None,
) -> tuple[str, list[Any]]:
    """Rows (keys..., k, n) of histogram ``h`` over ``f``, ``keys(t)`` selecting the grouping
    columns given the time column (``t`` of rollup rows, ``ts`` of raw rows): whole calendar
    months (UTC) from the monthly table, the other whole days from the daily one, the partial
    days at the edges from the raw rows, bucketed the same way.

    Given a time bucket width ``bucket_s`` (``keys`` then groups by ``o11y_bucket(t, b)``), a
    month row is read only where one bucket holds the whole month (its first and last instant
    fall in the same bucket); the other months' days come from the daily table."""
    d0 = ceil(f.start, DAY) if f.start else None
    d1 = floor(f.end, DAY) if f.end else None
    if d0 is not None and d1 is not None and d0 >= d1:  # no whole day: the edges meet
        d0 = d1 = None if f.start is None else f.start
    # (table, lo, hi, extra condition): rollup pieces; None bounds are open
    pieces: list[tuple[str, datetime | None, datetime | None, str]] = []
    m0 = ceil_month(d0) if d0 else None
    m1 = floor_month(d1) if d1 else None
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
    elif d0 is None or d1 is None or d0 < d1:
        pieces.append((h.daily, d0, d1, "true"))
    # Cycle histograms have no event type: event types do not filter cycle metrics.
    rf = Filters(None, None, f.agents, f.modes, () if h.cycles else f.event_types, f.errors_only)
    sqls, params = [], []
    for table, lo, hi, extra in pieces:
        w, p = rollup_where(rf, lo, hi, cycles=False)
        sqls.append(f"SELECT {keys('t')}, k, n FROM {table} WHERE {w} AND {extra}")
        params += p
    for lo, hi in ((f.start, d0), (d1, f.end)):
        if lo is not None and hi is not None and lo < hi:
            w, p = where(f.within(lo, hi), cycles=h.cycles)
            sqls.append(
                f"SELECT {keys('ts')}, o11y_hist_key({h.value}) AS k, 1 AS n FROM {h.view} "
                f"WHERE {w} AND {h.value} IS NOT NULL"
            )
            params += p
    return " UNION ALL ".join(sqls), params


def hist_percentiles_sql(
    rows: str,
    keys: list[str],
    qs: dict[str, float | tuple[float, float]],
    *,
    count: str | None = None,
) -> str:
    """Percentiles per ``keys`` from histogram rows (keys..., k, n), interpolated between order
    statistics as ``quantile_cont`` does, each order statistic read as its bucket's value
    (``qs``: name -> quantile, or (quantile, divisor)); with ``count``, also the number of
    values per ``keys`` (BIGINT) under that name."""
    part = f"PARTITION BY {', '.join(keys)}" if keys else ""
    sel = "".join(f"{k}, " for k in keys)

    def at(r: str) -> str:
        return f"min(v) FILTER (WHERE cum > {r})"

    cols = []
    for name, spec in qs.items():
        q, scale = spec if isinstance(spec, tuple) else (spec, 1.0)
        h = f"((total - 1) * {q!r})"
        lo, hi = at(f"floor({h})"), at(f"ceil({h})")
        value = f"{lo} + (any_value({h}) - floor(any_value({h}))) * ({hi} - {lo})"
        cols.append(f"{value} AS {name}" if scale == 1.0 else f"({value}) / {scale!r} AS {name}")
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


# -- what alerts measure -----------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """One key's value over a window: ``key`` (None for the whole network), ``value`` (None:
    nothing to measure, e.g. no duration), ``n`` the rows counted (cycles for cycle metrics,
    events for event metrics, lagged events for the lag), ``approx`` for histogram percentiles."""

    key: str | None
    value: float | None
    n: int
    approx: bool = False


# alert metric -> (what is measured, over which rows, divided by the window in hours)
WINDOW_METRICS: dict[str, tuple[M.Measure, Rows, bool]] = {
    "cycles": (M.CYCLES, CYCLE_ROWS, False),
    "error_rate": (M.ERROR_RATE, CYCLE_ROWS, False),
    "p95_duration": (M.P95_MS, CYCLE_ROWS, False),
    "events_per_hour": (M.EVENTS, EVENT_ROWS, True),
    "ingest_lag": (M.LAG_P95_S, LAGGED_ROWS, False),
}


def measure(
    db: EventsDB,
    *,
    metric: str,
    window: tuple[datetime, datetime],
    by: Literal["agent", "mode"] | None = None,
    filters: Filters = Filters(),
) -> list[Measurement]:
    """What an alert rule measures: ``metric`` (a key of :data:`WINDOW_METRICS`) over
    [window[0], window[1]) per ``by`` key, with the rows counted.

    ``filters`` narrows the rows (its own start and end are ignored: the window rules), e.g.
    ``Filters(agents=(...))`` for a rule on named agents. Keys with no row are absent: the caller
    decides what a missing key reads as (0 for counts, None otherwise). ``unknown`` (events
    without an agent) is a key like any other; a per-agent rule leaves it out itself.
    ``events_per_hour`` is the events counted times 3600 over the window's seconds. Rollups answer
    when the window holds whole hours, exactly as the raw rows would (the property test proves
    it); a p95 over a window longer than 7 days is read from histograms (``approx``)."""
    if metric not in WINDOW_METRICS:
        raise ValueError(f"metric must be one of {', '.join(WINDOW_METRICS)}, not {metric!r}")
    m, rows, per_hour = WINDOW_METRICS[metric]
    lo, hi = window
    f = filters.within(lo, hi)
    keys = {"agent": [AGENT], "mode": [MODE], None: []}[by]
    count = M.LAGGED if rows == LAGGED_ROWS else M.CYCLES
    p = plan(
        db,
        [m.as_("value") if isinstance(m, M.Metric) else m, count.as_("n")],
        f,
        keys=keys,
        rows=rows,
    )
    value = m.name if isinstance(m, M.Percentile) else "value"
    got = db.fetch(f"SELECT * FROM ({p.sql}) WHERE n > 0", p.params)
    hours = (hi - lo).total_seconds() / 3600
    out = []
    for r in got:
        v = r[value]
        v = None if v is None else float(v) / hours if per_hour else float(v)
        out.append(Measurement(None if by is None else r[by], v, int(r["n"]), p.approx))
    return out
