"""Alert rules: the model, the built-in rules, and ``alerts.toml`` loaded and validated.

Every key is checked when the file is loaded (names, metrics, windows and durations within
:data:`BOUNDS`, thresholds finite): each bad rule is one line naming the file, the rule and the
key, and is left out while the rest run. A file the TOML reader cannot take (a syntax error, arrays
nested deeper than Python's stack, a file too big) is one line and the built-in rules run as they
are.
"""

from __future__ import annotations

import math
import operator
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..durations import format_span, parse_duration
from ..text import clip

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
RATE_METRICS = {"error_rate", "p95_duration"}  # per cycle: too few cycles is no data
SCOPES = ("all", "per_agent", "per_mode", "agents")
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
SEVERITIES = ("info", "warning", "critical")
NO_DATA = ("ok", "alerting", "nodata")
RENOTIFY_S = 4 * 3600
MIN_CYCLES_RATE = 5  # a new error_rate / p95_duration rule's default min_cycles
# Documented bounds (docs/alerts.md): (least, most) seconds.
BOUNDS: dict[str, tuple[float, float]] = {
    "window": (60, 30 * 86400),
    "pending": (0, 7 * 86400),
    "recovery": (0, 7 * 86400),
    "renotify": (0, 30 * 86400),
    "threshold": (0, 365 * 86400),  # age and lag thresholds
}
MAX_THRESHOLD = 1e15  # any other threshold's magnitude
MAX_RULES = 1000
MAX_AGENTS = 1000  # agents listed in one rule
MAX_FILE_BYTES = 1 << 20


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
    recovery_s: float | None = None  # clear for this long before resolving (None: pending_s)
    severity: str = "warning"
    no_data: str = "nodata"  # what a key without data means: ok | alerting | nodata
    min_cycles: int = 0  # error_rate, p95_duration: fewer cycles in the window is no data
    renotify_s: float = RENOTIFY_S  # while firing, notify again this often (0: never)
    title: str = ""
    enabled: bool = True
    builtin: bool = False

    @property
    def label(self) -> str:
        return self.title or self.name.replace("_", " ").capitalize()

    @property
    def recovery(self) -> float:
        return self.pending_s if self.recovery_s is None else self.recovery_s

    def to_json(self) -> dict[str, Any]:
        """Flat values (asdict's deep copy costs 10x with 500 rules)."""
        out = dict(self.__dict__)
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
        min_cycles=MIN_CYCLES_RATE,
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


def _bounded(key: str) -> Callable[[object], float]:
    least, most = BOUNDS[key]

    def parse(value: object) -> float:
        seconds = parse_duration(value, most_s=most)
        if seconds < least:
            raise ValueError(f"at least {format_span(least)}")
        return seconds

    return parse


def _threshold(metric: str, value: object) -> float:
    unit = METRICS[metric][0]
    if unit == "s":
        return _bounded("threshold")(value)
    if unit == "ratio" and isinstance(value, str) and value.strip().endswith("%"):
        try:
            value = float(value.strip()[:-1]) / 100
        except ValueError as exc:
            raise ValueError(f"{clip(value)!r} is not a percentage") from exc
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, not {clip(value)!r}")
    number = float(value)
    if not math.isfinite(number) or abs(number) > MAX_THRESHOLD:
        raise ValueError(f"expected a finite number of at most {MAX_THRESHOLD:g}")
    return number


def _choice(value: object, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{clip(value)!r} is not one of {', '.join(allowed)}")
    return value


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def _min_cycles(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
        raise ValueError("expected a whole number from 0 to 1000000")
    return value


def _agent_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of agent DIDs (strings)")
    if len(value) > MAX_AGENTS or any(not 0 < len(v) <= 500 for v in value):
        raise ValueError(f"at most {MAX_AGENTS} agents of 1 to 500 characters")
    return tuple(value)


_KEYS = {
    "metric",
    "threshold",
    "comparison",
    "scope",
    "agents",
    "window",
    "pending",
    "recovery",
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
        raise RuleError(f"unknown key {clip(unknown[0])!r} (known: {', '.join(sorted(_KEYS))})")
    if base is None and "metric" not in table:
        raise RuleError("key 'metric': missing (one of " + ", ".join(METRICS) + ")")
    changes: dict[str, Any] = {}

    def field_(key: str, parse: Callable[[Any], Any], attr: str | None = None) -> None:
        if key in table:
            try:
                changes[attr or key] = parse(table[key])
            except (ValueError, TypeError) as exc:
                raise RuleError(f"key {key!r}: {exc}") from exc

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
    field_("window", _bounded("window"), "window_s")
    field_("pending", _bounded("pending"), "pending_s")
    field_("recovery", _bounded("recovery"), "recovery_s")
    field_("renotify", _bounded("renotify"), "renotify_s")
    field_("severity", lambda v: _choice(v, SEVERITIES))
    field_("no_data", lambda v: _choice(v, NO_DATA))
    field_("min_cycles", _min_cycles)
    field_("title", lambda v: clip(_string(v), 80))
    field_("enabled", _boolean)
    if "agents" in changes and "scope" not in changes:
        changes["scope"] = "agents"
    if base is None and metric in RATE_METRICS and "min_cycles" not in changes:
        changes["min_cycles"] = MIN_CYCLES_RATE
    rule = replace(base, **changes) if base else Rule(name=name, **changes)
    if rule.scope == "agents" and not rule.agents:
        raise RuleError("key 'agents': scope 'agents' needs a list of agent DIDs")
    if rule.metric == "last_sync_age" and rule.scope != "all":
        raise RuleError("key 'scope': last_sync_age has scope 'all' only")
    return rule


def _read_toml(path: Path) -> dict[str, Any]:
    """The file's tables, or ValueError with one line (never the reader's traceback)."""
    where = path.name
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"{where}: cannot read ({exc.strerror or type(exc).__name__})") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise ValueError(f"{where}: larger than {MAX_FILE_BYTES >> 20} MiB")
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:  # its message names the line and column
        raise ValueError(f"{where}: {clip(exc, 160)}") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where}: not UTF-8 text") from exc
    except RecursionError as exc:  # arrays or inline tables nested thousands deep
        raise ValueError(f"{where}: arrays or tables nested too deeply") from exc


_LOADED: dict[Path, tuple[tuple[int, int, int], RuleSet]] = {}


def load_rules(path: Path | None) -> RuleSet:
    """:func:`read_rules`, read again only when the file changes (the app evaluates after
    every sync: 500 rules are not parsed and validated every minute)."""
    if path is None:
        return read_rules(None)
    try:
        st = path.stat()
    except OSError:
        return read_rules(path)
    stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
    hit = _LOADED.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    ruleset = read_rules(path)
    if len(_LOADED) > 8:
        _LOADED.clear()
    _LOADED[path] = (stamp, ruleset)
    return ruleset


def read_rules(path: Path | None) -> RuleSet:
    """The built-in rules changed by ``path`` (if it exists) plus the rules it adds.

    A file that cannot be read leaves the built-ins as they are; a bad rule is left out (a bad
    change to a built-in keeps the built-in's defaults). Each problem is one line naming the file,
    the line or the rule and key."""
    builtins = {r.name: r for r in BUILTIN}
    if path is None or not path.exists():
        return RuleSet(tuple(builtins.values()))
    where = path.name
    try:
        data = _read_toml(path)
    except ValueError as exc:
        return RuleSet(tuple(builtins.values()), (str(exc),))
    problems: list[str] = []
    defaults = data.get("defaults", {})
    renotify = RENOTIFY_S
    if not isinstance(defaults, dict):
        problems.append(f"{where}: [defaults] must be a table")
        defaults = {}
    if "renotify" in defaults:
        try:
            renotify = _bounded("renotify")(defaults["renotify"])
        except ValueError as exc:
            problems.append(f"{where}: [defaults] key 'renotify': {exc}")
    for key in sorted(set(data) - {"rules", "defaults"})[:20]:
        problems.append(f"{where}: unknown section {clip(key)!r} (use [rules.<name>])")
    rules = {n: replace(r, renotify_s=renotify) for n, r in builtins.items()}
    tables = data.get("rules", {})
    if not isinstance(tables, dict):
        return RuleSet(tuple(rules.values()), (*problems, f"{where}: 'rules' must be a table"))
    for i, (name, table) in enumerate(tables.items()):
        if i >= MAX_RULES:
            problems.append(f"{where}: more than {MAX_RULES} rules; the rest are left out")
            break
        if not isinstance(table, dict):
            problems.append(f"{where}: rule {clip(name)!r}: expected a table [rules.<name>]")
            continue
        try:
            base = rules.get(name) if name in builtins else None
            rules[name] = rule_from_table(name, table, base)
            if name not in builtins and "renotify" not in table:
                rules[name] = replace(rules[name], renotify_s=renotify)
        except RuleError as exc:
            kept = "built-in kept" if name in builtins else "rule left out"
            problems.append(f"{where}: rule {clip(name)!r}: {exc} ({kept})")
    return RuleSet(tuple(rules.values()), tuple(problems))
