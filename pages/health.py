"""Pipeline health: is data landing? Newest event, last file, rate, lag, bad rows, sync status.

Sections: ``ui/sections/health.py``.
"""

import streamlit as st

from ui import data as D
from ui import page as P
from ui.sections import health as S


def body(c: P.Ctx) -> None:
    P.title("Pipeline health", c)
    syncer = D.get_syncer()
    fr = P.freshness() or {}
    hours = S.hours(c)
    S.tiles(c, fr, hours)
    left, right = st.columns(2)
    with left:
        S.events_per_hour(c, hours)
    with right:
        S.ingest_lag(c)
    S.sync_table(c, fr, syncer)
    S.files_set_aside()
    S.sync_now(syncer)


P.live(body)
