"""The wall in a real browser against the real app: kiosk form, no scrolling at 1080p and 4K, live
updates without a reload, and recovery after the server restarts or the source goes away."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from o11y_data.ingest.iceberg_write import TableWriter, folder_put, unstructured_table
from tests.support.app_server import start_streamlit, stop_streamlit
from tests.support.browser import POLL_MS, SCREENSHOT_DIR

REPO = Path(__file__).resolve().parent.parent
PREFIX = "__r2_data_catalog/cat0/tbl0/"
NEW_AGENT = "did:cf:newagentjoinedafterpageopen"

pytestmark = pytest.mark.browser

# JS: is anything scrollable on the page? (Streamlit scrolls inside its own containers, so the
# document alone is not enough.) Also: does every tile's content fit inside the tile?
NO_SCROLL_JS = """() => {
  const se = document.scrollingElement;
  const scrollers = [...document.querySelectorAll('*')].filter(e => {
    const s = getComputedStyle(e);
    return ['auto', 'scroll'].includes(s.overflowY) && e.scrollHeight > e.clientHeight + 1;
  }).map(e => e.tagName + '.' + e.className);
  const clipped = [...document.querySelectorAll('.tile')].filter(
    t => t.scrollHeight > t.clientHeight + 1 || t.scrollWidth > t.clientWidth + 1).length;
  return {doc: se.scrollHeight, inner: innerHeight, docw: se.scrollWidth, innerw: innerWidth,
          scrollers, clipped, tiles: document.querySelectorAll('.tile').length};
}"""


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def cycles(agent: str, now: datetime, minutes: list[float], *, errors_every: int = 0) -> list:
    out = []
    for i, m in enumerate(minutes):
        t = now - timedelta(minutes=m)
        errors = 1 if errors_every and i % errors_every == 0 else 0
        event = {
            "event_type": "agent.cycle",
            "agent": agent,
            "mode": "think",
            "durationMs": 20_000 + 1_000 * i,
            "toolCalls": 3,
            "errors": errors,
            "_ts": _iso(t),
        }
        out.append((t + timedelta(seconds=3), json.dumps(event)))
    return out


def network(now: datetime, n: int = 14) -> list:
    """``n`` agents, mostly healthy; one degraded, one stale, one down."""
    rows = []
    for i in range(n):
        did = f"did:cf:agent{i:02d}" + "x" * 14 + f"{i:04d}"
        if i == 1:
            rows += cycles(did, now, [1 + 2 * k for k in range(25)], errors_every=3)  # degraded
        elif i == 2:
            rows += cycles(did, now, [20, 30, 40])  # stale
        elif i == 3:
            rows += cycles(did, now, [90, 100])  # down
        else:
            rows += cycles(did, now, [0.5 + 2.5 * k + i * 0.1 for k in range(22)])
    return rows


@dataclass
class WallApp:
    url: str
    port: int
    src: Path
    env: dict[str, str]
    writer: TableWriter
    proc: object

    def restart(self) -> None:
        stop_streamlit(self.proc)
        _, self.proc = start_streamlit(REPO / "app.py", self.env, port=self.port)

    def stop(self) -> None:
        stop_streamlit(self.proc)


@pytest.fixture
def wall_app(tmp_path: Path) -> Iterator[WallApp]:
    now = datetime.now(UTC)
    src = tmp_path / "src"
    writer = TableWriter(put=folder_put(src), bucket="agent-blobs", table_prefix=PREFIX)
    writer.append([unstructured_table(network(now))])
    env = {
        "O11Y_SOURCE_DIR": str(src),
        "O11Y_CACHE_DIR": str(tmp_path / "cache"),
        "O11Y_SYNC_INTERVAL": "5",
        "O11Y_BACKGROUND_SYNC": "1",
        "O11Y_AGENTS_FILE": str(tmp_path / "no-agents.toml"),
        "O11Y_R2_ENDPOINT": "",
        "O11Y_R2_ACCOUNT_ID": "",
    }
    url, proc = start_streamlit(REPO / "app.py", env)
    app = WallApp(url, int(url.rsplit(":", 1)[1]), src, env, writer, proc)
    try:
        yield app
    finally:
        app.stop()


def open_wall(page: Page, url: str, width: int, height: int, query: str) -> Page:
    """``page`` at ``width`` x ``height`` on the wall, its tiles drawn, marked to tell a reload."""
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{url}/wall{query}")
    page.wait_for_selector(".tile", timeout=60_000)
    page.evaluate("window.__wallMarker = 'no reload'")
    return page


def updated_at(page: Page) -> str:
    return page.get_attribute(".wall-clock", "data-updated") or ""


def wait_for_refresh(page: Page, after: str, timeout: float = 30.0) -> str:
    """The wall's next ``data-updated`` stamp once it differs from ``after``."""
    page.wait_for_function(
        """(after) => {
          const v = document.querySelector('.wall-clock')?.getAttribute('data-updated');
          return v && v !== after;
        }""",
        arg=after,
        timeout=timeout * 1000,
        polling=POLL_MS,
    )
    return updated_at(page)


def wait_for_tiles(page: Page, n: int, timeout_ms: float = 60_000) -> None:
    page.wait_for_function(
        "(n) => document.querySelectorAll('.tile').length === n",
        arg=n,
        timeout=timeout_ms,
        polling=POLL_MS,
    )


def assert_kiosk(page: Page) -> None:
    for testid in (
        "stSidebar",
        "stSidebarCollapsedControl",
        "stToolbar",
        "stHeader",
        "stDecoration",
        "stMainMenu",
    ):
        loc = page.locator(f'[data-testid="{testid}"]')
        assert not any(loc.nth(i).is_visible() for i in range(loc.count())), testid
    assert page.locator("button:visible, input:visible, select:visible").count() == 0
    box = page.locator(".wall").bounding_box()
    vp = page.viewport_size
    assert box and vp and box["width"] >= vp["width"] - 1 and box["height"] >= vp["height"] - 1


def assert_no_scroll(page: Page) -> dict:
    m = page.evaluate(NO_SCROLL_JS)
    assert m["doc"] <= m["inner"] and m["docw"] <= m["innerw"], m
    assert m["scrollers"] == [] and m["clipped"] == 0, m
    return m


def test_kiosk_live_update_without_reload(page: Page, wall_app: WallApp) -> None:
    open_wall(page, wall_app.url, 1920, 1080, "?refresh=2")
    assert page.locator(".tile").count() == 14
    assert page.locator('.tile[data-status="degraded"]').count() == 1
    assert page.locator('.tile[data-status="stale"]').count() == 1
    assert page.locator('.tile[data-status="down"]').count() == 1
    assert_kiosk(page)
    assert_no_scroll(page)
    first = updated_at(page)
    wait_for_refresh(page, first, timeout=20)  # the fragment re-ran by itself

    # A new agent's first cycles land in the source after the page opened.
    now = datetime.now(UTC)
    wall_app.writer.append([unstructured_table(cycles(NEW_AGENT, now, [0.2, 1.0]))])
    page.wait_for_selector(f'.tile[data-agent="{NEW_AGENT}"]', timeout=60_000)
    tile = page.locator(f'.tile[data-agent="{NEW_AGENT}"]')
    assert tile.get_attribute("data-status") == "healthy"
    assert tile.locator('[data-k="cycles"] b').inner_text() == "2"
    assert page.evaluate("window.__wallMarker") == "no reload"
    assert page.locator(".tile").count() == 15
    assert_no_scroll(page)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "wall-1920.png"))


def test_no_scrolling_at_4k_with_14_agents_then_40(page: Page, wall_app: WallApp) -> None:
    open_wall(page, wall_app.url, 3840, 2160, "?refresh=2")
    for agents in (14, 40):
        if agents > 14:  # a bigger network lands while the TV shows the wall: 26 more agents
            now = datetime.now(UTC)
            extra = []
            for i in range(14, agents):
                extra += cycles(f"did:cf:more{i:02d}" + "y" * 16 + f"{i:04d}", now, [1, 3, 5])
            wall_app.writer.append([unstructured_table(extra)])
        wait_for_tiles(page, agents)
        assert_kiosk(page)
        m = assert_no_scroll(page)
        assert m["tiles"] == agents
        # large type: tile numbers at least 3% of the screen height (1.8% with 40 tiles)
        size = page.evaluate(
            "parseFloat(getComputedStyle(document.querySelector('.t-num b')).fontSize)"
        )
        assert size >= (0.018 if agents > 20 else 0.03) * 2160, (agents, size)
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.wait_for_function("innerWidth === 1920 && innerHeight === 1080", polling=POLL_MS)
    assert_no_scroll(page)


def test_recovers_after_server_restart_and_source_outage(page: Page, wall_app: WallApp) -> None:
    open_wall(page, wall_app.url, 1920, 1080, "?refresh=2")
    # The source folder disappears (as R2 being unreachable does): a banner, tiles as of.
    hidden = wall_app.src.with_name("src-away")
    os.rename(wall_app.src, hidden)
    page.wait_for_selector(".wall-banner.red", timeout=40_000)
    assert "Sync failing" in page.inner_text(".wall-banner")
    assert page.locator(".wall-grid.asof").count() == 1
    assert page.locator(".t-asof").count() == 14
    os.rename(hidden, wall_app.src)
    page.wait_for_selector(".wall-banner.red", state="detached", timeout=60_000)
    assert page.locator(".wall-grid.asof").count() == 0

    # The server goes away: the browser itself says the screen stopped updating...
    wall_app.stop()
    dead = page.locator(".wall-dead")
    expect(dead, "no 'no update since' notice while the server was down").to_be_visible(
        timeout=40_000
    )
    # ...and once it is back, the same page reconnects and refreshes without a reload.
    before = updated_at(page)
    _, wall_app.proc = start_streamlit(REPO / "app.py", wall_app.env, port=wall_app.port)
    wait_for_refresh(page, before, timeout=60)
    page.wait_for_selector(".wall-dead", state="hidden", timeout=20_000)
    # the restarted server's first runs may draw before its store is read: wait for them
    wait_for_tiles(page, 14)
    assert page.evaluate("window.__wallMarker") == "no reload"
