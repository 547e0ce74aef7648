"""Modes: share of cycles per mode (overall, per agent), duration, tool calls, mix over time.

Sections: ``ui/sections/modes.py``.
"""

from o11y_data.query import queries as q
from ui import page as P
from ui.sections import modes as S


def body(c: P.Ctx) -> None:
    P.title("Modes", c)
    bd = P.load(q.mode_breakdown, c.filters, what="modes")
    if bd is None:
        return
    if bd.empty:
        P.no_data()
        return
    S.shares(c, bd)
    S.durations_and_tools(c, bd)
    S.mix_over_time(c)
    S.by_mode_table(bd)


P.live(body)
