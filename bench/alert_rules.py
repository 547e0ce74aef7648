"""Alert evaluation cost: 500 rules against the 4 built-in ones, side by side in one run.

    .venv/bin/python -m bench.alert_rules                  # 60 agents, 3 h of cycles
    .venv/bin/python -m bench.alert_rules --agents 200 --rules 1000

Writes a local Iceberg-layout source (one cycle per agent every minute; 2-3 % of cycles with errors,
20 % for one agent in 15), syncs
it into two fresh caches (one per rule set: each keeps its own alert state) and times
``alerts.evaluate`` in steady state (after a first evaluation each) for the 4 built-in rules and
for ``--rules`` rules, alternating call by call so the machine's load falls on both alike. The
extra rules measure what people add (thresholds, severities, pending periods, named agents) over
the built-ins' metrics, windows and scopes: evaluation cost grows with the metrics measured
(queries), not with the rules. Prints the median wall-clock and CPU time of each (the CPU time of
this process, DuckDB's threads included: on a shared machine the wall clock mostly measures the
neighbours), the ratios (target: 2x or less) and the
queries each evaluation ran and the series (rule, key) it stepped: what remains grows with the
series (a per-agent rule is one series per agent), not with the queries.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from o11y_data import EventsDB, load_settings, sync
from o11y_data import alerts as A
from o11y_data.ingest.iceberg_write import TableWriter, folder_put, unstructured_table

PREFIX = "__r2_data_catalog/bench/alerts/"


def write_source(folder: Path, *, agents: int, hours: int, now: datetime) -> None:
    rows = []
    for a in range(agents):
        for m in range(hours * 60):
            ts = now - timedelta(minutes=m, seconds=a % 60)
            body = {"event_type": "agent.cycle", "agent": f"did:cf:bench{a:04d}", "mode": "think"}
            body |= {"durationMs": 500 + 10 * (m % 50), "toolCalls": 1}
            every = 5 if a % 15 == 0 else 30 + a % 20  # 1 agent in 15 errs in 20 % of its cycles
            body |= {"errors": int((a + m) % every == 0), "_ts": ts.isoformat()}
            rows.append((ts + timedelta(seconds=2), json.dumps(body)))
    writer = TableWriter(put=folder_put(folder), bucket="agent-blobs", table_prefix=PREFIX)
    writer.append([unstructured_table(rows)])


def many_rules(n: int, agents: int) -> A.RuleSet:
    """The built-ins plus ``n - 4`` rules over their metrics, windows and scopes."""
    rules = list(A.BUILTIN)
    for i in range(n - len(rules)):
        base = A.BUILTIN[i % len(A.BUILTIN)]
        named = (f"did:cf:bench{i % agents:04d}", f"did:cf:bench{(i * 7) % agents:04d}")
        scope = "agents" if base.scope == "per_agent" and i % 3 == 0 else base.scope
        rules.append(
            A.Rule(
                name=f"rule_{i:04d}",
                metric=base.metric,
                threshold=base.threshold * (1 + (i % 20) / 10),  # the built-in's and laxer
                scope=scope,
                agents=named if scope == "agents" else (),
                window_s=base.window_s,
                pending_s=float(60 * (i % 6)),
                severity=A.SEVERITIES[i % 3],
                min_cycles=base.min_cycles,
                no_data=base.no_data,
            )
        )
    return A.RuleSet(tuple(rules))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=60)
    ap.add_argument("--hours", type=int, default=3)
    ap.add_argument("--rules", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="alert-bench-") as tmp:
        root = Path(tmp)
        write_source(root / "src", agents=args.agents, hours=args.hours, now=now)
        sets = {
            "4 built-in": A.RuleSet(A.BUILTIN),
            f"{args.rules}": many_rules(args.rules, args.agents),
        }
        runs = {}
        for label in sets:
            env = {
                "O11Y_SOURCE_DIR": str(root / "src"),
                "O11Y_CACHE_DIR": str(root / f"cache-{len(runs)}"),
                "O11Y_ALERTS_FILE": str(root / "none.toml"),
            }
            settings = load_settings(env, secrets_paths=[])
            sync(settings)
            db = EventsDB(settings.store_dir)
            A.evaluate(settings, db, ruleset=sets[label])  # first: decides the initial notices
            runs[label] = (settings, db)
        took: dict[str, list[float]] = {label: [] for label in sets}
        cpu: dict[str, list[float]] = {label: [] for label in sets}
        queries: dict[str, int] = {}
        series: dict[str, int] = {}
        active: dict[str, int] = {}
        for _ in range(args.repeats):
            for label, (settings, db) in runs.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                ev = A.evaluate(settings, db, ruleset=sets[label])
                took[label].append(time.perf_counter() - start)
                cpu[label].append(time.process_time() - start_cpu)
                queries[label], series[label] = ev.queries, ev.keys
                active[label] = len(ev.series)
        for _, db in runs.values():
            db.close()
    base, many = (statistics.median(took[label]) for label in sets)
    base_cpu, many_cpu = (statistics.median(cpu[label]) for label in sets)
    print(f"alert evaluation, {args.agents} agents, {args.hours} h of cycles, steady state")
    head = f"{'rules':>12} {'median ms':>10} {'cpu ms':>8} {'queries':>8} {'series':>8}"
    print(f"{head} {'not ok':>8}")
    for label in sets:
        ms, cpu_ms = statistics.median(took[label]) * 1000, statistics.median(cpu[label]) * 1000
        line = f"{label:>12} {ms:>10.1f} {cpu_ms:>8.1f} {queries[label]:>8} {series[label]:>8}"
        print(f"{line} {active[label]:>8}")
    print(
        f"ratio {args.rules} / 4 built-in: {many / base:.2f}x wall, {many_cpu / base_cpu:.2f}x CPU"
    )
    print("(target: 2x or less; CPU time is this process's, all threads: the machine's other load")
    print(" stretches the wall-clock figures, not these)")


if __name__ == "__main__":
    main()
