"""Disk and first sync under a raw horizon against the history it bounds (issue 21, part 1).

    python -m bench.horizon [--sizes 250k,500k,1m] [--horizon 3d]

Generates (``bench.gen``, cached under ``bench/data/``) tables of 1×, 2× and 4× the history, all
ending now, and runs a first sync of each from an empty store twice, side by side in one run:
with ``O11Y_RAW_HORIZON`` fixed and with ``all``. Prints the store's bytes per part (raw copies,
segments, rollups), the first sync's seconds and its data-file GETs (kept, streamed through the
rollups) for each. With the horizon, raw copies and segments stay flat as the history doubles;
the rollups and the sync's time and GETs grow with it (every file is read once).
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
    args = ap.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    rows = []
    for size in sizes:
        info = gen.ensure(size)
        print(f"{size}: {info['events']:,} events, {info['start'][:10]} to {info['end'][:10]}")
        for horizon in (args.horizon, "all"):
            rows.append(first_sync(size, horizon))
            print(render(rows[-1:]).splitlines()[-1], flush=True)
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


if __name__ == "__main__":
    main()
