"""Activity timeline: cycles over time per agent, every cycle on a time axis, a heatmap, silence.

Charts name the top N agents (``?top=``) and sum the rest into "others"; the every-cycle view is
drawn for a few agents only, or for one agent picked here (``?dot=``).
"""

from dataclasses import replace

import streamlit as st

from o11y_data.query import queries as q
from ui import figures as FG
from ui import fmt, tables
from ui import page as P
from ui import view as V

POINTS = 20000


def body(c: P.Ctx) -> None:
    P.title("Activity timeline", c)

    with st.columns([1, 3])[0]:
        top = P.top_picker()
    b = P.bucket_s(c)
    lb = P.bucket_s(c, points=80)  # one line per agent: coarser, so the lines stay readable
    start, end = P.window(c)
    cot = P.load(q.cycles_over_time, c.filters, by="agent", bucket_s=b, top=top, what="activity")
    lines = P.load(q.cycles_over_time, c.filters, by="agent", bucket_s=lb, top=top, what="activity")
    if cot is None:
        return
    if cot.empty:
        P.no_data()
        return

    n_agents = P.agents_in(cot)
    st.caption(
        f"{fmt.fmt_int(n_agents)} agents; the top {min(top, n_agents)} by cycles are named, "
        f"the rest summed as “others”. Lines in buckets of {fmt.bucket_label(lb)}, heatmap in "
        f"{fmt.bucket_label(b)}; times in {P.md_escape(c.tz)}."
    )
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

    # Every cycle as a dot: readable for a few agents only.
    dot_filters = c.filters
    if n_agents > V.DOTS_MAX_AGENTS:
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
        dot_filters = replace(c.filters, agents=(dot,)) if dot else None
    if dot_filters is not None:
        pts = P.load(q.cycle_points, dot_filters, limit=POINTS, what="cycles")
        if pts is not None:
            P.chart(
                FG.agent_strip(pts, labels=c.labels, tz=c.tz, start=start, end=end), key="tl_strip"
            )
            note = "Dot color = mode, dot size = duration, red ring = cycle with errors."
            if len(pts) >= POINTS:
                note += f" Showing the newest {POINTS:,} cycles; narrow the range to see all."
            st.caption(note)

    P.chart(
        FG.heatmap(cot, labels=c.labels, bucket_s=b, start=start, end=end, tz=c.tz),
        key="tl_heat",
    )

    st.subheader("Who went quiet", anchor=False)
    last = P.load(q.agent_last_seen, c.filters, what="last seen")
    if last is not None and not last.empty:
        ref = min(c.now, end) if end is not None else c.now
        quiet = tables.silent_agents(last, ref)
        n_silent = int(quiet["silent"].sum())
        if n_silent:
            st.warning(
                f"{n_silent} agent(s) silent for more than 15 minutes.", icon=":material/snooze:"
            )
        st.dataframe(
            {
                "Agent": [c.label(a) for a in quiet["agent"]],
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
                f"Last cycle ({c.tz})": st.column_config.DatetimeColumn(
                    format="YYYY-MM-DD HH:mm:ss"
                )
            },
        )


P.live(body)
