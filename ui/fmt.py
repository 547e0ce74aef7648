"""Formatting and freshness rules, as pure functions (tested without Streamlit)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from ui.wall_logic import format_ms  # one rule for durations on every screen, wall included

NO_DATA = "No data"

# Freshness thresholds (seconds): amber past the first, red past the second.
NEWEST_EVENT_AMBER_S = 15 * 60
NEWEST_EVENT_RED_S = 60 * 60
LAST_SYNC_AMBER_FACTOR = 3  # x the sync interval
LAST_SYNC_RED_S = 15 * 60


def missing(v: Any) -> bool:
    """None, NaN, NaT or pd.NA."""
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def fmt_int(v: Any) -> str:
    return NO_DATA if missing(v) else f"{int(round(float(v))):,}"


def fmt_pct(v: Any, digits: int = 1) -> str:
    return NO_DATA if missing(v) else f"{float(v) * 100:.{digits}f}%"


def approx(text: str, is_approx: bool) -> str:
    """``text`` marked "≈" when the value is approximate (a percentile read from rollups over a
    window longer than 7 days; EVENTS.md)."""
    return f"≈ {text}" if is_approx else text


def fmt_ms(v: Any) -> str:
    """A duration in ms, readable: ``850 ms``, ``12.3 s``, ``4.2 min``."""
    return NO_DATA if missing(v) else format_ms(float(v))


def fmt_age(seconds: float | None) -> str:
    if seconds is None or missing(seconds):
        return "never"
    s = max(0.0, float(seconds))
    if s < 60:
        return f"{s:.0f} s ago"
    if s < 3600:
        return f"{s / 60:.0f} min ago"
    if s < 86400 * 2:
        return f"{s / 3600:.1f} h ago"
    return f"{s / 86400:.1f} days ago"


def _zone(tz: str) -> Any:
    return UTC if tz == "UTC" else ZoneInfo(tz)


def fmt_ts(t: Any, tz: str = "UTC") -> str:
    """A time for people, in the zone ``tz`` (an IANA name), which it names."""
    if missing(t):
        return NO_DATA
    if not isinstance(t, datetime):
        try:
            t = t.to_pydatetime()
        except AttributeError:
            return str(t)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(_zone(tz)).strftime("%Y-%m-%d %H:%M:%S ") + tz


def fmt_clock(t: datetime, tz: str = "UTC") -> str:
    """``HH:MM:SS`` in the zone ``tz`` (naive means UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(_zone(tz)).strftime("%H:%M:%S")


def local(s: Any, tz: str = "UTC") -> pd.Series:
    """Times (a column; naive means UTC) as naive wall-clock times in ``tz``, for display.

    Tables and charts draw naive times as written, so their headings/axes name the zone.
    """
    s = pd.to_datetime(pd.Series(s), utc=True)
    return s.dt.tz_convert(tz).dt.tz_localize(None)


def age_s(t: Any, now: datetime | None = None) -> float | None:
    if missing(t):
        return None
    if not isinstance(t, datetime):
        try:
            t = t.to_pydatetime()
        except AttributeError:
            return None
    now = now or datetime.now(UTC)
    return (now - t).total_seconds()


def level(age: float | None, amber: float, red: float) -> str:
    """``ok``, ``amber`` or ``red`` for an age in seconds (None = never: red)."""
    if age is None:
        return "red"
    if age >= red:
        return "red"
    if age >= amber:
        return "amber"
    return "ok"


def newest_event_level(age: float | None) -> str:
    return level(age, NEWEST_EVENT_AMBER_S, NEWEST_EVENT_RED_S)


def last_sync_level(age: float | None, interval_s: float) -> str:
    amber = max(LAST_SYNC_AMBER_FACTOR * interval_s, 120)
    return level(age, amber, max(LAST_SYNC_RED_S, amber * 2))


def change(cur: Any, prev: Any, *, kind: str = "relative") -> str | None:
    """The change against the previous period for a tile's delta; None when not comparable.

    ``relative``: ``+12.5%``; ``points`` (rates): ``+1.2 pp``.
    """
    if missing(cur) or missing(prev):
        return None
    cur, prev = float(cur), float(prev)
    if kind == "points":
        return f"{(cur - prev) * 100:+.1f} pp"
    if prev == 0:
        return None if cur == 0 else "new"
    return f"{(cur - prev) / prev * 100:+.1f}%"


def bucket_label(seconds: int) -> str:
    if seconds % 86400 == 0:
        d = seconds // 86400
        return "day" if d == 1 else f"{d} days"
    if seconds % 3600 == 0:
        h = seconds // 3600
        return "hour" if h == 1 else f"{h} h"
    if seconds % 60 == 0:
        m = seconds // 60
        return "minute" if m == 1 else f"{m} min"
    return f"{seconds} s"
