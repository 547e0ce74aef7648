"""The explorer's search and an old exact percentile, asked of every engine side by side in one
run, against the local store answering the same question from its own raw rows:

- R2 SQL through its loopback fake (tests/support/r2sql_fake.py: DataFusion in this process, the
  JSON functions as Python UDFs, no network);
- Daft on its local runner, and Daft on a Ray cluster (a head and one worker of one CPU each on
  loopback), each asked from a process of its own configured as a dashboard is
  (O11Y_ENGINE=daft, O11Y_RAY_ADDRESS), since Daft sets its runner once per process.

    .venv/bin/python -m bench.engines                          # 7 days at 27,400 events a day
    .venv/bin/python -m bench.engines --days 14 --repeat 3 --no-ray

The table is the benchmark generator's (bench/gen.py): its rate (27,400 events a day, 32 agents,
a file of 100 events every ~5 minutes, each file one day partition), written by the Iceberg
writer into a moto_server behind the tests' loopback REST catalog; the store is synced from it
with every row kept raw (O11Y_RAW_HORIZON=all), so it answers the old questions itself. Each
question covers three days that end two days before the table's end. The engines prune by the
window's start only (an event may land any time after it happened), so they read the table from
the window's start on. First answers (cold: planning, Ray's workers starting) are shown apart
from the medians of the next ones; docs/scaling.md keeps the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from bench import gen
from o11y_data import load_settings, open_db, sync
from o11y_data.query.engines.base import Aggregate, Answer, NewestRows, Question
from o11y_data.query.planner import Filters
from o11y_data.query.route import Router, engine_for

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 10, 1, tzinfo=UTC)
BUCKET = "agent-blobs"
PREFIX = "__r2_data_catalog/cat0001/tbl0001/"


def window(days: int) -> Filters:
    """Three days ending two days before the table's end (the oldest three when it is short)."""
    end = START + timedelta(days=max(3, days - 2))
    return Filters(end - timedelta(days=3), end)


def questions(days: int) -> dict[str, Question]:
    old = window(days)
    # A fragment of one of the generator's 32 agent DIDs: about 1/32 of the events match.
    needle = gen.dids()[5][8:16]
    return {
        f"explorer search (newest 500 matching {needle!r})": NewestRows(
            old, limit=500, search=needle
        ),
        "exact p95 of an old 3-day window": Aggregate(("p95_ms", "cycles"), old),
    }


def digest(answer: Answer) -> list[Any]:
    """What must agree across engines: the rows' count, and an aggregate's values."""
    frame = answer.frame
    if "ts" in frame.columns:
        return [len(frame), str(frame["ts"].min()), str(frame["ts"].max())]
    return [len(frame), *(round(float(v), 6) for v in frame.iloc[0].tolist())]


def agree(a: list[Any], b: list[Any]) -> bool:
    """Digests agree: equal counts and times, values within float rounding (1e-6 relative: an
    engine's percentile interpolates in its own arithmetic)."""
    return len(a) == len(b) and all(
        math.isclose(x, y, rel_tol=1e-6) if isinstance(x, float) else x == y
        for x, y in zip(a, b, strict=True)
    )


def _timed(fn: Callable[[], Answer], repeat: int) -> dict[str, Any]:
    """The first answer's seconds, the median of the next ``repeat``, the last answer's digest."""
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return {"first": first, "median": statistics.median(times), "digest": digest(out)}


def child(days: int, repeat: int) -> None:
    """Ask the questions of the engine the environment configures; one JSON line out."""
    settings = load_settings(dict(os.environ), secrets_paths=[])
    engine = engine_for(settings)
    if engine is None:
        raise SystemExit("no engine configured (O11Y_ENGINE)")
    state = engine.table_state()
    out = {
        n: _timed(lambda q=q: engine.answer(q, state), repeat) for n, q in questions(days).items()
    }
    print(json.dumps(out))


def _ask_child(env: dict[str, str], days: int, repeat: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.engines", "--child", "--days", str(days)]
    out = subprocess.run(
        [*cmd, "--repeat", str(repeat)],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=7200,
    )
    if out.returncode != 0:
        raise SystemExit(f"the Daft process failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def build_table(days: int, per_day: int, per_file: int, s3: Any) -> tuple[pa.Table, str, int]:
    """The generator's rows for ``days`` from START, as Iceberg data files in moto (one per
    file window and day); returns (every row, the metadata key, data files)."""
    from o11y_data.ingest.iceberg_write import TableWriter
    from tests.support.tables import s3_put

    files = days * per_day // per_file
    spec = gen.Spec("engines", files * per_file, files, int(START.timestamp() * 1e6), 0)
    spec = gen.Spec(spec.name, spec.events, files, spec.t0_us, days * 86_400_000_000 // files)
    table = gen.events_table(spec, 0, files)
    writer = TableWriter(
        put=s3_put(s3, BUCKET),
        bucket=BUCKET,
        table_prefix=PREFIX,
        clock=lambda: spec.end.timestamp(),
    )
    rows = table.select(["__ingest_ts", "value"]).cast(gen_schema())
    written = []
    key = ""
    for f in range(files):
        written += writer.write_days(rows.slice(f * spec.per_file, spec.per_file))
        if len(written) >= gen.COMMIT_FILES or f == files - 1:
            key = writer.commit(written)
            written = []
    data_files = sum(len([e for e in m.entries if e[0] != 2]) for m in writer.manifests)
    return rows, key, data_files


def gen_schema() -> pa.Schema:
    """The table's Arrow schema with Iceberg field ids in the Parquet files, as the pipeline's
    writer (and pyiceberg) writes them: Daft maps columns by id and refuses files without."""
    return pa.schema(
        [
            pa.field("__ingest_ts", pa.timestamp("us", tz="UTC"), True, {"PARQUET:field_id": "1"}),
            pa.field("value", pa.string(), True, {"PARQUET:field_id": "2"}),
        ]
    )


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--per-day", type=int, default=gen.EVENTS_PER_DAY)
    ap.add_argument("--per-file", type=int, default=gen.EVENTS_PER_FILE)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-ray", action="store_true", help="skip Daft on a Ray cluster")
    ap.add_argument("--no-daft", action="store_true", help="skip Daft (local runner and Ray)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.days, args.repeat)

    from o11y_data.config import Secret
    from o11y_data.query.engines.base import TableState
    from o11y_data.query.engines.r2sql import Client, R2SQLEngine
    from tests.support import r2sql_fake as fake_mod
    from tests.support.ray_cluster import RayCluster
    from tests.support.rest_catalog import TOKEN, RestCatalog
    from tests.support.s3server import MotoServer, s3_client
    from tests.support.tables import r2_env

    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {_load()}")
    print(f"python -m bench.engines {' '.join(sys.argv[1:])}".rstrip())
    results: dict[str, dict[str, Any]] = {}
    qs = questions(args.days)
    with tempfile.TemporaryDirectory(prefix="o11y-bench-engines-") as tmp, MotoServer() as moto:
        root = Path(tmp)
        s3 = s3_client(moto.endpoint)
        s3.create_bucket(Bucket=BUCKET)
        t0 = time.perf_counter()
        rows, key, data_files = build_table(args.days, args.per_day, args.per_file, s3)
        print(
            f"{rows.num_rows:,} events over {args.days} days in {data_files:,} data files "
            f"(written in {time.perf_counter() - t0:.0f} s)"
        )
        catalog = RestCatalog(
            location=lambda: f"s3://{BUCKET}/{key}", s3=s3, bucket=BUCKET, endpoint=moto.endpoint
        )
        cluster = RayCluster()
        try:
            env = r2_env(
                moto.endpoint,
                BUCKET,
                root / "cache",
                O11Y_CATALOG_URI=catalog.uri,
                O11Y_CATALOG_TOKEN=TOKEN,
                O11Y_RAW_HORIZON="all",
                O11Y_ENGINE="daft",
                O11Y_AGENTS_FILE=str(root / "no-agents.toml"),
            )
            settings = load_settings(env, secrets_paths=[])
            t0 = time.perf_counter()
            sync(settings)
            print(f"first sync of the store {time.perf_counter() - t0:.0f} s")
            router = Router(open_db(settings))  # every row raw: the store answers everything
            results["local store"] = {
                n: _timed(lambda q=q: router.ask(q), args.repeat) for n, q in qs.items()
            }
            fake = fake_mod.FakeR2SQL(rows=lambda: rows)
            server, thread = fake_mod.serve(fake)
            try:
                client = Client(
                    fake.endpoint, fake.account, fake.bucket, Secret(fake.token), timeout_s=3600
                )
                engine = R2SQLEngine(client, "agent_network.events", lambda: TableState(1))
                results["R2 SQL fake"] = {
                    n: _timed(lambda q=q: engine.answer(q, TableState(1)), args.repeat)
                    for n, q in qs.items()
                }
            finally:
                fake_mod.stop(fake, server, thread)
            base = {**os.environ, **env}
            if not args.no_daft:
                results["Daft local"] = _ask_child(base, args.days, args.repeat)
            if not (args.no_daft or args.no_ray):
                cluster.start()
                on_ray = {**base, **cluster.env, "O11Y_RAY_ADDRESS": cluster.address}
                results["Daft on Ray"] = _ask_child(on_ray, args.days, args.repeat)
        finally:
            cluster.stop()
            catalog.close()
    report(results, qs)


def report(results: dict[str, dict[str, Any]], qs: dict[str, Question]) -> None:
    engines = [e for e in results if e != "local store"]
    head = f"{'question':<50} {'local store':>17}" + "".join(f" {e:>22}" for e in engines)
    print(head + "  answers")
    for name in qs:
        local = results["local store"][name]
        line = f"{name:<50} {local['median']:>7.3f}s ({local['first']:>6.3f})"
        for e in engines:
            r = results[e][name]
            ratio = r["median"] / local["median"]
            line += f" {r['median']:>6.2f}s ({r['first']:>5.1f}) {ratio:>5.0f}×"
        same = all(agree(results[e][name]["digest"], local["digest"]) for e in engines)
        print(f"{line}  {'same' if same else 'DIFFERENT'}")
        if not same:
            for e in results:
                print(f"    {e}: {results[e][name]['digest']}")
    print("medians of the answers after the first; (the first answer's seconds); × the local's")
    print(f"load average at the end {_load()}")


if __name__ == "__main__":
    main()
