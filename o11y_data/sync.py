"""Sync: bring the table's live files into the local store, incrementally and crash-safe.

One call (``_sync_locked``) runs these steps, in this order:

1. open the source (bucket, folder or demo) and load the published generation;
2. repair damaged segments: forget them so their files are normalized again;
3. resolve the snapshot: the REST catalog's metadata file, else the newest one (a single narrow
   listing when nothing changed), or every Parquet file of a flat folder;
4. diff its live files against the generation: known, new, gone, still set aside;
5. download only what is missing (concurrently, each file landing by atomic rename);
6. normalize new files into segments;
7. drop the rows of files that left the snapshot;
8. merge small segments once there are too many;
9. update the rollups (``rollups.py``): recompute the days this sync touched;
10. set aside files that cannot be read (reported, kept in ``quarantine/``);
11. publish the new generation with its rollups (readers switch to both atomically).

A missing file or any failure aborts the sync and the previous generation stays in use.
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

from . import iceberg, rollups
from .config import Settings
from .errors import O11yError
from .normalize import _lit, prepare, write_segment
from .source import Source, open_source
from .store import BadFile, FileRecord, Generation, Segment, Store

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
    rollups.prepare(conn)
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
) -> tuple[list[Segment], dict[str, FileRecord], dict[str, str]]:
    """New segments for ``keys``; per-file counts; files that could not be read (key -> reason).

    ``rows`` (key -> record count from the manifest) sizes the batches. The counts' ``size`` is
    left unset: the caller knows the size at the source."""
    groups: dict[tuple[str, ...], list[str]] = {}
    bad: dict[str, str] = {}
    for key in keys:
        try:
            groups.setdefault(_read_columns(store.raw / key), []).append(key)
        except Exception as exc:  # a corrupt or truncated file: set it aside, keep the rest
            bad[key] = f"not a readable Parquet file ({type(exc).__name__})"
    segments: list[Segment] = []
    counts: dict[str, FileRecord] = {}
    done = 0

    def attempt(batch: list[str], columns: tuple[str, ...]) -> None:
        name = _segment_name()
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
            counts[k] = per_file.get(k, FileRecord())
        segments.append(Segment(name, sum(c.rows for c in per_file.values()), list(batch)))

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


def _segment_name() -> str:
    return f"seg-{int(time.time())}-{uuid.uuid4().hex[:10]}.parquet"


def _segment_counts(conn: duckdb.DuckDBPyConnection, path: Path) -> dict[str, FileRecord]:
    cur = conn.cursor()
    try:
        rows = cur.execute(
            "SELECT file, count(*), count(*) FILTER (WHERE NOT parsed) "
            "FROM read_parquet(?) GROUP BY file",
            [str(path)],
        ).fetchall()
    finally:
        cur.close()
    return {r[0]: FileRecord(rows=int(r[1]), bad_rows=int(r[2])) for r in rows}


def _rewrite(
    conn: duckdb.DuckDBPyConnection,
    store: Store,
    segments: list[Segment],
    drop: set[str],
) -> Segment:
    """One segment holding the rows of ``segments`` minus files in ``drop``."""
    name = _segment_name()
    tmp = store.segments / f".part-{name}.tmp"
    files = "[" + ", ".join(_lit(str(store.segments / s.name)) for s in segments) + "]"
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
    kept = [k for s in segments for k in s.files if k not in drop]
    rows = sum(s.rows for s in segments)  # corrected by the caller from file counts
    return Segment(name, rows, kept)


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


@dataclass(frozen=True)
class Target:
    """Where the table is and which metadata file is its current state."""

    prefix: str
    mode: str  # "iceberg" or "files"
    metadata_key: str | None = None
    metadata_version: int | None = None


@dataclass
class Diff:
    """The current snapshot's live files against the published generation."""

    snapshot_id: int | None
    live: list[iceberg.DataFile]
    known: set[str]  # live files already in the store, unchanged
    new: list[iceberg.DataFile]  # live files to download and normalize
    gone: set[str]  # files in the store that left the snapshot
    still_bad: dict[str, BadFile]  # set aside before, still live, not changed at the source

    @property
    def live_by_key(self) -> dict[str, iceberg.DataFile]:
        return {f.key: f for f in self.live}


def _sync_locked(
    settings: Settings, store: Store, client: Any, progress: Progress | None, workers: int
) -> SyncReport:
    source = _open_source(settings, client)
    gen = store.load()
    _repair_damaged_segments(store, gen)
    label = settings.source_label
    target = _resolve_snapshot(source, settings, gen)
    retry_bad = {k: v for k, v in gen.bad_files.items() if _changed(source, k, v)}
    rolled_up = rollups.is_current(gen.rollups) or not gen.number
    if _same_metadata(target, gen) and not retry_bad and rolled_up:
        return _unchanged(label, target.prefix, gen)
    diff = _diff(gen, *_live_files(source, store, target), retry_bad)
    if (
        not diff.new
        and not diff.gone
        and not retry_bad
        and gen.number
        and rolled_up
        and _same_metadata(target, gen, any_mode=True)
    ):
        return _unchanged(label, target.prefix, gen)

    # Temp files a killed sync left behind: swept only when there is work, since the walk over
    # every downloaded file would dominate a sync with nothing new.
    store.sweep_partials()
    for k in retry_bad:  # a later copy replaces the bad one
        (store.raw / k).unlink(missing_ok=True)
    report_progress = _status_progress(store, progress)
    fetched, nbytes = _download_all(source, store, diff.new, report_progress, workers)

    conn = _connect()
    try:
        new_segments, counts, bad = _normalize(
            conn,
            store,
            [f.key for f in diff.new],
            report_progress,
            {f.key: f.record_count for f in diff.new},
        )
        segments = _drop_gone_rows(conn, store, gen.segments, diff.gone) + new_segments
        segments = _merge_small_segments(conn, store, segments)
        rollup_state = _update_rollups(conn, store, gen, segments, new_segments, diff.gone)
    finally:
        conn.close()

    files = _file_records(gen, diff, counts)
    _recount(segments, files)
    for k in diff.gone:
        (store.raw / k).unlink(missing_ok=True)
    bad_files = {**diff.still_bad, **_set_aside(source, store, bad, diff.live_by_key)}

    if fetched:
        flush_to_disk(store.root)  # the downloads and segments, before the generation names them
    new_gen = Generation(
        source_label=label,
        table_prefix=target.prefix,
        mode=target.mode,
        metadata_key=target.metadata_key,
        metadata_version=target.metadata_version,
        snapshot_id=diff.snapshot_id,
        segments=segments,
        files=files,
        bad_files=bad_files,
        rollups=rollup_state,
    )
    store.publish(new_gen)
    return SyncReport(
        label,
        target.prefix,
        diff.snapshot_id,
        len(diff.live),
        fetched,
        nbytes,
        len(diff.gone),
        new_gen.rows,
        new_gen.unparseable,
        {k: v.reason for k, v in bad_files.items()},
    )


def _open_source(settings: Settings, client: Any) -> Source:
    if settings.kind == "demo":
        from . import demo

        return demo.demo_source(settings)
    return open_source(settings, client=client)


def _repair_damaged_segments(store: Store, gen: Generation) -> None:
    """Forget damaged cache segments and their files, so this sync normalizes them again from
    the downloaded copies (or downloads them again when those are damaged too)."""
    damaged = set(store.damaged_segments(gen))
    if not damaged:
        return
    lost = {k for seg in gen.segments if seg.name in damaged for k in seg.files}
    gen.segments = [seg for seg in gen.segments if seg.name not in damaged]
    gen.files = {k: v for k, v in gen.files.items() if k not in lost}
    gen.metadata_key = None  # force the full diff
    gen.rollups = {}  # the lost rows' days are unknown: roll up everything again
    for k in lost:
        raw = store.raw / k
        if raw.is_file():
            try:
                _read_columns(raw)
            except Exception:
                raw.unlink()


def _resolve_snapshot(source: Source, settings: Settings, gen: Generation) -> Target:
    """The table and its current metadata file: from the REST catalog when one is configured,
    else the newest metadata file under the table (or a flat folder of Parquet files)."""
    if settings.catalog_uri:
        location = iceberg.catalog_metadata_location(
            settings.catalog_uri,
            warehouse=settings.catalog_warehouse,
            token=settings.catalog_token.get() if settings.catalog_token else None,
        )
        meta_key = iceberg.key_from_uri(location, source.bucket)
        prefix = settings.table_prefix or meta_key.split("metadata/")[0]
        return Target(prefix, "iceberg", meta_key, iceberg.metadata_version(meta_key))
    prefix, mode = _resolve(source, settings, gen)
    if mode != "iceberg":
        return Target(prefix, mode)
    obj = iceberg.newest_metadata(
        source,
        prefix,
        known_version=gen.metadata_version if gen.table_prefix == prefix else None,
    )
    if obj is None:
        raise O11yError("No table metadata", f"nothing under {prefix}metadata/")
    return Target(prefix, mode, obj.key, iceberg.metadata_version(obj.key))


def _same_metadata(target: Target, gen: Generation, *, any_mode: bool = False) -> bool:
    """Whether ``gen`` was built from the table state ``target`` names (only an Iceberg table can
    say so without listing its files, unless ``any_mode``)."""
    return (
        (any_mode or target.mode == "iceberg")
        and target.metadata_key == gen.metadata_key
        and gen.table_prefix == target.prefix
    )


def _live_files(
    source: Source, store: Store, target: Target
) -> tuple[int | None, list[iceberg.DataFile]]:
    """The snapshot id and its live data files (every Parquet file of a flat folder)."""
    if target.mode != "iceberg":
        return None, _list_all_parquet(source, target.prefix)
    assert target.metadata_key is not None
    metadata = iceberg.load_json(source, target.metadata_key)
    return iceberg.live_files(source, metadata, iceberg.ManifestCache(store.meta))


def _diff(
    gen: Generation,
    snapshot_id: int | None,
    live: list[iceberg.DataFile],
    retry_bad: dict[str, BadFile],
) -> Diff:
    live_by_key = {f.key: f for f in live}
    known = {
        k
        for k, v in gen.files.items()
        if k in live_by_key and (live_by_key[k].size <= 0 or v.size in (None, live_by_key[k].size))
    }
    still_bad = {k: v for k, v in gen.bad_files.items() if k in live_by_key and k not in retry_bad}
    new = [f for f in live if f.key not in known and f.key not in still_bad]
    return Diff(snapshot_id, live, known, new, set(gen.files) - known, still_bad)


def _status_progress(store: Store, progress: Progress | None) -> Progress:
    """A progress callback that also reaches status.json, at most every STATUS_EVERY_S."""
    last_status = [0.0]

    def report_progress(phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or done <= 1 or now - last_status[0] >= STATUS_EVERY_S:
            last_status[0] = now
            store.write_status(progress={"phase": phase, "done": done, "total": total})
        if progress:
            progress(phase, done, total)

    return report_progress


def _drop_gone_rows(
    conn: duckdb.DuckDBPyConnection, store: Store, segments: list[Segment], gone: set[str]
) -> list[Segment]:
    """The segments without the rows of files that left the snapshot (touched ones rewritten)."""
    kept = [s for s in segments if not set(s.files) & gone]
    touched = [s for s in segments if set(s.files) & gone]
    if touched:
        kept.append(_rewrite(conn, store, touched, gone))
    return kept


def _update_rollups(
    conn: duckdb.DuckDBPyConnection,
    store: Store,
    gen: Generation,
    segments: list[Segment],
    new_segments: list[Segment],
    gone: set[str],
) -> dict[str, Any]:
    """The rollups of the new segments: the published ones with the days this sync touched
    recomputed from the segments (all of them for a store without current rollups)."""
    days = None
    if rollups.is_current(gen.rollups):
        touched = [store.segments / s.name for s in gen.segments if set(s.files) & gone]
        days = rollups.touched_days(
            conn,
            new_segments=[store.segments / s.name for s in new_segments],
            old_segments=touched,
            gone=gone,
        )
    return rollups.update(
        conn,
        store.rollups,
        [store.segments / s.name for s in segments],
        previous=gen.rollups,
        days=days,
    )


def _merge_small_segments(
    conn: duckdb.DuckDBPyConnection, store: Store, segments: list[Segment]
) -> list[Segment]:
    """Past MAX_SEGMENTS, the small segments become one, so queries open few files."""
    if len(segments) <= MAX_SEGMENTS:
        return segments
    small = [s for s in segments if s.rows < SMALL_SEGMENT_ROWS]
    if len(small) <= 1:
        return segments
    return [s for s in segments if s not in small] + [_rewrite(conn, store, small, set())]


def _file_records(
    gen: Generation, diff: Diff, counts: dict[str, FileRecord]
) -> dict[str, FileRecord]:
    """The kept files' records plus the new files' counts, with their size at the source."""
    live_by_key = diff.live_by_key
    files = {k: gen.files[k] for k in diff.known}
    for k, c in counts.items():
        files[k] = FileRecord(size=live_by_key[k].size, rows=c.rows, bad_rows=c.bad_rows)
    return files


def _recount(segments: list[Segment], files: dict[str, FileRecord]) -> None:
    """Segment row counts from the file records (a rewrite only estimates them)."""
    for seg in segments:
        seg.rows = sum(files[k].rows if k in files else 0 for k in seg.files)


def _set_aside(
    source: Source, store: Store, bad: dict[str, str], live_by_key: dict[str, iceberg.DataFile]
) -> dict[str, BadFile]:
    """Record unreadable files with their size and ETag at the source (a new copy is retried) and
    move the local copy to ``quarantine/`` for a person to inspect; it is out of every view."""
    out: dict[str, BadFile] = {}
    for k, reason in bad.items():
        info = source.head(k)
        out[k] = BadFile(
            reason=reason,
            size=info.size if info else live_by_key[k].size,
            etag=info.etag if info else "",
        )
        quarantine = store.root / "quarantine" / k
        quarantine.parent.mkdir(parents=True, exist_ok=True)
        if (store.raw / k).exists():
            (store.raw / k).replace(quarantine)
    return out


def _unchanged(label: str, prefix: str, gen: Generation) -> SyncReport:
    """The report of a sync that found nothing to do."""
    bad = {k: v.reason for k, v in gen.bad_files.items()}
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


def _changed(source: Source, key: str, recorded: BadFile) -> bool:
    """Whether a file set aside as unreadable has a new copy at the source."""
    try:
        info = source.head(key)
    except O11yError:
        return False
    if info is None:
        return False
    return info.size != recorded.size or (bool(info.etag) and info.etag != recorded.etag)
