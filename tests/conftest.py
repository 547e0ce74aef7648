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

# A test's marks follow from the fixtures it uses (directly or through other fixtures), so a new
# test is sorted without anyone remembering to mark it. `make check` deselects all four marks;
# a test that starts a server process itself (not through these fixtures) says so with
# `@pytest.mark.server` (or `pytestmark`), and one that runs for long with `@pytest.mark.slow`.
_MARKS_BY_FIXTURE = {
    "browser": {"browser", "page"},
    "s3": {"moto_endpoint", "s3_admin", "bucket", "proxy"},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the fixtures they use: `browser` (Chromium), `s3` (a moto_server)."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        # a parametrized argument is a value, not the fixture (`parametrize("page", [...])`)
        used -= set(getattr(getattr(item, "callspec", None), "params", {}))
        for mark, fixtures in _MARKS_BY_FIXTURE.items():
            if fixtures & used:
                item.add_marker(getattr(pytest.mark, mark))


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
