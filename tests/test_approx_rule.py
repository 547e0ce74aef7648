"""One "≈" rule: a percentile is approximate when the window cut to the data's own range spans
more than 7 days, so "Last 30 days" and "All time" over the same data are marked alike (issue 20:
the overview marked p95 "≈" at 30 days but not at "All time" over 5 days of data)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from streamlit.testing.v1 import AppTest

from o11y_data import EventsDB, load_settings
from o11y_data.query import planner
from o11y_data.query.queries import Filters
from tests.support.apptest import app_under_test
from tests.test_app_pages import APP
from tests.test_approx_marks import cycles_dataset


@pytest.fixture(scope="module")
def short_env(tmp_path_factory: pytest.TempPathFactory):
    env = cycles_dataset(tmp_path_factory.mktemp("approx_short"), days=5)
    with app_under_test(env):
        yield env


def test_thirty_days_and_all_time_over_five_days_of_data_are_both_exact(short_env):
    db = EventsDB(load_settings(short_env, secrets_paths=[]).store_dir)
    try:
        now = datetime.now(UTC)
        assert db.rollups_ok
        windows = [Filters(), Filters(now - timedelta(days=30), now), Filters(None, now)]
        assert [planner.approximate(db, f) for f in windows] == [False, False, False]
    finally:
        db.close()


@pytest.mark.parametrize("rng", ["30d", "all"])
def test_overview_marks_no_percentile_approximate_over_five_days_whatever_the_range(short_env, rng):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["range"] = rng
    at.switch_page("pages/overview.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["p95 duration"] and not tiles["p95 duration"].startswith("≈")
    assert not [c for d in at.dataframe for c in d.value.columns if "≈" in str(c)]
    assert not [c.value for c in at.caption if "≈" in c.value]
