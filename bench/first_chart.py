"""Issue 20, point 6: the first chart within 10 s of the server being healthy, on a fresh cache.

    .venv/bin/python -m bench.first_chart

Runs ``make run`` the way a user does (``tests/support/make_run.py``: the Makefile's own recipe,
this interpreter's virtualenv, a new empty ``O11Y_CACHE_DIR``, no source configured, so the
demo), polls ``/_stcore/health`` every 50 ms, then opens the overview in headless Chromium
(``/usr/bin/chromium``) and times until its first Plotly chart is drawn (an SVG inside a
``.js-plotly-plot``). Three starts, one after the other: the server alone on a fresh cache (as
``make run`` was before it prepared the demo: the first page waits for the build), ``make run``
on a fresh cache, and ``make run`` again on that cache (reused). Prints one line per start with
the machine's load average, which weighs on every figure here (2 shared cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from tests.support.browser import CHROMIUM_ARGS, CHROMIUM_PATH
from tests.support.make_run import start_make_run

TARGET_S = 10.0  # the figure: first chart within 10 s of the server being healthy
CHART = ".js-plotly-plot .main-svg"


def one_start(
    cache: Path, log: Path, *, timeout: float, server_only: bool = False
) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    t0 = time.monotonic()
    run = start_make_run(cache, log, server_only=server_only)
    try:
        run.wait_healthy(timeout=timeout)
        healthy = time.monotonic()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM_PATH), headless=True, args=CHROMIUM_ARGS
            )
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                # The overview is the default page: its address is the root.
                page.goto(run.url + "/", timeout=timeout * 1000)
                page.locator(CHART).first.wait_for(state="attached", timeout=timeout * 1000)
                drawn = time.monotonic()
            finally:
                browser.close()
    finally:
        run.stop()
    return {
        "make_to_healthy_s": round(healthy - t0, 2),
        "healthy_to_first_chart_s": round(drawn - healthy, 2),
        "make_to_first_chart_s": round(drawn - t0, 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.first_chart", description=__doc__)
    ap.add_argument("--timeout", type=float, default=300.0, help="each wait's limit (s)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="first-chart-"))
    ok = True
    starts = (  # label, cache folder, the server alone (no prepare)
        ("before: `streamlit run` alone, fresh cache", "before", True),
        ("make run, fresh cache", "cache", False),
        ("make run, same cache again", "cache", False),
    )
    try:
        for label, folder, server_only in starts:
            load = os.getloadavg()
            fig = one_start(
                tmp / folder, tmp / "make.log", timeout=args.timeout, server_only=server_only
            )
            if not server_only:
                ok &= fig["healthy_to_first_chart_s"] <= TARGET_S
            fig |= {"load1_before": round(load[0], 1), "load1_after": round(os.getloadavg()[0], 1)}
            print(f"{label}: {json.dumps(fig)}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    verdict = "PASS" if ok else "MISS"
    print(f"make run: first chart within {TARGET_S:g} s of healthy on every start: {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
