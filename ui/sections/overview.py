"""Sections of ``pages/overview.py`` (the scheme: ``ui/sections/__init__.py``): the headline
tiles against the previous period, activity by mode with events by type, and the agents table."""

from functools import partial
from typing import Any

import streamlit as st

from o11y_data import routes
from o11y_data.query import queries as q
from o11y_data.query.queries import Totals
from ui import figures as FG
from ui import filters as F
from ui import fmt, tables
from ui import page as P


def totals(c: P.Ctx) -> tuple[Totals | None, Totals | None]:
    """This window's totals and the previous period's (None when a load failed or none is)."""
    cur = P.load(q.totals, c.filters, what="totals")
    prev_f = c.filters.previous()
    prev = P.load(q.totals, prev_f, what="the previous period") if prev_f else None
    return cur, prev


def tiles(c: P.Ctx, cur: Totals, prev: Totals | None) -> None:
    """Six headline tiles, each with its change against ``prev``."""
    cycles = cur.cycles
    shown = [
        (
            "Agents active",
            fmt.fmt_int(cur.agents),
            fmt.change(cur.agents, prev.agents if prev else None),
            "normal",
            "Distinct agents with at least one cycle; events without an agent (unknown) are not "
            "an agent and are counted apart.",
        ),
        (
            "Cycles",
            fmt.fmt_int(cycles),
            fmt.change(cycles, prev.cycles if prev else None),
            "normal",
            "agent.cycle events.",
        ),
        (
            "Error rate",
            fmt.fmt_pct(cur.error_rate),
            fmt.change(cur.error_rate, prev.error_rate if prev else None, kind="points"),
            "inverse",
            "Cycles with errors > 0 ÷ cycles.",
        ),
        (
            "p95 duration",
            fmt.approx(fmt.fmt_ms(cur.p95_ms), cur.p95_approx),
            fmt.change(cur.p95_ms, prev.p95_ms if prev else None),
            "inverse",
            "95th percentile of durationMs.",
        ),
        (
            "p99 duration",
            fmt.approx(fmt.fmt_ms(cur.p99_ms), cur.p95_approx),
            fmt.change(cur.p99_ms, prev.p99_ms if prev else None),
            "inverse",
            "99th percentile of durationMs.",
        ),
        (
            "Tool calls",
            fmt.fmt_int(cur.tools),
            fmt.change(cur.tools, prev.tools if prev else None),
            "normal",
            "Sum of toolCalls.",
        ),
    ]
    for col, (label, value, delta, color, help_) in zip(st.columns(len(shown)), shown, strict=True):
        # A change that rounds to zero (or none to compare with) shows no arrow and no color.
        col.metric(
            label, value, delta=delta, help=help_, border=True, **fmt.delta_look(delta, color)
        )


def durations_caption(c: P.Ctx, cur: Totals) -> None:
    """What the changes compare against, and the cycle duration percentiles."""
    if c.filters.previous() is None:
        vs = "No changes: an open range has no previous period to compare with."
    elif c.state.range in F.PRESETS:
        vs = f"Changes are against the previous {c.state.range}."
    else:
        vs = "Changes are against the previous period of the same length."
    approx = cur.p95_approx  # percentiles from rollups (planner.approximate)
    st.caption(
        f"{vs} Cycle duration "
        + ", ".join(
            f"p{n} {fmt.approx(fmt.fmt_ms(ms), approx)}"
            for n, ms in ((50, cur.p50_ms), (95, cur.p95_ms), (99, cur.p99_ms))
        )
        + ("; ≈ within 1 %, from daily histograms." if approx else ".")
    )


def activity(c: P.Ctx) -> None:
    """Cycles over time by mode (left) beside events by type (right)."""
    b = P.bucket_s(c)
    start, end = P.window(c)
    left, right = st.columns([3, 1])
    with left:
        cot = P.load(q.cycles_over_time, c.filters, by="mode", bucket_s=b, what="activity")
        if cot is not None:
            P.chart(
                FG.cycles_over_time(
                    cot,
                    by="mode",
                    bucket=fmt.bucket_label(b),
                    title="Cycles over time by mode",
                    tz=c.tz,
                    bucket_s=b,
                    start=start,
                    end=end,
                ),
                key="ov_activity",
            )
    with right:
        types = P.load(q.event_type_counts, c.filters, what="event types")
        if types is not None and not types.empty:
            st.markdown("**Events by type**")
            st.dataframe(
                types.rename(columns={"event_type": "Event type", "events": "Events"}),
                hide_index=True,
                width="stretch",
            )


def _open(dids: list[str], key: str) -> None:
    """A selected row: remember its agent, and renew the table's key so the selection clears."""
    rows = st.session_state[key].selection.rows
    if rows:
        st.session_state["_ov_goto"] = dids[rows[0]]
        st.session_state["_ov_nonce"] = st.session_state.get("_ov_nonce", 0) + 1


def _agent_columns(c: P.Ctx, table: Any) -> dict[str, Any]:
    return {
        "Agent": P.agent_link_column(width="medium"),
        "Timeline": st.column_config.LinkColumn(display_text="timeline →"),
        "Cycles": st.column_config.NumberColumn(format="%d"),
        "Error rate %": st.column_config.NumberColumn(
            "Error %", format="%.1f%%", help="Error rate: cycles with errors > 0 ÷ cycles"
        ),
        # "≈ p50 s" etc. when the percentiles come from rollups (a window over 7 days)
        **{
            col: st.column_config.NumberColumn(format="%.1f")
            for col in table.columns
            if col.endswith(("p50 s", "p95 s", "p99 s"))
        },
        "Avg tools": st.column_config.NumberColumn(
            "Tools/cycle", format="%.2f", help="Average tool calls per cycle"
        ),
        # Shares as short numbers (not bars) so every column fits at 1440 px.
        "think %": st.column_config.NumberColumn("think", format="%.0f%%"),
        "reflection %": st.column_config.NumberColumn(
            "reflect.", format="%.0f%%", help="reflection"
        ),
        "housekeeping %": st.column_config.NumberColumn(
            "housek.", format="%.0f%%", help="housekeeping"
        ),
        tables.last_seen_column(c.tz): st.column_config.DatetimeColumn(format="MM-DD HH:mm:ss"),
        "DID": None,  # in the Agent column unless the agent has a friendly name
    }


def agents(c: P.Ctx) -> None:
    """The agents table; selecting a row opens that agent's page with these filters."""
    st.subheader("Agents", anchor=False)
    st.caption(
        "Select a row (or click its name) to open that agent's page with these filters; its "
        "timeline link opens its timeline."
    )
    found = P.load(q.agent_overview, c.filters, what="agents")
    if found is None or found.empty:
        return
    table = tables.agent_table(found, c.names, c.params, tz=c.tz)
    nonce = st.session_state.setdefault("_ov_nonce", 0)
    key = f"ov_agents_{nonce}"
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        key=key,
        on_select=partial(_open, list(found["agent"]), key),
        selection_mode="single-row",
        column_config=_agent_columns(c, table),
    )
    goto = st.session_state.pop("_ov_goto", None)
    if goto:
        page = routes.EXPLORER if goto == tables.UNKNOWN else routes.AGENT
        st.switch_page(page.script, query_params={**c.params, "agent": goto})
