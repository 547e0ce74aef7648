"""The real app under a headless Chromium: time to the first chart, every page, peak RSS.

The browser is launched first (a user's browser is already open); the clock starts when
``streamlit run`` is spawned and stops when the first plotly chart's SVG is in the page. Then every
page is loaded with the last 24 hours of the data (a custom range, so a dataset generated days ago
still has a full day) and with ``range=all``, each waiting until Streamlit is idle; the streamlit
process's ``VmHWM`` (peak resident set) is read from ``/proc``.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.support.app_server import start_streamlit, stop_streamlit
from tests.support.browser import CHROMIUM_ARGS, CHROMIUM_PATH

REPO = Path(__file__).resolve().parent.parent
# page, heading, plotly charts it draws (as tests/test_browser.py expects)
PAGES = (
    ("overview", "Overview", 1),
    ("timeline", "Activity timeline", 3),
    ("modes", "Modes", 5),
    ("errors", "Errors", 3),
    ("health", "Pipeline health", 2),
    ("explorer", "Explorer", 0),
    ("wall", None, 0),
)


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def run(env: dict[str, str], now: datetime, *, log=print) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM_PATH.exists():
        return {"error": f"{CHROMIUM_PATH} not found"}
    day = urlencode({"range": "custom", "start": _fmt(now - timedelta(hours=24)), "end": _fmt(now)})
    out: dict[str, Any] = {"pages": {}}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM_PATH), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        t0 = time.monotonic()
        url, proc = start_streamlit(REPO / "app.py", env, timeout=120)
        try:
            out["healthy_s"] = time.monotonic() - t0
            page.goto(f"{url}/overview?{day}", timeout=120_000)
            page.locator(".js-plotly-plot .main-svg").first.wait_for(
                state="attached", timeout=120_000
            )
            out["first_chart_s"] = time.monotonic() - t0
            log(f"[app]   first chart after {out['first_chart_s']:.1f}s")
            _idle(page)
            for window, query in (("24h", day), ("all", "range=all")):
                for name, heading, want in PAGES:
                    q = "window=1h" if name == "wall" else query
                    t = time.monotonic()
                    page.goto(f"{url}/{name}?{q}", timeout=120_000)
                    _settle(page, heading, want)
                    charts = page.locator(".js-plotly-plot").count()
                    errors = page.get_by_test_id("stException").count()
                    out["pages"][f"{name} {window}"] = {
                        "seconds": time.monotonic() - t,
                        "charts": charts,
                        "exceptions": errors,
                    }
                    log(f"[app]   {name} ({window}): {time.monotonic() - t:.1f}s, {charts} charts")
            out["vm_hwm_kb"] = _status_kb(proc.pid, "VmHWM")
            out["vm_rss_kb"] = _status_kb(proc.pid, "VmRSS")
        finally:
            stop_streamlit(proc)
            context.close()
            browser.close()
    return out


def _settle(page: Any, heading: str | None, charts: int) -> None:
    """The page's heading, Streamlit idle, and its charts drawn (as the browser tests wait)."""
    from playwright.sync_api import expect

    if heading:
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible(timeout=120_000)
    else:
        page.wait_for_timeout(1000)
    _idle(page)
    if charts:
        page.mouse.wheel(0, 10_000)  # charts below the fold are drawn when scrolled to
        # At least ``charts``, and every chart the finished script sent drawn (a page may send
        # more, e.g. the timeline's every-cycle strip when it shows 12 agents or fewer).
        page.wait_for_function(
            "n => { const all = [...document.querySelectorAll('.js-plotly-plot')];"
            " const drawn = all.filter(p => p.querySelector('.main-svg')).length;"
            " return drawn >= n && drawn === all.length; }",
            arg=charts,
            timeout=120_000,
        )
        page.mouse.wheel(0, -10_000)


def _idle(page: Any, timeout_ms: int = 120_000) -> None:
    """Wait until Streamlit's running indicator is gone (the script run finished)."""
    from playwright.sync_api import expect

    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=timeout_ms)
