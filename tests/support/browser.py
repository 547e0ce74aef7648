"""Headless Chromium through Playwright's sync API, using the system browser.

No Playwright-managed browser download is used: Debian's `/usr/bin/chromium` is launched
directly. Without it the browser tests are skipped locally, but fail under CI (CI=true).

Fixtures:
    browser (session): a launched `playwright.sync_api.Browser`.
    page (function): a fresh page (own context, viewport 1600x1000), closed afterwards.
        If the test fails, a screenshot is written to tests/screenshots/<test>.png.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM_PATH = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
# `wait_for_function` polls on every animation frame unless told otherwise, which keeps the
# renderer drawing 60 frames a second for as long as a test waits (about 1 s of Chromium's CPU per
# 10 s waited, measured); every 100 ms is soon enough for a test.
POLL_MS = 100
SCREENSHOT_DIR = Path(__file__).resolve().parent.parent / "screenshots"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_chromium() -> None:
    """Skip (locally) or fail (in CI) when the system Chromium is missing."""
    if CHROMIUM_PATH.exists():
        return
    reason = f"{CHROMIUM_PATH} not found (install Debian's `chromium` package)"
    if in_ci():
        pytest.fail(f"{reason}; browser tests cannot be skipped in CI", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """A headless system Chromium driven by Playwright (sync API)."""
    require_chromium()
    with sync_playwright() as pw:
        instance = pw.chromium.launch(
            executable_path=str(CHROMIUM_PATH), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A new page (in its own browser context) per test; screenshot saved on failure."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    new_page = context.new_page()
    try:
        yield new_page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:]
            try:
                new_page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), full_page=True)
            except Exception as exc:  # a broken page must not mask the real failure
                print(f"screenshot failed: {exc}")
        context.close()
