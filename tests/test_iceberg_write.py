"""The test and bench table writer (o11y_data/ingest/iceberg_write.py) against pyiceberg, the
reference reader: every data file's partition day must hold its rows, or a reader pruning by
partition (the sync's horizon, an engine's window) silently drops rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from o11y_data.ingest.iceberg_write import TableWriter, unstructured_table
from tests.support.tables import PREFIX, event, s3_put

pytestmark = pytest.mark.s3

MIDNIGHT = datetime(2026, 11, 3, tzinfo=UTC)


def _static(endpoint: str, bucket: str, key: str) -> Any:
    from pyiceberg.table import StaticTable

    return StaticTable.from_metadata(
        f"s3://{bucket}/{key}",
        properties={
            "s3.endpoint": endpoint,
            "s3.access-key-id": "testing",
            "s3.secret-access-key": "testing",
            "s3.region": "us-east-1",
        },
    )


def _rows_across_midnights() -> list[tuple[datetime, str]]:
    """Rows every 20 minutes from 23:00 the day before MIDNIGHT to 01:00 two days after."""
    start = MIDNIGHT - timedelta(hours=1)
    return [(start + timedelta(minutes=20 * i), event(ms=i)) for i in range(3 * 24 * 3 - 6)]


def _day(t: datetime) -> int:
    return (t.date() - datetime(1970, 1, 1).date()).days


def _file_rows(s3: Any, bucket: str, uri: str) -> pa.Table:
    key = uri.split(f"s3://{bucket}/", 1)[1]
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(pa.BufferReader(body))


def test_a_table_spanning_days_is_written_one_file_per_day_as_pyiceberg_plans_it(
    s3_admin, bucket, moto_endpoint
):
    from pyiceberg.expressions import GreaterThanOrEqual

    rows = _rows_across_midnights()
    writer = TableWriter(put=s3_put(s3_admin, bucket), bucket=bucket, table_prefix=PREFIX)
    keys = writer.append([unstructured_table(rows)])
    metadata_key = writer.commit([])  # a second snapshot: the files stay live
    table = _static(moto_endpoint, bucket, metadata_key)

    tasks = list(table.scan().plan_files())
    assert len(tasks) == len(keys) == 4  # 23:00-24:00, then three whole-or-part days
    for task in tasks:
        (label,) = task.file.partition
        got = _file_rows(s3_admin, bucket, task.file.file_path).column("__ingest_ts").to_pylist()
        assert {_day(t) for t in got} == {label}, task.file.file_path
    # Pruning by the partition (what a reader does for a window) keeps every row of the window.
    since = MIDNIGHT + timedelta(days=1, minutes=30)
    pruned = table.scan(row_filter=GreaterThanOrEqual("__ingest_ts", since.isoformat()))
    kept = [
        t
        for task in pruned.plan_files()
        for t in _file_rows(s3_admin, bucket, task.file.file_path)["__ingest_ts"].to_pylist()
    ]
    assert sorted(t for t in kept if t >= since) == [t for t, _ in rows if t >= since]


def test_a_compaction_across_days_writes_a_file_per_day(s3_admin, bucket, moto_endpoint):
    rows = _rows_across_midnights()
    writer = TableWriter(put=s3_put(s3_admin, bucket), bucket=bucket, table_prefix=PREFIX)
    old = writer.append([unstructured_table(rows[:40]), unstructured_table(rows[40:])])
    writer.compact(old, unstructured_table(rows))
    table = _static(moto_endpoint, bucket, writer.commit([]))
    tasks = list(table.scan().plan_files())
    assert len(tasks) == 4 and all("compacted-" in t.file.file_path for t in tasks)
    for task in tasks:
        (label,) = task.file.partition
        got = _file_rows(s3_admin, bucket, task.file.file_path).column("__ingest_ts").to_pylist()
        assert {_day(t) for t in got} == {label}


def test_one_data_file_spanning_days_is_refused_in_one_line():
    writer = TableWriter(put=lambda k, b: None, bucket="b", table_prefix=PREFIX)
    with pytest.raises(ValueError, match="rows on 4 days of __ingest_ts in one data file"):
        writer.write_data(unstructured_table(_rows_across_midnights()))
