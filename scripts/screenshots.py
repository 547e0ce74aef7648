"""The README's screenshots, made from the app itself so they stay current.

    make screenshots            (or: .venv/bin/python -m scripts.screenshots [--out docs/img])

Serves the app on demo data (the same code path as ``make run``) from a throwaway cache, opens
each page in headless Chromium at 1440×900 and saves a PNG once the page has finished running
and its charts have drawn. Needs the dev tools (Playwright) and Debian's ``chromium``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1440, "height": 900}
STARTUP_S = 120.0
PAGE_S = 90.0


@dataclass(frozen=True)
class Shot:
    name: str  # the PNG's name under --out
    path: str  # the URL path and query, from the server's root
    charts: int  # Plotly charts the page must have drawn before the picture


def shots(cache: Path) -> tuple[Shot, ...]:
    """The README's pictures: the overview, the page of the agent with the most errors in the
    last 24 h (the story a newcomer should see), and the wall."""
    return (
        Shot("overview", "/", 1),
        Shot("agent", "/agent?" + urlencode({"agent": worst_agent(cache)}), 1),
        Shot("wall", "/wall", 0),
    )


def worst_agent(cache: Path) -> str:
    """The agent with the most errors over the last 24 h, from the served store."""
    from datetime import UTC, datetime, timedelta

    from o11y_data.config import load_settings
    from o11y_data.query import queries as q
    from o11y_data.query.db import EventsDB

    settings = load_settings({"O11Y_CACHE_DIR": str(cache)})
    db = EventsDB(settings.store_dir)
    try:
        end = datetime.now(UTC)
        top = q.top_error_agents(db, q.Filters(start=end - timedelta(hours=24), end=end), limit=1)
    finally:
        db.close()
    if top.empty:
        raise SystemExit("the demo holds no agent with errors in the last 24 h")
    return str(top["agent"].iloc[0])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(cache: Path, port: int) -> subprocess.Popen[bytes]:
    """``streamlit run app.py`` on loopback with the demo data in ``cache``."""
    env = {**os.environ, "O11Y_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
    for name in ("O11Y_R2_ENDPOINT", "O11Y_R2_ACCOUNT_ID", "O11Y_SOURCE_DIR"):
        env.pop(name, None)  # the demo, whatever this shell is configured for
    # As make run: the demo built and synced before the server answers.
    subprocess.run([sys.executable, "-m", "o11y_data", "prepare"], cwd=REPO, env=env, check=True)
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    cmd += ["--server.port", str(port), "--server.address", "127.0.0.1"]
    cmd += ["--browser.gatherUsageStats", "false"]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL)


def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited with code {proc.returncode} while starting")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise SystemExit(f"the app was not healthy within {STARTUP_S:.0f} s")


def take(page, url: str, shot: Shot, out: Path) -> Path:  # noqa: ANN001 (Playwright's Page)
    """Open ``shot`` and save its picture once it has settled."""
    page.goto(url + shot.path)
    timeout_ms = PAGE_S * 1000
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    if shot.charts:
        page.wait_for_function(
            "n => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n",
            arg=shot.charts,
            timeout=timeout_ms,
        )
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=timeout_ms
    )
    page.wait_for_timeout(1500)  # let Plotly's transitions finish drawing
    dest = out / f"{shot.name}.png"
    page.screenshot(path=str(dest))
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img", help="where the PNGs go")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="o11y-shots-") as cache:
        proc = serve(Path(cache), port)
        try:
            wait_healthy(url, proc)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
                page = browser.new_page(viewport=VIEWPORT)
                for shot in shots(Path(cache)):
                    print(take(page, url, shot, args.out.resolve()).relative_to(REPO))
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
