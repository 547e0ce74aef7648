"""The running app with 5,000 agents in headless Chromium at 1440×900: honest charts (a gap is
a gap, a 7-day axis spans 7 days), every page within a bound, the wall without scrolling, and an
emoji agent filtered from a link and from the sidebar.

The table: 5,000 agents (names with spaces, an emoji, quotes, CJK among them) with 50,000 cycles
over the last two days (bench/many_agents.py's generator), plus ``did:cf:gappy``, the busiest and
most erroring agent, with a cycle every 30 s except for a 45-minute silence.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
from playwright.sync_api import Page, expect

from bench.many_agents import PAGES, settle, write_source
from tests.support.app_server import running_streamlit
from tests.support.browser import SCREENSHOT_DIR, open_from_sidebar
from tests.support.tables import event, plain_parquet

REPO = Path(__file__).resolve().parent.parent
AGENTS = 5000
GAPPY = "did:cf:gappy"
FOX = "did:cf:🦊fox"


def _gappy_rows(now: datetime) -> tuple[list, datetime, datetime]:
    """A cycle (with an error) every 30 s from 3 h to 15 min ago, silent for 45 minutes."""
    gap_start, gap_end = now - timedelta(hours=2), now - timedelta(hours=1, minutes=15)
    rows, t = [], now - timedelta(hours=3)
    while t < now - timedelta(minutes=15):
        if not gap_start <= t < gap_end:
            rows.append((t + timedelta(seconds=2), event(agent=GAPPY, errors=1, ts=t)))
        t += timedelta(seconds=30)
    return rows, gap_start, gap_end


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Iterator[tuple[str, datetime, datetime, datetime]]:
    from o11y_data import load_settings, sync

    root = tmp_path_factory.mktemp("many")
    now = datetime.now(UTC)
    write_source(root / "src", agents=AGENTS, events=50_000, end=now, span_s=2 * 86400)
    rows, gap_start, gap_end = _gappy_rows(now)
    (root / "src" / "gappy.parquet").write_bytes(plain_parquet(rows))
    env = {
        "O11Y_SOURCE_DIR": str(root / "src"),
        "O11Y_CACHE_DIR": str(root / "cache"),
        "O11Y_BACKGROUND_SYNC": "0",
        "O11Y_AGENTS_FILE": str(root / "none.toml"),
    }
    sync(load_settings(env, secrets_paths=[]))
    with running_streamlit(REPO / "app.py", env, timeout=120) as url:
        yield url, now, gap_start, gap_end


@pytest.fixture
def wide(page: Page) -> Page:
    """The test's page at 1440x900."""
    page.set_viewport_size({"width": 1440, "height": 900})
    return page


def _figures(page: Page) -> list[dict]:
    """Every drawn plotly figure's title, x range and traces (name, connectgaps, x, y)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => ({
            title: ((gd.layout.title && gd.layout.title.text) || '').replace(/<[^>]+>/g, ''),
            xrange: gd.layout.xaxis ? gd.layout.xaxis.range : null,
            traces: (gd._fullData || gd.data).map(t => ({
                name: t.name, type: t.type, connectgaps: t.connectgaps,
                legend: t.showlegend !== false,
                x: t.x ? Array.from(t.x) : [],
                y: t.y ? Array.from(t.y).map(v => (v === null || Number.isNaN(v)) ? null : v) : [],
            })),
        }))"""
    )


def _shot(page: Page, name: str) -> None:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / f"many_{name}.png"), full_page=True)


def test_a_per_agent_error_rate_line_breaks_across_a_45_minute_silence(wide: Page, many) -> None:
    url, now, gap_start, gap_end = many
    wide.goto(f"{url}/errors?range=6h&split=agent")
    settle(wide, "Errors", 3)
    _shot(wide, "errors_gap")
    figs = _figures(wide)
    rate = next((f for f in figs if f["title"] == "Error rate"), None)
    assert rate, [(f["title"], [t["name"] for t in f["traces"]][:3]) for f in figs]
    line = next(t for t in rate["traces"] if t["name"] == GAPPY)
    assert line["connectgaps"] is False
    xs = [pd.Timestamp(x) for x in line["x"]]
    width = xs[1] - xs[0]  # the bucket
    inside = [y for x, y in zip(xs, line["y"], strict=True) if gap_start <= x.tz_localize(UTC)
              and x.tz_localize(UTC) + width <= gap_end]  # fmt: skip
    # The rate's buckets are as wide as its agents' cycles need (ui/figures.rate_bucket_s: at
    # least 24 in the window, so 15 minutes at 6 h): the silence holds two whole ones or more.
    assert width <= pd.Timedelta(minutes=15)
    assert len(inside) >= 2 and all(y is None for y in inside)  # breaks, not a bridge or a 0
    before = [y for x, y in zip(xs, line["y"], strict=True) if x.tz_localize(UTC) < gap_start]
    assert any(y == 100 for y in before)  # the line is there on both sides of the silence


def test_a_seven_day_range_spans_seven_days_with_two_days_of_data(wide: Page, many) -> None:
    url, *_ = many
    wide.goto(f"{url}/?range=7d")
    for path, heading, charts in (
        ("overview", "Overview", 1),
        ("timeline", "Activity timeline", 2),
    ):
        if path != "overview":  # from the sidebar: the range goes along
            open_from_sidebar(wide, path, heading)
        settle(wide, heading, charts)
        for fig in _figures(wide):
            lo, hi = (pd.Timestamp(v) for v in fig["xrange"])
            assert hi - lo == pd.Timedelta(days=7), (path, fig["title"], fig["xrange"])
    _shot(wide, "timeline_7d")


def test_every_page_renders_at_5000_agents_and_the_wall_fits(wide: Page, many) -> None:
    url, *_ = many
    took = {}
    for path, heading, charts, tables in PAGES:
        t = time.monotonic()
        if path:  # from the sidebar, as a person goes from page to page
            open_from_sidebar(wide, path, heading)
        else:
            wide.goto(f"{url}/")
        settle(wide, heading, charts, tables)
        took[path or "overview"] = time.monotonic() - t
        assert wide.get_by_test_id("stException").count() == 0, path
        if path == "":  # the agents table shows its last column without scrolling sideways
            sizes = (
                wide.get_by_test_id("stDataFrame")
                .nth(1)
                .evaluate(
                    "e => [...e.querySelectorAll('.dvn-scroller')]"
                    ".map(s => [s.scrollWidth, s.clientWidth])"
                )
            )
            assert sizes and all(w <= c for w, c in sizes), sizes
        _shot(wide, path or "overview")
        for fig in _figures(wide):  # no legend lists thousands of agents
            shown = [t for t in fig["traces"] if t["legend"]]
            assert len(shown) <= 20, (path, fig["title"], len(shown))
    t = time.monotonic()
    wide.goto(f"{url}/wall")
    wide.locator(".wall .tile").first.wait_for(timeout=60_000)
    took["wall"] = time.monotonic() - t
    print("page seconds at 5,000 agents:", {k: round(v, 1) for k, v in took.items()})
    _shot(wide, "wall")
    overflow = wide.evaluate(
        "() => Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)"
        " - window.innerHeight"
    )
    assert overflow <= 0  # no scrolling
    tiles = wide.locator(".wall .tile")
    assert 0 < tiles.count() <= 48
    box = tiles.last.bounding_box()
    assert box and box["y"] + box["height"] <= 900  # the last tile is on screen
    clipped = wide.evaluate(
        """() => [...document.querySelectorAll('.wall-count')].filter(e =>
            e.getBoundingClientRect().right > e.parentElement.getBoundingClientRect().right + 1
        ).map(e => e.innerText)"""
    )
    assert clipped == []  # every status count in the header is whole, even in thousands
    more = wide.locator('[data-k="more"]').inner_text()
    assert re.match(r"^\+[\d,]+ more \(", more), more
    hidden = int(wide.locator('[data-k="more"]').get_attribute("data-hidden"))
    assert hidden + tiles.count() > 4000  # every agent seen is either a tile or counted


def test_an_emoji_agent_is_filtered_from_a_link(wide: Page, many) -> None:
    url, *_ = many
    wide.goto(f"{url}/timeline?range=7d&agent={quote(FOX)}")
    settle(wide, "Activity timeline", 3)  # one agent: its every-cycle view too
    assert wide.get_by_text("Ignored unknown agent").count() == 0
    expect(wide.get_by_text("7 days · 1 agent").first).to_be_visible()
    lines = next(f for f in _figures(wide) if f["title"] == "Cycles over time per agent")
    # one series (a partial bucket's dotted end is part of it, not in the legend)
    assert [t["name"] for t in lines["traces"] if t["legend"]] == [FOX]
    assert quote(FOX) in wide.url or FOX in wide.url


def test_an_emoji_agent_is_picked_in_the_sidebar(wide: Page, many) -> None:
    url, *_ = many
    wide.goto(f"{url}/?range=7d")
    settle(wide, "Overview", 1)
    box = wide.get_by_test_id("stMultiSelect").filter(has_text="Agents")
    box.click()
    wide.keyboard.insert_text("🦊")
    option = wide.get_by_role("option").filter(has_text=FOX)
    expect(option.first).to_be_visible(timeout=30_000)
    option.first.click()
    wide.wait_for_url(f"**agent={quote(FOX, safe='')}**", timeout=30_000)
    wide.keyboard.press("Escape")
    settle(wide, "Overview", 1)
    tile = wide.get_by_test_id("stMetric").filter(has_text="Agents active")
    expect(tile.get_by_test_id("stMetricValue")).to_have_text("1")


def test_every_cycle_view_is_for_one_picked_agent_when_there_are_thousands(
    wide: Page, many
) -> None:
    url, *_ = many
    wide.goto(f"{url}/timeline?range=7d")
    settle(wide, "Activity timeline", 2)
    expect(wide.get_by_text("Every cycle is drawn for up to 12 agents").first).to_be_visible()
    assert "Every cycle, per agent" not in [f["title"] for f in _figures(wide)]
    # a link naming one agent (an emoji in it) in dot= draws that agent's every cycle
    wide.goto(f"{url}/timeline?range=7d&dot={quote(FOX)}")
    settle(wide, "Activity timeline", 3)
    strip = next(f for f in _figures(wide) if f["title"] == "Every cycle, per agent")
    labels = {y for t in strip["traces"] for y in t["y"]}
    assert labels == {FOX}
    expect(wide.get_by_role("combobox", name="Every cycle of")).to_have_value(FOX)
