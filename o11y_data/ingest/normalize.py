"""The contract's normalization, once, in DuckDB SQL: raw Parquet rows -> typed events.

Every rule of ``docs/events.md`` lives here: ``ts`` from ``_ts`` else ``__ingest_ts``; strings with
``unknown`` for a missing or empty agent/mode/event type; integers from JSON numbers or numeric
strings, anything else NULL; a ``value`` that is not a JSON object is kept but flagged unparseable.
A structured stream's columns are first turned back into the event's JSON, so both shapes take the
same path. Files are read by Iceberg field id where they carry one, a BINARY ``value`` as UTF-8,
and rows that the table's delete files remove never reach the store.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import O11yError
from . import ranges
from .iceberg import SchemaField

# Columns of the normalized store, in order. ``file`` is the source key the row came from.
STORE_COLUMNS: list[tuple[str, str]] = [
    ("ts", "TIMESTAMPTZ"),
    ("ingest_ts", "TIMESTAMPTZ"),
    ("event_type", "VARCHAR"),
    ("agent", "VARCHAR"),
    ("mode", "VARCHAR"),
    ("duration_ms", "BIGINT"),
    ("tool_calls", "BIGINT"),
    ("errors", "BIGINT"),
    ("parsed", "BOOLEAN"),
    ("raw", "VARCHAR"),
    ("file", "VARCHAR"),
    ("out_of_range", "UTINYINT"),  # ranges.FLAGS: the fields whose value was out of range
]
# Bumped when a rule changes what a row normalizes to: a store normalized under an older
# version is normalized again from its downloaded files on the next sync.
VERSION = 2  # 2: values outside the contract's ranges (ranges.py) are NULL and flagged

MACROS = """
CREATE OR REPLACE MACRO o11y_str(j) AS coalesce(nullif(trim(CASE json_type(j)
    WHEN 'VARCHAR' THEN j->>'$'
    WHEN 'BIGINT' THEN j::VARCHAR WHEN 'UBIGINT' THEN j::VARCHAR WHEN 'DOUBLE' THEN j::VARCHAR
    ELSE NULL END), ''), 'unknown');
CREATE OR REPLACE MACRO o11y_bucket(t, seconds) AS
    to_timestamp(floor(epoch(t) / seconds) * seconds);
CREATE OR REPLACE MACRO o11y_ts(j) AS
    CASE WHEN json_type(j) = 'VARCHAR' THEN try_cast(j->>'$' AS TIMESTAMPTZ) END;
CREATE OR REPLACE MACRO o11y_ts_beyond(j) AS
    CASE WHEN json_type(j) = 'VARCHAR' AND try_cast(j->>'$' AS TIMESTAMPTZ) IS NULL THEN
        CASE WHEN regexp_matches(j->>'$', '^\\s*-\\d|\\(BC\\)') THEN -1
             WHEN regexp_matches(j->>'$', '^\\s*\\+?\\d{5,}-') THEN 1 END END;
CREATE OR REPLACE MACRO o11y_num(j) AS CASE
    WHEN json_type(j) IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN try_cast(j::VARCHAR AS DOUBLE)
    WHEN json_type(j) = 'VARCHAR' THEN try_cast(trim(j->>'$') AS DOUBLE)
    ELSE NULL END;
"""


@dataclass(frozen=True)
class EventField:
    """A field of the normalized event read from the event's JSON: the store's column, the JSON
    key, and its rule (``time``: ISO-8601 text; ``text``: a string, ``unknown`` when missing or
    empty; ``count``: an integer within ranges.MAXIMA[key], else NULL)."""

    column: str
    key: str
    kind: str


# The contract's fields (docs/events.md), once: the store's SQL below reads them in this order
# (j[1] … j[7]) and the query engines (o11y_data/query/engines) render the same rules.
EVENT_FIELDS = (
    EventField("ts", "_ts", "time"),
    EventField("event_type", "event_type", "text"),
    EventField("agent", "agent", "text"),
    EventField("mode", "mode", "text"),
    EventField("duration_ms", "durationMs", "count"),
    EventField("tool_calls", "toolCalls", "count"),
    EventField("errors", "errors", "count"),
)
_PATHS = "[" + ", ".join(f"'$.{f.key}'" for f in EVENT_FIELDS) + "]"


def prepare(conn: Any) -> None:
    """Session settings and macros the normalization needs (UTC, ICU for time zones)."""
    conn.execute("SET TimeZone = 'UTC'")
    for stmt in MACROS.split(";"):
        if stmt.strip():
            conn.execute(stmt)


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Column:
    """A top-level column as a Parquet file stores it."""

    name: str
    type: str  # Arrow's name for it: "string", "binary", "timestamp[us, tz=UTC]", …
    field_id: int | None = None


@dataclass(frozen=True)
class FileShape:
    """A file's full top-level schema (names, types, field ids). Files are normalized together
    only when their shapes are equal, so one file's shape never changes how another is read."""

    columns: tuple[Column, ...]

    def named(self, names: Mapping[int, str] | None = None) -> dict[str, Column]:
        """Columns by their name in the table's current schema (``names``: field id -> name).

        A column with a field id is matched by it, so a renamed column keeps older files'
        values, and one the current schema dropped is left out; without ids, by name."""
        out: dict[str, Column] = {}
        for col in self.columns:
            if names and col.field_id is not None:
                if col.field_id in names:
                    out[names[col.field_id]] = col
            else:
                out[col.name] = col
        return out


# -- reading a file under the table's current schema -----------------------------------------


def column_keys(shape: FileShape) -> list[list[Any]]:
    """A file's columns as (field id or None, name): all a generation keeps to tell, without
    the file, how the current schema reads it."""
    return [[c.field_id, c.name] for c in shape.columns]


def reading_of(columns: Sequence[Sequence[Any]], fields: Sequence[SchemaField]) -> str:
    """A fingerprint of how a file with ``columns`` (``column_keys``) is read under the schema
    ``fields``: the name and type each column is read as (by field id, as ``FileShape.named``
    does), and the fields it lacks that an ``initial-default`` fills. The same fingerprint means
    the same rows, so a rename, drop, re-add, type promotion or new default changes it."""
    by_id = {f.id: f for f in fields}
    by_name = {f.name: f for f in fields}
    read: list[Any] = []
    for fid, name in columns:
        f = by_id.get(fid) if fields and fid is not None else by_name.get(name)
        if fields and fid is not None:
            read.append([fid, name, f.name if f else None, f.type if f else None])
        else:
            read.append([fid, name, name, f.type if f else None])
    present = {r[2] for r in read if r[2] is not None}
    fills = [
        [f.id, f.name, f.type, f.initial_default]
        for f in fields
        if f.initial_default is not None and f.name not in present
    ]
    text = json.dumps([read, fills], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Fill:
    """A field the file lacks, read as its v3 ``initial-default`` (a constant column)."""

    name: str  # its name in the current schema
    column: str  # the constant column's name in the read
    sql: str  # the default as a typed SQL literal
    type: str  # Arrow's name for that type, as ``Column.type``


_INT_TYPES = {"int": ("INTEGER", "int32"), "long": ("BIGINT", "int64")}
_FLOAT_TYPES = {"float": ("FLOAT", "float"), "double": ("DOUBLE", "double")}
_DECIMAL_RE = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")


def _default_literal(f: SchemaField) -> tuple[str, str]:
    """(SQL literal, Arrow type name) of a field's ``initial-default``, in the JSON form the
    spec gives each type; a type or value this reader cannot apply fails in one line."""
    v, t = f.initial_default, f.type
    try:
        if t == "string" and isinstance(v, str):
            return f"{sql_literal(v)}::VARCHAR", "string"
        if t in _INT_TYPES and isinstance(v, int) and not isinstance(v, bool):
            return f"CAST({int(v)} AS {_INT_TYPES[t][0]})", _INT_TYPES[t][1]
        finite = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        if t in _FLOAT_TYPES and finite:
            return f"CAST({float(v)!r} AS {_FLOAT_TYPES[t][0]})", _FLOAT_TYPES[t][1]
        if t == "boolean" and isinstance(v, bool):
            return ("true" if v else "false"), "bool"
        if t == "date" and isinstance(v, str):
            return f"DATE {sql_literal(dt.date.fromisoformat(v).isoformat())}", "date32[day]"
        if t in ("timestamp", "timestamptz") and isinstance(v, str):
            when = dt.datetime.fromisoformat(v)
            if t == "timestamptz":
                if when.tzinfo is None:
                    raise ValueError(v)
                when = when.astimezone(dt.UTC).replace(tzinfo=None)
                return (
                    f"TIMESTAMPTZ {sql_literal(when.isoformat() + '+00:00')}",
                    "timestamp[us, tz=UTC]",
                )
            return (
                f"TIMESTAMP {sql_literal(when.replace(tzinfo=None).isoformat())}",
                "timestamp[us]",
            )
        m = _DECIMAL_RE.match(t)
        if m and isinstance(v, str):
            exact = decimal.Decimal(v)
            if exact.is_finite():
                return (
                    f"CAST({sql_literal(str(exact))} AS DECIMAL({m[1]}, {m[2]}))",
                    f"decimal128({t})",
                )
    except (ValueError, ArithmeticError):
        pass
    raise O11yError(
        "Unsupported column default",
        f"field {f.name} ({t}) has initial-default {json.dumps(v)[:80]}, which this reader "
        "cannot apply to the files written before the field existed",
    )


def fills(
    shape: FileShape, names: Mapping[int, str] | None, fields: Sequence[SchemaField]
) -> tuple[Fill, ...]:
    """The fields ``shape`` lacks that the schema gives an ``initial-default``."""
    have = shape.named(names)
    out = []
    for f in fields:
        if f.initial_default is not None and f.name not in have:
            sql, kind = _default_literal(f)
            out.append(Fill(f.name, f"__o11y_default_{f.id}", sql, kind))
    return tuple(out)


def file_shape(path: Path) -> FileShape:
    """The shape of a Parquet file (reads its footer only)."""
    import pyarrow.parquet as pq

    cols = []
    for f in pq.read_schema(path):
        fid = (f.metadata or {}).get(b"PARQUET:field_id")
        cols.append(Column(f.name, str(f.type), int(fid) if fid is not None else None))
    return FileShape(tuple(cols))


@dataclass(frozen=True)
class EqualityDelete:
    """An equality delete file and the batch's files it applies to."""

    path: Path
    on: tuple[tuple[str, str], ...]  # (data file column, delete file column) pairs
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Deletes:
    """What removes rows from a batch: a table of (file key, pos) and equality delete files."""

    positions: str | None = None  # name of a table with columns file, pos
    equality: tuple[EqualityDelete, ...] = ()


FILE_COLUMN = (
    "__o11y_file"  # the source file's name, as read_parquet adds it (unlike any event field)
)
_BINARY = ("binary", "large_binary", "binary_view", "fixed_size_binary")
_TEXT = ("string", "large_string", "string_view", "utf8", "large_utf8")


def _as_text(col: Column) -> str:
    """A column as VARCHAR: BINARY holds UTF-8 (invalid bytes give NULL: that row only)."""
    if col.type.startswith(_BINARY):
        return f"try(decode({_q(col.name)}))"
    return _q(col.name)


def _ingest_expr(col: Column | None) -> str:
    """``__ingest_ts``; a value that does not parse is NULL for that row only (the contract)."""
    if col is None:
        return "NULL::TIMESTAMPTZ"
    if col.type.startswith("date"):  # a date32 can lie past a timestamp's range: ±infinity then
        c = _q(col.name)
        beyond = f"CASE WHEN {c} > DATE '2000-01-01' THEN 'infinity' ELSE '-infinity' END"
        return f"coalesce(try_cast({c} AS TIMESTAMPTZ), ({beyond})::TIMESTAMPTZ)"
    if col.type.startswith("timestamp"):
        return f"{_q(col.name)}::TIMESTAMPTZ"
    if col.type.startswith(_TEXT + _BINARY):
        return f"try_cast({_as_text(col)} AS TIMESTAMPTZ)"
    return "NULL::TIMESTAMPTZ"  # a number or anything else is not a time the contract parses


def _as_field(col: Column) -> str:
    """A structured column as its event field. A non-finite float becomes a JSON string
    ("NaN", "Infinity"): DuckDB's to_json writes them bare, which is not JSON and would make the
    whole event unparseable."""
    if col.type in ("double", "float", "halffloat"):
        c = _q(col.name)
        return f"CASE WHEN isfinite({c}) THEN to_json({c}) ELSE to_json({c}::VARCHAR) END"
    return _as_text(col)


def _value_expr(cols: Mapping[str, Column]) -> str:
    if "value" in cols:
        col = cols["value"]
        if col.type.startswith(_TEXT + _BINARY):
            return f"{_as_text(col)}::VARCHAR"
        return f"to_json({_q(col.name)})::VARCHAR"
    fields = {n: c for n, c in cols.items() if n != "__ingest_ts"}
    if not fields:
        return "NULL::VARCHAR"
    pack = ", ".join(f"{_q(n)} := {_as_field(c)}" for n, c in fields.items())
    return f"to_json(struct_pack({pack}))::VARCHAR"


def source_sql(
    paths: Sequence[Path],
    raw_root: Path,
    shape: FileShape,
    *,
    names: Mapping[int, str] | None = None,
    fields: Sequence[SchemaField] = (),
    deletes: Deletes | None = None,
) -> str:
    """SELECT file, ingest_ts, raw from files of one shape, minus the rows deletes remove; the
    fields they lack that have an ``initial-default`` read as it."""
    cols = shape.named(names)
    constants = fills(shape, names, fields)
    cols.update({c.name: Column(c.column, c.type) for c in constants})
    files = "[" + ", ".join(sql_literal(str(p)) for p in paths) + "]"
    cut = len(str(raw_root)) + 2  # file name -> key relative to the raw folder
    file = f"substr(s.{_q(FILE_COLUMN)}, {cut})"
    deletes = deletes or Deletes()
    # Row numbers only where positions are deleted: a file may have a column of that name.
    rows = ", file_row_number = true" if deletes.positions else ""
    read = f"read_parquet({files}, filename = {sql_literal(FILE_COLUMN)}{rows})"
    if constants:
        consts = ", ".join(f"{c.sql} AS {_q(c.column)}" for c in constants)
        read = f"(SELECT *, {consts} FROM {read})"
    sql = (
        f"SELECT {file} AS file, {_ingest_expr(cols.get('__ingest_ts'))} "
        f"AS ingest_ts, {_value_expr(cols)} AS raw "
        f"FROM {read} s"
    )
    if deletes.positions:
        sql += (
            f" ANTI JOIN {_q(deletes.positions)} p ON p.file = {file} AND p.pos = s.file_row_number"
        )
    conds = []
    for eq in deletes.equality:
        match = " AND ".join(f"e.{_q(d)} IS NOT DISTINCT FROM s.{_q(c)}" for c, d in eq.on)
        keys = ", ".join(sql_literal(k) for k in eq.keys)
        conds.append(
            f"NOT ({file} IN ({keys}) AND EXISTS "
            f"(SELECT 1 FROM read_parquet({sql_literal(str(eq.path))}) e WHERE {match}))"
        )
    if conds:
        sql += " WHERE " + " AND ".join(conds)
    return sql


def load_positions(
    conn: Any,
    table: str,
    *,
    parquet: Sequence[tuple[Path, str, str]] = (),
    vectors: Sequence[tuple[str, Sequence[int]]] = (),
) -> None:
    """Fill ``table`` (file, pos) with deleted positions: from position delete files
    (``parquet``: delete file, data file URI it names, that data file's key) and from deletion
    vectors (``vectors``: data file key, positions)."""
    cur = conn.cursor()
    try:
        cur.execute(f"CREATE OR REPLACE TABLE {_q(table)} (file VARCHAR, pos BIGINT)")
        if parquet:
            cur.execute(
                "CREATE OR REPLACE TABLE o11y_pos_targets AS SELECT unnest(?::VARCHAR[]) AS del, "
                "unnest(?::VARCHAR[]) AS uri, unnest(?::VARCHAR[]) AS k",
                [
                    [str(p) for p, _, _ in parquet],
                    [u for _, u, _ in parquet],
                    [k for *_, k in parquet],
                ],
            )
            files = (
                "["
                + ", ".join(sql_literal(str(p)) for p in sorted({p for p, _, _ in parquet}))
                + "]"
            )
            cur.execute(
                f"INSERT INTO {_q(table)} SELECT t.k, d.pos FROM "
                f"read_parquet({files}, filename = true) d JOIN o11y_pos_targets t "
                "ON d.filename = t.del AND d.file_path = t.uri"
            )
        for key, positions in vectors:
            cur.execute(
                f"INSERT INTO {_q(table)} SELECT ?, unnest(?::BIGINT[])", [key, list(positions)]
            )
    finally:
        cur.close()


def normalized_sql(src: str) -> str:
    """The store's rows from a ``source_sql`` SELECT, sorted by ``ts`` for pruning.

    Values outside the contract's ranges (ranges.py) are NULL and flagged in ``out_of_range``;
    a ``_ts`` out of range falls back to the landing time, like one that does not parse."""
    maxima = ranges.MAXIMA
    flags = ranges.flags_sql(
        ts="ts_src",
        ts_beyond="ts_beyond",
        landing_src="ingest_src",
        landing="ingest_ts",
        numbers={f: (f"{f}_src", m) for f, m in maxima.items()},
    )
    return f"""
    WITH s AS (
        SELECT file, ingest_ts AS ingest_src, raw,
               coalesce(CASE WHEN json_valid(raw) THEN json_type(raw) = 'OBJECT' END, false)
                   AS parsed
        FROM ({src})
    ), x AS (
        SELECT *, CASE WHEN parsed THEN json_extract(raw, {_PATHS}) END AS j,
               {ranges.landing_sql("ingest_src")} AS ingest_ts
        FROM s
    ), v AS (
        SELECT *,
               CASE WHEN parsed THEN o11y_ts(j[1]) END AS ts_src,
               CASE WHEN parsed THEN o11y_ts_beyond(j[1]) END AS ts_beyond,
               CASE WHEN parsed THEN o11y_num(j[5]) END AS durationMs_src,
               CASE WHEN parsed THEN o11y_num(j[6]) END AS toolCalls_src,
               CASE WHEN parsed THEN o11y_num(j[7]) END AS errors_src
        FROM x
    )
    SELECT
        coalesce({ranges.event_time_sql("ts_src", "ingest_ts")}, ingest_ts) AS ts,
        ingest_ts,
        CASE WHEN parsed THEN o11y_str(j[2]) END AS event_type,
        CASE WHEN parsed THEN o11y_str(j[3]) END AS agent,
        CASE WHEN parsed THEN o11y_str(j[4]) END AS mode,
        {ranges.count_sql("durationMs_src", maxima["durationMs"])} AS duration_ms,
        {ranges.count_sql("toolCalls_src", maxima["toolCalls"])} AS tool_calls,
        {ranges.count_sql("errors_src", maxima["errors"])} AS errors,
        parsed,
        raw,
        file,
        {flags} AS out_of_range
    FROM v
    ORDER BY ts, file
    """


def write_segment(
    conn: Any,
    paths: Sequence[Path],
    raw_root: Path,
    shape: FileShape,
    out: Path,
    *,
    names: Mapping[int, str] | None = None,
    fields: Sequence[SchemaField] = (),
    deletes: Deletes | None = None,
) -> int:
    """Normalize files of one shape into ``out`` (zstd Parquet); returns rows written."""
    src = source_sql(paths, raw_root, shape, names=names, fields=fields, deletes=deletes)
    sql = normalized_sql(src)
    cur = conn.cursor()
    try:
        cur.execute(
            f"COPY ({sql}) TO {sql_literal(str(out))} "
            "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)"
        )
        rows = cur.fetchall()
    finally:
        cur.close()
    return int(rows[0][0]) if rows and rows[0] else 0
