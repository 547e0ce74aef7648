"""The running app in headless Chromium: every page draws, no errors, filters survive a reload.

One app server for the module (against the synced demo fixture, no background sync). Each page's
screenshot goes to tests/screenshots/ (gitignored) for people to look at.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Page, Request, expect

from tests.support.app_server import running_streamlit
from tests.support.browser import POLL_MS, SCREENSHOT_DIR, open_from_sidebar, run_finished

REPO = Path(__file__).resolve().parent.parent

# url path, heading, charts the page draws at least
PAGES = [
    ("", "Overview", 1),
    ("timeline", "Activity timeline", 2),  # lines, and the strip (dense: its heatmap)
    ("modes", "Modes", 5),
    ("errors", "Errors", 3),
    ("health", "Pipeline health", 2),
    ("explorer", "Explorer", 0),
]
EXCEPTION_TEXT = re.compile(r"Traceback|\b[A-Z]\w*(Error|Exception):|StreamlitAPIException")


def _settle(page: Page, heading: str, charts: int) -> None:
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible(timeout=30_000)
    run_finished(page, timeout=30_000)
    if heading == "Explorer":
        expect(page.get_by_text("matching events")).to_be_visible(timeout=30_000)
        expect(page.get_by_test_id("stDataFrame").first).to_be_visible(timeout=30_000)
        expect(page.get_by_role("button", name=re.compile(r"CSV \("))).to_be_visible()
        expect(page.get_by_role("button", name=re.compile(r"Parquet \("))).to_be_visible()
    if charts:
        page.mouse.wheel(0, 10_000)  # charts below the fold are drawn when scrolled to
        page.wait_for_function(
            "n => [...document.querySelectorAll('.js-plotly-plot')]"
            ".filter(p => p.querySelector('.main-svg')).length >= n",
            arg=charts,
            timeout=30_000,
            polling=POLL_MS,
        )
        page.mouse.wheel(0, -10_000)


def _range_box(page: Page):
    return page.get_by_role("combobox", name="Time range (UTC)")


def _assert_clean(page: Page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    text = page.locator("body").inner_text()
    assert not EXCEPTION_TEXT.search(text), EXCEPTION_TEXT.search(text)


def test_every_page_draws_without_errors_or_a_request_to_another_host(
    page: Page, demo_app_url: str
) -> None:
    """Nothing a page loads comes from elsewhere (the tab's icon included): the dashboard works on
    a closed network and tells no third party that it is open."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    own = urlsplit(demo_app_url).netloc
    elsewhere: list[str] = []

    def note_if_elsewhere(request: Request) -> None:
        url = urlsplit(request.url)
        if url.scheme not in ("data", "blob") and url.netloc != own:
            elsewhere.append(request.url)

    page.on("request", note_if_elsewhere)
    page.goto(f"{demo_app_url}/")
    for path, heading, charts in PAGES:
        if path:  # the others from the sidebar, as a person goes from page to page
            open_from_sidebar(page, path, heading)
        _settle(page, heading, charts)
        assert page.locator(".js-plotly-plot").count() >= charts, heading
        _assert_clean(page)
        page.screenshot(path=str(SCREENSHOT_DIR / f"page_{path or 'overview'}.png"), full_page=True)
    expect(page.locator("link[rel='shortcut icon']")).to_have_attribute(
        "href", re.compile("^" + re.escape(demo_app_url) + "/media/")
    )
    assert elsewhere == [], elsewhere


def test_filter_lives_in_the_url(page: Page, demo_app_url: str) -> None:
    page.goto(f"{demo_app_url}/modes")
    _settle(page, "Modes", 5)
    box = page.get_by_test_id("stSelectbox").filter(has_text="Time range (UTC)")
    box.click()
    page.get_by_role("option", name="Last 6 hours").click()
    page.wait_for_url(re.compile(r"range=6h"), timeout=15_000)
    _settle(page, "Modes", 5)
    expect(page.get_by_text("Last 6 hours").first).to_be_visible()

    page.reload()
    _settle(page, "Modes", 5)
    assert "range=6h" in page.url
    expect(_range_box(page)).to_have_value("Last 6 hours")
    _assert_clean(page)

    # moving to another page through the sidebar keeps the filter
    page.get_by_test_id("stSidebarNav").get_by_text("Errors", exact=True).click()
    _settle(page, "Errors", 3)
    page.wait_for_url(re.compile(r"/errors\?.*range=6h"), timeout=15_000)
    expect(_range_box(page)).to_have_value("Last 6 hours")
    page.screenshot(path=str(SCREENSHOT_DIR / "filter_6h_errors.png"), full_page=True)


def test_bad_url_value_gives_a_notice(page: Page, demo_app_url: str) -> None:
    page.goto(f"{demo_app_url}/overview?range=99y&agent=%27%3B%20DROP%20TABLE%20events%3B--")
    _settle(page, "Overview", 1)
    expect(page.get_by_text("Ignored unknown time range").first).to_be_visible()
    expect(page.get_by_text("Ignored unknown agent").first).to_be_visible()
    _assert_clean(page)


def test_a_deep_link_as_the_first_visit_goes_through_app_py(page: Page, demo_store) -> None:
    # A fresh server whose first request is a deep link (a TV or a shared link after a restart):
    # the page must still get app.py's navigation, filters and freshness bar.
    with running_streamlit(REPO / "app.py", demo_store.env) as url:
        page.goto(f"{url}/errors?range=6h")
        _settle(page, "Errors", 3)
        expect(_range_box(page)).to_have_value("Last 6 hours")
        expect(page.get_by_test_id("stSidebarNav").get_by_text("Pipeline health")).to_be_visible()
        expect(page.get_by_text("Last sync").first).to_be_visible()
        _assert_clean(page)


def test_time_zone_from_the_link_shows_and_survives_navigation(
    page: Page, demo_app_url: str
) -> None:
    page.goto(f"{demo_app_url}/?tz=Asia/Tokyo")
    _settle(page, "Overview", 1)
    expect(page.get_by_role("combobox", name="Time zone")).to_have_value("Asia/Tokyo")
    expect(page.get_by_role("combobox", name="Time range (Asia/Tokyo)")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Newest event .*Asia/Tokyo")).first).to_be_visible()
    _assert_clean(page)
    page.screenshot(path=str(SCREENSHOT_DIR / "tz_tokyo_overview.png"), full_page=True)

    page.get_by_test_id("stSidebarNav").get_by_text("Modes", exact=True).click()
    _settle(page, "Modes", 5)
    page.wait_for_url(re.compile(r"/modes\?.*tz=Asia(%2F|/)Tokyo"), timeout=15_000)
    expect(page.get_by_role("combobox", name="Time zone")).to_have_value("Asia/Tokyo")
    _assert_clean(page)
