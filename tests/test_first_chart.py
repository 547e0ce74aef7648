"""Issue 20, point 6: ``make run`` builds (or reuses) the demo store before the server answers,
so the first page after the health check draws a chart without waiting for a demo build.
(The figure itself, seconds from healthy to the first chart, is ``bench/first_chart.py``'s.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from o11y_data import load_settings
from o11y_data.cli import main as cli_main
from o11y_data.ingest import demo
from o11y_data.ingest.store import Store
from tests.support.make_run import REPO, start_make_run

CHART = ".js-plotly-plot .main-svg"


def _store(cache: Path) -> Store:
    return Store(load_settings({"O11Y_CACHE_DIR": str(cache)}, secrets_paths=[]).store_dir)


def test_make_run_prepares_the_demo_before_it_starts_the_server():
    out = subprocess.run(
        ["make", "-n", "-o", "venv", "run", f"BIN={Path(sys.executable).parent}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    prepare = next(i for i, line in enumerate(out) if "-m o11y_data prepare" in line)
    serve = next(i for i, line in enumerate(out) if "streamlit run app.py" in line)
    assert prepare < serve


@pytest.mark.slow
def test_prepare_builds_and_syncs_the_demo_once_then_reuses_it(tmp_path, monkeypatch, capsys):
    for key in ("O11Y_SOURCE_DIR", "O11Y_R2_ENDPOINT", "O11Y_R2_ACCOUNT_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("O11Y_CACHE_DIR", str(tmp_path / "cache"))
    assert cli_main(["prepare"]) == 0
    assert "building" in capsys.readouterr().out
    store = _store(tmp_path / "cache")
    assert store.current_number() == 1
    state = demo.demo_folder(load_settings(secrets_paths=[])) / demo.STATE_FILE
    built = state.stat().st_mtime_ns
    assert cli_main(["prepare"]) == 0
    assert "reusing" in capsys.readouterr().out
    assert store.current_number() == 1 and state.stat().st_mtime_ns == built


def test_prepare_leaves_a_configured_source_to_the_app(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("O11Y_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("O11Y_SOURCE_DIR", str(tmp_path / "src"))
    assert cli_main(["prepare"]) == 0
    assert "syncs it in the background" in capsys.readouterr().out
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("CURRENT"))


@pytest.mark.server
@pytest.mark.browser
@pytest.mark.slow
def test_first_page_after_health_draws_a_chart_from_a_store_built_before_serving(tmp_path, page):
    run = start_make_run(tmp_path / "cache", tmp_path / "make.log")
    try:
        run.wait_healthy(timeout=300)
        # The moment the server answers, the demo is in the store: no page waits for a build.
        assert _store(tmp_path / "cache").current_number() > 0, run.output()
        page.goto(run.url + "/")
        page.locator(CHART).first.wait_for(state="attached", timeout=300_000)
        assert page.get_by_text("First sync running").count() == 0
    finally:
        run.stop()
