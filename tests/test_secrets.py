"""Secrets never show: every page rendered against R2 (moto) with known secret values, the server's
logs and a failing sync's error, all scanned for those values."""

from __future__ import annotations

import re
import time
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.support.app_server import start_streamlit, stop_streamlit
from tests.support.browser import POLL_MS, SCREENSHOT_DIR, open_from_sidebar, run_finished
from tests.support.tables import append, event, new_table, rows, s3_put
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parent.parent
KEY_ID = "AKIDLEAKCANARY7731"
SECRET = "s3cr3t-leak-canary-9911"
WALL = "wall-leak-canary-4242"
HOOK = "hook-leak-canary-5353"  # a webhook URL's token (Slack's are in the path)
PAGES = [
    "",
    "timeline",
    "modes",
    "errors",
    "health",
    "explorer",
    "summary",
    "sql",
    "alerts",
    "wall",
]
CHART_PAGES = {"", "timeline", "modes", "errors", "health"}


def scan(text: str) -> list[str]:
    return [s for s in (KEY_ID, SECRET, WALL, HOOK) if s in text]


def test_no_page_log_or_error_shows_a_secret(page: Page, s3_admin, bucket, proxy, tmp_path):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    append(writer, rows([event(ms=5, agent="did:cf:canaryagentcanaryagent01")]))
    env = {
        "O11Y_R2_ENDPOINT": proxy.endpoint,
        "O11Y_R2_ACCESS_KEY_ID": KEY_ID,
        "O11Y_R2_SECRET_ACCESS_KEY": SECRET,
        "O11Y_WALL_TOKEN": WALL,
        # Nothing listens there: every delivery fails, is logged and listed on the alerts page.
        "O11Y_ALERT_WEBHOOK": f"http://127.0.0.1:9/services/{HOOK}",
        "O11Y_BUCKET": bucket,
        "O11Y_CACHE_DIR": str(tmp_path / "cache"),
        "O11Y_SYNC_INTERVAL": "5",
    }
    url, proc = start_streamlit(REPO / "app.py", env)
    try:
        seen = []
        for path in PAGES:
            if path == "wall":  # the TV's link carries the configured wall token, which the
                # page must not show anywhere (scanned below like every secret)
                page.goto(f"{url}/wall?range=all&token={WALL}")
            elif path:  # from the sidebar (the range goes along), as a person goes through
                open_from_sidebar(page, path)
            else:
                page.goto(f"{url}/?range=all")
            marker = "updated" if path == "wall" else "Last sync"
            expect(page.get_by_text(marker).first).to_be_visible(timeout=60_000)
            run_finished(page, timeout=30_000)
            if path in CHART_PAGES:  # charts draw after the script ends; scan them drawn
                page.wait_for_function(
                    "document.querySelector('.js-plotly-plot .main-svg') !== null",
                    timeout=60_000,
                    polling=POLL_MS,
                )
            seen.append(page.content())
            page.screenshot(path=str(SCREENSHOT_DIR / f"secrets_{path or 'overview'}.png"))
        # Now R2 rejects the key: the error shown and logged must not carry it.
        proxy.fail_next(10_000, status=403, code="InvalidAccessKeyId")
        failing = page.get_by_text(re.compile("R2 rejected the credentials")).first
        log_file = tmp_path / "cache" / "o11y.log"
        wait_until(  # the next background sync failed (its cause is logged as it fails)
            lambda: (
                log_file.exists()
                and "R2 rejected the credentials" in log_file.read_text(errors="replace")
            ),
            limit_s=90,
            what="a background sync rejected by R2 in the app's log",
        )
        deadline = time.monotonic() + 60
        while True:  # the page shows the error from that sync on: reload for it
            page.goto(f"{url}/health?range=all")
            expect(page.get_by_text("Last sync").first).to_be_visible(timeout=60_000)
            if failing.is_visible() or time.monotonic() > deadline:
                break
            page.wait_for_timeout(500)
        expect(failing).to_be_visible()
        seen.append(page.content())
        logs = [p.read_text(errors="replace") for p in getattr(proc, "o11y_logs", ())]
    finally:
        stop_streamlit(proc)
    # The app's own log of root causes (logs.setup_logging) has the failure, not the secrets.
    app_log = (tmp_path / "cache" / "o11y.log").read_text(errors="replace")
    assert "R2 rejected the credentials" in app_log and "Traceback" in app_log
    logs.append(app_log)
    assert all(not scan(html) for html in seen), [scan(h) for h in seen]
    assert logs and not scan("\n".join(logs))
    assert any("did:cf:" in html for html in seen)  # the pages did show data
