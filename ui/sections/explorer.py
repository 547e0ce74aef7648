"""Sections of ``pages/explorer.py`` (the scheme: ``ui/sections/__init__.py``): the search box
(kept in ``?q=``), the count, the downloads, the events table and the selected row's JSON."""

import json

import pandas as pd
import streamlit as st

from o11y_data.errors import O11yError
from o11y_data.query.engines.base import Answer, NewestRows
from o11y_data.query.route import LOCAL, BeforeHorizon
from ui import data as D
from ui import export, fmt
from ui import page as P

SHOWN = 5000
K_SEARCH = "x_search"
EXPORT_HELP = (
    "Every matching event. Timestamps (ts, ingest_ts) are in UTC (ISO 8601), whatever time zone "
    "the page shows."
)


def _search_changed() -> None:
    text = (st.session_state.get(K_SEARCH) or "").strip()[:200]
    if text:
        st.query_params["q"] = text
    elif "q" in st.query_params:
        del st.query_params["q"]


def search_box() -> str:
    """The search text: the link's ``?q=`` (at most 200 characters), edited in a text box."""
    search = (st.query_params.get("q") or "").strip()
    if len(search) > 200:
        st.warning("The search in the link was longer than 200 characters; it was shortened.")
        search = search[:200]
    st.session_state[K_SEARCH] = search
    st.text_input(
        "Search agent and raw JSON",
        key=K_SEARCH,
        on_change=_search_changed,
        placeholder='e.g. a DID fragment, reflection, "errors":2',
        help="Case-insensitive substring match on the agent and the raw event JSON.",
    )
    return search


def beyond_horizon(c: P.Ctx, search: str) -> Answer | None:
    """The engine's answer when the newest matching events reach before the raw horizon (None:
    the local store answers). With no engine, or a failing one, one line says so and None is
    returned: the page then shows the events since the horizon under that line."""
    question = NewestRows(c.filters, limit=SHOWN, search=search)
    router = D.get_router()
    try:
        if not router.needs_engine(question):
            return None
        return router.ask(question)
    except BeforeHorizon as exc:
        st.warning(
            f"Older events are {P.md_escape(exc.detail)}. Below: the events since then.",
            icon=":material/history:",
        )
    except O11yError as exc:
        st.error(
            f"Could not ask for older events: {P.md_escape(exc.one_line())}",
            icon=":material/error:",
        )
    return None


def source_caption(seconds: float) -> None:
    """Where the rows came from and how long it took ("from local store in 0.02 s")."""
    st.caption(P.md_escape(Answer(pd.DataFrame(), LOCAL, seconds).caption()))


def engine_caption(answer: Answer) -> None:
    """An engine's answer: how many rows, from where; counts and downloads are the store's."""
    raw_from = D.get_db().raw_from()
    since = f" since {raw_from:%Y-%m-%d %H:%M} UTC" if raw_from else ""
    st.caption(
        f"The newest {len(answer.frame):,} matching events, {P.md_escape(answer.caption())}. "
        f"Counts and downloads cover the local store's events{since}."
    )


def caption(n: int, shown: int) -> None:
    st.caption(
        f"{fmt.fmt_int(n)} matching events"
        + (f"; the table shows the newest {shown:,} (downloads have all)." if n > shown else ".")
        + " Click a column header to sort; select a row to see its full JSON."
    )


def downloads(c: P.Ctx, n: int, search: str) -> None:
    """Every matching event as CSV or Parquet."""
    db, f = D.get_db(), c.filters
    # A row sized to its buttons (columns would cut "CSV (1,000,000 rows)" at 1440 px).
    buttons = st.container(horizontal=True)
    buttons.download_button(
        f"CSV ({n:,} rows)",
        data=lambda: export.download(db, f, search, fmt="csv"),
        file_name="events.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
        help=EXPORT_HELP,
    )
    buttons.download_button(
        f"Parquet ({n:,} rows)",
        data=lambda: export.download(db, f, search, fmt="parquet"),
        file_name="events.parquet",
        mime="application/vnd.apache.parquet",
        icon=":material/download:",
        on_click="ignore",
        help=EXPORT_HELP,
    )


def events_table(c: P.Ctx, df: pd.DataFrame) -> list[int]:
    """The events shown; returns the selected rows."""
    table = {
        f"Time ({c.tz})": c.local(df["ts"]),
        f"Ingested ({c.tz})": c.local(df["ingest_ts"]),
        "Type": df["event_type"],
        "Agent": c.agent_links(df["agent"]),
        "Mode": df["mode"],
        "Duration ms": df["duration_ms"],
        "Tool calls": df["tool_calls"],
        "Errors": df["errors"],
        "DID": df["agent"],
        "Raw": df["raw"],
    }
    sel = st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        height=460,
        key="x_table",
        on_select="rerun",
        selection_mode="single-row",
        column_config={
            f"Time ({c.tz})": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss.SSS"),
            f"Ingested ({c.tz})": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
            "Agent": P.agent_link_column(),
            "Raw": st.column_config.TextColumn(width="large"),
        },
    )
    return list(getattr(getattr(sel, "selection", None), "rows", []) or [])


def selected_json(c: P.Ctx, df: pd.DataFrame, rows: list[int]) -> None:
    """The selected row's whole event, or a hint to select one."""
    if rows and rows[0] < len(df):
        row = df.iloc[rows[0]]
        st.markdown(f"**Event** — {P.md_escape(c.ts(row['ts']))}, {P.md_escape(row['event_type'])}")
        try:
            st.json(json.loads(row["raw"]), expanded=True)
        except (TypeError, ValueError):
            st.code(str(row["raw"]))
    else:
        st.caption("Select a row to see its full JSON here.")
