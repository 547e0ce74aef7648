"""Issue 18, point 7: a team at once. Many viewers on one app server while syncs land and one of
them runs SQL; every page answers, p95 page time against a single viewer's, and the server's
memory over the run.

    .venv/bin/python -m bench.team --viewers 30 --minutes 10
    .venv/bin/python -m bench.team --viewers 30 --minutes 1 --no-write      # a short try

Builds the demo table in a temporary folder (a local source: nothing leaves the machine), syncs
it once and starts ``streamlit run app.py`` on 127.0.0.1 with a background sync every
``--sync-s`` seconds, while a thread here lands what happened since (``demo.advance``) every
``--advance-s`` seconds, so syncs publish new generations throughout.

Viewers are protocol-level sessions (``tests/support/st_client.py``: the browser's websocket
messages, no browser). Each opens its page with its own filters (range, agents, modes, errors
only) and ``refresh=10s``, then re-runs the page's refreshing fragment every 10 s as the browser
does by itself, and re-runs the whole page every ``--reload-every`` refreshes (as a filter change
or a reload would). One viewer is on the SQL console and runs a new query (``/sql?q=...``) every
10 s. Pages: overview, timeline, modes, errors, health, explorer, summary, wall, alerts.

Two phases on the same server, side by side in one run:

1. **single**: the same viewers' sessions on the same schedule, but their runs one at a time
   (never two in flight): what one viewer alone gets, on the same pages and filters. Half of
   ``--single-minutes`` runs just before the team and half just after, so a change in the shared
   machine's load weighs on both sides of the ratio.
2. **team**: every viewer at once, for ``--minutes``.

Per phase: page times (p50, p95, max) by page and by kind of run; runs that did not answer in
``--timeout`` s, or showed an exception or an error box; the server's RSS every ``--sample-s``
seconds (start, end, max, slope); syncs finished and generations published. It prints the ratio
p95(team) / p95(single) and the memory verdict, and appends a section to ``bench/RESULTS.md``
and ``bench/team.md`` (which ``python -m bench`` keeps when it rewrites RESULTS.md); the raw
figures go to ``bench/data/team-<time>.json``. Every loop is bounded in time; it stops by itself
and stops the processes it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from o11y_data import routes
from o11y_data.query.queries import MODES

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DATA_DIR = BENCH / "data"
REFRESH_S = 10  # the shortest choice of every page's refresh picker; the wall's is any interval
# Every page of the app's route table but the SQL console, whose viewer runs queries instead.
PAGES = tuple(r.path for r in routes.ROUTES if r is not routes.SQL)
RANGES = ("15m", "1h", "6h", "24h", "7d", "all")  # the presets a viewer picks from
FIRST, RERUN, REFRESH, SQL = "first", "rerun", "refresh", "sql"
KINDS = (FIRST, RERUN, REFRESH, SQL)
FULL = ""  # the due-table key of a whole-page run (fragment ids are hex)
MAX_RATIO = 2.0  # the target: p95 with the team within 2x of a single viewer's
# Flat memory, in growth per hour: a server runs for weeks, so what matters is the rate. After
# the warm-up, the least-squares slope of the RSS stays within FLAT_MIB_PER_HOUR, and so does its
# end-start growth (the median of the last FLAT_EDGE_MIN minutes against the first's), give or
# take FLAT_NOISE_MIB for the swings of GC and DuckDB's buffers between those two medians. A steady
# leak of 1 MiB/min is 60 MiB/h: five times over. A slope is only as good as the span it is fitted
# on (the RSS swings by +-15 MiB within minutes), so under MIN_STEADY_MIN minutes after the warm-up
# there is no verdict: run --minutes 30 or more.
FLAT_MIB_PER_HOUR = 12.0
FLAT_NOISE_MIB = 8.0
FLAT_EDGE_MIN = 2.0
MIN_STEADY_MIN = 20.0
STEADY_AFTER = 0.25  # the first quarter of the team phase is the warm-up (every first visit)


def log(msg: str) -> None:
    print(f"{datetime.now():%H:%M:%S} {msg}", flush=True)


# -- viewers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One viewer: its page and the URL query it opens it with (its own filters)."""

    viewer: int
    page: str
    query: str
    sql: bool = False


def page_query(page: str, rng: random.Random, agents: Sequence[str]) -> str:
    if page == "wall":
        return urlencode([("refresh", str(REFRESH_S))])
    params = [("range", rng.choice(RANGES)), ("refresh", f"{REFRESH_S}s")]
    params += [("agent", a) for a in rng.sample(list(agents), rng.choice((0, 0, 1, 2, 3)))]
    params += [("mode", m) for m in rng.sample(MODES, rng.choice((0, 0, 1, 2)))]
    if rng.random() < 0.2:
        params.append(("errors", "1"))
    if page == "explorer" and rng.random() < 0.5:
        params.append(("q", "reflection"))
    return urlencode(params)


def viewer_specs(n: int, *, agents: Sequence[str], seed: int = 18) -> list[Spec]:
    """``n`` viewers: the first on the SQL console, the others spread over :data:`PAGES`, each
    with filters of its own (deterministic for a seed)."""
    rng = random.Random(seed)
    specs = [Spec(0, "sql", "", sql=True)]
    for i in range(1, n):
        page = PAGES[(i - 1) % len(PAGES)]
        specs.append(Spec(i, page, page_query(page, rng, agents)))
    return specs[:n]


def page_name(page: str) -> str:
    """The page name a session asks for: the overview is the default page, asked for as the
    site's root (asked for by its url_path, Streamlit now and then answers "page not found"
    and shows the default page, the same one)."""
    return "" if page == routes.OVERVIEW.path else page


# What the SQL viewer asks, in turn: a team member's questions over the console's views.
QUESTIONS = (
    "SELECT agent, mode, count(*) AS cycles, round(avg(duration_ms)) AS avg_ms\n"
    "FROM filtered_cycles GROUP BY agent, mode ORDER BY agent, cycles DESC, mode",
    "SELECT date_trunc('hour', ts) AS hour, mode, count(*) AS cycles\n"
    "FROM filtered_cycles GROUP BY ALL ORDER BY hour",
    "SELECT agent, count(*) FILTER (WHERE errors > 0) / count(*) AS error_rate\n"
    "FROM cycles GROUP BY agent ORDER BY error_rate DESC",
    "SELECT ts, agent, mode, duration_ms FROM cycles ORDER BY duration_ms DESC NULLS LAST LIMIT 20",
    "SELECT event_type, count(*) AS events FROM events GROUP BY event_type ORDER BY events DESC",
)


def sql_query(n: int) -> str:
    """The SQL viewer's ``n``-th query string: :data:`QUESTIONS` in turn, each run made new by a
    comment (the console keeps a result per query text and generation)."""
    return urlencode([("q", f"{QUESTIONS[n % len(QUESTIONS)]}\n-- run {n}")])


@dataclass
class Run:
    viewer: int
    page: str
    kind: str
    at: float  # seconds since the phase began
    seconds: float  # to the script's finish; the timeout when it did not answer
    answered: bool
    problems: list[str] = field(default_factory=list)


class Viewer:
    """One viewer's session and schedule. :meth:`step` does the next due action: the first
    visit, a fragment refresh, or a whole-page re-run (every ``reload_every``-th refresh, and
    every action of the SQL viewer)."""

    def __init__(self, spec: Spec, url: str, *, start: float, reload_every: int, timeout: float):
        self.spec, self.url = spec, url
        self.reload_every, self.timeout = max(1, reload_every), timeout
        self.due: dict[str, float] = {FULL: start}
        self.session = None
        self._stack: contextlib.AsyncExitStack | None = None
        self.refreshes = 0
        self.sql_runs = 0

    def next_at(self) -> float:
        return min(self.due.values())

    async def step(self, t0: float) -> Run:
        from tests.support.st_client import Session

        key = min(self.due, key=self.due.__getitem__)
        started = time.monotonic()
        if self.session is None:
            kind = FIRST
        elif self.spec.sql:
            kind = SQL
        elif key == FULL:
            kind = RERUN
        else:
            self.refreshes += 1
            kind = RERUN if self.refreshes % self.reload_every == 0 else REFRESH
        query = self.spec.query
        if self.spec.sql:
            query = sql_query(self.sql_runs)
            self.sql_runs += 1
        try:
            if self.session is None:
                self._stack = contextlib.AsyncExitStack()
                self.session = await self._stack.enter_async_context(Session.connect(self.url))
            if kind == REFRESH:
                got = await self.session.refresh(key, self.timeout)
            else:
                got = await self.session.run(
                    page_name(self.spec.page), query, self.timeout, started=started
                )
        except Exception as exc:  # a run that did not answer (timeout, closed connection)
            await self.close()
            self.due = {FULL: started + REFRESH_S}
            problem = f"no answer: {type(exc).__name__}: {str(exc)[:200]}"
            return Run(self.spec.viewer, self.spec.page, kind, started - t0,
                       time.monotonic() - started, False, [problem])  # fmt: skip
        self._reschedule(key, kind, started)
        return Run(self.spec.viewer, self.spec.page, kind, started - t0, got.seconds, True,
                   got.problems)  # fmt: skip

    def _reschedule(self, key: str, kind: str, started: float) -> None:
        # Only the page's own refresh (every REFRESH_S) is driven: a shorter fragment (the health
        # page's sync progress) exists only while a sync runs, and a re-run of a fragment that has
        # gone gets no answer at all.
        frags = {f: s for f, s in self.session.fragments.items() if s >= REFRESH_S - 0.5}
        if self.spec.sql or not frags:
            self.due = {FULL: started + REFRESH_S}
        elif kind == REFRESH:
            self.due = {f: self.due.get(f, started + s) for f, s in frags.items()}
            self.due[key] = started + frags.get(key, REFRESH_S)
        else:
            self.due = {f: started + s for f, s in frags.items()}

    async def close(self) -> None:
        stack, self._stack, self.session = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(Exception):
                await stack.aclose()


def make_viewers(specs: Sequence[Spec], url: str, args: argparse.Namespace) -> list[Viewer]:
    now = time.monotonic()
    spread = REFRESH_S / max(1, len(specs))  # first visits spread over one refresh interval
    return [
        Viewer(
            s, url, start=now + i * spread, reload_every=args.reload_every, timeout=args.timeout
        )  # fmt: skip
        for i, s in enumerate(specs)
    ]


async def run_single(viewers: list[Viewer], seconds: float) -> list[Run]:
    """Every viewer's schedule, one run at a time: the earliest due runs, the others wait."""
    t0 = time.monotonic()
    deadline = t0 + seconds
    runs: list[Run] = []
    try:
        while len(runs) < 100_000:
            v = min(viewers, key=Viewer.next_at)
            at = v.next_at()
            if at >= deadline:
                break
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            runs.append(await v.step(t0))
    finally:
        for v in viewers:
            await v.close()
    return runs


async def run_team(viewers: list[Viewer], seconds: float) -> list[Run]:
    """Every viewer on its own schedule, all at once."""
    t0 = time.monotonic()
    deadline = t0 + seconds

    async def one(v: Viewer) -> list[Run]:
        out: list[Run] = []
        try:
            while len(out) < 10_000 and v.next_at() < deadline:
                await asyncio.sleep(max(0.0, v.next_at() - time.monotonic()))
                out.append(await v.step(t0))
        finally:
            await v.close()
        return out

    timeout = seconds + max(v.timeout for v in viewers) + 60
    per_viewer = await asyncio.wait_for(asyncio.gather(*(one(v) for v in viewers)), timeout)
    return [r for rs in per_viewer for r in rs]


# -- statistics ------------------------------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of ``values``; None when there are none."""
    xs = sorted(values)
    if not xs:
        return None
    return xs[max(0, math.ceil(q * len(xs)) - 1)]


@dataclass(frozen=True)
class Times:
    runs: int
    unanswered: int
    with_problems: int
    p50: float | None
    p95: float | None
    max: float | None


def times(runs: Sequence[Run]) -> Times:
    """Page times of the runs that answered; the others are counted, never averaged in."""
    ok = [r.seconds for r in runs if r.answered]
    return Times(
        runs=len(runs),
        unanswered=sum(not r.answered for r in runs),
        with_problems=sum(bool(r.problems) for r in runs if r.answered),
        p50=percentile(ok, 0.5),
        p95=percentile(ok, 0.95),
        max=max(ok, default=None),
    )


def ratio(team: float | None, single: float | None) -> float | None:
    return None if team is None or not single else team / single


def slope_per_min(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per minute; None under two distinct
    times."""
    if len({t for t, _ in points}) < 2:
        return None
    mt = statistics.fmean(t for t, _ in points)
    mv = statistics.fmean(v for _, v in points)
    num = sum((t - mt) * (v - mv) for t, v in points)
    den = sum((t - mt) ** 2 for t, _ in points)
    return num / den * 60


@dataclass(frozen=True)
class Memory:
    start_mib: float
    end_mib: float
    max_mib: float
    slope_mib_min: float | None  # over the whole phase
    steady_slope_mib_min: float | None  # after the warm-up
    steady_minutes: float  # the span the steady slope is fitted on
    end_start_mib: float | None  # median of its last minutes minus median of its first
    allowed_mib_per_hour: float
    judged: bool  # the steady span is long enough for a verdict
    flat: bool

    @property
    def steady_mib_per_hour(self) -> float | None:
        s = self.steady_slope_mib_min
        return None if s is None else s * 60


def _median_between(points: Sequence[tuple[float, float]], lo: float, hi: float) -> float | None:
    vals = [v for t, v in points if lo <= t <= hi]
    return statistics.median(vals) if vals else None


def memory_verdict(
    points: Sequence[tuple[float, float]],
    *,
    steady_after: float = STEADY_AFTER,
    min_steady_min: float = MIN_STEADY_MIN,
) -> Memory | None:
    """Start, end, max and slopes of (seconds, RSS MiB) samples, and whether the RSS is flat
    after the first ``steady_after`` of the phase: its slope within :data:`FLAT_MIB_PER_HOUR`,
    and its end-start growth within that rate over the span plus :data:`FLAT_NOISE_MIB`. Not
    flat (``judged`` False) when the steady span is under ``min_steady_min``. None without
    samples."""
    if not points:
        return None
    t0, t1 = points[0][0], points[-1][0]
    steady = [p for p in points if p[0] >= t0 + steady_after * (t1 - t0)]
    slope = slope_per_min(steady)
    span_min = (steady[-1][0] - steady[0][0]) / 60 if steady else 0.0
    edge = min(FLAT_EDGE_MIN * 60, span_min * 60 / 4)
    end_start = None
    if steady and span_min > 0:
        first = _median_between(steady, steady[0][0], steady[0][0] + edge)
        last = _median_between(steady, steady[-1][0] - edge, steady[-1][0])
        end_start = None if first is None or last is None else last - first
    judged = slope is not None and end_start is not None and span_min >= min_steady_min
    rate_ok = slope is not None and slope * 60 <= FLAT_MIB_PER_HOUR
    growth_ok = (
        end_start is not None and end_start <= FLAT_MIB_PER_HOUR * span_min / 60 + FLAT_NOISE_MIB
    )
    return Memory(
        start_mib=points[0][1],
        end_mib=points[-1][1],
        max_mib=max(v for _, v in points),
        slope_mib_min=slope_per_min(points),
        steady_slope_mib_min=slope,
        steady_minutes=span_min,
        end_start_mib=end_start,
        allowed_mib_per_hour=FLAT_MIB_PER_HOUR,
        judged=judged,
        flat=judged and rate_ok and growth_ok,
    )


# -- the server and its data -----------------------------------------------------------------


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_rss_mib(pid: int) -> float:
    """RSS of ``pid``'s direct children (the SQL console's sandbox processes)."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                with contextlib.suppress(OSError, ValueError):
                    total += proc_rss_mib(int(child))
    return total


@dataclass
class Sample:
    at: float  # seconds since the run began
    phase: str
    rss_mib: float
    children_mib: float
    generation: int
    sync_finished_at: float | None
    sync_ok: bool | None
    load1: float = 0.0  # the machine's 1-minute load average


class Sampler:
    """Samples the server's RSS, the store's generation and its last sync every ``every`` s."""

    def __init__(self, pid: int, store, every: float) -> None:
        self.pid, self.store, self.every = pid, store, every
        self.phase = "setup"
        self.samples: list[Sample] = []
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="team-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def sample(self) -> None:
        with contextlib.suppress(OSError):
            status = self.store.read_status()
            self.samples.append(
                Sample(
                    at=time.monotonic() - self.t0,
                    phase=self.phase,
                    rss_mib=proc_rss_mib(self.pid),
                    children_mib=children_rss_mib(self.pid),
                    generation=self.store.current_number(),
                    sync_finished_at=status.get("finished_at"),
                    sync_ok=status.get("ok"),
                    load1=os.getloadavg()[0],
                )
            )

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def of(self, phase: str) -> list[Sample]:
        return [s for s in self.samples if s.phase == phase]


def syncs(samples: Sequence[Sample], before: Sample | None) -> dict[str, int]:
    """Syncs finished (ok and failed) and generations published over ``samples``."""
    seen: dict[float, bool] = {}
    last = before.sync_finished_at if before else None
    for s in samples:
        if s.sync_finished_at is not None and s.sync_finished_at != last:
            seen[s.sync_finished_at] = bool(s.sync_ok)
            last = s.sync_finished_at
    gen0 = before.generation if before else (samples[0].generation if samples else 0)
    return {
        "finished": len(seen),
        "failed": sum(not ok for ok in seen.values()),
        "generations": (samples[-1].generation - gen0) if samples else 0,
    }


class Advancer:
    """Lands the demo's new events in the source every ``every`` seconds (a commit when there
    are any), as the pipeline keeps writing."""

    def __init__(self, src: Path, every: float) -> None:
        self.src, self.every = src, every
        self.commits = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="team-advance", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        from o11y_data.ingest import demo

        while not self._stop.wait(self.every):
            try:
                if demo.advance(self.src, min_step=timedelta(seconds=1)) > 0:
                    self.commits += 1
            except Exception as exc:  # keep going; the report names it
                self.failures.append(f"{type(exc).__name__}: {exc}"[:200])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def server_env(tmp: Path, sync_s: float) -> dict[str, str]:
    """The app's environment: this process's without any O11Y_ setting, plus the demo source."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("O11Y_")}
    env.update(
        O11Y_SOURCE_DIR=str(tmp / "src"),
        O11Y_CACHE_DIR=str(tmp / "cache"),
        O11Y_SYNC_INTERVAL=f"{sync_s:g}",
        O11Y_BACKGROUND_SYNC="1",
        O11Y_AGENTS_FILE=str(tmp / "no-agents.toml"),
        O11Y_ALERTS_FILE=str(tmp / "no-alerts.toml"),
    )
    return env


def streamlit_env(options: Sequence[str]) -> dict[str, str]:
    """``OPTION=VALUE`` Streamlit config options as the environment variables Streamlit reads
    (``runner.postScriptGC=false`` -> ``STREAMLIT_RUNNER_POST_SCRIPT_GC=false``)."""
    from streamlit.string_util import to_snake_case

    env = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or "." not in key or not key.replace(".", "").isalnum():
            raise ValueError(
                f"--streamlit {item!r}: expected OPTION=VALUE, e.g. runner.fastReruns=false"
            )
        env[f"STREAMLIT_{to_snake_case(key.replace('.', '_')).upper()}"] = value
    return env


# -- the phases ------------------------------------------------------------------------------


@dataclass
class Block:
    """One stretch of a phase: its runs, the samples taken during it and the one before it."""

    runs: list[Run]
    samples: list[Sample]
    before: Sample | None
    seconds: float
    cpu_s: float  # the server's
    client_cpu_s: float  # this process's (the viewers' client)


def phase_figures(blocks: Sequence[Block]) -> dict:
    """A phase's figures over its blocks: page times over every run; syncs, CPU and time summed;
    memory from the first block (a fit across the gap between blocks would mean nothing)."""
    runs = [r for b in blocks for r in b.runs]
    samples = [s for b in blocks for s in b.samples]
    steady = [r for r in runs if r.kind != FIRST]
    mem = memory_verdict([(s.at, s.rss_mib) for s in blocks[0].samples])
    counted = [syncs(b.samples, b.before) for b in blocks]
    first = [r for r in blocks[0].runs if r.kind != FIRST and r.answered]
    return {
        "seconds": sum(b.seconds for b in blocks),
        "blocks": len(blocks),
        "all": asdict(times(runs)),
        "steady": asdict(times(steady)),
        "kinds": {k: asdict(times([r for r in runs if r.kind == k])) for k in KINDS},
        "pages": {p: asdict(times([r for r in runs if r.page == p])) for p in (*PAGES, "sql")},
        "memory": asdict(mem) if mem else None,
        "children_max_mib": max((s.children_mib for s in samples), default=0.0),
        "syncs": {k: sum(c[k] for c in counted) for k in ("finished", "failed", "generations")},
        "server_cpu_s": sum(b.cpu_s for b in blocks),
        "client_cpu_s": sum(b.client_cpu_s for b in blocks),
        "load1": [
            min((s.load1 for s in samples), default=0.0),
            max((s.load1 for s in samples), default=0.0),
        ],
        "p95_by_minute": [  # of the first block
            percentile([r.seconds for r in first if m * 60 <= r.at < m * 60 + 60], 0.95)
            for m in range(max(1, int(blocks[0].seconds // 60)))  # whole minutes only
        ],
        "problems": sorted({p for r in runs for p in r.problems})[:20],
    }


def run_block(label: str, specs, url, args, sampler: Sampler, pid: int, seconds: float) -> Block:
    """The viewers for ``seconds``: one run at a time (``single...``) or all at once (``team``)."""
    before = sampler.samples[-1] if sampler.samples else None
    sampler.phase = label
    cpu0, client0 = proc_cpu_s(pid), time.process_time()
    t = time.monotonic()
    viewers = make_viewers(specs, url, args)
    runner = run_single if label.startswith("single") else run_team
    runs = asyncio.run(runner(viewers, seconds))
    elapsed = time.monotonic() - t
    sampler.sample()
    block = Block(
        runs=runs,
        samples=sampler.of(label),
        before=before,
        seconds=elapsed,
        cpu_s=proc_cpu_s(pid) - cpu0,
        client_cpu_s=time.process_time() - client0,
    )
    sampler.phase = "between"
    st, sy = times([r for r in runs if r.kind != FIRST]), syncs(block.samples, before)
    log(
        f"[{label}] {len(runs)} runs in {elapsed:.0f}s: p50 {_ms(st.p50)}, p95 {_ms(st.p95)}"
        f" (after first visits); {st.unanswered} unanswered, {st.with_problems} with an "
        f"error; {sy['finished']} syncs ({sy['generations']} new generations); server CPU "
        f"{block.cpu_s:.0f}s"
    )
    return block


def warm_up(url: str, timeout: float) -> list[str]:
    """Each page once, one after the other (imports, the first queries): not measured."""
    from tests.support.st_client import open_page

    async def go() -> list[str]:
        problems = []
        for page in (*PAGES, "sql"):
            r = await open_page(url, page_name(page), "", timeout)
            problems += [f"{page}: {p}" for p in r.problems]
        return problems

    return asyncio.run(go())


# -- report ----------------------------------------------------------------------------------


def _ms(s: float | None) -> str:
    return "—" if s is None else f"{s * 1000:,.0f} ms"


def _x(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}×"


def _load(v: Sequence[float]) -> str:
    return " ".join(f"{x:.1f}" for x in v)


def _span(v: Sequence[float]) -> str:
    return f"{min(v):.1f}–{max(v):.1f}"


def verdicts(res: dict) -> dict[str, bool]:
    single, team = res["single"], res["team"]
    r = ratio(team["steady"]["p95"], single["steady"]["p95"])
    answered = all(
        p["all"]["unanswered"] == 0 and p["all"]["with_problems"] == 0 for p in (single, team)
    )
    mem = team["memory"]
    return {
        "every page answers": answered,
        f"p95 within {MAX_RATIO:g}× of a single viewer's": r is not None and r <= MAX_RATIO,
        _flat_label(mem): bool(mem and mem["flat"]),
    }


def _flat_label(mem: dict | None) -> str:
    label = f"server memory flat (within {FLAT_MIB_PER_HOUR:g} MiB/h after the first quarter)"
    if mem and not mem.get("judged"):
        label += f": not judged, under {MIN_STEADY_MIN:g} min after the first quarter"
    return label


def render(res: dict) -> str:
    single, team = res["single"], res["team"]
    m = res["machine"]
    n = res["viewers"]
    r = ratio(team["steady"]["p95"], single["steady"]["p95"])
    v = verdicts(res)
    mem, mem1 = team["memory"] or {}, single["memory"] or {}
    lines = [
        f"## Issue 18: a team at once ({n} viewers, {res['minutes']:g} min) — "
        f"{res['started'][:16].replace('T', ' ')} UTC",
        "",
        f"- **Command:** `.venv/bin/{res['command']}` ({res['started']} → {res['finished']}).",
        f"- **Machine:** {m.get('nproc')} cores ({m.get('cpu')}), {m.get('memory_gb')} GB RAM, "
        f"Linux {m.get('kernel')}; Python {m.get('python')}, Streamlit {m.get('streamlit')}, "
        f"DuckDB {m.get('duckdb')}. Shared and noisy: load average "
        f"{_load(res['loadavg_start'])} at the start, {_load(res['loadavg_end'])} at the end.",
        f"- **Setup:** the demo table ({res['events']:,} events), one `streamlit run app.py` on "
        f"loopback with a background sync every {res['sync_s']:g} s; the demo's new events "
        f"landed every {res['advance_s']:g} s ({res['commits']} commits). {n} protocol-level "
        f"sessions (`tests/support/st_client.py`): one on the SQL console running a new query "
        f"every {REFRESH_S} s, the others on {', '.join(PAGES)}, each with its own range, agents, "
        f"modes and errors-only; each page's own refresh fragment every {REFRESH_S} s and the "
        f"whole page every {res['reload_every']}th refresh.{_options(res)} The viewers' client "
        "runs in the "
        f"benchmark process on the same 2 cores (it used {team['client_cpu_s']:.0f} s of CPU "
        f"in the team phase, the server {team['server_cpu_s']:.0f} s).",
        f"- **Single viewer:** the same sessions on the same schedule, their runs one at a time, "
        f"for {single['seconds'] / 60:.1f} min: half just before the team, half just after "
        "(its RSS: the half before).",
        "",
        "| figure | single viewer | team | team / single |",
        "| --- | --- | --- | --- |",
        f"| page time p95, every run after the first visit | {_ms(single['steady']['p95'])} "
        f"| {_ms(team['steady']['p95'])} | **{_x(r)}** |",
        f"| page time p50, every run after the first visit | {_ms(single['steady']['p50'])} "
        f"| {_ms(team['steady']['p50'])} "
        f"| {_x(ratio(team['steady']['p50'], single['steady']['p50']))} |",
        f"| first visit p95 (new session) | {_ms(single['kinds'][FIRST]['p95'])} "
        f"| {_ms(team['kinds'][FIRST]['p95'])} "
        f"| {_x(ratio(team['kinds'][FIRST]['p95'], single['kinds'][FIRST]['p95']))} |",
        f"| slowest run | {_ms(single['all']['max'])} | {_ms(team['all']['max'])} | |",
        f"| runs | {single['all']['runs']:,} | {team['all']['runs']:,} | |",
        f"| runs without an answer / with an exception or error box "
        f"| {single['all']['unanswered']} / {single['all']['with_problems']} "
        f"| {team['all']['unanswered']} / {team['all']['with_problems']} | |",
        f"| syncs finished (failed) / new generations "
        f"| {single['syncs']['finished']} ({single['syncs']['failed']}) / "
        f"{single['syncs']['generations']} | {team['syncs']['finished']} "
        f"({team['syncs']['failed']}) / {team['syncs']['generations']} | |",
        f"| server RSS start → end (max) | {_mib(mem1)} | {_mib(mem)} | |",
        f"| server CPU (share of one core) | {_cpu(single)} | {_cpu(team)} | |",
        f"| machine's 1-min load average (min–max) | {_span(single['load1'])} "
        f"| {_span(team['load1'])} | |",
        f"| server RSS growth after the first quarter | {_slope(mem1)} | {_slope(mem)} | |",
        "",
        "| kind of run | runs (single) | p95 (single) | runs (team) | p50 (team) | p95 (team) "
        "| p95 team / single |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    labels = {
        FIRST: "first visit (new session)",
        RERUN: "whole page again",
        REFRESH: "the page's refresh",
        SQL: "SQL console, a new query",
    }
    for k in KINDS:
        a, b = single["kinds"][k], team["kinds"][k]
        lines.append(
            f"| {labels[k]} | {a['runs']:,} | {_ms(a['p95'])} | {b['runs']:,} | {_ms(b['p50'])} "
            f"| {_ms(b['p95'])} | {_x(ratio(b['p95'], a['p95']))} |"
        )
    lines += [
        "",
        "| page | viewers | runs (single) | p95 (single) | runs (team) | p50 (team) | p95 (team) "
        "| p95 team / single |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in (*PAGES, "sql"):
        a, b = single["pages"][p], team["pages"][p]
        if not b["runs"]:
            continue
        count = sum(s["page"] == p for s in res["specs"])
        lines.append(
            f"| {p} | {count} | {a['runs']:,} | {_ms(a['p95'])} | {b['runs']:,} "
            f"| {_ms(b['p50'])} | {_ms(b['p95'])} | {_x(ratio(b['p95'], a['p95']))} |"
        )
    by_min = ", ".join(_ms(x) for x in team["p95_by_minute"])
    lines += ["", f"Team p95 by minute (after the first visits): {by_min}."]
    lines += ["", "Verdicts:", ""]
    lines += [f"- {name}: **{'PASS' if ok else 'MISS'}**" for name, ok in v.items()]
    problems = sorted({*single["problems"], *team["problems"]})
    if problems:
        lines += ["", "Problems seen (first 20):", ""]
        lines += [f"- `{p[:160]}`" for p in problems[:20]]
    if res.get("advance_failures"):
        lines += ["", f"Source advances that failed: {len(res['advance_failures'])}, e.g. "
                  f"`{res['advance_failures'][0]}`."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _mib(mem: dict) -> str:
    if not mem:
        return "—"
    return f"{mem['start_mib']:.0f} → {mem['end_mib']:.0f} MiB ({mem['max_mib']:.0f})"


def _options(res: dict) -> str:
    opts = res.get("streamlit_options") or []
    return f" Streamlit options: {', '.join(f'`{o}`' for o in opts)}." if opts else ""


def _cpu(phase: dict) -> str:
    return f"{phase['server_cpu_s']:.0f} s ({phase['server_cpu_s'] / phase['seconds']:.0%})"


def _slope(mem: dict) -> str:
    s = mem.get("steady_slope_mib_min") if mem else None
    if s is None:
        return "—"
    end_start = mem.get("end_start_mib")
    text = (
        f"{s * 60:+.0f} MiB/h over {mem['steady_minutes']:.0f} min; end−start "
        f"{'—' if end_start is None else f'{end_start:+.0f} MiB'} "
        f"(flat: within {mem['allowed_mib_per_hour']:g} MiB/h"
    )
    if not mem.get("judged"):
        text += f"; under {MIN_STEADY_MIN:g} min: not judged"
    return text + ")"


def write_results(section: str) -> None:
    """Append the section to RESULTS.md and to team.md (which `python -m bench` keeps)."""
    for name in ("RESULTS.md", "team.md"):
        path = BENCH / name
        text = path.read_text() if path.is_file() else ""
        sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        path.write_text(text + sep + section)


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.team", description=__doc__.split("\n")[0])
    ap.add_argument("--viewers", type=int, default=30, help="concurrent viewers (one runs SQL)")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the team phase")
    ap.add_argument(
        "--single-minutes", type=float, default=None, help="single-viewer phase (default: 1/5)"
    )
    ap.add_argument("--sync-s", type=float, default=10.0, help="the app's background sync")
    ap.add_argument("--advance-s", type=float, default=5.0, help="new source data every N s")
    ap.add_argument("--reload-every", type=int, default=6, help="whole page every Nth refresh")
    ap.add_argument("--sample-s", type=float, default=2.0, help="server RSS every N s")
    ap.add_argument("--timeout", type=float, default=120.0, help="a run's answer limit (s)")
    ap.add_argument("--seed", type=int, default=18, help="the viewers' filters")
    ap.add_argument("--streamlit", action="append", default=[], metavar="OPTION=VALUE",
                    help="a Streamlit config option for the server, e.g. "
                    "runner.postScriptGC=false (repeatable)")  # fmt: skip
    ap.add_argument("--no-write", action="store_true", help="do not append to bench/RESULTS.md")
    args = ap.parse_args(argv)
    try:
        st_env = streamlit_env(args.streamlit)
    except ValueError as exc:
        ap.error(str(exc))
    if not 1 <= args.viewers <= 200 or not 0 < args.minutes <= 120:
        ap.error("--viewers 1..200 and --minutes up to 120")
    single_min = args.single_minutes or max(1.0, args.minutes / 5)

    sys.path.insert(0, str(REPO))
    from bench.__main__ import machine
    from o11y_data import load_settings, sync
    from o11y_data.ingest import demo
    from o11y_data.ingest.store import Store
    from tests.support.app_server import start_streamlit, stop_streamlit

    command = "python -m bench.team " + " ".join(sys.argv[1:] if argv is None else argv)
    res: dict = {
        "command": command.strip(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "loadavg_start": os.getloadavg(),
        "viewers": args.viewers,
        "minutes": args.minutes,
        "sync_s": args.sync_s,
        "advance_s": args.advance_s,
        "reload_every": args.reload_every,
        "streamlit_options": args.streamlit,
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench-team-"))
    proc = sampler = advancer = None
    try:
        log(f"building the demo table in {tmp / 'src'}")
        demo.build(tmp / "src", now=datetime.now(UTC), seed=7)
        env = {**server_env(tmp, args.sync_s), **st_env}
        settings = load_settings(env, secrets_paths=[])
        sync(settings)
        res["events"] = _count_events(settings)
        specs = viewer_specs(args.viewers, agents=[a.did for a in demo.agents(seed=7)],
                             seed=args.seed)  # fmt: skip
        res["specs"] = [asdict(s) for s in specs]
        url, proc = start_streamlit(REPO / "app.py", env)
        log(f"app at {url} (pid {proc.pid}); warming every page up")
        warm = warm_up(url, args.timeout)
        if warm:
            log(f"warm-up problems: {warm[:3]}")
        sampler = Sampler(proc.pid, Store(settings.store_dir), args.sample_s)
        sampler.sample()
        sampler.start()
        advancer = Advancer(tmp / "src", args.advance_s)
        advancer.start()
        # The single viewer runs half before the team and half after, so a change in the
        # machine's load during the run weighs on both sides of the ratio.
        half = single_min * 30
        log(f"single viewer: {len(specs)} sessions, one run at a time, {half / 60:g} min")
        blocks = [run_block("single-before", specs, url, args, sampler, proc.pid, half)]
        log(f"team: {len(specs)} viewers at once, {args.minutes:g} min")
        team = run_block("team", specs, url, args, sampler, proc.pid, args.minutes * 60)
        log(f"single viewer again, {half / 60:g} min")
        blocks.append(run_block("single-after", specs, url, args, sampler, proc.pid, half))
        res["single"], res["team"] = phase_figures(blocks), phase_figures([team])
    finally:
        if advancer:
            advancer.stop()
            res["commits"] = advancer.commits
            res["advance_failures"] = advancer.failures
        if sampler:
            sampler.stop()
            res["samples"] = [asdict(s) for s in sampler.samples]
        if proc is not None:
            stop_streamlit(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    res["loadavg_end"] = os.getloadavg()
    res["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    res["verdicts"] = verdicts(res)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    out = DATA_DIR / f"team-{res['started'].replace(':', '')[:15]}.json"
    out.write_text(json.dumps(res, indent=1, default=str))
    section = render(res)
    print()
    print(section)
    if not args.no_write:
        write_results(section)
        log("appended to bench/RESULTS.md and bench/team.md")
    log(f"raw figures: {out}")
    return 0 if all(res["verdicts"].values()) else 1


def _count_events(settings) -> int:
    from o11y_data import open_db

    db = open_db(settings)
    try:
        return int(db.query("SELECT count(*) AS n FROM events").iloc[0]["n"])
    finally:
        db.close()


if __name__ == "__main__":
    raise SystemExit(main())
