"""Table shaping for the pages: pure DataFrame -> DataFrame functions (tested without Streamlit)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from urllib.parse import quote, urlencode

import pandas as pd

from o11y_data import routes
from ui.fmt import approx, local

UNKNOWN = "unknown"
UNKNOWN_LABEL = "unknown (no agent)"


def page_url(path: str, params: Mapping[str, str | list[str]], **extra: str | list[str]) -> str:
    """A relative link to another page that keeps the filters (``timeline?range=1h&agent=…``)."""
    merged = {**params, **extra}
    qs = urlencode(merged, doseq=True)
    return f"{path}?{qs}" if qs else path


# A LinkColumn shows what this captures of the link: its fragment, decoded (see agent_link).
AGENT_LINK_TEXT = r"#(.*)$"


def agent_link(
    did: str, params: Mapping[str, str | list[str]] | None = None, *, text: str | None = None
) -> str:
    """A relative link to ``did``'s agent page keeping ``params`` (the filters; their agents
    replaced by ``did``); ``unknown`` (events without an agent: not an agent, no page) links to
    those events in the explorer.

    The agent is URL-encoded (any characters: the page reads it back exactly). The fragment
    carries the text a table shows, ``text`` or the DID, percent-encoded: a LinkColumn with
    ``display_text=AGENT_LINK_TEXT`` shows it decoded, as plain text; no page reads fragments."""
    keep = {k: v for k, v in (params or {}).items() if k != "agent"}
    page = routes.EXPLORER if did == UNKNOWN else routes.AGENT
    url = page_url(page.path, keep, agent=did)
    return f"{url}#{quote(text if text is not None else did, safe='')}"


def agent_links(
    dids: Iterable[str], names: Mapping[str, str], params: Mapping[str, str | list[str]]
) -> list[str]:
    """:func:`agent_link` for a column of agents, each shown as :func:`agent_cell` words it."""
    return [agent_link(d, params, text=agent_cell(d, names)) for d in dids]


def agent_cell(did: str, names: Mapping[str, str]) -> str:
    """An agent in a table: its friendly name, else its whole DID (short forms of thousands of
    DIDs look alike); ``unknown`` is labelled as events without an agent."""
    if did == UNKNOWN:
        return UNKNOWN_LABEL
    return names.get(did) or did


def last_seen_column(tz: str = "UTC") -> str:
    return f"Last seen ({tz})"


def agent_table(
    df: pd.DataFrame,
    names: Mapping[str, str],
    params: Mapping[str, str | list[str]],
    tz: str = "UTC",
) -> pd.DataFrame:
    """``queries.agent_overview`` rows as shown on the overview (percentages 0-100, seconds);
    ``names`` are the friendly names from agents.toml.

    Last seen is a wall-clock time in ``tz`` (naive; the column heading names the zone).
    """
    is_approx = bool(df["approx"].any()) if "approx" in df else False
    out = pd.DataFrame(
        {
            "Agent": agent_links(df["agent"], names, params),
            "Timeline": [page_url("timeline", params, agent=a) for a in df["agent"]],
            "Cycles": df["cycles"].astype("int64"),
            "Error rate %": df["error_rate"] * 100,
            approx("p50 s", is_approx): df["p50_ms"] / 1000,
            approx("p95 s", is_approx): df["p95_ms"] / 1000,
            approx("p99 s", is_approx): df["p99_ms"] / 1000,
            "Avg tools": df["avg_tools"],
            "think %": df["think_share"] * 100,
            "reflection %": df["reflection_share"] * 100,
            "housekeeping %": df["housekeeping_share"] * 100,
            last_seen_column(tz): local(df["last_seen"], tz).to_numpy(),
            "DID": df["agent"],
        }
    )
    return out


def usual_hourly(hourly: pd.DataFrame, now: datetime) -> float | None:
    """The usual events per hour: the median over full hours (the current hour left out)."""
    if hourly is None or hourly.empty:
        return None
    hours = pd.to_datetime(hourly["hour"], utc=True)
    current = pd.Timestamp(now).tz_convert("UTC").floor("h")
    full = hourly.loc[hours < current, "events"]
    if full.empty:
        return None
    return float(full.median())


def silent_agents(last: pd.DataFrame, now: datetime, *, after_s: float = 15 * 60) -> pd.DataFrame:
    """``agent_last_seen`` rows with their silence in seconds, flagged past ``after_s``."""
    if last is None or last.empty:
        return pd.DataFrame(columns=["agent", "last_ts", "last_mode", "silent_s", "silent"])
    d = last.copy()
    ts = pd.to_datetime(d["last_ts"], utc=True)
    d["silent_s"] = (pd.Timestamp(now).tz_convert("UTC") - ts).dt.total_seconds()
    d["silent"] = d["silent_s"] > after_s
    return d.sort_values(["silent_s"], ascending=False)
