"""The health page left open with no sync running sends nothing for seconds at a time: its
sync-progress poller (a fragment every second) runs only while there is a sync to follow.

The quiet is counted from the end of the page's run as the server told it (its last message),
not from when the page looked done: on a loaded machine the run's last messages can come
seconds after its heading shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support.app_server import running_streamlit
from tests.support.browser import ServerMessages
from tests.support.tables import event, local_env, plain_parquet, rows

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.browser


def test_an_idle_health_page_sends_nothing_each_second(page: Page, tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    now = datetime.now(UTC)
    events = [event(ts=now - timedelta(minutes=i), agent="a") for i in range(5)]
    (src / "f.parquet").write_bytes(plain_parquet(rows(events, start=now)))
    messages = ServerMessages(page)
    env = local_env(src, tmp_path, O11Y_BACKGROUND_SYNC="0")
    with running_streamlit(REPO / "app.py", env) as url:
        page.goto(f"{url}/health")
        expect(page.get_by_role("heading", name="Pipeline health", exact=True)).to_be_visible(
            timeout=60_000
        )
        expect(page.get_by_role("button", name="Sync now")).to_be_visible(timeout=60_000)
        quiet_from = messages.wait_idle(page)
        page.wait_for_timeout(4_000)  # a poller every second would send at least three runs
        late = [m.kind for m in messages.received[quiet_from:]]
        assert not late, f"{len(late)} messages in 4 s on an idle page: {late}"
