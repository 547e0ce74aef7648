"""bench/team.py's helpers: the statistics and verdicts its report rests on, and the viewers'
filters (each a view the app really applies, not one it drops with a notice)."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from bench.team import (
    FLAT_MIB_PER_HOUR,
    FLAT_NOISE_MIB,
    PAGES,
    REFRESH,
    Run,
    Sample,
    memory_verdict,
    percentile,
    ratio,
    slope_per_min,
    sql_query,
    streamlit_env,
    syncs,
    times,
    viewer_specs,
)
from o11y_data.ingest import demo
from ui import filters as F


def test_percentile_is_the_nearest_rank_of_the_sorted_values():
    values = list(range(100, 0, -1))  # 100..1, unsorted on purpose
    assert percentile(values, 0.95) == 95
    assert percentile(values, 0.5) == 50
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([3, 1, 2], 1.0) == 3
    assert percentile([], 0.95) is None


def test_times_count_unanswered_runs_and_leave_them_out_of_the_percentiles():
    def run(seconds, answered=True, problems=()):
        return Run(1, "overview", REFRESH, 0.0, seconds, answered, list(problems))

    runs = [run(0.1 * i) for i in range(1, 20)] + [run(120.0, answered=False)]
    runs.append(run(0.5, problems=["exception: boom"]))
    t = times(runs)
    assert (t.runs, t.unanswered, t.with_problems) == (21, 1, 1)
    assert t.max == pytest.approx(1.9)  # the 120 s timeout is not a page time
    assert t.p95 == pytest.approx(1.8)
    assert times([]).p95 is None


def test_ratio_is_none_without_both_figures():
    assert ratio(3.0, 1.5) == 2.0
    assert ratio(None, 1.0) is None
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None


def test_slope_is_the_least_squares_fit_per_minute():
    points = [(t, 100 + 0.5 * t + (1 if t % 20 else -1)) for t in range(0, 600, 10)]
    assert slope_per_min(points) == pytest.approx(30.0, abs=0.5)  # 0.5 MiB/s
    assert slope_per_min([(5.0, 1.0), (5.0, 2.0)]) is None
    assert slope_per_min([]) is None


def test_memory_is_flat_when_only_the_warm_up_grows():
    # Up 80 MiB in the first minutes (every first visit), then noise around a level, for 30 min.
    points = [(t, 200 + min(t, 300) * 80 / 300 + (t % 7)) for t in range(0, 1800, 2)]
    m = memory_verdict(points)
    assert m.judged and m.flat
    assert m.start_mib == 200 and m.max_mib >= 280
    assert abs(m.steady_mib_per_hour) < FLAT_MIB_PER_HOUR
    assert abs(m.end_start_mib) < FLAT_NOISE_MIB


def test_a_leak_of_one_mib_a_minute_is_not_flat_over_ten_minutes_or_thirty():
    for minutes in (10, 30):
        points = [(t, 250 + t / 60) for t in range(0, minutes * 60, 2)]
        m = memory_verdict(points, min_steady_min=0)  # judged however short: the rate fails it
        assert not m.flat, minutes
        assert m.steady_mib_per_hour == pytest.approx(60.0)


def test_a_slow_leak_hidden_by_swings_fails_on_its_rate():
    # 0.5 MiB/min (30 MiB/h) under +-10 MiB of swings, over 30 minutes.
    points = [(t, 300 + t / 120 + (10 if (t // 60) % 2 else -10)) for t in range(0, 1800, 2)]
    m = memory_verdict(points)
    assert m.judged and not m.flat
    assert m.steady_mib_per_hour == pytest.approx(30.0, abs=6)


def test_a_short_run_gets_no_memory_verdict():
    points = [(t, 250.0) for t in range(0, 600, 2)]  # perfectly flat, but 7.5 steady minutes
    m = memory_verdict(points)
    assert not m.judged and not m.flat
    assert m.steady_minutes == pytest.approx(7.5, abs=0.1)
    assert memory_verdict([]) is None
    assert not memory_verdict([(0.0, 100.0)]).flat  # one sample proves nothing


def _sample(at, gen, finished, ok=True):
    return Sample(at, "team", 100.0, 0.0, gen, finished, ok)


def test_syncs_count_each_finish_once_and_generations_from_the_sample_before():
    before = _sample(0, 5, 1000.0)
    samples = [
        _sample(2, 5, 1000.0),  # the sync before the phase: not counted
        _sample(4, 6, 1010.0),
        _sample(6, 6, 1010.0),
        _sample(8, 6, 1020.0, ok=False),
        _sample(10, 7, 1030.0),
    ]
    assert syncs(samples, before) == {"finished": 3, "failed": 1, "generations": 2}
    assert syncs([], before) == {"finished": 0, "failed": 0, "generations": 0}


def test_viewers_spread_over_every_page_with_filters_the_app_applies():
    agents = [a.did for a in demo.agents(seed=7)]
    specs = viewer_specs(30, agents=agents)
    assert specs == viewer_specs(30, agents=agents)  # the same viewers in every run
    assert specs[0].sql and specs[0].page == "sql"
    assert {s.page for s in specs[1:]} == set(PAGES)
    assert len({s.query for s in specs}) >= 25  # each its own view
    for s in specs[1:]:
        params = parse_qs(s.query)
        if s.page == "wall":
            assert params == {"refresh": ["10"]}
            continue
        assert params["refresh"] == ["10s"]
        state = F.parse_params(params, agents=agents, modes=demo_modes())
        assert state.notices == (), (s, state.notices)
        assert state.range == params["range"][0]
        assert set(state.agents) == set(params.get("agent", []))
        assert set(state.modes) == set(params.get("mode", []))
    assert viewer_specs(1, agents=agents) == specs[:1]


def demo_modes() -> list[str]:
    return ["think", "reflection", "housekeeping"]


def test_each_sql_query_is_new_text_and_cycles_through_the_questions():
    queries = [parse_qs(sql_query(n))["q"][0] for n in range(12)]
    assert len(set(queries)) == 12
    assert all(q.lstrip().upper().startswith("SELECT") for q in queries)
    assert queries[0].split("\n-- run")[0] == queries[5].split("\n-- run")[0]


@pytest.mark.parametrize(
    "key", ["runner.postScriptGC", "server.maxMessageSize", "client.toolbarMode"]
)
def test_streamlit_options_become_the_variables_streamlit_reads(key):
    from streamlit.config_option import ConfigOption

    assert streamlit_env([f"{key}=false"]) == {ConfigOption(key).env_var: "false"}


@pytest.mark.parametrize("bad", ["postScriptGC=false", "runner.postScriptGC", "a.b;c=1"])
def test_a_malformed_streamlit_option_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="expected OPTION=VALUE"):
        streamlit_env([bad])
