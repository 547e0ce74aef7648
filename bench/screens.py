"""Each screen's data functions, as the pages call them, timed cold and warm in a fresh process.

Run as ``python -m bench.screens <store_dir> <now-iso> <24h|all> <screen>`` (the benchmark does):
prints one JSON line. *cold* is the first pass after process start (a fresh ``EventsDB``, its
construction included, imports excluded); *warm* is the median of repeated passes on the same
``EventsDB`` (DuckDB, uncached); *app cached* is the median repeat through the app's
``st.cache_data`` wrapper (``ui.data.cached``: hashing the arguments and unpickling the result).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

SCREENS = ("overview", "timeline", "modes", "errors", "health", "explorer", "wall")
WINDOWS = ("24h", "all")
WARM_REPEATS = 3
# Mirrors of the pages' constants (pages/*.py, ui/wall.py, ui/wall_logic.py defaults).
POINTS = 20000
EXPLORER_SHOWN = 5000
SPARK_BUCKETS = 30
WALL_WINDOW = timedelta(hours=1)
WALL_HORIZON = timedelta(hours=24)


def calls(screen: str, window: str, now: datetime) -> list[tuple[str, tuple, dict]]:
    """(queries function, args, kwargs) in the order ``pages/<screen>.py`` makes them."""
    from o11y_data.query.queries import Filters, pick_bucket

    end = now
    f = Filters(end - timedelta(hours=24), end) if window == "24h" else Filters()
    out: list[tuple[str, tuple, dict]] = []
    if screen == "wall":  # kiosk: no sidebar; its own 1h window, whatever the range
        start = end - WALL_WINDOW
        out.append(
            (
                "wall_agents",
                (Filters(start, end),),
                {"seen_for": WALL_HORIZON, "buckets": SPARK_BUCKETS},
            )
        )
        out.append(("totals", (Filters(start, end, agents=("__DIDS__",)),), {}))
        return out
    # app.py -> ui/page.setup: the sidebar's choices and the freshness bar, on every page.
    out += [("choices", (), {}), ("freshness", (), {})]
    windowed = f.start is not None
    b: Any = "__BUCKET__"
    if windowed:
        b = pick_bucket(f.start, f.end)
    rng = [] if windowed else [("time_range", (f,), {})]  # P.bucket_s / P.window with "all"
    if screen == "overview":
        out.append(("totals", (f,), {}))
        if windowed:
            out.append(("totals", (f.previous(),), {}))
        out += rng
        out.append(("cycles_over_time", (f,), {"by": "mode", "bucket_s": b}))
        out.append(("event_type_counts", (f,), {}))
        out.append(("agent_overview", (f,), {}))
    elif screen == "timeline":
        out += rng
        out.append(("cycles_over_time", (f,), {"by": "agent", "bucket_s": b}))
        out.append(("cycle_points", (f,), {"limit": POINTS}))
        out.append(("agent_last_seen", (f,), {}))
    elif screen == "modes":
        out.append(("mode_breakdown", (f,), {}))
        out.append(("mode_breakdown", (f,), {"by_agent": True}))
        out.append(("cycle_points", (f,), {"limit": POINTS}))
        out += rng
        out.append(("cycles_over_time", (f,), {"by": "mode", "bucket_s": b}))
    elif screen == "errors":
        out.append(("totals", (f,), {}))
        out += rng
        out.append(("error_rate_over_time", (f,), {"by": "mode", "bucket_s": b}))
        out.append(("top_error_agents", (f,), {"limit": 10}))
        out.append(("recent_errors", (f,), {"limit": 50}))
    elif screen == "health":
        last_hour = Filters(end - timedelta(hours=1), end)
        h_start = end - timedelta(days=7) if f.start is None else min(f.start, end - timedelta(1))
        out.append(("count_events", (last_hour,), {}))
        out.append(("events_per_hour", (Filters(h_start, end),), {}))
        out += rng
        out.append(("ingest_lag_over_time", (f,), {"bucket_s": b}))
    elif screen == "explorer":
        out.append(("count_events", (f,), {"search": ""}))
        out.append(("events_table", (f,), {"search": "", "limit": EXPLORER_SHOWN}))
    else:
        raise SystemExit(f"unknown screen {screen!r}")
    return out


def _run_pass(fn_call, plan) -> tuple[dict[str, float], float]:
    """One pass over a screen's calls; returns per-call seconds and the total."""
    from o11y_data.query.queries import Filters, pick_bucket

    times: dict[str, float] = {}
    bucket = None
    dids: tuple[str, ...] = ()
    total_start = time.perf_counter()
    for i, (name, args, kwargs) in enumerate(plan):
        kwargs = dict(kwargs)
        if kwargs.get("bucket_s") == "__BUCKET__":
            kwargs["bucket_s"] = bucket or 60
        if args and isinstance(args[0], Filters) and args[0].agents == ("__DIDS__",):
            args = (Filters(args[0].start, args[0].end, agents=dids or ("none",)),)
        t = time.perf_counter()
        result = fn_call(name, *args, **kwargs)
        times[f"{i}:{name}"] = time.perf_counter() - t
        if name == "time_range":
            lo, hi = result
            bucket = pick_bucket(lo, hi) if lo and hi else 60
        if name == "wall_agents":
            dids = tuple(sorted(result["agent"]))
    return times, time.perf_counter() - total_start


def measure(store_dir: Path, now: datetime, window: str, screen: str) -> dict[str, Any]:
    import pandas  # noqa: F401  (the app has pandas loaded: its import is not a query's cost)

    from o11y_data.query import queries as q
    from o11y_data.query.db import EventsDB

    plan = calls(screen, window, now)
    t = time.perf_counter()
    db = EventsDB(store_dir)
    init_s = time.perf_counter() - t

    def direct(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "freshness":
            return q.freshness(db)
        return getattr(q, name)(db, *args, **kwargs)

    cold, cold_total = _run_pass(direct, plan)
    warm_runs = [_run_pass(direct, plan) for _ in range(WARM_REPEATS)]
    warm_total = statistics.median(r[1] for r in warm_runs)
    warm = {k: statistics.median(r[0][k] for r in warm_runs) for k in cold}
    db.close()

    # The app's result cache: ui.data.cached (st.cache_data keyed by the store generation).
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("streamlit").setLevel(logging.ERROR)
    from ui import data as D

    def app(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "freshness":  # the freshness bar is not cached by the app
            return q.freshness(D.get_db())
        return D.cached(getattr(q, name), *args, **kwargs)

    _run_pass(app, plan)  # fills the cache
    cached_runs = [_run_pass(app, plan) for _ in range(WARM_REPEATS)]
    return {
        "screen": screen,
        "window": window,
        "init_s": init_s,
        "cold_s": init_s + cold_total,
        "cold": cold,
        "warm_s": warm_total,
        "warm": warm,
        "app_cached_s": statistics.median(r[1] for r in cached_runs),
        "rows": int(db.generation.rows),
    }


def after_new_generation(
    store_dir: Path, now: datetime, new_generation: Any, *, windows: tuple[str, ...] = WINDOWS
) -> dict[str, Any]:
    """Each screen's calls timed once right after a sync published a new generation, in a
    process that has been serving (its ``EventsDB`` open, every screen answered once before):
    the first call after a new generation as the app pays it, view rebuild included.
    ``new_generation()`` lands new files and syncs them (a real sync, in its own process)."""
    import pandas  # noqa: F401  (loaded in the app)

    from o11y_data.query import queries as q
    from o11y_data.query.db import EventsDB

    db = EventsDB(store_dir)

    def direct(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "freshness":
            return q.freshness(db)
        return getattr(q, name)(db, *args, **kwargs)

    plans = {
        (screen, window): calls(screen, window, now)
        for window in windows
        for screen in SCREENS
        if not (screen == "wall" and window != WINDOWS[0])
    }
    for plan in plans.values():  # the server has been up: every screen answered once
        _run_pass(direct, plan)
    out: dict[str, Any] = {}
    try:
        for (screen, window), plan in plans.items():
            before = db.store.current_number()
            new_generation()
            assert db.store.current_number() > before, "the sync published nothing"
            per_call, total = _run_pass(direct, plan)
            out[f"{screen} {window}"] = {"first_s": total, "calls": per_call}
    finally:
        db.close()
    return out


def main(argv: list[str]) -> None:
    store_dir, now_iso, window, screen = argv
    out = measure(Path(store_dir), datetime.fromisoformat(now_iso), window, screen)
    sys.stdout.write("BENCH-JSON " + json.dumps(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
