"""ui/chart_events: a selection on a drawn time chart as the page's range or explorer filters.

Figures come from the real builders (ui/figures.py); the expected times are written out by hand
from the data the figures were given, not computed by the code under test.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import plotly.graph_objects as go
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ui import chart_events as CE
from ui import figures as FG
from ui import filters as F

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
START, END = T0 + timedelta(minutes=2), T0 + timedelta(hours=2)  # the page's window
STATE = F.FilterState(
    range="6h", agents=("did:a", "did:b"), event_types=("agent.cycle",), errors_only=True
)


def by_mode(tz: str = "UTC", *, bucket_s: int = 300) -> go.Figure:
    rows = [
        (T0, "think", 3),
        (T0, "reflection", 1),
        (T0 + timedelta(minutes=5), "think", 2),
        (T0 + timedelta(minutes=10), "reflection", 4),
    ]
    df = pd.DataFrame(rows, columns=["bucket", "key", "cycles"])
    return FG.cycles_over_time(df, by="mode", tz=tz, bucket_s=bucket_s, start=START, end=END)


def by_agent() -> go.Figure:
    rows = [
        (T0, "agent", "did:a", 3, 1),
        (T0 + timedelta(minutes=5), "agent", "did:a", 2, 1),
        (T0, "others", "others", 7, 9),
        (T0 + timedelta(minutes=5), "unknown", "unknown", 1, None),
    ]
    df = pd.DataFrame(rows, columns=["bucket", "kind", "key", "cycles", "group_agents"])
    return FG.cycles_over_time(df, by="agent", bucket_s=300, start=START, end=END)


def info(fig: go.Figure, tz: str = "UTC") -> CE.ChartInfo:
    found = CE.chart_info(fig, tz=tz)
    assert found is not None
    return found


def curve(fig: go.Figure, name: str) -> int:
    return next(i for i, t in enumerate(fig.data) if t.name.startswith(name))


def box(x0: object, x1: object) -> dict:
    return {"box": [{"xref": "x", "yref": "y", "x": [x0, x1], "y": [9, 0]}], "points": []}


def click(curve_number: object, point_index: object, **extra: object) -> dict:
    return {"points": [{"curve_number": curve_number, "point_index": point_index, **extra}]}


# -- spans -------------------------------------------------------------------------------------


def test_a_span_becomes_a_custom_range_of_whole_buckets_keeping_the_other_filters():
    got = CE.interpret(
        box("2026-03-01 10:07:50.2467", "2026-03-01 11:18:22"), info(by_mode()), STATE
    )
    assert got == CE.SetRange(
        F.FilterState(
            range="custom",
            start=datetime(2026, 3, 1, 10, 5, tzinfo=UTC),
            end=datetime(2026, 3, 1, 11, 20, tzinfo=UTC),
            agents=STATE.agents,
            event_types=STATE.event_types,
            errors_only=True,
        )
    )
    # dragged right to left: the same span
    assert (
        CE.interpret(box("2026-03-01 11:18:22", "2026-03-01 10:07:50"), info(by_mode()), STATE)
        == got
    )
    # and its URL form is the canonical one the sidebar keeps
    params = F.to_params(got.state)
    assert (params["range"], params["start"], params["end"]) == (
        "custom",
        "2026-03-01T10:05:00Z",
        "2026-03-01T11:20:00Z",
    )


def test_a_span_is_clipped_to_the_charts_own_time_range():
    got = CE.interpret(box("2026-03-01 09:00", "2026-03-01 10:31"), info(by_mode()), STATE)
    assert isinstance(got, CE.SetRange)
    assert (got.state.start, got.state.end) == (START, datetime(2026, 3, 1, 10, 35, tzinfo=UTC))
    outside = CE.interpret(box("2026-03-01 13:00", "2026-03-01 14:00"), info(by_mode()), STATE)
    assert isinstance(outside, CE.Notice) and "outside" in outside.text


def test_a_span_is_read_as_wall_clock_time_in_the_charts_zone():
    fig = by_mode("Asia/Tokyo")  # UTC+9: 10:10 UTC is drawn at 19:10
    got = CE.interpret(box("2026-03-01 19:10", "2026-03-01 19:20"), info(fig, "Asia/Tokyo"), STATE)
    assert isinstance(got, CE.SetRange)
    assert (got.state.start, got.state.end) == (
        datetime(2026, 3, 1, 10, 10, tzinfo=UTC),
        datetime(2026, 3, 1, 10, 20, tzinfo=UTC),
    )


def test_a_span_on_a_chart_without_buckets_is_widened_to_whole_minutes():
    fig = go.Figure()
    fig.add_scatter(
        x=pd.Series(pd.date_range("2026-03-01 10:00", periods=3, freq="7min")), y=[1, 2, 3]
    )
    got = CE.interpret(box("2026-03-01 10:03:10", "2026-03-01 10:09:59.5"), info(fig), STATE)
    assert isinstance(got, CE.SetRange)
    assert (got.state.start, got.state.end) == (
        datetime(2026, 3, 1, 10, 3, tzinfo=UTC),
        datetime(2026, 3, 1, 10, 10, tzinfo=UTC),
    )


# -- clicks ------------------------------------------------------------------------------------


def test_a_click_on_a_mode_bar_opens_the_explorer_on_its_bucket_and_mode():
    fig = by_mode()
    c = curve(fig, "reflection")
    xs = list(fig.data[c].x)
    i = next(k for k, x in enumerate(xs) if pd.Timestamp(x) == pd.Timestamp("2026-03-01 10:10"))
    got = CE.interpret(click(c, i), info(fig), STATE)
    assert got == CE.Explore(
        F.FilterState(
            range="custom",
            start=datetime(2026, 3, 1, 10, 10, tzinfo=UTC),
            end=datetime(2026, 3, 1, 10, 15, tzinfo=UTC),
            agents=STATE.agents,  # a mode's bar is every agent the page shows
            modes=("reflection",),
            event_types=STATE.event_types,
            errors_only=True,
        )
    )


def test_a_click_is_read_from_the_drawn_figure_never_from_the_browsers_x():
    fig = by_mode()
    c = curve(fig, "think")
    honest = CE.interpret(click(c, 5), info(fig), STATE)
    forged = CE.interpret(
        click(c, 5, x="1999-01-01 00:00", customdata=["<b>x</b>"]), info(fig), STATE
    )
    assert honest == forged and isinstance(honest, CE.Explore)
    assert honest.state.start == datetime(2026, 3, 1, 10, 25, tzinfo=UTC)  # the 6th bucket


def test_the_first_bucket_is_clipped_to_the_window_so_the_explorer_counts_what_the_bar_counts():
    fig = by_mode()
    got = CE.interpret(click(curve(fig, "think"), 0), info(fig), STATE)
    assert isinstance(got, CE.Explore)
    assert (got.state.start, got.state.end) == (START, T0 + timedelta(minutes=5))


def test_a_click_on_an_agent_line_filters_that_agent_and_keeps_the_modes():
    fig = by_agent()
    state = F.FilterState(modes=("think",))
    got = CE.interpret(click(curve(fig, "did:a"), 1), info(fig), state)
    assert isinstance(got, CE.Explore)
    assert (got.state.agents, got.state.modes) == (("did:a",), ("think",))
    assert got.state.start == datetime(2026, 3, 1, 10, 5, tzinfo=UTC)


def test_a_click_on_the_grey_others_line_filters_only_the_bucket_and_mode():
    fig = by_agent()
    c = curve(fig, "others")
    assert fig.data[c].meta["group"] == "others"
    got = CE.interpret(click(c, 1), info(fig), STATE)
    assert isinstance(got, CE.Explore)
    assert got.state.agents == STATE.agents and got.state.modes == STATE.modes
    assert (got.state.start, got.state.end) == (
        datetime(2026, 3, 1, 10, 5, tzinfo=UTC),
        datetime(2026, 3, 1, 10, 10, tzinfo=UTC),
    )


def test_a_click_on_unknown_filters_the_events_without_an_agent():
    fig = by_agent()
    got = CE.interpret(click(curve(fig, FG.UNKNOWN_LABEL), 1), info(fig), F.FilterState())
    assert isinstance(got, CE.Explore) and got.state.agents == ("unknown",)


def test_a_click_in_the_repeated_hour_of_a_clock_change_opens_the_right_bucket():
    # Europe/Berlin goes back at 01:00 UTC on 2026-10-25: 02:00-03:00 local happens twice.
    t = datetime(2026, 10, 25, 0, 0, tzinfo=UTC)
    df = pd.DataFrame(
        {"bucket": [t + timedelta(minutes=30 * k) for k in range(4)], "key": "think", "cycles": 1}
    )
    tz = "Europe/Berlin"
    fig = FG.cycles_over_time(
        df, by="mode", tz=tz, bucket_s=1800, start=t, end=t + timedelta(hours=2)
    )
    labels = [pd.Timestamp(x).strftime("%H:%M") for x in fig.data[0].x]
    assert labels == ["02:00", "02:30", "02:00", "02:30"]  # the chart draws wall-clock time
    starts = [
        CE.interpret(click(0, k), info(fig, tz), F.FilterState()).state.start for k in range(4)
    ]
    assert starts == [t + timedelta(minutes=30 * k) for k in range(4)]


def test_a_click_on_a_chart_without_buckets_says_to_drag_instead():
    fig = go.Figure()
    fig.add_scatter(
        x=pd.Series(pd.date_range("2026-03-01 10:00", periods=3, freq="h")), y=[1, 2, 3]
    )
    got = CE.interpret(click(0, 1), info(fig), STATE)
    assert isinstance(got, CE.Notice) and "drag" in got.text


# -- what is not a time chart, and hostile selections ------------------------------------------


def test_only_charts_with_times_on_x_are_controls():
    assert (
        CE.chart_info(FG.mode_share(pd.DataFrame({"mode": ["think"], "cycles": [3]})), tz="UTC")
        is None
    )
    bars = go.Figure(go.Bar(x=["think", "reflection"], y=[1, 2]))
    assert CE.chart_info(bars, tz="UTC") is None
    heat = FG.heatmap(
        pd.DataFrame({"bucket": [T0], "key": ["did:a"], "cycles": [2]}),
        bucket_s=300,
        start=START,
        end=END,
    )
    assert CE.chart_info(heat, tz="UTC") is not None  # x: a list of timestamps


def test_a_cleared_selection_asks_for_nothing():
    for empty in ({}, {"points": [], "box": [], "lasso": []}, {"box": None}):
        assert CE.interpret(empty, info(by_mode()), STATE) is None


HOSTILE_BOXES = [
    {"x": "2026-03-01 10:00"},
    {"x": ["2026-03-01 10:00"]},
    {"x": [1_700_000_000_000, 1_700_000_100_000]},
    {"x": [None, None]},
    {"x": ["yesterday", "now"]},
    {"x": ["2026-02-30 10:00", "2026-03-01 10:00"]},
    {"x": ["1970-01-01 00:00", "9999-12-31 23:59"]},
    {"x": ["2026-03-01 10:00" + "0" * 10_000, "2026-03-01 11:00"]},
    {"x": ["2026-03-01 10:00'; DROP TABLE events;--", "2026-03-01 11:00"]},
    {"x": [float("nan"), float("inf")]},
    {"x": [["2026-03-01 10:00"], {"a": 1}]},
    "a string",
    None,
]
HOSTILE_POINTS = [
    {"curve_number": -1, "point_index": 0},
    {"curve_number": 10**30, "point_index": 0},
    {"curve_number": "0", "point_index": "1"},
    {"curve_number": True, "point_index": 0},
    {"curve_number": 0, "point_index": 10**9},
    {"curve_number": 0.0, "point_index": 1.0},
    {"curve_number": None},
    {},
    "point",
    [0, 1],
]


@pytest.mark.parametrize("bad", HOSTILE_BOXES, ids=range(len(HOSTILE_BOXES)))
def test_a_hostile_span_gives_a_one_line_notice(bad):
    got = CE.interpret({"box": [bad]}, info(by_mode()), STATE)
    assert isinstance(got, CE.Notice)
    assert "\n" not in got.text and len(got.text) < 200


@pytest.mark.parametrize("bad", HOSTILE_POINTS, ids=range(len(HOSTILE_POINTS)))
def test_a_hostile_click_gives_a_one_line_notice(bad):
    got = CE.interpret({"points": [bad]}, info(by_mode()), STATE)
    assert isinstance(got, CE.Notice)
    assert "\n" not in got.text and len(got.text) < 200


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["2026-03-01 10:07", "2026-03-01 11:00:00.5", "2001-01-01", "2099-12-31 23"]),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4)
    ),
    max_leaves=20,
)
SELECTION = st.fixed_dictionaries(
    {},
    optional={
        "box": st.lists(
            st.fixed_dictionaries({"x": st.lists(JSON, max_size=3)}) | JSON, max_size=2
        ),
        "points": st.lists(
            st.fixed_dictionaries(
                {
                    "curve_number": st.integers(-2, 6) | JSON,
                    "point_index": st.integers(-2, 40) | JSON,
                }
            )
            | JSON,
            max_size=2,
        ),
    },
)


BY_MODE = info(by_mode())  # built once: the fuzz below reads it hundreds of times


@settings(max_examples=150, deadline=None)
@given(selection=SELECTION | JSON)
def test_any_selection_gives_nothing_a_notice_or_filters_inside_the_chart(selection):
    got = CE.interpret(selection, BY_MODE, STATE)  # never raises
    if isinstance(got, CE.SetRange | CE.Explore):
        s = got.state
        assert s.range == "custom" and START <= s.start < s.end <= END
        assert F.parse_params(F.to_params(s)) == s  # a URL the sidebar reads back as it is
    else:
        assert got is None or (isinstance(got, CE.Notice) and "\n" not in got.text)


def test_parse_plotly_time_reads_what_plotly_writes_and_nothing_else():
    assert CE.parse_plotly_time("2026-01-01") == datetime(2026, 1, 1)
    assert CE.parse_plotly_time("2026-01-01 01") == datetime(2026, 1, 1, 1)
    assert CE.parse_plotly_time("2026-01-01 01:30:24.0803") == datetime(
        2026, 1, 1, 1, 30, 24, 80300
    )
    for bad in ("2026-1-1", "2026-01-01T01:30Z", "01:30", " ", "2026-13-01", 20260101, math.nan):
        assert CE.parse_plotly_time(bad) is None, bad


def test_a_control_chart_drags_along_x_and_its_lines_take_clicks():
    from ui.page import as_control

    fig = by_agent()
    as_control(fig)
    assert (fig.layout.dragmode, fig.layout.selectdirection) == ("select", "h")
    assert fig.layout.xaxis.fixedrange and fig.layout.yaxis.fixedrange  # nothing pans or zooms
    for trace in fig.data:  # invisible markers: Plotly selects only points with markers
        assert trace.mode == "lines+markers" and trace.marker.opacity == 0
