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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from .iceberg import DataFile, DeleteFile
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


# -- history asked of an engine (O11Y_HISTORY=engine) -----------------------------------------


@dataclass(frozen=True)
class EngineCut:
    """A cut on ``__ingest_ts`` that splits the snapshot's live files in two by their manifests:
    ``files`` lie wholly below ``before_us`` (every row non-NULL and earlier), every other file
    wholly at or after it. An engine asked for the rows with ``__ingest_ts < before_us`` then
    returns exactly the rows of ``files``: no file is both downloaded and aggregated."""

    before_us: int
    files: frozenset[str]


def engine_cut(
    live: Iterable[DataFile], raw_from_us: int, *, never: set[str] = frozenset()
) -> tuple[EngineCut | None, str]:
    """The highest cut at most ``raw_from_us`` less the future grace (so every file below it is
    wholly before the raw horizon) that the manifests prove, and why there is none. Files in
    ``never`` (set aside, unreadable: the store leaves their rows out) must lie above it.

    Start at the horizon's cut; a file above the cut whose rows may lie below it (no lower bound,
    or a lower bound under the cut) lowers the cut to its lower bound, which may move other
    files above it; repeated until nothing moves (each round lowers the cut, so it ends)."""
    files = list(live)
    cut = raw_from_us - TOLERANCE_US
    while True:
        below = {
            f.key
            for f in files
            if f.key not in never and f.landed_before_us is not None and f.landed_before_us <= cut
        }
        lows = []
        for f in files:
            if f.key in below:
                continue
            if f.landed_from_us is None:
                why = "its __ingest_ts has no bounds (NULLs, or no statistics)"
                return None, f"{f.key}: {why}"
            lows.append(f.landed_from_us)
        low = min(lows, default=cut)
        if low >= cut:
            return EngineCut(cut, frozenset(below)), ""
        cut = low


@dataclass(frozen=True)
class EngineHistory:
    """An engine's answer for the rows landed before a cut: Arrow tables of rollups.
    engine_rows_sql's rows grouped and added up by FACT_KEYS, DUR_KEYS (``dur_in`` rows) and
    LAG_KEYS (``lag_in`` rows), ``n`` counting rows; ``engine`` says who answered."""

    engine: str
    facts: Any
    duration: Any
    lag: Any


class HistoryEngine(Protocol):
    """What a sync with O11Y_HISTORY=engine needs of an engine (built by the caller: ingest
    knows nothing of the query engines)."""

    name: str

    def history(
        self,
        *,
        snapshot_id: int | None,
        delete_files: tuple[DeleteFile, ...],
        before_us: int,
        expected: int = 0,
    ) -> EngineHistory:
        """The rollup rows of the snapshot's rows with ``__ingest_ts < before_us``, its delete
        files applied (EngineRefused when it cannot apply them); ``expected``: about how many
        rows that is (the manifests' record counts), for the engine's plan."""
        ...
