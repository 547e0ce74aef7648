"""Headless Chromium through Playwright's sync API, using the system browser.

No Playwright-managed browser download is used: Debian's `/usr/bin/chromium` is launched
directly. Without it the browser tests are skipped locally, but fail under CI (CI=true).

Fixtures:
    browser (session): a launched `playwright.sync_api.Browser`.
    page (function): the test process's one reusable page (viewport 1600x1000), handed over
        blank, its cookies and the last site's storage cleared, its listeners removed after.
    isolated_page (function): a page in a context of its own, closed afterwards; for a test
        that changes the whole context (`page.clock.install()`, init scripts, permissions).
    If a test fails, a screenshot of its page is written to tests/screenshots/<test>.png.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, WebSocket, expect, sync_playwright
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from o11y_data.routes import ROUTES
from tests.support.wait import page_pause, wait_until

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
VIEWPORT = {"width": 1600, "height": 1000}


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


def _screenshot_if_failed(target: Page, request: pytest.FixtureRequest) -> None:
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.failed:
        return
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:]
    try:
        target.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), full_page=True)
    except Exception as exc:  # a broken page must not mask the real failure
        print(f"screenshot failed: {exc}")


class ReusablePage:
    """One page kept open from test to test in a test process.

    A new browser context per test costs a new renderer process and a cold compile of
    Streamlit's scripts: about 4 s of Chromium's CPU for a test's first page load, against 3 s
    for the whole test when the page is reused (measured side by side, eight tests of one page
    load each: 55-59 s against 25 s). Every test still loads its pages afresh: a new document,
    connection and Streamlit session; only the browser's caches are warm, as a returning user's.
    """

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.context: BrowserContext | None = None
        self.page: Page | None = None

    def hand_out(self) -> tuple[Page, list[tuple[str, Callable]]]:
        """The page, blank, at the default viewport; and the list its new listeners go to."""
        if self.page is None or self.page.is_closed():
            self.close()
            self.context = self.browser.new_context(viewport=VIEWPORT)
            self.page = self.context.new_page()
        added: list[tuple[str, Callable]] = []
        target = self.page

        def on(event: str, handler: Callable) -> None:
            added.append((event, handler))
            Page.on(target, event, handler)

        def once(event: str, handler: Callable) -> None:
            added.append((event, handler))
            Page.once(target, event, handler)

        # so that teardown can remove them
        target.on, target.once = on, once  # type: ignore[method-assign]
        return target, added

    def take_back(self, added: list[tuple[str, Callable]]) -> None:
        """Blank the page, forget the test's cookies, storage and listeners; a page that
        cannot be reset is closed, and the next test gets a new one."""
        assert self.page is not None and self.context is not None
        try:
            del self.page.on, self.page.once
            for event, handler in added:
                self.page.remove_listener(event, handler)
            if self.page.url.startswith("http"):
                self.page.evaluate("() => { localStorage.clear(); sessionStorage.clear(); }")
            self.page.goto("about:blank")
            self.context.clear_cookies()
            self.page.set_viewport_size(VIEWPORT)
        except Exception as exc:
            print(f"page reset failed, a new one comes next: {exc}")
            self.close()

    def close(self) -> None:
        if self.context is not None:
            try:
                self.context.close()
            except Exception as exc:  # the browser may be gone already
                print(f"closing the reused context failed: {exc}")
        self.context = self.page = None


@pytest.fixture(scope="session")
def reusable_page(browser: Browser) -> Iterator[ReusablePage]:
    reusable = ReusablePage(browser)
    try:
        yield reusable
    finally:
        reusable.close()


@pytest.fixture
def page(reusable_page: ReusablePage, request: pytest.FixtureRequest) -> Iterator[Page]:
    """The test process's reusable page: blank, 1600x1000, no cookies; reset after the test."""
    target, added = reusable_page.hand_out()
    try:
        yield target
    finally:
        _screenshot_if_failed(target, request)
        reusable_page.take_back(added)


@pytest.fixture
def isolated_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A new page in its own browser context (1600x1000), closed after the test."""
    context = browser.new_context(viewport=VIEWPORT)
    new_page = context.new_page()
    try:
        yield new_page
    finally:
        _screenshot_if_failed(new_page, request)
        context.close()


def open_from_sidebar(page: Page, path: str, heading: str | None = None) -> None:
    """Open the app's page at ``path`` from its sidebar link, as a person does: its URL, its
    heading (``heading``, the route's title by default) and nothing left of the page before.

    The app's navigation reruns the script over the open connection instead of loading the
    whole frontend again: about half of Chromium's CPU for a page (1.3 s against 2.7 s per page,
    measured side by side). The URL's filters go along (tests/test_browser.py proves it)."""
    title = next(r.title for r in ROUTES if r.path == path)
    link = (
        page.get_by_test_id("stSidebarNav")
        .get_by_role("link")
        .filter(has=page.get_by_text(title, exact=True))
    )
    href = urlsplit(link.get_attribute("href") or "").path
    link.click()
    page.wait_for_url(lambda url: urlsplit(url).path == href, timeout=30_000)
    expect(page.get_by_role("heading", name=heading or title, exact=True)).to_be_visible(
        timeout=60_000
    )
    # the last page's elements stay, marked stale, until the new page's run has finished
    page.wait_for_function(
        "() => !document.querySelector('[data-stale=\"true\"]')",
        timeout=60_000,
        polling=POLL_MS,
    )


def run_finished(page: Page, *, timeout: int = 60_000) -> None:
    """Wait until the page's script run has finished, as the frontend records it (``stApp``'s
    ``data-test-script-state``); called once something the run draws is visible, so that the
    run is this one and not the app's first, which reruns into the page.

    The status widget going away is no such sign: it appears only once a run has gone on for a
    while (measured on the health page: no widget at 2.35 s, the run's last message at 2.69 s)."""
    expect(page.get_by_test_id("stApp")).to_have_attribute(
        "data-test-script-state", "notRunning", timeout=timeout
    )


@dataclass(frozen=True)
class Received:
    """One message the server sent a page: its type, and for the two that mark a run's end,
    how the run ended and whether a script is still running."""

    kind: str
    finished: str | None = None  # script_finished: FINISHED_SUCCESSFULLY, ...
    running: bool | None = None  # session_status_changed: script_is_running


class ServerMessages:
    """Every message the server sends ``page`` over Streamlit's websocket, decoded, in order.

    Made before the page opens. Playwright hands a frame to Python when the test next calls into
    it, possibly seconds after the browser got it, so a test counts messages from a point in the
    conversation (:meth:`wait_idle`) and never by the time Python saw them."""

    def __init__(self, page: Page) -> None:
        self.received: list[Received] = []
        self.sent = 0
        page.on("websocket", self._follow)

    def _follow(self, ws: WebSocket) -> None:
        ws.on("framereceived", self._decode)
        ws.on("framesent", self._count_sent)

    def _count_sent(self, _payload: str | bytes) -> None:
        self.sent += 1

    def _decode(self, payload: str | bytes) -> None:
        msg = ForwardMsg.FromString(payload if isinstance(payload, bytes) else payload.encode())
        kind = msg.WhichOneof("type") or ""
        if kind == "script_finished":
            status = ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished)
            self.received.append(Received(kind, finished=status))
        elif kind == "session_status_changed":
            running = msg.session_status_changed.script_is_running
            self.received.append(Received(kind, running=running))
        else:
            self.received.append(Received(kind))

    def idle(self) -> bool:
        """A run has finished (not one cut short for a rerun) and the last word was that no
        script is running: every message of the runs so far is in :attr:`received`."""
        done = any(m.finished == "FINISHED_SUCCESSFULLY" for m in self.received)
        return done and self.received[-1].running is False

    def wait_idle(self, page: Page, *, limit_s: float = 60) -> int:
        """How many messages had come when the page fell idle; an AssertionError naming the
        last message past ``limit_s``."""
        wait_until(
            self.idle,
            limit_s=limit_s,
            what=lambda: f"the page to fall idle; last message: {self.received[-1:]}",
            pause=page_pause(page),
        )
        return len(self.received)
