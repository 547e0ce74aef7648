"""How often an ordinary page re-runs its data and freshness bar: the ``refresh`` URL parameter.

Pure functions (no Streamlit): :func:`parse_refresh` reads the URL value, never raises, and says
in a notice what it ignored. The wall has its own ``refresh`` (any interval, see ``ui/wall.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ui.fmt import parse_duration

CHOICES: dict[str, int | None] = {"off": None, "10s": 10, "30s": 30, "1m": 60, "5m": 300}
LABELS = {
    "off": "Off",
    "10s": "Every 10 s",
    "30s": "Every 30 s",
    "1m": "Every minute",
    "5m": "Every 5 minutes",
}
DEFAULT = "1m"
KEY = "refresh"
_OFF = {"off", "0", "no", "false", "never", "none"}


def parse_refresh(values: Sequence[str]) -> tuple[str, str | None]:
    """(choice, notice): the last ``refresh`` value in the link as one of :data:`CHOICES`.

    Equivalent spellings are accepted (``60``, ``60s``, ``1min`` are ``1m``); anything else is
    ignored with a notice naming it, and the default applies.
    """
    raw = (values[-1] if values else "").strip().lower()
    if not raw:
        return DEFAULT, None
    if raw in CHOICES:
        return raw, None
    if raw in _OFF:
        return "off", None
    try:
        seconds = parse_duration(raw)
    except ValueError:
        seconds = -1
    for choice, every in CHOICES.items():
        if every == seconds:
            return choice, None
    shown = raw if len(raw) <= 20 else raw[:19] + "…"
    return DEFAULT, (
        f"Ignored refresh='{shown}' (use off, 10s, 30s, 1m or 5m); refreshing every minute."
    )


def seconds(choice: str) -> int | None:
    """The interval of a choice (None: off)."""
    return CHOICES.get(choice, CHOICES[DEFAULT])


def to_param(choice: str) -> str | None:
    """The URL value for a choice; None for the default (a clean view keeps a clean URL)."""
    return None if choice == DEFAULT or choice not in CHOICES else choice
