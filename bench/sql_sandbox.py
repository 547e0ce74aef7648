"""What the SQL sandbox costs: the same queries through the app's connection, a sandbox
connection in this process, and the sandbox's child process (what the console and ``sql`` use),
side by side in one run.

    .venv/bin/python -m bench.sql_sandbox              # on the demo store (built if missing)
    .venv/bin/python -m bench.sql_sandbox --repeat 20

Prints the median of each, and the ratios against the app's connection; then the same child
queries and the app's ``summary`` while another session's runaway query holds a sandbox process
(what the runaway test in tests/test_sandbox.py counts, timed here instead).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

QUERIES = {
    "seed summary": (
        "SELECT agent, mode, count(*) cycles, round(avg(duration_ms)) avg_ms, "
        "sum(tool_calls) tools, sum(errors) errors FROM cycles "
        "GROUP BY agent, mode ORDER BY agent, cycles DESC, mode"
    ),
    "count": "SELECT count(*) FROM events",
    "10,000 rows": "SELECT ts, agent, mode, duration_ms FROM cycles LIMIT 10000",
}
# A cross join DuckDB cannot shortcut: minutes of work on one thread.
RUNAWAY = (
    "SELECT count(*) FROM range(200000) a, range(200000) b "
    "WHERE (a.range * 7 + b.range) % 1000003 = 1"
)


def _median_ms(fn, repeat: int) -> float:
    fn()  # warm: files in the page cache, the forkserver started
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--cache", type=Path, help="an existing cache dir (default: a fresh demo)")
    args = p.parse_args()

    from o11y_data import EventsDB, load_settings, sync
    from o11y_data.ingest import demo
    from o11y_data.query import sandbox as sb
    from o11y_data.query.queries import Filters

    root = Path(tempfile.mkdtemp(prefix="bench-sql-"))
    env = {"O11Y_SOURCE_DIR": str(root / "src"), "O11Y_CACHE_DIR": str(args.cache or root)}
    settings = load_settings(env, secrets_paths=[])
    if args.cache is None:
        demo.build(root / "src", seed=7)
        sync(settings)
    db = EventsDB(settings.store_dir)
    spec, limits = db.view_spec(), sb.Limits()
    rows = int(db.query("SELECT count(*) AS n FROM events").iloc[0]["n"])
    print(f"store: {rows:,} events in {len(spec.segments)} segments; median of {args.repeat} runs")
    print(f"{'query':<14} {'app conn':>10} {'sandbox here':>13} {'sandbox child':>14}  ratios")
    for name, sql in QUERIES.items():
        app = _median_ms(lambda sql=sql: db.query(sql), args.repeat)
        here = _median_ms(lambda sql=sql: sb.run_here(spec, sql, Filters(), limits), args.repeat)
        child = _median_ms(lambda sql=sql: sb.run_sql(db, sql), args.repeat)
        print(
            f"{name:<14} {app:>8.1f}ms {here:>11.1f}ms {child:>12.1f}ms  "
            f"here/app {here / app:.1f}x, child/app {child / app:.1f}x"
        )
    _beside_a_runaway(db, args.repeat)
    db.close()
    if args.cache is None:
        shutil.rmtree(root, ignore_errors=True)


def _beside_a_runaway(db, repeat: int) -> None:
    """Child query + the app's summary, alone and while a runaway occupies a sandbox process."""
    from o11y_data.query import queries as q
    from o11y_data.query import sandbox as sb

    sql = QUERIES["seed summary"]

    def answer() -> None:
        sb.run_sql(db, sql)
        q.summary(db)

    alone = _median_ms(answer, repeat)
    stop_after = 5.0 + repeat * 2.0  # longer than the answers below take on a loaded machine

    def runaway() -> None:
        with contextlib.suppress(sb.QueryTimeout):  # stopped at its limit, as it should be
            sb.run_sql(db, RUNAWAY, limits=sb.Limits(timeout_s=stop_after))

    thread = threading.Thread(target=runaway, daemon=True)
    thread.start()
    time.sleep(0.5)  # its process is up
    beside = _median_ms(answer, repeat)
    if not thread.is_alive():
        raise SystemExit("the runaway ended before the answers did: rerun with a lower --repeat")
    print(
        f"sandbox child + summary: alone {alone:.1f}ms, beside a runaway {beside:.1f}ms "
        f"({beside / alone:.1f}x); waiting for the runaway's {stop_after:g} s limit"
    )
    thread.join()


if __name__ == "__main__":
    main()
