"""Thousands of agents: every page of the real app in headless Chromium, per-page seconds.

    .venv/bin/python -m bench.many_agents                  # 5,000 agents, 1M events in 1 minute
    .venv/bin/python -m bench.many_agents --agents 500 --events 100k --span 2d

Builds a plain folder of zstd Parquet (the pipeline's unstructured shape: ``__ingest_ts`` +
``value`` JSON) in DuckDB, syncs it into a fresh cache, starts ``streamlit run app.py`` on it and
loads every page twice in one headless Chromium at 1440×900: ``first`` is the first visit after
the server started (nothing cached), ``again`` a second visit (the app's result cache warm). A
page counts as rendered when its heading is visible, Streamlit is idle and its charts are drawn.
It also times a search in the sidebar's agent picker and checks the wall fits without scrolling.
Agent names include spaces, an emoji and quotes, as real DIDs may not but event data can.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from bench.app import _idle
from bench.gen import file_ranges, parse_size
from tests.support.app_server import start_streamlit, stop_streamlit
from tests.support.browser import CHROMIUM_ARGS, CHROMIUM_PATH

REPO = Path(__file__).resolve().parent.parent
VIEWPORT = {"width": 1440, "height": 900}
FILES = 20
# Agent strings a link and the picker must handle, spread among the generated ones.
ODD_AGENTS = ("did:cf:with space", "did:cf:🦊fox", "did:cf:quo'te\"s", "名前のエージェント")
# path, heading, charts, tables: a page is rendered when all of them are drawn
PAGES = [
    ("", "Overview", 1, 2),  # the default page lives at / (/overview is "page not found")
    ("timeline", "Activity timeline", 2, 1),
    ("modes", "Modes", 5, 1),
    ("errors", "Errors", 3, 1),
    ("health", "Pipeline health", 2, 1),
    ("explorer", "Explorer", 0, 1),
]
WALL = ("wall", None, 0, 0)


def agent_name(i: int) -> str:
    return ODD_AGENTS[i] if i < len(ODD_AGENTS) else f"did:cf:agent{i:05d}"


def write_source(
    folder: Path, *, agents: int, events: int, end: datetime, span_s: float, files: int = FILES
) -> None:
    """``events`` cycles of ``agents`` agents (every agent at least once), evenly over the
    ``span_s`` seconds before ``end``, as ``files`` Parquet files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        names = [agent_name(i) for i in range(agents)]
        con.execute("CREATE TABLE names (i BIGINT, agent VARCHAR)")
        con.executemany("INSERT INTO names VALUES (?, ?)", list(enumerate(names)))
        for f, lo, hi in file_ranges(events, files):
            con.execute(
                f"""
                COPY (
                  WITH r AS (
                    SELECT i, ?::TIMESTAMPTZ - to_microseconds(
                             CAST((? - i) * ? * 1e6 / ? AS BIGINT)) AS ts,
                           CAST(hash(i * 7 + 1) % 1000000007 AS BIGINT) AS h
                    FROM range({lo}, {hi}) t(i)
                  )
                  SELECT ts + INTERVAL 3 SECOND AS __ingest_ts,
                         json_object(
                           'event_type', 'agent.cycle',
                           'agent', n.agent,
                           'mode', ['think', 'think', 'reflection', 'housekeeping'][1 + h % 4],
                           'durationMs', 500 + (h // 7) % 90000,
                           'toolCalls', (h // 11) % 7,
                           'errors', CASE WHEN (h // 13) % 10 = 0 THEN 1 + (h // 17) % 3 ELSE 0 END,
                           '_ts', strftime(ts, '%Y-%m-%dT%H:%M:%S.%gZ')
                         )::VARCHAR AS value
                  FROM r JOIN names n ON n.i = (CASE WHEN r.i < {agents} THEN r.i
                                                     ELSE r.h % {agents} END)
                  ORDER BY ts
                ) TO '{folder / f"part-{f:03d}.parquet"}' (FORMAT parquet, COMPRESSION zstd)
                """,
                [end, events, span_s, events],
            )
    finally:
        con.close()


def settle(
    page: Any, heading: str | None, charts: int, tables: int = 0, timeout: float = 60_000
) -> None:
    """Rendered: the page's heading, Streamlit idle, its tables and its charts drawn."""
    from playwright.sync_api import expect

    if heading:
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible(timeout=timeout)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=timeout)
    if tables:
        page.wait_for_function(
            "n => document.querySelectorAll('[data-testid=stDataFrame]').length >= n",
            arg=tables,
            timeout=timeout,
        )
    if charts:
        page.mouse.wheel(0, 20_000)  # charts below the fold are drawn when scrolled to
        page.wait_for_function(
            "n => [...document.querySelectorAll('.js-plotly-plot')]"
            ".filter(p => p.querySelector('.main-svg')).length >= n",
            arg=charts,
            timeout=timeout,
        )
        page.mouse.wheel(0, -20_000)


def _scroll_overflow(page: Any) -> int:
    """How far the page scrolls beyond the window (0: everything fits)."""
    return int(
        page.evaluate(
            "() => Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)"
            " - window.innerHeight"
        )
    )


def measure(env: dict[str, str], *, search: str, log=print) -> dict[str, Any]:
    """Per-page seconds (first visit and again), the picker search, the wall's fit."""
    from playwright.sync_api import expect, sync_playwright

    out: dict[str, Any] = {"first": {}, "again": {}}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM_PATH), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        url, proc = start_streamlit(REPO / "app.py", env, timeout=120)
        try:
            for visit in ("first", "again"):
                for name, heading, charts, tables in [*PAGES, WALL]:
                    t = time.monotonic()
                    page.goto(f"{url}/{name}", timeout=180_000)
                    if heading:
                        settle(page, heading, charts, tables, timeout=180_000)
                    else:
                        page.locator(".wall .tile").first.wait_for(timeout=180_000)
                        out["wall_tiles"] = page.locator(".wall .tile").count()
                        out["wall_overflow_px"] = _scroll_overflow(page)
                        more = page.locator('[data-k="more"]')
                        out["wall_more"] = more.inner_text() if more.count() else ""
                    key = name or "overview"
                    out[visit][key] = time.monotonic() - t
                    log(f"[many]  {key} ({visit}): {out[visit][key]:.1f}s")
            # the sidebar's agent picker: type a fragment, wait for the option
            page.goto(f"{url}/", timeout=180_000)
            settle(page, "Overview", 1, 2, timeout=180_000)
            box = page.get_by_test_id("stMultiSelect").filter(has_text="Agents")
            t = time.monotonic()
            box.click()
            page.keyboard.insert_text(search)
            option = page.get_by_role("option").filter(has_text=search)
            expect(option.first).to_be_visible(timeout=60_000)
            out["picker_search_s"] = time.monotonic() - t
            option.first.click()
            page.wait_for_url("**agent=*", timeout=60_000)
            _idle(page, 180_000)
            out["picker_pick_s"] = time.monotonic() - t
            log(f"[many]  agent picker: search {out['picker_search_s']:.1f}s, pick+render "
                f"{out['picker_pick_s']:.1f}s")  # fmt: skip
        finally:
            stop_streamlit(proc)
            context.close()
            browser.close()
    return out


def run_one(root: Path, *, agents: int, events: int, span_s: float) -> dict[str, Any]:
    """Write, sync and measure one table of ``agents`` agents."""
    from o11y_data import load_settings, sync

    t = time.monotonic()
    write_source(root / "src", agents=agents, events=events, end=datetime.now(UTC), span_s=span_s)
    print(f"[many]  {events:,} events of {agents:,} agents written in "
          f"{time.monotonic() - t:.1f}s")  # fmt: skip
    env = {
        "O11Y_SOURCE_DIR": str(root / "src"),
        "O11Y_CACHE_DIR": str(root / "cache"),
        "O11Y_BACKGROUND_SYNC": "0",
        "O11Y_AGENTS_FILE": str(root / "none.toml"),
    }
    t = time.monotonic()
    sync(load_settings(env, secrets_paths=[]))
    sync_s = time.monotonic() - t
    print(f"[many]  synced in {sync_s:.1f}s")
    return {**measure(env, search=agent_name(min(4321, agents - 1))), "sync_s": sync_s}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=5000)
    ap.add_argument("--baseline", type=int, default=12, help="agents in the side-by-side table")
    ap.add_argument("--events", default="1m", help="1m, 250k, 30000 …")
    ap.add_argument("--span", default="60s", help="how long the events span, e.g. 60s, 2d")
    args = ap.parse_args(argv)
    if not CHROMIUM_PATH.exists():
        raise SystemExit(f"{CHROMIUM_PATH} not found")
    events = parse_size(args.events)
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    span_s = float(args.span[:-1]) * units[args.span[-1]]
    load0 = os.getloadavg()
    results = {}
    for n in (args.agents, args.baseline):
        root = Path(tempfile.mkdtemp(prefix="many-agents-"))
        try:
            results[n] = run_one(root, agents=n, events=events, span_s=span_s)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    many, few = results[args.agents], results[args.baseline]
    screen = f"{VIEWPORT['width']}×{VIEWPORT['height']}"
    print()
    print(f"Pages with {events:,} events over {args.span}: {args.agents:,} agents against "
          f"{args.baseline} agents, side by side (headless Chromium {screen}; seconds from "
          "navigation to heading, tables and charts drawn):")  # fmt: skip
    print(f"| page | {args.agents:,} agents: first visit | again | {args.baseline} agents: "
          "first visit | again | ratio (again) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for name, *_ in [*PAGES, WALL]:
        k = name or "overview"
        ratio = many["again"][k] / max(few["again"][k], 1e-9)
        print(f"| {k} | {many['first'][k]:.1f} | {many['again'][k]:.1f} | {few['first'][k]:.1f} "
              f"| {few['again'][k]:.1f} | {ratio:.1f}× |")  # fmt: skip
    for label, r in ((f"{args.agents:,} agents", many), (f"{args.baseline} agents", few)):
        picker = (
            f"search {r['picker_search_s']:.1f} s, pick and re-render {r['picker_pick_s']:.1f} s"
        )
        wall = f"{r['wall_tiles']} tiles, overflow {r['wall_overflow_px']} px, {r['wall_more']!r}"
        print(f"{label}: sync {r['sync_s']:.1f} s; agent picker {picker}; wall {wall}")
    load1 = os.getloadavg()
    print(f"load average: start {' '.join(f'{x:.1f}' for x in load0)}, "
          f"end {' '.join(f'{x:.1f}' for x in load1)} (2 shared cores)")  # fmt: skip


if __name__ == "__main__":
    main()
