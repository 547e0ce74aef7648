"""The health page's Sync table says where the store's raw rows begin (the raw horizon) and which
engine answers raw questions before it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from streamlit.testing.v1 import AppTest

from o11y_data import load_settings, sync
from tests.support.apptest import app_under_test
from tests.support.tables import event, plain_parquet, rows

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def _sync_table(at: AppTest) -> dict[str, str]:
    (table,) = [d.value for d in at.dataframe if "Value" in d.value.columns]
    return dict(zip(table[""], table["Value"], strict=True))


def test_health_shows_the_raw_horizon_and_that_no_engine_is_configured(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    now = datetime.now(UTC)
    for i, t in enumerate([now - timedelta(days=40), now - timedelta(hours=1)]):
        (src / f"f{i}.parquet").write_bytes(plain_parquet(rows([event(ts=t)], start=t)))
    env = {
        "O11Y_SOURCE_DIR": str(src),
        "O11Y_CACHE_DIR": str(tmp_path / "cache"),
        "O11Y_BACKGROUND_SYNC": "0",
        "O11Y_AGENTS_FILE": str(tmp_path / "agents.toml"),
        "O11Y_RAW_HORIZON": "30d",
    }
    sync(load_settings(env, secrets_paths=[]))
    with app_under_test(env):
        at = AppTest.from_file(APP, default_timeout=60)
        at.switch_page("pages/health.py")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = _sync_table(at)
    day = (now - timedelta(days=30)).strftime("%Y-%m-%d")  # the horizon's UTC day
    assert shown["Raw rows"] == (
        f"kept from {day} (30-day horizon); older windows answered from rollups"
    )
    assert shown["Engine"].startswith("no engine")
