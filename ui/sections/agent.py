"""Sections of ``pages/agent.py`` (the scheme: ``ui/sections/__init__.py``): one agent's story.

The agent comes from the URL (``?agent=``, the shared filters' own parameter, so every page the
user moves to stays on it). Its state is judged by the wall's own rules (``ui.wall_logic``, with the
wall's configured defaults): the page and the wall never disagree. Every number is a question of
``o11y_data.query.queries`` (the planner's metrics); agent names are data, escaped wherever shown.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from o11y_data import alerts as A
from o11y_data import routes
from o11y_data.durations import format_span
from o11y_data.query import queries as q
from o11y_data.query.queries import Filters, Totals
from ui import agents as AG
from ui import data as D
from ui import figures as FG
from ui import filters as F
from ui import fmt, tables
from ui import page as P
from ui.safe import md_text
from ui.wall_logic import (
    AgentStats,
    Health,
    Tile,
    WallConfig,
    assess,
    build_tiles,
    config_defaults,
    window_bounds,
)

BADGE = {"healthy": "green", "degraded": "orange", "stale": "orange", "down": "red"}
NOTICE_CLIP = 60  # a URL value quoted in a notice
LIMIT = 20  # recent cycles with errors shown


# -- which agent -------------------------------------------------------------------------------


def link(c: P.Ctx, route: routes.Route, agent: str, **extra: str) -> str:
    """A relative link to ``route`` for ``agent`` that keeps the other filters."""
    keep = {k: v for k, v in c.params.items() if k != "agent"}
    return tables.page_url(route.path, keep, agent=agent, **extra)


def resolve(c: P.Ctx) -> str | None:
    """The one agent the URL names; otherwise a one-line notice (when the link named an agent the
    data does not hold, with the nearest known ones) and the picker, and None."""
    if len(c.state.agents) == 1:
        return c.state.agents[0]
    if c.state.unknown_agents:
        unknown_notice(c, c.state.unknown_agents[0])
    elif c.state.agents:
        st.info(
            f"The filters name {len(c.state.agents)} agents; an agent's page shows one: pick it.",
            icon=":material/smart_toy:",
        )
    picker(c, c.state.agents)
    return None


def unknown_notice(c: P.Ctx, raw: str) -> None:
    known = (P.load(q.choices, what="agents") or {}).get("agent", [])
    near = AG.nearest(raw, known, c.names)
    links = ", ".join(
        f"[{P.md_escape(tables.agent_cell(d, c.names))}]({link(c, routes.AGENT, d)})" for d in near
    )
    st.warning(
        f"No agent “{md_text(raw, NOTICE_CLIP)}” in the data."
        + (f" Nearest: {links}." if near else " Pick one below."),
        icon=":material/link_off:",
    )


def wall_config(c: P.Ctx) -> WallConfig:
    """The wall's thresholds as its URL-less link has them (``O11Y_WALL_*``)."""
    cfg, _ = config_defaults(dict(c.settings.wall_defaults))
    return cfg


def judged_at(c: P.Ctx, cfg: WallConfig) -> Health:
    """The wall's freshness judgement: the moment its states are judged at (None: no data)."""
    fresh = D.with_sync_state(P.freshness(), D.get_syncer().state) or {}
    floor = int(2 * c.settings.sync_interval_s + 30)  # as the wall: slow syncs are not stale
    return assess(fresh, c.now, replace(cfg, fresh_s=max(cfg.fresh_s, floor)))


def states(c: P.Ctx, cfg: WallConfig, at: datetime, agents: tuple[str, ...]) -> list[Tile] | None:
    """Tiles as the wall builds them, worst first: ``agents`` (ever seen), or every agent the wall
    shows (seen within its horizon)."""
    # Whole minutes, as the pages' own windows (ui.filters.ceil_minute), not the wall's 10 s: the
    # warmer (ui/warm.py) moves a call whose window ends at its minute, so the overview's states
    # are ready after a sync.
    start, end = window_bounds(at, cfg, step_s=60)
    seen_for = None if agents else timedelta(seconds=max(cfg.horizon_s, cfg.window_s))
    f = Filters(start, end, agents=agents)
    df = P.load(q.wall_agents, f, seen_for=seen_for, buckets=1, what="states")
    if df is None:
        return None
    stats = {
        str(r.agent): AgentStats(
            agent=str(r.agent),
            last_ts=fmt.as_utc(r.last_ts),
            cycles=int(r.cycles),
            error_cycles=int(r.error_cycles),
            errors=int(r.errors),
            p95_ms=None if fmt.missing(r.p95_ms) else float(r.p95_ms),
        )
        for r in df.itertuples(index=False)
        if r.agent != AG.UNKNOWN_AGENT
    }
    for a in agents:  # named but never seen: down, as on the wall
        stats.setdefault(a, AgentStats(a, None))
    alerting = A.firing_by_agent(alert_state(c))
    return build_tiles(stats.values(), at, replace(cfg, sort="status"), c.names, alerting)


def alert_state(c: P.Ctx) -> A.AlertState:
    try:
        return A.read_state(c.settings.store_dir)
    except Exception:  # a damaged state file must not take the page down; the cause is logged
        import logging

        logging.getLogger(__name__).exception("agent page: cannot read the alert state")
        return A.AlertState()


GOTO = "_ag_goto"


def _go(key: str, dids: list[str]) -> None:
    """A selected row: remember its agent (the page opens it after the table is drawn)."""
    rows = st.session_state[key].selection.rows
    if rows:
        st.session_state[GOTO] = dids[rows[0]]


def picker(c: P.Ctx, among: tuple[str, ...] = (), *, troubled_only: bool = False) -> None:
    """Every agent the wall shows (or ``among``), worst first; a row opens its page. With
    ``troubled_only`` (the overview), only the agents that are not healthy, or one line saying
    every agent is."""
    title = "Agents needing attention" if troubled_only else "Agents, worst first"
    st.subheader(title, anchor=False)
    cfg = wall_config(c)
    health = judged_at(c, cfg)
    if health.at is None:
        st.info(P.md_escape(health.banner or "No data yet."), icon=":material/hourglass_top:")
        return
    tiles = states(c, cfg, health.at, among)
    if not tiles:
        P.no_data("any agent")
        return
    if troubled_only:
        everyone = len(tiles)
        tiles = [t for t in tiles if t.status != "healthy"]
        if not tiles:
            st.success(
                f"All {fmt.plural(everyone, 'agent')} healthy, as the wall judges them "
                f"({rule_text(cfg)}).",
                icon=":material/check_circle:",
            )
            return
    win = format_span(cfg.window_s)
    st.caption(
        f"Judged as the wall judges them ({rule_text(cfg)}). Select a row, or click a name, to "
        "open the agent's page."
    )
    dids = [t.agent for t in tiles]
    table = pd.DataFrame(
        {
            "Agent": tables.agent_links(dids, c.names, c.params),
            "State": [t.status for t in tiles],
            "Last cycle": [fmt.fmt_age(t.age_s) for t in tiles],
            f"Cycles ({win})": [t.cycles for t in tiles],
            # Text cells: Streamlit draws a missing number as "None"; an agent with no cycle in
            # the window has neither, shown as the wall shows it ("—").
            "Error rate": [fmt.format_rate(t.error_rate) for t in tiles],
            "p95": [fmt.fmt_ms(t.p95_ms, empty=fmt.DASH) for t in tiles],
            "Alert firing": [t.alert or "" for t in tiles],
        }
    )
    key = "ov_attention" if troubled_only else "ag_pick"
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(table), 720),  # a dozen agents at a glance, thousands scroll
        key=key,
        on_select=lambda: _go(key, dids),
        selection_mode="single-row",
        column_config={
            "Agent": P.agent_link_column(width="large"),
        },
    )
    goto = st.session_state.pop(GOTO, None)
    if goto:  # a whole run (the table may sit in a refreshing fragment), the filters kept
        st.switch_page(routes.AGENT.script, query_params={**c.params, "agent": goto})


# -- the agent -------------------------------------------------------------------------------


def header(c: P.Ctx, agent: str) -> None:
    """The agent's name, its DID, the filters, and the other pages filtered to it."""
    st.header(P.md_escape(tables.agent_cell(agent, c.names)), anchor=False)
    pages = (routes.TIMELINE, routes.ERRORS, routes.MODES, routes.EXPLORER)
    others = " · ".join(f"[{r.title}]({link(c, r, agent)})" for r in pages)
    scope = F.describe(replace(c.state, agents=()))  # the agent is the title
    st.caption(f"{P.md_escape(agent)} · {P.md_escape(scope)} · {others}")


def rule_text(cfg: WallConfig) -> str:
    return (
        f"last {format_span(cfg.window_s)}; degraded at ≥ {cfg.err:.0%} of cycles with errors, "
        f"stale after {format_span(cfg.stale_s)} and down after {format_span(cfg.down_s)} "
        "without a cycle; an alert firing for it makes it at least degraded"
    )


def state(c: P.Ctx, agent: str) -> None:
    """Its state as on the wall: the status, how long since its last cycle, the window's
    numbers, the alert firing for it."""
    cfg = wall_config(c)
    health = judged_at(c, cfg)
    if health.at is None:
        st.info(P.md_escape(health.banner or "No data yet."), icon=":material/hourglass_top:")
        return
    tiles = states(c, cfg, health.at, (agent,))
    if not tiles:
        return
    t = tiles[0]
    win = format_span(cfg.window_s)
    asof = "" if health.current else f" (as of {fmt.fmt_ts(health.at, c.tz)})"
    alert = f" · :red[alert firing: {P.md_escape(t.alert)}]" if t.alert else ""
    numbers = (
        f"last {win}: {t.cycles:,} cycle{'' if t.cycles == 1 else 's'}, error rate "
        f"{fmt.format_rate(t.error_rate)}, p95 {fmt.fmt_ms(t.p95_ms, empty=fmt.DASH)}"
        if t.cycles
        else f"no cycle in the last {win}"
    )
    st.markdown(
        f":{BADGE[t.status]}-badge[{t.status.upper()}] **last cycle {fmt.fmt_age(t.age_s)}**"
        f"{asof} · {numbers}{alert}"
    )
    st.caption(f"As on the wall: {rule_text(cfg)}.")


def totals(c: P.Ctx, f: Filters) -> tuple[Totals | None, Totals | None]:
    cur = P.load(q.totals, f, what="totals")
    prev_f = f.previous()
    prev = P.load(q.totals, prev_f, what="the previous period") if prev_f else None
    return cur, prev


def tiles(c: P.Ctx, cur: Totals, prev: Totals | None) -> None:
    """Cycles, error rate, errors and p50/p95/p99 against the previous period."""
    approx = cur.p95_approx

    def was(name: str) -> Any:
        return getattr(prev, name) if prev is not None else None

    shown = [
        ("Cycles", fmt.fmt_int(cur.cycles), fmt.change(cur.cycles, was("cycles"))),
        (
            "Error rate",
            fmt.fmt_pct(cur.error_rate),
            fmt.change(cur.error_rate, was("error_rate"), kind="points"),
        ),
        ("Errors", fmt.fmt_int(cur.errors), fmt.change(cur.errors, was("errors"))),
        *(
            (
                f"p{n} duration",
                fmt.approx(fmt.fmt_ms(getattr(cur, f"p{n}_ms")), approx),
                fmt.change(getattr(cur, f"p{n}_ms"), was(f"p{n}_ms")),
            )
            for n in (50, 95, 99)
        ),
    ]
    for col, (label, value, delta) in zip(st.columns(len(shown)), shown, strict=True):
        good = "normal" if label == "Cycles" else "inverse"
        col.metric(label, value, delta=delta, border=True, **fmt.delta_look(delta, good))
    vs = f"the previous {c.state.range}" if c.state.range not in ("custom", "all") else None
    st.caption(
        f"Changes against {vs or 'the previous period of the same length'}"
        + ("; ≈ within 1 %, from daily histograms." if approx else ".")
    )


def activity(c: P.Ctx, f: Filters) -> None:
    """Cycles by mode (stacked) beside the error rate, over time."""
    start, end = P.window(c)
    b = P.bucket_s(c, points=80)  # one agent's cycles: coarse buckets, so rates mean something
    left, right = st.columns(2)
    with left:
        cot = P.load(q.cycles_over_time, f, by="mode", bucket_s=b, what="activity")
        if cot is not None:
            fig = FG.cycles_over_time(
                cot, by="mode", bucket=fmt.bucket_label(b), title="Cycles by mode", tz=c.tz,
                bucket_s=b, start=start, end=end,
            )  # fmt: skip
            P.chart(fig, key="ag_cycles")
    with right:
        ert = P.load(q.error_rate_over_time, f, by=None, bucket_s=b, what="error rate")
        if ert is not None:
            ert = ert.assign(key="all cycles")
            fig = FG.rate_over_time(
                ert, metric="error_rate", by="mode", title="Error rate", tz=c.tz, bucket_s=b,
                start=start, end=end,
            )  # fmt: skip
            fig.update_layout(showlegend=False)
            P.chart(fig, key="ag_rate")
    st.caption(
        f"Buckets of {fmt.bucket_label(b)} (the error rate's hover says of how many cycles); "
        f"times in {P.md_escape(c.tz)}."
    )


def durations(c: P.Ctx, f: Filters) -> None:
    """p50/p95/p99 of cycle duration per mode, with the mode's share and error rate."""
    st.subheader("Durations by mode", anchor=False)
    modes = P.load(q.mode_breakdown, f, what="durations")
    if modes is None or modes.empty:
        return
    mark = "≈ " if bool(modes["approx"].any()) else ""
    table = pd.DataFrame(
        {
            "Mode": modes["mode"],
            "Cycles": modes["cycles"],
            "Share %": modes["share"] * 100,
            f"{mark}p50 s": modes["p50_ms"] / 1000,
            f"{mark}p95 s": modes["p95_ms"] / 1000,
            f"{mark}p99 s": modes["p99_ms"] / 1000,
            "Tools per cycle": modes["avg_tools"],
            "Error rate %": modes["error_rate"] * 100,
        }
    )
    number = {col: st.column_config.NumberColumn(format="%.1f") for col in table.columns[3:6]}
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            **number,
            "Share %": st.column_config.NumberColumn(format="%.0f%%"),
            "Tools per cycle": st.column_config.NumberColumn(format="%.2f"),
            "Error rate %": st.column_config.NumberColumn(format="%.1f%%"),
        },
    )


def silences(c: P.Ctx, f: Filters) -> None:
    """Gaps without a cycle much longer than the agent's usual cadence (queries.silences)."""
    st.subheader("Silences", anchor=False)
    found = P.load(q.silences, Filters(f.start, f.end, f.agents), what="silences")
    if found is None:
        return
    if found.cadence_s is None or found.threshold_s is None:
        st.caption(
            f"Fewer than {q.CADENCE_MIN_GAPS + 1} cycles in the "
            f"{format_span(q.CADENCE_BASELINE.total_seconds())} before the range's end: no usual "
            "cadence to judge its gaps against."
        )
        return
    rule = (
        f"Its usual cadence: a cycle every {format_span(found.cadence_s)} (the median gap over "
        f"the {format_span(q.CADENCE_BASELINE.total_seconds())} before the range's end). A "
        f"silence is a gap over {q.SILENCE_FACTOR}× that and at least "
        f"{format_span(q.SILENCE_MIN_S)}: here over {format_span(found.threshold_s)}."
    )
    if not found.gaps:
        st.caption(f"No silence in this range. {rule}")
        return
    more = f" (the newest {len(found.gaps)} shown)" if found.count > len(found.gaps) else ""
    st.caption(f"{found.count:,} silence{'' if found.count == 1 else 's'}{more}. {rule}")
    st.dataframe(
        pd.DataFrame(
            {
                f"From ({c.tz})": c.local([g.start for g in found.gaps]),
                f"To ({c.tz})": c.local([g.end or found.until for g in found.gaps]),
                "Length": [format_span(g.seconds) for g in found.gaps],
                "Ongoing": ["still silent" if g.end is None else "" for g in found.gaps],
            }
        ),
        hide_index=True,
        width="stretch",
        column_config={
            f"From ({c.tz})": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
            f"To ({c.tz})": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
        },
    )


def alerts(c: P.Ctx, agent: str) -> None:
    """Every agent rule as it stands for this agent (the alerts page's states)."""
    st.subheader("Alerts", anchor=False)
    rows = A.agent_alerts(alert_state(c), agent, c.now.timestamp())
    if not rows:
        st.caption("No alert rule watches agents one by one.")
        return
    when = [c.ts(datetime.fromtimestamp(r.since, UTC)) if r.since else "" for r in rows]
    st.dataframe(
        pd.DataFrame(
            {
                "Alert": [r.title for r in rows],
                "State": [r.state + (" (silenced)" if r.silenced else "") for r in rows],
                "Value": [value_text(r) for r in rows],
                "Threshold": [
                    f"{r.comparison} {A.format_value(r.metric, r.threshold)}" for r in rows
                ],
                "Window": [format_span(r.window_s) if r.window_s else "" for r in rows],
                "Since": when,
                "Severity": [r.severity for r in rows],
            }
        ),
        hide_index=True,
        width="stretch",
    )
    st.caption(f"Every rule, its silences and history: [Alerts]({routes.ALERTS.path}).")


def value_text(a: A.AgentAlert) -> str:
    """The rule's last value for the agent, or why there is none."""
    if a.reason:
        return a.reason
    if a.value is None and a.state in ("ok", A.NOT_WATCHED):
        return ""  # ok keys keep no value (the alerts page shows the nearest)
    return A.format_value(a.metric, a.value)


def recent_errors(c: P.Ctx, f: Filters) -> None:
    """Its newest cycles with errors; the selected one's raw event below."""
    st.subheader("Recent cycles with errors", anchor=False)
    recent = P.load(q.recent_errors, f, limit=LIMIT, what="recent errors")
    if recent is None:
        return
    explorer = link(c, routes.EXPLORER, f.agents[0], errors="1")
    if recent.empty:
        st.caption("None in this range.")
        return
    shown = f"The newest {len(recent)}" if len(recent) == LIMIT else f"{len(recent)} in this range"
    st.caption(f"{shown}; select one for its raw event. All: [Explorer]({explorer}).")
    sel = st.dataframe(
        {
            f"Time ({c.tz})": c.local(recent["ts"]),
            "Mode": recent["mode"],
            "Errors": recent["errors"],
            "Duration s": recent["duration_ms"] / 1000,
            "Tool calls": recent["tool_calls"],
        },
        hide_index=True,
        width="stretch",
        key="ag_recent",
        on_select="rerun",
        selection_mode="single-row",
        column_config={
            f"Time ({c.tz})": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
            "Duration s": st.column_config.NumberColumn(format="%.1f"),
        },
    )
    rows = list(getattr(getattr(sel, "selection", None), "rows", []) or [])
    row = recent.iloc[rows[0] if rows else 0]
    with st.expander(f"Raw event, {P.md_escape(c.ts(row['ts']))}", expanded=bool(rows)):
        try:
            st.json(json.loads(row["raw"]), expanded=True)
        except (TypeError, ValueError):
            st.code(str(row["raw"]))
