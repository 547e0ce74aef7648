"""Load: 20 concurrent sessions (loopback, bounded) on the overview and wall pages while syncs
land new data; every session renders, none shows an error. Page times and server RSS are printed
and written to tests/screenshots/load.txt: figures for docs/reliability.md, not timed checks."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from o11y_data import load_settings, sync
from o11y_data.ingest import demo
from o11y_data.ingest.store import Store
from tests.support.app_server import start_streamlit, stop_streamlit
from tests.support.browser import SCREENSHOT_DIR
from tests.support.st_client import open_page

REPO = Path(__file__).resolve().parent.parent
SESSIONS = 20
ROUNDS = 3
MAX_ROUNDS = 12


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


async def wave(url: str):
    pages = [("", "range=24h") if i % 2 else ("wall", "refresh=5") for i in range(SESSIONS)]
    return await asyncio.gather(*(open_page(url, p, q) for p, q in pages))


def run_async(coro):
    """Run a coroutine on a thread of its own: the browser tests' sync Playwright may already
    hold an event loop in this thread."""
    out: list = []
    t = threading.Thread(target=lambda: out.append(asyncio.run(coro)))
    t.start()
    t.join()
    if not out:
        raise RuntimeError("the load run failed; see the thread's traceback above")
    return out[0]


@pytest.mark.server
def test_twenty_sessions_render_while_syncs_land_new_data(tmp_path):
    src, cache = tmp_path / "src", tmp_path / "cache"
    now = datetime.now(UTC)
    demo.build(src, now=now - timedelta(hours=2), seed=7)
    env = {"O11Y_SOURCE_DIR": str(src), "O11Y_CACHE_DIR": str(cache), "O11Y_SYNC_INTERVAL": "5"}
    settings = load_settings(env, secrets_paths=[])
    sync(settings)
    store = Store(settings.store_dir)
    url, proc = start_streamlit(REPO / "app.py", env)
    stop = threading.Event()

    def grow() -> None:  # a new snapshot every 2 s; the app's syncer (every 5 s) picks them up
        for step in range(1, 60):
            demo.advance(src, now=now - timedelta(hours=2) + timedelta(minutes=2 * step))
            if stop.wait(2):
                return

    grower = threading.Thread(target=grow, daemon=True)
    runs = []
    try:
        run_async(open_page(url, "", "range=24h"))  # the server's first run (caches, imports)
        rss_before = rss_mb(proc.pid)
        gen_before = store.current_number()
        grower.start()
        started = time.monotonic()
        # At least ROUNDS waves, and on until a sync has landed during the load (bounded).
        for n in range(MAX_ROUNDS):
            runs += run_async(wave(url))
            if n + 1 >= ROUNDS and store.current_number() > gen_before:
                break
        elapsed = time.monotonic() - started
        rss_after, peak = rss_mb(proc.pid), rss_mb(proc.pid, "VmHWM")
        gen_after = store.current_number()
    finally:
        stop.set()
        if grower.is_alive():
            grower.join(timeout=30)
        stop_streamlit(proc)
    times = sorted(r.seconds for r in runs)
    p50 = statistics.median(times)
    p95 = times[round(0.95 * (len(times) - 1))]
    waves, synced = len(runs) // SESSIONS, gen_after - gen_before
    report = (
        f"{waves} waves of {SESSIONS} concurrent sessions (half overview 24h, half wall) "
        f"on loopback while {synced} new generations were synced: "
        f"page time p50 {p50:.2f} s, p95 {p95:.2f} s, max {times[-1]:.2f} s "
        f"({elapsed:.0f} s in all); server RSS {rss_before:.0f} MB before, "
        f"{rss_after:.0f} MB after, peak {peak:.0f} MB"
    )
    print(report)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    (SCREENSHOT_DIR / "load.txt").write_text(report + "\n")
    assert len(runs) >= ROUNDS * SESSIONS and len(runs) % SESSIONS == 0
    assert [r.problems for r in runs if r.problems] == []
    assert all(r.deltas >= 3 for r in runs)
    overview = [r for i, r in enumerate(runs) if i % 2]
    assert all(any("Last sync" in t for t in r.texts) for r in overview)
    assert gen_after > gen_before, "no sync landed during the load"
