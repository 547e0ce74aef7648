"""The Summary page and the SQL console through AppTest, against test_app_pages' hand-made rows.

Expected numbers come from pandas over the Python rows the dataset was written from, or from the
CLI's ``summary`` (a separate process and query path), never from the page's own query.
"""

from __future__ import annotations

import csv
import io
import math
import subprocess
import sys
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import pandas as pd
import pytest

from tests.test_app_pages import REPO, B, cycles_in, dataset, errors_shown, run, window

__all__ = ["dataset"]  # the module-scoped fixture, shared with test_app_pages

SEED_ON_CYCLES = (
    "SELECT agent, mode, count(*) cycles, round(avg(duration_ms)) avg_ms, "
    "sum(tool_calls) tools, sum(errors) errors FROM cycles "
    "GROUP BY agent, mode ORDER BY agent, cycles DESC, mode"
)


def _half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _expected_summary(cur: pd.DataFrame) -> pd.DataFrame:
    """The seed's table plus error rate and percentiles, by pandas/numpy from the raw rows."""
    rows = []
    for (agent, mode), g in cur.groupby(["agent", "mode"]):
        d = g["duration_ms"].dropna().astype(float)
        rows.append(
            {
                "agent": agent,
                "mode": mode,
                "cycles": len(g),
                "avg_ms": _half_up(d.mean()),
                "tools": int(g["tool_calls"].fillna(0).sum()),
                "errors": int(g["errors"].fillna(0).sum()),
                "error_rate": float((g["errors"] > 0).mean()),
                "p50_ms": float(np.percentile(d, 50)),
                "p95_ms": float(np.percentile(d, 95)),
                "p99_ms": float(np.percentile(d, 99)),
            }
        )
    out = pd.DataFrame(rows)
    return out.sort_values(
        ["agent", "cycles", "mode"], ascending=[True, False, True], ignore_index=True
    )


def _by_key(df: pd.DataFrame, cols: list[str]) -> dict[tuple[str, str], list[int]]:
    return {(r["agent"], r["mode"]): [int(r[c]) for c in cols] for _, r in df.iterrows()}


def _table(at, n: int = 0) -> pd.DataFrame:
    return at.dataframe[n].value.reset_index(drop=True)


def _summary_table(at) -> pd.DataFrame:
    """The Summary page's table with each agent read back from its link to the agent page (the
    link names the agent in its query; the table shows the fragment's text)."""
    table = _table(at)
    agents = []
    for link in table["agent"]:
        query = parse_qs(urlsplit(link).query)
        agents.append(query["agent"][0])
        assert unquote(urlsplit(link).fragment) == query["agent"][0]  # no friendly names here
    return table.assign(agent=agents)


@pytest.mark.parametrize(
    "page, params",
    [
        ("summary", {}),
        ("sql", {}),
        ("sql", {"q": "SELECT mode, count(*) n FROM cycles GROUP BY 1"}),
    ],
)
def test_the_new_pages_run_clean(dataset, page, params):
    at = run(page, params)
    assert not errors_shown(at)
    assert any("Last sync" in m.value for m in at.markdown)  # the shared freshness bar
    assert at.multiselect(key="f_agents")  # the shared sidebar filters


def test_summary_page_matches_pandas_over_the_raw_rows(dataset):
    now, df = dataset
    at = run("summary")
    start, end = window(now)
    expected = _expected_summary(cycles_in(df, start, end))
    table = _summary_table(at)
    assert not table.pop("approx").any()  # 24 hours: exact percentiles
    assert list(table.columns) == list(expected.columns)
    assert list(table["agent"]) == list(expected["agent"])
    assert list(table["mode"]) == list(expected["mode"])
    for col in ("cycles", "avg_ms", "tools", "errors"):
        assert [int(v) for v in table[col]] == list(expected[col]), col
    for col in ("error_rate", "p50_ms", "p95_ms", "p99_ms"):
        assert table[col].to_numpy() == pytest.approx(expected[col].to_numpy()), col


def test_summary_page_equals_the_cli_summary_for_the_same_filters(dataset):
    now, df = dataset
    s = (now - pd.Timedelta(hours=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    e = (now - pd.Timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    at = run("summary", {"range": "custom", "start": s, "end": e, "mode": ["think", "reflection"]})
    table = _summary_table(at)
    cli = subprocess.run(
        [sys.executable, "-m", "o11y_data", "summary", "--since", s, "--until", e,
         "--mode", "think", "--mode", "reflection", "--format", "csv"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    rows = list(csv.DictReader(io.StringIO(cli.stdout)))
    assert len(rows) == len(table) > 2
    page = [
        [r.agent, r.mode, str(int(r.cycles)), str(int(r.avg_ms)), str(int(r.tools)),
         str(int(r.errors))]
        for r in table.itertuples()
    ]  # fmt: skip
    assert page == [list(r.values()) for r in rows]


def test_the_seed_query_through_the_console_equals_summary(dataset):
    now, df = dataset
    at = run("sql", {"q": SEED_ON_CYCLES})
    assert not errors_shown(at)
    got = _table(at)
    # the seed orders by agent, then cycles descending, then mode (as the Summary page does)
    keys = list(zip(got["agent"], -got["cycles"].astype(int), got["mode"], strict=True))
    assert keys == sorted(keys)
    everything = _expected_summary(df[df["event_type"] == "agent.cycle"])
    cols = ["cycles", "avg_ms", "tools", "errors"]
    assert _by_key(got, cols) == _by_key(everything, cols)

    # the gallery's first example is the same query on filtered_cycles: it follows the filters
    from ui.sql_console import EXAMPLES

    at = run("sql", {"q": EXAMPLES[0].sql})
    start, end = window(now)
    in_window = _expected_summary(cycles_in(df, start, end))
    assert _by_key(_table(at), ["cycles"]) == _by_key(in_window, ["cycles"])
    assert len(at.get("plotly_chart")) == 1  # agent x mode with numbers: grouped bars


@pytest.mark.parametrize(
    "sql, says",
    [
        ("DROP VIEW events", "Only SELECT queries are allowed"),
        ("SELECT * FROM read_text('/etc/passwd')", "reads only the store"),
        ("SELECT 1; -- hidden\nDELETE FROM store_info", "One statement at a time"),
        ("COPY (SELECT 1) TO '/tmp/x.csv'", "Only SELECT queries are allowed"),
        ("SELECT nope FROM cycles", "Query failed"),
    ],
)
def test_console_refusals_show_one_line_and_no_table(dataset, sql, says):
    at = run("sql", {"q": sql})
    errors = errors_shown(at)
    assert len(errors) == 1 and says in errors[0].replace("\\", ""), errors
    assert "\n" not in errors[0]
    assert not at.dataframe


def test_a_huge_query_in_the_link_is_refused_in_one_line(dataset):
    at = run("sql", {"q": "SELECT 1 -- " + "x" * 30_000})
    errors = errors_shown(at)
    assert len(errors) == 1 and "the limit is 20,000" in errors[0]
    assert not at.dataframe


def test_100000_rows_are_capped_on_screen_and_complete_in_the_download(dataset):
    sql = "SELECT range AS i FROM range(100000)"
    at = run("sql", {"q": sql})
    assert len(_table(at)) == 10_000
    assert any("Showing the first 10,000 rows" in c.value for c in at.caption)
    from o11y_data import load_settings, open_db
    from o11y_data.query.queries import Filters
    from ui.sql_console import download_csv

    data = download_csv(open_db(load_settings(secrets_paths=[])), sql, Filters())
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert len(rows) == 100_001 and rows[0] == ["i"] and rows[-1] == ["99999"]


def test_run_with_an_empty_box_says_there_is_nothing_to_run_once(dataset):
    from ui.sections.sql import EMPTY_RUN

    at = run("sql")
    assert EMPTY_RUN not in [i.value for i in at.info]  # a first visit: the hint alone
    next(b for b in at.button if b.label == "Run").click().run()
    assert not at.exception
    assert [i.value for i in at.info].count(EMPTY_RUN) == 1
    assert "q" not in at.query_params
    at.run()  # a rerun without pressing Run again: the notice is gone
    assert EMPTY_RUN not in [i.value for i in at.info]


def test_running_a_query_writes_the_link_and_remembers_it(dataset):
    at = run("sql")
    at.text_area(key="sql_text").input("SELECT 42 AS answer")
    next(b for b in at.button if b.label == "Run").click().run()
    assert not at.exception
    assert at.query_params.get("q") == "SELECT 42 AS answer"
    assert list(_table(at)["answer"]) == [42]

    # an example replaces the query; the previous one is offered under "Recent queries"
    at.button(key="sql_ex_4").click().run()
    assert not at.exception
    assert at.query_params.get("q").startswith("SELECT event_type")
    assert at.button(key="sql_recent_0").label == "SELECT 42 AS answer"
    at.button(key="sql_recent_0").click().run()
    assert at.query_params.get("q") == "SELECT 42 AS answer"


def test_hostile_text_in_results_and_queries_is_never_markdown(dataset):
    evil = "**bold** <img src=x onerror=alert(1)> [link](javascript:alert(1))"
    sql = f"SELECT '{evil}' AS agent, 1 AS n"
    at = run("sql", {"q": sql})
    assert list(_table(at)["agent"]) == [evil]  # shown as text in the table
    at.button(key="sql_ex_4").click().run()
    label = at.button(key="sql_recent_0").label
    assert "\\*\\*bold\\*\\*" in label and "\\[link\\]" in label  # escaped Markdown
    assert all("<img" not in m.value for m in at.markdown)


def test_summary_downloads_hold_exactly_the_table(dataset, monkeypatch):
    """The CSV and Parquet bytes the buttons serve, read back, equal the table on screen."""
    import streamlit.testing.v1.app_test as app_test
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    stores: list[MemoryMediaFileStorage] = []

    class Recording(MemoryMediaFileStorage):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            stores.append(self)

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Recording)
    at = run("summary", {"agent": B, "errors": "1"})
    table = _summary_table(at)
    assert len(table) > 0 and set(table["agent"]) == {B}
    files = {}
    for button in at.get("download_button"):
        name = button.proto.url.rsplit("/", 1)[-1]
        files[button.label] = next(s for s in stores if _has(s, name)).get_file(name).content
    from_parquet = pd.read_parquet(io.BytesIO(files["Parquet"]))
    pd.testing.assert_frame_equal(from_parquet, table, check_dtype=False)
    from_csv = pd.read_csv(io.BytesIO(files["CSV"]), dtype={"agent": str, "mode": str})
    pd.testing.assert_frame_equal(from_csv, table, check_dtype=False)


def _has(store, name: str) -> bool:
    try:
        store.get_file(name)
    except Exception:
        return False
    return True
