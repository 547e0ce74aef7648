"""The explorer's search and an old exact percentile: the local store against R2 SQL's loopback
fake (DataFusion over the same Parquet files), side by side in one run.

    .venv/bin/python -m bench.engines                   # 30 days × 1,000 events
    .venv/bin/python -m bench.engines --days 60 --per-day 2000 --repeat 7

The fake is not R2 SQL: it runs the queries in this process, with the JSON functions as Python
UDFs, and no network. What the figures show is the cost of the engine's side of the contract
(JSON parsed and normalized per query, no rollups, no sorted segments) against the store's,
and that both give the same answer; docs/scaling.md keeps the figures.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from o11y_data import open_db
from o11y_data.config import Secret
from o11y_data.query.engines.base import Aggregate, NewestRows, Question, TableState
from o11y_data.query.engines.r2sql import Client, R2SQLEngine
from o11y_data.query.planner import Filters
from o11y_data.query.route import Router
from tests.support import r2sql_fake as fake_mod
from tests.support.engine_tables import START, folder_rows, history, synced_settings, write_folder


def _median_s(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--per-day", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="o11y-bench-engines-") as tmp:
        root = Path(tmp)
        write_folder(root / "src", history(days=args.days, per_day=args.per_day))
        t0 = time.perf_counter()
        settings = synced_settings(root / "src", root)
        sync_s = time.perf_counter() - t0
        table = folder_rows(root / "src")
        fake = fake_mod.FakeR2SQL(rows=lambda: table)
        server, thread = fake_mod.serve(fake)
        try:
            client = Client(fake.endpoint, fake.account, fake.bucket, Secret(fake.token))
            engine = R2SQLEngine(client, "agent_network.events", lambda: TableState(1))
            router = Router(open_db(settings))  # no horizon: the store answers everything
            old = Filters(START + timedelta(days=2), START + timedelta(days=5))
            questions: dict[str, Question] = {
                "explorer search (newest 500, 'beta')": NewestRows(old, limit=500, search="beta"),
                "exact p95 of an old 3-day window": Aggregate(("p95_ms", "cycles"), old),
            }
            print(f"{table.num_rows:,} rows in {args.days} files; first sync {sync_s:.1f} s")
            print(f"{'question':<40} {'local':>9} {'R2 SQL fake':>12} {'ratio':>7}  same")
            for name, q in questions.items():
                local = _median_s(lambda q=q: router.ask(q), args.repeat)
                remote = _median_s(lambda q=q: engine.answer(q, TableState(1)), args.repeat)
                a, b = router.ask(q).frame, engine.answer(q, TableState(1)).frame
                same = len(a) == len(b)
                print(f"{name:<40} {local:>8.3f}s {remote:>11.3f}s {remote / local:>6.0f}×  {same}")
        finally:
            fake_mod.stop(fake, server, thread)


if __name__ == "__main__":
    main()
