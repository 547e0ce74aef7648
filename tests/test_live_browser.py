"""An ordinary page left open keeps itself current in a real browser: it re-reads the data and the
freshness bar in place (no reload), shows an agent that appeared after it opened, and its ages grow.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from o11y_data.ingest.iceberg_write import TableWriter, folder_put, unstructured_table
from tests.support.app_server import running_streamlit
from tests.support.browser import SCREENSHOT_DIR, ServerMessages
from tests.support.tables import local_env
from tests.support.wait import page_pause, wait_until

REPO = Path(__file__).resolve().parent.parent
PREFIX = "__r2_data_catalog/cat0/tbl0/"
NEW_AGENT = "did:cf:latecomerlatecomer0099"

pytestmark = pytest.mark.browser


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def cycles(agent: str, times: list[datetime]) -> list[tuple[datetime, str]]:
    rows = []
    for i, t in enumerate(times):
        event = {"event_type": "agent.cycle", "agent": agent, "mode": "think",
                 "durationMs": 1000 + i, "toolCalls": 1, "errors": 0, "_ts": _iso(t)}  # fmt: skip
        rows.append((t + timedelta(seconds=1), json.dumps(event)))
    return rows


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, TableWriter]]:
    """One server for the module: only the refresh test adds to its source (an agent), and the
    other test counts no agents."""
    tmp_path = tmp_path_factory.mktemp("live")
    now = datetime.now(UTC)
    writer = TableWriter(
        put=folder_put(tmp_path / "src"), bucket="agent-blobs", table_prefix=PREFIX
    )
    old = [now - timedelta(minutes=m) for m in (30, 20, 10)]
    writer.append(
        [
            unstructured_table(
                cycles("did:cf:alphaalphaalpha0001", old)
                + cycles("did:cf:bravobravobravo0002", [*old, now - timedelta(seconds=5)])
            )
        ]
    )
    env = local_env(tmp_path / "src", tmp_path, O11Y_SYNC_INTERVAL="5", O11Y_BACKGROUND_SYNC="1")
    with running_streamlit(REPO / "app.py", env) as url:
        yield url, writer


def _metric(page: Page, label: str):
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")


def _newest_age_s(page: Page) -> int:
    """The freshness bar's "Newest event … ago", in seconds (the app's one age format)."""
    text = page.get_by_text(re.compile(r"Newest event .* ago")).first.inner_text()
    m = re.search(r"Newest event (?:(\d+)m )?(\d+)s ago|Newest event (\d+)m ago", text)
    assert m, text
    if m.group(3):
        return int(m.group(3)) * 60
    return int(m.group(1) or 0) * 60 + int(m.group(2))


def test_an_open_overview_refreshes_in_place_and_shows_a_new_agent(page: Page, live_app) -> None:
    url, writer = live_app
    page.goto(f"{url}/?refresh=10s&range=6h")
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible(timeout=60_000)
    expect(_metric(page, "Agents active")).to_have_text("2", timeout=60_000)
    expect(page.get_by_role("combobox", name="Refresh")).to_have_value("Every 10 s", timeout=30_000)
    page.evaluate("window.__liveMarker = 'no reload'")
    first_age = _newest_age_s(page)

    # Ages grow by themselves: the freshness bar is re-read on every refresh.
    deadline = time.monotonic() + 40
    grown = first_age
    while time.monotonic() < deadline and grown <= first_age:
        page.wait_for_timeout(1000)
        grown = _newest_age_s(page)
    assert grown > first_age, (first_age, grown)

    # A new agent lands in the source after the page opened: the open page shows it.
    writer.append([unstructured_table(cycles(NEW_AGENT, [datetime.now(UTC)]))])
    expect(_metric(page, "Agents active")).to_have_text("3", timeout=60_000)

    assert page.evaluate("window.__liveMarker") == "no reload"
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    # the view the user chose is untouched
    assert "refresh=10s" in page.url and "range=6h" in page.url
    expect(page.get_by_role("combobox", name="Time range (UTC)")).to_have_value("Last 6 hours")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "live_overview.png"), full_page=True)


def test_refresh_off_keeps_the_page_still(isolated_page: Page, live_app) -> None:
    """The pages' clock (Playwright's fake timers) runs six minutes on, past the longest refresh
    interval and the default: the page with refresh=5m asks the server for a rerun, the same
    page with refresh=off asks for nothing and is sent nothing. No wait on the real clock."""
    url, _ = live_app
    page = isolated_page  # the fake clock is the context's: a context of its own
    page.clock.install()  # for the whole context: both pages below
    still, ticking = page, page.context.new_page()
    messages = {"off": ServerMessages(still), "5m": ServerMessages(ticking)}
    before: dict[str, tuple[int, int]] = {}
    for p, choice, label in ((still, "off", "Off"), (ticking, "5m", "Every 5 minutes")):
        p.goto(f"{url}/?refresh={choice}")
        expect(p.get_by_role("heading", name="Overview", exact=True)).to_be_visible(timeout=60_000)
        expect(p.get_by_role("combobox", name="Refresh")).to_have_value(label, timeout=30_000)
        received = messages[choice].wait_idle(p)
        before[choice] = (messages[choice].sent, received)

    page.clock.run_for("06:00")
    # the 5-minute page asks for its rerun and gets it: six minutes did pass for the pages' timers
    sent_5m, received_5m = before["5m"]
    wait_until(  # bounded so that a broken timer fails, not hangs
        lambda: messages["5m"].sent > sent_5m and len(messages["5m"].received) > received_5m,
        limit_s=60,
        what="the control page's rerun, asked for and answered",
        every_s=0.1,
        pause=page_pause(ticking),
    )
    assert messages["5m"].sent > sent_5m, "the control page never asked for its rerun"
    messages["5m"].wait_idle(ticking)
    # the page with refresh off asked nothing, and the server sent it nothing
    assert (messages["off"].sent, len(messages["off"].received)) == before["off"]
    expect(still.get_by_role("combobox", name="Refresh")).to_have_value("Off")
