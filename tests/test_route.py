"""Routing by what a question needs: inside, across and before the raw horizon, with and without
an engine (the R2 SQL fake); the horizon's one-line refusal; the cache on (question, snapshot);
an exact percentile the engine refuses falls back to the local histograms marked "≈"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from o11y_data import open_db
from o11y_data.config import Secret
from o11y_data.errors import O11yError
from o11y_data.query import planner
from o11y_data.query.engines.base import Aggregate, NewestRows, TableState
from o11y_data.query.engines.r2sql import Client, R2SQLEngine
from o11y_data.query.planner import Filters
from o11y_data.query.route import BeforeHorizon, Router, console_notice, horizon_line
from tests.support import r2sql_fake as fake_mod
from tests.support.engine_tables import (
    START,
    folder_rows,
    history,
    set_raw_from,
    synced_settings,
    write_folder,
)

RAW_FROM = START + timedelta(days=8)  # the store's raw rows start here; rollups cover all


@pytest.fixture(scope="module")
def horizon_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("route")
    src = root / "src"
    write_folder(src, history())
    settings = synced_settings(src, root)
    set_raw_from(settings.store_dir, RAW_FROM)
    return settings, src


@pytest.fixture
def served(horizon_store):
    _, src = horizon_store
    table = folder_rows(src)
    f = fake_mod.FakeR2SQL(rows=lambda: table)
    server, thread = fake_mod.serve(f)
    yield f
    fake_mod.stop(f, server, thread)


class Snapshots:
    """The table's snapshot id as the catalog would name it (a test moves it on)."""

    def __init__(self) -> None:
        self.id = 100

    def __call__(self) -> TableState:
        return TableState(self.id)


def r2(f: fake_mod.FakeR2SQL, snaps: Snapshots | None = None) -> R2SQLEngine:
    client = Client(f.endpoint, f.account, f.bucket, Secret(f.token))
    return R2SQLEngine(client, "agent_network.events", snaps or Snapshots())


def test_the_store_reports_the_horizon_the_head_records(horizon_store):
    settings, _ = horizon_store
    assert open_db(settings).raw_from() == RAW_FROM


def test_questions_inside_the_horizon_stay_local(horizon_store, served):
    settings, _ = horizon_store
    router = Router(open_db(settings), r2(served))
    inside = Filters(RAW_FROM + timedelta(hours=3), RAW_FROM + timedelta(days=2))
    for q in (
        NewestRows(inside, limit=5),
        Aggregate(("cycles", "p95_ms"), inside),  # an exact percentile of raw rows we hold
        Aggregate(("cycles", "errors"), inside, group="agent"),
    ):
        a = router.ask(q)
        assert a.engine == "local store" and a.caption().startswith("from local store in ")
    assert served.requests == []


def test_counts_over_an_old_window_of_whole_hours_stay_local(horizon_store, served):
    settings, _ = horizon_store
    router = Router(open_db(settings), r2(served))
    old = Filters(START, START + timedelta(days=10))  # from the rollups, edges whole hours
    a = router.ask(Aggregate(("cycles", "errors", "error_rate"), old, group="mode"))
    assert a.engine == "local store" and served.requests == []


def test_newest_rows_across_the_horizon_are_local_when_the_horizon_holds_them(
    horizon_store, served
):
    settings, _ = horizon_store
    router = Router(open_db(settings), r2(served))
    across = Filters(START, START + timedelta(days=12))
    few = router.ask(NewestRows(across, limit=4))
    assert few.engine == "local store" and served.requests == []
    many = router.ask(NewestRows(across, limit=40))  # more than the horizon's rows
    assert many.engine == "R2 SQL" and len(many.frame) >= 40
    assert min(many.frame["ts"]).to_pydatetime() < RAW_FROM


def test_raw_questions_before_the_horizon_go_to_the_engine_window_pushed_down(
    horizon_store, served
):
    settings, _ = horizon_store
    router = Router(open_db(settings), r2(served))
    old = Filters(START + timedelta(days=1), START + timedelta(days=3))
    rows = router.ask(NewestRows(old, limit=100, search="beta"))
    assert rows.engine == "R2 SQL" and rows.snapshot_id == 100
    assert rows.caption().startswith("from R2 SQL in ") and "snapshot 100" in rows.caption()
    assert all(old.start <= t.to_pydatetime() < old.end for t in rows.frame["ts"])
    # the window reached the engine as a partition bound on __ingest_ts
    assert all("__ingest_ts >= '2026-10-01T23:50:00" in r["query"] for r in served.requests)
    pct = router.ask(Aggregate(("p95_ms",), old))  # an exact old percentile
    assert pct.engine == "R2 SQL" and pct.exact


def test_engine_answers_are_cached_until_the_snapshot_moves(horizon_store, served):
    settings, _ = horizon_store
    snaps = Snapshots()
    router = Router(open_db(settings), r2(served, snaps))
    q = Aggregate(("p50_ms", "cycles"), Filters(START, START + timedelta(days=2)))
    first = router.ask(q)
    asked = len(served.requests)
    again = router.ask(q)
    assert again.cached and len(served.requests) == asked and "(cached)" in again.caption()
    assert again.frame.equals(first.frame)
    snaps.id = 101
    moved = router.ask(q)
    assert not moved.cached and len(served.requests) > asked and moved.snapshot_id == 101


def test_without_an_engine_an_old_raw_question_is_refused_in_one_line(horizon_store):
    settings, _ = horizon_store
    router = Router(open_db(settings), None)
    old = Filters(START, START + timedelta(days=2))
    for q in (NewestRows(old, limit=10), Aggregate(("p95_ms",), old)):
        with pytest.raises(BeforeHorizon) as exc:
            router.ask(q)
        line = exc.value.one_line()
        assert "horizon" in line and "docs/scaling.md" in line and "\n" not in line
    # counts over whole hours still answer from the rollups
    assert router.ask(Aggregate(("cycles",), old)).engine == "local store"


def test_the_horizon_line_names_the_real_horizon():
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    line = horizon_line(now - timedelta(days=90), now=now)
    assert line.startswith("before the 90-day horizon (2026-09-04 12:00 UTC): configure an engine")
    assert line.endswith("see docs/scaling.md")


def test_a_refused_exact_percentile_falls_back_to_histograms_marked_approximate(
    horizon_store, served
):
    settings, _ = horizon_store
    db = open_db(settings)
    served.refuse_percentiles = True
    router = Router(db, r2(served))
    whole_days = Filters(START + timedelta(days=1), START + timedelta(days=4))
    a = router.ask(Aggregate(("p95_ms", "cycles"), whole_days, group="agent"))
    assert not a.exact and a.caption().startswith("≈ from local store")
    assert "refused the exact percentile" in a.caption()
    p = planner.plan(
        db, [planner.M.P95_MS, planner.M.CYCLES], whole_days, keys=[planner.AGENT], force="rollups"
    )
    assert p.approx
    expected = db.query(p.sql, p.params)
    assert (
        a.frame.sort_values("agent")
        .reset_index(drop=True)
        .equals(expected.sort_values("agent").reset_index(drop=True))
    )
    # a window whose partial day lies before the horizon: no histogram covers it; said so
    partial = Filters(START + timedelta(days=1, hours=5), START + timedelta(days=2, hours=1))
    with pytest.raises(O11yError, match="no local histogram covers this window") as exc:
        router.ask(Aggregate(("p95_ms",), partial))
    assert "\n" not in exc.value.one_line()


def test_the_sql_console_says_what_events_holds_past_a_horizon(horizon_store, tmp_path):
    settings, _ = horizon_store
    db = open_db(settings)
    note = console_notice(db, "SELECT count(*) FROM events WHERE agent = 'x'")
    assert note is not None and "since 2026-10-09 00:00 UTC" in note and "\n" not in note
    assert console_notice(db, "SELECT sum(events) FROM daily") is None


def test_the_reference_summary_is_routed_and_says_where_it_came_from(horizon_store, served):
    from o11y_data.query import queries, route

    settings, _ = horizon_store
    db = open_db(settings)
    whole_hours = Filters(START, START + timedelta(days=10))
    rows, where = route.summary(db, settings, whole_hours)
    assert where.startswith("from local store in ")
    assert not route.summary_needs_engine(db, whole_hours)
    assert rows == queries.summary_rows(db, whole_hours)
    ragged = Filters(START + timedelta(minutes=30), START + timedelta(days=10))
    assert route.summary_needs_engine(db, ragged)
    with pytest.raises(BeforeHorizon, match="horizon"):
        route.summary(db, settings, ragged)  # no engine configured: one line, not a short count
    from dataclasses import replace

    with_engine = replace(
        settings,
        engine="r2sql",
        account_id=served.account,
        bucket=served.bucket,
        r2_sql_token=Secret(served.token),
        r2_sql_endpoint=served.endpoint,
    )
    rows, where = route.summary(db, with_engine, ragged)
    assert where.startswith("from R2 SQL in ") and rows
    assert all(isinstance(r["cycles"], int) for r in rows)
    assert rows == sorted(rows, key=lambda r: (r["agent"], -r["cycles"], r["mode"]))


def test_the_explorer_shows_older_events_from_the_engine_and_says_so(horizon_store, served):
    from streamlit.testing.v1 import AppTest

    from tests.support.apptest import app_under_test

    settings, src = horizon_store
    env = {
        "O11Y_SOURCE_DIR": str(src),
        "O11Y_CACHE_DIR": str(settings.cache_dir),
        "O11Y_BACKGROUND_SYNC": "0",
        "O11Y_AGENTS_FILE": str(src / "none.toml"),
        "O11Y_ENGINE": "r2sql",
        "O11Y_R2_ACCOUNT_ID": served.account,
        "O11Y_R2_ACCESS_KEY_ID": "unused",
        "O11Y_R2_SECRET_ACCESS_KEY": "unused",
        "O11Y_BUCKET": served.bucket,
        "O11Y_R2_SQL_TOKEN": served.token,
        "O11Y_R2_SQL_ENDPOINT": served.endpoint,
    }
    app = str(Path(__file__).resolve().parents[1] / "app.py")
    with app_under_test(env):
        at = AppTest.from_file(app, default_timeout=60)
        at.query_params["range"] = "custom"
        at.query_params["start"] = "2026-10-01T00:00:00Z"
        at.query_params["end"] = "2026-10-04T00:00:00Z"
        at.switch_page("pages/explorer.py")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        captions = " ".join(c.value for c in at.caption)
        assert "from R2 SQL in" in captions and "since 2026-10-09 00:00 UTC" in captions
        shown = at.dataframe[0].value
        assert len(shown) > 0 and served.requests


def test_the_sql_console_page_says_what_events_holds(horizon_store):
    from streamlit.testing.v1 import AppTest

    from tests.support.apptest import app_under_test

    settings, src = horizon_store
    env = {
        "O11Y_SOURCE_DIR": str(src),
        "O11Y_CACHE_DIR": str(settings.cache_dir),
        "O11Y_BACKGROUND_SYNC": "0",
        "O11Y_AGENTS_FILE": str(src / "none.toml"),
    }
    app = str(Path(__file__).resolve().parents[1] / "app.py")
    with app_under_test(env):
        at = AppTest.from_file(app, default_timeout=60)
        at.query_params["q"] = "SELECT count(*) AS n FROM events"
        at.switch_page("pages/sql.py")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        shown = [i.value.replace("\\", "") for i in at.info]  # markdown escapes removed
        assert any("since 2026-10-09 00:00 UTC (the raw horizon)" in i for i in shown), shown
