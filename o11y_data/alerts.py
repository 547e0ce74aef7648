"""Alerts: rules over the store's views, states that do not flap, notices to webhooks.

A :class:`Rule` measures one metric per scope key (the whole network, each agent, each mode, or
named agents) and compares it with a threshold. Each (rule, key) is a series whose state moves
ok → pending → firing → resolved (back to ok); it fires once the condition has held for the rule's
pending period. When the data itself dates the condition (the newest row landed 2 h ago, so "older
than 15 min" has held since 1 h 45 min ago), that date counts: the first evaluation fires at once.
For windowed metrics the evaluation also looks at the window ending one pending period ago.

State, the last transitions, delivery failures and silences live in one JSON file in the store
(``alerts/state.json``, written atomically) and every evaluation holds an ``flock`` on
``alerts/alerts.lock`` while it reads, decides and writes: the app and a ``watch`` process
evaluating together decide each notice once, and only the process that decided it delivers it.

Four built-in rules run with no setup; ``alerts.toml`` (:data:`Settings.alerts_file`) changes them,
turns them off and adds rules (see README "Alerts"). A bad file is one line per problem and the
built-in rules keep running.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from .config import Settings
from .db import EventsDB
from .errors import O11yError
from .locks import file_lock
from .webhooks import Delivery, deliver

log = logging.getLogger(__name__)

# metric -> (unit, what it measures). Units: s (seconds), ms, ratio, count, per_hour.
METRICS: dict[str, tuple[str, str]] = {
    "cycles": ("count", "cycles in the window"),
    "error_rate": ("ratio", "share of cycles with errors in the window"),
    "p95_duration": ("ms", "p95 cycle duration in the window"),
    "events_per_hour": ("per_hour", "events per hour over the window"),
    "ingest_lag": ("s", "p95 ingest lag (ingest_ts - ts) in the window"),
    "newest_event_age": ("s", "age of the newest event"),
    "newest_ingest_age": ("s", "age of the newest landed row (ingest time)"),
    "cycle_age": ("s", "time since the last cycle"),
    "last_sync_age": ("s", "time since the last successful sync"),
}
AGE_METRICS = {"newest_event_age", "newest_ingest_age", "cycle_age", "last_sync_age"}
COUNT_METRICS = {"cycles", "events_per_hour"}
SCOPES = ("all", "per_agent", "per_mode", "agents")
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
    "<": lambda v, t: v < t,
    "<=": lambda v, t: v <= t,
}
SEVERITIES = ("info", "warning", "critical")
NO_DATA = ("ok", "alerting", "nodata")
STATES = ("firing", "pending", "nodata", "ok")  # worst first
HORIZON_S = 86400  # per-agent and per-mode rules look at keys seen in the last 24 h
HISTORY = 200  # transitions kept (the page shows the last 100)
DELIVERIES = 100  # delivery records kept
RENOTIFY_S = 4 * 3600
LOCK_TIMEOUT_S = 30.0
UNKNOWN_AGENT = "unknown"  # EVENTS.md: not an agent


@dataclass(frozen=True)
class Rule:
    """One alert rule: ``metric`` per ``scope`` key compared with ``threshold``."""

    name: str
    metric: str
    threshold: float
    comparison: str = ">"
    scope: str = "all"
    agents: tuple[str, ...] = ()  # scope "agents": exactly these
    window_s: float = 900.0  # windowed metrics look at [now - window, now)
    pending_s: float = 0.0
    severity: str = "warning"
    no_data: str = "nodata"  # what a key without data means: ok | alerting | nodata
    min_cycles: int = 0  # error_rate: fewer cycles in the window is no data
    renotify_s: float = RENOTIFY_S  # while firing, notify again this often (0: never)
    title: str = ""
    enabled: bool = True
    builtin: bool = False

    @property
    def label(self) -> str:
        return self.title or self.name.replace("_", " ").capitalize()

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["agents"] = list(self.agents)
        return out


BUILTIN: tuple[Rule, ...] = (
    Rule(
        name="no_data_landing",
        title="No data landing",
        metric="newest_ingest_age",
        threshold=15 * 60,
        severity="critical",
        builtin=True,
    ),
    Rule(
        name="agent_silent",
        title="Agent silent",
        metric="cycle_age",
        scope="per_agent",
        threshold=30 * 60,
        severity="warning",
        builtin=True,
    ),
    Rule(
        name="error_rate",
        title="Error rate high",
        metric="error_rate",
        scope="per_agent",
        threshold=0.10,
        window_s=15 * 60,
        pending_s=5 * 60,
        min_cycles=5,
        no_data="ok",
        severity="warning",
        builtin=True,
    ),
    Rule(
        name="sync_failing",
        title="Sync failing",
        metric="last_sync_age",
        threshold=10 * 60,
        severity="critical",
        builtin=True,
    ),
)


# -- the rules file --------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleSet:
    """The rules in force and what was wrong with the file (one line each)."""

    rules: tuple[Rule, ...]
    problems: tuple[str, ...] = ()

    @property
    def enabled(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.enabled)


class RuleError(ValueError):
    """A rule's key is wrong: ``str()`` names the key and the problem."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> float:
    """Seconds from a number or ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"``; else ValueError."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 15m")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"{_clip(value)!r} is not a duration (use e.g. 90s, 15m, 2h)")
        seconds = float(m.group(1)) * _UNIT_S[m.group(2) or "s"]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration must be a finite number of seconds, 0 or more")
    return seconds


def _threshold(metric: str, value: object) -> float:
    unit = METRICS[metric][0]
    if unit == "s":
        return parse_duration(value)
    if unit == "ratio" and isinstance(value, str) and value.strip().endswith("%"):
        value = float(value.strip()[:-1]) / 100
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, not {_clip(value)!r}")
    if not math.isfinite(float(value)):
        raise ValueError("expected a finite number")
    return float(value)


def _clip(value: object, n: int = 40) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _choice(value: object, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{_clip(value)!r} is not one of {', '.join(allowed)}")
    return str(value)


_KEYS = {
    "metric",
    "threshold",
    "comparison",
    "scope",
    "agents",
    "window",
    "pending",
    "severity",
    "no_data",
    "min_cycles",
    "renotify",
    "title",
    "enabled",
}


def rule_from_table(name: str, table: dict[str, Any], base: Rule | None = None) -> Rule:
    """A rule from its ``[rules.<name>]`` table, over ``base`` (a built-in being changed)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise RuleError("the name may hold letters, digits, _ . - (at most 64)")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise RuleError(f"unknown key {_clip(unknown[0])!r} (known: {', '.join(sorted(_KEYS))})")
    if base is None and "metric" not in table:
        raise RuleError("key 'metric': missing (one of " + ", ".join(METRICS) + ")")
    changes: dict[str, Any] = {}

    def field_(key: str, parse: Callable[[Any], Any], attr: str | None = None) -> None:
        if key in table:
            try:
                changes[attr or key] = parse(table[key])
            except (ValueError, TypeError) as exc:
                raise RuleError(f"key {key!r}: {exc}") from None

    field_("metric", lambda v: _choice(v, list(METRICS)))
    metric = changes.get("metric", base.metric if base else "")
    if base is not None and "metric" in changes and "threshold" not in table:
        raise RuleError("key 'threshold': a new metric needs its own threshold")
    if base is None and "threshold" not in table:
        raise RuleError("key 'threshold': missing")
    field_("threshold", lambda v: _threshold(metric, v))
    field_("comparison", lambda v: _choice(v, list(COMPARISONS)))
    field_("scope", lambda v: _choice(v, SCOPES))
    field_("agents", _agent_list)
    field_("window", parse_duration, "window_s")
    field_("pending", parse_duration, "pending_s")
    field_("renotify", parse_duration, "renotify_s")
    field_("severity", lambda v: _choice(v, SEVERITIES))
    field_("no_data", lambda v: _choice(v, NO_DATA))
    field_("min_cycles", _non_negative_int)
    field_("title", lambda v: _clip(_string(v), 80))
    field_("enabled", _boolean)
    if "agents" in changes and "scope" not in changes:
        changes["scope"] = "agents"
    rule = replace(base, **changes) if base else Rule(name=name, **changes)
    if rule.scope == "agents" and not rule.agents:
        raise RuleError("key 'agents': scope 'agents' needs a list of agent DIDs")
    if rule.metric == "last_sync_age" and rule.scope != "all":
        raise RuleError("key 'scope': last_sync_age has scope 'all' only")
    if rule.metric not in AGE_METRICS and rule.window_s <= 0:
        raise RuleError("key 'window': must be more than 0")
    return rule


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def _non_negative_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("expected a whole number, 0 or more")
    return value


def _agent_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of agent DIDs (strings)")
    return tuple(value)


def load_rules(path: Path | None) -> RuleSet:
    """The built-in rules changed by ``path`` (if it exists) plus the rules it adds.

    A syntax error leaves the built-ins as they are; a bad rule is left out (a bad change to a
    built-in keeps the built-in's defaults). Each problem is one line naming the file, the line
    or the rule and key."""
    builtins = {r.name: r for r in BUILTIN}
    if path is None or not path.exists():
        return RuleSet(tuple(builtins.values()))
    where = path.name
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:  # its message names the line and column
        return RuleSet(tuple(builtins.values()), (f"{where}: {_clip(exc, 160)}",))
    except (OSError, UnicodeDecodeError) as exc:
        return RuleSet(tuple(builtins.values()), (f"{where}: cannot read ({type(exc).__name__})",))
    problems: list[str] = []
    defaults = data.get("defaults", {})
    renotify = RENOTIFY_S
    if not isinstance(defaults, dict):
        problems.append(f"{where}: [defaults] must be a table")
        defaults = {}
    if "renotify" in defaults:
        try:
            renotify = parse_duration(defaults["renotify"])
        except ValueError as exc:
            problems.append(f"{where}: [defaults] key 'renotify': {exc}")
    for key in sorted(set(data) - {"rules", "defaults"}):
        problems.append(f"{where}: unknown section {_clip(key)!r} (use [rules.<name>])")
    rules = {n: replace(r, renotify_s=renotify) for n, r in builtins.items()}
    tables = data.get("rules", {})
    if not isinstance(tables, dict):
        return RuleSet(tuple(rules.values()), (*problems, f"{where}: 'rules' must be a table"))
    for name, table in tables.items():
        if not isinstance(table, dict):
            problems.append(f"{where}: rule {_clip(name)!r}: expected a table [rules.{name}]")
            continue
        try:
            base = rules.get(name) if name in builtins else None
            rules[name] = rule_from_table(name, table, base)
            if name not in builtins and "renotify" not in table:
                rules[name] = replace(rules[name], renotify_s=renotify)
        except RuleError as exc:
            kept = "built-in kept" if name in builtins else "rule left out"
            problems.append(f"{where}: rule {_clip(name)!r}: {exc} ({kept})")
    return RuleSet(tuple(rules.values()), tuple(problems))


# -- measuring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """A rule's metric for one key: the value, whether it breaches, and since when (if the data
    dates it). ``breach`` is None when there is no data for the key."""

    key: str | None
    value: float | None
    breach: bool | None
    since: datetime | None = None


def _scope_sql(rule: Rule) -> tuple[str, str, list[Any]]:
    """(key expression, condition, parameters) for the rule's scope."""
    if rule.scope == "per_agent":
        return "agent", "agent <> ?", [UNKNOWN_AGENT]
    if rule.scope == "per_mode":
        return "mode", "true", []
    if rule.scope == "agents":
        return "agent", "list_contains(?::VARCHAR[], agent)", [list(rule.agents)]
    return "CAST(NULL AS VARCHAR)", "true", []


def _keys_seen(db: EventsDB, rule: Rule, view: str, at: datetime) -> list[str | None]:
    """The keys a rule watches: named agents, keys seen in the last 24 h, or the one key."""
    if rule.scope == "all":
        return [None]
    if rule.scope == "agents":
        return list(rule.agents)
    key, cond, params = _scope_sql(rule)
    df = db.query(
        f"SELECT DISTINCT {key} AS key FROM {view} WHERE ts >= ? AND ts < ? AND {cond}",
        [at - timedelta(seconds=HORIZON_S), at, *params],
    )
    return sorted(str(k) for k in df["key"])


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


def _measure_window(db: EventsDB, rule: Rule, at: datetime) -> list[Reading]:
    view, expr, extra = _WINDOW_SQL[rule.metric]
    key, cond, params = _scope_sql(rule)
    value_params = [rule.window_s] if "?" in expr else []
    df = db.query(
        f"SELECT {key} AS key, {expr} AS value, count(*) AS n FROM {view} "
        f"WHERE ts >= ? AND ts < ? AND {cond} AND {extra} GROUP BY ALL",
        [*value_params, at - timedelta(seconds=rule.window_s), at, *params],
    )
    found = {
        (None if _missing(k) else str(k)): (None if _missing(v) else float(v), int(n))
        for k, v, n in zip(df["key"], df["value"], df["n"], strict=True)
    }
    out = []
    for k in _keys_seen(db, rule, "cycles" if view == "cycles" else "events", at):
        value, n = found.get(k, (0.0 if rule.metric in COUNT_METRICS else None, 0))
        if rule.metric == "error_rate" and n < max(1, rule.min_cycles):
            out.append(Reading(k, value, None))
            continue
        out.append(Reading(k, value, None if value is None else _compare(rule, value)))
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value) == "NaT"


def _compare(rule: Rule, value: float) -> bool:
    return COMPARISONS[rule.comparison](value, rule.threshold)


def _age_reading(rule: Rule, key: str | None, last: datetime | None, now: datetime) -> Reading:
    """An age metric: its value, and the moment an "older than" condition began (dated by the
    data: the last time plus the threshold)."""
    if last is None:
        return Reading(key, None, None)
    age = (now - last).total_seconds()
    breach = _compare(rule, age)
    since = None
    if breach and rule.comparison in {">", ">="}:
        since = min(now, last + timedelta(seconds=rule.threshold))
    return Reading(key, age, breach, since)


def _measure_age(db: EventsDB, rule: Rule, now: datetime) -> list[Reading]:
    if rule.metric == "last_sync_age":
        status = db.store.read_status()
        last = status.get("last_success_at")
        if not last and status.get("last_error") and rule.comparison in {">", ">="}:
            return [Reading(None, None, True)]  # never synced, and the last attempt failed
        t = datetime.fromtimestamp(float(last), UTC) if last else None
        return [_age_reading(rule, None, t, now)]
    key, cond, params = _scope_sql(rule)
    if rule.metric == "newest_ingest_age":
        # Every landed row counts, unparseable ones too: the pipeline is landing data.
        view, col = ("events_all" if rule.scope == "all" else "events"), "ingest_ts"
    elif rule.metric == "cycle_age":
        view, col = "cycles", "ts"
    else:
        view, col = "events", "ts"

    def newest() -> Any:
        return db.query(
            f"SELECT {key} AS key, max({col}) AS last, max(ts) AS last_ts FROM {view} "
            f"WHERE {col} IS NOT NULL AND {cond} GROUP BY ALL",
            params,
        )

    # Newest times change only with a new generation: scanned once per generation, not per
    # evaluation (the app evaluates after every sync, most of which bring nothing new).
    memo = f"alerts:{rule.metric}:{rule.scope}:{chr(31).join(rule.agents)}"
    df = db.per_generation(memo, newest)
    horizon = now - timedelta(seconds=HORIZON_S)
    last_by_key = {}
    for k, t, t_ts in zip(df["key"], df["last"], df["last_ts"], strict=True):
        if rule.scope in {"per_agent", "per_mode"} and (_missing(t_ts) or t_ts < horizon):
            continue  # keys silent for more than 24 h are no longer watched
        last_by_key[None if _missing(k) else str(k)] = None if _missing(t) else t.to_pydatetime()
    keys: list[str | None] = (
        [None] if rule.scope == "all" else list(rule.agents) if rule.scope == "agents" else []
    )
    keys += sorted(k for k in last_by_key if k is not None and k not in keys)
    return [_age_reading(rule, k, last_by_key.get(k), now) for k in keys]


def measure(db: EventsDB, rule: Rule, now: datetime) -> list[Reading]:
    """The rule's readings at ``now``: one per key of its scope."""
    if rule.metric in AGE_METRICS:
        return _measure_age(db, rule, now)
    return _measure_window(db, rule, now)


def date_window_breaches(
    db: EventsDB, rule: Rule, now: datetime, readings: list[Reading], known: set[str | None]
) -> list[Reading]:
    """For a windowed rule with a pending period: a breach not yet tracked that the window
    ending one pending period ago also shows is dated back to then (it has held that long)."""
    if rule.metric in AGE_METRICS or rule.pending_s <= 0:
        return readings
    fresh = [r for r in readings if r.breach and r.key not in known]
    if not fresh:
        return readings
    then = now - timedelta(seconds=rule.pending_s)
    earlier = {r.key: r.breach for r in _measure_window(db, rule, then)}
    return [replace(r, since=then) if r in fresh and earlier.get(r.key) else r for r in readings]


# -- states ----------------------------------------------------------------------------------


@dataclass
class Series:
    """The state of one (rule, key)."""

    rule: str
    key: str | None
    state: str = "ok"  # ok | pending | firing | nodata
    since: float | None = None  # when the condition began (epoch seconds)
    value: float | None = None
    threshold: float | None = None
    notified: bool = False  # a firing notice went out for this episode
    last_notified: float = 0.0
    evaluated_at: float = 0.0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Series:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class Notice:
    """One notification: the webhook's JSON body is :meth:`payload`."""

    status: str  # firing | resolved
    rule: str
    title: str
    severity: str
    metric: str
    scope: str
    key: str | None
    value: float | None
    threshold: float
    comparison: str
    since: datetime
    at: datetime
    renotify: bool = False
    url: str | None = None

    @property
    def agent(self) -> str | None:
        return self.key if self.scope in {"per_agent", "agents"} else None

    @property
    def mode(self) -> str | None:
        return self.key if self.scope == "per_mode" else None

    @property
    def text(self) -> str:
        return notice_text(self)

    def payload(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "rule": self.rule,
            "title": self.title,
            "severity": self.severity,
            "agent": self.agent,
            "mode": self.mode,
            "key": self.key,
            "metric": self.metric,
            "value": None if self.value is None else round(self.value, 4),
            "threshold": self.threshold,
            "comparison": self.comparison,
            "since": _iso(self.since),
            "at": _iso(self.at),
            "renotify": self.renotify,
            "text": self.text,
            "url": self.url,
        }


@dataclass(frozen=True)
class Transition:
    at: float
    rule: str
    key: str | None
    from_state: str
    to_state: str  # pending | firing | resolved | ok | nodata
    value: float | None
    threshold: float | None
    silenced: bool = False


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def step(
    prev: Series, reading: Reading, rule: Rule, now: datetime, *, silenced: bool
) -> tuple[Series, Transition | None, Notice | None]:
    """The next state of one series after a reading (pure): the new series, the transition (if
    the state changed) and the notice to send (if any)."""
    t = now.timestamp()
    new = replace(prev, value=reading.value, threshold=rule.threshold, evaluated_at=t)
    breach = reading.breach
    if breach is None and rule.no_data != "nodata":
        breach = rule.no_data == "alerting"
    active = prev.state in {"pending", "firing"}
    if breach is None:  # no data, shown as such; a firing alert stays firing until data says so
        if prev.state != "firing":
            new.state, new.since = "nodata", None
    elif breach:
        since = reading.since.timestamp() if reading.since else None
        if active and prev.since and (since is None or prev.state == "firing"):
            since = prev.since  # a firing alert stays firing while the condition holds
        new.since = since or t
        held = t - new.since
        new.state = "firing" if prev.state == "firing" or held >= rule.pending_s else "pending"
    else:
        new.state, new.since = "ok", None
    notice_status = None
    if new.state == "firing" and not silenced:
        due = rule.renotify_s > 0 and t - prev.last_notified >= rule.renotify_s
        if not prev.notified or (prev.state == "firing" and due):
            notice_status = "firing"
    if prev.state == "firing" and new.state == "ok":
        if prev.notified and not silenced:
            notice_status = "resolved"
        new.notified, new.last_notified = False, 0.0
    notice = None
    if notice_status:
        since_t = prev.since if notice_status == "resolved" else new.since
        notice = Notice(
            status=notice_status,
            rule=rule.name,
            title=rule.label,
            severity=rule.severity,
            metric=rule.metric,
            scope=rule.scope,
            key=reading.key,
            value=reading.value,
            threshold=rule.threshold,
            comparison=rule.comparison,
            since=datetime.fromtimestamp(since_t or t, UTC),
            at=now,
            renotify=notice_status == "firing" and prev.notified,
        )
        if notice_status == "firing":
            new.notified, new.last_notified = True, t
    transition = None
    if new.state != prev.state:
        to = "resolved" if prev.state == "firing" and new.state == "ok" else new.state
        transition = Transition(
            t, rule.name, reading.key, prev.state, to, reading.value, rule.threshold, silenced
        )
    return new, transition, notice


# -- the state file --------------------------------------------------------------------------


@dataclass
class AlertState:
    """Everything the alert evaluators share, as stored in ``alerts/state.json``."""

    series: dict[str, Series] = field(default_factory=dict)  # "<rule>\x1f<key>" -> series
    history: list[dict[str, Any]] = field(default_factory=list)  # transitions, newest last
    deliveries: list[dict[str, Any]] = field(default_factory=list)  # newest last
    silences: list[dict[str, Any]] = field(default_factory=list)  # rule, key, until
    rules: list[dict[str, Any]] = field(default_factory=list)  # the rules last evaluated
    problems: list[str] = field(default_factory=list)  # the rules file's, last evaluation
    evaluated_at: float = 0.0
    evaluated_by: str = ""

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["series"] = {k: asdict(s) for k, s in self.series.items()}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlertState:
        st = cls()
        for k, v in (data.get("series") or {}).items():
            if isinstance(v, dict):
                st.series[str(k)] = Series.from_json(v)
        for name in ("history", "deliveries", "silences", "rules", "problems"):
            value = data.get(name)
            if isinstance(value, list):
                setattr(st, name, value)
        st.evaluated_at = float(data.get("evaluated_at") or 0.0)
        st.evaluated_by = str(data.get("evaluated_by") or "")
        return st

    def silenced(self, rule: str, key: str | None, now: float) -> bool:
        return any(
            s.get("rule") == rule
            and (s.get("key") is None or s.get("key") == key)
            and float(s.get("until") or 0) > now
            for s in self.silences
        )

    def firing(self) -> list[Series]:
        return [s for s in self.series.values() if s.state == "firing"]


def series_id(rule: str, key: str | None) -> str:
    return f"{rule}\x1f{'' if key is None else key}"


def alerts_dir(store_dir: Path) -> Path:
    return Path(store_dir) / "alerts"


def read_state(store_dir: Path) -> AlertState:
    """The last written state (no lock needed: the file is replaced atomically)."""
    path = alerts_dir(store_dir) / "state.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return AlertState()
    except (OSError, ValueError) as exc:
        log.warning("alert state unreadable, starting afresh: %s", type(exc).__name__)
        return AlertState()
    return AlertState.from_json(data) if isinstance(data, dict) else AlertState()


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked_state(store_dir: Path, *, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[AlertState]:
    """Hold the alerts lock across processes, yield the state, write it back on success."""
    folder = alerts_dir(store_dir)
    busy = O11yError("Alerts are busy", "another process held the alerts lock too long")
    with file_lock(folder / "alerts.lock", timeout_s=timeout_s, busy=busy, poll_s=0.05):
        state = read_state(store_dir)
        yield state
        state.history = state.history[-HISTORY:]
        state.deliveries = state.deliveries[-DELIVERIES:]
        _write_atomic(folder / "state.json", json.dumps(state.to_json(), separators=(",", ":")))


# -- evaluating ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """One evaluation: the series after it, the transitions and the notices it decided."""

    at: datetime
    series: tuple[Series, ...]
    transitions: tuple[Transition, ...]
    notices: tuple[Notice, ...]
    rules: tuple[Rule, ...]
    problems: tuple[str, ...]


def evaluate(
    settings: Settings,
    db: EventsDB,
    *,
    now: datetime | None = None,
    ruleset: RuleSet | None = None,
    who: str = "",
) -> Evaluation:
    """Measure every enabled rule, move each series' state, record it all under the lock and
    return the notices this call decided (the caller delivers them)."""
    now = now or datetime.now(UTC)
    # The rules file's problems are the user's to read (the page, the CLI), kept in the state.
    ruleset = ruleset or load_rules(settings.alerts_file)
    readings: dict[str, list[Reading]] = {}
    errors: list[str] = []
    with locked_state(settings.store_dir) as state:
        t = now.timestamp()
        state.silences = [s for s in state.silences if float(s.get("until") or 0) > t]
        for rule in ruleset.enabled:
            known = {
                s.key
                for s in state.series.values()
                if s.rule == rule.name and s.state in {"pending", "firing"}
            }
            try:
                got = measure(db, rule, now)
                readings[rule.name] = date_window_breaches(db, rule, now, got, known)
            except O11yError as exc:  # one rule's query failing must not stop the others
                errors.append(f"rule {rule.name!r}: {exc.one_line()}")
                log.warning("alert rule %s not evaluated: %s", rule.name, exc.one_line())
        transitions, notices, seen = [], [], set()
        for rule in ruleset.enabled:
            if rule.name not in readings:  # not measured this time: its states stand as they are
                seen |= {k for k, s in state.series.items() if s.rule == rule.name}
                continue
            tracked = {
                s.key: s
                for s in state.series.values()
                if s.rule == rule.name and s.state in {"pending", "firing"}
            }
            by_key = {r.key: r for r in readings[rule.name]}
            for key in tracked.keys() - by_key.keys():  # a tracked key without data now
                by_key[key] = Reading(key, None, None)
            for key, reading in by_key.items():
                sid = series_id(rule.name, key)
                prev = state.series.get(sid) or Series(rule.name, key)
                new, tr, notice = step(
                    prev, reading, rule, now, silenced=state.silenced(rule.name, key, t)
                )
                state.series[sid] = new
                seen.add(sid)
                if tr:
                    transitions.append(tr)
                    state.history.append(asdict(tr))
                if notice:
                    notices.append(replace(notice, url=view_url(settings.public_url, notice)))
        # Series of rules gone from the file, and ok series no longer measured, are dropped.
        state.series = {k: s for k, s in state.series.items() if k in seen}
        state.rules = [r.to_json() for r in ruleset.rules]
        state.problems = [*ruleset.problems, *errors]
        state.evaluated_at, state.evaluated_by = t, who or f"pid {os.getpid()}"
        series = tuple(state.series.values())
    return Evaluation(
        now, series, tuple(transitions), tuple(notices), ruleset.rules, tuple(state.problems)
    )


def deliver_all(settings: Settings, notices: Sequence[Notice], **options: Any) -> list[Delivery]:
    """Every notice to every webhook URL (a few at a time, so one hanging receiver costs its
    bounded retry time once, not once per notice), then the outcomes recorded in the state."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(url, n.payload()) for n in notices for url in settings.alert_webhooks]
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(jobs)), thread_name_prefix="o11y-hook") as ex:
        out = list(ex.map(lambda job: deliver(job[0], job[1], **options), jobs))
    if out:
        with locked_state(settings.store_dir) as state:
            state.deliveries.extend(d.to_json() for d in out)
    return out


def run_once(settings: Settings, db: EventsDB, **options: Any) -> Evaluation:
    """Evaluate, then deliver what this evaluation decided (the ``alerts`` command)."""
    ev = evaluate(settings, db)
    deliver_all(settings, ev.notices, **options)
    return ev


# -- silences --------------------------------------------------------------------------------


def add_silence(store_dir: Path, rule: str, key: str | None, until: datetime) -> None:
    """Silence ``rule`` (one key, or all with ``key=None``) until ``until``: no notices."""
    with locked_state(store_dir) as state:
        state.silences.append(
            {"rule": rule, "key": key, "until": until.timestamp(), "created": time.time()}
        )


def remove_silence(store_dir: Path, rule: str, key: str | None) -> None:
    with locked_state(store_dir) as state:
        state.silences = [
            s for s in state.silences if not (s.get("rule") == rule and s.get("key") == key)
        ]


# -- text and links --------------------------------------------------------------------------


def format_value(metric: str, value: float | None) -> str:
    """A metric's value for people: ``2h 05m``, ``12.5%``, ``61.2 s``, ``42``."""
    if value is None:
        return "never" if metric == "last_sync_age" else "no data"
    unit = METRICS.get(metric, ("count", ""))[0]
    if unit == "s":
        return format_seconds(value)
    if unit == "ratio":
        return f"{value:.1%}"
    if unit == "ms":
        return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms"
    if unit == "per_hour":
        return f"{value:,.1f}/h"
    return f"{value:,.0f}"


def format_seconds(seconds: float) -> str:
    s = int(round(seconds))
    sign, s = ("-", -s) if s < 0 else ("", s)
    if s < 60:
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{sign}{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{sign}{s // 86400}d {s % 86400 // 3600:02d}h"


def slack_safe(text: str, n: int = 80) -> str:
    """Hostile text (an agent name) for a chat line: control characters out, clipped, and
    ``& < >`` escaped the way Slack asks, so it can never form a mention or a link."""
    clean = "".join(ch if ch.isprintable() else " " for ch in str(text))
    clean = _clip(clean, n)
    return clean.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def notice_text(n: Notice) -> str:
    """One line a Slack incoming webhook shows as is, e.g. ``[FIRING] Agent silent (warning)
    for agent did:cf:abc: time since the last cycle = 47m 10s, threshold > 30m 00s; since
    2026-11-25 12:03 UTC``."""
    head = {"firing": "FIRING", "resolved": "RESOLVED"}[n.status]
    if n.renotify:
        head = "STILL FIRING"
    who = ""
    if n.key is not None:
        who = f" for {'agent' if n.agent is not None else 'mode'} {slack_safe(n.key)}"
    what = f"{METRICS[n.metric][1]} = {format_value(n.metric, n.value)}"
    cond = f"threshold {n.comparison} {format_value(n.metric, n.threshold)}"
    since = f"{n.since:%Y-%m-%d %H:%M} UTC"
    if n.status == "resolved":
        return f"[{head}] {n.title} ({n.severity}){who}: {what}, {cond}; was firing since {since}"
    return f"[{head}] {n.title} ({n.severity}){who}: {what}, {cond}; since {since}"


_PAGE = {
    "newest_ingest_age": "health",
    "last_sync_age": "health",
    "ingest_lag": "health",
    "events_per_hour": "health",
    "newest_event_age": "health",
    "cycle_age": "timeline",
    "cycles": "timeline",
    "error_rate": "errors",
    "p95_duration": "modes",
}


def view_url(public_url: str | None, n: Notice) -> str | None:
    """The dashboard view that shows the notice: its page, filtered to its agent or mode, over a
    time range covering the rule's window."""
    if not public_url:
        return None
    params: dict[str, str] = {}
    if n.agent is not None:
        params["agent"] = n.agent
    if n.mode is not None:
        params["mode"] = n.mode
    held = max(0.0, (n.at - n.since).total_seconds())
    for preset, span in (("1h", 3600), ("6h", 21600), ("24h", 86400), ("7d", 604800)):
        if held <= span * 0.8:
            params["range"] = preset
            break
    else:
        params["range"] = "30d"
    if params.get("range") == "24h":  # the dashboard's default is left out of its URLs
        del params["range"]
    query = f"?{urlencode(params)}" if params else ""
    return f"{public_url}/{_PAGE[n.metric]}{query}"


# -- the app's and watch's evaluator ---------------------------------------------------------


class AlertWorker:
    """Evaluates and delivers on a thread of its own, so a sync never waits for it.

    :meth:`request` (the background syncer's after-sync hook) returns at once; requests that
    arrive while an evaluation runs fold into one more evaluation."""

    def __init__(
        self,
        settings: Settings,
        db: EventsDB,
        *,
        on_result: Callable[[Evaluation, list[Delivery]], None] | None = None,
        who: str = "",
        delivery: dict[str, Any] | None = None,
    ) -> None:
        self.settings, self.db = settings, db
        self.on_result = on_result
        self.who = who
        self.delivery = delivery or {}
        self.last: Evaluation | None = None
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        """Ask for an evaluation; never blocks."""
        with self._lock:
            self._idle.clear()
            self._wake.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="o11y-alerts", daemon=True)
                self._thread.start()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no evaluation is asked for or running (tests, and ``watch`` on exit)."""
        return self._idle.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                break
            self._wake.clear()
            try:
                ev = evaluate(self.settings, self.db, who=self.who)
                sent = deliver_all(self.settings, ev.notices, **self.delivery)
                if self.last is None or self.last.problems != ev.problems:
                    for problem in ev.problems:
                        log.info("alert rules: %s", problem)
                self.last, self.last_error = ev, None
                if self.on_result:
                    self.on_result(ev, sent)
            except O11yError as exc:
                self.last_error = exc.one_line()
                log.warning("alert evaluation failed: %s", exc.one_line())
            except Exception:  # the thread must survive anything; the cause goes to the log
                self.last_error = "alert evaluation failed unexpectedly"
                log.exception("alert evaluation failed")
            with self._lock:
                if not self._wake.is_set():
                    self._idle.set()


def state_lines(state: AlertState, now: float | None = None) -> list[str]:
    """One line per rule (and per non-ok key) for the CLI."""
    now = now or time.time()
    out = []
    for r in state.rules:
        name = str(r.get("name"))
        if not r.get("enabled", True):
            out.append(f"{name:<20} off")
            continue
        mine = [s for s in state.series.values() if s.rule == name]
        bad = sorted(
            (s for s in mine if s.state != "ok"), key=lambda s: (STATES.index(s.state), s.key)
        )
        metric = str(r.get("metric"))
        cond = f"{r.get('comparison')} {format_value(metric, r.get('threshold'))}"
        if not bad:
            value = mine[0].value if len(mine) == 1 else None
            shown = format_value(metric, value) if len(mine) == 1 else f"{len(mine)} keys"
            out.append(f"{name:<20} ok        {shown} ({cond})")
        for s in bad:
            key = f" {_clip(s.key, 48)}" if s.key is not None else ""
            held = f" for {format_seconds(now - s.since)}" if s.since else ""
            mute = " (silenced)" if state.silenced(name, s.key, now) else ""
            out.append(
                f"{name:<20} {s.state:<9} {format_value(metric, s.value)} ({cond}){held}{key}{mute}"
            )
    return out


@dataclass(frozen=True)
class FiringSummary:
    """What a banner shows: how many alerts fire (silenced ones left out) and the worst one."""

    count: int
    title: str
    severity: str
    key: str | None


def firing_summary(state: AlertState, now: float | None = None) -> FiringSummary | None:
    """The firing, unsilenced series: their count and the worst (most severe, then oldest)."""
    now = now or time.time()
    rules = {str(r.get("name")): r for r in state.rules}
    live = [s for s in state.firing() if not state.silenced(s.rule, s.key, now)]
    if not live:
        return None

    def rank(s: Series) -> tuple[int, float]:
        sev = str(rules.get(s.rule, {}).get("severity", "warning"))
        order = SEVERITIES.index(sev) if sev in SEVERITIES else 1
        return (-order, s.since or now)

    worst = min(live, key=rank)
    rule = rules.get(worst.rule, {})
    title = str(rule.get("title") or worst.rule.replace("_", " ").capitalize())
    return FiringSummary(len(live), title, str(rule.get("severity", "warning")), worst.key)
