"""Measuring the rules' metrics: windowed metrics through the planner (defined once in the
metrics catalog, as the pages read them), ages and keys with the few queries of their own here.

Rules are grouped by what they measure, so one query serves many rules: windowed metrics by
(metric, window, scope kind, window end), ages by (metric, scope kind). A scope kind is ``all``,
``agent`` (per-agent rules and rules naming agents share one query grouped by agent) or ``mode``.
Within one evaluation a :class:`Measurer` runs each query once, remembers a failure as well as a
result, and gives each rule its readings; 500 rules over the built-ins' metrics cost about what
the 4 built-ins cost (``python -m bench.alert_rules``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..query import planner
from ..query.db import EventsDB
from .rules import AGE_METRICS, COMPARISONS, COUNT_METRICS, RATE_METRICS, Rule

HORIZON_S = 86400  # per-agent and per-mode rules look at keys seen in the last 24 h
UNKNOWN_AGENT = "unknown"  # EVENTS.md: not an agent
NOT_FINITE = "the value is not a finite number"


@dataclass(frozen=True)
class Reading:
    """A rule's metric for one key: the value, whether it breaches, and since when (if the data
    dates it). ``breach`` is None when there is no data for the key; ``error`` says why a value
    could not be judged (the series goes to state ``error``)."""

    key: str | None
    value: float | None
    breach: bool | None
    since: datetime | None = None
    error: str | None = None


def scope_kind(rule: Rule) -> str:
    return {"per_agent": "agent", "agents": "agent", "per_mode": "mode"}.get(rule.scope, "all")


_KEY_SQL = {"all": "CAST(NULL AS VARCHAR)", "agent": "agent", "mode": "mode"}

# The rows each windowed metric counts, for the keys a per-agent or per-mode rule watches.
_WINDOW_VIEW = {
    "cycles": "cycles",
    "error_rate": "cycles",
    "p95_duration": "cycles",
    "events_per_hour": "events",
    "ingest_lag": "events",
}


def _number(value: Any) -> float | None:
    """A DuckDB value as a float; None for NULL (NaN counts as a value: it is judged an error)."""
    return None if value is None else float(value)


class Measurer:
    """One evaluation's measurements at ``now``: each query at most once, shared by rules."""

    def __init__(self, db: EventsDB, now: datetime) -> None:
        self.db, self.now = db, now
        self._memo: dict[tuple[Any, ...], Any] = {}
        self.queries = 0  # how many queries ran (the benchmark prints it)

    def _once(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        if key not in self._memo:
            try:
                self._memo[key] = compute()
            except Exception as exc:  # every rule sharing the query gets the same failure
                self._memo[key] = exc
        got = self._memo[key]
        if isinstance(got, Exception):
            raise got
        return got

    # -- the queries -------------------------------------------------------------------------

    def window_values(
        self, metric: str, window_s: float, kind: str, at: datetime
    ) -> dict[str | None, tuple[float | None, int]]:
        """key -> (value, rows) over ``[at - window, at)``, every key of the kind."""

        def run() -> dict[str | None, tuple[float | None, int]]:
            # The metric is defined once, in the catalog; the planner reads rollups for the
            # window's whole hours and raw rows for its edges, as every page does.
            self.queries += 1
            got = planner.measure(
                self.db,
                metric=metric,
                window=(at - timedelta(seconds=window_s), at),
                by=None if kind == "all" else kind,
            )
            return {m.key: (m.value, m.n) for m in got}

        return self._once(("window", metric, window_s, kind, at), run)

    def keys_seen(self, view: str, kind: str) -> list[str]:
        """The agents or modes with a row in the last 24 h (``unknown`` is not an agent)."""

        def run() -> list[str]:
            self.queries += 1
            col = _KEY_SQL[kind]
            rows = self.db.fetch(
                f"SELECT DISTINCT {col} AS key FROM {view} WHERE ts >= ? AND ts < ? "
                f"AND {col} IS NOT NULL",
                [self.now - timedelta(seconds=HORIZON_S), self.now],
            )
            keys = {str(r["key"]) for r in rows}
            return sorted(keys - {UNKNOWN_AGENT} if kind == "agent" else keys)

        return self._once(("keys", view, kind), run)

    def newest(self, metric: str, kind: str) -> dict[str | None, tuple[float | None, float | None]]:
        """key -> (newest time of the metric's column, newest ``ts``) as epoch seconds.

        Newest times change only with a new generation: scanned once per generation, not per
        evaluation (the app evaluates after every sync, most of which bring nothing new)."""

        def scan() -> dict[str | None, tuple[float | None, float | None]]:
            self.queries += 1
            if metric == "newest_ingest_age":
                # Every landed row counts, unparseable ones too: the pipeline is landing data.
                view, col = ("events_all" if kind == "all" else "events"), "ingest_ts"
            elif metric == "cycle_age":
                view, col = "cycles", "ts"
            else:
                view, col = "events", "ts"
            rows = self.db.fetch(
                f"SELECT {_KEY_SQL[kind]} AS key, epoch(max({col})) AS last, "
                f"epoch(max(ts)) AS last_ts FROM {view} WHERE {col} IS NOT NULL GROUP BY ALL"
            )
            return {
                (None if r["key"] is None else str(r["key"])): (
                    _number(r["last"]),
                    _number(r["last_ts"]),
                )
                for r in rows
            }

        return self._once(
            ("newest", metric, kind),
            lambda: self.db.per_generation(f"alerts:newest:{metric}:{kind}", scan),
        )

    # -- readings ----------------------------------------------------------------------------

    def readings(self, rule: Rule, *, at: datetime | None = None) -> Readings:
        """The rule's readings: one per key of its scope."""
        if rule.metric in AGE_METRICS:
            return self._age_readings(rule)
        return self._window_readings(rule, at or self.now)

    def _keys(self, rule: Rule, view: str) -> list[str | None]:
        if rule.scope == "all":
            return [None]
        if rule.scope == "agents":
            return list(rule.agents)
        return list(self.keys_seen(view, scope_kind(rule)))

    def _window_readings(self, rule: Rule, at: datetime) -> Readings:
        """One comparison per key: the keys and values are the group's, built once."""
        group = ("window-values", rule.metric, rule.window_s, rule.scope, rule.agents, at)
        need = max(1, rule.min_cycles) if rule.metric in RATE_METRICS else 0
        keys, values, judged, finite = self._once(
            (*group, need), lambda: self._window_columns(rule, at, need)
        )
        return Readings.judge(rule, keys, values, judged, finite=finite)

    def _window_columns(self, rule: Rule, at: datetime, need: int) -> tuple[Any, ...]:
        found = self.window_values(rule.metric, rule.window_s, scope_kind(rule), at)
        keys = self._keys(rule, _WINDOW_VIEW[rule.metric])
        empty = (0.0 if rule.metric in COUNT_METRICS else None, 0)
        pairs = [found.get(k, empty) for k in keys]
        values = [p[0] for p in pairs]
        # Too few cycles is no data for rate metrics (the value is still shown).
        judged = [v if n >= need else None for v, n in pairs] if need else values
        return keys, values, judged, _all_finite(values)

    def _age_readings(self, rule: Rule) -> Readings:
        now = self.now.timestamp()
        if rule.metric == "last_sync_age":
            status = self._once(("status",), self.db.store.read_status)
            last = status.get("last_success_at")
            if not last and status.get("last_error") and rule.comparison in {">", ">="}:
                return Readings([None], [None], [True])  # never synced, the last attempt failed
        group = ("age-columns", rule.metric, rule.scope, rule.agents)
        keys, lasts, ages, finite = self._once(group, lambda: self._age_columns(rule))
        out = Readings.judge(rule, keys, ages, ages, finite=finite)
        if rule.comparison in {">", ">="} and True in out.breaches:
            for i, (b, t) in enumerate(zip(out.breaches, lasts, strict=True)):
                if b and t is not None:  # "older than" began at the last time + the threshold
                    out.since[keys[i]] = datetime.fromtimestamp(min(now, t + rule.threshold), UTC)
        return out

    def _age_columns(self, rule: Rule) -> tuple[Any, ...]:
        """(keys, last times, ages, all finite) for the rule's group."""
        now = self.now.timestamp()
        if rule.metric == "last_sync_age":
            last = self._once(("status",), self.db.store.read_status).get("last_success_at")
            lasts: list[float | None] = [float(last) if last else None]
            keys: list[str | None] = [None]
        else:
            newest = self.newest(rule.metric, scope_kind(rule))
            if rule.scope == "all":
                keys = [None]
            elif rule.scope == "agents":
                keys = list(rule.agents)
            else:
                keys = self._recent(rule)
            lasts = [newest.get(k, (None, None))[0] for k in keys]
        ages = [None if t is None else now - t for t in lasts]
        return keys, lasts, ages, _all_finite(ages)

    def _recent(self, rule: Rule) -> list[str | None]:
        """The keys of a per-agent or per-mode age rule: seen in the last 24 h (keys silent for
        longer are no longer watched; ``unknown`` is not an agent)."""
        horizon = self.now.timestamp() - HORIZON_S
        newest = self.newest(rule.metric, scope_kind(rule))
        return sorted(
            k
            for k, (_, last_ts) in newest.items()
            if k is not None
            and not (rule.scope == "per_agent" and k == UNKNOWN_AGENT)
            and last_ts is not None
            and last_ts >= horizon
        )

    def dated(self, rule: Rule, got: Readings, known: AbstractSet[str | None]) -> Readings:
        """For a windowed rule with a pending period: a breach not yet tracked that the window
        ending one pending period ago also shows is dated back to then (it has held that long)."""
        if rule.metric in AGE_METRICS or rule.pending_s <= 0:
            return got
        if True not in got.breaches:
            return got
        fresh = {k for k, b in zip(got.keys, got.breaches, strict=True) if b and k not in known}
        if not fresh:
            return got
        then = self.now - timedelta(seconds=rule.pending_s)
        earlier = self._window_readings(rule, then)
        for k, b in zip(earlier.keys, earlier.breaches, strict=True):
            if b and k in fresh:
                got.since[k] = then
        return got


def _all_finite(values: list[float | None]) -> bool:
    """No NaN or infinity among ``values`` (fsum is exact: finite values sum to a finite sum
    unless it overflows, which it reports)."""
    try:
        return math.isfinite(math.fsum(v for v in values if v is not None))
    except OverflowError:
        return False


@dataclass
class Readings:
    """One rule's readings, a column per field (500 rules x 60 agents are 30,000 readings: as
    objects they would cost more than the queries). ``breaches[i]`` is None for no data;
    ``since`` and ``errors`` hold the keys that have one."""

    keys: list[str | None]
    values: list[float | None]
    breaches: list[bool | None]
    since: dict[str | None, datetime] = field(default_factory=dict)
    errors: dict[str | None, str] = field(default_factory=dict)

    @classmethod
    def judge(
        cls,
        rule: Rule,
        keys: list[str | None],
        values: list[float | None],
        judged: list[float | None],
        *,
        finite: bool | None = None,
    ) -> Readings:
        """Compare ``judged`` (the values, None where they count as no data) with the rule's
        threshold; a value that is not a finite number is an error for its key. ``finite``:
        whether every value is finite, when the caller knows (a group's values, checked once)."""
        cmp, threshold = COMPARISONS[rule.comparison], rule.threshold
        if finite if finite is not None else _all_finite(values):  # the common case
            if None in judged:
                breaches = [None if v is None else cmp(v, threshold) for v in judged]
            else:  # compared in C
                breaches = list(map(cmp, judged, itertools.repeat(threshold)))
            return cls(keys, values, breaches)
        isfinite = math.isfinite
        breaches = [None if v is None or not isfinite(v) else cmp(v, threshold) for v in judged]
        errors = {
            k: NOT_FINITE
            for k, v in zip(keys, values, strict=True)
            if v is not None and not isfinite(v)
        }
        values = [None if k in errors else v for k, v in zip(keys, values, strict=True)]
        return cls(keys, values, breaches, {}, errors)

    def reading(self, i: int) -> Reading:
        k = self.keys[i]
        return Reading(k, self.values[i], self.breaches[i], self.since.get(k), self.errors.get(k))

    def __iter__(self) -> Iterator[Reading]:
        return (self.reading(i) for i in range(len(self.keys)))
