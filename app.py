"""The observability dashboard: `streamlit run app.py` (or `make run`).

Builds the navigation from explicit pages, starts the one background syncer, and draws the shared
sidebar filters (kept in the URL) and the freshness bar before running the selected page. The wall
page hides all chrome, so nothing is drawn around it.
"""

import streamlit as st

from o11y_data import O11yError
from ui import access
from ui import data as D
from ui import page as P

st.set_page_config(
    page_title="Agent network · o11y",
    page_icon=":material/monitoring:",
    layout="wide",
)

PAGES = [
    st.Page(
        "pages/overview.py",
        title="Overview",
        icon=":material/dashboard:",
        url_path="overview",
        default=True,
    ),
    st.Page(
        "pages/timeline.py",
        title="Activity timeline",
        icon=":material/timeline:",
        url_path="timeline",
    ),
    st.Page("pages/modes.py", title="Modes", icon=":material/donut_small:", url_path="modes"),
    st.Page("pages/errors.py", title="Errors", icon=":material/error:", url_path="errors"),
    st.Page(
        "pages/health.py",
        title="Pipeline health",
        icon=":material/monitor_heart:",
        url_path="health",
    ),
    st.Page(
        "pages/explorer.py", title="Explorer", icon=":material/table_view:", url_path="explorer"
    ),
    st.Page("pages/summary.py", title="Summary", icon=":material/summarize:", url_path="summary"),
    st.Page("pages/sql.py", title="SQL console", icon=":material/terminal:", url_path="sql"),
    st.Page(
        "pages/alerts.py",
        title="Alerts",
        icon=":material/notifications:",
        url_path="alerts",
    ),
    st.Page("pages/wall.py", title="Wall", icon=":material/tv:", url_path="wall"),
]

pg = st.navigation(PAGES)
# Sign-in (when configured) before anything touches data; the wall may use its own token.
access.gate(pg.url_path)

try:
    settings = D.get_settings()
    syncer = D.get_syncer()
except O11yError as exc:
    st.error(f"The data source is not configured correctly: {P.md_escape(exc.one_line())}")
    st.stop()

is_wall = pg.url_path == "wall"
P.ensure_first_sync(syncer, quiet=is_wall)
if not is_wall:
    P.setup(settings, syncer)
pg.run()
if not is_wall:
    P.finish(settings, syncer)
