"""Shared pytest fixtures; the implementations live in `tests/support/`.

moto_endpoint, s3_admin, bucket   -> tests.support.s3server
proxy                             -> tests.support.proxy
ray_cluster                       -> tests.support.ray_cluster
browser, page, isolated_page      -> tests.support.browser
"""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support import properties  # noqa: F401  (registers the check profile)
from tests.support.browser import browser, isolated_page, page, reusable_page
from tests.support.proxy import proxy
from tests.support.ray_cluster import ray_cluster
from tests.support.s3server import bucket, moto_endpoint, s3_admin

pytest_plugins = ["tests.support.ordering"]

__all__ = [
    "browser",
    "bucket",
    "isolated_page",
    "moto_endpoint",
    "page",
    "proxy",
    "ray_cluster",
    "reusable_page",
    "s3_admin",
]

# A test's marks follow from the fixtures it uses (directly or through other fixtures), so a new
# test is sorted without anyone remembering to mark it. `make check` deselects all four marks;
# a test that starts a server process itself (not through these fixtures) says so with
# `@pytest.mark.server` (or `pytestmark`), and one that runs for long with `@pytest.mark.slow`.
_MARKS_BY_FIXTURE = {
    "browser": {"browser", "page", "isolated_page"},
    "s3": {"moto_endpoint", "s3_admin", "bucket", "proxy"},
    "server": {"demo_app_url"},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the fixtures they use: `browser` (Chromium), `s3` (a moto_server).
    (tests/support/ordering.py then puts the modules holding long tests first.)"""
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


@pytest.fixture(scope="session", autouse=True)
def _keep_all_raw_history() -> Generator[None, None, None]:
    """Fixtures carry fixed dates (and hostile ones, years back) that a raw horizon relative to
    the clock would drop some day: tests keep all raw history (servers they start too) unless
    they set O11Y_RAW_HORIZON, as tests/test_horizon.py does. Session-wide, so module fixtures
    that sync see it too."""
    from o11y_data import config

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(config, "DEFAULT_RAW_HORIZON_S", None)
        mp.setenv("O11Y_RAW_HORIZON", "all")
        yield


@pytest.fixture(scope="session", autouse=True)
def _components_scanned_once() -> Generator[None, None, None]:
    """Every AppTest run asks Streamlit to find installed components, which reads the metadata of
    every installed distribution: about 0.3 s of CPU a run with this virtualenv (Daft, Ray and
    pyiceberg included), over a third of an AppTest's time (measured with cProfile). The installed
    packages do not change during a session, so the scan runs once per process here; a server
    scans once at start anyway."""
    from streamlit.components.v2 import manifest_scanner

    with pytest.MonkeyPatch.context() as mp:
        scan = functools.cache(manifest_scanner.scan_component_manifests)
        mp.setattr(manifest_scanner, "scan_component_manifests", scan)
        yield


@pytest.fixture(scope="session", autouse=True)
def _roomy_sql_console() -> Generator[None, None, None]:
    """The SQL console's queries (pages under AppTest, in this process) get the tests' roomy
    time limit (tests/support/cli.py says why); no test here is about the console's 10 s."""
    from dataclasses import replace

    from tests.support.cli import ROOMY_SQL_TIMEOUT_S
    from ui import sql_console

    roomy = replace(sql_console.SCREEN_LIMITS, timeout_s=ROOMY_SQL_TIMEOUT_S)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sql_console, "SCREEN_LIMITS", roomy)
        mp.setattr(sql_console, "DOWNLOAD_TIMEOUT_S", ROOMY_SQL_TIMEOUT_S)
        yield


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
    """The demo table (seed 7) built at the real clock's now, synced into a cache.

    The source is built and synced once per run and shared by every xdist worker (it is only
    read); each worker gets a copy of the synced cache of its own (apps and syncs write there).
    A cache holds no path of its own (only the source's), so a copy is the synced store."""
    from o11y_data import load_settings

    src, synced, now = _shared_demo_source(tmp_path_factory)
    cache = tmp_path_factory.mktemp("demo-store") / "cache"
    shutil.copytree(synced, cache)
    settings = load_settings(
        {"O11Y_SOURCE_DIR": str(src), "O11Y_CACHE_DIR": str(cache)}, secrets_paths=[]
    )
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


def _shared_demo_source(factory: pytest.TempPathFactory) -> tuple[Path, Path, datetime]:
    """(source folder, its synced cache, build time) of the run's demo table: the first worker
    to get here builds and syncs it under a lock in the run's temp root (the parent of each
    worker's); the others wait."""
    from o11y_data import load_settings, sync
    from o11y_data.ingest import demo

    base = factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    shared = root / "shared-demo"
    src, cache, built = shared / "src", shared / "cache", shared / "built-at"
    shared.mkdir(exist_ok=True)
    with (root / "shared-demo.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not built.exists():
            now = datetime.now(UTC)
            # a build or sync that failed half-way is redone
            shutil.rmtree(src, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
            partial = src.with_name("src.partial")
            shutil.rmtree(partial, ignore_errors=True)
            demo.build(partial, now=now, seed=7)
            partial.rename(src)
            env = {"O11Y_SOURCE_DIR": str(src), "O11Y_CACHE_DIR": str(cache)}
            sync(load_settings(env, secrets_paths=[]))
            built.write_text(now.isoformat())
    return src, cache, datetime.fromisoformat(built.read_text())


@pytest.fixture(scope="session")
def demo_app_url(demo_store: DemoStore) -> Iterator[str]:
    """The app served on the demo store, one server per test process for the browser tests that
    only read it (a server costs about 2 s of CPU to start and import the app). A test about a
    server's own life (its first request, a restart) starts one of its own."""
    from tests.support.app_server import running_streamlit

    with running_streamlit(
        Path(__file__).resolve().parent.parent / "app.py", demo_store.env
    ) as url:
        yield url
