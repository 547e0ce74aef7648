"""Alerts: every rule's state with its current value and threshold, the last 100 transitions,
failed deliveries, and silences.

The rules are evaluated after every sync (the app's background syncer, ``python -m o11y_data
watch`` or ``alerts``); this page reads the state they share in the store. Agent names only ever
appear inside tables and select boxes (plain text), never in Markdown.

Sections: ``ui/sections/alerts.py``.
"""

from datetime import UTC, datetime

import streamlit as st

from o11y_data import alerts as A
from ui import page as P
from ui.sections import alerts as S


def body(c: P.Ctx) -> None:
    st.header("Alerts", anchor=False)
    state = A.read_state(c.settings.store_dir)
    now = datetime.now(UTC)
    S.header(c, state, now)
    S.rules_table(c, state, now, S.show_choice())
    S.silences(c, state, now)
    S.transitions(c, state)
    S.failed_deliveries(c, state)


P.live(body)
