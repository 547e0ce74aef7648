"""Nothing from an event shapes a page: hostile strings in every field, every page, a real browser.

The events go through the normal sync path (an Iceberg table in a local source folder). Their
agent, mode, event type and raw JSON keys/values hold HTML, a script, Markdown images and links
pointing at a beacon HTTP server on loopback, newlines, backticks, an RTL override and a 100 KB
string. Every page is opened and drawn (charts scrolled into view, hovers included); then: no
request reached the beacon, no dialog opened, no element carries the beacon in a link or source,
no heading came from the data, and the layout holds (no page wider than the viewport, the wall's
tiles inside its grid).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, expect

from o11y_data.ingest.iceberg_write import TableWriter, folder_put, unstructured_table
from tests.support.app_server import running_streamlit
from tests.support.browser import SCREENSHOT_DIR, open_from_sidebar, run_finished
from tests.support.http_thread import serve_in_thread
from tests.support.tables import local_env

REPO = Path(__file__).resolve().parent.parent
PREFIX = "__r2_data_catalog/cat0/tbl0/"
pytestmark = pytest.mark.browser

PAGES = [  # path, heading (None: the wall)
    ("", "Overview"),
    ("agent", "Agents, worst first"),
    ("timeline", "Activity timeline"),
    ("modes", "Modes"),
    ("errors", "Errors"),
    ("health", "Pipeline health"),
    ("explorer", "Explorer"),
    ("alerts", "Alerts"),
    ("wall", None),
]


class Beacon:
    """An HTTP server on loopback that records every request it gets."""

    def __init__(self) -> None:
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        serve_in_thread(self.server)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def hostile(b: str) -> dict[str, list[str]]:
    """Hostile values per field, all pointing at the beacon ``b``."""
    big = "did:cf:" + "W" * 100_000
    return {
        "agent": [
            f"did:cf:<img src={b}/img-agent onerror=alert('agent')>",
            f"evil\n\n![beacon]({b}/md-agent.png)\n\n# AGENT HEADING\n",
            f"`tick` [link]({b}/link-agent) \u202eRTL-override",
            f"<script>alert('script')</script><a href=\"{b}/a-agent\">x</a>",
            big,
        ],
        "mode": [
            f"<b>bold</b><img src={b}/img-mode>",
            f"think\n\n![m]({b}/md-mode.png)\n# MODE HEADING",
            "`backtick` mode <a href='javascript:alert(1)'>js</a>",
        ],
        "event_type": [
            f"<img src={b}/img-type onerror=alert('type')>",
            f"![t]({b}/md-type.png)\n\n## TYPE HEADING",
        ],
        "key": [f"<img src={b}/img-key>", f"![k]({b}/md-key.png)\n# KEY HEADING"],
    }


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def events(b: str, now: datetime) -> list[tuple[datetime, str]]:
    h = hostile(b)
    rows = []
    i = 0
    for agent in h["agent"]:
        for mode in [*h["mode"], "think"]:
            for k in range(3):
                t = now - timedelta(minutes=5 + 7 * i + k)
                body = {"event_type": "agent.cycle", "agent": agent, "mode": mode,
                        "durationMs": 1000 + 500 * k, "toolCalls": k, "errors": k % 2,
                        "_ts": _iso(t)}  # fmt: skip
                for j, key in enumerate(h["key"]):
                    body[key] = h["mode"][j % len(h["mode"])]
                rows.append((t + timedelta(seconds=2), json.dumps(body)))
            i += 1
    for j, et in enumerate(h["event_type"]):
        t = now - timedelta(minutes=3 + j)
        body = {"event_type": et, "agent": h["agent"][j], "_ts": _iso(t), h["key"][0]: et}
        rows.append((t + timedelta(seconds=2), json.dumps(body)))
    return rows


@pytest.fixture(scope="module")
def hostile_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Beacon]]:
    beacon = Beacon()
    root = tmp_path_factory.mktemp("hostile")
    writer = TableWriter(put=folder_put(root / "src"), bucket="agent-blobs", table_prefix=PREFIX)
    writer.append([unstructured_table(events(beacon.base, datetime.now(UTC)))])
    env = local_env(root / "src", root, O11Y_SYNC_INTERVAL="60", O11Y_BACKGROUND_SYNC="1")
    try:
        with running_streamlit(REPO / "app.py", env) as url:
            yield url, beacon
    finally:
        beacon.close()


LAYOUT_JS = """(port) => {
  const se = document.scrollingElement;
  const main = document.querySelector('[data-testid="stMain"]');
  const bad = [...document.querySelectorAll('[src], [href], [srcset], [action], [style]')].filter(
    e => ['src', 'href', 'srcset', 'action', 'style'].some(
      a => (e.getAttribute(a) || '').includes(':' + port)));
  const headings = [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')].map(
    e => e.innerText).filter(t => /HEADING/.test(t));
  const grid = document.querySelector('.wall-grid');
  let outside = 0;
  if (grid) {
    const g = grid.getBoundingClientRect();
    for (const t of document.querySelectorAll('.tile')) {
      const r = t.getBoundingClientRect();
      if (r.left < g.left - 1 || r.right > g.right + 1 || r.top < g.top - 1 ||
          r.bottom > g.bottom + 1 || t.parentElement !== grid) outside++;
    }
  }
  return {docw: se.scrollWidth, innerw: innerWidth, doch: se.scrollHeight, innerh: innerHeight,
          mainw: main ? main.scrollWidth : 0, mainc: main ? main.clientWidth : 0,
          bad: bad.map(e => e.outerHTML.slice(0, 200)), headings, outside,
          tiles: document.querySelectorAll('.tile').length};
}"""


def _settle(page: Page, heading: str | None) -> None:
    """The page drawn in full: its heading, no run in progress, every chart drawn (charts below
    the fold draw when scrolled to: each is scrolled into view and waited for), every chart
    hovered (hover labels hold event values too)."""
    if heading is None:
        page.wait_for_selector(".wall-grid", timeout=60_000)
    else:
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible(timeout=60_000)
    run_finished(page, timeout=60_000)
    charts = page.get_by_test_id("stPlotlyChart")
    for i in range(charts.count()):
        chart = charts.nth(i)
        chart.scroll_into_view_if_needed(timeout=60_000)
        expect(chart.locator(".js-plotly-plot .main-svg").first).to_be_attached(timeout=60_000)
    for plot in page.locator(".js-plotly-plot .nsewdrag").all()[:8]:  # hover every chart
        plot.scroll_into_view_if_needed(timeout=60_000)
        box = plot.bounding_box()
        if box:
            for fx in (0.2, 0.5, 0.8):
                page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -20_000)


def _check(page: Page, beacon: Beacon, where: str) -> None:
    m = page.evaluate(LAYOUT_JS, str(beacon.port))
    assert m["bad"] == [] and m["headings"] == [], (where, m["bad"], m["headings"])


def test_hostile_event_strings_shape_nothing_on_any_page(page: Page, hostile_app) -> None:
    url, beacon = hostile_app
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    # and the agent pages of hostile agents: their names are the page's title (HTML and Markdown
    # ones; the names holding "HEADING" would trip the injected-heading check by design)
    agents = [hostile(beacon.base)["agent"][i] for i in (0, 3)]
    # (a word joiner inside "://" keeps a URL in a name from becoming a link: ui.safe.md_text)
    visits = [*PAGES, *((f"agent?{urlencode({'agent': a})}", a.replace("://", ":\u2060//"))
                        for a in agents)]  # fmt: skip
    for n, (path, heading) in enumerate(visits):
        if 0 < n < len(PAGES) - 1:  # the pages from the sidebar, as a person goes through them
            open_from_sidebar(page, path, heading)
        else:  # the first, the wall (the sidebar carries range=) and the agents' links
            sep = "&" if "?" in path else "?"
            page.goto(f"{url}/{path}{sep}range=24h" if path != "wall" else f"{url}/wall")
        _settle(page, heading)
        if path == "":  # the sidebar pickers list event values too: open each list
            for name in ("Agents", "Modes", "Event types"):
                page.get_by_test_id("stMultiSelect").filter(has_text=name).click()
                expect(page.get_by_role("option").first).to_be_visible(timeout=60_000)
                _check(page, beacon, f"{name} options")
                page.keyboard.press("Escape")
        m = page.evaluate(LAYOUT_JS, str(beacon.port))
        shot = re.sub(r"[^a-z]+", "_", path.split("%")[0]) or "overview"
        page.screenshot(path=str(SCREENSHOT_DIR / f"hostile_{shot}.png"))
        assert m["bad"] == [], (path, m["bad"])
        assert m["headings"] == [], (path, m["headings"])
        assert m["docw"] <= m["innerw"], (path, m)
        assert m["mainw"] <= m["mainc"] + 1, (path, m)
        if heading is None:
            assert m["tiles"] == 5 and m["outside"] == 0, m
            assert m["doch"] <= m["innerh"], m
        assert page.locator('[data-testid="stException"]').count() == 0, path
        body = page.locator("body").inner_text()
        assert not re.search(r"Traceback|StreamlitAPIException", body), path
    page.wait_for_timeout(1000)  # a late image request would land now
    assert beacon.hits == [], beacon.hits
    assert dialogs == [], dialogs
