"""An automatic chart for an ad-hoc query's result, where its shape allows one.

Pure ``DataFrame -> go.Figure | None`` (no Streamlit), tested directly:

- a time column and numbers: a line per number column (or, with one number and a text column of a
  few values, a line per value);
- no time, a text column and a number: bars (grouped by a second text column of a few values);
- anything else (one number, only text, too many bars or series, repeated categories): no chart.

Every text that reaches the figure (values, column names) comes from a query over untrusted events,
so it goes through :func:`ui.safe.plotly_text`: Plotly reads a few HTML tags in labels; escaped,
they show as typed.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import plotly.graph_objects as go

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


def _layout(fig: go.Figure, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(
        height=HEIGHT,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis_title=plotly_text(x_title),
        yaxis_title=plotly_text(y_title),
        legend={"orientation": "h", "y": -0.2},
        hovermode="closest",
    )
    return fig


def auto_chart(df: pd.DataFrame, *, tz: str = "UTC") -> go.Figure | None:
    """A line or bar chart of ``df`` when its shape is one of the above, else None."""
    if df is None or df.empty or len(set(df.columns)) != len(df.columns):
        return None
    times, nums, texts = columns_by_kind(df)
    if not nums:
        return None
    if times:
        return _lines(df, times[0], nums, texts, tz)
    if texts:
        return _bars(df, texts[0], nums[0], texts[1] if len(texts) > 1 else None)
    return None


def _lines(
    df: pd.DataFrame, x: str, nums: list[str], texts: list[str], tz: str
) -> go.Figure | None:
    t = pd.to_datetime(df[x], utc=True, errors="coerce")
    t = t.dt.tz_convert(tz).dt.tz_localize(None)
    data = df.assign(_x=t).dropna(subset=["_x"]).sort_values("_x")
    fig = go.Figure()
    if len(nums) == 1 and texts and data[texts[0]].nunique() <= MAX_SERIES:
        key, y = texts[0], nums[0]
        for value, part in data.groupby(key, sort=True, dropna=False):
            fig.add_scatter(
                x=part["_x"], y=_numbers(part[y]), mode="lines+markers", name=plotly_text(value)
            )
    elif len(nums) <= MAX_SERIES:
        for y in nums:
            fig.add_scatter(
                x=data["_x"], y=_numbers(data[y]), mode="lines+markers", name=plotly_text(y)
            )
    else:
        return None
    y_title = nums[0] if len(nums) == 1 else ""
    return _layout(fig, f"{x} ({tz})", y_title)


def _bars(df: pd.DataFrame, x: str, y: str, split: str | None) -> go.Figure | None:
    if df[x].nunique() > MAX_BARS:
        return None
    if split is not None and df[split].nunique() > MAX_SERIES:
        split = None
    keys = [x] if split is None else [x, split]
    if df.duplicated(subset=keys).any():
        return None  # a bar would hide another: no honest single chart
    fig = go.Figure()
    order = [plotly_text(v) for v in pd.unique(df[x].astype(str))]
    if split is None:
        fig.add_bar(x=[plotly_text(v) for v in df[x]], y=_numbers(df[y]), name=plotly_text(y))
    else:
        for value, part in df.groupby(split, sort=True, dropna=False):
            fig.add_bar(
                x=[plotly_text(v) for v in part[x]], y=_numbers(part[y]), name=plotly_text(value)
            )
        fig.update_layout(barmode="group")
    fig.update_xaxes(categoryorder="array", categoryarray=order, type="category")
    return _layout(fig, x, y)
