"""The explorer's search and an old exact percentile: the local store against Daft, on its local
runner and on a Ray cluster (a head and one worker on loopback), side by side in one run.

    .venv/bin/python -m bench.daft_engine                 # 30 days × 1,000 events
    .venv/bin/python -m bench.daft_engine --days 60 --per-day 2000 --repeat 5

The table is a pyiceberg table (one file per day partition) in a moto_server, behind the tests'
loopback REST catalog; the dashboard's store is synced from it. Each Daft runner is asked from
a process of its own (Daft sets its runner once per process), configured by the environment as a
dashboard would be (O11Y_ENGINE=daft, O11Y_RAY_ADDRESS). First answers (cold: planning, Ray's
workers starting) are shown apart from the medians of the next ones. docs/scaling.md keeps the
figures; the same questions as bench/engines.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from o11y_data import load_settings, open_db, sync
from o11y_data.query.engines.base import Aggregate, NewestRows, Question
from o11y_data.query.planner import Filters
from o11y_data.query.route import Router, engine_for
from tests.support.engine_tables import START, arrow_rows, history

ROOT = Path(__file__).resolve().parents[1]


def questions() -> dict[str, Question]:
    old = Filters(START + timedelta(days=2), START + timedelta(days=5))
    return {
        "explorer search (newest 500, 'beta')": NewestRows(old, limit=500, search="beta"),
        "exact p95 of an old 3-day window": Aggregate(("p95_ms", "cycles"), old),
    }


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(first answer's seconds, median of the next ``repeat``, the last answer)."""
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times), out


def child(repeat: int) -> None:
    """Ask the questions of the engine the environment configures; one JSON line out."""
    settings = load_settings(dict(os.environ), secrets_paths=[])
    engine = engine_for(settings)
    assert engine is not None
    state = engine.table_state()
    out = {}
    for name, q in questions().items():
        first, median, answer = _timed(lambda q=q: engine.answer(q, state), repeat)
        out[name] = {"first": first, "median": median, "rows": len(answer.frame)}
    print(json.dumps(out))


def _ask_child(env: dict[str, str], repeat: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.daft_engine", "--child", "--repeat", str(repeat)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if out.returncode != 0:
        raise SystemExit(f"the Daft process failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--per-day", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.repeat)

    from tests.support.ray_cluster import RayCluster
    from tests.support.reference_tables import RefTable
    from tests.support.rest_catalog import TOKEN, RestCatalog
    from tests.support.s3server import MotoServer, s3_client
    from tests.support.tables import r2_env

    days = history(days=args.days, per_day=args.per_day)
    with tempfile.TemporaryDirectory(prefix="o11y-bench-daft-") as tmp, MotoServer() as moto:
        root = Path(tmp)
        s3 = s3_client(moto.endpoint)
        s3.create_bucket(Bucket="agent-blobs")
        ref = RefTable.create(endpoint=moto.endpoint, s3=s3, bucket="agent-blobs", db=root / "c.db")
        ref.append(arrow_rows([r for day in days for r in day]))
        files = len(ref.data_files())  # one per day partition the rows land in
        catalog = RestCatalog(
            location=lambda: ref.table.metadata_location,
            s3=s3,
            bucket="agent-blobs",
            endpoint=moto.endpoint,
        )
        cluster = RayCluster()
        try:
            env = r2_env(
                moto.endpoint,
                "agent-blobs",
                root / "cache",
                O11Y_CATALOG_URI=catalog.uri,
                O11Y_CATALOG_TOKEN=TOKEN,
                O11Y_ENGINE="daft",
                O11Y_AGENTS_FILE=str(root / "no-agents.toml"),
            )
            settings = load_settings(env, secrets_paths=[])
            t0 = time.perf_counter()
            sync(settings)
            sync_s = time.perf_counter() - t0
            router = Router(open_db(settings))  # no horizon: the store answers everything
            local = {
                n: _timed(lambda q=q: router.ask(q), args.repeat) for n, q in questions().items()
            }
            daft_local = _ask_child({**os.environ, **env, "PYTHONPATH": str(ROOT)}, args.repeat)
            cluster.start()
            on_ray = {**cluster.env, **env, "O11Y_RAY_ADDRESS": cluster.address}
            daft_ray = _ask_child(on_ray, args.repeat)
        finally:
            cluster.stop()
            catalog.close()
    rows = sum(len(d) for d in days)
    print(f"{rows:,} rows in {files} data files; first sync {sync_s:.1f} s")
    print(f"{'question':<38} {'local':>8} {'Daft local':>16} {'Daft on Ray':>16}  rows")
    for name in questions():
        lf, lm, ans = local[name]
        d, r = daft_local[name], daft_ray[name]
        same = len(ans.frame) == d["rows"] == r["rows"]
        print(
            f"{name:<38} {lm:>7.3f}s {d['median']:>6.2f}s ({d['first']:>5.1f}) "
            f"{r['median']:>6.2f}s ({r['first']:>5.1f})  {'same' if same else 'DIFFERENT'}"
        )
    print("medians of the answers after the first; (the first answer's seconds)")


if __name__ == "__main__":
    main()
