"""Values outside the contract never break a number (issue 18, point 1).

A store holding events at the extremes of their types (``_ts`` "infinity", year 294247 and 9999,
int64 durations, NaN and infinite doubles, timestamp[us] and [ns] columns at int64's ends), in
both the unstructured (JSON ``value``) and the structured shape, synced by the real sync: every
event is kept, each value outside docs/events.md's ranges is NULL and counted by field, and every
query, CLI command and page answers. Expected values are written by hand in
tests/support/hostile.py (and by a plain-Python reading of the contract for the property test).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from o11y_data import EventsDB, load_settings, sync
from o11y_data.ingest import ranges
from o11y_data.query import queries as q
from o11y_data.query.queries import Filters
from tests.support.apptest import app_under_test
from tests.support.cli import cli
from tests.support.hostile import AGENT, write_hostile_source
from tests.support.properties import examples

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
PAGES = ["overview", "timeline", "modes", "errors", "health", "explorer", "summary", "sql",
         "alerts", "wall"]  # fmt: skip
TOLERANCE = timedelta(minutes=10)  # docs/events.md's future tolerance, read independently
MAX_MS, MAX_COUNT = 86_400_000, 1_000_000
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def _env(root: Path) -> dict[str, str]:
    return {
        "O11Y_SOURCE_DIR": str(root / "src"),
        "O11Y_CACHE_DIR": str(root / "cache"),
        "O11Y_BACKGROUND_SYNC": "0",
        "O11Y_AGENTS_FILE": str(root / "no-agents.toml"),
        "O11Y_ALERTS_FILE": str(root / "no-alerts.toml"),
    }


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("hostile")
    data = write_hostile_source(root / "src", datetime.now(UTC))
    env = _env(root)
    report = sync(load_settings(env, secrets_paths=[]))
    assert not report.bad_files, report.bad_files  # no file set aside for its values
    return data, env, report


def _db(env: dict[str, str]) -> EventsDB:
    return EventsDB(load_settings(env, secrets_paths=[]).store_dir)


def _flags(bits: int) -> set[str]:
    return {key for key, (bit, _) in ranges.FLAGS.items() if bits & bit}


# -- the normalization -------------------------------------------------------------------------


def test_every_hostile_event_is_kept_with_out_of_range_values_null(hostile):
    data, env, report = hostile
    assert report.rows == data.rows and report.unparseable == 0
    db = _db(env)
    try:
        rows = db.fetch(
            "SELECT CAST(raw->>'seq' AS INTEGER) AS seq, ts, ingest_ts, duration_ms, tool_calls, "
            "errors, out_of_range FROM events_all ORDER BY seq"
        )
    finally:
        db.close()
    assert [r["seq"] for r in rows] == list(range(data.rows))
    for r, want in zip(rows, data.expects, strict=True):
        got = (r["duration_ms"], r["tool_calls"], r["errors"], _flags(r["out_of_range"]))
        assert got == (want.duration_ms, want.tool_calls, want.errors, want.flags), r
        assert (r["ingest_ts"] is None) == want.ingest_null, r
        assert (r["ts"] == r["ingest_ts"]) == want.ts_is_ingest or r["ts"] is None, r
        if r["ts"] is not None:  # every time left is inside the contract's range
            assert EARLIEST <= r["ts"] <= data.now + 2 * TOLERANCE, r


def test_status_counts_values_out_of_range_by_field(hostile):
    data, env, _ = hostile
    out = cli(env, "status")
    assert out.returncode == 0, out.stderr
    n = data.flags
    assert f"clock skew: {n['ts_future']} events from the future" in out.stdout
    assert f"_ts before 2000: {n['ts_past']} events" in out.stdout
    assert f"durationMs outside 0 to 24 h: {n['durationMs']} events" in out.stdout
    assert f"toolCalls outside 0 to 1,000,000: {n['toolCalls']} events" in out.stdout
    assert f"errors outside 0 to 1,000,000: {n['errors']} events" in out.stdout
    assert f"ahead of the sync's clock: {n['ingest_ts']} events" in out.stdout


def test_events_from_the_future_never_define_freshness(hostile):
    data, env, _ = hostile
    db = _db(env)
    try:
        fr = q.freshness(db)
        newest_by_scan = db.fetch("SELECT max(ts) AS t FROM events")[0]["t"]
    finally:
        db.close()
    # the newest valid event: the one 9 minutes after its landing (inside the tolerance)
    landed = data.now - timedelta(minutes=2)
    assert fr["newest_ts"] == newest_by_scan
    assert landed < fr["newest_ts"] <= landed + TOLERANCE
    assert fr["newest_ingest_ts"] <= data.now
    assert fr["out_of_range"] == data.flags


def test_every_query_answers_and_its_numbers_stay_in_range(hostile):
    data, env, _ = hostile
    db = _db(env)
    end = data.now + timedelta(hours=1)
    try:
        for f in (Filters(), Filters(end - timedelta(hours=24), end), Filters(agents=(AGENT,))):
            s = q.summary(db, f, extended=True)
            assert s["avg_ms"].dropna().between(0, MAX_MS).all()
            assert s["tools"].between(0, MAX_COUNT * data.rows).all()
            t = q.totals(db, f)
            if f == Filters():
                assert t.cycles == data.rows
            q.cycles_over_time(db, f)
            q.error_rate_over_time(db, f)
            q.ingest_lag_over_time(db, f)
            q.events_per_hour(db, f)
            q.mode_breakdown(db, f)
            q.mode_breakdown(db, f, by_agent=True)
            q.agent_overview(db, f)
            q.agent_last_seen(db, f)
            q.top_error_agents(db, f)
            q.cycle_points(db, f)
            q.recent_errors(db, f)
            q.events_table(db, f)
            q.count_events(db, f)
            q.event_type_counts(db, f)
            if f.start is not None:
                q.wall_agents(db, f, seen_for=timedelta(days=1))
        rows = q.summary_rows(db)
        assert sum(r["cycles"] for r in rows) == data.rows
    finally:
        db.close()


# -- every CLI command -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("summary",),
        ("summary", "--format", "csv"),
        ("summary", "--format", "json"),
        ("sql", "SELECT * FROM events"),
        ("sql", "SELECT * FROM events_all", "--format", "csv"),
        ("sql", "SELECT * FROM events", "--format", "json"),
        ("sql", "SELECT * FROM freshness"),
        ("sql", "SELECT * FROM daily"),
        ("alerts",),
    ],
)
def test_every_cli_command_answers_on_a_hostile_store(hostile, args):
    _, env, _ = hostile
    out = cli(env, *args)
    assert out.returncode == 0, out.stderr
    assert "error" not in out.stderr.lower() and "unexpected" not in out.stderr, out.stderr


def test_alerts_evaluate_every_rule_on_a_hostile_store(hostile):
    _, env, _ = hostile
    out = cli(env, "alerts")
    assert out.returncode == 0, out.stderr
    for rule in ("no_data_landing", "agent_silent", "error_rate", "sync_failing"):
        line = next(line for line in out.stdout.splitlines() if line.startswith(rule))
        assert "not evaluated" not in line.lower(), line


# -- every page --------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_on_a_hostile_store(hostile, page):
    data, env, _ = hostile
    with app_under_test(env):
        at = AppTest.from_file(APP, default_timeout=90)
        if page == "sql":
            at.query_params["q"] = "SELECT * FROM events"
        at.switch_page(f"pages/{page}.py")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert not [e.value for e in at.error], page
        if page == "health":
            text = " ".join(c.value for c in at.caption).replace("\\", "")  # Markdown escapes
            assert f"clock skew: {data.flags['ts_future']} events from the future" in text
            assert "durationMs outside 0 to 24 h" in text


# -- a store normalized under the old rules ----------------------------------------------------


def test_a_store_normalized_under_older_rules_is_normalized_again(tmp_path):
    data = write_hostile_source(tmp_path / "src", datetime.now(UTC))
    env = _env(tmp_path)
    s = load_settings(env, secrets_paths=[])
    sync(s)
    # Make the published generation look as an older version wrote it: no version, no counts.
    store = s.store_dir
    number = int((store / "CURRENT").read_text())
    old_segments = {
        seg["name"]
        for seg in json.loads((store / f"gen-{number:08d}.json").read_text())["segments"]
    }
    for name in (f"gen-{number:08d}.json", f"head-{number:08d}.json"):
        doc = json.loads((store / name).read_text())
        doc.pop("normalized", None)
        doc.pop("out_of_range", None)
        for rec in (doc.get("files") or {}).values() if isinstance(doc.get("files"), dict) else ():
            rec.pop("out_of_range", None)
        (store / name).write_text(json.dumps(doc))
    report = sync(s)
    assert report.rows == data.rows
    db = EventsDB(store)
    try:
        assert db.generation.out_of_range == data.flags
        # every row once: the old segments left with their files, none read twice
        assert db.fetch("SELECT count(*) AS n FROM events_all")[0]["n"] == data.rows
        assert not {seg.name for seg in db.generation.segments} & old_segments
    finally:
        db.close()


# -- property: any int64, double or timestamp a Parquet file can hold --------------------------

I64 = st.integers(-(2**63), 2**63 - 1)
DOUBLES = st.floats(allow_nan=True, allow_infinity=True)
EDGES_US = st.sampled_from([2**63 - 1, -(2**63), 0, 946684800 * 10**6 - 1, 946684800 * 10**6])


def _reference_count(v: float | int | None, maximum: int) -> int | None:
    """docs/events.md read independently: a number in [0, maximum] (rounded half away from
    zero), else NULL."""
    if v is None or v != v:  # NULL, NaN
        return None
    if isinstance(v, float):
        if v in (float("inf"), float("-inf")):
            return None
        r = int(abs(v) + 0.5) * (1 if v >= 0 else -1)
    else:
        r = v
    return r if 0 <= r <= maximum else None


def _us_time(us: int) -> datetime | None:
    """A timestamp[us] value as a datetime; None beyond Python's range (years 1-9999)."""
    try:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    except OverflowError:
        return None


def _in_time_range(t: datetime | None, *, bound: datetime) -> bool | None:
    """Whether ``t`` lies in [2000, bound]; None when too close to the bound to call (the sync's
    clock and this test's differ by the sync's duration)."""
    if t is None:
        return False
    if abs(t - bound) < timedelta(minutes=2):
        return None
    return EARLIEST <= t <= bound


# Rows are told apart by their seq and checked one by one, so one file holds many: ~170 rows in
# 10 syncs, where 25 files of 1-6 rows held ~100 (min_size sets Hypothesis's typical length).
@settings(
    max_examples=examples(10),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(I64, EDGES_US),  # _ts (µs)
            st.one_of(I64, EDGES_US),  # __ingest_ts (µs)
            I64,  # durationMs
            DOUBLES,  # toolCalls
            st.one_of(I64, st.sampled_from([0, 1, MAX_COUNT, MAX_COUNT + 1, -1])),  # errors
        ),
        min_size=10,
        max_size=30,
    ),
    as_json=st.booleans(),
)
def test_property_any_parquet_value_syncs_into_answering_views(tmp_path_factory, rows, as_json):
    root = tmp_path_factory.mktemp("prop")
    src = root / "src"
    src.mkdir()
    now = datetime.now(UTC)
    if as_json:  # the unstructured shape: the numbers in JSON, the times as ISO text
        values = []
        for i, (ts, _, ms, tools, errors) in enumerate(rows):
            t = _us_time(ts)
            body = {"event_type": "agent.cycle", "agent": "a", "mode": "m", "seq": i,
                    "durationMs": ms, "toolCalls": None if tools != tools else tools,
                    "errors": errors, "_ts": t.isoformat() if t else "infinity"}  # fmt: skip
            if tools in (float("inf"), float("-inf")):
                body["toolCalls"] = None  # JSON has no infinity
            values.append(json.dumps(body))
        table = pa.table({
            "__ingest_ts": pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC")),
            "value": pa.array(values),
        })  # fmt: skip
    else:
        table = pa.table({
            "__ingest_ts": pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC")),
            "event_type": ["agent.cycle"] * len(rows),
            "agent": ["a"] * len(rows),
            "mode": ["m"] * len(rows),
            "seq": pa.array(range(len(rows)), pa.int64()),
            "durationMs": pa.array([r[2] for r in rows], pa.int64()),
            "toolCalls": pa.array([r[3] for r in rows], pa.float64()),
            "errors": pa.array([r[4] for r in rows], pa.int64()),
            "_ts": pa.array([r[0] for r in rows], pa.timestamp("us", tz="UTC")),
        })  # fmt: skip
    pq.write_table(table, src / "part.parquet")
    env = _env(root)
    report = sync(load_settings(env, secrets_paths=[]))
    assert report.rows == len(rows) and not report.bad_files
    db = _db(env)
    try:
        got = db.fetch(
            "SELECT CAST(raw->>'seq' AS INTEGER) AS seq, ts, ingest_ts, duration_ms, tool_calls, "
            "errors FROM events ORDER BY seq"
        )
        assert len(got) == len(rows)
        for r, (ts_us, in_us, ms, tools, errors) in zip(got, rows, strict=True):
            tools_in = None if as_json and tools in (float("inf"), float("-inf")) else tools
            assert r["duration_ms"] == _reference_count(ms, MAX_MS)
            assert r["tool_calls"] == _reference_count(tools_in, MAX_COUNT)
            assert r["errors"] == _reference_count(errors, MAX_COUNT)
            landed = _us_time(in_us)
            landed_ok = _in_time_range(landed, bound=now + TOLERANCE)
            if landed_ok is not None:
                assert r["ingest_ts"] == (landed if landed_ok else None)
            if landed_ok is None:
                continue
            event_t = _us_time(ts_us)
            ts_ok = _in_time_range(event_t, bound=(landed if landed_ok else now) + TOLERANCE)
            if ts_ok is not None:
                assert r["ts"] == (event_t if ts_ok else r["ingest_ts"]), (r, event_t)
        # every screen's numbers answer
        f = Filters()
        q.summary(db, f, extended=True)
        q.totals(db, f)
        q.cycles_over_time(db, f)
        q.ingest_lag_over_time(db, f)
        q.mode_breakdown(db, f)
        q.agent_last_seen(db, f)
        q.events_table(db, f)
        fr = q.freshness(db)
        if fr["newest_ts"] is not None:
            assert fr["newest_ts"] <= now + 2 * TOLERANCE + timedelta(minutes=1)
    finally:
        db.close()
