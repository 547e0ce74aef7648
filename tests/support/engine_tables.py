"""A small event history for the engine and routing tests: a plain folder of Parquet files (every
file live) synced into a store, the same files served by the R2 SQL fake, and a way to give the
store a raw horizon (``raw_from_us`` in its published head, as the sync will write it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from o11y_data import load_settings, sync
from o11y_data.config import Settings
from o11y_data.ingest import rollups
from o11y_data.ingest.store import Store
from tests.support.tables import event, local_env, plain_parquet

START = datetime(2026, 10, 1, tzinfo=UTC)
AGENTS = ("did:cf:alpha", "did:cf:beta", "did:cf:gamma")
MODES = ("think", "reflection", "housekeeping")

# The exact measures the store and every engine must answer alike (counts, sums, rates, first and
# last times; percentiles are compared apart, where both are exact).
COMPARED_MEASURES = (
    "cycles",
    "errors",
    "tools",
    "durations",
    "error_cycles",
    "avg_ms",
    "avg_tools",
    "error_rate",
    "errors_per_cycle",
    "agents",
    "unknown_cycles",
    "unknown_errors",
    "think_share",
    "first_ts",
    "last_ts",
)


def history(days: int = 12, per_day: int = 5) -> list[list[tuple[datetime, str]]]:
    """One file per day of (ingest_ts, value) rows, with the contract's awkward values mixed in:
    numeric strings, out-of-range numbers, a missing agent, a bad _ts, unparseable rows."""
    files = []
    n = 0
    for d in range(days):
        rows = []
        for i in range(per_day):
            t = START + timedelta(days=d, hours=i * 4, minutes=n % 50, seconds=n % 7)
            ms: Any = 1000 + (n * 7919) % 30000
            if n % 11 == 3:
                ms = str(ms)  # a numeric string parses
            if n % 13 == 5:
                ms = -4  # out of range: NULL, the event kept
            agent = "" if n % 17 == 9 else AGENTS[n % 3]
            ts = None if n % 19 == 7 else t
            rows.append(
                (
                    t + timedelta(seconds=3),
                    event(
                        agent=agent,
                        mode=MODES[n % 3],
                        ms=ms,
                        tools=n % 4,
                        errors=n % 5 == 0 and 2 or 0,
                        ts=ts,
                        event_type="agent.cycle" if n % 9 else "agent.note",
                    ),
                )
            )
            n += 1
        rows.append((START + timedelta(days=d, hours=23), "{cut short"))
        files.append(rows)
    return files


def write_folder(src: Path, files: list[list[tuple[datetime, str]]]) -> None:
    src.mkdir(parents=True, exist_ok=True)
    for i, rows in enumerate(files):
        (src / f"part-{i:04d}.parquet").write_bytes(plain_parquet(rows))


def folder_rows(src: Path) -> pa.Table:
    """Every row of the folder (every file is live): what the fake serves."""
    tables = [pq.read_table(p) for p in sorted(src.glob("*.parquet"))]
    return pa.concat_tables(tables).select(["__ingest_ts", "value"])


def synced_settings(src: Path, root: Path, **extra: str) -> Settings:
    settings = load_settings(local_env(src, root, **extra), secrets_paths=[])
    sync(settings)
    return settings


def set_raw_from(store_dir: Path, when: datetime | None) -> None:
    """Give the published head a raw horizon (what i21store's sync records)."""
    store = Store(store_dir)
    path = store.head_path(store.current_number())
    head = json.loads(path.read_text())
    head["raw_from_us"] = None if when is None else int(when.timestamp() * 1_000_000)
    path.write_text(json.dumps(head))


def arrow_rows(rows: list[tuple[datetime, str]]) -> pa.Table:
    """(ingest_ts, value) rows as the table's Arrow shape."""
    return pa.table(
        {
            "__ingest_ts": pa.array([t for t, _ in rows], pa.timestamp("us", tz="UTC")),
            "value": pa.array([v for _, v in rows], pa.string()),
        }
    )


def leftovers_orphan_deletes(ref: Any, days: list[list[tuple[datetime, str]]]) -> None:
    """Fill a pyiceberg RefTable with four days as tests/test_engines.py builds it: compaction
    leftovers (the first days rewritten into one file, the old files left in data/), an orphan
    named by no manifest, and one position delete file in each of two partitions."""
    from tests.support.reference_tables import TABLE_PREFIX
    from tests.support.tables import plain_parquet

    for rows in days[:3]:
        ref.append(arrow_rows(rows))
    ref.table.overwrite(arrow_rows(days[0] + days[1]))
    ref.append(arrow_rows(days[3]))
    ref.put(f"{TABLE_PREFIX}data/orphan-0001.parquet", plain_parquet(days[2]))
    live = sorted(ref.data_files())
    ref.delete_positions({live[0]: [0, 3, 5]})
    ref.delete_positions({live[-1]: [1]})


def rollup_rows(settings: Settings) -> dict[str, list[tuple]]:
    """Every rollup table of the published generation, as sorted rows (DuckDB over Parquet)."""
    store = Store(settings.store_dir)
    head = store.load_head()
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        out = {}
        for table in rollups.TABLES:
            sql = rollups.view_sql(store.rollups, head.rollups, table)
            out[table] = sorted(con.execute(f"SELECT * FROM ({sql})").fetchall(), key=repr)
        return out
    finally:
        con.close()
