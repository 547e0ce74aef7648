"""The health page left open with no sync running sends nothing for seconds at a time: its
sync-progress poller (a fragment every second) runs only while there is a sync to follow."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support.app_server import running_streamlit
from tests.support.tables import event, local_env, plain_parquet, rows

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.browser


def test_an_idle_health_page_sends_nothing_each_second(page: Page, tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    now = datetime.now(UTC)
    events = [event(ts=now - timedelta(minutes=i), agent="a") for i in range(5)]
    (src / "f.parquet").write_bytes(plain_parquet(rows(events, start=now)))
    frames: list[float] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda _: frames.append(time.time())))
    env = local_env(src, tmp_path, O11Y_BACKGROUND_SYNC="0")
    with running_streamlit(REPO / "app.py", env) as url:
        page.goto(f"{url}/health")
        expect(page.get_by_role("heading", name="Pipeline health", exact=True)).to_be_visible(
            timeout=60_000
        )
        expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=60_000)
        page.wait_for_timeout(1_500)  # the first run's last messages
        quiet_from = time.time()
        page.wait_for_timeout(4_000)
        late = [t for t in frames if t >= quiet_from]
        assert not late, f"{len(late)} messages in 4 s on an idle page"
