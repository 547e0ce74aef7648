"""The dashboard's routes: page paths and the time range presets, shared by the app's navigation,
the filters' URL form and the links in alert notices (one table, no string copies)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode


@dataclass(frozen=True)
class Route:
    path: str  # the URL path (st.Page's url_path)
    script: str  # the page file, relative to the app
    title: str
    icon: str
    default: bool = False


OVERVIEW = Route("overview", "pages/overview.py", "Overview", ":material/dashboard:", True)
AGENT = Route("agent", "pages/agent.py", "Agent", ":material/smart_toy:")
TIMELINE = Route("timeline", "pages/timeline.py", "Activity timeline", ":material/timeline:")
MODES = Route("modes", "pages/modes.py", "Modes", ":material/donut_small:")
ERRORS = Route("errors", "pages/errors.py", "Errors", ":material/error:")
HEALTH = Route("health", "pages/health.py", "Pipeline health", ":material/monitor_heart:")
EXPLORER = Route("explorer", "pages/explorer.py", "Explorer", ":material/table_view:")
SUMMARY = Route("summary", "pages/summary.py", "Summary", ":material/summarize:")
SQL = Route("sql", "pages/sql.py", "SQL console", ":material/terminal:")
ALERTS = Route("alerts", "pages/alerts.py", "Alerts", ":material/notifications:")
WALL = Route("wall", "pages/wall.py", "Wall", ":material/tv:")
ROUTES: tuple[Route, ...] = (
    OVERVIEW,
    AGENT,
    TIMELINE,
    MODES,
    ERRORS,
    HEALTH,
    EXPLORER,
    SUMMARY,
    SQL,
    ALERTS,
    WALL,
)

# The time range presets (the ``range`` URL parameter): name -> seconds (None: all time).
RANGE_PRESETS: dict[str, int | None] = {
    "15m": 15 * 60,
    "1h": 3600,
    "6h": 6 * 3600,
    "24h": 86400,
    "7d": 7 * 86400,
    "30d": 30 * 86400,
    "all": None,
}
DEFAULT_RANGE = "24h"  # left out of URLs


def covering_range(seconds: float) -> str:
    """The shortest preset that shows ``seconds`` back from now with some room (80 %)."""
    for name, span in RANGE_PRESETS.items():
        if span is not None and seconds <= span * 0.8:
            return name
    return "all"


def view_link(
    base_url: str,
    route: Route,
    *,
    agent: str | None = None,
    mode: str | None = None,
    range_name: str = DEFAULT_RANGE,
) -> str:
    """An absolute link to ``route`` filtered to ``agent``/``mode`` over ``range_name``."""
    params: dict[str, str] = {}
    if agent is not None:
        params["agent"] = agent
    if mode is not None:
        params["mode"] = mode
    if range_name != DEFAULT_RANGE:
        params["range"] = range_name
    query = f"?{urlencode(params)}" if params else ""
    # Streamlit serves the default page at the root only: ``/overview`` opens with a "page not
    # found" dialog before it shows the overview.
    path = "" if route.default else route.path
    return f"{base_url.rstrip('/')}/{path}{query}"
