"""The local store: downloaded source files, normalized segments and the published generation.

Layout under ``<cache>/<source-id>/``::

    raw/<key>                 the table's live Parquet files, as downloaded (atomic renames)
    meta/                     immutable Iceberg manifests, cached by path
    segments/seg-*.parquet    normalized events (see normalize.py), a few large files
    gen-NNNNNNNN.json         a generation: which segments, which source files, counts
    CURRENT                   the published generation's number (written last, atomically)
    status.json               the last sync attempt: running, progress, error, times
    sync.lock                 one sync at a time across processes (flock)

Readers only follow CURRENT, so a sync that dies at any point leaves the last good generation in
place and the next sync picks up the downloads it had finished.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import O11yError, SyncBusy
from ..locks import file_lock
from .normalize import sql_literal
from .source import atomic_write_stream

KEEP_GENERATIONS = 3


def _write_json(path: Path, data: Any) -> None:
    atomic_write_stream(path, iter([json.dumps(data, separators=(",", ":")).encode()]))


@dataclass
class Segment:
    """A normalized segment file and the source files whose rows it holds."""

    name: str
    rows: int = 0
    files: list[str] = field(default_factory=list)


@dataclass
class FileRecord:
    """A live source file that is in the store: its size at the source and its row counts."""

    size: int | None = None
    rows: int = 0
    bad_rows: int = 0
    deletes: list[str] = field(default_factory=list)  # delete files applied to its rows
    # How the table's schema read it (``normalize.reading_of``; "" before this was recorded):
    # a schema change that reads it differently has it normalized again.
    reading: str = ""
    # rows with a value outside the contract's ranges, by ranges.FLAGS key (only those > 0)
    out_of_range: dict[str, int] = field(default_factory=dict)
    # The UTC days (days since 1970-01-01) of its rows' event times, and how many rows have none:
    # which files a rollup day before the raw horizon is recomputed from (None: not recorded).
    days: list[int] | None = None
    untimed: int = 0


@dataclass
class BadFile:
    """A source file set aside: what it looked like at the source and why it was set aside."""

    reason: str = ""
    size: int | None = None
    etag: str = ""
    attempts: int = 1  # downloads that showed the failure, counting the fresh second copy once
    set_aside_at: float = 0.0
    next_retry_at: float = 0.0  # the sync after this time downloads it afresh and tries again


def _record(cls: type[Any], data: Any) -> Any:
    """A record from its JSON form; keys the record does not know (older/newer files) ignored."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} is not a JSON object")
    return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class Generation:
    """One published state of the store."""

    number: int = 0
    published_at: float = 0.0
    source_label: str = ""
    table_prefix: str | None = None
    mode: str = "iceberg"  # or "files": a folder without metadata, every Parquet file live
    metadata_key: str | None = None
    metadata_version: int | None = None
    snapshot_id: int | None = None
    segments: list[Segment] = field(default_factory=list)
    files: dict[str, FileRecord] = field(default_factory=dict)
    # reading fingerprint -> the columns (field id, name) of the files read that way: enough to
    # tell, after a schema change, which files read differently (normalize.reading_of)
    readings: dict[str, list[list[Any]]] = field(default_factory=dict)
    bad_files: dict[str, BadFile] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # e.g. two metadata files, one version
    # rollups.py: {"version": N, "months": {"YYYY-MM": {table: file under rollups/}}}
    rollups: dict[str, Any] = field(default_factory=dict)
    # The newest event ``ts`` and landing ``ingest_ts`` (epoch µs), found at sync time so
    # ``status`` and the freshness bar read them instead of scanning (None: not recorded).
    newest_ts_us: int | None = None
    newest_ingest_us: int | None = None
    # Raw rows (segments) are complete from this event time on (epoch µs); before it only the
    # rollups hold the history (O11Y_RAW_HORIZON). None: the segments hold all of history.
    raw_from_us: int | None = None
    # The filter widgets' choices (distinct agents, modes, event types), found at sync time.
    choices: dict[str, list[str]] | None = None
    # normalize.VERSION of the rules the segments were written under (0: before versions)
    normalized: int = 0

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files.values())

    @property
    def unparseable(self) -> int:
        return sum(f.bad_rows for f in self.files.values())

    @property
    def out_of_range(self) -> dict[str, int]:
        """Rows with a value outside the contract's ranges, by field (ranges.FLAGS keys)."""
        total: dict[str, int] = {}
        for rec in self.files.values():
            for key, n in rec.out_of_range.items():
                total[key] = total.get(key, 0) + n
        return total

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        common = Counter(rec["reading"] for rec in data["files"].values()).most_common(1)
        data["common_reading"] = common[0][0] if common else ""
        for rec in data["files"].values():
            for key in ("deletes", "out_of_range", "untimed"):
                if not rec[key]:  # almost every file: keep the generation file small
                    del rec[key]
            if rec["days"] is None:
                del rec["days"]
            if rec["reading"] == data["common_reading"]:  # likewise: one reading, said once
                del rec["reading"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Generation:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["segments"] = [_record(Segment, s) for s in known.get("segments") or []]
        common = str(data.get("common_reading") or "")
        known["files"] = {
            k: _record(FileRecord, {"reading": common, **v} if isinstance(v, dict) else v)
            for k, v in (known.get("files") or {}).items()
        }
        known["bad_files"] = {
            k: _record(BadFile, v) for k, v in (known.get("bad_files") or {}).items()
        }
        return cls(**known)


@dataclass
class GenerationHead:
    """What readers need of a generation (segments, rollups, counts) without its per-file
    records: at 100,000 live files the full generation takes seconds to parse, the head
    milliseconds. Written beside each generation (``head-NNNNNNNN.json``)."""

    number: int = 0
    published_at: float = 0.0
    source_label: str = ""
    table_prefix: str | None = None
    snapshot_id: int | None = None
    segments: list[Segment] = field(default_factory=list)
    rollups: dict[str, Any] = field(default_factory=dict)
    files: int = 0
    rows: int = 0
    unparseable: int = 0
    out_of_range: dict[str, int] = field(default_factory=dict)  # by field, as Generation's
    bad_files: dict[str, BadFile] = field(default_factory=dict)  # few: kept whole
    warnings: list[str] = field(default_factory=list)
    newest_ts_us: int | None = None
    newest_ingest_us: int | None = None
    raw_from_us: int | None = None  # as Generation's
    choices: dict[str, list[str]] | None = None

    @classmethod
    def of(cls, gen: Generation) -> GenerationHead:
        return cls(
            number=gen.number,
            published_at=gen.published_at,
            source_label=gen.source_label,
            table_prefix=gen.table_prefix,
            snapshot_id=gen.snapshot_id,
            # names and row counts only: a segment's list of source files is the sync's business
            segments=[Segment(s.name, s.rows) for s in gen.segments],
            rollups=gen.rollups,
            files=len(gen.files),
            rows=gen.rows,
            unparseable=gen.unparseable,
            out_of_range=gen.out_of_range,
            bad_files=dict(gen.bad_files),
            warnings=list(gen.warnings),
            newest_ts_us=gen.newest_ts_us,
            newest_ingest_us=gen.newest_ingest_us,
            raw_from_us=gen.raw_from_us,
            choices=gen.choices,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationHead:
        head = _record(cls, data)
        head.segments = [_record(Segment, s) for s in head.segments or []]
        head.bad_files = {k: _record(BadFile, v) for k, v in (head.bad_files or {}).items()}
        return head


class Store:
    """Paths, generations, the sync lock and the status file of one source's cache."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # folder -> {file name: (size, mtime_ns)} of files whose footer was read fine
        self._sound: dict[Path, dict[str, tuple[int, int]]] = {}
        self.raw = self.root / "raw"
        self.meta = self.root / "meta"
        self.segments = self.root / "segments"
        self.rollups = self.root / "rollups"

    def ensure(self) -> None:
        for d in (self.raw, self.meta, self.segments, self.rollups):
            d.mkdir(parents=True, exist_ok=True)

    # -- generations ------------------------------------------------------------------------
    def current_number(self) -> int:
        try:
            return int((self.root / "CURRENT").read_text().strip() or 0)
        except FileNotFoundError:
            return 0
        except (OSError, ValueError):
            return 0

    def gen_path(self, number: int) -> Path:
        return self.root / f"gen-{number:08d}.json"

    def head_path(self, number: int) -> Path:
        return self.root / f"head-{number:08d}.json"

    def load_head(self) -> GenerationHead:
        """The published generation's head (readers); from the full generation for a store
        published before heads existed."""
        number = self.current_number()
        if not number:
            return GenerationHead()
        try:
            return GenerationHead.from_json(json.loads(self.head_path(number).read_text()))
        except FileNotFoundError:
            return GenerationHead.of(self.load())
        except (OSError, ValueError) as exc:
            raise O11yError("Cache is damaged", f"{self.head_path(number).name}: {exc}") from exc

    def load(self) -> Generation:
        """The published generation (an empty one before the first sync)."""
        number = self.current_number()
        if not number:
            return Generation()
        try:
            return Generation.from_json(json.loads(self.gen_path(number).read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise O11yError("Cache is damaged", f"{self.gen_path(number).name}: {exc}") from exc

    def publish(self, gen: Generation) -> None:
        """Write the generation, then point CURRENT at it: readers see all of it or none."""
        gen.number = self.current_number() + 1
        gen.published_at = time.time()
        _write_json(self.gen_path(gen.number), gen.to_json())
        _write_json(self.head_path(gen.number), asdict(GenerationHead.of(gen)))
        atomic_write_stream(self.root / "CURRENT", iter([str(gen.number).encode()]))
        self.collect_garbage()

    def collect_garbage(self) -> None:
        """Drop what no recent generation uses: old generation files, segments, rollups."""
        current = self.current_number()
        keep_gens = set(range(max(1, current - KEEP_GENERATIONS + 1), current + 1))
        used: set[str] = set()
        for n in keep_gens:
            try:
                data = json.loads(self.gen_path(n).read_text())
            except (OSError, ValueError):
                continue
            used |= {s["name"] for s in data.get("segments", [])}
            months = (data.get("rollups") or {}).get("months", {})
            used |= {name for tables in months.values() for name in tables.values()}
        for path in [*self.root.glob("gen-*.json"), *self.root.glob("head-*.json")]:
            try:
                n = int(path.stem.split("-")[1])
            except (IndexError, ValueError):
                continue
            if n not in keep_gens:
                path.unlink(missing_ok=True)
        for folder in (self.segments, self.rollups):
            if folder.is_dir():
                for path in folder.iterdir():
                    if path.name not in used:
                        path.unlink(missing_ok=True)

    def sweep_partials(self) -> None:
        """Remove temp files a killed process left behind (only under the sync lock)."""
        for base in (self.raw, self.meta, self.segments, self.rollups, self.root):
            if base.is_dir():
                for path in base.rglob(".part-*.tmp"):
                    path.unlink(missing_ok=True)

    def damaged_segments(self, gen: Generation | GenerationHead, conn: Any = None) -> list[str]:
        """Segments of ``gen`` whose Parquet footer cannot be read (truncated, replaced, gone)."""
        return self.damaged_files(self.segments, [seg.name for seg in gen.segments], conn)

    def damaged_files(self, folder: Path, names: Iterable[str], conn: Any = None) -> list[str]:
        """Those of ``names`` in ``folder`` whose Parquet footer cannot be read (on ``conn``, a
        DuckDB connection or cursor, closed here; a new one when None).

        A file found sound is not read again while its size and modification time stay the same
        (the store writes each file once, under a new name): a new generation costs a ``stat``
        per file and a footer read per new file, not 840 footer reads at 100M events."""
        names = list(names)
        stamps = {name: _stamp(folder / name) for name in names}
        known = self._sound.get(folder, {})
        todo = [n for n in names if stamps[n] is None or known.get(n) != stamps[n]]
        bad = self._unreadable(folder, todo, conn)
        self._sound[folder] = {
            n: stamps[n] for n in names if n not in bad and stamps[n] is not None
        }
        return bad

    def _unreadable(self, folder: Path, names: list[str], conn: Any) -> list[str]:
        """Those of ``names`` whose footer DuckDB cannot parse (``conn`` closed here)."""
        # DuckDB parses the footers (the reader is already loaded; pyarrow would cost the CLI's
        # status ~0.3 s of imports).
        import duckdb

        bad: list[str] = []
        if not names:
            if conn is not None:
                conn.close()
            return bad
        conn = conn or duckdb.connect(":memory:", config={"threads": "1"})
        try:
            try:  # all at once: the common case, every footer fine
                conn.execute(
                    "SELECT count(*) FROM parquet_file_metadata(?)",
                    [[str(folder / name) for name in names]],
                ).fetchall()
                return []
            except duckdb.Error:
                pass
            for name in names:
                try:
                    conn.execute(
                        "SELECT num_rows FROM parquet_file_metadata(?)", [str(folder / name)]
                    ).fetchall()
                except duckdb.Error:
                    bad.append(name)
        finally:
            conn.close()
        return bad

    # -- sync lock and status ---------------------------------------------------------------
    def lock(
        self, *, wait: bool = False, timeout: float = 600.0
    ) -> contextlib.AbstractContextManager[None]:
        """Hold the cross-process sync lock; ``SyncBusy`` if another holds it and not ``wait``."""
        busy = SyncBusy("A sync is already running", "another process holds the lock")
        return file_lock(self.root / "sync.lock", timeout_s=timeout if wait else 0.0, busy=busy)

    def read_status(self) -> dict[str, Any]:
        try:
            data = json.loads((self.root / "status.json").read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def write_status(self, **changes: Any) -> dict[str, Any]:
        status = self.read_status()
        status.update(changes)
        self.root.mkdir(parents=True, exist_ok=True)
        _write_json(self.root / "status.json", status)
        return status

    def is_syncing(self) -> bool:
        """True while some process holds the sync lock."""
        path = self.root / "sync.lock"
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)


def _stamp(path: Path) -> tuple[int, int] | None:
    """A file's (size, mtime_ns), None when it cannot be stat'ed (gone)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


# -- facts the sync records about a generation's segments --------------------------------

CHOICES = ("agent", "mode", "event_type")  # the filter widgets' columns


def choices_sql() -> str:
    """The SELECT list of the filter choices (one sorted list per column; NULLs left out)."""
    return ", ".join(f"list(DISTINCT {c} ORDER BY {c}) AS {c}" for c in CHOICES)


def newest_ingest_ts(cur: Any, segments: list[Path]) -> Any:
    """The newest ``ingest_ts`` of any row of ``segments`` (unparseable ones included): from the
    column statistics when every row group carries a max (or holds only NULLs), read in the
    same pass, else a scan; None for no rows."""
    if not segments:
        return None
    files = ", ".join(sql_literal(str(f)) for f in segments)
    complete, newest = cur.execute(
        "SELECT bool_and(stats_max_value IS NOT NULL OR stats_null_count = num_values), "
        "max(TRY_CAST(stats_max_value AS TIMESTAMPTZ)) "
        f"FROM parquet_metadata([{files}]) WHERE path_in_schema = 'ingest_ts'"
    ).fetchall()[0]
    if complete:
        return newest
    return cur.execute(f"SELECT max(ingest_ts) FROM read_parquet([{files}])").fetchall()[0][0]
