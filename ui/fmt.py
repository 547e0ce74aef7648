"""Formatting, durations and freshness rules for every screen (the wall included), as pure
functions tested without Streamlit.

One age format (:func:`format_span`, :func:`fmt_age`) and one duration parser
(:func:`parse_duration`), both the data layer's (``o11y_data.durations``), one duration-in-ms
format (:func:`fmt_ms`) and one freshness rule set (:func:`level`,
:func:`newest_event_level`, :func:`last_sync_level`; levels ``ok``, ``amber``, ``red``).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

import pandas as pd

# The data layer's one duration parser and age format, re-exported for the screens.
from o11y_data.durations import DASH as DASH
from o11y_data.durations import format_span as format_span
from o11y_data.durations import parse_duration as parse_duration
from ui.filters import zone

NO_DATA = "No data"

# The freshness rule set (seconds): amber past the first threshold, red past the second.
LEVELS = ("ok", "amber", "red")
NEWEST_EVENT_AMBER_S = 15 * 60
NEWEST_EVENT_RED_S = 60 * 60
LAST_SYNC_AMBER_FACTOR = 3  # x the sync interval
LAST_SYNC_AMBER_MIN_S = 120
LAST_SYNC_RED_S = 15 * 60


def format_rate(rate: float | None) -> str:
    """The wall's compact rate: ``0.0%``, ``3.4%``, ``12%``, ``100%``; ``—`` for nothing."""
    if rate is None or missing(rate):
        return DASH
    pct = float(rate) * 100
    return f"{pct:.1f}%" if pct < 10 else f"{pct:.0f}%"


def format_clock(t: datetime | None, zone: tzinfo = UTC, *, seconds: bool = False) -> str:
    """``HH:MM`` (or ``HH:MM:SS``) in ``zone``; naive means UTC; ``—`` for None."""
    if t is None or missing(t):
        return DASH
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(zone).strftime("%H:%M:%S" if seconds else "%H:%M")


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
    window longer than 7 days; docs/events.md)."""
    return f"≈ {text}" if is_approx else text


def fmt_ms(v: Any, *, empty: str = NO_DATA) -> str:
    """A duration in ms, readable: ``850 ms``, ``12.3 s``, ``4.2 min``; ``empty`` when missing."""
    if missing(v):
        return empty
    ms = float(v)
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms / 60_000:.1f} min"


def fmt_age(seconds: float | None) -> str:
    """How long ago, in the one age format: ``45s ago``, ``1h 05m ago``; ``never`` for None."""
    if seconds is None or missing(seconds):
        return "never"
    return f"{format_span(float(seconds))} ago"


def as_utc(value: Any) -> datetime | None:
    """A time from the data layer (datetime or pandas Timestamp; naive means UTC) as an aware
    datetime; None for a missing value or anything that is not a time."""
    if missing(value):
        return None
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def fmt_ts(t: Any, tz: str = "UTC") -> str:
    """A time for people, in the zone ``tz`` (an IANA name), which it names."""
    if missing(t):
        return NO_DATA
    aware = as_utc(t)
    if aware is None:
        return str(t)
    return aware.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M:%S ") + tz


def fmt_clock(t: datetime, tz: str = "UTC") -> str:
    """``HH:MM:SS`` in the zone ``tz`` (naive means UTC)."""
    return format_clock(t, zone(tz), seconds=True)


def local(s: Any, tz: str = "UTC") -> pd.Series:
    """Times (a column; naive means UTC) as naive wall-clock times in ``tz``, for display.

    Tables and charts draw naive times as written, so their headings/axes name the zone.
    """
    s = pd.to_datetime(pd.Series(s), utc=True)
    return s.dt.tz_convert(tz).dt.tz_localize(None)


def age_s(t: Any, now: datetime | None = None) -> float | None:
    """Seconds from ``t`` to ``now`` (default: the clock); None when ``t`` is not a time."""
    aware = as_utc(t)
    if aware is None:
        return None
    return ((now or datetime.now(UTC)) - aware).total_seconds()


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


def last_sync_amber_s(interval_s: float) -> float:
    """The last sync is late (amber) past this: a few missed intervals."""
    return max(LAST_SYNC_AMBER_FACTOR * interval_s, LAST_SYNC_AMBER_MIN_S)


def last_sync_level(age: float | None, interval_s: float, *, failed: bool = False) -> str:
    """``red`` when the last sync failed or is long overdue, ``amber`` when late, else ``ok``."""
    if failed:
        return "red"
    amber = last_sync_amber_s(interval_s)
    return level(age, amber, max(LAST_SYNC_RED_S, amber * 2))


NO_CHANGE = "±0"  # how a change that rounds to zero starts: neutral, no arrow


def change(cur: Any, prev: Any, *, kind: str = "relative") -> str | None:
    """The change against the previous period for a tile's delta; None when not comparable
    (no previous value, or nothing before to compare a share with).

    ``relative``: ``+12.5%``; ``points`` (rates): ``+1.2 pp``. A change that rounds to zero reads
    ``±0.0%`` / ``±0.0 pp`` (:func:`neutral`: shown without an arrow, never as a rise)."""
    if missing(cur) or missing(prev):
        return None
    cur, prev = float(cur), float(prev)
    if kind == "points":
        pp = round((cur - prev) * 100, 1)
        return f"{NO_CHANGE}.0 pp" if pp == 0 else f"{pp:+.1f} pp"
    if prev == 0:
        return None if cur == 0 else "new"
    pct = round((cur - prev) / prev * 100, 1)
    return f"{NO_CHANGE}.0%" if pct == 0 else f"{pct:+.1f}%"


def neutral(delta: str | None) -> bool:
    """Whether a tile's delta shows no direction (none, or a change that rounds to zero)."""
    return delta is None or delta.startswith(NO_CHANGE)


def delta_look(delta: str | None, color: str = "normal") -> dict[str, str]:
    """``st.metric``'s ``delta_color`` and ``delta_arrow`` for ``delta``: an arrow and a color
    only for a change with a direction."""
    if neutral(delta):
        return {"delta_color": "off", "delta_arrow": "off"}
    return {"delta_color": color, "delta_arrow": "auto"}


def plural(n: Any, noun: str, nouns: str | None = None) -> str:
    """``1 cycle``, ``2 cycles``, ``1,234 cycles``, ``0 cycles`` (``nouns``: an irregular plural);
    ``No data`` for a missing count."""
    if missing(n):
        return NO_DATA
    v = float(n)
    whole = v == int(v)
    word = noun if whole and abs(v) == 1 else (nouns or noun + "s")
    return f"{int(v):,} {word}" if whole else f"{v:,.1f} {word}"


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
