"""Evaluating: measure every rule (each alone), move each series' state, decide the notices and
put them in the outbox, all in one short hold of the alerts lock.

A series moves ok → pending → firing → resolved (back to ok). It fires once the condition has held
for the rule's pending period (dated by the data when it can be); a firing series resolves only
once the condition has been clear for the rule's recovery period (default: its pending period),
so a value hovering about the threshold notifies once. A rule that cannot be measured (its query
fails, a value is not a number) is a *fault* with a one-line reason while every other rule
evaluates; a fault that lasts :data:`FAULT_NOTIFY_AFTER` evaluations is itself a notice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

from .. import routes
from ..config import Settings, webhook_id, webhook_label
from ..errors import O11yError
from ..query.db import EventsDB
from ..text import clip
from .measure import Measurer, Reading, Readings
from .notice import Notice
from .rules import AGE_METRICS, SEVERITIES, Rule, RuleSet, load_rules
from .state import (
    AlertState,
    Fault,
    OkKeys,
    OutboxItem,
    Series,
    Transition,
    locked_state,
    tracked_keys,
)
from .state import series_id as series_id
from .text import STATES

log = logging.getLogger(__name__)

_NONE: frozenset[str | None] = frozenset()
FAULT_NOTIFY_AFTER = 3  # evaluations in a row a rule cannot be evaluated before it is a notice
STOPPED_AFTER = 3  # intervals without an evaluation: the evaluator has stopped


@dataclass(frozen=True)
class Evaluation:
    """One evaluation: the series after it, the transitions and the notices it decided."""

    at: datetime
    series: tuple[Series, ...]
    transitions: tuple[Transition, ...]
    notices: tuple[Notice, ...]
    rules: tuple[Rule, ...]
    problems: tuple[str, ...]
    faults: dict[str, str]  # rule -> why it could not be evaluated this time
    queries: int = 0
    keys: int = 0  # (rule, key) pairs evaluated, ok ones included

    @property
    def errors(self) -> list[str]:
        """One line per rule or key in state ``error``."""
        out = [f"rule {name!r}: {why}" for name, why in self.faults.items()]
        out += [
            f"rule {s.rule!r} key {clip(s.key)!r}: {s.reason}"
            for s in self.series
            if s.state == "error"
        ]
        return out


def one_line(exc: BaseException) -> str:
    """A failure as one line for a rule's error state (the cause goes to the log)."""
    if isinstance(exc, O11yError):
        return exc.one_line()
    return f"{type(exc).__name__}: {clip(exc, 120)}" if str(exc) else type(exc).__name__


def measure_all(
    db: EventsDB, rules: Sequence[Rule], now: datetime, known: dict[str, set[str | None]]
) -> tuple[dict[str, Readings], dict[str, str], int]:
    """Every rule's readings, each rule alone: (readings, faults, queries run)."""
    measurer = Measurer(db, now)
    readings: dict[str, Readings] = {}
    faults: dict[str, str] = {}
    for rule in rules:
        try:
            got = measurer.readings(rule)
            readings[rule.name] = measurer.dated(rule, got, known.get(rule.name, _NONE))
        except Exception as exc:  # one rule failing must never stop the others
            faults[rule.name] = one_line(exc)
            log.warning(
                "alert rule %s not evaluated: %s", rule.name, faults[rule.name], exc_info=exc
            )
    return readings, faults, measurer.queries


def evaluate(
    settings: Settings,
    db: EventsDB,
    *,
    now: datetime | None = None,
    ruleset: RuleSet | None = None,
    who: str = "",
    interval_s: float | None = None,
) -> Evaluation:
    """Measure every enabled rule (outside the lock), then under the lock move each series' state
    and put the notices decided into the outbox; return them (delivery is another thread's job)."""
    now = now or datetime.now(UTC)
    ruleset = ruleset or load_rules(settings.alerts_file)
    known = tracked_keys(settings.store_dir)
    readings, faults, queries = measure_all(db, ruleset.enabled, now, known)
    t = now.timestamp()
    with locked_state(settings.store_dir) as state:
        state.silences = [s for s in state.silences if float(s.get("until") or 0) > t]
        by_rule: dict[str, list[Series]] = {}
        for s in state.series.values():
            by_rule.setdefault(s.rule, []).append(s)
        transitions: list[Transition] = []
        notices: list[Notice] = []
        kept: dict[str, Series] = {}
        ok: dict[str, OkKeys] = {}
        nearest: dict[tuple[int, bool], float | None] = {}  # the readings outlive it: ids hold
        for rule in ruleset.enabled:
            mine = by_rule.get(rule.name, [])
            if rule.name in faults:  # not measured this time: its states stand as they are
                kept.update({series_id(s.rule, s.key): s for s in mine})
                if rule.name in state.ok:
                    ok[rule.name] = state.ok[rule.name]
                notices += _fault_step(state, rule, faults[rule.name], now)
                continue
            notices += _fault_cleared(state, rule, now)
            got = _step_rule(state, rule, readings[rule.name], mine, now, nearest)
            kept.update(got.kept)
            ok[rule.name] = got.ok
            transitions += got.transitions
            state.history += [asdict(tr) for tr in got.transitions]
            notices += got.notices
        # Series of rules gone from the file, and ok series no longer measured, are dropped.
        state.series, state.ok = kept, ok
        keys = len(kept) + sum(o.count for o in ok.values())
        names = {r.name for r in ruleset.enabled}
        state.faults = {k: f for k, f in state.faults.items() if k in names}
        by_name = {r.name: r for r in ruleset.rules}
        notices = [
            replace(n, url=view_url(settings.public_url, n, by_name.get(n.rule))) for n in notices
        ]
        enqueue(state, settings, notices, t)
        digest, rule_dicts = rules_json(ruleset)
        if digest != state.rules_digest:
            state.rules, state.rules_digest, state.rules_changed = rule_dicts, digest, True
        problems = (*settings.alert_problems, *ruleset.problems)
        state.problems = list(problems)
        state.evaluated_at, state.evaluated_by = t, who or f"pid {os.getpid()}"
        state.interval_s = float(interval_s or settings.sync_interval_s)
        series = tuple(state.series.values())
    return Evaluation(
        now,
        series,
        tuple(transitions),
        tuple(notices),
        ruleset.rules,
        problems,
        faults,
        queries,
        keys,
    )


@dataclass
class RuleStep:
    """One rule's evaluation: the series that need a memory, its ok keys, what changed."""

    kept: dict[str, Series]
    ok: OkKeys
    transitions: list[Transition]
    notices: list[Notice]


def _nearest(values: list[float | None], *, high: bool) -> float | None:
    """The value nearest to breaching (values that are not finite were made errors)."""
    known = [v for v in values if v is not None]
    if not known:
        return None
    return max(known) if high else min(known)


def _step_rule(
    state: AlertState,
    rule: Rule,
    got: Readings,
    mine: list[Series],
    now: datetime,
    nearest: dict[tuple[int, bool], float | None],
) -> RuleStep:
    """Step every key of one rule. A key with no memory (ok before) that stays ok is only
    counted, in bulk: with 500 rules over 60 agents that is nearly every key."""
    t = now.timestamp()
    prev_by_key = {s.key: s for s in mine}
    no_data_ok, errors = rule.no_data == "ok", got.errors
    ok_keys: list[str | None] = []
    ok_values: list[float | None] = []
    slow: list[Reading] = []
    breaches = got.breaches
    if (
        not prev_by_key
        and not errors
        and True not in breaches  # membership tests run in C: most rules stop here
        and (no_data_ok or None not in breaches)
    ):
        ok_keys, ok_values = got.keys, got.values  # every key ok, as before: nothing to step
    else:
        for i, key in enumerate(got.keys):
            b = got.breaches[i]
            stays_ok = b is False or (b is None and no_data_ok)
            if stays_ok and key not in prev_by_key and key not in errors:
                ok_keys.append(key)
                # A value not judged (too few cycles) is never "the nearest to breaching".
                ok_values.append(got.values[i] if b is False else None)
                continue
            slow.append(got.reading(i))
    measured = set(got.keys) if mine else set()
    for s in mine:  # a tracked key without data now
        if s.state in {"pending", "firing"} and s.key not in measured:
            slow.append(Reading(s.key, None, None))
    high = rule.comparison.startswith(">")
    if ok_values is got.values and None in breaches:  # some not judged: they are no nearest
        ok_values = [v if b is False else None for v, b in zip(ok_values, breaches, strict=True)]
    if ok_values is got.values:  # a group's values: the rules sharing them share the answer
        memo = (id(ok_values), high)
        if memo not in nearest:
            nearest[memo] = _nearest(ok_values, high=high)
        near = nearest[memo]
    else:
        near = _nearest(ok_values, high=high)
    summary = OkKeys(
        count=len(ok_keys),
        nearest=near,
        # No None key: the group's own list, shared by its rules (OkKeys.add copies first).
        keys=[k for k in ok_keys if k is not None] if None in ok_keys else ok_keys,
    )
    out = RuleStep({}, summary, [], [])
    for reading in slow:
        key = reading.key
        prev = prev_by_key.get(key) or Series(rule.name, key)
        silenced = state.silenced(rule.name, key, t)
        new, tr, notice = step(prev, reading, rule, now, silenced=silenced)
        if new.state == "ok":
            summary.add(key, new.value, high=high)
        else:
            out.kept[series_id(rule.name, key)] = new
        if tr:
            out.transitions.append(tr)
        if notice:
            out.notices.append(notice)
    return out


_RULES_MEMO: list[tuple[RuleSet, str, list[dict]]] = []


def rules_json(ruleset: RuleSet) -> tuple[str, list[dict]]:
    """The rules as stored, and their digest (once per rule set: :func:`load_rules` returns the
    same object while the file is unchanged)."""
    for rs, digest, dicts in _RULES_MEMO:
        if rs is ruleset:
            return digest, dicts
    dicts = [r.to_json() for r in ruleset.rules]
    text = json.dumps(dicts, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    _RULES_MEMO[:] = [(ruleset, digest, dicts), *_RULES_MEMO[:3]]
    return digest, dicts


def enqueue(state: AlertState, settings: Settings, notices: Sequence[Notice], t: float) -> None:
    """Each notice, once per webhook URL, into the outbox (written with the state that decided
    it, so a crash after this loses nothing and a crash before it decided nothing)."""
    for n in notices:
        for url in settings.alert_webhooks:
            state.outbox.append(
                OutboxItem(
                    notice=n, target_id=webhook_id(url), target=webhook_label(url), created=t
                )
            )


def _fault_notice(rule: Rule, fault: Fault, status: str, now: datetime) -> Notice:
    return Notice(
        status=status,
        rule=rule.name,
        title=rule.label,
        severity=rule.severity,
        metric=rule.metric,
        scope="all",
        key=None,
        value=None,
        threshold=rule.threshold,
        comparison=rule.comparison,
        since=datetime.fromtimestamp(fault.since, UTC),
        at=now,
        error=fault.reason,
    )


def _fault_step(state: AlertState, rule: Rule, reason: str, now: datetime) -> list[Notice]:
    """One more evaluation the rule could not make; a notice once it keeps failing."""
    fault = state.faults.get(rule.name)
    if fault is None:
        fault = state.faults[rule.name] = Fault(reason=reason, since=now.timestamp(), failures=0)
    fault.reason, fault.failures = reason, fault.failures + 1
    if fault.failures >= FAULT_NOTIFY_AFTER and not fault.notified:
        fault.notified = True
        if not state.silenced(rule.name, None, now.timestamp()):
            return [_fault_notice(rule, fault, "firing", now)]
    return []


def _fault_cleared(state: AlertState, rule: Rule, now: datetime) -> list[Notice]:
    fault = state.faults.pop(rule.name, None)
    if fault is not None and fault.notified:
        return [_fault_notice(rule, fault, "resolved", now)]
    return []


def step(
    prev: Series, reading: Reading, rule: Rule, now: datetime, *, silenced: bool
) -> tuple[Series, Transition | None, Notice | None]:
    """The next state of one series after a reading (pure): the new series, the transition (if
    the state changed) and the notice to send (if any)."""
    t = now.timestamp()
    new = replace(prev, value=reading.value, threshold=rule.threshold, evaluated_at=t, reason=None)
    breach = reading.breach
    if reading.error is None and breach is None and rule.no_data != "nodata":
        breach = rule.no_data == "alerting"
    active = prev.state in {"pending", "firing"}
    if reading.error is not None:  # a value that cannot be judged: shown, never a notice
        if prev.state != "firing":
            new.state, new.since, new.reason = "error", None, reading.error
    elif breach is None:  # no data, shown as such; a firing alert stays firing until data says so
        if prev.state != "firing":
            new.state, new.since = "nodata", None
    elif breach:
        since = reading.since.timestamp() if reading.since else None
        if active and prev.since and (since is None or prev.state == "firing"):
            since = prev.since  # a firing alert stays firing while the condition holds
        new.since, new.clear_since = since or t, None
        held = t - new.since
        new.state = "firing" if prev.state == "firing" or held >= rule.pending_s else "pending"
    elif prev.state == "firing":  # clear: it resolves once clear for the recovery period
        new.clear_since = prev.clear_since or t
        if t - new.clear_since >= rule.recovery:
            new.state, new.since, new.clear_since = "ok", None, None
    else:
        new.state, new.since, new.clear_since = "ok", None, None
    notice_status = None
    if new.state == "firing" and not silenced and new.clear_since is None:
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


# -- links -----------------------------------------------------------------------------------

_ROUTE = {
    "newest_ingest_age": routes.HEALTH,
    "last_sync_age": routes.HEALTH,
    "ingest_lag": routes.HEALTH,
    "events_per_hour": routes.HEALTH,
    "newest_event_age": routes.HEALTH,
    "cycle_age": routes.TIMELINE,
    "cycles": routes.TIMELINE,
    "error_rate": routes.ERRORS,
    "p95_duration": routes.MODES,
}


def view_url(public_url: str | None, n: Notice, rule: Rule | None = None) -> str | None:
    """The dashboard view that shows the notice, over a preset range covering both the rule's
    window and how long the condition has held: an agent's alert opens its agent page; any other
    opens the metric's page (timeline, errors, modes or health), filtered to the mode if any."""
    if not public_url:
        return None
    window = rule.window_s if rule and n.metric not in AGE_METRICS else 0.0
    held = max(0.0, (n.at - n.since).total_seconds())
    return routes.view_link(
        public_url,
        routes.AGENT if n.agent is not None else _ROUTE[n.metric],
        agent=n.agent,
        mode=n.mode,
        range_name=routes.covering_range(max(held, window)),
    )


# -- summaries for the screens ---------------------------------------------------------------


@dataclass(frozen=True)
class FiringSummary:
    """What a banner shows: how many alerts fire (silenced ones left out) and the worst one."""

    count: int
    title: str
    severity: str
    key: str | None


def _rules_by_name(state: AlertState) -> dict[str, dict]:
    return {str(r.get("name")): r for r in state.rules}


def firing_summary(state: AlertState, now: float | None = None) -> FiringSummary | None:
    """The firing, unsilenced series: their count and the worst (most severe, then oldest)."""
    now = now or time.time()
    rules = _rules_by_name(state)
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


def firing_by_agent(state: AlertState, now: float | None = None) -> dict[str, str]:
    """Agent DID -> the title of an unsilenced alert firing for it (the wall marks its tile)."""
    now = now or time.time()
    rules = _rules_by_name(state)
    out: dict[str, str] = {}
    for s in state.firing():
        rule = rules.get(s.rule, {})
        if s.key is None or rule.get("scope") not in {"per_agent", "agents"}:
            continue
        if state.silenced(s.rule, s.key, now):
            continue
        out.setdefault(s.key, str(rule.get("title") or s.rule.replace("_", " ").capitalize()))
    return out


AGENT_SCOPES = ("per_agent", "agents")  # rules whose keys are agents
NOT_WATCHED = "not watched"  # an agent rule that did not measure this agent (not listed, no data)


@dataclass(frozen=True)
class AgentAlert:
    """One agent rule as it stands for one agent: ``state`` is a series state (error, firing,
    pending, nodata, ok) or :data:`NOT_WATCHED`; ``value`` the last measured value, if kept."""

    rule: str
    title: str
    severity: str
    metric: str
    state: str
    value: float | None
    threshold: float | None
    comparison: str
    window_s: float | None
    since: float | None
    silenced: bool
    reason: str | None = None


def agent_alerts(state: AlertState, agent: str, now: float | None = None) -> list[AgentAlert]:
    """Every enabled agent rule (per agent, or naming agents) for ``agent``, the worst first:
    what the alerts page shows for it, one row per rule."""
    now = now or time.time()
    out = []
    for r in state.rules:
        name = str(r.get("name"))
        if r.get("scope") not in AGENT_SCOPES or not r.get("enabled", True):
            continue
        s = state.series.get(series_id(name, agent))
        fault = state.faults.get(name)
        value, since, reason = None, None, None
        if fault is not None:
            status, since, reason = "error", fault.since, fault.reason
        elif s is not None:
            status, value, since, reason = s.state, s.value, s.since, s.reason
        elif agent in state.ok.get(name, OkKeys()).keys:
            status = "ok"
        else:
            status = NOT_WATCHED
        metric = str(r.get("metric"))
        threshold = r.get("threshold")
        out.append(
            AgentAlert(
                rule=name,
                title=str(r.get("title") or name.replace("_", " ").capitalize()),
                severity=str(r.get("severity", "warning")),
                metric=metric,
                state=status,
                value=value,
                threshold=None if threshold is None else float(threshold),
                comparison=str(r.get("comparison", ">")),
                window_s=None if metric in AGE_METRICS else r.get("window_s"),
                since=since,
                silenced=state.silenced(name, agent, now),
                reason=reason,
            )
        )
    rank = [*STATES, NOT_WATCHED]
    return sorted(out, key=lambda a: (rank.index(a.state) if a.state in rank else 0, a.rule))


@dataclass(frozen=True)
class EvaluatorHealth:
    """Is anyone evaluating? ``level`` is ``ok``, ``amber`` (never yet) or ``red`` (stopped)."""

    level: str
    age_s: float | None
    text: str


def evaluator_health(state: AlertState, now: float, interval_s: float) -> EvaluatorHealth:
    """``red`` when no evaluation ran for :data:`STOPPED_AFTER` intervals (the evaluator's own
    interval when it recorded one)."""
    from ..durations import format_span

    if not state.evaluated_at:
        return EvaluatorHealth("amber", None, "alerts not evaluated yet")
    age = max(0.0, now - state.evaluated_at)
    every = state.interval_s or interval_s
    if age > STOPPED_AFTER * every:
        return EvaluatorHealth("red", age, f"alerts stopped: last evaluated {format_span(age)} ago")
    return EvaluatorHealth("ok", age, f"alerts evaluated {format_span(age)} ago")
