"""The performance benchmark (issue 5): one command, every figure side by side in one run.

    .venv/bin/python -m bench --sizes tiny            # smoke run, ~1 minute
    .venv/bin/python -m bench --sizes 1m,10m          # the issue's sizes (10m: tens of minutes)
    make bench                                        # = --sizes 1m,10m

For each size (``tiny`` = 5,000 events / 50 files, ``1m`` = 1M / 10,000, ``10m`` = 10M /
100,000; or a count like ``250k``) it generates the table once (cached under ``bench/data/``,
git-ignored), starts a real ``moto_server`` on loopback, uploads the table concurrently and
measures:

1. full sync vs ``aws s3 sync s3://<bucket>/<table>/data/ <dir>`` of the same live files;
2. a sync with nothing new vs ``aws s3 sync`` with nothing new;
3. a sync after 50 new files land (one new snapshot);
4. the seed's summary (DuckDB over the downloaded raw Parquet, ``json_extract`` on ``value``)
   vs ``queries.summary`` over the synced store, and that both give the same table;
5. every screen's data functions (``bench/screens.py``), last 24 h and all time: cold (fresh
   process and ``EventsDB``), warm (repeat, uncached DuckDB) and warm through the app's cache;
6. for the largest size: the real app (``streamlit run``) in headless Chromium: time to the first
   chart, every page, the server's peak RSS (``VmHWM``).

It prints a table and writes ``bench/RESULTS.md`` (the machine, versions, command, figures and the
issue's targets with PASS/MISS, then ``bench/analysis.md``); raw figures go to
``bench/data/results.json``. ``--render`` rewrites RESULTS.md from that file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import gen
from bench.report import render, table_lines
from bench.s3 import (
    PreloadedMoto,
    admin_client,
    aws_sync,
    aws_version,
    start_moto,
    upload_folder,
)

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS_JSON = gen.DATA_DIR / "results.json"
NEW_FILES = 50


def log(msg: str) -> None:
    print(f"{datetime.now():%H:%M:%S} {msg}", flush=True)


def machine() -> dict[str, Any]:
    import boto3
    import duckdb
    import moto
    import streamlit

    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "streamlit": streamlit.__version__,
        "boto3": boto3.__version__,
        "awscli": aws_version(),
        "moto": moto.__version__,
    }


def _median_time(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t = time.monotonic()
        fn()
        times.append(time.monotonic() - t)
    return statistics.median(times), times


def _count_files(root: Path) -> int:
    return sum(len([f for f in files if f.endswith(".parquet")]) for _d, _s, files in os.walk(root))


SEED_SQL = """
SELECT json_extract_string(value, '$.agent') AS agent,
       json_extract_string(value, '$.mode') AS mode,
       count(*) AS cycles,
       CAST(round(avg(CAST(json_extract(value, '$.durationMs') AS BIGINT))) AS BIGINT) AS avg_ms,
       CAST(sum(CAST(json_extract(value, '$.toolCalls') AS BIGINT)) AS BIGINT) AS tools,
       CAST(sum(CAST(json_extract(value, '$.errors') AS BIGINT)) AS BIGINT) AS errors
FROM read_parquet('{glob}')
WHERE json_extract_string(value, '$.event_type') = 'agent.cycle'
GROUP BY agent, mode
ORDER BY agent, cycles DESC, mode
"""


def seed_summary(raw_dir: Path):
    """The seed's query as the team runs it by hand: DuckDB over the downloaded files."""
    import duckdb

    conn = duckdb.connect()
    try:
        return conn.execute(SEED_SQL.format(glob=f"{raw_dir}/**/*.parquet")).df()
    finally:
        conn.close()


def screens_run(store_dir: Path, now: datetime, env: dict[str, str]) -> dict[str, Any]:
    from bench.screens import SCREENS, WINDOWS

    out: dict[str, Any] = {}
    for window in WINDOWS:
        for screen in SCREENS:
            if screen == "wall" and window != WINDOWS[0]:
                continue  # the wall has its own 1h window whatever the range
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.screens",
                    str(store_dir),
                    now.isoformat(),
                    window,
                    screen,
                ],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH-JSON ")), None)
            if proc.returncode != 0 or line is None:
                raise RuntimeError(
                    f"bench.screens {screen} {window} failed:\n{proc.stderr[-3000:]}"
                )
            r = json.loads(line.split(" ", 1)[1])
            out[f"{screen} {window}"] = r
            log(
                f"[screens] {screen:9s} {window:4s} cold {r['cold_s'] * 1000:7.0f} ms  "
                f"warm {r['warm_s'] * 1000:7.0f} ms  app-cached {r['app_cached_s'] * 1000:5.1f} ms"
            )
    return out


def app_env(endpoint: str, cache_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("O11Y_")}
    env.update(
        O11Y_R2_ENDPOINT=endpoint,
        O11Y_R2_ACCESS_KEY_ID="testing",
        O11Y_R2_SECRET_ACCESS_KEY="testing",
        O11Y_BUCKET=gen.BUCKET,
        O11Y_CACHE_DIR=str(cache_dir),
        O11Y_SYNC_INTERVAL="60",
    )
    return env


class Phases:
    """A sync progress callback that records when each phase was first and last reported."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.seen: dict[str, list[float]] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic() - self.t0
        self.seen.setdefault(phase, [now, now])[1] = now

    def summary(self, total: float) -> dict[str, float]:
        return {"total": total, **{k: v[1] - v[0] for k, v in self.seen.items()}}


def run_size(
    name: str, results: dict[str, Any], *, with_app: bool, save, http_upload: bool
) -> None:
    from o11y_data.config import load_settings
    from o11y_data.ingest.sync import sync
    from o11y_data.query.db import EventsDB
    from o11y_data.query.queries import summary

    r: dict[str, Any] = results["sizes"].setdefault(name, {})
    info = gen.ensure(name, log=log)
    r.update(events=info["events"], files=info["files"], bytes=info["bytes"])
    src = gen.DATA_DIR / name / "src"
    run_dir = gen.DATA_DIR / name / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    cache_dir, aws_dir = run_dir / "cache", run_dir / "aws"
    prefix = gen.TABLE_PREFIX + "data/"
    t = time.monotonic()
    if http_upload:
        server: Any = start_moto()
        log(f"[s3] {name}: moto_server at {server.endpoint}; uploading over HTTP")
        n = upload_folder(server.endpoint, gen.BUCKET, src, log=log)
        r["upload"] = {"objects": n, "seconds": time.monotonic() - t, "how": "HTTP PUT"}
    else:
        server = PreloadedMoto(gen.BUCKET, src, log=log)
        r["upload"] = {
            "objects": server.objects,
            "seconds": time.monotonic() - t,
            "how": "preloaded into the moto server process",
        }
    log(f"[s3] {r['upload']['objects']:,} objects in {r['upload']['seconds']:.0f}s")
    try:
        ep = server.endpoint
        env = app_env(ep, cache_dir)
        settings = load_settings(env, secrets_paths=[])

        # 1. full sync, side by side
        log("[sync] full: aws s3 sync")
        aws_full = aws_sync(ep, gen.BUCKET, prefix, aws_dir)
        aws_files = _count_files(aws_dir)
        log(f"[sync] full: aws {aws_full:.1f}s ({aws_files:,} files); ours")
        phases = Phases()
        t = time.monotonic()
        rep = sync(settings, progress=phases)
        ours_full = time.monotonic() - t
        log(f"[sync] full: ours {ours_full:.1f}s: {rep.one_line()}")
        r["full_sync"] = {
            "aws_s": aws_full,
            "aws_files": aws_files,
            "ours_s": ours_full,
            "ours_files": rep.downloaded,
            "rows": rep.rows,
            "ratio": ours_full / aws_full,
            "phases": phases.summary(ours_full),
        }
        save()

        # 2. nothing new
        reps = 2 if info["files"] >= 50_000 else 3
        aws_nn, aws_nn_all = _median_time(lambda: aws_sync(ep, gen.BUCKET, prefix, aws_dir), reps)
        ours_nn, ours_nn_all = _median_time(lambda: sync(settings), 5)
        r["nothing_new"] = {
            "aws_s": aws_nn,
            "aws_runs": aws_nn_all,
            "ours_s": ours_nn,
            "ours_runs": ours_nn_all,
            "speedup": aws_nn / ours_nn,
        }
        log(f"[sync] nothing new: aws {aws_nn:.2f}s, ours {ours_nn * 1000:.0f} ms")
        save()

        # 3. 50 new files land
        client = admin_client(ep)
        gen.new_files(
            info,
            NEW_FILES,
            lambda k, b: client.put_object(Bucket=gen.BUCKET, Key=k, Body=b),
        )
        t = time.monotonic()
        rep = sync(settings)
        ours_new = time.monotonic() - t
        aws_new = aws_sync(ep, gen.BUCKET, prefix, aws_dir)
        r["new_files"] = {
            "files": NEW_FILES,
            "ours_s": ours_new,
            "ours_downloaded": rep.downloaded,
            "aws_s": aws_new,
            "rows": rep.rows,
        }
        log(
            f"[sync] {NEW_FILES} new files: ours {ours_new:.2f}s ({rep.downloaded}), "
            f"aws {aws_new:.1f}s"
        )
        save()

        store_dir = settings.store_dir
        now = _ceil_minute(_newest_ts(store_dir))

        # 4. the seed's summary vs ours
        seed_reps = 1 if info["files"] >= 50_000 else 3
        seed_out: list[Any] = []
        seed_s, seed_runs = _median_time(lambda: seed_out.append(seed_summary(aws_dir)), seed_reps)
        seed_df = seed_out[-1]
        t = time.monotonic()
        db = EventsDB(store_dir)
        ours_df = summary(db)
        ours_cold = time.monotonic() - t
        ours_warm, ours_runs = _median_time(lambda: summary(db), 5)
        db.close()
        same = _same_summary(seed_df, ours_df)
        r["summary"] = {
            "seed_s": seed_s,
            "seed_runs": seed_runs,
            "ours_cold_s": ours_cold,
            "ours_warm_s": ours_warm,
            "speedup_cold": seed_s / ours_cold,
            "speedup_warm": seed_s / ours_warm,
            "same_result": same,
            "groups": len(ours_df),
        }
        log(
            f"[summary] seed {seed_s:.2f}s, ours cold {ours_cold * 1000:.0f} ms, "
            f"warm {ours_warm * 1000:.0f} ms, same result: {same}"
        )
        save()

        # 5. every screen's data
        r["now"] = now.isoformat()
        r["screens"] = screens_run(store_dir, now, env)
        save()

        # 6. the app
        if with_app:
            from bench import app

            log("[app] streamlit run + headless chromium")
            r["app"] = app.run(env, now, log=log)
            hwm = r["app"].get("vm_hwm_kb", 0) / 1024
            log(f"[app] peak RSS {hwm:.0f} MB; first chart {r['app'].get('first_chart_s', 0):.1f}s")
            save()
        r["disk"] = {
            "store_mb": _du(cache_dir) / 1e6,
            "segments_mb": _du(store_dir / "segments") / 1e6,
        }
        save()
    finally:
        server.close()


def _du(root: Path) -> int:
    return sum((Path(d) / f).stat().st_size for d, _s, files in os.walk(root) for f in files)


def _newest_ts(store_dir: Path) -> datetime:
    from o11y_data.query.db import EventsDB

    db = EventsDB(store_dir)
    try:
        ts = db.query("SELECT max(ts) AS t FROM events").iloc[0]["t"]
        return ts.to_pydatetime().astimezone(UTC)
    finally:
        db.close()


def _ceil_minute(t: datetime) -> datetime:
    floor = t.replace(second=0, microsecond=0)
    return floor if floor == t else floor + timedelta(minutes=1)


def _same_summary(seed, ours) -> bool:
    a = seed.reset_index(drop=True).astype(str).values.tolist()
    b = ours[["agent", "mode", "cycles", "avg_ms", "tools", "errors"]]
    return a == b.reset_index(drop=True).astype(str).values.tolist()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="tiny", help="comma-separated: tiny, 1m, 10m, 250k, …")
    ap.add_argument("--no-app", action="store_true", help="skip the browser/app measurement")
    ap.add_argument("--app-all", action="store_true", help="measure the app at every size")
    ap.add_argument(
        "--http-upload",
        action="store_true",
        help="load moto with concurrent HTTP PUTs instead of preloading (slow past ~10k files)",
    )
    ap.add_argument("--render", action="store_true", help="only rewrite RESULTS.md from JSON")
    ap.add_argument("--no-write", action="store_true", help="do not write bench/RESULTS.md")
    args = ap.parse_args(argv)
    if args.render:
        results = json.loads(RESULTS_JSON.read_text())
        (BENCH / "RESULTS.md").write_text(render(results, BENCH / "analysis.md"))
        print("\n".join(table_lines(results)))
        return
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    for s in sizes:
        gen.parse_size(s)
    largest = max(sizes, key=gen.parse_size)
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    results: dict[str, Any] = {
        "command": command.strip(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "loadavg_start": os.getloadavg(),
        "sizes": {},
    }
    gen.DATA_DIR.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        results["loadavg_end"] = os.getloadavg()
        results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        RESULTS_JSON.write_text(json.dumps(results, indent=1, default=str))

    try:
        for s in sizes:
            run_size(
                s,
                results,
                with_app=not args.no_app and (args.app_all or s == largest),
                save=save,
                http_upload=args.http_upload,
            )
    finally:
        save()
        if not args.no_write:
            (BENCH / "RESULTS.md").write_text(render(results, BENCH / "analysis.md"))
        print("\n".join(table_lines(results)))


if __name__ == "__main__":
    main()
