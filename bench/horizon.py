"""Disk and first sync under a raw horizon against the history it bounds (issue 21, part 1).

    python -m bench.horizon [--sizes 250k,500k,1m] [--horizon 3d] [--engine]

Generates (``bench.gen``, cached under ``bench/data/``) tables of 1×, 2× and 4× the history, all
ending now, and runs a first sync of each from an empty store twice, side by side in one run:
with ``O11Y_RAW_HORIZON`` fixed and with ``all``. Prints the store's bytes per part (raw copies,
segments, rollups), the first sync's seconds and its data-file GETs (kept, streamed through the
rollups) for each. With the horizon, raw copies and segments stay flat as the history doubles;
the rollups and the sync's time and GETs grow with it (every file is read once).

With ``--engine``, each table is also served by a moto_server (filled before it serves, as
bench/s3.py does) behind the tests' loopback REST catalog, and synced from it twice from an empty
store, side by side: O11Y_HISTORY=stream (the history before the horizon downloaded, rolled up,
deleted) and O11Y_HISTORY=engine (Daft's local runner asked for its rollup). The dashboard's and
Daft's data-file GETs are counted by two proxies; the two stores' rollup tables are compared row by
row (DuckDB), so a figure never comes from a wrong answer.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

from bench import gen
from o11y_data import load_settings, sync


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def first_sync(size: str, horizon: str) -> dict[str, Any]:
    """One first sync of ``size`` from an empty store under ``horizon``: its figures."""
    cache = gen.DATA_DIR / f"horizon-cache-{size}-{horizon}"
    shutil.rmtree(cache, ignore_errors=True)
    settings = load_settings(
        {
            "O11Y_SOURCE_DIR": str(gen.DATA_DIR / size / "src"),
            "O11Y_CACHE_DIR": str(cache),
            "O11Y_RAW_HORIZON": horizon,
        },
        secrets_paths=[],
    )
    started = time.monotonic()
    report = sync(settings)
    seconds = time.monotonic() - started
    root = settings.store_dir
    out = {
        "size": size,
        "horizon": horizon,
        "events": report.rows,
        "files": report.live_files,
        "seconds": seconds,
        "kept_gets": report.downloaded,
        "streamed_gets": report.streamed,
        "raw": du(root / "raw"),
        "segments": du(root / "segments"),
        "rollups": du(root / "rollups"),
    }
    shutil.rmtree(cache, ignore_errors=True)
    return out


def _data_gets(proxy: Any) -> int:
    return sum(1 for m, p in proxy.requests if m == "GET" and p.split("?")[0].endswith(".parquet"))


def history_modes(size: str, horizon: str, chunk: int) -> list[dict[str, Any]]:
    """First syncs of ``size`` from a bucket under ``horizon``: streaming the history, then
    asking Daft (local runner) for it; seconds, GETs (the dashboard's, Daft's) and whether the
    two stores' rollups are equal. The generated rows are appended by pyiceberg (Daft reads
    Parquet by field id, which bench.gen's writer leaves out), ``chunk`` rows a commit."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from bench.s3 import start_moto
    from o11y_data.query.engines.daft_engine import DaftEngine
    from tests.support.engine_tables import rollup_rows
    from tests.support.proxy import FaultProxy
    from tests.support.reference_tables import RefTable
    from tests.support.rest_catalog import TOKEN, RestCatalog
    from tests.support.s3server import s3_client
    from tests.support.tables import r2_env

    data = gen.DATA_DIR / size / "src" / gen.TABLE_PREFIX / "data"
    parts = [pq.read_table(f, columns=["__ingest_ts", "value"]) for f in data.rglob("*.parquet")]
    rows = pa.concat_tables(parts).sort_by("__ingest_ts")
    moto = start_moto()
    tmp = Path(tempfile.mkdtemp(prefix="o11y-bench-history-"))
    s3 = s3_client(moto.endpoint)
    s3.create_bucket(Bucket=gen.BUCKET)
    ref = RefTable.create(endpoint=moto.endpoint, s3=s3, bucket=gen.BUCKET, db=tmp / "c.db")
    started = time.monotonic()
    for i in range(0, rows.num_rows, chunk):
        ref.append(rows.slice(i, chunk))
    files = len(ref.data_files())
    print(f"{size}: {rows.num_rows:,} rows in {files} files by pyiceberg in "
          f"{time.monotonic() - started:.0f} s", flush=True)  # fmt: skip
    catalog = RestCatalog(
        location=lambda: ref.table.metadata_location,
        s3=s3,
        bucket=gen.BUCKET,
        endpoint=moto.endpoint,
    )
    out: list[dict[str, Any]] = []
    stores = []
    try:
        with FaultProxy(moto.endpoint) as board, FaultProxy(moto.endpoint) as remote:
            for mode in ("stream", "engine"):
                env = r2_env(
                    board.endpoint,
                    gen.BUCKET,
                    tmp / f"cache-{mode}",
                    O11Y_CATALOG_URI=catalog.uri,
                    O11Y_CATALOG_TOKEN=TOKEN,
                    O11Y_ENGINE="daft",
                    O11Y_HISTORY=mode,
                    O11Y_RAW_HORIZON=horizon,
                    O11Y_AGENTS_FILE=str(tmp / "no-agents.toml"),
                )
                settings = load_settings(env, secrets_paths=[])
                engine = None
                if mode == "engine":
                    at = {**env, "O11Y_R2_ENDPOINT": remote.endpoint}
                    engine = DaftEngine.from_settings(load_settings(at, secrets_paths=[]))
                board.clear_requests()
                remote.clear_requests()
                started = time.monotonic()
                report = sync(settings, history=engine)
                seconds = time.monotonic() - started
                stores.append(settings)
                out.append(
                    {
                        "size": size,
                        "mode": mode,
                        "events": report.rows,
                        "files": report.live_files,
                        "seconds": seconds,
                        "gets": _data_gets(board),
                        "engine_gets": _data_gets(remote),
                        "kept": report.downloaded,
                        "streamed": report.streamed,
                        "aggregated": report.aggregated,
                    }
                )
        same = rollup_rows(stores[0]) == rollup_rows(stores[1])
        for row in out:
            row["same"] = same
    finally:
        catalog.close()
        moto.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def render_modes(rows: list[dict[str, Any]]) -> str:
    head = (
        "| table | history | events | files | first sync | dashboard data GETs | Daft data GETs "
        "| files kept + streamed + rolled up by Daft | rollups equal |\n" + "| --- " * 9 + "|"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['mode']} | {r['events']:,} | {r['files']:,} | "
            f"{r['seconds']:.1f} s | "
            f"{r['gets']:,} | {r['engine_gets']:,} | "
            f"{r['kept']:,} + {r['streamed']:,} + {r['aggregated']:,} | "
            f"{'yes' if r['same'] else 'NO'} |"
        )
    return "\n".join(lines)


def render(rows: list[dict[str, Any]]) -> str:
    head = (
        "| table | horizon | events | files | first sync | data GETs (kept + streamed) | "
        "raw copies | segments | rollups | raw + segments |\n" + "| --- " * 10 + "|"
    )
    lines = [head]
    for r in rows:
        mb = {k: r[k] / 1e6 for k in ("raw", "segments", "rollups")}
        lines.append(
            f"| {r['size']} | {r['horizon']} | {r['events']:,} | {r['files']:,} | "
            f"{r['seconds']:.1f} s | {r['kept_gets'] + r['streamed_gets']:,} "
            f"({r['kept_gets']:,} + {r['streamed_gets']:,}) | {mb['raw']:.1f} MB | "
            f"{mb['segments']:.1f} MB | {mb['rollups']:.1f} MB | "
            f"{mb['raw'] + mb['segments']:.1f} MB |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="250k,500k,1m", help="tables of 1x, 2x, 4x the history")
    ap.add_argument("--horizon", default="3d", help="O11Y_RAW_HORIZON for the bounded store")
    ap.add_argument(
        "--engine", action="store_true", help="also: first syncs from a bucket, stream vs Daft"
    )
    ap.add_argument("--chunk", type=int, default=10_000, help="rows a pyiceberg commit (--engine)")
    ap.add_argument("--only-engine", action="store_true", help="skip the folder syncs")
    args = ap.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    rows = []
    for size in sizes:
        info = gen.ensure(size)
        if args.only_engine:
            continue
        print(f"{size}: {info['events']:,} events, {info['start'][:10]} to {info['end'][:10]}")
        for horizon in (args.horizon, "all"):
            rows.append(first_sync(size, horizon))
            print(render(rows[-1:]).splitlines()[-1], flush=True)
    if rows:
        print()
        print(render(rows))
    bounded = [r for r in rows if r["horizon"] != "all"]
    if len(bounded) > 1:
        first, last = bounded[0], bounded[-1]
        grow = (last["raw"] + last["segments"]) / max(1, first["raw"] + first["segments"])
        print(
            f"\nhistory ×{last['events'] / max(1, first['events']):.1f}: raw + segments "
            f"×{grow:.2f} with {args.horizon}, first sync ×{last['seconds'] / first['seconds']:.1f}"
        )
    if args.engine:
        modes = []
        for size in sizes:
            modes += history_modes(size, args.horizon, args.chunk)
            print("\n".join(render_modes(modes[-2:]).splitlines()[2:]), flush=True)
        print()
        print(render_modes(modes))
        for size in sizes:
            s, e = (r for r in modes if r["size"] == size)
            print(
                f"{size}: engine first sync ×{e['seconds'] / s['seconds']:.2f} of streaming's, "
                f"dashboard data GETs {e['gets']:,} against {s['gets']:,}"
            )


if __name__ == "__main__":
    main()
