"""The shared filters and their URL form, as pure functions (no Streamlit here).

The URL is the source of truth. Query parameters:

``range``   one of :data:`PRESETS` (default ``24h``) or ``custom``
``start``, ``end``  ISO-8601 times (``range=custom``); without an offset they are in ``tz``
``agent``, ``mode``, ``type``   repeated: ``?agent=did:cf:a&agent=did:cf:b``
``errors``  ``1`` for cycles with errors only
``tz``      the IANA time zone times are shown in (default ``UTC``); also the zone of a custom
            ``start``/``end`` written without an offset. Queries always run on UTC ``ts``.

:func:`parse_params` never raises: a value it cannot use is dropped and described in a notice, so
the page can say what it ignored and carry on with the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from o11y_data import routes
from o11y_data.query.queries import Filters
from o11y_data.text import clip

# The presets' names and spans are the route table's (alert links use the same names).
PRESETS: dict[str, timedelta | None] = {
    name: None if span is None else timedelta(seconds=span)
    for name, span in routes.RANGE_PRESETS.items()
}
PRESET_LABELS = {
    "15m": "Last 15 min",
    "1h": "Last hour",
    "6h": "Last 6 hours",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "all": "All time",
    "custom": "Custom (UTC)",
}
DEFAULT_RANGE = routes.DEFAULT_RANGE
RANGES = (*PRESETS, "custom")
DEFAULT_TZ = "UTC"
# Offered first in the time zone picker (after UTC); every other IANA zone follows, sorted.
COMMON_TZ = (
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "Europe/Amsterdam",
    "Europe/Madrid",
    "Europe/Stockholm",
    "Europe/Helsinki",
    "Europe/Moscow",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Asia/Dubai",
    "Asia/Singapore",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
)
KEYS = ("range", "start", "end", "agent", "mode", "type", "errors", "tz")
MAX_VALUE_LEN = 200
MAX_VALUES = 200
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_SAFE_VALUE = re.compile(r"^[\w.:\-@/+]+$")


@dataclass(frozen=True)
class FilterState:
    """What the sidebar shows; :meth:`to_filters` turns it into query :class:`Filters`."""

    range: str = DEFAULT_RANGE
    start: datetime | None = None  # custom range only, UTC
    end: datetime | None = None
    agents: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    errors_only: bool = False
    tz: str = DEFAULT_TZ  # display only: the filters stay UTC
    notices: tuple[str, ...] = field(default=(), compare=False)
    # Agents the link named that the data does not hold (as given: hostile text), and the notice
    # about them: the agent page names the nearest known agents instead.
    unknown_agents: tuple[str, ...] = field(default=(), compare=False)
    agent_notices: tuple[str, ...] = field(default=(), compare=False)

    @property
    def zone(self) -> tzinfo:
        return zone(self.tz)

    def to_filters(self, now: datetime | None = None) -> Filters:
        """The query filters; relative presets end at ``now`` rounded up to the minute."""
        start, end = self.window(now)
        return Filters(
            start=start,
            end=end,
            agents=self.agents,
            modes=self.modes,
            event_types=self.event_types,
            errors_only=self.errors_only,
        )

    def window(self, now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
        if self.range == "custom":
            return self.start, self.end
        span = PRESETS.get(self.range)
        if span is None:
            return None, None
        end = ceil_minute(now or datetime.now(UTC))
        return end - span, end

    def is_default(self) -> bool:
        return self == FilterState()


def ceil_minute(t: datetime) -> datetime:
    """``t`` rounded up to a whole minute (so cached results are reused within a minute)."""
    t = t.astimezone(UTC)
    floor = t.replace(second=0, microsecond=0)
    return floor if floor == t else floor + timedelta(minutes=1)


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    """Every IANA zone this system knows, by lower-case name."""
    return {z.lower(): z for z in available_timezones()}


def parse_zone(text: str) -> str | None:
    """The canonical IANA name for ``text`` (``europe/berlin`` -> ``Europe/Berlin``), or None.

    Like the wall's ``tz``, a name must load with :class:`zoneinfo.ZoneInfo`; it is also checked
    for shape and length first, so no path or odd text reaches the zone loader.
    """
    text = (text or "").strip()
    if not text or len(text) > 64 or not re.fullmatch(r"[A-Za-z0-9_+\-/]+", text):
        return None
    if text.upper() == "UTC":
        return DEFAULT_TZ
    name = _zones().get(text.lower())
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
    return name


def zone(name: str) -> tzinfo:
    """The tzinfo for a name :func:`parse_zone` accepted (``UTC`` -> :data:`datetime.UTC`)."""
    return UTC if name == DEFAULT_TZ else ZoneInfo(name)


def timezone_choices() -> list[str]:
    """UTC, the common zones, then every other zone this system knows, sorted."""
    known = set(_zones().values())
    first = [DEFAULT_TZ, *(z for z in COMMON_TZ if z in known)]
    rest = sorted(known - set(first) - {"UTC"})
    return first + rest


def parse_time(text: str, tz: tzinfo = UTC) -> datetime | None:
    """An ISO-8601 time as UTC (``Z`` allowed; naive means in ``tz``) or None when not one."""
    text = (text or "").strip()
    if not text or len(text) > 40:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        return None
    if t.year < 2000 or t.year > 2100:
        return None
    return (t.replace(tzinfo=tz) if t.tzinfo is None else t).astimezone(UTC)


def format_time(t: datetime) -> str:
    """The URL form of a time: ``2026-02-10T01:48:20Z`` (seconds precision, UTC)."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _values(params: Mapping[str, object], key: str) -> list[str]:
    raw = params.get(key)
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, Iterable):
        return [str(v) for v in raw]
    return [str(raw)]


def _pick(
    values: Sequence[str],
    known: Sequence[str] | None,
    what: str,
    notices: list[str],
    bad: list[str] | None = None,
) -> tuple[str, ...]:
    """The usable ``values`` (known, or well shaped when nothing is known); the others go to
    ``bad`` and are named in a notice."""
    out: list[str] = []
    bad = [] if bad is None else bad
    known_set = set(known or ())
    for raw in values[:MAX_VALUES]:
        # A value the data holds is taken exactly as written, whatever its characters (spaces,
        # emoji, quotes): it is only ever bound as a parameter. With no known list (the data
        # could not be read) the shape check is what keeps odd text out.
        v = raw if raw in known_set else raw.strip()
        if not v:
            continue
        shaped = len(v) <= MAX_VALUE_LEN and bool(_SAFE_VALUE.match(v))
        if not (v in known_set if known_set else shaped):
            bad.append(v)
        elif v not in out:
            out.append(v)
    if len(values) > MAX_VALUES:
        notices.append(f"Only the first {MAX_VALUES} {what} values in the link were used.")
    if bad:
        shown = ", ".join(f"'{clip(b)}'" for b in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        notices.append(f"Ignored unknown {what} {shown}{more} from the link.")
    return tuple(out)


def parse_params(
    params: Mapping[str, object],
    *,
    agents: Sequence[str] | None = None,
    modes: Sequence[str] | None = None,
    event_types: Sequence[str] | None = None,
) -> FilterState:
    """The filters a URL asks for; unusable values are dropped and listed in ``notices``.

    ``agents``/``modes``/``event_types`` are the known values; when given (non-empty), a value
    outside them is dropped with a notice. Values are also checked for shape and length.
    """
    notices: list[str] = []
    tz = DEFAULT_TZ
    tz_s = (_values(params, "tz") or [""])[-1].strip()
    if tz_s:
        tz = parse_zone(tz_s) or DEFAULT_TZ
        if tz_s.upper() != "UTC" and tz == DEFAULT_TZ:
            notices.append(f"Ignored unknown time zone '{clip(tz_s)}'; showing times in UTC.")
    rng_values = _values(params, "range")
    rng = rng_values[-1].strip().lower() if rng_values else ""
    start_s = (_values(params, "start") or [""])[-1]
    end_s = (_values(params, "end") or [""])[-1]
    start = end = None
    if rng and rng not in RANGES:
        notices.append(f"Ignored unknown time range '{clip(rng)}'; showing the last 24 hours.")
        rng = ""
    if rng == "custom" or (not rng and (start_s or end_s)):
        start, end = parse_time(start_s, zone(tz)), parse_time(end_s, zone(tz))
        problem = None
        if start_s and start is None:
            problem = f"start '{clip(start_s)}' is not a time"
        elif end_s and end is None:
            problem = f"end '{clip(end_s)}' is not a time"
        elif start is None or end is None:
            problem = "a custom range needs both start and end"
        elif start >= end:
            problem = "start is not before end"
        if problem:
            notices.append(f"Ignored the custom time range ({problem}); showing the last 24 hours.")
            rng, start, end = DEFAULT_RANGE, None, None
        else:
            rng = "custom"
    elif start_s or end_s:
        notices.append("Ignored start/end in the link: they apply only to range=custom.")
    rng = rng or DEFAULT_RANGE

    errs = (_values(params, "errors") or [""])[-1].strip().lower()
    if errs not in _TRUE and errs not in _FALSE:
        notices.append(f"Ignored errors='{clip(errs)}' (use errors=1).")
    agent_notices: list[str] = []
    unknown_agents: list[str] = []
    picked_agents = _pick(_values(params, "agent"), agents, "agent", agent_notices, unknown_agents)
    notices += agent_notices
    return FilterState(
        range=rng,
        start=start,
        end=end,
        agents=picked_agents,
        modes=_pick(_values(params, "mode"), modes, "mode", notices),
        event_types=_pick(_values(params, "type"), event_types, "event type", notices),
        errors_only=errs in _TRUE,
        tz=tz,
        notices=tuple(notices),
        unknown_agents=tuple(unknown_agents),
        agent_notices=tuple(agent_notices),
    )


def to_params(state: FilterState) -> dict[str, str | list[str]]:
    """The canonical URL form of ``state`` (defaults left out, so a clean view has a clean URL)."""
    out: dict[str, str | list[str]] = {}
    if state.range != DEFAULT_RANGE:
        out["range"] = state.range
    if state.range == "custom" and state.start and state.end:
        out["start"] = format_time(state.start)
        out["end"] = format_time(state.end)
    if state.agents:
        out["agent"] = list(state.agents)
    if state.modes:
        out["mode"] = list(state.modes)
    if state.event_types:
        out["type"] = list(state.event_types)
    if state.errors_only:
        out["errors"] = "1"
    if state.tz != DEFAULT_TZ:
        out["tz"] = state.tz
    return out


def describe(state: FilterState) -> str:
    """A one-line summary of the filters, for captions."""
    z = state.zone
    if state.range == "custom" and state.start and state.end:
        s, e = state.start.astimezone(z), state.end.astimezone(z)
        parts = [f"{s:%Y-%m-%d %H:%M} → {e:%Y-%m-%d %H:%M} {state.tz}"]
    else:
        parts = [PRESET_LABELS.get(state.range, state.range)]
        if state.tz != DEFAULT_TZ:
            parts.append(f"times in {state.tz}")
    if state.agents:
        parts.append(f"{len(state.agents)} agent{'s' if len(state.agents) > 1 else ''}")
    if state.modes:
        parts.append("modes: " + ", ".join(state.modes))
    if state.event_types:
        parts.append("types: " + ", ".join(state.event_types))
    if state.errors_only:
        parts.append("errors only")
    return " · ".join(parts)
