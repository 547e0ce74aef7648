"""Shared pytest fixtures; the implementations live in `tests/support/`.

moto_endpoint, s3_admin, bucket   -> tests.support.s3server
proxy                             -> tests.support.proxy
browser, page                     -> tests.support.browser
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


# -- dashboard fixtures (the screens' tests) -------------------------------------------------


@dataclass(frozen=True)
class DemoStore:
    """A synced demo table: its source folder, cache, build time and the app's environment."""

    src: Path
    cache: Path
    now: datetime
    settings: Any

    @property
    def env(self) -> dict[str, str]:
        return {
            "O11Y_SOURCE_DIR": str(self.src),
            "O11Y_CACHE_DIR": str(self.cache),
            "O11Y_BACKGROUND_SYNC": "0",
            "O11Y_AGENTS_FILE": str(self.src.parent / "no-agents.toml"),
        }


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> DemoStore:
    """The demo table (seed 7) built at the real clock's now, synced once into a cache."""
    from o11y_data import demo, load_settings, sync

    root = tmp_path_factory.mktemp("demo-store")
    now = datetime.now(UTC)
    src, cache = root / "src", root / "cache"
    demo.build(src, now=now, seed=7)
    settings = load_settings(
        {"O11Y_SOURCE_DIR": str(src), "O11Y_CACHE_DIR": str(cache)}, secrets_paths=[]
    )
    sync(settings)
    return DemoStore(src, cache, now, settings)


@pytest.fixture(scope="session")
def long_table(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Twenty days of known events, synced with rollups (tests.support.rollup_tables)."""
    from tests.support.rollup_tables import build_long_table

    return build_long_table(tmp_path_factory.mktemp("long"))


@pytest.fixture(scope="session")
def months_table(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Ten weeks of known events over whole months, synced with rollups."""
    from tests.support.rollup_tables import build_months_table

    return build_months_table(tmp_path_factory.mktemp("months"))
