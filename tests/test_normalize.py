"""Every normalization rule of docs/events.md, on real Parquet files read by DuckDB."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from o11y_data import load_settings, open_db, sync
from tests.support.properties import examples
from tests.support.tables import T0, event, plain_parquet, rows

INGEST = T0 + timedelta(seconds=5)


def sync_values(tmp_path: Path, values: list[str], name: str = "part-0.parquet"):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / name).write_bytes(plain_parquet([(INGEST, v) for v in values]))
    s = load_settings(
        {"O11Y_SOURCE_DIR": str(src), "O11Y_CACHE_DIR": str(tmp_path / "c")}, secrets_paths=[]
    )
    report = sync(s)
    return report, open_db(s)


def one(db, sql: str = "SELECT * FROM events") -> dict[str, Any]:
    df = db.query(sql)
    assert len(df) == 1, df
    return {
        k: (None if not isinstance(v, str) and pd.isna(v) else v)
        for k, v in df.iloc[0].to_dict().items()
    }


@pytest.mark.parametrize(
    ("raw_value", "expected"),
    [
        (25000, 25000),
        (0, 0),
        (-0.4, 0),
        ("25000", 25000),
        (25000.0, 25000),
        ("25000.0", 25000),
        (" 42 ", 42),
        (None, None),
        ("n/a", None),
        (True, None),
        (False, None),
        ({"ms": 5}, None),
        ([1, 2], None),
        ("", None),
    ],
)
def test_integer_fields_parse_numbers_and_numeric_strings_only(tmp_path, raw_value, expected):
    _, db = sync_values(tmp_path, [event(ms=raw_value, tools=raw_value, errors=raw_value)])
    row = one(db)
    assert row["duration_ms"] == expected
    assert row["tool_calls"] == expected
    assert row["errors"] == expected


def test_missing_fields_are_null_not_zero(tmp_path):
    _, db = sync_values(
        tmp_path, [json.dumps({"event_type": "agent.cycle", "agent": "a", "mode": "think"})]
    )
    row = one(db)
    assert (row["duration_ms"], row["tool_calls"], row["errors"]) == (None, None, None)


def test_ts_comes_from_underscore_ts_in_utc(tmp_path):
    _, db = sync_values(tmp_path, [event(ts=None, _ts="2026-02-10T03:48:20.832+02:00")])
    assert one(db)["ts"] == datetime(2026, 2, 10, 1, 48, 20, 832000, tzinfo=UTC)


@pytest.mark.parametrize("bad_ts", [None, "yesterday", "", 1700000000, {"t": 1}])
def test_missing_or_unparseable_ts_falls_back_to_ingest_ts(tmp_path, bad_ts):
    value = json.loads(event(ts=None))
    if bad_ts is not None:
        value["_ts"] = bad_ts
    _, db = sync_values(tmp_path, [json.dumps(value)])
    row = one(db)
    assert row["ts"] == INGEST
    assert row["ingest_ts"] == INGEST


@pytest.mark.parametrize("field", ["agent", "mode"])
@pytest.mark.parametrize("value", ["", "   ", None, "MISSING"])
def test_missing_or_empty_agent_and_mode_read_as_unknown(tmp_path, field, value):
    body = json.loads(event())
    if value == "MISSING":
        del body[field]
    else:
        body[field] = value
    _, db = sync_values(tmp_path, [json.dumps(body)])
    assert one(db)[field] == "unknown"


@pytest.mark.parametrize("value", ['{"agent": "did:cf:tr', "[1, 2]", "42", "", '"text"', "null"])
def test_values_that_are_not_objects_are_counted_unparseable_and_hide_nothing(tmp_path, value):
    report, db = sync_values(tmp_path, [event(ms=5), value, event(ms=7)])
    assert report.rows == 3 and report.unparseable == 1
    assert list(db.query("SELECT duration_ms FROM cycles ORDER BY duration_ms").duration_ms) == [
        5,
        7,
    ]
    assert int(db.query("SELECT count(*) AS n FROM unparseable").iloc[0].n) == 1


def test_raw_event_is_kept_whole_with_extra_fields(tmp_path):
    value = event(model="m-1", extra={"nested": [1, {"x": None}]})
    _, db = sync_values(tmp_path, [value])
    assert json.loads(one(db)["raw"]) == json.loads(value)


def test_other_event_types_are_events_but_not_cycles(tmp_path):
    _, db = sync_values(
        tmp_path,
        [
            event(),
            event(event_type="agent.wake"),
            json.dumps({"agent": "a", "mode": "think", "durationMs": 1}),
        ],
    )
    types = sorted(db.query("SELECT event_type FROM events").event_type)
    assert types == ["agent.cycle", "agent.wake", "unknown"]
    assert int(db.query("SELECT count(*) AS n FROM cycles").iloc[0].n) == 1


def test_a_corrupt_file_is_set_aside_and_the_others_still_count(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.parquet").write_bytes(plain_parquet(rows([event(ms=1), event(ms=2)])))
    good = plain_parquet(rows([event(ms=3)]))
    (src / "b.parquet").write_bytes(good[: len(good) // 2])  # truncated
    (src / "c.parquet").write_bytes(b"PAR1 this is not parquet")
    s = load_settings(
        {"O11Y_SOURCE_DIR": str(src), "O11Y_CACHE_DIR": str(tmp_path / "c")}, secrets_paths=[]
    )
    report = sync(s)
    assert report.rows == 2
    assert sorted(report.bad_files) == ["b.parquet", "c.parquet"]
    # A later good copy replaces the bad one.
    (src / "b.parquet").write_bytes(good)
    report = sync(s)
    assert report.rows == 3 and sorted(report.bad_files) == ["c.parquet"]
    assert sorted(open_db(s).query("SELECT duration_ms FROM cycles").duration_ms) == [1, 2, 3]


# -- property: the normalization of any JSON value agrees with a plain-Python reading ---------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["25000", "25000.0", " 7 ", "1e3", "-3", "n/a", "0x10", "nan", "inf"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)


def reference_int(v: Any, maximum: int) -> int | None:
    """docs/events.md, read independently: a JSON number or numeric string parses, else NULL;
    a number outside [0, maximum] (its valid range) is NULL too."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return v if 0 <= v <= maximum else None
    if isinstance(v, float):
        x = v
    elif isinstance(v, str):
        try:
            x = float(v.strip())
        except ValueError:
            return None
    else:
        return None
    if not math.isfinite(x):
        return None
    r = math.floor(abs(x) + 0.5) * (1 if x >= 0 else -1)  # round half away from zero
    return int(r) if 0 <= r <= maximum else None


# A sync costs ~0.25 s of CPU whatever its size, and each row is checked on its own: few files of
# many values (min_size, not max_size, sets Hypothesis's typical list length) check ~400 values
# in 15 syncs, where 60 files of 1-8 checked ~240.
@settings(
    max_examples=examples(15),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(values=st.lists(json_values, min_size=20, max_size=40))
def test_property_integer_fields_match_a_reference_reading(tmp_path_factory, values):
    tmp = tmp_path_factory.mktemp("prop")
    docs = [event(ms=v, tools=v, errors=0, seq=i) for i, v in enumerate(values)]
    report, db = sync_values(tmp, docs)
    assert report.rows == len(values) and report.unparseable == 0
    df = db.query("SELECT raw, duration_ms, tool_calls FROM events")
    assert len(df) == len(values)
    for row in df.itertuples():
        v = json.loads(row.raw)["durationMs"]
        got = None if pd.isna(row.duration_ms) else int(row.duration_ms)
        assert got == reference_int(v, 24 * 3600 * 1000), (v, got)
        tools = None if pd.isna(row.tool_calls) else int(row.tool_calls)
        assert tools == reference_int(v, 1_000_000), (v, tools)
