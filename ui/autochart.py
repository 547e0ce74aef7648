"""The SQL console's chart: a kind (none, line, bar, scatter), x, y and colour, picked by the user
(kept in the URL) or by default from the result's shape. Pure functions, no Streamlit.

The default (``default_choice``), documented for users on the console's page:

- **y** is the number the question is about: a numeric column named like a rate or ratio
  (``*rate*``, ``*ratio*``, ``*share*``, ``*pct*``, ``*_per_*``); else the number the rows are
  sorted by (``ORDER BY duration_ms DESC`` asks about durations); else the last numeric column.
- **colour** is a text column of at most ``MAX_SERIES`` values (the first text one when there is
  no time column: it is x).
- **x** is the first time column: **lines** only when, within each colour, the times are unique
  and in order (ascending or descending), so a line joins neighbours in time; otherwise
  **scatter** (the slowest cycles are points, never a line through unrelated cycles).
- no time column: **bars** per value of the first text column, when each bar (per colour) is one
  row and there are at most ``MAX_BARS``.
- anything else (only numbers, only text, booleans): no chart.

Every text that reaches the figure (values, column names) comes from a query over untrusted events,
so it goes through :func:`ui.safe.plotly_text`: Plotly reads a few HTML tags in labels; escaped,
they show as typed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

import pandas as pd
import plotly.graph_objects as go

from o11y_data.text import clip
from ui.safe import plotly_text

MAX_BARS = 60
MAX_SERIES = 12
HEIGHT = 360


def _numbers(s: pd.Series) -> pd.Series | None:
    """``s`` as floats when it holds numbers (DuckDB's HUGEINT and DECIMAL arrive as Decimal)."""
    if pd.api.types.is_bool_dtype(s):
        return None
    if pd.api.types.is_numeric_dtype(s):
        return s.astype("float64")
    if s.dtype == object:
        values = s.dropna()
        if len(values) and all(
            isinstance(v, Decimal | int | float) and not isinstance(v, bool) for v in values
        ):
            return pd.to_numeric(s, errors="coerce").astype("float64")
    return None


def _is_time(s: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(s)


def _is_text(s: pd.Series) -> bool:
    return (s.dtype == object or pd.api.types.is_string_dtype(s)) and all(
        isinstance(v, str) for v in s.dropna()
    )


def columns_by_kind(df: pd.DataFrame) -> tuple[list[str], list[str], list[str]]:
    """(time columns, number columns, text columns), in the result's order."""
    times = [c for c in df.columns if _is_time(df[c])]
    nums = [c for c in df.columns if c not in times and _numbers(df[c]) is not None]
    texts = [c for c in df.columns if c not in times and c not in nums and _is_text(df[c])]
    return times, nums, texts


RATE_NAME = re.compile(r"rate|ratio|share|pct|percent|_per_", re.IGNORECASE)
KINDS = ("none", "line", "bar", "scatter")
NO_COLOR = ""
# The choice's URL parameters: choice field -> parameter name.
PARAMS = {"kind": "chart", "x": "chart_x", "y": "chart_y", "color": "chart_color"}


@dataclass(frozen=True)
class Choice:
    kind: str  # one of KINDS
    x: str | None = None
    y: str | None = None
    color: str | None = None


def colour_columns(df: pd.DataFrame) -> list[str]:
    """Text columns with few enough values to colour by."""
    _, _, texts = columns_by_kind(df)
    return [c for c in texts if df[c].nunique(dropna=False) <= MAX_SERIES]


def _monotonic(s: pd.Series) -> bool:
    return bool(s.is_monotonic_increasing or s.is_monotonic_decreasing)


def pick_y(df: pd.DataFrame, nums: list[str]) -> str | None:
    """The number the question is about (the module docstring's rule for y)."""
    if not nums:
        return None
    named = [c for c in nums if RATE_NAME.search(str(c))]
    if named:
        return named[0]
    if len(df) >= 3:
        for c in nums:
            values = _numbers(df[c])
            sorted_by = values is not None and values.notna().all() and values.nunique() > 1
            if sorted_by and _monotonic(values):
                return c
    return nums[-1]


def in_time_order(df: pd.DataFrame, x: str, color: str | None) -> bool:
    """Within each colour, the x times are unique and in order (a line joins neighbours)."""
    groups = [df] if color is None else [g for _, g in df.groupby(color, dropna=False, sort=False)]
    for g in groups:
        t = pd.to_datetime(g[x], utc=True, errors="coerce").dropna()
        if not t.is_unique or not _monotonic(t.reset_index(drop=True)):
            return False
    return True


def default_choice(df: pd.DataFrame) -> Choice:
    """The chart the result's shape allows (the module docstring's rules), or kind "none"."""
    if df is None or df.empty or len(set(df.columns)) != len(df.columns):
        return Choice("none")
    times, nums, texts = columns_by_kind(df)
    y = pick_y(df, nums)
    if y is None:
        return Choice("none")
    colours = colour_columns(df)
    if times:
        x = times[0]
        color = colours[0] if colours else None
        kind = "line" if in_time_order(df, x, color) else "scatter"
        return Choice(kind, x, y, color)
    if texts:
        x = texts[0]
        color = next((c for c in colours if c != x), None)
        keys = [x] if color is None else [x, color]
        if df[x].nunique() > MAX_BARS or df.duplicated(subset=keys).any():
            return Choice("none")  # a bar would hide another: no honest single chart
        return Choice("bar", x, y, color)
    return Choice("none")


def choice_from_params(df: pd.DataFrame, params: Mapping[str, str]) -> tuple[Choice, list[str]]:
    """The URL's choice (``PARAMS``' names, keyed here by field: kind, x, y, color) checked against
    the result; what is absent or wrong is the default's, and each wrong value gives a one-line
    notice."""
    base = default_choice(df)
    notices: list[str] = []
    times, nums, _ = columns_by_kind(df)
    columns = [str(c) for c in df.columns]

    def bad(key: str, value: str, why: str) -> None:
        notices.append(f"Ignored the link's {PARAMS[key]} value {clip(value, 40)!r}: {why}.")

    kind = params.get("kind")
    if kind is not None and kind not in KINDS:
        bad("kind", kind, f"use {', '.join(KINDS)}")
        kind = None
    kind = kind or base.kind
    x, y, color = base.x, base.y, base.color
    if "x" in params:
        if params["x"] in columns:
            x = params["x"]
        else:
            bad("x", params["x"], "no such column in this result")
    if "y" in params:
        if params["y"] in nums:
            y = params["y"]
        else:
            bad("y", params["y"], "not a numeric column of this result")
    if "color" in params:
        raw = params["color"]
        if raw == NO_COLOR:
            color = None
        elif raw in colour_columns(df):
            color = raw
        else:
            bad("color", raw, f"not a text column of at most {MAX_SERIES} values")
    if kind != "none" and (x is None or y is None):
        x = x or next(iter(times + columns), None)
        y = y or pick_y(df, nums)
        if x is None or y is None:
            kind = "none"
    return Choice(kind, x, y, color), notices


def params_of(choice: Choice) -> dict[str, str]:
    """The URL's form of a choice (by field; ``PARAMS`` names them in the URL)."""
    out = {"kind": choice.kind}
    if choice.kind != "none":
        out |= {"x": choice.x or "", "y": choice.y or "", "color": choice.color or NO_COLOR}
    return out


def _layout(fig: go.Figure, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(
        height=HEIGHT,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis_title=plotly_text(x_title),
        yaxis_title=plotly_text(y_title),
        # above the plot: below it, a long legend covers the x axis' title
        legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        hovermode="closest",
    )
    return fig


def auto_chart(df: pd.DataFrame, *, tz: str = "UTC") -> go.Figure | None:
    """The default chart of ``df`` (``default_choice``), or None."""
    if df is None or df.empty:
        return None
    return figure(df, default_choice(df), tz=tz)


def figure(df: pd.DataFrame, choice: Choice, *, tz: str = "UTC") -> go.Figure | None:
    """``choice`` drawn over ``df``; None for "none" or when it cannot be drawn."""
    if choice.kind == "none" or choice.x is None or choice.y is None or df.empty:
        return None
    if choice.x not in df.columns or choice.y not in df.columns:
        return None
    y = _numbers(df[choice.y])
    if y is None:
        return None
    data = df.assign(_y=y)
    x_title = str(choice.x)
    if _is_time(df[choice.x]):
        t = pd.to_datetime(df[choice.x], utc=True, errors="coerce")
        data = data.assign(_x=t.dt.tz_convert(tz).dt.tz_localize(None)).dropna(subset=["_x"])
        x_title = f"{choice.x} ({tz})"
    else:
        xs = df[choice.x]
        text = _numbers(xs) is None
        data = data.assign(_x=[plotly_text(v) for v in xs] if text else _numbers(xs))
    if choice.kind == "line":
        data = data.sort_values("_x", kind="stable")
    groups = (
        [(choice.y, data)]
        if choice.color is None
        else list(data.groupby(choice.color, sort=True, dropna=False))
    )
    if len(groups) > MAX_SERIES:
        return None
    fig = go.Figure()
    for name, part in groups:
        if choice.kind == "bar":
            fig.add_bar(x=part["_x"], y=part["_y"], name=plotly_text(name))
        else:
            mode = "lines+markers" if choice.kind == "line" else "markers"
            fig.add_scatter(x=part["_x"], y=part["_y"], mode=mode, name=plotly_text(name))
    if choice.kind == "bar":
        if choice.color is not None:
            fig.update_layout(barmode="group")
        if not _is_time(df[choice.x]):
            order = list(dict.fromkeys(data["_x"]))
            fig.update_xaxes(categoryorder="array", categoryarray=order, type="category")
    fig.update_layout(showlegend=choice.color is not None)
    return _layout(fig, x_title, str(choice.y))
