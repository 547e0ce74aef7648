"""Agent: one agent's story. Its state as on the wall, cycles by mode and error rate over time,
durations, silences, its alerts and its newest failing cycles, against the previous period.

``/agent?agent=<DID>`` (any page's agent names link here); with no agent, or one the data does not
hold, the agents worst first (and the nearest names). Sections: ``ui/sections/agent.py``.
"""

from dataclasses import replace

from ui import page as P
from ui.sections import agent as S


def body(c: P.Ctx) -> None:
    agent = S.resolve(c)
    if agent is None:
        return
    f = replace(c.filters, agents=(agent,))
    S.header(c, agent)
    S.state(c, agent)
    cur, prev = S.totals(c, f)
    if cur is None:
        return
    if not cur.cycles:
        P.no_data("this agent in this range")
        S.silences(c, f)
        S.alerts(c, agent)
        return
    S.tiles(c, cur, prev)
    S.activity(c, f)
    S.durations(c, f)
    S.silences(c, f)
    S.alerts(c, agent)
    S.recent_errors(c, f)


P.live(body)
