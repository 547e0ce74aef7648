"""Activity timeline: cycles over time per agent, every cycle on a time axis, a heatmap, silence.

Charts name the top N agents (``?top=``) and sum the rest into "others"; the every-cycle view is
drawn for a few agents only, or for one agent picked here (``?dot=``).

Sections: ``ui/sections/timeline.py``.
"""

import streamlit as st

from o11y_data.query import queries as q
from ui import figures as FG
from ui import page as P
from ui.sections import timeline as S


def body(c: P.Ctx) -> None:
    P.title("Activity timeline", c)
    with st.columns([1, 3])[0]:
        top = P.top_picker()
    b = P.bucket_s(c)
    lb = P.bucket_s(c, points=80)  # one line per agent: coarser, so the lines stay readable
    start, end = P.window(c)
    cot = P.load(q.cycles_over_time, c.filters, by="agent", bucket_s=b, top=top, what="activity")
    lines = P.load(q.cycles_over_time, c.filters, by="agent", bucket_s=lb, top=top, what="activity")
    # Wider still when an agent's buckets would mostly hold a cycle or two (a line of 0s and 1s).
    wide = FG.rate_bucket_s(
        lines,
        base_s=lb,
        start=start,
        end=end,
        widths=q.BUCKET_WIDTHS,
        min_cycles=FG.LINE_MIN_CYCLES,
        min_buckets=FG.LINE_MIN_BUCKETS,
    )
    if lines is not None and wide != lb:
        lb = wide
        lines = P.load(
            q.cycles_over_time, c.filters, by="agent", bucket_s=lb, top=top, what="activity"
        )
    if cot is None:
        return
    if cot.empty:
        P.no_data()
        return
    n_agents = P.agents_in(cot)
    S.caption(c, n_agents=n_agents, top=top, b=b, lb=lb)
    S.lines_chart(c, cot, lines, b=b, lb=lb, start=start, end=end)
    # Drawn as density, the every-cycle view is the heatmap of these agents already.
    if not S.dots(c, S.dot_filters(c, n_agents), start=start, end=end, b=b):
        P.chart(
            FG.heatmap(cot, labels=c.labels, bucket_s=b, start=start, end=end, tz=c.tz),
            key="tl_heat",
        )
    S.quiet_agents(c, end)


P.live(body)
