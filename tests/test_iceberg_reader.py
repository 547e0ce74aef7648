"""The Iceberg reader against tables written by pyiceberg (the reference implementation), served
by moto_server over HTTP: our synced rows must be exactly what pyiceberg's scan returns.

Delete files pyiceberg cannot write are built as the spec says (tests/support/reference_tables.py)
and pyiceberg's scan of them is the oracle; for equality deletes, which pyiceberg does not read,
the oracle is a plain-Python reading of the spec.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from o11y_data import O11yError, open_db, sync
from o11y_data.ingest.store import Store
from tests.support.reference_tables import (
    TABLE_PREFIX,
    RefTable,
    as_v3,
    static_reference,
    unstructured_schema,
)
from tests.support.tables import T0, event, r2_env, r2_settings


def arrow_rows(values: list[str | bytes], *, start=T0, binary: bool = False) -> pa.Table:
    ts = [start + timedelta(seconds=i) for i in range(len(values))]
    return pa.table(
        {
            "__ingest_ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "value": pa.array(values, pa.binary() if binary else pa.string()),
        }
    )


def events(n: int, agent: str, *, start_ms: int = 0) -> list[str]:
    return [event(agent=agent, ms=start_ms + i) for i in range(n)]


@pytest.fixture
def ref(s3_admin, bucket, moto_endpoint, tmp_path) -> RefTable:
    return RefTable.create(
        endpoint=moto_endpoint, s3=s3_admin, bucket=bucket, db=tmp_path / "catalog.db"
    )


def synced_raws(settings) -> Counter:
    """Our store's rows, as a multiset of the raw event JSON."""
    df = open_db(settings).query("SELECT raw FROM events_all")
    return Counter(df.raw)


def reference_raws(table: pa.Table) -> Counter:
    return Counter(
        v.decode() if isinstance(v, bytes) else v for v in table.column("value").to_pylist()
    )


def test_position_deletes_give_the_reference_readers_rows(ref, proxy, bucket, tmp_path):
    a = ref.append(arrow_rows(events(4, "did:cf:a")))[0]
    b = ref.append(arrow_rows(events(3, "did:cf:b")))[0]
    settings = r2_settings(proxy.endpoint, bucket, tmp_path / "cache")
    assert sync(settings).rows == 7
    # A DELETE by another engine, after our sync: two rows of a, one of b.
    ref.delete_positions({a: [0, 3], b: [1]})
    proxy.clear_requests()
    report = sync(settings)
    expected = ref.reference()
    assert expected.num_rows == 4  # pyiceberg applies the deletes
    assert report.rows == 4
    assert synced_raws(settings) == reference_raws(expected)
    # The rows of the old files were normalized again from their copies: only the delete file
    # itself was downloaded.
    data_gets = [p for m, p in proxy.requests if m == "GET" and ".parquet" in p]
    assert len(data_gets) == 1 and "deletes-" in data_gets[0], data_gets


def test_a_second_delete_and_new_data_keep_matching_the_reference(
    ref, bucket, moto_endpoint, tmp_path
):
    a = ref.append(arrow_rows(events(5, "did:cf:a")))[0]
    settings = r2_settings(moto_endpoint, bucket, tmp_path / "cache")
    ref.delete_positions({a: [1]})
    sync(settings)
    ref.delete_positions({a: [2, 4]})
    ref.append(arrow_rows(events(2, "did:cf:c"), start=T0 + timedelta(days=1)))
    report = sync(settings)
    expected = ref.reference()
    assert report.rows == expected.num_rows == 4
    assert synced_raws(settings) == reference_raws(expected)


@pytest.mark.parametrize("kind", ["position", "equality"])
def test_an_unreadable_delete_file_fails_the_sync_and_sets_no_data_aside(
    ref, s3_admin, bucket, moto_endpoint, tmp_path, kind
):
    vals = events(3, "did:cf:a")
    a = ref.append(arrow_rows(vals))[0]
    settings = r2_settings(moto_endpoint, bucket, tmp_path / "cache")
    sync(settings)
    if kind == "position":
        key = ref.delete_positions({a: [0]})
    else:
        key = ref.delete_equal("value", [vals[0]], like=a)
    size = s3_admin.head_object(Bucket=bucket, Key=key)["ContentLength"]
    s3_admin.put_object(Bucket=bucket, Key=key, Body=b"\x00" * size)  # same size, not Parquet
    with pytest.raises(O11yError, match=rf"delete file.*{key}") as exc:
        sync(settings)
    assert "\n" not in str(exc.value)
    gen = Store(settings.store_dir).load()
    assert not gen.bad_files and gen.rows == 3  # the previous generation, nothing set aside


def test_equality_deletes_remove_matching_rows_of_older_files_only(
    ref, bucket, moto_endpoint, tmp_path
):
    vals = events(4, "did:cf:a")
    first = ref.append(arrow_rows(vals))[0]
    # An older file of another day (partition) holding the same value: out of the delete's scope.
    ref.append(arrow_rows([vals[2]], start=T0 + timedelta(days=1)))
    ref.delete_equal("value", [vals[1], vals[2]], like=first)
    # The same value written again after the delete is not deleted (sequence numbers).
    ref.append(arrow_rows([vals[1]], start=T0 + timedelta(minutes=5)))
    report = sync(r2_settings(moto_endpoint, bucket, tmp_path / "cache"))
    # The spec read by hand: the delete removes vals[1] and vals[2] from the first file only.
    expected = Counter([vals[0], vals[3], vals[2], vals[1]])
    assert report.rows == 4
    assert synced_raws(r2_settings(moto_endpoint, bucket, tmp_path / "cache")) == expected


def test_equality_delete_manifests_write_equality_ids_as_a_list_of_int(
    ref, s3_admin, bucket, moto_endpoint, tmp_path
):
    """The fixture's delete manifests follow the spec (field 135: list<int>, element 136), so
    Java engines read the same tables; ours reads them too."""
    import io

    import fastavro

    vals = events(3, "did:cf:a")
    first = ref.append(arrow_rows(vals))[0]
    ref.delete_equal("value", [vals[0]], like=first)
    tbl = ref.table
    (manifest,) = [m for m in tbl.current_snapshot().manifests(tbl.io) if m.content == 1]
    body = s3_admin.get_object(Bucket=bucket, Key=ref.key(manifest.manifest_path))["Body"].read()
    reader = fastavro.reader(io.BytesIO(body))
    schema = json.loads(reader.metadata["avro.schema"])
    data_file = next(f for f in schema["fields"] if f["name"] == "data_file")["type"]
    (ids,) = [f for f in data_file["fields"] if f["name"] == "equality_ids"]
    array = next(t for t in ids["type"] if isinstance(t, dict))
    assert (ids["field-id"], array["type"], array["items"], array["element-id"]) == (
        135,
        "array",
        "int",
        136,
    )
    (entry,) = list(reader)
    assert entry["data_file"]["equality_ids"] == [2]  # the value column's field id
    report = sync(r2_settings(moto_endpoint, bucket, tmp_path / "cache"))
    assert report.rows == 2


def test_binary_value_is_read_as_utf8(s3_admin, bucket, moto_endpoint, tmp_path):
    ref = RefTable.create(
        endpoint=moto_endpoint,
        s3=s3_admin,
        bucket=bucket,
        db=tmp_path / "catalog.db",
        schema=unstructured_schema("binary"),
    )
    vals = events(3, "did:cf:bin")
    ref.append(arrow_rows([v.encode() for v in vals], binary=True))
    settings = r2_settings(moto_endpoint, bucket, tmp_path / "cache")
    report = sync(settings)
    assert report.rows == 3 and report.unparseable == 0
    assert synced_raws(settings) == reference_raws(ref.reference())
    agents = open_db(settings).query("SELECT DISTINCT agent FROM cycles").agent.tolist()
    assert agents == ["did:cf:bin"]


def test_files_of_other_shapes_in_one_batch_are_each_read_by_their_own(
    s3_admin, bucket, moto_endpoint, tmp_path
):
    """A BINARY file (with one row that is not UTF-8), a string file and a file whose
    ``__ingest_ts`` is text (one unparseable) go through one sync: each row is read as its own
    file says, checked against json.loads of the written values."""
    from o11y_data.ingest.iceberg_write import parquet_bytes
    from tests.support.tables import append, new_table, rows, s3_put

    writer = new_table(s3_put(s3_admin, bucket), bucket)
    text_vals = events(2, "did:cf:text")
    bin_vals = events(2, "did:cf:bin")
    append(writer, rows(text_vals))
    binary = pa.table(
        {
            "__ingest_ts": pa.array([T0, T0, T0], pa.timestamp("us", tz="UTC")),
            "value": pa.array([v.encode() for v in bin_vals] + [b"\xff\xfe{"], pa.binary()),
        }
    )
    text_ts = pa.table(
        {
            "__ingest_ts": ["2026-11-02T12:00:07Z", "not a time"],
            "value": [event(agent="did:cf:ts", ts=None), event(agent="did:cf:ts", ts=None)],
        }
    )
    added = []
    for name, table in (("binary", binary), ("text-ts", text_ts)):
        key = writer.data_key("2026-11-02", f"{name}.parquet")
        data = parquet_bytes(table)
        s3_admin.put_object(Bucket=bucket, Key=key, Body=data)
        added.append((key, table.num_rows, len(data), 0))
    writer.commit(added)
    settings = r2_settings(moto_endpoint, bucket, tmp_path / "cache")
    report = sync(settings)
    assert report.rows == 7 and not report.bad_files
    db = open_db(settings)
    parsed = db.query("SELECT agent, count(*) AS n FROM events GROUP BY agent ORDER BY agent")
    assert dict(zip(parsed.agent, parsed.n, strict=True)) == {
        "did:cf:bin": 2,
        "did:cf:text": 2,
        "did:cf:ts": 2,
    }
    assert report.unparseable == 1  # the bytes that are not UTF-8: that row only
    got = db.query(
        "SELECT ingest_ts, ts FROM events WHERE agent = 'did:cf:ts' ORDER BY ingest_ts NULLS LAST"
    )
    assert got.ingest_ts[0].isoformat() == "2026-11-02T12:00:07+00:00"
    assert got.ingest_ts.isna()[1]  # "not a time": NULL for that row, the file is kept
    raws = Counter(db.query("SELECT raw FROM events WHERE agent <> 'did:cf:ts'").raw)
    assert raws == Counter(text_vals + bin_vals)
    assert all(json.loads(r)["agent"] for r in raws)


def test_structured_columns_named_like_reader_options_are_event_fields(
    s3_admin, bucket, moto_endpoint, tmp_path
):
    """Columns named ``filename`` and ``file_row_number`` are the event's, also when rows are
    deleted by position (the reader's own columns never take their place)."""
    from o11y_data.ingest.iceberg_write import parquet_bytes
    from tests.support.tables import new_table, s3_put

    writer = new_table(s3_put(s3_admin, bucket), bucket)
    writer.columns = [("__ingest_ts", "timestamptz"), ("agent", "string"), ("mode", "string")]
    writer.columns += [("filename", "string"), ("file_row_number", "long")]
    table = pa.table(
        {
            "__ingest_ts": pa.array([T0, T0], pa.timestamp("us", tz="UTC")),
            "agent": ["did:cf:a", "did:cf:b"],
            "mode": ["think", "think"],
            "filename": ["notes.txt", "other.txt"],
            "file_row_number": pa.array([7, 8], pa.int64()),
        }
    )
    key = writer.data_key("2026-11-02", "odd-names.parquet")
    data = parquet_bytes(table)
    s3_admin.put_object(Bucket=bucket, Key=key, Body=data)
    writer.commit([(key, 2, len(data), 0)])
    settings = r2_settings(moto_endpoint, bucket, tmp_path / "cache")
    report = sync(settings)
    assert report.rows == 2 and not report.bad_files
    raws = [json.loads(r) for r in synced_raws(settings)]
    assert sorted((r["filename"], r["file_row_number"]) for r in raws) == [
        ("notes.txt", 7),
        ("other.txt", 8),
    ]


def test_renamed_structured_column_keeps_its_history(s3_admin, bucket, moto_endpoint, tmp_path):
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField, StringType, TimestamptzType

    schema = Schema(
        NestedField(1, "__ingest_ts", TimestamptzType(), required=False),
        NestedField(2, "event_type", StringType(), required=False),
        NestedField(3, "agent", StringType(), required=False),
        NestedField(4, "mode", StringType(), required=False),
        NestedField(5, "duration", LongType(), required=False),
    )
    ref = RefTable.create(
        endpoint=moto_endpoint, s3=s3_admin, bucket=bucket, db=tmp_path / "c.db", schema=schema
    )

    def batch(col: str, ms: list[int]) -> pa.Table:
        return pa.table(
            {
                "__ingest_ts": pa.array([T0] * len(ms), pa.timestamp("us", tz="UTC")),
                "event_type": ["agent.cycle"] * len(ms),
                "agent": ["did:cf:s"] * len(ms),
                "mode": ["think"] * len(ms),
                col: pa.array(ms, pa.int64()),
            }
        )

    ref.append(batch("duration", [100, 200]))
    with ref.table.update_schema() as update:  # same field id, the contract's name
        update.rename_column("duration", "durationMs")
    ref.append(batch("durationMs", [300]))
    expected = ref.reference()
    assert sorted(expected.column("durationMs").to_pylist()) == [100, 200, 300]
    settings = r2_settings(moto_endpoint, bucket, tmp_path / "cache")
    sync(settings)
    got = open_db(settings).query("SELECT duration_ms FROM cycles ORDER BY duration_ms")
    assert got.duration_ms.tolist() == [100, 200, 300]


def test_a_gap_in_metadata_versions_does_not_freeze_the_sync(
    ref, s3_admin, bucket, proxy, tmp_path
):
    ref.append(arrow_rows(events(1, "did:cf:a")))
    settings = r2_settings(proxy.endpoint, bucket, tmp_path / "cache")
    sync(settings)
    ref.append(arrow_rows(events(2, "did:cf:b")))
    skipped = ref.metadata_key()
    ref.append(arrow_rows(events(3, "did:cf:c")))
    s3_admin.delete_object(Bucket=bucket, Key=skipped)  # the next number is missing
    report = sync(settings)
    assert report.rows == ref.reference().num_rows == 6
    assert Store(settings.store_dir).load().metadata_key == ref.metadata_key()
    proxy.clear_requests()
    assert not sync(settings).changed
    assert len(proxy.requests) <= 3, proxy.requests


def test_gzip_metadata_is_read(ref, bucket, moto_endpoint, tmp_path):
    ref.append(arrow_rows(events(2, "did:cf:a")))
    ref.append(arrow_rows(events(3, "did:cf:b")))
    meta = ref.metadata()
    version = int(ref.metadata_key().rsplit("/", 1)[1].split("-", 1)[0])
    key = ref.put_metadata(version + 1, meta, gz=True)
    expected = static_reference(moto_endpoint, bucket, key)  # pyiceberg reads it too
    settings = r2_settings(moto_endpoint, bucket, tmp_path / "cache")
    report = sync(settings)
    assert Store(settings.store_dir).load().metadata_key == key
    assert report.rows == expected.num_rows == 5
    assert synced_raws(settings) == reference_raws(expected)


def test_v3_metadata_is_read(ref, bucket, moto_endpoint, tmp_path):
    a = ref.append(arrow_rows(events(3, "did:cf:a")))[0]
    ref.delete_positions({a: [2]})
    version = int(ref.metadata_key().rsplit("/", 1)[1].split("-", 1)[0])
    key = ref.put_metadata(version + 1, as_v3(ref.metadata()))
    expected = static_reference(moto_endpoint, bucket, key)
    settings = r2_settings(moto_endpoint, bucket, tmp_path / "cache")
    report = sync(settings)
    assert report.rows == expected.num_rows == 2
    assert synced_raws(settings) == reference_raws(expected)


def test_v3_deletion_vectors_are_applied(ref, bucket, moto_endpoint, tmp_path):
    a = ref.append(arrow_rows(events(5, "did:cf:a")))[0]
    b = ref.append(arrow_rows(events(2, "did:cf:b")))[0]
    settings = r2_settings(moto_endpoint, bucket, tmp_path / "cache")
    sync(settings)
    ref.delete_vector(a, [0, 3, 4])
    version = int(ref.metadata_key().rsplit("/", 1)[1].split("-", 1)[0])
    key = ref.put_metadata(version + 1, as_v3(ref.metadata()))
    expected = static_reference(moto_endpoint, bucket, key)  # pyiceberg applies the vector
    report = sync(settings)
    assert report.rows == expected.num_rows == 4
    assert synced_raws(settings) == reference_raws(expected)
    assert b in ref.data_files()


def test_an_unknown_format_version_fails_in_one_line(ref, bucket, moto_endpoint, tmp_path):
    ref.append(arrow_rows(events(1, "did:cf:a")))
    version = int(ref.metadata_key().rsplit("/", 1)[1].split("-", 1)[0])
    ref.put_metadata(version + 1, dict(ref.metadata(), **{"format-version": 4}))
    settings = r2_settings(moto_endpoint, bucket, tmp_path / "cache")
    with pytest.raises(O11yError, match="Iceberg format version 4") as exc:
        sync(settings, wait=True)
    assert "\n" not in str(exc.value)


def test_two_metadata_files_with_one_version_are_reported(ref, bucket, moto_endpoint, tmp_path):
    ref.append(arrow_rows(events(2, "did:cf:a")))
    meta = ref.metadata()
    version = int(ref.metadata_key().rsplit("/", 1)[1].split("-", 1)[0])
    first = ref.put_metadata(version + 1, meta)
    second = ref.put_metadata(version + 1, meta)
    settings = r2_settings(moto_endpoint, bucket, tmp_path / "cache")
    report = sync(settings)
    chosen = Store(settings.store_dir).load().metadata_key
    assert chosen in {first, second}
    line = report.one_line()
    assert f"2 metadata files share version {version + 1}" in line
    assert chosen.rsplit("/", 1)[1] in line
    # Deterministic: a fresh cache picks the same file; the warning stays until it is resolved.
    other = r2_settings(moto_endpoint, bucket, tmp_path / "cache2")
    sync(other)
    assert Store(other.store_dir).load().metadata_key == chosen
    assert "share version" in sync(settings).one_line()
    assert "share version" in (Store(settings.store_dir).read_status().get("last_report") or "")
    status = subprocess.run(
        [sys.executable, "-m", "o11y_data", "status"],
        env={"PATH": "/usr/bin:/bin", **r2_env(moto_endpoint, bucket, tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert status.returncode == 0, status.stderr
    assert re.search(
        rf"^warning +2 metadata files share version {version + 1}\b", status.stdout, re.M
    )


def test_a_transport_error_in_discovery_is_not_no_event_table(ref, bucket, proxy, tmp_path):
    ref.append(arrow_rows(events(1, "did:cf:a")))
    settings = r2_settings(proxy.endpoint, bucket, tmp_path / "cache")
    proxy.fail_matching(".metadata.json", n=100, status=500, code="InternalError")
    with pytest.raises(O11yError) as exc:
        sync(settings)
    assert "No event table" not in str(exc.value)
    assert "R2 is unavailable" in str(exc.value)
    proxy.reset()
    assert sync(settings).rows == 1


def test_manifests_are_fetched_concurrently_and_cached(tmp_path):
    """Two manifest GETs must be in flight together: each waits (bounded) for the other."""
    import threading

    import fastavro

    from o11y_data.ingest.iceberg import ManifestCache
    from o11y_data.ingest.source import LocalSource

    schema = fastavro.parse_schema(
        {"type": "record", "name": "r", "fields": [{"name": "x", "type": "int"}]}
    )
    for i in range(4):
        with open(tmp_path / f"m{i}.avro", "wb") as fh:
            fastavro.writer(fh, schema, [{"x": i}])
    together = threading.Barrier(2, timeout=10)

    class SlowSource(LocalSource):
        def get(self, key: str) -> bytes:
            together.wait()  # raises BrokenBarrierError if the GETs ran one after another
            return super().get(key)

    cache = ManifestCache(tmp_path / "cache")
    source = SlowSource(tmp_path)
    keys = [f"m{i}.avro" for i in range(4)]
    got = cache.read_many(source, keys)
    assert [r[0]["x"] for r in got] == [0, 1, 2, 3] and cache.fetched == 4
    assert [r[0]["x"] for r in cache.read_many(LocalSource(tmp_path), keys)] == [0, 1, 2, 3]
    assert cache.fetched == 4  # the second read came from the cache


def test_table_prefix_is_the_reference_tables(ref, bucket, moto_endpoint, tmp_path):
    """The discovered table is the one pyiceberg wrote (guards the fixtures above)."""
    ref.append(arrow_rows(events(1, "did:cf:a")))
    report = sync(r2_settings(moto_endpoint, bucket, tmp_path / "cache"))
    assert report.table == TABLE_PREFIX


def test_newest_metadata_sees_a_version_with_one_digit_more(tmp_path):
    """``100000-…`` sorts before ``99999-…``: still found from a cache that knows 99999."""
    from o11y_data.ingest.iceberg import newest_metadata
    from o11y_data.ingest.source import LocalSource

    meta = tmp_path / TABLE_PREFIX / "metadata"
    meta.mkdir(parents=True)
    for name in ("99998-a.metadata.json", "99999-b.metadata.json", "100001-c.metadata.json"):
        (meta / name).write_text("{}")
    (meta / "snap-1-x.avro").write_text("")
    source = LocalSource(tmp_path)
    after = f"{TABLE_PREFIX}metadata/99999-b.metadata.json"
    pick = newest_metadata(source, TABLE_PREFIX, after=after)
    assert pick is not None and pick.key.endswith("100001-c.metadata.json")
    assert pick.version == 100001 and not pick.duplicates
    (meta / "99999-b.metadata.json").unlink()  # the known file vanished: everything is listed
    assert newest_metadata(source, TABLE_PREFIX, after=after).version == 100001


# -- metadata checked against what names it ---------------------------------------------------


def spread_over_days(days: int, agent: str) -> pa.Table:
    """One row a day: one commit of this adds ``days`` files (a partition each) in one manifest."""
    return pa.concat_tables(
        [
            arrow_rows(events(1, agent, start_ms=d), start=T0 + timedelta(days=d))
            for d in range(days)
        ]
    )


def gets_of(proxy, key: str) -> int:
    from urllib.parse import unquote

    return sum(
        1 for m, p in proxy.requests if m == "GET" and unquote(p.split("?")[0]).endswith(key)
    )


def test_a_manifest_cut_at_an_avro_block_boundary_fails_naming_it_never_counts_less(
    ref, s3_admin, bucket, moto_endpoint, proxy, tmp_path
):
    import io

    import fastavro

    from o11y_data.errors import TransportError
    from tests.support.reference_tables import avro_blocks_cut

    ref.append(arrow_rows(events(2, "did:cf:a")))
    cached = r2_settings(proxy.endpoint, bucket, tmp_path / "incremental")
    sync(cached)
    ref.append(spread_over_days(8, "did:cf:b"))
    key = ref.newest_data_manifest()
    whole = ref.reblock_manifest(key)  # eight blocks of one entry, the list's length to match
    expected = ref.reference()  # pyiceberg reads the rewritten manifest
    assert expected.num_rows == 10
    cut = avro_blocks_cut(whole, 3)
    assert len(list(fastavro.reader(io.BytesIO(cut)))) == 3  # valid Avro, five entries short
    ref.put(key, cut)

    fresh = r2_settings(proxy.endpoint, bucket, tmp_path / "fresh")
    for settings in (cached, fresh):
        proxy.clear_requests()
        with pytest.raises(TransportError, match=rf"^Manifest does not match .*{key}") as exc:
            sync(settings)
        assert "\n" not in str(exc.value) and f"{len(cut):,} bytes" in str(exc.value)
        assert gets_of(proxy, key) == 2  # fetched again once before failing
    assert Store(cached.store_dir).load().rows == 2  # the previous generation stays

    ref.put(key, whole)  # the whole manifest back: both caches read every file
    for settings in (cached, fresh):
        assert sync(settings).rows == expected.num_rows
        assert synced_raws(settings) == reference_raws(expected)


@pytest.mark.parametrize("count", ["added_files_count", "existing_files_count"])
def test_a_manifest_whose_entry_count_disagrees_with_its_list_fails_naming_it(
    ref, bucket, moto_endpoint, tmp_path, count
):
    from o11y_data.errors import TransportError

    ref.append(spread_over_days(3, "did:cf:a"))
    key = ref.newest_data_manifest()

    def one_more(record: dict) -> None:
        if record["manifest_path"].endswith(key):
            record[count] += 1

    ref.rewrite_manifest_list(one_more)
    what = count.split("_")[0]
    with pytest.raises(TransportError, match=rf"{key}: \d+ {what} entries where") as exc:
        sync(r2_settings(moto_endpoint, bucket, tmp_path / "cache"))
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("case", ["disagrees", "missing", "minus_one"])
def test_current_snapshot_and_refs_main_must_agree(ref, bucket, moto_endpoint, tmp_path, case):
    """Java Iceberg's and iceberg-rust's rule: current-snapshot-id and refs.main name the same
    snapshot, or neither names one. Refused in one line, incremental and fresh."""
    ref.append(arrow_rows(events(2, "did:cf:a")))
    ref.append(arrow_rows(events(1, "did:cf:b")))
    cached = r2_settings(moto_endpoint, bucket, tmp_path / "incremental")
    assert sync(cached).rows == 3
    meta = ref.metadata()
    first = meta["snapshots"][0]["snapshot-id"]
    assert meta["refs"]["main"]["snapshot-id"] == meta["current-snapshot-id"] != first
    if case == "disagrees":
        meta["current-snapshot-id"] = first
    elif case == "missing":
        del meta["current-snapshot-id"]
    else:
        meta["current-snapshot-id"] = -1
    version = int(ref.metadata_key().rsplit("/", 1)[1].split("-", 1)[0])
    key = ref.put_metadata(version + 1, meta)
    for settings in (cached, r2_settings(moto_endpoint, bucket, tmp_path / "fresh")):
        with pytest.raises(O11yError, match=rf"^Inconsistent table metadata: {key}: ") as exc:
            sync(settings)
        assert "\n" not in str(exc.value) and "refs.main" in str(exc.value)
    assert Store(cached.store_dir).load().rows == 3
