"""Charts drive the dashboard, in headless Chromium against the demo app.

A span dragged across a time chart becomes the page's range (URL, tiles), Back returns to the
range before; a click on a bar or point opens the explorer on its bucket, mode or agent. What the
pages show is checked against DuckDB over the store's own Parquet segments (not the app's
queries). Screenshots (1440x900) go to tests/screenshots/ for people to look at.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.support.browser import POLL_MS, SCREENSHOT_DIR, run_finished

pytestmark = [pytest.mark.browser, pytest.mark.server]

REPO = Path(__file__).resolve().parent.parent
WAIT = 60_000  # a shared machine: the first run of a page can take a while
SHOTS = Path(__import__("os").environ.get("O11Y_SHOTS_DIR", SCREENSHOT_DIR))


@pytest.fixture(scope="module")
def segments(demo_store) -> list[str]:
    from o11y_data.ingest.store import Store

    store = Store(demo_store.settings.store_dir)
    return [str(store.segments / s.name) for s in store.load_head().segments]


def scan(segments: list[str], where: str, params: list) -> pd.DataFrame:
    """Parsed events straight from the store's Parquet files (the oracle)."""
    import duckdb

    cur = duckdb.connect()
    cur.execute("SET TimeZone = 'UTC'")
    return cur.execute(
        f"SELECT ts, event_type, agent, mode FROM read_parquet(?) WHERE parsed AND {where} "
        "ORDER BY ts",
        [segments, *params],
    ).df()


def url_window(url: str) -> tuple[datetime, datetime, dict[str, list[str]]]:
    q = parse_qs(urlparse(url).query)
    assert q["range"] == ["custom"], url
    start = datetime.fromisoformat(q["start"][0].replace("Z", "+00:00"))
    end = datetime.fromisoformat(q["end"][0].replace("Z", "+00:00"))
    return start, end, q


def settled(page: Page) -> None:
    run_finished(page, timeout=WAIT)


def chart(page: Page, key: str) -> Locator:
    plot = page.locator(f"[class*='st-key-{key}'] .js-plotly-plot")
    expect(plot.locator(".main-svg").first).to_be_visible(timeout=WAIT)
    return plot


def cycles_tile(page: Page) -> Locator:
    return page.get_by_test_id("stMetric").filter(has_text="Cycles").get_by_test_id("stMetricValue")


def range_box(page: Page) -> Locator:
    return page.get_by_role("combobox", name="Time range (UTC)")


def pick_tool(plot: Locator) -> None:
    """The chart's tool for clicking bars and points (the default tool drags a span)."""
    plot.hover()
    plot.locator(".modebar-btn[data-title^='Click a bar or point']").click()


def drawn_point(plot: Locator, *, curve: int, index: int) -> dict:
    """What the browser drew at trace ``curve``, point ``index``: its x, name and meta."""
    return plot.evaluate(
        "(gd, [c, i]) => ({x: gd.data[c].x[i], name: gd.data[c].name, meta: gd.data[c].meta})",
        [curve, index],
    )


def hovered(page: Page, plot: Locator, x: float, y: float) -> tuple[int, int]:
    """(trace, point) the chart itself picks at (x, y): a click selects what the hover shows."""
    page.mouse.move(x, y)
    found = page.wait_for_function(
        "gd => gd._hoverdata && gd._hoverdata.length > 0 "
        "&& [gd._hoverdata[0].curveNumber, gd._hoverdata[0].pointNumber]",
        arg=plot.element_handle(),
        timeout=WAIT,
        polling=POLL_MS,
    )
    curve, index = found.json_value()
    return int(curve), int(index)


def explorer_rows(page: Page) -> pd.DataFrame:
    """The explorer's rows, through its CSV download (every matching event)."""
    with page.expect_download(timeout=WAIT) as dl:
        page.get_by_role("button", name=re.compile(r"CSV \(")).click()
    return pd.read_csv(io.BytesIO(Path(dl.value.path()).read_bytes()))


def same_events(shown: pd.DataFrame, truth: pd.DataFrame) -> None:
    assert len(shown) == len(truth) > 0

    def rows(df: pd.DataFrame) -> list[tuple]:
        ts = pd.to_datetime(df["ts"], utc=True).dt.floor("ms")  # the CSV keeps milliseconds
        return sorted(zip(ts, df["agent"], df["mode"], strict=True))

    assert rows(shown) == rows(truth)


def test_a_span_dragged_on_a_chart_sets_the_range_the_tiles_follow_and_back_returns(
    page: Page, demo_app_url: str, segments: list[str]
) -> None:
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{demo_app_url}/")
    plot = chart(page, "ov_activity")
    settled(page)
    expect(range_box(page)).to_have_value("Last 24 hours")
    expect(page.get_by_text("Charts are controls")).to_have_count(1)  # said once per page
    before = cycles_tile(page).inner_text()
    plot.scroll_into_view_if_needed()  # below the agents needing attention at 900 px
    area = plot.locator(".nsewdrag").first.bounding_box()
    assert area is not None
    y = area["y"] + area["height"] / 2
    page.mouse.move(area["x"] + area["width"] * 0.45, y)
    page.mouse.down()
    page.mouse.move(area["x"] + area["width"] * 0.7, y, steps=12)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "chart_span_selecting.png"))
    page.mouse.up()

    page.wait_for_url(re.compile(r"range=custom"), timeout=WAIT)
    start, end, _ = url_window(page.url)
    assert start < end
    truth = scan(segments, "event_type = 'agent.cycle' AND ts >= ? AND ts < ?", [start, end])
    expect(cycles_tile(page)).to_have_text(f"{len(truth):,}", timeout=WAIT)
    assert f"{len(truth):,}" != before
    expect(range_box(page)).to_have_value("Custom (UTC)")
    settled(page)
    page.screenshot(path=str(SHOTS / "chart_span_applied.png"))

    page.go_back()
    page.wait_for_url(lambda u: "range=custom" not in u, timeout=WAIT)
    expect(range_box(page)).to_have_value("Last 24 hours", timeout=WAIT)
    expect(cycles_tile(page)).not_to_have_text(f"{len(truth):,}", timeout=WAIT)
    assert urlparse(page.url).query == ""  # the URL before: the defaults, nothing restored


def test_a_click_on_a_mode_bar_opens_the_explorer_on_that_bucket_and_mode(
    page: Page, demo_app_url: str, segments: list[str]
) -> None:
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{demo_app_url}/?refresh=off")  # no live fragment: the page's own run follows
    plot = chart(page, "ov_activity")
    settled(page)
    # A forged selection (what any script in the browser could send): one line, nothing else.
    plot.evaluate(
        "gd => gd.emit('plotly_selected', {points: [], selections: [{type: 'rect', xref: 'x', "
        "yref: 'y', x0: '<b>yesterday</b>', x1: 1e308, y0: 0, y1: 1}]})"
    )
    expect(page.get_by_text("Ignored a chart selection whose span is not a time")).to_be_visible(
        timeout=WAIT
    )
    assert "range=" not in page.url
    assert page.get_by_test_id("stException").count() == 0
    plot = chart(page, "ov_activity")  # drawn again, unselected
    settled(page)
    pick_tool(plot)
    bars = plot.locator(".trace.bars").nth(1).locator(".point path")  # the second mode
    boxes = [bars.nth(i).bounding_box() or {"height": 0} for i in range(bars.count())]
    i = max(range(len(boxes)), key=lambda k: boxes[k]["height"])
    drawn = drawn_point(plot, curve=1, index=i)
    mode, bucket_s = drawn["meta"]["mode"], drawn["meta"]["bucket_s"]
    assert drawn["name"] == mode
    b = boxes[i]
    page.mouse.click(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)

    page.wait_for_url(re.compile(r"/explorer\?"), timeout=WAIT)
    start, end, q = url_window(page.url)
    at = pd.Timestamp(drawn["x"]).tz_localize("UTC")
    assert (start, end) == (at, at + pd.Timedelta(seconds=bucket_s))  # the bar's bucket
    assert q["mode"] == [mode] and "agent" not in q
    expect(page.get_by_text("matching events")).to_be_visible(timeout=WAIT)
    truth = scan(segments, "mode = ? AND ts >= ? AND ts < ?", [mode, start, end])
    expect(page.get_by_text(f"{len(truth):,} matching events")).to_be_visible(timeout=WAIT)
    same_events(explorer_rows(page), truth)

    page.go_back()  # one Back: the overview as it was
    page.wait_for_url(lambda u: "/explorer" not in u and "mode=" not in u, timeout=WAIT)
    expect(range_box(page)).to_have_value("Last 24 hours", timeout=WAIT)


def test_a_click_on_an_agent_line_opens_the_explorer_on_that_agent_and_bucket(
    page: Page, demo_app_url: str, segments: list[str]
) -> None:
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{demo_app_url}/timeline?range=6h&top=2")
    plot = chart(page, "tl_lines")
    settled(page)
    plot.scroll_into_view_if_needed()
    pick_tool(plot)
    # The top agent's line: grey lines (others, unknown, the rest) are drawn under the coloured.
    drawn_at = plot.evaluate(
        """el => {
            const shown = el._fullData.filter(t => t.visible === true && t.type === "scatter");
            return shown.findIndex(t => t.meta && t.meta.agent && !t.meta.group);
        }"""
    )
    assert drawn_at >= 0
    dots = plot.locator(".scatterlayer .trace").nth(drawn_at).locator(".points path")
    boxes = [dots.nth(i).bounding_box() for i in range(dots.count())]
    b = min(boxes, key=lambda box: box["y"])  # the top agent's busiest bucket
    x, y = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
    curve, i = hovered(page, plot, x, y)
    drawn = drawn_point(plot, curve=curve, index=i)
    agent, bucket_s = drawn["meta"]["agent"], drawn["meta"]["bucket_s"]
    assert agent and not drawn["meta"].get("group")
    page.mouse.click(x, y)

    page.wait_for_url(re.compile(r"/explorer\?"), timeout=WAIT)
    start, end, q = url_window(page.url)
    at = pd.Timestamp(drawn["x"]).tz_localize("UTC")
    assert (start, end) == (at, at + pd.Timedelta(seconds=bucket_s))
    assert q["agent"] == [agent] and "mode" not in q
    truth = scan(segments, "agent = ? AND ts >= ? AND ts < ?", [agent, start, end])
    expect(page.get_by_text(f"{len(truth):,} matching events")).to_be_visible(timeout=WAIT)
    expect(page.get_by_role("textbox", name="Search agent and raw JSON")).to_be_visible()
    settled(page)
    page.screenshot(path=str(SHOTS / "chart_click_explorer.png"))
    same_events(explorer_rows(page), truth)

    page.go_back()
    page.wait_for_url(re.compile(r"/timeline\?range=6h&top=2$"), timeout=WAIT)
    expect(range_box(page)).to_have_value("Last 6 hours", timeout=WAIT)
