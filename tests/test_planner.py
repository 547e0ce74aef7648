"""The planner's rollup plan answers exactly as its raw plan.

The oracle is the planner's own raw plan (``quantile_cont`` and counts over the raw rows) against
its rollup plan, over random windows, filters and groupings (hypothesis). The screens' answers
were compared with the queries the planner replaced (both of their paths, 36 questions over 10-11
windows on the demo and two rollup fixtures, rollups on and off) before those were deleted: see
the history of tests/support/legacy_queries.py.
"""

from __future__ import annotations

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
from tests.support.properties import examples

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
    max_examples=examples(120),
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
