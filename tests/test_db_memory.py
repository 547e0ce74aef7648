"""The app's DuckDB connection does not grow with the queries it answers (bench/team.md, the
16:00 hunt): DuckDB 2.0.1 keeps memory per query until the database closes, ~3.5 KiB for every
``ORDER BY ... LIMIT`` of at most 50 rows over Parquet (its late materialization, turned off in
EventsDB) and ~1-4 KiB for every GROUP BY (bounded by a fresh connection every
``QUERIES_PER_CONNECTION`` queries).

Each check runs in a fresh process and reads glibc's bytes in use (``mallinfo2``) before and
after many queries, after a warm-up: a leak of a few KiB a query shows as megabytes, while
caches warmed up stay level."""

from __future__ import annotations

import subprocess
import sys

import pytest

from o11y_data.memory import malloc_stats

PROBE = """
import gc, sys
from pathlib import Path
from o11y_data import EventsDB
from o11y_data.memory import malloc_stats, tune_malloc
from o11y_data.query import db as dbmod

store, sql, calls, per_connection = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
tune_malloc()
dbmod.QUERIES_PER_CONNECTION = per_connection
db = EventsDB(Path(store))
for _ in range(200):  # caches and the allocator's free lists warm up
    db.fetch(sql)
gc.collect()
before = malloc_stats().in_use_mib
for _ in range(calls):
    db.fetch(sql)
gc.collect()
print(malloc_stats().in_use_mib - before, db.reconnects)
"""


@pytest.fixture(scope="module")
def store_dir(demo_store):
    # The demo's store: DuckDB's late materialization kept memory on it, not on every table.
    return demo_store.settings.store_dir


def _growth_mib(store_dir, sql: str, *, calls: int, per_connection: int) -> tuple[float, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(store_dir), sql, str(calls), str(per_connection)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    grown, reconnects = out.stdout.split()
    return float(grown), int(reconnects)


pytestmark = pytest.mark.slow  # four processes of 1,000-1,700 queries each

needs_glibc = pytest.mark.skipif(malloc_stats() is None, reason="not glibc: no mallinfo2")


@needs_glibc
def test_newest_rows_queries_do_not_grow_the_databases_memory(store_dir):
    # 1,000 queries; with late materialization on, the demo's store kept 3.7 KiB a query
    # (7.3 MiB for 2,000; 0.06 MiB with it off).
    grown, reconnects = _growth_mib(
        store_dir,
        "SELECT ts, agent FROM cycles WHERE errors > 0 ORDER BY ts DESC LIMIT 50",
        calls=1000,
        per_connection=10**9,  # no fresh connection: the setting alone must keep it level
    )
    assert reconnects == 0
    assert grown < 1.5, f"{grown:.2f} MiB kept by 1,000 newest-rows queries"


@needs_glibc
def test_group_by_queries_keep_at_most_one_connections_worth_of_memory(store_dir):
    sql = "SELECT agent, mode, count(*) AS n, max(ts) AS t FROM cycles GROUP BY 1, 2"
    # On one connection for ever, what DuckDB keeps grows with every query (4.8 MiB for 3,000
    # on the demo's store)...
    kept, _ = _growth_mib(store_dir, sql, calls=1500, per_connection=10**9)
    # ...and with a fresh connection every 300 queries it stays under one connection's worth.
    bounded, reconnects = _growth_mib(store_dir, sql, calls=1500, per_connection=300)
    assert reconnects >= 4
    assert kept > 2 * max(bounded, 0.25), (kept, bounded)
