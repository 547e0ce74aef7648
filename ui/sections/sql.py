"""Sections of ``pages/sql.py`` (the scheme: ``ui/sections/__init__.py``): what the console
reads, the query from the link (``?q=``), examples, the editor, the result and recent queries.
Running, caps and the recent list: ``ui/sql_console.py``."""

import pandas as pd
import streamlit as st

from o11y_data import O11yError
from o11y_data.query import columns
from o11y_data.query import sandbox as sb
from o11y_data.query.route import console_notice
from ui import autochart
from ui import data as D
from ui import page as P
from ui import sql_console as S

K_TEXT = "sql_text"
K_APPLIED = "_sql_applied"  # the query from the link last put into the box
K_EMPTY_RUN = "_sql_empty_run"  # Run was pressed with nothing typed: say so once
EMPTY_RUN = (
    "Nothing to run: the box is empty. Type a query, or pick an example above "
    "(the grey text in the box is only a hint)."
)


def _set_query(sql: str) -> None:
    sql = sql.strip()
    if sql != (st.query_params.get("q") or "").strip():
        for name in autochart.PARAMS.values():  # another query: its own default chart
            if name in st.query_params:
                del st.query_params[name]
    if sql:
        st.query_params["q"] = sql
    elif "q" in st.query_params:
        del st.query_params["q"]


def _submitted() -> None:
    text = st.session_state.get(K_TEXT) or ""
    st.session_state[K_EMPTY_RUN] = not text.strip()
    _set_query(text)


def intro() -> None:
    st.caption(
        "One read-only SELECT (DuckDB SQL) over the views listed on the right; `filtered_events` "
        "and `filtered_cycles` follow the sidebar filters. Times are UTC. Stopped after "
        f"{sb.DEFAULT_TIMEOUT_S:g} s; the screen shows up to {sb.DISPLAY_ROWS:,} rows, the CSV up "
        f"to {sb.DOWNLOAD_ROWS:,}. The query and the chart are kept in the link, so a question "
        "can be shared."
    )


FIRST_VIEW = "filtered_cycles"  # the view most questions start from
COLUMNS_HEIGHT = 190


def view_columns() -> None:
    """A view's columns, their types and one line of meaning (o11y_data.query.columns)."""
    views = {v.name: v for v in columns.views()}
    names = list(views)
    picked = st.selectbox(
        "Views and their columns", names, index=names.index(FIRST_VIEW), key="sql_view"
    )
    view = views[picked]
    st.caption(P.md_escape(view.about))
    # Beside the editor, as tall as it: the list scrolls, the result below stays in sight.
    st.container(height=COLUMNS_HEIGHT, border=False).table(
        pd.DataFrame(
            [(c.name, c.type.replace("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"), c.meaning)
             for c in view.columns],
            columns=["column", "type", "meaning"],
        ).set_index("column")
    )  # fmt: skip


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
        if st.session_state.pop(K_EMPTY_RUN, False):
            st.info(EMPTY_RUN, icon=":material/edit_note:")
        return None
    horizon = console_notice(D.get_db(), sql)
    if horizon:  # events holds the horizon's rows only: never a silently short answer
        st.info(P.md_escape(horizon), icon=":material/history:")
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
        choice = chart_picker(df)
        fig = autochart.figure(df, choice, tz=c.tz)
        if fig is not None:
            P.chart(fig, key="sql_chart", controls=False)
        elif choice.kind != "none":
            st.caption("This result cannot be drawn that way; pick other columns.")
    else:
        st.info("The query returned no rows.", icon=":material/search_off:")


K_CHART = {field: f"sql_chart_{field}" for field in autochart.PARAMS}
CHART_RULE = (
    "Default chart: y is a column named like a rate (`rate`, `ratio`, `share`, `pct`, `_per_`), "
    "else the "
    "number the rows are sorted by, else the last number; lines only when the times are in "
    "order within each colour, else points."
)


def _picked() -> None:
    """A picker changed: the whole choice goes into the URL."""
    ss = st.session_state
    choice = autochart.Choice(
        kind=ss[K_CHART["kind"]],
        x=ss.get(K_CHART["x"]),
        y=ss.get(K_CHART["y"]),
        color=ss.get(K_CHART["color"]) or None,
    )
    for field, value in autochart.params_of(choice).items():
        st.query_params[autochart.PARAMS[field]] = value


def chart_picker(df: pd.DataFrame) -> autochart.Choice:
    """The chart's kind, x, y and colour: the URL's (checked; a wrong value is one line) or the
    result's default, shown in four boxes whose change goes into the URL."""
    given = {
        field: st.query_params[name]
        for field, name in autochart.PARAMS.items()
        if name in st.query_params
    }
    choice, notices = autochart.choice_from_params(df, given)
    for notice in notices:
        st.warning(P.md_escape(notice), icon=":material/link_off:")
    _, nums, _ = autochart.columns_by_kind(df)
    options = {
        "kind": list(autochart.KINDS),
        "x": [str(c) for c in df.columns],
        "y": [str(c) for c in nums],
        "color": [autochart.NO_COLOR, *autochart.colour_columns(df)],
    }
    values = {"kind": choice.kind, "x": choice.x, "y": choice.y, "color": choice.color or ""}
    labels = {"kind": "Chart", "x": "x", "y": "y", "color": "Colour"}
    boxes = st.columns([1, 2, 2, 2])
    for box, field in zip(boxes, autochart.PARAMS, strict=True):
        value = values[field]
        st.session_state[K_CHART[field]] = value if value in options[field] else None
        box.selectbox(
            labels[field],
            options[field],
            key=K_CHART[field],
            on_change=_picked,
            format_func=lambda v: "(none)" if v == autochart.NO_COLOR else v,
            disabled=field != "kind" and choice.kind == "none",
        )
    st.caption(CHART_RULE)
    return choice


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
