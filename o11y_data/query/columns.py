"""What the SQL console can read: each view's columns, their types and one line of meaning.

The names and types come from the views themselves (``DESCRIBE`` on a sandbox connection built
with ``create_views``, the definitions the app and the sandbox use), so a new column shows up by
itself; its meaning is written here once. ``tests/test_sql_columns.py`` checks that every column
of every view has a meaning and that docs/events.md lists the same table (``markdown()``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ..ingest import rollups
from ..ingest.normalize import prepare
from ..ingest.store import GenerationHead
from .db import ViewSpec, create_views, store_info
from .queries import Filters

# view -> one line on what a row is
VIEWS: dict[str, str] = {
    "events": "one row per parsed event (every type)",
    "cycles": "the events whose event_type is agent.cycle: one row per cycle",
    "filtered_events": "events, kept to the sidebar's filters (time range, agents, modes…)",
    "filtered_cycles": "cycles, kept to the sidebar's filters",
    "unparseable": "rows whose value was not a JSON object: left out of every number",
    "freshness": "one row: how fresh and how big the cache is",
    "hourly": "rollup: one row per hour, event type, agent, mode and erred",
    "daily": "rollup: one row per day, event type, agent, mode and erred",
    "duration_hist": "rollup: cycle durations as a log histogram, per day, agent, mode, erred",
    "lag_hist": "rollup: ingest lags as a log histogram, per day, event type, agent, mode, erred",
    "duration_hist_month": "duration_hist summed per month",
    "lag_hist_month": "lag_hist summed per month",
    "lag_hist_net": "lag_hist summed over event types, agents and modes, per day",
}

_EVENT = {
    "ts": "the event's time (_ts; the landing time when _ts is missing or out of range), UTC",
    "ingest_ts": "when the pipeline landed the row (__ingest_ts), UTC; NULL when unknown",
    "event_type": "the event's type, e.g. agent.cycle",
    "agent": "the agent's id (a DID); 'unknown' when the event has none",
    "mode": "think, reflection, housekeeping…; 'unknown' when the event has none",
    "duration_ms": "the cycle's duration in milliseconds (durationMs); NULL when not a number",
    "tool_calls": "tool calls in the cycle (toolCalls); NULL when not a number",
    "errors": "errors in the cycle; a cycle with errors > 0 counts toward the error rate",
    "raw": "the event's whole JSON, as it landed",
    "file": "the Parquet file the row came from",
}
_ROLLUP_KEYS = {
    "t": "the start of the bucket (hour, day or month), UTC",
    "event_type": "the events' type",
    "agent": "the agent's id",
    "mode": "the mode",
    "erred": "true for the events with errors > 0",
}
_FACTS = {
    "events": "events in the bucket (cycles, in rows of agent.cycle)",
    "errors": "sum of errors",
    "dur_n": "events with a known duration_ms",
    "dur_sum": "sum of duration_ms (avg = dur_sum / dur_n)",
    "tools_n": "events with a known tool_calls",
    "tools_sum": "sum of tool_calls",
    "min_ts": "the bucket's earliest ts",
    "max_ts": "the bucket's newest ts",
    "lag_n": "events with a known ingest lag",
    "lag_sum": "sum of ingest lags in microseconds (avg = lag_sum / lag_n)",
}
_HIST = {
    "k": "the histogram bucket; o11y_hist_value(k) is its value (within 1 %)",
    "n": "events in the bucket",
}
_DURATION_HIST = {**_HIST, "k": "the duration bucket; o11y_hist_value(k) is its duration in ms"}
_LAG_HIST = {**_HIST, "k": "the lag bucket; o11y_hist_value(k) is its lag in microseconds"}

# view -> column -> one line of meaning
MEANINGS: dict[str, dict[str, str]] = {
    "events": _EVENT,
    "cycles": _EVENT,
    "filtered_events": _EVENT,
    "filtered_cycles": _EVENT,
    "unparseable": {
        "ingest_ts": "when the pipeline landed the row, UTC",
        "raw": "the row's value as it landed",
        "file": "the Parquet file the row came from",
    },
    "freshness": {
        "newest_ts": "the newest event's ts",
        "newest_ingest_ts": "the newest landing time of any row",
        "generation": "the cache's generation (a sync that changed something adds one)",
        "published_at": "when that generation was published",
        "source": "where the events come from (bucket or folder)",
        "table_prefix": "the Iceberg table's folder",
        "snapshot_id": "the table snapshot that was read",
        "files": "live data files read",
        "rows": "rows in the cache",
        "unparseable": "rows that were not a JSON object",
        "bad_files": "files set aside as unreadable",
    },
    "hourly": {**_ROLLUP_KEYS, **_FACTS},
    "daily": {**_ROLLUP_KEYS, **_FACTS},
    "duration_hist": {**_ROLLUP_KEYS, **_DURATION_HIST},
    "lag_hist": {**_ROLLUP_KEYS, **_LAG_HIST},
    "duration_hist_month": {**_ROLLUP_KEYS, **_DURATION_HIST},
    "lag_hist_month": {**_ROLLUP_KEYS, **_LAG_HIST},
    "lag_hist_net": {"t": "the day, UTC", **_LAG_HIST},
}
UNDESCRIBED = "(not described yet)"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    meaning: str


@dataclass(frozen=True)
class View:
    name: str
    about: str
    columns: tuple[Column, ...]


@functools.cache
def described() -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """(view, ((column, type), …)) for every view the console offers, from the definitions."""
    from .sandbox import create_filtered_views

    conn = duckdb.connect(":memory:")
    try:
        prepare(conn)
        rollups.prepare(conn)
        create_views(conn, ViewSpec([], {}, Path("/nonexistent"), store_info(GenerationHead())))
        create_filtered_views(conn, Filters())
        out = []
        for view in VIEWS:
            rows = conn.execute(f"DESCRIBE {view}").fetchall()
            out.append((view, tuple((str(r[0]), str(r[1])) for r in rows)))
        return tuple(out)
    finally:
        conn.close()


def views() -> list[View]:
    """Every view with its columns, types and meanings, in the order of ``VIEWS``."""
    return [
        View(
            name,
            VIEWS[name],
            tuple(Column(c, t, MEANINGS.get(name, {}).get(c, UNDESCRIBED)) for c, t in cols),
        )
        for name, cols in described()
    ]


def markdown() -> str:
    """The views as Markdown tables (docs/events.md holds this text; a test compares)."""
    parts = []
    for v in views():
        head = "| column | type | meaning |\n| --- | --- | --- |"
        rows = "\n".join(f"| `{c.name}` | {c.type} | {c.meaning} |" for c in v.columns)
        parts.append(f"**`{v.name}`**: {v.about}.\n\n{head}\n{rows}")
    return "\n\n".join(parts) + "\n"
