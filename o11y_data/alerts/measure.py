"""Measuring the rules' metrics: every SQL the alerts run is in this module.

Rules are grouped by what they measure, so one query serves many rules: windowed metrics by
(metric, window, scope kind, window end), ages by (metric, scope kind). A scope kind is ``all``,
``agent`` (per-agent rules and rules naming agents share one query grouped by agent) or ``mode``.
Within one evaluation a :class:`Measurer` runs each query once, remembers a failure as well as a
result, and gives each rule its readings; 500 rules over the built-ins' metrics cost about what
the 4 built-ins cost (``python -m bench.alert_rules``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ..db import EventsDB
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

_WINDOW_SQL = {
    # metric -> (view, value expression, extra condition)
    "cycles": ("cycles", "count(*)", "true"),
    "error_rate": ("cycles", "count(*) FILTER (WHERE errors > 0) / count(*)", "true"),
    "p95_duration": ("cycles", "quantile_cont(duration_ms, 0.95)", "true"),
    "events_per_hour": ("events", "count(*) * 3600.0 / ?", "true"),
    "ingest_lag": (
        "events",
        "quantile_cont(epoch(ingest_ts) - epoch(ts), 0.95)",
        "ingest_ts IS NOT NULL",
    ),
}


def _number(value: Any) -> float | None:
    """A DuckDB value as a float; None for NULL (NaN counts as a value: it is judged an error)."""
    return None if value is None else float(value)


def compare(rule: Rule, value: float) -> bool:
    return COMPARISONS[rule.comparison](value, rule.threshold)


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
            self.queries += 1
            view, expr, extra = _WINDOW_SQL[metric]
            value_params = [window_s] if "?" in expr else []
            rows = self.db.fetch(
                f"SELECT {_KEY_SQL[kind]} AS key, {expr} AS value, count(*) AS n FROM {view} "
                f"WHERE ts >= ? AND ts < ? AND {extra} GROUP BY ALL",
                [*value_params, at - timedelta(seconds=window_s), at],
            )
            return {
                (None if r["key"] is None else str(r["key"])): (_number(r["value"]), int(r["n"]))
                for r in rows
            }

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

    def readings(self, rule: Rule, *, at: datetime | None = None) -> list[Reading]:
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

    def _window_readings(self, rule: Rule, at: datetime) -> list[Reading]:
        kind = scope_kind(rule)
        found = self.window_values(rule.metric, rule.window_s, kind, at)
        view = _WINDOW_SQL[rule.metric][0]
        out = []
        for k in self._keys(rule, "cycles" if view == "cycles" else "events"):
            value, n = found.get(k, (0.0 if rule.metric in COUNT_METRICS else None, 0))
            if rule.metric in RATE_METRICS and n < max(1, rule.min_cycles):
                out.append(Reading(k, value, None))
            else:
                out.append(judge(rule, k, value))
        return out

    def _age_readings(self, rule: Rule) -> list[Reading]:
        now = self.now.timestamp()
        if rule.metric == "last_sync_age":
            status = self.db.store.read_status()
            last = status.get("last_success_at")
            if not last and status.get("last_error") and rule.comparison in {">", ">="}:
                return [Reading(None, None, True)]  # never synced, and the last attempt failed
            return [age_reading(rule, None, float(last) if last else None, now)]
        newest = self.newest(rule.metric, scope_kind(rule))
        horizon = now - HORIZON_S
        if rule.scope == "all":
            keys: list[str | None] = [None]
        elif rule.scope == "agents":
            keys = list(rule.agents)
        else:
            keys = sorted(
                k
                for k, (_, last_ts) in newest.items()
                if k is not None
                and not (rule.scope == "per_agent" and k == UNKNOWN_AGENT)
                and last_ts is not None
                and last_ts >= horizon  # keys silent for more than 24 h are no longer watched
            )
        return [age_reading(rule, k, newest.get(k, (None, None))[0], now) for k in keys]

    def dated(self, rule: Rule, readings: list[Reading], known: set[str | None]) -> list[Reading]:
        """For a windowed rule with a pending period: a breach not yet tracked that the window
        ending one pending period ago also shows is dated back to then (it has held that long)."""
        if rule.metric in AGE_METRICS or rule.pending_s <= 0:
            return readings
        fresh = {r.key for r in readings if r.breach and r.key not in known}
        if not fresh:
            return readings
        then = self.now - timedelta(seconds=rule.pending_s)
        earlier = {r.key: r.breach for r in self._window_readings(rule, then)}
        return [
            replace(r, since=then) if r.key in fresh and earlier.get(r.key) else r for r in readings
        ]


def judge(rule: Rule, key: str | None, value: float | None) -> Reading:
    if value is None:
        return Reading(key, None, None)
    if not math.isfinite(value):
        return Reading(key, None, None, error=NOT_FINITE)
    return Reading(key, value, compare(rule, value))


def age_reading(rule: Rule, key: str | None, last: float | None, now: float) -> Reading:
    """An age metric: its value, and the moment an "older than" condition began (dated by the
    data: the last time plus the threshold)."""
    if last is None:
        return Reading(key, None, None)
    age = now - last
    if not math.isfinite(age):
        return Reading(key, None, None, error=NOT_FINITE)
    breach = compare(rule, age)
    since = None
    if breach and rule.comparison in {">", ">="}:
        since = datetime.fromtimestamp(min(now, last + rule.threshold), UTC)
    return Reading(key, age, breach, since)
