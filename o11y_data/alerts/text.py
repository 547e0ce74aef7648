"""Alert text for people: metric values, one-line notices for chat, the CLI's state lines."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from ..durations import format_span
from ..text import clip
from .rules import AGE_METRICS, METRICS

if TYPE_CHECKING:
    from .notice import Notice
    from .state import AlertState, OkKeys

STATES = ("error", "firing", "pending", "nodata", "ok")  # worst first


def format_value(metric: str, value: float | None) -> str:
    """A metric's value for people: ``2h 05m``, ``12.5%``, ``61.2 s``, ``42``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "never" if metric == "last_sync_age" and value is None else "no data"
    unit = METRICS.get(metric, ("count", ""))[0]
    if unit == "s":
        return format_span(value)
    if unit == "ratio":
        return f"{value:.1%}"
    if unit == "ms":
        return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms"
    if unit == "per_hour":
        return f"{value:,.1f}/h"
    return f"{value:,.0f}"


def slack_safe(text: str, n: int = 80) -> str:
    """Hostile text (an agent name) for a chat line: control characters out, clipped, and
    ``& < >`` escaped the way Slack asks, so it can never form a mention or a link."""
    clean = "".join(ch if ch.isprintable() else " " for ch in str(text))
    clean = clip(clean, n)
    return clean.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def notice_text(n: Notice) -> str:
    """One line a Slack incoming webhook shows as is, e.g. ``[FIRING] Agent silent (warning)
    for agent did:cf:abc: time since the last cycle = 47m, threshold > 30m; since
    2026-11-25 12:03 UTC``."""
    head = {"firing": "FIRING", "resolved": "RESOLVED"}[n.status]
    if n.renotify:
        head = "STILL FIRING"
    since = f"{n.since:%Y-%m-%d %H:%M} UTC"
    if n.error is not None:
        state = "cannot be evaluated" if n.status == "firing" else "evaluates again"
        why = f": {slack_safe(n.error, 160)}" if n.status == "firing" else ""
        return f"[{head}] {n.title} ({n.severity}) {state}{why}; since {since}"
    who = ""
    if n.key is not None:
        who = f" for {'agent' if n.agent is not None else 'mode'} {slack_safe(n.key)}"
    what = f"{METRICS[n.metric][1]} = {format_value(n.metric, n.value)}"
    cond = f"threshold {n.comparison} {format_value(n.metric, n.threshold)}"
    if n.status == "resolved":
        return f"[{head}] {n.title} ({n.severity}){who}: {what}, {cond}; was firing since {since}"
    return f"[{head}] {n.title} ({n.severity}){who}: {what}, {cond}; since {since}"


def state_lines(state: AlertState, now: float | None = None) -> list[str]:
    """One line per rule (and per key that is not ok) for the CLI."""
    now = now or time.time()
    out = []
    for r in state.rules:
        name = str(r.get("name"))
        if not r.get("enabled", True):
            out.append(f"{name:<20} off")
            continue
        fault = state.faults.get(name)
        if fault is not None:
            out.append(f"{name:<20} error     {fault.reason}")
            continue
        mine = [s for s in state.series.values() if s.rule == name]
        bad = sorted(
            (s for s in mine if s.state != "ok"), key=lambda s: (STATES.index(s.state), s.key or "")
        )
        metric = str(r.get("metric"))
        cond = f"{r.get('comparison')} {format_value(metric, r.get('threshold'))}"
        ok = state.ok.get(name)
        if not bad and ok is not None:
            out.append(f"{name:<20} ok        {ok_sentence(r, ok)}")
        for s in bad:
            key = f" {clip(s.key, 48)}" if s.key is not None else ""
            if s.state == "error":
                out.append(f"{name:<20} error     {s.reason}{key}")
                continue
            held = f" for {format_span(now - s.since)}" if s.since else ""
            mute = " (silenced)" if state.silenced(name, s.key, now) else ""
            value = format_value(metric, s.value)
            out.append(f"{name:<20} {s.state:<9} {value} ({cond}){held}{key}{mute}")
    return out


_SCOPE_NOUN = {"per_agent": "agent", "agents": "agent", "per_mode": "mode"}
_CROSSED = {">": "over", ">=": "at or over", "<": "under", "<=": "at or under"}


def _plural(n: int, noun: str) -> str:
    return noun if n == 1 or noun.endswith("s") else noun + "s"


def _counted(n: int, noun: str) -> str:
    return f"{n:,} {_plural(n, noun)}"


def ok_sentence(rule: dict, ok: OkKeys) -> str:
    """A rule whose every key is ok, for people: ``12 agents checked, none over 10.0% in the
    last 15m (highest 4.2%)``; a rule over the whole network: ``0.4%, not over 10.0% in the last
    15m``."""
    metric, comparison = str(rule.get("metric")), str(rule.get("comparison"))
    threshold = format_value(metric, rule.get("threshold"))
    crossed = _CROSSED.get(comparison, comparison)
    window = "" if metric in AGE_METRICS else f" in the last {format_span(rule.get('window_s'))}"
    if ok.count == 1 and not ok.keys:
        return f"{format_value(metric, ok.nearest)}, not {crossed} {threshold}{window}"
    noun = _SCOPE_NOUN.get(str(rule.get("scope")), "series")
    if not ok.count:
        return f"no {_plural(0, noun)} seen{window}"
    extreme = "highest" if comparison.startswith(">") else "lowest"
    nearest = "" if ok.nearest is None else f" ({extreme} {format_value(metric, ok.nearest)})"
    return f"{_counted(ok.count, noun)} checked, none {crossed} {threshold}{window}{nearest}"


def failed_lines(state: AlertState, *, since: float, most: int = 10) -> list[str]:
    """The deliveries that finally failed since ``since`` (newest last), one line each."""
    failed = [d for d in state.failed_deliveries() if d.at >= since][-most:]
    out = []
    for d in failed:
        at = time.strftime("%Y-%m-%d %H:%M", time.gmtime(d.at))
        key = f" {clip(d.key, 48)}" if d.key is not None else ""
        out.append(
            f"not delivered to {d.target}: {d.error} ({d.status} {d.rule}{key}, "
            f"{d.attempts} attempts, {at} UTC)"
        )
    return out
