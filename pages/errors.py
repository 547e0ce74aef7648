"""Errors: rate and errors per cycle over time by mode or agent, top agents, recent error cycles.

Sections: ``ui/sections/errors.py``.
"""

from o11y_data.query import queries as q
from ui import page as P
from ui.sections import errors as S


def body(c: P.Ctx) -> None:
    P.title("Errors", c)
    tot = P.load(q.totals, c.filters, what="totals")
    if tot is None:
        return
    if not tot.cycles:
        P.no_data()
        return
    S.tiles(tot)
    P.unknown_note(tot)
    S.rates_over_time(c)
    S.top_agents(c)
    S.recent_errors(c)


P.live(body)
