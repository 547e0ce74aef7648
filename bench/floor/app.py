"""The floor: what any Streamlit page of our shape costs here, with no data at all.

``streamlit run bench/floor/app.py``: the same pages (URL paths and headings), each with the same
sidebar widgets, freshness badges, number of tiles, plotly charts and tables as ours, filled with
constants instead of queries. ``bench/speed.py`` loads each floor page beside the real one in the
same browser, in one run; the ratio real ÷ floor is what our data layer and figures add.
"""

import plotly.graph_objects as go
import streamlit as st

st.set_page_config(page_title="floor", layout="wide")

# url path -> (heading, tiles, plotly charts, tables), as pages/*.py draw them
SHAPES = {
    "overview": ("Overview", 5, 1, 2),
    "timeline": ("Activity timeline", 0, 3, 1),
    "modes": ("Modes", 0, 5, 1),
    "errors": ("Errors", 4, 3, 1),
    "health": ("Pipeline health", 5, 2, 1),
    "explorer": ("Explorer", 0, 0, 1),
}
TABLE = {"Agent": ["a", "b", "c"], "Cycles": [1, 2, 3], "Error rate %": [0.0, 1.0, 2.0]}


def sidebar() -> None:
    with st.sidebar:
        st.selectbox("Time range", ["Last 24 hours", "Last 7 days", "All time"], key="range")
        st.multiselect("Agents", ["a", "b", "c"], key="agents")
        st.multiselect("Modes", ["think", "reflection", "housekeeping"], key="modes")
        st.multiselect("Event types", ["agent.cycle"], key="types")
        st.toggle("Errors only", key="errors")
        st.selectbox("Time zone", ["UTC"], key="tz")
        st.button("Reset filters")
    st.markdown(
        ":green-badge[:material/schedule: Newest event 5s ago] "
        ":green-badge[:material/sync: Last sync 5s ago] :gray-badge[:material/database: floor]"
    )


def page(path: str):
    heading, tiles, charts, tables = SHAPES[path]

    def draw() -> None:
        sidebar()
        st.header(heading, anchor=False)
        st.caption("Last 24 hours")
        if tiles:
            for col, i in zip(st.columns(tiles), range(tiles), strict=True):
                col.metric(f"Tile {i}", "1,234", "+1.0%")
        for i in range(charts):
            fig = go.Figure(go.Scatter(x=[0, 1, 2], y=[1, 3, 2], mode="lines"))
            fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10))
            st.plotly_chart(fig, width="stretch", key=f"c{i}")
        for i in range(tables):
            st.dataframe(TABLE, hide_index=True, width="stretch", key=f"t{i}")

    return draw


pg = st.navigation(
    [
        st.Page(page(p), title=h, url_path=p, default=(p == "overview"))
        for p, (h, *_rest) in SHAPES.items()
    ]
)
pg.run()
