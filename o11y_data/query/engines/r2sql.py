"""R2 SQL (Basin SQL): Cloudflare's serverless engine over the table's REST catalog.

``POST {endpoint}/api/v1/accounts/{account}/basin-sql/query/{bucket}`` with
``Authorization: Bearer <token>`` and ``{"query": "…"}``. The documented answer is Cloudflare's
envelope: ``{"success": true, "errors": [], "messages": [], "result": {"schema": [{"name",
"type"}], "rows": [{column: value}], "metrics": {…}}}``; a failure is ``"success": false`` with
``"errors": [{"code", "message"}]`` (HTTP 4xx/5xx). The dialect is DataFusion's; there are no
bound parameters, so every literal goes through :func:`literal`, and no OFFSET, so rows are paged
by keyset. JSON fields are read with ``json_get_json``/``json_get_str`` and normalized by the
contract's rules (``normalize.EVENT_FIELDS``, ``ranges``) rendered here, so the engine's events
are the store's events. docs/scaling.md says what goes where.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from ...ingest import ranges
from ...ingest.normalize import EVENT_FIELDS
from .. import metrics as M
from ..planner import Filters
from .base import (
    ROW_COLUMNS,
    Aggregate,
    Answer,
    EngineError,
    EngineRefused,
    NewestRows,
    PercentileRefused,
    Question,
    TableState,
    group_keys,
    portable,
    unsupported_deletes,
)

if TYPE_CHECKING:
    import pandas as pd

    from ...config import Settings

log = logging.getLogger(__name__)

NAME = "R2 SQL"
# Delete kinds R2 SQL applies. Cloudflare's docs say nothing of delete files; R2 SQL reads
# through iceberg-rust, which applies position deletes. Equality deletes and v3 deletion
# vectors are refused until the docs say otherwise (docs/scaling.md).
SUPPORTED_DELETES = frozenset({"position"})
MAX_LITERAL = 4096  # characters: a search text longer than this is refused, not cut
ROW_CAP = 10_000  # R2 SQL's documented maximum LIMIT


# -- literals ------------------------------------------------------------------------------------


def literal(text: str) -> str:
    """``text`` as a SQL string literal: quotes doubled (DataFusion strings have no backslash
    escapes, so a backslash is itself). NUL, unpaired surrogates and text over MAX_LITERAL
    characters are refused in one line: none can be a literal the engine reads back unchanged."""
    if not isinstance(text, str):
        raise TypeError(f"a literal is text, not {type(text).__name__}")
    if "\x00" in text:
        raise ValueError("a text literal cannot hold a NUL character")
    if len(text) > MAX_LITERAL:
        raise ValueError(f"a text literal is limited to {MAX_LITERAL:,} characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("a text literal must be valid Unicode (unpaired surrogate)") from exc
    return "'" + text.replace("'", "''") + "'"


def time_literal(t: datetime) -> str:
    """An instant as a TIMESTAMP literal in UTC (the engine's timestamps carry no zone)."""
    if t.tzinfo is None:
        raise ValueError("times given to an engine must carry a time zone")
    return f"TIMESTAMP '{t.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%f')}'"


def _seconds(seconds: float) -> str:
    return f"INTERVAL '{int(seconds)} seconds'"


# -- the contract's normalization in R2 SQL's dialect ------------------------------------------

_NOW = "CAST(now() AS TIMESTAMP)"
_GRACE = _seconds(ranges.FUTURE_TOLERANCE.total_seconds())
_EARLIEST = time_literal(ranges.EARLIEST)


def _j(key: str) -> str:
    return "j_" + "".join(c if c.isalnum() else "_" for c in key)


def _field_sql(kind: str, key: str) -> str:
    """A field's source value from its raw JSON text ``j_<key>`` (json_get_json)."""
    j, k = _j(key), literal(key)
    string = f"left({j}, 1) = '\"'"
    if kind == "time":
        return f"CASE WHEN {string} THEN try_cast(json_get_str(raw, {k}) AS TIMESTAMP) END"
    if kind == "text":
        number = f"try_cast({j} AS DOUBLE) IS NOT NULL"
        text = f"CASE WHEN {string} THEN json_get_str(raw, {k}) WHEN {number} THEN {j} END"
        return f"coalesce(nullif(btrim({text}), ''), {literal(M.UNKNOWN)})"
    if kind == "count":
        return (
            f"CASE WHEN {string} THEN try_cast(btrim(json_get_str(raw, {k})) AS DOUBLE) "
            f"ELSE try_cast({j} AS DOUBLE) END"
        )
    raise ValueError(f"no rule for field kind {kind!r}")


def _count_sql(src: str, maximum: int) -> str:
    """ranges.count_sql in this dialect: rounded half away from zero, NULL outside [0, max]."""
    return (
        f"CASE WHEN NOT isnan({src}) AND round({src}) >= 0 AND round({src}) <= {int(maximum)} "
        f"THEN CAST(round({src}) AS BIGINT) END"
    )


def events_ctes(table: str, *, prune_from: datetime | None) -> str:
    """CTEs ending in ``ev``: the table's parsed events normalized as the store normalizes them
    (docs/events.md), columns as the store's ``events`` view. ``prune_from``: the earliest event
    time asked for; partitions (days of ``__ingest_ts``) before it less the future grace are
    skipped, as an event is never more than the grace ahead of its landing. The end of a window
    cannot prune: an event may land any time after it happened."""
    where = "true"
    if prune_from is not None:
        lo = (prune_from - ranges.FUTURE_TOLERANCE).astimezone(UTC)
        # Rows whose landing time is out of range keep their own _ts: they are read too.
        where = (
            f"(__ingest_ts >= {literal(lo.strftime('%Y-%m-%dT%H:%M:%S.%fZ'))} "
            f"OR __ingest_ts IS NULL OR __ingest_ts < "
            f"{literal(ranges.EARLIEST.strftime('%Y-%m-%dT%H:%M:%SZ'))} "
            f"OR CAST(__ingest_ts AS TIMESTAMP) > {_NOW} + {_GRACE})"
        )
    keys = ", ".join(f"json_get_json(raw, {literal(f.key)}) AS {_j(f.key)}" for f in EVENT_FIELDS)
    fields = ", ".join(f"{_field_sql(f.kind, f.key)} AS {f.column}_src" for f in EVENT_FIELDS)
    landing = (
        f"CASE WHEN ingest_src >= {_EARLIEST} AND ingest_src <= {_NOW} + {_GRACE} "
        "THEN ingest_src END"
    )
    ts = (
        f"coalesce(CASE WHEN ts_src >= {_EARLIEST} AND ts_src <= coalesce(ingest_ts, {_NOW}) "
        f"+ {_GRACE} THEN ts_src END, ingest_ts)"
    )
    columns = [f"{ts} AS ts", "ingest_ts"]
    for f in EVENT_FIELDS[1:]:
        if f.kind == "count":
            columns.append(f"{_count_sql(f.column + '_src', ranges.MAXIMA[f.key])} AS {f.column}")
        else:
            columns.append(f"{f.column}_src AS {f.column}")
    columns.append("raw")
    return (
        f"src AS (SELECT CAST(__ingest_ts AS TIMESTAMP) AS ingest_src, value AS raw "
        f"FROM {table} WHERE {where}), "
        f"parsed AS (SELECT ingest_src, raw, {landing} AS ingest_ts FROM src "
        "WHERE json_length(raw) IS NOT NULL AND regexp_like(raw, '^\\s*\\{')), "
        f"js AS (SELECT *, {keys} FROM parsed), "
        f"vals AS (SELECT ingest_ts, raw, {fields} FROM js), "
        f"ev AS (SELECT {', '.join(columns)} FROM vals)"
    )


def where_sql(f: Filters, *, cycles: bool, search: str = "") -> str:
    """``planner.where`` in this dialect, literals escaped; event types filter events only."""
    parts = ["true"]
    if f.start is not None:
        parts.append(f"ts >= {time_literal(f.start)}")
    if f.end is not None:
        parts.append(f"ts < {time_literal(f.end)}")
    if cycles:
        parts.append("event_type = 'agent.cycle'")
    for column, values in (
        ("event_type", () if cycles else f.event_types),
        ("agent", f.agents),
        ("mode", f.modes),
    ):
        if values:
            parts.append(f"{column} IN ({', '.join(literal(v) for v in values)})")
    if f.errors_only:
        parts.append("errors > 0")
    if search:
        s = literal(search)
        parts.append(
            f"(strpos(lower(agent), lower({s})) > 0 OR strpos(lower(raw), lower({s})) > 0)"
        )
    return " AND ".join(parts)


def _group_exprs(group: Any) -> list[tuple[str, str]]:
    """(expression, column name) of each grouping column; none for one row."""
    keys, bucket_s = group_keys(group)
    if bucket_s is not None:
        return [(f"date_bin({_seconds(bucket_s)}, ts, TIMESTAMP '1970-01-01T00:00:00')", "bucket")]
    return [(k, k) for k in keys]


def _measure_sql(m: M.Measure) -> str:
    portable(m, engine=NAME)
    if isinstance(m, M.Percentile):
        return f"percentile_cont({m.q!r}) WITHIN GROUP (ORDER BY {m.value})"
    return m.raw


def aggregate_sql(q: Aggregate, table: str) -> str:
    """One query answering ``q``: the catalog's expressions over the normalized events."""
    measures = q.catalog()
    groups = _group_exprs(q.group)
    cols = [f"{_measure_sql(m)} AS {m.name}" for m in measures]
    w = where_sql(q.filters, cycles=q.rows == "cycles")
    head = f"WITH {events_ctes(table, prune_from=q.filters.start)} "
    if not groups:
        return f"{head}SELECT {', '.join(cols)} FROM ev WHERE {w} LIMIT 1"
    keys = ", ".join(f"{e} AS {n}" for e, n in groups)
    return (
        f"{head}SELECT {keys}, {', '.join(cols)} FROM ev WHERE {w} "
        f"GROUP BY {', '.join(e for e, _ in groups)} LIMIT {ROW_CAP}"
    )


def newest_sql(q: NewestRows, table: str, *, edge: datetime | None) -> str:
    """Keyset paging without OFFSET: with ``edge`` None, the times of the ``limit`` newest rows
    before ``q.before``; with ``edge`` (the oldest of those), every row from it on, so rows that
    share the edge's time are never split between pages."""
    f = q.filters
    w = where_sql(f, cycles=q.cycles_only, search=q.search) + " AND ts IS NOT NULL"
    if q.before is not None:
        w += f" AND ts < {time_literal(q.before)}"
    head = f"WITH {events_ctes(table, prune_from=f.start)} "
    if edge is None:
        n = max(1, min(int(q.limit), ROW_CAP))
        return f"{head}SELECT ts FROM ev WHERE {w} ORDER BY ts DESC LIMIT {n}"
    cols = ", ".join(ROW_COLUMNS)
    return (
        f"{head}SELECT {cols} FROM ev WHERE {w} AND ts >= {time_literal(edge)} "
        f"ORDER BY ts DESC LIMIT {ROW_CAP}"
    )


# -- the HTTP API ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """A successful answer: column (name, type) pairs and rows (dicts by name)."""

    schema: tuple[tuple[str, str], ...]
    rows: list[dict[str, Any]]


def _scrub(text: str, secret: str) -> str:
    one = " ".join(str(text).split())[:240]
    return one.replace(secret, "***") if secret else one


@dataclass
class Client:
    """POSTs one query to R2 SQL's query API and checks the answer's documented shape."""

    endpoint: str
    account: str
    bucket: str
    token: Any  # config.Secret: never printed
    timeout_s: float = 30.0

    @property
    def url(self) -> str:
        return (
            f"{self.endpoint.rstrip('/')}/api/v1/accounts/{quote(self.account, safe='')}"
            f"/basin-sql/query/{quote(self.bucket, safe='')}"
        )

    def query(self, sql: str, *, percentile: bool = False) -> Result:
        """Run ``sql``; HTTP errors, timeouts and bodies not of the documented shape raise
        EngineError in one line (PercentileRefused for a 400 on an exact percentile)."""
        token = self.token.get()
        host = urlsplit(self.endpoint).netloc or self.endpoint
        req = urllib.request.Request(
            self.url,
            data=json.dumps({"query": sql}).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, _read_error_body(exc)
        except TimeoutError as exc:
            raise EngineError(
                f"{NAME} timed out", f"no answer from {host} in {self.timeout_s:g} s"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                raise EngineError(
                    f"{NAME} timed out", f"no answer from {host} in {self.timeout_s:g} s"
                ) from exc
            raise EngineError(
                f"Cannot reach {NAME}", f"{host}: {_scrub(str(reason), token)}"
            ) from exc
        return parse_answer(status, body, token=token, percentile=percentile)


def _read_error_body(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read()
    except OSError:
        return b""


def parse_answer(status: int, body: bytes, *, token: str = "", percentile: bool = False) -> Result:
    """A response checked against the documented envelope."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EngineError(f"{NAME} answered HTTP {status} with a body that is not JSON") from exc
    if not isinstance(doc, dict):
        raise EngineError(f"{NAME} answered HTTP {status} with JSON that is not an object")
    if status != 200 or doc.get("success") is not True:
        errors = doc.get("errors")
        first = errors[0] if isinstance(errors, list) and errors else {}
        first = first if isinstance(first, dict) else {}
        code = first.get("code", "")
        message = _scrub(str(first.get("message", "")), token) or "no message"
        detail = f"HTTP {status}: {f'{code} ' if code != '' else ''}{message}"
        if status == 401 or status == 403:
            raise EngineError(f"{NAME} rejected the token", detail)
        if status == 400 and percentile:
            raise PercentileRefused(f"{NAME} refused the exact percentile", detail)
        raise EngineError(f"{NAME} query failed", detail)
    result = doc.get("result")
    schema = result.get("schema") if isinstance(result, dict) else None
    rows = result.get("rows") if isinstance(result, dict) else None
    if not isinstance(schema, list) or not isinstance(rows, list):
        raise EngineError(f"{NAME} answered without result.schema and result.rows")
    cols = []
    for c in schema:
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            raise EngineError(f"{NAME} answered a schema entry without a name")
        cols.append((c["name"], str(c.get("type", ""))))
    if not all(isinstance(r, dict) for r in rows):
        raise EngineError(f"{NAME} answered rows that are not objects")
    return Result(tuple(cols), rows)


def frame(result: Result) -> pd.DataFrame:
    """The rows as a DataFrame typed by the schema: timestamps as UTC times, integers as
    nullable Int64, floats as float64, everything else as given."""
    import pandas as pd

    data: dict[str, Any] = {}
    for name, kind in result.schema:
        values = [r.get(name) for r in result.rows]
        k = kind.lower()
        if k.startswith("timestamp") or k.startswith("date"):
            data[name] = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
        elif k.startswith(("int", "uint")):
            data[name] = pd.array([None if v is None else int(v) for v in values], dtype="Int64")
        elif k.startswith(("float", "decimal")):
            data[name] = pd.array(
                [float("nan") if v is None else float(v) for v in values], dtype="float64"
            )
        else:
            data[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(data, columns=[n for n, _ in result.schema])


# -- the engine ------------------------------------------------------------------------------


@dataclass
class R2SQLEngine:
    """The engine route.py calls: renders questions, reads the snapshot the catalog names."""

    client: Client
    table: str
    state: Callable[[], TableState]
    name: str = NAME

    @classmethod
    def from_settings(
        cls, settings: Settings, *, state: Callable[[], TableState] | None = None
    ) -> R2SQLEngine:
        from .catalog import table_state

        if not (settings.account_id and settings.r2_sql_token):
            raise EngineRefused(
                "R2 SQL not configured", "set O11Y_R2_ACCOUNT_ID and O11Y_R2_SQL_TOKEN"
            )
        client = Client(
            settings.r2_sql_endpoint,
            settings.account_id,
            settings.bucket,
            settings.r2_sql_token,
            settings.query_timeout_s,
        )
        return cls(
            client, _table_name(settings.r2_sql_table), state or (lambda: table_state(settings))
        )

    def table_state(self) -> TableState:
        return self.state()

    def answer(self, question: Question, state: TableState) -> Answer:
        refusal = unsupported_deletes(state, supported=SUPPORTED_DELETES, engine=NAME)
        if refusal is not None:
            raise refusal
        try:
            return self._answer(question, state)
        except ValueError as exc:  # a literal that cannot be sent whole (NUL, too long, …)
            raise EngineRefused(f"{NAME} cannot be asked this", str(exc)) from exc

    def _answer(self, question: Question, state: TableState) -> Answer:
        t0 = time.perf_counter()
        if isinstance(question, Aggregate):
            pct = any(isinstance(m, M.Percentile) for m in question.catalog())
            result = self.client.query(aggregate_sql(question, self.table), percentile=pct)
            df = frame(result)
            return Answer(df, self.name, time.perf_counter() - t0, state.snapshot_id)
        if isinstance(question, NewestRows):
            df, next_before = self._newest(question)
            return Answer(
                df, self.name, time.perf_counter() - t0, state.snapshot_id, next_before=next_before
            )
        raise TypeError(f"not a question: {type(question).__name__}")

    def _newest(self, q: NewestRows) -> tuple[pd.DataFrame, datetime | None]:
        times = frame(self.client.query(newest_sql(q, self.table, edge=None)))
        if times.empty:
            empty = Result(tuple((c, "Utf8") for c in ROW_COLUMNS), [])
            return frame(empty), None
        edge = times["ts"].min().to_pydatetime()
        rows = frame(self.client.query(newest_sql(q, self.table, edge=edge)))
        if len(rows) >= ROW_CAP > q.limit:
            raise EngineError(
                f"{NAME} page too large",
                f"over {ROW_CAP:,} events share the time {edge:%Y-%m-%d %H:%M:%S}",
            )
        more = len(times) >= max(1, min(int(q.limit), ROW_CAP))
        return rows, (edge if more else None)


def _table_name(name: str) -> str:
    """``namespace.table`` as identifiers (letters, digits, underscores): a configured name
    that is anything else is refused rather than quoted into SQL."""
    parts = name.split(".")
    if len(parts) != 2 or not all(
        p and p.replace("_", "a").isalnum() and p.isascii() for p in parts
    ):
        raise EngineRefused(
            "Bad O11Y_R2_SQL_TABLE", "expected namespace.table (letters, digits, _)"
        )
    return name
