"""One pass of every page in headless Chromium over a store holding values outside the contract
(issue 18, point 1): each page draws without an error, and the health page counts the values by
field. The hostile rows and their expected counts: tests/support/hostile.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from o11y_data import load_settings, sync
from tests.support.app_server import running_streamlit
from tests.support.browser import open_from_sidebar, run_finished
from tests.support.hostile import write_hostile_source
from tests.support.tables import local_env

REPO = Path(__file__).resolve().parent.parent
PAGES = [
    ("", "Overview"),
    ("timeline", "Activity timeline"),
    ("modes", "Modes"),
    ("errors", "Errors"),
    ("health", "Pipeline health"),
    ("explorer", "Explorer"),
    ("summary", "Summary"),
    ("sql?q=SELECT%20*%20FROM%20events", "SQL console"),
    ("alerts", "Alerts"),
]
EXCEPTION_TEXT = re.compile(r"Traceback|\b[A-Z]\w*(Error|Exception):|StreamlitAPIException")

pytestmark = pytest.mark.browser


def test_every_page_draws_over_values_outside_the_contract(page: Page, tmp_path: Path):
    data = write_hostile_source(tmp_path / "src", datetime.now(UTC))
    env = local_env(tmp_path / "src", tmp_path, O11Y_BACKGROUND_SYNC="0")
    env["O11Y_ALERTS_FILE"] = str(tmp_path / "no-alerts.toml")
    sync(load_settings(env, secrets_paths=[]))
    with running_streamlit(REPO / "app.py", env) as url:
        page.goto(f"{url}/")
        for path, heading in PAGES:
            if path.startswith("sql?"):  # a query in the link
                page.goto(f"{url}/{path}")
            elif path:  # from the sidebar, as a person goes from page to page
                open_from_sidebar(page, path, heading)
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible(
                timeout=60_000
            )
            run_finished(page, timeout=60_000)
            assert page.get_by_test_id("stException").count() == 0, path
            assert page.get_by_test_id("stAlertContentError").count() == 0, path
            text = page.locator("body").inner_text()
            assert not EXCEPTION_TEXT.search(text), (path, EXCEPTION_TEXT.search(text))
            if path == "health":
                n = data.flags["ts_future"]
                expect(page.get_by_text(f"clock skew: {n} events from the future")).to_be_visible()
