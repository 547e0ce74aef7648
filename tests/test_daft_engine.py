"""Daft as the engine (O11Y_ENGINE=daft): the table in moto_server behind a REST catalog on
loopback, read with Daft's local runner in this process and on a real Ray cluster (a head and one
worker on loopback) from a dashboard process configured by the environment. Answers are the
local store's, asked through the planner's questions (route.Router), on a pyiceberg table with
compaction leftovers, an orphan and position deletes; pyiceberg's scan is the oracle for the
deletes; delete kinds Daft cannot apply are refused in one line.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

pytest.importorskip("daft", reason="requirements-engines.txt (make dev) installs Daft")

from o11y_data import open_db, sync  # noqa: E402
from o11y_data.errors import O11yError  # noqa: E402
from o11y_data.ingest.iceberg import DeleteFile  # noqa: E402
from o11y_data.query import metrics as M  # noqa: E402
from o11y_data.query.engines import daft_engine as D  # noqa: E402
from o11y_data.query.engines.base import (  # noqa: E402
    Aggregate,
    EngineRefused,
    NewestRows,
    TableState,
)
from o11y_data.query.engines.catalog import table_state  # noqa: E402
from o11y_data.query.planner import Filters  # noqa: E402
from o11y_data.query.route import Router, engine_for  # noqa: E402
from tests.support.engine_tables import (  # noqa: E402
    COMPARED_MEASURES,
    START,
    history,
    leftovers_orphan_deletes,
)
from tests.support.rest_catalog import TOKEN, RestCatalog  # noqa: E402
from tests.support.s3server import empty_and_delete_bucket  # noqa: E402
from tests.support.tables import r2_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MEASURES = COMPARED_MEASURES
DAY = timedelta(days=1)
# (group, window): each grouping and window once; the third starts past day one, so files of
# the days before it are pruned.
CASES = [
    (None, Filters()),
    ("agent", Filters(START + timedelta(hours=5), START + 3 * DAY)),
    ("mode", Filters(START + 2 * DAY, START + 4 * DAY, agents=("did:cf:beta",))),
    (3600, Filters(START, START + 4 * DAY, modes=("think", "reflection"), errors_only=True)),
    (("agent", "mode"), Filters(START + DAY)),
]
PERCENTILES = Aggregate(
    ("p50_ms", "p95_ms", "p99_ms", "cycles"), Filters(START + timedelta(hours=2), START + 3 * DAY)
)


@pytest.fixture(scope="module")
def table(s3_admin, moto_endpoint, tmp_path_factory):
    """A pyiceberg table with leftovers, an orphan and position deletes in its own bucket,
    behind a REST catalog; a dashboard store synced from it (configured for Daft)."""
    from tests.support.reference_tables import RefTable

    root = tmp_path_factory.mktemp("daft")
    name = f"agent-blobs-{uuid.uuid4().hex[:8]}"
    s3_admin.create_bucket(Bucket=name)
    ref = RefTable.create(endpoint=moto_endpoint, s3=s3_admin, bucket=name, db=root / "cat.db")
    leftovers_orphan_deletes(ref, history(days=4, per_day=6))
    catalog = RestCatalog(
        location=lambda: ref.table.metadata_location,
        s3=s3_admin,
        bucket=name,
        endpoint=moto_endpoint,
    )
    env = r2_env(
        moto_endpoint,
        name,
        root / "cache",
        O11Y_CATALOG_URI=catalog.uri,
        O11Y_CATALOG_TOKEN=TOKEN,
        O11Y_CATALOG_WAREHOUSE="acct_agent-blobs",
        O11Y_ENGINE="daft",
        O11Y_AGENTS_FILE=str(root / "no-agents.toml"),
    )
    from o11y_data import load_settings

    settings = load_settings(env, secrets_paths=[])
    sync(settings)
    yield settings, ref, env
    catalog.close()
    with contextlib.suppress(Exception):
        empty_and_delete_bucket(s3_admin, name)


def _canonical(df: pd.DataFrame) -> list[tuple]:
    out = []
    for row in df.to_dict("records"):
        vals = []
        for k, v in sorted(row.items()):
            if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
                vals.append((k, None))
            elif isinstance(v, pd.Timestamp):
                vals.append((k, v.tz_convert("UTC").isoformat()))
            elif isinstance(v, float):
                vals.append((k, round(v, 6)))
            else:
                vals.append((k, v if isinstance(v, str) else int(v)))
        out.append(tuple(vals))
    return sorted(out, key=repr)


def _same(local: pd.DataFrame, remote: pd.DataFrame) -> None:
    """Equal rows in any order: integers exact, floats to 6 places, times in UTC."""
    assert list(remote.columns) == list(local.columns)
    assert _canonical(local) == _canonical(remote)


# Hostile texts reach the workers as bound parameters, never as SQL text: nothing matches.
HOSTILE = NewestRows(Filters(agents=("x' OR '1'='1",)), limit=5, search="'; DROP TABLE ev; --")


def _questions() -> list[Any]:
    qs: list[Any] = [Aggregate(MEASURES, f, group=g) for g, f in CASES]
    qs.append(Aggregate(("events", "agents"), Filters(event_types=("agent.note",)), rows="events"))
    qs.append(PERCENTILES)
    qs.append(NewestRows(Filters(START + DAY, START + 3 * DAY), limit=7))
    qs.append(NewestRows(Filters(), limit=5, search="BETA"))
    qs.append(HOSTILE)
    qs.append(NewestRows(Filters(START + DAY), limit=3, search='"mode": "think"'))
    return qs


def _compare(local: Any, remote: Any, q: Any) -> None:
    if q is PERCENTILES:
        assert local.exact and remote.exact
        a, b = local.frame, remote.frame
        for col in ("p50_ms", "p95_ms", "p99_ms"):
            assert list(a[col]) == pytest.approx(list(b[col]), rel=1e-9)
        assert list(a["cycles"]) == [int(v) for v in b["cycles"]]
        return
    _same(local.frame, remote.frame)
    if isinstance(q, NewestRows):
        assert len(remote.frame) == 0 if q == HOSTILE else len(remote.frame) >= 1
        assert local.next_before == remote.next_before


# -- Daft's local runner, in this process ----------------------------------------------------


@pytest.mark.s3
@pytest.mark.server
def test_daft_local_runner_answers_as_the_store_through_the_planners_questions(table):
    settings, ref, _ = table
    engine = engine_for(settings)
    assert isinstance(engine, D.DaftEngine) and engine.reach.catalog_uri == settings.catalog_uri
    state = engine.table_state()
    assert state.snapshot_id == ref.table.current_snapshot().snapshot_id
    assert {d.kind for d in state.delete_files} == {"position"}
    router = Router(open_db(settings))
    for q in _questions():
        local = router.ask(q)
        assert local.engine == "local store"
        remote = engine.answer(q, state)
        assert remote.engine == "Daft (local runner)" and remote.snapshot_id == state.snapshot_id
        _compare(local, remote, q)


@pytest.mark.s3
@pytest.mark.server
def test_daft_applies_position_deletes_as_pyiceberg_reads_them(table):
    import daft

    settings, ref, _ = table
    engine = engine_for(settings)
    D.use_runner(None)
    tbl = D.load_table(engine.reach)
    snap = engine.table_state().snapshot_id
    read = daft.read_iceberg(tbl, snapshot_id=snap, io_config=D.io_config(engine.reach))
    got = read.to_arrow().sort_by([("__ingest_ts", "ascending"), ("value", "ascending")])
    oracle = ref.reference().sort_by([("__ingest_ts", "ascending"), ("value", "ascending")])
    live_rows = sum(f.record_count for f in ref.data_files().values())
    assert len(oracle) == live_rows - 4  # the four deleted positions are really in the table
    cols = ["__ingest_ts", "value"]
    assert got.select(cols).to_pylist() == oracle.select(cols).to_pylist()


@pytest.mark.s3
@pytest.mark.server
def test_a_window_start_prunes_the_days_before_it_from_the_read(table, moto_endpoint):
    from tests.support.proxy import FaultProxy

    settings, ref, _ = table
    base = engine_for(settings)
    with FaultProxy(moto_endpoint) as proxy:
        reach = D.Reach(**{**base.reach.__dict__, "s3_endpoint": proxy.endpoint})
        engine = D.DaftEngine(reach, base.state)
        state = engine.table_state()
        files = sorted(ref.data_files())
        engine.answer(Aggregate(("cycles",), Filters(START + 3 * DAY)), state)
        read = _parquet_gets(proxy)
        assert read and len(read) < len(files)
        last_day = f"{(START + 3 * DAY):%Y-%m-%d}"
        assert all(last_day in p or "delete" in p for p in read), read
        proxy.clear_requests()
        engine.answer(Aggregate(("cycles",), Filters()), state)
        every = _parquet_gets(proxy)
        assert len(every - read) > 0


def _parquet_gets(proxy: Any) -> set[str]:
    paths = {p.split("?", 1)[0] for m, p in proxy.requests if m == "GET"}
    return {p for p in paths if p.endswith(".parquet")}


def test_delete_kinds_daft_cannot_apply_are_refused_in_one_line():
    engine = D.DaftEngine(D.Reach("http://127.0.0.1:1", None, None, None, None, None), TableState)
    for kind, words in (("equality", "equality deletes"), ("dv", "deletion vectors")):
        d = DeleteFile(key=f"t/data/deletes-{kind}.parquet", size=10, kind=kind, seq=2)
        with pytest.raises(EngineRefused, match=words) as exc:
            engine.answer(Aggregate(("cycles",), Filters()), TableState(5, (d,)))
        assert "\n" not in exc.value.one_line() and "Daft" in exc.value.one_line()


@pytest.mark.s3
@pytest.mark.server
def test_a_table_with_an_equality_delete_is_refused_not_miscounted(
    s3_admin, bucket, moto_endpoint, tmp_path
):
    from o11y_data import load_settings
    from tests.support.engine_tables import arrow_rows
    from tests.support.reference_tables import RefTable

    ref = RefTable.create(endpoint=moto_endpoint, s3=s3_admin, bucket=bucket, db=tmp_path / "c.db")
    days = history(days=2, per_day=3)
    ref.append(arrow_rows(days[0]))
    ref.delete_equal("value", [days[0][0][1]], like=sorted(ref.data_files())[0])
    catalog = RestCatalog(
        location=lambda: ref.table.metadata_location,
        s3=s3_admin,
        bucket=bucket,
        endpoint=moto_endpoint,
    )
    try:
        env = r2_env(
            moto_endpoint,
            bucket,
            tmp_path / "cache",
            O11Y_CATALOG_URI=catalog.uri,
            O11Y_CATALOG_TOKEN=TOKEN,
            O11Y_ENGINE="daft",
        )
        settings = load_settings(env, secrets_paths=[])
        state = table_state(settings)
        assert {d.kind for d in state.delete_files} == {"equality"}
        with pytest.raises(EngineRefused, match="equality deletes") as exc:
            engine_for(settings).answer(Aggregate(("cycles",), Filters()), state)
        assert "\n" not in exc.value.one_line()
    finally:
        catalog.close()


# -- rendering ---------------------------------------------------------------------------------


def test_filter_and_nullif_become_case_with_the_same_meaning():
    assert D.daft_sql("count(*) FILTER (WHERE errors > 0)") == (
        "count(CASE WHEN errors > 0 THEN 1 ELSE NULL END)"
    )
    assert D.daft_sql("count(DISTINCT agent) FILTER (WHERE agent <> 'a)(')") == (
        "count(DISTINCT CASE WHEN agent <> 'a)(' THEN agent ELSE NULL END)"
    )
    assert D.daft_sql("CAST(sum(x) AS DOUBLE) / nullif(count(*), 0)") == (
        "CAST(sum(x) AS DOUBLE) / (CASE WHEN (count(*)) = (0) THEN NULL ELSE (count(*)) END)"
    )


def test_every_portable_catalog_measure_runs_in_daft_and_the_rest_are_refused():
    import daft

    D.use_runner(None)
    ev = daft.from_pydict(
        {
            "ts": pd.to_datetime(["2026-10-01T00:00:00Z", "2026-10-01T01:00:00Z"]).tolist(),
            "agent": ["a", "unknown"],
            "mode": ["think", "reflection"],
            "duration_ms": [10, 30],
            "tool_calls": [1, None],
            "errors": [0, 2],
        }
    )
    got = {}
    for name, m in M.CATALOG.items():
        if not m.portable:
            with pytest.raises(EngineRefused, match=name):
                D.measure_sql(m)
            continue
        sql = f"SELECT {D.measure_sql(m)} AS v FROM ev"
        got[name] = daft.sql(sql, register_globals=False, ev=ev).to_pydict()["v"][0]
    assert got["cycles"] == 2 and got["error_cycles"] == 1 and got["agents"] == 1
    assert got["error_rate"] == 0.5 and got["think_share"] == 0.5 and got["p50_ms"] == 20.0
    assert got["avg_ms"] == 20 and got["tools"] == 1 and got["unknown_errors"] == 2


def test_daft_needs_the_rest_catalog_and_takes_the_ray_address(tmp_path):
    from o11y_data import load_settings

    env = {
        "O11Y_CACHE_DIR": str(tmp_path),
        "O11Y_R2_ACCOUNT_ID": "acct",
        "O11Y_R2_ACCESS_KEY_ID": "k",
        "O11Y_R2_SECRET_ACCESS_KEY": "s",
        "O11Y_ENGINE": "daft",
    }
    with pytest.raises(O11yError, match="O11Y_CATALOG_URI") as exc:
        load_settings(env, secrets_paths=[])
    assert "\n" not in exc.value.one_line()
    s = load_settings(
        {**env, "O11Y_CATALOG_URI": "http://127.0.0.1:1", "O11Y_RAY_ADDRESS": "127.0.0.1:6390"},
        secrets_paths=[],
    )
    e = engine_for(s)
    assert isinstance(e, D.DaftEngine) and e.ray_address == "127.0.0.1:6390"


# -- on a Ray cluster: a head and one worker on loopback -----------------------------------


def _dump(answer: Any) -> dict[str, Any]:
    return {
        "engine": answer.engine,
        "frame": answer.frame.to_json(orient="split", date_format="iso", date_unit="us"),
        "next_before": answer.next_before.isoformat() if answer.next_before else None,
        "exact": answer.exact,
    }


@pytest.mark.s3
@pytest.mark.server
@pytest.mark.slow
def test_daft_on_a_ray_cluster_answers_as_the_store(table, ray_cluster):
    settings, _, env = table
    child = {**ray_cluster.env, **env, "O11Y_RAY_ADDRESS": ray_cluster.address}
    out = subprocess.run(
        [sys.executable, "-m", "tests.support.daft_child"],
        cwd=ROOT,
        env=child,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    answers = json.loads(out.stdout.strip().splitlines()[-1])
    router = Router(open_db(settings))
    qs = _questions()
    assert len(answers) == len(qs)
    for q, got in zip(qs, answers, strict=True):
        assert got["engine"] == "Daft (on Ray)"
        local = router.ask(q)
        remote = _load(got, local.frame)
        _compare(local, remote, q)


class _Loaded:
    def __init__(self, frame: pd.DataFrame, next_before: Any, exact: bool) -> None:
        self.frame, self.next_before, self.exact = frame, next_before, exact


def _load(got: dict[str, Any], like: pd.DataFrame) -> _Loaded:
    import io

    df = pd.read_json(io.StringIO(got["frame"]), orient="split", dtype=False)
    for col in df.columns:
        if col in like.columns and isinstance(like[col].dtype, pd.DatetimeTZDtype):
            df[col] = pd.to_datetime(df[col], utc=True, format="ISO8601")
    nb = pd.Timestamp(got["next_before"]).to_pydatetime() if got["next_before"] else None
    return _Loaded(df, nb, got["exact"])


@pytest.mark.parametrize(
    "limit, rows, edge", [(2, 4, 2), (4, 4, 2), (5, 5, 1), (6, 5, None)], ids=str
)
def test_newest_rows_never_split_rows_sharing_the_edges_time(limit, rows, edge):
    import daft

    D.use_runner(None)
    t = [pd.Timestamp(f"2026-10-01T0{h}:00:00Z") for h in (3, 2, 2, 2, 1)]
    ev = daft.from_pydict(
        {c: t if c in ("ts", "ingest_ts") else [f"{c}{i}" for i in range(5)] for c in ROW_COLS}
    )
    engine = D.DaftEngine(D.Reach("http://127.0.0.1:1", None, None, None, None, None), TableState)
    got, more = engine.newest_rows(NewestRows(Filters(), limit=limit), ev)
    assert len(got) == rows
    assert more == (None if edge is None else t[4] if edge == 1 else t[1])
    assert list(got["ts"]) == sorted(got["ts"], reverse=True)


ROW_COLS = D.ROW_COLUMNS
