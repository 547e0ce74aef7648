"""Sections of ``pages/modes.py`` (the scheme: ``ui/sections/__init__.py``): shares of cycles per
mode, durations and tool calls, the mix over time, and the table by mode."""

import pandas as pd
import streamlit as st

from o11y_data.query import queries as q
from ui import figures as FG
from ui import fmt
from ui import page as P

POINTS = 20000


def shares(c: P.Ctx, bd: pd.DataFrame) -> None:
    """The share of cycles per mode overall (left) and per agent, top N named (right)."""
    left, right = st.columns([1, 2])
    with left:
        P.chart(FG.mode_share(bd), key="md_share")
    with right:
        top = P.top_picker()
        bda = P.load(q.mode_breakdown, c.filters, by_agent=True, top=top, what="modes per agent")
        if bda is not None:
            P.chart(FG.mode_share_by_agent(bda, labels=c.labels), key="md_share_agent")


def durations_and_tools(c: P.Ctx, bd: pd.DataFrame) -> None:
    """A box plot of durations by mode (left) beside tool calls by mode (right)."""
    left, right = st.columns(2)
    with left:
        pts = P.load(q.cycle_points, c.filters, limit=POINTS, what="durations")
        if pts is not None:
            P.chart(FG.duration_by_mode(pts), key="md_duration")
            if len(pts) >= POINTS:
                st.caption(f"Box plot of the newest {POINTS:,} cycles; the table below counts all.")
    with right:
        P.chart(FG.tools_by_mode(bd), key="md_tools")


def mix_over_time(c: P.Ctx) -> None:
    b = P.bucket_s(c)
    start, end = P.window(c)
    mix = P.load(q.cycles_over_time, c.filters, by="mode", bucket_s=b, what="mode mix")
    if mix is not None:
        P.chart(FG.mode_mix_over_time(mix, tz=c.tz, bucket_s=b, start=start, end=end), key="md_mix")
        st.caption(
            f"Buckets of {fmt.bucket_label(b)}; a bucket without cycles has no mix and is left "
            f"empty; times in {P.md_escape(c.tz)}."
        )


def by_mode_table(bd: pd.DataFrame) -> None:
    st.subheader("By mode", anchor=False)
    # Percentiles over more than 7 days come from rollups (within 1 %): their headings say "≈".
    approx = bool(bd["approx"].any()) if "approx" in bd else False
    p50, p95, p99 = (fmt.approx(f"p{n} s", approx) for n in (50, 95, 99))
    st.dataframe(
        {
            "Mode": bd["mode"],
            "Cycles": bd["cycles"],
            "Share %": bd["share"] * 100,
            "Avg s": bd["avg_ms"] / 1000,
            p50: bd["p50_ms"] / 1000,
            p95: bd["p95_ms"] / 1000,
            p99: bd["p99_ms"] / 1000,
            "Tool calls": bd["tools"],
            "Avg tools": bd["avg_tools"],
            "Error rate %": bd["error_rate"] * 100,
        },
        hide_index=True,
        width="stretch",
        column_config={
            "Share %": st.column_config.NumberColumn(format="%.1f%%"),
            "Avg s": st.column_config.NumberColumn(
                "Avg s per cycle", format="%.1f", help="Mean duration of a cycle"
            ),
            p50: st.column_config.NumberColumn(format="%.1f"),
            p95: st.column_config.NumberColumn(format="%.1f"),
            p99: st.column_config.NumberColumn(format="%.1f"),
            "Avg tools": st.column_config.NumberColumn(
                "Tool calls per cycle", format="%.2f", help="Mean tool calls of a cycle"
            ),
            "Error rate %": st.column_config.NumberColumn(format="%.1f%%"),
        },
    )
