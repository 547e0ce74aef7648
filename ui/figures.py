"""Figure builders: pure functions from a query's DataFrame to a plotly figure.

No Streamlit and no queries here, so each is tested directly. Conventions every page shares:
each mode has one color (:data:`MODE_COLORS`), time axes are drawn in the zone ``tz`` (an IANA name,
default UTC) and their title and hovers name it, errors are red, and agents are shown by label
(friendly name or short DID) with the full DID in the hover. Buckets stay as the queries made them
(aligned in UTC); only their labels move to the zone.

Honest axes: a time chart given ``start``/``end`` spans exactly that range, however little of it
has data. Given ``bucket_s`` as well, an empty bucket is 0 where the chart counts (cycles, events)
and a break where it shows a rate or a duration (NaN, ``connectgaps=False``): a line never bridges
a silence. Per-agent charts take the query's ``kind`` column: the top agents by name, then one
"others (N agents)" series, then "unknown (no agent)" apart. Every event-derived string reaches
plotly through :func:`safe_label`.

The figure rules (docs/charts.md; tests/test_figure_rules.py checks them on the figures' JSON):
at most :data:`MAX_COLORED` agents in colour on one plot, the rest grey; a rate's bucket width is
chosen from the data (:func:`rate_bucket_s`) and a bucket too thin to judge is a grey ring off the
line; the bucket the window's end cuts short is marked partial (:func:`partial_bucket`); the
every-cycle strip becomes a density heatmap when its dots would pile up (:func:`strip_is_dense`);
log axes are labelled at powers of ten only (:func:`log_axis`); every trace of a time-bucketed
figure carries ``meta`` (:func:`trace_meta`: agent, mode, bucket width).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ui import fmt

MODE_COLORS: dict[str, str] = {
    "think": "#4C78A8",
    "reflection": "#B279A2",
    "housekeeping": "#59A14F",
    "unknown": "#9D9D9D",
}
MODE_ORDER = ("think", "reflection", "housekeeping", "unknown")
ERROR_COLOR = "#D62728"
LAG_COLORS = {"p50": "#4C78A8", "p95": "#F58518", "p99": "#D62728"}
_EXTRA = ["#F58518", "#72B7B2", "#EECA3B", "#FF9DA6", "#9C755F", "#BAB0AC", "#17BECF"]
# The coloured few (MAX_COLORED): distinct from each other, from the mode colours' greys and from
# the error red.
AGENT_PALETTE = ["#1F77B4", "#FF7F0E", "#2CA02C", "#9467BD", "#17BECF"]
# Hovers name the trace with %{fullData.name} (the escaped name), never by putting data into a
# template: Plotly renders a subset of HTML in hovers.
OTHERS_COLOR = "#5A5A5A"
UNKNOWN_COLOR = MODE_COLORS["unknown"]
UNKNOWN_LABEL = "unknown (no agent)"
MAX_GRID = 5000  # buckets per series filled in; past that the axis is left as the data made it
TIME_TITLE = "Time (UTC)"
UTC_NAME = "UTC"
HEIGHT = 340


def mode_color(mode: str) -> str:
    """The mode's fixed color; a mode outside the contract gets a stable extra color."""
    if mode in MODE_COLORS:
        return MODE_COLORS[mode]
    return _EXTRA[sum(map(ord, str(mode))) % len(_EXTRA)]


def mode_sort(modes: Sequence[str]) -> list[str]:
    known = [m for m in MODE_ORDER if m in set(modes)]
    return known + sorted(set(modes) - set(MODE_ORDER))


def time_title(tz: str = UTC_NAME) -> str:
    return f"Time ({tz})"


def _local(s: pd.Series, tz: str = UTC_NAME) -> pd.Series:
    """Times as naive wall-clock times in ``tz`` (plotly draws them as written; the axis title
    names the zone)."""
    s = pd.to_datetime(s, utc=True)
    return s.dt.tz_convert(tz).dt.tz_localize(None)


def safe_label(text: object) -> str:
    """An event-derived string as plotly text: its pseudo-HTML (``<a>``, ``<br>``, entities)
    escaped, so a name shows as written and never becomes a link or markup."""
    return html.escape(str(text), quote=False)


def _label(key: str, labels: Mapping[str, str] | None) -> str:
    return safe_label(labels.get(key, key) if labels else key)


def series_name(
    kind: str, key: str, labels: Mapping[str, str] | None = None, group_agents: object = None
) -> str:
    """The legend name of a per-agent series: the agent's label, "others (N agents)" or
    "unknown (no agent)"."""
    if kind == "others":
        if group_agents is None or pd.isna(group_agents):
            return "others"
        n = int(group_agents)
        return f"others ({n:,} agent{'' if n == 1 else 's'})"
    if kind == "unknown":
        return UNKNOWN_LABEL
    return _label(key, labels)


def _groups(df: pd.DataFrame, *, rank: Sequence[str] = ("cycles",)) -> list[tuple[str, str]]:
    """(kind, key) of a per-agent frame: agents ranked by the sums of ``rank`` (most first: the
    busiest, or the worst), then others, then unknown."""
    d = df if "kind" in df else df.assign(kind="agent")
    d = d.assign(kind=d["kind"].where(d["key"] != "unknown", "unknown"))
    cols = [c for c in rank if c in d] or ["cycles"]
    tot = d.groupby(["kind", "key"], sort=False)[cols].sum().reset_index()
    order = {"agent": 0, "others": 1, "unknown": 2}
    tot["r"] = tot["kind"].map(order).fillna(0)
    tot = tot.sort_values(["r", *cols, "key"], ascending=[True, *[False] * len(cols), True])
    return list(zip(tot["kind"], tot["key"], strict=True))


def _mask(df: pd.DataFrame, kind: str, key: str) -> pd.Series:
    m = df["key"] == key
    if "kind" in df:
        m &= df["kind"] == kind
    return m


def bucket_grid(start: datetime, end: datetime, bucket_s: int) -> pd.DatetimeIndex:
    """Every bucket (UTC, aligned like ``o11y_bucket`` in the queries) ``[start, end)`` touches."""
    lo = pd.Timestamp(start).tz_convert("UTC").floor(f"{bucket_s}s")
    hi = (pd.Timestamp(end).tz_convert("UTC") - pd.Timedelta(microseconds=1)).floor(f"{bucket_s}s")
    return pd.date_range(lo, max(lo, hi), freq=f"{bucket_s}s")


def fill_buckets(
    df: pd.DataFrame,
    *,
    bucket_s: int | None,
    start: datetime | None = None,
    end: datetime | None = None,
    zero: Sequence[str] = ("cycles",),
) -> pd.DataFrame:
    """Every series of ``df`` (by ``kind``/``key`` where present) on every bucket of the range.

    Columns in ``zero`` (counts) are 0 in an empty bucket; every other measure is NaN there (a
    break in a line). Per-series constants (``group_agents``) are carried over.
    """
    if df is None or df.empty or not bucket_s:
        return df
    d = df.copy()
    d["bucket"] = pd.to_datetime(d["bucket"], utc=True)
    lo, hi = d["bucket"].min(), d["bucket"].max()
    if start is not None and end is not None:
        grid = bucket_grid(start, end, bucket_s)
        lo, hi = min(lo, grid[0]), max(hi, grid[-1])
    grid = pd.date_range(lo, hi, freq=f"{bucket_s}s")
    if len(grid) > MAX_GRID:
        return df
    keys = [c for c in ("kind", "key") if c in d]
    grid_df = pd.DataFrame({"bucket": grid})
    full = d[keys].drop_duplicates().merge(grid_df, how="cross") if keys else grid_df
    out = full.merge(d, on=[*keys, "bucket"], how="left")
    for c in zero:
        if c in out:
            out[c] = out[c].fillna(0)
    if "group_agents" in out:
        out["group_agents"] = out.groupby(keys)["group_agents"].transform("first")
    return out.sort_values(["bucket", *keys]).reset_index(drop=True)


def span(fig: go.Figure, start: datetime | None, end: datetime | None, tz: str = UTC_NAME) -> None:
    """The time axis spans exactly ``[start, end)`` (shown in ``tz``), data or not."""
    if start is None or end is None:
        return
    lo, hi = _local(pd.Series([pd.Timestamp(start), pd.Timestamp(end)]), tz)
    fig.update_xaxes(range=[lo, hi], autorange=False)


def _base(title: str, x_title: str | None = TIME_TITLE, y_title: str | None = None) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}},
        height=HEIGHT,
        margin={"l": 10, "r": 10, "t": 48, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1},
        hovermode="closest",
    )
    # The margins grow to fit tick labels and axis titles: nothing is clipped at 1440 px.
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    if x_title is not None:
        fig.update_xaxes(title_text=x_title)
    if y_title is not None:
        fig.update_yaxes(title_text=y_title)
    return fig


def _side_legend(fig: go.Figure) -> None:
    """A vertical legend on the right, for charts with one trace per agent."""
    fig.update_layout(
        legend={"orientation": "v", "yanchor": "top", "y": 1, "xanchor": "left", "x": 1.01}
    )


def _empty(fig: go.Figure) -> go.Figure:
    fig.add_annotation(
        text="No data",
        showarrow=False,
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
        font={"size": 16, "color": "#888"},
    )
    return fig


# -- the figure rules every time chart follows --------------------------------------------------
# At most MAX_COLORED agents in colour on one plot, the rest grey: ten tangled colours read as
# none. Which agents get colour is the chart's ranking (busiest, or most errors: worst first).
MAX_COLORED = 5
REST_COLOR = "#C4C4C4"  # named agents past the coloured few
THIN_COLOR = "#8C8C8C"
# A rate's buckets: the width is the narrowest preset whose median bucket holds RATE_MIN_CYCLES
# cycles (a rate moves in steps of 5 pp at 20 cycles); a bucket under THIN_CYCLES cycles (each
# cycle more than 20 pp of its rate) is too thin to judge and is drawn as a grey ring off the line.
RATE_MIN_CYCLES = 20
THIN_CYCLES = 5
RATE_MIN_BUCKETS = 24  # never so wide that the window holds fewer buckets than this
# A count per agent over time: wide enough that the median bucket holds a few cycles, or the
# lines are a comb of 0s and 1s.
LINE_MIN_CYCLES = 5
# "others" sums every agent past the named ones; past this many times the busiest named agent it
# starts hidden (one click on its legend entry shows it), so the named agents keep their scale.
OTHERS_DWARF = 5
LINE_MIN_BUCKETS = 12
PARTIAL_PATTERN = "/"


def is_grey(color: str) -> bool:
    """Whether ``#rrggbb`` is a grey (equal channels): the colours the rules do not count."""
    c = str(color).lstrip("#").lower()
    return len(c) == 6 and c[0:2] == c[2:4] == c[4:6]


def trace_meta(
    *,
    bucket_s: int | None,
    agent: str | None = None,
    mode: str | None = None,
    group: str | None = None,
    **more: object,
) -> dict[str, object]:
    """What a time-bucketed trace stands for (``trace.meta``, read to turn a click into filters):
    its agent and mode (None: not one), the bucket width, and ``group`` for a folded series
    (``others``) or the events without an agent (``unknown``)."""
    meta: dict[str, object] = {"agent": agent, "mode": mode, "bucket_s": bucket_s}
    if group is not None:
        meta["group"] = group
    return meta | more


def _utc(t: datetime | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def partial_bucket(end: datetime | None, bucket_s: int | None) -> pd.Timestamp | None:
    """The start (UTC) of the bucket the window's ``end`` cuts short (the current one when the
    window ends now); None when ``end`` falls on a bucket edge or is unknown."""
    if end is None or not bucket_s:
        return None
    e = _utc(end)
    lo = e.floor(f"{int(bucket_s)}s")
    return None if lo == e else lo


def partial_text(end: datetime | None, tz: str = UTC_NAME) -> str:
    """The hover of a partial bucket: ``partial: 12:40 so far``."""
    if end is None:
        return "partial"
    t = _utc(end).tz_convert(tz)
    return f"partial: {t:%H:%M} so far"


def counts_text(values: Sequence[object], noun: str = "cycle") -> list[str]:
    """Each count with its noun, singular or plural (``1 cycle``, ``0 cycles``)."""
    return [fmt.plural(v, noun) for v in values]


def rebucket(df: pd.DataFrame, width_s: int) -> pd.DataFrame:
    """``bucket, [kind,] key, cycles`` summed into buckets of ``width_s`` (epoch-aligned like
    ``o11y_bucket``, so a width that is a multiple of the rows' own gives the query's buckets)."""
    b = pd.to_datetime(df["bucket"], utc=True).dt.floor(f"{int(width_s)}s")
    keys = [c for c in ("kind", "key") if c in df]
    return df.assign(bucket=b).groupby([*keys, "bucket"], as_index=False)["cycles"].sum()


def rate_bucket_s(
    counts: pd.DataFrame | None,
    *,
    base_s: int,
    start: datetime | None,
    end: datetime | None,
    widths: Sequence[int],
    min_cycles: int = RATE_MIN_CYCLES,
    min_buckets: int = RATE_MIN_BUCKETS,
) -> int:
    """The bucket width for a rate over time, chosen from the data: the narrowest of ``widths``
    (multiples of ``base_s``, the width ``counts`` is in, keeping at least ``min_buckets`` buckets
    in the window) in which every series that could fill its buckets (``min_cycles`` times
    ``min_buckets`` cycles in the window or more) has a median bucket (of those with cycles) of at
    least ``min_cycles`` cycles; the widest such width when none does. A series too small to fill
    them is judged by its own thin buckets instead; per-agent rows are judged by the named agents
    ("others" sums many agents and would pass too early)."""
    if counts is None or counts.empty or start is None or end is None:
        return base_s
    span = (_utc(end) - _utc(start)).total_seconds()
    ok = [w for w in sorted(widths) if w >= base_s and w % base_s == 0]
    ok = [w for w in ok if w == base_s or span / w >= min_buckets]
    d = counts
    if "kind" in d and (d["kind"] == "agent").any():
        d = d[d["kind"] == "agent"]
    keys = [c for c in ("kind", "key") if c in d]
    if keys:
        size = d.groupby(keys)["cycles"].transform("sum")
        d = d[size >= min_cycles * min_buckets]
    if d.empty:
        return ok[-1] if ok else base_s
    for w in ok:
        cells = rebucket(d, w)
        cells = cells[cells["cycles"] > 0]
        medians = cells.groupby(keys)["cycles"].median() if keys else cells["cycles"].median()
        if cells.empty or (pd.Series(medians) >= min_cycles).all():
            return w
    return ok[-1] if ok else base_s


@dataclass(frozen=True)
class Look:
    """How one series of a time chart is drawn and what it stands for."""

    name: str
    color: str
    width: float
    dash: str
    rank: int  # legend order: the ranking's, coloured first
    meta: dict[str, object]
    hover: str  # the series' own line in a hover (its full key), made safe


def agent_looks(
    groups: Sequence[tuple[str, str]],
    df: pd.DataFrame,
    *,
    labels: Mapping[str, str] | None,
    bucket_s: int | None,
) -> dict[tuple[str, str], Look]:
    """The first :data:`MAX_COLORED` agents of ``groups`` (ranked worst or busiest first) in
    colour, the other named agents light grey, "others" dark grey, "unknown" grey and dotted."""
    sizes = (
        df.groupby(["kind", "key"])["group_agents"].first().to_dict()
        if "group_agents" in df and "kind" in df
        else {}
    )
    looks, colored = {}, 0
    for i, (kind, key) in enumerate(groups):
        name = series_name(kind, key, labels, sizes.get((kind, key)))
        if kind == "others":
            color, width, meta = OTHERS_COLOR, 1.6, trace_meta(bucket_s=bucket_s, group="others")
        elif kind == "unknown":
            color, width = UNKNOWN_COLOR, 1.4
            meta = trace_meta(bucket_s=bucket_s, agent=key, group="unknown")
        else:
            if colored < MAX_COLORED:
                color, width = AGENT_PALETTE[colored], 2.2
                colored += 1
            else:
                color, width = REST_COLOR, 1.2
            meta = trace_meta(bucket_s=bucket_s, agent=key)
        dash = "dot" if kind == "unknown" else "solid"
        looks[(kind, key)] = Look(name, color, width, dash, i, meta, safe_label(key))
    return looks


def mode_looks(modes: Sequence[str], *, bucket_s: int | None) -> dict[tuple[str, str], Look]:
    return {
        ("mode", m): Look(
            safe_label(m),
            mode_color(m),
            2.0,
            "solid",
            i,
            trace_meta(bucket_s=bucket_s, mode=m),
            safe_label(m),
        )
        for i, m in enumerate(modes)
    }


def _draw_order(looks: Mapping[tuple[str, str], Look]) -> list[tuple[str, str]]:
    """Grey series first, so the coloured ones are drawn over them."""
    return sorted(looks, key=lambda g: (not is_grey(looks[g].color), looks[g].rank))


def _partial_segment(
    fig: go.Figure,
    look: Look,
    x: pd.Series,
    y: pd.Series,
    *,
    at: int,
    texts: Sequence[str],
) -> None:
    """The partial bucket (position ``at`` of ``x``/``y``) as a dotted segment from the last full
    bucket to a hollow marker: a count still filling up never reads as a dip."""
    lo = max(at - 1, 0)
    xs, ys = list(x.iloc[lo : at + 1]), list(y.iloc[lo : at + 1])
    fig.add_scatter(
        x=xs,
        y=ys,
        name=look.name,
        legendgroup=look.name,
        showlegend=False,
        mode="lines+markers",
        line={"width": max(look.width - 0.4, 1.0), "color": look.color, "dash": "dot"},
        marker={
            "size": [0] * (len(xs) - 1) + [8],
            "symbol": "circle-open",
            "color": look.color,
            "line": {"width": 2, "color": look.color},
        },
        customdata=list(texts),
        hovertemplate="%{fullData.name}<br>%{customdata}<extra></extra>",
        meta=look.meta | {"partial": True},
    )


# -- over time -------------------------------------------------------------------------------


def _partial_at(x_utc: pd.Series, partial: pd.Timestamp | None) -> int | None:
    """The position of the partial bucket in a series' buckets (UTC), if it is there."""
    if partial is None:
        return None
    hits = [i for i, b in enumerate(x_utc) if b == partial]
    return hits[0] if hits else None


def cycles_over_time(
    df: pd.DataFrame,
    *,
    by: str = "mode",
    labels: Mapping[str, str] | None = None,
    bucket: str = "bucket",
    title: str = "Cycles over time",
    tz: str = UTC_NAME,
    bucket_s: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> go.Figure:
    """``bucket, [kind,] key, cycles``: stacked bars by mode (mode colors) or one line per agent
    group (the busiest :data:`MAX_COLORED` in colour, the rest grey); empty buckets are 0 cycles,
    the bucket ``end`` cuts short is marked partial (hatched bar, dotted segment)."""
    fig = _base(title, x_title=time_title(tz), y_title=f"Cycles per {bucket}")
    if df is None or df.empty:
        span(fig, start, end, tz)
        return _empty(fig)
    df = fill_buckets(df, bucket_s=bucket_s, start=start, end=end, zero=("cycles",))
    utc = pd.to_datetime(df["bucket"], utc=True)
    x_all = _local(df["bucket"], tz)
    partial = partial_bucket(end, bucket_s)
    p_text = partial_text(end, tz)
    when = "%{x|%Y-%m-%d %H:%M} " + tz
    if by == "mode":
        for mode in mode_sort(df["key"].unique().tolist()):
            m = df["key"] == mode
            is_p = (utc[m] == partial).tolist() if partial is not None else [False] * int(m.sum())
            texts = [
                t + (f"<br>{p_text}" if p else "")
                for t, p in zip(counts_text(df.loc[m, "cycles"]), is_p, strict=True)
            ]
            fig.add_bar(
                x=x_all[m],
                y=df.loc[m, "cycles"],
                name=safe_label(mode),
                marker={
                    "color": mode_color(mode),
                    "opacity": [0.45 if p else 1.0 for p in is_p],
                    "pattern": {"shape": [PARTIAL_PATTERN if p else "" for p in is_p]},
                },
                customdata=texts,
                hovertemplate="%{fullData.name}<br>" + when + "<br>%{customdata}<extra></extra>",
                meta=trace_meta(bucket_s=bucket_s, mode=mode),
            )
        fig.update_layout(barmode="stack", bargap=0, legend_traceorder="normal")
    else:
        groups = _groups(df)
        looks = agent_looks(groups, df, labels=labels, bucket_s=bucket_s)
        hide_others = others_dwarf(df)
        for g in _draw_order(looks):
            look = looks[g]
            m = _mask(df, *g)
            x, y = x_all[m].reset_index(drop=True), df.loc[m, "cycles"].reset_index(drop=True)
            texts = counts_text(y)
            at = _partial_at(utc[m].reset_index(drop=True), partial)
            custom = [[look.hover, t] for t in texts]
            hidden = hide_others and g[0] == "others"
            fig.add_scatter(
                x=x,
                y=y.where(y.index != at) if at is not None else y,
                name=look.name,
                legendgroup=look.name,
                legendrank=look.rank,
                visible="legendonly" if hidden else True,
                mode="lines",
                connectgaps=False,
                line={"width": look.width, "color": look.color, "dash": look.dash},
                customdata=custom,
                hovertemplate="%{fullData.name}<br>%{customdata[0]}<br>"
                + when
                + "<br>%{customdata[1]}<extra></extra>",
                meta=look.meta,
            )
            if at is not None:
                _partial_segment(
                    fig,
                    look,
                    x,
                    y,
                    at=at,
                    texts=[*texts[max(at - 1, 0) : at], f"{texts[at]}, {p_text}"],
                )
                if hidden:
                    fig.data[-1].visible = "legendonly"
        _side_legend(fig)
        if hide_others:
            fig.add_annotation(
                text=f"“others” hidden: over {OTHERS_DWARF}× the busiest named agent; "
                "click it in the legend to show it",
                showarrow=False,
                xref="paper",
                yref="paper",
                x=0,
                y=1.0,
                xanchor="left",
                yanchor="bottom",
                font={"size": 11, "color": "#777"},
            )
    span(fig, start, end, tz)
    return fig


def others_dwarf(df: pd.DataFrame) -> bool:
    """Whether the "others" series peaks over :data:`OTHERS_DWARF` times the busiest named agent:
    drawn on the same axis, it would flatten every named agent to a line along zero."""
    if "kind" not in df or not (df["kind"] == "others").any():
        return False
    named = df.loc[df["kind"] == "agent", "cycles"]
    top = float(named.max()) if len(named) else 0.0
    return float(df.loc[df["kind"] == "others", "cycles"].max()) > OTHERS_DWARF * max(top, 1.0)


def mode_mix_over_time(
    df: pd.DataFrame,
    *,
    title: str = "Mode mix over time",
    tz: str = UTC_NAME,
    bucket_s: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> go.Figure:
    """``bucket, key (mode), cycles``: bars stacked to 100% per bucket; a bucket without cycles
    has no mix, so nothing is drawn there (no share is made up)."""
    fig = _base(title, x_title=time_title(tz), y_title="Share of cycles (%)")
    if df is None or df.empty:
        span(fig, start, end, tz)
        return _empty(fig)
    x_all = _local(df["bucket"], tz)
    for mode in mode_sort(df["key"].unique().tolist()):
        m = df["key"] == mode
        fig.add_bar(
            x=x_all[m],
            y=df.loc[m, "cycles"],
            name=safe_label(mode),
            marker_color=mode_color(mode),
            customdata=counts_text(df.loc[m, "cycles"]),
            hovertemplate="%{fullData.name}<br>%{x|%Y-%m-%d %H:%M} "
            + tz
            + "<br>%{y:.1f}% (%{customdata})<extra></extra>",
            meta=trace_meta(bucket_s=bucket_s, mode=mode),
        )
    fig.update_layout(barmode="stack", barnorm="percent", bargap=0, legend_traceorder="normal")
    fig.update_yaxes(range=[0, 100])
    span(fig, start, end, tz)
    return fig


def rate_over_time(
    df: pd.DataFrame,
    *,
    metric: str = "error_rate",
    by: str = "mode",
    labels: Mapping[str, str] | None = None,
    title: str | None = None,
    tz: str = UTC_NAME,
    bucket_s: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> go.Figure:
    """``bucket, [kind,] key, cycles, <metric>``: one line per mode (mode colors) or per agent
    group (the :data:`MAX_COLORED` with most errors in colour, the rest grey). A bucket without
    cycles has no rate (the line breaks); one under :data:`THIN_CYCLES` cycles is a grey ring off
    the line (too few to judge); the bucket ``end`` cuts short is a dotted segment to a ring."""
    is_rate = metric == "error_rate"
    y_title = "Error rate (% of cycles)" if is_rate else "Errors per cycle"
    fig = _base(
        title or ("Error rate" if is_rate else "Errors per cycle"),
        x_title=time_title(tz),
        y_title=y_title,
    )
    if df is None or df.empty:
        span(fig, start, end, tz)
        return _empty(fig)
    df = fill_buckets(df, bucket_s=bucket_s, start=start, end=end, zero=("cycles",))
    utc = pd.to_datetime(df["bucket"], utc=True)
    x_all = _local(df["bucket"], tz)
    if by == "mode":
        looks = mode_looks(mode_sort(df["key"].unique().tolist()), bucket_s=bucket_s)
    else:
        rank = ("errors", "error_cycles", "cycles") if "errors" in df else ("cycles",)
        looks = agent_looks(_groups(df, rank=rank), df, labels=labels, bucket_s=bucket_s)
    partial = partial_bucket(end, bucket_s)
    p_text = partial_text(end, tz)
    when = "%{x|%Y-%m-%d %H:%M} " + tz
    value = "%{y:.1f}%" if is_rate else "%{y:.2f} errors per cycle"
    thin_name = f"under {THIN_CYCLES} cycles: too few to judge"
    thin_shown = False
    for g in _draw_order(looks):
        look = looks[g]
        m = (df["key"] == g[1]) if by == "mode" else _mask(df, *g)
        x = x_all[m].reset_index(drop=True)
        n = df.loc[m, "cycles"].reset_index(drop=True)
        y = (df.loc[m, metric] * (100 if is_rate else 1)).reset_index(drop=True)
        at = _partial_at(utc[m].reset_index(drop=True), partial)
        thin = (n > 0) & (n < THIN_CYCLES)
        counted = counts_text(n)
        texts = ["of " + t for t in counted]
        off_line = thin | (y.index == at)
        fig.add_scatter(
            x=x,
            y=y.where(~off_line),
            name=look.name,
            legendgroup=look.name,
            legendrank=look.rank,
            mode="lines+markers",
            connectgaps=False,
            marker={"size": 4},
            line={"width": look.width, "color": look.color, "dash": look.dash},
            customdata=[[look.hover, t] for t in texts],
            hovertemplate="%{fullData.name}<br>"
            + when
            + f"<br>{value}<br>%{{customdata[1]}}<extra></extra>",
            meta=look.meta,
        )
        if thin.any():
            fig.add_scatter(
                x=x[thin],
                y=y[thin],
                name=thin_name,
                legendgroup="thin",
                showlegend=not thin_shown,
                legendrank=10_000,
                mode="markers",
                marker={
                    "size": 7,
                    "symbol": "circle-open",
                    "color": THIN_COLOR,
                    "line": {"width": 1.5, "color": THIN_COLOR},
                },
                customdata=[
                    [
                        look.name,
                        f"only {counted[i]}: too few to judge" + (f"; {p_text}" if i == at else ""),
                    ]
                    for i in n.index[thin]
                ],
                hovertemplate="%{customdata[0]}<br>"
                + when
                + f"<br>{value}<br>%{{customdata[1]}}<extra></extra>",
                meta=look.meta | {"thin": True},
            )
            thin_shown = True
        if at is not None and not thin.iloc[at] and n.iloc[at] > 0:
            lo = max(at - 1, 0)
            fmt_v = (lambda v: f"{v:.1f}%") if is_rate else (lambda v: f"{v:.2f} errors per cycle")
            pts = [
                f"{fmt_v(y.iloc[i])} {texts[i]}" if pd.notna(y.iloc[i]) else texts[i]
                for i in range(lo, at + 1)
            ]
            pts[-1] += f"<br>{p_text}"
            _partial_segment(fig, look, x, y.where(~thin), at=at, texts=pts)
    if by != "mode":
        _side_legend(fig)
    span(fig, start, end, tz)
    return fig


# The every-cycle strip: a dot per cycle while the dots stand apart. The plot is about
# STRIP_CELLS dot-widths wide (1440 px, ~9 px a dot); past STRIP_OVERLAP of the cycles sharing
# their agent's cell with another, dots pile into a band and a density heatmap replaces them.
STRIP_CELLS = 120
STRIP_OVERLAP = 0.3
DOT_SIZE = 7


def strip_overlap(points: pd.DataFrame, *, start: datetime | None, end: datetime | None) -> float:
    """The share of cycles that share their (agent, dot-width) cell with another cycle."""
    if points is None or points.empty:
        return 0.0
    ts = pd.to_datetime(points["ts"], utc=True)
    lo = _utc(start) if start is not None else ts.min()
    hi = _utc(end) if end is not None else ts.max()
    width = max((hi - lo).total_seconds(), 1.0) / STRIP_CELLS
    cell = ((ts - lo).dt.total_seconds() // width).astype("int64")
    n = pd.DataFrame({"a": points["agent"].to_numpy(), "c": cell.to_numpy()}).value_counts()
    return float(n[n > 1].sum() / len(points))


def strip_is_dense(points: pd.DataFrame, *, start: datetime | None, end: datetime | None) -> bool:
    """Whether the every-cycle strip would pile its dots up (then it is drawn as density)."""
    return strip_overlap(points, start=start, end=end) > STRIP_OVERLAP


def agent_strip(
    points: pd.DataFrame,
    *,
    labels: Mapping[str, str] | None = None,
    title: str = "Every cycle, per agent",
    tz: str = UTC_NAME,
    start: datetime | None = None,
    end: datetime | None = None,
    bucket_s: int | None = None,
) -> go.Figure:
    """``ts, agent, mode, duration_ms, tool_calls, errors``: one row per agent, a dot per cycle
    (:func:`strip_is_dense` false), else cycles per agent and ``bucket_s`` as a heatmap
    (:func:`agent_density`).

    Dots are one size, colored by mode and drawn most common mode first, so a rarer mode's dots
    lie on top and none hides another's; cycles with errors get a red ring; duration in the
    hover."""
    if points is not None and not points.empty and strip_is_dense(points, start=start, end=end):
        return agent_density(
            points,
            labels=labels,
            title=f"{title}: density",
            tz=tz,
            start=start,
            end=end,
            bucket_s=bucket_s,
        )
    fig = _base(title, x_title=time_title(tz), y_title=None)
    span(fig, start, end, tz)
    if points is None or points.empty:
        return _empty(fig)
    df = points.copy()
    df["x"] = _local(df["ts"], tz)
    # Per distinct agent, not per dot (thousands of dots, a dozen agents).
    agents = df["agent"].unique()
    df["label"] = df["agent"].map(
        {a: UNKNOWN_LABEL if a == "unknown" else _label(a, labels) for a in agents}
    )
    df["safe_agent"] = df["agent"].map({a: safe_label(a) for a in agents})
    dur = pd.to_numeric(df["duration_ms"], errors="coerce")
    df["dur_s"] = (dur / 1000).round(1)
    order = sorted(df["label"].unique(), reverse=True)
    counts = df["mode"].value_counts()
    by_count = sorted(mode_sort(df["mode"].unique().tolist()), key=lambda m: -counts[m])
    for mode in by_count:  # most common first: drawn under the rarer ones
        m = df[df["mode"] == mode]
        fig.add_scattergl(
            x=m["x"],
            y=m["label"],
            name=safe_label(mode),
            legendrank=mode_sort(list(counts.index)).index(mode),
            mode="markers",
            marker={
                "color": mode_color(mode),
                "size": DOT_SIZE,
                "opacity": 0.85,
                "line": {"width": 0},
            },
            customdata=m[["safe_agent", "dur_s", "tool_calls", "errors"]].to_numpy(),
            hovertemplate=f"%{{customdata[0]}}<br>%{{x|%Y-%m-%d %H:%M:%S}} {tz}<br>"
            "%{fullData.name}, %{customdata[1]} s, %{customdata[2]} tool calls, "
            "%{customdata[3]} errors<extra></extra>",
        )
    err = df[pd.to_numeric(df["errors"], errors="coerce").fillna(0) > 0]
    if not err.empty:
        fig.add_scattergl(
            x=err["x"],
            y=err["label"],
            name="errors",
            legendrank=100,
            mode="markers",
            marker={
                "symbol": "circle-open",
                "color": ERROR_COLOR,
                "size": DOT_SIZE + 6,
                "line": {"width": 2, "color": ERROR_COLOR},
            },
            customdata=err[["safe_agent", "errors"]].to_numpy(),
            hovertemplate=f"%{{customdata[0]}}<br>%{{x|%Y-%m-%d %H:%M:%S}} {tz}"
            "<br>%{customdata[1]} errors<extra></extra>",
        )
    fig.update_yaxes(categoryorder="array", categoryarray=order, title_text=None)
    fig.update_layout(height=max(HEIGHT, 60 + 30 * len(order)))
    return fig


def agent_density(
    points: pd.DataFrame,
    *,
    labels: Mapping[str, str] | None = None,
    title: str = "Every cycle, per agent: density",
    tz: str = UTC_NAME,
    start: datetime | None = None,
    end: datetime | None = None,
    bucket_s: int | None = None,
) -> go.Figure:
    """Single cycles as agent × time cells: the cycles in each (darker: more), the mode mix and
    cycles with errors in the hover. ``bucket_s`` None: about :data:`STRIP_CELLS` cells."""
    fig = _base(title, x_title=time_title(tz), y_title=None)
    if points is None or points.empty:
        span(fig, start, end, tz)
        return _empty(fig)
    ts = pd.to_datetime(points["ts"], utc=True)
    lo = _utc(start) if start is not None else ts.min()
    hi = _utc(end) if end is not None else ts.max()
    b = int(bucket_s or max(1, (hi - lo).total_seconds() // STRIP_CELLS))
    d = pd.DataFrame(
        {
            "bucket": ts.dt.floor(f"{b}s"),
            "agent": points["agent"].to_numpy(),
            "mode": points["mode"].to_numpy(),
            "erred": pd.to_numeric(points["errors"], errors="coerce").fillna(0).to_numpy() > 0,
        }
    )
    grid = bucket_grid(lo, hi, b) if len(bucket_grid(lo, hi, b)) <= MAX_GRID else None
    cols = grid if grid is not None else pd.DatetimeIndex(sorted(d["bucket"].unique()))
    agents = sorted(d["agent"].unique(), key=lambda a: (a == "unknown", _label(a, labels)))
    rows = list(reversed(agents))  # plotly draws the first row at the bottom
    z = d.pivot_table(index="agent", columns="bucket", values="erred", aggfunc="size", fill_value=0)
    z = z.reindex(index=rows, columns=cols, fill_value=0)
    modes = mode_sort(d["mode"].unique().tolist())
    mix = d.groupby(["agent", "bucket", "mode"]).size().unstack("mode", fill_value=0)
    errs = d[d["erred"]].groupby(["agent", "bucket"]).size()
    errs = errs.reindex(mix.index, fill_value=0)
    parts = pd.DataFrame(
        {mo: np.where(mix[mo] > 0, safe_label(mo) + " " + mix[mo].astype(str), "") for mo in modes},
        index=mix.index,
    )
    mixed = pd.Series(
        [", ".join(v for v in r if v) for r in parts.to_numpy().tolist()], index=mix.index
    )
    total = pd.Series(counts_text(mix.sum(axis=1)), index=mix.index)
    erred = pd.Series(counts_text(errs), index=mix.index)
    text = total + ": " + mixed + "<br>" + erred + " with errors"
    text = (
        text.unstack("bucket").reindex(index=rows, columns=cols).astype(object).fillna("no cycles")
    )
    custom = [
        [[safe_label(a), t] for t in row]
        for a, row in zip(rows, text.to_numpy().tolist(), strict=True)
    ]
    ylab = [UNKNOWN_LABEL if a == "unknown" else _label(a, labels) for a in rows]
    fig.add_heatmap(
        x=list(_local(pd.Series(cols), tz)),
        y=ylab,
        z=z.to_numpy().tolist(),
        colorscale="Purples",
        colorbar={"title": {"text": "cycles"}, "thickness": 12},
        customdata=custom,
        hovertemplate="%{customdata[0]}<br>%{x|%Y-%m-%d %H:%M} "
        + tz
        + "<br>%{customdata[1]}<extra></extra>",
        xgap=0,
        ygap=1,
        meta=trace_meta(bucket_s=b),
    )
    fig.update_layout(height=max(HEIGHT, 60 + 26 * len(ylab)))
    span(fig, start, end, tz)
    return fig


def heatmap(
    df: pd.DataFrame,
    *,
    labels: Mapping[str, str] | None = None,
    bucket_s: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    title: str = "Cycles per agent over time",
    tz: str = UTC_NAME,
) -> go.Figure:
    """``bucket, [kind,] key (agent), cycles`` as agent × time, top agents first, then others and
    unknown; empty buckets are 0 so gaps show."""
    fig = _base(title, x_title=time_title(tz), y_title=None)
    if df is None or df.empty:
        span(fig, start, end, tz)
        return _empty(fig)
    d = df if "kind" in df else df.assign(kind="agent")
    groups = _groups(d)
    d = fill_buckets(d, bucket_s=bucket_s, start=start, end=end, zero=("cycles",))
    d = d.assign(bucket=pd.to_datetime(d["bucket"], utc=True))
    grid = d.pivot_table(
        index=["kind", "key"], columns="bucket", values="cycles", aggfunc="sum", fill_value=0
    )
    rows = list(reversed(groups))  # plotly draws the first row at the bottom
    grid = grid.reindex(index=pd.MultiIndex.from_tuples(rows), fill_value=0)
    sizes = (
        d.groupby(["kind", "key"])["group_agents"].first().to_dict() if "group_agents" in d else {}
    )
    ylab = [series_name(kind, key, labels, sizes.get((kind, key))) for kind, key in rows]
    fig.add_heatmap(
        x=list(_local(pd.Series(grid.columns), tz)),
        y=ylab,
        z=grid.to_numpy().tolist(),
        colorscale="Blues",
        colorbar={"title": {"text": "cycles"}, "thickness": 12},
        customdata=[
            [[safe_label(key), t] for t in counts_text(grid.loc[(kind, key)].tolist())]
            for kind, key in rows
        ],
        hovertemplate="%{customdata[0]}<br>%{x|%Y-%m-%d %H:%M} "
        + tz
        + "<br>%{customdata[1]}<extra></extra>",
        xgap=0,
        ygap=1,
        meta=trace_meta(bucket_s=bucket_s),
    )
    fig.update_layout(height=max(HEIGHT, 60 + 26 * len(ylab)))
    span(fig, start, end, tz)
    return fig


# -- breakdowns ------------------------------------------------------------------------------


def mode_share(df: pd.DataFrame, *, title: str = "Share of cycles by mode") -> go.Figure:
    """``mode, cycles``: a donut in mode colors."""
    fig = _base(title, x_title=None)
    if df is None or df.empty:
        return _empty(fig)
    modes = mode_sort(df["mode"].tolist())
    d = df.set_index("mode").loc[modes].reset_index()
    fig.add_pie(
        labels=d["mode"],
        values=d["cycles"],
        hole=0.5,
        sort=False,
        marker={"colors": [mode_color(m) for m in d["mode"]]},
        textinfo="label+percent",
        textposition="inside",  # outside labels are clipped in a narrow column
        insidetextorientation="horizontal",
        hovertemplate="%{label}<br>%{value} cycles (%{percent})<extra></extra>",
    )
    fig.update_layout(showlegend=False, uniformtext={"minsize": 9, "mode": "hide"})
    return fig


def mode_share_by_agent(
    df: pd.DataFrame,
    *,
    labels: Mapping[str, str] | None = None,
    title: str = "Mode share per agent",
) -> go.Figure:
    """``[kind,] agent, mode, cycles, share``: 100% stacked horizontal bars, one per agent group
    (top agents from the top, then others and unknown at the bottom)."""
    fig = _base(title, x_title="Share of the agent's cycles (%)")
    if df is None or df.empty:
        return _empty(fig)
    d = df.rename(columns={"agent": "key"})
    groups = _groups(d)
    if "kind" not in d:
        d = d.assign(kind="agent")
    sizes = (
        d.groupby(["kind", "key"])["group_agents"].first().to_dict() if "group_agents" in d else {}
    )
    names = {g: series_name(g[0], g[1], labels, sizes.get(g)) for g in groups}
    d["label"] = [
        names.get((k, a), safe_label(a)) for k, a in zip(d["kind"], d["key"], strict=True)
    ]
    d["safe_agent"] = [safe_label(a) for a in d["key"]]
    order = [names[g] for g in reversed(groups)]
    for mode in mode_sort(d["mode"].unique().tolist()):
        m = d[d["mode"] == mode]
        fig.add_bar(
            x=m["share"] * 100,
            y=m["label"],
            orientation="h",
            name=safe_label(mode),
            marker_color=mode_color(mode),
            customdata=m[["safe_agent", "cycles"]].to_numpy(),
            hovertemplate="%{customdata[0]}<br>%{fullData.name}: %{x:.1f}% "
            "(%{customdata[1]} cycles)<extra></extra>",
        )
    # legend in mode order (plotly reverses it for stacked horizontal bars)
    fig.update_layout(
        barmode="stack", legend_traceorder="normal", height=max(HEIGHT, 80 + 24 * len(order))
    )
    fig.update_yaxes(categoryorder="array", categoryarray=order)
    fig.update_xaxes(range=[0, 100])
    return fig


def decades(values: pd.Series) -> list[float]:
    """The powers of ten spanning the positive ``values`` (a log axis's only ticks)."""
    v = pd.to_numeric(values, errors="coerce")
    v = v[(v > 0) & np.isfinite(v)]
    if v.empty:
        return [1.0]
    lo, hi = int(np.floor(np.log10(v.min()))), int(np.ceil(np.log10(v.max())))
    return [10.0**k for k in range(lo, max(hi, lo + 1) + 1)]


def decade_text(v: float, unit: str = "") -> str:
    """A power of ten as people write it: ``0.01``, ``1``, ``1,000``, ``1e+06``."""
    text = f"{v:,.0f}" if 1 <= v < 1e6 else (f"{v:g}" if v >= 1e-4 else f"{v:.0e}")
    return f"{text} {unit}".strip()


def log_axis(fig: go.Figure, values: pd.Series, *, unit: str = "", axis: str = "y") -> None:
    """A log axis labelled only at powers of ten (never "1000, 5, 2, 100")."""
    ticks = decades(values)
    update = fig.update_yaxes if axis == "y" else fig.update_xaxes
    update(
        type="log", tickmode="array", tickvals=ticks, ticktext=[decade_text(t, unit) for t in ticks]
    )


def duration_by_mode(points: pd.DataFrame, *, title: str = "Cycle duration by mode") -> go.Figure:
    """``mode, duration_ms``: a box per mode (seconds, log scale for the long tail)."""
    fig = _base(title, x_title=None, y_title="Cycle duration (s, log scale)")
    d = points.dropna(subset=["duration_ms"]) if points is not None else points
    if d is None or d.empty:
        return _empty(fig)
    for mode in mode_sort(d["mode"].unique().tolist()):
        m = d[d["mode"] == mode]
        fig.add_box(
            y=m["duration_ms"] / 1000,
            name=mode,
            marker_color=mode_color(mode),
            boxpoints="outliers",
            hovertemplate="%{fullData.name}<br>%{y:.1f} s<extra></extra>",
        )
    log_axis(fig, d["duration_ms"] / 1000, unit="s")
    fig.update_layout(showlegend=False)
    return fig


def tools_by_mode(df: pd.DataFrame, *, title: str = "Tool calls per cycle by mode") -> go.Figure:
    """``mode, avg_tools, tools``: average tool calls per cycle, total in the hover."""
    fig = _base(title, x_title=None, y_title="Avg tool calls per cycle")
    if df is None or df.empty:
        return _empty(fig)
    modes = mode_sort(df["mode"].tolist())
    d = df.set_index("mode").loc[modes].reset_index()
    fig.add_bar(
        x=d["mode"],
        y=d["avg_tools"],
        marker_color=[mode_color(m) for m in d["mode"]],
        text=[f"{v:.2f}" if pd.notna(v) else "" for v in d["avg_tools"]],
        textposition="outside",
        customdata=d["tools"],
        hovertemplate="%{x}<br>%{y:.2f} per cycle<br>%{customdata} in total<extra></extra>",
    )
    fig.update_layout(showlegend=False)
    return fig


def top_error_agents(
    df: pd.DataFrame,
    *,
    labels: Mapping[str, str] | None = None,
    title: str = "Top erroring agents, by errors",
) -> go.Figure:
    """``agent, errors, error_rate, cycles``: horizontal bars of errors (the sum of each cycle's
    errors), most at the top; each bar's text is the same count, the rate is in the hover."""
    fig = _base(title, x_title="Errors (sum over the agent's cycles)", y_title=None)
    if df is None or df.empty:
        return _empty(fig)
    d = df.iloc[::-1]
    fig.add_bar(
        x=d["errors"],
        y=[_label(a, labels) for a in d["agent"]],
        orientation="h",
        marker_color=ERROR_COLOR,
        text=[fmt.plural(e, "error") for e in d["errors"]],
        textposition="auto",
        customdata=[
            [safe_label(a), fmt.plural(n, "cycle"), f"{r * 100:.1f}%"]
            for a, n, r in zip(d["agent"], d["cycles"], d["error_rate"], strict=True)
        ],
        hovertemplate="%{customdata[0]}<br>%{text} in %{customdata[1]}"
        "<br>error rate %{customdata[2]} of cycles<extra></extra>",
    )
    fig.update_layout(showlegend=False, height=max(HEIGHT, 80 + 28 * len(d)))
    return fig


# -- pipeline --------------------------------------------------------------------------------


def events_per_hour(
    df: pd.DataFrame,
    *,
    usual: float | None = None,
    title: str = "Events per hour",
    tz: str = UTC_NAME,
    start: datetime | None = None,
    end: datetime | None = None,
) -> go.Figure:
    """``hour, events`` as bars (an hour without events is 0), with the usual rate dashed; the
    hour ``end`` cuts short (the current one) hatched and pale: partial, not a dip."""
    fig = _base(title, x_title=time_title(tz), y_title="Events per hour")
    if df is None or df.empty:
        span(fig, start, end, tz)
        return _empty(fig)
    df = fill_buckets(
        df.rename(columns={"hour": "bucket"}), bucket_s=3600, start=start, end=end, zero=("events",)
    )
    x = _local(df["bucket"], tz)
    partial = partial_bucket(end, 3600)
    is_p = (pd.to_datetime(df["bucket"], utc=True) == partial).tolist()
    p_text = partial_text(end, tz)
    fig.add_bar(
        x=x,
        y=df["events"],
        name="events",
        marker={
            "color": "#4C78A8",
            "opacity": [0.45 if p else 1.0 for p in is_p],
            "pattern": {"shape": [PARTIAL_PATTERN if p else "" for p in is_p]},
        },
        customdata=[
            t + (f"<br>{p_text}" if p else "")
            for t, p in zip(counts_text(df["events"], "event"), is_p, strict=True)
        ],
        hovertemplate=f"%{{x|%Y-%m-%d %H:%M}} {tz}<br>%{{customdata}}<extra></extra>",
        meta=trace_meta(bucket_s=3600),
    )
    if usual is not None and pd.notna(usual):
        fig.add_scatter(
            x=[x.min(), x.max()],
            y=[usual, usual],
            mode="lines",
            name=f"usual ({usual:,.0f}/h)",
            line={"dash": "dash", "color": "#F58518", "width": 2},
            hoverinfo="skip",
            meta=trace_meta(bucket_s=3600, group="usual"),
        )
    span(fig, start, end, tz)
    return fig


def ingest_lag(
    df: pd.DataFrame,
    *,
    title: str = "Ingest lag (ingest_ts − ts)",
    tz: str = UTC_NAME,
    bucket_s: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> go.Figure:
    """``bucket, lag_p50_s, lag_p95_s[, lag_p99_s]``: lines in seconds, broken where a bucket
    had no events (a lag there is unknown, not zero)."""
    fig = _base(title, x_title=time_title(tz), y_title="Lag (s)")
    if df is None or df.empty:
        span(fig, start, end, tz)
        return _empty(fig)
    df = fill_buckets(df, bucket_s=bucket_s, start=start, end=end, zero=("events",))
    x = _local(df["bucket"], tz)
    for col, name in (("lag_p50_s", "p50"), ("lag_p95_s", "p95"), ("lag_p99_s", "p99")):
        if col not in df:
            continue
        fig.add_scatter(
            x=x,
            y=df[col],
            name=name,
            mode="lines",
            connectgaps=False,
            line={"width": 1.8, "color": LAG_COLORS[name]},
            hovertemplate="%{fullData.name}<br>"
            f"%{{x|%Y-%m-%d %H:%M}} {tz}<br>%{{y:.1f}} s<extra></extra>",
            meta=trace_meta(bucket_s=bucket_s),
        )
    span(fig, start, end, tz)
    return fig
