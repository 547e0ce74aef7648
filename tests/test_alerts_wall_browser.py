"""The wall's alert banner in a real browser against the real app: the app's background syncer
evaluates the rules after its sync, the wall shows the count and the worst alert (escaped), and
the banner leaves once new data resolves the alert."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page

from o11y_data.ingest.iceberg_write import TableWriter, folder_put, unstructured_table
from tests.support.app_server import start_streamlit, stop_streamlit
from tests.support.browser import SCREENSHOT_DIR

REPO = Path(__file__).resolve().parent.parent
# Its short form on the wall ("did:cf:<b>x…</b>") would still be markup if it were not escaped.
EVIL = "did:cf:<b>xsilent-agent-quiet</b>"
CALM = "did:cf:calmcalmcalmcalmcalm"

pytestmark = pytest.mark.browser


def _rows(agent: str, newest: datetime, n: int = 8) -> list:
    out = []
    for i in range(n):
        ts = newest - timedelta(minutes=2 * i)
        body = {"event_type": "agent.cycle", "agent": agent, "mode": "think", "durationMs": 900}
        body.update({"toolCalls": 1, "errors": 0, "_ts": ts.isoformat().replace("+00:00", "Z")})
        out.append((ts + timedelta(seconds=1), json.dumps(body)))
    return out


def test_the_wall_shows_firing_alerts_in_a_banner_and_drops_it_when_resolved(
    page: Page, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    put = folder_put(tmp_path / "src")
    writer = TableWriter(put=put, bucket="agent-blobs", table_prefix="__r2_data_catalog/c/t/")
    writer.append([unstructured_table(_rows(CALM, now) + _rows(EVIL, now - timedelta(minutes=50)))])
    env = {
        "O11Y_SOURCE_DIR": str(tmp_path / "src"),
        "O11Y_CACHE_DIR": str(tmp_path / "cache"),
        "O11Y_SYNC_INTERVAL": "5",
        "O11Y_BACKGROUND_SYNC": "1",
        "O11Y_AGENTS_FILE": str(tmp_path / "no-agents.toml"),
        "O11Y_ALERTS_FILE": str(tmp_path / "alerts.toml"),
        "O11Y_R2_ENDPOINT": "",
        "O11Y_R2_ACCOUNT_ID": "",
    }
    url, proc = start_streamlit(REPO / "app.py", env)
    page.set_viewport_size({"width": 1920, "height": 1080})
    try:
        page.goto(f"{url}/wall?refresh=2")
        banner = page.locator(".wall-alerts")
        banner.wait_for(timeout=60_000)
        assert banner.get_attribute("data-count") == "1"
        assert banner.get_attribute("data-severity") == "warning"
        text = banner.inner_text()
        assert "1 alert firing" in text and "Agent silent" in text and "<b>x" in text, text
        assert page.locator(".wall-alerts *").count() == 0  # only text: the name stayed text
        marked = page.locator(".tile.alerting")  # the alert and the tile agree
        assert marked.count() == 1 and marked.get_attribute("data-agent") == EVIL
        assert "alert: Agent silent" in marked.inner_text()
        evaluated = page.locator(".wall-eval")
        assert evaluated.get_attribute("data-level") == "ok", evaluated.inner_text()
        assert "alerts evaluated" in evaluated.inner_text()
        box, vp = banner.bounding_box(), page.viewport_size
        assert box and vp and box["y"] + box["height"] <= vp["height"] * 0.14  # in the header
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT_DIR / "wall-alert-banner.png"))

        writer.append([unstructured_table(_rows(EVIL, datetime.now(UTC), n=2))])
        banner.wait_for(state="detached", timeout=60_000)  # next sync, evaluation, refresh
        assert page.locator(".tile").count() == 2
        page.locator(".tile.alerting").wait_for(state="detached", timeout=30_000)
    finally:
        stop_streamlit(proc)
