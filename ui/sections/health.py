"""Sections of ``pages/health.py`` (the scheme: ``ui/sections/__init__.py``): the freshness tiles,
events per hour and ingest lag, the sync table, files set aside, and the Sync now button."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from o11y_data.background import BackgroundSyncer
from o11y_data.errors import O11yError
from o11y_data.ingest import ranges
from o11y_data.query import queries as q
from o11y_data.query import route
from o11y_data.query.queries import Filters
from ui import data as D
from ui import figures as FG
from ui import filters as F
from ui import fmt, tables
from ui import page as P

log = logging.getLogger(__name__)

LEVEL_TEXT = {
    "ok": ":green-badge[on time]",
    "amber": ":orange-badge[late]",
    "red": ":red-badge[stale]",
}


@dataclass(frozen=True)
class Hours:
    """Events in the last hour and per hour since ``start``, with the usual full hour."""

    end: datetime  # now, up to the next whole minute
    n_hour: int | None
    start: datetime
    hourly: pd.DataFrame | None
    usual: float | None


def hours(c: P.Ctx) -> Hours:
    f, now = c.filters, c.now
    end = F.ceil_minute(now)
    last_hour = Filters(
        end - timedelta(hours=1), end, f.agents, f.modes, f.event_types, f.errors_only
    )
    n_hour = P.load(q.count_events, last_hour, what="events in the last hour")
    # At least a day of hours, so "usual" means something even for a 15-minute view.
    h_start = (
        end - timedelta(days=7)
        if f.start is None
        else min(f.start, (f.end or end) - timedelta(hours=24))
    )
    hourly_f = Filters(h_start, f.end or end, f.agents, f.modes, f.event_types, f.errors_only)
    hourly = P.load(q.events_per_hour, hourly_f, what="events per hour")
    usual = tables.usual_hourly(hourly, now) if hourly is not None else None
    return Hours(end, n_hour, h_start, hourly, usual)


def _age_tile(c: P.Ctx, label: str, ts: Any, help_: str) -> None:
    age = fmt.age_s(ts, c.now)
    st.metric(label, fmt.fmt_age(age) if age is not None else fmt.NO_DATA, help=help_, border=True)
    st.markdown(f"{LEVEL_TEXT[fmt.newest_event_level(age)]} {P.md_escape(c.ts(ts))}")


def tiles(c: P.Ctx, fr: dict[str, Any], h: Hours) -> None:
    """Newest event, last file landed, events in the last hour, unparseable rows, live files."""
    cols = st.columns(5)
    with cols[0]:
        _age_tile(c, "Newest event", fr.get("newest_ts"), "Newest event time (ts) in the cache.")
    with cols[1]:
        _age_tile(
            c,
            "Last file landed",
            fr.get("newest_ingest_ts"),
            "Newest __ingest_ts: when the pipeline last wrote rows.",
        )
    with cols[2]:
        n_hour, usual = h.n_hour, h.usual
        delta = fmt.change(n_hour, usual) if n_hour is not None and usual else None
        st.metric(
            "Events, last hour",
            fmt.fmt_int(n_hour) if n_hour else fmt.NO_DATA,
            delta=delta,
            delta_description="vs usual hour" if delta else None,
            **fmt.delta_look(delta),
            help="Events of every type with ts in the last 60 minutes; usual = median full hour "
            "in the chart below.",
            border=True,
        )
        st.caption(f"Usual: {fmt.fmt_int(usual)} per hour" if usual else "Usual: not enough data")
    with cols[3]:
        st.metric(
            "Unparseable rows",
            fmt.fmt_int(fr.get("unparseable")),
            border=True,
            help="Rows whose value is not a JSON object: left out of every metric.",
        )
        st.caption("Left out of every metric (docs/events.md).")
        # Values outside the contract's ranges: the event counts, that value is left empty.
        for line in ranges.describe(fr.get("out_of_range") or {}):
            st.caption(P.md_escape(line))
    with cols[4]:
        st.metric(
            "Live files",
            fmt.fmt_int(fr.get("files")),
            border=True,
            help="Files of the current snapshot in the cache.",
        )
        st.caption(f"{fmt.fmt_int(fr.get('rows'))} rows · generation {fr.get('generation')}")


def events_per_hour(c: P.Ctx, h: Hours) -> None:
    if h.hourly is None:
        return
    f = c.filters
    P.chart(
        FG.events_per_hour(h.hourly, usual=h.usual, tz=c.tz, start=h.start, end=f.end or h.end),
        key="hl_hourly",
    )
    h_local = h.start.astimezone(c.state.zone)
    st.caption(
        f"From {h_local:%Y-%m-%d %H:%M} {P.md_escape(c.tz)}; all event types matching the "
        "filters. A hatched, pale bar is the current hour, still filling up (partial)."
    )


def ingest_lag(c: P.Ctx) -> None:
    b = P.bucket_s(c, points=80)
    w_start, w_end = P.window(c)
    lag = P.load(q.ingest_lag_over_time, c.filters, bucket_s=b, what="ingest lag")
    if lag is None:
        return
    P.chart(FG.ingest_lag(lag, tz=c.tz, bucket_s=b, start=w_start, end=w_end), key="hl_lag")
    approx = "approx" in lag and bool(lag["approx"].any())
    what = fmt.approx("p50, p95 and p99", approx)
    note = " (from daily histograms, within 1 %)" if approx else ""
    st.caption(
        f"{what} of ingest_ts − ts per {fmt.bucket_label(b)}{note}; a bucket without "
        "events has no lag (the lines break)."
    )


def sync_table(c: P.Ctx, fr: dict[str, Any], syncer: BackgroundSyncer) -> None:
    """The sync's source, status, times, snapshot and last error; the error again, in red."""
    st.subheader("Sync", anchor=False)
    state = syncer.state
    err = P.sync_error(fr, syncer)
    t_sync = P.last_sync_time(fr, syncer)
    status = "syncing" if state.running or fr.get("syncing") else ("failing" if err else "idle")
    rows = {
        "Source": c.settings.source_label,
        "Status": status,
        "Last successful sync": f"{c.ts(t_sync)} ({fmt.fmt_age(fmt.age_s(t_sync, c.now))})",
        "Last attempt": c.ts(fr.get("last_attempt_at")),
        "Sync interval": f"{c.settings.sync_interval_s:.0f} s",
        "Snapshot": str(fr.get("snapshot_id") or "none (plain folder of Parquet files)"),
        "Unreadable files set aside": fmt.fmt_int(fr.get("bad_files") or 0),
        "Raw rows": _raw_rows(c),
        "Engine": route.engine_line(c.settings),
        "Last error": err or "none",
    }
    st.dataframe(
        {"": list(rows), "Value": [str(v) for v in rows.values()]}, hide_index=True, width="stretch"
    )
    if err:
        st.error(f"Last sync failed: {P.md_escape(err)}", icon=":material/sync_problem:")


def _raw_rows(c: P.Ctx) -> str:
    """Where the store's raw rows begin (the raw horizon), or one line saying it is unknown."""
    try:
        raw_from = D.get_db().raw_from()
    except O11yError as exc:
        log.info("reading the raw horizon failed: %s", exc.one_line(), exc_info=exc)
        return f"unknown: {exc.one_line()}"
    return route.raw_rows_line(raw_from, c.settings.raw_horizon_s)


def files_set_aside() -> None:
    set_aside = P.load(q.set_aside_files, what="files set aside")
    if set_aside is None or not len(set_aside):
        return
    st.subheader("Files set aside", anchor=False)
    st.caption(
        "Unreadable at the source after two downloads; left out of every number until a later "
        "copy reads. Each is downloaded afresh and tried again at its next retry."
    )
    # A dataframe shows cell values as plain text: file names from the bucket stay inert.
    st.dataframe(
        set_aside,
        hide_index=True,
        width="stretch",
        column_config={
            "file": st.column_config.TextColumn("File"),
            "reason": st.column_config.TextColumn("Reason"),
            "tries": st.column_config.NumberColumn("Tries"),
            "set_aside_at": st.column_config.DatetimeColumn("Set aside (UTC)"),
            "next_retry_at": st.column_config.DatetimeColumn("Next retry (UTC)"),
        },
    )


def _sync_now() -> None:
    st.session_state["_sync_requested"] = D.sync_now()


@st.fragment(run_every=1.0)
def _progress() -> None:
    s = D.get_syncer().state
    prog = s.progress
    if s.running:
        if prog and prog[2]:
            st.progress(min(1.0, prog[1] / prog[2]), text=f"{prog[0]}: {prog[1]}/{prog[2]}")
        else:
            st.progress(0.0, text="Syncing: listing the source…")
        st.session_state["_sync_seen_running"] = True
    elif st.session_state.pop("_sync_seen_running", False):
        st.session_state.pop("_sync_requested", None)
        st.rerun()


def sync_now(syncer: BackgroundSyncer) -> None:
    """The Sync now button, and the sync's progress while there is one to follow."""
    st.button("Sync now", icon=":material/sync:", on_click=_sync_now, type="primary")
    if st.session_state.get("_sync_requested"):
        st.caption("Sync requested; progress shows below and the page refreshes when it is done.")
    # Followed each second only while there is a sync to follow: an idle page (a TV left on
    # this page for weeks) would otherwise run a fragment and send a message every second.
    if syncer.state.running or st.session_state.get("_sync_requested"):
        _progress()
