"""Issue 13, pages only: each real page beside the floor page, on the 20k-event demo, in one
headless Chromium. Small and repeatable (about 2 minutes here); no generated dataset needed.

    .venv/bin/python -m bench.pages_floor                   # every page, median of 3
    .venv/bin/python -m bench.pages_floor --pages timeline --rounds 5 --detail

The demo is synced into a temporary cache (``--cache`` keeps one between runs); the real app
(``app.py``) and the floor app (``bench/floor/app.py``: same shape, constants) run as two servers
and each page is visited on both, alternately, after one warm-up visit per page and server (the
ratio is about steady-state pages, not first imports). A visit is ``bench.speed.visit``: navigate
to ``?range=all`` until settled. ``--detail`` also prints, per visit, what came over the websocket
(bytes, script runs, the biggest elements), which is how the server side is told from the
browser side.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.speed import PAGES, PY, REPO, demo_env, log, visit


@dataclass
class Wire:
    """What the server sent during one visit (Streamlit's ForwardMsgs, decoded)."""

    bytes: int = 0
    frames: int = 0
    runs: int = 0  # new_session messages: one per full script run
    fragment_runs: int = 0  # script_finished of a fragment run (the live body re-running)
    cut: int = 0  # script_finished early for a rerun (a run thrown away)
    elements: Counter[str] = field(default_factory=Counter)  # element type -> bytes

    def add(self, payload: bytes) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self.bytes += len(payload)
        self.frames += 1
        msg = ForwardMsg.FromString(payload)
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            self.runs += 1
        elif kind == "script_finished":
            status = ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished)
            self.fragment_runs += status == "FINISHED_FRAGMENT_RUN_SUCCESSFULLY"
            self.cut += status == "FINISHED_EARLY_FOR_RERUN"
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            self.elements[msg.delta.new_element.WhichOneof("type") or "?"] += len(payload)

    def top(self, n: int = 3) -> str:
        return ", ".join(f"{k} {v / 1024:.0f}K" for k, v in self.elements.most_common(n))


def sync_demo(env: dict[str, str]) -> None:
    subprocess.run([PY, "-m", "o11y_data", "sync"], env=env, cwd=REPO, check=True,
                   capture_output=True)  # fmt: skip


def run(pages: list[str], rounds: int, cache: Path, detail: bool) -> dict[str, dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    from tests.support.app_server import start_streamlit, stop_streamlit
    from tests.support.browser import CHROMIUM_ARGS, CHROMIUM_PATH

    env = {**demo_env(), "O11Y_CACHE_DIR": str(cache)}
    sync_demo(env)
    wire = Wire()
    res: dict[str, dict[str, Any]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM_PATH), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        page.on("websocket", lambda ws: ws.on("framereceived", _frame(wire)))
        real_url, real = start_streamlit(REPO / "app.py", env, timeout=120)
        floor_url, floor = start_streamlit(REPO / "bench/floor/app.py", env, timeout=120)
        try:
            for name in pages:  # warm both servers' imports and caches once
                for url in (real_url, floor_url):
                    visit(page, url, name)
            for name in pages:
                times: dict[str, list[float]] = {"real": [], "floor": []}
                wires: dict[str, list[Wire]] = {"real": [], "floor": []}
                for _ in range(rounds):
                    for key, url in (("floor", floor_url), ("real", real_url)):
                        wire.__init__()  # type: ignore[misc]
                        times[key].append(visit(page, url, name))
                        wires[key].append(_copy(wire))
                fl, re_ = statistics.median(times["floor"]), statistics.median(times["real"])
                res[name] = {"floor": times["floor"], "real": times["real"], "ratio": re_ / fl}
                log(f"{name:9} real {re_:.2f}s floor {fl:.2f}s = {re_ / fl:.2f}x")
                if detail:
                    for key in ("real", "floor"):
                        w = wires[key][-1]
                        log(
                            f"          {key:5} {w.bytes / 1024:.0f} KB in {w.frames} msgs, "
                            f"{w.runs} run(s), {w.cut} cut short, {w.fragment_runs} fragment "
                            f"run(s); {w.top()}"
                        )
        finally:
            for proc in (real, floor):
                stop_streamlit(proc)
            context.close()
            browser.close()
    return res


def _frame(wire: Wire) -> Any:
    def on(payload: bytes | str) -> None:
        if isinstance(payload, bytes):
            wire.add(payload)

    return on


def _copy(w: Wire) -> Wire:
    return Wire(w.bytes, w.frames, w.runs, w.fragment_runs, w.cut, Counter(w.elements))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.pages_floor", description=__doc__)
    p.add_argument("--pages", default=",".join(PAGES))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cache", type=Path, help="the demo's cache dir (default: a temporary one)")
    p.add_argument("--detail", action="store_true", help="websocket bytes and runs per visit")
    args = p.parse_args(argv)
    pages = args.pages.split(",")
    if args.cache:
        res = run(pages, args.rounds, args.cache, args.detail)
    else:
        with tempfile.TemporaryDirectory(prefix="o11y-pages-floor-") as tmp:
            res = run(pages, args.rounds, Path(tmp), args.detail)
    print("\n| page | real s | floor s | real ÷ floor |\n| --- | --- | --- | --- |")
    for name, r in res.items():
        print(f"| {name} | {statistics.median(r['real']):.2f} | "
              f"{statistics.median(r['floor']):.2f} | {r['ratio']:.2f}× |")  # fmt: skip


if __name__ == "__main__":
    main()
