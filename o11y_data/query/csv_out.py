"""Every CSV the dashboard writes goes through :func:`copy_csv`: the explorer's and the Summary
page's downloads, the SQL console's, and the CLI's ``summary``/``sql --format csv``.

Event fields and query results are hostile text, and a CSV is opened in spreadsheets, so:

- **Formulas are neutralised** (OWASP's CSV injection rule): a text cell whose first character is
  ``=``, ``+``, ``-``, ``@``, a tab, a CR or a NUL (or the full-width ``＝＋－＠`` some spreadsheets
  also read as formula starts) gets a ``'`` in front, which spreadsheets take as "this is text".
  Header names are text cells too. A text cell that is a plain decimal number (``-5``, ``+1.5``,
  ``-2e3``) is left alone: a spreadsheet reads it as that number and runs nothing, and a
  negative number must stay a number. Numeric, boolean and time columns are never changed.
- **Quoting**: DuckDB's writer quotes every field holding a quote, a comma, a CR or an LF
  (quotes doubled), so a bare CR in an agent or mode never splits a row; an empty text is
  written ``""`` and NULL as nothing.

DuckDB writes every one of them (a ``COPY … TO``), streaming: a 1M-row export never builds its
rows in Python. Rows already in memory (an Arrow table, a DataFrame) are registered with a
DuckDB connection and take the same path.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The first characters that make a spreadsheet run a cell (OWASP: = + - @ tab CR; NUL from
# ASVS 1.2.10; the full-width forms for spreadsheets that fold them).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\0", "\uff1d", "\uff0b", "\uff0d", "\uff20")
PLAIN_NUMBER = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
_TEXT_TYPES = ("VARCHAR",)
_SOURCE = "o11y_csv_source"


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _char(c: str) -> str:
    return f"chr({ord(c)})"


def neutralised_sql(expr: str) -> str:
    """``expr`` (VARCHAR) with a ``'`` in front when a spreadsheet would run it as a formula."""
    starts = ", ".join(_char(c) for c in FORMULA_STARTS)
    return (
        f"CASE WHEN left({expr}, 1) IN ({starts}) "
        f"AND NOT regexp_full_match({expr}, '{PLAIN_NUMBER}') "
        f"THEN '''' || {expr} ELSE {expr} END"
    )


def copy_csv(cur: Any, select_sql: str, params: Sequence[Any], dest: Path) -> int:
    """Write the rows of ``select_sql`` (its ``?`` bound to ``params``) to ``dest`` as CSV with a
    header, by the rules above; returns the rows written. ``cur`` is a DuckDB cursor."""
    cur.execute(f"SELECT * FROM ({select_sql}) LIMIT 0", list(params))
    columns = [(d[0], str(d[1])) for d in cur.description or []]
    cur.fetchall()
    names = cur.execute(
        f"SELECT list_transform(?::VARCHAR[], lambda n: {neutralised_sql('n')})",
        [[name for name, _ in columns]],
    ).fetchall()[0][0]
    items = []
    for (name, kind), header in zip(columns, names, strict=True):
        col = f"o11y_src.{_q(name)}"
        value = neutralised_sql(col) if kind in _TEXT_TYPES else col
        items.append(f"{value} AS {_q(header)}")
    select = ", ".join(items) or "*"
    cur.execute(
        f"COPY (SELECT {select} FROM ({select_sql}) AS o11y_src) TO '{_escape(str(dest))}' "
        "(FORMAT csv, HEADER, DELIMITER ',', QUOTE '\"', ESCAPE '\"')",
        list(params),
    )
    return int(cur.fetchall()[0][0])


def _escape(text: str) -> str:
    return text.replace("'", "''")


def table_csv(data: Any) -> bytes:
    """Rows already in memory (a pyarrow Table or a pandas DataFrame, distinct column names) as
    CSV bytes, through :func:`copy_csv`."""
    import duckdb

    conn = duckdb.connect(":memory:", config={"threads": "1"})
    try:
        conn.execute("SET TimeZone = 'UTC'")  # times are written in UTC, as shown
        conn.register(_SOURCE, data)
        with tempfile.TemporaryDirectory(prefix="o11y-csv-") as tmp:
            dest = Path(tmp) / "out.csv"
            copy_csv(conn, f"SELECT * FROM {_SOURCE}", [], dest)
            return dest.read_bytes()
    finally:
        conn.close()
