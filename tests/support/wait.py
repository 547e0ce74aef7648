"""Waiting on a condition, never on time: poll until it holds, fail naming it past a bound."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    *,
    limit_s: float,
    what: str | Callable[[], str],
    every_s: float = 0.05,
) -> T:
    """``condition()``'s first truthy answer, polled every ``every_s``; an AssertionError naming
    ``what`` (a string, or a function for a message with the latest state) past ``limit_s``.
    The bound is on waiting (a loaded machine is slow), not a timing assertion."""
    deadline = time.monotonic() + limit_s
    while True:
        got = condition()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what() if callable(what) else what}")
        time.sleep(every_s)
