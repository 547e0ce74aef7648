"""Rollups kept at sync time always equal a recomputation from the rows; percentiles read from
their histograms stay within 1 % of the exact ones.

The table is a real Iceberg table in a local folder (our writer), synced by the real sync. The
expected rollups are computed here in plain Python from the rows this file wrote, never by the
SQL that builds them. That the planner's answers from rollups equal its answers from the raw rows
is tests/test_planner.py's property test.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import numpy as np
import pytest

from o11y_data import open_db, sync
from o11y_data.ingest import rollups
from o11y_data.query import metrics, planner
from o11y_data.query import queries as q
from tests.support.rollup_tables import Table, make_events

# -- the Python truth ------------------------------------------------------------------------


def hist_key(v: int) -> int:
    if v == 0:
        return 0
    k = 1 + math.ceil(math.log(abs(v)) / math.log(rollups.GAMMA) - 1e-12)
    return k if v > 0 else -k


def expected_facts(events: list[dict], unit: str) -> dict[tuple, tuple]:
    acc: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, 0, 0, None, None, 0, 0])
    for e in events:
        t = e["ts"].replace(minute=0, second=0, microsecond=0)
        if unit == "day":
            t = t.replace(hour=0)
        erred = (e["errors"] or 0) > 0
        a = acc[(t, e["event_type"], e["agent"], e["mode"], erred)]
        a[0] += 1
        a[1] += e["errors"] or 0
        if e["duration_ms"] is not None:
            a[2] += 1
            a[3] += e["duration_ms"]
        if e["tool_calls"] is not None:
            a[4] += 1
            a[5] += e["tool_calls"]
        a[6] = e["ts"] if a[6] is None else min(a[6], e["ts"])
        a[7] = e["ts"] if a[7] is None else max(a[7], e["ts"])
        a[8] += 1
        lag = e["ingest_ts"] - e["ts"]
        a[9] += (lag.days * 86400 + lag.seconds) * 1_000_000 + lag.microseconds
    return {k: tuple(v) for k, v in acc.items()}


def _lag_us(e: dict) -> int:
    lag = e["ingest_ts"] - e["ts"]
    return (lag.days * 86400 + lag.seconds) * 1_000_000 + lag.microseconds


def expected_hist(events: list[dict], table: str) -> dict[tuple, int]:
    """``table``'s rows (duration_hist, lag_hist, or their ``_month`` tables) from the events:
    (t, [event_type,] agent, mode, erred, k) -> n."""
    lag, monthly = table.startswith("lag_hist"), table.endswith("_month")
    net = table.endswith("_net")  # the network's: every event type, agent and mode together
    acc: dict[tuple, int] = defaultdict(int)
    for e in events:
        if lag:
            key: tuple = (e["event_type"],)
            value = _lag_us(e)
        elif e["event_type"] == "agent.cycle" and e["duration_ms"] is not None:
            key, value = (), e["duration_ms"]
        else:
            continue
        t = e["ts"].replace(hour=0, minute=0, second=0, microsecond=0)
        if monthly:
            t = t.replace(day=1)
        erred = (e["errors"] or 0) > 0
        if net:
            acc[(t, hist_key(value))] += 1
        else:
            acc[(t, *key, e["agent"], e["mode"], erred, hist_key(value))] += 1
    return dict(acc)


def stored_facts(db, table: str) -> dict[tuple, tuple]:
    out = {}
    for r in db.fetch(f"SELECT * FROM {table}"):
        key = (r["t"], r["event_type"], r["agent"], r["mode"], r["erred"])
        assert key not in out, f"{table}: {key} twice"
        out[key] = tuple(
            int(v) if isinstance(v, Decimal) else v
            for v in (
                r["events"], r["errors"], r["dur_n"], r["dur_sum"], r["tools_n"],
                r["tools_sum"], r["min_ts"], r["max_ts"], r["lag_n"], r["lag_sum"],
            )
        )  # fmt: skip
    return out


def stored_hist(db, table: str) -> dict[tuple, int]:
    lag, net = table.startswith("lag_hist"), table.endswith("_net")
    out = {}
    for r in db.fetch(f"SELECT * FROM {table}"):
        if net:
            key: tuple = (r["t"], r["k"])
        else:
            key = (r["t"], *((r["event_type"],) if lag else ()), r["agent"], r["mode"])
            key += (r["erred"], r["k"])
        assert key not in out, f"{table}: {key} twice"
        out[key] = r["n"]
    return out


HISTS = ("duration_hist", "lag_hist", "duration_hist_month", "lag_hist_month", "lag_hist_net")


def check(table: Table) -> None:
    db = open_db(table.settings)
    try:
        assert db.rollups_ok
        events = table.events()
        assert stored_facts(db, "hourly") == expected_facts(events, "hour")
        assert stored_facts(db, "daily") == expected_facts(events, "day")
        for hist in HISTS:
            assert stored_hist(db, hist) == expected_hist(events, hist), hist
        # garbage collection kept every file the generation names (the monthly ones included)
        used = rollups.names(db.spec.rollups)
        assert {n.split("-")[0] for n in used} >= set(HISTS)
        assert all((db.spec.rollup_folder / n).is_file() for n in used)
    finally:
        db.close()


def month_files(table: Table) -> dict[str, dict[str, str]]:
    from o11y_data.ingest.store import Store

    return Store(table.settings.store_dir).load().rollups["months"]


def test_rollups_equal_a_recomputation_through_growth_late_rows_compaction_and_deletes(tmp_path):
    rng = random.Random(11)
    t = Table(tmp_path)
    oct30 = datetime(2026, 10, 30, 20, 0, tzinfo=UTC)
    # growth: three days across a month boundary, several files per sync
    t.append(*(make_events(rng, oct30 + timedelta(hours=6 * i), 6, 40) for i in range(6)))
    sync(t.settings)
    check(t)
    t.append(make_events(rng, oct30 + timedelta(days=2), 5, 30))
    sync(t.settings)
    check(t)

    # a late row for an old hour of the other month: only that month's files are rewritten
    before = month_files(t)
    t.append(make_events(rng, datetime(2026, 10, 31, 3, 0, tzinfo=UTC), 0.5, 3))
    sync(t.settings)
    check(t)
    after = month_files(t)
    assert after["2026-11"] == before["2026-11"]
    for name in rollups.TABLES:  # the old month's monthly histograms too
        assert after["2026-10"][name] != before["2026-10"][name]

    # compaction: files replaced by one compacted file (the old ones stay in data/)
    keys = sorted(t.files)[:4]
    t.compact(keys)
    sync(t.settings)
    check(t)

    # rows leave the snapshot: a file is deleted from the table
    t.delete(sorted(t.files)[0])
    sync(t.settings)
    check(t)


def _rolled_up_again_after(tmp_path, seed: int, start: datetime, old_rollups) -> None:
    """A synced store whose published rollups are replaced by ``old_rollups(rollups)`` (as an
    older dashboard left them): they are not used, and the next sync, with nothing new to
    download, rolls the store up whole again."""
    from o11y_data.ingest.store import Store

    t = Table(tmp_path)
    t.append(make_events(random.Random(seed), start, 30 * seed, 100))
    sync(t.settings)
    store = Store(t.settings.store_dir)
    gen = store.load()
    gen.rollups = old_rollups(gen.rollups)
    store.publish(gen)
    db = open_db(t.settings)
    assert not db.rollups_ok
    db.close()
    assert sync(t.settings).downloaded == 0
    check(t)


def test_a_store_without_rollups_gets_them_on_the_next_sync_with_nothing_new(tmp_path):
    # as a store synced before rollups existed
    _rolled_up_again_after(tmp_path, 1, datetime(2026, 11, 1, tzinfo=UTC), lambda _: {})


def test_rollups_of_an_older_version_are_rolled_up_whole_with_the_derived_histograms(tmp_path):
    def version_2(r: dict) -> dict:  # no network lag histogram yet
        months = {
            m: {k: v for k, v in tables.items() if k not in rollups.NET}
            for m, tables in r["months"].items()
        }
        return {"version": rollups.VERSION - 1, "months": months}

    _rolled_up_again_after(tmp_path, 2, datetime(2026, 10, 30, tzinfo=UTC), version_2)


def test_freshness_and_choices_from_rollups_and_statistics_equal_scans_of_the_rows(long_table):
    db = open_db(long_table.settings)
    try:
        assert db.rollups_ok
        fr, ch = q.freshness(db), q.choices(db)
        raw = db.fetch(
            "SELECT (SELECT max(ts) FROM events) AS n, (SELECT max(ingest_ts) FROM events_all) AS i"
        )[0]
        assert (fr["newest_ts"], fr["newest_ingest_ts"]) == (raw["n"], raw["i"])
        for col, values in ch.items():
            got = db.fetch(f"SELECT DISTINCT {col} AS v FROM events ORDER BY v")
            assert values == [r["v"] for r in got]
    finally:
        db.close()


# -- the histogram's error bound ---------------------------------------------------------------


@pytest.mark.parametrize("dist", ["lognormal", "pareto", "mixed_sign"])
def test_histogram_percentiles_are_within_one_percent_of_quantile_cont(dist):
    r = np.random.default_rng(7)
    if dist == "lognormal":
        values = np.round(r.lognormal(10, 1.5, 200_000)).astype(np.int64)
    elif dist == "pareto":
        values = np.round((r.pareto(1.2, 200_000) + 1) * 300).astype(np.int64)
    else:  # lag in µs: mostly positive, some negative (clock skew), some zero
        values = np.round(r.normal(5e6, 4e6, 200_000)).astype(np.int64)
        values[::97] = 0
    conn = duckdb.connect()
    rollups.prepare(conn)
    conn.register("vals", {"v": values})
    qs = {f"q{i}": x for i, x in enumerate([0.001, 0.01, 0.1, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999])}
    exact = conn.execute(
        "SELECT " + ", ".join(f"quantile_cont(v, {x}) AS {n}" for n, x in qs.items()) + " FROM vals"
    ).fetchone()
    rows = "SELECT o11y_hist_key(v) AS k, count(*) AS n FROM vals GROUP BY ALL"
    approx = conn.execute(planner.hist_percentiles_sql(rows, [], qs)).fetchone()
    for (name, x), e, a in zip(qs.items(), exact, approx, strict=True):
        if dist == "mixed_sign" and abs(e) < 1e5:
            continue  # interpolating across zero has no relative bound; far from it, it holds
        assert abs(a - e) <= 0.01 * abs(e), (dist, name, x, e, a)


# -- percentiles from monthly histograms ------------------------------------------------------


def _month_windows() -> list[q.Filters]:
    odd = datetime(2026, 8, 27, 5, 17, 3, tzinfo=UTC)
    sep, nov = datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    return [
        q.Filters(),
        q.Filters(odd, datetime(2026, 11, 2, 13, 11, tzinfo=UTC)),  # edges, days, months, days
        q.Filters(None, datetime(2026, 10, 15, 8, tzinfo=UTC)),
        q.Filters(datetime(2026, 9, 3, 2, tzinfo=UTC), None, agents=("did:cf:a", "unknown")),
        q.Filters(sep, nov, modes=("think",), errors_only=True),  # whole months only
        q.Filters(odd, None, event_types=("agent.wake",)),
        q.Filters(odd, odd + timedelta(days=20)),  # no whole month: days only
    ]


def _percentile_screens(db, f: q.Filters) -> dict[str, Any]:
    """The screens' answers that carry histogram percentiles (a DataFrame or q.Totals each)."""
    return {
        "summary": q.summary(db, f, extended=True),
        "totals": q.totals(db, f),
        "modes": q.mode_breakdown(db, f),
        "modes_by_agent": q.mode_breakdown(db, f, by_agent=True),
        "modes_top_agent": q.mode_breakdown(db, f, by_agent=True, top=1),
        "agents": q.agent_overview(db, f),
        "lag_days": q.ingest_lag_over_time(db, f, bucket_s=86400),
        "lag_weeks": q.ingest_lag_over_time(db, f, bucket_s=7 * 86400),
        # buckets long enough to hold some months whole and cut others
        "lag_40_days": q.ingest_lag_over_time(db, f, bucket_s=40 * 86400),
        "lag_100_days": q.ingest_lag_over_time(db, f, bucket_s=100 * 86400),
    }


def _percentiles(t: q.Totals) -> tuple[float | None, ...]:
    return (t.p50_ms, t.p95_ms, t.p99_ms)


def _pct_columns(df) -> list[str]:
    return [c for c in df.columns if c[:2] in ("p5", "p9") or c.startswith("lag_p")]


@pytest.mark.parametrize("i", range(len(_month_windows())))
def test_percentiles_from_months_days_and_edges_equal_those_from_days_and_edges(months_table, i):
    import pandas as pd

    f = _month_windows()[i]
    db = open_db(months_table.settings)
    try:
        assert db.rollups_ok and planner.approximate(db, f)
        with_months = _percentile_screens(db, f)
        db.hist_months = False
        days_only = _percentile_screens(db, f)
    finally:
        db.close()
    for name, a in with_months.items():  # the same buckets summed in another order: identical
        b = days_only[name]
        if isinstance(a, q.Totals):
            assert a == b, name
        else:
            assert not a.empty, name
            pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)


@pytest.mark.parametrize("i", range(len(_month_windows())))
def test_percentiles_from_monthly_histograms_are_within_one_percent_of_quantile_cont(
    months_table, i
):
    f = _month_windows()[i]
    db = open_db(months_table.settings)
    try:
        approx = _percentile_screens(db, f)
        db.rollups_ok = False  # the raw rows: quantile_cont
        exact = _percentile_screens(db, f)
    finally:
        db.close()
    for name, a in approx.items():
        b = exact[name]
        if isinstance(a, q.Totals):
            assert a.p95_approx == (a.cycles > 0)
            both = zip(_percentiles(a), _percentiles(b), strict=True)
            pairs = [(x, y) for x, y in both if y is not None]
        else:
            assert len(a) == len(b), name
            if "approx" in a and not name.startswith("lag_weeks"):
                assert a["approx"].all(), name
            pairs = [(x, y) for c in _pct_columns(a) for x, y in zip(a[c], b[c], strict=True)]
        assert pairs, name
        for x, y in pairs:
            if y is None or math.isnan(y):  # no duration in the group: none either way
                assert x is None or math.isnan(x), (name, x, y)
            else:
                assert abs(x - y) <= 0.01 * abs(y) + 1e-9, (name, x, y)


def test_whole_months_are_read_from_monthly_histograms_only_where_the_grouping_allows(
    months_table,
):
    db = open_db(months_table.settings)
    odd = datetime(2026, 8, 27, 5, 17, 3, tzinfo=UTC)
    f = q.Filters(odd, datetime(2026, 11, 2, 13, 11, tzinfo=UTC))

    def tables(bucket_s: int | None) -> set[str]:
        keys = (lambda t: f"o11y_bucket({t}, {bucket_s}) AS b") if bucket_s else (lambda _: "1")
        sql, _ = planner.hist_rows(db, f, metrics.LAG_HIST, keys, bucket_s=bucket_s)
        return {w for w in sql.replace("(", " ").split() if w.startswith("lag_hist")}

    try:
        assert tables(None) == {"lag_hist", "lag_hist_month"}  # no time grouping
        assert tables(86400) == tables(7 * 86400) == {"lag_hist"}  # a bucket within a month
        assert tables(100 * 86400) == {"lag_hist", "lag_hist_month"}  # months a bucket holds
        db.hist_months = False
        assert tables(None) == {"lag_hist"}
    finally:
        db.close()


def test_unfiltered_ingest_lag_reads_the_network_histogram_and_equals_the_keyed_one(
    months_table, monkeypatch
):
    import pandas as pd

    db = open_db(months_table.settings)
    odd = datetime(2026, 8, 27, 5, 17, 3, tzinfo=UTC)
    whole = q.Filters(odd, datetime(2026, 11, 2, 13, 11, tzinfo=UTC))
    one_agent = q.Filters(whole.start, whole.end, agents=("did:cf:a",))
    read: list[str] = []
    query = db.query
    monkeypatch.setattr(db, "query", lambda sql, p=None: read.append(sql) or query(sql, p))

    def lag(f: q.Filters, b: int):
        read.clear()
        df = q.ingest_lag_over_time(db, f, bucket_s=b)
        tables = {w for w in " ".join(read).replace("(", " ").split() if w.startswith("lag_hist")}
        return df, tables

    try:
        for b in (86400, 7 * 86400):
            net, tables = lag(whole, b)
            assert tables == {"lag_hist_net"} and not net.empty and net["approx"].all()
            assert lag(one_agent, b)[1] == {"lag_hist"}  # a filter needs the keyed histogram
            monkeypatch.setattr(metrics, "LAG_HIST_NET", metrics.LAG_HIST)
            keyed, tables = lag(whole, b)
            monkeypatch.undo()
            monkeypatch.setattr(db, "query", lambda sql, p=None: read.append(sql) or query(sql, p))
            assert tables == {"lag_hist"}
            pd.testing.assert_frame_equal(net, keyed, check_exact=True)
    finally:
        db.close()


@pytest.mark.parametrize("limit", [1, 50, 700, 3000, 20_000, 10**9])
@pytest.mark.parametrize("w", range(4))
def test_the_newest_hours_searched_backwards_in_spans_equal_a_count_of_the_events(
    months_table, limit, w
):
    """The hour from which on a window holds ``limit`` rows, found from the hourly rollup in
    growing spans (1, 8, 64 days) back from the newest hour, against counting the events in
    Python: spans of one day, several, the whole window, and more rows than there are."""
    odd = datetime(2026, 8, 27, 5, 17, 3, tzinfo=UTC)
    f = [
        q.Filters(),
        q.Filters(odd, datetime(2026, 10, 2, 13, 11, tzinfo=UTC)),
        q.Filters(None, None, agents=("did:cf:a",)),
        q.Filters(odd, None, errors_only=True),
    ][w]
    lo = planner.ceil(f.start, 3600) if f.start else None
    hi = planner.floor(f.end, 3600) if f.end else None
    per_hour: dict[datetime, int] = defaultdict(int)
    for e in months_table.events():
        if e["event_type"] != "agent.cycle" or e["ts"] is None:
            continue
        if f.agents and e["agent"] not in f.agents or f.errors_only and not (e["errors"] or 0):
            continue
        hour = e["ts"].replace(minute=0, second=0, microsecond=0)
        if (lo is None or hour >= lo) and (hi is None or hour < hi):
            per_hour[hour] += 1
    expected, total = None, 0
    for hour in sorted(per_hour, reverse=True):
        total += per_hour[hour]
        if total >= limit:
            expected = hour
            break
    db = open_db(months_table.settings)
    try:
        assert db.rollups_ok
        assert q._newest_hours(db, f, cycles=True, limit=limit) == expected
    finally:
        db.close()
