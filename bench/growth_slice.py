"""A growth point from a folder already on disk: sync it, then measure the screens and the CLI.

    .venv/bin/python -m bench.growth_slice 30m

``bench/data/<size>/src`` must exist with a ``dataset.json`` beside it naming its ``end`` (this
session: ``30m`` = the newest 1,095 days of the generated ``100m`` table, hard-linked and read
as a folder of Parquet files, because a 100M sync did not fit the session on the shared machine).
Writes ``bench/data/speed-<size>.json`` in ``bench.speed``'s shape.
"""

from __future__ import annotations

import json
import sys

from bench import gen, speed


def main(size: str, *, resume: bool = False) -> None:
    path = gen.DATA_DIR / f"speed-{size}.json"
    if resume:  # the sync is done (its figures are in the file): measure the rest
        out = json.loads(path.read_text())
        for part in (speed.part_screens, speed.part_cli):
            part(size, out)
            path.write_text(json.dumps(out, indent=1, default=str))
        return
    out: dict = {}
    env = speed.env_for(size)
    secs, rss, stdout = speed.timed([speed.PY, "-m", "o11y_data", "sync"], env)
    out["sync"] = {"seconds": secs, "max_rss_kb": rss, "report": stdout.strip()}
    out["store"] = speed.store_sizes(size)
    speed.log(f"[growth] {size}: {json.dumps(out)}")
    path.write_text(json.dumps(out, indent=1))
    for part in (speed.part_screens, speed.part_cli):
        part(size, out)
        path.write_text(json.dumps(out, indent=1, default=str))
    speed.log("done")


if __name__ == "__main__":
    main(sys.argv[1], resume="--resume" in sys.argv)
