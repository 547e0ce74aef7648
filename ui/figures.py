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
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import datetime

import pandas as pd
import plotly.graph_objects as go

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
AGENT_PALETTE = [
    "#1F77B4",
    "#FF7F0E",
    "#2CA02C",
    "#9467BD",
    "#8C564B",
    "#E377C2",
    "#7F7F7F",
    "#BCBD22",
    "#17BECF",
    "#AEC7E8",
    "#FFBB78",
    "#98DF8A",
    "#C5B0D5",
    "#C49C94",
    "#F7B6D2",
    "#DBDB8D",
    "#9EDAE5",
]
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


def agent_colors(keys: Sequence[str]) -> dict[str, str]:
    """A color per agent, by sorted order so the same set always gets the same colors."""
    return {k: AGENT_PALETTE[i % len(AGENT_PALETTE)] for i, k in enumerate(sorted(set(keys)))}


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


def series_meta(kind: str, key: str, *, bucket_s: int | None) -> dict[str, object]:
    """A per-agent series' ``meta`` (what a click on it filters, ``ui.chart_events``)."""
    if kind == "others":
        return {"agent": None, "mode": None, "bucket_s": bucket_s, "group": "others"}
    return {"agent": "unknown" if kind == "unknown" else key, "mode": None, "bucket_s": bucket_s}


def _groups(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(kind, key) of a per-agent frame: agents (most cycles first), then others, then unknown."""
    d = df if "kind" in df else df.assign(kind="agent")
    d = d.assign(kind=d["kind"].where(d["key"] != "unknown", "unknown"))
    tot = d.groupby(["kind", "key"], sort=False)["cycles"].sum().reset_index()
    rank = {"agent": 0, "others": 1, "unknown": 2}
    tot["r"] = tot["kind"].map(rank).fillna(0)
    tot = tot.sort_values(["r", "cycles", "key"], ascending=[True, False, True])
    return list(zip(tot["kind"], tot["key"], strict=True))


def _group_colors(groups: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    agents = agent_colors([k for kind, k in groups if kind == "agent"])
    return {
        (kind, k): OTHERS_COLOR
        if kind == "others"
        else UNKNOWN_COLOR
        if kind == "unknown"
        else agents[k]
        for kind, k in groups
    }


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


# -- over time -------------------------------------------------------------------------------


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
    (top agents, others, unknown); empty buckets are 0 cycles."""
    fig = _base(title, x_title=time_title(tz), y_title=f"Cycles per {bucket}")
    if df is None or df.empty:
        span(fig, start, end, tz)
        return _empty(fig)
    df = fill_buckets(df, bucket_s=bucket_s, start=start, end=end, zero=("cycles",))
    x_all = _local(df["bucket"], tz)
    if by == "mode":
        for mode in mode_sort(df["key"].unique().tolist()):
            m = df["key"] == mode
            name = safe_label(mode)
            fig.add_bar(
                x=x_all[m],
                y=df.loc[m, "cycles"],
                name=name,
                marker_color=mode_color(mode),
                meta={"agent": None, "mode": mode, "bucket_s": bucket_s},
                hovertemplate="%{fullData.name}<br>%{x|%Y-%m-%d %H:%M} "
                + tz
                + "<br>%{y} cycles<extra></extra>",
            )
        fig.update_layout(barmode="stack", bargap=0, legend_traceorder="normal")
    else:
        groups = _groups(df)
        colors = _group_colors(groups)
        for kind, key in groups:
            m = _mask(df, kind, key)
            size = df.loc[m, "group_agents"].iloc[0] if "group_agents" in df else None
            name = series_name(kind, key, labels, size)
            fig.add_scatter(
                x=x_all[m],
                y=df.loc[m, "cycles"],
                name=name,
                mode="lines",
                connectgaps=False,
                line={
                    "width": 1.6,
                    "color": colors[(kind, key)],
                    "dash": "dot" if kind == "unknown" else "solid",
                },
                customdata=[safe_label(key)] * int(m.sum()),
                meta=series_meta(kind, key, bucket_s=bucket_s),
                hovertemplate="%{fullData.name}<br>%{customdata}<br>%{x|%Y-%m-%d %H:%M} "
                + tz
                + "<br>%{y} cycles<extra></extra>",
            )
        _side_legend(fig)
    span(fig, start, end, tz)
    return fig


def mode_mix_over_time(
    df: pd.DataFrame,
    *,
    title: str = "Mode mix over time",
    tz: str = UTC_NAME,
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
            hovertemplate="%{fullData.name}<br>%{x|%Y-%m-%d %H:%M} "
            + tz
            + "<br>%{y:.1f}%<extra></extra>",
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
    group; a bucket without cycles has no rate: the line breaks there."""
    is_rate = metric == "error_rate"
    y_title = "Error rate (%)" if is_rate else "Errors per cycle"
    fig = _base(
        title or ("Error rate" if is_rate else "Errors per cycle"),
        x_title=time_title(tz),
        y_title=y_title,
    )
    if df is None or df.empty:
        span(fig, start, end, tz)
        return _empty(fig)
    df = fill_buckets(df, bucket_s=bucket_s, start=start, end=end, zero=("cycles",))
    x_all = _local(df["bucket"], tz)
    if by == "mode":
        groups = [("mode", k) for k in mode_sort(df["key"].unique().tolist())]
        colors = {g: mode_color(g[1]) for g in groups}
    else:
        groups = _groups(df)
        colors = _group_colors(groups)
    fmt = "%{y:.1f}%" if is_rate else "%{y:.2f} errors/cycle"
    for kind, key in groups:
        m = df["key"] == key if by == "mode" else _mask(df, kind, key)
        y = df.loc[m, metric] * (100 if is_rate else 1)
        if by == "mode":
            name = safe_label(key)
        else:
            size = df.loc[m, "group_agents"].iloc[0] if "group_agents" in df else None
            name = series_name(kind, key, labels, size)
        fig.add_scatter(
            x=x_all[m],
            y=y,
            name=name,
            mode="lines+markers",
            connectgaps=False,
            marker={"size": 4},
            line={"width": 1.5, "color": colors[(kind, key)]},
            customdata=df.loc[m, "cycles"],
            hovertemplate="%{fullData.name}<br>%{x|%Y-%m-%d %H:%M} "
            + tz
            + f"<br>{fmt}<br>of %{{customdata}} cycles<extra></extra>",
        )
    if by != "mode":
        _side_legend(fig)
    span(fig, start, end, tz)
    return fig


def agent_strip(
    points: pd.DataFrame,
    *,
    labels: Mapping[str, str] | None = None,
    title: str = "Every cycle, per agent",
    tz: str = UTC_NAME,
    start: datetime | None = None,
    end: datetime | None = None,
) -> go.Figure:
    """``ts, agent, mode, duration_ms, tool_calls, errors``: one row per agent, a dot per cycle.

    Dots are colored by mode and sized by duration; cycles with errors get a red ring.
    """
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
    df["size"] = (4 + (dur.fillna(0) / 1000).clip(0, 240) ** 0.5 * 1.4).round(1)
    df["dur_s"] = (dur / 1000).round(1)
    order = sorted(df["label"].unique(), reverse=True)
    for mode in mode_sort(df["mode"].unique().tolist()):
        m = df[df["mode"] == mode]
        fig.add_scattergl(
            x=m["x"],
            y=m["label"],
            name=mode,
            mode="markers",
            marker={
                "color": mode_color(mode),
                "size": m["size"],
                "opacity": 0.75,
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
            mode="markers",
            marker={
                "symbol": "circle-open",
                "color": ERROR_COLOR,
                "size": err["size"] + 5,
                "line": {"width": 2, "color": ERROR_COLOR},
            },
            customdata=err[["safe_agent", "errors"]].to_numpy(),
            hovertemplate=f"%{{customdata[0]}}<br>%{{x|%Y-%m-%d %H:%M:%S}} {tz}"
            "<br>%{customdata[1]} errors<extra></extra>",
        )
    fig.update_yaxes(categoryorder="array", categoryarray=order, title_text=None)
    fig.update_layout(height=max(HEIGHT, 60 + 30 * len(order)))
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
        customdata=[[safe_label(key)] * grid.shape[1] for _, key in rows],
        hovertemplate="%{customdata}<br>%{x|%Y-%m-%d %H:%M} "
        + tz
        + "<br>%{z} cycles<extra></extra>",
        xgap=0,
        ygap=1,
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
    fig.update_layout(barmode="stack", height=max(HEIGHT, 80 + 24 * len(order)))
    fig.update_yaxes(categoryorder="array", categoryarray=order)
    fig.update_xaxes(range=[0, 100])
    return fig


def duration_by_mode(points: pd.DataFrame, *, title: str = "Cycle duration by mode") -> go.Figure:
    """``mode, duration_ms``: a box per mode (seconds, log scale for the long tail)."""
    fig = _base(title, x_title=None, y_title="Duration (s, log scale)")
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
    fig.update_yaxes(type="log")
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
    df: pd.DataFrame, *, labels: Mapping[str, str] | None = None, title: str = "Top erroring agents"
) -> go.Figure:
    """``agent, errors, error_rate, cycles``: horizontal bars of errors, most at the top."""
    fig = _base(title, x_title="Errors", y_title=None)
    if df is None or df.empty:
        return _empty(fig)
    d = df.iloc[::-1]
    fig.add_bar(
        x=d["errors"],
        y=[_label(a, labels) for a in d["agent"]],
        orientation="h",
        marker_color=ERROR_COLOR,
        text=[f"{r * 100:.1f}% of cycles" for r in d["error_rate"]],
        textposition="auto",
        customdata=[[safe_label(a), n] for a, n in zip(d["agent"], d["cycles"], strict=True)],
        hovertemplate="%{customdata[0]}<br>%{x} errors in %{customdata[1]} cycles<extra></extra>",
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
    """``hour, events`` as bars (an hour without events is 0), with the usual rate dashed."""
    fig = _base(title, x_title=time_title(tz), y_title="Events per hour")
    if df is None or df.empty:
        span(fig, start, end, tz)
        return _empty(fig)
    df = fill_buckets(
        df.rename(columns={"hour": "bucket"}), bucket_s=3600, start=start, end=end, zero=("events",)
    )
    x = _local(df["bucket"], tz)
    fig.add_bar(
        x=x,
        y=df["events"],
        name="events",
        marker_color="#4C78A8",
        hovertemplate=f"%{{x|%Y-%m-%d %H:%M}} {tz}<br>%{{y}} events<extra></extra>",
    )
    if usual is not None and pd.notna(usual):
        fig.add_scatter(
            x=[x.min(), x.max()],
            y=[usual, usual],
            mode="lines",
            name=f"usual ({usual:,.0f}/h)",
            line={"dash": "dash", "color": "#F58518", "width": 2},
            hoverinfo="skip",
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
        )
    span(fig, start, end, tz)
    return fig
