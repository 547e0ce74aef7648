"""Each query function against numbers worked out by hand (or plain Python) on a tiny dataset."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from o11y_data import load_settings, open_db, sync
from o11y_data.query import queries as q
from tests.support.tables import event, plain_parquet

T = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
# (minutes after T, agent, mode, ms, tools, errors)
CYCLES = [
    (0, "A", "think", 100, 1, 0),
    (1, "A", "think", 300, 2, 2),
    (2, "A", "reflection", 1000, 0, 0),
    (3, "B", "think", 200, 4, 1),
    (61, "B", "housekeeping", 50, None, 0),
    (62, "B", "think", None, 3, 0),
    (125, "A", "think", 500, 1, 0),
]


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("q")
    src = root / "src"
    src.mkdir()
    rows = []
    for m, agent, mode, ms, tools, errors in CYCLES:
        ts = T + timedelta(minutes=m)
        rows.append(
            (
                ts + timedelta(seconds=10 if agent == "A" else 30),
                event(agent=agent, mode=mode, ms=ms, tools=tools, errors=errors, ts=ts),
            )
        )
    rows.append(
        (
            T + timedelta(minutes=5),
            event(
                agent="B", event_type="agent.wake", ms=7, ts=T + timedelta(minutes=5), note="needle"
            ),
        )
    )
    rows.append((T + timedelta(minutes=6), "{broken"))
    (src / "a.parquet").write_bytes(plain_parquet(rows[:4]))
    (src / "b.parquet").write_bytes(plain_parquet(rows[4:]))
    s = load_settings(
        {"O11Y_SOURCE_DIR": str(src), "O11Y_CACHE_DIR": str(root / "c")}, secrets_paths=[]
    )
    sync(s)
    return open_db(s)


def records(df: pd.DataFrame) -> list[dict]:
    return [
        {k: (None if not isinstance(v, str) and pd.isna(v) else v) for k, v in r.items()}
        for r in df.to_dict("records")
    ]


def test_summary_groups_by_agent_and_mode_ordered_by_agent_then_cycles(db):
    assert records(q.summary(db)) == [
        {"agent": "A", "mode": "think", "cycles": 3, "avg_ms": 300, "tools": 4, "errors": 2},
        {"agent": "A", "mode": "reflection", "cycles": 1, "avg_ms": 1000, "tools": 0, "errors": 0},
        {"agent": "B", "mode": "think", "cycles": 2, "avg_ms": 200, "tools": 7, "errors": 1},
        {"agent": "B", "mode": "housekeeping", "cycles": 1, "avg_ms": 50, "tools": 0, "errors": 0},
    ]


def test_time_filters_are_inclusive_start_exclusive_end(db):
    f = q.Filters(start=T + timedelta(minutes=1), end=T + timedelta(minutes=61))
    df = q.summary(db, f)
    assert int(df.cycles.sum()) == 3  # minutes 1, 2, 3; not 0, not 61


def test_agent_mode_and_errors_only_filters(db):
    assert int(q.summary(db, q.Filters(agents=("B",))).cycles.sum()) == 3
    assert int(q.summary(db, q.Filters(modes=("think",))).cycles.sum()) == 5
    assert int(q.summary(db, q.Filters(errors_only=True)).cycles.sum()) == 2


def test_totals_tiles(db):
    t = q.totals(db)
    durations = [c[3] for c in CYCLES if c[3] is not None]
    assert t.agents == 2 and t.cycles == 7
    assert t.error_rate == pytest.approx(2 / 7)
    assert t.p95_ms == pytest.approx(statistics.quantiles(durations, n=20, method="inclusive")[18])
    assert (t.tools, t.errors) == (11, 3)


def test_totals_with_no_data_are_none_not_zero_rates(db):
    t = q.totals(db, q.Filters(start=T + timedelta(days=5)))
    assert t.cycles == 0 and t.error_rate is None and t.p95_ms is None


def test_cycles_over_time_hourly_by_agent(db):
    df = records(q.cycles_over_time(db, by="agent", bucket_s=3600))
    got = {(r["bucket"].to_pydatetime(), r["key"]): (r["cycles"], r["error_cycles"]) for r in df}
    assert got == {
        (T, "A"): (3, 1),
        (T, "B"): (1, 1),
        (T + timedelta(hours=1), "B"): (2, 0),
        (T + timedelta(hours=2), "A"): (1, 0),
    }


def test_error_rate_over_time_by_mode(db):
    df = q.error_rate_over_time(db, by="mode", bucket_s=3600)
    row = df[(df.key == "think") & (df.bucket == pd.Timestamp(T))].iloc[0]
    assert (row.cycles, row.error_cycles, row.errors) == (3, 2, 3)
    assert row.error_rate == pytest.approx(2 / 3) and row.errors_per_cycle == pytest.approx(1.0)


def test_duration_percentiles_interpolate(db):
    df = q.agent_overview(db).set_index("agent")
    a = [100, 300, 1000, 500]
    qs = statistics.quantiles(a, n=100, method="inclusive")
    assert df.loc["A", "p50_ms"] == pytest.approx(statistics.median(a))
    assert df.loc["A", "p95_ms"] == pytest.approx(qs[94])
    assert df.loc["A", "p99_ms"] == pytest.approx(qs[98])
    # the null duration is not a sample: B's median is that of its two durations
    assert df.loc["B", "p50_ms"] == pytest.approx(statistics.median([200, 50]))


def test_mode_breakdown_shares(db):
    df = q.mode_breakdown(db).set_index("mode")
    assert df.loc["think", "share"] == pytest.approx(5 / 7)
    per_agent = q.mode_breakdown(db, by_agent=True).set_index(["agent", "mode"])
    assert per_agent.loc[("B", "housekeeping"), "share"] == pytest.approx(1 / 3)


def test_agent_last_seen_and_overview(db):
    seen = q.agent_last_seen(db).set_index("agent")
    assert seen.loc["A", "last_ts"] == pd.Timestamp(T + timedelta(minutes=125))
    assert seen.loc["B", "last_mode"] == "think"
    ov = q.agent_overview(db).set_index("agent")
    assert ov.loc["A", "cycles"] == 4 and ov.loc["A", "error_rate"] == pytest.approx(1 / 4)
    assert ov.loc["A", "think_share"] == pytest.approx(3 / 4)


def test_explorer_search_matches_agent_and_raw_json_and_types(db):
    df = q.events_table(db, search="NEEDLE")
    assert list(df.event_type) == ["agent.wake"]
    assert q.count_events(db) == 8  # 7 cycles + 1 wake; the broken row is not an event
    only = q.events_table(db, q.Filters(event_types=("agent.cycle",)), limit=3)
    assert list(only.ts) == sorted(only.ts, reverse=True) and len(only) == 3
    assert only.ts.iloc[0] == pd.Timestamp(T + timedelta(minutes=125))


def test_ingest_lag_and_freshness(db):
    lag = q.ingest_lag_over_time(db, bucket_s=86400)
    assert lag.iloc[0].lag_p50_s == pytest.approx(10.0)
    f = q.freshness(db)
    assert f["newest_ts"] == pd.Timestamp(T + timedelta(minutes=125))
    assert (f["files"], f["rows"], f["unparseable"]) == (2, 9, 1)


def test_pick_bucket_gives_100_to_300_points():
    for span in [
        timedelta(minutes=15),
        timedelta(hours=1),
        timedelta(hours=6),
        timedelta(days=1),
        timedelta(days=7),
        timedelta(days=30),
    ]:
        b = q.pick_bucket(T, T + span)
        assert 50 <= span.total_seconds() / b <= 300, (span, b)


def test_agent_last_seen_respects_an_end_before_the_newest_event_and_agent_filters(db):
    early = q.agent_last_seen(db, q.Filters(end=T + timedelta(minutes=62))).set_index("agent")
    assert early.loc["A", "last_ts"] == pd.Timestamp(T + timedelta(minutes=2))
    assert early.loc["B", "cycles"] == 2  # minutes 3 and 61
    late = q.agent_last_seen(db, q.Filters(end=T + timedelta(days=1), agents=("B",)))
    assert list(late.agent) == ["B"] and late.iloc[0].cycles == 3
    assert q.time_range(db, q.Filters()) == (T, T + timedelta(minutes=125))
