"""The figure rules (issue 20, docs/charts.md), checked on each figure's JSON as the browser gets
it: colours per plot, the cycles behind a rate, the every-cycle strip's density, the partial
bucket, log-axis ticks, trace meta; and the wording the tiles use (plurals, zero deltas)."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pandas as pd
import pytest

from ui import figures as FG
from ui import fmt

T0 = pd.Timestamp("2026-02-10 00:00", tz="UTC")


def agents_frame(
    n_agents: int, *, top: int, buckets: int = 24, bucket_s: int = 3600, cycles: int = 40
) -> pd.DataFrame:
    """A per-agent over-time frame as the planner folds it (``TopAgents``): the ``top`` agents
    by name, the rest as one ``others`` row per bucket, and ``unknown`` apart."""
    rng = np.random.default_rng(n_agents)
    named = min(top, n_agents)
    rows = []
    for i in range(buckets):
        b = T0 + pd.Timedelta(seconds=bucket_s * i)
        for a in range(named):
            n = int(cycles + rng.integers(0, 10))
            e = int(rng.integers(0, 4))
            rows.append(("agent", f"did:cf:agent{a:05d}", b, n, e, e, 1))
        if n_agents > named:
            n = cycles * (n_agents - named)
            rows.append(("others", "others", b, n, n // 20, n // 20, n_agents - named))
        rows.append(("unknown", "unknown", b, 3, 0, 0, 1))
    df = pd.DataFrame(
        rows,
        columns=["kind", "key", "bucket", "cycles", "error_cycles", "errors", "group_agents"],
    )
    df["error_rate"] = df["error_cycles"] / df["cycles"]
    df["errors_per_cycle"] = df["errors"] / df["cycles"]
    return df


def as_json(fig) -> dict:
    """The figure as the browser receives it (its JSON), typed arrays decoded to lists."""
    return decode(json.loads(fig.to_json()))


def decode(v):
    """Plotly's typed arrays (``{"dtype", "bdata"[, "shape"]}``) as lists, recursively."""
    if isinstance(v, dict):
        if set(v) >= {"dtype", "bdata"}:
            a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
            if "shape" in v:
                a = a.reshape([int(n) for n in str(v["shape"]).split(",")])
            return a.tolist()
        return {k: decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [decode(x) for x in v]
    return v


def coloured_series(fig) -> set[str]:
    """The distinct non-grey colours of a plot's lines (a series' partial segment shares its
    series' colour; rings of too-thin buckets are grey)."""
    out = set()
    for t in as_json(fig)["data"]:
        color = (t.get("line") or {}).get("color")
        if "lines" in str(t.get("mode", "")) and color and not FG.is_grey(color):
            out.add(color)
    return out


PER_AGENT = {
    "cycles per agent": lambda df, **kw: FG.cycles_over_time(df, by="agent", **kw),
    "error rate per agent": lambda df, **kw: FG.rate_over_time(df, by="agent", **kw),
    "errors per cycle per agent": lambda df, **kw: FG.rate_over_time(
        df, by="agent", metric="errors_per_cycle", **kw
    ),
}


@pytest.mark.parametrize("chart", list(PER_AGENT))
@pytest.mark.parametrize("n_agents, top", [(12, 10), (12, 50), (5000, 10), (5000, 50)])
def test_no_per_agent_plot_has_more_than_six_coloured_lines(chart, n_agents, top):
    df = agents_frame(n_agents, top=top)
    fig = PER_AGENT[chart](df, bucket_s=3600, start=T0, end=T0 + pd.Timedelta(hours=24))
    coloured = coloured_series(fig)
    assert 1 <= len(coloured) <= 6 and len(coloured) <= FG.MAX_COLORED
    # every named agent is still there, by name, grey past the coloured few
    names = {t["name"] for t in as_json(fig)["data"]}
    assert {f"did:cf:agent{a:05d}" for a in range(min(top, n_agents))} <= names
    if n_agents > top:
        assert f"others ({n_agents - top:,} agents)" in names


def test_the_coloured_agents_of_a_rate_are_those_with_most_errors():
    df = agents_frame(12, top=10)
    worst = "did:cf:agent00007"
    df.loc[df["key"] == worst, ["errors", "error_cycles"]] = 30
    fig = FG.rate_over_time(df, by="agent", bucket_s=3600)
    by_name = {t.name: t for t in fig.data if t.showlegend is not False}
    assert not FG.is_grey(by_name[worst].line.color)
    assert by_name[worst].legendrank == 0  # worst first in the legend


# -- rates: buckets that hold enough cycles, thin ones shown as such ----------------------------


def one_series(counts: list[int], rates: list[float], bucket_s: int = 300) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "bucket": [T0 + pd.Timedelta(seconds=bucket_s * i) for i in range(len(counts))],
            "key": "think",
            "cycles": counts,
            "error_rate": rates,
            "errors_per_cycle": rates,
        }
    )


def test_a_bucket_of_one_cycle_is_a_grey_ring_off_the_line_never_a_jump_to_100_percent():
    df = one_series([40, 1, 40, 3, 40], [0.05, 1.0, 0.025, 1.0, 0.05])
    fig = as_json(FG.rate_over_time(df, by="mode", bucket_s=300))
    line = next(
        t for t in fig["data"] if t["meta"].get("mode") == "think" and "thin" not in t["meta"]
    )
    y = np.asarray(line["y"], dtype=float)
    assert not (y[~np.isnan(y)] > 10).any()  # nothing on the line near 100 %
    assert np.isnan(y[1]) and np.isnan(y[3])
    thin = [t for t in fig["data"] if t["meta"].get("thin")]
    assert len(thin) == 1
    t = thin[0]
    assert t["marker"]["symbol"] == "circle-open" and FG.is_grey(t["marker"]["color"])
    assert list(t["y"]) == [100.0, 100.0]
    assert [c[1] for c in t["customdata"]] == [
        "only 1 cycle: too few to judge",
        "only 3 cycles: too few to judge",
    ]


@pytest.mark.parametrize("chart", ["error rate per agent", "errors per cycle per agent"])
def test_every_point_on_a_rate_line_stands_for_enough_cycles(chart):
    df = agents_frame(12, top=10, cycles=2)  # 2-11 cycles per bucket: many too thin
    fig = as_json(PER_AGENT[chart](df, bucket_s=3600))
    cycles = df.set_index(["key", "bucket"])["cycles"]
    for t in fig["data"]:
        meta = t["meta"]
        if meta.get("thin") or meta.get("partial") or meta.get("group") in ("others", "unknown"):
            continue
        for x, y in zip(t["x"], t["y"], strict=True):
            if y is not None and not (isinstance(y, float) and math.isnan(y)):
                n = cycles[(meta["agent"], pd.Timestamp(x, tz="UTC"))]
                assert n >= FG.THIN_CYCLES, (meta["agent"], x, n)
    assert any(t["meta"].get("thin") for t in fig["data"])


def test_the_rate_bucket_is_the_narrowest_whose_median_bucket_holds_enough_cycles():
    widths = (300, 600, 900, 1800, 3600, 7200)
    day = {"start": T0, "end": T0 + pd.Timedelta(days=1)}
    four_per_5min = one_series([4] * 288, [0.0] * 288)
    # 4 per 5 min: 8 per 10, 12 per 15, 24 per 30 min: the first to hold 20
    assert FG.rate_bucket_s(four_per_5min, base_s=300, widths=widths, **day) == 1800
    busy = one_series([25] * 288, [0.0] * 288)
    assert FG.rate_bucket_s(busy, base_s=300, widths=widths, **day) == 300
    # never enough: the widest that keeps RATE_MIN_BUCKETS (24) buckets in the window: 1 h a day
    sparse = one_series([1] * 288, [0.0] * 288)
    assert FG.rate_bucket_s(sparse, base_s=300, widths=widths, **day) == 3600


def test_the_rate_bucket_is_judged_by_the_named_agents_not_by_others():
    df = agents_frame(5000, top=10, cycles=3, buckets=288, bucket_s=300)  # others: ~15,000
    b = FG.rate_bucket_s(
        df, base_s=300, widths=(300, 900, 3600, 7200), start=T0, end=T0 + pd.Timedelta(days=1)
    )
    assert b > 300  # 3-12 cycles per named agent per 5 min is too few; others alone would pass


# -- the every-cycle strip ----------------------------------------------------------------------


def points(n_agents: int, per_agent: int, hours: float = 24) -> pd.DataFrame:
    rng = np.random.default_rng(per_agent)
    rows = []
    for a in range(n_agents):
        for t in np.sort(rng.uniform(0, hours * 3600, per_agent)):
            mode = rng.choice(["think", "think", "think", "reflection", "housekeeping"])
            rows.append((T0 + pd.Timedelta(seconds=float(t)), f"did:cf:a{a:02d}", mode, 1000, 1, 0))
    return pd.DataFrame(
        rows, columns=["ts", "agent", "mode", "duration_ms", "tool_calls", "errors"]
    )


def test_the_strip_draws_a_dot_per_cycle_while_they_stand_apart():
    pts = points(12, 15)
    end = T0 + pd.Timedelta(hours=24)
    assert not FG.strip_is_dense(pts, start=T0, end=end)
    fig = as_json(FG.agent_strip(pts, start=T0, end=end, bucket_s=300))
    assert {t["type"] for t in fig["data"]} == {"scattergl"}
    sizes = {t["marker"]["size"] for t in fig["data"] if t["name"] != "errors"}
    assert sizes == {FG.DOT_SIZE}  # no mode's dots are bigger than another's
    # drawn most common mode first: the rarer modes lie on top
    counts = pts["mode"].value_counts()
    drawn = [t["name"] for t in fig["data"] if t["name"] != "errors"]
    assert drawn == sorted(drawn, key=lambda m: -counts[m])


def test_the_strip_becomes_a_density_heatmap_when_its_dots_would_pile_up():
    pts = points(12, 1000)  # a day of cycles every ~90 s: a band of dots
    end = T0 + pd.Timedelta(hours=24)
    assert FG.strip_overlap(pts, start=T0, end=end) > FG.STRIP_OVERLAP
    fig = as_json(FG.agent_strip(pts, start=T0, end=end, bucket_s=900))
    assert [t["type"] for t in fig["data"]] == ["heatmap"]
    assert "density" in fig["layout"]["title"]["text"]
    h = fig["data"][0]
    assert sum(map(sum, h["z"])) == len(pts)  # every cycle counted once
    assert h["meta"]["bucket_s"] == 900
    # the same cycles over one hour stand apart again
    hour = pts[pts["ts"] < T0 + pd.Timedelta(hours=1)]
    assert not FG.strip_is_dense(hour, start=T0, end=T0 + pd.Timedelta(hours=1))


# -- the partial bucket -------------------------------------------------------------------------


def test_the_bucket_the_window_end_cuts_short_is_marked_partial_not_drawn_as_a_dip():
    end = T0 + pd.Timedelta(hours=3, minutes=20)  # the 03:00 bucket holds 20 minutes
    modes = pd.DataFrame(
        {
            "bucket": [T0 + pd.Timedelta(hours=h) for h in range(4)],
            "key": "think",
            "cycles": [60, 60, 60, 20],
        }  # fmt: skip
    )
    bars = as_json(FG.cycles_over_time(modes, by="mode", bucket_s=3600, start=T0, end=end))
    shapes = bars["data"][0]["marker"]["pattern"]["shape"]
    assert list(shapes) == ["", "", "", FG.PARTIAL_PATTERN]
    assert bars["data"][0]["customdata"][-1] == "20 cycles<br>partial: 03:20 so far"

    per_agent = agents_frame(3, top=10, buckets=4)
    fig = as_json(FG.cycles_over_time(per_agent, by="agent", bucket_s=3600, start=T0, end=end))
    main = [t for t in fig["data"] if not t["meta"].get("partial")]
    part = [t for t in fig["data"] if t["meta"].get("partial")]
    assert len(part) == len(main)  # every series ends in a dotted segment
    assert all(np.isnan(float(t["y"][-1])) for t in main)  # the line stops before it
    assert all(t["line"]["dash"] == "dot" for t in part)
    assert all("partial: 03:20 so far" in t["customdata"][-1] for t in part)

    hourly = pd.DataFrame({"hour": [T0 + pd.Timedelta(hours=h) for h in range(4)],
                           "events": [500, 480, 510, 90]})  # fmt: skip
    ev = as_json(FG.events_per_hour(hourly, start=T0, end=end))
    assert list(ev["data"][0]["marker"]["pattern"]["shape"]) == ["", "", "", FG.PARTIAL_PATTERN]
    assert "partial: 03:20 so far" in ev["data"][0]["customdata"][-1]


def test_a_window_ending_on_a_bucket_edge_has_no_partial_bucket():
    end = T0 + pd.Timedelta(hours=4)
    assert FG.partial_bucket(end, 3600) is None
    hourly = pd.DataFrame({"hour": [T0 + pd.Timedelta(hours=h) for h in range(4)],
                           "events": [500, 480, 510, 90]})  # fmt: skip
    ev = as_json(FG.events_per_hour(hourly, start=T0, end=end))
    assert set(ev["data"][0]["marker"]["pattern"]["shape"]) == {""}


# -- axes, labels, meta -------------------------------------------------------------------------


@pytest.mark.parametrize("spread", [(0.004, 2.0), (0.9, 1400.0), (30.0, 30.0)])
def test_log_axes_are_labelled_at_powers_of_ten_only(spread):
    lo, hi = spread
    pts = pd.DataFrame({"mode": ["think"] * 50, "duration_ms": np.geomspace(lo, hi, 50) * 1000})
    axis = as_json(FG.duration_by_mode(pts))["layout"]["yaxis"]
    assert axis["type"] == "log"
    ticks = list(axis["tickvals"])
    assert ticks and all(math.isclose(math.log10(v), round(math.log10(v))) for v in ticks)
    assert ticks[0] <= lo and ticks[-1] >= hi
    assert not any(t.startswith(("2", "5")) for t in axis["ticktext"])


def test_top_erroring_agents_size_and_label_bars_by_the_same_quantity():
    # more errors at a lower rate: the bar and its text both say errors
    df = pd.DataFrame(
        {
            "agent": ["did:cf:many", "did:cf:few"],
            "errors": [40, 10],
            "error_rate": [0.019, 0.025],
            "cycles": [2100, 400],
        }
    )
    bar = as_json(FG.top_error_agents(df))["data"][0]
    by_agent = dict(zip(bar["y"], zip(bar["x"], bar["text"], strict=True), strict=True))
    assert by_agent["did:cf:many"] == (40, "40 errors")
    assert by_agent["did:cf:few"] == (10, "10 errors")
    layout = as_json(FG.top_error_agents(df))["layout"]
    assert "errors" in layout["title"]["text"] and "Errors" in layout["xaxis"]["title"]["text"]


TIME_FIGURES = {
    "cycles by mode": lambda: FG.cycles_over_time(
        pd.DataFrame({"bucket": [T0], "key": ["think"], "cycles": [4]}), by="mode", bucket_s=300
    ),
    "cycles per agent": lambda: FG.cycles_over_time(
        agents_frame(20, top=3), by="agent", bucket_s=3600, end=T0 + pd.Timedelta(minutes=90)
    ),
    "rate per agent": lambda: FG.rate_over_time(
        agents_frame(20, top=3, cycles=3), by="agent", bucket_s=3600
    ),
    "rate by mode": lambda: FG.rate_over_time(one_series([40, 1], [0.1, 1.0]), bucket_s=300),
    "mode mix": lambda: FG.mode_mix_over_time(
        pd.DataFrame({"bucket": [T0], "key": ["think"], "cycles": [4]}), bucket_s=300
    ),
    "heatmap": lambda: FG.heatmap(agents_frame(20, top=3), bucket_s=3600),
    "events per hour": lambda: FG.events_per_hour(
        pd.DataFrame({"hour": [T0], "events": [4]}), usual=3.0
    ),
    "ingest lag": lambda: FG.ingest_lag(
        pd.DataFrame({"bucket": [T0], "events": [1], "lag_p50_s": [1.0], "lag_p95_s": [2.0]}),
        bucket_s=600,
    ),
}


@pytest.mark.parametrize("name", list(TIME_FIGURES))
def test_every_trace_of_a_time_bucketed_figure_says_what_it_stands_for(name):
    fig = as_json(TIME_FIGURES[name]())
    assert fig["data"]
    for t in fig["data"]:
        meta = t["meta"]
        assert {"agent", "mode", "bucket_s"} <= set(meta), t["name"]
        assert isinstance(meta["bucket_s"], int) and meta["bucket_s"] > 0
        if meta.get("group") == "others":
            assert meta["agent"] is None
    if name == "cycles per agent":
        agents = {t["meta"]["agent"] for t in fig["data"]}
        assert {"did:cf:agent00000", "unknown", None} <= agents
    if name == "cycles by mode":
        assert fig["data"][0]["meta"] == {"agent": None, "mode": "think", "bucket_s": 300}


# -- wording ------------------------------------------------------------------------------------


def test_counts_read_singular_or_plural():
    assert fmt.plural(1, "cycle") == "1 cycle"
    assert fmt.plural(0, "cycle") == "0 cycles"
    assert fmt.plural(1234, "cycle") == "1,234 cycles"
    assert fmt.plural(np.int64(1), "agent") == "1 agent"
    assert fmt.plural(None, "cycle") == fmt.NO_DATA
    assert FG.counts_text([1, 2.0]) == ["1 cycle", "2 cycles"]
    heat = as_json(FG.heatmap(pd.DataFrame({"bucket": [T0], "key": ["did:cf:a"], "cycles": [1]})))
    assert heat["data"][0]["customdata"][0][0][1] == "1 cycle"


@pytest.mark.parametrize(
    "cur, prev, kind",
    [
        (100.04, 100.0, "relative"),
        (99.97, 100.0, "relative"),
        (0.03004, 0.03, "points"),
        (5, 5, "relative"),
    ],  # fmt: skip
)
def test_a_change_that_rounds_to_zero_shows_no_arrow(cur, prev, kind):
    delta = fmt.change(cur, prev, kind=kind)
    assert delta is not None and delta.startswith("±0.0") and "+" not in delta
    assert fmt.neutral(delta)
    assert fmt.delta_look(delta, "inverse") == {"delta_color": "off", "delta_arrow": "off"}


def test_a_real_change_keeps_its_arrow_and_none_to_compare_has_none():
    assert fmt.change(110, 100) == "+10.0%"
    assert fmt.delta_look("+10.0%", "inverse") == {"delta_color": "inverse", "delta_arrow": "auto"}
    assert fmt.change(5, None) is None
    assert fmt.delta_look(None) == {"delta_color": "off", "delta_arrow": "off"}


def test_the_rate_bucket_holds_enough_cycles_for_every_mode_not_just_the_busiest():
    think = one_series([70] * 96, [0.0] * 96, bucket_s=900)
    house = one_series([12] * 96, [0.0] * 96, bucket_s=900).assign(key="housekeeping")
    unknown = one_series([1], [1.0], bucket_s=900).assign(key="unknown")  # too few to matter
    df = pd.concat([think, house, unknown])
    day = {"start": T0, "end": T0 + pd.Timedelta(days=1)}
    b = FG.rate_bucket_s(df, base_s=900, widths=(900, 1800, 3600), **day)
    assert b == 1800  # housekeeping: 12 per 15 min, 24 per 30 min


def test_others_that_would_flatten_the_named_agents_start_hidden_but_listed():
    df = agents_frame(5000, top=10)  # others: ~200,000 a bucket against ~50 per named agent
    fig = FG.cycles_over_time(df, by="agent", bucket_s=3600, end=T0 + pd.Timedelta(hours=24))
    others = [t for t in fig.data if (t.meta or {}).get("group") == "others"]
    assert others and all(t.visible == "legendonly" for t in others)
    assert any(t.name == "others (4,990 agents)" for t in others)  # one click shows it
    assert "hidden" in fig.layout.annotations[0].text
    # a few agents past the named ones stay drawn
    small = FG.cycles_over_time(agents_frame(12, top=10, cycles=40), by="agent", bucket_s=3600)
    assert all(t.visible is not False and t.visible != "legendonly" for t in small.data)
