"""Tables that change after a sync: schema evolution and v3 defaults, written by pyiceberg (the
reference) into moto_server. After every change the cache synced across it (incremental) and a
fresh cache must both hold exactly the rows pyiceberg's scan returns: every normalized field and
every field of the raw event, computed from pyiceberg's rows by the contract (docs/events.md)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pytest
from pyiceberg.schema import Schema
from pyiceberg.types import (
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from o11y_data import open_db, sync
from tests.support.reference_tables import (
    RefTable,
    as_v3,
    static_reference,
    unstructured_schema,
)
from tests.support.tables import T0, event, r2_settings

Row = tuple[Any, ...]


def _text(v: Any) -> str:
    """The contract's strings: missing or empty reads as ``unknown``."""
    return v.strip() if isinstance(v, str) and v.strip() else "unknown"


def _int(v: Any, *, most: int) -> int | None:
    """A number as the contract keeps it: NULL outside 0..``most`` (docs/events.md, "Valid
    ranges")."""
    if v is None or isinstance(v, bool):
        return None
    n = int(round(v))
    return n if 0 <= n <= most else None


def expected_rows(table: pa.Table) -> Counter[Row]:
    """pyiceberg's rows as the contract normalizes them: (parsed, event_type, agent, mode,
    duration_ms, tool_calls, errors, the event's fields) for each row."""
    out: Counter[Row] = Counter()
    for row in table.to_pylist():
        if "value" in row:
            value = row["value"]
            body = json.loads(value) if value is not None else None
        else:
            body = {k: v for k, v in row.items() if k != "__ingest_ts"}
        if not isinstance(body, dict):
            out[(False, None, None, None, None, None, None, None)] += 1
            continue
        fields = json.dumps({k: v for k, v in body.items() if v is not None}, sort_keys=True)
        out[
            (
                True,
                _text(body.get("event_type")),
                _text(body.get("agent")),
                _text(body.get("mode")),
                _int(body.get("durationMs"), most=24 * 3600 * 1000),
                _int(body.get("toolCalls"), most=1_000_000),
                _int(body.get("errors"), most=1_000_000),
                fields,
            )
        ] += 1
    return out


def synced_rows(settings: Any) -> Counter[Row]:
    """Our store's rows in the same form (the raw event's non-null fields)."""
    out: Counter[Row] = Counter()
    for r in open_db(settings).fetch(
        "SELECT parsed, event_type, agent, mode, duration_ms, tool_calls, errors, raw "
        "FROM events_all"
    ):
        fields = None
        if r["parsed"]:
            body = json.loads(r["raw"])
            fields = json.dumps({k: v for k, v in body.items() if v is not None}, sort_keys=True)
        out[
            (
                r["parsed"],
                r["event_type"],
                r["agent"],
                r["mode"],
                r["duration_ms"],
                r["tool_calls"],
                r["errors"],
                fields,
            )
        ] += 1
    return out


def structured(**columns: pa.Array | list[Any]) -> pa.Table:
    n = len(next(iter(columns.values())))
    ts = pa.array([T0 + timedelta(seconds=i) for i in range(n)], pa.timestamp("us", tz="UTC"))
    return pa.table({"__ingest_ts": ts, **columns})


def unstructured(values: list[str]) -> pa.Table:
    return structured(value=pa.array(values, pa.string()))


def structured_schema(duration: str = "durationMs", duration_type: Any = None) -> Schema:
    return Schema(
        NestedField(1, "__ingest_ts", TimestamptzType(), required=False),
        NestedField(2, "event_type", StringType(), required=False),
        NestedField(3, "agent", StringType(), required=False),
        NestedField(4, "mode", StringType(), required=False),
        NestedField(5, duration, duration_type or LongType(), required=False),
        NestedField(6, "toolCalls", LongType(), required=False),
    )


def cycles(agents: list[str], ms: list[int], *, duration: str = "durationMs") -> pa.Table:
    n = len(agents)
    return structured(
        event_type=["agent.cycle"] * n,
        agent=agents,
        mode=["think"] * n,
        **{duration: pa.array(ms, pa.int64())},
        toolCalls=pa.array(list(range(n)), pa.int64()),
    )


@dataclass(frozen=True)
class Evolution:
    """A table, a first batch, a schema change and a batch written after it."""

    schema: Schema
    before: pa.Table
    change: Callable[[Any], None]
    after: pa.Table


def _rename(tbl: Any) -> None:
    with tbl.update_schema() as update:  # same field id, the contract's name
        update.rename_column("duration", "durationMs")


def _drop_and_add(name: str) -> Callable[[Any], None]:
    def change(tbl: Any) -> None:
        with tbl.update_schema() as update:
            update.delete_column(name)
        with tbl.refresh().update_schema() as update:  # the same name, a new field id
            update.add_column(name, StringType())

    return change


def _promote(tbl: Any) -> None:
    with tbl.update_schema() as update:
        update.update_column("durationMs", LongType())
        update.update_column("score", DoubleType())


EVOLUTIONS = {
    "rename": Evolution(
        structured_schema("duration"),
        cycles(["did:cf:a", "did:cf:b", "did:cf:c"], [100, 200, 300], duration="duration"),
        _rename,
        cycles(["did:cf:d"], [400]),
    ),
    "drop_and_re_add_agent": Evolution(
        structured_schema(),
        cycles(["did:cf:a", "did:cf:b", "did:cf:c"], [100, 200, 300]),
        _drop_and_add("agent"),
        cycles(["did:cf:d"], [400]),
    ),
    "drop_and_re_add_value": Evolution(
        unstructured_schema(),
        unstructured([event(agent="did:cf:old", ms=i) for i in range(3)]),
        _drop_and_add("value"),
        unstructured([event(agent="did:cf:new", ms=7)]),
    ),
    "type_promotion": Evolution(
        Schema(
            NestedField(1, "__ingest_ts", TimestamptzType(), required=False),
            NestedField(2, "event_type", StringType(), required=False),
            NestedField(3, "agent", StringType(), required=False),
            NestedField(5, "durationMs", IntegerType(), required=False),
            NestedField(7, "score", FloatType(), required=False),
        ),
        structured(
            event_type=["agent.cycle"] * 2,
            agent=["did:cf:a", "did:cf:b"],
            durationMs=pa.array([100, 86_000_000], pa.int32()),
            score=pa.array([1.1, 1234.25], pa.float32()),
        ),
        _promote,
        structured(
            event_type=["agent.cycle"],
            agent=["did:cf:c"],
            durationMs=pa.array([9_000_000_000], pa.int64()),
            score=pa.array([0.1], pa.float64()),
        ),
    ),
}


def data_gets(proxy: Any) -> list[str]:
    return [unquote(p) for m, p in proxy.requests if m == "GET" and ".parquet" in p]


@pytest.mark.parametrize("case", sorted(EVOLUTIONS))
def test_a_schema_change_after_a_sync_reaches_the_cached_rows(
    case, s3_admin, bucket, moto_endpoint, proxy, tmp_path
):
    evo = EVOLUTIONS[case]
    ref = RefTable.create(
        endpoint=moto_endpoint, s3=s3_admin, bucket=bucket, db=tmp_path / "c.db", schema=evo.schema
    )
    ref.append(evo.before)
    cached = r2_settings(proxy.endpoint, bucket, tmp_path / "incremental")
    sync(cached)
    assert synced_rows(cached) == expected_rows(ref.reference())

    evo.change(ref.table)
    proxy.clear_requests()
    sync(cached)  # the schema alone changed: the cached rows follow it
    expected = expected_rows(ref.reference())
    assert synced_rows(cached) == expected
    assert data_gets(proxy) == []  # normalized again from the local copies

    ref.append(evo.after)
    sync(cached)
    reference = ref.reference()
    expected = expected_rows(reference)
    assert sum(expected.values()) == reference.num_rows == evo.before.num_rows + 1
    assert synced_rows(cached) == expected
    fresh = r2_settings(moto_endpoint, bucket, tmp_path / "fresh")
    sync(fresh)
    assert synced_rows(fresh) == expected


def test_dropping_value_leaves_rows_without_a_value_not_events(
    s3_admin, bucket, moto_endpoint, tmp_path
):
    """The issue's case: the old rows are the table's rows with a NULL value (unparseable),
    never events, and no file is set aside."""
    evo = EVOLUTIONS["drop_and_re_add_value"]
    ref = RefTable.create(endpoint=moto_endpoint, s3=s3_admin, bucket=bucket, db=tmp_path / "c.db")
    ref.append(evo.before)
    settings = r2_settings(moto_endpoint, bucket, tmp_path / "cache")
    sync(settings)
    evo.change(ref.table)
    ref.append(evo.after)
    report = sync(settings)
    assert report.rows == 4 and report.unparseable == 3 and not report.bad_files
    agents = open_db(settings).fetch("SELECT agent FROM events")
    assert [r["agent"] for r in agents] == ["did:cf:new"]


def test_v3_initial_default_fills_older_files_and_write_default_is_ignored(
    s3_admin, bucket, moto_endpoint, tmp_path
):
    """``mode`` added with initial-default ``think``: files written before it read ``think``;
    the metadata is then rewritten as format version 3 with a different write-default, which a
    reader ignores (pyiceberg reading that metadata file is the oracle)."""
    schema = Schema(
        NestedField(1, "__ingest_ts", TimestamptzType(), required=False),
        NestedField(2, "event_type", StringType(), required=False),
        NestedField(3, "agent", StringType(), required=False),
        NestedField(5, "durationMs", LongType(), required=False),
    )
    ref = RefTable.create(
        endpoint=moto_endpoint, s3=s3_admin, bucket=bucket, db=tmp_path / "c.db", schema=schema
    )
    old = structured(
        event_type=["agent.cycle"] * 2,
        agent=["did:cf:a", "did:cf:b"],
        durationMs=pa.array([100, 200], pa.int64()),
    )
    ref.append(old)
    cached = r2_settings(moto_endpoint, bucket, tmp_path / "incremental")
    sync(cached)
    assert {r[3] for r in synced_rows(cached)} == {"unknown"}  # no mode yet

    with ref.table.update_schema() as update:
        update.add_column("mode", StringType(), default_value="think")
    ref.append(
        structured(
            event_type=["agent.cycle"] * 2,
            agent=["did:cf:c", "did:cf:d"],
            durationMs=pa.array([300, 400], pa.int64()),
            mode=["reflection", None],  # a NULL written in a file that has the column stays NULL
        )
    )
    meta = as_v3(ref.metadata())
    for s in meta["schemas"]:
        for f in s["fields"]:
            if f["name"] == "mode":
                assert f["initial-default"] == "think"
                f["write-default"] = "housekeeping"
    version = int(ref.metadata_key().rsplit("/", 1)[1].split("-", 1)[0])
    key = ref.put_metadata(version + 1, meta)
    reference = static_reference(moto_endpoint, bucket, key)
    assert sorted(map(str, reference.column("mode").to_pylist())) == [
        "None",
        "reflection",
        "think",
        "think",
    ]
    expected = expected_rows(reference)
    sync(cached)
    assert synced_rows(cached) == expected
    fresh = r2_settings(moto_endpoint, bucket, tmp_path / "fresh")
    sync(fresh)
    assert synced_rows(fresh) == expected
    modes = open_db(fresh).fetch("SELECT mode, count(*) AS n FROM cycles GROUP BY mode")
    assert {r["mode"]: r["n"] for r in modes} == {"think": 2, "reflection": 1, "unknown": 1}


def test_a_default_this_reader_cannot_apply_fails_in_one_line(
    s3_admin, bucket, moto_endpoint, tmp_path
):
    ref = RefTable.create(endpoint=moto_endpoint, s3=s3_admin, bucket=bucket, db=tmp_path / "c.db")
    ref.append(unstructured([event()]))
    meta = as_v3(ref.metadata())
    schema = next(s for s in meta["schemas"] if s["schema-id"] == meta["current-schema-id"])
    schema["fields"].append(
        {"id": 9, "name": "blob", "type": "binary", "required": False, "initial-default": "zz"}
    )
    version = int(ref.metadata_key().rsplit("/", 1)[1].split("-", 1)[0])
    ref.put_metadata(version + 1, meta)
    with pytest.raises(Exception, match=r"Unsupported column default: field blob \(binary\)") as e:
        sync(r2_settings(moto_endpoint, bucket, tmp_path / "cache"))
    assert "\n" not in str(e.value)


def test_a_sequence_of_schema_changes_and_syncs_keeps_matching_the_reference(
    s3_admin, bucket, moto_endpoint, tmp_path
):
    """Rename, drop, append, re-add, a new field with a default, drop it again: after every
    step the incremental cache equals pyiceberg's scan; at the end a fresh cache does too."""
    ref = RefTable.create(
        endpoint=moto_endpoint,
        s3=s3_admin,
        bucket=bucket,
        db=tmp_path / "c.db",
        schema=structured_schema("duration"),
    )
    cached = r2_settings(moto_endpoint, bucket, tmp_path / "incremental")

    def check() -> None:
        sync(cached)
        assert synced_rows(cached) == expected_rows(ref.reference())

    ref.append(cycles(["did:cf:a", "did:cf:b"], [100, 200], duration="duration"))
    check()
    _rename(ref.table)
    check()
    with ref.table.update_schema() as update:
        update.delete_column("agent")
    ref.append(
        structured(
            event_type=["agent.cycle"],
            mode=["reflection"],
            durationMs=pa.array([300], pa.int64()),
            toolCalls=pa.array([1], pa.int64()),
        )
    )
    check()
    with ref.table.update_schema() as update:
        update.add_column("agent", StringType())
        update.add_column("note", StringType(), default_value="n/a")
    check()
    ref.append(cycles(["did:cf:c"], [400]))
    check()
    notes = Counter(r["note"] for r in ref.reference().to_pylist())
    assert notes == {"n/a": 3, None: 1}  # the older files read the default
    with ref.table.update_schema() as update:
        update.delete_column("note")
    check()
    fresh = r2_settings(moto_endpoint, bucket, tmp_path / "fresh")
    sync(fresh)
    assert synced_rows(fresh) == synced_rows(cached) == expected_rows(ref.reference())


def test_initial_defaults_of_each_type_read_as_the_spec_serializes_them(
    s3_admin, bucket, moto_endpoint, tmp_path
):
    """v3 metadata written per the spec (its JSON single-value serialization) adds fields with
    defaults of several types after the data was written; pyiceberg reading that metadata file
    gives the spec's values, and so must we."""
    ref = RefTable.create(endpoint=moto_endpoint, s3=s3_admin, bucket=bucket, db=tmp_path / "c.db")
    ref.append(structured(value=[json.dumps({"event_type": "agent.cycle", "agent": "a"})]))
    meta = as_v3(ref.metadata())
    schema = next(s for s in meta["schemas"] if s["schema-id"] == meta["current-schema-id"])
    # The table becomes structured: value dropped, the event's fields added with defaults.
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "value"] + [
        {"id": 10, "name": "event_type", "type": "string", "initial-default": "agent.cycle"},
        {"id": 11, "name": "durationMs", "type": "long", "initial-default": 25000},
        {"id": 12, "name": "toolCalls", "type": "int", "initial-default": 4},
        {"id": 13, "name": "ok", "type": "boolean", "initial-default": True},
        {"id": 14, "name": "ratio", "type": "double", "initial-default": 0.5},
        {"id": 15, "name": "day", "type": "date", "initial-default": "2017-11-16"},
        {
            "id": 16,
            "name": "at",
            "type": "timestamptz",
            "initial-default": "2017-11-16T22:31:08.123456+00:00",
        },
        {"id": 17, "name": "price", "type": "decimal(9,2)", "initial-default": "14.20"},
    ]
    for f in schema["fields"]:
        f.setdefault("required", False)
    version = int(ref.metadata_key().rsplit("/", 1)[1].split("-", 1)[0])
    key = ref.put_metadata(version + 1, meta)
    (expected,) = static_reference(moto_endpoint, bucket, key).to_pylist()  # pyiceberg agrees
    settings = r2_settings(moto_endpoint, bucket, tmp_path / "cache")
    report = sync(settings)
    assert report.rows == 1 and report.unparseable == 0
    (row,) = open_db(settings).fetch(
        "SELECT event_type, duration_ms, tool_calls, raw FROM events_all"
    )
    assert (row["event_type"], row["duration_ms"], row["tool_calls"]) == ("agent.cycle", 25000, 4)
    assert (expected["event_type"], expected["durationMs"], expected["toolCalls"]) == (
        "agent.cycle",
        25000,
        4,
    )
    raw = json.loads(row["raw"])
    assert (raw["ok"], raw["ratio"], raw["day"], Decimal(str(raw["price"]))) == (
        expected["ok"],
        expected["ratio"],
        expected["day"].isoformat(),
        expected["price"],
    )
    assert datetime.fromisoformat(raw["at"]) == expected["at"]
    assert expected["at"] == datetime.fromisoformat("2017-11-16T22:31:08.123456+00:00")


def test_a_cache_that_recorded_no_readings_is_normalized_again_from_its_copies(
    s3_admin, bucket, moto_endpoint, proxy, tmp_path
):
    """A generation written before readings were recorded cannot tell how its files were read:
    the next sync with a new table state reads them again from the local copies."""
    from o11y_data.ingest.store import Store

    evo = EVOLUTIONS["rename"]
    ref = RefTable.create(
        endpoint=moto_endpoint, s3=s3_admin, bucket=bucket, db=tmp_path / "c.db", schema=evo.schema
    )
    ref.append(evo.before)
    cached = r2_settings(proxy.endpoint, bucket, tmp_path / "cache")
    sync(cached)
    store = Store(cached.store_dir)
    path = store.gen_path(store.current_number())
    data = json.loads(path.read_text())
    assert data.pop("readings") and data.pop("common_reading")
    for rec in data["files"].values():
        rec.pop("reading", None)
    path.write_text(json.dumps(data))
    evo.change(ref.table)
    proxy.clear_requests()
    sync(cached)
    assert synced_rows(cached) == expected_rows(ref.reference())
    assert data_gets(proxy) == []
    assert all(rec.reading for rec in store.load().files.values())
