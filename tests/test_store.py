"""The store under concurrency and kills: one sync at a time, nothing partial, nothing lost."""

from __future__ import annotations

import fnmatch
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from o11y_data import O11yError, SyncBusy, load_settings, open_db, sync
from o11y_data.ingest import demo
from o11y_data.ingest.store import Store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_src(demo_store) -> Path:
    """The session's demo source: only read here, each test syncs it into a cache of its own."""
    return demo_store.src


def settings_for(src: Path, cache: Path):
    return load_settings(
        {"O11Y_SOURCE_DIR": str(src), "O11Y_CACHE_DIR": str(cache)}, secrets_paths=[]
    )


def expected_counts(src: Path) -> tuple[int, int]:
    """(rows, distinct raw values) of the live files, read with pyarrow, not DuckDB."""
    import json

    import pyarrow.parquet as pq

    from o11y_data.ingest import iceberg
    from o11y_data.ingest.source import LocalSource

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


def test_a_sync_past_its_memory_cap_fails_in_one_line_naming_the_cap_and_keeps_the_store(
    demo_src, demo_store, tmp_path
):
    shutil.copytree(demo_store.cache, tmp_path / "c")  # the demo synced (its source: demo_src)
    rows, _ = expected_counts(demo_src)
    published = Store(settings_for(demo_src, tmp_path / "c").store_dir).load().number
    tiny = load_settings(
        {
            "O11Y_SOURCE_DIR": str(demo_src),
            "O11Y_CACHE_DIR": str(tmp_path / "c"),
            "O11Y_SYNC_MEMORY": "4MB",
        },
        secrets_paths=[],
    )
    # A store of an older rollup version is rolled up whole: real work under the 4 MB cap.
    store = Store(tiny.store_dir)
    gen = store.load()
    store.publish(replace(gen, rollups={**gen.rollups, "version": -1}))
    with pytest.raises(O11yError) as e:
        sync(tiny)
    line = e.value.one_line()
    assert "O11Y_SYNC_MEMORY=4MB" in line and "out of memory" in line and "\n" not in line
    assert store.load().number == published + 1  # the failed sync published nothing
    again = sync(settings_for(demo_src, tmp_path / "c"))
    assert again.rows == rows


def test_two_syncs_at_once_one_waits_or_skips(demo_src, tmp_path):
    import threading

    rows, _ = expected_counts(demo_src)
    s = settings_for(demo_src, tmp_path)
    store = Store(s.store_dir)
    done: list = []
    with store.lock():
        # Without wait: skipped at once, in one line.
        with pytest.raises(SyncBusy, match="already running"):
            sync(s)
        assert store.is_syncing()
        # With wait: it blocks for as long as the other holds the lock...
        waiter = threading.Thread(target=lambda: done.append(sync(s, wait=True)), daemon=True)
        waiter.start()
        waiter.join(timeout=1.5)
        assert waiter.is_alive() and not done, "a waiting sync did not wait for the lock"
        assert store.current_number() == 0
    # ...and runs to the end once it is released.
    waiter.join(timeout=120)
    assert not waiter.is_alive()
    assert done[0].rows == rows and store.current_number() == 1
    assert not store.is_syncing()


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


def _wait_for_sync_start(store: Store, proc: subprocess.Popen, after: float) -> bool:
    """Until status.json says a sync started after ``after`` is running (the process is past its
    imports and holds the lock); False if the process ended first."""
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        status = store.read_status()
        if status.get("running") and float(status.get("started_at") or 0) >= after:
            return True
        time.sleep(0.01)
    return False


def _wait_for_a_write(store: Store, proc: subprocess.Popen) -> None:
    """Until a file is being written under the store (a ".part-" temporary), or the process
    ended first."""
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if any(p.name.startswith(".part-") for p in store.root.rglob(".part-*")):
            return


@pytest.mark.slow  # twenty sync processes, each killed
def test_sync_killed_at_random_points_loses_and_duplicates_nothing(demo_src, tmp_path):
    rows, _ = expected_counts(demo_src)
    env = {**os.environ, "O11Y_SOURCE_DIR": str(demo_src), "O11Y_CACHE_DIR": str(tmp_path)}
    rng = random.Random(3)
    s = settings_for(demo_src, tmp_path)
    kills = left_partial = 0
    for i in range(20):
        # Start from a partial cache each time: forget some downloads and the published state.
        store = Store(s.store_dir)
        for p in list(store.raw.rglob("*.parquet"))[::3] if store.raw.exists() else []:
            p.unlink()
        (store.root / "CURRENT").unlink(missing_ok=True)
        launched = time.time()
        proc = subprocess.Popen(
            [sys.executable, "-m", "o11y_data", "sync"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Kill only inside the sync (most of a fixed sleep would land during the imports); every
        # fourth kill as soon as a file is being written, so that some kill interrupts a write
        # however fast this machine runs the rest.
        if _wait_for_sync_start(store, proc, launched - 1):
            if i % 4 == 3:
                _wait_for_a_write(store, proc)
            else:
                time.sleep(rng.uniform(0.0, 1.0))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        proc.wait()
        partial = [p for p in store.root.rglob("*") if p.is_file() and p.name.startswith(".part-")]
        left_partial += bool(partial)
        # Readers never see partial files: hidden temp names (".part-*.tmp") that no generation
        # names and the next sync sweeps.
        assert all(fnmatch.fnmatch(p.name, ".part-*.tmp") for p in partial), partial
        db = open_db(s)
        n = int(db.query("SELECT count(*) AS n FROM events_all").iloc[0].n)
        assert n in (0, rows), "a reader saw a half-published store"
        db.close()
    assert kills >= 15, f"only {kills} of 20 kills landed inside a running sync"
    assert left_partial >= 1, "no kill interrupted a write: the test proves nothing about them"
    report = sync(s)
    assert report.rows == rows
    db = open_db(s)
    dup = db.query(
        "SELECT count(*) AS n, count(DISTINCT (file, raw, ingest_ts)) AS d FROM events_all"
    ).iloc[0]
    assert int(dup.n) == rows
    assert int(dup.d) == rows
    assert not [p for p in Path(tmp_path).rglob(".part-*")]


def test_footers_found_sound_are_not_read_again_until_the_file_changes(tmp_path):
    import duckdb

    store = Store(tmp_path)
    folder = tmp_path / "segments"
    folder.mkdir()
    con = duckdb.connect()
    names = [f"s{i}.parquet" for i in range(3)]
    for name in names:
        con.execute(
            f"COPY (SELECT range AS x FROM range(10)) TO '{folder / name}' (FORMAT parquet)"
        )

    class Counting:  # a connection that counts the footer reads made through it
        reads = 0

        def __init__(self) -> None:
            self.con = duckdb.connect()

        def execute(self, sql, params=None):
            Counting.reads += 1
            return self.con.execute(sql, params)

        def close(self) -> None:
            self.con.close()

    assert store.damaged_files(folder, names, Counting()) == []
    first = Counting.reads
    assert first >= 1
    assert store.damaged_files(folder, names, Counting()) == []
    assert Counting.reads == first  # nothing changed: no footer read at all
    (folder / names[1]).write_bytes((folder / names[1]).read_bytes()[:20])  # truncated
    assert store.damaged_files(folder, names, Counting()) == [names[1]]
    (folder / names[2]).unlink()
    assert store.damaged_files(folder, names, Counting()) == [names[1], names[2]]
