"""The wall's pure logic: URL parsing, status, tiles, totals, freshness, HTML (hand-computed)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from o11y_data import load_settings
from ui import wall as W
from ui import wall_logic as wl
from ui.agents import short_did
from ui.fmt import DASH, format_rate, format_span, parse_duration
from ui.fmt import fmt_ms as _fmt_ms
from ui.wall_logic import (
    DEFAULT,
    AgentStats,
    Health,
    WallConfig,
    agent_status,
    assess,
    build_tiles,
    config_defaults,
    network_totals,
    parse_config,
    parse_rate,
    select,
    window_bounds,
)


def format_ms(v):
    return _fmt_ms(v, empty=DASH)


NOW = datetime(2026, 11, 2, 12, 0, 0, tzinfo=UTC)
A = "did:cf:aaaabbbbccccddddeeeeffff"
B = "did:cf:zzzzyyyyxxxxwwwwvvvvuuuu"
C = "did:cf:mmmmnnnnooooppppqqqqrrrr"


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("10m", 600), ("1h", 3600), ("1.5h", 5400), ("2d", 172800)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "-5m", "1h30", "10x", "nan", "1e400"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "rate"), [("0.1", 0.1), ("10%", 0.1), ("10", 0.1), ("0.05", 0.05), ("100%", 1.0)]
)
def test_parse_rate(text: str, rate: float) -> None:
    assert parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize("text", ["", "x", "0", "-1", "150", "inf", "nan"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)


def test_defaults_without_params() -> None:
    cfg, notices = parse_config({})
    assert cfg == DEFAULT and notices == []
    assert (cfg.window_s, cfg.err, cfg.stale_s, cfg.down_s, cfg.refresh_s) == (
        3600,
        0.10,
        600,
        3600,
        30,
    )


def test_every_param_applies() -> None:
    cfg, notices = parse_config(
        {
            "agents": f"{A}, zzzzyyyy",
            "window": "30m",
            "err": "5%",
            "stale": "5m",
            "down": "2h",
            "refresh": "2",
            "fresh": "15m",
            "horizon": "7d",
            "sort": "status",
            "tz": "Europe/Berlin",
        }
    )
    assert notices == []
    assert cfg == WallConfig(
        agents=(A, "zzzzyyyy"),
        window_s=1800,
        err=0.05,
        stale_s=300,
        down_s=7200,
        refresh_s=2,
        fresh_s=900,
        horizon_s=7 * 86400,
        sort="status",
        tz="Europe/Berlin",
    )


def test_bad_values_are_ignored_with_a_notice_each() -> None:
    cfg, notices = parse_config(
        {
            "window": "abc",
            "err": "lots",
            "refresh": "0",
            "sort": "random",
            "tz": "Mars/Olympus",
            "agents": "<script>,did:cf:ok1234",
        }
    )
    assert cfg == WallConfig(agents=("did:cf:ok1234",))
    text = " | ".join(notices)
    for key in ("window=abc", "err=lots", "refresh=0", "sort=random", "tz=Mars/Olympus"):
        assert key in text
    assert "<script>" in text  # named in the notice (escaped when drawn), never used
    assert len(notices) == 6


def test_stale_must_be_shorter_than_down() -> None:
    cfg, notices = parse_config({"stale": "2h", "down": "1h"})
    assert (cfg.stale_s, cfg.down_s) == (600, 3600)
    assert len(notices) == 1 and "shorter" in notices[0]


def test_list_values_use_the_last_and_agents_all() -> None:
    cfg, _ = parse_config({"window": ["1h", "2h"], "agents": [A, B]})
    assert cfg.window_s == 7200 and cfg.agents == (A, B)


def wall_defaults(env: dict[str, str]) -> dict[str, str]:
    """The wall's defaults as the settings loader reads them from ``env``."""
    return dict(load_settings(env, secrets_paths=[]).wall_defaults)


def test_config_from_env_then_url_on_top() -> None:
    env = {"O11Y_WALL_ERR": "20%", "O11Y_WALL_WINDOW": "bad"}
    base, notices = config_defaults(wall_defaults(env))
    assert base.err == 0.2 and base.window_s == 3600
    assert notices and notices[0].startswith("config:")
    cfg, more = parse_config({"window": "2h"}, base)
    assert (cfg.err, cfg.window_s, more) == (0.2, 7200, [])


def test_current_config_combines() -> None:
    cfg, notices = W.current_config({"err": "30"}, wall_defaults({"O11Y_WALL_STALE": "2m"}))
    assert (cfg.err, cfg.stale_s, notices) == (0.3, 120, [])


# -- formatting ------------------------------------------------------------------------------


def test_short_did() -> None:
    assert short_did(A) == "did:cf:aaaa…ffff"
    assert short_did("did:cf:short") == "did:cf:short"
    assert short_did("unknown") == "unknown"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "—"),
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m"),
        (3599, "59m"),
        (3600, "1h"),
        (3780, "1h 03m"),
        (86400, "1d"),
        (90000, "1d 1h"),
    ],
)
def test_format_span(seconds: float | None, text: str) -> None:
    assert format_span(seconds) == text


def test_format_ms_and_rate() -> None:
    assert [format_ms(v) for v in (None, 850, 12345, 150000)] == [
        "—",
        "850 ms",
        "12.3 s",
        "2.5 min",
    ]
    assert [format_rate(v) for v in (None, 0.0, 0.034, 0.1, 1.0)] == [
        "—",
        "0.0%",
        "3.4%",
        "10%",
        "100%",
    ]


# -- status ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "cycles", "error_cycles", "status"),
    [
        (None, 0, 0, "down"),  # never seen
        (3600, 10, 0, "down"),  # exactly the down threshold
        (3599, 10, 0, "stale"),
        (600, 10, 0, "stale"),  # exactly the stale threshold
        (599, 10, 1, "degraded"),  # 1/10 = 10% = the threshold
        (599, 10, 0, "healthy"),
        (30, 11, 1, "healthy"),  # 9.1% < 10%
        (30, 0, 0, "healthy"),  # a quiet window but a recent cycle
        (4000, 10, 10, "down"),  # silence outranks errors
    ],
)
def test_agent_status(age: float | None, cycles: int, error_cycles: int, status: str) -> None:
    assert agent_status(age, cycles, error_cycles) == status


def test_status_thresholds_follow_config() -> None:
    cfg = WallConfig(err=0.5, stale_s=60, down_s=120)
    assert agent_status(59, 4, 2, cfg) == "degraded"
    assert agent_status(59, 4, 1, cfg) == "healthy"
    assert agent_status(60, 4, 0, cfg) == "stale"
    assert agent_status(120, 4, 0, cfg) == "down"


def _stats() -> list[AgentStats]:
    return [
        AgentStats(A, ago(30), cycles=20, error_cycles=1, errors=3, p95_ms=41000.0),
        AgentStats(B, ago(700), cycles=8, error_cycles=0, errors=0, p95_ms=9000.0),
        AgentStats(C, ago(100), cycles=10, error_cycles=4, errors=4, p95_ms=60500.0),
        AgentStats("unknown", ago(7200), cycles=0),
    ]


def test_tiles_by_hand() -> None:
    chosen, missing = select(_stats(), ())
    assert missing == [] and [s.agent for s in chosen] == [A, B, C]  # "unknown" left out
    tiles = build_tiles(chosen, NOW, DEFAULT)
    by = {t.agent: t for t in tiles}
    assert by[A].status == "healthy" and by[A].error_rate == pytest.approx(1 / 20)
    assert by[A].age_s == 30 and by[A].name == "did:cf:aaaa…ffff"
    assert by[B].status == "stale" and by[B].error_rate == 0.0
    assert by[C].status == "degraded" and by[C].error_rate == pytest.approx(0.4)
    assert [t.status for t in tiles] == ["stale", "degraded", "healthy"]  # worst first
    by_name = build_tiles(chosen, NOW, WallConfig(sort="name"))
    assert [t.agent for t in by_name] == [A, C, B]  # by name: aaaa…, mmmm…, zzzz…

    tot = network_totals(tiles, p95_ms=55000.0)
    assert tot.agents == 3 and tot.cycles == 38 and tot.error_cycles == 5
    assert tot.error_rate == pytest.approx(5 / 38)
    assert tot.by_status == {"down": 0, "stale": 1, "degraded": 1, "healthy": 1}


def test_select_listed_agents() -> None:
    chosen, missing = select(_stats(), ["zzzzyyyy", "did:cf:neverseen0000", "nope"])
    assert [s.agent for s in chosen] == [B, "did:cf:neverseen0000"]
    assert missing == ["nope"]
    never = {t.agent: t for t in build_tiles(chosen, NOW)}["did:cf:neverseen0000"]
    assert never.status == "down" and never.age_s is None and never.error_rate is None
    # friendly names match too, and are what the tile shows
    chosen, _ = select(_stats(), ["planner"], {C: "planner"})
    assert [t.name for t in build_tiles(chosen, NOW, names={C: "planner"})] == ["planner"]
    # listing "unknown" explicitly shows it
    assert [s.agent for s in select(_stats(), ["unknown"])[0]] == ["unknown"]


def test_window_bounds_round_up() -> None:
    at = datetime(2026, 11, 2, 12, 0, 3, 500000, tzinfo=UTC)
    start, end = window_bounds(at, WallConfig(window_s=1800))
    assert end == datetime(2026, 11, 2, 12, 0, 10, tzinfo=UTC)
    assert end - start == timedelta(minutes=30)


# -- freshness -------------------------------------------------------------------------------


def _fresh(**kw: object) -> dict[str, object]:
    base = {
        "last_sync_at": ago(20),
        "last_error": None,
        "newest_ingest_ts": ago(40),
        "newest_ts": ago(45),
    }
    return {**base, **kw}


def test_assess_current() -> None:
    h = assess(_fresh(), NOW)
    assert h == Health(True, NOW)


def test_assess_never_synced() -> None:
    h = assess(_fresh(last_sync_at=None, newest_ingest_ts=None, newest_ts=None), NOW)
    assert (h.current, h.at, h.level) == (False, None, "amber")
    h = assess(_fresh(last_sync_at=None, last_error="Source folder not found: /x"), NOW)
    assert h.at is None and h.level == "red" and "Source folder not found" in (h.banner or "")


def test_assess_failing_sync_shows_data_as_of_last_good_sync() -> None:
    h = assess(_fresh(last_sync_at=ago(300), last_error="Cannot reach R2: timeout"), NOW)
    assert (h.current, h.at, h.level) == (False, ago(300), "red")
    assert "Cannot reach R2: timeout" in h.banner and "11:55" in h.banner


def test_assess_old_sync() -> None:
    h = assess(_fresh(last_sync_at=ago(300)), NOW)  # fresh_s = 300: exactly too old
    assert (h.current, h.at, h.level) == (False, ago(300), "red")
    assert "out of date" in h.banner and "5m ago" in h.banner
    assert assess(_fresh(last_sync_at=ago(299)), NOW).current


def test_assess_pipeline_quiet_is_current_but_warned() -> None:
    h = assess(_fresh(newest_ingest_ts=ago(1800)), NOW)
    assert (h.current, h.at, h.level) == (True, NOW, "amber")
    assert "30m" in h.banner and "11:30" in h.banner


def test_assess_accepts_pandas_timestamps() -> None:
    pd = pytest.importorskip("pandas")
    h = assess(_fresh(last_sync_at=pd.Timestamp(ago(20)), newest_ingest_ts=pd.NaT), NOW)
    assert h.current


# -- HTML ------------------------------------------------------------------------------------


def test_grid_shape_fits_everyone_without_an_empty_row_or_column_in_the_biggest_tiles() -> None:
    aspect = 16 / 9

    def tile(cols: int, rows: int) -> float:  # a tile's height as a share of the grid's
        return min(aspect / cols / 1.75, 1 / rows)

    for n in range(1, 61):
        cols, rows = W.grid_shape(n, aspect=aspect)
        assert cols * rows >= n, (n, cols, rows)  # everyone fits
        assert (cols - 1) * rows < n, (n, cols, rows)  # no column could go
        assert cols * (rows - 1) < n, (n, cols, rows)  # no row could go
        biggest = max(tile(c, r) for c in range(1, n + 1) for r in range(1, n + 1) if c * r >= n)
        assert tile(cols, rows) == pytest.approx(biggest), (n, cols, rows)
    assert W.grid_shape(12, aspect=aspect) == (4, 3)


def test_sparkline() -> None:
    svg = W.sparkline_svg([0, 2, 4], [0, 0, 1])
    assert svg.startswith("<svg") and svg.count("<rect") == 4  # empty, bar, bar + error part
    assert 'height="25.0" fill="#ff3b3b"' in svg  # 1 of 4 cycles at full height: a quarter red
    assert W.sparkline_svg([], []) == ""


def _html(tiles, health: Health, cfg: WallConfig = DEFAULT, notices=()) -> str:
    return W.wall_html(tiles, network_totals(tiles, 1500.0), health, cfg, now=NOW, notices=notices)


def test_wall_html_current() -> None:
    tiles = build_tiles(select(_stats(), ())[0], NOW)
    out = _html(tiles, Health(True, NOW))
    assert out.count('class="tile ') == 3 and 'data-tiles="3"' in out
    assert 'data-status="degraded"' in out and 'data-status="stale"' in out
    assert "12:00:00" in out  # the time of this refresh
    assert "as of" not in out and "wall-grid asof" not in out
    assert re.search(r'data-k="cycles"><span class="k">cycles/1h</span><b>38</b>', out)


def test_wall_html_not_current_marks_tiles_as_of() -> None:
    tiles = build_tiles(select(_stats(), ())[0], ago(900))
    h = Health(False, ago(900), "red", "Sync failing: boom")
    out = _html(tiles, h)
    assert 'class="wall-grid asof"' in out
    assert out.count("as of 11:45") == 3
    assert "Sync failing: boom" in out and 'role="alert"' in out


def test_wall_html_escapes_everything_from_outside() -> None:
    evil = "did:cf:<img src=x onerror=alert(1)>"
    tiles = build_tiles([AgentStats(evil, ago(5), cycles=1)], NOW)
    out = _html(tiles, Health(True, NOW), notices=["URL: ignored agents <b>x</b>"])
    assert "<img" not in out and "<b>x</b>" not in out
    assert "&lt;img" in out


def test_dead_man_animation_changes_every_render() -> None:
    a = W.wall_html([], None, Health(True, NOW), DEFAULT, now=NOW)
    b = W.wall_html([], None, Health(True, NOW), DEFAULT, now=NOW + timedelta(seconds=30))
    name = re.compile(r"@keyframes (w\d+)-v")
    assert name.search(a).group(1) != name.search(b).group(1)
    assert "linear 90s forwards" in a  # 3 x 30 s refresh
    assert W.dead_after(WallConfig(refresh_s=2)) == 22


def _tile(name: str, status: str) -> wl.Tile:
    return wl.Tile(
        agent=f"did:cf:{name}",
        name=name,
        status=status,
        age_s=1.0,
        last_ts=None,
        cycles=1,
        error_cycles=0,
        error_rate=0.0,
        p95_ms=None,
    )


def test_a_full_wall_shows_the_worst_first_and_counts_what_it_left_off() -> None:
    tiles = [_tile(f"h{i:04d}", "healthy") for i in range(4990)]
    tiles += [_tile(f"d{i}", "down") for i in range(5)]
    tiles += [_tile(f"g{i}", "degraded") for i in range(50)]
    shown, more = wl.fit(tiles, 48)
    assert len(shown) == 48
    assert [t.status for t in shown[:5]] == ["down"] * 5
    assert all(t.status == "degraded" for t in shown[5:])
    assert more.hidden == len(tiles) - 48
    assert more.by_status == {"down": 0, "stale": 0, "degraded": 7, "healthy": 4990}
    assert more.text() == "+4,997 more (7 degraded)"


def test_a_wall_that_fits_keeps_every_tile_in_its_order() -> None:
    tiles = [_tile("b", "healthy"), _tile("a", "down")]
    shown, more = wl.fit(tiles, 48)
    assert shown == tiles and more is None


def test_wall_html_with_thousands_of_agents_draws_what_fits_and_says_the_rest() -> None:
    tiles = [_tile(f"h{i:04d}", "healthy") for i in range(5000)] + [_tile("x", "down")]
    cfg = wl.WallConfig()
    health = wl.Health(True, datetime(2026, 1, 1, tzinfo=UTC))
    out = W.wall_html(tiles, None, health, cfg, now=datetime(2026, 1, 1, tzinfo=UTC))
    assert out.count('class="tile ') == wl.MAX_TILES
    assert 'data-tiles="48"' in out
    assert "+4,953 more (all healthy)" in out
    assert 'data-agent="did:cf:x"' in out  # the down agent is on screen


def test_tiles_come_worst_first_by_default_so_a_down_agent_leads_not_fifth() -> None:
    # five agents named a..e; "e" is down: by name it sat fifth, worst first it leads
    names = {f"did:cf:agent{c}{c * 20}": c for c in "abcde"}
    stats = [AgentStats(did, ago(30), cycles=10) for did in names]
    stats[4] = AgentStats(stats[4].agent, ago(7200), cycles=0)  # "e": no cycle for 2h
    stats[1] = AgentStats(stats[1].agent, ago(30), cycles=10, error_cycles=5)  # "b": degraded
    tiles = build_tiles(stats, NOW, DEFAULT, names)
    assert [(t.name, t.status) for t in tiles] == [
        ("e", "down"), ("b", "degraded"), ("a", "healthy"), ("c", "healthy"), ("d", "healthy"),
    ]  # fmt: skip
    # stable: the same input in another order gives the same wall
    again = build_tiles(list(reversed(stats)), NOW, DEFAULT, names)
    assert [t.agent for t in again] == [t.agent for t in tiles]


def test_the_totals_say_whom_they_cover_naming_two_selected_agents() -> None:
    stats = _stats()
    names = {A: "planner", B: "<b>critic</b>", C: "scout"}
    assert network_totals(build_tiles(select(stats, ())[0], NOW)).scope == "all agents"
    chosen, _ = select(stats, ["planner", "<b>critic</b>"], names)
    tiles = build_tiles(chosen, NOW, DEFAULT, names)
    totals = network_totals(tiles, 1500.0, selected=True)
    assert totals.scope == "2 agents: <b>critic</b>, planner"
    html = str(W.wall_html(tiles, totals, Health(True, NOW), DEFAULT, now=NOW))
    assert "2 agents: &lt;b&gt;critic&lt;/b&gt;, planner, last 1h:" in html  # escaped, as text
    assert "all agents" not in html
    one = network_totals(tiles[:1], selected=True)
    assert one.scope.startswith("1 agent: ")
    many = [AgentStats(f"did:cf:many{i:020d}", ago(30), cycles=1) for i in range(5)]
    assert network_totals(build_tiles(many, NOW), selected=True).scope == "5 selected agents"
