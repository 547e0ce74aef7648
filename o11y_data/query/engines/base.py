"""One interface for the engines that answer what the local store cannot (docs/scaling.md).

A question is a typed record (:class:`NewestRows`, :class:`Aggregate`); an engine renders it in
its own dialect, taking every metric from the catalog (``metrics.py``) and every normalization
rule from the contract's data (``normalize.EVENT_FIELDS``, ``ranges``), and gives back an
:class:`Answer`: the rows, who answered, how long it took, which table snapshot it read and
whether it is exact. Routing (``route.py``) decides which questions come here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ...errors import O11yError
from ...ingest import iceberg
from .. import metrics as M
from ..planner import Filters
from ..queries import search_where

if TYPE_CHECKING:
    import pandas as pd

# What the explorer's table shows of an event, in order (the local store's columns).
ROW_COLUMNS = (
    "ts",
    "ingest_ts",
    "event_type",
    "agent",
    "mode",
    "duration_ms",
    "tool_calls",
    "errors",
    "raw",
)
# None: one row; "agent"/"mode" or both (a tuple, in that order); int: time buckets of seconds.
Group = Literal["agent", "mode"] | tuple[str, ...] | int | None


@dataclass(frozen=True)
class NewestRows:
    """The ``limit`` newest events under ``filters`` (every event type, or cycles only), with a
    text search on agent and raw JSON; ``before`` (exclusive) pages on: the next page is asked
    with the previous answer's ``next_before`` (keyset paging: no engine here has OFFSET)."""

    filters: Filters
    limit: int = 500
    search: str = ""
    cycles_only: bool = False
    before: datetime | None = None


@dataclass(frozen=True)
class Aggregate:
    """Catalog measures (names in ``metrics.CATALOG``) over the cycles (``rows="cycles"``) or
    every event under ``filters``, one row per ``group``."""

    measures: tuple[str, ...]
    filters: Filters
    group: Group = None
    rows: Literal["cycles", "events"] = "cycles"

    def catalog(self) -> list[M.Measure]:
        unknown = [m for m in self.measures if m not in M.CATALOG]
        if unknown:
            raise ValueError(f"not in the metric catalog: {', '.join(unknown)}")
        return [M.CATALOG[m] for m in self.measures]


Question = NewestRows | Aggregate


@dataclass(frozen=True)
class Answer:
    """An answer and where it came from: ``engine`` ("R2 SQL", "local store"), ``seconds``
    taken, the table ``snapshot_id`` read, whether every value is ``exact`` (False: "≈"),
    ``next_before`` for the next page of rows, and a one-line ``note`` (a fallback's reason)."""

    frame: pd.DataFrame
    engine: str
    seconds: float
    snapshot_id: int | None = None
    exact: bool = True
    next_before: datetime | None = None
    note: str = ""
    cached: bool = False

    def caption(self) -> str:
        """ "from R2 SQL in 1.2 s" / "≈ from local store in 0.03 s (…)", for a screen or the CLI."""
        return caption(
            self.engine,
            self.seconds,
            exact=self.exact,
            cached=self.cached,
            snapshot_id=self.snapshot_id,
            note=self.note,
        )


def caption(
    engine: str,
    seconds: float,
    *,
    exact: bool = True,
    cached: bool = False,
    snapshot_id: int | None = None,
    note: str = "",
) -> str:
    """Where an answer came from and how long it took, in one line."""
    mark = "" if exact else "≈ "
    took = f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.0f} s"
    where = f"{mark}from {engine} in {took}"
    if cached:
        where += " (cached)"
    if snapshot_id is not None:
        where += f", snapshot {snapshot_id}"
    return f"{where}; {note}" if note else where


@dataclass(frozen=True)
class TableState:
    """The table as the catalog names it now: its snapshot and the delete files it carries."""

    snapshot_id: int | None
    delete_files: tuple[iceberg.DeleteFile, ...] = field(default_factory=tuple)


class EngineError(O11yError):
    """An engine could not answer (HTTP error, timeout, bad body): one line, never the token."""


class EngineRefused(O11yError):
    """An engine will not answer this question on this table (delete files it cannot apply, a
    metric it has no spelling of): one line naming what."""


class PercentileRefused(EngineError):
    """The engine refused an exact percentile (its budget): the caller may fall back to the
    local histograms, marked "≈"."""


def group_keys(group: Group) -> tuple[tuple[str, ...], int | None]:
    """The grouping columns a question's ``group`` names (``bucket`` for time) and the bucket
    width in seconds when it groups by time; a ValueError for anything else."""
    if group is None:
        return (), None
    if isinstance(group, tuple) and group and all(g in ("agent", "mode") for g in group):
        return group, None
    if group in ("agent", "mode"):
        return (str(group),), None
    if isinstance(group, int) and not isinstance(group, bool) and group > 0:
        return ("bucket",), group
    raise ValueError(f"group must be None, agent, mode or a positive number of seconds: {group!r}")


def portable(m: M.Measure, *, engine: str) -> M.Measure:
    """``m`` when an engine may answer it; a one-line refusal for one only DuckDB spells."""
    if not m.portable:
        raise EngineRefused(
            f"{engine} cannot answer {m.name}",
            "its definition is the local store's own (DuckDB); ask over the raw horizon",
        )
    return m


def newest_where(q: NewestRows, f: Filters | None = None) -> tuple[str, list[Any]]:
    """The condition (DuckDB, ``?`` parameters) on the ``events`` columns that keeps the rows
    ``q`` pages through: its filters (or ``f``) and search, cycles only if asked, a time, and
    before ``q.before``."""
    w, p = search_where(q.filters if f is None else f, q.search)
    if q.cycles_only:
        w += " AND event_type = 'agent.cycle'"
    w += " AND ts IS NOT NULL"
    if q.before is not None:
        w += " AND ts < ?"
        p = [*p, q.before]
    return w, p


class Engine(Protocol):
    """What route.py needs of an engine."""

    name: str

    def table_state(self) -> TableState:
        """The snapshot the engine would read now (the REST catalog's)."""
        ...

    def answer(self, question: Question, state: TableState) -> Answer:
        """Answer ``question`` over the snapshot ``state`` names (raises EngineRefused when its
        delete files cannot be applied)."""
        ...


def unsupported_deletes(
    state: TableState, *, supported: frozenset[str], engine: str
) -> EngineRefused | None:
    """The refusal for a snapshot whose delete files ``engine`` cannot apply (``supported``:
    DeleteFile kinds it applies), naming them; None when it can read the snapshot."""
    bad = [d for d in state.delete_files if d.kind not in supported]
    if not bad:
        return None
    kinds = sorted({d.kind for d in bad})
    names = ", ".join(sorted({d.key.rsplit("/", 1)[-1] for d in bad})[:3])
    more = len({d.key for d in bad}) - 3
    names += f" and {more} more" if more > 0 else ""
    label = {
        "equality": "equality deletes",
        "dv": "deletion vectors",
        "position": "position deletes",
    }
    return EngineRefused(
        f"{engine} cannot read this table",
        f"snapshot {state.snapshot_id} has {' and '.join(label.get(k, k) for k in kinds)} "
        f"({names}) that {engine} is not documented to apply; the answer would count deleted rows",
    )
