"""Sections of ``pages/summary.py`` (the scheme: ``ui/sections/__init__.py``): what the agent x
mode table holds, its downloads, and the table."""

import pandas as pd
import streamlit as st

from ui import export, fmt, tables
from ui import page as P


def caption(df: pd.DataFrame) -> None:
    approx = bool(df["approx"].any())
    st.caption(
        f"{len(df):,} agent × mode rows, {int(df['cycles'].sum()):,} cycles. Ordered by agent, "
        "then cycles (descending); click a column header to sort. avg_ms is the mean of known "
        "durations, rounded; error_rate is the share of cycles with errors; percentiles "
        "interpolate"
        + (
            "; ≈: over more than 7 days they come from daily histograms, within 1 %. "
            if approx
            else ". "
        )
        + "Downloads hold exactly this table."
    )


def downloads(df: pd.DataFrame) -> None:
    left, right, _ = st.columns([1, 1, 4])
    left.download_button(
        "CSV",
        data=export.table_csv(df),
        file_name="summary.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
    )
    right.download_button(
        "Parquet",
        data=export.table_parquet(df),
        file_name="summary.parquet",
        mime="application/vnd.apache.parquet",
        icon=":material/download:",
        on_click="ignore",
    )


def table(c: P.Ctx, df: pd.DataFrame) -> None:
    """The table as downloaded, each agent a link to its page (shown as its whole DID)."""
    approx = bool(df["approx"].any())

    def pct(name: str) -> st.column_config.NumberColumn:
        return st.column_config.NumberColumn(fmt.approx(name, approx), format="%.0f")

    # Agent names are untrusted text: a dataframe shows them as text, never as Markdown.
    shown = df.assign(agent=[tables.agent_link(a, c.params) for a in df["agent"]])
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        height=min(700, 38 + 35 * len(df)),
        key="summary_table",
        column_config={
            "agent": P.agent_link_column("agent", width="large"),
            "error_rate": st.column_config.NumberColumn("error_rate", format="percent"),
            "p50_ms": pct("p50_ms"),
            "p95_ms": pct("p95_ms"),
            "p99_ms": pct("p99_ms"),
        },
    )
