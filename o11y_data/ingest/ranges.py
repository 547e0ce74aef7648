"""The contract's valid ranges (docs/events.md, "Valid ranges"), in one place.

An event field outside its range is data from a broken clock or a broken writer: the
normalization (normalize.py) makes that one value NULL (a ``_ts`` falls back to the landing time,
as an unparseable one does), keeps the event, and flags the row in the store's ``out_of_range``
column, one bit per field. The sync counts the flags per source file; ``status`` and the health
page show the counts by field. Every value left in the store is then small enough for any sum,
mean, difference or cast the queries make, whatever int64, double or timestamp the file held.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

# Timestamps (``_ts`` and ``__ingest_ts``) are valid from this instant on.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
# How far ahead of its landing time an event's ``_ts`` may be (an agent's clock running fast),
# and how far ahead of the sync's own clock a landing time may be. Ten minutes is the grace that
# common metrics and log stores give future-dated samples; a clock further off is broken.
FUTURE_TOLERANCE = timedelta(minutes=10)
MAX_DURATION_MS = 24 * 3600 * 1000  # a cycle longer than a day is not a measured cycle
MAX_COUNT = 1_000_000  # toolCalls and errors of one cycle
# The numeric event fields and their maxima (their minimum is 0).
MAXIMA = {"durationMs": MAX_DURATION_MS, "toolCalls": MAX_COUNT, "errors": MAX_COUNT}

# The ``out_of_range`` bits: key -> (bit, what status and the health page say).
FLAGS: dict[str, tuple[int, str]] = {
    "ts_future": (
        1,
        "clock skew: {n} from the future (_ts over 10 min after landing; landing time used)",
    ),
    "ts_past": (2, "_ts before 2000: {n} (landing time used)"),
    "ingest_ts": (4, "__ingest_ts before 2000 or ahead of the sync's clock: {n} (left empty)"),
    "durationMs": (8, "durationMs outside 0 to 24 h: {n} (left empty)"),
    "toolCalls": (16, "toolCalls outside 0 to 1,000,000: {n} (left empty)"),
    "errors": (32, "errors outside 0 to 1,000,000: {n} (left empty)"),
}

_TS = "TIMESTAMPTZ"


def _instant(t: datetime) -> str:
    return f"'{t.isoformat()}'::{_TS}"


def _seconds(d: timedelta) -> str:
    return f"INTERVAL {int(d.total_seconds())} SECONDS"


def landing_sql(src: str) -> str:
    """``__ingest_ts`` (``src``, a TIMESTAMPTZ) when in range, else NULL. Compared, never
    computed on: an infinite or year-294247 value must not overflow an expression."""
    return (
        f"CASE WHEN {src} >= {_instant(EARLIEST)} "
        f"AND {src} <= now() + {_seconds(FUTURE_TOLERANCE)} THEN {src} END"
    )


def event_time_sql(src: str, landing: str) -> str:
    """``_ts`` (``src``) when in range: from 2000 on, at most the tolerance after ``landing`` (the
    valid landing time; the sync's clock for a row without one). Else NULL."""
    bound = f"coalesce({landing}, now()) + {_seconds(FUTURE_TOLERANCE)}"
    return f"CASE WHEN {src} >= {_instant(EARLIEST)} AND {src} <= {bound} THEN {src} END"


def count_sql(src: str, maximum: int) -> str:
    """A number (``src``, DOUBLE) rounded to BIGINT when it lies in [0, ``maximum``], else NULL
    (NaN, ±infinity and every int64 beyond the range included)."""
    return (
        f"CASE WHEN NOT isnan({src}) AND round({src}) >= 0 AND round({src}) <= {maximum} "
        f"THEN CAST(round({src}) AS BIGINT) END"
    )


def flags_sql(
    *, ts: str, ts_beyond: str, landing_src: str, landing: str, numbers: Mapping[str, str]
) -> str:
    """The ``out_of_range`` bits of a row (UTINYINT). ``ts`` is the parsed ``_ts``; ``ts_beyond``
    is 1 for a time text DuckDB cannot hold because its year has 5+ digits (the future), -1 for a
    negative year (the past), else NULL;
    ``landing_src``/``landing`` the source and the valid ``__ingest_ts``; ``numbers``: field ->
    (its DOUBLE value, its maximum) as SQL."""
    valid_ts = event_time_sql(ts, landing)
    parts = [
        f"CASE WHEN ({ts} IS NOT NULL AND {valid_ts} IS NULL AND {ts} >= {_instant(EARLIEST)}) "
        f"OR {ts_beyond} = 1 THEN {FLAGS['ts_future'][0]} ELSE 0 END",
        f"CASE WHEN {ts} < {_instant(EARLIEST)} OR {ts_beyond} = -1 "
        f"THEN {FLAGS['ts_past'][0]} ELSE 0 END",
        f"CASE WHEN {landing_src} IS NOT NULL AND {landing} IS NULL "
        f"THEN {FLAGS['ingest_ts'][0]} ELSE 0 END",
    ]
    for field, (value, maximum) in numbers.items():
        parts.append(
            f"CASE WHEN {value} IS NOT NULL AND NOT isnan({value}) "
            f"AND {count_sql(value, int(maximum))} IS NULL THEN {FLAGS[field][0]} ELSE 0 END"
        )
    return f"CAST(({' + '.join(parts)}) AS UTINYINT)"


def counts_sql(column: str = "out_of_range") -> str:
    """SELECT-list items counting rows per flag (aliases: the flag keys)."""
    return ", ".join(
        f'count(*) FILTER (WHERE ({column} & {bit}) <> 0) AS "{key}"'
        for key, (bit, _) in FLAGS.items()
    )


def describe(counts: Mapping[str, int]) -> list[str]:
    """One line per field with out-of-range values, e.g. "clock skew: 3 events from the future"."""
    lines = []
    for key, (_, text) in FLAGS.items():
        n = int(counts.get(key) or 0)
        if n:
            lines.append(text.format(n=f"{n:,} event" + ("" if n == 1 else "s")))
    return lines
