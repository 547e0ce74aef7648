"""Just enough Iceberg to know which data files are live, read without writing anything.

The current snapshot comes from the REST catalog when one is configured, else from the newest
``metadata/NNNNN-<uuid>.metadata.json``. Its manifest list and manifests (Avro, read with
fastavro) name the live data files; files in ``data/`` that no snapshot names (compaction
leftovers, orphans of failed writes) are never read. Manifests are immutable, so they are cached
by path and a sync reads only the ones it has not seen.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import O11yError, TransportError
from .source import ObjectInfo, Source

CATALOG_ROOT = "__r2_data_catalog/"
_VERSION_RE = re.compile(r"^(?:(\d+)-.+|v(\d+))\.metadata\.json$")
EVENT_FIELDS = {"event_type", "agent", "mode", "durationMs", "toolCalls", "errors", "_ts"}


@dataclass(frozen=True)
class DataFile:
    """A live data file: its key in the bucket, size and row count as the manifest says."""

    key: str
    size: int
    record_count: int


@dataclass(frozen=True)
class Snapshot:
    metadata_key: str | None
    version: int | None
    snapshot_id: int | None
    files: tuple[DataFile, ...]
    has_metadata: bool = True


def metadata_version(key: str) -> int | None:
    m = _VERSION_RE.match(key.rsplit("/", 1)[-1])
    if not m:
        return None
    return int(m.group(1) or m.group(2))


def key_from_uri(uri: str, bucket: str, table_prefix: str | None = None) -> str:
    """``s3://agent-blobs/__r2_data_catalog/…`` -> the key inside our bucket."""
    m = re.match(r"^[a-z0-9]+://([^/]+)/(.+)$", uri)
    if not m:
        return uri.lstrip("/")
    if bucket and m.group(1) != bucket and table_prefix is None:
        raise O11yError("Table points elsewhere", f"metadata names bucket {m.group(1)}")
    return m.group(2)


def _probe(source: Source, meta_prefix: str, version: int) -> ObjectInfo | None:
    """The metadata file with that version number, if any (newest upload wins a tie)."""
    hits = [
        o for o in source.list(f"{meta_prefix}{version:05d}-") if o.key.endswith(".metadata.json")
    ]
    return max(hits, key=lambda o: (o.mtime, o.key)) if hits else None


def newest_metadata(
    source: Source, table_prefix: str, *, known_version: int | None = None
) -> ObjectInfo | None:
    """The newest metadata file of the table.

    Without a hint this lists ``metadata/`` once. With ``known_version`` (from the last sync) it
    probes version numbers upward with narrow prefix listings (gallop, then bisect), so a sync with
    nothing new costs one request however long the table's history is.
    """
    meta_prefix = f"{table_prefix}metadata/"
    if known_version is not None:
        best = None
        lo, step = known_version, 1
        while (hit := _probe(source, meta_prefix, lo + step)) is not None:
            best, lo, step = hit, lo + step, step * 2
            if step > 1 << 20:
                break
        hi = lo + step  # known absent
        while hi - lo > 1:
            mid = (lo + hi) // 2
            hit = _probe(source, meta_prefix, mid)
            if hit is not None:
                best, lo = hit, mid
            else:
                hi = mid
        if best is not None:
            return best
        current = _probe(source, meta_prefix, known_version)
        if current is not None:
            return current
        # The known version vanished (table rewritten?): fall back to a listing.
    newest: tuple[int, float, str] | None = None
    found: ObjectInfo | None = None
    for obj in source.list(meta_prefix):
        v = metadata_version(obj.key)
        if v is not None and (newest is None or (v, obj.mtime, obj.key) > newest):
            newest, found = (v, obj.mtime, obj.key), obj
    return found


def load_json(source: Source, key: str) -> dict[str, Any]:
    raw = source.get(key)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise O11yError("Bad table metadata", f"{key} is not JSON") from None
    if not isinstance(data, dict):
        raise O11yError("Bad table metadata", f"{key} is not a JSON object")
    return data


def schema_columns(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    """The current schema's top-level columns as (name, type)."""
    schemas = metadata.get("schemas") or ([metadata["schema"]] if "schema" in metadata else [])
    current = metadata.get("current-schema-id")
    schema = next((s for s in schemas if s.get("schema-id") == current), None)
    if schema is None and schemas:
        schema = schemas[-1]
    cols = []
    for f in (schema or {}).get("fields", []):
        t = f.get("type")
        cols.append((str(f.get("name")), t if isinstance(t, str) else str(t.get("type", "?"))))
    return cols


def is_event_table(columns: Iterable[str]) -> bool:
    names = set(columns)
    return "value" in names or {"agent", "mode"} <= names or len(names & EVENT_FIELDS) >= 3


def current_snapshot(metadata: dict[str, Any]) -> dict[str, Any] | None:
    sid = metadata.get("current-snapshot-id")
    refs = metadata.get("refs") or {}
    if (sid is None or sid == -1) and "main" in refs:
        sid = refs["main"].get("snapshot-id")
    if sid is None or sid == -1:
        return None
    for snap in metadata.get("snapshots", []):
        if snap.get("snapshot-id") == sid:
            return snap
    raise O11yError("Bad table metadata", f"current snapshot {sid} is not listed")


class ManifestCache:
    """Manifests and manifest lists are immutable: fetch each once, keep it on disk."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fetched = 0

    def read(self, source: Source, key: str) -> list[dict[str, Any]]:
        import fastavro

        path = self.directory / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".avro")
        if path.is_file():
            data = path.read_bytes()
        else:
            data = source.get(key)
            self.fetched += 1
        try:
            records = list(fastavro.reader(io.BytesIO(data)))
        except Exception:
            path.unlink(missing_ok=True)
            raise O11yError("Bad table metadata", f"{key} is not a readable Avro file") from None
        if not path.is_file():
            from .source import _atomic_write_stream

            _atomic_write_stream(path, iter([data]))
        return records


def live_files(
    source: Source, metadata: dict[str, Any], cache: ManifestCache
) -> tuple[int | None, list[DataFile]]:
    """The current snapshot's id and its live data files (ADDED or EXISTING entries)."""
    snap = current_snapshot(metadata)
    if snap is None:
        return None, []
    bucket = source.bucket
    files: dict[str, DataFile] = {}
    if "manifest-list" in snap:
        manifests = [
            m
            for m in cache.read(source, key_from_uri(snap["manifest-list"], bucket))
            if int(m.get("content") or 0) == 0  # data manifests; the pipeline writes no deletes
        ]
        paths = [m["manifest_path"] for m in manifests]
    else:
        paths = list(snap.get("manifests", []))
    for mpath in paths:
        for entry in cache.read(source, key_from_uri(mpath, bucket)):
            if int(entry.get("status", 1)) == 2:  # DELETED in this snapshot
                continue
            df = entry.get("data_file") or {}
            if int(df.get("content") or 0) != 0:
                continue
            fmt = str(df.get("file_format", "PARQUET")).upper()
            if fmt != "PARQUET":
                continue
            key = key_from_uri(df["file_path"], bucket)
            files[key] = DataFile(
                key=key,
                size=int(df.get("file_size_in_bytes") or 0),
                record_count=int(df.get("record_count") or 0),
            )
    return int(snap["snapshot-id"]), sorted(files.values(), key=lambda f: f.key)


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
            except TransportError:
                raise  # R2 slow or failing is not "no event table": say what timed out
            except O11yError:
                cols = [("unreadable metadata", "")]
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
            raise O11yError(title, f"HTTP {exc.code} from the Iceberg REST catalog") from None
        except (urllib.error.URLError, TimeoutError, OSError):
            raise O11yError("Cannot reach the Iceberg REST catalog", base) from None
        except ValueError:
            raise O11yError(
                "Catalog error", "the Iceberg REST catalog did not answer JSON"
            ) from None

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
