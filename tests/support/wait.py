"""Waiting on a condition, never on time: poll until it holds, fail naming it past a bound."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from playwright.sync_api import Page

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    *,
    limit_s: float,
    what: str | Callable[[], str],
    every_s: float = 0.05,
    pause: Callable[[float], None] = time.sleep,
) -> T:
    """``condition()``'s first truthy answer, polled every ``every_s``; an AssertionError naming
    ``what`` (a string, or a function for a message with the latest state) past ``limit_s``.
    The bound is on waiting (a loaded machine is slow), not a timing assertion.

    ``pause`` waits between polls: :func:`page_pause` for a condition on what a browser page
    reports, which Playwright hands over only while the test is calling into it."""
    deadline = time.monotonic() + limit_s
    while True:
        got = condition()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what() if callable(what) else what}")
        pause(every_s)


def page_pause(page: Page) -> Callable[[float], None]:
    """A pause that lets Playwright deliver ``page``'s events (its sync API hands them to Python
    only during a call into it; a ``time.sleep`` would hold them back)."""
    return lambda seconds: page.wait_for_timeout(seconds * 1000)
