"""The SQL console's automatic chart: a pure function of the result's shape."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

from ui.autochart import auto_chart
from ui.safe import plotly_text


def _times(n: int) -> pd.Series:
    return pd.Series(pd.date_range("2026-11-01", periods=n, freq="h", tz="UTC"))


def test_a_time_column_and_a_number_give_a_line():
    df = pd.DataFrame({"hour": _times(5)[::-1].reset_index(drop=True), "cycles": [5, 4, 3, 2, 1]})
    fig = auto_chart(df)
    assert fig is not None and [t.type for t in fig.data] == ["scatter"]
    xs = list(pd.to_datetime(fig.data[0].x))
    assert xs == sorted(xs)  # drawn in time order whatever the query's order
    assert list(fig.data[0].y) == [1, 2, 3, 4, 5]


def test_a_time_column_a_category_and_a_number_give_a_line_per_value():
    df = pd.DataFrame(
        {"hour": list(_times(3)) * 2, "mode": ["think"] * 3 + ["reflection"] * 3, "n": range(6)}
    )
    fig = auto_chart(df)
    assert sorted(t.name for t in fig.data) == ["reflection", "think"]


def test_times_are_drawn_in_the_chosen_zone():
    df = pd.DataFrame({"t": _times(2), "n": [1, 2]})
    fig = auto_chart(df, tz="Asia/Tokyo")
    assert pd.Timestamp(fig.data[0].x[0]) == pd.Timestamp("2026-11-01 09:00")
    assert "Asia/Tokyo" in fig.layout.xaxis.title.text


def test_a_category_and_a_number_give_bars_and_huge_integers_count_as_numbers():
    df = pd.DataFrame({"agent": ["a", "b", "c"], "tools": [Decimal(3), Decimal(1), None]})
    fig = auto_chart(df)
    assert [t.type for t in fig.data] == ["bar"]
    assert list(fig.data[0].x) == ["a", "b", "c"]
    assert list(fig.data[0].y)[:2] == [3.0, 1.0]


def test_the_seed_shape_gives_bars_grouped_by_mode():
    df = pd.DataFrame(
        {
            "agent": ["a", "a", "b"],
            "mode": ["think", "reflection", "think"],
            "cycles": [3, 2, 1],
            "avg_ms": [1.0, 2.0, 3.0],
        }
    )
    fig = auto_chart(df)
    assert {t.name for t in fig.data} == {"think", "reflection"}
    assert fig.layout.barmode == "group"
    assert fig.layout.yaxis.title.text == "cycles"


def test_shapes_without_an_honest_chart_give_none():
    assert auto_chart(pd.DataFrame()) is None
    assert auto_chart(pd.DataFrame({"n": [1, 2, 3]})) is None  # numbers only
    assert auto_chart(pd.DataFrame({"a": ["x", "y"]})) is None  # text only
    assert auto_chart(pd.DataFrame({"a": ["x", "x"], "n": [1, 2]})) is None  # a bar hides another
    many = pd.DataFrame({"a": [f"k{i}" for i in range(500)], "n": range(500)})
    assert auto_chart(many) is None  # too many bars to read
    flags = pd.DataFrame({"a": ["x", "y"], "ok": [True, False]})
    assert auto_chart(flags) is None  # booleans are not amounts


def test_hostile_text_reaches_the_figure_escaped():
    evil = '<a href="javascript:alert(1)">click</a><b>x'
    df = pd.DataFrame({"agent": [evil, "ok"], "<img src=x>": [1, 2]})
    fig = auto_chart(df)
    texts = [*fig.data[0].x, fig.data[0].name, fig.layout.xaxis.title.text]
    texts.append(fig.layout.yaxis.title.text)
    assert all("<" not in t and ">" not in t for t in texts), texts
    assert plotly_text(evil) in list(fig.data[0].x)


def test_slowest_cycles_are_points_not_a_line_and_y_is_what_they_are_sorted_by():
    from ui.autochart import default_choice

    rng = pd.Series(pd.date_range("2026-11-01", periods=8, freq="37min", tz="UTC"))
    order = [5, 1, 7, 0, 3, 6, 2, 4]  # ORDER BY duration_ms DESC: times in no order
    df = pd.DataFrame(
        {
            "ts": rng[order].reset_index(drop=True),
            "agent": ["a", "b"] * 4,
            "mode": ["think"] * 8,
            "duration_ms": [900, 800, 700, 600, 500, 400, 300, 200],
            "tool_calls": [1, 5, 2, 2, 3, 1, 0, 4],
            "errors": [0, 1, 0, 0, 2, 0, 0, 1],
        }
    )
    choice = default_choice(df)
    assert choice.kind == "scatter" and choice.y == "duration_ms" and choice.x == "ts"
    fig = auto_chart(df)
    assert all(t.mode == "markers" for t in fig.data)  # no line joins unrelated cycles


def test_error_rate_by_mode_charts_the_rate_not_the_count():
    from ui.autochart import default_choice

    df = pd.DataFrame(
        {"mode": ["think", "reflection", "housekeeping"], "error_rate": [0.02, 0.1, 0.0],
         "cycles": [900, 120, 40]}
    )  # fmt: skip
    choice = default_choice(df)
    assert (choice.kind, choice.x, choice.y) == ("bar", "mode", "error_rate")
    assert list(auto_chart(df).data[0].y) == [0.02, 0.1, 0.0]


def test_a_line_needs_times_in_order_within_each_colour():
    from ui.autochart import default_choice

    hours = list(_times(3))
    per_mode = pd.DataFrame(
        {"hour": hours * 2, "mode": ["think"] * 3 + ["reflection"] * 3, "n": range(6)}
    )
    assert default_choice(per_mode).kind == "line"
    repeated = pd.DataFrame({"hour": hours + hours, "n": range(6)})  # two rows per hour
    assert default_choice(repeated).kind == "scatter"


def test_a_chart_choice_from_the_link_is_checked_value_by_value():
    from ui.autochart import Choice, choice_from_params

    df = pd.DataFrame({"mode": ["a", "b"], "rate": [0.1, 0.2], "n": [3, 4]})
    choice, notes = choice_from_params(df, {"kind": "line", "x": "mode", "y": "n"})
    assert choice == Choice("line", "mode", "n", None) and notes == []
    choice, notes = choice_from_params(df, {"kind": "pie", "y": "<b>x</b>", "color": "n"})
    assert choice == Choice("bar", "mode", "rate", None)
    assert len(notes) == 3 and all(n.startswith("Ignored the link's chart") for n in notes)
