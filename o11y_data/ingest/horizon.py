"""The raw horizon (``O11Y_RAW_HORIZON``): where the store's raw rows begin.

The segments and the downloaded copies hold the rows whose event time is on or after
``raw_from`` (a whole UTC day, ``horizon`` before the sync's clock, and never moving back); the
rollups hold all of history. A first sync sends the files the manifests place wholly before
``raw_from`` through a stream (download, normalize, roll up, delete), the others into the store.

What "wholly before" means, from the contract's valid ranges (docs/events.md): an event's ``ts``
is its ``_ts`` only when that is at most ``FUTURE_TOLERANCE`` after its valid ``__ingest_ts``,
else the landing time itself. So a file whose every row landed (a valid, non-NULL
``__ingest_ts``) before ``L`` holds no event time from ``L + FUTURE_TOLERANCE`` on. A file the
manifests cannot bound is downloaded into the store; its rows decide after normalization.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from .iceberg import DataFile
from .ranges import FUTURE_TOLERANCE
from .store import FileRecord

DAY_US = 86_400_000_000
TOLERANCE_US = int(FUTURE_TOLERANCE / timedelta(microseconds=1))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def boundary(now_s: float, horizon_s: float | None, previous_us: int | None) -> int | None:
    """``raw_from`` in epoch µs: the UTC day ``horizon_s`` before ``now_s``, never earlier than
    the store's ``previous_us`` (rows before it are gone); None keeps all history."""
    if horizon_s is None:
        return previous_us
    us = int((now_s - horizon_s) * 1_000_000) // DAY_US * DAY_US
    return us if previous_us is None else max(us, previous_us)


def as_datetime(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def day_start(day: int) -> datetime:
    """The instant a day (days since 1970-01-01, UTC) begins, as the rollups key their days."""
    return _EPOCH + timedelta(days=day)


def wholly_before(f: DataFile, raw_from_us: int | None) -> bool:
    """Whether the manifests place every row of ``f`` before ``raw_from_us`` (event time)."""
    return (
        raw_from_us is not None
        and f.landed_before_us is not None
        and f.landed_before_us + TOLERANCE_US <= raw_from_us
    )


def keeps_raw(rec: FileRecord, raw_from_us: int | None) -> bool:
    """Whether a file has rows the store keeps raw (on or after ``raw_from_us``, or without an
    event time); a file whose days are not recorded is kept."""
    if raw_from_us is None or rec.days is None or rec.untimed:
        return True
    return any(d * DAY_US >= raw_from_us for d in rec.days)


def days_before(records: Iterable[FileRecord], raw_from_us: int) -> set[int] | None:
    """The days before ``raw_from_us`` holding rows of ``records`` (None: some are unknown)."""
    out: set[int] = set()
    for rec in records:
        if rec.days is None:
            return None
        out.update(d for d in rec.days if d * DAY_US < raw_from_us)
    return out


def before_where(raw_from_us: int, days: set[int] | None) -> tuple[str, list[Any]]:
    """A WHERE clause on ``ts`` for raw rows before ``raw_from_us`` (of ``days`` only, if given)."""
    if days is None:
        return "ts < ?", [as_datetime(raw_from_us)]
    return (
        "ts < ? AND list_contains(?::BIGINT[], CAST(epoch_us(ts) // ? AS BIGINT))",
        [as_datetime(raw_from_us), sorted(days), DAY_US],
    )
