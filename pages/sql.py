"""SQL console: a read-only DuckDB SELECT over the store's views, kept in the URL (``?q=``).

Sections: ``ui/sections/sql.py``.
"""

import streamlit as st

from ui import page as P
from ui.sections import sql as S


def body(c: P.Ctx) -> None:
    P.title("SQL console", c)
    S.intro()
    sql = S.link_query()
    left, right = st.columns([3, 2])
    with left:
        S.examples(sql)
        S.editor()
    with right:
        S.view_columns()
    shown = S.run(c, sql)
    if shown is not None:
        S.result(c, sql, shown)
    S.recent_queries(sql)


P.live(body)
