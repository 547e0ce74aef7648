"""The wall screen's logic, free of Streamlit: URL settings, agent status, tiles, freshness.

Everything here is a pure function of its arguments (``now`` is always passed in), so the numbers
the wall shows can be checked by hand in tests.

Status of an agent, judged at a moment ``at`` (now, or the time of the last good sync when the data
is not current), first match wins:

- ``down``: no cycle for ``down`` seconds (default 60 min), or never seen;
- ``stale``: no cycle for ``stale`` seconds (default 10 min);
- ``degraded``: error rate (cycles with ``errors > 0`` / cycles, docs/events.md) in the window is at
  least ``err`` (default 10 %);
- ``healthy`` otherwise.

An agent with an alert firing for it (a per-agent rule, unsilenced) is at least ``degraded`` and its
tile names the alert: the wall and the alerts never disagree about an agent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from o11y_data.text import clip
from ui.agents import UNKNOWN_AGENT, short_did
from ui.filters import parse_zone, zone
from ui.fmt import as_utc, format_clock, format_span, newest_event_level, parse_duration

STATUSES = ("down", "stale", "degraded", "healthy")  # most severe first
WALL_CLIP = 24  # a bad value quoted in a wall notice


@dataclass(frozen=True)
class WallConfig:
    """What the wall shows; every field can be set in the URL (defaults from ``O11Y_WALL_*``:
    ``o11y_data.config.WALL_KEYS``)."""

    agents: tuple[str, ...] = ()  # DIDs or distinctive parts of them; empty: every agent seen
    window_s: int = 3600  # the window for cycles, error rate, p95 and the sparkline
    err: float = 0.10  # degraded at or above this error rate
    stale_s: int = 600  # stale after this long without a cycle
    down_s: int = 3600  # down after this long without a cycle
    refresh_s: int = 30  # how often the tiles refresh
    fresh_s: int = 300  # data counts as current while the last good sync is younger than this
    horizon_s: int = 86400  # agents silent for longer drop off the wall (unless listed)
    # "status": worst first (down, stale, degraded, healthy; by name within each), so trouble is
    # at the top-left where the room looks first; "name": tiles keep their place
    sort: str = "status"
    tz: str = "UTC"

    @property
    def zone(self) -> tzinfo:
        return zone(self.tz)


DEFAULT = WallConfig()

# -- parsing ---------------------------------------------------------------------------------


def parse_rate(text: str) -> float:
    """A fraction from ``"0.1"``, ``"10%"`` or ``"10"`` (a number above 1 is a percentage)."""
    t = (text or "").strip()
    pct = t.endswith("%")
    try:
        value = float(t.rstrip("%").strip())
    except ValueError as exc:
        raise ValueError("not a rate (use e.g. 0.1 or 10%)") from exc
    if not math.isfinite(value):
        raise ValueError("not a rate")
    if pct or value > 1:
        value /= 100
    if not 0 < value <= 1:
        raise ValueError("must be between 0 and 100%")
    return value


_LIMITS = {  # field: (min, max) seconds
    "window_s": (60, 7 * 86400),
    "stale_s": (10, 30 * 86400),
    "down_s": (10, 30 * 86400),
    "refresh_s": (1, 3600),
    "fresh_s": (10, 30 * 86400),
    "horizon_s": (60, 365 * 86400),
}
_FIELD = {
    "window": "window_s",
    "stale": "stale_s",
    "down": "down_s",
    "refresh": "refresh_s",
    "fresh": "fresh_s",
    "horizon": "horizon_s",
}
_AGENT_TOKEN = re.compile(r"^[\w:.\-]{1,200}$")


def _first(value: object) -> str:
    if isinstance(value, list | tuple):
        value = value[-1] if value else ""
    return str(value)


def parse_config(
    params: Mapping[str, object], base: WallConfig = DEFAULT, *, source: str = "URL"
) -> tuple[WallConfig, list[str]]:
    """Apply URL (or config) ``params`` over ``base``; bad values are ignored with a notice each.

    Never raises: a notice names the parameter, what was wrong and the value kept.
    """
    changes: dict[str, Any] = {}
    notices: list[str] = []

    def bad(key: str, value: object, why: str, kept: str) -> None:
        shown = clip(value, WALL_CLIP, one_line=False)
        notices.append(f"{source}: ignored {key}={shown} ({why}); using {kept}")

    for key, name in _FIELD.items():
        if key not in params:
            continue
        raw = _first(params[key])
        lo, hi = _LIMITS[name]
        try:
            value = parse_duration(raw)
            if not lo <= value <= hi:
                raise ValueError(f"must be {format_span(lo)}–{format_span(hi)}")
        except ValueError as exc:
            bad(key, raw, str(exc), format_span(getattr(base, name)))
            continue
        changes[name] = int(round(value))  # whole seconds on the wall
    if "err" in params:
        raw = _first(params["err"])
        try:
            changes["err"] = parse_rate(raw)
        except ValueError as exc:
            bad("err", raw, str(exc), f"{base.err:.0%}")
    if "agents" in params:
        raw_value = params["agents"]
        items = raw_value if isinstance(raw_value, list | tuple) else [raw_value]
        tokens = [t.strip() for item in items for t in str(item).split(",") if t.strip()]
        good = tuple(dict.fromkeys(t for t in tokens if _AGENT_TOKEN.match(t)))
        wrong = [t for t in tokens if not _AGENT_TOKEN.match(t)]
        if wrong:
            shown = ", ".join(clip(w, WALL_CLIP, one_line=False) for w in wrong[:3])
            notices.append(f"{source}: ignored agents {shown}")
        changes["agents"] = good
    if "sort" in params:
        raw = _first(params["sort"]).strip().lower()
        if raw in {"name", "status"}:
            changes["sort"] = raw
        else:
            bad("sort", raw, "use name or status", base.sort)
    if "tz" in params:
        raw = _first(params["tz"]).strip()
        name = parse_zone(raw)  # the app's one zone parser: shape-checked, canonical name
        if name:
            changes["tz"] = name
        else:
            bad("tz", raw, "unknown time zone", base.tz)

    cfg = replace(base, **changes)
    if cfg.stale_s >= cfg.down_s:
        kept = base if base.stale_s < base.down_s else DEFAULT
        notices.append(
            f"{source}: stale ({format_span(cfg.stale_s)}) must be shorter than down "
            f"({format_span(cfg.down_s)}); using {format_span(kept.stale_s)} and "
            f"{format_span(kept.down_s)}"
        )
        cfg = replace(cfg, stale_s=kept.stale_s, down_s=kept.down_s)
    return cfg, notices


def config_defaults(defaults: Mapping[str, str]) -> tuple[WallConfig, list[str]]:
    """The wall's defaults from the settings' ``O11Y_WALL_*`` values (its config without a link;
    ``Settings.wall_defaults``)."""
    return parse_config(dict(defaults), DEFAULT, source="config")


# -- status and tiles ------------------------------------------------------------------------


def agent_status(
    age_s: float | None, cycles: int, error_cycles: int, cfg: WallConfig = DEFAULT
) -> str:
    """healthy / degraded / stale / down (see the module docstring)."""
    if age_s is None or age_s >= cfg.down_s:
        return "down"
    if age_s >= cfg.stale_s:
        return "stale"
    if cycles > 0 and error_cycles / cycles >= cfg.err:
        return "degraded"
    return "healthy"


@dataclass(frozen=True)
class AgentStats:
    """One agent as the data layer reports it (``queries.wall_agents``)."""

    agent: str
    last_ts: datetime | None
    cycles: int = 0
    error_cycles: int = 0
    errors: int = 0
    p95_ms: float | None = None
    spark_n: tuple[int, ...] = ()
    spark_err: tuple[int, ...] = ()


@dataclass(frozen=True)
class Tile:
    agent: str
    name: str
    status: str
    age_s: float | None
    last_ts: datetime | None
    cycles: int
    error_cycles: int
    error_rate: float | None
    p95_ms: float | None
    spark_n: tuple[int, ...] = ()
    spark_err: tuple[int, ...] = ()
    alert: str | None = None  # the title of an alert firing for this agent


def matches(agent: str, token: str, name: str | None = None) -> bool:
    """A listed token names an agent: its full DID or friendly name, or a distinctive part of the
    DID (4 characters or more)."""
    if token in (agent, name):
        return True
    return len(token) >= 4 and token.lower() in agent.lower()


def select(
    stats: Sequence[AgentStats],
    wanted: Sequence[str],
    names: Mapping[str, str] | None = None,
) -> tuple[list[AgentStats], list[str]]:
    """The agents to show and the listed tokens that matched none.

    With no list: every agent seen (the ``unknown`` bucket of events without an agent left out: it
    is not an agent that can be up or down). A listed full DID never seen gets a row of its own
    (it shows as down): a TV set up for twelve agents must notice the one that never reported.
    """
    if not wanted:
        return [s for s in stats if s.agent != UNKNOWN_AGENT], []
    chosen: dict[str, AgentStats] = {}
    missing: list[str] = []
    for token in wanted:
        hits = [s for s in stats if matches(s.agent, token, (names or {}).get(s.agent))]
        if hits:
            for s in hits:
                chosen.setdefault(s.agent, s)
        elif token.startswith("did:"):
            chosen.setdefault(token, AgentStats(token, None))
        else:
            missing.append(token)
    return list(chosen.values()), missing


def build_tiles(
    stats: Iterable[AgentStats],
    at: datetime,
    cfg: WallConfig = DEFAULT,
    names: Mapping[str, str] | None = None,
    alerting: Mapping[str, str] | None = None,
) -> list[Tile]:
    """One tile per agent, judged at ``at``; ordered by name, or by status then name.

    ``alerting`` (agent -> alert title) marks the agents with an alert firing: at least
    ``degraded``."""
    names, alerting = names or {}, alerting or {}
    tiles = []
    for s in stats:
        age = None if s.last_ts is None else max(0.0, (at - s.last_ts).total_seconds())
        status = agent_status(age, s.cycles, s.error_cycles, cfg)
        if s.agent in alerting and status == "healthy":
            status = "degraded"
        tiles.append(
            Tile(
                agent=s.agent,
                name=names.get(s.agent) or short_did(s.agent),
                status=status,
                age_s=age,
                last_ts=s.last_ts,
                cycles=s.cycles,
                error_cycles=s.error_cycles,
                error_rate=(s.error_cycles / s.cycles) if s.cycles else None,
                p95_ms=s.p95_ms,
                spark_n=tuple(s.spark_n),
                spark_err=tuple(s.spark_err),
                alert=alerting.get(s.agent),
            )
        )
    tiles.sort(key=worst_first if cfg.sort == "status" else by_name)
    return tiles


def by_name(t: Tile) -> tuple[str, str]:
    return (t.name.lower(), t.agent)


def worst_first(t: Tile) -> tuple[int, str, str]:
    """Down, stale, degraded, healthy; by name within a status (a total order: stable)."""
    return (STATUSES.index(t.status), *by_name(t))


MAX_TILES = 48  # 8 x 6 on a 16:9 screen: past this a tile is too small to read across a room


@dataclass(frozen=True)
class Overflow:
    """The tiles left off a full wall, by status."""

    hidden: int
    by_status: dict[str, int]

    def text(self) -> str:
        """``+K more (x down, y degraded)``: what the room does not see, worst first."""
        bad = [f"{self.by_status[s]:,} {s}" for s in STATUSES[:-1] if self.by_status.get(s)]
        return f"+{self.hidden:,} more ({', '.join(bad) if bad else 'all healthy'})"


def fit(tiles: Sequence[Tile], max_tiles: int = MAX_TILES) -> tuple[list[Tile], Overflow | None]:
    """The tiles that fit the screen: all of them when they fit, else the worst first (down,
    stale, degraded, then healthy; by name within a status) and what was left off."""
    if len(tiles) <= max_tiles:
        return list(tiles), None
    ranked = sorted(tiles, key=worst_first)
    shown, rest = ranked[:max_tiles], ranked[max_tiles:]
    return shown, Overflow(len(rest), {s: sum(t.status == s for t in rest) for s in STATUSES})


NAMED_MAX = 3  # a selection of up to this many agents is named in the totals' label
NAME_CLIP = 24


@dataclass(frozen=True)
class Totals:
    agents: int
    by_status: dict[str, int]
    cycles: int
    error_cycles: int
    error_rate: float | None
    p95_ms: float | None
    scope: str = "all agents"  # whom the numbers cover: "all agents", "2 agents: a, b"


def scope_label(tiles: Sequence[Tile], *, selected: bool) -> str:
    """Whom the network numbers cover: ``all agents`` without a selection in the URL, else
    ``1 agent: a``, ``2 agents: a, b`` (names up to NAMED_MAX), ``12 selected agents``."""
    if not selected:
        return "all agents"
    n = len(tiles)
    noun = "agent" if n == 1 else "agents"
    if n > NAMED_MAX or n == 0:
        return f"{n:,} selected {noun}"
    names = ", ".join(clip(t.name, NAME_CLIP, keep_end=True) for t in sorted(tiles, key=by_name))
    return f"{n} {noun}: {names}"


def network_totals(
    tiles: Sequence[Tile], p95_ms: float | None = None, *, selected: bool = False
) -> Totals:
    """Sums over the tiles shown; ``p95_ms`` comes from the data layer (p95s do not add up);
    ``selected``: the URL chose the agents (the label names them)."""
    by_status = {s: sum(t.status == s for t in tiles) for s in STATUSES}
    cycles = sum(t.cycles for t in tiles)
    errs = sum(t.error_cycles for t in tiles)
    return Totals(
        agents=len(tiles),
        by_status=by_status,
        cycles=cycles,
        error_cycles=errs,
        error_rate=(errs / cycles) if cycles else None,
        p95_ms=p95_ms,
        scope=scope_label(tiles, selected=selected),
    )


# -- freshness -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    """Is what the wall shows current? ``at`` is the moment the tiles are judged at."""

    current: bool
    at: datetime | None  # None: nothing synced yet, no tiles
    level: str = "ok"  # the app's freshness levels (ui.fmt.LEVELS): ok | amber | red
    banner: str | None = None
    notes: list[str] = field(default_factory=list)


def assess(fresh: Mapping[str, Any], now: datetime, cfg: WallConfig = DEFAULT) -> Health:
    """Judge ``queries.freshness`` output: current, or as of the last good sync, and why.

    - nothing synced yet: no tiles, a banner (with the sync error if there is one);
    - the last sync failed: banner with the error; tiles as of the last good sync, marked so;
    - the last good sync is older than ``fresh``: banner; tiles as of that sync, marked so;
    - synced, but no event has landed for a while (the app's newest-event rule,
      :func:`ui.fmt.newest_event_level`): the numbers are current (nothing is missing from the
      cache) but the pipeline may be stalled: an amber or red banner.
    """
    zone = cfg.zone
    last_sync = as_utc(fresh.get("last_sync_at"))
    error = fresh.get("last_error")
    newest_ingest = as_utc(fresh.get("newest_ingest_ts")) or as_utc(fresh.get("newest_ts"))
    if last_sync is None:
        if error:
            return Health(False, None, "red", f"Cannot sync the data: {error}")
        return Health(False, None, "amber", "Waiting for the first sync…")
    since = (now - last_sync).total_seconds()
    when = f"{format_clock(last_sync, zone)} ({format_span(since)} ago)"
    if error:
        return Health(
            False,
            last_sync,
            "red",
            f"Sync failing: {error}. Showing data as of the last good sync at {when}.",
        )
    if since >= cfg.fresh_s:
        return Health(
            False,
            last_sync,
            "red",
            f"Data is out of date: last sync at {when}. Showing data as of then.",
        )
    if newest_ingest is None:
        return Health(True, now, "amber", "The source holds no events yet.")
    quiet = (now - newest_ingest).total_seconds()
    quiet_level = newest_event_level(quiet)
    if quiet_level != "ok":
        return Health(
            True,
            now,
            quiet_level,
            f"No new events have landed for {format_span(quiet)} (newest at "
            f"{format_clock(newest_ingest, zone)}): the pipeline may be stalled.",
        )
    return Health(True, now)


def window_bounds(at: datetime, cfg: WallConfig, *, step_s: int = 10) -> tuple[datetime, datetime]:
    """The window ``[start, end)`` ending at ``at`` rounded UP to ``step_s``.

    Rounding makes sessions refreshing within the same step share one cached query; rounding up
    (not down) keeps the newest cycles in.
    """
    ts = math.ceil(at.timestamp() / step_s) * step_s
    end = datetime.fromtimestamp(ts, UTC)
    return end - timedelta(seconds=cfg.window_s), end
