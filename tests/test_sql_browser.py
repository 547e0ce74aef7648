"""The SQL console in headless Chromium: type a query, see the table and chart, share the link."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from playwright.sync_api import Page, expect

from tests.support.browser import POLL_MS, SCREENSHOT_DIR, run_finished

REPO = Path(__file__).resolve().parent.parent
QUERY = (
    "SELECT date_trunc('hour', ts) AS hour, count(*) AS cycles FROM cycles GROUP BY 1 ORDER BY 1"
)


def _settled(page: Page) -> None:
    expect(page.get_by_role("heading", name="SQL console", exact=True)).to_be_visible(
        timeout=30_000
    )
    run_finished(page, timeout=30_000)


def _result_shown(page: Page) -> None:
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text(re.compile(r"\d+ rows in [\d.]+ s"))).to_be_visible()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.js-plotly-plot')]"
        ".some(p => p.querySelector('.main-svg .scatterlayer .trace'))",
        timeout=30_000,
        polling=POLL_MS,
    )
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0


def test_a_typed_query_shows_table_and_chart_and_its_link_reopens_it(page: Page, demo_app_url: str):
    page.goto(f"{demo_app_url}/sql")
    _settled(page)
    box = page.get_by_role("textbox", name="SQL")
    box.fill(QUERY)
    page.get_by_role("button", name="Run").click()
    page.wait_for_url(re.compile(r"/sql\?.*q="), timeout=15_000)
    _result_shown(page)
    assert parse_qs(urlparse(page.url).query)["q"] == [QUERY]
    rows_text = page.get_by_text(re.compile(r"\d+ rows in")).inner_text()
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "page_sql.png"), full_page=True)

    # the shared link opens the same result in a fresh browser context (another person: no
    # cookie or storage of the first; the query and its answer come from the link alone)
    other = page.context.browser.new_context(viewport={"width": 1600, "height": 1000})
    try:
        p2 = other.new_page()
        p2.goto(page.url)
        _settled(p2)
        _result_shown(p2)
        expect(p2.get_by_role("textbox", name="SQL")).to_have_value(QUERY)
        again = p2.get_by_text(re.compile(r"\d+ rows in")).inner_text()
        assert again.split(" in ")[0] == rows_text.split(" in ")[0]
    finally:
        other.close()


def test_the_summary_page_draws_its_table(page: Page, demo_app_url: str):
    page.goto(f"{demo_app_url}/summary")
    expect(page.get_by_role("heading", name="Summary", exact=True)).to_be_visible(timeout=30_000)
    run_finished(page, timeout=30_000)
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible(timeout=30_000)
    expect(page.get_by_role("button", name="CSV", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Parquet", exact=True)).to_be_visible()
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    page.screenshot(path=str(SCREENSHOT_DIR / "page_summary.png"), full_page=True)
