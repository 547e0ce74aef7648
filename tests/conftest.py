"""Shared pytest fixtures; the implementations live in `tests/support/`.

moto_endpoint, s3_admin, bucket   -> tests.support.s3server
proxy                             -> tests.support.proxy
browser, page                     -> tests.support.browser
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from tests.support.browser import browser, page
from tests.support.proxy import proxy
from tests.support.s3server import bucket, moto_endpoint, s3_admin

__all__ = ["browser", "bucket", "moto_endpoint", "page", "proxy", "s3_admin"]

_BROWSER_FIXTURES = {"browser", "page"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests using the browser fixtures get the `browser` marker (`-m "not browser"`)."""
    for item in items:
        if _BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Expose each phase's report as `item.rep_<phase>` (the `page` fixture screenshots
    failures)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
