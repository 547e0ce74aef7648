"""The wall screen's rendering: kiosk CSS, the tile grid as one HTML block, and the live fragment.

The numbers come from :mod:`ui.wall_logic` (pure); this module only turns them into HTML and wires
Streamlit: ``page()`` draws the kiosk CSS once and a fragment that re-renders the wall every
``refresh`` seconds. ``render()`` is the fragment's body and can be called directly (tests).

Honesty when the server itself is gone: every render carries a CSS animation that, unless the next
render replaces it in time, greys the tiles and shows "no update since HH:MM:SS" — the browser
needs no server to tell the room the screen has stopped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from string import Template

from o11y_data import routes
from o11y_data.alerts import (
    AlertState,
    EvaluatorHealth,
    FiringSummary,
    evaluator_health,
    firing_by_agent,
    firing_summary,
    read_state,
)
from o11y_data.text import clip
from ui import tables
from ui.agents import agents_file, load_names, short_did
from ui.agents import labels as agent_labels
from ui.fmt import DASH, as_utc, fmt_ms, format_clock, format_rate, format_span, missing
from ui.safe import Safe, h, join
from ui.wall_logic import (
    AgentStats,
    Health,
    Tile,
    Totals,
    WallConfig,
    assess,
    build_tiles,
    config_defaults,
    fit,
    network_totals,
    parse_config,
    select,
    window_bounds,
)

log = logging.getLogger(__name__)

SPARK_BUCKETS = 30
HEADER_VH = 14  # the header band (title, totals, banner) in viewport heights
FOOTER_VH = 3

COLORS = {
    "healthy": "#2ecc71",
    "degraded": "#ffb020",
    "stale": "#ff7a1a",
    "down": "#ff3b3b",
}

KIOSK_CSS = """
<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"],
[data-testid="stSidebarNav"], [data-testid="stToolbar"], [data-testid="stHeader"],
[data-testid="stDecoration"], [data-testid="stStatusWidget"], [data-testid="stMainMenu"],
#MainMenu, header, footer { display: none !important; }
html, body, .stApp, [data-testid="stAppViewContainer"], [data-testid="stMain"] {
  background: #05070a !important; overflow: hidden !important;
}
[data-testid="stMainBlockContainer"], .block-container {
  padding: 0 !important; max-width: 100% !important;
}
[data-testid="stElementContainer"][data-stale="true"], .stElementContainer[data-stale="true"],
[data-stale="true"] { opacity: 1 !important; transition: none !important; }
</style>
"""

WALL_CSS = Template(
    """
.wall { position: fixed; inset: 0; z-index: 999990; background: #05070a; color: #f2f5f8;
  font-family: "DejaVu Sans", "Inter", "Segoe UI", sans-serif; display: flex;
  flex-direction: column; overflow: hidden; padding: 1.2vh 1.2vw; box-sizing: border-box;
  line-height: 1.15; }
.wall * { box-sizing: border-box; }
.wall-head { max-height: ${head}vh; display: flex; flex-direction: column; gap: 0.8vh;
  flex: 0 0 auto; margin-bottom: 1vh; overflow: hidden; }
.wall-top { display: flex; align-items: baseline; gap: 1.6vw; white-space: nowrap; }
.wall-title { font-size: 3.4vh; font-weight: 800; letter-spacing: 0.05em; color: #fff; }
.wall-totals { display: flex; gap: 1.2vw; font-size: 2.9vh; align-items: baseline;
  flex: 1 1 auto; overflow: hidden; }
.wall-totals b, .wall-net b { font-weight: 800; color: #fff; }
.wall-net { display: flex; gap: 2.2vw; font-size: 3vh; align-items: baseline;
  white-space: nowrap; overflow: hidden; }
.wall-net .k { color: #9fb0c0; font-size: 2.2vh; margin-right: 0.5vw; }
.wall-net .scope { flex: 0 1 auto; min-width: 0; overflow: hidden; text-overflow: ellipsis; }
.wall-net > span[data-k] { flex: none; }
.wall-count { font-weight: 800; }
.wall-more { font-size: 2.4vh; font-weight: 700; color: #ffb020; white-space: nowrap;
  overflow: hidden; text-overflow: ellipsis; }
.wall-clock { font-size: 2.1vh; color: #c7d2dd; text-align: right; }
.wall-clock b { font-size: 3vh; color: #fff; }
.wall-banner { font-size: 2.6vh; font-weight: 700; padding: 0.6vh 1vw; border-radius: 0.6vh;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.wall-banner.red { background: #b00020; color: #fff; }
.wall-banner.amber { background: #ffb020; color: #111; }
.wall-row2 { display: flex; align-items: baseline; gap: 2vw; overflow: hidden; }
.wall-row2 .wall-net { flex: 1 1 auto; min-width: 0; }
.wall-alerts { flex: 0 1 auto; max-width: 48vw; margin-left: auto; font-size: 2.4vh;
  font-weight: 800; padding: 0.3vh 0.8vw; border-radius: 0.6vh; background: #b00020; color: #fff;
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.wall-grid { flex: 1 1 auto; min-height: 0; display: grid; gap: 1vh 0.8vw;
  grid-template-columns: repeat(var(--cols), minmax(0, 1fr));
  grid-template-rows: repeat(var(--rows), minmax(0, 1fr)); }
.tile { --u: min(calc((100vw - 3vw) / var(--cols) / 16),
  calc((100vh - ${rest}vh) / var(--rows) / 8.6));
  background: #10161d; border: 0.25vh solid #26313d; border-left: calc(var(--u) * 0.55) solid;
  border-radius: 0.8vh; padding: calc(var(--u) * 0.45) calc(var(--u) * 0.7);
  display: flex; flex-direction: column; justify-content: space-between; min-height: 0;
  overflow: hidden; }
.tile.healthy { border-left-color: ${healthy}; }
.tile.degraded { border-left-color: ${degraded}; background: #221a08; }
.tile.stale { border-left-color: ${stale}; background: #24140a; }
.tile.down { border-left-color: ${down}; background: #2a0b0d; }
.t-row { display: flex; justify-content: space-between; align-items: baseline; gap: 0.5vw;
  white-space: nowrap; }
.t-status { font-size: calc(var(--u) * 1.25); font-weight: 800; letter-spacing: 0.04em;
  text-transform: uppercase; }
.healthy .t-status { color: ${healthy}; } .degraded .t-status { color: ${degraded}; }
.stale .t-status { color: ${stale}; } .down .t-status { color: ${down}; }
.t-age { font-size: calc(var(--u) * 1.25); font-weight: 700; color: #fff; }
.t-age small { font-size: 0.6em; color: #9fb0c0; font-weight: 400; }
.t-name a { color: inherit; text-decoration: none; }
.t-name { font-size: calc(var(--u) * 1.05); font-weight: 600; color: #e6edf3;
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.t-nums { display: flex; justify-content: space-between; white-space: nowrap; }
.t-num { display: flex; flex-direction: column; }
.t-num b { font-size: calc(var(--u) * 1.45); font-weight: 800; color: #fff; }
.t-num span { font-size: calc(var(--u) * 0.68); color: #9fb0c0; text-transform: uppercase;
  letter-spacing: 0.05em; }
.t-num.bad b { color: ${degraded}; }
.t-spark { height: calc(var(--u) * 1.7); width: 100%; display: block; }
.t-alert { font-size: calc(var(--u) * 0.75); color: #ff3b3b; font-weight: 800;
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.tile.alerting { border-color: #ff3b3b; }
.wall-eval.red { color: #fff; background: #b00020; font-weight: 800; padding: 0 0.5vw; }
.wall-eval.amber { color: #ffb020; }
.t-asof { font-size: calc(var(--u) * 0.75); color: #ffb020; font-weight: 700; }
.wall-grid.asof .tile { filter: grayscale(1); opacity: 0.55; }
.wall-empty { font-size: 4vh; color: #c7d2dd; margin: auto; text-align: center; }
.wall-foot { height: ${foot}vh; font-size: 1.5vh; color: #7d8b99; display: flex; gap: 1.5vw;
  justify-content: space-between; align-items: flex-end; white-space: nowrap; overflow: hidden;
  flex: 0 0 auto; }
.wall-foot > span { flex: 0 0 auto; }
/* URL notices take what room is left; the evaluator's age (red when it stopped) always shows. */
.wall-foot > .notice { color: #ffb020; overflow: hidden; text-overflow: ellipsis; flex: 0 1 auto;
  min-width: 0; }
.wall-dead { position: absolute; left: 20vw; right: 20vw; top: 40vh; padding: 3vh 2vw;
  background: #b00020; color: #fff; font-size: 4vh; font-weight: 800; text-align: center;
  border-radius: 1vh; visibility: hidden; z-index: 5; }
"""
).substitute(
    head=HEADER_VH,
    foot=FOOTER_VH,
    rest=HEADER_VH + FOOTER_VH + 3,
    **COLORS,
)


def grid_shape(n: int, *, aspect: float = 16 / 9 * (100 - HEADER_VH - FOOTER_VH) / 100) -> tuple:
    """(cols, rows) for ``n`` tiles on a screen of ``aspect`` (grid width / height) that makes the
    tiles biggest, tiles being about 1.75 times as wide as high."""
    n = max(1, n)
    best, best_size = (1, n), -1.0
    for cols in range(1, n + 1):
        rows = math.ceil(n / cols)
        size = min(aspect / cols / 1.75, 1 / rows)
        if size > best_size + 1e-9:
            best, best_size = (cols, rows), size
    return best


def sparkline_svg(counts: Sequence[int], errors: Sequence[int]) -> str:
    """Bars of cycles per slice of the window (error cycles in red on top), as inline SVG."""
    n = len(counts)
    if n == 0:
        return ""
    top = max(max(counts), 1)
    bars = []
    for i, (c, e) in enumerate(zip(counts, errors, strict=False)):
        if c <= 0:
            bars.append(f'<rect x="{i * 10 + 1}" y="97" width="8" height="3" fill="#2b3846"/>')
            continue
        h = max(8.0, 100 * c / top)
        eh = h * min(e, c) / c
        bars.append(
            f'<rect x="{i * 10 + 1}" y="{100 - h:.1f}" width="8" height="{h - eh:.1f}" '
            'fill="#5aa9ff"/>'
        )
        if eh > 0:
            bars.append(
                f'<rect x="{i * 10 + 1}" y="{100 - eh:.1f}" width="8" height="{eh:.1f}" '
                'fill="#ff3b3b"/>'
            )
    return (
        f'<svg class="t-spark" viewBox="0 0 {n * 10} 100" preserveAspectRatio="none" '
        f'role="img" aria-label="cycles over the window">{"".join(bars)}</svg>'
    )


AGENT_ATTR_MAX = 300  # an agent string in an attribute (tooltip, data-agent) is clipped to this


def agent_href(agent: str) -> str:
    """The agent's page, relative to the wall: the agent alone, never the wall's token (the page
    asks for sign-in itself when it is on; the token opens the wall and nothing else), and no
    referrer (``rel``) carries the wall's URL to it. An agent string too long to be a name (over
    :data:`AGENT_ATTR_MAX`) links to the page's list of agents instead."""
    if len(agent) > AGENT_ATTR_MAX:
        return routes.AGENT.path
    return tables.page_url(routes.AGENT.path, {}, agent=agent)


def tile_html(t: Tile, cfg: WallConfig, health: Health) -> Safe:
    """One agent's tile; every value is escaped (an agent string is untrusted)."""
    asof = (
        h('<span class="t-asof">as of {}</span>', format_clock(health.at, cfg.zone))
        if not health.current
        else Safe("")
    )
    alert = (
        h('<div class="t-alert" data-k="alert">alert: {}</div>', t.alert) if t.alert else Safe("")
    )
    return h(
        '<div class="tile {status}{alerting}" data-agent="{agent}" data-status="{status}" '
        'title="{agent}">'
        '<div class="t-row"><span class="t-status">{status}</span>{asof}'
        '<span class="t-age" data-age="{age_s}">{age}<small> ago</small></span></div>'
        '<div class="t-name"><a href="{href}" target="_blank" rel="noreferrer">{name}</a></div>'
        "{alert}"
        '<div class="t-nums">'
        '<div class="t-num" data-k="cycles"><b>{cycles}</b><span>cycles/{win}</span></div>'
        '<div class="t-num{err_cls}" data-k="error_rate"><b>{rate}</b>'
        "<span>error rate</span></div>"
        '<div class="t-num" data-k="p95"><b>{p95}</b><span>p95</span></div>'
        "</div>{spark}</div>",
        status=t.status,
        alerting=" alerting" if t.alert else "",
        alert=alert,
        agent=clip(t.agent, AGENT_ATTR_MAX, keep_end=True, one_line=False),
        asof=asof,
        age_s="" if t.age_s is None else int(t.age_s),
        age=format_span(t.age_s) if t.age_s is not None else "never",
        name=t.name,
        href=agent_href(t.agent),
        cycles=t.cycles,
        win=format_span(cfg.window_s),
        err_cls=" bad" if t.error_rate is not None and t.error_rate >= cfg.err else "",
        rate=format_rate(t.error_rate),
        p95=fmt_ms(t.p95_ms, empty=DASH),
        spark=Safe(sparkline_svg(t.spark_n, t.spark_err)),  # numbers only, built here
    )


def totals_html(tot: Totals, cfg: WallConfig) -> tuple[Safe, Safe]:
    """(agent counts by status, network numbers over the window) for the header's two rows."""
    chips = join(
        h(
            '<span class="wall-count" data-status="{s}" style="color:{color}">{n:,} {s}</span>',
            s=s,
            color=COLORS[s],
            n=tot.by_status[s],
        )
        for s in ("healthy", "degraded", "stale", "down")
        if tot.by_status[s] or s == "healthy"
    )
    counts = h(
        '<div class="wall-totals"><span data-k="agents"><b>{n:,}</b> agents</span>{chips}</div>',
        n=tot.agents,
        chips=chips,
    )
    net = h(
        '<div class="wall-net"><span class="k scope">{scope}, last {win}:</span>'
        '<span data-k="cycles"><span class="k">cycles/{win}</span><b>{cycles:,}</b></span>'
        '<span data-k="error_rate"><span class="k">error rate</span><b>{rate}</b></span>'
        '<span data-k="p95"><span class="k">p95</span><b>{p95}</b></span></div>',
        scope=tot.scope,
        win=format_span(cfg.window_s),
        cycles=tot.cycles,
        rate=format_rate(tot.error_rate),
        p95=fmt_ms(tot.p95_ms, empty=DASH),
    )
    return counts, net


def alerts_html(a: FiringSummary) -> Safe:
    """The firing alerts' banner: the count and the worst (every value escaped)."""
    who = f" · {short_did(a.key)}" if a.key else ""
    return h(
        '<span class="wall-alerts" role="alert" data-count="{n}" data-severity="{sev}">'
        "{text}</span>",
        n=a.count,
        sev=a.severity,
        text=f"{a.count} alert{'s' if a.count != 1 else ''} firing · {a.title}{who}",
    )


def dead_after(cfg: WallConfig) -> int:
    """Seconds without a re-render after which the browser itself marks the screen stopped."""
    return max(3 * cfg.refresh_s, cfg.refresh_s + 20)


def wall_css(now: datetime, cfg: WallConfig) -> Safe:
    """The wall's stylesheet and this render's "screen stopped" animation (numbers only)."""
    token = f"w{int(now.timestamp() * 1000) % 10**10}"  # a new animation on every render
    dead = dead_after(cfg)
    return Safe(
        f"<style>{WALL_CSS}"
        f"@keyframes {token}-v {{ from {{ visibility: hidden; }} to {{ visibility: visible; }} }}"
        f"@keyframes {token}-g {{ from {{ filter: none; }} to {{ filter: grayscale(1) "
        f"brightness(0.45); }} }}"
        f".wall-dead {{ animation: {token}-v 0.1s linear {dead}s forwards; }}"
        f".wall-grid:not(.asof) {{ animation: {token}-g 0.1s linear {dead}s forwards; }}"
        "</style>"
    )


def wall_html(
    tiles: Sequence[Tile],
    totals: Totals | None,
    health: Health,
    cfg: WallConfig,
    *,
    now: datetime,
    notices: Sequence[str] = (),
    source: str = "",
    alerts: FiringSummary | None = None,
    evaluator: EvaluatorHealth | None = None,
) -> Safe:
    """The whole wall as one HTML block (with its own CSS); every value escaped. At most as
    many tiles as fit the screen, the worst first, and a "+K more (x down, y degraded)" line for
    the rest."""
    tiles, overflow = fit(tiles)
    cols, rows = grid_shape(len(tiles))
    updated = format_clock(now, cfg.zone, seconds=True)
    clock = h(
        '<div class="wall-clock" data-updated="{iso}">updated <b>{updated}</b> {tz}</div>',
        iso=now.isoformat(),
        updated=updated,
        tz=cfg.tz,
    )
    if totals:
        counts, net = totals_html(totals, cfg)
    else:
        counts, net = Safe('<div class="wall-totals"></div>'), Safe("")
    if alerts:  # beside the network numbers, where the row has room: the counts keep theirs
        net = h('<div class="wall-row2">{net}{alerts}</div>', net=net, alerts=alerts_html(alerts))
    head = [
        h(
            '<div class="wall-top"><div class="wall-title">AGENTS</div>{counts}{clock}</div>',
            counts=counts,
            clock=clock,
        ),
        net,
    ]
    if overflow is not None:
        head.append(
            h(
                '<div class="wall-more" data-k="more" data-hidden="{n}">{text} · the worst are '
                "shown</div>",
                n=overflow.hidden,
                text=overflow.text(),
            )
        )
    if health.banner:
        head.append(
            h(
                '<div class="wall-banner {level}" role="alert">{banner}</div>',
                level=health.level,
                banner=health.banner,
            )
        )
    if tiles:
        body = h(
            '<div class="{cls}">{tiles}</div>',
            cls="wall-grid" if health.current else "wall-grid asof",
            tiles=join(tile_html(t, cfg, health) for t in tiles),
        )
    else:
        msg = "No agents to show yet." if health.at else "No data yet."
        if cfg.agents:
            msg = "None of the listed agents has been seen."
        body = h('<div class="wall-grid"><div class="wall-empty">{}</div></div>', msg)
    settings = (
        f"window {format_span(cfg.window_s)} · degraded ≥ {cfg.err:.0%} errors · stale "
        f"{format_span(cfg.stale_s)} · down {format_span(cfg.down_s)}"
    )
    notice = (
        h('<span class="notice" role="note">{}</span>', " · ".join(notices))
        if notices
        else Safe("")
    )
    evaluated = (
        h(
            '<span class="wall-eval {level}" data-level="{level}" data-k="alerts-evaluated">'
            "{text}</span>",
            level=evaluator.level,
            text=evaluator.text,
        )
        if evaluator
        else Safe("")
    )
    foot = h(
        '<div class="wall-foot"><span>{settings} · {source}</span>{notice}{evaluated}</div>',
        settings=settings,
        source=source,
        evaluated=evaluated,
        notice=notice,
    )
    dead_msg = h(
        '<div class="wall-dead" role="alert">No update since {} — '
        "this screen has lost its server. Reconnecting…</div>",
        updated,
    )
    return h(
        '{css}<div class="wall" style="--cols:{cols};--rows:{rows}" data-tiles="{n}">'
        '<div class="wall-head">{head}</div>{body}{foot}{dead}</div>',
        css=wall_css(now, cfg),
        cols=cols,
        rows=rows,
        n=len(tiles),
        head=join(head),
        body=body,
        foot=foot,
        dead=dead_msg,
    )


# -- Streamlit -------------------------------------------------------------------------------


def _stats_from_frame(df) -> list[AgentStats]:
    out = []
    for r in df.itertuples(index=False):
        out.append(
            AgentStats(
                agent=str(r.agent),
                last_ts=as_utc(r.last_ts),
                cycles=int(r.cycles),
                error_cycles=int(r.error_cycles),
                errors=int(r.errors),
                p95_ms=None if missing(r.p95_ms) else float(r.p95_ms),
                spark_n=tuple(int(x) for x in r.spark_n),
                spark_err=tuple(int(x) for x in r.spark_err),
            )
        )
    return out


def _names(dids: Sequence[str]) -> dict[str, str]:
    """Friendly names from agents.toml (unique labels), through the app's one helper."""
    return agent_labels(dids, load_names(agents_file()))


def load(
    cfg: WallConfig, at: datetime, alerting: Mapping[str, str] | None = None
) -> tuple[list[Tile], Totals, list[str], dict[str, str]]:
    """Tiles and totals judged at ``at`` (through the per-generation query cache); ``alerting``
    marks the agents with an alert firing."""
    from o11y_data.query import queries as q
    from o11y_data.query.queries import Filters
    from ui.data import cached

    start, end = window_bounds(at, cfg)
    seen_for = timedelta(seconds=max(cfg.horizon_s, cfg.window_s))
    df = cached(q.wall_agents, Filters(start, end), seen_for=seen_for, buckets=SPARK_BUCKETS)
    stats = _stats_from_frame(df)
    names = _names([s.agent for s in stats])
    chosen, missing = select(stats, cfg.agents, names)
    tiles = build_tiles(chosen, at, cfg, names, alerting)
    dids = tuple(sorted(t.agent for t in tiles))
    p95 = None
    if dids and any(t.cycles for t in tiles):
        p95 = cached(q.totals, Filters(start, end, agents=dids)).p95_ms
    return tiles, network_totals(tiles, p95, selected=bool(cfg.agents)), missing, names


def current_config(
    params: Mapping[str, object], defaults: Mapping[str, str]
) -> tuple[WallConfig, list[str]]:
    """Config defaults (``O11Y_WALL_*``, ``Settings.wall_defaults``), then the URL on top."""
    base, notices = config_defaults(defaults)
    cfg, more = parse_config(params, base)
    return cfg, notices + more


def _freshness(db) -> dict:
    """``queries.freshness`` merged with this process's syncer (:func:`ui.data.with_sync_state`)."""
    from o11y_data.query.queries import freshness
    from ui.data import get_syncer, with_sync_state

    fresh = dict(freshness(db))
    try:
        state = get_syncer().state
    except Exception:  # no syncer (bad settings): the store's status is all there is
        return fresh
    return with_sync_state(fresh, state) or fresh


def render(cfg: WallConfig, notices: Sequence[str] = (), *, now: datetime | None = None) -> None:
    """One refresh of the wall: read freshness, judge, load, draw. Never raises."""
    import streamlit as st

    from o11y_data import O11yError
    from ui.data import get_db, get_settings

    now = now or datetime.now(UTC)
    tiles: list[Tile] = []
    totals: Totals | None = None
    notes = list(notices)
    source = ""
    state, firing, evaluator = AlertState(), None, None
    try:
        state = read_state(get_settings().store_dir)
        firing = firing_summary(state, now.timestamp())
        evaluator = evaluator_health(state, now.timestamp(), get_settings().sync_interval_s)
    except Exception:  # the alerts are extra: never let them break the wall
        log.exception("wall: cannot read the alert state")
    try:
        settings = get_settings()
        source = settings.source_label
        # Never call data stale just because syncs are slow by design: allow two intervals.
        floor = int(2 * settings.sync_interval_s + 30)
        judged = replace(cfg, fresh_s=max(cfg.fresh_s, floor))
        health = assess(_freshness(get_db()), now, judged)
        if health.at is not None:
            tiles, totals, missing, _ = load(cfg, health.at, firing_by_agent(state))
            if missing:
                notes.append("no agent matches " + ", ".join(m[:24] for m in missing[:3]))
    except O11yError as exc:
        health = Health(False, None, "red", f"Cannot read the data: {exc.one_line()}")
    except Exception as exc:  # a wall must keep running: say so, log it, try again next refresh
        log.exception("wall render failed")
        health = Health(False, None, "red", f"The wall hit an error: {type(exc).__name__}")
    html = wall_html(
        tiles,
        totals,
        health,
        cfg,
        now=now,
        notices=notes,
        source=source,
        alerts=firing,
        evaluator=evaluator,
    )
    st.markdown(html, unsafe_allow_html=True)


def page() -> None:
    """The /wall page: kiosk CSS, the background syncer, and the self-refreshing wall."""
    import streamlit as st

    from o11y_data import O11yError
    from ui.data import get_settings, get_syncer

    params = {k: st.query_params.get_all(k) for k in st.query_params}
    try:
        defaults = dict(get_settings().wall_defaults)
    except O11yError:  # bad settings: the wall says so through freshness; the URL still applies
        defaults = {}
    cfg, notices = current_config(params, defaults)
    st.markdown(KIOSK_CSS, unsafe_allow_html=True)
    try:
        get_syncer()  # keeps the cache current while the wall is open
    except Exception as exc:  # e.g. bad settings: the wall says so through freshness
        notices = [*notices, f"sync not started: {type(exc).__name__}"]

    @st.fragment(run_every=timedelta(seconds=cfg.refresh_s))
    def live() -> None:
        render(cfg, notices)

    live()
