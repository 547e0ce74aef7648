"""The built-in demo: a realistic event table in the pipeline's own layout, read like the real one.

``build`` writes an Iceberg table under ``<folder>/__r2_data_catalog/<catalog>/<table>/``
with two days of a dozen agents: a mode mix, long-tailed durations, ingest lag, an error burst,
one agent that went silent an hour ago, the awkward rows docs/events.md lists, a compaction
(old files left in ``data/``) and an orphan file. ``advance`` appends what happened since, so
the default dashboard looks live.
Everything is drawn from a seeded generator: the same ``now`` and seed give the same table.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..config import Settings
from .iceberg_write import TableWriter, folder_put, parquet_bytes, unstructured_table
from .source import LocalSource, atomic_write_stream

CATALOG_ID = "7f3c2a90d1e84b6f9a1c5e2d8b4f0a61"
TABLE_ID = "0199a3e4-5b7c-7d21-9e4f-agentevents01"
TABLE_PREFIX = f"__r2_data_catalog/{CATALOG_ID}/{TABLE_ID}/"
BUCKET = "agent-blobs"
STATE_FILE = ".demo-state.json"
HISTORY = timedelta(hours=48)
COMMIT_EVERY = timedelta(minutes=30)

_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


@dataclass(frozen=True)
class AgentProfile:
    did: str
    cycle_s: float  # mean seconds between cycles
    mix: tuple[float, float, float]  # think, reflection, housekeeping
    error_rate: float
    speed: float  # duration multiplier


def agents(seed: int = 7) -> list[AgentProfile]:
    rng = random.Random(seed)
    out = []
    for i in range(12):
        did = "did:cf:" + "".join(rng.choice(_ALPHABET) for _ in range(24))
        think = rng.uniform(0.55, 0.8)
        refl = rng.uniform(0.1, 1 - think - 0.05)
        out.append(
            AgentProfile(
                did=did,
                cycle_s=rng.uniform(70, 160),
                mix=(think, refl, 1 - think - refl),
                error_rate=0.12 if i == 4 else rng.uniform(0.005, 0.03),
                speed=rng.uniform(0.7, 1.5),
            )
        )
    return out


SILENT_AGENT = 7  # index of the agent that stops an hour before the build time
NEW_AGENT = 11  # index of the agent that joined six hours before the build time


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _cycles(
    profile: AgentProfile, index: int, start: datetime, end: datetime, built: datetime, seed: int
) -> list[tuple[datetime, datetime, str]]:
    """(ts, ingest_ts, value) for one agent's cycles in [start, end)."""
    rng = random.Random(f"{seed}:{index}:{int(start.timestamp())}")
    rows = []
    t = start + timedelta(seconds=rng.uniform(0, profile.cycle_s))
    burst = (built - timedelta(hours=3), built - timedelta(hours=2, minutes=35))
    while t < end:
        gap = rng.expovariate(1 / profile.cycle_s) * 0.5 + profile.cycle_s * 0.5
        if index == SILENT_AGENT and t >= built - timedelta(hours=1):
            break
        if index == NEW_AGENT and t < built - timedelta(hours=6):
            t += timedelta(seconds=gap)
            continue
        mode = rng.choices(("think", "reflection", "housekeeping"), weights=profile.mix)[0]
        median = {"think": 22000, "reflection": 48000, "housekeeping": 6000}[mode] * profile.speed
        duration = int(median * math.exp(rng.gauss(0, 0.55)))
        if rng.random() < 0.02:
            duration *= rng.randint(3, 8)  # the long tail: a slow model call, a retry storm
        tools = max(0, int(rng.gauss({"think": 4, "reflection": 1, "housekeeping": 2}[mode], 1.5)))
        rate = profile.error_rate
        if burst[0] <= t < burst[1] and index in (1, 2, 4, 9):
            rate = 0.65
        errors = 0
        if rng.random() < rate:
            errors = 1 + int(rng.expovariate(0.8))
        lag = 2 + rng.lognormvariate(1.0, 0.8)
        if rng.random() < 0.01:
            lag += rng.uniform(60, 240)  # a slow batch
        event = {
            "event_type": "agent.cycle",
            "agent": profile.did,
            "mode": mode,
            "durationMs": duration,
            "toolCalls": tools,
            "errors": errors,
            "_ts": _iso(t),
        }
        rows.append((t, t + timedelta(seconds=lag), json.dumps(event, separators=(",", ":"))))
        if rng.random() < 0.03:
            other = {
                "event_type": rng.choice(["agent.wake", "agent.memory.compact", "agent.message"]),
                "agent": profile.did,
                "_ts": _iso(t + timedelta(seconds=1)),
                "detail": {"note": "demo"},
            }
            rows.append(
                (t + timedelta(seconds=1), t + timedelta(seconds=lag + 1), json.dumps(other))
            )
        t += timedelta(seconds=gap)
    return rows


def awkward_rows(built: datetime, ids: list[str]) -> list[tuple[datetime, datetime, str]]:
    """One of each row docs/events.md says to handle, two hours before the build time."""
    t = built - timedelta(hours=2)
    base = {"event_type": "agent.cycle", "agent": ids[0], "mode": "think", "_ts": _iso(t)}

    def ev(**changes: object) -> str:
        d = {**base, "durationMs": 1000, "toolCalls": 1, "errors": 0, **changes}
        return json.dumps({k: v for k, v in d.items() if v is not _DROP})

    values = [
        ev(durationMs="25000"),  # numeric string
        ev(durationMs=25000.0),  # float
        ev(toolCalls="n/a"),  # not a number -> NULL
        ev(errors=None),  # null -> NULL
        ev(errors=True),  # boolean -> NULL
        ev(durationMs={"ms": 5}),  # object -> NULL
        ev(_ts=_DROP),  # missing _ts -> __ingest_ts
        ev(_ts="yesterday"),  # unparseable _ts -> __ingest_ts
        ev(agent=_DROP),  # missing agent -> unknown
        ev(mode=""),  # empty mode -> unknown
        ev(extra={"nested": [1, 2]}, model="demo-1"),  # extra fields kept in raw
        '{"event_type": "agent.cycle", "agent": "did:cf:trunc',  # truncated JSON
        "[1, 2, 3]",  # an array
        "42",  # a scalar
        "",  # empty
    ]
    return [(t, t + timedelta(seconds=5 + i), v) for i, v in enumerate(values)]


_DROP = object()


def _rows_between(start: datetime, end: datetime, built: datetime, seed: int):
    rows = []
    for i, p in enumerate(agents(seed)):
        rows += _cycles(p, i, start, end, built, seed)
    return rows


def _write_files(writer: TableWriter, rows, seed: int, start: datetime) -> list:
    """Roll rows into files every 60-300 s of ingest time, as the pipeline does."""
    rng = random.Random(f"{seed}:roll:{int(start.timestamp())}")
    rows = sorted(rows, key=lambda r: r[1])
    written, batch = [], []
    roll_at = None
    for r in rows:
        if roll_at is None:
            roll_at = r[1] + timedelta(seconds=rng.uniform(60, 300))
        if r[1] >= roll_at and batch:
            written += writer.write_days(unstructured_table([(b[1], b[2]) for b in batch]))
            batch, roll_at = [], r[1] + timedelta(seconds=rng.uniform(60, 300))
        batch.append(r)
    if batch:
        written += writer.write_days(unstructured_table([(b[1], b[2]) for b in batch]))
    return written


def build(folder: Path, *, now: datetime | None = None, seed: int = 7) -> TableWriter:
    """Write the demo table into ``folder`` (replacing any earlier one)."""
    import shutil

    now = (now or datetime.now(UTC)).astimezone(UTC)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    # One fsync per file was two thirds of the build (1,250 files, 19 s of 30 s here, and the
    # first `make run` waits for it): the files are flushed in one go before the state file
    # that marks the build complete; a build cut short has no state file and starts again.
    put = folder_put(folder, durable=False)
    writer = TableWriter(
        put=put, bucket=BUCKET, table_prefix=TABLE_PREFIX, clock=lambda: now.timestamp()
    )
    ids = [p.did for p in agents(seed)]
    start = now - HISTORY
    t = start
    old_keys: list[str] = []
    while t < now:
        end = min(t + COMMIT_EVERY, now)
        rows = _rows_between(t, end, now, seed)
        if t <= now - timedelta(hours=2) < end:
            rows += awkward_rows(now, ids)
        written = _write_files(writer, rows, seed, t)
        writer.commit(written)
        if t < start + timedelta(hours=6):
            old_keys += [w[0] for w in written]
        t = end
    # Table maintenance: the first six hours compacted into one file; the old files stay in data/.
    import pyarrow.parquet as pq

    merged = pq.ParquetDataset([str(folder / k) for k in old_keys]).read()
    writer.compact(old_keys, merged.sort_by("__ingest_ts"))
    # An orphan of a failed write: a data file no snapshot names.
    orphan = _rows_between(now - timedelta(minutes=20), now - timedelta(minutes=15), now, seed + 1)
    put(
        writer.data_key(now.strftime("%Y-%m-%d"), "orphan-failed-write"),
        parquet_bytes(unstructured_table([(r[1], r[2]) for r in orphan])),
    )
    from .sync import flush_to_disk

    flush_to_disk(folder)
    _save_state(folder, writer, now, now, seed)
    return writer


def _save_state(
    folder: Path,
    writer: TableWriter,
    built: datetime,
    until: datetime,
    seed: int,
    *,
    leftovers: list[str] | None = None,
):
    state = {
        "built": built.isoformat(),
        "until": until.isoformat(),
        "seed": seed,
        "writer": writer.state(),
        "leftovers": leftovers or [],
    }
    atomic_write_stream(folder / STATE_FILE, iter([json.dumps(state).encode()]))


def advance(
    folder: Path, *, now: datetime | None = None, min_step: timedelta = timedelta(seconds=30)
) -> int:
    """Append the events between the last advance and ``now`` as one commit; returns rows added."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    state = json.loads((folder / STATE_FILE).read_text())
    until = datetime.fromisoformat(state["until"])
    if now - until < min_step:
        return 0
    built = datetime.fromisoformat(state["built"])
    seed = int(state["seed"])
    writer = TableWriter.from_state(folder_put(folder), BUCKET, TABLE_PREFIX, state["writer"])
    writer.clock = lambda: now.timestamp()
    if now - until > HISTORY:  # long unused: start a fresh history rather than replay days
        build(folder, now=now, seed=seed)
        return -1
    # Events whose ingest time falls after the last commit but whose ts came before it are late
    # arrivals; keeping only ts in [until, now) keeps the demo free of duplicates.
    rows = _rows_between(until, now, built, seed)
    if rows:
        writer.commit(_write_files(writer, rows, seed, until))
    _maintain(folder, writer, state)
    _expire(folder, writer)
    _save_state(folder, writer, built, now, seed, leftovers=state.get("leftovers", []))
    return len(rows)


MAINTAIN_FILES = 1_500


KEEP_METADATA_VERSIONS = 100


def _expire(folder: Path, writer: TableWriter) -> None:
    """Snapshot expiry for the long-running demo: drop metadata files older than the last
    KEEP_METADATA_VERSIONS versions and manifest lists and manifests no kept snapshot uses."""
    import fastavro

    from .iceberg import key_from_uri, metadata_version

    meta = folder / TABLE_PREFIX / "metadata"
    lists = {key_from_uri(s["manifest-list"], BUCKET) for s in writer.snapshots[-20:]}
    used = set(lists) | {m.key for m in writer.manifests}
    for key in lists:
        try:
            with open(folder / key, "rb") as fh:
                used |= {key_from_uri(r["manifest_path"], BUCKET) for r in fastavro.reader(fh)}
        except OSError:
            continue
    for path in meta.iterdir():
        key = path.relative_to(folder).as_posix()
        version = metadata_version(path.name)
        if version is not None:
            if version < writer.version - KEEP_METADATA_VERSIONS:
                path.unlink(missing_ok=True)
        elif path.suffix == ".avro" and key not in used:
            path.unlink(missing_ok=True)


def _maintain(folder: Path, writer: TableWriter, state: dict) -> None:
    """Table maintenance for a demo that runs for weeks: past MAINTAIN_FILES live files, compact
    the oldest day's files into one, as R2 does; the files it replaced stay until the next
    compaction (the leftovers a reader must not count), then are removed from the folder."""
    import pyarrow.parquet as pq

    live = [e for m in writer.manifests for e in m.entries if e[0] != 2]
    if len(live) <= MAINTAIN_FILES:
        return
    by_day: dict[int, list[str]] = {}
    for e in live:
        by_day.setdefault(e[4], []).append(e[1])
    # The oldest day that still has more than one file, never the day being written.
    days = [d for d in sorted(by_day)[:-1] if len(by_day[d]) > 1]
    if not days:
        return
    keys = by_day[days[0]]
    merged = pq.ParquetDataset([str(folder / k) for k in keys]).read()
    writer.compact(keys, merged.sort_by("__ingest_ts"))
    for k in state.get("leftovers", []):
        (folder / k).unlink(missing_ok=True)
    state["leftovers"] = keys


def demo_folder(settings: Settings) -> Path:
    return settings.cache_dir / "demo-source"


def demo_source(settings: Settings, *, now: datetime | None = None) -> LocalSource:
    """The demo table as a source: built on first use, advanced to now when live."""
    folder = demo_folder(settings)
    if not (folder / STATE_FILE).is_file():
        build(folder, now=now)
    elif settings.demo_live:
        advance(folder, now=now)
    return LocalSource(folder, bucket=BUCKET)
