"""Sections of ``pages/errors.py`` (the scheme: ``ui/sections/__init__.py``): the error tiles,
rate and errors per cycle over time, the top erroring agents, and recent error cycles."""

import json

import streamlit as st

from o11y_data.query import queries as q
from ui import figures as FG
from ui import fmt
from ui import page as P
from ui import view as V


def tiles(tot: q.Totals) -> None:
    cycles = tot.cycles
    error_cycles = round((tot.error_rate or 0) * cycles)
    cols = st.columns(4)
    cols[0].metric(
        "Error rate",
        fmt.fmt_pct(tot.error_rate),
        border=True,
        help="Cycles with errors > 0 ÷ cycles.",
    )
    cols[1].metric("Cycles with errors", fmt.fmt_int(error_cycles), border=True)
    cols[2].metric("Errors", fmt.fmt_int(tot.errors), border=True, help="Sum of errors.")
    cols[3].metric(
        "Errors per cycle", f"{tot.errors / cycles:.3f}", border=True, help="Errors ÷ cycles."
    )


def rates_over_time(c: P.Ctx) -> None:
    """The split and top pickers, then error rate and errors per cycle over time, side by side."""
    left, right = st.columns([1, 1])
    with left:
        split = P.split_picker()
    with right:
        top = P.top_picker() if split == "agent" else V.TOP_DEFAULT
    start, end = P.window(c)
    ranked_by = {"top": top, "rank_by": "errors"} if split == "agent" else {}
    # A rate needs cycles in its buckets: the width is chosen from the data, starting from the
    # chart's usual one (the narrowest whose median bucket holds FG.RATE_MIN_CYCLES cycles).
    b0 = P.bucket_s(c, points=80)
    ert = P.load(
        q.error_rate_over_time, c.filters, by=split, bucket_s=b0, **ranked_by, what="error rate"
    )
    if ert is None:
        return
    b = FG.rate_bucket_s(ert, base_s=b0, start=start, end=end, widths=q.BUCKET_WIDTHS)
    if b != b0:
        ert = P.load(
            q.error_rate_over_time, c.filters, by=split, bucket_s=b, **ranked_by, what="error rate"
        )
        if ert is None:
            return
    # Per agent, each chart takes the full width: a legend of a dozen names beside a half-width
    # plot leaves the lines no room.
    left, right = st.columns(2) if split == "mode" else (st.container(), st.container())
    for col, metric, key in (
        (left, "error_rate", "er_rate"),
        (right, "errors_per_cycle", "er_per_cycle"),
    ):
        with col:
            P.chart(
                FG.rate_over_time(
                    ert,
                    metric=metric,
                    by=split,
                    labels=c.labels,
                    tz=c.tz,
                    bucket_s=b,
                    start=start,
                    end=end,
                ),
                key=key,
            )
    ranked = (
        f" Agents: the top {top} by errors named, the {FG.MAX_COLORED} with most errors in "
        "colour, the rest grey and summed as “others”."
        if split == "agent"
        else ""
    )
    st.caption(
        f"Buckets of {fmt.bucket_label(b)}, the narrowest in which the median bucket holds "
        f"{FG.RATE_MIN_CYCLES} cycles or more; a grey ring is a bucket of under "
        f"{FG.THIN_CYCLES} cycles (too few to judge), a dotted end the current, partial bucket; "
        f"a bucket without cycles has no rate (the line breaks); times in "
        f"{P.md_escape(c.tz)}.{ranked}"
    )


def top_agents(c: P.Ctx) -> None:
    found = P.load(q.top_error_agents, c.filters, limit=10, what="top erroring agents")
    if found is None:
        return
    if found.empty:
        st.success(
            "No agent had cycles with errors for these filters.", icon=":material/check_circle:"
        )
    else:
        P.chart(FG.top_error_agents(found, labels=c.labels), key="er_top")


def recent_errors(c: P.Ctx) -> None:
    """The 50 newest cycles with errors; the selected one's raw event below."""
    st.subheader("Most recent cycles with errors", anchor=False)
    recent = P.load(q.recent_errors, c.filters, limit=50, what="recent errors")
    if recent is None or recent.empty:
        return
    st.caption("Select a row to see its raw event.")
    sel = st.dataframe(
        {
            f"Time ({c.tz})": c.local(recent["ts"]),
            "Agent": c.agent_links(recent["agent"]),
            "Mode": recent["mode"],
            "Errors": recent["errors"],
            "Duration s": recent["duration_ms"] / 1000,
            "Tool calls": recent["tool_calls"],
            "DID": recent["agent"],
        },
        hide_index=True,
        width="stretch",
        key="er_recent",
        on_select="rerun",
        selection_mode="single-row",
        column_config={
            f"Time ({c.tz})": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss.SSS"),
            "Agent": P.agent_link_column(),
            "Duration s": st.column_config.NumberColumn(format="%.1f"),
        },
    )
    rows = list(getattr(getattr(sel, "selection", None), "rows", []) or [])
    i = rows[0] if rows else 0
    row = recent.iloc[i]
    st.markdown(f"**Raw event** — {P.md_escape(c.ts(row['ts']))}, {P.md_escape(row['agent'])}")
    try:
        st.json(json.loads(row["raw"]), expanded=True)
    except (TypeError, ValueError):
        st.code(str(row["raw"]))
