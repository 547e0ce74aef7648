"""Sections of ``pages/sql.py`` (the scheme: ``ui/sections/__init__.py``): what the console
reads, the query from the link (``?q=``), examples, the editor, the result and recent queries.
Running, caps and the recent list: ``ui/sql_console.py``."""

import streamlit as st

from o11y_data import O11yError
from o11y_data.query import sandbox as sb
from ui import autochart
from ui import data as D
from ui import page as P
from ui import sql_console as S

K_TEXT = "sql_text"
K_APPLIED = "_sql_applied"  # the query from the link last put into the box


def _set_query(sql: str) -> None:
    sql = sql.strip()
    if sql:
        st.query_params["q"] = sql
    elif "q" in st.query_params:
        del st.query_params["q"]


def _submitted() -> None:
    _set_query(st.session_state.get(K_TEXT) or "")


def intro() -> None:
    st.caption(
        "One read-only SELECT (DuckDB SQL) over the views `events`, `cycles`, `unparseable`, "
        "`freshness`, the rollups `hourly`, `daily`, `duration_hist`, `lag_hist`, "
        "`duration_hist_month`, `lag_hist_month`, `lag_hist_net`, and "
        "`filtered_events`, `filtered_cycles`, which follow the sidebar filters. "
        f"Times are UTC. Stopped after {sb.DEFAULT_TIMEOUT_S:g} s; the screen shows up to "
        f"{sb.DISPLAY_ROWS:,} rows, the CSV up to {sb.DOWNLOAD_ROWS:,}. The query is kept in the "
        "link, so a question can be shared."
    )


def link_query() -> str:
    """The link's query (empty if too long, with an error), put into the box when it changes."""
    sql = (st.query_params.get("q") or "").strip()
    if len(sql) > sb.MAX_SQL_CHARS:
        st.error(
            f"The query in the link is {len(sql):,} characters long; the limit is "
            f"{sb.MAX_SQL_CHARS:,}. It was not run.",
            icon=":material/error:",
        )
        sql = ""
    # The link's query fills the box when it changes (a new link, an example, a run), not on
    # every refresh, so text being typed is not overwritten.
    if st.session_state.get(K_APPLIED) != sql:
        st.session_state[K_TEXT] = sql
        st.session_state[K_APPLIED] = sql
    return sql


def examples(sql: str) -> None:
    with st.expander("Examples", expanded=not sql, icon=":material/lightbulb:"):
        cols = st.columns(4)
        for i, ex in enumerate(S.EXAMPLES):
            cols[i % 4].button(
                ex.title, key=f"sql_ex_{i}", on_click=_set_query, args=(ex.sql,), width="stretch"
            )


def editor() -> None:
    with st.form("sql_form", border=False):
        st.text_area(
            "SQL",
            key=K_TEXT,
            height=170,
            max_chars=sb.MAX_SQL_CHARS,
            placeholder=S.EXAMPLES[0].sql,
        )
        st.form_submit_button(
            "Run", type="primary", icon=":material/play_arrow:", on_click=_submitted
        )


def run(c: P.Ctx, sql: str) -> S.Shown | None:
    """The query's rows for the screen; a failure shows one line and gives None."""
    if not sql:
        return None
    try:
        with st.spinner("Running…"):
            return S.run_for_screen(sql, c.filters)
    except O11yError as exc:
        st.error(P.md_escape(exc.one_line()), icon=":material/block:")
    except Exception as exc:  # never a traceback on screen
        st.error(
            f"Query failed: unexpected {type(exc).__name__}: {P.md_escape(str(exc))[:200]}",
            icon=":material/error:",
        )
    return None


def result(c: P.Ctx, sql: str, shown: S.Shown) -> None:
    """What came back, its CSV, the rows and a chart when one fits."""
    S.remember(sql)
    df = shown.df
    n = len(df)
    note = f"{n:,} rows in {shown.elapsed_s:.2f} s"
    if shown.truncated:
        note = (
            f"Showing the first {n:,} rows; the query returned more. "
            f"The CSV holds up to {sb.DOWNLOAD_ROWS:,}."
        )
    st.caption(note)
    db, f = D.get_db(), c.filters
    st.download_button(
        f"CSV (up to {sb.DOWNLOAD_ROWS:,} rows)" if shown.truncated else f"CSV ({n:,} rows)",
        data=lambda: S.download_csv(db, sql, f),
        file_name="query.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
    )
    if n:
        st.dataframe(df, hide_index=True, width="stretch", height=min(460, 38 + 35 * n))
        fig = autochart.auto_chart(df)
        if fig is not None:
            P.chart(fig, key="sql_chart", controls=False)
    else:
        st.info("The query returned no rows.", icon=":material/search_off:")


def recent_queries(sql: str) -> None:
    """The session's recent queries other than this one, each a button that runs it again."""
    past = [q for q in S.recent() if q != sql]
    if not past:
        return
    st.subheader("Recent queries", anchor=False)
    for i, q in enumerate(past):
        st.button(
            P.md_escape(S.one_line(q)),
            key=f"sql_recent_{i}",
            on_click=_set_query,
            args=(q,),
            icon=":material/history:",
        )
