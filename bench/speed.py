"""Issue 13: speed that does not depend on how much data there is. Every ratio side by side in one
run on this machine; results in ``bench/data/speed-<size>.json`` and printed.

    .venv/bin/python -m bench.speed --sizes 10m            # ~15 min here
    .venv/bin/python -m bench.speed --sizes 100m --parts sync,screens,cli,export

Each size is the generated table of ``bench/gen.py`` read as a local folder (the sync path is the
same as R2's; the S3 side is measured by ``python -m bench``), synced into
``bench/data/cache<size>``. Parts:

- ``sync``: the full sync (with the rollups) as a process: seconds, peak RSS, store size on disk;
  then a sync after 50 new files (the incremental rollup step).
- ``screens``: every screen's data, all time and last 24 h, first call in a fresh process (the
  views built, every query answered once: what the first visit after a new generation pays).
- ``cli``: ``status`` and ``summary`` as whole processes against the seed's hand-run DuckDB query
  (``python -c`` over the downloaded Parquet) as a whole process.
- ``export``: a 1M-row CSV and Parquet download through ``ui.export.download`` in a process with
  the app's DuckDB settings: its peak RSS.
- ``browser``: the real app and the floor app (``bench/floor/app.py``: same shape, no data) in
  one headless Chromium, each page alternately, median of 3; the first visit after a sync against
  a warm visit; the same pages on the 20k-event demo.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import gen
from bench.__main__ import SEED_SQL, screens_run

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
PAGES = ("overview", "timeline", "modes", "errors", "health", "explorer")
HEADINGS = {
    "overview": ("Overview", 1),
    "timeline": ("Activity timeline", 2),  # + the every-cycle strip with 12 agents or fewer
    "modes": ("Modes", 5),
    "errors": ("Errors", 3),
    "health": ("Pipeline health", 2),
    "explorer": ("Explorer", 0),
}


def log(msg: str) -> None:
    print(f"{datetime.now():%H:%M:%S} {msg}", flush=True)


def env_for(size: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("O11Y_")}
    env.update(
        O11Y_SOURCE_DIR=str(gen.DATA_DIR / size / "src"),
        O11Y_CACHE_DIR=str(gen.DATA_DIR / f"cache{size}"),
        O11Y_BACKGROUND_SYNC="0",
        **extra,
    )
    return env


def demo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("O11Y_")}
    env.update(
        O11Y_CACHE_DIR=str(gen.DATA_DIR / "cache20k"), O11Y_DEMO_LIVE="0", O11Y_BACKGROUND_SYNC="0"
    )
    return env


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """(seconds, peak RSS in KB of the child, stdout) of one process."""
    t = time.monotonic()
    r = subprocess.run(
        ["/usr/bin/time", "-f", "MAXRSS %M", *cmd], env=env, cwd=REPO, capture_output=True,
        text=True,
    )  # fmt: skip
    secs = time.monotonic() - t
    if r.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {r.stderr[-2000:]}")
    rss = next((int(x.split()[1]) for x in r.stderr.splitlines() if x.startswith("MAXRSS")), 0)
    return secs, rss, r.stdout


def store_dir(size: str) -> Path:
    return next((gen.DATA_DIR / f"cache{size}").glob("local-*"))


def du(path: Path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True)
               .stdout.split()[0])  # fmt: skip


def part_sync(size: str, out: dict[str, Any]) -> None:
    gen.ensure(size, log=log)
    env = env_for(size)
    secs, rss, stdout = timed([PY, "-m", "o11y_data", "sync"], env)
    log(f"[sync] {size}: {stdout.strip()} ({secs:.1f}s, peak RSS {rss / 1024:.0f} MB)")
    out["sync"] = {"seconds": secs, "max_rss_kb": rss, "report": stdout.strip()}
    part_sync_new(size, out)


def store_sizes(size: str) -> dict[str, int]:
    """Bytes on disk of the store: in all, and its segments, rollups and raw copies."""
    root = store_dir(size)
    return {
        "total_bytes": du(root),
        "segments_bytes": du(root / "segments"),
        "rollups_bytes": du(root / "rollups"),
        "raw_bytes": du(root / "raw"),
    }


def part_sync_new(size: str, out: dict[str, Any]) -> None:
    """A sync after 50 new files (one commit) on a synced store: the incremental path, with the
    rollup step for the days they touch."""
    info = json.loads((gen.DATA_DIR / size / "dataset.json").read_text())
    gen.new_files(info, 50, gen.folder_put_fast(gen.DATA_DIR / size / "src"))
    secs, rss, stdout = timed([PY, "-m", "o11y_data", "sync"], env_for(size))
    log(f"[sync] {size} after 50 new files: {secs:.1f}s ({stdout.strip()})")
    out["sync_50_new"] = {"seconds": secs, "max_rss_kb": rss, "report": stdout.strip()}
    out["store"] = store_sizes(size)


def part_screens(size: str, out: dict[str, Any]) -> None:
    info = json.loads((gen.DATA_DIR / size / "dataset.json").read_text())
    now = datetime.fromisoformat(info["end"])
    out["screens"] = screens_run(store_dir(size), now, env_for(size))


def part_live(size: str, out: dict[str, Any]) -> None:
    """Every screen's data, first call after a new generation in a process that has been
    serving (bench.screens.after_new_generation): 5 new files and a sync before each screen."""
    from bench.screens import after_new_generation

    info = json.loads((gen.DATA_DIR / size / "dataset.json").read_text())
    put = gen.folder_put_fast(gen.DATA_DIR / size / "src")
    env = env_for(size)

    def new_generation() -> None:
        gen.new_files(info, 5, put)
        subprocess.run([PY, "-m", "o11y_data", "sync"], env=env, cwd=REPO, check=True,
                       capture_output=True)  # fmt: skip

    res = after_new_generation(store_dir(size), datetime.fromisoformat(info["end"]), new_generation)
    for key, r in res.items():
        slow = max(r["calls"], key=r["calls"].get)
        log(f"[live] {size} {key}: {r['first_s'] * 1000:.0f} ms (slowest {slow} "
            f"{r['calls'][slow] * 1000:.0f} ms)")  # fmt: skip
    out["live"] = res


def part_cli(size: str, out: dict[str, Any]) -> None:
    env = env_for(size)
    res: dict[str, Any] = {}
    # The floor: a Python process that imports DuckDB and nothing else, run interleaved.
    cmds = {
        "status": [PY, "-m", "o11y_data", "status"],
        "summary": [PY, "-m", "o11y_data", "summary"],
        "import_duckdb": [PY, "-c", "import duckdb"],
    }
    runs: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(7):
        for k, cmd in cmds.items():
            runs[k].append(timed(cmd, env)[0])
    for k, r in runs.items():
        res[k] = {"median_s": statistics.median(r), "runs": r}
        log(f"[cli] {k}: {statistics.median(r) * 1000:.0f} ms")
    glob = f"{store_dir(size) / 'raw'}/**/*.parquet"
    code = (
        "import duckdb; duckdb.connect().execute("
        + repr(SEED_SQL.format(glob=glob))
        + ").fetchall()"
    )
    runs = [timed([PY, "-c", code], env)[0] for _ in range(3)]
    res["seed"] = {"median_s": statistics.median(runs), "runs": runs}
    res["summary_vs_seed"] = res["seed"]["median_s"] / res["summary"]["median_s"]
    log(f"[cli] seed {res['seed']['median_s']:.1f}s: summary {res['summary_vs_seed']:.1f}x faster")
    out["cli"] = res


EXPORT_CODE = """
import json, sys, time
import pandas, plotly  # the app has these loaded
from o11y_data import load_settings, open_db
from o11y_data.query.queries import Filters
from ui import export
def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM'):
            return int(line.split()[1])
db = open_db(load_settings(secrets_paths=[]))
out = {'before_kb': hwm()}
for fmt in ('csv', 'parquet'):
    t = time.monotonic()
    data = export.download(db, Filters(), fmt=fmt)
    out[fmt] = {'bytes': len(data), 'seconds': time.monotonic() - t, 'hwm_kb': hwm()}
    del data
print(json.dumps(out))
"""


def part_export(size: str, out: dict[str, Any]) -> None:
    secs, rss, stdout = timed([PY, "-c", EXPORT_CODE], env_for(size))
    res = json.loads(stdout.strip().splitlines()[-1])
    res["max_rss_kb"] = rss
    log(f"[export] 1M rows: peak RSS {rss / 1024:.0f} MB ({json.dumps(res)})")
    out["export"] = res


def visit(page: Any, url: str, name: str, query: str = "range=all") -> float:
    """Seconds from navigating to ``url/name?query`` until the page settled (heading, Streamlit
    idle, its charts drawn, then nothing running for 0.5 s, which is not counted)."""
    from bench.app import _settle

    heading, charts = HEADINGS[name]
    t = time.monotonic()
    page.goto(f"{url}/{name}?{query}", timeout=120_000)
    _settle(page, heading, charts)
    page.wait_for_timeout(500)  # "nothing running for 0.5 s"
    return time.monotonic() - t - 0.5


def part_browser(size: str, out: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    from tests.support.app_server import start_streamlit, stop_streamlit
    from tests.support.browser import CHROMIUM_ARGS, CHROMIUM_PATH

    info = json.loads((gen.DATA_DIR / size / "dataset.json").read_text())
    subprocess.run([PY, "-m", "o11y_data", "sync"], env=demo_env(), cwd=REPO, check=True)
    res: dict[str, Any] = {"floor": {}, "real": {}, "demo20k": {}, "after_sync": {}, "warm": {}}

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM_PATH), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        real_url, real = start_streamlit(REPO / "app.py", env_for(size), timeout=120)
        floor_url, floor = start_streamlit(REPO / "bench/floor/app.py", env_for(size), timeout=120)
        demo_url, demo = start_streamlit(REPO / "app.py", demo_env(), timeout=120)
        try:
            for name in PAGES:  # warm every server's caches and imports once
                for url in (real_url, floor_url, demo_url):
                    visit(page, url, name)
            for name in PAGES:
                for key in ("floor", "real", "demo20k"):
                    res[key][name] = []
                for _ in range(3):
                    for key, url in (
                        ("floor", floor_url), ("real", real_url), ("demo20k", demo_url),
                    ):  # fmt: skip
                        res[key][name].append(visit(page, url, name))
                log(
                    f"[browser] {name}: floor {statistics.median(res['floor'][name]):.2f}s "
                    f"real {statistics.median(res['real'][name]):.2f}s "
                    f"20k {statistics.median(res['demo20k'][name]):.2f}s"
                )
            res["after_sync"], res["warm"] = after_sync_visits(page, real_url, size, info, 0.0)
            res["server_hwm_kb"] = _hwm(real.pid)
        finally:
            for proc in (real, floor, demo):
                stop_streamlit(proc)
            context.close()
            browser.close()
    out["browser"] = res


def after_sync_visits(
    page: Any, url: str, size: str, info: dict[str, Any], wait_s: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Per page: 5 new files and a sync (its own process), ``wait_s`` seconds, then the page's
    first visit after that new generation and its warm visit (median of 2)."""
    put = gen.folder_put_fast(gen.DATA_DIR / size / "src")
    first: dict[str, float] = {}
    warm: dict[str, float] = {}
    for name in PAGES:
        gen.new_files(info, 5, put)
        subprocess.run([PY, "-m", "o11y_data", "sync"], env=env_for(size), check=True)
        time.sleep(wait_s)
        first[name] = visit(page, url, name)
        warm[name] = statistics.median(visit(page, url, name) for _ in range(2))
        log(f"[after sync +{wait_s:g}s] {name}: first {first[name]:.2f}s, warm {warm[name]:.2f}s")
    return first, warm


@contextlib.contextmanager
def real_app(size: str) -> Iterator[tuple[Any, str, subprocess.Popen]]:
    """(page, url, server): the real app on ``size`` and a headless Chromium page at 1600×1000."""
    from playwright.sync_api import sync_playwright

    from tests.support.app_server import start_streamlit, stop_streamlit
    from tests.support.browser import CHROMIUM_ARGS, CHROMIUM_PATH

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM_PATH), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        url, server = start_streamlit(REPO / "app.py", env_for(size), timeout=300)
        try:
            yield page, url, server
        finally:
            stop_streamlit(server)
            browser.close()


def part_after_sync(size: str, out: dict[str, Any], *, wait_s: float = 2.0) -> None:
    """The first visit after a sync as a person meets it: the sync landed ``wait_s`` seconds
    before (syncs land every minute, visits come at any time), against the warm visit."""
    info = json.loads((gen.DATA_DIR / size / "dataset.json").read_text())
    with real_app(size) as (page, url, _server):
        for name in PAGES:  # the server has been used: every page visited once
            visit(page, url, name)
        first, warm = after_sync_visits(page, url, size, info, wait_s)
    out["after_sync"] = {"wait_s": wait_s, "first": first, "warm": warm}


def part_pages(size: str, out: dict[str, Any]) -> None:
    """The growth curve's page times: the real app alone on ``size``, each page (all time) on
    its first visit after the server started and then warm (median of 2), and the server's
    peak RSS over the run."""
    res: dict[str, Any] = {"first": {}, "warm": {}}
    with real_app(size) as (page, url, server):
        for name in PAGES:
            times = [visit(page, url, name) for _ in range(3)]
            res["first"][name], res["warm"][name] = times[0], statistics.median(times[1:])
            log(f"[pages] {size} {name}: first {times[0]:.2f}s warm {res['warm'][name]:.2f}s")
        res["server_hwm_kb"] = _hwm(server.pid)
    out["pages"] = res


def _hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


PARTS = {
    "sync": part_sync,
    "screens": part_screens,
    "cli": part_cli,
    "export": part_export,
    "browser": part_browser,
    "pages": part_pages,
    "live": part_live,
    "sync_new": part_sync_new,
    "after_sync": part_after_sync,
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.speed", description=__doc__)
    p.add_argument("--sizes", default="10m")
    p.add_argument("--parts", default=",".join(PARTS))
    p.add_argument("--render", action="store_true", help="print the targets table and exit")
    args = p.parse_args(argv)
    if args.render:
        found = {
            f.stem.removeprefix("speed-"): json.loads(f.read_text())
            for f in sorted(
                gen.DATA_DIR.glob("speed-*.json"),
                key=lambda f: gen.parse_size(f.stem.removeprefix("speed-")),
            )
        }
        print(render(found))
        return
    for size in args.sizes.split(","):
        path = gen.DATA_DIR / f"speed-{size}.json"
        out: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        out["load_at_start"] = os.getloadavg()
        for part in args.parts.split(","):
            log(f"== {size}: {part}")
            PARTS[part](size, out)
            out.setdefault("done_at", {})[part] = datetime.now().isoformat()
            path.write_text(json.dumps(out, indent=1, default=str))
        log(f"wrote {path}")


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def render(results: dict[str, dict[str, Any]]) -> str:
    """The targets table (markdown) from ``speed-<size>.json`` results."""
    lines = ["| size | target | measured | |", "| --- | --- | --- | --- |"]

    def row(size: str, target: str, measured: str, ok: bool | None) -> None:
        # The targets are set at 10M events; other sizes are the growth curve's points
        # (status and the export hold at any size).
        if size != "10m" and not target.startswith(("`status`", "1M-row export")):
            ok = None
        lines.append(f"| {size} | {target} | {measured} | {'' if ok is None else _verdict(ok)} |")

    for size, r in results.items():
        if "screens" in r:
            for window in ("all", "24h"):
                cold = {
                    k.split()[0]: v["cold_s"] for k, v in r["screens"].items()
                    if k.endswith(f" {window}")
                }  # fmt: skip
                worst = max(cold, key=cold.get)
                row(
                    size,
                    f"every screen's data, {window}, first call in a fresh process ≤ 150 ms",
                    f"slowest {worst} {cold[worst] * 1000:.0f} ms; "
                    + ", ".join(f"{k} {v * 1000:.0f}" for k, v in cold.items()),
                    cold[worst] <= 0.150,
                )
        live = r.get("live")
        if live:
            for window in ("all", "24h"):
                first = {
                    k.split()[0]: v["first_s"] for k, v in live.items() if k.endswith(f" {window}")
                }
                worst = max(first, key=first.get)
                row(
                    size,
                    f"every screen's data, {window}, first call after a new generation "
                    "(a serving process, a real sync before each screen) ≤ 150 ms",
                    f"slowest {worst} {first[worst] * 1000:.0f} ms; "
                    + ", ".join(f"{k} {v * 1000:.0f}" for k, v in first.items()),
                    first[worst] <= 0.150,
                )
        b = r.get("browser")
        if b:
            for name in PAGES:
                fl, re_, dm = (statistics.median(b[k][name]) for k in ("floor", "real", "demo20k"))
                row(size, f"{name}: page ≤ 1.2× the floor page", f"{re_:.2f} s vs {fl:.2f} s = "
                    f"{re_ / fl:.2f}×", re_ / fl <= 1.2)  # fmt: skip
                row(size, f"{name}: page ≤ 1.3× the same page at 20k", f"{re_:.2f} s vs "
                    f"{dm:.2f} s = {re_ / dm:.2f}×", re_ / dm <= 1.3)  # fmt: skip
                a, w = b["after_sync"][name], b["warm"][name]
                row(size, f"{name}: first visit the moment a sync ends (racing the warmer) "
                    "≤ 1.2× warm", f"{a:.2f} s vs {w:.2f} s = {a / w:.2f}×",
                    a / w <= 1.2)  # fmt: skip
            a_s = r.get("after_sync")
            for name in PAGES if a_s else ():
                a, w = a_s["first"][name], a_s["warm"][name]
                row(size, f"{name}: first visit {a_s['wait_s']:g} s after a sync ≤ 1.2× warm",
                    f"{a:.2f} s vs {w:.2f} s = {a / w:.2f}×", a / w <= 1.2)  # fmt: skip
            row(
                size,
                "app server peak RSS (VmHWM) over the browser run",
                f"{b['server_hwm_kb'] / 1024:.0f} MB",
                None,
            )
        c = r.get("cli")
        if c:
            row(size, "`summary` as a process ≥ 15× the seed's query as a process",
                f"{c['summary_vs_seed']:.1f}× (seed {c['seed']['median_s']:.1f} s, summary "
                f"{c['summary']['median_s'] * 1000:.0f} ms)",
                c["summary_vs_seed"] >= 15)  # fmt: skip
            floor = c.get("import_duckdb", {}).get("median_s")
            extra = f" (a process importing DuckDB only: {floor * 1000:.0f} ms)" if floor else ""
            row(size, "`status` as a process < 0.5 s",
                f"{c['status']['median_s'] * 1000:.0f} ms{extra}",
                c["status"]["median_s"] < 0.5)  # fmt: skip
        e = r.get("export")
        if e:
            mb = e["max_rss_kb"] / 1024
            row(size, "1M-row export (CSV then Parquet) peak RSS < 1.5 GB",
                f"{mb:.0f} MB (CSV {e['csv']['bytes'] / 1e6:.0f} MB in "
                f"{e['csv']['seconds']:.1f} s, "
                f"Parquet {e['parquet']['bytes'] / 1e6:.0f} MB in {e['parquet']['seconds']:.1f} s)",
                mb < 1536)  # fmt: skip
        s = r.get("sync")
        if s:
            st = r["store"]
            row(size, "full sync with rollups (local folder)", f"{s['seconds']:.0f} s, peak RSS "
                f"{s['max_rss_kb'] / 1024:.0f} MB; store {st['total_bytes'] / 1e9:.2f} GB "
                f"(segments {st['segments_bytes'] / 1e6:.0f} MB, rollups "
                f"{st['rollups_bytes'] / 1e6:.0f} MB, raw {st['raw_bytes'] / 1e6:.0f} MB)",
                None)  # fmt: skip
            n = r.get("sync_50_new")
            if n:
                row(
                    size,
                    "sync after 50 new files (incl. the rollup step)",
                    f"{n['seconds']:.1f} s",
                    None,
                )
    return "\n".join(lines) + "\n\n" + render_growth(results)


def render_growth(results: dict[str, dict[str, Any]]) -> str:
    """The growth curve (markdown): per size, the sync, the store, the server and the pages."""
    lines = [
        "| events | full sync | sync peak RSS | store (segments / rollups / raw) | screens' data, "
        "all time, first call after a new generation (slowest; in a fresh process) | app server "
        "peak RSS | pages, all time: first visit (slowest) | pages warm (median · slowest) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for size, r in sorted(results.items(), key=lambda kv: gen.parse_size(kv[0])):
        s, st, p = r.get("sync"), r.get("store"), r.get("pages")
        if not (s and st):
            continue
        screens = r.get("screens", {})
        cold = [v["cold_s"] for k, v in screens.items() if k.endswith(" all")]
        live = [v["first_s"] for k, v in r.get("live", {}).items() if k.endswith(" all")]
        cells = [
            f"{gen.parse_size(size):,}",
            f"{s['seconds']:.0f} s",
            f"{s['max_rss_kb'] / 1024**2:.1f} GB",
            f"{st['total_bytes'] / 1e9:.2f} GB ({st['segments_bytes'] / 1e6:,.0f} / "
            f"{st['rollups_bytes'] / 1e6:,.0f} / {st['raw_bytes'] / 1e6:,.0f} MB)",
            (f"{max(live) * 1000:,.0f} ms; " if live else "")
            + (f"{max(cold) * 1000:,.0f} ms" if cold else "–"),
            f"{p['server_hwm_kb'] / 1024:,.0f} MB" if p else "–",
            f"{max(p['first'].values()):.1f} s" if p else "–",
            (
                f"{statistics.median(p['warm'].values()):.1f} s · {max(p['warm'].values()):.1f} s"
                if p
                else "–"
            ),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
