"""Soak the wall (or any page): run the real app for many refreshes and watch the server's memory.

    .venv/bin/python -m bench.soak_wall --refreshes 1000
    .venv/bin/python -m bench.soak_wall --page overview --pages 4 --refreshes 200

An ordinary page (``--page overview``, ``errors``…) is opened with ``?refresh=10s`` (the shortest
choice of its refresh picker) and a refresh is counted when its freshness bar changes.

Builds the demo table in a temporary folder (a local source, so nothing leaves the machine), starts
``streamlit run app.py`` on 127.0.0.1 with a 5 s background sync, opens ``/wall?refresh=1`` in
headless Chromium (``--pages`` tabs, each its own session) and counts re-renders until
``--refreshes`` have happened in total. Meanwhile new events land in the source every
``--advance`` seconds, so syncs publish new generations and the query cache turns over as it
would on a real wall. The server's RSS (``VmRSS`` from ``/proc/<pid>/status``) is sampled
throughout; the report gives it at start (after a warm-up), middle and end, and the growth.
Stops by itself: at the refresh count or after ``--max-minutes``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB, from /proc (no psutil needed)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def refresh_marker(page, name: str) -> str:
    """What changes on every refresh: the wall's render time, or a page's freshness bar."""
    if name == "wall":
        return page.get_attribute(".wall-clock", "data-updated") or ""
    bar = page.locator("[data-testid=stMarkdown]").filter(has_text="Last sync")
    return bar.first.inner_text() if bar.count() else ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.soak_wall", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--refreshes", type=int, default=1000, help="total wall re-renders to drive")
    ap.add_argument("--pages", type=int, default=2, help="browser tabs (sessions) on the wall")
    ap.add_argument("--refresh", type=int, default=1, help="the wall's refresh interval (s)")
    ap.add_argument("--advance", type=float, default=15.0, help="new source data every N s")
    ap.add_argument("--warmup", type=int, default=50, help="refreshes before the start sample")
    ap.add_argument("--max-minutes", type=float, default=40.0, help="hard time limit")
    ap.add_argument("--page", default="wall", help="the page to soak: wall (default) or any other")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(REPO))
    from playwright.sync_api import sync_playwright

    from o11y_data.ingest import demo
    from tests.support.app_server import start_streamlit, stop_streamlit
    from tests.support.browser import CHROMIUM_ARGS, CHROMIUM_PATH

    tmp = Path(tempfile.mkdtemp(prefix="soak-wall-"))
    src = tmp / "src"
    print(f"building the demo table in {src} …", flush=True)
    demo.build(src, now=datetime.now(UTC), seed=7)
    env = {
        "O11Y_SOURCE_DIR": str(src),
        "O11Y_CACHE_DIR": str(tmp / "cache"),
        "O11Y_SYNC_INTERVAL": "5",
        "O11Y_BACKGROUND_SYNC": "1",
        "O11Y_AGENTS_FILE": str(tmp / "no-agents.toml"),
        "O11Y_R2_ENDPOINT": "",
        "O11Y_R2_ACCOUNT_ID": "",
    }
    stop_advancing = threading.Event()
    advanced = [0]

    def advance() -> None:  # the pipeline keeps writing while the wall runs
        while not stop_advancing.wait(args.advance):
            try:
                if demo.advance(src, min_step=timedelta(seconds=1)) > 0:
                    advanced[0] += 1
            except Exception as exc:  # keep soaking; say what happened
                print(f"  (advance failed: {type(exc).__name__}: {exc})", flush=True)

    url, proc = start_streamlit(REPO / "app.py", env)
    pid = proc.pid
    print(f"app at {url} (pid {pid}); RSS after start {rss_mb(pid):.1f} MiB", flush=True)
    feeder = threading.Thread(target=advance, name="soak-advance", daemon=True)
    feeder.start()
    samples: list[tuple[int, float, float]] = []  # (refreshes, seconds, rss)
    started = time.monotonic()
    deadline = started + args.max_minutes * 60
    total = 0
    banners: set[str] = set()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM_PATH), headless=True, args=CHROMIUM_ARGS
            )
            pages = []
            for _ in range(max(1, args.pages)):
                page = browser.new_page(viewport={"width": 1920, "height": 1080})
                if args.page == "wall":
                    page.goto(f"{url}/wall?refresh={args.refresh}")
                    page.wait_for_selector(".tile", timeout=120_000)
                else:
                    page.goto(f"{url}/{args.page}?refresh=10s")
                    page.get_by_text("Last sync").first.wait_for(timeout=120_000)
                pages.append(page)
            last = ["" for _ in pages]
            next_sample = 0
            while total < args.refreshes and time.monotonic() < deadline:
                for i, page in enumerate(pages):
                    value = refresh_marker(page, args.page)
                    if value and value != last[i]:
                        last[i] = value
                        total += 1
                        banner = page.locator(".wall-banner, [data-testid=stAlertContentError]")
                        if banner.count():
                            banners.add(banner.first.inner_text()[:100])
                if total >= next_sample:
                    samples.append((total, time.monotonic() - started, rss_mb(pid)))
                    if next_sample % 100 == 0:
                        s = samples[-1]
                        print(
                            f"  {s[0]:5d} refreshes  {s[1]:7.1f}s  RSS {s[2]:7.1f} MiB",
                            flush=True,
                        )
                    next_sample += 25
                pages[0].wait_for_timeout(100)
            samples.append((total, time.monotonic() - started, rss_mb(pid)))
            browser.close()
    finally:
        stop_advancing.set()
        stop_streamlit(proc)
        shutil.rmtree(tmp, ignore_errors=True)

    elapsed = time.monotonic() - started
    warm = next((s for s in samples if s[0] >= args.warmup), samples[0])
    mid = min(samples, key=lambda s: abs(s[0] - (warm[0] + total) / 2))
    end = samples[-1]
    peak = max(s[2] for s in samples)
    growth = end[2] - warm[2]
    print()
    print(
        f"refreshes: {total} over {elapsed / 60:.1f} min "
        f"({args.pages} tabs on {args.page}, "
        f"refresh {args.refresh if args.page == 'wall' else 10}s)"
    )
    print(f"source commits during the soak: {advanced[0]}")
    print(f"RSS first sample: {samples[0][2]:.1f} MiB at {samples[0][0]} refreshes")
    print(f"RSS start:  {warm[2]:.1f} MiB at {warm[0]} refreshes (after warm-up)")
    print(f"RSS middle: {mid[2]:.1f} MiB at {mid[0]} refreshes")
    print(f"RSS end:    {end[2]:.1f} MiB at {end[0]} refreshes")
    print(f"RSS peak:   {peak:.1f} MiB")
    span = max(end[0] - warm[0], 1)
    print(
        f"growth start->end: {growth:+.1f} MiB ({growth / warm[2] * 100:+.1f}%), "
        f"{growth / span * 1000:+.1f} MiB per 1000 refreshes; "
        f"middle->end: {end[2] - mid[2]:+.1f} MiB"
    )
    if banners:
        print("banners seen: " + " | ".join(sorted(banners)))
    if total < args.refreshes:
        print(f"stopped at the time limit before {args.refreshes} refreshes")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
