"""The one duration parser and the one age format, for the data layer and the screens alike.

``parse_duration`` reads ``90``, ``"90s"``, ``"15m"``, ``"1.5h"``, ``"2d"``, ``"1w"``, ``"250ms"``
(a TOML number too); ``format_span`` writes ``45s``, ``7m``, ``1h 05m``, ``3d 4h``.
"""

from __future__ import annotations

import math
import re

DASH = "—"

_UNIT_S = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d{1,15}(?:\.\d{1,9})?)\s*(ms|sec|min|s|m|h|d|w)?\s*$", re.I)


def parse_duration(value: object, *, most_s: float | None = None) -> float:
    """Seconds from a number or a text such as ``"15m"``; ValueError (one line) for anything
    else, a negative or non-finite value, or more than ``most_s``."""
    if isinstance(value, bool):
        raise ValueError("not a duration (use e.g. 90s, 15m, 2h)")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(value if isinstance(value, str) else "")
        if not m:
            raise ValueError("not a duration (use e.g. 90s, 15m, 2h)")
        seconds = float(m.group(1)) * _UNIT_S[(m.group(2) or "s").lower()]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration must be a finite number of seconds, 0 or more")
    if most_s is not None and seconds > most_s:
        raise ValueError(f"at most {format_span(most_s)}")
    return seconds


def format_span(seconds: float | None) -> str:
    """A compact duration: ``45s``, ``7m``, ``1h 05m``, ``3d 4h``; ``—`` for None or NaN."""
    if seconds is None:
        return DASH
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return DASH
    if not math.isfinite(s):
        return DASH
    s = max(0, int(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h}h" if m == 0 else f"{h}h {m:02d}m"
    d, h = divmod(s // 3600, 24)
    return f"{d}d" if h == 0 else f"{d}d {h}h"
