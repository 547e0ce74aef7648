"""Downloads of exactly the explorer's filtered view (every matching row, not just those shown)."""

from __future__ import annotations

import io

import pandas as pd

from o11y_data import EventsDB
from o11y_data import queries as q
from o11y_data.queries import Filters

MAX_EXPORT_ROWS = 1_000_000


def filtered_view(db: EventsDB, f: Filters, search: str = "") -> pd.DataFrame:
    """All events matching the filters and search, newest first (up to MAX_EXPORT_ROWS)."""
    n = q.count_events(db, f, search=search)
    return q.events_table(db, f, search=search, limit=max(1, min(n, MAX_EXPORT_ROWS)))


def _utc_text(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in ("ts", "ingest_ts"):
        if col in out:
            out[col] = pd.to_datetime(out[col], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return out


def to_csv(df: pd.DataFrame) -> bytes:
    return _utc_text(df).to_csv(index=False).encode()


def to_parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()
