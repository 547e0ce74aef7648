"""Sync: bring the table's live files into the local store, incrementally and crash-safe.

One call does: find the current snapshot (a single narrow listing when nothing changed), diff its
live files against the published generation, download only what is missing (concurrently, each
file landing by atomic rename), normalize new files into segments, drop rows of files that left the
snapshot, and publish a new generation. A file that cannot be read is set aside and reported; a
missing file aborts the sync and the previous generation stays in use.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from . import iceberg
from .config import Settings
from .errors import O11yError
from .normalize import _lit, prepare, write_segment
from .source import Source, open_source
from .store import Generation, Store

Progress = Callable[[str, int, int], None]

# Files are normalized in batches of about SMALL_SEGMENT_ROWS rows (by the manifests' record
# counts; at most BATCH_FILES files), so a first sync writes segments that are never "small" and
# never merged again: 10M rows make 5 segments instead of ~200 that a 10M-row merge then rewrites.
BATCH_FILES = 25_000
MAX_SEGMENTS = 12
SMALL_SEGMENT_ROWS = 2_000_000
STATUS_EVERY_S = 0.5  # progress reaches status.json at most this often (each write is an fsync)


@dataclass
class SyncReport:
    source: str
    table: str | None
    snapshot_id: int | None
    live_files: int
    downloaded: int
    downloaded_bytes: int
    removed: int
    rows: int
    unparseable: int
    bad_files: dict[str, str] = field(default_factory=dict)
    changed: bool = True
    seconds: float = 0.0

    def one_line(self) -> str:
        what = "no change" if not self.changed else f"{self.downloaded} new files"
        bad = f", {len(self.bad_files)} unreadable files set aside" if self.bad_files else ""
        return (
            f"synced {self.source}: {what}, {self.removed} removed; {self.live_files} live files, "
            f"{self.rows:,} rows, {self.unparseable:,} unparseable{bad} in {self.seconds:.1f}s"
        )


def _connect() -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(":memory:", config={"threads": "2"})
    prepare(conn)
    return conn


def _list_all_parquet(source: Source, prefix: str) -> list[iceberg.DataFile]:
    return [
        iceberg.DataFile(key=o.key, size=o.size, record_count=-1)
        for o in source.list(prefix)
        if o.key.endswith(".parquet")
    ]


def _resolve(source: Source, settings: Settings, gen: Generation) -> tuple[str, str]:
    """(table prefix, mode): the configured table, the one found last time, or discovery."""
    if settings.table_prefix:
        prefix = settings.table_prefix
        has_meta = next(iter(source.list(f"{prefix}metadata/", max_keys=1)), None) is not None
        return prefix, "iceberg" if has_meta or settings.catalog_uri else "files"
    if settings.catalog_uri:
        return gen.table_prefix or "", "iceberg"
    if gen.table_prefix is not None:
        return gen.table_prefix, gen.mode
    if not source.list_prefixes(iceberg.CATALOG_ROOT):
        return "", "files"  # a plain folder of Parquet files (e.g. what wrangler leaves behind)
    return iceberg.resolve_table(source), "iceberg"


def _read_columns(path: Path) -> tuple[str, ...]:
    import pyarrow.parquet as pq

    return tuple(pq.read_schema(path).names)


def _download_all(
    source: Source,
    store: Store,
    wanted: Sequence[iceberg.DataFile],
    progress: Progress | None,
    workers: int,
) -> tuple[int, int]:
    """Download what is not already on disk; returns (files, bytes) fetched."""
    todo = []
    for f in wanted:
        dest = store.raw / f.key
        if dest.is_file() and (f.size <= 0 or dest.stat().st_size == f.size):
            continue
        todo.append(f)
    if not todo:
        return 0, 0
    fetched = nbytes = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(source.download, f.key, store.raw / f.key): f for f in todo}
        try:
            for fut in as_completed(futures):
                nbytes += fut.result()
                fetched += 1
                if progress:
                    progress("download", fetched, len(todo))
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return fetched, nbytes


def _batches(members: list[str], rows: dict[str, int]) -> list[list[str]]:
    """Consecutive batches of about SMALL_SEGMENT_ROWS rows (unknown counts read as 1,000)."""
    out: list[list[str]] = []
    batch: list[str] = []
    n = 0
    for k in members:
        batch.append(k)
        n += rows.get(k, 0) if rows.get(k, 0) > 0 else 1_000
        if n >= SMALL_SEGMENT_ROWS or len(batch) >= BATCH_FILES:
            out.append(batch)
            batch, n = [], 0
    if batch:
        out.append(batch)
    return out


def flush_to_disk(path: Path) -> None:
    """Make everything written under ``path``'s filesystem durable (one syncfs, not a fsync per
    downloaded file); falls back to a global sync where syncfs is not available."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(path, os.O_RDONLY)
        try:
            if libc.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
    os.sync()


def _normalize(
    conn: duckdb.DuckDBPyConnection,
    store: Store,
    keys: Sequence[str],
    progress: Progress | None,
    rows: dict[str, int] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], dict[str, str]]:
    """New segments for ``keys``; per-file counts; files that could not be read (key -> reason).

    ``rows`` (key -> record count from the manifest) sizes the batches."""
    groups: dict[tuple[str, ...], list[str]] = {}
    bad: dict[str, str] = {}
    for key in keys:
        try:
            groups.setdefault(_read_columns(store.raw / key), []).append(key)
        except Exception as exc:  # a corrupt or truncated file: set it aside, keep the rest
            bad[key] = f"not a readable Parquet file ({type(exc).__name__})"
    segments: list[dict[str, Any]] = []
    counts: dict[str, dict[str, Any]] = {}
    done = 0

    def attempt(batch: list[str], columns: tuple[str, ...]) -> None:
        name = f"seg-{int(time.time())}-{uuid.uuid4().hex[:10]}.parquet"
        tmp = store.segments / f".part-{name}.tmp"
        try:
            write_segment(conn, [store.raw / k for k in batch], store.raw, columns, tmp)
        except duckdb.Error as exc:
            tmp.unlink(missing_ok=True)
            if len(batch) == 1:
                bad[batch[0]] = f"unreadable ({type(exc).__name__})"
                return
            half = len(batch) // 2  # find the bad file without giving up the good ones
            attempt(batch[:half], columns)
            attempt(batch[half:], columns)
            return
        tmp.rename(store.segments / name)
        per_file = _segment_counts(conn, store.segments / name)
        for k in batch:
            counts[k] = per_file.get(k, {"rows": 0, "bad_rows": 0})
        segments.append(
            {"name": name, "rows": sum(c["rows"] for c in per_file.values()), "files": batch}
        )

    for columns, members in groups.items():
        if not any(c == "value" for c in columns) and not (set(columns) & iceberg.EVENT_FIELDS):
            for k in members:
                bad[k] = "no value column and no event fields"
            continue
        for batch in _batches(members, rows or {}):
            attempt(batch, columns)
            done += len(batch)
            if progress:
                progress("normalize", done, len(keys))
    return segments, counts, bad


def _segment_counts(conn: duckdb.DuckDBPyConnection, path: Path) -> dict[str, dict[str, Any]]:
    cur = conn.cursor()
    try:
        rows = cur.execute(
            "SELECT file, count(*), count(*) FILTER (WHERE NOT parsed) "
            "FROM read_parquet(?) GROUP BY file",
            [str(path)],
        ).fetchall()
    finally:
        cur.close()
    return {r[0]: {"rows": int(r[1]), "bad_rows": int(r[2])} for r in rows}


def _rewrite(
    conn: duckdb.DuckDBPyConnection,
    store: Store,
    segments: list[dict[str, Any]],
    drop: set[str],
) -> dict[str, Any]:
    """One segment holding the rows of ``segments`` minus files in ``drop``."""
    name = f"seg-{int(time.time())}-{uuid.uuid4().hex[:10]}.parquet"
    tmp = store.segments / f".part-{name}.tmp"
    files = "[" + ", ".join(_lit(str(store.segments / s["name"])) for s in segments) + "]"
    cur = conn.cursor()
    try:
        cur.execute(
            "CREATE OR REPLACE TABLE o11y_drop AS SELECT unnest(?::VARCHAR[]) AS k", [sorted(drop)]
        )
        cur.execute(
            f"COPY (SELECT * FROM read_parquet({files}) WHERE file NOT IN (SELECT k FROM o11y_drop)"
            f" ORDER BY ts, file) TO {_lit(str(tmp))} "
            "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)"
        )
        cur.fetchall()
    finally:
        cur.close()
    tmp.rename(store.segments / name)
    kept = [k for s in segments for k in s["files"] if k not in drop]
    rows = sum(s["rows"] for s in segments)  # corrected by the caller from file counts
    return {"name": name, "rows": rows, "files": kept}


def sync(
    settings: Settings,
    *,
    client: Any = None,
    progress: Progress | None = None,
    wait: bool = False,
    workers: int = 16,
) -> SyncReport:
    """Sync the configured source into its cache; one sync at a time across processes."""
    store = Store(settings.store_dir)
    store.ensure()
    started = time.time()
    with store.lock(wait=wait):  # SyncBusy when another process holds it
        store.write_status(running=True, started_at=started, progress=None)
        try:
            report = _sync_locked(settings, store, client, progress, workers)
        except Exception as exc:
            # Never let a low-level error escape unlabelled; record the one line either way.
            err = (
                exc
                if isinstance(exc, O11yError)
                else O11yError("Sync failed", f"{type(exc).__name__}: {exc}")
            )
            now = time.time()
            store.write_status(
                running=False,
                finished_at=now,
                ok=False,
                last_error=err.one_line(),
                last_error_at=now,
            )
            if err is exc:
                raise
            raise err from None
    report.seconds = time.time() - started
    store.write_status(
        running=False,
        finished_at=time.time(),
        ok=True,
        last_error=None,
        last_success_at=time.time(),
        last_report=report.one_line(),
        progress=None,
    )
    return report


def _sync_locked(
    settings: Settings, store: Store, client: Any, progress: Progress | None, workers: int
) -> SyncReport:
    if settings.kind == "demo":
        from . import demo

        source: Source = demo.demo_source(settings)
    else:
        source = open_source(settings, client=client)
    gen = store.load()
    damaged = set(store.damaged_segments(gen))
    if damaged:
        # A damaged cache segment: forget it and its files, so they are normalized again from
        # the downloaded copies (or downloaded again) in this sync.
        lost = {k for seg in gen.segments if seg["name"] in damaged for k in seg["files"]}
        gen.segments = [seg for seg in gen.segments if seg["name"] not in damaged]
        gen.files = {k: v for k, v in gen.files.items() if k not in lost}
        gen.metadata_key = None  # force the full diff below
        for k in lost:
            raw = store.raw / k
            if raw.is_file():
                try:
                    _read_columns(raw)
                except Exception:
                    raw.unlink()
    label = settings.source_label

    last_status = [0.0]

    def report_progress(phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or done <= 1 or now - last_status[0] >= STATUS_EVERY_S:
            last_status[0] = now
            store.write_status(progress={"phase": phase, "done": done, "total": total})
        if progress:
            progress(phase, done, total)

    if settings.catalog_uri:
        location = iceberg.catalog_metadata_location(
            settings.catalog_uri,
            warehouse=settings.catalog_warehouse,
            token=settings.catalog_token.get() if settings.catalog_token else None,
        )
        meta_key = iceberg.key_from_uri(location, source.bucket)
        prefix = settings.table_prefix or meta_key.split("metadata/")[0]
        mode = "iceberg"
        meta_version = iceberg.metadata_version(meta_key)
    else:
        prefix, mode = _resolve(source, settings, gen)
        meta_key = meta_version = None
        if mode == "iceberg":
            obj = iceberg.newest_metadata(
                source,
                prefix,
                known_version=gen.metadata_version if gen.table_prefix == prefix else None,
            )
            if obj is None:
                raise O11yError("No table metadata", f"nothing under {prefix}metadata/")
            meta_key, meta_version = obj.key, iceberg.metadata_version(obj.key)

    retry_bad = {k: v for k, v in gen.bad_files.items() if _changed(source, k, v)}
    if (
        mode == "iceberg"
        and meta_key == gen.metadata_key
        and gen.table_prefix == prefix
        and not retry_bad
    ):
        return _unchanged(label, prefix, gen)

    if mode == "iceberg":
        assert meta_key is not None
        metadata = iceberg.load_json(source, meta_key)
        cache = iceberg.ManifestCache(store.meta)
        snapshot_id, live = iceberg.live_files(source, metadata, cache)
    else:
        snapshot_id, live = None, _list_all_parquet(source, prefix)

    live_by_key = {f.key: f for f in live}
    known = {
        k
        for k, v in gen.files.items()
        if k in live_by_key
        and (live_by_key[k].size <= 0 or v.get("size") in (None, live_by_key[k].size))
    }
    still_bad = {k: v for k, v in gen.bad_files.items() if k in live_by_key and k not in retry_bad}
    new = [f for f in live if f.key not in known and f.key not in still_bad]
    gone = set(gen.files) - known

    if (
        not new
        and not gone
        and not retry_bad
        and gen.table_prefix == prefix
        and gen.number
        and meta_key == gen.metadata_key
    ):
        return _unchanged(label, prefix, gen)

    # Temp files a killed sync left behind: swept only when there is work, since the walk over
    # every downloaded file would dominate a sync with nothing new.
    store.sweep_partials()
    for k in retry_bad:  # a later copy replaces the bad one
        (store.raw / k).unlink(missing_ok=True)
    fetched, nbytes = _download_all(source, store, new, report_progress, workers)

    conn = _connect()
    try:
        segments, counts, bad = _normalize(
            conn,
            store,
            [f.key for f in new],
            report_progress,
            {f.key: f.record_count for f in new},
        )
        kept_segments = [s for s in gen.segments if not set(s["files"]) & gone]
        touched = [s for s in gen.segments if set(s["files"]) & gone]
        if touched:
            kept_segments.append(_rewrite(conn, store, touched, gone))
        all_segments = kept_segments + segments
        if len(all_segments) > MAX_SEGMENTS:
            small = [s for s in all_segments if s["rows"] < SMALL_SEGMENT_ROWS]
            if len(small) > 1:
                all_segments = [s for s in all_segments if s not in small]
                all_segments.append(_rewrite(conn, store, small, set()))
    finally:
        conn.close()

    files = {k: gen.files[k] for k in known}
    for k, c in counts.items():
        files[k] = {"size": live_by_key[k].size, **c}
    for seg in all_segments:
        seg["rows"] = sum(files.get(k, {}).get("rows", 0) for k in seg["files"])
    for k in gone:
        (store.raw / k).unlink(missing_ok=True)
    bad_files = dict(still_bad)
    for k, reason in bad.items():
        info = source.head(k)
        bad_files[k] = {
            "size": info.size if info else live_by_key[k].size,
            "etag": info.etag if info else "",
            "reason": reason,
        }
        # Keep the unreadable copy aside for a person to inspect; it is out of every view.
        quarantine = store.root / "quarantine" / k
        quarantine.parent.mkdir(parents=True, exist_ok=True)
        if (store.raw / k).exists():
            (store.raw / k).replace(quarantine)

    if fetched:
        flush_to_disk(store.root)  # the downloads and segments, before the generation names them
    new_gen = Generation(
        source_label=label,
        table_prefix=prefix,
        mode=mode,
        metadata_key=meta_key,
        metadata_version=meta_version,
        snapshot_id=snapshot_id,
        segments=all_segments,
        files=files,
        bad_files=bad_files,
    )
    store.publish(new_gen)
    return SyncReport(
        label,
        prefix,
        snapshot_id,
        len(live),
        fetched,
        nbytes,
        len(gone),
        new_gen.rows,
        new_gen.unparseable,
        {k: v["reason"] for k, v in bad_files.items()},
    )


def _unchanged(label: str, prefix: str, gen: Generation) -> SyncReport:
    """The report of a sync that found nothing to do."""
    bad = {k: v["reason"] for k, v in gen.bad_files.items()}
    return SyncReport(
        label,
        prefix,
        gen.snapshot_id,
        len(gen.files),
        0,
        0,
        0,
        gen.rows,
        gen.unparseable,
        bad,
        changed=False,
    )


def _changed(source: Source, key: str, recorded: dict[str, Any]) -> bool:
    """Whether a file set aside as unreadable has a new copy at the source."""
    try:
        info = source.head(key)
    except O11yError:
        return False
    if info is None:
        return False
    return info.size != recorded.get("size") or (
        bool(info.etag) and info.etag != recorded.get("etag")
    )
