"""Generate a benchmark table in the pipeline's layout, fast, and cache it under ``bench/data/``.

Rows are drawn in DuckDB from a hash of the row number (deterministic, vectorised), cut into files
of ``EVENTS_PER_FILE`` rows, each written as a small zstd Parquet file of the unstructured shape
(``__ingest_ts`` + ``value`` JSON) by two worker processes; the files are then committed through
:class:`o11y_data.ingest.iceberg_write.TableWriter` in batches of ``COMMIT_FILES`` files per
snapshot.
The rate is a busy network's (~27,400 events a day, a file every ~5 minutes), so 10M events span
a year and 1M events about five weeks; every size ends at the minute it was generated.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from o11y_data.ingest.iceberg_write import TableWriter

DATA_DIR = Path(__file__).resolve().parent / "data"
BUCKET = "agent-blobs"
CATALOG_ID = "b3c1d2e4f5a60718293a4b5c6d7e8f90"
TABLE_ID = "0199b0b0-bench-7000-8000-agentevents00"
TABLE_PREFIX = f"__r2_data_catalog/{CATALOG_ID}/{TABLE_ID}/"
EVENTS_PER_FILE = 100
# From LARGE_EVENTS on, files hold LARGE_PER_FILE events: ten years of a busy network is what
# R2's compaction would have merged into bigger files, and 1M files of 100 rows would take this
# 2-core machine hours to generate.
LARGE_EVENTS = 50_000_000
LARGE_PER_FILE = 1_000
EVENTS_PER_DAY = 27_400
COMMIT_FILES = 1000
CHUNK_FILES = 500
AGENTS = 32
FORMAT = 3  # bump when the generated shape changes, so cached datasets are rebuilt

SIZES = {"tiny": 5_000, "1m": 1_000_000, "10m": 10_000_000}
_NS = uuid.UUID("6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9")


def file_ranges(events: int, files: int) -> list[tuple[int, int, int]]:
    """(file number, first row, end row) for ``events`` rows split evenly into at most ``files``
    files (the last ones left out when there are too few rows to fill them)."""
    per_file = -(-events // files)
    out = []
    for f in range(files):
        lo, hi = f * per_file, min(events, (f + 1) * per_file)
        if lo >= hi:
            break
        out.append((f, lo, hi))
    return out


def parse_size(name: str) -> int:
    """``tiny``, ``1m``, ``10m``, or a count like ``250k`` / ``2m`` / ``30000``."""
    name = name.strip().lower()
    if name in SIZES:
        return SIZES[name]
    mult = {"k": 1_000, "m": 1_000_000}.get(name[-1:], 1)
    digits = name[:-1] if name[-1:] in "km" else name
    try:
        n = int(float(digits) * mult)
    except ValueError:
        raise SystemExit(f"bad size {name!r}: use tiny, 1m, 10m or a count like 250k") from None
    if n < EVENTS_PER_FILE:
        raise SystemExit(f"size {name!r} is below one file ({EVENTS_PER_FILE} events)")
    return n


@dataclass(frozen=True)
class Spec:
    name: str
    events: int
    files: int
    t0_us: int  # first file's ingest window start
    dt_us: int  # one file's ingest window

    @property
    def per_file(self) -> int:
        return self.events // self.files

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp((self.t0_us + self.files * self.dt_us) / 1e6, UTC)

    @property
    def folder(self) -> Path:
        return DATA_DIR / self.name


def make_spec(name: str, now: datetime | None = None) -> Spec:
    events = parse_size(name)
    per = LARGE_PER_FILE if events >= LARGE_EVENTS else EVENTS_PER_FILE
    files = events // per
    span = timedelta(days=max(2.0, events / EVENTS_PER_DAY))
    end = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    end_us = int(end.timestamp() * 1e6)
    dt_us = int(span.total_seconds() * 1e6) // files
    return Spec(name, files * per, files, end_us - files * dt_us, dt_us)


def dids() -> list[str]:
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    out = []
    for i in range(AGENTS):
        h = uuid.uuid5(_NS, f"agent-{i}").int
        out.append("did:cf:" + "".join(alphabet[(h >> (5 * k)) & 31] for k in range(24)))
    return out


def _rows_sql(spec: Spec, f0: int, f1: int) -> str:
    agents = "[" + ", ".join(f"'{d}'" for d in dids()) + "]"
    per = spec.per_file
    step = spec.dt_us // per
    # u(tag): a uniform [0, 1) from the row number, deterministic across runs and machines.
    u = "((hash(i, '{t}') % 1000003) / 1000003.0)"

    def U(tag: str) -> str:
        return u.format(t=tag)

    return f"""
    WITH r AS (SELECT range AS i FROM range({f0 * per}, {f1 * per})),
    a AS (
        SELECT i, i // {per} AS fid,
               {spec.t0_us} + (i // {per}) * {spec.dt_us} + (i % {per}) * {step}
                   + CAST({U("jit")} * {step} AS BIGINT) AS ingest_us,
               {U("type")} AS ut, {U("mode")} AS um, {U("err")} AS ue,
               {U("d1")} + {U("d2")} + {U("d3")} - 1.5 AS g,
               {agents}[1 + CAST(hash(i, 'agent') % {AGENTS} AS BIGINT)] AS agent,
               CAST(2000000 + {U("lag")} * 10000000 AS BIGINT) AS lag_us
        FROM r
    ), b AS (
        SELECT *, CASE WHEN um < 0.65 THEN 'think' WHEN um < 0.9 THEN 'reflection'
                       ELSE 'housekeeping' END AS mode,
               strftime(make_timestamp(ingest_us - lag_us), '%Y-%m-%dT%H:%M:%S.%gZ') AS ts
        FROM a
    )
    SELECT fid, make_timestamp(ingest_us)::TIMESTAMPTZ AS __ingest_ts,
        CASE WHEN ut < 0.97 THEN json_object(
            'event_type', 'agent.cycle', 'agent', agent, 'mode', mode,
            'durationMs', CAST(CASE mode WHEN 'think' THEN 22000 WHEN 'reflection' THEN 48000
                               ELSE 6000 END * exp(g * 1.1) AS BIGINT),
            'toolCalls', CAST(hash(i, 'tools') % 8 AS BIGINT),
            'errors', CASE WHEN ue < 0.02 THEN 1 + CAST(hash(i, 'n') % 3 AS BIGINT) ELSE 0 END,
            '_ts', ts)
        ELSE json_object(
            'event_type', ['agent.wake', 'agent.memory.compact', 'agent.message']
                [1 + CAST(hash(i, 'other') % 3 AS BIGINT)],
            'agent', agent, '_ts', ts, 'detail', json_object('note', 'bench'))
        END::VARCHAR AS value
    FROM b ORDER BY i
    """


def events_table(spec: Spec, f0: int, f1: int) -> pa.Table:
    """Files ``f0..f1`` of ``spec`` as one Arrow table of (``fid``, ``__ingest_ts``, ``value``),
    ``spec.per_file`` rows a file in file order (what :func:`ensure` writes, for a bench that
    builds its own table)."""
    import duckdb

    conn = duckdb.connect(config={"threads": "2"})
    try:
        conn.execute("SET TimeZone = 'UTC'")
        return conn.sql(_rows_sql(spec, f0, f1)).to_arrow_table()
    finally:
        conn.close()


def _write_chunk(args: tuple[Spec, int, int, str]) -> list[tuple[str, int, int, int]]:
    """Write files ``f0..f1`` under ``src``; returns TableWriter ``added`` tuples in order."""
    import duckdb

    spec, f0, f1, src = args
    conn = duckdb.connect(config={"threads": "1"})
    conn.execute("SET TimeZone = 'UTC'")
    table = conn.sql(_rows_sql(spec, f0, f1)).to_arrow_table()
    conn.close()
    schema = pa.schema(
        [pa.field("__ingest_ts", pa.timestamp("us", tz="UTC")), pa.field("value", pa.string())]
    )
    table = table.select(["__ingest_ts", "value"]).cast(schema)
    out = []
    root = Path(src)
    made: set[Path] = set()
    for k, fid in enumerate(range(f0, f1)):
        part = table.slice(k * spec.per_file, spec.per_file)
        start_s = (spec.t0_us + fid * spec.dt_us) / 1e6
        first = datetime.fromtimestamp(start_s, UTC)
        day = first.strftime("%Y-%m-%d")
        key = f"{TABLE_PREFIX}data/__ingest_ts_day={day}/{uuid.uuid5(_NS, f'{fid}')}.parquet"
        buf = io.BytesIO()
        pq.write_table(part, buf, compression="zstd")
        data = buf.getvalue()
        path = root / key
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        path.write_bytes(data)
        epoch_day = (first.date() - datetime(1970, 1, 1).date()).days
        out.append((key, part.num_rows, len(data), epoch_day))
    return out


def folder_put_fast(root: Path):
    """Write objects as plain files (no fsync: a generated dataset is rebuilt if damaged)."""

    def put(key: str, data: bytes) -> None:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return put


def ensure(name: str, *, log=print) -> dict[str, Any]:
    """The dataset ``name`` (generated once, then reused); returns its description."""
    folder = DATA_DIR / name
    info_path = folder / "dataset.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        if info.get("format") == FORMAT and info.get("events") == make_spec(name).events:
            return info
    spec = make_spec(name)
    if folder.exists():
        shutil.rmtree(folder)
    src = folder / "src"
    src.mkdir(parents=True)
    log(f"[gen] {name}: {spec.events:,} events in {spec.files:,} files -> {folder}")
    started = time.monotonic()
    chunks = [
        (spec, f0, min(f0 + CHUNK_FILES, spec.files), str(src))
        for f0 in range(0, spec.files, CHUNK_FILES)
    ]
    added: list[tuple[str, int, int, int]] = []
    workers = max(1, min(2, os.cpu_count() or 1))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for i, part in enumerate(pool.map(_write_chunk, chunks)):
            added += part
            if (i + 1) % 20 == 0:
                log(f"[gen]   {len(added):,}/{spec.files:,} files")
    data_s = time.monotonic() - started
    writer = TableWriter(
        put=folder_put_fast(src),
        bucket=BUCKET,
        table_prefix=TABLE_PREFIX,
        clock=lambda: spec.end.timestamp(),
    )
    for i in range(0, len(added), COMMIT_FILES):
        writer.commit(added[i : i + COMMIT_FILES])
    info = {
        "format": FORMAT,
        "name": name,
        "events": spec.events,
        "files": spec.files,
        "t0_us": spec.t0_us,
        "dt_us": spec.dt_us,
        "start": datetime.fromtimestamp(spec.t0_us / 1e6, UTC).isoformat(),
        "end": spec.end.isoformat(),
        "bytes": sum(a[2] for a in added),
        "commits": writer.version + 1,
        "generated_at": datetime.now(UTC).isoformat(),
        "generate_seconds": round(time.monotonic() - started, 1),
        "data_seconds": round(data_s, 1),
        "writer": writer.state(),
    }
    info_path.write_text(json.dumps(info))
    log(
        f"[gen] {name}: done in {info['generate_seconds']}s "
        f"({info['bytes'] / 1e6:.0f} MB, {info['commits']} commits)"
    )
    return info


def new_files(info: dict[str, Any], count: int, put) -> list[str]:
    """Land ``count`` new files after the dataset's end (and after the files landed by earlier
    calls) through ``put``, as one commit. The writer's state goes back into ``info`` and the
    dataset's ``dataset.json``, so the next call commits the next metadata version: every call
    is a new snapshot the sync must pick up, never a second metadata file of one version."""
    import duckdb

    spec = Spec(info["name"], info["events"], info["files"], info["t0_us"], info["dt_us"])
    writer = TableWriter.from_state(put, BUCKET, TABLE_PREFIX, info["writer"])
    writer.version = max(writer.version, _newest_version(spec.folder / "src"))
    writer.clock = time.time
    conn = duckdb.connect(config={"threads": "2"})
    conn.execute("SET TimeZone = 'UTC'")
    # The new files land right after the table's end, one every 6 s of ingest time, each call's
    # after the previous call's.
    dt = 6_000_000
    per = spec.per_file
    t0 = spec.t0_us + spec.files * (spec.dt_us - dt)
    lo = spec.files + int(info.get("extra_files", 0))
    extra = Spec(spec.name, (lo + count) * per, lo + count, t0, dt)
    table = conn.sql(_rows_sql(extra, lo, lo + count)).to_arrow_table()
    conn.close()
    keys = []
    added = []
    for k in range(count):
        part = table.slice(k * per, per).select(["__ingest_ts", "value"])
        for written in writer.write_days(part, name=f"new-{uuid.uuid4()}"):
            added.append(written)
            keys.append(written[0])
    writer.commit(added)
    info["writer"] = writer.state()
    info["extra_files"] = lo + count - spec.files
    (spec.folder / "dataset.json").write_text(json.dumps(info))
    return keys


def _newest_version(src: Path) -> int:
    """The highest metadata version in the table's folder (a run before this fix may have left
    commits the saved writer state does not know)."""
    folder = src / TABLE_PREFIX / "metadata"
    found = [int(p.name.split("-", 1)[0]) for p in folder.glob("*.metadata.json")]
    return max(found, default=0)
