"""Just enough Iceberg to know which rows are live, read without writing anything.

The current snapshot comes from the REST catalog when one is configured, else from the newest
``metadata/NNNNN-<uuid>.metadata.json`` (or ``.gz.metadata.json``, gzip-compressed; format
versions 1 to 3). Its manifest list and manifests (Avro, read with fastavro, several at once) name
the live data files and the delete files that apply to each of them (position deletes, equality
deletes, v3 deletion vectors), following the spec's sequence-number and partition rules. Files in
``data/`` that no snapshot names (compaction leftovers, orphans of failed writes) are never read.
Manifests are immutable, so they are cached by path and a sync reads only the ones it has not seen.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import O11yError, TransportError
from .source import ObjectInfo, Source

CATALOG_ROOT = "__r2_data_catalog/"
_VERSION_RE = re.compile(r"^(?:(\d+)-.+|v(\d+))(?:\.gz\.metadata\.json|\.metadata\.json(?:\.gz)?)$")
EVENT_FIELDS = {"event_type", "agent", "mode", "durationMs", "toolCalls", "errors", "_ts"}
MAX_FORMAT_VERSION = 3
MANIFEST_WORKERS = 8  # manifests fetched at once: enough to hide R2's latency, few connections


class BadMetadata(O11yError):
    """The table's metadata itself is unreadable (not a transport error): a content problem."""


@dataclass(frozen=True)
class DataFile:
    """A live data file: its key in the bucket, size and row count as the manifest says.

    ``seq`` is its data sequence number and ``spec_id``/``partition`` its partition, which decide
    the delete files that apply to it."""

    key: str
    size: int
    record_count: int
    uri: str = ""
    seq: int = 0
    spec_id: int = 0
    partition: tuple[tuple[str, Any], ...] = ()
    # Every row of the file has a valid ``__ingest_ts`` (not NULL, from 2000 on) before this
    # instant (epoch µs), as its partition or column bounds say; None when they cannot say.
    landed_before_us: int | None = None
    # Every row of the file has a non-NULL ``__ingest_ts`` at or after this instant (epoch µs),
    # as its partition or column bounds say; None when they cannot say. With ``landed_before_us``
    # it tells which side of a cut on ``__ingest_ts`` the whole file lies (horizon.engine_cut).
    landed_from_us: int | None = None


@dataclass(frozen=True)
class DeleteFile:
    """A delete file of the snapshot. ``kind``: ``position``, ``equality`` or ``dv`` (a v3
    deletion vector: one Puffin blob at ``offset``/``length`` for ``referenced`` only)."""

    key: str
    size: int
    kind: str
    seq: int
    spec_id: int = 0
    partition: tuple[tuple[str, Any], ...] = ()
    equality_ids: tuple[int, ...] = ()
    referenced: str | None = None  # the one data file (URI) it applies to, when known
    path_bounds: tuple[str, str] | None = None  # min/max file_path a position delete names
    offset: int = 0
    length: int = 0

    @property
    def id(self) -> str:
        """Unique within a snapshot: one Puffin file may hold the vectors of several files."""
        return f"{self.key}#dv{self.offset}" if self.kind == "dv" else self.key


def delete_key(delete_id: str) -> str:
    """The object key of a ``DeleteFile.id``."""
    return re.sub(r"#dv\d+$", "", delete_id)


_DV_MAGIC = b"\xd1\xd3\x39\x64"


def deletion_vector_positions(path: Path, dv: DeleteFile) -> list[int]:
    """The deleted row positions of a v3 deletion vector (a ``deletion-vector-v1`` Puffin blob:
    length, magic, a portable 64-bit Roaring bitmap, CRC-32), checked before it is trusted."""
    import zlib

    from pyroaring import BitMap64

    with open(path, "rb") as fh:
        fh.seek(dv.offset)
        blob = fh.read(dv.length)
    size = int.from_bytes(blob[:4], "big")
    body = blob[4 : 4 + size]
    crc = int.from_bytes(blob[4 + size : 8 + size], "big")
    if len(blob) < 12 or size + 8 != len(blob) or body[:4] != _DV_MAGIC or zlib.crc32(body) != crc:
        raise BadMetadata("Bad deletion vector", f"{dv.key} at {dv.offset} fails its checks")
    try:
        return list(BitMap64.deserialize(body[4:]))
    except Exception as exc:
        raise BadMetadata("Bad deletion vector", f"{dv.key} at {dv.offset}: bad bitmap") from exc


@dataclass(frozen=True)
class SchemaField:
    """A top-level field of the table's current schema.

    ``type`` is Iceberg's name for it (``long``, ``decimal(9,2)``; a nested type as its JSON);
    ``initial_default`` is the v3 value files written before the field existed hold (None: no
    default, such files read NULL). ``write-default`` concerns writers only and is not kept."""

    id: int
    name: str
    type: str
    initial_default: Any = None


@dataclass(frozen=True)
class LiveSnapshot:
    """What the current snapshot makes live: data files, delete files, and which apply where."""

    snapshot_id: int | None
    files: tuple[DataFile, ...]
    delete_files: dict[str, DeleteFile] = field(default_factory=dict)
    deletes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # data key -> delete ids
    names: dict[int, str] = field(default_factory=dict)  # current schema: field id -> name
    fields: tuple[SchemaField, ...] = ()  # current schema's top-level fields (types, defaults)


@dataclass(frozen=True)
class MetadataPick:
    """The newest metadata file, and any other file claiming the same version number."""

    key: str
    version: int | None
    duplicates: tuple[str, ...] = ()

    def warning(self) -> str | None:
        if not self.duplicates:
            return None
        return (
            f"{len(self.duplicates) + 1} metadata files share version {self.version} (a failed "
            f"commit?): using {self.key.rsplit('/', 1)[-1]}, the last one uploaded; set "
            "O11Y_CATALOG_URI to let the catalog decide"
        )


def metadata_version(key: str) -> int | None:
    m = _VERSION_RE.match(key.rsplit("/", 1)[-1])
    if not m:
        return None
    return int(m.group(1) or m.group(2))


# The schemes Iceberg's S3 file IO reads (Hadoop's s3a/s3n included), in any case.
_S3_SCHEMES = {"s3", "s3a", "s3n"}


def key_from_uri(uri: str, bucket: str, table_prefix: str | None = None) -> str:
    """``s3://agent-blobs/__r2_data_catalog/…`` (or ``s3a``/``s3n``, any case) -> the key inside
    our bucket; a location in another scheme is refused in one line naming it."""
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/]+)/(.+)$", uri)
    if not m:
        return uri.lstrip("/")
    if m.group(1).lower() not in _S3_SCHEMES:
        raise O11yError(
            "Unsupported location",
            f"{uri}: the table names a {m.group(1)}:// object; only s3, s3a and s3n locations "
            "in the bucket are read",
        )
    if bucket and m.group(2) != bucket and table_prefix is None:
        raise O11yError("Table points elsewhere", f"metadata names bucket {m.group(2)}")
    return m.group(3)


def _version(key: str) -> int:
    v = metadata_version(key)
    return -1 if v is None else v


def _metadata_listing(source: Source, meta_prefix: str, after: str | None) -> list[ObjectInfo]:
    """Every metadata file named after ``after`` (all of them without it): one ListObjectsV2
    with ``StartAfter``.

    Keys come sorted, and every ``NNNNN-…`` name starts with a digit, so the listing stops at the
    first name that does not (the manifests named ``snap-…`` or by UUID): one request when
    nothing is new. A version with one digit more (``100000-…`` after ``99999-…``) sorts before
    the current one, so near such a rollover (a current name starting with 9) the names starting
    with 1 are listed too. Hadoop-style ``vN.metadata.json`` names are not zero-padded: listed
    whole."""
    name = after[len(meta_prefix) :] if after else ""
    if name.startswith("v"):
        return [o for o in source.list(f"{meta_prefix}v") if metadata_version(o.key) is not None]
    found: list[ObjectInfo] = []
    for obj in source.list(meta_prefix, start_after=after or None):
        if not obj.key[len(meta_prefix) :][:1].isdigit():
            break
        if metadata_version(obj.key) is not None:
            found.append(obj)
    if name.startswith("9"):
        found += [o for o in source.list(f"{meta_prefix}1") if metadata_version(o.key) is not None]
    if not after and not found:
        found = [o for o in source.list(f"{meta_prefix}v") if metadata_version(o.key) is not None]
    return found


def newest_metadata(
    source: Source, table_prefix: str, *, after: str | None = None
) -> MetadataPick | None:
    """The newest metadata file of the table, gaps in version numbers included.

    ``after`` (the metadata key of the last sync) lists only names sorting after it, so a sync
    with nothing new costs one request however long the table's history is. Two files with the
    newest version number (a failed commit) are reported; the last uploaded wins (then the
    greater name), so the choice is the same on every run."""
    meta_prefix = f"{table_prefix}metadata/"
    found: list[ObjectInfo] = []
    if after and after.startswith(meta_prefix):
        # Listing from just before ``after`` shows whether it is still there.
        found = _metadata_listing(source, meta_prefix, after[:-1])
        current = metadata_version(after)
        if any(o.key == after for o in found):
            found = [o for o in found if _version(o.key) > _version(after)]
            if not found:
                return MetadataPick(after, current)
        else:  # the known version vanished (table rewritten?): look at everything
            found = []
    if not found:
        found = _metadata_listing(source, meta_prefix, None)
    if not found:
        return None
    top = max(_version(o.key) for o in found)
    tied = sorted((o for o in found if _version(o.key) == top), key=lambda o: (o.mtime, o.key))
    return MetadataPick(tied[-1].key, top, tuple(o.key for o in tied[:-1]))


_CHECK_WRITER = "check what committed it (a later commit replaces it)"


def load_json(source: Source, key: str) -> dict[str, Any]:
    raw = source.get(key)
    if raw[:2] == b"\x1f\x8b":  # gzip (Java Iceberg's ``.gz.metadata.json``)
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise BadMetadata(
                "Bad table metadata", f"{key} is not readable gzip; {_CHECK_WRITER}"
            ) from exc
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadMetadata("Bad table metadata", f"{key} is not JSON; {_CHECK_WRITER}") from exc
    if not isinstance(data, dict):
        raise BadMetadata("Bad table metadata", f"{key} is not a JSON object; {_CHECK_WRITER}")
    version = data.get("format-version", 1)
    if not isinstance(version, int) or not 1 <= version <= MAX_FORMAT_VERSION:
        raise BadMetadata(
            "Unsupported table format", f"{key} is Iceberg format version {version}; 1 to 3 read"
        )
    return data


def _current_schema(metadata: dict[str, Any]) -> dict[str, Any]:
    schemas = metadata.get("schemas") or ([metadata["schema"]] if "schema" in metadata else [])
    current = metadata.get("current-schema-id")
    schema = next((s for s in schemas if s.get("schema-id") == current), None)
    if schema is None and schemas:
        schema = schemas[-1]
    return schema or {}


def schema_columns(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    """The current schema's top-level columns as (name, type)."""
    cols = []
    for f in _current_schema(metadata).get("fields", []):
        t = f.get("type")
        cols.append((str(f.get("name")), t if isinstance(t, str) else str(t.get("type", "?"))))
    return cols


def schema_names(metadata: dict[str, Any]) -> dict[int, str]:
    """The current schema's top-level field ids and names: files are read by id, so a renamed
    column keeps the values older files wrote under its old name."""
    return {
        int(f["id"]): str(f["name"])
        for f in _current_schema(metadata).get("fields", [])
        if "id" in f and "name" in f
    }


def schema_fields(metadata: dict[str, Any]) -> tuple[SchemaField, ...]:
    """The current schema's top-level fields with their types and v3 initial defaults."""
    out = []
    for f in _current_schema(metadata).get("fields", []):
        if "id" not in f or "name" not in f:
            continue
        t = f.get("type")
        kind = t if isinstance(t, str) else json.dumps(t, sort_keys=True)
        out.append(SchemaField(int(f["id"]), str(f["name"]), kind, f.get("initial-default")))
    return tuple(out)


def is_event_table(columns: Iterable[str]) -> bool:
    names = set(columns)
    return "value" in names or {"agent", "mode"} <= names or len(names & EVENT_FIELDS) >= 3


def current_snapshot(metadata: dict[str, Any], key: str = "") -> dict[str, Any] | None:
    """The snapshot ``current-snapshot-id`` names, which ``refs.main`` must agree with: Java
    Iceberg and iceberg-rust refuse metadata where they differ, and so does this reader."""
    sid = metadata.get("current-snapshot-id")
    main = (metadata.get("refs") or {}).get("main")
    main_id = main.get("snapshot-id") if isinstance(main, dict) else None
    where = f"{key}: " if key else ""
    if sid is None or sid == -1:
        if main is not None:
            raise BadMetadata(
                "Inconsistent table metadata",
                f"{where}refs.main names snapshot {main_id} but current-snapshot-id is "
                f"{'missing' if sid is None else sid}; check the engine that committed it",
            )
        return None
    if main is not None and main_id != sid:
        raise BadMetadata(
            "Inconsistent table metadata",
            f"{where}current-snapshot-id is {sid} but refs.main names snapshot {main_id}; "
            "check the engine that committed it",
        )
    for snap in metadata.get("snapshots", []):
        if snap.get("snapshot-id") == sid:
            return snap
    raise BadMetadata("Bad table metadata", f"current snapshot {sid} is not listed")


# A manifest-list entry's count fields for each entry status (v2 names, then v1's).
_STATUS_COUNTS = (
    (1, "added", ("added_files_count", "added_data_files_count")),
    (0, "existing", ("existing_files_count", "existing_data_files_count")),
    (2, "deleted", ("deleted_files_count", "deleted_data_files_count")),
)


@dataclass(frozen=True)
class ManifestCheck:
    """What a manifest-list entry says of its manifest: its length in bytes and how many entries
    it holds of each status. A manifest cut at an Avro block boundary is still valid Avro; only
    these tell that entries are missing."""

    length: int | None = None
    counts: tuple[tuple[int, str, int], ...] = ()  # (status, its name, entries the list names)

    @classmethod
    def of(cls, entry: dict[str, Any]) -> ManifestCheck:
        counts = []
        for status, what, names in _STATUS_COUNTS:
            value = next((entry[n] for n in names if entry.get(n) is not None), None)
            if value is not None:
                counts.append((status, what, int(value)))
        length = entry.get("manifest_length")
        return cls(None if length is None else int(length), tuple(counts))

    def mismatch(self, size: int, records: list[dict[str, Any]]) -> str | None:
        """Why the manifest's bytes are not the ones the list names (None when they are)."""
        if self.length is not None and size != self.length:
            return f"{size:,} bytes where the manifest list says {self.length:,}"
        for status, what, want in self.counts:
            got = sum(1 for r in records if int(r.get("status", 1)) == status)
            if got != want:
                return f"{got:,} {what} entries where the manifest list says {want:,}"
        return None


class ManifestCache:
    """Manifests and manifest lists are immutable: fetch each once, keep it on disk."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fetched = 0
        self._lock = threading.Lock()

    def read(
        self, source: Source, key: str, check: ManifestCheck | None = None
    ) -> list[dict[str, Any]]:
        """The file's records. With ``check`` (what the manifest list says of it), a copy that
        disagrees is fetched once more; a second disagreement fails in one line naming it, so
        a cut-short manifest never counts fewer files."""
        path = self.directory / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".avro")
        problem = ""
        for fresh in (False, True):
            data, cached = self._bytes(source, key, path, fresh=fresh)
            records = self._records(key, data, path)
            why = check.mismatch(len(data), records) if check else None
            if why is None:
                if not cached:
                    from .source import atomic_write_stream

                    atomic_write_stream(path, iter([data]))
                return records
            path.unlink(missing_ok=True)
            problem = why
        raise TransportError(
            "Manifest does not match its manifest list",
            f"{key}: {problem}, twice in a row. Nothing was synced; sync again, and if it "
            "repeats the object in the bucket is cut short or damaged: check what wrote it",
        )

    def _bytes(self, source: Source, key: str, path: Path, *, fresh: bool) -> tuple[bytes, bool]:
        """(the file's bytes, whether they came from the disk cache)."""
        if not fresh and path.is_file():
            return path.read_bytes(), True
        data = source.get(key)
        with self._lock:
            self.fetched += 1
        return data, False

    @staticmethod
    def _records(key: str, data: bytes, path: Path) -> list[dict[str, Any]]:
        import fastavro

        try:
            return list(fastavro.reader(io.BytesIO(data)))
        except Exception as exc:
            path.unlink(missing_ok=True)
            raise BadMetadata("Bad table metadata", f"{key} is not a readable Avro file") from exc

    def read_many(
        self,
        source: Source,
        keys: list[str],
        *,
        checks: list[ManifestCheck | None] | None = None,
        workers: int = MANIFEST_WORKERS,
    ) -> list[list[dict[str, Any]]]:
        """Several manifests, fetched concurrently (bounded), in the order asked."""
        wanted = list(zip(keys, checks or [None] * len(keys), strict=True))
        if len(wanted) <= 1:
            return [self.read(source, k, c) for k, c in wanted]
        with ThreadPoolExecutor(max_workers=min(workers, len(wanted))) as pool:
            return list(pool.map(lambda kc: self.read(source, *kc), wanted))


def _partition(value: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((value or {}).items())) if isinstance(value, dict) else ()


def _path_bounds(df: dict[str, Any]) -> tuple[str, str] | None:
    """The min/max ``file_path`` (field 2147483546) a position delete file names, if recorded."""

    def bound(name: str) -> bytes | None:
        for item in df.get(name) or []:
            if int(item.get("key", 0)) == 2147483546:
                return item.get("value")
        return None

    lo, hi = bound("lower_bounds"), bound("upper_bounds")
    if lo is None or hi is None:
        return None
    try:
        return lo.decode(), hi.decode()
    except (AttributeError, UnicodeDecodeError):
        return None


INGEST_COLUMN = "__ingest_ts"
_US = {"timestamp": 1, "timestamptz": 1, "timestamp_ns": 1000, "timestamptz_ns": 1000}
_EARLIEST_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z: the contract's earliest valid time
_HOUR_US = 3_600_000_000
_DAY_US = 24 * _HOUR_US


@dataclass(frozen=True)
class LandingColumn:
    """The table's ``__ingest_ts`` field and the partition fields derived from it, by spec:
    what tells a data file's landing times without reading it."""

    field_id: int
    per_us: int  # the column's units per µs (1, or 1,000 for nanosecond timestamps)
    transforms: dict[int, tuple[tuple[str, str], ...]]  # spec id -> (partition field, transform)


def landing_column(metadata: dict[str, Any]) -> LandingColumn | None:
    """The current schema's ``__ingest_ts`` when it is a timestamp (None otherwise)."""
    field_ = next((f for f in schema_fields(metadata) if f.name == INGEST_COLUMN), None)
    if field_ is None or field_.type not in _US:
        return None
    specs = metadata.get("partition-specs") or []
    if not specs and isinstance(metadata.get("partition-spec"), list):  # v1
        specs = [{"spec-id": 0, "fields": metadata["partition-spec"]}]
    transforms = {
        int(spec.get("spec-id", 0)): tuple(
            (str(f.get("name")), str(f.get("transform")))
            for f in spec.get("fields", [])
            if f.get("source-id") == field_.id
        )
        for spec in specs
        if isinstance(spec, dict)
    }
    return LandingColumn(field_.id, _US[field_.type], transforms)


def _period_us(value: Any, transform: str) -> tuple[int, int] | None:
    """[start, end) in epoch µs of a partition value of ``__ingest_ts`` (None: unknown)."""
    import datetime as dt

    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    if isinstance(value, dt.datetime):  # identity, read through Avro's timestamp logical type
        t = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        us = (t - epoch) // dt.timedelta(microseconds=1)
        return (us, us + 1) if transform == "identity" else None
    if isinstance(value, dt.date):  # day, read through Avro's date logical type
        value = (value - epoch.date()).days
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    if transform == "hour":
        return value * _HOUR_US, (value + 1) * _HOUR_US
    if transform == "day":
        return value * _DAY_US, (value + 1) * _DAY_US
    if transform in ("month", "year"):
        months = value if transform == "month" else value * 12
        start = dt.datetime(1970 + months // 12, months % 12 + 1, 1, tzinfo=dt.UTC)
        nxt = months + (1 if transform == "month" else 12)
        end = dt.datetime(1970 + nxt // 12, nxt % 12 + 1, 1, tzinfo=dt.UTC)
        return (start - epoch) // dt.timedelta(microseconds=1), (end - epoch) // dt.timedelta(
            microseconds=1
        )
    if transform == "identity":
        return value, value + 1
    return None


def _bound_map(df: dict[str, Any], name: str) -> dict[int, Any]:
    return {int(i["key"]): i.get("value") for i in df.get(name) or [] if "key" in i}


def landing_span(
    df: dict[str, Any], spec_id: int, column: LandingColumn | None
) -> tuple[int | None, int | None]:
    """``(from_us, before_us)`` for the data file ``df``: every row landed with a valid
    ``__ingest_ts`` at or after ``from_us`` and before ``before_us``, as its partition value (a
    non-NULL partition holds no NULL) or its column bounds with a null count of 0 say; None for a
    side neither says (the file cannot be pruned on it). An end is only trusted from a start at or
    after the earliest plausible landing."""
    if column is None:
        return None, None
    starts: list[int] = []
    ends: list[int] = []
    partition = df.get("partition") or {}
    for name, transform in column.transforms.get(spec_id, ()):
        period = _period_us(partition.get(name), transform) if isinstance(partition, dict) else None
        if period is None:
            continue
        starts.append(period[0])
        if period[0] >= _EARLIEST_US:
            ends.append(period[1])
    lower = _bound_us(_bound_map(df, "lower_bounds").get(column.field_id), column)
    upper = _bound_us(_bound_map(df, "upper_bounds").get(column.field_id), column)
    if lower is not None and _bound_map(df, "null_value_counts").get(column.field_id) == 0:
        starts.append(lower)
        if upper is not None and lower >= _EARLIEST_US:
            ends.append(upper + 1)
    return (max(starts) if starts else None), (min(ends) if ends else None)


def _bound_us(raw: Any, column: LandingColumn) -> int | None:
    """A column bound of ``__ingest_ts`` (8 little-endian bytes in the column's unit) in µs."""
    if not isinstance(raw, bytes) or len(raw) != 8:
        return None
    return int.from_bytes(raw, "little", signed=True) // column.per_us


def _entry_seq(entry: dict[str, Any], manifest: dict[str, Any]) -> int:
    """The entry's data sequence number: its own, else inherited from the manifest (ADDED)."""
    seq = entry.get("sequence_number")
    if seq is None:
        seq = manifest.get("sequence_number")
    return int(seq or 0)  # v1 tables have none: 0


def _delete_file(key: str, df: dict[str, Any], seq: int, spec_id: int) -> DeleteFile:
    content = int(df.get("content") or 0)
    fmt = str(df.get("file_format", "PARQUET")).upper()
    common = {
        "key": key,
        "size": int(df.get("file_size_in_bytes") or 0),
        "seq": seq,
        "spec_id": spec_id,
        "partition": _partition(df.get("partition")),
        "referenced": df.get("referenced_data_file"),
    }
    if content == 1 and fmt == "PUFFIN":
        if not common["referenced"] or df.get("content_offset") is None:
            raise BadMetadata("Bad table metadata", f"deletion vector {key} names no data file")
        return DeleteFile(
            kind="dv",
            offset=int(df["content_offset"]),
            length=int(df["content_size_in_bytes"]),
            **common,
        )
    if fmt != "PARQUET":
        raise O11yError(
            "Unsupported delete file", f"{key} is a {fmt} delete file; only Parquet and Puffin read"
        )
    if content == 1:
        return DeleteFile(kind="position", path_bounds=_path_bounds(df), **common)
    ids = tuple(int(i) for i in df.get("equality_ids") or ())
    if not ids:
        raise BadMetadata("Bad table metadata", f"equality delete {key} names no columns")
    return DeleteFile(kind="equality", equality_ids=ids, **common)


def applies(delete: DeleteFile, data: DataFile) -> bool:
    """Whether ``delete`` removes rows of ``data``, as the spec scopes delete files."""
    if delete.kind == "equality":
        # Older data only, in the same partition (or a global delete: an unpartitioned spec).
        if delete.seq <= data.seq:
            return False
        return not delete.partition or (
            delete.spec_id == data.spec_id and delete.partition == data.partition
        )
    if delete.seq < data.seq:
        return False
    if delete.referenced is not None:
        return delete.referenced == data.uri
    if delete.partition and (delete.spec_id, delete.partition) != (data.spec_id, data.partition):
        return False
    if delete.path_bounds is not None:
        return delete.path_bounds[0] <= data.uri <= delete.path_bounds[1]
    return True


def read_snapshot(
    source: Source, metadata: dict[str, Any], cache: ManifestCache, *, key: str = ""
) -> LiveSnapshot:
    """The current snapshot's live data files and the delete files that apply to each
    (``key``: the metadata file's, named in errors)."""
    snap = current_snapshot(metadata, key)
    names = schema_names(metadata)
    fields = schema_fields(metadata)
    landing = landing_column(metadata)
    if snap is None:
        return LiveSnapshot(None, (), names=names, fields=fields)
    bucket = source.bucket
    if "manifest-list" in snap:
        manifests = cache.read(source, key_from_uri(snap["manifest-list"], bucket))
    else:  # v1: the snapshot names its manifests (all data manifests)
        manifests = [{"manifest_path": p} for p in snap.get("manifests", [])]
    entries = cache.read_many(
        source,
        [key_from_uri(m["manifest_path"], bucket) for m in manifests],
        checks=[ManifestCheck.of(m) if "manifest-list" in snap else None for m in manifests],
    )
    files: dict[str, DataFile] = {}
    delete_files: dict[str, DeleteFile] = {}
    for manifest, records in zip(manifests, entries, strict=True):
        spec_id = int(manifest.get("partition_spec_id") or 0)
        for entry in records:
            if int(entry.get("status", 1)) == 2:  # DELETED in this snapshot
                continue
            df = entry.get("data_file") or {}
            key = key_from_uri(df["file_path"], bucket)
            seq = _entry_seq(entry, manifest)
            if int(df.get("content") or 0) != 0:
                delete = _delete_file(key, df, seq, spec_id)
                delete_files[delete.id] = delete
                continue
            fmt = str(df.get("file_format", "PARQUET")).upper()
            if fmt != "PARQUET":
                raise O11yError(
                    "Unsupported data file", f"{key} is {fmt}; only Parquet data files are read"
                )
            landed_from, landed_before = landing_span(df, spec_id, landing)
            files[key] = DataFile(
                key=key,
                size=int(df.get("file_size_in_bytes") or 0),
                record_count=int(df.get("record_count") or 0),
                uri=str(df["file_path"]),
                seq=seq,
                spec_id=spec_id,
                partition=_partition(df.get("partition")),
                landed_from_us=landed_from,
                landed_before_us=landed_before,
            )
    deletes = {
        k: tuple(sorted(d.id for d in delete_files.values() if applies(d, f)))
        for k, f in files.items()
    }
    return LiveSnapshot(
        int(snap["snapshot-id"]),
        tuple(sorted(files.values(), key=lambda f: f.key)),
        delete_files,
        {k: v for k, v in deletes.items() if v},
        names,
        fields,
    )


def find_event_tables(source: Source) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every Iceberg table under ``__r2_data_catalog/`` with its columns."""
    out = []
    for catalog in source.list_prefixes(CATALOG_ROOT):
        for table in source.list_prefixes(catalog):
            meta = newest_metadata(source, table)
            if meta is None:
                continue
            try:
                cols = schema_columns(load_json(source, meta.key))
            except BadMetadata as exc:  # a transport error is no content problem: it propagates
                cols = [(f"unreadable metadata: {exc.one_line()}", "")]
            out.append((table, cols))
    return out


def resolve_table(source: Source) -> str:
    """The one table whose schema is the event table's, or a one-line error naming candidates."""
    tables = find_event_tables(source)
    matches = [t for t, cols in tables if is_event_table(c for c, _ in cols)]
    if len(matches) == 1:
        return matches[0]

    def show(t: str, cols: list[tuple[str, str]]) -> str:
        return f"{t} ({', '.join(c for c, _ in cols) or 'no columns'})"

    listed = "; ".join(show(t, c) for t, c in tables) or "none"
    if not matches:
        unreadable = [
            t for t, cols in tables if any(c.startswith("unreadable metadata") for c, _ in cols)
        ]
        if unreadable:  # pointing at another table would not help: its metadata is the problem
            raise O11yError("No readable event table found", f"tables: {listed}")
        raise O11yError(
            "No event table found",
            f"no table under {CATALOG_ROOT} has a value column or the event fields; tables: "
            f"{listed}. Set O11Y_TABLE_PREFIX",
        )
    listed = "; ".join(show(t, c) for t, c in tables if t in matches)
    raise O11yError("More than one event table", f"set O11Y_TABLE_PREFIX to one of: {listed}")


def catalog_metadata_location(
    uri: str, *, warehouse: str | None, token: str | None, timeout: float = 10.0
) -> str:
    """The table's current metadata file from an Iceberg REST catalog (``agent_network.events``)."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    base = uri.rstrip("/")

    def get(url: str) -> dict[str, Any]:
        req = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            title = "Catalog rejected the token" if exc.code in (401, 403) else "Catalog error"
            # Chained: the token is a configured secret, so the log's formatter redacts it.
            raise O11yError(title, f"HTTP {exc.code} from the Iceberg REST catalog") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise O11yError("Cannot reach the Iceberg REST catalog", base) from exc
        except ValueError as exc:
            raise O11yError(
                "Catalog error", "the Iceberg REST catalog did not answer JSON"
            ) from exc

    from urllib.parse import quote

    query = f"?warehouse={quote(warehouse)}" if warehouse else ""
    config = get(f"{base}/v1/config{query}")
    prefix = (config.get("overrides") or {}).get("prefix") or (config.get("defaults") or {}).get(
        "prefix"
    )
    path = f"{base}/v1/{quote(prefix)}/" if prefix else f"{base}/v1/"
    table = get(f"{path}namespaces/agent_network/tables/events")
    location = table.get("metadata-location")
    if not location:
        raise O11yError("Catalog error", "the catalog gave no metadata-location for the table")
    return str(location)
