"""Overview: the headline numbers against the previous period, the agents needing attention,
activity by mode, and agents.

Sections: ``ui/sections/overview.py``.
"""

from ui import page as P
from ui.sections import agent as AG
from ui.sections import overview as S


def body(c: P.Ctx) -> None:
    P.title("Overview", c)
    cur, prev = S.totals(c)
    if cur is None:
        return
    if not cur.cycles:
        P.no_data()
        return
    S.tiles(c, cur, prev)
    S.durations_caption(c, cur)
    P.unknown_note(cur)
    AG.picker(c, troubled_only=True)  # which agent is in trouble: one click to its page
    S.activity(c)
    S.agents(c)


P.live(body)
