"""Sections of ``pages/timeline.py`` (the scheme: ``ui/sections/__init__.py``): cycles over time
per agent, every cycle as a dot, the heatmap, and who went quiet."""

from dataclasses import replace
from datetime import datetime

import pandas as pd
import streamlit as st

from o11y_data.query import queries as q
from o11y_data.query.queries import Filters
from ui import figures as FG
from ui import fmt, tables
from ui import page as P
from ui import view as V

POINTS = 20000


def caption(c: P.Ctx, *, n_agents: int, top: int, b: int, lb: int) -> None:
    named = min(top, n_agents)
    st.caption(
        f"{fmt.plural(n_agents, 'agent')}; the top {named} by cycles are named (the "
        f"{min(FG.MAX_COLORED, named)} busiest in colour, the rest grey), the others summed as "
        f"“others”. Lines in buckets of {fmt.bucket_label(lb)} (a dotted end: the current, "
        f"partial bucket), heatmap in {fmt.bucket_label(b)}; times in {P.md_escape(c.tz)}."
    )


def lines_chart(
    c: P.Ctx,
    cot: pd.DataFrame,
    lines: pd.DataFrame | None,
    *,
    b: int,
    lb: int,
    start: datetime | None,
    end: datetime | None,
) -> None:
    """One line per agent in the coarser buckets ``lb`` (``cot`` in ``b`` if those failed)."""
    P.chart(
        FG.cycles_over_time(
            lines if lines is not None else cot,
            by="agent",
            labels=c.labels,
            bucket=fmt.bucket_label(lb if lines is not None else b),
            title="Cycles over time per agent",
            tz=c.tz,
            bucket_s=lb if lines is not None else b,
            start=start,
            end=end,
        ),
        key="tl_lines",
    )


def dot_filters(c: P.Ctx, n_agents: int) -> Filters | None:
    """The filters for the every-cycle view: these, or one picked agent's when they hold too many
    agents (None until one is picked)."""
    if n_agents <= V.DOTS_MAX_AGENTS:
        return c.filters
    known = (P.load(q.choices, what="agents") or {}).get("agent", [])
    pool = list(c.state.agents) or [a for a in known if a != "unknown"]
    st.info(
        f"Every cycle is drawn for up to {V.DOTS_MAX_AGENTS} agents; these filters hold "
        f"{fmt.fmt_int(n_agents)}. Pick one agent to see its cycles, or narrow the agents in "
        "the sidebar.",
        icon=":material/scatter_plot:",
    )
    with st.columns([2, 3])[0]:
        dot = P.agent_picker(c, pool, label="Every cycle of")
    return replace(c.filters, agents=(dot,)) if dot else None


def dots(
    c: P.Ctx, f: Filters | None, *, start: datetime | None, end: datetime | None, b: int
) -> bool:
    """Every cycle as a dot while the dots stand apart, else as density (``b`` per cell).
    Whether it drew the density of every cycle under the page's own filters (then the page's
    heatmap would only repeat it)."""
    if f is None:
        return False
    pts = P.load(q.cycle_points, f, limit=POINTS, what="cycles")
    if pts is None:
        return False
    P.chart(
        FG.agent_strip(pts, labels=c.labels, tz=c.tz, start=start, end=end, bucket_s=b),
        key="tl_strip",
    )
    dense = FG.strip_is_dense(pts, start=start, end=end)
    if dense:
        note = (
            f"Density: {fmt.plural(len(pts), 'cycle')} are too many for a dot each at this "
            f"range (the dots would pile up), so each cell counts the cycles in "
            f"{fmt.bucket_label(b)}, darker for more; hover a cell for its mode mix and "
            "errors. A shorter range shows every cycle as a dot."
        )
    else:
        note = (
            "A dot per cycle: color = mode (the rarer modes drawn on top), red ring = cycle "
            "with errors; hover for its duration and tool calls."
        )
    if len(pts) >= POINTS:
        note += f" Showing the newest {POINTS:,} cycles; narrow the range to see all."
    st.caption(note)
    return dense and f == c.filters and len(pts) < POINTS


def quiet_agents(c: P.Ctx, end: datetime | None) -> None:
    st.subheader("Who went quiet", anchor=False)
    last = P.load(q.agent_last_seen, c.filters, what="last seen")
    if last is None or last.empty:
        return
    ref = min(c.now, end) if end is not None else c.now
    quiet = tables.silent_agents(last, ref)
    n_silent = int(quiet["silent"].sum())
    if n_silent:
        st.warning(
            f"{fmt.plural(n_silent, 'agent')} silent for more than 15 minutes.",
            icon=":material/snooze:",
        )
    st.dataframe(
        {
            "Agent": c.agent_links(quiet["agent"]),
            f"Last cycle ({c.tz})": c.local(quiet["last_ts"]),
            "Silent for": [fmt.fmt_age(s).replace(" ago", "") for s in quiet["silent_s"]],
            "Status": ["silent" if s else "active" for s in quiet["silent"]],
            "Last mode": quiet["last_mode"],
            "Cycles (all time)": quiet["cycles"],
            "DID": quiet["agent"],
        },
        hide_index=True,
        width="stretch",
        column_config={
            "Agent": P.agent_link_column(),
            f"Last cycle ({c.tz})": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
        },
    )
