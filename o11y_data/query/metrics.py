"""Every number the screens, the CLI and alerts show, defined once (docs/events.md).

A :class:`Metric` is an aggregate spelled twice in one place: ``raw``, over the raw rows (the
``cycles`` or ``events`` view: one row per event), and ``facts``, over rows of the rollups' shape
(``hourly``/``daily`` rows, or raw rows projected to that shape at a window's edges, see
:data:`RAW_FACTS`). Counts, sums, means and rates are exact either way. A :class:`Percentile` is
exact over the raw rows (``quantile_cont``) and approximate over the histograms kept at sync
time (within 1 %, see rollups.py): the planner reads histograms only for windows longer than
:data:`EXACT_PERCENTILES` and says so (``approx``).

The planner (planner.py) turns a list of these, filters, a window and a grouping into SQL; nothing
else spells a metric. The property test (tests/test_planner.py) proves both spellings agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ..ingest import rollups

UNKNOWN = "unknown"  # the agent of events without one (docs/events.md): shown apart, never an agent
MODES = ("think", "reflection", "housekeeping")
# Percentiles are exact up to this window; beyond, rollups answer them from histograms.
EXACT_PERCENTILES = timedelta(days=7)


@dataclass(frozen=True)
class Metric:
    """An aggregate named ``name`` (the column it becomes): ``raw`` over raw rows, ``facts`` over
    rollup-shaped rows (columns of :data:`FACT_COLS`); both give the same value and type."""

    name: str
    raw: str
    facts: str
    doc: str
    exact: bool = True  # exact over rollups (every Metric is: counts and sums merge exactly)
    # Whether ``raw`` is plain SQL every engine (engines/) runs as it stands over the same
    # normalized columns: DuckDB-only functions (epoch_us, arg_max) make it False, and an
    # engine then refuses the metric in one line instead of spelling it a second time.
    portable: bool = True

    def as_(self, name: str) -> Metric:
        """The same metric under another column name (a screen's own wording)."""
        return Metric(name, self.raw, self.facts, self.doc, self.exact, self.portable)


@dataclass(frozen=True)
class Hist:
    """A histogram kept at sync time (rollups.py) and how the raw rows produce its values."""

    daily: str
    monthly: str | None  # the same histogram per month (sums of the daily rows)
    view: str  # the raw rows bucketed at the partial-day edges
    value: str  # the value a row adds to the histogram (NULL: none)
    cycles: bool  # cycle metrics: event types do not filter (their rows have no event type)
    keys: tuple[str, ...]  # the columns besides t, k and n a row is kept per


DURATION_HIST = Hist(
    "duration_hist", "duration_hist_month", "cycles", "duration_ms", True, ("agent", "mode")
)
_LAG_US = "epoch_us(ingest_ts) - epoch_us(ts)"
LAG_HIST = Hist(
    "lag_hist", "lag_hist_month", "events", _LAG_US, False, ("event_type", "agent", "mode")
)
# The same over every event type, agent and mode (day × k only): for windows nothing else filters.
LAG_HIST_NET = Hist("lag_hist_net", None, "events", _LAG_US, False, ())


@dataclass(frozen=True)
class Percentile:
    """The ``q`` quantile of ``value`` (a raw row's expression), interpolated as
    ``quantile_cont``; from histogram ``hist`` it is the histogram's value divided by ``scale``
    (the histogram keeps integers: µs for a lag shown in seconds)."""

    name: str
    q: float
    value: str
    hist: Hist
    doc: str
    scale: float = 1.0
    exact: bool = False  # over rollups: approximate (within 1 %) past EXACT_PERCENTILES
    # Whether ``value`` is plain SQL over the normalized columns (engines render the quantile
    # itself in their dialect; the lag's epoch arithmetic is DuckDB's).
    portable: bool = True

    @property
    def raw(self) -> str:
        return f"quantile_cont({self.value}, {self.q!r})"


# -- counts and sums ---------------------------------------------------------------------------

CYCLES = Metric(
    "cycles",
    "count(*)",
    "CAST(coalesce(sum(events), 0) AS BIGINT)",
    "rows counted (over cycle rows: cycles; over events: events)",
)
EVENTS = CYCLES.as_("events")
ERROR_CYCLES = Metric(
    "error_cycles",
    "count(*) FILTER (WHERE errors > 0)",
    "CAST(coalesce(sum(events) FILTER (WHERE erred), 0) AS BIGINT)",
    "cycles with errors > 0",
)
ERRORS = Metric(
    "errors",
    "coalesce(sum(errors), 0)",
    "CAST(coalesce(sum(errors), 0) AS HUGEINT)",
    "the sum of errors (NULL adds nothing)",
)
TOOLS = Metric(
    "tools",
    "coalesce(sum(tool_calls), 0)",
    "CAST(coalesce(sum(tools_sum), 0) AS HUGEINT)",
    "the sum of tool calls",
)
DURATIONS = Metric(
    "durations",
    "count(duration_ms)",
    "CAST(coalesce(sum(dur_n), 0) AS BIGINT)",
    "cycles with a duration",
)
AGENTS = Metric(
    "agents",
    f"count(DISTINCT agent) FILTER (WHERE agent <> '{UNKNOWN}')",
    f"count(DISTINCT agent) FILTER (WHERE agent <> '{UNKNOWN}')",
    "agents active (unknown is not an agent)",
)
UNKNOWN_CYCLES = Metric(
    "unknown_cycles",
    f"count(*) FILTER (WHERE agent = '{UNKNOWN}')",
    f"CAST(coalesce(sum(events) FILTER (WHERE agent = '{UNKNOWN}'), 0) AS BIGINT)",
    "cycles without an agent",
)
UNKNOWN_ERRORS = Metric(
    "unknown_errors",
    f"coalesce(sum(errors) FILTER (WHERE agent = '{UNKNOWN}'), 0)",
    f"CAST(coalesce(sum(errors) FILTER (WHERE agent = '{UNKNOWN}'), 0) AS HUGEINT)",
    "errors of cycles without an agent",
)
LAGGED = Metric(
    "events",
    "count(*)",
    "CAST(coalesce(sum(lag_n), 0) AS BIGINT)",
    "events with an ingest lag (over LAGGED rows)",
)

# -- means and rates ---------------------------------------------------------------------------

ERROR_RATE = Metric(
    "error_rate",
    # CAST: DuckDB's / divides as DOUBLE, standard SQL engines (DataFusion) as integers.
    "CAST(count(*) FILTER (WHERE errors > 0) AS DOUBLE) / nullif(count(*), 0)",
    f"CAST({ERROR_CYCLES.facts} AS DOUBLE) / nullif({CYCLES.facts}, 0)",
    "cycles with errors over cycles",
)
ERRORS_PER_CYCLE = Metric(
    "errors_per_cycle",
    "CAST(coalesce(sum(errors), 0) AS DOUBLE) / nullif(count(*), 0)",
    f"CAST({ERRORS.facts} AS DOUBLE) / nullif({CYCLES.facts}, 0)",
    "errors over cycles",
)
AVG_MS = Metric(
    "avg_ms",
    "CAST(round(avg(duration_ms)) AS BIGINT)",
    "CAST(round(CAST(sum(dur_sum) AS DOUBLE) / nullif(sum(dur_n), 0)) AS BIGINT)",
    "mean duration_ms of the cycles with one, rounded to an integer",
)
AVG_TOOLS = Metric(
    "avg_tools",
    "avg(tool_calls)",
    "CAST(sum(tools_sum) AS DOUBLE) / nullif(sum(tools_n), 0)",
    "mean tool calls per cycle with a count",
)
LAG_AVG_S = Metric(
    "lag_avg_s",
    f"avg({_LAG_US}) / 1e6",
    "CAST(sum(lag_sum) AS DOUBLE) / nullif(sum(lag_n), 0) / 1e6",
    "mean ingest lag (ingest_ts - ts) in seconds",
    portable=False,
)

# -- times -------------------------------------------------------------------------------------

FIRST_TS = Metric("first_ts", "min(ts)", "min(min_ts)", "the first ts")
LAST_TS = Metric("last_ts", "max(ts)", "max(max_ts)", "the last ts")
LAST_MODE = Metric(
    "last_mode", "arg_max(mode, ts)", "arg_max(mode, max_ts)", "the last mode", portable=False
)


def mode_share(mode: str) -> Metric:
    """The share of cycles in ``mode`` (one of :data:`MODES`: our words, never user text)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return Metric(
        f"{mode}_share",
        f"CAST(count(*) FILTER (WHERE mode = '{mode}') AS DOUBLE) / nullif(count(*), 0)",
        f"CAST(coalesce(sum(events) FILTER (WHERE mode = '{mode}'), 0) AS DOUBLE) "
        f"/ nullif({CYCLES.facts}, 0)",
        f"the share of cycles in mode {mode}",
    )


MODE_SHARES = tuple(mode_share(m) for m in MODES)

# -- percentiles -------------------------------------------------------------------------------

P50_MS, P95_MS, P99_MS = (
    Percentile(f"p{n}_ms", q, "duration_ms", DURATION_HIST, f"the {n}th percentile of duration_ms")
    for n, q in (("50", 0.5), ("95", 0.95), ("99", 0.99))
)
DURATION_PERCENTILES = (P50_MS, P95_MS, P99_MS)
_LAG_S = "epoch(ingest_ts) - epoch(ts)"
LAG_P50_S, LAG_P95_S, LAG_P99_S = (
    Percentile(
        f"lag_p{n}_s",
        q,
        _LAG_S,
        LAG_HIST,
        f"the {n}th percentile of ingest lag",
        1e6,
        portable=False,
    )
    for n, q in (("50", 0.5), ("95", 0.95), ("99", 0.99))
)
LAG_PERCENTILES = (LAG_P50_S, LAG_P95_S, LAG_P99_S)

# -- the rollup shape --------------------------------------------------------------------------

# Rollup columns and, for raw rows, the same columns (one row each): the facts expressions above
# read either. Both come from the rollups' own list of measures (rollups.MEASURES).
FACT_COLS = f"t, {rollups.KEYS}, " + ", ".join(name for name, _, _ in rollups.MEASURES)
RAW_FACTS = f"ts AS t, event_type, agent, mode, {rollups.ERRED} AS erred, " + ", ".join(
    f"{raw} AS {name}" for name, raw, _ in rollups.MEASURES
)

Measure = Metric | Percentile

CATALOG: dict[str, Measure] = {
    m.name: m
    for m in (
        CYCLES,
        EVENTS,
        ERROR_CYCLES,
        ERRORS,
        TOOLS,
        DURATIONS,
        AGENTS,
        UNKNOWN_CYCLES,
        UNKNOWN_ERRORS,
        ERROR_RATE,
        ERRORS_PER_CYCLE,
        AVG_MS,
        AVG_TOOLS,
        LAG_AVG_S,
        FIRST_TS,
        LAST_TS,
        LAST_MODE,
        *MODE_SHARES,
        *DURATION_PERCENTILES,
        *LAG_PERCENTILES,
    )
}
