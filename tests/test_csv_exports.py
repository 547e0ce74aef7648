"""Every CSV export is safe to open and reads back into exactly the rows exported (issue 18,
point 6): the explorer's, the Summary page's, the SQL console's, and the CLI's ``summary`` and
``sql --format csv``, over a store whose agents and modes hold formulas (``=HYPERLINK(…)``,
``-1+2``) and a bare CR.

Each file is read back twice, with Python's ``csv`` module and with DuckDB's ``read_csv``, and
compared cell by cell with the rows as another path returns them (the Parquet export, the
DataFrame on screen, the sandbox's Arrow result, the in-process summary), text cells through the
OWASP rule written out here on its own.
"""

from __future__ import annotations

import csv
import io
import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from o11y_data import EventsDB, load_settings, sync
from o11y_data.query import queries as q
from o11y_data.query import sandbox as sb
from o11y_data.query.queries import Filters
from tests.support.cli import ROOMY_SQL_TIMEOUT_S as ROOM
from tests.support.cli import cli
from tests.support.hostile import CR_MODE, FORMULA_AGENT, write_hostile_source

_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def spreadsheet_safe(text: str) -> str:
    """OWASP's CSV-injection rule, read independently: a cell starting with = + - @ tab CR (NUL,
    and their full-width forms) gets a leading quote, unless it is a plain number."""
    starts = "=+-@\t\r\0\uff1d\uff0b\uff0d\uff20"
    if text and text[0] in starts and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("csv-exports")
    write_hostile_source(root / "src", datetime.now(UTC))
    env = {
        "O11Y_SOURCE_DIR": str(root / "src"),
        "O11Y_CACHE_DIR": str(root / "cache"),
        "O11Y_BACKGROUND_SYNC": "0",
        "O11Y_AGENTS_FILE": str(root / "no-agents.toml"),
    }
    settings = load_settings(env, secrets_paths=[])
    sync(settings)
    db = EventsDB(settings.store_dir)
    yield db, env, root
    db.close()


def _python_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def _duckdb_rows(data: bytes, tmp: Path) -> tuple[list[str], list[tuple]]:
    path = tmp / "read-back.csv"
    path.write_bytes(data)
    conn = duckdb.connect()
    try:
        rel = conn.execute(
            "SELECT * FROM read_csv(?, header = true, all_varchar = true, delim = ',', "
            "quote = '\"', escape = '\"', allow_quoted_nulls = false, auto_detect = false, "
            "columns = ?)",
            [str(path), {f"c{i}": "VARCHAR" for i in range(len(_python_rows(data)[0]))}],
        )
        return [d[0] for d in rel.description], rel.fetchall()
    finally:
        conn.close()


def _matches(cell: str | None, value: Any, *, null: str | None) -> bool:
    """Whether a read-back cell is ``value`` as written (``null``: how the reader shows NULL)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return cell == null
    if isinstance(value, bool):
        return cell == ("true" if value else "false")
    if isinstance(value, int | Decimal):
        return cell is not None and Decimal(cell) == Decimal(value)
    if isinstance(value, float):
        return cell is not None and float(cell) == value
    if isinstance(value, datetime | pd.Timestamp):
        return cell is not None and pd.Timestamp(cell) == pd.Timestamp(value)
    if isinstance(value, date):
        return cell == value.isoformat()
    return cell == spreadsheet_safe(str(value))


def _check(
    data: bytes, header: list[str], rows: list[list[Any]], tmp: Path, *, key: int | None = None
) -> None:
    """Both readers give back ``header`` and ``rows`` exactly (text cells made safe), in order;
    with ``key``, in any order (rows sorted by that column: an export whose order has ties)."""
    got = _python_rows(data)
    assert got[0] == [spreadsheet_safe(h) for h in header]
    assert len(got) - 1 == len(rows)  # a CR inside a cell splits no row
    names, duck = _duckdb_rows(data, tmp)
    if key is not None:
        got = [got[0], *sorted(got[1:], key=lambda r: r[key])]
        duck = sorted(duck, key=lambda r: r[key])
        rows = sorted(rows, key=lambda r: str(r[key]))
    for cells, want in zip(got[1:], rows, strict=True):
        assert len(cells) == len(want)
        for cell, value in zip(cells, want, strict=True):
            assert _matches(cell, value, null=""), (cell, value)
    assert len(duck) == len(got) - 1  # header rows aside, DuckDB reads the same rows
    for cells, want in zip(duck, rows, strict=True):
        for cell, value in zip(cells, want, strict=True):
            assert _matches(cell, value, null=None), (cell, value)


def test_the_explorer_csv_reads_back_as_the_parquet_export_with_formulas_neutralised(
    store, tmp_path
):
    from ui import export

    db, _, _ = store
    data = export.download(db, Filters(), fmt="csv")
    parquet = pd.read_parquet(io.BytesIO(export.download(db, Filters(), fmt="parquet")))
    iso = "%Y-%m-%dT%H:%M:%S.%fZ"
    rows = [
        [None if pd.isna(v) else v.strftime(iso) if isinstance(v, pd.Timestamp) else v
         for v in r]
        for r in parquet.astype(object).itertuples(index=False)
    ]  # fmt: skip
    rows = [[None if isinstance(v, float) and math.isnan(v) else v for v in r] for r in rows]
    _check(data, list(parquet.columns), rows, tmp_path, key=list(parquet.columns).index("raw"))
    text = data.decode()
    assert "'=HYPERLINK" in text and '"think\rreflection"' in text
    assert any(r[3] == FORMULA_AGENT for r in rows) and any(r[4] == CR_MODE for r in rows)


def test_the_summary_pages_csv_and_parquet_read_back_as_its_table(store, tmp_path):
    from ui import export

    db, _, _ = store
    df = q.summary(db, Filters(), extended=True)
    assert (df["agent"] == FORMULA_AGENT).any() and (df["mode"] == CR_MODE).any()
    rows = [list(r) for r in df.astype(object).itertuples(index=False)]
    _check(export.table_csv(df), list(df.columns), rows, tmp_path)
    # and the Parquet button beside it holds the same table
    back = pd.read_parquet(io.BytesIO(export.table_parquet(df)))
    pd.testing.assert_frame_equal(back, df, check_dtype=False)


def test_the_sql_consoles_csv_reads_back_as_the_query_result(store, tmp_path):
    from ui.sql_console import download_csv

    db, _, _ = store
    sql = (
        "SELECT agent, mode, ts, duration_ms, -5 AS negative, '-5' AS negative_text, "
        "'@SUM(A1)' AS at_formula, chr(9) || 'tab' AS tab_start, '' AS empty, "
        'NULL::VARCHAR AS nothing, 1.5 AS "=header", raw FROM events ORDER BY raw'
    )
    table = sb.run_sql(
        db, sql, filters=Filters(), limits=sb.Limits(timeout_s=ROOM, max_rows=10_000)
    ).table
    rows = [list(r.values()) for r in table.to_pylist()]
    data = download_csv(db, sql, Filters())
    _check(data, table.column_names, rows, tmp_path)
    text = data.decode()
    assert "'=header" in text.splitlines()[0]
    assert ",-5,-5,'@SUM(A1),'\ttab,\"\",," in text  # numbers stay numbers, formulas do not


def test_cli_summary_csv_reads_back_as_the_summary(store, tmp_path):
    db, env, root = store
    out = cli(
        {**env, "HOME": str(root)}, "summary", "--format", "csv", "--range", "all", text=False
    )
    assert out.returncode == 0, out.stderr
    want = q.summary_rows(db)
    cols = ["agent", "mode", "cycles", "avg_ms", "tools", "errors"]
    _check(out.stdout, cols, [[r[c] for c in cols] for r in want], tmp_path)


def test_cli_sql_csv_reads_back_as_the_query_result(store, tmp_path):
    db, env, root = store
    sql = (
        "SELECT agent, mode, errors, '+1' AS plus_text, '=1+1' AS formula FROM cycles ORDER BY raw"
    )
    out = cli(
        {**env, "HOME": str(root)}, "sql", sql, "--format", "csv", "--max-rows", "100000",
        text=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    table = sb.run_sql(
        db, sql, filters=Filters(), limits=sb.Limits(timeout_s=ROOM, max_rows=100_000)
    ).table
    rows = [list(r.values()) for r in table.to_pylist()]
    _check(out.stdout, table.column_names, rows, tmp_path)
    assert b"'=1+1" in out.stdout and b",+1," in out.stdout
