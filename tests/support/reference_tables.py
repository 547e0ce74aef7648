"""Iceberg tables written by pyiceberg, the reference implementation, straight into moto_server.

pyiceberg writes the data files, manifests and metadata (a SqlCatalog on sqlite, its warehouse
in the test's bucket) and is the oracle: ``RefTable.reference()`` is ``table.scan().to_arrow()``.
Delete files pyiceberg cannot write (it only rewrites files) are built here as the spec says: a
Parquet file of (file_path, pos) or of the equality columns, a delete manifest (content=1/2,
through pyiceberg's own manifest writer, with ``equality_ids`` a list of int as the spec has it),
a manifest list and a new snapshot committed through the catalog, so pyiceberg's scan then reads
the table with those deletes applied.
"""

from __future__ import annotations

import gzip
import io
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

NAMESPACE = "agent_network"
TABLE_PREFIX = "__r2_data_catalog/cat0001/tbl0001/"


def catalog(endpoint: str, db: Path, bucket: str) -> Any:
    from pyiceberg.catalog.sql import SqlCatalog

    cat = SqlCatalog(
        "ref",
        uri=f"sqlite:///{db}",
        warehouse=f"s3://{bucket}/wh",
        **{
            "s3.endpoint": endpoint,
            "s3.access-key-id": "testing",
            "s3.secret-access-key": "testing",
            "s3.region": "us-east-1",
        },
    )
    cat.create_namespace_if_not_exists(NAMESPACE)
    return cat


def unstructured_schema(value_type: str = "string") -> Any:
    from pyiceberg.schema import Schema
    from pyiceberg.types import BinaryType, NestedField, StringType, TimestamptzType

    value = BinaryType() if value_type == "binary" else StringType()
    return Schema(
        NestedField(1, "__ingest_ts", TimestamptzType(), required=False),
        NestedField(2, "value", value, required=False),
    )


def day_spec() -> Any:
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import DayTransform

    return PartitionSpec(PartitionField(1, 1000, DayTransform(), "__ingest_ts_day"))


def spec_manifest_schema(schema: Any) -> Any:
    """pyiceberg's manifest entry schema with ``equality_ids`` (field 135) a list of int, as the
    spec says: pyiceberg 0.12 writes long, which Java engines (Spark) reject."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import IntegerType, ListType, NestedField, StructType

    def fix(field: Any) -> Any:
        t = field.field_type
        if field.field_id == 135 and isinstance(t, ListType):
            t = ListType(
                element_id=t.element_id,
                element_type=IntegerType(),
                element_required=t.element_required,
            )
        elif isinstance(t, StructType):
            t = StructType(*[fix(f) for f in t.fields])
        return NestedField(
            field_id=field.field_id,
            name=field.name,
            field_type=t,
            required=field.required,
            doc=field.doc,
        )

    return Schema(*[fix(f) for f in schema.fields], schema_id=schema.schema_id)


@dataclass
class RefTable:
    """A pyiceberg table at ``TABLE_PREFIX`` in ``bucket``."""

    catalog: Any
    bucket: str
    s3: Any
    name: str = "events"

    @classmethod
    def create(
        cls,
        *,
        endpoint: str,
        s3: Any,
        bucket: str,
        db: Path,
        schema: Any = None,
        partitioned: bool = True,
    ) -> RefTable:
        from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC

        cat = catalog(endpoint, db, bucket)
        cat.create_table(
            f"{NAMESPACE}.events",
            schema if schema is not None else unstructured_schema(),
            partition_spec=day_spec() if partitioned else UNPARTITIONED_PARTITION_SPEC,
            location=f"s3://{bucket}/{TABLE_PREFIX.rstrip('/')}",
        )
        return cls(cat, bucket, s3)

    @property
    def table(self) -> Any:
        return self.catalog.load_table(f"{NAMESPACE}.{self.name}")

    def append(self, data: pa.Table) -> list[str]:
        """One commit adding ``data``; returns the URIs of the data files it added."""
        before = set(self.data_files())
        self.table.append(data)
        return sorted(set(self.data_files()) - before)

    def data_files(self) -> dict[str, Any]:
        """Live data files: URI -> pyiceberg DataFile (from the manifests: pyiceberg cannot plan
        a scan once the table has an equality delete)."""
        from pyiceberg.manifest import ManifestContent

        tbl = self.table
        snap = tbl.current_snapshot()
        if snap is None:
            return {}
        return {
            e.data_file.file_path: e.data_file
            for m in snap.manifests(tbl.io)
            if m.content == ManifestContent.DATA
            for e in m.fetch_manifest_entry(tbl.io, discard_deleted=True)
        }

    def reference(self) -> pa.Table:
        return self.table.scan().to_arrow()

    def metadata_key(self) -> str:
        return self.table.metadata_location.split(f"s3://{self.bucket}/", 1)[1]

    def key(self, uri: str) -> str:
        return uri.split(f"s3://{self.bucket}/", 1)[1]

    def put(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)

    # -- delete files, built as the spec says --------------------------------------------------

    def delete_positions(self, positions: dict[str, list[int]]) -> str:
        """Commit one position delete file removing ``positions`` (data file URI -> row
        positions); returns its key."""
        rows = sorted((uri, p) for uri, ps in positions.items() for p in ps)
        schema = pa.schema(
            [
                pa.field("file_path", pa.string(), False, {b"PARQUET:field_id": b"2147483546"}),
                pa.field("pos", pa.int64(), False, {b"PARQUET:field_id": b"2147483545"}),
            ]
        )
        table = pa.table({"file_path": [r[0] for r in rows], "pos": [r[1] for r in rows]}, schema)
        target = self.data_files()[rows[0][0]]
        bounds = {2147483546: (rows[0][0].encode(), rows[-1][0].encode())}
        return self._commit_delete(table, target, content=1, bounds=bounds)

    def delete_equal(self, column: str, values: list[Any], *, like: str) -> str:
        """Commit one equality delete file on ``column`` (rows whose value is in ``values``),
        in the partition of the data file ``like``; returns its key."""
        field = self.table.schema().find_field(column)
        from pyiceberg.io.pyarrow import schema_to_pyarrow
        from pyiceberg.schema import Schema

        arrow_schema = schema_to_pyarrow(Schema(field))
        table = pa.table({column: values}, arrow_schema)
        return self._commit_delete(
            table, self.data_files()[like], content=2, equality_ids=[field.field_id]
        )

    def delete_vector(self, uri: str, positions: list[int]) -> str:
        """Commit a v3 deletion vector (a ``deletion-vector-v1`` blob in a Puffin file, as the
        spec lays it out) removing ``positions`` of data file ``uri``; returns its key."""
        import zlib

        from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
        from pyroaring import BitMap64

        body = b"\xd1\xd3\x39\x64" + BitMap64(positions).serialize()
        blob = len(body).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
        footer = {
            "blobs": [
                {
                    "type": "deletion-vector-v1",
                    "fields": [2147483645],
                    "snapshot-id": -1,
                    "sequence-number": -1,
                    "offset": 4,
                    "length": len(blob),
                    "properties": {
                        "referenced-data-file": uri,
                        "cardinality": str(len(positions)),
                    },
                }
            ]
        }
        payload = json.dumps(footer).encode()
        magic = b"PFA1"
        data = magic + blob + magic + payload + len(payload).to_bytes(4, "little")
        data += b"\0\0\0\0" + magic
        target = self.data_files()[uri]
        path = f"{self.table.location()}/data/dv-{uuid.uuid4()}.puffin"
        self.put(self.key(path), data)
        delete = DataFile.from_args(
            _table_format_version=3,
            content=DataFileContent.POSITION_DELETES,
            file_path=path,
            file_format=FileFormat.PUFFIN,
            partition=target.partition,
            record_count=len(positions),
            file_size_in_bytes=len(data),
            referenced_data_file=uri,
            content_offset=4,
            content_size_in_bytes=len(blob),
        )
        delete.spec_id = target.spec_id
        return self._commit_delete_file(delete, version=3)

    def _commit_delete(
        self,
        data: pa.Table,
        target: Any,
        *,
        content: int,
        equality_ids: list[int] | None = None,
        bounds: dict[int, tuple[bytes, bytes]] | None = None,
    ) -> str:
        from pyiceberg.manifest import DataFile, DataFileContent, FileFormat

        buf = io.BytesIO()
        pq.write_table(data, buf)
        path = f"{self.table.location()}/data/deletes-{uuid.uuid4()}.parquet"
        self.put(self.key(path), buf.getvalue())
        delete = DataFile.from_args(
            content=DataFileContent(content),
            file_path=path,
            file_format=FileFormat.PARQUET,
            partition=target.partition,
            record_count=data.num_rows,
            file_size_in_bytes=len(buf.getvalue()),
            equality_ids=equality_ids,
            lower_bounds={k: v[0] for k, v in (bounds or {}).items()} or None,
            upper_bounds={k: v[1] for k, v in (bounds or {}).items()} or None,
        )
        delete.spec_id = target.spec_id
        return self._commit_delete_file(delete, version=2)

    def _commit_delete_file(self, delete: Any, *, version: int) -> str:
        """A delete manifest holding ``delete``, a manifest list and a snapshot, committed."""
        from pyiceberg.manifest import (
            ManifestContent,
            ManifestEntry,
            ManifestEntryStatus,
            ManifestWriterV2,
            write_manifest_list,
        )
        from pyiceberg.table.snapshots import Operation, Snapshot, Summary
        from pyiceberg.table.update import (
            AddSnapshotUpdate,
            AssertRefSnapshotId,
            SetSnapshotRefUpdate,
        )

        class DeleteManifestWriter(ManifestWriterV2):
            def content(self) -> ManifestContent:
                return ManifestContent.DELETES

            @property
            def version(self) -> Any:  # 3 writes the v3 fields a deletion vector needs
                return version

            @property
            def _meta(self) -> dict[str, str]:
                return {**super()._meta, "content": "deletes"}

            def new_writer(self) -> Any:  # records laid out as written (v3 fields kept)
                from pyiceberg.avro.file import AvroOutputFile

                schema = spec_manifest_schema(self._with_partition(version))
                return AvroOutputFile[ManifestEntry](
                    output_file=self._output_file,
                    file_schema=schema,
                    record_schema=schema,
                    schema_name="manifest_entry",
                    metadata=self._meta,
                )

        tbl = self.table
        loc = tbl.location()
        path = delete.file_path
        parent = tbl.current_snapshot()
        snapshot_id = tbl.metadata.new_snapshot_id()
        seq = tbl.metadata.next_sequence_number()
        manifest_path = f"{loc}/metadata/{uuid.uuid4()}-m0.avro"
        with DeleteManifestWriter(
            tbl.spec(), tbl.schema(), tbl.io.new_output(manifest_path), snapshot_id, "deflate"
        ) as writer:
            writer.add_entry(
                ManifestEntry.from_args(
                    _table_format_version=version,
                    status=ManifestEntryStatus.ADDED,
                    snapshot_id=snapshot_id,
                    data_file=delete,
                )
            )
        list_path = f"{loc}/metadata/snap-{snapshot_id}-0-{uuid.uuid4()}.avro"
        with write_manifest_list(
            2, tbl.io.new_output(list_path), snapshot_id, parent.snapshot_id, seq, "deflate"
        ) as lists:
            lists.add_manifests([*parent.manifests(tbl.io), writer.to_manifest_file()])
        snap = Snapshot(
            snapshot_id=snapshot_id,
            parent_snapshot_id=parent.snapshot_id,
            sequence_number=seq,
            timestamp_ms=int(time.time() * 1000),
            manifest_list=list_path,
            summary=Summary(operation=Operation.DELETE),
            schema_id=tbl.schema().schema_id,
        )
        tx = tbl.transaction()
        tx._apply(
            (
                AddSnapshotUpdate(snapshot=snap),
                SetSnapshotRefUpdate(
                    snapshot_id=snapshot_id,
                    parent_snapshot_id=parent.snapshot_id,
                    ref_name="main",
                    type="branch",
                ),
            ),
            (AssertRefSnapshotId(snapshot_id=parent.snapshot_id, ref="main"),),
        )
        tx.commit_transaction()
        return self.key(path)

    # -- manifests rewritten as other writers lay them out ---------------------------------------

    def manifest_list_key(self) -> str:
        return self.key(self.table.current_snapshot().manifest_list)

    def newest_data_manifest(self) -> str:
        """The key of the current snapshot's manifest that added the most recent files."""
        tbl = self.table
        snap = tbl.current_snapshot()
        mine = [m for m in snap.manifests(tbl.io) if m.added_snapshot_id == snap.snapshot_id]
        return self.key(mine[0].manifest_path)

    def rewrite_manifest_list(self, change: Any) -> None:
        """Rewrite the current manifest list in place, ``change(record)`` applied to each
        manifest's entry (same schema and file metadata)."""
        key = self.manifest_list_key()
        records, schema, meta, codec = _avro(self.s3.get_object(Bucket=self.bucket, Key=key))
        for r in records:
            change(r)
        self.put(key, _avro_bytes(records, schema, meta, codec))

    def reblock_manifest(self, key: str) -> bytes:
        """Rewrite manifest ``key`` with one entry per Avro block (as a writer flushing often
        does) and its manifest-list entry's ``manifest_length`` to match; returns its bytes."""
        records, schema, meta, codec = _avro(self.s3.get_object(Bucket=self.bucket, Key=key))
        data = _avro_bytes(records, schema, meta, codec, sync_interval=1)
        self.put(key, data)

        def length(r: dict[str, Any]) -> None:
            if r["manifest_path"].endswith(key):
                r["manifest_length"] = len(data)

        self.rewrite_manifest_list(length)
        return data

    def respell_locations(self, scheme: str) -> str:
        """A new metadata file naming the same state with every location of the current
        snapshot (manifest list, manifests, data files) spelled ``scheme://``; returns its key."""

        def respell(uri: str) -> str:
            return f"{scheme}://{uri.split('://', 1)[1]}"

        list_key = self.manifest_list_key()
        entries, schema, meta, codec = _avro(self.s3.get_object(Bucket=self.bucket, Key=list_key))
        for entry in entries:
            key = self.key(entry["manifest_path"])
            records, m_schema, m_meta, m_codec = _avro(
                self.s3.get_object(Bucket=self.bucket, Key=key)
            )
            for r in records:
                r["data_file"]["file_path"] = respell(r["data_file"]["file_path"])
            data = _avro_bytes(records, m_schema, m_meta, m_codec)
            self.put(key, data)
            entry["manifest_path"] = respell(entry["manifest_path"])
            entry["manifest_length"] = len(data)
        self.put(list_key, _avro_bytes(entries, schema, meta, codec))
        metadata = self.metadata()
        for snap in metadata["snapshots"]:
            snap["manifest-list"] = respell(snap["manifest-list"])
        metadata["location"] = respell(metadata["location"])
        version = int(self.metadata_key().rsplit("/", 1)[1].split("-", 1)[0])
        return self.put_metadata(version + 1, metadata)

    # -- metadata files written by other engines ------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        body = self.s3.get_object(Bucket=self.bucket, Key=self.metadata_key())["Body"].read()
        return json.loads(body)

    def put_metadata(self, version: int, metadata: dict[str, Any], *, gz: bool = False) -> str:
        """A metadata file with ``version`` (gzip-compressed as Java Iceberg names it)."""
        suffix = ".gz.metadata.json" if gz else ".metadata.json"
        key = f"{TABLE_PREFIX}metadata/{version:05d}-{uuid.uuid4()}{suffix}"
        body = json.dumps(metadata).encode()
        self.put(key, gzip.compress(body) if gz else body)
        return key


def as_v3(meta: dict[str, Any]) -> dict[str, Any]:
    """The same table state as format version 3 metadata (row lineage fields added)."""
    v3 = dict(meta, **{"format-version": 3})
    first = 0
    snaps = []
    for snap in meta["snapshots"]:
        added = int(snap.get("summary", {}).get("added-records", 0))
        snaps.append(dict(snap, **{"first-row-id": first, "added-rows": added}))
        first += added
    v3["snapshots"] = snaps
    v3["next-row-id"] = first
    return v3


def _avro(obj: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, str], str]:
    """An Avro file's records, schema as written (field ids kept), file metadata and codec."""
    import fastavro

    reader = fastavro.reader(io.BytesIO(obj["Body"].read()))
    schema = json.loads(reader.metadata["avro.schema"])
    meta = {k: v for k, v in reader.metadata.items() if not k.startswith("avro.")}
    return list(reader), schema, meta, reader.codec


def _avro_bytes(
    records: list[dict[str, Any]],
    schema: dict[str, Any],
    meta: dict[str, str],
    codec: str,
    *,
    sync_interval: int = 16000,
) -> bytes:
    import fastavro

    out = io.BytesIO()
    fastavro.writer(out, schema, records, codec=codec, metadata=meta, sync_interval=sync_interval)
    return out.getvalue()


def avro_blocks_cut(data: bytes, blocks: int) -> bytes:
    """An Avro file cut after its first ``blocks`` blocks: still valid Avro, fewer records.
    Every block ends with the file's sync marker, as the header does."""
    marker = data[-16:]
    ends = []
    at = data.find(marker)
    while at >= 0:
        ends.append(at + 16)
        at = data.find(marker, at + 16)
    return data[: ends[blocks]]  # ends[0] closes the header


def static_reference(endpoint: str, bucket: str, key: str) -> pa.Table:
    """What pyiceberg reads from one metadata file (no catalog): the oracle for hand-made
    metadata files."""
    from pyiceberg.table import StaticTable

    table = StaticTable.from_metadata(
        f"s3://{bucket}/{key}",
        properties={
            "s3.endpoint": endpoint,
            "s3.access-key-id": "testing",
            "s3.secret-access-key": "testing",
            "s3.region": "us-east-1",
        },
    )
    return table.scan().to_arrow()
