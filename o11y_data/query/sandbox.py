"""Ad-hoc SQL over the store, in a sandbox: read the events and nothing else, within limits.

Every query gets a DuckDB connection of its own (an in-memory database, one thread, a memory cap,
no spilling to disk) with the same views as the app (``events``, ``cycles``, ``unparseable``,
``freshness`` and the rollups ``hourly``, ``daily``, ``duration_hist``, ``lag_hist``,
``duration_hist_month``, ``lag_hist_month``, ``lag_hist_net``) plus ``filtered_events`` and
``filtered_cycles``, which apply the screens' filters.
The views are created first; then file access is switched off except for the store's segment files
(``allowed_paths``, ``enable_external_access = false``) and the configuration is locked, so no
statement can read another file, write one, attach a database, load an extension or change a
setting. Before that, DuckDB's own parser must find exactly one statement and it must be a SELECT:
the first gate, with DuckDB's guarantees as the second.

Bounded: the connection lives in a child process (forked from a clean forkserver) with an
address-space limit and a lower CPU priority; a timer interrupts the query after ``timeout_s`` and
the parent kills the child shortly after if the interrupt did not land. Results come back as Arrow
and stop at ``max_rows`` (one more row tells whether there were more) or ``max_bytes``.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import resource
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.context import ForkServerProcess, set_spawning_popen
from typing import Any

import duckdb
import pyarrow as pa

from ..errors import O11yError, QueryTimeout
from ..ingest import rollups
from ..ingest.normalize import prepare
from ..text import aligned_table
from .db import EventsDB, ViewSpec, create_views
from .queries import Filters, where

DEFAULT_TIMEOUT_S = 10.0
DISPLAY_ROWS = 10_000
DOWNLOAD_ROWS = 1_000_000
MAX_SQL_CHARS = 20_000
MEMORY_LIMIT = "512MB"
MAX_BYTES = 512 * 1024 * 1024
BATCH_ROWS = 2048


class QueryRefused(O11yError):
    """The statement is not allowed (not one SELECT, or it reaches outside the store)."""


class ResultTooLarge(O11yError):
    """The result is bigger than the byte limit."""


class _SegmentGone(Exception):
    """A segment of the generation read was replaced by a sync before the scan."""


def _timeout(limits: Limits) -> QueryTimeout:
    return QueryTimeout("Query stopped", f"it ran longer than the {limits.timeout_s:g} s limit")


@dataclass(frozen=True)
class Limits:
    """How long a query may run, how many rows and bytes it may return, how much memory it gets."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    max_rows: int = DISPLAY_ROWS
    max_bytes: int = MAX_BYTES
    memory_limit: str = MEMORY_LIMIT


@dataclass
class SqlResult:
    """The rows a query returned (at most ``max_rows``) and whether it had more."""

    table: pa.Table
    truncated: bool
    elapsed_s: float

    @property
    def rows(self) -> int:
        return self.table.num_rows


def check_sql(sql: str) -> str:
    """The one SELECT statement in ``sql``, or :class:`QueryRefused` saying why not."""
    text = sql.strip()
    if len(text) > MAX_SQL_CHARS:
        raise QueryRefused(
            "Query too long", f"{len(text):,} characters; the limit is {MAX_SQL_CHARS:,}"
        )
    if "\x00" in text:
        raise QueryRefused("Query refused", "it contains a NUL character")
    parser = duckdb.connect(":memory:")
    try:
        statements = parser.extract_statements(text)
        kinds = [_kind(st) for st in statements]
    except duckdb.ParserException as exc:
        raise O11yError("SQL syntax error", _first_line(exc)) from exc
    except duckdb.Error as exc:
        raise QueryRefused("Only SELECT queries are allowed", _first_line(exc)) from exc
    finally:
        parser.close()
    if not statements:
        raise QueryRefused("No query", "the text holds no SQL statement")
    if len(statements) > 1:
        raise QueryRefused(
            "One statement at a time", f"found {len(statements)}; only a single SELECT runs"
        )
    if kinds[0] != "SELECT":
        raise QueryRefused(
            "Only SELECT queries are allowed",
            f"{kinds[0]} statements are refused: the console reads the events and nothing else",
        )
    return statements[0].query


def _kind(statement: Any) -> str:
    """The statement's type name; types the Python client cannot name are never SELECT."""
    try:
        return statement.type.name
    except ValueError:
        return "unknown"


def run_sql(
    db: EventsDB, sql: str, *, filters: Filters | None = None, limits: Limits | None = None
) -> SqlResult:
    """Run one SELECT in a fresh sandbox over ``db``'s store; every failure is an O11yError."""
    query = check_sql(sql)
    filters, limits = filters or Filters(), limits or Limits()
    for attempt in range(2):
        try:
            return _in_child(db.view_spec(), query, filters, limits)
        except _SegmentGone as exc:
            # A sync replaced a segment between the generation read and the scan: follow it once.
            if attempt == 0:
                time.sleep(0.05)
                continue
            raise O11yError("Cannot read the cache", str(exc)) from exc
    raise AssertionError("unreachable")


def run_here(spec: ViewSpec, query: str, filters: Filters, limits: Limits) -> SqlResult:
    """Run a checked SELECT in a sandbox connection in this process (the child's half)."""
    conn = open_sandbox(spec, filters, limits)
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        with contextlib.suppress(Exception):
            conn.interrupt()

    timer = threading.Timer(limits.timeout_s, stop)
    timer.daemon = True
    started = time.monotonic()
    timer.start()
    try:
        table, truncated = _fetch(conn, query, limits)
    except duckdb.InterruptException:
        # No cause on purpose: the interrupt is our own timer's; the time limit is the cause.
        raise _timeout(limits) from None
    except duckdb.IOException as exc:
        if "No such file" in str(exc):
            raise _SegmentGone(_first_line(exc)) from exc
        raise _describe(exc, limits) from exc
    except duckdb.Error as exc:
        if timed_out.is_set():  # as above: our timer interrupted it
            raise _timeout(limits) from None
        raise _describe(exc, limits) from exc
    finally:
        timer.cancel()
        conn.close()
    _check_types(table)
    table = _unique_names(table)
    return SqlResult(table, truncated, time.monotonic() - started)


def _check_types(table: pa.Table) -> None:
    """A type DuckDB exports as an opaque Arrow extension (BIGNUM, …) cannot be shown or
    written honestly: say which column, and how to get it."""
    for field in table.schema:
        if isinstance(field.type, pa.BaseExtensionType):
            raise O11yError(
                "Query failed",
                f"column {field.name!r} has a type the console cannot show "
                f"({field.type}); cast it, e.g. {field.name}::VARCHAR",
            )


def open_sandbox(spec: ViewSpec, filters: Filters, limits: Limits) -> duckdb.DuckDBPyConnection:
    """A new locked connection whose only readable files are those ``spec``'s views read."""
    conn = duckdb.connect(
        ":memory:",
        config={
            "threads": "1",  # a runaway query takes one core, never the app's others
            "memory_limit": limits.memory_limit,
            "temp_directory": "",  # no spilling: nothing is ever written to disk
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
        },
    )
    try:
        prepare(conn)
        rollups.prepare(conn)
        create_views(conn, spec, newest_ingest="(SELECT max(ingest_ts) FROM events_all)")
        create_filtered_views(conn, filters)
        conn.execute("SET allowed_paths = ?", [[str(f) for f in spec.files()]])
        conn.execute("SET allowed_directories = []")
        conn.execute("SET enable_external_access = false")
        conn.execute("SET lock_configuration = true")
    except BaseException:
        conn.close()
        raise
    return conn


def create_filtered_views(conn: duckdb.DuckDBPyConnection, f: Filters) -> None:
    """``filtered_events``/``filtered_cycles``: the screens' own WHERE clauses (queries.where),
    their ``?`` values bound into DuckDB variables, so no filter value is formatted into SQL."""
    for view, base, cycles in (
        ("filtered_events", "events", False),
        ("filtered_cycles", "cycles", True),
    ):
        clause, params = where(f, cycles=cycles)
        parts = clause.split("?")
        if len(parts) != len(params) + 1:
            raise O11yError("Filter error", "the filter clause and its values do not match")
        body = parts[0]
        for i, (value, rest) in enumerate(zip(params, parts[1:], strict=True)):
            name = f"o11y_{view}_{i}"
            conn.execute(f"SET VARIABLE {name} = ?", [value])
            body += f"getvariable('{name}')" + rest
        conn.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {base} WHERE {body}")


def _fetch(conn: duckdb.DuckDBPyConnection, query: str, limits: Limits) -> tuple[pa.Table, bool]:
    """Stream Arrow batches until ``max_rows`` + 1 rows (so we know there were more)."""
    reader = conn.sql(query).to_arrow_reader(BATCH_ROWS)
    batches: list[pa.RecordBatch] = []
    rows = size = 0
    for batch in reader:
        batches.append(batch)
        rows += batch.num_rows
        size += batch.nbytes
        if size > limits.max_bytes:
            raise ResultTooLarge(
                "Result too large",
                f"more than {limits.max_bytes // 2**20:,} MB; select fewer rows or columns",
            )
        if rows > limits.max_rows:
            break
    table = pa.Table.from_batches(batches, schema=reader.schema)
    truncated = table.num_rows > limits.max_rows
    return table.slice(0, limits.max_rows), truncated


def _unique_names(table: pa.Table) -> pa.Table:
    """``SELECT 1 a, 2 a`` is valid SQL; tables and files need distinct column names."""
    taken: set[str] = set()
    names = []
    for name in table.column_names:
        new, n = name, 1
        while new in taken:
            n += 1
            new = f"{name}_{n}"
        taken.add(new)
        names.append(new)
    return table if names == table.column_names else table.rename_columns(names)


def _describe(exc: BaseException, limits: Limits) -> O11yError:
    line = _first_line(exc)
    if isinstance(exc, duckdb.PermissionException):
        return QueryRefused("Refused: the console reads only the store's events", line)
    if isinstance(exc, duckdb.OutOfMemoryException):
        return O11yError(
            "Query stopped", f"it needed more than the {limits.memory_limit} memory cap"
        )
    if isinstance(exc, duckdb.ParserException):
        return O11yError("SQL syntax error", line)
    if isinstance(exc, duckdb.IOException):
        return O11yError("Cannot read the cache", line)
    return O11yError("Query failed", line)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- output ----------------------------------------------------------------------------------


def flat_table(table: pa.Table) -> pa.Table:
    """Nested, binary and interval columns as text, so CSV and text tables can hold them."""
    import json

    cols = []
    for col in table.columns:
        t = col.type
        if pa.types.is_nested(t) or pa.types.is_interval(t) or pa.types.is_null(t):
            values = [None if v is None else json.dumps(v, default=str) for v in col.to_pylist()]
            if pa.types.is_null(t):
                values = [None] * len(col)
            col = pa.array(values, pa.string())
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
            col = pa.array([None if v is None else v.hex() for v in col.to_pylist()], pa.string())
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def to_csv(table: pa.Table) -> bytes:
    """The rows as CSV with a header (csv_out's rules: formulas neutralised, CR/LF quoted)."""
    from .csv_out import table_csv

    return table_csv(flat_table(table))


def to_json_rows(table: pa.Table) -> list[dict[str, Any]]:
    return flat_table(table).to_pylist()


def text_table(table: pa.Table) -> str:
    """A plain aligned text table (the CLI's default format)."""
    flat = flat_table(table)
    names = flat.column_names
    rows = [["" if v is None else str(v) for v in r.values()] for r in flat.to_pylist()]
    return aligned_table(names, rows)


# -- the child process -----------------------------------------------------------------------
# DuckDB's memory cap does not cover every allocation (a string built by repeat() lives outside
# it) and an interrupt lands only between chunks, so each query also runs in a child process with
# an address-space limit, a lower CPU priority, and a hard kill past its time limit: whatever the
# query does, the app's process and its other sessions keep their memory and cores.

KILL_GRACE_S = 2.0
MAX_RUNNING = 2  # sandbox children at once per process: bounds their memory and cores together
_running = threading.BoundedSemaphore(MAX_RUNNING)
CHILD_HEADROOM = 1536 * 2**20  # address space the child may add to what it started with
_ctx_lock = threading.Lock()
_ctx: Any = None


class _Popen(popen_forkserver.Popen):
    """A forkserver launch that leaves out the host's main module.

    multiprocessing re-runs the parent's ``__main__`` script in every child (as ``__mp_main__``)
    unless it is a module it can import by name. Under Streamlit ``__main__`` is ``app.py``: each
    query's child ran the whole app in bare mode (its imports, the default page, a hundred "missing
    ScriptRunContext" warnings in the server's log) before the query. The child needs nothing from
    ``__main__`` (its target is a function of this module), so the preparation data is sent
    without it; otherwise this is ``popen_forkserver.Popen._launch`` (CPython 3.11 to 3.13)."""

    def _launch(self, process_obj: Any) -> None:
        prep_data = spawn.get_preparation_data(process_obj._name)
        prep_data.pop("init_main_from_path", None)
        prep_data.pop("init_main_from_name", None)
        buf = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)
        parent_w = os.dup(w)  # the child watches this end to learn that its parent is gone
        self.finalizer = util.Finalize(self, util.close_fds, (parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _Process(ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> _Popen:  # noqa: N802 (multiprocessing's name)
        return _Popen(process_obj)


def _context() -> Any:
    """A forkserver: children fork from one clean, single-threaded, preloaded process (fast, and
    never a fork of the app's threads)."""
    global _ctx
    with _ctx_lock:
        if _ctx is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["o11y_data.query.sandbox"])
            _ctx = ctx
        return _ctx


def _confine() -> None:
    # The child needs no settings: whatever the app was given (R2 keys) is not the query's.
    os.environ.clear()
    with contextlib.suppress(OSError):
        os.nice(10)
    with open("/proc/self/statm") as fh:
        size = int(fh.read().split()[0]) * resource.getpagesize()
    limit = size + CHILD_HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _end_with(watch: Any) -> None:
    """End this child the moment the process that asked for the query ends, however it ends
    (``kill -9`` included): ``watch`` is a pipe only that process can write to, so its end reads
    as EOF then. The query's own time limit may be long; a runaway must not outlive its asker."""

    def wait_then_exit() -> None:
        with contextlib.suppress(Exception):
            watch.poll(None)  # returns at EOF: nothing is ever written
        os._exit(1)

    threading.Thread(target=wait_then_exit, name="o11y-sql-parent-watch", daemon=True).start()


def _child(out: Any, watch: Any, spec: ViewSpec, query: str, f: Filters, lim: Limits) -> None:
    """The child's body: run the query, send a JSON header, then the rows as Arrow IPC."""
    try:
        _end_with(watch)
        _confine()
        result = run_here(spec, query, f, lim)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, result.table.schema) as writer:
            writer.write_table(result.table)
        head = {"ok": True, "truncated": result.truncated, "elapsed_s": result.elapsed_s}
        out.send_bytes(json.dumps(head).encode())
        out.send_bytes(sink.getvalue())
    except _SegmentGone as exc:
        out.send_bytes(json.dumps({"ok": False, "kind": "gone", "detail": str(exc)}).encode())
    except O11yError as exc:
        head = {"ok": False, "kind": type(exc).__name__, "title": exc.title, "detail": exc.detail}
        out.send_bytes(json.dumps(head).encode())
    except MemoryError:
        head = {"ok": False, "kind": "O11yError", "title": "Query stopped",
                "detail": "it needed more memory than the sandbox allows"}  # fmt: skip
        out.send_bytes(json.dumps(head).encode())
    except Exception as exc:  # one line, whatever it was
        head = {"ok": False, "kind": "O11yError", "title": "Query failed",
                "detail": f"{type(exc).__name__}: {_first_line(exc)}"}  # fmt: skip
        out.send_bytes(json.dumps(head).encode())
    finally:
        out.close()


_KINDS = {c.__name__: c for c in (O11yError, QueryRefused, QueryTimeout, ResultTooLarge)}


def _in_child(spec: ViewSpec, query: str, f: Filters, limits: Limits) -> SqlResult:
    slots = _running
    if not slots.acquire(timeout=limits.timeout_s):
        raise O11yError(
            "The SQL sandbox is busy",
            f"{MAX_RUNNING} queries were running for {limits.timeout_s:g} s; try again",
        )
    try:
        return _child_run(spec, query, f, limits)
    finally:
        slots.release()


def _child_run(spec: ViewSpec, query: str, f: Filters, limits: Limits) -> SqlResult:
    ctx = _context()
    recv, send = ctx.Pipe(duplex=False)
    # Held open by this process alone: the child ends when it reads EOF (see _end_with).
    watch_r, watch_w = ctx.Pipe(duplex=False)
    proc = _Process(
        target=_child, args=(send, watch_r, spec, query, f, limits), name="o11y-sql", daemon=True
    )
    deadline = time.monotonic() + limits.timeout_s + KILL_GRACE_S
    try:
        proc.start()
        send.close()
        watch_r.close()
        head = json.loads(_receive(recv, deadline, 1 << 16, limits))
        if not head["ok"]:
            if head["kind"] == "gone":
                raise _SegmentGone(head["detail"])
            raise _KINDS.get(head["kind"], O11yError)(head["title"], head["detail"])
        data = _receive(recv, deadline, 2 * limits.max_bytes + (1 << 20), limits)
        table = pa.ipc.open_stream(data).read_all()
        return SqlResult(table, bool(head["truncated"]), float(head["elapsed_s"]))
    except EOFError:
        proc.join(1)
        why = _why_the_child_ended(proc.exitcode)
        # No cause on purpose: the EOFError only says the pipe closed; the child's exit code,
        # in the message, is the cause.
        raise O11yError("Query stopped", why) from None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        recv.close()
        watch_w.close()
        with contextlib.suppress(Exception):
            proc.close()


def _why_the_child_ended(code: int | None) -> str:
    """The query process ended without an answer: what its exit code says. DuckDB aborts (or
    faults) when the address-space limit refuses it memory; a SIGKILL came from outside the
    sandbox (the kernel's out-of-memory killer or a person), which the code cannot tell apart."""
    if code is not None and -code in (signal.SIGABRT, signal.SIGSEGV):
        return f"it needed more memory than the sandbox allows (signal {-code})"
    if code == -signal.SIGKILL:
        return (
            "its process was killed (signal 9: the system ran out of memory, or someone stopped it)"
        )
    return f"the query process ended unexpectedly (exit {code})"


def _receive(recv: Any, deadline: float, max_len: int, limits: Limits) -> bytes:
    if not recv.poll(max(0.0, deadline - time.monotonic())):
        raise _timeout(limits)
    try:
        return recv.recv_bytes(max_len)
    except OSError as exc:  # longer than max_len
        raise ResultTooLarge("Result too large", "select fewer rows or columns") from exc
