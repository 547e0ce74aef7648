"""EventsDB replaces its DuckDB connection once enough files it read have been replaced by syncs:
DuckDB keeps every Parquet footer it cached for the connection's life (the app's memory grew
with every sync, bench/team.md), and queries keep answering across the swap."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from o11y_data import EventsDB, load_settings, sync
from o11y_data.ingest.iceberg_write import TableWriter, folder_put, unstructured_table
from o11y_data.query import db as dbmod

PREFIX = "__r2_data_catalog/t/events/"
T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def _rows(start: int, n: int) -> list:
    out = []
    for i in range(start, start + n):
        ts = T0 + timedelta(minutes=i)
        body = {"event_type": "agent.cycle", "agent": "did:cf:a", "mode": "think"}
        body |= {"durationMs": 100 + i, "toolCalls": 1, "errors": 0, "_ts": ts.isoformat()}
        out.append((ts + timedelta(seconds=1), json.dumps(body)))
    return out


def _object_cache_bytes(conn) -> int:
    cur = conn.cursor()
    try:
        rows = cur.execute(
            "SELECT memory_usage_bytes FROM duckdb_memory() WHERE tag = 'OBJECT_CACHE'"
        ).fetchall()
    finally:
        cur.close()
    return int(rows[0][0]) if rows else 0


def _synced_table(tmp_path):
    """A folder table of 20 rows, synced once: its settings and its writer."""
    settings = load_settings(
        {"O11Y_SOURCE_DIR": str(tmp_path / "src"), "O11Y_CACHE_DIR": str(tmp_path / "cache")},
        secrets_paths=[],
    )
    writer = TableWriter(
        put=folder_put(tmp_path / "src"), bucket="agent-blobs", table_prefix=PREFIX
    )
    writer.append([unstructured_table(_rows(0, 20))])
    sync(settings)
    return settings, writer


def test_a_connection_is_replaced_after_enough_replaced_files_and_queries_still_answer(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(dbmod, "STALE_FILES_LIMIT", 12)
    settings, writer = _synced_table(tmp_path)
    db = EventsDB(settings.store_dir)
    first = db.conn
    written = 20
    try:
        for round_ in range(1, 7):
            writer.append([unstructured_table(_rows(written, 10))])
            written += 10
            sync(settings)
            n = db.query("SELECT count(*) AS n FROM events").iloc[0]["n"]
            assert n == written, round_  # the rows written, across every swap
        assert db.reconnects >= 1 and db.conn is not first
        # The old connection kept the footers of every file it read; the new one only its own.
        assert _object_cache_bytes(db.conn) < _object_cache_bytes(first)
    finally:
        db.close()


def test_a_connection_is_replaced_after_enough_queries_and_answers_stay_right(
    tmp_path, monkeypatch
):
    # DuckDB keeps memory per query until the database closes (tests/test_db_memory.py).
    monkeypatch.setattr(dbmod, "QUERIES_PER_CONNECTION", 10)
    settings, writer = _synced_table(tmp_path)
    db = EventsDB(settings.store_dir)
    first = db.conn
    try:
        for i in range(35):  # no new generation: only the query count replaces the connection
            n = db.fetch("SELECT count(*) AS n FROM events WHERE duration_ms >= ?", [100 + i % 20])
            assert n == [{"n": 20 - i % 20}], i
        assert db.reconnects == 3 and db.conn is not first
        assert db.generation.number == 1
    finally:
        db.close()
