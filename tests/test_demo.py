"""The demo: realistic, deterministic, and read through the same sync path as R2."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta

import pyarrow.parquet as pq
import pytest

from o11y_data import load_settings, open_db, sync
from o11y_data.ingest import demo
from o11y_data.query import queries as q
from tests.support.tables import T0


def build_and_sync(tmp_path, name: str, now: datetime):
    src = tmp_path / name
    demo.build(src, now=now, seed=7)
    s = load_settings(
        {"O11Y_SOURCE_DIR": str(src), "O11Y_CACHE_DIR": str(tmp_path / f"c-{name}")},
        secrets_paths=[],
    )
    sync(s)
    return src, open_db(s)


@pytest.mark.slow  # builds and syncs the demo once more
def test_same_now_and_seed_give_the_same_numbers(tmp_path, demo_store):
    # the run's demo (seed 7, built and synced once per run) built again at its time, apart
    _, again = build_and_sync(tmp_path, "again", now=demo_store.now)
    assert q.summary(again).equals(q.summary(open_db(demo_store.settings)))


def test_demo_has_the_stories_a_dashboard_should_show(demo_store):
    # the run's shared demo (seed 7, built at its own now)
    src, now, db = demo_store.src, demo_store.now, open_db(demo_store.settings)
    seen = q.agent_last_seen(db).set_index("agent")
    ids = [p.did for p in demo.agents(7)]
    assert len(ids) == 12
    silent = seen.loc[ids[demo.SILENT_AGENT], "last_ts"].to_pydatetime()
    assert timedelta(minutes=59) < now - silent < timedelta(minutes=75)
    others = [
        now - seen.loc[i, "last_ts"].to_pydatetime() for i in ids if i != ids[demo.SILENT_AGENT]
    ]
    assert max(others) < timedelta(minutes=15)
    burst = q.Filters(start=now - timedelta(hours=3), end=now - timedelta(hours=2, minutes=35))
    calm = q.Filters(start=now - timedelta(hours=12), end=now - timedelta(hours=4))
    assert q.totals(db, burst).error_rate > 3 * q.totals(db, calm).error_rate
    modes = q.mode_breakdown(db).set_index("mode")
    assert {"think", "reflection", "housekeeping"} <= set(modes.index)
    p = q.totals(db)
    assert p.p99_ms > 3 * p.p50_ms  # long-tailed
    # the demo's events without an agent are "unknown": apart, never an agent, never quiet
    day = q.Filters(start=now - timedelta(hours=24), end=now)
    t = q.totals(db, day)
    assert t.unknown_cycles > 0
    assert t.agents == 12 == len(ids)  # what the wall shows, unknown left out
    assert "unknown" not in set(seen.index)
    fresh = q.freshness(db)
    assert fresh["unparseable"] == 4  # truncated, array, scalar, empty
    # Leftovers of compaction and an orphan sit in data/ but are not live.
    live = fresh["files"]
    on_disk = len(list(src.rglob("*.parquet")))
    assert on_disk > live + 1
    assert any("compacted-" in p.name for p in src.rglob("*.parquet"))


def test_advance_appends_the_time_since_as_a_new_snapshot(tmp_path, demo_store):
    src = tmp_path / "src"
    shutil.copytree(demo_store.src, src)  # the run's demo (seed 7), built at demo_store.now
    built = demo_store.now
    state = json.loads((src / demo.STATE_FILE).read_text())
    added = demo.advance(src, now=built + timedelta(minutes=10))
    assert added > 0
    s = load_settings(
        {"O11Y_SOURCE_DIR": str(src), "O11Y_CACHE_DIR": str(tmp_path / "c")}, secrets_paths=[]
    )
    sync(s)
    newest = q.freshness(open_db(s))["newest_ts"]
    assert built < newest <= built + timedelta(minutes=10)
    after = json.loads((src / demo.STATE_FILE).read_text())
    assert after["writer"]["version"] == state["writer"]["version"] + 1
    files = [f for f in src.rglob("*.parquet")]
    assert all(pq.read_metadata(f).row_group(0).column(0).compression == "ZSTD" for f in files)


@pytest.mark.slow  # weeks of snapshots, maintained as it goes
def test_a_demo_running_for_weeks_keeps_its_table_small(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "MAINTAIN_FILES", 900)  # reached within the test's day
    monkeypatch.setattr(demo, "KEEP_METADATA_VERSIONS", 100)
    src = tmp_path / "src"
    demo.build(src, now=T0, seed=7)
    s = load_settings(
        {"O11Y_SOURCE_DIR": str(src), "O11Y_CACHE_DIR": str(tmp_path / "c")}, secrets_paths=[]
    )
    sync(s)
    t = T0
    for _ in range(40):  # 40 advances of 40 minutes: ~27 hours of a live demo
        t += timedelta(minutes=40)
        demo.advance(src, now=t)
    report = sync(s)
    state = json.loads((src / demo.STATE_FILE).read_text())
    assert len(state["writer"]["manifests"]) <= 65
    metadata = list((src / demo.TABLE_PREFIX / "metadata").iterdir())
    assert len([p for p in metadata if p.name.endswith(".metadata.json")]) <= 101
    assert report.live_files <= demo.MAINTAIN_FILES + 200
    compacted = [p for p in src.rglob("compacted-*.parquet")]
    assert len(compacted) >= 2  # maintenance compacted whole days (older leftovers removed)
    assert state["leftovers"]  # the latest leftovers are still there, and not live
    live_keys = {e[1] for m in state["writer"]["manifests"] for e in m["entries"] if e[0] != 2}
    for key in state["leftovers"]:
        assert (src / key).is_file() and key not in live_keys
    # Maintenance compacted old files, and the store still holds exactly the live rows once.
    live_rows, _ = _live_rows(src)
    assert report.rows == live_rows
    newest = q.freshness(open_db(s))["newest_ts"]
    assert t - timedelta(minutes=15) < newest <= t


def _live_rows(src):
    from tests.test_store import expected_counts

    return expected_counts(src)
