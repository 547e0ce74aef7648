"""The read side: a DuckDB connection whose views follow the store's published generation.

Views: ``events`` (every parsed event, normalized, with its raw JSON), ``cycles`` (``agent.cycle``
only), ``unparseable`` (rows whose value was not a JSON object) and ``freshness`` (newest ``ts`` and
``ingest_ts``, last sync, files, rows, unparseable). Each query takes its own cursor, so one
connection serves many threads (Streamlit sessions); views are rebuilt only when a sync publishes a
new generation.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from .errors import O11yError
from .normalize import STORE_COLUMNS, _lit, prepare
from .store import Generation, Store

_EVENT_COLS = "ts, ingest_ts, event_type, agent, mode, duration_ms, tool_calls, errors, raw, file"


class EventsDB:
    def __init__(self, store_dir: Path, *, threads: int = 2, memory_limit: str = "1GB") -> None:
        self.store = Store(store_dir)
        # A memory cap keeps a long-running app flat; DuckDB spills or streams beyond it.
        self.conn = duckdb.connect(
            ":memory:",
            config={
                "threads": str(threads),
                "memory_limit": memory_limit,
                # Spill inside the cache, not into whatever folder the app was started from.
                "temp_directory": str(Path(store_dir) / "tmp"),
            },
        )
        prepare(self.conn)
        self._lock = threading.Lock()
        self._number: int | None = None
        self.damaged: list[str] = []
        # Answers that cannot change within a generation (newest times, distinct values): kept
        # until the next generation is published, so every page run does not rescan the store.
        self._memo: dict[str, Any] = {}
        self.generation = Generation()
        self.refresh()

    def close(self) -> None:
        self.conn.close()

    def refresh(self) -> Generation:
        """Follow CURRENT: rebuild the views when a new generation was published."""
        number = self.store.current_number()
        if number == self._number:
            return self.generation
        with self._lock:
            if number == self._number:
                return self.generation
            gen = self.store.load()
            # A damaged segment is left out (and reported) rather than failing every query;
            # the next sync rebuilds it from the downloaded files.
            self.damaged = self.store.damaged_segments(gen)
            readable = [s for s in gen.segments if s.name not in self.damaged]
            cur = self.conn.cursor()
            try:
                if readable:
                    files = ", ".join(_lit(str(self.store.segments / s.name)) for s in readable)
                    base = f"SELECT * FROM read_parquet([{files}])"
                else:
                    cols = ", ".join(f"NULL::{t} AS {n}" for n, t in STORE_COLUMNS)
                    base = f"SELECT {cols} WHERE false"
                cur.execute(f"CREATE OR REPLACE VIEW events_all AS {base}")
                cur.execute(
                    f"CREATE OR REPLACE VIEW events AS SELECT {_EVENT_COLS} "
                    "FROM events_all WHERE parsed"
                )
                cur.execute(
                    "CREATE OR REPLACE VIEW cycles AS SELECT * FROM events "
                    "WHERE event_type = 'agent.cycle'"
                )
                cur.execute(
                    "CREATE OR REPLACE VIEW unparseable AS SELECT ingest_ts, raw, file "
                    "FROM events_all WHERE NOT parsed"
                )
                cur.execute(
                    "CREATE OR REPLACE TABLE store_info (generation BIGINT, published_at "
                    "TIMESTAMPTZ, source VARCHAR, table_prefix VARCHAR, snapshot_id BIGINT, "
                    "files BIGINT, rows BIGINT, unparseable BIGINT, bad_files BIGINT)"
                )
                cur.execute(
                    "INSERT INTO store_info VALUES (?, to_timestamp(?), ?, ?, ?, ?, ?, ?, ?)",
                    [
                        gen.number,
                        gen.published_at or None,
                        gen.source_label,
                        gen.table_prefix,
                        gen.snapshot_id,
                        len(gen.files),
                        gen.rows,
                        gen.unparseable,
                        len(gen.bad_files),
                    ],
                )
                cur.execute(
                    "CREATE OR REPLACE VIEW freshness AS SELECT "
                    "(SELECT max(ts) FROM events) AS newest_ts, "
                    "(SELECT max(ingest_ts) FROM events_all) AS newest_ingest_ts, * "
                    "FROM store_info"
                )
            finally:
                cur.close()
            self.generation, self._number = gen, number
            self._memo = {}
            return gen

    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Run one read query on its own cursor and return a DataFrame (the result is finished)."""
        for attempt in range(2):
            self.refresh()
            cur = self.conn.cursor()
            try:
                return cur.execute(sql, params or []).df()
            except duckdb.IOException as exc:
                # A sync replaced a segment between our refresh and the read: follow it once.
                if attempt == 0:
                    self._number = None
                    time.sleep(0.05)
                    continue
                raise O11yError("Cannot read the cache", str(exc).splitlines()[0]) from None
            except duckdb.Error as exc:
                raise O11yError("Query failed", str(exc).splitlines()[0]) from None
            finally:
                cur.close()
        raise AssertionError("unreachable")

    def per_generation(self, key: str, compute: Any) -> Any:
        """``compute()`` once per published generation (thread-safe enough: a race computes
        twice, both right)."""
        self.refresh()
        memo = self._memo
        if key not in memo:
            memo[key] = compute()
        return memo[key]

    def status(self) -> dict[str, Any]:
        """The last sync attempt as the sync process recorded it."""
        return self.store.read_status()
