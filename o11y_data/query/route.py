"""Questions routed by what they need (docs/scaling.md, "What goes where").

The local store holds raw rows from ``EventsDB.raw_from()`` on (None: all of history) and rollups
for all of it. Counts, rates and percentiles over any window stay local (rollups, and raw rows at
the edges) as long as the raw rows the planner would read lie inside the horizon. A question that
needs raw rows before it (the explorer's table or search, newest-N past the horizon, an exact
percentile of an old window) goes to the configured engine with the window pushed down; its
answers are cached on (question, table snapshot id). Without an engine such a question is
refused in one line (:class:`BeforeHorizon`), never answered from the horizon's rows alone.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import O11yError
from . import planner, queries
from .engines.base import (
    ROW_COLUMNS,
    Aggregate,
    Answer,
    Engine,
    NewestRows,
    PercentileRefused,
    Question,
    caption,
    newest_where,
)
from .planner import AGENT, CYCLE_ROWS, DAY, EVENT_ROWS, HOUR, MODE, Filters, Key, Rows

if TYPE_CHECKING:
    from ..config import Settings
    from .db import EventsDB

log = logging.getLogger(__name__)

LOCAL = "local store"
SEE = "see docs/scaling.md"


class BeforeHorizon(O11yError):
    """A question needing raw rows before the store's horizon, and no engine to ask."""


def horizon_line(raw_from: datetime, *, now: datetime | None = None) -> str:
    """ "before the 90-day horizon (2026-09-04): configure an engine, see docs/scaling.md"."""
    now = now or datetime.now(UTC)
    days = max(1, round((now - raw_from) / timedelta(days=1)))
    return (
        f"before the {days}-day horizon ({raw_from:%Y-%m-%d %H:%M} UTC): "
        f"configure an engine (O11Y_ENGINE), {SEE}"
    )


def raw_rows_line(raw_from: datetime | None, horizon_s: float | None) -> str:
    """Where the store's raw rows begin, for ``status`` and the health page: "kept from
    2026-09-04 (90-day horizon); older windows answered from rollups"."""
    if raw_from is None:
        if horizon_s is None:
            return "every raw row kept (O11Y_RAW_HORIZON=all)"
        return f"every raw row kept so far ({_days(horizon_s)} horizon from the next sync)"
    why = (
        f"{_days(horizon_s)} horizon"
        if horizon_s is not None
        else "an earlier horizon; O11Y_RAW_HORIZON=all keeps rows from now on"
    )
    return f"kept from {raw_from:%Y-%m-%d} ({why}); older windows answered from rollups"


def _days(horizon_s: float) -> str:
    return f"{horizon_s / 86400:g}-day"


def engine_line(settings: Settings) -> str:
    """The engine raw questions before the horizon go to, named without an address or secret."""
    if settings.engine == "r2sql":
        return "R2 SQL (O11Y_ENGINE=r2sql)"
    if settings.engine == "daft":
        runner = "a Ray cluster" if settings.ray_address else "its local runner"
        return f"Daft on {runner} (O11Y_ENGINE=daft)"
    return "no engine: raw questions before the horizon are answered in one line"


def engine_for(settings: Settings) -> Engine | None:
    """The engine the settings configure, or None."""
    if settings.engine == "r2sql":
        from .engines.r2sql import R2SQLEngine

        return R2SQLEngine.from_settings(settings)
    if settings.engine == "daft":
        from .engines.daft_engine import DaftEngine

        return DaftEngine.from_settings(settings)
    return None


def _keys(group: Any) -> list[Key]:
    if group is None:
        return []
    if isinstance(group, tuple):
        return [k for g in group for k in _keys(g)]
    if group == "agent":
        return [AGENT]
    if group == "mode":
        return [MODE]
    return [planner.bucket(int(group))]


def _rows(q: Aggregate) -> Rows:
    return CYCLE_ROWS if q.rows == "cycles" else EVENT_ROWS


def _before(lo: datetime | None, raw_from: datetime) -> bool:
    return lo is None or lo < raw_from


class Router:
    """Answers questions from the local store or the engine; engine answers are cached on
    (question, snapshot id), so a page rerun does not ask again until the table moves."""

    def __init__(self, db: EventsDB, engine: Engine | None = None, *, cache_size: int = 64):
        self.db = db
        self.engine = engine
        self._cache: OrderedDict[tuple[Question, int | None], Answer] = OrderedDict()
        self._size = cache_size
        self._lock = threading.Lock()

    # -- what a question needs -------------------------------------------------------------

    def needs_engine(self, q: Question) -> bool:
        """Whether answering ``q`` needs raw rows the store no longer holds."""
        raw_from = self.db.raw_from()
        if raw_from is None:
            return False
        if isinstance(q, NewestRows):
            f = q.filters
            if not _before(f.start, raw_from):
                return False
            # The newest rows may all lie inside the horizon: then the store answers.
            local = self._local_newest(q, floor=raw_from)
            return len(local) < q.limit
        spans = planner.raw_spans(
            self.db, q.catalog(), q.filters, keys=_keys(q.group), rows=_rows(q)
        )
        return any(_before(lo, raw_from) for lo, _ in spans)

    def ask(self, q: Question) -> Answer:
        """The answer to ``q``: local when the store can give it whole, else from the engine
        (cached), else :class:`BeforeHorizon` in one line."""
        t0 = time.perf_counter()
        if not self.needs_engine(q):
            return self._local(q, t0)
        raw_from = self.db.raw_from()
        assert raw_from is not None
        if self.engine is None:
            raise BeforeHorizon("Not in the local store", horizon_line(raw_from))
        state = self.engine.table_state()
        key = (q, state.snapshot_id)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
        if hit is not None:
            return Answer(
                hit.frame.copy(),
                hit.engine,
                time.perf_counter() - t0,
                hit.snapshot_id,
                hit.exact,
                hit.next_before,
                hit.note,
                cached=True,
            )
        try:
            answer = self.engine.answer(q, state)
        except PercentileRefused as exc:
            if not isinstance(q, Aggregate):
                raise
            answer = self._histogram_fallback(q, exc, t0, raw_from)
        with self._lock:
            self._cache[key] = answer
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return answer

    # -- local answers -----------------------------------------------------------------------

    def _local(self, q: Question, t0: float) -> Answer:
        snap = self.db.generation.snapshot_id
        if isinstance(q, NewestRows):
            df = self._local_newest(q, floor=None)
            more = len(df) >= q.limit
            edge = df["ts"].min().to_pydatetime() if more and len(df) else None
            return Answer(df, LOCAL, time.perf_counter() - t0, snap, next_before=edge)
        p = planner.plan(self.db, q.catalog(), q.filters, keys=_keys(q.group), rows=_rows(q))
        df = self.db.query(p.sql, p.params)
        return Answer(df, LOCAL, time.perf_counter() - t0, snap, exact=not p.approx)

    def _local_newest(self, q: NewestRows, *, floor: datetime | None) -> Any:
        """The newest rows as the engine pages them (every row from the limit-th newest time
        on), from the store; ``floor`` bounds the window below (the horizon)."""
        f = q.filters
        if floor is not None:
            f = f.within(max(f.start or floor, floor), f.end)
        w, p = newest_where(q, f)
        edge = self.db.fetch(
            f"SELECT min(ts) AS ts FROM (SELECT ts FROM events WHERE {w} ORDER BY ts DESC LIMIT ?)",
            [*p, int(q.limit)],
        )[0]["ts"]
        if edge is None:
            return self.db.query(f"SELECT {', '.join(ROW_COLUMNS)} FROM events WHERE false")
        return self.db.query(
            f"SELECT {', '.join(ROW_COLUMNS)} FROM events WHERE {w} AND ts >= ? ORDER BY ts DESC",
            [*p, edge],
        )

    def _histogram_fallback(
        self, q: Aggregate, exc: PercentileRefused, t0: float, raw_from: datetime
    ) -> Answer:
        """The engine refused an exact percentile: the local histograms answer, marked "≈",
        when the window's partial hours and days (read raw) lie inside the horizon."""
        f = q.filters
        edges_ok = f.start is not None and (
            f.start >= raw_from or planner.floor(f.start, DAY) == f.start
        )
        whole_day = (
            f.start is not None
            and f.end is not None
            and planner.ceil(f.start, DAY) < planner.floor(f.end, DAY)
        )
        fine = isinstance(q.group, int) and q.group % HOUR
        if not (self.db.rollups_ok and edges_ok and whole_day and not fine):
            raise O11yError(
                exc.title,
                f"{exc.detail}; no local histogram covers this window (ask whole days)",
            ) from exc
        try:
            p = planner.plan(
                self.db, q.catalog(), f, keys=_keys(q.group), rows=_rows(q), force="rollups"
            )
        except ValueError as err:  # no histogram keeps this grouping
            raise O11yError(exc.title, f"{exc.detail}; {err}") from exc
        df = self.db.query(p.sql, p.params)
        note = f"{exc.title.lower()} ({exc.detail}); percentiles ≈ from local histograms"
        return Answer(
            df,
            LOCAL,
            time.perf_counter() - t0,
            self.db.generation.snapshot_id,
            exact=False,
            note=note,
        )


SUMMARY = ("cycles", "avg_ms", "tools", "errors")


def _whole(v: Any) -> int | None:
    """An engine's integer cell as int; NULL (None, NaN, pandas' NA) as None."""
    try:
        return None if v is None or v != v else int(v)
    except TypeError:  # pandas' NA has no truth value
        return None


def summary_needs_engine(db: EventsDB, f: Filters) -> bool:
    """Whether :func:`summary` over ``f`` needs raw rows before the horizon."""
    return Router(db).needs_engine(Aggregate(SUMMARY, f, group=("agent", "mode")))


def summary(db: EventsDB, settings: Settings, f: Filters) -> tuple[list[dict[str, Any]], str]:
    """The reference query (docs/events.md) routed: rows of agent, mode, cycles, avg_ms, tools,
    errors (by agent, then cycles most first, then mode) and where they came from. Local (and
    without pandas, for the CLI's start) unless the window's raw edges lie before the horizon."""
    t0 = time.perf_counter()
    q = Aggregate(SUMMARY, f, group=("agent", "mode"))
    router = Router(db, engine_for(settings) if db.raw_from() is not None else None)
    if not router.needs_engine(q):
        rows = queries.summary_rows(db, f)
        return rows, caption(LOCAL, time.perf_counter() - t0)
    ans = router.ask(q)
    out = [
        {"agent": r["agent"], "mode": r["mode"], **{c: _whole(r[c]) for c in SUMMARY}}
        for r in ans.frame.to_dict("records")
    ]
    out.sort(key=lambda r: (r["agent"] or "", -(r["cycles"] or 0), r["mode"] or ""))
    return out, ans.caption()


# A raw view read by a query (FROM or JOIN it, quoted or not); a column named events is not.
_RAW_VIEWS = re.compile(
    r"\b(FROM|JOIN)\s+\"?(events_all|events|cycles|unparseable)\b", re.IGNORECASE
)


def console_notice(db: EventsDB, sql: str) -> str | None:
    """The SQL console's one line for a query over the raw views of a store with a horizon:
    they hold rows since ``raw_from`` only, and older raw rows are the engine's (the console
    never sends SQL there: its dialect and cost differ). None when nothing needs saying."""
    raw_from = db.raw_from()
    if raw_from is None or not _RAW_VIEWS.search(sql or ""):
        return None
    return (
        f"events, cycles and unparseable hold rows since {raw_from:%Y-%m-%d %H:%M} UTC (the raw "
        "horizon); hourly and daily cover all history; older raw rows: the Explorer "
        f"(asks the configured engine) or R2 SQL itself, {SEE}"
    )
