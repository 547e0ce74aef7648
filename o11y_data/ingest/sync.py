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

import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from ..config import Settings
from ..errors import O11yError, ObjectMissing, TransportError, local_errno, local_io_error
from . import horizon, iceberg, normalize, ranges, rollups
from .normalize import (
    Deletes,
    EqualityDelete,
    FileShape,
    column_keys,
    file_shape,
    load_positions,
    prepare,
    reading_of,
    sql_literal,
    write_segment,
)
from .source import Source, open_source
from .store import (
    CHOICES,
    BadFile,
    FileRecord,
    Generation,
    Segment,
    Store,
    choices_sql,
    newest_ingest_ts,
)

Progress = Callable[[str, int, int], None]
log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Files are normalized in batches of about SMALL_SEGMENT_ROWS rows (by the manifests' record
# counts; at most BATCH_FILES files), so a first sync writes segments that are never "small" and
# never merged again: 10M rows make 5 segments instead of ~200 that a 10M-row merge then rewrites.
BATCH_FILES = 25_000
MAX_SEGMENTS = 12
SMALL_SEGMENT_ROWS = 2_000_000
STATUS_EVERY_S = 0.5  # progress reaches status.json at most this often (each write is an fsync)
# A file set aside is tried again (downloaded afresh) after RETRY_FIRST_S, then twice as long
# each time up to RETRY_MAX_S, even when nothing changed at the source.
RETRY_FIRST_S = 60.0
RETRY_MAX_S = 3600.0


def _now() -> float:
    """The wall clock (one place, so tests can move time forward)."""
    return time.time()


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
    warnings: list[str] = field(default_factory=list)
    # Files downloaded only to roll up their rows before the raw horizon (not kept), and files
    # downloaded again to recompute rollup days before it (a delete or compaction there).
    streamed: int = 0
    refetched: int = 0
    # Files whose rows before the raw horizon an engine rolled up (O11Y_HISTORY=engine), and who.
    aggregated: int = 0
    aggregated_by: str = ""

    def one_line(self) -> str:
        what = "no change" if not self.changed else f"{self.downloaded} new files"
        if self.streamed:
            what += f" (+{self.streamed} before the raw horizon, rolled up)"
        if self.aggregated:
            what += (
                f" (+{self.aggregated} before the raw horizon, rolled up by {self.aggregated_by})"
            )
        if self.refetched:
            what += f", {self.refetched} downloaded again for rollups"
        bad = f", {len(self.bad_files)} unreadable files set aside" if self.bad_files else ""
        warn = "".join(f"; warning: {w}" for w in self.warnings)
        return (
            f"synced {self.source}: {what}, {self.removed} removed; {self.live_files} live files, "
            f"{self.rows:,} rows, {self.unparseable:,} unparseable{bad} in {self.seconds:.1f}s"
            f"{warn}"
        )


def _connect(store: Store, memory_limit: str) -> duckdb.DuckDBPyConnection:
    """The sync's DuckDB: capped at ``memory_limit`` (O11Y_SYNC_MEMORY), spilling past it into
    the store's own ``sync-tmp`` folder (not the app's ``tmp``: DuckDB names its spill files
    alike in every process), so the disk that holds the store also holds what overflows."""
    conn = duckdb.connect(
        ":memory:",
        config={
            "threads": "2",
            "memory_limit": memory_limit,
            "temp_directory": str(store.root / "sync-tmp"),  # one sync at a time: the store lock
        },
    )
    prepare(conn)
    rollups.prepare(conn)
    return conn


def _list_all_parquet(source: Source, prefix: str) -> iceberg.LiveSnapshot:
    files = tuple(
        iceberg.DataFile(key=o.key, size=o.size, record_count=-1)
        for o in source.list(prefix)
        if o.key.endswith(".parquet")
    )
    return iceberg.LiveSnapshot(None, files)


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


def _download_all(
    source: Source,
    store: Store,
    wanted: Sequence[iceberg.DataFile | iceberg.DeleteFile],
    progress: Progress | None,
    workers: int,
) -> tuple[int, int, dict[str, str]]:
    """Download what is not already on disk; returns (files, bytes) fetched and the files whose
    object at the source is not the size the table names (key -> reason): bad at the source,
    as a fresh HEAD confirms, not in transit. Any other failure fails the sync."""
    todo = []
    for f in wanted:
        dest = store.raw / f.key
        if dest.is_file() and (f.size <= 0 or dest.stat().st_size == f.size):
            continue
        todo.append(f)
    if not todo:
        return 0, 0, {}
    fetched = nbytes = 0
    wrong_size: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            pool.submit(source.download, f.key, store.raw / f.key, size=f.size): f for f in todo
        }
        try:
            for fut in as_completed(futures):
                try:
                    nbytes += fut.result()
                except TransportError:
                    reason = _size_differs_at_source(source, futures[fut])
                    if reason is None:
                        raise
                    wrong_size[futures[fut].key] = reason
                    continue
                fetched += 1
                if progress:
                    progress("download", fetched, len(todo))
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return fetched, nbytes, wrong_size


def _size_differs_at_source(source: Source, f: iceberg.DataFile) -> str | None:
    """Why ``f`` is bad at the source when its object is not the size the table names (None when
    it is, or is gone: then the failure was in transit, or the sync fails on the missing file)."""
    if f.size < 0:
        return None
    info = source.head(f.key)
    if info is None or info.size == f.size:
        return None
    return f"its object holds {info.size:,} bytes, the table says {f.size:,}"


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
    snapshot: iceberg.LiveSnapshot,
    readings: dict[str, list[list[Any]]],
) -> tuple[list[Segment], dict[str, FileRecord], dict[str, str]]:
    """New segments for ``keys``; per-file counts; files that could not be read (key -> reason).

    Files are batched by their full shape (names, types, field ids) and read by the snapshot's
    field ids, minus the rows its delete files remove; the manifests' record counts size the
    batches. The counts' ``size`` is left unset: the caller knows the size at the source. Each
    count records how the schema read its file (``reading_of``), whose columns land in
    ``readings``, so a later schema change is seen without the file."""
    groups: dict[FileShape, list[str]] = {}
    bad: dict[str, str] = {}
    for key in keys:
        try:
            groups.setdefault(file_shape(store.raw / key), []).append(key)
        except Exception as exc:  # a corrupt or truncated file: set it aside, keep the rest
            if local_errno(exc) is not None:
                raise  # the cache's disk failed, not the file
            bad[key] = f"not a readable Parquet file ({type(exc).__name__})"
    rows = {f.key: f.record_count for f in snapshot.files}
    segments: list[Segment] = []
    counts: dict[str, FileRecord] = {}
    done = 0

    def attempt(batch: list[str], shape: FileShape) -> None:
        name = _segment_name()
        tmp = store.segments / f".part-{name}.tmp"
        deletes = _batch_deletes(conn, store, snapshot, batch, shape)
        try:
            write_segment(
                conn,
                [store.raw / k for k in batch],
                store.raw,
                shape,
                tmp,
                names=snapshot.names,
                fields=snapshot.fields,
                deletes=deletes,
            )
        except duckdb.Error as exc:
            tmp.unlink(missing_ok=True)
            if local_errno(exc) is not None:
                raise  # writing the segment failed (disk full, …): no file is to blame
            if len(batch) == 1:
                if deletes is not None and _reads_without_deletes(
                    conn, store, batch[0], shape, snapshot
                ):
                    # The data file is fine: never set it aside for its delete files' sake.
                    raise O11yError(
                        "Cannot apply delete files",
                        f"{batch[0]}: {', '.join(snapshot.deletes[batch[0]])} "
                        f"({type(exc).__name__})",
                    ) from exc
                bad[batch[0]] = f"unreadable ({type(exc).__name__})"
                return
            half = len(batch) // 2  # find the bad file without giving up the good ones
            attempt(batch[:half], shape)
            attempt(batch[half:], shape)
            return
        tmp.rename(store.segments / name)
        per_file = _segment_counts(conn, store.segments / name)
        columns = column_keys(shape)
        reading = reading_of(columns, snapshot.fields)
        readings[reading] = columns
        for k in batch:
            rec = per_file.get(k, FileRecord(days=[]))
            rec.deletes = list(snapshot.deletes.get(k, ()))
            rec.reading = reading
            counts[k] = rec
        segments.append(Segment(name, sum(c.rows for c in per_file.values()), list(batch)))

    # A table whose schema has the event's columns reads a file lacking them as NULLs (or their
    # defaults), as the spec says; only a schema-less folder sets such a file aside.
    schema_has_events = iceberg.is_event_table(snapshot.names.values())
    for shape, members in groups.items():
        columns = set(shape.named(snapshot.names))
        if not schema_has_events and "value" not in columns and not columns & iceberg.EVENT_FIELDS:
            for k in members:
                bad[k] = "no value column and no event fields"
            continue
        for batch in _batches(members, rows):
            attempt(batch, shape)
            done += len(batch)
            if progress:
                progress("normalize", done, len(keys))
    return segments, counts, bad


def _reads_without_deletes(
    conn: duckdb.DuckDBPyConnection,
    store: Store,
    key: str,
    shape: FileShape,
    snapshot: iceberg.LiveSnapshot,
) -> bool:
    """Whether ``key`` normalizes when no delete file is applied (the same path, thrown away)."""
    tmp = store.segments / f".part-check-{uuid.uuid4().hex[:10]}.tmp"
    try:
        write_segment(
            conn,
            [store.raw / key],
            store.raw,
            shape,
            tmp,
            names=snapshot.names,
            fields=snapshot.fields,
        )
    except duckdb.Error:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _batch_deletes(
    conn: duckdb.DuckDBPyConnection,
    store: Store,
    snapshot: iceberg.LiveSnapshot,
    batch: list[str],
    shape: FileShape,
) -> Deletes | None:
    """The rows the snapshot's delete files remove from ``batch``: deleted positions loaded into
    the ``o11y_pos`` table, equality deletes matched by field id."""
    applied = {k: snapshot.deletes.get(k, ()) for k in batch}
    if not any(applied.values()):
        return None
    by_key = {f.key: f for f in snapshot.files}
    parquet: list[tuple[Path, str, str]] = []
    vectors: list[tuple[str, list[int]]] = []
    equality: dict[str, list[str]] = {}
    for data_key, delete_keys in applied.items():
        for delete_id in delete_keys:
            d = snapshot.delete_files[delete_id]
            if d.kind == "position":
                parquet.append((store.raw / d.key, by_key[data_key].uri, data_key))
            elif d.kind == "dv":
                vectors.append((data_key, iceberg.deletion_vector_positions(store.raw / d.key, d)))
            else:
                equality.setdefault(delete_id, []).append(data_key)
    try:
        if parquet or vectors:
            load_positions(conn, "o11y_pos", parquet=parquet, vectors=vectors)
    except duckdb.Error as exc:
        names = sorted({str(p.relative_to(store.raw)) for p, _, _ in parquet})
        raise O11yError(
            "Unreadable delete file", f"{', '.join(names)} ({type(exc).__name__})"
        ) from exc
    eq = tuple(
        EqualityDelete(
            store.raw / snapshot.delete_files[i].key,
            _equality_columns(snapshot, shape, snapshot.delete_files[i], store),
            tuple(keys),
        )
        for i, keys in equality.items()
    )
    return Deletes(positions="o11y_pos" if parquet or vectors else None, equality=eq)


def _equality_columns(
    snapshot: iceberg.LiveSnapshot, shape: FileShape, delete: iceberg.DeleteFile, store: Store
) -> tuple[tuple[str, str], ...]:
    """(data column, delete file column) for each of the delete's field ids."""
    try:
        delete_shape = file_shape(store.raw / delete.key)
    except Exception as exc:
        raise O11yError("Unreadable delete file", f"{delete.key} ({type(exc).__name__})") from exc

    def column(s: FileShape, fid: int) -> str | None:
        by_id = {c.field_id: c.name for c in s.columns if c.field_id is not None}
        if by_id:
            return by_id.get(fid)
        name = snapshot.names.get(fid)
        return name if name in {c.name for c in s.columns} else None

    pairs = []
    for fid in delete.equality_ids:
        data_col, delete_col = column(shape, fid), column(delete_shape, fid)
        if data_col is None or delete_col is None:
            raise O11yError(
                "Unsupported equality delete",
                f"{delete.key} matches field {fid}, which a data file or the delete lacks",
            )
        pairs.append((data_col, delete_col))
    return tuple(pairs)


def _segment_name() -> str:
    return f"seg-{int(time.time())}-{uuid.uuid4().hex[:10]}.parquet"


def _segment_counts(conn: duckdb.DuckDBPyConnection, path: Path) -> dict[str, FileRecord]:
    cur = conn.cursor()
    try:
        rows = cur.execute(
            "SELECT file, count(*), count(*) FILTER (WHERE NOT parsed), "
            "count(*) FILTER (WHERE ts IS NULL), "
            "list(DISTINCT CAST(epoch_us(ts) // ? AS BIGINT)) FILTER (WHERE ts IS NOT NULL), "
            f"{ranges.counts_sql()} FROM read_parquet(?) GROUP BY file",
            [horizon.DAY_US, str(path)],
        ).fetchall()
    finally:
        cur.close()
    keys = list(ranges.FLAGS)
    return {
        r[0]: FileRecord(
            rows=int(r[1]),
            bad_rows=int(r[2]),
            untimed=int(r[3]),
            days=sorted(int(d) for d in r[4] or ()),
            out_of_range={k: int(n) for k, n in zip(keys, r[5:], strict=True) if n},
        )
        for r in rows
    }


def _rewrite(
    conn: duckdb.DuckDBPyConnection,
    store: Store,
    segments: list[Segment],
    drop: set[str],
) -> Segment:
    """One segment holding the rows of ``segments`` minus files in ``drop``."""
    name = _segment_name()
    tmp = store.segments / f".part-{name}.tmp"
    files = "[" + ", ".join(sql_literal(str(store.segments / s.name)) for s in segments) + "]"
    cur = conn.cursor()
    try:
        cur.execute(
            "CREATE OR REPLACE TABLE o11y_drop AS SELECT unnest(?::VARCHAR[]) AS k", [sorted(drop)]
        )
        cur.execute(
            f"COPY (SELECT * FROM read_parquet({files}) WHERE file NOT IN (SELECT k FROM o11y_drop)"
            f" ORDER BY ts, file) TO {sql_literal(str(tmp))} "
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
    history: horizon.HistoryEngine | None = None,
) -> SyncReport:
    """Sync the configured source into its cache; one sync at a time across processes.
    ``history``: the engine O11Y_HISTORY=engine asks for the history before the raw horizon
    (``o11y_data.sync`` builds it from the settings; this layer knows no engines)."""
    if settings.history == "engine" and history is None:
        raise O11yError("O11Y_HISTORY=engine needs an engine", "sync through o11y_data.sync")
    store = Store(settings.store_dir)
    try:
        return _sync_store(settings, store, client, progress, wait, workers, history)
    except OSError as exc:  # the cache itself (folder, lock, status file) cannot be written
        number = local_errno(exc)
        if number is None:
            raise
        err = local_io_error(number, store.root)
        log.warning("sync of %s failed: %s", settings.source_label, err.one_line(), exc_info=exc)
        raise err from exc


def _sync_store(
    settings: Settings,
    store: Store,
    client: Any,
    progress: Progress | None,
    wait: bool,
    workers: int,
    history: horizon.HistoryEngine | None = None,
) -> SyncReport:
    store.ensure()
    started = time.time()
    with store.lock(wait=wait):  # SyncBusy when another process holds it
        store.write_status(running=True, started_at=started, progress=None)
        try:
            report = _sync_locked(settings, store, client, progress, workers, history)
        except Exception as exc:
            # Never let a low-level error escape unlabelled; record the one line either way and
            # log the root cause with its chain (messages name keys and paths, never secrets).
            err = _labelled(exc, store, memory_limit=settings.sync_memory)
            log.warning(
                "sync of %s failed: %s", settings.source_label, err.one_line(), exc_info=exc
            )
            _record_failure(store, err)
            if err is exc:
                raise
            raise err from exc
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


def _record_failure(store: Store, err: O11yError) -> None:
    """The failure's one line in status.json; a cache that cannot take even that (full,
    read-only) must not hide the failure itself."""
    now = time.time()
    try:
        store.write_status(
            running=False, finished_at=now, ok=False, last_error=err.one_line(), last_error_at=now
        )
    except OSError:
        log.warning("could not record the failure in %s", store.root / "status.json")


@dataclass(frozen=True)
class Target:
    """Where the table is and which metadata file is its current state."""

    prefix: str
    mode: str  # "iceberg" or "files"
    metadata_key: str | None = None
    metadata_version: int | None = None
    warnings: tuple[str, ...] = ()


@dataclass
class Diff:
    """The current snapshot's live files against the published generation."""

    snapshot: iceberg.LiveSnapshot
    known: set[str]  # live files already in the store, unchanged (their deletes too)
    new: list[iceberg.DataFile]  # live files to download and normalize (again)
    gone: set[str]  # files whose rows leave the store: out of the snapshot, or deletes changed
    still_bad: dict[str, BadFile]  # set aside before, still live, not changed at the source

    @property
    def snapshot_id(self) -> int | None:
        return self.snapshot.snapshot_id

    @property
    def live(self) -> tuple[iceberg.DataFile, ...]:
        return self.snapshot.files

    @property
    def live_by_key(self) -> dict[str, iceberg.DataFile]:
        return {f.key: f for f in self.live}

    def delete_files_needed(self) -> list[iceberg.DeleteFile]:
        """The delete files that apply to the files normalized this sync."""
        return delete_files_for(self.snapshot, self.new)


def delete_files_for(
    snapshot: iceberg.LiveSnapshot, files: Sequence[iceberg.DataFile]
) -> list[iceberg.DeleteFile]:
    """The delete files that apply to ``files``, each once."""
    ids = {d for f in files for d in snapshot.deletes.get(f.key, ())}
    by_key = {snapshot.delete_files[i].key: snapshot.delete_files[i] for i in ids}
    return [by_key[k] for k in sorted(by_key)]


def _sync_locked(
    settings: Settings,
    store: Store,
    client: Any,
    progress: Progress | None,
    workers: int,
    history: horizon.HistoryEngine | None = None,
) -> SyncReport:
    source = _open_source(settings, client)
    gen = store.load()
    _repair_damaged_segments(store, gen)
    target = resolve_snapshot(source, settings, gen)
    try:
        return _sync_target(settings, store, source, gen, target, progress, workers, history)
    except ObjectMissing as exc:
        raise _missing_next_step(exc, source, settings, gen, target) from exc


def _missing_next_step(
    exc: ObjectMissing, source: Source, settings: Settings, gen: Generation, target: Target
) -> ObjectMissing:
    """The missing object with what to do: when the table has a newer metadata file than the one
    this sync read, it moved on (a compaction or expiry raced the sync) and a new sync reads the
    newer state; otherwise the current metadata names an object the bucket lacks."""
    what = exc.key or "an object the table names"
    where = (
        "O11Y_BUCKET is the table's bucket"
        if settings.kind == "r2"
        else ("O11Y_SOURCE_DIR is the table's folder")
    )
    try:
        now = resolve_snapshot(source, settings, gen).metadata_key
    except O11yError:
        now = None
    if target.mode != "iceberg":
        step = "the folder changed while this sync read it; sync again"
    elif now is None:
        step = "check the table's newest metadata again, then sync again"
    elif now != target.metadata_key:
        step = f"the table moved on while this sync read it (newest metadata now {now}); sync again"
    else:
        step = (
            f"the table's current metadata {target.metadata_key} still names it, so syncing "
            "again will not help: check that nothing deletes the table's files (lifecycle "
            f"rules, a cleanup job) and that {where}"
        )
    return ObjectMissing(exc.key, f"{what} is not in {source.label}; {step}")


def _sync_target(
    settings: Settings,
    store: Store,
    source: Source,
    gen: Generation,
    target: Target,
    progress: Progress | None,
    workers: int,
    history: horizon.HistoryEngine | None = None,
) -> SyncReport:
    label = settings.source_label
    now = _now()
    retry_bad = {k: v for k, v in gen.bad_files.items() if _due(v, now) or _changed(source, k, v)}
    # A store normalized under older rules counts as not rolled up: everything is redone.
    rolled_up = (
        rollups.is_current(gen.rollups) and gen.normalized == normalize.VERSION
    ) or not gen.number
    # The raw horizon moves with the clock (a whole day at a time): a sync on a new day trims.
    raw_from = horizon.boundary(
        now, settings.raw_horizon_s, gen.raw_from_us if gen.number else None
    )
    same_horizon = raw_from == gen.raw_from_us or not gen.number
    if _same_metadata(target, gen) and not retry_bad and rolled_up and same_horizon:
        return _unchanged(label, target.prefix, gen, _horizon_warnings(settings, now, raw_from))
    diff = _diff(gen, _live_files(source, store, target), retry_bad, engine=history is not None)
    if (
        not diff.new
        and not diff.gone
        and not retry_bad
        and gen.number
        and rolled_up
        and same_horizon
        and _same_metadata(target, gen, any_mode=True)
    ):
        return _unchanged(label, target.prefix, gen, _horizon_warnings(settings, now, raw_from))

    # Temp files a killed sync left behind: swept only when there is work, since the walk over
    # every downloaded file would dominate a sync with nothing new.
    store.sweep_partials()
    for k in retry_bad:  # a later copy replaces the bad one
        (store.raw / k).unlink(missing_ok=True)
    report_progress = _status_progress(store, progress)
    streamed = refetched = aggregated = 0
    aggregated_by = ""
    engine_notes: list[str] = []
    try:
        # Files the manifests place wholly before the raw horizon are streamed (below), not kept.
        kept_new = [f for f in diff.new if not horizon.wholly_before(f, raw_from)]
        old_new = [f for f in diff.new if horizon.wholly_before(f, raw_from)]
        wanted = [*kept_new, *delete_files_for(diff.snapshot, kept_new)]
        fetched, nbytes, wrong_size = _download_all(source, store, wanted, report_progress, workers)
        _fail_on_bad_delete_files(diff.snapshot, wrong_size)
        conn = _connect(store, settings.sync_memory)
        try:
            readable = [f for f in kept_new if f.key not in wrong_size]
            readings = dict(gen.readings)
            if raw_from is not None:
                rollups.start_partials(conn)
                _backfill_days(conn, store, gen)
            new_segments, counts, bad = _normalize_new(
                conn, source, store, readable, report_progress, workers, diff.snapshot, readings
            )
            bad.update(wrong_size)
            pre_days: set[int] | None = None
            if raw_from is not None:
                new_segments = _absorb(conn, store, new_segments, raw_from)
                full = not rollups.is_current(gen.rollups)
                asked = None
                if history is not None:
                    asked = _ask_engine(
                        conn, history, gen, diff, counts, old_new, raw_from, full=full,
                        never=set(bad) | set(diff.still_bad), warnings=engine_notes,
                    )  # fmt: skip
                if asked is not None:
                    old_new = [f for f in old_new if f.key not in asked.files]
                    readings.update(asked.readings)
                    aggregated = len([f for f in diff.new if f.key in asked.files])
                    aggregated_by = asked.engine
                flow = _stream(
                    conn, source, store, old_new, diff.snapshot, readings, raw_from,
                    report_progress, workers,
                )  # fmt: skip
                new_segments += flow.segments
                counts.update(flow.counts)
                bad.update(flow.bad)
                streamed, nbytes = len(flow.counts), nbytes + flow.nbytes
                pre_days = None if full else _pre_horizon_days(gen, diff, counts, raw_from)
                if asked is not None:  # the engine's rows are the whole history below its cut
                    pre_days = None
                    counts.update(asked.records)
                refetched = _reread(
                    conn, source, store, gen, diff, raw_from, pre_days, readings, workers,
                    skip=asked.files if asked is not None else frozenset(),
                )  # fmt: skip
            segments = _drop_gone_rows(conn, store, gen.segments, diff.gone) + new_segments
            if raw_from is not None and not same_horizon:  # new segments are trimmed already
                segments = _trim(conn, store, segments, raw_from, owned=set())
            segments = _merge_small_segments(conn, store, segments)
            rollup_state = _update_rollups(
                conn, store, gen, segments, new_segments, diff.gone, raw_from, pre_days
            )
            facts = _generation_facts(conn, store, segments, rollup_state)
            if raw_from is not None:
                _exact_rows(conn, store, segments)
        finally:
            conn.close()
    except (OSError, duckdb.Error) as exc:
        number = local_errno(exc)
        if number is None:
            raise
        raise local_io_error(number, store.root, need_bytes=_space_short(store, diff.new)) from exc

    files = _file_records(gen, diff, counts)
    if raw_from is None:
        _recount(segments, files)
    else:
        _drop_raw_before(store, files if not same_horizon else counts, raw_from)
    _remove_raw_copies(store, gen, diff)
    for k, rec in files.items():  # rolled up by the engine: wholly before the horizon
        if _by_engine(rec):
            (store.raw / k).unlink(missing_ok=True)
    warnings = list(target.warnings) + _horizon_warnings(settings, now, raw_from) + engine_notes
    set_aside = _set_aside(source, store, bad, diff.live_by_key, gen.bad_files, now)
    bad_files = {**diff.still_bad, **set_aside}

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
        readings={r: readings[r] for r in {f.reading for f in files.values()} if r in readings},
        bad_files=bad_files,
        warnings=warnings,
        rollups=rollup_state,
        newest_ts_us=facts.newest_ts_us,
        newest_ingest_us=facts.newest_ingest_us,
        raw_from_us=raw_from,
        choices=facts.choices,
        normalized=normalize.VERSION,
    )
    store.publish(new_gen)
    return SyncReport(
        label,
        target.prefix,
        diff.snapshot_id,
        len(diff.live),
        fetched,
        nbytes,
        len(diff.gone - set(diff.live_by_key)),
        new_gen.rows,
        new_gen.unparseable,
        {k: v.reason for k, v in bad_files.items()},
        warnings=warnings,
        streamed=streamed,
        refetched=refetched,
        aggregated=aggregated,
        aggregated_by=aggregated_by,
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
                file_shape(raw)
            except Exception:
                raw.unlink()


def resolve_snapshot(source: Source, settings: Settings, gen: Generation) -> Target:
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
    pick = iceberg.newest_metadata(
        source, prefix, after=gen.metadata_key if gen.table_prefix == prefix else None
    )
    if pick is None:
        raise O11yError("No table metadata", f"nothing under {prefix}metadata/")
    warning = pick.warning()
    if pick.key == gen.metadata_key:
        return Target(prefix, mode, pick.key, pick.version, tuple(gen.warnings))
    return Target(prefix, mode, pick.key, pick.version, (warning,) if warning else ())


def _same_metadata(target: Target, gen: Generation, *, any_mode: bool = False) -> bool:
    """Whether ``gen`` was built from the table state ``target`` names (only an Iceberg table can
    say so without listing its files, unless ``any_mode``)."""
    return (
        (any_mode or target.mode == "iceberg")
        and target.metadata_key == gen.metadata_key
        and gen.table_prefix == target.prefix
    )


def _live_files(source: Source, store: Store, target: Target) -> iceberg.LiveSnapshot:
    """The snapshot's live data files and delete files (every Parquet file of a flat folder)."""
    if target.mode != "iceberg":
        return _list_all_parquet(source, target.prefix)
    assert target.metadata_key is not None
    metadata = iceberg.load_json(source, target.metadata_key)
    return iceberg.read_snapshot(
        source, metadata, iceberg.ManifestCache(store.meta), key=target.metadata_key
    )


def _diff(
    gen: Generation,
    snapshot: iceberg.LiveSnapshot,
    retry_bad: dict[str, BadFile],
    *,
    engine: bool = False,
) -> Diff:
    """A file whose set of delete files changed (a DELETE on old data), or that the current
    schema reads differently (a rename, drop, re-add, type promotion or new default), counts as
    gone and new: its rows are normalized again from the downloaded copy. Without an ``engine``,
    files an engine rolled up count as gone and new too (streamed once, so counted per file)."""
    live_by_key = {f.key: f for f in snapshot.files}
    same_reading = _same_reading(gen, snapshot, engine=engine)
    known = {
        k
        for k, v in gen.files.items()
        if gen.normalized == normalize.VERSION  # else every file is normalized again
        and k in live_by_key
        and (live_by_key[k].size <= 0 or v.size in (None, live_by_key[k].size))
        and tuple(v.deletes) == snapshot.deletes.get(k, ())
        and same_reading(v.reading)
    }
    still_bad = {k: v for k, v in gen.bad_files.items() if k in live_by_key and k not in retry_bad}
    new = [f for f in snapshot.files if f.key not in known and f.key not in still_bad]
    return Diff(snapshot, known, new, set(gen.files) - known, still_bad)


def _same_reading(
    gen: Generation, snapshot: iceberg.LiveSnapshot, *, engine: bool = False
) -> Callable[[str], bool]:
    """Whether a file recorded with a reading would be read the same under the snapshot's
    schema (a file recorded without one, by an older version, is read again to be sure). A file
    an engine rolled up is recorded with the schema it was read under (``ENGINE_READING``): the
    same only while that schema reads the same, and only with an ``engine``."""
    memo: dict[str, bool] = {}

    def same(reading: str) -> bool:
        if reading not in memo:
            columns = gen.readings.get(reading)
            found = reading
            if reading.startswith(ENGINE_READING):
                found = reading.removeprefix(ENGINE_READING) if engine else ""
            memo[reading] = columns is not None and reading_of(columns, snapshot.fields) == found
        return memo[reading]

    return same


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
    # A segment whose files are all gone is dropped without reading it (a store normalized
    # again under new rules drops every segment).
    touched = [s for s in segments if set(s.files) & gone and not set(s.files) <= gone]
    if touched:
        kept.append(_rewrite(conn, store, touched, gone))
    return kept


@dataclass(frozen=True)
class GenerationFacts:
    """What readers would otherwise scan for once per generation, found by the sync."""

    newest_ts_us: int | None  # the newest event ts (epoch µs)
    newest_ingest_us: int | None  # the newest landing time of any row (epoch µs)
    choices: dict[str, list[str]]  # distinct agents, modes and event types (filter widgets)


def _generation_facts(
    conn: duckdb.DuckDBPyConnection,
    store: Store,
    segments: list[Segment],
    rollup_state: dict[str, Any],
) -> GenerationFacts:
    """The newest ``ts`` and the filter choices from the daily rollup (a few thousand rows a
    month), the newest ``ingest_ts`` from the segments' statistics."""
    cur = conn.cursor()
    try:
        daily = rollups.view_sql(store.rollups, rollup_state, "daily")
        row = cur.execute(
            f"SELECT epoch_us(max(max_ts)), {choices_sql()} FROM ({daily})"
        ).fetchall()[0]
        ingest = newest_ingest_ts(cur, [store.segments / s.name for s in segments])
    finally:
        cur.close()
    ingest_us = None if ingest is None else (ingest - _EPOCH) // timedelta(microseconds=1)
    lists = {c: [str(v) for v in values or []] for c, values in zip(CHOICES, row[1:], strict=True)}
    return GenerationFacts(row[0], ingest_us, lists)


def _update_rollups(
    conn: duckdb.DuckDBPyConnection,
    store: Store,
    gen: Generation,
    segments: list[Segment],
    new_segments: list[Segment],
    gone: set[str],
    raw_from: int | None = None,
    pre_days: set[int] | None = None,
) -> dict[str, Any]:
    """The rollups of the new segments: the published ones with the days this sync touched
    recomputed from the segments (all of them for a store without current rollups). Under a
    raw horizon, the days before it (``pre_days``; None: all of them) come from the partial
    tables the sync filled (``_absorb``, ``_stream``, ``_reread``)."""
    days = None
    if rollups.is_current(gen.rollups) and (raw_from is None or pre_days is not None):
        touched = [store.segments / s.name for s in gen.segments if set(s.files) & gone]
        days = rollups.touched_days(
            conn,
            new_segments=[store.segments / s.name for s in new_segments],
            old_segments=touched,
            gone=gone,
        )
        days |= {horizon.day_start(d) for d in pre_days or ()}
    return rollups.update(
        conn,
        store.rollups,
        [store.segments / s.name for s in segments],
        previous=gen.rollups,
        days=days,
        partials=raw_from is not None,
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
        files[k] = FileRecord(
            size=live_by_key[k].size,
            rows=c.rows,
            bad_rows=c.bad_rows,
            deletes=c.deletes,
            reading=c.reading,
            out_of_range=c.out_of_range,
            days=c.days,
            untimed=c.untimed,
        )
    return files


def _recount(segments: list[Segment], files: dict[str, FileRecord]) -> None:
    """Segment row counts from the file records (a rewrite only estimates them)."""
    for seg in segments:
        seg.rows = sum(files[k].rows if k in files else 0 for k in seg.files)


def _remove_raw_copies(store: Store, gen: Generation, diff: Diff) -> None:
    """Delete the downloaded copies of files out of the snapshot, and of delete files no live
    file uses any more (files normalized again keep theirs)."""
    live = diff.live_by_key
    for k in diff.gone - set(live):
        (store.raw / k).unlink(missing_ok=True)
    used = {iceberg.delete_key(d) for ids in diff.snapshot.deletes.values() for d in ids}
    for rec in gen.files.values():
        for key in {iceberg.delete_key(d) for d in rec.deletes} - used:
            (store.raw / key).unlink(missing_ok=True)


def _set_aside(
    source: Source,
    store: Store,
    bad: dict[str, str],
    live_by_key: dict[str, iceberg.DataFile],
    before: dict[str, BadFile],
    now: float,
) -> dict[str, BadFile]:
    """Record unreadable files with their size and ETag at the source (a new copy is retried at
    once) and when to try again (backoff doubling from RETRY_FIRST_S to RETRY_MAX_S); move the
    local copy to ``quarantine/`` for a person to inspect; it is out of every view."""
    out: dict[str, BadFile] = {}
    for k, reason in bad.items():
        info = source.head(k)
        attempts = before[k].attempts + 1 if k in before else 1
        out[k] = BadFile(
            reason=reason,
            size=info.size if info else live_by_key[k].size,
            etag=info.etag if info else "",
            attempts=attempts,
            set_aside_at=before[k].set_aside_at if k in before else now,
            next_retry_at=now + min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (attempts - 1)),
        )
        log.warning("set aside %s: %s (try %d)", k, reason, attempts)
        quarantine = store.root / "quarantine" / k
        quarantine.parent.mkdir(parents=True, exist_ok=True)
        if (store.raw / k).exists():
            (store.raw / k).replace(quarantine)
    return out


def _fail_on_bad_delete_files(snapshot: iceberg.LiveSnapshot, wrong_size: dict[str, str]) -> None:
    """A delete file cannot be set aside like a data file (its rows would count again)."""
    deletes = {d.key for d in snapshot.delete_files.values()}
    for key, reason in wrong_size.items():
        if key in deletes:
            raise O11yError("Bad delete file", f"{key}: {reason}")


def _normalize_new(
    conn: duckdb.DuckDBPyConnection,
    source: Source,
    store: Store,
    new: Sequence[iceberg.DataFile],
    progress: Progress | None,
    workers: int,
    snapshot: iceberg.LiveSnapshot,
    readings: dict[str, list[list[Any]]],
) -> tuple[list[Segment], dict[str, FileRecord], dict[str, str]]:
    """``_normalize`` the new files; a file that fails is downloaded afresh and tried once more,
    so only a failure the source's own bytes repeat sets a file aside (never a copy damaged on
    the way or on disk)."""
    segments, counts, bad = _normalize(
        conn, store, [f.key for f in new], progress, snapshot, readings
    )
    if not bad:
        return segments, counts, bad
    again = [f for f in new if f.key in bad]
    for f in again:
        (store.raw / f.key).unlink(missing_ok=True)
    _, _, wrong_size = _download_all(source, store, again, None, workers)
    again = [f for f in again if f.key not in wrong_size]
    more, more_counts, bad = _normalize(
        conn, store, [f.key for f in again], None, snapshot, readings
    )
    counts.update(more_counts)
    return segments + more, counts, {**bad, **wrong_size}


def _space_short(store: Store, new: Sequence[iceberg.DataFile]) -> int:
    """About how many more bytes the cache disk needs for this sync: the downloads still missing
    plus segments about as large as the new files (zstd Parquet both), minus what is free."""
    missing = sum(max(f.size, 0) for f in new if not (store.raw / f.key).is_file())
    want = missing + sum(max(f.size, 0) for f in new) + 1_000_000  # + generation, status, slack
    try:
        free = shutil.disk_usage(store.root).free
    except OSError:
        free = 0
    return max(want - free, 1)


def _labelled(exc: BaseException, store: Store, *, memory_limit: str) -> O11yError:
    """The one line a sync failure is shown as: ours as is, a local disk failure or the memory
    cap named with its fix, anything else with its type (the cause is logged, not shown)."""
    if isinstance(exc, O11yError):
        return exc
    number = local_errno(exc)
    if number is not None:
        return local_io_error(number, store.root)
    if isinstance(exc, duckdb.OutOfMemoryException):
        return O11yError(
            "Sync ran out of memory",
            f"it needed more than O11Y_SYNC_MEMORY={memory_limit}; raise it and sync again",
        )
    return O11yError("Sync failed", f"{type(exc).__name__}: {exc}")


def _due(recorded: BadFile, now: float) -> bool:
    """Whether a file set aside is due for another try."""
    return now >= recorded.next_retry_at


def _horizon_warnings(settings: Settings, now: float, raw_from: int | None) -> list[str]:
    """The line saying the store's raw rows start later than O11Y_RAW_HORIZON asks (none when
    they do not)."""
    wanted = horizon.boundary(now, settings.raw_horizon_s, None)
    if raw_from is None or (wanted is not None and wanted >= raw_from):
        return []
    return [
        f"raw rows before {horizon.as_datetime(raw_from):%Y-%m-%d} were dropped earlier (a "
        "narrower O11Y_RAW_HORIZON, or the clock set back); the rollups keep them, and a new "
        "store downloads them again"
    ]


def _unchanged(
    label: str, prefix: str, gen: Generation, extra_warnings: list[str] | None = None
) -> SyncReport:
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
        warnings=[*gen.warnings, *(w for w in extra_warnings or () if w not in gen.warnings)],
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


# -- the raw horizon (horizon.py): rows before raw_from reach the rollups, not the store --------


@dataclass
class Streamed:
    """What streaming files through the rollups left: the segments of rows the store keeps
    after all (a file the manifests could not place), per-file counts, files set aside."""

    segments: list[Segment] = field(default_factory=list)
    counts: dict[str, FileRecord] = field(default_factory=dict)
    bad: dict[str, str] = field(default_factory=dict)
    nbytes: int = 0


def _segments_sql(store: Store, segments: Sequence[Segment]) -> str:
    return (
        "read_parquet(["
        + ", ".join(sql_literal(str(store.segments / s.name)) for s in segments)
        + "])"
    )


def _absorb(
    conn: duckdb.DuckDBPyConnection, store: Store, segments: list[Segment], raw_from: int
) -> list[Segment]:
    """Roll the rows before ``raw_from`` of new (unpublished) segments into the partial tables;
    returns the segments holding only the rows the store keeps."""
    if not segments:
        return segments
    where, params = horizon.before_where(raw_from, None)
    rollups.add_partials(conn, _segments_sql(store, segments), where, params)
    return _trim(conn, store, segments, raw_from, owned={s.name for s in segments})


def _trim(
    conn: duckdb.DuckDBPyConnection,
    store: Store,
    segments: list[Segment],
    raw_from: int,
    *,
    owned: set[str],
) -> list[Segment]:
    """The segments without rows before ``raw_from`` (rows without a time stay): a segment
    holding some is rewritten, one holding only such rows dropped; the replaced files among
    ``owned`` (never published) are deleted, published ones are left to garbage collection."""
    since = horizon.as_datetime(raw_from)
    out: list[Segment] = []
    for seg in segments:
        path = store.segments / seg.name
        cur = conn.cursor()
        try:
            old = cur.execute(
                "SELECT count(*) FROM read_parquet(?) WHERE ts < ?", [str(path), since]
            ).fetchall()[0][0]
            if not old:
                out.append(seg)
                continue
            name = _segment_name()
            tmp = store.segments / f".part-{name}.tmp"
            cur.execute(
                f"COPY (SELECT * FROM read_parquet({sql_literal(str(path))}) "
                "WHERE ts >= ? OR ts IS NULL ORDER BY ts, file) "
                f"TO {sql_literal(str(tmp))} "
                "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)",
                [since],
            )
            rows = int(cur.fetchall()[0][0])
            files = [
                r[0]
                for r in cur.execute(
                    "SELECT DISTINCT file FROM read_parquet(?) ORDER BY 1", [str(tmp)]
                ).fetchall()
            ]
        finally:
            cur.close()
        if rows:
            tmp.rename(store.segments / name)
            out.append(Segment(name, rows, files))
        else:
            tmp.unlink(missing_ok=True)
        if seg.name in owned:
            path.unlink(missing_ok=True)
    return out


def _stream(
    conn: duckdb.DuckDBPyConnection,
    source: Source,
    store: Store,
    files: Sequence[iceberg.DataFile],
    snapshot: iceberg.LiveSnapshot,
    readings: dict[str, list[list[Any]]],
    raw_from: int,
    progress: Progress | None,
    workers: int,
) -> Streamed:
    """Files the manifests place before ``raw_from``, a batch at a time (bounded disk and
    memory): download, normalize, roll up, delete. A file whose rows turn out to reach the
    horizon after all keeps those rows and its copy, as a file in the store does."""
    out = Streamed()
    by_key = {f.key: f for f in files}
    rows = {f.key: f.record_count for f in files}
    done = 0
    for batch in _batches(list(by_key), rows):
        members = [by_key[k] for k in batch]
        wanted = [*members, *delete_files_for(snapshot, members)]
        _, nbytes, wrong = _download_all(source, store, wanted, None, workers)
        _fail_on_bad_delete_files(snapshot, wrong)
        out.nbytes += nbytes
        readable = [f for f in members if f.key not in wrong]
        segments, counts, bad = _normalize_new(
            conn, source, store, readable, None, workers, snapshot, readings
        )
        out.segments += _absorb(conn, store, segments, raw_from)
        out.counts.update(counts)
        out.bad.update({**bad, **wrong})
        _drop_raw_before(store, counts, raw_from)
        done += len(batch)
        if progress:
            progress("stream", done, len(files))
    return out


# The reading recorded for a file an engine rolled up (O11Y_HISTORY=engine): this prefix and the
# reading of the schema's own columns under the schema (normalize.reading_of), so a schema change
# that would read the file differently has it rolled up again.
ENGINE_READING = "engine:"


def _by_engine(rec: FileRecord) -> bool:
    return rec.reading.startswith(ENGINE_READING)


@dataclass
class Asked:
    """What the engine rolled up: the files below its cut (exactly its rows), their records
    (per-file counts are not known: the cut's totals sit on its first file, the others count 0,
    and no file records its days, so a change to any of them asks the engine again), the
    reading they are recorded with, and who answered."""

    files: frozenset[str]
    records: dict[str, FileRecord]
    readings: dict[str, list[list[Any]]]
    engine: str


def _ask_engine(
    conn: duckdb.DuckDBPyConnection,
    history: horizon.HistoryEngine,
    gen: Generation,
    diff: Diff,
    counts: dict[str, FileRecord],
    old_new: Sequence[iceberg.DataFile],
    raw_from: int,
    *,
    full: bool,
    never: set[str],
    warnings: list[str],
) -> Asked | None:
    """Under O11Y_HISTORY=engine, when this sync changes history before the raw horizon (new
    files wholly before it, rows leaving or arriving there, or rollups made anew): the rollup of
    every file below a cut the manifests prove (horizon.engine_cut), asked of the engine at the
    sync's snapshot and added to the partial tables. The rest of that history is streamed or
    read again as without an engine. None: nothing to ask, or no cut (said in ``warnings``)."""
    if not (full or old_new):
        pre = _pre_horizon_days(gen, diff, counts, raw_from)
        if pre is not None and not pre:
            return None
    cut, why = horizon.engine_cut(diff.live, raw_from, never=never)
    if cut is None or not cut.files:
        if cut is None:
            log.warning(
                "history before the raw horizon streamed, not asked of %s: %s", history.name, why
            )
            warnings.append(
                f"history before the raw horizon streamed, not asked of {history.name}: {why}"
            )
        return None
    answer = history.history(
        snapshot_id=diff.snapshot_id,
        delete_files=tuple(diff.snapshot.delete_files.values()),
        before_us=cut.before_us,
        expected=sum(max(f.record_count, 0) for f in diff.live if f.key in cut.files),
    )
    names = {"facts": "o11y_e_facts", "duration": "o11y_e_dur", "lag": "o11y_e_lag"}
    cur = conn.cursor()
    try:
        for attr, name in names.items():  # tables, not views: the rollups read them on cursors
            cur.register("o11y_e_arrow", getattr(answer, attr))
            cur.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM o11y_e_arrow")
            cur.unregister("o11y_e_arrow")
        rollups.add_engine_partials(conn, **names)
        total = cur.execute(rollups.engine_totals_sql(names["facts"])).fetchall()[0]
        for name in names.values():
            cur.execute(f"DROP TABLE {name}")
    finally:
        cur.close()
    columns = [[f.id, f.name] for f in diff.snapshot.fields]
    reading = ENGINE_READING + reading_of(columns, diff.snapshot.fields)
    keys = sorted(cut.files)
    flags = {k: int(n) for k, n in zip(ranges.FLAGS, total[2:], strict=True) if n}
    records = {
        k: FileRecord(
            rows=int(total[0]) if i == 0 else 0,
            bad_rows=int(total[1]) if i == 0 else 0,
            out_of_range=flags if i == 0 else {},
            deletes=list(diff.snapshot.deletes.get(k, ())),
            reading=reading,
            days=None,
        )
        for i, k in enumerate(keys)
    }
    log.info(
        "%s rolled up %d files before %s (snapshot %s)",
        answer.engine, len(keys), horizon.as_datetime(cut.before_us), diff.snapshot_id,
    )  # fmt: skip
    return Asked(cut.files, records, {reading: columns}, answer.engine)


def _pre_horizon_days(
    gen: Generation, diff: Diff, counts: dict[str, FileRecord], raw_from: int
) -> set[int] | None:
    """The days before ``raw_from`` whose rows this sync changes: of its new files and of the
    files whose rows leave (None: some file's days are not known, so all of them)."""
    new = horizon.days_before(counts.values(), raw_from)
    gone = horizon.days_before((gen.files[k] for k in diff.gone if k in gen.files), raw_from)
    return None if new is None or gone is None else new | gone


def _reread(
    conn: duckdb.DuckDBPyConnection,
    source: Source,
    store: Store,
    gen: Generation,
    diff: Diff,
    raw_from: int,
    pre_days: set[int] | None,
    readings: dict[str, list[list[Any]]],
    workers: int,
    skip: frozenset[str] = frozenset(),
) -> int:
    """Add to the partial tables the rows of ``pre_days`` (None: every day before ``raw_from``)
    of the files kept from the last generation, so those days are recomputed whole; a file
    whose copy was not kept is downloaded again (and deleted after). Returns how many were.
    A file that cannot be read again fails the sync in one line: a day is never miscounted."""
    if pre_days is not None and not pre_days:
        return 0
    live = diff.live_by_key

    def needed(rec: FileRecord) -> bool:
        if rec.days is None:
            return True
        days = {d for d in rec.days if d * horizon.DAY_US < raw_from}
        return bool(days if pre_days is None else days & pre_days)

    keys = sorted(k for k in diff.known if k not in skip and needed(gen.files[k]))
    where, params = horizon.before_where(raw_from, pre_days)
    refetched = 0
    for batch in _batches(keys, {k: live[k].record_count for k in keys}):
        members = [live[k] for k in batch]
        had = {k for k in batch if (store.raw / k).is_file()}
        wanted = [*members, *delete_files_for(diff.snapshot, members)]
        _, _, wrong = _download_all(source, store, wanted, None, workers)
        try:
            if wrong:
                key, reason = sorted(wrong.items())[0]
                raise O11yError(
                    "Cannot recompute the rollups before the raw horizon", f"{key}: {reason}"
                )
            segments, _, bad = _normalize(conn, store, batch, None, diff.snapshot, readings)
            if bad:
                key, reason = sorted(bad.items())[0]
                raise O11yError(
                    "Cannot recompute the rollups before the raw horizon", f"{key}: {reason}"
                )
            if segments:
                rollups.add_partials(conn, _segments_sql(store, segments), where, params)
            for seg in segments:
                (store.segments / seg.name).unlink(missing_ok=True)
        finally:
            for k in batch:
                if k not in had:
                    (store.raw / k).unlink(missing_ok=True)
        refetched += len(set(batch) - had)
    return refetched


def _backfill_days(conn: duckdb.DuckDBPyConnection, store: Store, gen: Generation) -> None:
    """Record the days of files synced before days were recorded, from the segments holding
    their rows (a store that had no horizon holds every row)."""
    missing = {k for k, rec in gen.files.items() if rec.days is None and not _by_engine(rec)}
    if not missing:
        return
    segments = [s for s in gen.segments if set(s.files) & missing]
    found: dict[str, tuple[int, list[int]]] = {}
    if segments:
        cur = conn.cursor()
        try:
            for key, untimed, days in cur.execute(
                "SELECT file, count(*) FILTER (WHERE ts IS NULL), "
                "list(DISTINCT CAST(epoch_us(ts) // ? AS BIGINT)) FILTER (WHERE ts IS NOT NULL) "
                f"FROM {_segments_sql(store, segments)} "
                "WHERE list_contains(?::VARCHAR[], file) GROUP BY file",
                [horizon.DAY_US, sorted(missing)],
            ).fetchall():
                found[key] = (int(untimed), sorted(int(d) for d in days or ()))
        finally:
            cur.close()
    for key in missing:
        rec = gen.files[key]
        if key in found:
            rec.untimed, rec.days = found[key]
        elif rec.rows == 0:
            rec.days = []


def _drop_raw_before(store: Store, files: dict[str, FileRecord], raw_from: int) -> None:
    """Delete the downloaded copies of files whose rows all precede ``raw_from``."""
    for key, rec in files.items():
        if not horizon.keeps_raw(rec, raw_from):
            (store.raw / key).unlink(missing_ok=True)


def _exact_rows(conn: duckdb.DuckDBPyConnection, store: Store, segments: list[Segment]) -> None:
    """Segment row counts from their footers (a trimmed segment holds part of its files)."""
    cur = conn.cursor()
    try:
        for seg in segments:
            seg.rows = int(
                cur.execute(
                    "SELECT count(*) FROM read_parquet(?)", [str(store.segments / seg.name)]
                ).fetchall()[0][0]
            )
    finally:
        cur.close()
