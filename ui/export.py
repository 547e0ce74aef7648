"""Downloads of exactly the explorer's filtered view (every matching row, not just those shown).

DuckDB writes the file (``queries.export_events``, a ``COPY … TO``) into the cache's temporary
folder; only the finished file's bytes are handed to Streamlit, so a 1M-row download never
builds a DataFrame or a CSV string in Python.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pandas as pd

from o11y_data import EventsDB
from o11y_data.query import csv_out
from o11y_data.query import queries as q
from o11y_data.query.queries import Filters

MAX_EXPORT_ROWS = 1_000_000


def download(db: EventsDB, f: Filters, search: str = "", *, fmt: str) -> bytes:
    """The filtered view (newest first, up to MAX_EXPORT_ROWS) as CSV or Parquet bytes."""
    folder = db.store.root / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as tmp:
        dest = Path(tmp) / f"events.{fmt}"
        q.export_events(db, f, dest=dest, fmt=fmt, search=search, limit=MAX_EXPORT_ROWS)
        return dest.read_bytes()


def table_csv(df: pd.DataFrame) -> bytes:
    """A small table already on screen (the Summary's) as CSV, exactly as shown (csv_out's
    rules: formulas neutralised, CR/LF quoted)."""
    return csv_out.table_csv(df)


def table_parquet(df: pd.DataFrame) -> bytes:
    """A small table already on screen as Parquet, exactly as shown."""
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()
