"""Every query the app runs is bounded in time, and its failures say what they are: a timeout or a
failure of the data is a domain error with DuckDB's error chained; a wrong query of ours is a bug
(QueryBug, logged), never dressed as "Query failed"."""

from __future__ import annotations

import logging
from datetime import timedelta

import duckdb
import pytest

from o11y_data import load_settings, open_db
from o11y_data.errors import O11yError, QueryBug, QueryTimeout
from o11y_data.query import queries as q
from o11y_data.query.db import EventsDB, naming

# A cross join of 4·10^10 rows: minutes of work, so only an interrupt ends it early.
SLOW = "SELECT sum(a.range * b.range) AS s FROM range(200000) a, range(200000) b"


def test_a_slow_query_is_interrupted_at_its_deadline_and_the_error_names_it(demo_store):
    db = EventsDB(demo_store.settings.store_dir, query_timeout_s=0.3)
    try:
        with pytest.raises(QueryTimeout) as info, naming("the slow question"):
            db.fetch(SLOW)
        assert isinstance(info.value.__cause__, duckdb.InterruptException)
        assert info.value.title == "Query timed out after 0.3 s"
        assert "the slow question" in info.value.detail
        # The connection answers the next question (under a limit a loaded machine meets).
        db.query_timeout_s = 60.0
        assert q.totals(db).cycles > 0
    finally:
        db.close()


def test_the_query_timeout_comes_from_the_configuration(demo_store):
    env = {"O11Y_SOURCE_DIR": str(demo_store.src), "O11Y_CACHE_DIR": str(demo_store.cache)}
    settings = load_settings({**env, "O11Y_QUERY_TIMEOUT": "0.25"}, secrets_paths=[])
    assert settings.query_timeout_s == 0.25
    assert load_settings(env, secrets_paths=[]).query_timeout_s == 30.0
    for bad in ("soon", "0", "-3", "nan"):
        with pytest.raises(O11yError, match="Bad O11Y_QUERY_TIMEOUT"):
            load_settings({**env, "O11Y_QUERY_TIMEOUT": bad}, secrets_paths=[])
    db = open_db(settings)
    try:
        assert db.query_timeout_s == 0.25
        with pytest.raises(QueryTimeout):
            db.fetch(SLOW)
    finally:
        db.close()


def test_a_wrong_query_of_ours_is_a_bug_logged_with_its_cause_not_a_user_error(demo_store, caplog):
    db = EventsDB(demo_store.settings.store_dir)
    try:
        with (
            caplog.at_level(logging.ERROR, logger="o11y_data.query.db"),
            pytest.raises(QueryBug) as info,
            naming("totals"),
        ):
            db.fetch("SELECT no_such_column FROM cycles")
        assert not isinstance(info.value, O11yError)
        assert isinstance(info.value.__cause__, duckdb.BinderException)
        assert str(info.value).startswith("totals: ")
        logged = [r for r in caplog.records if r.exc_info]
        assert logged and isinstance(logged[0].exc_info[1], duckdb.BinderException)
    finally:
        db.close()


def test_a_failure_of_the_data_is_a_domain_error_with_its_cause_chained(demo_store):
    db = EventsDB(demo_store.settings.store_dir)
    try:
        with pytest.raises(O11yError) as info, naming("events_table"):
            db.fetch("SELECT CAST(raw AS INTEGER) AS n FROM events")
        assert info.value.title == "Query failed"
        assert info.value.detail.startswith("events_table: ")
        assert isinstance(info.value.__cause__, duckdb.ConversionException)
    finally:
        db.close()


def test_measure_answers_what_alerts_measure_as_the_raw_rows_do(demo_store):
    """planner.measure against the alert SQL spelled here over the raw rows (an independent
    oracle), per key, windows short and long, aligned and not, rollups on."""
    from o11y_data.query import planner

    oracle = {
        "cycles": ("cycles", "count(*)", "true"),
        "error_rate": ("cycles", "count(*) FILTER (WHERE errors > 0) / count(*)", "true"),
        "p95_duration": ("cycles", "quantile_cont(duration_ms, 0.95)", "true"),
        "events_per_hour": ("events", "count(*) * 3600.0 / ?", "true"),
        "ingest_lag": (
            "events",
            "quantile_cont(epoch(ingest_ts) - epoch(ts), 0.95)",
            "ingest_ts IS NOT NULL",
        ),
    }
    db = open_db(demo_store.settings)
    try:
        assert db.rollups_ok
        hour = demo_store.now.replace(minute=0, second=0, microsecond=0)
        windows = [
            (demo_store.now - timedelta(minutes=15), demo_store.now),
            (hour - timedelta(hours=5), hour),
            (demo_store.now - timedelta(hours=30, minutes=7), demo_store.now),
        ]
        for metric, (view, expr, extra) in oracle.items():
            for by in (None, "agent", "mode"):
                for lo, hi in windows:
                    got = planner.measure(db, metric=metric, window=(lo, hi), by=by)
                    key = by or "CAST(NULL AS VARCHAR)"
                    vp = [(hi - lo).total_seconds()] if "?" in expr else []
                    rows = db.fetch(
                        f"SELECT {key} AS key, {expr} AS value, count(*) AS n FROM {view} "
                        f"WHERE ts >= ? AND ts < ? AND {extra} GROUP BY ALL ORDER BY key",
                        [*vp, lo, hi],
                    )
                    assert rows, (metric, by, lo)
                    want = {r["key"]: (r["value"], r["n"]) for r in rows}
                    have = {m.key: (m.value, m.n) for m in got}
                    assert have.keys() == want.keys(), (metric, by)
                    for k, (v, n) in want.items():
                        assert have[k][1] == n, (metric, by, k)
                        if v is None:
                            assert have[k][0] is None
                        else:
                            assert have[k][0] == pytest.approx(float(v), rel=1e-12), (metric, k)
    finally:
        db.close()
