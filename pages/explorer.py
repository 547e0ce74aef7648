"""Explorer: the filtered events as a sortable table, a text search, a row's JSON, downloads.

Sections: ``ui/sections/explorer.py``.
"""

import time

from o11y_data.query import queries as q
from ui import page as P
from ui.sections import explorer as S


def body(c: P.Ctx) -> None:
    P.title("Explorer", c)
    search = S.search_box()
    answer = S.beyond_horizon(c, search)
    if answer is not None:  # the newest events reach before the raw horizon: the engine's
        if answer.frame.empty:
            P.no_data("these filters and search")
            return
        S.engine_caption(answer)
        S.selected_json(c, answer.frame, S.events_table(c, answer.frame))
        return
    n = P.load(q.count_events, c.filters, search=search, what="the event count")
    if n is None:
        return
    if n == 0:
        P.no_data("these filters and search")
        return
    t0 = time.perf_counter()
    df = P.load(q.events_table, c.filters, search=search, limit=S.SHOWN, what="events")
    if df is None:
        return
    S.caption(n, len(df))
    S.source_caption(time.perf_counter() - t0)
    S.downloads(c, n, search)
    S.selected_json(c, df, S.events_table(c, df))


P.live(body)
