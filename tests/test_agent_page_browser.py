"""The agent page in a real browser: from the overview, selecting an agent's row opens its page in
one click (the new user's question "which agent is in trouble, and what do its failing cycles look
like"), and so does a row of the agent page's own list, worst first."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from o11y_data.ingest.iceberg_write import TableWriter, folder_put, unstructured_table
from tests.support.app_server import running_streamlit
from tests.support.tables import local_env
from tests.test_agent_page import CALM, ERRING, _rows

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("agent-browser")
    t = datetime.now(UTC).replace(second=0, microsecond=0)
    rows = [r for r in _rows(t) if r[0] > t - timedelta(hours=26)]  # a day is enough here
    writer = TableWriter(
        put=folder_put(root / "src"), bucket="agent-blobs", table_prefix="__r2_data_catalog/c/t/"
    )
    writer.append([unstructured_table(rows)])
    with running_streamlit(REPO / "app.py", local_env(root / "src", root)) as url:
        yield url


def _select_first_row(page: Page, table_index: int) -> None:
    """Tick the selection box of a dataframe's first row (the grid is a canvas)."""
    grid = page.get_by_test_id("stDataFrame").nth(table_index)
    grid.scroll_into_view_if_needed()
    expect(grid).to_be_visible(timeout=60_000)
    box = grid.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 15, box["y"] + 35 + 17)  # header ~35 px, rows ~35 px


def _agent_in_url(page: Page) -> str | None:
    return (parse_qs(urlsplit(page.url).query).get("agent") or [None])[0]


def test_a_row_opens_the_agent_page_from_the_overview_and_from_the_list(page: Page, app_url):
    page.goto(f"{app_url}/")
    expect(page.get_by_role("heading", name="Agents", exact=True)).to_be_visible(timeout=60_000)
    # [0]: the agents needing attention, [1]: events by type, [2]: every agent, busiest first
    _select_first_row(page, 2)
    expect(page).to_have_url(re.compile(r"/agent\?(.*&)?agent=did%3Acf%3Acalmcalm"), timeout=60_000)
    expect(page.get_by_role("heading", name=CALM, exact=True)).to_be_visible(timeout=60_000)
    expect(page.get_by_role("heading", name="Recent cycles with errors")).to_be_visible()
    assert _agent_in_url(page) == CALM

    page.goto(f"{app_url}/agent")
    expect(page.get_by_role("heading", name="Agents, worst first")).to_be_visible(timeout=60_000)
    _select_first_row(page, 0)  # the worst: the one silent for 40 minutes (stale)
    expect(page.get_by_role("heading", name="Silences")).to_be_visible(timeout=60_000)
    worst = _agent_in_url(page)
    assert worst not in (None, CALM, ERRING)

    # The newcomer's question from the overview: the agent in trouble is the first row under
    # the tiles, and one click shows its story (since when, its failing cycles).
    page.goto(f"{app_url}/")
    expect(page.get_by_role("heading", name="Agents needing attention")).to_be_visible(
        timeout=60_000
    )
    _select_first_row(page, 0)
    expect(page.get_by_role("heading", name="Silences")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("heading", name="Recent cycles with errors")).to_be_visible()
    assert _agent_in_url(page) == worst
