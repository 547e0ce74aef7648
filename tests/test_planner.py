"""The planner answers every screen's question exactly as the queries it replaced, and its rollup
plan answers exactly as its raw plan.

Two oracles: tests/support/legacy_queries.py (queries.py as it was, raw and rollup paths spelled
apart) on the demo store and the rollup fixtures, many windows and filters, rollups on and off;
and the planner's own raw plan (``quantile_cont`` and counts over the raw rows) against its rollup
plan over random windows, filters and groupings (hypothesis).
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from o11y_data import open_db
from o11y_data.ingest import rollups
from o11y_data.query import metrics as M
from o11y_data.query import planner
from o11y_data.query import queries as q
from tests.support import legacy_queries as L

# -- today's answers against the queries they replaced -----------------------------------------


def _screens(mod: Any, db: Any, f: Any) -> dict[str, Any]:
    """Every screen function of ``mod`` (queries or legacy_queries) over ``f``."""
    return {
        "summary": lambda: mod.summary(db, f),
        "summary_ext": lambda: mod.summary(db, f, extended=True),
        "summary_rows": lambda: mod.summary_rows(db, f),
        "totals": lambda: mod.totals(db, f),
        "time_range": lambda: mod.time_range(db, f),
        "cot_mode_h": lambda: mod.cycles_over_time(db, f, by="mode", bucket_s=3600),
        "cot_agent_d": lambda: mod.cycles_over_time(db, f, by="agent", bucket_s=86400),
        "cot_none": lambda: mod.cycles_over_time(db, f, by=None),
        "cot_none_5m": lambda: mod.cycles_over_time(db, f, by=None, bucket_s=300),
        "cot_top2": lambda: mod.cycles_over_time(db, f, by="agent", top=2),
        "cot_top1_err": lambda: mod.cycles_over_time(db, f, by="agent", top=1, rank_by="errors"),
        "ert_top2": lambda: mod.error_rate_over_time(db, f, by="agent", top=2, bucket_s=86400),
        "ert_none": lambda: mod.error_rate_over_time(db, f, bucket_s=3600),
        "ert_mode": lambda: mod.error_rate_over_time(db, f, by="mode", bucket_s=600),
        "per_hour": lambda: mod.events_per_hour(db, f),
        "types": lambda: mod.event_type_counts(db, f),
        "top_errors": lambda: mod.top_error_agents(db, f),
        "count": lambda: mod.count_events(db, f),
        "last_seen": lambda: mod.agent_last_seen(db, f),
        "modes": lambda: mod.mode_breakdown(db, f),
        "modes_agent": lambda: mod.mode_breakdown(db, f, by_agent=True),
        "modes_top2": lambda: mod.mode_breakdown(db, f, by_agent=True, top=2),
        "modes_top1_err": lambda: mod.mode_breakdown(db, f, by_agent=True, top=1, rank_by="errors"),
        "agents": lambda: mod.agent_overview(db, f),
        "lag_d": lambda: mod.ingest_lag_over_time(db, f, bucket_s=86400),
        "lag_h": lambda: mod.ingest_lag_over_time(db, f, bucket_s=3600),
        "lag_w": lambda: mod.ingest_lag_over_time(db, f, bucket_s=7 * 86400),
        "lag_auto": lambda: mod.ingest_lag_over_time(db, f),
        "points": lambda: mod.cycle_points(db, f, limit=50),
        "recent_errors": lambda: mod.recent_errors(db, f, limit=10),
        "events": lambda: mod.events_table(db, f, limit=30),
        "events_search": lambda: mod.events_table(db, f, search="did:cf:b", limit=30),
        "count_search": lambda: mod.count_events(db, f, search="think"),
    }


def _same(name: str, new: Any, old: Any) -> None:
    if isinstance(old, pd.DataFrame):
        new = new.reset_index(drop=True)
        old = old.reset_index(drop=True)
        if "approx" in new.columns and "approx" not in old.columns:
            # the old raw path of the mode breakdowns had no approx column: it was always exact
            assert not new["approx"].any(), name
            new = new.drop(columns=["approx"])
        assert list(new.columns) == list(old.columns), name
        pd.testing.assert_frame_equal(
            new, old, check_dtype=False, check_exact=False, rtol=1e-12, obj=name
        )
    elif isinstance(old, dict):
        assert list(new) == list(old), name
        for k, v in old.items():
            got = new[k]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                assert got is None or (isinstance(got, float) and math.isnan(got)), (name, k)
            elif isinstance(v, float):
                assert got == pytest.approx(v, rel=1e-12), (name, k, got, v)
            else:
                assert got == v, (name, k, got, v)
    elif isinstance(old, list):
        assert len(new) == len(old), name
        for a, b in zip(new, old, strict=True):
            _same(name, a, b)
    else:
        assert new == old, (name, new, old)


def _compare_all(db: Any, f: q.Filters) -> None:
    old_f = L.Filters(**dataclasses.asdict(f))
    old, new = _screens(L, db, old_f), _screens(q, db, f)
    for name in old:
        db._memo = {}
        expected = old[name]()
        db._memo = {}
        _same(name, new[name](), expected)


def _demo_windows(now: datetime) -> list[q.Filters]:
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    odd = now - timedelta(days=3, hours=5, minutes=17, seconds=3)
    day = datetime(now.year, now.month, now.day, tzinfo=UTC)
    return [
        q.Filters(),
        q.Filters(end - timedelta(minutes=15), end),
        q.Filters(end - timedelta(hours=1), end),
        q.Filters(end - timedelta(hours=24), end),
        q.Filters(end - timedelta(days=7), end),
        q.Filters(end - timedelta(days=8), end),  # approximate percentiles
        q.Filters(end - timedelta(days=30), end),
        q.Filters(odd, odd + timedelta(hours=30, minutes=11), agents=("did:plc:demo-03",)),
        q.Filters(day - timedelta(days=9), day, modes=("think", "reflection")),
        q.Filters(odd, None, errors_only=True),
        q.Filters(None, odd, event_types=("agent.wake", "agent.cycle")),
    ]


@pytest.mark.slow  # 36 screens x 10 windows against the replaced queries: make test
@pytest.mark.parametrize("rollups_ok", [True, False], ids=["rollups", "raw"])
def test_every_screen_answers_as_the_replaced_queries_on_the_demo(demo_store, rollups_ok):
    db = open_db(demo_store.settings)
    try:
        assert db.rollups_ok
        agents = q.choices(db)["agent"]
        db.rollups_ok = rollups_ok
        for f in _demo_windows(demo_store.now):
            if f.agents:  # a real agent of the demo, whatever its name
                f = dataclasses.replace(f, agents=(agents[0], agents[-1]))
            _compare_all(db, f)
    finally:
        db.close()


def _table_windows(base: datetime) -> list[q.Filters]:
    odd = base + timedelta(days=3, hours=5, minutes=17, seconds=3)
    day = datetime(base.year, base.month, base.day, tzinfo=UTC)
    return [
        q.Filters(),
        q.Filters(odd, odd + timedelta(hours=30, minutes=11)),
        q.Filters(odd, odd + timedelta(days=5)),
        q.Filters(day + timedelta(days=4), day + timedelta(days=6)),  # whole days
        q.Filters(odd, odd + timedelta(minutes=40)),  # under an hour
        q.Filters(odd, None, agents=("did:cf:a",)),
        q.Filters(None, odd + timedelta(days=9), modes=("think", "reflection")),
        q.Filters(odd, odd + timedelta(days=12), errors_only=True),
        q.Filters(odd, odd + timedelta(days=2), event_types=("agent.wake",)),
        q.Filters(
            odd - timedelta(days=1), odd + timedelta(days=60), agents=("did:cf:a", "unknown")
        ),
    ]


@pytest.mark.slow  # 36 screens x 11 windows x 2 tables: make test
@pytest.mark.parametrize("rollups_ok", [True, False], ids=["rollups", "raw"])
@pytest.mark.parametrize("table", ["long_table", "months_table"])
def test_every_screen_answers_as_the_replaced_queries_on_the_rollup_tables(
    request, table, rollups_ok
):
    t = request.getfixturevalue(table)
    db = open_db(t.settings)
    try:
        assert db.rollups_ok
        db.rollups_ok = rollups_ok
        first = min(e["ts"] for e in t.events())
        for f in _table_windows(first):
            _compare_all(db, f)
    finally:
        db.close()


# -- the rollup plan equals the raw plan (hypothesis) -----------------------------------------

_EXACT_CYCLE_METRICS = [
    m for m in M.CATALOG.values() if isinstance(m, M.Metric) and m.name != "events"
]
_ROWS = {
    "cycles": (planner.CYCLE_ROWS, _EXACT_CYCLE_METRICS),
    "events": (
        planner.EVENT_ROWS,
        [M.EVENTS, M.ERRORS, M.TOOLS, M.AVG_MS, M.FIRST_TS, M.LAST_TS, M.LAG_AVG_S],
    ),
    "lagged": (planner.LAGGED_ROWS, [M.LAGGED, M.LAG_AVG_S, M.FIRST_TS, M.LAST_TS]),
}
_T0 = datetime(2026, 8, 25, tzinfo=UTC)  # months_table's first day
_SPAN_S = 72 * 86400


@st.composite
def _windows(draw: st.DrawFn) -> q.Filters:
    """A window aligned to a month, a day, an hour or nothing, of any length (or open), with
    random filters."""

    def instant() -> datetime | None:
        if draw(st.integers(0, 9)) == 0:
            return None
        t = _T0 + timedelta(seconds=draw(st.integers(-86400, _SPAN_S)))
        align = draw(st.sampled_from(["month", "day", "hour", "none"]))
        if align == "month":
            return datetime(t.year, t.month, 1, tzinfo=UTC)
        if align == "day":
            return planner.floor(t, 86400)
        if align == "hour":
            return planner.floor(t, 3600)
        return t + timedelta(microseconds=draw(st.integers(0, 999_999)))

    a, b = instant(), instant()
    if a is not None and b is not None and b < a:
        a, b = b, a
    agents = draw(st.sets(st.sampled_from(["did:cf:a", "did:cf:b", "did:cf:c", "unknown"])))
    modes = draw(st.sets(st.sampled_from(["think", "reflection", "housekeeping"]), max_size=2))
    types = draw(st.sets(st.sampled_from(["agent.cycle", "agent.wake"]), max_size=1))
    return q.Filters(
        a, b, tuple(sorted(agents)), tuple(sorted(modes)), tuple(sorted(types)), draw(st.booleans())
    )


_GROUPINGS = {
    "none": ([], None),
    "agent": ([planner.AGENT], None),
    "mode": ([planner.MODE], None),
    "event_type": ([planner.EVENT_TYPE], None),
    "hour": ([planner.bucket(3600)], None),
    "6h+mode": ([planner.bucket(6 * 3600), planner.MODE], None),
    "day": ([planner.bucket(86400)], None),
    "week": ([planner.bucket(7 * 86400)], None),
    "40 days": ([planner.bucket(40 * 86400)], None),
    "top2 by cycles": ([], planner.TopAgents(2, "cycles")),
    "top1 by errors, day": ([planner.bucket(86400)], planner.TopAgents(1, "errors")),
    "every agent, mode": ([planner.MODE], planner.TopAgents(None, "cycles")),
}


def _rows(db: Any, p: planner.Plan, keys: list[str]) -> pd.DataFrame:
    df = db.query(p.sql, p.params)
    return df.sort_values(keys, na_position="first").reset_index(drop=True) if keys else df


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    f=_windows(),
    grouping=st.sampled_from(sorted(_GROUPINGS)),
    which=st.sampled_from(sorted(_ROWS)),
)
def test_the_rollup_plan_answers_as_the_raw_plan(months_table_db, f, grouping, which):
    db = months_table_db
    keys, top = _GROUPINGS[grouping]
    rows, measures = _ROWS[which if top is None else "cycles"]
    measures = list(measures)
    # percentiles from histograms where the histogram keeps the grouping and a whole day exists
    hist_ok = rows == planner.CYCLE_ROWS and all(k.in_hist(M.DURATION_HIST) for k in keys)
    d0 = planner.ceil(f.start, 86400) if f.start else None
    d1 = planner.floor(f.end, 86400) if f.end else None
    if hist_ok and (d0 is None or d1 is None or d0 < d1):
        measures += list(M.DURATION_PERCENTILES)
    names = [*(["kind", "key"] if top else []), *(k.name for k in keys)]
    raw = planner.plan(db, measures, f, keys=keys, top=top, rows=rows, force="raw")
    rolled = planner.plan(db, measures, f, keys=keys, top=top, rows=rows, force="rollups")
    assert (raw.source, rolled.source) == ("raw", "rollups")
    a, b = _rows(db, rolled, names), _rows(db, raw, names)
    assert list(a.columns) == list(b.columns)
    pct = [m.name for m in measures if isinstance(m, M.Percentile)]
    pd.testing.assert_frame_equal(
        a.drop(columns=pct), b.drop(columns=pct), check_dtype=False, check_exact=False, rtol=1e-12
    )
    for c in pct:  # each order statistic within its bucket's error: durations are >= 0
        for x, y in zip(a[c], b[c], strict=True):
            if pd.isna(y):
                assert pd.isna(x), (c, x, y)
            else:
                assert abs(x - y) <= rollups.ALPHA * abs(y) + 1e-9, (c, x, y)


@pytest.fixture(scope="module")
def months_table_db(months_table):
    db = open_db(months_table.settings)
    assert db.rollups_ok
    yield db
    db.close()
