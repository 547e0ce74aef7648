"""Summary: the seed's agent x mode table (the team's first question) with error rate and
percentiles, under the shared filters; the same numbers as ``python -m o11y_data summary``.

Sections: ``ui/sections/summary.py``.
"""

from o11y_data.query import queries as q
from ui import page as P
from ui.sections import summary as S


def body(c: P.Ctx) -> None:
    P.title("Summary", c)
    df = P.load(q.summary, c.filters, extended=True, what="the summary")
    if df is None:
        return
    if df.empty:
        P.no_data()
        return
    S.caption(df)
    S.downloads(df)
    S.table(c, df)


P.live(body)
