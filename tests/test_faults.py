"""Faults the dashboard will meet, each tried against a real S3 server through a fault proxy."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from o11y_data import O11yError, load_settings, open_db, sync
from o11y_data.background import BackgroundSyncer
from o11y_data.ingest.source import RetryPolicy
from o11y_data.query import queries as q
from tests.support.tables import (
    T0,
    append,
    event,
    new_table,
    plain_parquet,
    r2_settings,
    rows,
    s3_put,
)


def count(db) -> int:
    return int(db.query("SELECT count(*) AS n FROM events_all").iloc[0].n)


def test_throttling_and_server_errors_are_retried_with_backoff(s3_admin, bucket, proxy, tmp_path):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    append(writer, rows([event()]), rows([event()]))
    proxy.fail_next(3, status=503, code="SlowDown")
    report = sync(r2_settings(proxy.endpoint, bucket, tmp_path))
    assert report.rows == 2
    assert sum(1 for m, _ in proxy.requests) >= 3 + 1


def test_persistent_server_errors_stop_after_bounded_retries(s3_admin, bucket, proxy, tmp_path):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    append(writer, rows([event()]))
    proxy.fail_next(10_000, status=500, code="InternalError")
    with pytest.raises(O11yError, match="unavailable"):
        sync(r2_settings(proxy.endpoint, bucket, tmp_path))
    assert len(proxy.requests) == RetryPolicy().tries  # one request, retried to the bound


def test_unreachable_r2_keeps_the_cache_and_recovers_by_itself(s3_admin, bucket, proxy, tmp_path):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    append(writer, rows([event(ms=1)]))
    settings = r2_settings(proxy.endpoint, bucket, tmp_path)
    syncer = BackgroundSyncer(settings, interval_s=5)
    assert syncer.run_once() is not None
    db = open_db(settings)
    assert count(db) == 1
    append(writer, rows([event(ms=2)]))
    proxy.set_down(True)
    assert syncer.run_once() is None
    assert "Cannot reach R2" in syncer.state.last_error
    assert count(db) == 1  # the cache still serves
    fresh = q.freshness(db)
    assert "Cannot reach R2" in fresh["last_error"]
    proxy.set_down(False)
    assert syncer.run_once() is not None and syncer.state.last_error is None
    assert count(db) == 2
    assert q.freshness(db)["last_error"] is None


def test_a_damaged_cache_segment_is_left_out_then_rebuilt(s3_admin, bucket, proxy, tmp_path):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    append(writer, rows([event(ms=1)]))
    settings = r2_settings(proxy.endpoint, bucket, tmp_path)
    sync(settings)
    append(writer, rows([event(ms=2)]))
    sync(settings)
    db = open_db(settings)
    segs = sorted((settings.store_dir / "segments").glob("seg-*.parquet"))
    assert len(segs) == 2
    victim = segs[0]
    victim.write_bytes(victim.read_bytes()[:40])  # truncated on disk
    db._number = None  # as after a restart
    assert count(db) == 1 and q.freshness(db)["damaged_segments"] == 1
    proxy.clear_requests()
    report = sync(settings)
    assert report.rows == 2
    db2 = open_db(settings)
    assert sorted(db2.query("SELECT duration_ms FROM cycles").duration_ms) == [1, 2]
    assert q.freshness(db2)["damaged_segments"] == 0
    assert not [p for m, p in proxy.requests if ".parquet" in p]  # rebuilt from the local copy


def test_schema_drift_wrong_types_and_missing_fields_follow_the_contract(
    s3_admin, bucket, tmp_path, moto_endpoint
):
    import pyarrow as pa

    from o11y_data.ingest.iceberg_write import parquet_bytes

    writer = new_table(s3_put(s3_admin, bucket), bucket)
    writer.columns = [
        ("__ingest_ts", "timestamptz"),
        ("agent", "string"),
        ("mode", "string"),
        ("durationMs", "string"),
        ("event_type", "string"),
        ("newField", "double"),
    ]
    t1 = pa.table(
        {
            "__ingest_ts": pa.array([T0, T0], pa.timestamp("us", tz="UTC")),
            "agent": ["did:cf:x", "did:cf:y"],
            "mode": ["think", None],
            "durationMs": ["1200", "n/a"],
            "event_type": ["agent.cycle", "agent.cycle"],
            "newField": [1.5, None],
        }
    )
    # A later file that lost columns and changed a type: no errors column, toolCalls as bool.
    t2 = pa.table(
        {
            "__ingest_ts": pa.array([T0], pa.timestamp("us", tz="UTC")),
            "agent": ["did:cf:z"],
            "durationMs": ["3"],
            "event_type": ["agent.cycle"],
            "toolCalls": [True],
        }
    )
    keys = []
    for i, t in enumerate((t1, t2)):
        data = parquet_bytes(t)
        key = f"{writer.table_prefix}data/__ingest_ts_day=2026-11-02/drift-{i}.parquet"
        s3_admin.put_object(Bucket=bucket, Key=key, Body=data)
        keys.append((key, t.num_rows, len(data), 0))
    writer.commit(keys)
    settings = r2_settings(moto_endpoint, bucket, tmp_path)
    report = sync(settings)
    assert report.rows == 3 and not report.bad_files
    df = open_db(settings).query(
        "SELECT agent, mode, duration_ms, tool_calls, errors FROM cycles ORDER BY agent"
    )
    got = [
        tuple(None if not isinstance(v, str) and pd.isna(v) else v for v in r)
        for r in df.itertuples(index=False)
    ]
    assert got == [
        ("did:cf:x", "think", 1200, None, None),
        ("did:cf:y", "unknown", None, None, None),
        ("did:cf:z", "unknown", 3, None, None),
    ]


def test_timestamps_far_in_the_future_or_past_are_kept_at_their_landing_time(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    far = [
        event(ts=None, _ts="9999-12-31T23:59:59Z", ms=1),
        event(ts=None, _ts="1970-01-01T00:00:00Z", ms=2),
        event(ts=None, _ts="0001-01-01T00:00:00Z", ms=3),
        event(ms=4),
    ]
    (src / "a.parquet").write_bytes(plain_parquet(rows(far)))
    s = load_settings(
        {"O11Y_SOURCE_DIR": str(src), "O11Y_CACHE_DIR": str(tmp_path / "c")}, secrets_paths=[]
    )
    sync(s)
    db = open_db(s)
    df = db.query("SELECT ts, ingest_ts, duration_ms FROM cycles ORDER BY duration_ms")
    # docs/events.md's valid range: a _ts before 2000 or far ahead of landing is out of it, so
    # the event is kept at its landing time (and counted by field, see test_out_of_range.py).
    assert list(df.ts[:3]) == list(df.ingest_ts[:3])
    assert [t.year for t in df.ts] == [T0.year] * 4
    assert len(q.cycles_over_time(db, by="mode")) >= 1
    f = q.Filters(start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2027, 1, 1, tzinfo=UTC))
    assert int(q.summary(db, f).cycles.sum()) == 4


def test_metadata_that_is_not_json_is_one_line(s3_admin, bucket, tmp_path, moto_endpoint):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    append(writer, rows([event()]))
    s3_admin.put_object(
        Bucket=bucket, Key=f"{writer.table_prefix}metadata/00009-x.metadata.json", Body=b"{not json"
    )
    with pytest.raises(O11yError, match="unreadable metadata"):
        sync(r2_settings(moto_endpoint, bucket, tmp_path))
    pinned = r2_settings(moto_endpoint, bucket, tmp_path, O11Y_TABLE_PREFIX=writer.table_prefix)
    with pytest.raises(O11yError, match="Bad table metadata: .*00009-x.metadata.json is not JSON"):
        sync(pinned)
