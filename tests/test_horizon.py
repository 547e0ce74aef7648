"""The raw horizon (O11Y_RAW_HORIZON): the store keeps raw rows and downloaded copies for the
horizon only, the rollups cover all history.

Tables are written by pyiceberg (day partitions of ``__ingest_ts``, column bounds) into
moto_server and read over HTTP through the counting proxy; pyiceberg's scan is the oracle for
the live rows, aggregated by an independent DuckDB query. The sync's clock is pinned
(``sync._now``) so the horizon falls on known days.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from o11y_data import O11yError, load_settings, open_db, sync
from o11y_data.ingest import rollups
from o11y_data.ingest import sync as sync_module
from o11y_data.ingest.iceberg_write import TableWriter, folder_put, unstructured_table
from o11y_data.ingest.store import Store
from tests.support.reference_tables import RefTable
from tests.support.tables import event, r2_settings

DAY = timedelta(days=1)
# The sync's clock: noon of a day well before the real one (ingest times must not be ahead of
# the real clock, which the normalization checks), so the horizon's days are known here.
TODAY = datetime.fromtimestamp(time.time() // 86400 * 86400, UTC) - 2 * DAY
NOW = TODAY + timedelta(hours=12)
HORIZON_DAYS = 5
RAW_FROM = TODAY - HORIZON_DAYS * DAY  # floor_day(NOW - 5d)


def day(n: int) -> datetime:
    """Noon of ``n`` days before TODAY."""
    return TODAY - n * DAY + timedelta(hours=12)


def day_rows(when: datetime, n: int, *, agent: str, late: datetime | None = None) -> pa.Table:
    """``n`` events landing one second apart from ``when`` (event time 30 s before landing);
    with ``late``, one more event landing then whose event time is ``late``."""
    ingest = [when + timedelta(seconds=i) for i in range(n)]
    values = [
        event(agent=agent, ms=100 * (i + 1), ts=t - timedelta(seconds=30))
        for i, t in enumerate(ingest)
    ]
    if late is not None:
        ingest.append(when + timedelta(seconds=n))
        values.append(event(agent="did:cf:late", ms=7, ts=late))
    return pa.table(
        {
            "__ingest_ts": pa.array(ingest, pa.timestamp("us", tz="UTC")),
            "value": pa.array(values, pa.string()),
        }
    )


def unlanded_rows(ts: datetime) -> pa.Table:
    """Two events without a landing time (NULL ``__ingest_ts``): their file cannot be pruned."""
    return pa.table(
        {
            "__ingest_ts": pa.array([None, None], pa.timestamp("us", tz="UTC")),
            "value": pa.array([event(agent="did:cf:nolanding", ms=5, ts=ts)] * 2, pa.string()),
        }
    )


@pytest.fixture
def clock(monkeypatch):
    """The sync's clock, pinned to NOW; ``clock.move(days)`` moves it on."""

    class Clock:
        now = NOW

        def move(self, days: int) -> None:
            self.now = NOW + days * DAY

    c = Clock()
    monkeypatch.setattr(sync_module, "_now", lambda: c.now.timestamp())
    return c


@pytest.fixture
def table(s3_admin, bucket, moto_endpoint, tmp_path) -> RefTable:
    """Ten days of history, one file a day (days 10..1 before TODAY), a late event on day 2
    whose event time is day 8, and a file without landing times whose events are on day 9."""
    ref = RefTable.create(
        endpoint=moto_endpoint, s3=s3_admin, bucket=bucket, db=tmp_path / "catalog.db"
    )
    # One commit: pyiceberg writes a file per landing day (and one for the NULL partition).
    days = [
        day_rows(day(n), 3, agent=f"did:cf:d{n}", late=day(8) if n == 2 else None)
        for n in range(10, 0, -1)
    ]
    ref.append(pa.concat_tables([*days, unlanded_rows(day(9))]))
    return ref


def horizon_settings(endpoint: str, bucket: str, cache: Path, horizon: str = f"{HORIZON_DAYS}d"):
    return r2_settings(endpoint, bucket, cache, O11Y_RAW_HORIZON=horizon)


def oracle_days(ref: RefTable) -> dict[datetime, tuple[int, int]]:
    """Per UTC day of event time: (events, sum of durationMs), by DuckDB over pyiceberg's scan
    (the contract's ts: a valid ``_ts``, which every fixture event has)."""
    rows = ref.reference()  # noqa: F841 (read by DuckDB below)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    out = con.execute(
        "SELECT date_trunc('day', CAST(json_extract_string(value, '$._ts') AS TIMESTAMPTZ)) d, "
        "count(*), sum(CAST(json_extract(value, '$.durationMs') AS BIGINT)) FROM rows GROUP BY d"
    ).fetchall()
    return {d: (int(n), int(s)) for d, n, s in out}


def store_days(settings) -> dict[datetime, tuple[int, int]]:
    """The same from the store's daily rollup."""
    store = Store(settings.store_dir)
    head = store.load_head()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    out = con.execute(
        "SELECT t, CAST(sum(events) AS BIGINT), CAST(sum(dur_sum) AS BIGINT) "
        f"FROM ({rollups.view_sql(store.rollups, head.rollups, 'daily')}) GROUP BY t"
    ).fetchall()
    return {d: (int(n), int(s)) for d, n, s in out}


def data_gets(proxy) -> Counter:
    return Counter(
        p.split("?")[0].rsplit("/", 1)[-1]
        for m, p in proxy.requests
        if m == "GET" and p.split("?")[0].endswith(".parquet")
    )


def raw_files(settings) -> set[str]:
    raw = Store(settings.store_dir).raw
    return {p.name for p in raw.rglob("*.parquet")}


def segment_ts(settings) -> list[datetime]:
    db = open_db(settings)
    try:
        return list(db.query("SELECT ts FROM events_all WHERE ts IS NOT NULL").ts)
    finally:
        db.close()


def file_names(ref: RefTable, *, landed: datetime | None = None) -> set[str]:
    """Names of the live data files (of one landing day's partition, if given)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return {
        uri.rsplit("/", 1)[-1]
        for uri, f in ref.data_files().items()
        if landed is None or (f.partition[0] is not None and epoch + f.partition[0] * DAY == landed)
    }


def test_first_sync_keeps_raw_rows_for_the_horizon_and_rolls_up_all_history(
    table, proxy, bucket, tmp_path, clock
):
    settings = horizon_settings(proxy.endpoint, bucket, tmp_path / "cache")
    report = sync(settings)

    # Every data file is fetched exactly once: history before the horizon is streamed through.
    gets = data_gets(proxy)
    assert set(gets) == file_names(table) and set(gets.values()) == {1}, gets
    # Days 10..6 land wholly before the horizon (day 5 on): streamed, no copy kept; the file
    # without landing times cannot be pruned, so it is downloaded into the store, and its copy
    # goes once its rows prove to be all before the horizon.
    assert report.streamed == 5
    assert report.downloaded == 5 + 1
    landed_in_horizon = set().union(
        *(file_names(table, landed=TODAY - n * DAY) for n in range(HORIZON_DAYS, 0, -1))
    )
    assert raw_files(settings) == landed_in_horizon and len(landed_in_horizon) == 5

    # Segments: every raw row from the horizon on, none before (the late day-8 event is out).
    oracle = oracle_days(table)
    ts = segment_ts(settings)
    assert ts and min(ts) >= RAW_FROM
    assert len(ts) == sum(n for d, (n, _) in oracle.items() if d >= RAW_FROM)

    # Rollups: all of history, equal to the oracle day by day (day 8 with its late event).
    assert store_days(settings) == oracle
    assert oracle[TODAY - 8 * DAY][0] == 3 + 1  # day 8: its 3 events and the late one

    # Each file's days are recorded (what a later change before the horizon recomputes from).
    store = Store(settings.store_dir)
    data = json.loads(store.gen_path(store.current_number()).read_text())
    assert len(data["files"]) == 11
    assert all(isinstance(rec.get("days"), list) for rec in data["files"].values())

    # The head says where the raw rows begin; the reader sees it.
    head = Store(settings.store_dir).load_head()
    assert head.raw_from_us == int(RAW_FROM.timestamp()) * 1_000_000
    db = open_db(settings)
    try:
        assert db.raw_from() == RAW_FROM
    finally:
        db.close()


def test_time_passing_trims_raw_rows_and_copies_and_keeps_the_rollups(
    table, moto_endpoint, bucket, tmp_path, clock
):
    settings = horizon_settings(moto_endpoint, bucket, tmp_path / "cache")
    sync(settings)
    before = raw_files(settings)
    assert sync(settings).changed is False  # same day, same table: nothing to do

    clock.move(2)  # two days on: the horizon moves to day 3 before TODAY
    report = sync(settings)
    assert report.changed and report.downloaded == 0 and report.streamed == 0
    raw_from = RAW_FROM + 2 * DAY
    assert (
        Store(settings.store_dir).load_head().raw_from_us == int(raw_from.timestamp()) * 1_000_000
    )
    ts = segment_ts(settings)
    assert min(ts) >= raw_from
    oracle = oracle_days(table)
    assert len(ts) == sum(n for d, (n, _) in oracle.items() if d >= raw_from)
    assert len(raw_files(settings)) == len(before) - 2  # days 5 and 4 landed before it
    assert store_days(settings) == oracle

    clock.move(1)  # a clock going back never brings the horizon back
    sync(settings)
    assert (
        Store(settings.store_dir).load_head().raw_from_us == int(raw_from.timestamp()) * 1_000_000
    )


def test_a_delete_on_a_file_before_the_horizon_downloads_it_again_and_recounts_its_day(
    table, proxy, bucket, tmp_path, clock
):
    settings = horizon_settings(proxy.endpoint, bucket, tmp_path / "cache")
    sync(settings)
    (name,) = file_names(table, landed=TODAY - 7 * DAY)
    old_uri = next(u for u in table.data_files() if u.endswith(name))
    table.delete_positions({old_uri: [0, 2]})
    proxy.clear_requests()
    report = sync(settings)

    assert store_days(settings) == oracle_days(table)  # pyiceberg applies the delete
    gets = data_gets(proxy)
    assert gets[name] == 1 and report.streamed == 1  # the old file, downloaded again
    assert not (set(raw_files(settings)) & {name})  # and not kept
    assert report.rows == table.reference().num_rows


def test_a_late_event_before_the_horizon_recomputes_its_day_from_every_file(
    table, proxy, bucket, tmp_path, clock
):
    settings = horizon_settings(proxy.endpoint, bucket, tmp_path / "cache")
    sync(settings)
    # A new file today holds an event of day 7, whose other rows were streamed and discarded.
    table.append(day_rows(day(0) - timedelta(hours=11), 2, agent="did:cf:new", late=day(7)))
    proxy.clear_requests()
    report = sync(settings)

    assert store_days(settings) == oracle_days(table)
    gets = data_gets(proxy)
    day7 = file_names(table, landed=TODAY - 7 * DAY)
    assert report.refetched == 1 and day7 <= set(gets), gets
    assert len(gets) == 2  # the new file and day 7's file, nothing else


def write_days(root: Path, days: int, per_day: int = 200) -> tuple[Path, TableWriter]:
    """A folder table of ``days`` days before TODAY, one file a day (our writer, partitioned by
    day of ``__ingest_ts``), the last days identical whatever ``days`` is."""
    src = root / "src"
    writer = TableWriter(put=folder_put(src), bucket="agent-blobs", table_prefix="t/")
    for n in range(days, 0, -1):
        start = day(n)
        rows = [
            (
                start + timedelta(seconds=i),
                event(agent=f"did:cf:a{i % 7}", ms=i + n, ts=start + timedelta(seconds=i - 30)),
            )
            for i in range(per_day)
        ]
        writer.append([unstructured_table(rows)])
    return src, writer


def store_bytes(settings) -> dict[str, int]:
    store = Store(settings.store_dir)
    return {
        part: sum(p.stat().st_size for p in (store.root / part).rglob("*") if p.is_file())
        for part in ("raw", "segments", "rollups")
    }


def test_disk_with_a_horizon_does_not_grow_when_history_doubles(tmp_path, clock):
    sizes: dict[tuple[str, int], dict[str, int]] = {}
    for horizon in (f"{HORIZON_DAYS}d", "all"):
        for days in (12, 24):
            root = tmp_path / f"{horizon}-{days}"
            src, _ = write_days(root, days)
            settings = load_settings(
                {
                    "O11Y_SOURCE_DIR": str(src),
                    "O11Y_CACHE_DIR": str(root / "cache"),
                    "O11Y_TABLE_PREFIX": "t/",
                    "O11Y_RAW_HORIZON": horizon,
                },
                secrets_paths=[],
            )
            report = sync(settings)
            assert report.rows == days * 200
            sizes[(horizon, days)] = store_bytes(settings)
    raw_of = {k: v["raw"] + v["segments"] for k, v in sizes.items()}
    bounded = raw_of[(f"{HORIZON_DAYS}d", 24)] / raw_of[(f"{HORIZON_DAYS}d", 12)]
    unbounded = raw_of[("all", 24)] / raw_of[("all", 12)]
    assert bounded < 1.1, sizes
    assert unbounded > 1.6, sizes  # the same measure sees all history grow


def test_compaction_before_the_horizon_keeps_the_rollups_exact(tmp_path, clock):
    src, writer = write_days(tmp_path, 10, per_day=20)
    settings = load_settings(
        {
            "O11Y_SOURCE_DIR": str(src),
            "O11Y_CACHE_DIR": str(tmp_path / "cache"),
            "O11Y_TABLE_PREFIX": "t/",
            "O11Y_RAW_HORIZON": f"{HORIZON_DAYS}d",
        },
        secrets_paths=[],
    )
    sync(settings)
    first = store_days(settings)
    oldest = sorted(str(p.relative_to(src)) for p in src.rglob("*.parquet"))[:2]  # days 10, 9
    merged = []
    for key in oldest:
        merged += list(zip(*pq.read_table(src / key).to_pydict().values(), strict=True))
    writer.compact(oldest, unstructured_table(merged))
    report = sync(settings)
    assert report.streamed == 2 and report.removed == 2  # compacted: a file per day
    assert store_days(settings) == first


@pytest.mark.parametrize("value", ["soon", "-3d", "1h", "90 days", "1e9d", "200000w"])
def test_a_bad_raw_horizon_fails_in_one_line_naming_it(value):
    with pytest.raises(O11yError) as err:
        load_settings({"O11Y_RAW_HORIZON": value}, secrets_paths=[])
    assert "O11Y_RAW_HORIZON" in err.value.one_line() and "\n" not in err.value.one_line()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, 90 * 86400.0),
        ("30d", 30 * 86400.0),
        ("26w", 26 * 7 * 86400.0),
        ("all", None),
        ("ALL", None),
    ],
)
def test_raw_horizon_defaults_to_90_days_and_all_keeps_everything(value, seconds, monkeypatch):
    from o11y_data import config

    # The shipped default (tests/conftest.py keeps all history for the other tests' fixtures).
    monkeypatch.setattr(config, "DEFAULT_RAW_HORIZON_S", config.Settings.raw_horizon_s)
    env = {} if value is None else {"O11Y_RAW_HORIZON": value}
    assert load_settings(env, secrets_paths=[]).raw_horizon_s == seconds


def oracle_cycles(ref: RefTable, lo: datetime, hi: datetime) -> int:
    """Cycles with event time in [lo, hi), by DuckDB over pyiceberg's scan."""
    rows = ref.reference()  # noqa: F841 (read by DuckDB below)
    con = duckdb.connect()
    return con.execute(
        "SELECT count(*) FROM rows WHERE CAST(json_extract_string(value, '$._ts') AS TIMESTAMPTZ) "
        "BETWEEN ? AND ? - INTERVAL 1 MICROSECOND",
        [lo, hi],
    ).fetchall()[0][0]


def test_windows_before_the_horizon_are_answered_from_rollups_with_edges_widened(
    table, moto_endpoint, bucket, tmp_path, clock
):
    from o11y_data.query import metrics as M
    from o11y_data.query import planner

    settings = horizon_settings(moto_endpoint, bucket, tmp_path / "cache")
    sync(settings)
    hour = timedelta(hours=1)
    db = open_db(settings)
    try:
        # Inside the horizon: exact, as without one.
        inside = planner.Filters(day(3) - 2 * hour, day(1) + 2 * hour)
        p = planner.plan(db, [M.CYCLES], inside)
        assert not p.widened
        assert db.fetch(p.sql, p.params)[0]["cycles"] == oracle_cycles(
            table, inside.start, inside.end
        )
        # Reaching before it: partial hours there are read as whole hours from the rollups.
        before = planner.Filters(day(8) - 30 * timedelta(minutes=1), day(7) + hour / 4)
        p = planner.plan(db, [M.CYCLES], before)
        assert p.widened and p.source == "rollups"
        got = db.fetch(p.sql, p.params)[0]["cycles"]
        assert got == oracle_cycles(table, day(8) - hour, day(7) + hour) == 3 + 1 + 3
        # A short window's percentile (exact inside the horizon) comes from the histograms.
        p = planner.plan(db, [M.P95_MS], before)
        assert p.approx and p.source == "rollups"
        # Buckets finer than the rollups' hour cannot be answered there: one line, no number.
        with pytest.raises(planner.BeforeHorizon, match="configure an engine"):
            planner.plan(db, [M.CYCLES], before, keys=[planner.bucket(300)])
    finally:
        db.close()


def test_a_store_synced_without_a_horizon_is_trimmed_when_one_is_set(tmp_path, clock):
    src, _ = write_days(tmp_path, 8, per_day=20)

    def settings_for(horizon: str):
        return load_settings(
            {
                "O11Y_SOURCE_DIR": str(src),
                "O11Y_CACHE_DIR": str(tmp_path / "cache"),
                "O11Y_TABLE_PREFIX": "t/",
                "O11Y_RAW_HORIZON": horizon,
            },
            secrets_paths=[],
        )

    everything = settings_for("all")
    sync(everything)
    before = store_days(everything)
    assert len(raw_files(everything)) == 8 and min(segment_ts(everything)) < RAW_FROM

    bounded = settings_for(f"{HORIZON_DAYS}d")
    report = sync(bounded)  # nothing new at the source: the days are found in the segments
    assert report.changed and report.downloaded == report.streamed == report.refetched == 0
    assert min(segment_ts(bounded)) >= RAW_FROM and len(segment_ts(bounded)) == 5 * 20
    assert len(raw_files(bounded)) == 5
    assert store_days(bounded) == before

    # Widening it again cannot bring the dropped rows back: said, never silently partial.
    report = sync(everything)
    assert any("dropped earlier" in w and "O11Y_RAW_HORIZON" in w for w in report.warnings)
    head = Store(everything.store_dir).load_head()
    assert head.raw_from_us == int(RAW_FROM.timestamp()) * 1_000_000
