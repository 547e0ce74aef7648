"""Sync against a real S3 server process (moto_server over HTTP on loopback)."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from o11y_data import O11yError, open_db, sync
from o11y_data.ingest.source import make_s3_client
from o11y_data.query import queries as q
from tests.support.cli import cli
from tests.support.tables import (
    PREFIX,
    T0,
    append,
    event,
    new_table,
    plain_parquet,
    r2_env,
    r2_settings,
    rows,
    s3_put,
)


def data_gets(requests: list[tuple[str, str]]) -> list[str]:
    from urllib.parse import unquote

    return [unquote(p.split("?")[0]) for m, p in requests if m == "GET" and ".parquet" in p]


def test_compacted_files_are_not_counted_twice(s3_admin, bucket, proxy, tmp_path):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    a = rows([event(ms=100), event(ms=200)])
    b = rows([event(ms=300)], start=T0.replace(hour=13))
    c = rows([event(ms=400, agent="did:cf:beta")], start=T0.replace(hour=14))
    keys = append(writer, a, b)
    append(writer, c)
    from o11y_data.ingest.iceberg_write import unstructured_table

    writer.compact(keys, unstructured_table(a + b))  # a and b stay in data/, no longer live
    # An orphan of a failed write: in data/, named by no snapshot.
    s3_admin.put_object(
        Bucket=bucket,
        Key=f"{PREFIX}data/__ingest_ts_day=2026-11-02/orphan.parquet",
        Body=plain_parquet(rows([event(ms=9999)])),
    )
    # Another table's blob and an unrelated object in the same bucket.
    s3_admin.put_object(Bucket=bucket, Key="blobs/agent-state.bin", Body=b"x" * 10)

    report = sync(r2_settings(proxy.endpoint, bucket, tmp_path))
    assert report.rows == 4  # a (2) + b (1) + c (1), each once
    assert report.live_files == 2  # the compacted file and c
    db = open_db(r2_settings(proxy.endpoint, bucket, tmp_path))
    got = db.query("SELECT sum(duration_ms) AS s, count(*) AS n FROM cycles").iloc[0]
    assert (int(got.n), int(got.s)) == (4, 100 + 200 + 300 + 400)
    fetched = data_gets(proxy.requests)
    assert not [p for p in fetched if "orphan" in p]
    assert len(fetched) == 2


def test_second_sync_after_growth_fetches_only_new_live_files(s3_admin, bucket, proxy, tmp_path):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    append(writer, rows([event()]), rows([event()]))
    settings = r2_settings(proxy.endpoint, bucket, tmp_path)
    sync(settings)
    proxy.clear_requests()
    new_keys = append(writer, rows([event(ms=5)]), rows([event(ms=6)]), rows([event(ms=7)]))
    report = sync(settings)
    fetched = data_gets(proxy.requests)
    assert sorted(p.split(f"/{bucket}/", 1)[1] for p in fetched) == sorted(new_keys)
    assert report.downloaded == 3 and report.rows == 5


def test_nothing_new_sync_costs_a_few_requests(s3_admin, bucket, proxy, tmp_path):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    for i in range(6):  # some history: several metadata versions
        append(writer, rows([event(ms=i)]))
    settings = r2_settings(proxy.endpoint, bucket, tmp_path)
    sync(settings)
    proxy.clear_requests()
    report = sync(settings)
    assert not report.changed
    assert len(proxy.requests) <= 3, proxy.requests
    assert all(m == "GET" and "list-type=2" in p for m, p in proxy.requests)


def test_no_write_request_ever_reaches_the_bucket(s3_admin, bucket, proxy, tmp_path):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    append(writer, rows([event()]))
    settings = r2_settings(proxy.endpoint, bucket, tmp_path)
    sync(settings)
    append(writer, rows([event()]))
    sync(settings)
    assert cli(r2_env(proxy.endpoint, bucket, tmp_path), "sync").returncode == 0
    methods = {m for m, _ in proxy.requests}
    assert methods <= {"GET", "HEAD"}, methods
    # The client itself refuses to write, whatever code asks it to.
    client = make_s3_client(settings)
    with pytest.raises(O11yError, match="only reads"):
        client.put_object(Bucket=bucket, Key="x", Body=b"")
    with pytest.raises(O11yError, match="only reads"):
        client.delete_object(Bucket=bucket, Key=f"{PREFIX}metadata/x")


def test_more_than_1000_keys_are_all_listed(s3_admin, bucket, proxy, tmp_path):
    # A folder of Parquet without metadata (what `wrangler r2 object get` leaves), beside the
    # checksum files a Hadoop writer leaves (`.crc`, not data): 1,050 keys, two listing pages.
    # Every 21st key is Parquet, so data files sit on both pages; the last page holds the
    # highest `ms`, whose sum tells any file missed or counted twice.
    prefix = "exports/events/"
    n, every = 1_050, 21
    parquet = [i for i in range(n) if i % every == 0]

    def put(i: int) -> None:
        if i % every:
            key, body = f"{prefix}part-{i:05d}.crc", b"crc"
        else:
            key = f"{prefix}part-{i:05d}.parquet"
            body = plain_parquet(rows([event(ms=i, agent=f"did:cf:a{i % 7}")]))
        s3_admin.put_object(Bucket=bucket, Key=key, Body=body)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(n)))
    settings = r2_settings(proxy.endpoint, bucket, tmp_path, O11Y_TABLE_PREFIX=prefix)
    report = sync(settings)
    assert report.live_files == len(parquet) and report.rows == len(parquet)
    lists = [p for m, p in proxy.requests if "list-type=2" in p and "continuation-token" in p]
    assert lists, "the second page of the listing was never asked for"
    assert [i for i in parquet if i >= 1_000], "no Parquet file on the second page"
    db = open_db(settings)
    assert int(db.query("SELECT sum(duration_ms) AS s FROM cycles").iloc[0].s) == sum(parquet)


def test_new_metadata_found_past_the_first_listing_page(s3_admin, bucket, proxy, tmp_path):
    # 1,100 old metadata versions before the live one: only pagination reaches the newest.
    old = json.dumps({"format-version": 2, "current-snapshot-id": None, "snapshots": []})

    def put(i: int) -> None:
        s3_admin.put_object(
            Bucket=bucket, Key=f"{PREFIX}metadata/{i:05d}-old.metadata.json", Body=old.encode()
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(1_100)))
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    writer.version = 1_099
    append(writer, rows([event(ms=42)]))
    report = sync(r2_settings(proxy.endpoint, bucket, tmp_path))
    assert report.rows == 1


def test_cli_outputs_match_numbers_computed_by_hand(s3_admin, bucket, tmp_path, moto_endpoint):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    t = T0
    # beta: 2 think (1000, 2001 ms -> avg 1500.5 -> 1501), tools 3+4, errors 0+2
    # alpha: think 3 cycles (10, 20, "30") ; reflection 1 (None duration); errors 1, null, "n/a"
    append(
        writer,
        rows(
            [
                event(agent="did:cf:beta", ms=1000, tools=3, errors=0, ts=t),
                event(agent="did:cf:beta", ms=2001, tools=4, errors=2, ts=t),
                event(agent="did:cf:alpha", ms=10, tools=1, errors=1, ts=t),
                event(agent="did:cf:alpha", ms=20, tools="2", errors=None, ts=t),
            ]
        ),
        rows(
            [
                event(agent="did:cf:alpha", ms="30", tools=None, errors="n/a", ts=t),
                event(agent="did:cf:alpha", mode="reflection", ms=None, tools=5, errors=0, ts=t),
                event(agent="did:cf:alpha", event_type="agent.wake", ms=99999, ts=t),
                "not json at all",
            ]
        ),
    )
    env = r2_env(moto_endpoint, bucket, tmp_path)
    r = cli(env, "sync")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("\n") == 1 and "2 new files" in r.stdout
    r = cli(env, "summary", "--format", "csv", "--range", "all")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "agent,mode,cycles,avg_ms,tools,errors",
        "did:cf:alpha,think,3,20,3,1",
        "did:cf:alpha,reflection,1,,5,0",
        "did:cf:beta,think,2,1501,7,2",
    ]
    r = cli(env, "summary", "--format", "json", "--agent", "did:cf:beta", "--range", "all")
    assert json.loads(r.stdout) == [
        {
            "agent": "did:cf:beta",
            "mode": "think",
            "cycles": 2,
            "avg_ms": 1501,
            "tools": 7,
            "errors": 2,
        }
    ]
    r = cli(env, "summary", "--mode", "reflection", "--range", "all")
    assert "did:cf:alpha" in r.stdout and "did:cf:beta" not in r.stdout
    assert "1 unparseable" in r.stderr and "source: R2 bucket" in r.stderr
    r = cli(env, "summary", "--since", "2026-11-03")
    assert "No data" in r.stdout
    r = cli(env, "status")
    assert r.returncode == 0
    status = dict((line[:18].strip(), line[18:].strip()) for line in r.stdout.splitlines())
    assert status["live files"] == "2" and status["rows"] == "8"
    assert status["unparseable rows"] == "1"
    assert status["newest event"].startswith("2026-11-02 12:00:00")
    assert "testing-secret-value" not in r.stdout + r.stderr


def _intact(cache: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(cache)): p.read_bytes()
        for p in sorted(cache.rglob("*"))
        if p.is_file()
        and p.name not in {"status.json", "sync.lock"}
        and not p.name.startswith("o11y.log")  # the log records the failure, as it should
    }


@pytest.fixture
def synced(s3_admin, bucket, tmp_path, moto_endpoint):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    append(writer, rows([event(ms=7)]))
    env = r2_env(moto_endpoint, bucket, tmp_path)
    assert cli(env, "sync").returncode == 0
    return env, writer, _intact(tmp_path)


def _one_line_failure(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ")
    for n in needles:
        assert n in lines[0], lines[0]
    assert "Traceback" not in r.stderr and "testing-secret-value" not in r.stderr + r.stdout


def test_bad_credentials_give_one_line_and_keep_the_cache(synced, proxy, tmp_path, bucket):
    env, writer, before = synced
    append(writer, rows([event(ms=8)]))
    proxy.fail_next(10_000, status=403, code="InvalidAccessKeyId")
    r = cli({**env, "O11Y_R2_ENDPOINT": proxy.endpoint}, "sync")
    _one_line_failure(r, "credentials")
    assert _intact(tmp_path) == before


def test_unreachable_endpoint_gives_one_line_and_keeps_the_cache(synced, tmp_path):
    env, _, before = synced
    from tests.support import free_port

    r = cli({**env, "O11Y_R2_ENDPOINT": f"http://127.0.0.1:{free_port()}"}, "sync")
    _one_line_failure(r, "Cannot reach R2")
    assert _intact(tmp_path) == before


def test_missing_bucket_gives_one_line_and_keeps_the_cache(synced, tmp_path):
    env, _, before = synced
    r = cli({**env, "O11Y_BUCKET": "no-such-bucket-here"}, "sync")
    _one_line_failure(r, "Bucket not found", "no-such-bucket-here")
    # A different bucket is a different source: its own corner of the cache, the old one intact.
    assert {k: v for k, v in _intact(tmp_path).items() if k in before} == before


def test_ambiguous_table_lists_the_candidates(s3_admin, bucket, tmp_path, moto_endpoint):
    put = s3_put(s3_admin, bucket)
    append(new_table(put, bucket, "__r2_data_catalog/cat0001/tblA/"), rows([event()]))
    append(new_table(put, bucket, "__r2_data_catalog/cat0001/tblB/"), rows([event()]))
    other = new_table(put, bucket, "__r2_data_catalog/cat0001/blobs/")
    other.columns = [("id", "string"), ("size", "long")]
    other.commit([])
    r = cli(r2_env(moto_endpoint, bucket, tmp_path), "sync")
    _one_line_failure(r, "More than one event table", "tblA/", "tblB/", "value")
    assert "blobs/" not in r.stderr
    r = cli(
        r2_env(
            moto_endpoint, bucket, tmp_path, O11Y_TABLE_PREFIX="__r2_data_catalog/cat0001/tblB/"
        ),
        "sync",
    )
    assert r.returncode == 0, r.stderr


def test_no_event_table_names_what_it_found(s3_admin, bucket, tmp_path, moto_endpoint):
    other = new_table(s3_put(s3_admin, bucket), bucket, "__r2_data_catalog/cat0001/blobs/")
    other.columns = [("id", "string"), ("size", "long")]
    other.commit([])
    r = cli(r2_env(moto_endpoint, bucket, tmp_path), "sync")
    _one_line_failure(r, "No event table found", "blobs/ (id, size)")


def test_metadata_naming_a_missing_file_keeps_the_previous_snapshot(
    s3_admin, bucket, tmp_path, moto_endpoint, caplog
):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    append(writer, rows([event(ms=1)]))
    settings = r2_settings(moto_endpoint, bucket, tmp_path)
    sync(settings)
    keys = append(writer, rows([event(ms=2)]))
    s3_admin.delete_object(Bucket=bucket, Key=keys[0])
    with (
        caplog.at_level("WARNING", logger="o11y_data.ingest.sync"),
        pytest.raises(O11yError, match="missing") as exc,
    ):
        sync(settings)
    line = str(exc.value)
    # The key, and that syncing again will not help (the current metadata names it): what to check.
    assert line.startswith(f"Object missing: {keys[0]} is not in R2 bucket {bucket} at ")
    assert "\n" not in line
    assert "will not help" in line and "O11Y_BUCKET" in line
    assert any(keys[0] in r.getMessage() for r in caplog.records)  # the log names it too
    db = open_db(settings)
    assert int(db.query("SELECT count(*) AS n FROM cycles").iloc[0].n) == 1
    assert "missing" in (q.freshness(db)["last_error"] or "")


def test_structured_stream_gives_the_same_events(s3_admin, bucket, tmp_path, moto_endpoint):
    import pyarrow as pa

    from o11y_data.ingest.iceberg_write import parquet_bytes

    writer = new_table(s3_put(s3_admin, bucket), bucket)
    writer.columns = [
        ("__ingest_ts", "timestamptz"),
        ("event_type", "string"),
        ("agent", "string"),
        ("mode", "string"),
        ("durationMs", "long"),
        ("toolCalls", "long"),
        ("errors", "long"),
        ("_ts", "string"),
    ]
    table = pa.table(
        {
            "__ingest_ts": pa.array([T0, T0], pa.timestamp("us", tz="UTC")),
            "event_type": ["agent.cycle", "agent.cycle"],
            "agent": ["did:cf:s", ""],
            "mode": ["think", "housekeeping"],
            "durationMs": pa.array([1500, None], pa.int64()),
            "toolCalls": pa.array([2, 3], pa.int64()),
            "errors": pa.array([0, 1], pa.int64()),
            "_ts": ["2026-11-02T11:59:00Z", None],
        }
    )
    key = f"{PREFIX}data/__ingest_ts_day=2026-11-02/structured.parquet"
    data = parquet_bytes(table)
    s3_admin.put_object(Bucket=bucket, Key=key, Body=data)
    writer.commit([(key, 2, len(data), 0)])
    settings = r2_settings(moto_endpoint, bucket, tmp_path)
    sync(settings)
    df = open_db(settings).query(
        "SELECT agent, mode, duration_ms, tool_calls, errors, ts, raw FROM cycles ORDER BY mode"
    )
    assert list(df.agent) == ["unknown", "did:cf:s"]
    assert [None if pd.isna(v) else int(v) for v in df.duration_ms] == [None, 1500]
    assert list(df.errors) == [1, 0]
    assert df.ts[1].isoformat() == "2026-11-02T11:59:00+00:00"
    assert df.ts[0] == T0  # no _ts: falls back to __ingest_ts
    assert json.loads(df.raw[1])["durationMs"] == 1500


def test_an_object_gone_because_the_table_moved_on_says_sync_again(
    s3_admin, bucket, proxy, tmp_path
):
    """A compaction lands while the sync downloads a file it replaced: the missing object is
    named and, since newer metadata exists, the line says a new sync helps (it does)."""
    import threading
    import time

    from o11y_data.errors import ObjectMissing
    from o11y_data.ingest.iceberg_write import unstructured_table

    writer = new_table(s3_put(s3_admin, bucket), bucket)
    a = rows([event(ms=100), event(ms=200)])
    (key,) = append(writer, a)
    name = key.rsplit("/", 1)[1]
    settings = r2_settings(proxy.endpoint, bucket, tmp_path)
    proxy.stall(name, 5.0)  # hold the download while the compaction commits
    failure: list[BaseException] = []

    def run() -> None:
        try:
            sync(settings)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            failure.append(exc)

    syncing = threading.Thread(target=run)
    syncing.start()
    deadline = time.monotonic() + 60
    while not any(m == "GET" and name in p for m, p in proxy.requests):
        assert time.monotonic() < deadline, "the sync never asked for the data file"
        time.sleep(0.02)
    writer.compact([key], unstructured_table(a))
    s3_admin.delete_object(Bucket=bucket, Key=key)
    syncing.join(timeout=120)
    assert not syncing.is_alive()
    (err,) = failure
    assert isinstance(err, ObjectMissing) and err.key == key
    line = str(err)
    assert line.startswith(f"Object missing: {key} is not in R2 bucket {bucket} at ")
    assert "; the table moved on while this sync read it" in line
    assert line.endswith("sync again") and "\n" not in line
    proxy.reset()
    assert sync(settings).rows == 2


@pytest.mark.parametrize("scheme", ["S3", "s3a", "S3N"])
def test_locations_in_any_s3_scheme_spelling_resolve(
    scheme, s3_admin, bucket, moto_endpoint, tmp_path
):
    """Iceberg's S3 file IO reads s3, s3a and s3n in any case: the same table state with its
    locations respelled gives the rows pyiceberg read before the respelling."""
    from tests.support.reference_tables import RefTable

    ref = RefTable.create(endpoint=moto_endpoint, s3=s3_admin, bucket=bucket, db=tmp_path / "c.db")
    ref.append(
        pa.table(
            {
                "__ingest_ts": pa.array([T0] * 2, pa.timestamp("us", tz="UTC")),
                "value": [event(ms=1), event(ms=2)],
            }
        )
    )
    ref.append(
        pa.table(
            {"__ingest_ts": pa.array([T0], pa.timestamp("us", tz="UTC")), "value": [event(ms=3)]}
        )
    )
    expected = ref.reference()
    key = ref.respell_locations(scheme)
    assert f'"{scheme}://' in s3_admin.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    settings = r2_settings(moto_endpoint, bucket, tmp_path / "cache")
    report = sync(settings)
    assert report.rows == expected.num_rows == 3 and not report.bad_files
    raws = open_db(settings).query("SELECT raw FROM events_all").raw
    assert sorted(raws) == sorted(expected.column("value").to_pylist())


def test_a_location_in_another_scheme_fails_in_one_line_naming_it(
    s3_admin, bucket, moto_endpoint, tmp_path
):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    writer.uri = lambda key: f"gs://{bucket}/{key}"  # type: ignore[method-assign]
    append(writer, rows([event(ms=1)]))
    with pytest.raises(O11yError, match=r"^Unsupported location: gs://") as exc:
        sync(r2_settings(moto_endpoint, bucket, tmp_path))
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("cache", ["fresh", "incremental"])
def test_a_corrupt_newest_metadata_file_names_it_without_an_unhelpful_hint(
    s3_admin, bucket, moto_endpoint, tmp_path, cache
):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    append(writer, rows([event(ms=1)]))
    settings = r2_settings(moto_endpoint, bucket, tmp_path)
    if cache == "incremental":
        sync(settings)
    key = f"{PREFIX}metadata/{writer.version + 1:05d}-0badc0de.metadata.json"
    s3_admin.put_object(Bucket=bucket, Key=key, Body=b'{"format-version": 2, "snapsh')
    r = cli(r2_env(moto_endpoint, bucket, tmp_path), "sync")
    _one_line_failure(r, key.rsplit("/", 1)[1])
    assert "O11Y_TABLE_PREFIX" not in r.stderr and "check what" in r.stderr
