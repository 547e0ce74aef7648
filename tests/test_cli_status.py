"""``status`` names the files set aside and shows ages in days and hours correctly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.cli import cli
from tests.support.tables import event, plain_parquet, rows


def test_status_lists_set_aside_files_and_states_ages_in_days_and_hours(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    old = datetime.now(UTC) - timedelta(days=2, hours=3, minutes=10)
    (src / "good.parquet").write_bytes(plain_parquet(rows([event(ts=old)], start=old)))
    (src / "junk.parquet").write_bytes(b"PAR1 junk PAR1")
    env = {"O11Y_SOURCE_DIR": str(src), "O11Y_CACHE_DIR": str(tmp_path / "c")}
    assert cli(env, "sync").returncode == 0
    r = cli(env, "status")
    assert r.returncode == 0, r.stderr
    lines = {line.split("  ", 1)[0]: line for line in r.stdout.splitlines()}
    assert "junk.parquet: not a readable Parquet file" in lines["set aside"]
    assert "tried again from 20" in lines["set aside"]
    assert lines["newest event"].endswith("(2d 3h ago)"), lines["newest event"]


def _status_lines(env: dict[str, str]) -> dict[str, str]:
    r = cli(env, "status")
    assert r.returncode == 0, r.stderr
    return {line.split("  ", 1)[0]: line for line in r.stdout.splitlines()}


def test_the_sync_records_newest_times_and_choices_and_status_shows_them_as_a_scan_does(tmp_path):
    import duckdb

    from o11y_data import load_settings
    from o11y_data.ingest.store import Store

    src = tmp_path / "src"
    src.mkdir()
    newest = datetime(2026, 11, 20, 8, 30, 15, 123456, tzinfo=UTC)
    events = [event(ts=newest - timedelta(hours=h), agent=f"a{h}") for h in range(5)]
    landed = newest + timedelta(seconds=7, microseconds=1)
    (src / "f.parquet").write_bytes(plain_parquet(rows(events, start=landed)))
    env = {"O11Y_SOURCE_DIR": str(src), "O11Y_CACHE_DIR": str(tmp_path / "c")}
    assert cli(env, "sync").returncode == 0
    store = Store(load_settings(env, secrets_paths=[]).store_dir)
    head = store.load_head()
    segs = [str(store.segments / s.name) for s in head.segments]
    # The oracle: a scan of the segments, not the sync's rollups or statistics.
    scan = duckdb.connect().execute(
        "SELECT epoch_us(max(ts) FILTER (WHERE parsed)), epoch_us(max(ingest_ts)) "
        "FROM read_parquet(?)",
        [segs],
    )
    assert (head.newest_ts_us, head.newest_ingest_us) == scan.fetchall()[0]
    # and the filter choices, against a scan too
    for col, values in head.choices.items():
        found = duckdb.connect().execute(
            f"SELECT DISTINCT {col} FROM read_parquet(?) WHERE parsed AND {col} IS NOT NULL "
            f"ORDER BY 1",
            [segs],
        )
        assert values == [r[0] for r in found.fetchall()], col
    assert head.choices["agent"] == ["a0", "a1", "a2", "a3", "a4"]
    recorded = _status_lines(env)
    assert "2026-11-20 08:30:15 UTC" in recorded["newest event"]

    # A store published before the times were recorded: status scans and says the same.
    for path in store.root.glob("head-*.json"):
        path.unlink()
    gen = store.load()
    gen.newest_ts_us = gen.newest_ingest_us = None
    store.publish(gen)
    assert store.load_head().newest_ingest_us is None
    scanned = _status_lines(env)
    for key in ("newest event", "newest landed", "rows", "live files"):
        assert scanned[key].split("(")[0] == recorded[key].split("(")[0], key


def _synced_env(tmp_path, **extra: str) -> dict[str, str]:
    src = tmp_path / "src"
    src.mkdir()
    now = datetime.now(UTC)
    for i, t in enumerate([now - timedelta(days=40), now - timedelta(hours=1)]):
        (src / f"f{i}.parquet").write_bytes(plain_parquet(rows([event(ts=t)], start=t)))
    env = {
        "O11Y_SOURCE_DIR": str(src),
        "O11Y_CACHE_DIR": str(tmp_path / "c"),
        "O11Y_AGENTS_FILE": str(tmp_path / "no-agents.toml"),
        **extra,
    }
    assert cli(env, "sync").returncode == 0
    return env


def test_status_shows_where_raw_rows_begin_and_that_no_engine_answers_before_them(tmp_path):
    env = _synced_env(tmp_path, O11Y_RAW_HORIZON="30d")
    lines = _status_lines(env)
    day = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%d")  # the horizon's UTC day
    assert lines["raw rows"].split("  ", 1)[1].strip() == (
        f"kept from {day} (30-day horizon); older windows answered from rollups"
    )
    assert "no engine" in lines["engine"]


def test_status_says_every_raw_row_is_kept_without_a_horizon_and_names_the_engine(tmp_path):
    env = _synced_env(tmp_path, O11Y_RAW_HORIZON="all")
    # status asks neither the engine nor the catalog (an address nothing listens on)
    engine = {"O11Y_ENGINE": "daft", "O11Y_CATALOG_URI": "http://127.0.0.1:9"}
    lines = _status_lines({**env, **engine})
    assert lines["raw rows"].endswith("every raw row kept (O11Y_RAW_HORIZON=all)")
    assert lines["engine"].endswith("Daft on its local runner (O11Y_ENGINE=daft)")
