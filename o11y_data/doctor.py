"""``doctor``: check a set-up end to end, one plain line per check, each with its fix on failure.

The checks run in order and stop being meaningful once one fails (no bucket, no table), so a
check that depends on a failed one is reported as skipped, not as a second failure. Everything is
read-only: a token with Object Read on the bucket (and Data Catalog read for the REST catalog) is
enough.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Settings
from .errors import O11yError
from .ingest import iceberg
from .ingest.source import Source, open_source
from .ingest.store import Generation

STALE_AFTER_S = 3600.0  # newest data older than this: is the pipeline running?
MIN_FREE_BYTES = 200_000_000

TOKEN_FIX = (
    "create an R2 API token with Object Read on the bucket (Cloudflare dashboard > R2 > Manage "
    "API tokens; read-only is enough) and set O11Y_R2_ACCESS_KEY_ID / O11Y_R2_SECRET_ACCESS_KEY"
)
CATALOG_FIX = (
    "set O11Y_CATALOG_URI=https://catalog.cloudflarestorage.com/<account>/<bucket>, "
    "O11Y_CATALOG_WAREHOUSE=<account>_<bucket> and O11Y_CATALOG_TOKEN to a token with Data "
    "Catalog read (or unset O11Y_CATALOG_URI to find the table from its metadata files)"
)


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, whether it holds, what was found, the fix."""

    name: str
    status: str  # "ok", "FAIL" or "skip"
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "FAIL"

    def line(self) -> str:
        fix = f" -> fix: {self.fix}" if self.status == "FAIL" and self.fix else ""
        return f"{self.status:<4}  {self.name}: {self.detail}{fix}"


def ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def fail(name: str, detail: str, fix: str = "") -> Check:
    return Check(name, "FAIL", detail, fix)


def skip(name: str, why: str) -> Check:
    return Check(name, "skip", why)


@dataclass
class _State:
    """What earlier checks found, for the later ones."""

    settings: Settings
    source: Source | None = None
    prefix: str | None = None
    mode: str = "iceberg"
    metadata_key: str | None = None
    metadata: dict[str, Any] | None = None
    live: list[iceberg.DataFile] | None = None
    snapshot: iceberg.LiveSnapshot | None = None
    catalog_failed: bool = False


def run_checks(load: Callable[[], Settings]) -> list[Check]:
    """Every check, in order; ``load`` reads the configuration (its failure is the first line)."""
    try:
        settings = load()
    except O11yError as exc:
        return [
            fail(
                "configuration",
                exc.one_line(),
                "see docs/deploy.md, 'Connect to your bucket' (environment or secrets.toml)",
            )
        ]
    state = _State(settings)
    return list(_checks(state))


def _checks(state: _State) -> Iterator[Check]:
    s = state.settings
    yield ok("configuration", f"reading {s.source_label}" + _kind_note(s))
    yield from _source_checks(state)
    if s.catalog_uri:
        yield _catalog_check(state)
    else:
        yield skip("REST catalog", "not configured (the table is found from its metadata files)")
    yield _table_check(state)
    yield _metadata_check(state)
    yield _deletes_check(state)
    yield _newest_check(state)
    yield _cache_check(state)


def _kind_note(s: Settings) -> str:
    if s.kind == "demo":
        return " (no R2 endpoint set: set O11Y_R2_ACCOUNT_ID and a token to read your bucket)"
    return ""


def _source_checks(state: _State) -> Iterator[Check]:
    s = state.settings
    if s.kind != "r2":
        try:
            if s.kind == "demo":
                from .ingest import demo

                state.source = demo.demo_source(s)
            else:
                state.source = open_source(s)
        except O11yError as exc:
            yield fail("source folder", exc.one_line(), "set O11Y_SOURCE_DIR to an existing folder")
            return
        yield skip("credentials", f"not needed for a {s.kind} source")
        yield ok("bucket", f"folder {getattr(state.source, 'root', s.source_dir)}")
        return
    try:
        source = open_source(s)
        next(iter(source.list("", max_keys=1)), None)
    except O11yError as exc:
        line = exc.one_line()
        if "Bucket not found" in line:
            yield ok("credentials", "accepted by R2")
            yield fail("bucket", line, f"check O11Y_BUCKET (now '{s.bucket}') and the account id")
        elif "denied" in line:
            yield fail("credentials", line, f"give the token Object Read on '{s.bucket}'")
            yield skip("bucket", "needs working credentials")
        elif "credentials" in line:
            yield fail("credentials", line, TOKEN_FIX)
            yield skip("bucket", "needs working credentials")
        else:
            fix = "check O11Y_R2_ENDPOINT / O11Y_R2_ACCOUNT_ID and the network"
            yield fail("credentials", line, fix)
            yield skip("bucket", "R2 did not answer")
        return
    state.source = source
    yield ok("credentials", "R2 accepts them for reading (read-only is enough; nothing is written)")
    yield ok("bucket", f"'{s.bucket}' lists")


def _catalog_check(state: _State) -> Check:
    s = state.settings
    try:
        location = iceberg.catalog_metadata_location(
            s.catalog_uri or "",
            warehouse=s.catalog_warehouse,
            token=s.catalog_token.get() if s.catalog_token else None,
        )
    except O11yError as exc:
        state.catalog_failed = True
        return fail("REST catalog", exc.one_line(), CATALOG_FIX)
    return ok("REST catalog", f"agent_network.events -> {location}")


def _table_check(state: _State) -> Check:
    if state.source is None:
        return skip("table", "needs a readable source")
    if state.catalog_failed:
        return skip("table", "the REST catalog names it: fix the catalog first")
    from .ingest.sync import resolve_snapshot

    try:
        target = resolve_snapshot(state.source, state.settings, Generation())
    except O11yError as exc:
        return fail(
            "table",
            exc.one_line(),
            "set O11Y_TABLE_PREFIX to the table's folder (__r2_data_catalog/<catalog>/<table>/)",
        )
    state.prefix, state.mode, state.metadata_key = target.prefix, target.mode, target.metadata_key
    if target.mode != "iceberg":
        return ok("table", f"a folder of Parquet files without metadata under '{target.prefix}'")
    how = "configured" if state.settings.table_prefix else "found"
    return ok("table", f"{how} {target.prefix} (current metadata {target.metadata_key})")


def _metadata_check(state: _State) -> Check:
    source = state.source
    if source is None or state.prefix is None:
        return skip("metadata", "needs a table")
    with tempfile.TemporaryDirectory(prefix="o11y-doctor-") as tmp:
        try:
            if state.mode != "iceberg":
                state.live = [
                    iceberg.DataFile(key=o.key, size=o.size, record_count=-1)
                    for o in source.list(state.prefix)
                    if o.key.endswith(".parquet")
                ]
                return ok("metadata", f"{len(state.live):,} Parquet files (every one is live)")
            assert state.metadata_key is not None
            state.metadata = iceberg.load_json(source, state.metadata_key)
            cache = iceberg.ManifestCache(Path(tmp))
            snapshot = iceberg.read_snapshot(source, state.metadata, cache, key=state.metadata_key)
            snapshot_id, live = snapshot.snapshot_id, snapshot.files
            state.snapshot = snapshot
        except O11yError as exc:
            return fail("metadata", exc.one_line(), "the table's metadata must be readable")
    state.live = list(live)
    records = sum(max(f.record_count, 0) for f in live)
    return ok(
        "metadata",
        f"snapshot {snapshot_id}: {len(live):,} live data files, {records:,} rows (manifests)",
    )


DELETE_KINDS = {"position": "position", "equality": "equality", "dv": "deletion vector"}


def _deletes_check(state: _State) -> Check:
    """The snapshot's live delete files by kind, and how many data files they touch: another
    engine's DELETE on the table; the sync applies every kind the reader knows."""
    if state.mode != "iceberg":
        return skip("delete files", "a plain folder has none")
    snapshot = state.snapshot
    if snapshot is None:
        return skip("delete files", "needs readable metadata")
    if not snapshot.delete_files:
        return ok("delete files", "none: every live row counts")
    kinds = Counter(d.kind for d in snapshot.delete_files.values())
    what = ", ".join(f"{n} {DELETE_KINDS.get(k, k)}" for k, n in sorted(kinds.items()))
    touched = sum(1 for ids in snapshot.deletes.values() if ids)
    n = len(snapshot.delete_files)
    found = f"{n} delete file{'s' * (n != 1)} ({what}) on {touched} data file{'s' * (touched != 1)}"
    return ok("delete files", f"{found}: the sync applies them")


def _newest_check(state: _State) -> Check:
    metadata, source = state.metadata, state.source
    now = time.time()
    if state.mode == "iceberg":
        # Only metadata the metadata check read whole: an inconsistent file was reported there.
        snap = iceberg.current_snapshot(metadata) if metadata and state.snapshot else None
        if snap is None:
            return skip("newest data", "needs a snapshot")
        landed = int(snap.get("timestamp-ms") or 0) / 1000
        what = "last commit"
    else:
        if source is None or state.prefix is None:
            return skip("newest data", "needs a table")
        times = [o.mtime for o in source.list(state.prefix) if o.key.endswith(".parquet")]
        if not times:
            return fail("newest data", "no Parquet files", "check the folder or O11Y_TABLE_PREFIX")
        landed, what = max(times), "newest file"
    age = now - landed
    line = f"{what} {_age(age)} ago"
    if age > STALE_AFTER_S:
        return fail(
            "newest data",
            line,
            "is the pipeline running? (dashboard > Pipelines, or wrangler pipelines list)",
        )
    return ok("newest data", line)


def _cache_check(state: _State) -> Check:
    folder = state.settings.store_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        return fail(
            "cache", f"{folder}: {exc.strerror or exc}", "set O11Y_CACHE_DIR to a writable folder"
        )
    table = sum(max(f.size, 0) for f in state.live or [])
    want = max(MIN_FREE_BYTES, 3 * table)  # downloads + segments + a rewrite's worth
    detail = f"{folder}: writable, {free / 1e9:.1f} GB free (table about {table / 1e6:,.0f} MB)"
    if free < want:
        return fail("cache", detail, f"free at least {want / 1e6:,.0f} MB or set O11Y_CACHE_DIR")
    return ok("cache", detail)


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
