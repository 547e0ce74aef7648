"""Figure builders tested directly: traces, colors, axis titles and values come from the input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ui import figures as FG

ROOT = Path(__file__).resolve().parents[1]
T0 = pd.Timestamp("2026-02-10 00:00", tz="UTC")
A, B = "did:cf:aaaaaaaaaaaaaaaaaaaaaaaa", "did:cf:bbbbbbbbbbbbbbbbbbbbbbbb"
LABELS = {A: "alpha", B: "did:cf:bbbb…bbbb"}


def buckets(rows):
    return pd.DataFrame(
        [{"bucket": T0 + pd.Timedelta(minutes=5 * i), "key": k, **v} for i, k, v in rows]
    )


def x_of(trace):
    return [pd.Timestamp(x) for x in trace.x]


def legend(fig):
    """The series in legend order (legendrank), whatever order they are drawn in."""
    shown = [t for t in fig.data if t.showlegend is not False]
    return sorted(shown, key=lambda t: t.legendrank if t.legendrank is not None else 1000)


def test_modes_have_fixed_distinct_colors():
    colors = [FG.mode_color(m) for m in FG.MODE_ORDER]
    assert len(set(colors)) == 4
    assert FG.mode_color("think") == FG.MODE_COLORS["think"]
    # An unknown mode gets a color none of the contract's modes has, the same in every process
    # (a str hash would change with PYTHONHASHSEED from one server start to the next).
    assert FG.mode_color("surprise") not in FG.MODE_COLORS.values()
    # A process with another hash seed than this one's (random unless the environment fixes it)
    # gives every unknown mode the same color: 40 modes, so a seed-dependent pick of one of the
    # few extra colors cannot agree by chance. One process: each costs a Streamlit import.
    other = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    modes = ["surprise", "x", *(f"mode-{i}" for i in range(38))]
    code = f"from ui import figures as FG; print([FG.mode_color(m) for m in {modes!r}])"
    seen = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONHASHSEED": other},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert seen == f"{[FG.mode_color(m) for m in modes]}\n"
    assert FG.mode_sort(["unknown", "zeta", "think", "housekeeping"]) == [
        "think",
        "housekeeping",
        "unknown",
        "zeta",
    ]


def test_cycles_over_time_by_mode_stacks_bars_in_mode_colors():
    df = buckets(
        [
            (0, "think", {"cycles": 3}),
            (0, "reflection", {"cycles": 1}),
            (1, "think", {"cycles": 4}),
        ]
    )
    fig = FG.cycles_over_time(df, by="mode", bucket="5 min")
    assert [t.name for t in fig.data] == ["think", "reflection"]
    assert all(t.type == "bar" for t in fig.data)
    assert fig.data[0].marker.color == FG.MODE_COLORS["think"]
    assert list(fig.data[0].y) == [3, 4]
    assert x_of(fig.data[0]) == [pd.Timestamp("2026-02-10 00:00"), pd.Timestamp("2026-02-10 00:05")]
    assert fig.layout.barmode == "stack"
    assert fig.layout.xaxis.title.text == "Time (UTC)"
    assert fig.layout.yaxis.title.text == "Cycles per 5 min"


def test_cycles_over_time_by_agent_draws_a_line_per_agent_with_labels():
    df = buckets([(0, A, {"cycles": 2}), (0, B, {"cycles": 5}), (1, A, {"cycles": 1})])
    fig = FG.cycles_over_time(df, by="agent", labels=LABELS)
    # the busiest agent first (legend order is rank order)
    b, a = legend(fig)
    assert [b.name, a.name] == ["did:cf:bbbb…bbbb", "alpha"]
    assert list(a.y) == [2, 1] and list(b.y) == [5]
    # the full DID on hover, with the count in words
    assert [list(c) for c in a.customdata] == [[A, "2 cycles"], [A, "1 cycle"]]
    assert a.line.color != b.line.color


def test_mode_mix_is_normalised_to_percent():
    df = buckets([(0, "think", {"cycles": 3}), (0, "housekeeping", {"cycles": 1})])
    fig = FG.mode_mix_over_time(df)
    assert fig.layout.barnorm == "percent" and fig.layout.barmode == "stack"
    assert fig.data[1].marker.color == FG.MODE_COLORS["housekeeping"]
    assert fig.layout.yaxis.title.text == "Share of cycles (%)"


def test_rate_over_time_as_percent_and_per_cycle():
    df = buckets(
        [
            (0, "think", {"cycles": 40, "error_rate": 0.25, "errors_per_cycle": 0.5}),
            (1, "think", {"cycles": 20, "error_rate": 0.0, "errors_per_cycle": 0.0}),
        ]
    )
    fig = FG.rate_over_time(df, metric="error_rate", by="mode")
    assert list(fig.data[0].y) == [25.0, 0.0]
    assert fig.data[0].line.color == FG.MODE_COLORS["think"]
    assert fig.layout.yaxis.title.text == "Error rate (% of cycles)"
    fig = FG.rate_over_time(df, metric="errors_per_cycle", by="mode")
    assert list(fig.data[0].y) == [0.5, 0.0]
    assert fig.layout.yaxis.title.text == "Errors per cycle"


def test_agent_strip_colors_by_mode_and_rings_errors():
    pts = pd.DataFrame(
        {
            "ts": [T0, T0 + pd.Timedelta(minutes=1), T0 + pd.Timedelta(minutes=2)],
            "agent": [A, A, B],
            "mode": ["think", "reflection", "think"],
            "duration_ms": [1000, 50000, None],
            "tool_calls": [1, 2, None],
            "errors": [0, 2, None],
        }
    )
    fig = FG.agent_strip(pts, labels=LABELS)
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {"think", "reflection", "errors"}
    assert by_name["think"].marker.color == FG.MODE_COLORS["think"]
    assert list(by_name["think"].y) == ["alpha", "did:cf:bbbb…bbbb"]
    assert list(by_name["errors"].y) == ["alpha"]
    assert by_name["errors"].marker.line.color == FG.ERROR_COLOR
    # one dot size for every mode (a long cycle's dot never hides a short one's), the most
    # common mode drawn first so the rarer ones lie on top; the duration is in the hover
    assert by_name["reflection"].marker.size == by_name["think"].marker.size == FG.DOT_SIZE
    assert [t.name for t in fig.data][:2] == ["think", "reflection"]
    assert list(by_name["reflection"].customdata[0])[1] == 50.0
    assert fig.layout.xaxis.title.text == "Time (UTC)"


def test_heatmap_fills_empty_buckets_with_zero():
    df = buckets([(0, A, {"cycles": 2}), (3, A, {"cycles": 1}), (3, B, {"cycles": 4})])
    fig = FG.heatmap(df, labels=LABELS, bucket_s=300)
    h = fig.data[0]
    assert h.type == "heatmap"
    z = np.asarray(h.z, dtype=float)
    assert z.shape == (2, 4)  # two agents, four 5-minute buckets (two of them empty)
    assert z.sum() == 7
    # the busiest agent (B, 4 cycles) is the top row; plotly draws the first row at the bottom
    assert list(h.y) == ["alpha", "did:cf:bbbb…bbbb"]
    assert list(z[0]) == [2, 0, 0, 1]


def test_mode_share_donut():
    df = pd.DataFrame({"mode": ["reflection", "think"], "cycles": [1, 3], "share": [0.25, 0.75]})
    fig = FG.mode_share(df)
    pie = fig.data[0]
    assert list(pie.labels) == ["think", "reflection"]
    assert list(pie.values) == [3, 1]
    assert list(pie.marker.colors) == [FG.MODE_COLORS["think"], FG.MODE_COLORS["reflection"]]


def test_mode_share_by_agent():
    df = pd.DataFrame(
        {
            "agent": [A, A, B],
            "mode": ["think", "reflection", "think"],
            "cycles": [3, 1, 2],
            "share": [0.75, 0.25, 1.0],
        }
    )
    fig = FG.mode_share_by_agent(df, labels=LABELS)
    think = next(t for t in fig.data if t.name == "think")
    assert list(think.x) == [75.0, 100.0]
    assert think.orientation == "h" and think.marker.color == FG.MODE_COLORS["think"]
    assert fig.layout.barmode == "stack"


def test_duration_by_mode_in_seconds_on_a_log_axis():
    pts = pd.DataFrame(
        {"mode": ["think", "think", "housekeeping"], "duration_ms": [1000, 3000, None]}
    )
    fig = FG.duration_by_mode(pts)
    assert [t.name for t in fig.data] == ["think"]
    assert list(fig.data[0].y) == [1.0, 3.0]
    assert fig.layout.yaxis.type == "log"


def test_tools_by_mode():
    df = pd.DataFrame({"mode": ["think", "reflection"], "avg_tools": [3.5, 0.9], "tools": [7, 1]})
    fig = FG.tools_by_mode(df)
    assert list(fig.data[0].y) == [3.5, 0.9]
    assert list(fig.data[0].marker.color) == [FG.MODE_COLORS["think"], FG.MODE_COLORS["reflection"]]


def test_top_error_agents_most_at_the_top():
    df = pd.DataFrame(
        {"agent": [A, B], "cycles": [10, 20], "errors": [5, 2], "error_rate": [0.3, 0.1]}
    )
    fig = FG.top_error_agents(df, labels=LABELS)
    bar = fig.data[0]
    assert list(bar.x) == [2, 5]  # plotly draws bottom-up, so the worst is last
    assert list(bar.y) == ["did:cf:bbbb…bbbb", "alpha"]
    assert bar.marker.color == FG.ERROR_COLOR


def test_events_per_hour_with_usual_rate():
    df = pd.DataFrame(
        {"hour": [T0, T0 + pd.Timedelta(hours=1)], "events": [100, 40]},
    )
    fig = FG.events_per_hour(df, usual=90.0)
    assert list(fig.data[0].y) == [100, 40]
    assert list(fig.data[1].y) == [90.0, 90.0] and fig.data[1].line.dash == "dash"
    assert fig.layout.xaxis.title.text == "Time (UTC)"


def test_ingest_lag_lines():
    df = pd.DataFrame({"bucket": [T0], "events": [5], "lag_p50_s": [2.5], "lag_p95_s": [9.0]})
    fig = FG.ingest_lag(df)
    assert [t.name for t in fig.data] == ["p50", "p95"]
    assert list(fig.data[1].y) == [9.0]
    assert fig.layout.yaxis.title.text == "Lag (s)"


@pytest.mark.parametrize(
    "build",
    [
        lambda: FG.cycles_over_time(pd.DataFrame()),
        lambda: FG.mode_mix_over_time(pd.DataFrame()),
        lambda: FG.rate_over_time(pd.DataFrame()),
        lambda: FG.agent_strip(pd.DataFrame()),
        lambda: FG.heatmap(pd.DataFrame()),
        lambda: FG.mode_share(pd.DataFrame()),
        lambda: FG.mode_share_by_agent(pd.DataFrame()),
        lambda: FG.duration_by_mode(pd.DataFrame({"mode": [], "duration_ms": []})),
        lambda: FG.tools_by_mode(pd.DataFrame()),
        lambda: FG.top_error_agents(pd.DataFrame()),
        lambda: FG.events_per_hour(pd.DataFrame()),
        lambda: FG.ingest_lag(pd.DataFrame()),
    ],
)
def test_empty_input_says_no_data(build):
    fig = build()
    assert not fig.data
    assert fig.layout.annotations[0].text == "No data"


# -- time zones ------------------------------------------------------------------------------

# Expected local times by hand (no zoneinfo): T0 is 2026-02-10 00:00 UTC. Kolkata is UTC+05:30 all
# year; New York is on standard time (UTC-5) in February.
KOLKATA = pd.Timedelta(hours=5, minutes=30)
NEW_YORK = pd.Timedelta(hours=-5)


def _naive(t: pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(t.strftime("%Y-%m-%d %H:%M:%S"))


@pytest.mark.parametrize("tz, offset", [("Asia/Kolkata", KOLKATA), ("America/New_York", NEW_YORK)])
def test_cycles_over_time_in_a_zone_shows_local_times_and_names_the_zone(tz, offset):
    df = buckets([(0, "think", {"cycles": 3}), (1, "think", {"cycles": 4})])
    fig = FG.cycles_over_time(df, by="mode", bucket="5 min", tz=tz)
    expected = [_naive(T0) + offset, _naive(T0) + offset + pd.Timedelta(minutes=5)]
    assert x_of(fig.data[0]) == expected
    assert fig.layout.xaxis.title.text == f"Time ({tz})"
    assert f"%{{x|%Y-%m-%d %H:%M}} {tz}" in fig.data[0].hovertemplate
    assert "UTC" not in fig.data[0].hovertemplate
    # the default is unchanged: naive UTC, "Time (UTC)"
    default = FG.cycles_over_time(df, by="mode")
    assert x_of(default.data[0])[0] == _naive(T0)
    assert default.layout.xaxis.title.text == "Time (UTC)"


TZ = "Asia/Kolkata"


@pytest.mark.parametrize(
    "build, column",
    [
        (lambda d, tz: FG.cycles_over_time(d, by="agent", tz=tz), "bucket"),
        (lambda d, tz: FG.mode_mix_over_time(d, tz=tz), "bucket"),
        (lambda d, tz: FG.rate_over_time(d, by="mode", tz=tz), "bucket"),
        (lambda d, tz: FG.agent_strip(d, tz=tz), "ts"),
        (lambda d, tz: FG.heatmap(d, tz=tz), "bucket"),
        (lambda d, tz: FG.events_per_hour(d, tz=tz), "hour"),
        (lambda d, tz: FG.ingest_lag(d, tz=tz), "bucket"),
    ],
)
def test_every_time_chart_follows_the_zone(build, column):
    t = [T0, T0 + pd.Timedelta(hours=1)]
    df = pd.DataFrame(
        {
            column: t,
            "key": ["think", "think"],
            "agent": [A, A],
            "mode": ["think", "think"],
            "cycles": [2, 3],
            "error_rate": [0.5, 0.0],
            "events": [10, 20],
            "lag_p50_s": [1.0, 2.0],
            "lag_p95_s": [3.0, 4.0],
            "duration_ms": [1000, 2000],
            "tool_calls": [1, 1],
            "errors": [0, 0],
        }
    )
    fig = build(df, TZ)
    assert fig.layout.xaxis.title.text == f"Time ({TZ})"
    xs = sorted({pd.Timestamp(x) for trace in fig.data for x in trace.x})
    assert xs == [_naive(T0) + KOLKATA, _naive(T0) + KOLKATA + pd.Timedelta(hours=1)]
    assert all(TZ in trace.hovertemplate for trace in fig.data if trace.hovertemplate)


def test_heatmap_in_a_zone_keeps_utc_buckets_and_fills_gaps():
    df = buckets([(0, A, {"cycles": 2}), (3, A, {"cycles": 1})])
    fig = FG.heatmap(df, bucket_s=300, start=T0.to_pydatetime(), tz=TZ)
    h = fig.data[0]
    assert [pd.Timestamp(x) for x in h.x] == [
        _naive(T0) + KOLKATA + pd.Timedelta(minutes=5 * i) for i in range(4)
    ]
    assert list(np.asarray(h.z, dtype=float)[0]) == [2, 0, 0, 1]


# -- honest axes, gaps, groups ----------------------------------------------------------------


def _agent_rates(minutes: list[int]) -> pd.DataFrame:
    """One agent with cycles in the 5-minute buckets at ``minutes`` only."""
    return pd.DataFrame(
        {
            "bucket": [T0 + pd.Timedelta(minutes=m) for m in minutes],
            "kind": "agent",
            "key": A,
            "cycles": 20,
            "error_cycles": 10,
            "errors": 10,
            "error_rate": 0.5,
            "errors_per_cycle": 0.5,
            "group_agents": 1,
        }
    )


def test_a_per_agent_rate_line_breaks_across_a_40_minute_silence():
    df = _agent_rates([0, 5, 50, 55])  # silent from 00:10 to 00:50
    fig = FG.rate_over_time(df, by="agent", bucket_s=300, labels=LABELS)
    t = fig.data[0]
    assert t.connectgaps is False
    y = np.asarray(t.y, dtype=float)
    x = x_of(t)
    assert len(x) == 12  # every 5-minute bucket from 00:00 to 00:55 is on the line
    silent = [i for i, xi in enumerate(x) if pd.Timestamp("2026-02-10 00:10") <= xi
              < pd.Timestamp("2026-02-10 00:50")]  # fmt: skip
    assert len(silent) == 8 and np.isnan(y[silent]).all()  # a break, not a bridge, not a zero
    assert y[0] == 50.0 and y[-1] == 50.0


def test_a_per_agent_count_line_drops_to_zero_in_a_silence():
    df = _agent_rates([0, 5, 50, 55])
    fig = FG.cycles_over_time(df, by="agent", bucket_s=300, labels=LABELS)
    y = list(fig.data[0].y)
    assert y == [20, 20, 0, 0, 0, 0, 0, 0, 0, 0, 20, 20]
    assert fig.data[0].connectgaps is False


def test_ingest_lag_breaks_where_no_events_landed():
    df = pd.DataFrame(
        {
            "bucket": [T0, T0 + pd.Timedelta(minutes=30)],
            "events": [5, 3],
            "lag_p50_s": [2.0, 3.0],
            "lag_p95_s": [9.0, 8.0],
            "lag_p99_s": [12.0, 11.0],
        }
    )
    fig = FG.ingest_lag(df, bucket_s=600)
    assert [t.name for t in fig.data] == ["p50", "p95", "p99"]
    y = np.asarray(fig.data[2].y, dtype=float)
    assert y[0] == 12.0 and np.isnan(y[1]) and np.isnan(y[2]) and y[3] == 11.0


@pytest.mark.parametrize(
    "build",
    [
        lambda df, **kw: FG.cycles_over_time(df, by="mode", **kw),
        lambda df, **kw: FG.cycles_over_time(df, by="agent", **kw),
        lambda df, **kw: FG.rate_over_time(df, by="agent", **kw),
        lambda df, **kw: FG.heatmap(df, **kw),
        lambda df, **kw: FG.mode_mix_over_time(df, start=kw["start"], end=kw["end"]),
    ],
)
def test_a_seven_day_range_spans_seven_days_with_two_days_of_data(build):
    end = T0 + pd.Timedelta(days=2)
    start = end - pd.Timedelta(days=7)
    df = _agent_rates([0, 60 * 24, 60 * 47])  # data on two days only
    fig = build(df, bucket_s=3600, start=start, end=end)
    lo, hi = (pd.Timestamp(v) for v in fig.layout.xaxis.range)
    assert hi - lo == pd.Timedelta(days=7)
    assert lo == pd.Timestamp("2026-02-05 00:00") and hi == pd.Timestamp("2026-02-12 00:00")


def test_events_per_hour_axis_spans_the_range_and_empty_hours_are_zero():
    df = pd.DataFrame({"hour": [T0 + pd.Timedelta(hours=2)], "events": [7]})
    fig = FG.events_per_hour(df, start=T0, end=T0 + pd.Timedelta(hours=4))
    assert list(fig.data[0].y) == [0, 0, 7, 0]
    lo, hi = (pd.Timestamp(v) for v in fig.layout.xaxis.range)
    assert hi - lo == pd.Timedelta(hours=4)


def test_top_agents_others_and_unknown_are_separate_named_series():
    rows = []
    for kind, key, n, size in [
        ("agent", A, 9, 1),
        ("agent", B, 4, 1),
        ("others", "others", 30, 4998),
        ("unknown", "unknown", 2, 1),
    ]:
        rows.append({"bucket": T0, "kind": kind, "key": key, "cycles": n, "group_agents": size})
    df = pd.DataFrame(rows)
    fig = FG.cycles_over_time(df, by="agent", labels=LABELS)
    series = legend(fig)
    assert [t.name for t in series] == [
        "alpha",
        "did:cf:bbbb…bbbb",
        "others (4,998 agents)",
        "unknown (no agent)",
    ]
    assert series[2].line.color == FG.OTHERS_COLOR
    assert series[3].line.color == FG.UNKNOWN_COLOR
    heat = FG.heatmap(df, labels=LABELS)
    assert list(heat.data[0].y)[0] == "unknown (no agent)"  # the bottom row, apart
    assert list(heat.data[0].y)[-1] == "alpha"  # the busiest agent on top


def test_an_agent_named_others_stays_an_agent():
    df = pd.DataFrame(
        [
            {"bucket": T0, "kind": "agent", "key": "others", "cycles": 5, "group_agents": 1},
            {"bucket": T0, "kind": "others", "key": "others", "cycles": 3, "group_agents": 7},
        ]
    )
    fig = FG.cycles_over_time(df, by="agent")
    assert [t.name for t in legend(fig)] == ["others", "others (7 agents)"]
    assert [list(t.y) for t in legend(fig)] == [[5], [3]]


def test_event_strings_reach_plotly_escaped():
    evil = '<a href="http://x">click</a><br>%{x}'
    df = pd.DataFrame([{"bucket": T0, "kind": "agent", "key": evil, "cycles": 1}])
    fig = FG.cycles_over_time(df, by="agent")
    assert "<a" not in fig.data[0].name and "&lt;a" in fig.data[0].name
    assert "<a" not in fig.data[0].customdata[0]
    assert evil not in fig.data[0].hovertemplate
