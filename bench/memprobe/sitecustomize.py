"""Allocator figures from inside a served app, for ``bench.team`` (not part of the app).

    MEMPROBE_OUT=/tmp/mem.txt PYTHONPATH=bench/memprobe \\
        .venv/bin/python -m bench.team --viewers 30 --minutes 10 --no-write

Python imports ``sitecustomize`` at start-up from ``PYTHONPATH``; the benchmark passes its
environment on to ``streamlit run``, so only when ``MEMPROBE_OUT`` is set and the process is a
Streamlit server, a thread appends one line every ``MEMPROBE_EVERY`` seconds (default 20): RSS,
Python's own traced memory (``tracemalloc``, one frame: it costs little), glibc's arenas
(``o11y_data.memory.malloc_stats``: in use, free inside them, mapped on their own), pymalloc's
1 MiB arenas and the bytes live in them (``sys._debugmallocstats``; it reports nothing while
tracemalloc is on, so set ``MEMPROBE_TRACE=0`` for them), and pyarrow's pool. This is how
bench/team.md tells a growing live set from holes in the allocator's arenas.

With ``MEMPROBE_SNAP=<seconds>`` it also writes, every that many seconds, to ``<out>.snap``:
the Python allocations that grew most since the first snapshot, grouped by traceback
(``MEMPROBE_FRAMES`` frames, default 8; more frames cost more CPU), the object types whose
count grew most, Streamlit's own caches by name (its stats providers: ``st.cache_data``
entries, session state, the message cache) and DuckDB's memory on each ``EventsDB``'s
connection (``duckdb_memory()``). That says which of them holds what the RSS gained.
"""

import os
import sys

if os.environ.get("MEMPROBE_OUT") and any("streamlit" in a for a in sys.argv[:2]):
    import threading
    import time
    import tracemalloc

    def _status_mib(field: str = "VmRSS") -> float:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def _rss_mib() -> float:
        return _status_mib()

    def _pymalloc() -> str:
        # Python's small-object allocator maps 1 MiB arenas of its own (outside glibc's figures);
        # an arena goes back to the system only when every object in it is freed.
        import tempfile

        saved = os.dup(2)
        with tempfile.TemporaryFile() as fh:
            os.dup2(fh.fileno(), 2)  # _debugmallocstats writes to C's stderr
            try:
                sys._debugmallocstats()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            fh.seek(0)
            text = fh.read().decode(errors="replace")
        got = {}
        for line in text.splitlines():
            name, _, value = line.partition("=")
            name = name.strip("# ").strip()
            if name in ("arenas allocated current", "bytes in allocated blocks"):
                got[name] = int(value.strip().replace(",", ""))
        return (
            f" pymalloc_arenas={got.get('arenas allocated current', 0)}"
            f" pymalloc_used={got.get('bytes in allocated blocks', 0) / 2**20:.1f}"
        )

    def _arrow_mib() -> str:
        # pyarrow's own pool (mimalloc by default) is outside glibc's figures above.
        pa = sys.modules.get("pyarrow")
        if pa is None:
            return ""
        pool = pa.default_memory_pool()
        return f" arrow[{pool.backend_name}]={pool.bytes_allocated() / 2**20:.1f}"

    def _streamlit_caches() -> list[str]:
        from collections import defaultdict

        from streamlit.runtime import Runtime

        if not Runtime.exists():
            return ["streamlit: no runtime yet"]
        size: dict[tuple[str, str], int] = defaultdict(int)
        count: dict[tuple[str, str], int] = defaultdict(int)
        for stats in Runtime.instance().stats_mgr.get_stats().values():
            for s in stats:
                if hasattr(s, "byte_length"):
                    key = (s.category_name, s.cache_name.rsplit(".", 1)[-1])
                    size[key] += s.byte_length
                    count[key] += 1
        return [
            f"streamlit {cat}:{name} entries={count[(cat, name)]}"
            f" bytes={size[(cat, name)] / 2**20:.2f}MiB"
            for cat, name in sorted(size, key=lambda k: -size[k])
        ]

    def _duckdb(objs: list) -> list[str]:
        from o11y_data.query.db import EventsDB

        lines = []
        for db in (o for o in objs if isinstance(o, EventsDB)):
            cur = db.conn.cursor()
            try:
                rows = cur.execute(
                    "SELECT tag, memory_usage_bytes, temporary_storage_bytes FROM duckdb_memory()"
                    " WHERE memory_usage_bytes > 0 OR temporary_storage_bytes > 0"
                ).fetchall()
            finally:
                cur.close()
            parts = " ".join(f"{t}={m / 2**20:.1f}/{s / 2**20:.1f}" for t, m, s in rows)
            lines.append(
                f"duckdb db@{id(db):x} reconnects={db.reconnects} files={len(db._files)}"
                f" stale={db._stale} memo={len(db._memo)} mem/tmp MiB: {parts or '-'}"
            )
        return lines

    def _snapshots(out: str, every: float) -> None:
        import gc
        from collections import Counter

        first = None
        types0: Counter | None = None
        t0 = time.monotonic()
        while True:
            time.sleep(every)
            objs = gc.get_objects()
            types = Counter(type(o).__qualname__ for o in objs)
            snap = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)]
            )
            lines = [f"=== {time.monotonic() - t0:.0f}s rss={_rss_mib():.1f}"]
            try:
                lines += _streamlit_caches()
            except Exception as exc:  # a probe: say it, go on
                lines.append(f"streamlit stats failed: {exc!r}")
            try:
                lines += _duckdb(objs)
            except Exception as exc:
                lines.append(f"duckdb stats failed: {exc!r}")
            del objs
            if first is None:
                first, types0 = snap, types
                lines.append(f"(first snapshot: {len(snap.traces)} traces)")
            else:
                grew = (types - types0).most_common(15)
                lines.append("types grown: " + ", ".join(f"{t}+{n}" for t, n in grew))
                for st in snap.compare_to(first, "traceback")[:15]:
                    lines.append(
                        f"-- {st.size_diff / 2**20:+.2f} MiB ({st.count_diff:+d} blocks),"
                        f" now {st.size / 2**20:.2f} MiB"
                    )
                    lines += ["     " + ln for ln in st.traceback.format(limit=6)]
            with open(out + ".snap", "a") as fh:
                fh.write("\n".join(lines) + "\n")

    def _probe(out: str, every: float) -> None:
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository
        from o11y_data.memory import malloc_stats

        t0 = time.monotonic()
        while True:
            m = malloc_stats()
            py = tracemalloc.get_traced_memory()[0] / 2**20
            alloc = (
                f" arena={m.arena_mib:.1f} in_use={m.in_use_mib:.1f} free={m.free_mib:.1f}"
                f" mapped={m.mapped_mib:.1f}"
                if m
                else ""
            )
            with open(out, "a") as fh:
                fh.write(
                    f"{time.monotonic() - t0:.0f}s rss={_rss_mib():.1f}"
                    f" anon={_status_mib('RssAnon'):.1f} file={_status_mib('RssFile'):.1f}"
                    f" python={py:.1f}{alloc}{_pymalloc()}{_arrow_mib()}"
                    f" threads={threading.active_count()}\n"
                )
            time.sleep(every)

    snap_every = float(os.environ.get("MEMPROBE_SNAP", "0"))
    if snap_every:
        tracemalloc.start(int(os.environ.get("MEMPROBE_FRAMES", "8")))
    elif os.environ.get("MEMPROBE_TRACE", "1") != "0":
        tracemalloc.start(1)
    threading.Thread(
        target=_probe,
        args=(os.environ["MEMPROBE_OUT"], float(os.environ.get("MEMPROBE_EVERY", "20"))),
        name="memprobe",
        daemon=True,
    ).start()
    if snap_every:
        threading.Thread(
            target=_snapshots,
            args=(os.environ["MEMPROBE_OUT"], snap_every),
            name="memprobe-snap",
            daemon=True,
        ).start()
