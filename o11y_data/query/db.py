"""The read side: a DuckDB connection whose views follow the store's published generation.

Views: ``events`` (every parsed event, normalized, with its raw JSON), ``cycles`` (``agent.cycle``
only), ``unparseable`` (rows whose value was not a JSON object) and ``freshness`` (newest ``ts`` and
``ingest_ts``, last sync, files, rows, unparseable). Each query takes its own cursor, so one
connection serves many threads (Streamlit sessions); views are rebuilt only when a sync publishes a
new generation.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from ..errors import O11yError, QueryBug, QueryTimeout
from ..ingest import rollups
from ..ingest.normalize import STORE_COLUMNS, prepare, sql_literal
from ..ingest.store import GenerationHead, Store, newest_ingest_ts

if TYPE_CHECKING:  # pandas is imported by the first DataFrame query, not by the CLI's status
    import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_QUERY_TIMEOUT_S = 30.0
# DuckDB errors that mean the SQL the app wrote is wrong, whatever the data: bugs.
_BUGS = (
    duckdb.ParserException,
    duckdb.BinderException,
    duckdb.CatalogException,
    duckdb.SyntaxException,
    duckdb.NotImplementedException,
    duckdb.InternalException,
)
# The question being answered (``queries``' screens name themselves), for errors to name it.
_QUERY_NAME: contextvars.ContextVar[str] = contextvars.ContextVar("o11y_query", default="query")


@contextlib.contextmanager
def naming(name: str) -> Iterator[None]:
    """Queries run inside are named ``name`` in their errors ("totals timed out after 30 s")."""
    token = _QUERY_NAME.set(name)
    try:
        yield
    finally:
        _QUERY_NAME.reset(token)


# Optimizers the app's connections run without (see EventsDB's config).
DISABLED_OPTIMIZERS = "late_materialization"

# Replaced files whose footers a connection may keep before it is replaced: ~10 MiB of cache.
STALE_FILES_LIMIT = 500
# Queries a connection answers before it is replaced: DuckDB 2.0.1 keeps ~1-4 KiB of the
# database's memory per GROUP BY query over Parquet until the database closes (measured on the
# demo: summary 3.9 KiB a call, the agent list 1.7 KiB, for ever; bench/team.md, the 16:00
# hunt), so a server answering thousands an hour grows without end. 5,000 queries bound it to
# ~20 MiB; a new connection costs its views and re-reading the footers once.
QUERIES_PER_CONNECTION = 5000

_EVENT_COLS = "ts, ingest_ts, event_type, agent, mode, duration_ms, tool_calls, errors, raw, file"


class EventsDB:
    def __init__(
        self,
        store_dir: Path,
        *,
        threads: int = 2,
        memory_limit: str = "1GB",
        query_timeout_s: float = DEFAULT_QUERY_TIMEOUT_S,
    ) -> None:
        self.store = Store(store_dir)
        # Every query the app runs is interrupted past this (Datasette's habit): a slow question
        # answers "timed out" instead of holding a thread and a core for ever.
        self.query_timeout_s = query_timeout_s
        self._config = {
            "threads": str(threads),
            # A memory cap keeps a long-running app flat; DuckDB spills or streams beyond it.
            "memory_limit": memory_limit,
            # Spill inside the cache, not into whatever folder the app was started from.
            "temp_directory": str(Path(store_dir) / "tmp"),
            # DuckDB 2.0.1's late materialization (ORDER BY ... LIMIT of at most 50 rows over
            # Parquet) leaks ~3.5 KiB of the database's memory per query, freed only when the
            # database closes: recent errors, the newest rows and the explorer's pages run it
            # thousands of times an hour (bench/team.md, notes on the 16:00 hunt). The newest
            # rows are read in two steps by hand anyway (queries._newest).
            "disabled_optimizers": DISABLED_OPTIMIZERS,
        }
        self.conn = self._connect()
        # Files the connection has read that no published generation uses any more: their
        # Parquet footers stay in DuckDB's metadata cache for the connection's life (DuckDB
        # 2.0.1 never evicts them: ~21 KiB each here, and a generation rewrites the month's 7
        # rollup files, so ~240 MiB a day at a generation a minute). Past STALE_FILES_LIMIT the
        # connection is replaced by a fresh one (bench/team.md, notes on the 13:06 run).
        self._files: set[Path] = set()
        self._stale = 0
        # Queries run on the current connection (a race may miss a count: it only has to grow).
        self._queries = 0
        self.reconnects = 0
        self.rollups_ok = False
        # Whether percentiles may read the monthly histograms (off: whole days only, the same
        # answer from more rows; the benchmark and the tests compare the two).
        self.hist_months = True
        self.spec = ViewSpec([], {}, self.store.rollups, store_info(GenerationHead()))
        self._lock = threading.Lock()
        self._number: int | None = None
        self.damaged: list[str] = []
        # Answers that cannot change within a generation (newest times, distinct values): kept
        # until the next generation is published, so every page run does not rescan the store.
        self._memo: dict[str, Any] = {}
        self.generation = GenerationHead()
        self.refresh()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        conn = duckdb.connect(":memory:", config=dict(self._config))
        # Keep Parquet footers between queries: the views read every segment and one rollup
        # file per table and month (840 files at 100M events), and the store never changes a
        # file under its name (DuckDB keys the cache by path and modification time).
        conn.execute("LOAD parquet")
        conn.execute("SET parquet_metadata_cache = true")
        prepare(conn)
        rollups.prepare(conn)
        return conn

    def _stale_after(self, files: list[Path]) -> tuple[set[Path], int]:
        """The files read so far and the count of those no longer used, once ``files`` are."""
        now = set(files)
        return self._files | now, self._stale + len(self._files - now)

    def close(self) -> None:
        self.conn.close()

    def refresh(self) -> GenerationHead:
        """Follow CURRENT: rebuild the views when a new generation was published."""
        number = self.store.current_number()
        if number == self._number and self._queries < QUERIES_PER_CONNECTION:
            return self.generation
        with self._lock:
            if number == self._number and self._queries < QUERIES_PER_CONNECTION:
                return self.generation
            gen = self.store.load_head()
            files = [self.store.segments / s.name for s in gen.segments]
            files += [self.store.rollups / n for n in rollups.names(gen.rollups)]
            seen, stale = self._stale_after(files)
            conn = self.conn
            if stale >= STALE_FILES_LIMIT or self._queries >= QUERIES_PER_CONNECTION:
                # A fresh connection, ready before anyone uses it.
                conn, seen, stale = self._connect(), set(files), 0
            # A damaged segment is left out (and reported) rather than failing every query;
            # the next sync rebuilds it from the downloaded files.
            self.damaged = self.store.damaged_segments(gen, conn.cursor())
            readable = [s for s in gen.segments if s.name not in self.damaged]
            cur = conn.cursor()
            try:
                # Rollups answer long windows; they are used only when they cover exactly the
                # rows the views read (current version, no damaged segment left out).
                self.rollups_ok = (
                    rollups.is_current(gen.rollups)
                    and not self.damaged
                    and not self.store.damaged_files(
                        self.store.rollups, rollups.names(gen.rollups), conn.cursor()
                    )
                )
                spec = ViewSpec(
                    segments=[self.store.segments / s.name for s in readable],
                    rollups=gen.rollups if self.rollups_ok else {},
                    rollup_folder=self.store.rollups,
                    info=store_info(gen),
                )
                create_views(cur, spec)
                self.spec = spec
            finally:
                cur.close()
            if conn is not self.conn:
                # Queries running on the old connection finish there (their cursors hold it).
                self.conn, self.reconnects = conn, self.reconnects + 1
                self._queries = 0
            self._files, self._stale = seen, stale
            self.generation, self._number = gen, number
            self._memo = {}
            return gen

    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Run one read query on its own cursor and return a DataFrame (the result is finished)."""
        return self._run(sql, params, lambda cur: cur.df())

    def fetch(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Run one read query and return its rows as dicts of Python values (no pandas)."""

        def rows(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
            names = [d[0] for d in cur.description or []]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

        return self._run(sql, params, rows)

    def copy(self, sql: str, params: list[Any] | None = None) -> int:
        """Run one ``COPY (…) TO …`` statement (DuckDB streams the rows to the file); returns the
        rows written."""
        return int(self._run(sql, params, lambda cur: cur.fetchall()[0][0]))

    def copy_csv(self, select_sql: str, params: list[Any] | None, dest: Path) -> int:
        """Write the rows of ``select_sql`` to ``dest`` as CSV (csv_out's rules: formulas
        neutralised, CR/LF/quote/comma quoted); returns the rows written."""
        from .csv_out import copy_csv

        return int(
            self._run("SELECT 1", None, lambda cur: copy_csv(cur, select_sql, params or [], dest))
        )

    def _run(
        self,
        sql: str,
        params: list[Any] | None,
        take: Callable[[duckdb.DuckDBPyConnection], Any],
    ) -> Any:
        """Run ``sql`` on a cursor of its own, interrupted past ``query_timeout_s``. A timeout,
        an unreadable cache or a failure of the data raise an O11yError with the DuckDB error
        chained; a wrong query of ours raises :class:`QueryBug` (logged with its cause)."""
        name = _QUERY_NAME.get()
        for attempt in range(2):
            self.refresh()
            self._queries += 1
            cur = self.conn.cursor()
            fired = threading.Event()

            def stop(cur: duckdb.DuckDBPyConnection = cur, fired: threading.Event = fired) -> None:
                fired.set()
                cur.interrupt()

            timer = threading.Timer(self.query_timeout_s, stop)
            timer.daemon = True
            timer.start()
            try:
                return take(cur.execute(sql, params or []))
            except duckdb.InterruptException as exc:
                if not fired.is_set():  # not ours: someone else interrupted the query
                    raise O11yError("Query interrupted", name) from exc
                raise QueryTimeout(
                    f"Query timed out after {self.query_timeout_s:g} s",
                    f"{name}; try a shorter window or raise O11Y_QUERY_TIMEOUT",
                ) from exc
            except duckdb.IOException as exc:
                # A sync replaced a segment between our refresh and the read: follow it once.
                if attempt == 0:
                    self._number = None
                    time.sleep(0.05)
                    continue
                log.warning("%s: cannot read the cache", name, exc_info=exc)
                raise O11yError("Cannot read the cache", str(exc).splitlines()[0]) from exc
            except _BUGS as exc:
                log.error("%s: our SQL is wrong", name, exc_info=exc)
                raise QueryBug(f"{name}: {str(exc).splitlines()[0]}") from exc
            except duckdb.Error as exc:
                log.warning("%s failed", name, exc_info=exc)
                raise O11yError("Query failed", f"{name}: {str(exc).splitlines()[0]}") from exc
            finally:
                timer.cancel()
                cur.close()
        raise AssertionError("unreachable")

    def view_spec(self) -> ViewSpec:
        """What the views of the generation in use read (the SQL sandbox builds the same)."""
        self.refresh()
        return self.spec

    def newest_ingest_ts(self) -> Any:
        """The newest ``ingest_ts`` of any row (unparseable ones included): from the segments'
        column statistics when every row group has them, else a scan."""

        return self._run("SELECT 1", None, lambda cur: newest_ingest_ts(cur, self.spec.segments))

    def raw_from(self) -> datetime | None:
        """The event time from which the segments hold every raw row (None: all of history);
        before it only the rollups answer (O11Y_RAW_HORIZON)."""
        us = self.refresh().raw_from_us
        return None if us is None else datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)

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


@dataclass(frozen=True)
class ViewSpec:
    """What a generation's views read: its readable segments, its rollups (empty when they are
    not used) and its ``store_info`` row. Plain values, so a child process can build the views."""

    segments: list[Path]
    rollups: dict[str, Any]
    rollup_folder: Path
    info: list[Any]

    def files(self) -> list[Path]:
        """Every file the views read."""
        return [*self.segments, *(self.rollup_folder / n for n in rollups.names(self.rollups))]


# The ``store_info`` table's columns: what the ``freshness`` view reports besides the times.
STORE_INFO = (
    ("generation", "BIGINT"),
    ("published_at", "TIMESTAMPTZ"),
    ("source", "VARCHAR"),
    ("table_prefix", "VARCHAR"),
    ("snapshot_id", "BIGINT"),
    ("files", "BIGINT"),
    ("rows", "BIGINT"),
    ("unparseable", "BIGINT"),
    ("bad_files", "BIGINT"),
)


def store_info(gen: GenerationHead) -> list[Any]:
    """The ``store_info`` row of ``gen`` (what the ``freshness`` view reports besides times)."""
    return [
        gen.number,
        gen.published_at or None,
        gen.source_label,
        gen.table_prefix,
        gen.snapshot_id,
        gen.files,
        gen.rows,
        gen.unparseable,
        len(gen.bad_files),
    ]


def create_views(cur: Any, spec: ViewSpec, *, newest_ingest: str = "NULL::TIMESTAMPTZ") -> None:
    """The views ``events_all``, ``events``, ``cycles``, ``unparseable``, the rollups
    (``hourly``, ``daily``, ``duration_hist``, ``lag_hist``, ``duration_hist_month``,
    ``lag_hist_month``, ``lag_hist_net``) and ``freshness`` on ``cur``'s
    connection (the app's and the SQL sandbox's). ``newest_ingest`` is freshness's
    ``newest_ingest_ts`` (the app reads it from the segments' statistics instead)."""
    if spec.segments:
        files = ", ".join(sql_literal(str(f)) for f in spec.segments)
        base = f"SELECT * FROM read_parquet([{files}])"
    else:
        cols = ", ".join(f"NULL::{t} AS {n}" for n, t in STORE_COLUMNS)
        base = f"SELECT {cols} WHERE false"
    cur.execute(f"CREATE OR REPLACE VIEW events_all AS {base}")
    cur.execute(
        f"CREATE OR REPLACE VIEW events AS SELECT {_EVENT_COLS} FROM events_all WHERE parsed"
    )
    cur.execute(
        "CREATE OR REPLACE VIEW cycles AS SELECT * FROM events WHERE event_type = 'agent.cycle'"
    )
    cur.execute(
        "CREATE OR REPLACE VIEW unparseable AS SELECT ingest_ts, raw, file "
        "FROM events_all WHERE NOT parsed"
    )
    columns = ", ".join(f"{name} {kind}" for name, kind in STORE_INFO)
    cur.execute(f"CREATE OR REPLACE TABLE store_info ({columns})")
    cur.execute(
        "INSERT INTO store_info VALUES (?, to_timestamp(?), ?, ?, ?, ?, ?, ?, ?)", spec.info
    )
    for table in rollups.TABLES:
        sql = rollups.view_sql(spec.rollup_folder, spec.rollups, table)
        cur.execute(f"CREATE OR REPLACE VIEW {table} AS {sql}")
    newest = "(SELECT max(max_ts) FROM daily)" if spec.rollups else "(SELECT max(ts) FROM events)"
    cur.execute(
        f"CREATE OR REPLACE VIEW freshness AS SELECT {newest} AS newest_ts, "
        f"{newest_ingest} AS newest_ingest_ts, * FROM store_info"
    )
