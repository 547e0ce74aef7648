"""Allocator figures from inside a served app, for ``bench.team`` (not part of the app).

    MEMPROBE_OUT=/tmp/mem.txt PYTHONPATH=bench/memprobe \\
        .venv/bin/python -m bench.team --viewers 30 --minutes 10 --no-write

Python imports ``sitecustomize`` at start-up from ``PYTHONPATH``; the benchmark passes its
environment on to ``streamlit run``, so only when ``MEMPROBE_OUT`` is set and the process is a
Streamlit server, a thread appends one line every ``MEMPROBE_EVERY`` seconds (default 20): RSS,
Python's own traced memory (``tracemalloc``, one frame: it costs little), and glibc's arenas
(``o11y_data.memory.malloc_stats``: in use, free inside them, mapped on their own). This is how
bench/team.md tells a growing live set from holes in the allocator's arenas.
"""

import os
import sys

if os.environ.get("MEMPROBE_OUT") and any("streamlit" in a for a in sys.argv[:2]):
    import threading
    import time
    import tracemalloc

    def _rss_mib() -> float:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

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
                    f"{time.monotonic() - t0:.0f}s rss={_rss_mib():.1f} python={py:.1f}{alloc}"
                    f" threads={threading.active_count()}\n"
                )
            time.sleep(every)

    tracemalloc.start(1)
    threading.Thread(
        target=_probe,
        args=(os.environ["MEMPROBE_OUT"], float(os.environ.get("MEMPROBE_EVERY", "20"))),
        name="memprobe",
        daemon=True,
    ).start()
