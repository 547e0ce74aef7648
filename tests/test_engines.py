"""The R2 SQL engine against its loopback fake (DataFusion over the same Parquet files): the
documented request and response shapes, escaping of hostile literals, keyset paging, errors as
one line, refused delete kinds, and the same answers as the local store through the planner's
questions (also on a pyiceberg table with compaction leftovers, an orphan and position deletes).
"""

from __future__ import annotations

import json
import math
import urllib.request
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from o11y_data import open_db
from o11y_data.config import Secret
from o11y_data.errors import O11yError
from o11y_data.ingest.iceberg import DeleteFile
from o11y_data.query.engines.base import (
    Aggregate,
    EngineError,
    EngineRefused,
    NewestRows,
    TableState,
)
from o11y_data.query.engines.r2sql import Client, R2SQLEngine, literal
from o11y_data.query.planner import Filters
from o11y_data.query.route import Router
from tests.support import r2sql_fake as fake_mod
from tests.support.engine_tables import (
    COMPARED_MEASURES,
    START,
    folder_rows,
    history,
    synced_settings,
    write_folder,
)

HOSTILE = [
    "'; DROP TABLE agent_network.events; --",
    "O'Brien''s",
    "back\\slash\\",
    "\\'",
    '"double" quotes',
    "%_ like wildcards",
    "é漢字🙂 \u202e rtl",
    "line\nbreak\ttab\r",
    "x" * 4096,
]


@pytest.fixture(scope="module")
def history_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("engines")
    src = root / "src"
    write_folder(src, history())
    settings = synced_settings(src, root)
    return settings, src


@pytest.fixture
def fake(history_store):
    _, src = history_store
    table = folder_rows(src)
    f = fake_mod.FakeR2SQL(rows=lambda: table)
    server, thread = fake_mod.serve(f)
    yield f
    fake_mod.stop(f, server, thread)


def client(f: fake_mod.FakeR2SQL, **kw) -> Client:
    return Client(f.endpoint, f.account, f.bucket, Secret(kw.pop("token", f.token)), **kw)


def engine(f: fake_mod.FakeR2SQL, snapshot: int = 7) -> R2SQLEngine:
    return R2SQLEngine(client(f), "agent_network.events", lambda: TableState(snapshot))


# -- the documented shapes -------------------------------------------------------------------


def post(f, body: bytes, *, token: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"{f.endpoint}/api/v1/accounts/{f.account}/basin-sql/query/{f.bucket}",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token or f.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_fake_answers_in_cloudflares_documented_envelope(fake):
    status, doc = post(fake, json.dumps({"query": "SELECT 1 AS one"}).encode())
    assert status == 200 and doc["success"] is True and doc["errors"] == []
    assert doc["result"]["schema"] == [{"name": "one", "type": "Int64"}]
    assert doc["result"]["rows"] == [{"one": 1}]
    assert set(doc["result"]["metrics"]) >= {"bytes_scanned", "files_scanned"}
    status, doc = post(fake, b'{"query": "SELECT 1"}', token="wrong")
    assert status == 401 and doc["success"] is False
    assert {"code", "message"} <= set(doc["errors"][0])
    status, doc = post(fake, json.dumps({"query": "SELECT 1 LIMIT 1 OFFSET 1"}).encode())
    assert status == 400 and "OFFSET" in doc["errors"][0]["message"]


def test_the_adapter_sends_bearer_json_and_never_offset(fake, history_store):
    e = engine(fake)
    page = e.answer(NewestRows(Filters(), limit=3), TableState(7))
    assert len(page.frame) >= 3
    assert all(r["content_type"] == "application/json" for r in fake.requests)
    assert not any("OFFSET" in r["query"].upper() for r in fake.requests)


# -- literals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_a_hostile_literal_reads_back_unchanged_through_the_engine(fake, text):
    result = client(fake).query(f"SELECT {literal(text)} AS v")
    assert result.rows == [{"v": text}]


@pytest.mark.parametrize(
    "text, why", [("a\x00b", "NUL"), ("\ud800", "surrogate"), ("x" * 4097, "4,096")]
)
def test_a_literal_that_cannot_be_sent_whole_is_refused_in_one_line(text, why):
    with pytest.raises(ValueError, match=why) as exc:
        literal(text)
    assert "\n" not in str(exc.value)


def test_a_hostile_search_finds_only_rows_holding_it_never_changes_the_query(fake):
    e = engine(fake)
    for text in HOSTILE[:4]:
        got = e.answer(NewestRows(Filters(), limit=50, search=text), TableState(7))
        assert got.frame.empty  # nothing holds these texts; no error, nothing dropped
    got = e.answer(NewestRows(Filters(), limit=500, search="BETA"), TableState(7))
    assert len(got.frame) and all(
        "beta" in (a or "").lower() or "beta" in r.lower()
        for a, r in zip(got.frame["agent"], got.frame["raw"], strict=True)
    )


# -- paging ----------------------------------------------------------------------------------


def test_keyset_paging_returns_every_event_once_newest_first(fake, history_store):
    settings, _ = history_store
    e = engine(fake)
    seen: list[tuple] = []
    before = None
    for _ in range(100):
        page = e.answer(NewestRows(Filters(), limit=7, before=before), TableState(7))
        seen += list(zip(page.frame["ts"], page.frame["raw"], strict=True))
        before = page.next_before
        if before is None:
            break
    db = open_db(settings)
    local = db.query("SELECT ts, raw FROM events WHERE ts IS NOT NULL ORDER BY ts DESC")
    assert sorted(seen) == sorted(zip(local["ts"], local["raw"], strict=True))
    assert [t for t, _ in seen] == sorted((t for t, _ in seen), reverse=True)


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault, says",
    [("html", "not JSON"), ("garbled", "result.schema"), ("hang", "timed out")],
)
def test_http_faults_are_one_line_without_the_token(fake, fault, says):
    fake.fault = fault
    with pytest.raises(EngineError, match=says) as exc:
        client(fake, timeout_s=0.5).query("SELECT 1 AS one")
    line = exc.value.one_line()
    assert "\n" not in line and fake.token not in line


def test_a_rejected_token_and_an_unreachable_endpoint_are_one_line(fake):
    with pytest.raises(EngineError, match="rejected the token") as exc:
        client(fake, token="not-the-token-abc").query("SELECT 1")
    assert "not-the-token-abc" not in exc.value.one_line()
    gone = Client("http://127.0.0.1:9", "a", "b", Secret("tok-xyz"), timeout_s=2)
    with pytest.raises(EngineError, match="Cannot reach R2 SQL") as exc:
        gone.query("SELECT 1")
    assert "tok-xyz" not in exc.value.one_line() and "\n" not in exc.value.one_line()


def test_a_query_error_names_the_engine_message_in_one_line(fake):
    with pytest.raises(EngineError, match=r"HTTP 400: 40000 .*no_such_column") as exc:
        client(fake).query("SELECT no_such_column FROM agent_network.events")
    assert "\n" not in exc.value.one_line()


# -- delete files ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, word", [("equality", "equality deletes"), ("dv", "deletion vec")])
def test_delete_kinds_r2_sql_is_not_documented_to_apply_are_refused(fake, kind, word):
    d = DeleteFile(key=f"t/data/deletes-{kind}-1.parquet", size=10, kind=kind, seq=2)
    state = TableState(9, (d,))
    with pytest.raises(EngineRefused, match=word) as exc:
        engine(fake).answer(Aggregate(("cycles",), Filters()), state)
    line = exc.value.one_line()
    assert f"deletes-{kind}-1.parquet" in line and "snapshot 9" in line and "\n" not in line
    assert fake.requests == []  # refused before asking


def test_position_deletes_are_read_by_the_engine(fake):
    d = DeleteFile(key="t/data/deletes-pos.parquet", size=10, kind="position", seq=2)
    got = engine(fake).answer(Aggregate(("cycles",), Filters()), TableState(9, (d,)))
    assert int(got.frame["cycles"][0]) > 0


def test_a_metric_only_the_store_can_spell_is_refused(fake):
    with pytest.raises(EngineRefused, match="lag_p95_s"):
        engine(fake).answer(Aggregate(("lag_p95_s",), Filters()), TableState(1))


# -- same answers ------------------------------------------------------------------------------

MEASURES = COMPARED_MEASURES
WINDOWS = [
    Filters(),
    Filters(START + timedelta(hours=5, minutes=17), START + timedelta(days=9, hours=3)),
    Filters(START + timedelta(days=2), START + timedelta(days=4), agents=("did:cf:beta",)),
    Filters(START, START + timedelta(days=12), modes=("think", "reflection"), errors_only=True),
]


def _canonical(df: pd.DataFrame) -> list[tuple]:
    out = []
    for row in df.to_dict("records"):
        vals = []
        for k, v in sorted(row.items()):
            if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
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
    assert _canonical(local) == _canonical(remote)


# Each grouping and each window at least once (the full cross product costs 4× for little).
CASES = [(None, 0), ("agent", 1), ("mode", 2), (3600, 3), (86400, 1), (("agent", "mode"), 3)]


@pytest.mark.parametrize("group, w", CASES, ids=[f"{g}-{w}" for g, w in CASES])
def test_store_and_engine_give_equal_answers_through_the_planners_questions(
    fake, history_store, group, w
):
    settings, _ = history_store
    router = Router(open_db(settings))
    q = Aggregate(MEASURES, WINDOWS[w], group=group)
    local = router.ask(q)
    assert local.engine == "local store"
    remote = engine(fake).answer(q, TableState(7))
    _same(local.frame, remote.frame)


def test_exact_percentiles_are_equal_where_both_are_exact(fake, history_store):
    settings, _ = history_store
    router = Router(open_db(settings))
    f = Filters(START + timedelta(days=1, hours=2), START + timedelta(days=6))  # under 7 days
    for group in (None, "agent"):
        q = Aggregate(("p50_ms", "p95_ms", "p99_ms", "cycles"), f, group=group)
        local = router.ask(q)
        assert local.exact
        remote = engine(fake).answer(q, TableState(7))
        assert remote.exact
        a = local.frame.sort_values(list(local.frame.columns[:1])).reset_index(drop=True)
        b = remote.frame.sort_values(list(remote.frame.columns[:1])).reset_index(drop=True)
        for col in ("p50_ms", "p95_ms", "p99_ms"):
            assert list(a[col]) == pytest.approx(list(b[col]), rel=1e-6)
        assert list(a["cycles"]) == [int(v) for v in b["cycles"]]


def test_events_of_every_type_and_the_newest_rows_match_the_store(fake, history_store):
    settings, _ = history_store
    router = Router(open_db(settings))
    q = Aggregate(("events", "agents"), Filters(event_types=("agent.note",)), rows="events")
    _same(router.ask(q).frame, engine(fake).answer(q, TableState(7)).frame)
    rows = NewestRows(Filters(START + timedelta(days=3), START + timedelta(days=8)), limit=9)
    local, remote = router.ask(rows), engine(fake).answer(rows, TableState(7))
    cols = ["ts", "ingest_ts", "event_type", "agent", "mode", "duration_ms", "tool_calls"]
    cols += ["errors", "raw"]
    _same(local.frame[cols], remote.frame[cols])
    assert local.next_before == remote.next_before


# -- the same on a pyiceberg table with leftovers, an orphan and position deletes ----------


@pytest.mark.s3
def test_a_reference_table_with_leftovers_orphan_and_position_deletes_answers_alike(
    s3_admin, bucket, moto_endpoint, tmp_path
):
    from o11y_data import sync
    from tests.support.engine_tables import leftovers_orphan_deletes
    from tests.support.reference_tables import RefTable
    from tests.support.tables import r2_settings

    ref = RefTable.create(
        endpoint=moto_endpoint, s3=s3_admin, bucket=bucket, db=tmp_path / "catalog.db"
    )
    # Compaction leftovers, an orphan named by no manifest, a position delete per partition.
    leftovers_orphan_deletes(ref, history(days=4, per_day=6))
    settings = r2_settings(moto_endpoint, bucket, tmp_path / "cache")
    sync(settings)
    oracle = ref.reference().select(["__ingest_ts", "value"])
    f = fake_mod.FakeR2SQL(rows=lambda: oracle)
    server, thread = fake_mod.serve(f)
    try:
        from o11y_data.query.engines.catalog import table_state

        state = table_state(settings)
        assert state.snapshot_id == ref.table.current_snapshot().snapshot_id
        assert {d.kind for d in state.delete_files} == {"position"}
        e = R2SQLEngine(client(f), "agent_network.events", lambda: state)
        router = Router(open_db(settings))
        for group in (None, "agent", 3600):
            q = Aggregate(MEASURES, Filters(), group=group)
            _same(router.ask(q).frame, e.answer(q, state).frame)
    finally:
        fake_mod.stop(f, server, thread)


def test_the_engine_is_configured_from_the_environment(tmp_path: Path):
    from o11y_data import load_settings

    env = {
        "O11Y_CACHE_DIR": str(tmp_path),
        "O11Y_ENGINE": "r2sql",
        "O11Y_R2_ACCOUNT_ID": "acct",
        "O11Y_R2_ACCESS_KEY_ID": "k",
        "O11Y_R2_SECRET_ACCESS_KEY": "s",
        "O11Y_R2_SQL_TOKEN": "sql-token-secret",
        "O11Y_R2_SQL_ENDPOINT": "http://127.0.0.1:1/",
    }
    s = load_settings(env, secrets_paths=[])
    e = R2SQLEngine.from_settings(s)
    assert e.client.url == "http://127.0.0.1:1/api/v1/accounts/acct/basin-sql/query/agent-blobs"
    assert "sql-token-secret" not in repr(s)
    with pytest.raises(O11yError, match="O11Y_R2_SQL_TOKEN"):
        load_settings({**env, "O11Y_R2_SQL_TOKEN": ""}, secrets_paths=[])
    with pytest.raises(O11yError, match="O11Y_ENGINE"):
        load_settings({**env, "O11Y_ENGINE": "spark"}, secrets_paths=[])


@pytest.mark.parametrize("text", ["a\x00b", "y" * 5000])
def test_a_search_the_engine_cannot_take_is_refused_in_one_line_not_raised(fake, text):
    with pytest.raises(EngineRefused, match="cannot be asked") as exc:
        engine(fake).answer(NewestRows(Filters(), search=text), TableState(1))
    assert "\n" not in exc.value.one_line() and fake.requests == []


def test_the_engine_reads_the_snapshot_the_rest_catalog_names(
    s3_admin, bucket, tmp_path, moto_endpoint
):
    from o11y_data import sync
    from o11y_data.query.engines.catalog import table_state
    from tests.support.tables import append, event, new_table, rows, s3_put
    from tests.test_catalog import Catalog, settings_for

    catalog = Catalog()
    try:
        writer = new_table(s3_put(s3_admin, bucket), bucket)
        append(writer, rows([event(ms=1)]))
        prefix = f"{writer.table_prefix}metadata/"
        listed = s3_admin.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
        named = sorted(o["Key"] for o in listed if o["Key"].endswith(".metadata.json"))[-1]
        catalog.location = f"s3://{bucket}/{named}"
        append(writer, rows([event(ms=2)]))  # a newer file the catalog does not name
        settings = settings_for(moto_endpoint, bucket, tmp_path, catalog)
        sync(settings)
        body = s3_admin.get_object(Bucket=bucket, Key=named)["Body"].read()
        assert table_state(settings).snapshot_id == json.loads(body)["current-snapshot-id"]
    finally:
        catalog.server.shutdown()


def test_an_engine_error_that_echoes_the_token_never_shows_it(fake):
    with pytest.raises(EngineError) as exc:
        client(fake).query(f"SELECT CAST({literal(fake.token)} AS INT) AS n")
    line = exc.value.one_line()
    assert "***" in line and fake.token not in line
