"""Daft on a Ray cluster (or Daft's local runner): the engine for a team that runs its own compute.

The table is loaded from the REST catalog with pyiceberg and read by ``daft.read_iceberg`` pinned
to the snapshot the catalog names (``TableState``), the window pushed down as a filter on the
partition column (days of ``__ingest_ts``) so files are pruned. Each batch is normalized on the
workers by the store's own normalization (``normalize.normalized_sql`` run by DuckDB), and the
question's filter is the planner's (``planner.where``, ``queries.search_where``) with bound
parameters: the engine's events are the store's events by construction. Aggregates are the
catalog's portable expressions, given to Daft SQL through :func:`daft_sql` (Daft SQL has no
``FILTER (WHERE …)`` and no ``nullif``: both are rewritten to the equivalent CASE), and exact
percentiles are Daft's ``percentile`` (linear interpolation, as ``quantile_cont``).

Workers import this package: a Ray cluster needs ``o11y_data`` importable (docs/scaling.md).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ...ingest import horizon, normalize, ranges, rollups
from .. import metrics as M
from .. import planner
from .base import (
    ROW_COLUMNS,
    Aggregate,
    Answer,
    EngineError,
    EngineRefused,
    NewestRows,
    Question,
    TableState,
    group_keys,
    newest_where,
    portable,
    unsupported_deletes,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd
    import pyarrow as pa

    from ...config import Settings

NAME = "Daft"
# Delete kinds Daft 0.7 applies when reading Iceberg: position deletes (checked against
# pyiceberg's scan in tests/test_daft_engine.py). Equality deletes and v3 deletion vectors are
# refused in one line rather than counted as live rows.
SUPPORTED_DELETES = frozenset({"position"})
TABLE = "agent_network.events"
# Rows normalized per DuckDB call on a worker: each call costs a connection and the macros
# (~20-30 ms), and a day partition's files can be a few rows each, so small batches are
# coalesced to about this many (tens of MB of events at most); large ones are split.
BATCH_ROWS = 32_768
# The history's rows (``expected``, from the manifests' record counts) up to which Daft keeps the
# normalized rows once and groups them three ways (~300 bytes a row: 1.5 GB at most); more are
# read and normalized once per grouping (measured at 250k rows, local runner: 11.4 s against 15.0).
ONE_PASS_ROWS = 5_000_000

# -- the runner: chosen once per process, before any other Daft call ------------------------

_runner_lock = threading.Lock()
_runner: str | None = None


def use_runner(address: str | None) -> str:
    """Point Daft at the Ray cluster at ``address`` (None: Daft's local native runner), once per
    process; asking for another runner later is refused in one line (Daft cannot switch)."""
    global _runner
    want = address or "local"
    with _runner_lock:
        if _runner == want:
            return want
        if _runner is not None:
            raise EngineRefused(
                "Daft's runner is already set",
                f"this process runs Daft on {_runner}; restart it to use {want}",
            )
        import daft

        try:
            if address:
                daft.set_runner_ray(address=address)
            else:
                daft.set_runner_native()
        except Exception as exc:  # Daft and Ray raise their own types: one line here
            raise EngineError(f"Cannot start Daft on {want}", type(exc).__name__) from exc
        _runner = want
        return want


# -- the catalog's expressions in Daft SQL ----------------------------------------------------


def _close(text: str, start: int) -> int:
    """The index of the parenthesis closing the one at ``start`` (quotes respected)."""
    depth, quoted = 0, False
    for i in range(start, len(text)):
        ch = text[i]
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced parentheses in {text!r}")


def _open(text: str, end: int) -> int:
    """The index of the parenthesis opening the one closing at ``end``."""
    depth, quoted = 0, False
    for i in range(end, -1, -1):
        ch = text[i]
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == ")":
            depth += 1
        elif not quoted and ch == "(":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced parentheses in {text!r}")


def _split_args(text: str) -> list[str]:
    """Top-level comma-separated arguments."""
    out, depth, quoted, cur = [], 0, False, ""
    for ch in text:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return out


_FILTER = re.compile(r"\)\s*FILTER\s*\(\s*WHERE\s", re.IGNORECASE)
_NULLIF = re.compile(r"\bnullif\s*\(", re.IGNORECASE)


def daft_sql(expr: str) -> str:
    """A catalog expression (standard SQL) in Daft SQL: ``agg(x) FILTER (WHERE c)`` becomes
    ``agg(CASE WHEN c THEN x ELSE NULL END)`` (``count(*)``: ``THEN 1``; DISTINCT kept), and
    ``nullif(a, b)`` becomes ``CASE WHEN a = b THEN NULL ELSE a END``: the same values, as
    aggregates skip NULLs. Anything else Daft cannot run fails when the query is planned."""
    while m := _FILTER.search(expr):
        call_end = m.start()
        call_open = _open(expr, call_end)
        name = re.search(r"(\w+)\s*$", expr[:call_open])
        if name is None:
            raise ValueError(f"FILTER without an aggregate in {expr!r}")
        filter_open = expr.index("(", m.start() + 1)
        filter_end = _close(expr, filter_open)
        cond = expr[m.end() : filter_end].strip()
        arg = expr[call_open + 1 : call_end].strip()
        distinct = ""
        if arg.upper().startswith("DISTINCT "):
            distinct, arg = "DISTINCT ", arg[9:].strip()
        value = "1" if arg == "*" else arg
        call = f"{name.group(1)}({distinct}CASE WHEN {cond} THEN {value} ELSE NULL END)"
        expr = expr[: name.start()] + call + expr[filter_end + 1 :]
    while m := _NULLIF.search(expr):
        end = _close(expr, m.end() - 1)
        args = _split_args(expr[m.end() : end])
        if len(args) != 2:
            raise ValueError(f"nullif takes two arguments in {expr!r}")
        a, b = args
        case = f"(CASE WHEN ({a}) = ({b}) THEN NULL ELSE ({a}) END)"
        expr = expr[: m.start()] + case + expr[end + 1 :]
    return expr


def measure_sql(m: M.Measure) -> str:
    """A catalog measure in Daft SQL, or a one-line refusal for one only DuckDB spells."""
    portable(m, engine=NAME)
    if isinstance(m, M.Percentile):
        return f"percentile({m.value}, {m.q!r})"
    return daft_sql(m.raw)


def aggregate_sql(q: Aggregate) -> str:
    """The Daft SQL of ``q`` over ``ev`` (the normalized rows the question keeps)."""
    keys, _ = group_keys(q.group)
    cols = [f"{measure_sql(m)} AS {m.name}" for m in q.catalog()]
    if not keys:
        return f"SELECT {', '.join(cols)} FROM ev"
    k = ", ".join(keys)
    return f"SELECT {k}, {', '.join(cols)} FROM ev GROUP BY {k}"


# -- normalization on the workers: the store's own SQL ---------------------------------------


@dataclass(frozen=True)
class Keep:
    """Which normalized rows a question reads: a DuckDB condition over the ``events`` columns
    (the planner's, with ``?`` parameters) and the time bucket width, if any."""

    where: str
    params: tuple[Any, ...] = ()
    bucket_s: int | None = None


def keep_for(q: Question) -> Keep:
    """The planner's filter for ``q``, as the local store applies it."""
    if isinstance(q, Aggregate):
        cycles = q.rows == "cycles"
        w, p = planner.where(q.filters, cycles=cycles)
        if cycles:
            w = f"event_type = 'agent.cycle' AND ({w})"
        return Keep(w, tuple(p), group_keys(q.group)[1])
    w, p = newest_where(q)
    return Keep(w, tuple(p))


NORMALIZED = (
    ("ts", "timestamp"),
    ("ingest_ts", "timestamp"),
    ("event_type", "string"),
    ("agent", "string"),
    ("mode", "string"),
    ("duration_ms", "int64"),
    ("tool_calls", "int64"),
    ("errors", "int64"),
    ("raw", "string"),
    ("keep", "bool"),
    ("bucket", "timestamp"),
)


def arrow_schema() -> pa.Schema:
    import pyarrow as pa

    kinds = {
        "timestamp": pa.timestamp("us", tz="UTC"),
        "string": pa.large_string(),
        "int64": pa.int64(),
        "bool": pa.bool_(),
    }
    return pa.schema([(n, kinds[k]) for n, k in NORMALIZED])


def _duckdb_batch(
    ingest: pa.Array, value: pa.Array, select: Callable[[str], str], params: list[Any]
) -> pa.Table:
    """``select`` (SQL over a FROM item of the store's normalized rows, ``file`` the row's
    position in the batch) run by DuckDB on one batch (``__ingest_ts``, ``value``): the store's
    own normalization."""
    import duckdb
    import pyarrow as pa

    from ...ingest import rollups

    batch = pa.table(
        {"n": pa.array(range(len(ingest)), pa.int64()), "i": ingest, "v": value.cast(pa.string())}
    )
    src = "SELECT CAST(n AS VARCHAR) AS file, CAST(i AS TIMESTAMPTZ) AS ingest_ts, v AS raw FROM b"
    sql = select(f"({normalize.normalized_sql(src)})")
    conn = duckdb.connect()
    try:
        normalize.prepare(conn)
        rollups.prepare(conn)
        conn.register("b", batch)
        return conn.sql(sql, params=params).to_arrow_table()
    finally:
        conn.close()


def _struct(out: pa.Table) -> pa.StructArray:
    import pyarrow as pa

    return pa.StructArray.from_arrays(
        [out.column(n).combine_chunks() for n in out.column_names], out.column_names
    )


def normalize_batch(ingest: pa.Array, value: pa.Array, keep: Keep) -> pa.StructArray:
    """The rows of one batch (``__ingest_ts``, ``value``) as the store's events, in input order,
    with ``keep`` (the question's filter over parsed events) and ``bucket``."""
    bucket = "CAST(NULL AS TIMESTAMPTZ)"
    if keep.bucket_s is not None:
        bucket = planner.bucket(keep.bucket_s).expr.format(t="ts")

    def select(rows: str) -> str:
        return (
            "SELECT ts, ingest_ts, event_type, agent, mode, duration_ms, tool_calls, errors, raw, "
            f"coalesce(parsed AND ({keep.where}), false) AS keep, {bucket} AS bucket, file "
            f"FROM {rows} s ORDER BY CAST(file AS BIGINT)"
        )

    out = _duckdb_batch(ingest, value, select, list(keep.params)).drop_columns(["file"])
    return _struct(out.cast(arrow_schema()))


def _normalized_udf() -> Any:
    import daft

    from ...ingest import normalize as _n  # noqa: F401  (imported on the workers too)

    dtype = daft.DataType.from_arrow_type(arrow_schema_struct())

    # In the worker itself, not a process per UDF: DuckDB releases the GIL while it normalizes.
    @daft.func.batch(return_dtype=dtype, unnest=True, use_process=False, batch_size=BATCH_ROWS)
    def normalized(ingest: Any, value: Any, keep: Keep) -> Any:
        return normalize_batch(ingest.to_arrow(), value.to_arrow(), keep)

    return normalized


def arrow_schema_struct() -> pa.DataType:
    import pyarrow as pa

    return pa.struct(list(arrow_schema()))


# -- the engine ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reach:
    """Where the table is: the REST catalog and the S3 (R2) endpoint and keys its files need."""

    catalog_uri: str
    catalog_token: Any  # config.Secret | None
    warehouse: str | None
    s3_endpoint: str | None
    s3_key_id: Any  # config.Secret | None
    s3_secret: Any  # config.Secret | None
    region: str = "auto"


def _get(secret: Any) -> str | None:
    return secret.get() if secret is not None else None


def load_table(reach: Reach) -> Any:
    """The table as the REST catalog names it (pyiceberg), or EngineError in one line."""
    from pyiceberg.catalog.rest import RestCatalog

    props = {"uri": reach.catalog_uri, "s3.region": reach.region}
    optional = {
        "token": _get(reach.catalog_token),
        "warehouse": reach.warehouse,
        "s3.endpoint": reach.s3_endpoint,
        "s3.access-key-id": _get(reach.s3_key_id),
        "s3.secret-access-key": _get(reach.s3_secret),
    }
    props.update({k: v for k, v in optional.items() if v})
    try:
        return RestCatalog("o11y", **props).load_table(TABLE)
    except Exception as exc:  # pyiceberg's and the HTTP client's: the cause chained, no token
        raise EngineError(
            f"{NAME} cannot load {TABLE} from the REST catalog", type(exc).__name__
        ) from exc


def io_config(reach: Reach) -> Any:
    from daft.io import IOConfig, S3Config

    return IOConfig(
        s3=S3Config(
            endpoint_url=reach.s3_endpoint,
            key_id=_get(reach.s3_key_id),
            access_key=_get(reach.s3_secret),
            region_name=reach.region,
        )
    )


def prune(prune_from: datetime | None, *, now: datetime | None = None) -> Any:
    """The scan filter on the partition column: days of ``__ingest_ts`` before the window's
    start less the future grace are skipped (an event never lands before it happens, and never
    more than the grace ahead); rows whose landing time is missing or out of range keep their
    own ``_ts`` and are read. None: no window start, every file is read."""
    if prune_from is None:
        return None
    from daft import col, lit

    now = now or datetime.now(UTC)
    ing = col("__ingest_ts")
    lo = (prune_from - ranges.FUTURE_TOLERANCE).astimezone(UTC)
    return (
        (ing >= lit(lo))
        | ing.is_null()
        | (ing < lit(ranges.EARLIEST))
        | (ing > lit(now + ranges.FUTURE_TOLERANCE))
    )


@dataclass
class DaftEngine:
    """The engine route.py calls: Daft over the snapshot the catalog names."""

    reach: Reach
    state: Callable[[], TableState]
    ray_address: str | None = None
    name: str = NAME
    table_loader: Callable[[Reach], Any] = load_table
    _table: Any = None  # the last table loaded: reused while it holds the asked snapshot

    @classmethod
    def from_settings(
        cls, settings: Settings, *, state: Callable[[], TableState] | None = None
    ) -> DaftEngine:
        from .catalog import table_state

        if not settings.catalog_uri:
            raise EngineRefused(
                "Daft not configured", "O11Y_ENGINE=daft reads the table O11Y_CATALOG_URI names"
            )
        reach = Reach(
            settings.catalog_uri,
            settings.catalog_token,
            settings.catalog_warehouse,
            settings.endpoint,
            settings.access_key_id,
            settings.secret_access_key,
        )
        return cls(reach, state or (lambda: table_state(settings)), settings.ray_address)

    def table_state(self) -> TableState:
        return self.state()

    def answer(self, question: Question, state: TableState) -> Answer:
        refusal = unsupported_deletes(state, supported=SUPPORTED_DELETES, engine=NAME)
        if refusal is not None:
            raise refusal
        t0 = time.perf_counter()
        runner = use_runner(self.ray_address)
        where = "on Ray" if runner != "local" else "local runner"
        df = self._events(question, state)
        try:
            if isinstance(question, Aggregate):
                out, more = self._aggregate(question, df), None
            elif isinstance(question, NewestRows):
                out, more = self.newest_rows(question, df)
            else:
                raise TypeError(f"not a question: {type(question).__name__}")
        except (EngineRefused, TypeError):
            raise
        except Exception as exc:  # Daft's planner and runtime errors: one line, cause chained
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise EngineError(f"{NAME} query failed", first) from exc
        return Answer(
            out,
            f"{NAME} ({where})",
            time.perf_counter() - t0,
            state.snapshot_id,
            next_before=more,
        )

    def history(
        self,
        *,
        snapshot_id: int | None,
        delete_files: tuple[Any, ...],
        before_us: int,
        expected: int = 0,
    ) -> horizon.EngineHistory:
        """The rollup rows of the snapshot's rows landed before ``before_us`` (horizon.
        HistoryEngine): read pinned to the snapshot, its position deletes applied, the days
        from the cut on pruned, normalized and rolled up on the workers."""
        from daft import col, lit

        state = TableState(snapshot_id, tuple(delete_files))
        refusal = unsupported_deletes(state, supported=SUPPORTED_DELETES, engine=NAME)
        if refusal is not None:
            raise refusal
        runner = use_runner(self.ray_address)
        before = horizon.as_datetime(before_us)
        try:
            df = self._scan(state).where(col("__ingest_ts") < lit(before))
            df = df.select("__ingest_ts", "value").into_batches(BATCH_ROWS)
            rows = df.select(_history_udf()(col("__ingest_ts"), col("value")))
            if 0 < expected <= ONE_PASS_ROWS:  # one read of the table for the three groupings
                rows = rows.collect()
            facts, dur, lag = (f.to_arrow() for f in history_frames(rows))
        except (EngineRefused, EngineError):
            raise
        except Exception as exc:  # Daft's planner and runtime errors: one line, cause chained
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise EngineError(f"{NAME} could not roll up the history", first) from exc
        where = "on Ray" if runner != "local" else "local runner"
        return horizon.EngineHistory(f"{NAME} ({where})", facts, dur, lag)

    def _scan(self, state: TableState) -> Any:
        """The table read at the snapshot ``state`` names (EngineRefused when it is gone)."""
        import daft

        table = self._table
        if table is None or table.snapshot_by_id(state.snapshot_id) is None:
            table = self._table = self.table_loader(self.reach)
        if state.snapshot_id is None or table.snapshot_by_id(state.snapshot_id) is None:
            raise EngineRefused(
                f"{NAME} cannot read snapshot {state.snapshot_id}",
                "the REST catalog's table no longer has it; ask again",
            )
        return daft.read_iceberg(
            table, snapshot_id=state.snapshot_id, io_config=io_config(self.reach)
        )

    def _events(self, q: Question, state: TableState) -> Any:
        """The question's normalized rows: the pinned snapshot, partitions pruned, kept rows."""
        from daft import col

        df = self._scan(state)
        scan = prune(q.filters.start)
        if scan is not None:
            df = df.where(scan)
        keep = keep_for(q)
        df = df.select("__ingest_ts", "value").into_batches(BATCH_ROWS)
        df = df.select(_normalized_udf()(col("__ingest_ts"), col("value"), keep))
        return df.where(col("keep"))

    def _aggregate(self, q: Aggregate, ev: Any) -> pd.DataFrame:
        import daft

        sql = aggregate_sql(q)
        return daft.sql(sql, register_globals=False, ev=ev).to_pandas()

    def newest_rows(self, q: NewestRows, ev: Any) -> tuple[pd.DataFrame, datetime | None]:
        """Keyset paging as the store and R2 SQL page: every row from the ``limit``-th newest
        time on, so rows sharing the edge's time are never split between pages. One pass asks
        for ``limit + 1`` rows; only when the extra row shares the edge's time does a second
        pass fetch every row of that time."""
        from daft import col, lit

        n = max(1, int(q.limit))
        top = ev.select(*ROW_COLUMNS).sort("ts", desc=True).limit(n + 1).to_pandas()
        if len(top) < n:
            return top, None
        edge = top["ts"].iloc[n - 1]
        if len(top) == n or top["ts"].iloc[n] < edge:
            return top.iloc[:n].reset_index(drop=True), edge.to_pydatetime()
        rows = ev.where(col("ts") >= lit(edge.to_pydatetime())).select(*ROW_COLUMNS)
        return rows.sort("ts", desc=True).to_pandas(), edge.to_pydatetime()


# -- history before the raw horizon, rolled up by Daft (O11Y_HISTORY=engine) ---------------------


def history_schema() -> pa.Schema:
    """The columns of rollups.engine_rows_sql, as Arrow types."""
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    text = pa.large_string()
    cols = [("t", ts), ("day", ts), ("event_type", text), ("agent", text), ("mode", text)]
    cols += [("erred", pa.bool_()), ("parsed", pa.bool_()), ("out_of_range", pa.int64())]
    cols += [(c, pa.int64()) for c in rollups.SUM_COLUMNS]
    cols += [(n, ts) for n, _ in rollups.EXTREME_COLUMNS]
    cols += [("dur_in", pa.bool_()), ("dur_k", pa.int64()), ("dur_v", pa.int64())]
    cols += [("lag_in", pa.bool_()), ("lag_k", pa.int64()), ("lag_v", pa.int64())]
    return pa.schema(cols)


def history_batch(ingest: pa.Array, value: pa.Array) -> pa.StructArray:
    """One batch's rows as rollups.engine_rows_sql makes them (the store's normalization)."""
    names = history_schema().names

    def select(rows: str) -> str:
        return f"SELECT {', '.join(names)} FROM ({rollups.engine_rows_sql(rows)}) e"

    out = _duckdb_batch(ingest, value, select, [])
    return _struct(out.select(names).cast(history_schema()))


def _history_udf() -> Any:
    import daft
    import pyarrow as pa

    dtype = daft.DataType.from_arrow_type(pa.struct(list(history_schema())))

    @daft.func.batch(return_dtype=dtype, unnest=True, use_process=False, batch_size=BATCH_ROWS)
    def rolled(ingest: Any, value: Any) -> Any:
        return history_batch(ingest.to_arrow(), value.to_arrow())

    return rolled


def history_frames(rows: Any) -> tuple[Any, Any, Any]:
    """The three groupings of rollups.engine_rows_sql's rows a sync adds to its partial tables
    (Daft frames, not yet run): facts, duration and lag histogram rows."""
    from daft import col

    sums = [col(c).sum().alias(c) for c in rollups.SUM_COLUMNS]
    extremes = [getattr(col(n), m)().alias(n) for n, m in rollups.EXTREME_COLUMNS]
    facts = rows.groupby(*rollups.FACT_KEYS).agg(*sums, *extremes)
    dur = rows.where(col("dur_in")).groupby(*rollups.DUR_KEYS)
    lag = rows.where(col("lag_in")).groupby(*rollups.LAG_KEYS)
    n = col("dur_in").count("all").alias("n")
    return facts, dur.agg(n), lag.agg(col("lag_in").count("all").alias("n"))
