"""The contract's normalization, once, in DuckDB SQL: raw Parquet rows -> typed events.

Every rule of ``docs/events.md`` lives here: ``ts`` from ``_ts`` else ``__ingest_ts``; strings with
``unknown`` for a missing or empty agent/mode/event type; integers from JSON numbers or numeric
strings, anything else NULL; a ``value`` that is not a JSON object is kept but flagged unparseable.
A structured stream's columns are first turned back into the event's JSON, so both shapes take the
same path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
]

MACROS = """
CREATE OR REPLACE MACRO o11y_int(j) AS CASE json_type(j)
    WHEN 'BIGINT' THEN try_cast(j::VARCHAR AS BIGINT)
    WHEN 'UBIGINT' THEN try_cast(j::VARCHAR AS BIGINT)
    WHEN 'DOUBLE' THEN try_cast(round(try_cast(j::VARCHAR AS DOUBLE)) AS BIGINT)
    WHEN 'VARCHAR' THEN try_cast(round(try_cast(trim(j->>'$') AS DOUBLE)) AS BIGINT)
    ELSE NULL END;
CREATE OR REPLACE MACRO o11y_str(j) AS coalesce(nullif(trim(CASE json_type(j)
    WHEN 'VARCHAR' THEN j->>'$'
    WHEN 'BIGINT' THEN j::VARCHAR WHEN 'UBIGINT' THEN j::VARCHAR WHEN 'DOUBLE' THEN j::VARCHAR
    ELSE NULL END), ''), 'unknown');
CREATE OR REPLACE MACRO o11y_bucket(t, seconds) AS
    to_timestamp(floor(epoch(t) / seconds) * seconds);
CREATE OR REPLACE MACRO o11y_ts(j) AS
    CASE WHEN json_type(j) = 'VARCHAR' THEN try_cast(j->>'$' AS TIMESTAMPTZ) END;
"""

_PATHS = "['$._ts', '$.event_type', '$.agent', '$.mode', '$.durationMs', '$.toolCalls', '$.errors']"


def prepare(conn: Any) -> None:
    """Session settings and macros the normalization needs (UTC, ICU for time zones)."""
    conn.execute("SET TimeZone = 'UTC'")
    for stmt in MACROS.split(";"):
        if stmt.strip():
            conn.execute(stmt)


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def source_sql(paths: Sequence[Path], raw_root: Path, columns: Sequence[str]) -> str:
    """SELECT file, ingest_ts, value from files sharing one column set."""
    names = set(columns)
    files = "[" + ", ".join(_lit(str(p)) for p in paths) + "]"
    cut = len(str(raw_root)) + 2  # filename -> key relative to the raw folder
    ingest = "__ingest_ts::TIMESTAMPTZ" if "__ingest_ts" in names else "NULL::TIMESTAMPTZ"
    if "value" in names:
        value = "value::VARCHAR"
    else:
        fields = [c for c in columns if c not in {"__ingest_ts", "filename"}]
        pack = ", ".join(f"{_q(c)} := {_q(c)}" for c in fields)
        value = f"to_json(struct_pack({pack}))::VARCHAR" if fields else "NULL::VARCHAR"
    return (
        f"SELECT substr(filename, {cut}) AS file, {ingest} AS ingest_ts, {value} AS raw "
        f"FROM read_parquet({files}, filename = true, union_by_name = true)"
    )


def normalized_sql(src: str) -> str:
    """The store's rows from a ``source_sql`` SELECT, sorted by ``ts`` for pruning."""
    return f"""
    WITH s AS (
        SELECT file, ingest_ts, raw,
               coalesce(CASE WHEN json_valid(raw) THEN json_type(raw) = 'OBJECT' END, false)
                   AS parsed
        FROM ({src})
    ), x AS (
        SELECT *, CASE WHEN parsed THEN json_extract(raw, {_PATHS}) END AS j FROM s
    )
    SELECT
        CASE WHEN parsed THEN coalesce(o11y_ts(j[1]), ingest_ts) ELSE ingest_ts END AS ts,
        ingest_ts,
        CASE WHEN parsed THEN o11y_str(j[2]) END AS event_type,
        CASE WHEN parsed THEN o11y_str(j[3]) END AS agent,
        CASE WHEN parsed THEN o11y_str(j[4]) END AS mode,
        CASE WHEN parsed THEN o11y_int(j[5]) END AS duration_ms,
        CASE WHEN parsed THEN o11y_int(j[6]) END AS tool_calls,
        CASE WHEN parsed THEN o11y_int(j[7]) END AS errors,
        parsed,
        raw,
        file
    FROM x
    ORDER BY ts, file
    """


def file_columns(conn: Any, path: Path) -> list[str]:
    cur = conn.cursor()
    try:
        rows = cur.execute(
            "SELECT name FROM parquet_schema(?) WHERE name <> 'schema'", [str(path)]
        ).fetchall()
    finally:
        cur.close()
    return [r[0] for r in rows]


def write_segment(
    conn: Any, paths: Sequence[Path], raw_root: Path, columns: Sequence[str], out: Path
) -> int:
    """Normalize files of one column set into ``out`` (zstd Parquet); returns rows written."""
    sql = normalized_sql(source_sql(paths, raw_root, columns))
    cur = conn.cursor()
    try:
        cur.execute(
            f"COPY ({sql}) TO {_lit(str(out))} "
            "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)"
        )
        rows = cur.fetchall()
    finally:
        cur.close()
    return int(rows[0][0]) if rows and rows[0] else 0
