"""The floor: what any Streamlit page of our shape costs here, with no data at all.

``streamlit run bench/floor/app.py``: the same pages (URL paths, headings, navigation entries with
icons), each with the same sidebar widgets (filters, time zone list, refresh picker), freshness
badges, tiles, view pickers, plotly charts, tables and raw-event JSON as ours, the page body in a
refreshing fragment like ``ui.page.live``, filled with constants instead of queries.
``bench/speed.py`` and ``bench/pages_floor.py`` load each floor page beside the real one in the same
browser, in one run; the ratio real ÷ floor is what our data layer and figures add.
"""

from zoneinfo import available_timezones

import plotly.graph_objects as go
import streamlit as st

st.set_page_config(page_title="floor", page_icon=":material/monitoring:", layout="wide")


# url path -> (heading, icon, tiles, plotly charts, tables, view pickers, raw-event JSON), as
# pages/*.py draw them with the demo's data (timeline: one agent picker when there are too many
# agents for every cycle, not counted; errors: the top picker only when split by agent).
SHAPES = {
    "overview": ("Overview", "dashboard", 6, 1, 2, (), False),
    "timeline": ("Activity timeline", "timeline", 0, 3, 1, ("top",), False),
    "modes": ("Modes", "donut_small", 0, 5, 1, ("top",), False),
    "errors": ("Errors", "error", 4, 3, 1, ("split",), True),
    "health": ("Pipeline health", "monitor_heart", 5, 2, 1, (), False),
    "explorer": ("Explorer", "table_view", 0, 0, 1, (), True),
}
# The app's other pages: in the navigation, never measured.
OTHER = {
    "summary": ("Summary", "summarize"),
    "sql": ("SQL console", "terminal"),
    "alerts": ("Alerts", "notifications"),
    "wall": ("Wall", "tv"),
}
TABLE = {"Agent": ["a", "b", "c"], "Cycles": [1, 2, 3], "Error rate %": [0.0, 1.0, 2.0]}
ZONES = ["UTC", *sorted(available_timezones() - {"UTC"})]  # the app's list is this long
RAW = {"event_type": "agent.cycle", "agent": "a", "mode": "think", "durationMs": 1000}


def sidebar() -> None:
    with st.sidebar:
        st.markdown("**Filters**")
        st.selectbox("Time range", ["Last 24 hours", "Last 7 days", "All time"], key="range")
        st.selectbox("Time zone", ZONES, key="tz", help="Times on every page.")
        st.multiselect("Agents", ["a", "b", "c"], key="agents", help="Type to search.")
        st.multiselect("Modes", ["think", "reflection", "housekeeping"], key="modes")
        st.multiselect("Event types", ["agent.cycle"], key="types", help="Event counts.")
        st.toggle("Errors only", key="errors", help="Cycles with errors > 0.")
        st.button("Reset filters", icon=":material/restart_alt:", disabled=True, width="stretch")
        st.selectbox("Refresh", ["Off", "Every minute"], index=1, key="refresh", help="Live.")
        st.caption("Source: floor")


def badges() -> None:
    st.markdown(
        ":green-badge[:material/schedule: Newest event 5s ago (12:00:00 UTC)] "
        ":green-badge[:material/sync: Last sync 5s ago] :gray-badge[:material/database: floor]"
    )


def pickers(kinds: tuple[str, ...]) -> None:
    for kind in kinds:
        with st.columns([1, 3])[0]:
            if kind == "top":
                st.selectbox("Agents named in charts", [5, 10, 20], index=1, key="top")
            else:
                st.segmented_control("Split by", ["mode", "agent"], default="mode", key="split")


def page(path: str):
    heading, _icon, tiles, charts, tables, kinds, raw = SHAPES[path]

    def body() -> None:
        badges()
        st.header(heading, anchor=False)
        st.caption("Last 24 hours")
        if tiles:
            for col, i in zip(st.columns(tiles), range(tiles), strict=True):
                col.metric(f"Tile {i}", "1,234", "+1.0%", help="A tile.", border=True)
        pickers(kinds)
        for i in range(charts):
            fig = go.Figure(go.Scatter(x=[0, 1, 2], y=[1, 3, 2], mode="lines"))
            fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10))
            st.plotly_chart(
                fig,
                width="stretch",
                key=f"c{i}",
                config={"displaylogo": False, "displayModeBar": False},
            )
        for i in range(tables):
            st.dataframe(TABLE, hide_index=True, width="stretch", key=f"t{i}")
        if raw:
            st.json(RAW, expanded=True)

    def draw() -> None:
        sidebar()
        # ui.page.live: the body refreshes in place every minute (the app's default)
        st.fragment(run_every=60)(body)()

    return draw


def other(title: str):
    def draw() -> None:
        st.header(title, anchor=False)

    return draw


pg = st.navigation(
    [
        st.Page(
            page(p),
            title=h,
            icon=f":material/{icon}:",
            url_path=p,
            default=(p == "overview"),
        )
        for p, (h, icon, *_rest) in SHAPES.items()
    ]
    + [
        st.Page(other(h), title=h, icon=f":material/{icon}:", url_path=p)
        for p, (h, icon) in OTHER.items()
    ]
)
pg.run()
