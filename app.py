"""The observability dashboard: `streamlit run app.py` (or `make run`).

Builds the navigation from explicit pages, starts the one background syncer, and draws the shared
sidebar filters (kept in the URL) and the freshness bar before running the selected page. The wall
page hides all chrome, so nothing is drawn around it.
"""

from pathlib import Path

import streamlit as st

from o11y_data import O11yError, routes
from ui import access
from ui import data as D
from ui import page as P

# A file of our own, served by the app: a Material icon here would make every page load ask an
# outside font host for the tab's icon (a request that fails on a closed network and tells a third
# party when the dashboard is open).
FAVICON = Path(__file__).resolve().parent / "ui" / "assets" / "favicon.png"

st.set_page_config(
    page_title="Agent network · o11y",
    page_icon=str(FAVICON),
    layout="wide",
)

PAGES = [
    st.Page(r.script, title=r.title, icon=r.icon, url_path=r.path, default=r.default)
    for r in routes.ROUTES
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

is_wall = pg.url_path == routes.WALL.path
P.ensure_first_sync(syncer, quiet=is_wall)
if not is_wall:
    P.setup(settings, syncer, page=pg.url_path)
pg.run()
if not is_wall:
    P.finish(settings, syncer)
