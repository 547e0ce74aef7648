"""The SQL console lists every view's columns with types and meanings, and its chart picker
lives in the URL (hostile values are one line each), through AppTest on test_app_pages' rows."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from o11y_data.ingest import rollups
from o11y_data.ingest.normalize import prepare
from o11y_data.ingest.store import GenerationHead
from o11y_data.query import columns
from o11y_data.query.db import ViewSpec, create_views, store_info
from o11y_data.query.queries import Filters
from o11y_data.query.sandbox import create_filtered_views
from tests.test_app_pages import REPO, dataset, errors_shown, run

__all__ = ["dataset"]

ERROR_RATE_BY_MODE = (
    "SELECT mode, count(*) FILTER (WHERE errors > 0) / count(*) AS error_rate, "
    "count(*) AS cycles FROM cycles GROUP BY mode ORDER BY mode"
)


def _user_views() -> dict[str, list[str]]:
    """Every view a sandbox connection offers (the oracle: DuckDB's own catalog), but the
    internal events_all, with its columns."""
    conn = duckdb.connect()
    prepare(conn)
    rollups.prepare(conn)
    create_views(conn, ViewSpec([], {}, Path("/nonexistent"), store_info(GenerationHead())))
    create_filtered_views(conn, Filters())
    names = [
        r[0]
        for r in conn.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal AND view_name <> 'events_all'"
        ).fetchall()
    ]
    return {
        v: [r[0] for r in conn.execute(f"SELECT * FROM {v} LIMIT 0").description] for v in names
    }


def test_every_column_of_every_view_has_a_type_and_a_meaning():
    listed = {v.name: v for v in columns.views()}
    actual = _user_views()
    assert set(listed) == set(actual)  # a new view must be described too
    for name, cols in actual.items():
        got = listed[name].columns
        assert [c.name for c in got] == cols, name
        for c in got:
            assert c.type and c.meaning and c.meaning != columns.UNDESCRIBED, (name, c.name)


def test_docs_events_md_lists_the_same_views_and_columns():
    docs = (REPO / "docs" / "events.md").read_text()
    block = docs.split("<!-- columns:start -->\n", 1)[1].split("<!-- columns:end -->", 1)[0]
    assert block == columns.markdown()


def test_the_console_lists_each_views_columns_with_types_and_meanings(dataset):
    at = run("sql")
    box = at.selectbox(key="sql_view")
    assert box.value == "filtered_cycles"
    actual = _user_views()
    assert sorted(box.options) == sorted(actual)
    for view in box.options:
        box.set_value(view)
        at.run()
        table = at.table[0].value
        assert list(table.index) == actual[view], view
        assert table["type"].str.len().min() > 0 and table["meaning"].str.len().min() > 5
        box = at.selectbox(key="sql_view")


def test_error_rate_by_mode_charts_the_rate_and_the_picker_choice_goes_into_the_url(dataset):
    at = run("sql", {"q": ERROR_RATE_BY_MODE})
    assert not errors_shown(at)
    assert at.selectbox(key="sql_chart_kind").value == "bar"
    assert at.selectbox(key="sql_chart_y").value == "error_rate"
    assert at.selectbox(key="sql_chart_x").value == "mode"
    fig = at.get("plotly_chart")[0].proto.spec
    assert '"error_rate"' in fig  # the y axis' title: the rate, not the count
    at.selectbox(key="sql_chart_kind").set_value("scatter").run()
    at.selectbox(key="sql_chart_y").set_value("cycles").run()
    assert at.query_params["chart"] == "scatter" and at.query_params["chart_y"] == "cycles"
    assert at.query_params["chart_x"] == "mode"
    # the link reopens the same choice
    again = run("sql", dict(at.query_params))
    assert again.selectbox(key="sql_chart_kind").value == "scatter"
    assert again.selectbox(key="sql_chart_y").value == "cycles"


@pytest.mark.parametrize(
    "params, says",
    [
        ({"chart": "pie<script>"}, "chart value"),
        ({"chart": "line", "chart_x": "no_such"}, "chart_x value"),
        ({"chart": "bar", "chart_y": "mode"}, "chart_y value"),
        ({"chart_color": "**bold**"}, "chart_color value"),
    ],
)
def test_a_hostile_chart_value_in_the_link_is_one_line_and_the_rest_still_draws(
    dataset, params, says
):
    at = run("sql", {"q": ERROR_RATE_BY_MODE, **params})
    raw = [w.value for w in at.warning if "Ignored the link's" in w.value]
    assert len(raw) == 1 and "**bold**" not in raw[0]  # Markdown escaped: shown as typed
    assert says in raw[0].replace("\\", ""), raw
    assert not at.exception and at.get("plotly_chart")
