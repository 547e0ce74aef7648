"""The SQL console's pieces: the examples, the session's recent queries, running and downloading.

Queries run in ``o11y_data.query.sandbox`` (a locked DuckDB connection that reads only the store's
events); this module adds the screen's caps and the result cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from o11y_data import EventsDB
from o11y_data.query import sandbox as sb
from o11y_data.query.queries import Filters
from ui import data as D

RECENT_KEY = "sql_recent"
RECENT_MAX = 10
DOWNLOAD_TIMEOUT_S = 30.0

SEED = (
    "SELECT agent, mode, count(*) AS cycles, round(avg(duration_ms)) AS avg_ms,\n"
    "       sum(tool_calls) AS tools, sum(errors) AS errors\n"
    "FROM filtered_cycles\n"
    "GROUP BY agent, mode\n"
    "ORDER BY agent, cycles DESC, mode"
)


@dataclass(frozen=True)
class Example:
    title: str
    sql: str


EXAMPLES = [
    Example("Cycles and errors per agent and mode", SEED),
    Example(
        "Cycles per hour by mode",
        "SELECT date_trunc('hour', ts) AS hour, mode, count(*) AS cycles\n"
        "FROM filtered_cycles\nGROUP BY ALL\nORDER BY hour",
    ),
    Example(
        "Error rate by agent",
        "SELECT agent, count(*) FILTER (WHERE errors > 0) / count(*) AS error_rate\n"
        "FROM filtered_cycles\nGROUP BY agent\nORDER BY error_rate DESC",
    ),
    Example(
        "Slowest cycles",
        "SELECT ts, agent, mode, duration_ms, tool_calls, errors\n"
        "FROM filtered_cycles\nORDER BY duration_ms DESC NULLS LAST\nLIMIT 20",
    ),
    Example(
        "Events by type",
        "SELECT event_type, count(*) AS events\n"
        "FROM filtered_events\nGROUP BY event_type\nORDER BY events DESC",
    ),
    Example(
        "Ingest lag p95 per hour",
        "SELECT date_trunc('hour', ts) AS hour,\n"
        "       quantile_cont(epoch(ingest_ts) - epoch(ts), 0.95) AS lag_p95_s\n"
        "FROM filtered_events\nWHERE ingest_ts IS NOT NULL\nGROUP BY ALL\nORDER BY hour",
    ),
    Example(
        "Unparseable rows",
        "SELECT ingest_ts, file, raw FROM unparseable ORDER BY ingest_ts DESC LIMIT 50",
    ),
    Example(
        "Error rate by mode",
        "SELECT mode, count(*) FILTER (WHERE errors > 0) / count(*) AS error_rate,\n"
        "       count(*) AS cycles\n"
        "FROM filtered_cycles\nGROUP BY mode\nORDER BY error_rate DESC",
    ),
]


@dataclass(frozen=True)
class Shown:
    """What the screen shows of a query: at most ``sandbox.DISPLAY_ROWS`` rows."""

    df: pd.DataFrame
    truncated: bool
    elapsed_s: float


SCREEN_LIMITS = sb.Limits(max_bytes=64 * 2**20)  # what one session may pin in the app's memory


@st.cache_data(ttl=60, max_entries=16, show_spinner=False)
def _shown(sql: str, filters: Filters, gen: int) -> Shown:
    result = sb.run_sql(D.get_db(), sql, filters=filters, limits=SCREEN_LIMITS)
    return Shown(sb.flat_table(result.table).to_pandas(), result.truncated, result.elapsed_s)


def run_for_screen(sql: str, filters: Filters) -> Shown:
    """The capped result (cached per query, filters and store generation); O11yError on failure."""
    return _shown(sql, filters, D.generation())


def download_csv(db: EventsDB, sql: str, filters: Filters) -> bytes:
    """The whole result as CSV, up to ``sandbox.DOWNLOAD_ROWS`` rows (the download's data)."""
    limits = sb.Limits(timeout_s=DOWNLOAD_TIMEOUT_S, max_rows=sb.DOWNLOAD_ROWS)
    return sb.to_csv(sb.run_sql(db, sql, filters=filters, limits=limits).table)


def remember(sql: str) -> None:
    """Put ``sql`` first in the session's recent queries (no repeats, at most RECENT_MAX)."""
    recent = [q for q in st.session_state.get(RECENT_KEY, []) if q != sql]
    st.session_state[RECENT_KEY] = [sql, *recent][:RECENT_MAX]


def recent() -> list[str]:
    return list(st.session_state.get(RECENT_KEY, []))


def one_line(sql: str, n: int = 90) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= n else text[: n - 1] + "…"
