"""Write an Iceberg v2 table in the pipeline's layout: for the demo, the tests and the benchmark.

This is the other side of :mod:`o11y_data.ingest.iceberg`: it produces zstd Parquet data files
partitioned by day of ``__ingest_ts``, a manifest per commit, a manifest list per snapshot and
numbered ``NNNNN-<uuid>.metadata.json`` files with absolute ``s3://`` paths, as R2 Data Catalog
does. Objects go through a ``put(key, bytes)`` callable, so the same writer fills a folder or a
test's S3 server.
The dashboard itself never calls this against the bucket it reads.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

Put = Callable[[str, bytes], None]

UNSTRUCTURED_SCHEMA = pa.schema(
    [pa.field("__ingest_ts", pa.timestamp("us", tz="UTC")), pa.field("value", pa.string())]
)

_MANIFEST_FILE_SCHEMA = {
    "type": "record",
    "name": "manifest_file",
    "fields": [
        {"name": "manifest_path", "type": "string", "field-id": 500},
        {"name": "manifest_length", "type": "long", "field-id": 501},
        {"name": "partition_spec_id", "type": "int", "field-id": 502},
        {"name": "content", "type": "int", "field-id": 517},
        {"name": "sequence_number", "type": "long", "field-id": 515},
        {"name": "min_sequence_number", "type": "long", "field-id": 516},
        {"name": "added_snapshot_id", "type": "long", "field-id": 503},
        {"name": "added_files_count", "type": "int", "field-id": 504},
        {"name": "existing_files_count", "type": "int", "field-id": 505},
        {"name": "deleted_files_count", "type": "int", "field-id": 506},
        {"name": "added_rows_count", "type": "long", "field-id": 512},
        {"name": "existing_rows_count", "type": "long", "field-id": 513},
        {"name": "deleted_rows_count", "type": "long", "field-id": 514},
    ],
}

_MANIFEST_ENTRY_SCHEMA = {
    "type": "record",
    "name": "manifest_entry",
    "fields": [
        {"name": "status", "type": "int", "field-id": 0},
        {"name": "snapshot_id", "type": ["null", "long"], "default": None, "field-id": 1},
        {"name": "sequence_number", "type": ["null", "long"], "default": None, "field-id": 3},
        {"name": "file_sequence_number", "type": ["null", "long"], "default": None, "field-id": 4},
        {
            "name": "data_file",
            "field-id": 2,
            "type": {
                "type": "record",
                "name": "r2",
                "fields": [
                    {"name": "content", "type": "int", "field-id": 134},
                    {"name": "file_path", "type": "string", "field-id": 100},
                    {"name": "file_format", "type": "string", "field-id": 101},
                    {
                        "name": "partition",
                        "field-id": 102,
                        "type": {
                            "type": "record",
                            "name": "r102",
                            "fields": [
                                {
                                    "name": "__ingest_ts_day",
                                    "type": ["null", {"type": "int", "logicalType": "date"}],
                                    "default": None,
                                    "field-id": 1000,
                                }
                            ],
                        },
                    },
                    {"name": "record_count", "type": "long", "field-id": 103},
                    {"name": "file_size_in_bytes", "type": "long", "field-id": 104},
                ],
            },
        },
    ],
}


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def unstructured_table(rows: Sequence[tuple[datetime, str]]) -> pa.Table:
    """Rows of (``__ingest_ts``, ``value``) in the unstructured stream's shape."""
    return pa.table(
        {"__ingest_ts": [r[0] for r in rows], "value": [r[1] for r in rows]},
        schema=UNSTRUCTURED_SCHEMA,
    )


@dataclass
class _Manifest:
    key: str
    length: int
    snapshot_id: int
    sequence_number: int
    entries: list[tuple[int, str, int, int, int]]  # status, key, records, size, day


@dataclass
class TableWriter:
    """Appends and compactions on one table; each call commits one snapshot."""

    put: Put
    bucket: str
    table_prefix: str  # "__r2_data_catalog/<catalog-id>/<table-id>/"
    columns: list[tuple[str, str]] = field(
        default_factory=lambda: [("__ingest_ts", "timestamptz"), ("value", "string")]
    )
    version: int = -1
    sequence_number: int = 0
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    manifests: list[_Manifest] = field(default_factory=list)
    table_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    clock: Callable[[], float] = time.time
    max_manifests: int = 64

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def data_key(self, day: str, name: str | None = None) -> str:
        return f"{self.table_prefix}data/__ingest_ts_day={day}/{name or uuid.uuid4()}.parquet"

    def write_data(self, table: pa.Table, *, name: str | None = None) -> tuple[str, int, int, int]:
        """Write one data file (not yet committed): returns (key, records, size, day). A data
        file belongs to one partition, so every row must land on one UTC day of
        ``__ingest_ts``: a table spanning days is refused (:meth:`write_days` splits it)."""
        days = _ingest_days(table)
        if len(days) > 1:
            raise ValueError(
                f"rows on {len(days)} days of __ingest_ts in one data file: use write_days"
            )
        if None in days:
            raise ValueError("rows without __ingest_ts: the writer has no NULL partition")
        first = next(iter(days), 0)
        data = parquet_bytes(table)
        key = self.data_key(_day_text(first), name)
        self.put(key, data)
        return key, table.num_rows, len(data), first

    def write_days(
        self, table: pa.Table, *, name: str | None = None
    ) -> list[tuple[str, int, int, int]]:
        """Write ``table`` as one data file per UTC day of ``__ingest_ts`` (its partitions), in
        day order, as an Iceberg writer does; ``name`` gets the day appended when the table
        spans days."""
        import pyarrow.compute as pc

        days = sorted(d for d in _ingest_days(table) if d is not None)
        if len(days) <= 1:
            return [self.write_data(table, name=name)]
        day_of = _day_numbers(table)
        out = []
        for d in days:
            part = table.filter(pc.equal(day_of, d))
            out.append(self.write_data(part, name=f"{name}-{_day_text(d)}" if name else None))
        if any(v is None for v in day_of.to_pylist()):
            raise ValueError("rows without __ingest_ts: the writer has no NULL partition")
        return out

    def _write_manifest(self, snapshot_id: int, entries: list[tuple[int, str, int, int, int]]):
        import fastavro

        records = [
            {
                "status": status,
                "snapshot_id": snapshot_id,
                "sequence_number": self.sequence_number if status == 1 else None,
                "file_sequence_number": self.sequence_number if status == 1 else None,
                "data_file": {
                    "content": 0,
                    "file_path": self.uri(key),
                    "file_format": "PARQUET",
                    "partition": {"__ingest_ts_day": day},
                    "record_count": records,
                    "file_size_in_bytes": size,
                },
            }
            for status, key, records, size, day in entries
        ]
        buf = io.BytesIO()
        meta = {
            "schema": json.dumps(self._schema()),
            "partition-spec": json.dumps(self._spec()["fields"]),
            "partition-spec-id": "0",
            "format-version": "2",
            "content": "data",
        }
        fastavro.writer(buf, fastavro.parse_schema(_MANIFEST_ENTRY_SCHEMA), records, metadata=meta)
        key = f"{self.table_prefix}metadata/{uuid.uuid4()}-m0.avro"
        self.put(key, buf.getvalue())
        return _Manifest(key, len(buf.getvalue()), snapshot_id, self.sequence_number, entries)

    def _schema(self) -> dict[str, Any]:
        return {
            "type": "struct",
            "schema-id": 0,
            "fields": [
                {"id": i + 1, "name": n, "required": False, "type": t}
                for i, (n, t) in enumerate(self.columns)
            ],
        }

    def _spec(self) -> dict[str, Any]:
        return {
            "spec-id": 0,
            "fields": [
                {"name": "__ingest_ts_day", "transform": "day", "source-id": 1, "field-id": 1000}
            ],
        }

    def commit(
        self,
        added: Sequence[tuple[str, int, int, int]],
        removed: Sequence[str] = (),
        *,
        operation: str = "append",
    ) -> str:
        """Commit a snapshot that adds ``added`` files and drops ``removed`` keys."""
        import fastavro

        self.sequence_number += 1
        snapshot_id = int(uuid.uuid4().int >> 65)
        gone = set(removed)
        kept: list[_Manifest] = []
        for m in self.manifests:
            if not gone & {e[1] for e in m.entries if e[0] != 2}:
                kept.append(m)
                continue
            entries = [(2 if e[1] in gone else 0, *e[1:]) for e in m.entries if e[0] != 2]
            kept.append(self._write_manifest(snapshot_id, entries))
        if added:
            kept.append(self._write_manifest(snapshot_id, [(1, *a) for a in added]))
        if len(kept) > self.max_manifests:
            # Manifest rewrite, as table maintenance does: one manifest for every live file, so
            # a long-lived table's manifest list stays small.
            entries = [
                (e[0] if m.snapshot_id == snapshot_id else 0, *e[1:])
                for m in kept
                for e in m.entries
                if e[0] != 2
            ]
            kept = [self._write_manifest(snapshot_id, entries)]
        buf = io.BytesIO()
        records = []
        for m in kept:
            live = [e for e in m.entries if e[0] != 2]
            records.append(
                {
                    "manifest_path": self.uri(m.key),
                    "manifest_length": m.length,
                    "partition_spec_id": 0,
                    "content": 0,
                    "sequence_number": m.sequence_number,
                    "min_sequence_number": m.sequence_number,
                    "added_snapshot_id": m.snapshot_id,
                    "added_files_count": sum(e[0] == 1 for e in m.entries),
                    "existing_files_count": sum(e[0] == 0 for e in m.entries),
                    "deleted_files_count": sum(e[0] == 2 for e in m.entries),
                    "added_rows_count": sum(e[2] for e in live if e[0] == 1),
                    "existing_rows_count": sum(e[2] for e in live if e[0] == 0),
                    "deleted_rows_count": sum(e[2] for e in m.entries if e[0] == 2),
                }
            )
        fastavro.writer(buf, fastavro.parse_schema(_MANIFEST_FILE_SCHEMA), records)
        list_key = f"{self.table_prefix}metadata/snap-{snapshot_id}-1-{uuid.uuid4()}.avro"
        self.put(list_key, buf.getvalue())
        # Manifests that only record deletions matter for this snapshot alone.
        self.manifests = [m for m in kept if any(e[0] != 2 for e in m.entries)]

        now_ms = int(self.clock() * 1000)
        parent = self.snapshots[-1]["snapshot-id"] if self.snapshots else None
        self.snapshots.append(
            {
                "snapshot-id": snapshot_id,
                "parent-snapshot-id": parent,
                "sequence-number": self.sequence_number,
                "timestamp-ms": now_ms,
                "manifest-list": self.uri(list_key),
                "summary": {"operation": operation},
                "schema-id": 0,
            }
        )
        self.version += 1
        metadata = {
            "format-version": 2,
            "table-uuid": self.table_uuid,
            "location": self.uri(self.table_prefix.rstrip("/")),
            "last-sequence-number": self.sequence_number,
            "last-updated-ms": now_ms,
            "last-column-id": len(self.columns),
            "current-schema-id": 0,
            "schemas": [self._schema()],
            "default-spec-id": 0,
            "partition-specs": [self._spec()],
            "last-partition-id": 1000,
            "default-sort-order-id": 0,
            "sort-orders": [{"order-id": 0, "fields": []}],
            "properties": {"write.parquet.compression-codec": "zstd"},
            "current-snapshot-id": snapshot_id,
            "refs": {"main": {"snapshot-id": snapshot_id, "type": "branch"}},
            "snapshots": self.snapshots[-20:],
            "snapshot-log": [
                {"timestamp-ms": s["timestamp-ms"], "snapshot-id": s["snapshot-id"]}
                for s in self.snapshots[-20:]
            ],
            "metadata-log": [],
        }
        key = f"{self.table_prefix}metadata/{self.version:05d}-{uuid.uuid4()}.metadata.json"
        self.put(key, json.dumps(metadata, indent=1).encode())
        return key

    def append(self, tables: Sequence[pa.Table]) -> list[str]:
        """Write each table as a data file and commit them in one snapshot; returns their keys."""
        written = [w for t in tables for w in self.write_days(t)]
        self.commit(written)
        return [w[0] for w in written]

    def compact(self, keys: Sequence[str], merged: pa.Table) -> list[str]:
        """Replace ``keys`` by one ``compacted-*`` file per day of ``merged`` (in day order),
        keeping the old files in ``data/``; returns the new keys."""
        written = self.write_days(merged, name=f"compacted-{uuid.uuid4()}")
        self.commit(written, removed=keys, operation="replace")
        return [w[0] for w in written]

    def state(self) -> dict[str, Any]:
        """Serializable state, so a later process can keep appending (the live demo)."""
        return {
            "version": self.version,
            "sequence_number": self.sequence_number,
            "snapshots": self.snapshots[-20:],
            "table_uuid": self.table_uuid,
            "columns": self.columns,
            "manifests": [
                {
                    "key": m.key,
                    "length": m.length,
                    "snapshot_id": m.snapshot_id,
                    "sequence_number": m.sequence_number,
                    "entries": m.entries,
                }
                for m in self.manifests
            ],
        }

    @classmethod
    def from_state(cls, put: Put, bucket: str, table_prefix: str, state: dict[str, Any]):
        w = cls(put=put, bucket=bucket, table_prefix=table_prefix)
        w.version = state["version"]
        w.sequence_number = state["sequence_number"]
        w.snapshots = state["snapshots"]
        w.table_uuid = state["table_uuid"]
        w.columns = [tuple(c) for c in state["columns"]]  # type: ignore[misc]
        w.manifests = [
            _Manifest(
                m["key"],
                m["length"],
                m["snapshot_id"],
                m["sequence_number"],
                [tuple(e) for e in m["entries"]],  # type: ignore[misc]
            )
            for m in state["manifests"]
        ]
        return w


def _day_numbers(table: pa.Table) -> pa.Array:
    """Each row's UTC day of ``__ingest_ts`` as days since 1970-01-01 (NULL stays NULL)."""
    import pyarrow.compute as pc

    micros = pc.cast(pc.cast(table.column("__ingest_ts"), pa.timestamp("us", tz="UTC")), pa.int64())
    return pc.cast(pc.floor(pc.divide(pc.cast(micros, pa.float64()), 86_400_000_000)), pa.int64())


def _ingest_days(table: pa.Table) -> set[int | None]:
    return set(_day_numbers(table).unique().to_pylist()) if table.num_rows else set()


def _day_text(day: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)).strftime("%Y-%m-%d")


def folder_put(root: Path, *, durable: bool = True) -> Put:
    """A ``put`` that writes objects as files under ``root`` (atomically). ``durable=False``
    skips the fsync of each file: the caller makes them durable in one go
    (``sync.flush_to_disk``) before anything names them as complete."""

    def put(key: str, data: bytes) -> None:
        from .source import atomic_write_stream

        atomic_write_stream(root / key, iter([data]), durable=durable)

    return put
