"""The store under concurrency and kills: one sync at a time, nothing partial, nothing lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from o11y_data import SyncBusy, demo, load_settings, open_db, sync
from o11y_data.store import Store
from tests.support.tables import T0

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_src(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("demo") / "src"
    demo.build(src, now=T0, seed=7)
    return src


def settings_for(src: Path, cache: Path):
    return load_settings(
        {"O11Y_SOURCE_DIR": str(src), "O11Y_CACHE_DIR": str(cache)}, secrets_paths=[]
    )


def expected_counts(src: Path) -> tuple[int, int]:
    """(rows, distinct raw values) of the live files, read with pyarrow, not DuckDB."""
    import json

    import pyarrow.parquet as pq

    from o11y_data import iceberg
    from o11y_data.source import LocalSource

    source = LocalSource(src, bucket=demo.BUCKET)
    meta = iceberg.newest_metadata(source, demo.TABLE_PREFIX)
    snap = iceberg.current_snapshot(json.loads((src / meta.key).read_text()))
    import fastavro

    def avro(uri: str):
        with open(src / iceberg.key_from_uri(uri, demo.BUCKET), "rb") as fh:
            return list(fastavro.reader(fh))

    keys = {
        e["data_file"]["file_path"]
        for m in avro(snap["manifest-list"])
        for e in avro(m["manifest_path"])
        if e["status"] != 2
    }
    n = sum(pq.read_metadata(src / iceberg.key_from_uri(k, demo.BUCKET)).num_rows for k in keys)
    return n, len(keys)


def test_demo_store_holds_exactly_the_live_rows(demo_src, tmp_path):
    rows, files = expected_counts(demo_src)
    report = sync(settings_for(demo_src, tmp_path))
    assert (report.rows, report.live_files) == (rows, files)
    all_files = list(demo_src.rglob("*.parquet"))
    assert len(all_files) > files + 1  # compaction leftovers and the orphan are there, unread


def test_two_syncs_at_once_one_waits_or_skips(demo_src, tmp_path):
    s = settings_for(demo_src, tmp_path)
    store = Store(s.store_dir)
    with store.lock():
        with pytest.raises(SyncBusy):
            sync(s)
        assert store.is_syncing()
    assert not store.is_syncing()
    assert sync(s).rows > 0


def test_two_processes_syncing_together_leave_one_consistent_store(demo_src, tmp_path):
    env = {**os.environ, "O11Y_SOURCE_DIR": str(demo_src), "O11Y_CACHE_DIR": str(tmp_path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "o11y_data", "sync", *extra],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for extra in ([], [])
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes[0] == 0, outs
    if codes[1] != 0:  # the other skipped, saying so in one line
        assert any("already running" in e for _, e in outs)
    rows, _ = expected_counts(demo_src)
    db = open_db(settings_for(demo_src, tmp_path))
    assert int(db.query("SELECT count(*) AS n FROM events_all").iloc[0].n) == rows


def test_sync_killed_at_random_points_loses_and_duplicates_nothing(demo_src, tmp_path):
    rows, _ = expected_counts(demo_src)
    env = {**os.environ, "O11Y_SOURCE_DIR": str(demo_src), "O11Y_CACHE_DIR": str(tmp_path)}
    rng = random.Random(3)
    s = settings_for(demo_src, tmp_path)
    kills = 0
    for _ in range(20):
        # Start from a partial cache each time: forget some downloads and the published state.
        store = Store(s.store_dir)
        for p in list(store.raw.rglob("*.parquet"))[::3] if store.raw.exists() else []:
            p.unlink()
        (store.root / "CURRENT").unlink(missing_ok=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "o11y_data", "sync"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.3, 2.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        partial = [p for p in store.root.rglob("*") if p.is_file() and p.name.startswith(".part-")]
        # Readers never see partial files: they are hidden temp names, swept by the next sync.
        db = open_db(s)
        n = int(db.query("SELECT count(*) AS n FROM events_all").iloc[0].n)
        assert n in (0, rows), "a reader saw a half-published store"
        db.close()
        del partial
    assert kills >= 5, "the kills never landed inside a sync; make the sleeps shorter"
    report = sync(s)
    assert report.rows == rows
    db = open_db(s)
    dup = db.query(
        "SELECT count(*) AS n, count(DISTINCT (file, raw, ingest_ts)) AS d FROM events_all"
    ).iloc[0]
    assert int(dup.n) == rows
    assert int(dup.d) == rows
    assert not [p for p in Path(tmp_path).rglob(".part-*")]
