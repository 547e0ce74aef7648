"""Sections of ``pages/alerts.py`` (the scheme: ``ui/sections/__init__.py``): the evaluator's
health and targets, the rules table (``?show=``), silences, transitions and failed deliveries.

Agent names only ever appear inside tables and select boxes (plain text), never in Markdown.
"""

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from o11y_data import alerts as A
from o11y_data.config import webhook_label
from o11y_data.durations import format_span
from ui import page as P
from ui import tables

SHOW = {"all": "Every rule", "active": "Errors, pending, firing and no data only"}
SILENCE_FOR = {"1h": 1, "4h": 4, "24h": 24, "7d": 168}
EVERY = "(every one)"
# What people read first on the left; the rule's code name (as in the rules file) last.
COLUMNS = ["alert", "agent / mode", "agent page", "state", "value", "threshold", "measures"]
COLUMNS += ["since"]
COLUMNS += ["severity", "silenced", "rule"]
# Widths for 1440 px: the words of "measures" whole, the short codes narrow.
COLUMN_CONFIG = {
    "severity": st.column_config.TextColumn(width="small"),
    "value": st.column_config.TextColumn(width="small"),
    "state": st.column_config.TextColumn(width="small"),
    "threshold": st.column_config.TextColumn(width="small"),
    "silenced": st.column_config.TextColumn(width="small"),
    "agent page": st.column_config.LinkColumn(display_text="open →", width="small"),
    "measures": st.column_config.TextColumn(
        width="large", help="what the rule's value measures, and over which window"
    ),
}
SCOPE_NOUN = {"per_agent": "agents", "agents": "agents", "per_mode": "modes"}


def measures(metric: str, window_s: float | None) -> str:
    """What a rule's value is, in words: ``share of cycles with errors in the last 15m``."""
    words = A.METRICS.get(metric, ("", metric))[1]
    if metric in A.AGE_METRICS:
        return words
    span = f"the last {format_span(window_s or 0)}"
    for tail in (" in the window", " over the window"):
        if words.endswith(tail):
            return f"{words[: -len(tail)]}{tail.split(' the ')[0]} {span}"
    return f"{words} in {span}"


def deliveries_line(delivered: int, total: int) -> str:
    """How the recent notices went out, in words (never "0 of the last 0")."""
    if total == 0:
        return "No deliveries yet."
    if total == 1:
        return f"The one delivery so far {'succeeded' if delivered else 'failed'}."
    if delivered == total:
        return f"All of the last {total:,} deliveries succeeded."
    return f"{delivered:,} of the last {total:,} deliveries succeeded."


def when(c: P.Ctx, epoch: float | None) -> str:
    return c.ts(datetime.fromtimestamp(float(epoch), UTC)) if epoch else ""


def header(c: P.Ctx, state: A.AlertState, now: datetime) -> None:
    settings = c.settings
    health = A.evaluator_health(state, now.timestamp(), settings.sync_interval_s)
    if health.level == "red":
        st.error(
            f"The alert evaluator has stopped: {P.md_escape(health.text)} (by "
            f"{P.md_escape(state.evaluated_by)}). Nothing is being checked.",
            icon=":material/error:",
        )
    elif state.evaluated_at:
        ago = format_span(now.timestamp() - state.evaluated_at)
        st.caption(
            f"Evaluated {ago} ago by {P.md_escape(state.evaluated_by)}, after every sync. "
            f"Rules file: {P.md_escape(str(settings.alerts_file))}"
        )
    if not state.evaluated_at:
        st.info(
            "Not evaluated yet: the rules run after every sync.", icon=":material/hourglass_top:"
        )
    for problem in state.problems:
        st.warning(P.md_escape(problem), icon=":material/rule:")
    if settings.alert_webhooks:
        targets = ", ".join(webhook_label(u).replace("`", "") for u in settings.alert_webhooks)
        waiting = f"; {len(state.outbox)} waiting to be sent" if state.outbox else ""
        st.caption(f"Notices go to `{targets}`{waiting}")
    else:
        st.caption("No webhook configured (O11Y_ALERT_WEBHOOK): states are shown here only.")
    beat = state.heartbeat
    if beat is not None:
        outcome = "answered" if beat.ok else f"failed: {P.md_escape(beat.error or '')}"
        st.caption(
            f"Heartbeat `{beat.target.replace('`', '')}` called {when(c, beat.at)}: {outcome}"
        )


def show_choice() -> str:
    """``?show=all|active``: the view choice lives in the URL."""
    show = st.query_params.get("show", "all")
    if show not in SHOW:
        st.warning("Ignored the URL's show value (use all or active).", icon=":material/link_off:")
        show = "all"
    picked = st.radio(
        "Show",
        list(SHOW),
        index=list(SHOW).index(show),
        format_func=SHOW.get,
        horizontal=True,
        key="alerts_show",
    )
    if picked != show:
        st.query_params["show"] = picked
    return picked


def rule_rows(c: P.Ctx, state: A.AlertState, rule: dict, now: datetime) -> list[dict]:
    """One row per series that needs attention; a rule whose keys are all ok is one row (with
    the value nearest to its threshold); a rule turned off is one row saying so."""
    name, metric = str(rule.get("name")), str(rule.get("metric"))
    comparison = str(rule.get("comparison"))
    enabled = bool(rule.get("enabled", True))
    mine = [s for s in state.series.values() if s.rule == name] if enabled else []
    base = {
        "rule": name,
        "alert": str(rule.get("title") or name),
        "severity": str(rule.get("severity")),
        "threshold": f"{comparison} {A.format_value(metric, rule.get('threshold'))}",
        "measures": measures(metric, rule.get("window_s")),
    }

    per_agent = rule.get("scope") in A.AGENT_SCOPES

    def row(key: str, state_: str, value: str, since: float | None = None, mute: bool = False):
        return {
            **base,
            "agent / mode": key,
            "agent page": tables.agent_link(key, c.params) if per_agent and key else None,
            "state": state_,
            "value": value,
            "since": when(c, since),
            "silenced": "yes" if mute else "",
        }

    fault = state.faults.get(name) if enabled else None
    if fault is not None:  # the rule could not be evaluated: its reason, one line
        return [row("", "error", fault.reason, fault.since)]
    bad = sorted(
        (s for s in mine if s.state != "ok"), key=lambda s: (A.STATES.index(s.state), s.key or "")
    )
    out = [
        row(
            s.key or "",
            s.state,
            s.reason or "" if s.state == "error" else A.format_value(metric, s.value),
            s.since,
            state.silenced(name, s.key, now.timestamp()),
        )
        for s in bad
    ]
    if out or not enabled:
        return out or [row("", "off", "")]
    ok = state.ok.get(name, A.OkKeys())
    if ok.count == 1 and not ok.keys:
        return [row("", "ok", A.format_value(metric, ok.nearest))]
    nearest = ""
    if ok.nearest is not None:
        high = comparison.startswith(">")
        nearest = f"{'max' if high else 'min'} {A.format_value(metric, ok.nearest)}"
    noun = SCOPE_NOUN.get(str(rule.get("scope")), "series")
    return [row(f"{ok.count:,} {noun}, all ok" if ok.count else f"no {noun} seen", "ok", nearest)]


def rules_table(c: P.Ctx, state: A.AlertState, now: datetime, show: str) -> None:
    rows = [r for rule in state.rules for r in rule_rows(c, state, rule, now)]
    table = pd.DataFrame(rows, columns=COLUMNS)
    if show == "active":
        table = table[table["state"].isin(["error", "firing", "pending", "nodata"])]
    if len(table):
        st.dataframe(table, hide_index=True, width="stretch", column_config=COLUMN_CONFIG)
    elif state.rules:
        st.success("Nothing pending or firing.", icon=":material/check_circle:")


def silences(c: P.Ctx, state: A.AlertState, now: datetime) -> None:
    st.subheader("Silence", anchor=False)
    store = c.settings.store_dir
    rule_names = [str(r.get("name")) for r in state.rules if r.get("enabled", True)]
    if rule_names:
        cols = st.columns([3, 3, 2, 2], vertical_alignment="bottom")
        rule = cols[0].selectbox("Rule", rule_names, key="silence_rule")
        keys = state.keys_of(rule)
        key = cols[1].selectbox("Agent or mode", [EVERY, *keys], key="silence_key")
        period = cols[2].selectbox("For", list(SILENCE_FOR), index=1, key="silence_for")
        if cols[3].button("Silence", icon=":material/notifications_off:", key="silence_add"):
            until = now + timedelta(hours=SILENCE_FOR[period])
            A.add_silence(store, rule, None if key == EVERY else key, until)
            st.rerun()
    active = [s for s in state.silences if float(s.get("until") or 0) > now.timestamp()]
    for i, s in enumerate(active):
        cols = st.columns([5, 1])
        shown = {
            "rule": s.get("rule"),
            "agent / mode": s.get("key") or EVERY,
            "until": when(c, s.get("until")),
        }
        cols[0].dataframe(pd.DataFrame([shown]), hide_index=True, width="stretch")
        if cols[1].button("End", key=f"unsilence-{i}"):
            A.remove_silence(store, str(s.get("rule")), s.get("key"))
            st.rerun()


def transitions(c: P.Ctx, state: A.AlertState) -> None:
    st.subheader("Last 100 transitions", anchor=False)
    history = list(reversed(state.history[-100:]))
    if not history:
        st.caption("No transitions yet.")
        return
    metric_of = {str(r.get("name")): str(r.get("metric")) for r in state.rules}

    def fmt(h: dict, field: str) -> str:
        metric = metric_of.get(str(h.get("rule")))
        return A.format_value(metric, h.get(field)) if metric else str(h.get(field))

    table = {
        "at": [when(c, h.get("at")) for h in history],
        "rule": [h.get("rule") for h in history],
        "agent / mode": [h.get("key") or "" for h in history],
        "from": [h.get("from_state") for h in history],
        "to": [h.get("to_state") for h in history],
        "value": [fmt(h, "value") for h in history],
        "threshold": [fmt(h, "threshold") for h in history],
        "silenced": ["yes" if h.get("silenced") else "" for h in history],
    }
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch")


def failed_deliveries(c: P.Ctx, state: A.AlertState) -> None:
    st.subheader("Failed deliveries", anchor=False)
    failed = [d for d in reversed(state.deliveries) if not d.get("ok")]
    delivered = sum(1 for d in state.deliveries if d.get("ok"))
    st.caption(deliveries_line(delivered, len(state.deliveries)))
    if not failed:
        if state.deliveries:
            st.caption("None failed.")
        return
    table = {
        "at": [when(c, d.get("at")) for d in failed],
        "to": [d.get("target") for d in failed],
        "rule": [d.get("rule") for d in failed],
        "agent / mode": [d.get("key") or "" for d in failed],
        "notice": [d.get("status") for d in failed],
        "attempts": [d.get("attempts") for d in failed],
        "error": [d.get("error") for d in failed],
    }
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch")
