"""O11Y_HISTORY=engine: a first sync asks Daft for the rollup of the history before the raw
horizon instead of downloading it, and its rollups are the ones streaming makes.

The table is written by pyiceberg into moto_server behind a REST catalog on loopback (compaction
leftovers, an orphan, position deletes: engine_tables.leftovers_orphan_deletes). Two stores sync
it side by side, one streaming the history and one asking Daft (local runner); every rollup table
is compared row by row by DuckDB over the rollup Parquet. The dashboard reads the bucket through
the counting proxy, Daft reads moto directly (it is another system), so the proxy's GETs are the
sync's own. The sync's clock is pinned (``sync._now``) so the horizon falls on a known day.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

pytest.importorskip("daft", reason="requirements-engines.txt (make dev) installs Daft")

from o11y_data import O11yError, load_settings, sync  # noqa: E402
from o11y_data.ingest import horizon  # noqa: E402
from o11y_data.ingest import sync as sync_module  # noqa: E402
from o11y_data.ingest.iceberg import DataFile  # noqa: E402
from o11y_data.ingest.store import Store  # noqa: E402
from o11y_data.query.engines import daft_engine as D  # noqa: E402
from o11y_data.query.engines.base import EngineError, EngineRefused  # noqa: E402
from tests.support.engine_tables import (  # noqa: E402
    START,
    arrow_rows,
    history,
    leftovers_orphan_deletes,
    rollup_rows,
)
from tests.support.proxy import FaultProxy  # noqa: E402
from tests.support.rest_catalog import TOKEN, RestCatalog  # noqa: E402
from tests.support.s3server import empty_and_delete_bucket  # noqa: E402
from tests.support.tables import event, r2_env  # noqa: E402

pytestmark = [pytest.mark.s3, pytest.mark.server]
DAY = timedelta(days=1)
# The sync's clock: day 3 of the fixture's history at noon; with a one-day horizon the raw rows
# start at day 2, so the files landed on days 0 and 1 lie wholly before it.
NOW = START + 3 * DAY + timedelta(hours=12)


@pytest.fixture(scope="module")
def pinned_clock():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sync_module, "_now", lambda: NOW.timestamp())
        yield


class Table:
    """A pyiceberg table in its own bucket behind a REST catalog, and how to sync it."""

    def __init__(self, s3_admin: Any, moto_endpoint: str, root: Path) -> None:
        from tests.support.reference_tables import RefTable

        self.root = root
        self.endpoint = moto_endpoint
        self.s3 = s3_admin
        self.bucket = f"agent-blobs-{uuid.uuid4().hex[:8]}"
        s3_admin.create_bucket(Bucket=self.bucket)
        self.ref = RefTable.create(
            endpoint=moto_endpoint, s3=s3_admin, bucket=self.bucket, db=root / "cat.db"
        )
        self.catalog = RestCatalog(
            location=lambda: self.ref.table.metadata_location,
            s3=s3_admin,
            bucket=self.bucket,
            endpoint=moto_endpoint,
        )

    def settings(self, endpoint: str, cache: str, **extra: str) -> Any:
        env = r2_env(
            endpoint,
            self.bucket,
            self.root / cache,
            O11Y_CATALOG_URI=self.catalog.uri,
            O11Y_CATALOG_TOKEN=TOKEN,
            O11Y_CATALOG_WAREHOUSE="acct_agent-blobs",
            O11Y_ENGINE="daft",
            O11Y_RAW_HORIZON="1d",
            O11Y_AGENTS_FILE=str(self.root / "no-agents.toml"),
            **extra,
        )
        return load_settings(env, secrets_paths=[])

    def engine(self) -> D.DaftEngine:
        """Daft reading moto directly (not through the dashboard's proxy)."""
        return D.DaftEngine.from_settings(self.settings(self.endpoint, "engine-unused"))

    def close(self) -> None:
        self.catalog.close()
        with contextlib.suppress(Exception):
            empty_and_delete_bucket(self.s3, self.bucket)


def head_counts(settings: Any) -> tuple[int, int, dict[str, int]]:
    head = Store(settings.store_dir).load_head()
    return head.rows, head.unparseable, head.out_of_range


def data_gets(proxy: FaultProxy) -> Counter:
    return Counter(
        p.split("?")[0].rsplit("/", 1)[-1]
        for m, p in proxy.requests
        if m == "GET" and p.split("?")[0].endswith(".parquet")
    )


def before_horizon(ref: Any) -> set[str]:
    """Live data files whose every row landed before the horizon's day less the grace (the
    oracle: pyiceberg's own data files and their upper bounds, not our manifest reader)."""
    cut = START + 2 * DAY - timedelta(minutes=10)
    fid = ref.table.schema().find_field("__ingest_ts").field_id
    names = set()
    for uri, f in ref.data_files().items():
        if f.null_value_counts.get(fid) != 0 or fid not in f.upper_bounds:
            continue  # NULL landing times: never wholly before anything
        upper = int.from_bytes(f.upper_bounds[fid], "little", signed=True)
        if upper < int(cut.timestamp() * 1_000_000):
            names.add(uri.rsplit("/", 1)[-1])
    return names


@pytest.fixture
def table(s3_admin, moto_endpoint, tmp_path) -> Iterator[Table]:
    """A table of the test's own; its bucket emptied and deleted after."""
    fresh = Table(s3_admin, moto_endpoint, tmp_path)
    yield fresh
    fresh.close()


@pytest.fixture(scope="module")
def leftovers(s3_admin, moto_endpoint, tmp_path_factory, pinned_clock):
    table = Table(s3_admin, moto_endpoint, tmp_path_factory.mktemp("history"))
    leftovers_orphan_deletes(table.ref, history(days=4, per_day=6))
    yield table
    table.close()


def test_a_first_sync_asking_daft_gives_the_rollups_streaming_gives_without_getting_old_files(
    leftovers, moto_endpoint
):
    with FaultProxy(moto_endpoint) as proxy:
        streamed = leftovers.settings(proxy.endpoint, "stream")
        sync(streamed)
        stream_gets = data_gets(proxy)
        proxy.clear_requests()
        asked = leftovers.settings(proxy.endpoint, "engine", O11Y_HISTORY="engine")
        report = sync(asked, history=leftovers.engine())
        engine_gets = data_gets(proxy)
    old = before_horizon(leftovers.ref)
    assert old and old <= set(stream_gets)  # streaming downloads them: the fixture has some
    assert not old & set(engine_gets), engine_gets
    assert report.aggregated == len(old) and report.streamed == 0
    assert "rolled up by Daft" in report.one_line()
    assert rollup_rows(asked) == rollup_rows(streamed)
    assert head_counts(asked) == head_counts(streamed)
    assert rollup_rows(asked)["hourly"]  # not two empty stores


def test_the_engine_sync_is_answered_at_the_snapshot_the_sync_read(leftovers, moto_endpoint):
    seen: list[int | None] = []

    class Spy:
        name = "spy"

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def history(self, **kw: Any) -> Any:
            seen.append(kw["snapshot_id"])
            return self.inner.history(**kw)

    settings = leftovers.settings(moto_endpoint, "spy", O11Y_HISTORY="engine")
    report = sync(settings, history=Spy(leftovers.engine()))
    assert seen == [report.snapshot_id] == [leftovers.ref.table.current_snapshot().snapshot_id]


def test_an_engine_that_fails_leaves_the_previous_generation_and_says_so_in_one_line(
    leftovers, moto_endpoint
):
    settings = leftovers.settings(moto_endpoint, "fails", O11Y_HISTORY="engine")

    class Broken:
        name = "Daft"

        def history(self, **kw: Any) -> Any:
            raise EngineError("Daft could not roll up the history", "worker lost")

    with pytest.raises(O11yError) as exc:
        sync(settings, history=Broken())
    assert "\n" not in exc.value.one_line() and "worker lost" in exc.value.one_line()
    store = Store(settings.store_dir)
    assert store.current_number() is None or store.current_number() == 0
    # A store with a generation keeps it when a later sync's engine fails.
    sync(settings, history=leftovers.engine())
    before = (Store(settings.store_dir).current_number(), rollup_rows(settings))
    leftovers.ref.append(arrow_rows([(START + timedelta(hours=2), event(ms=77, ts=START))]))
    with pytest.raises(O11yError, match="worker lost"):
        sync(settings, history=Broken())
    assert (Store(settings.store_dir).current_number(), rollup_rows(settings)) == before


def test_the_cut_puts_every_file_wholly_on_one_side_or_there_is_none():
    old = DataFile("old", 1, 1, landed_before_us=10, landed_from_us=0)
    new = DataFile("new", 1, 1, landed_before_us=5000, landed_from_us=1500)
    cut, why = horizon.engine_cut([old, DataFile("nulls", 1, 1), new], 10**10)
    assert cut is None and why.startswith("nulls:")
    cut, _ = horizon.engine_cut([old, new], 1000 + horizon.TOLERANCE_US)
    assert cut == horizon.EngineCut(1000, frozenset({"old"}))
    # A file straddling the cut lowers it to its first landing, which may move others above it.
    straddle = DataFile("mid", 1, 1, landed_before_us=1200, landed_from_us=500)
    under = DataFile("under", 1, 1, landed_before_us=700, landed_from_us=600)
    cut, _ = horizon.engine_cut([old, new, straddle, under], 1000 + horizon.TOLERANCE_US)
    assert cut == horizon.EngineCut(500, frozenset({"old"}))
    # A file the store sets aside is never below it (its rows are left out of the store).
    cut, _ = horizon.engine_cut([old, new], 1000 + horizon.TOLERANCE_US, never={"old"})
    assert cut == horizon.EngineCut(0, frozenset())


def side_by_side(table: Table, proxy: FaultProxy, tag: str) -> tuple[Any, Any, Counter, Any]:
    """Sync ``table`` into a streaming store and an engine store (through ``proxy``): both
    settings, the engine store's data-file GETs and its report."""
    streamed = table.settings(proxy.endpoint, f"stream-{tag}")
    sync(streamed)
    proxy.clear_requests()
    asked = table.settings(proxy.endpoint, f"engine-{tag}", O11Y_HISTORY="engine")
    report = sync(asked, history=table.engine())
    return streamed, asked, data_gets(proxy), report


# Durations whose key ln(v)/ln(GAMMA) lies within 1e-6 of an integer (found by numpy over every
# integer up to 24 h), with their neighbours: the keys the engine leaves to this process.
NEAR_EDGES = (1, 1345641, 10664563)


def hostile_rows(when: Any) -> pa.Table:
    """Values at the edges of the contract landing at ``when`` (docs/events.md): numbers past
    int64 and the contract's maxima, numeric strings, NaN, times at the ends of the calendar,
    empty strings, unparseable rows, keys at bucket edges, and 12,000 events from 2000-01-01
    whose summed lag (2.7e19 µs) is past int64."""
    big = 2**63 - 1
    values: list[str] = []
    for ms in (big, -big - 1, str(big), 1e308, "NaN", " 42 ", 86_400_000, 86_400_001, 0, 0.5, 1.5):
        values.append(event(ms=ms, ts=when))
    for v in NEAR_EDGES:
        values += [event(ms=v + d, ts=when) for d in (-1, 0, 1)]
    values += [
        event(tools=big, errors=1_000_001, ts=when),
        event(tools="1e6", errors="-1", ts=when),
        event(agent="", mode="   ", ts=when),
        event(agent="did:cf:ünïcødé", event_type="", ts=when),
        event(ts=None, _ts="9999-12-31T23:59:59Z"),
        event(ts=None, _ts="0001-01-01T00:00:00Z"),
        event(ts=None, _ts="+275760-09-13T00:00:00Z"),
        event(ts=None, _ts="-000001-01-01T00:00:00Z"),
        event(ts=None, _ts="not a time"),
        event(ts=when + timedelta(minutes=9)),  # just inside the grace: a negative lag
        event(ts=when + timedelta(minutes=11)),  # past it: from the future
        "[1, 2]",
        "null",
        "{cut short",
        "",
    ]
    from datetime import UTC, datetime

    values += [event(ms=5, ts=datetime(2000, 1, 1, tzinfo=UTC))] * 12_000
    ingest = [when + timedelta(microseconds=i) for i in range(len(values))]
    return pa.table(
        {
            "__ingest_ts": pa.array(ingest, pa.timestamp("us", tz="UTC")),
            "value": pa.array(values, pa.string()),
        }
    )


def test_hostile_values_give_the_same_rollups_from_the_engine_as_from_streaming(
    table, moto_endpoint, pinned_clock
):
    table.ref.append(hostile_rows(START + timedelta(hours=3)))
    table.ref.append(arrow_rows(history(days=4, per_day=3)[3]))  # rows the store keeps
    with FaultProxy(moto_endpoint) as proxy:
        streamed, asked, gets, report = side_by_side(table, proxy, "hostile")
    assert report.aggregated == 1 and report.streamed == 0
    assert not before_horizon(table.ref) & set(gets)
    got = rollup_rows(asked)
    assert got == rollup_rows(streamed)
    assert head_counts(asked) == head_counts(streamed)
    lag = max(r[-1] for r in got["hourly"] if r[-1] is not None)  # lag_sum, exact
    assert lag > 2**63


def test_a_delete_and_a_compaction_before_the_horizon_ask_the_engine_again_and_stay_equal(
    table, moto_endpoint, pinned_clock
):
    days = history(days=4, per_day=6)
    for rows in days:
        table.ref.append(arrow_rows(rows))
    with FaultProxy(moto_endpoint) as proxy:
        side_by_side(table, proxy, "later")
        old = before_horizon(table.ref)
        first = next(u for u in sorted(table.ref.data_files()) if u.rsplit("/", 1)[-1] in old)
        table.ref.delete_positions({first: [1, 2]})  # a delete the engine must apply
        streamed, asked, gets, report = side_by_side(table, proxy, "later")
        assert report.aggregated and not old & set(gets)
        assert rollup_rows(asked) == rollup_rows(streamed)
        table.ref.table.overwrite(arrow_rows(days[0] + days[1] + days[2] + days[3]))
        streamed, asked, gets, report = side_by_side(table, proxy, "later")
    assert report.aggregated and not before_horizon(table.ref) & set(gets)
    assert rollup_rows(asked) == rollup_rows(streamed)
    assert head_counts(asked) == head_counts(streamed)


def test_an_equality_delete_is_refused_in_one_line_and_nothing_is_published(
    table, moto_endpoint, pinned_clock
):
    rows = history(days=1, per_day=3)[0]
    table.ref.append(arrow_rows(rows))
    table.ref.delete_equal("value", [rows[0][1]], like=sorted(table.ref.data_files())[0])
    settings = table.settings(moto_endpoint, "eq", O11Y_HISTORY="engine")
    with pytest.raises(EngineRefused, match="equality deletes") as exc:
        sync(settings, history=table.engine())
    assert "\n" not in exc.value.one_line() and "Daft" in exc.value.one_line()
    assert not Store(settings.store_dir).current_number()


def test_history_engine_needs_an_engine_that_rolls_it_up(tmp_path):
    env = r2_env("http://127.0.0.1:1", "b", tmp_path, O11Y_HISTORY="engine")
    with pytest.raises(O11yError, match="O11Y_HISTORY=engine needs O11Y_ENGINE") as exc:
        load_settings(env, secrets_paths=[])
    assert "\n" not in exc.value.one_line()
    with pytest.raises(O11yError, match="Bad O11Y_HISTORY"):
        load_settings({**env, "O11Y_HISTORY": "later"}, secrets_paths=[])


def test_going_back_to_streaming_streams_the_engines_files_once_and_stays_equal(
    table, moto_endpoint, pinned_clock
):
    days = history(days=4, per_day=4)
    for rows in days:
        table.ref.append(arrow_rows(rows))
    with FaultProxy(moto_endpoint) as proxy:
        streamed, asked, _, _ = side_by_side(table, proxy, "back")
        table.ref.append(arrow_rows(history(days=4, per_day=2)[3]))
        sync(streamed)
        back = table.settings(proxy.endpoint, "engine-back")  # O11Y_HISTORY unset: stream
        report = sync(back)
    assert report.streamed == len(before_horizon(table.ref)) and not report.aggregated
    assert rollup_rows(back) == rollup_rows(streamed)
    assert head_counts(back) == head_counts(streamed)


def test_a_file_without_landing_bounds_keeps_the_engine_out_and_the_line_says_why(
    table, moto_endpoint, pinned_clock
):
    table.ref.append(arrow_rows(history(days=4, per_day=3)[0]))
    unlanded = pa.table(
        {
            "__ingest_ts": pa.array([None, None], pa.timestamp("us", tz="UTC")),
            "value": pa.array([event(ms=5, ts=START)] * 2, pa.string()),
        }
    )
    table.ref.append(unlanded)
    with FaultProxy(moto_endpoint) as proxy:
        streamed, asked, gets, report = side_by_side(table, proxy, "nulls")
    assert not report.aggregated and report.streamed == len(before_horizon(table.ref)) == 1
    assert any("not asked of Daft" in w and "no bounds" in w for w in report.warnings)
    assert rollup_rows(asked) == rollup_rows(streamed)
