"""What a selection on a time chart asks for, as pure functions (no Streamlit here).

Every time chart is a control (``ui.page.chart``): dragging across it selects a span, which
becomes the page's time range; clicking a bar or point opens the explorer on that bucket, agent
and mode. Streamlit hands over the browser's selection (``st.plotly_chart(on_select=...)``):

``{"points": [{"curve_number", "point_index", "x", ...}], "box": [{"x": [x0, x1], ...}], ...}``

That dict comes from the browser and is untrusted: only its shape is used, checked here. A click
is read back from the figure the server drew (trace ``curve_number``, point ``point_index``), never
from the ``x`` the browser sends; a box's ``x`` values are the only browser values used, parsed
strictly and clipped to the chart's own span. Time charts draw wall-clock times in the page's zone
(``ui.figures``); buckets are aligned in UTC. Every trace of a time-bucketed figure carries
``meta = {"agent", "mode", "bucket_s"[, "group"]}`` (the grey "others" trace: ``group: "others"``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from o11y_data.text import clip
from ui import filters as F

MAX_BUCKET_S = 366 * 86400  # a bucket wider than a year is not a bucket these charts draw
SNAP_S = 60  # a span on a chart without buckets is widened to whole minutes
# Plotly's date strings: "2026-01-01", "2026-01-01 01", "… 01:30", "… 01:30:24", "… 01:30:24.08"
_PLOTLY_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?)?"
)


@dataclass(frozen=True)
class TraceInfo:
    """What a click on one trace needs: its meta and its x values (wall-clock times in the
    chart's zone, bucket starts for a bucketed trace)."""

    x: Any  # the trace's x as drawn (numpy datetime64 array, list of timestamps, ...)
    agent: str | None = None
    mode: str | None = None
    bucket_s: int | None = None
    others: bool = False


@dataclass(frozen=True)
class ChartInfo:
    """A drawn time chart: its zone, its x axis span (UTC) and its traces."""

    tz: str
    traces: tuple[TraceInfo, ...]
    start: datetime | None = None  # the axis span, UTC (None: unknown)
    end: datetime | None = None

    @property
    def bucket_s(self) -> int | None:
        """The chart's bucket width (its traces share one), None when it has none."""
        for t in self.traces:
            if t.bucket_s:
                return t.bucket_s
        return None


@dataclass(frozen=True)
class SetRange:
    """Make ``state`` (a custom range) the page's filters."""

    state: F.FilterState


@dataclass(frozen=True)
class Explore:
    """Open the explorer with ``state`` (one bucket, an agent and a mode)."""

    state: F.FilterState


@dataclass(frozen=True)
class Notice:
    """The selection could not be used: say so in one line."""

    text: str


Action = SetRange | Explore | Notice


# -- reading a figure --------------------------------------------------------------------------


def is_times(x: Any) -> bool:
    """Whether ``x`` (a trace's x values) holds times."""
    if x is None:
        return False
    if isinstance(x, np.ndarray):
        return x.dtype.kind == "M" or (len(x) > 0 and _is_time(x.flat[0]))
    if isinstance(x, Sequence) and not isinstance(x, str) and len(x) > 0:
        return _is_time(x[0])
    return False


def _is_time(v: Any) -> bool:
    return isinstance(v, datetime | np.datetime64) and not pd.isna(v)


def _meta_text(meta: Mapping[str, Any], key: str) -> str | None:
    v = meta.get(key)
    return v if isinstance(v, str) and v else None


def _meta_bucket(meta: Mapping[str, Any]) -> int | None:
    v = meta.get("bucket_s")
    if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
        return None
    b = int(v)
    return b if b == v and 0 < b <= MAX_BUCKET_S else None


def trace_info(trace: Any) -> TraceInfo:
    """A plotly trace's x and meta (a meta that is not a dict, or odd values, are left out)."""
    meta = getattr(trace, "meta", None)
    meta = meta if isinstance(meta, Mapping) else {}
    x = getattr(trace, "x", None) if "x" in trace else None  # a pie has no x
    return TraceInfo(
        x=x,
        agent=_meta_text(meta, "agent"),
        mode=_meta_text(meta, "mode"),
        bucket_s=_meta_bucket(meta),
        others=meta.get("group") == "others",
    )


def chart_info(fig: Any, *, tz: str) -> ChartInfo | None:
    """The chart's :class:`ChartInfo`, or None when it is not a time chart (no trace has times
    on x)."""
    traces = tuple(trace_info(t) for t in fig.data)
    if not any(is_times(t.x) for t in traces):
        return None
    start = end = None
    rng = fig.layout.xaxis.range
    if rng is not None and len(rng) == 2:
        lo, hi = _naive(rng[0]), _naive(rng[1])
        if lo is not None and hi is not None:
            start, end = to_utc(lo, tz, fold=0), to_utc(hi, tz, fold=1)
    return ChartInfo(tz=tz, traces=traces, start=start, end=end)


# -- times -------------------------------------------------------------------------------------


def _naive(v: Any) -> datetime | None:
    """A drawn x value (timestamp, datetime64, datetime) as a naive datetime, or None."""
    try:
        t = pd.Timestamp(v)
    except (TypeError, ValueError, OverflowError):
        return None
    if pd.isna(t):
        return None
    return t.tz_localize(None).to_pydatetime() if t.tzinfo else t.to_pydatetime()


def parse_plotly_time(value: object) -> datetime | None:
    """A date string as Plotly writes it (``2026-01-01 01:30:24.08``) as a naive datetime; None
    for anything else (other types, other shapes, impossible dates, years outside 2000-2100)."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    m = _PLOTLY_DATE.fullmatch(value.strip())
    if m is None:
        return None
    y, mo, d, h, mi, s, frac = m.groups()
    try:
        t = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0))
    except ValueError:
        return None
    if not 2000 <= t.year <= 2100:
        return None
    return t + timedelta(microseconds=int((frac or "0")[:6].ljust(6, "0")))


def to_utc(t: datetime, tz: str, *, fold: int = 0) -> datetime:
    """A wall-clock time in ``tz`` as UTC. In a repeated hour (clocks going back) ``fold`` picks
    the first (0) or second (1) occurrence."""
    return t.replace(tzinfo=F.zone(tz), fold=fold).astimezone(UTC)


def floor_to(t: datetime, step_s: int) -> datetime:
    """``t`` down to a multiple of ``step_s`` seconds since the epoch (buckets align in UTC)."""
    ts = int(t.timestamp() // step_s * step_s)
    return datetime.fromtimestamp(ts, UTC)


def ceil_to(t: datetime, step_s: int) -> datetime:
    lo = floor_to(t, step_s)
    return lo if lo == t else lo + timedelta(seconds=step_s)


def _clip(start: datetime, end: datetime, info: ChartInfo) -> tuple[datetime, datetime] | None:
    if info.start is not None:
        start = max(start, info.start)
    if info.end is not None:
        end = min(end, info.end)
    return (start, end) if start < end else None


# -- the selection -----------------------------------------------------------------------------


def _items(selection: Mapping[str, Any], key: str) -> list[Any]:
    v = selection.get(key) if isinstance(selection, Mapping) else None
    return list(v) if isinstance(v, list | tuple) else []


def _index(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def interpret(selection: Mapping[str, Any], info: ChartInfo, state: F.FilterState) -> Action | None:
    """What the selection asks of the page: a span (box) sets the range, a click (one point)
    opens the explorer; None when nothing is selected (a cleared selection)."""
    boxes = _items(selection, "box")
    if boxes:
        return span_action(boxes[-1], info, state)
    points = _items(selection, "points")
    if points:
        return point_action(points[-1], info, state)
    return None


def span_action(box: object, info: ChartInfo, state: F.FilterState) -> Action:
    """A box selection's x span as the page's range: widened to whole buckets (whole minutes on
    a chart without buckets), within the chart's span."""
    xs = box.get("x") if isinstance(box, Mapping) else None
    if not isinstance(xs, list | tuple) or len(xs) != 2:
        return Notice("Ignored a chart selection without a time span.")
    lo, hi = parse_plotly_time(xs[0]), parse_plotly_time(xs[1])
    if lo is None or hi is None:
        shown = ", ".join(f"'{clip(str(v), 40)}'" for v in xs)
        return Notice(f"Ignored a chart selection whose span is not a time ({shown}).")
    lo, hi = min(lo, hi), max(lo, hi)
    start, end = to_utc(lo, info.tz, fold=0), to_utc(hi, info.tz, fold=1)
    step = info.bucket_s or SNAP_S
    window = _clip(floor_to(start, step), ceil_to(end, step), info)
    if window is None:
        return Notice("Ignored a chart selection outside the chart's time range.")
    return SetRange(replace(state, range="custom", start=window[0], end=window[1], notices=()))


def point_action(point: object, info: ChartInfo, state: F.FilterState) -> Action:
    """A clicked bar or point as explorer filters: its bucket (within the chart's span), its
    agent (none for "others": they are many) and its mode, the page's other filters kept."""
    p = point if isinstance(point, Mapping) else {}
    curve = _index(p.get("curve_number"))
    idx = _index(p.get("point_index", p.get("point_number")))
    if curve is None or idx is None or curve >= len(info.traces):
        return Notice("Ignored a click that names no bar or point of this chart.")
    trace = info.traces[curve]
    if not trace.bucket_s:
        return Notice("This chart's points do not stand for a time bucket; drag across it instead.")
    xs = trace.x
    if xs is None or idx >= len(xs):
        return Notice("Ignored a click that names no bar or point of this chart.")
    at = _naive(xs[idx])
    if at is None:
        return Notice("Ignored a click on a point without a time.")
    # In a repeated hour two buckets share a wall-clock label; the trace runs in UTC order, so
    # an earlier bucket with the same label means this is the second occurrence.
    fold = int(any(_naive(v) == at for v in xs[:idx])) if _in_repeated_hour(at, info.tz) else 0
    start = to_utc(at, info.tz, fold=fold)
    window = _clip(start, start + timedelta(seconds=trace.bucket_s), info)
    if window is None:
        return Notice("Ignored a click on a bucket outside the chart's time range.")
    agents = (trace.agent,) if trace.agent and not trace.others else state.agents
    modes = (trace.mode,) if trace.mode else state.modes
    return Explore(
        replace(
            state,
            range="custom",
            start=window[0],
            end=window[1],
            agents=agents,
            modes=modes,
            notices=(),
        )
    )


def _in_repeated_hour(t: datetime, tz: str) -> bool:
    return to_utc(t, tz, fold=0) != to_utc(t, tz, fold=1)
