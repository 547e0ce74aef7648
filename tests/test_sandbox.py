"""The SQL sandbox and the ``sql`` command: read the store's events and nothing else, within limits.

Against the synced demo store (real Parquet segments, real DuckDB). Expected numbers come from the
existing ``summary`` query (a separate code path) or from pandas over the segment files; every
probe of the sandbox is listed here and in docs/reliability.md.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from o11y_data import EventsDB, O11yError
from o11y_data.query import queries as q
from o11y_data.query import sandbox as sb
from o11y_data.query.queries import Filters
from tests.support.cli import ROOMY_SQL_TIMEOUT_S, cli

SEED = (
    "SELECT agent, mode, count(*) cycles, round(avg(duration_ms)) avg_ms, "
    "sum(tool_calls) tools, sum(errors) errors FROM cycles "
    "GROUP BY agent, mode ORDER BY agent, cycles DESC, mode"
)
# A cross join DuckDB cannot shortcut: minutes of work on one thread.
RUNAWAY = (
    "SELECT count(*) FROM range(200000) a, range(200000) b "
    "WHERE (a.range * 7 + b.range) % 1000003 = 1"
)
# The queries that prove something other than a time limit get all the time a loaded machine
# needs (tests/support/cli.py says why; the limits have tests of their own).
ROOMY = sb.Limits(timeout_s=ROOMY_SQL_TIMEOUT_S)


@pytest.fixture(scope="module")
def db(demo_store):
    d = EventsDB(demo_store.settings.store_dir)
    yield d
    d.close()


def _seed_rows(rows: list[dict]) -> list[tuple]:
    """The seed's rows as plain numbers (sum() of nothing is NULL in SQL, 0 in ``summary``)."""

    def num(v):
        return 0 if v is None or (isinstance(v, float) and pd.isna(v)) else int(float(v))

    return [
        (r["agent"], r["mode"], num(r["cycles"]), r["avg_ms"] and num(r["avg_ms"]),
         num(r["tools"]), num(r["errors"]))
        for r in rows
    ]  # fmt: skip


def test_the_seed_query_through_sql_equals_summary(db):
    result = sb.run_sql(db, SEED, limits=ROOMY)
    expected = q.summary(db).to_dict("records")
    assert len(expected) > 10
    assert _seed_rows(result.table.to_pylist()) == _seed_rows(expected)
    assert not result.truncated


def test_filtered_views_follow_the_filters_and_bind_hostile_values(db, demo_store):
    f = Filters(start=q.since("6h", now=demo_store.now), modes=("think",))
    got = sb.run_sql(db, "SELECT count(*) AS n FROM filtered_cycles", filters=f, limits=ROOMY).table
    assert got.to_pylist()[0]["n"] == int(q.summary(db, f)["cycles"].sum()) > 0
    # an agent value that would break formatted SQL is only ever a bound value
    hostile = Filters(agents=("x'); DROP TABLE events; --",))
    got = sb.run_sql(
        db, "SELECT count(*) AS n FROM filtered_events", filters=hostile, limits=ROOMY
    ).table
    assert got.to_pylist()[0]["n"] == 0
    # event types apply to filtered_events, not to cycle metrics (as on every screen)
    typed = Filters(event_types=("agent.wake",))
    n_cycles = sb.run_sql(
        db, "SELECT count(*) AS n FROM filtered_cycles", filters=typed, limits=ROOMY
    ).table
    n_all = sb.run_sql(db, "SELECT count(*) AS n FROM cycles", limits=ROOMY).table
    assert n_cycles.to_pylist() == n_all.to_pylist()


def test_the_views_read_every_segment_row_once(db):
    """Against pandas over the segment files themselves (an independent reading)."""
    spec = db.view_spec()
    raw = pd.concat([pq.read_table(p).to_pandas() for p in spec.segments])
    parsed = raw[raw["parsed"]]
    got = sb.run_sql(
        db,
        "SELECT (SELECT count(*) FROM events) e, (SELECT count(*) FROM cycles) c, "
        "(SELECT count(*) FROM unparseable) u",
        limits=ROOMY,
    ).table.to_pylist()[0]
    assert got == {
        "e": len(parsed),
        "c": int((parsed["event_type"] == "agent.cycle").sum()),
        "u": int((~raw["parsed"]).sum()),
    }
    fresh = sb.run_sql(
        db, "SELECT rows, unparseable, generation FROM freshness", limits=ROOMY
    ).table
    assert fresh.to_pylist() == [
        {"rows": len(raw), "unparseable": int((~raw["parsed"]).sum()), "generation": spec.info[0]}
    ]


FORBIDDEN = [
    "DROP VIEW events",
    "DELETE FROM events",
    "INSERT INTO store_info VALUES (1, now(), 'x', 'x', 1, 1, 1, 1, 1)",
    "UPDATE store_info SET rows = 0",
    "CREATE TABLE t AS SELECT * FROM events",
    "CREATE OR REPLACE VIEW cycles AS SELECT 1",
    "ALTER VIEW events RENAME TO e",
    "COPY (SELECT 1) TO '/tmp/o11y-sandbox-probe.csv'",
    "COPY events TO '/tmp/o11y-sandbox-probe.parquet' (FORMAT parquet)",
    "EXPORT DATABASE '/tmp/o11y-sandbox-probe'",
    "ATTACH ':memory:' AS other",
    "ATTACH '/tmp/o11y-sandbox-probe.duckdb' AS other",
    "DETACH memory",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "RESET enable_external_access",
    "SET VARIABLE x = 1",
    "PRAGMA database_list",
    "PRAGMA enable_profiling",
    "CALL pragma_version()",
    "CHECKPOINT",
    "VACUUM",
    "BEGIN TRANSACTION",
    "USE memory",
    "PREPARE p AS SELECT 1",
    "EXPLAIN SELECT 1",
    "CREATE SECRET (TYPE s3, KEY_ID 'k', SECRET 's')",
    "CREATE MACRO m() AS 1",
    "SELECT 1; DROP VIEW events",  # a second statement
    "SELECT 1; -- looks like a comment\nDROP VIEW events",  # hidden after a comment
    "SELECT 1 /* ; */; DELETE FROM store_info",
    "UPDATE EXTENSIONS",  # a statement type the Python client does not even name
    "",
    "  ;  -- nothing",
]


@pytest.mark.parametrize("sql", FORBIDDEN)
def test_every_statement_but_one_select_is_refused(db, sql):
    with pytest.raises(sb.QueryRefused) as err:
        sb.run_sql(db, sql, limits=ROOMY)
    assert "\n" not in str(err.value) and str(err.value)
    assert not list(Path("/tmp").glob("o11y-sandbox-probe*"))  # nothing was written


def test_after_every_refused_statement_the_store_answers_as_before(db):
    """Nothing a refused statement asked for happened: the same answer before and after all of
    them (one sandbox query on each side, not one per statement)."""
    count = "SELECT count(*) AS n, count(DISTINCT agent) AS agents FROM cycles"
    before = sb.run_sql(db, count, limits=ROOMY).table.to_pylist()
    for sql in FORBIDDEN:
        with pytest.raises(sb.QueryRefused):
            sb.run_sql(db, sql, limits=ROOMY)
    assert sb.run_sql(db, count, limits=ROOMY).table.to_pylist() == before and before[0]["n"] > 0
    assert not list(Path("/tmp").glob("o11y-sandbox-probe*"))


def _outside_reads(store: Path, secrets: Path) -> list[str]:
    raw = next(p for p in (store / "raw").rglob("*.parquet"))
    gen = next(store.glob("gen-*.json"))
    return [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_csv_auto('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_blob('/etc/passwd')",
        "SELECT * FROM read_json('/etc/hostname')",
        "SELECT * FROM sniff_csv('/etc/passwd')",
        "SELECT * FROM glob('/*')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM '/etc/passwd'",
        "FROM '/etc/passwd'",
        f"SELECT * FROM read_text('{secrets}')",
        f"SELECT * FROM read_csv('{secrets}', header = false)",
        f"SELECT * FROM read_parquet('{raw}')",  # the raw cache folder
        f"SELECT * FROM parquet_metadata('{raw}')",
        f"SELECT * FROM glob('{store}/*')",
        f"SELECT * FROM glob('{store}/segments/*')",  # even listing the store's own folder
        f"SELECT * FROM read_json('{gen}')",  # the store's generation file
        f"SELECT * FROM read_text('{store}/status.json')",
        f"SELECT * FROM read_text('{store}/CURRENT')",
        f"SELECT * FROM read_parquet('{store}/segments/../raw/*.parquet')",
        "SELECT * FROM read_parquet('http://127.0.0.1:9/x.parquet')",
        "SELECT * FROM read_parquet('s3://agent-blobs/x.parquet')",
        "SELECT * FROM read_text('/proc/self/environ')",
        "SELECT * FROM read_blob('/proc/self/mem')",
        "SELECT getenv('HOME')",
        "SELECT current_setting('s3_secret_access_key')",
        "SELECT * FROM duckdb_secrets()",
        "SELECT * FROM query('ATTACH '':memory:'' AS x')",
        "SELECT * FROM query('COPY (SELECT 1) TO ''/tmp/o11y-sandbox-probe.csv''')",
    ]


@pytest.mark.slow  # a sandbox process for each of its 29 probes
def test_no_file_outside_the_store_can_be_read(db, tmp_path):
    secrets = tmp_path / ".streamlit" / "secrets.toml"
    secrets.parent.mkdir()
    secrets.write_text('[r2]\nsecret_access_key = "CANARY-SECRET-d41d8cd9"\n')
    probes = _outside_reads(db.store.root, secrets)
    leaked = []
    for sql in probes:
        try:
            result = sb.run_sql(db, sql, limits=ROOMY)
        except O11yError as exc:
            message = exc.one_line()
            assert "\n" not in message, sql
            assert "CANARY" not in message and "root:x:0" not in message, sql
            continue
        leaked.append((sql, result.table.to_pylist()[:2]))
    assert leaked == []
    assert not list(Path("/tmp").glob("o11y-sandbox-probe*"))


def test_file_reads_are_refused_by_duckdb_itself_with_one_line(db):
    with pytest.raises(sb.QueryRefused, match="reads only the store's events") as err:
        sb.run_sql(db, "SELECT * FROM read_text('/etc/passwd')", limits=ROOMY)
    assert "Permission" in str(err.value) and "\n" not in str(err.value)


def test_the_sandbox_runs_locked_without_external_access_on_one_thread(db):
    row = sb.run_sql(
        db,
        "SELECT current_setting('enable_external_access') AS ext, "
        "current_setting('lock_configuration') AS locked, current_setting('threads') AS threads, "
        "current_setting('temp_directory') AS tmp",
        limits=ROOMY,
    ).table.to_pylist()[0]
    assert row == {"ext": False, "locked": True, "threads": 1, "tmp": ""}


def _running_sandbox_child() -> multiprocessing.Process | None:
    """The sandbox's query process, once it has been started (sandbox children are named)."""
    return next((p for p in multiprocessing.active_children() if p.name == "o11y-sql"), None)


def _wait_for_sandbox_child(thread: threading.Thread) -> multiprocessing.Process | None:
    """The query process ``thread`` started, once it runs; None if the thread ended first."""
    child = _running_sandbox_child()
    while child is None and thread.is_alive():
        time.sleep(0.01)
        child = _running_sandbox_child()
    return child


def _alive(proc: multiprocessing.Process) -> bool:
    try:
        return proc.is_alive()
    except ValueError:  # already closed by the sandbox: it ended
        return False


def _stopped_at_limit_while_others_answer(db, limit_s: float) -> tuple[object, int, int]:
    """Run the runaway with ``limit_s`` on a thread and answer other sessions' queries while it
    runs: (the runaway's outcome, answers completed while its process lived, all answers)."""
    outcome: dict[str, object] = {}

    def runaway() -> None:
        try:
            sb.run_sql(db, RUNAWAY, limits=sb.Limits(timeout_s=limit_s))
            outcome["error"] = None
        except O11yError as exc:
            outcome["error"] = exc

    assert _running_sandbox_child() is None
    thread = threading.Thread(target=runaway)
    thread.start()
    child = _wait_for_sandbox_child(thread)  # the runaway's process has started
    assert child is not None, outcome
    # meanwhile, another session's query and the app's own queries answer
    answered_while_running = answered = 0
    while thread.is_alive():
        sql = "SELECT mode, count(*) FROM cycles GROUP BY mode"
        assert sb.run_sql(db, sql, limits=ROOMY).table.num_rows > 0
        assert len(q.summary(db)) > 0
        answered += 1
        answered_while_running += _alive(child)
    thread.join()
    return outcome.get("error"), answered_while_running, answered


def test_a_runaway_query_is_stopped_at_its_limit_while_other_sessions_answer(db):
    """Counted, not timed: the other sessions' queries complete while the runaway's process is
    still running, then the runaway ends with the time-limit error. (Answer times while a runaway
    runs: bench/sql_sandbox.py.) A short limit keeps the runaway's burnt CPU small; when a loaded
    machine let no answer finish within it, the runaway runs again with twice the limit."""
    for limit_s in (2.0, 4.0, 8.0, 16.0, 32.0, 64.0):
        error, answered_while_running, answered = _stopped_at_limit_while_others_answer(db, limit_s)
        assert isinstance(error, sb.QueryTimeout), error
        assert f"{limit_s:g} s limit" in str(error)
        assert _running_sandbox_child() is None  # the runaway's process is gone
        if answered_while_running >= 1:
            break
    assert answered_while_running >= 1, (answered_while_running, answered)


def test_queries_beyond_the_concurrent_limit_wait_then_say_busy(db, monkeypatch):
    """The runaway holds the one slot for as long as the test needs (a limit no loaded machine
    reaches); once the busy answer is seen, its process is killed, which frees the slot."""
    import threading as th

    monkeypatch.setattr(sb, "MAX_RUNNING", 1)
    monkeypatch.setattr(sb, "_running", th.BoundedSemaphore(1))
    ended: list[O11yError] = []

    def hold_the_slot() -> None:
        with pytest.raises(O11yError, match="Query stopped") as err:
            sb.run_sql(db, RUNAWAY, limits=ROOMY)
        ended.append(err.value)

    runaway = th.Thread(target=hold_the_slot)
    runaway.start()
    child = _wait_for_sandbox_child(runaway)
    assert child is not None  # it holds the one slot
    try:
        with pytest.raises(O11yError, match="The SQL sandbox is busy: 1 queries were running"):
            sb.run_sql(db, "SELECT 1", limits=sb.Limits(timeout_s=1.0))
    finally:
        child.kill()
        runaway.join()
    assert ended, "the runaway did not end in one line when its process was killed"
    assert sb.run_sql(db, "SELECT 1 AS x", limits=ROOMY).table.to_pylist() == [{"x": 1}]  # free


def test_a_query_over_its_memory_cap_fails_in_one_line(db):
    with pytest.raises(O11yError, match="memory cap") as err:
        sb.run_sql(
            db,
            "SELECT list(range) AS l FROM range(300000000)",
            limits=replace(ROOMY, memory_limit="128MB"),
        )
    assert "\n" not in str(err.value)


def test_allocations_outside_duckdbs_memory_cap_never_reach_the_app_process(db):
    """repeat() builds strings outside DuckDB's buffer manager and is not interruptible while it
    runs: the child's address-space limit and the hard kill at the time limit stop it."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for sql in (
        "SELECT length(repeat('x', 2000000000)) AS n",  # one 2 GB string
        "SELECT max(length(repeat('x', 10000000) || range)) FROM range(2048)",  # 20 GB in chunks
    ):
        with pytest.raises(O11yError) as err:
            sb.run_sql(db, sql, limits=sb.Limits(timeout_s=3.0))
        assert "\n" not in str(err.value)
    assert _running_sandbox_child() is None  # stopped: no query process left behind
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200, grown_mb


def test_a_query_process_killed_from_outside_is_named_killed_not_short_of_memory(db):
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            sb.run_sql(db, RUNAWAY, limits=ROOMY)
        except BaseException as exc:  # noqa: BLE001 (handed to the test's thread)
            errors.append(exc)

    thread = threading.Thread(target=ask)
    thread.start()
    child = _wait_for_sandbox_child(thread)
    assert child is not None, errors
    child.kill()
    thread.join(60)
    assert not thread.is_alive()
    [error] = errors
    assert isinstance(error, O11yError)
    assert "was killed (signal 9" in str(error) and "memory than the sandbox" not in str(error)
    assert "\n" not in str(error)


def test_a_result_over_the_byte_cap_is_refused(db):
    with pytest.raises(sb.ResultTooLarge):
        sb.run_sql(
            db,
            "SELECT repeat('x', 10000) AS s FROM range(5000)",
            limits=replace(ROOMY, max_bytes=2**20),
        )


def test_100000_rows_are_capped_for_display_and_complete_for_download(db):
    sql = "SELECT range AS i, range * 2 AS j FROM range(100000)"
    shown = sb.run_sql(db, sql, limits=ROOMY)
    assert shown.rows == sb.DISPLAY_ROWS == 10_000 and shown.truncated
    full = sb.run_sql(db, sql, limits=replace(ROOMY, max_rows=sb.DOWNLOAD_ROWS))
    assert full.rows == 100_000 and not full.truncated
    text = sb.to_csv(full.table).decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["i", "j"] and len(rows) == 100_001
    assert [int(x) for x in rows[-1]] == [99_999, 199_998]


def test_odd_results_survive_every_format(db):
    sql = (
        "SELECT 1 AS a, 2 AS a, 3 AS a_2, [1, 2] AS l, {'k': 'v'} AS s, 'x'::BLOB AS b, "
        "INTERVAL 1 DAY AS i, NULL AS n, 170141183460469231731687303715884105727::HUGEINT AS h, "
        "'<b>\"q\",</b>' AS t, 'a'::ENUM('a', 'b') AS e, MAP {'k': 1} AS m, "
        "union_value(k := 1) AS u, TIME '12:00' AS tm, [1, 2, 3]::INT[3] AS fl"
    )
    table = sb.run_sql(db, sql, limits=ROOMY).table
    assert table.column_names == [
        "a", "a_2", "a_2_2", "l", "s", "b", "i", "n", "h", "t", "e", "m", "u", "tm", "fl"
    ]  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(sb.to_csv(table).decode())))
    assert rows[0]["l"] == "[1, 2]" and rows[0]["t"] == '<b>"q",</b>'
    assert rows[0]["h"] == "170141183460469231731687303715884105727"
    assert json.dumps(sb.to_json_rows(table), default=str)
    assert "a_2" in sb.text_table(table)
    assert (
        rows[0]["e"] == "a" and rows[0]["fl"] == "[1, 2, 3]" and rows[0]["tm"].startswith("12:00")
    )


def test_a_type_arrow_cannot_carry_is_named_in_one_line(db):
    with pytest.raises(O11yError, match="column 'v' has a type the console cannot show"):
        sb.run_sql(
            db, "SELECT 123456789012345678901234567890123456789012::BIGNUM AS v", limits=ROOMY
        )


# -- the CLI ---------------------------------------------------------------------------------


def _cli(demo_store, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return cli({**demo_store.env, "HOME": str(demo_store.cache), **extra}, *args)


def test_cli_sql_of_the_seed_query_equals_cli_summary(demo_store):
    # all time: two runs a moment apart would see different "last 24h" windows
    got = _cli(demo_store, "sql", SEED, "--format", "csv", "--range", "all")
    want = _cli(demo_store, "summary", "--format", "csv", "--range", "all")
    assert got.returncode == 0 and want.returncode == 0, got.stderr + want.stderr
    sql_rows = list(csv.DictReader(io.StringIO(got.stdout)))
    summary_rows = list(csv.DictReader(io.StringIO(want.stdout)))
    assert len(sql_rows) == len(summary_rows) > 10

    def norm(rows):
        return [
            tuple(r[k] if k in ("agent", "mode") else int(float(r[k] or 0)) for k in r)
            for r in rows
        ]

    assert norm(sql_rows) == norm(summary_rows)


def test_cli_sql_formats_and_filters(demo_store):
    """The last hour's count lies between the counts of the hours ending before and after the
    CLI ran (the demo gains no rows, so a later window holds no more): true however slowly the
    machine ran it."""
    db = EventsDB(demo_store.settings.store_dir)

    def think_cycles_in_last_hour() -> int:
        f = Filters(start=q.since("1h"), modes=("think",))
        return int(q.summary(db, f)["cycles"].sum())

    try:
        most = think_cycles_in_last_hour()
        out = _cli(demo_store, "sql", "SELECT count(*) AS n FROM filtered_cycles", "--since",
                   "1h", "--mode", "think", "--format", "json")  # fmt: skip
        least = think_cycles_in_last_hour()
    finally:
        db.close()
    assert out.returncode == 0, out.stderr
    assert least <= json.loads(out.stdout)[0]["n"] <= most and most > 0
    table = _cli(demo_store, "sql", "SELECT * FROM range(5)", "--max-rows", "2")
    assert table.returncode == 0
    assert table.stdout.splitlines()[2:] == ["0", "1"]
    assert "the query has more" in table.stderr


@pytest.mark.parametrize(
    "sql, says",
    [
        ("DROP VIEW events", "Only SELECT queries are allowed"),
        ("SELECT * FROM read_text('/etc/passwd')", "reads only the store's events"),
        ("SELECT 1; SELECT 2", "One statement at a time"),
        ("SELEC 1", "SQL syntax error"),
        ("SELECT no_such_column FROM cycles", "Query failed"),
        (RUNAWAY, "ran longer than the 1 s limit"),
    ],
)
def test_cli_sql_refusals_print_one_line_and_exit_1(demo_store, sql, says):
    # the runaway meets its 1 s limit; the others are refused long before a roomy one
    out = _cli(demo_store, "sql", sql, *(["--timeout", "1"] if sql == RUNAWAY else []))
    assert out.returncode == 1
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and lines[0].startswith("error: "), out.stderr


def test_no_query_can_reach_the_apps_secrets(demo_store):
    """The process running ``sql`` holds R2 keys in its environment; the sandbox's child starts
    with none, and nothing in DuckDB's settings or catalog carries them. One query reads every
    readable probe in full (one process, not one per probe); duckdb_extensions() is refused (it
    lists a directory), and its refusal carries no key either."""
    canary = "CANARY-r2-secret-5150"
    keys = {"O11Y_R2_SECRET_ACCESS_KEY": canary, "O11Y_R2_ACCESS_KEY_ID": canary}
    probes = {
        "settings": "SELECT string_agg(s::VARCHAR, chr(10)) FROM duckdb_settings() s",
        "databases": "SELECT string_agg(d::VARCHAR, chr(10)) FROM duckdb_databases() d",
        "variables": "SELECT coalesce(string_agg(v::VARCHAR, chr(10)), '') "
        "FROM duckdb_variables() v",
    }
    sql = "SELECT " + ", ".join(f"({probe}) AS {name}" for name, probe in probes.items())
    sql += (
        ", current_setting('home_directory') AS home"
        ", current_setting('secret_directory') AS secrets"
    )
    out = _cli(demo_store, "sql", sql, "--format", "json", **keys)
    assert out.returncode == 0, out.stderr  # every probe was read, none refused
    assert canary not in out.stdout + out.stderr
    [row] = json.loads(out.stdout)
    assert set(row) == {*probes, "home", "secrets"}
    assert "lock_configuration" in row["settings"], row  # read in full, not an empty answer
    refused = _cli(demo_store, "sql", "SELECT * FROM duckdb_extensions()", **keys)
    assert refused.returncode == 1 and "reads only the store's events" in refused.stderr
    assert canary not in refused.stdout + refused.stderr


def test_the_summary_pages_percentiles_are_exact_while_the_data_spans_7_days_or_less(
    db, demo_store
):
    """summary(extended=True): the seed's columns as the CLI's; the demo holds two days, so a
    30-day window over it is as exact as one day (the ≈ rule judges the window cut to the data;
    histogram percentiles past 7 days: test_approx_marks), checked against numpy."""
    import numpy as np

    long = Filters(start=demo_store.now - pd.Timedelta(days=30))
    for f in (Filters(start=demo_store.now - pd.Timedelta(days=1)), long):
        ext = q.summary(db, f, extended=True)
        seed = q.summary(db, f)
        pd.testing.assert_frame_equal(ext[list(seed.columns)], seed)
        assert set(ext["approx"]) == {False}
    raw = pd.concat([pq.read_table(p).to_pandas() for p in db.view_spec().segments])
    cyc = raw[raw["parsed"] & (raw["event_type"] == "agent.cycle")]
    cyc = cyc[cyc["ts"] >= long.start]
    for row in ext.itertuples():
        d = cyc[(cyc["agent"] == row.agent) & (cyc["mode"] == row.mode)]["duration_ms"].dropna()
        for col, qt in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99)):
            exact = float(np.percentile(d.astype(float), qt))
            assert getattr(row, col) == pytest.approx(exact, rel=1e-9), (row.agent, row.mode, col)
        errs = cyc[(cyc["agent"] == row.agent) & (cyc["mode"] == row.mode)]["errors"]
        assert row.error_rate == pytest.approx(float((errs > 0).mean()))
