"""What every page shares: the filter context, the freshness bar, data loading and small helpers.

``app.py`` calls :func:`setup` before ``pg.run()``; pages read :func:`ctx` and load data through
:func:`load`, which goes through the per-generation result cache and turns any failure into one
line on screen (never a traceback).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from o11y_data import O11yError, Settings, routes
from o11y_data.background import BackgroundSyncer
from o11y_data.query import queries as q
from o11y_data.query.queries import Filters
from ui import chart_events as CE
from ui import data as D
from ui import filters as F
from ui import fmt, refresh, sidebar, tables
from ui import view as V
from ui.agents import agents_file, labels, load_names, picker_label
from ui.safe import escape_figure, md_text

CTX_KEY = "_ctx"
REFRESH_S = "_refresh_s"  # this run's refresh interval (None: off)
REFRESH_SAVED = "_refresh_saved"  # the session's last choice, restored after sidebar navigation
K_REFRESH = "f_refresh"
BAR_KEY = "_freshness_bar"
LIVE_RAN = "_live_ran"  # this run's page drew the freshness bar itself (live)
LEVEL_COLOR = {"ok": "green", "amber": "orange", "red": "red"}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ctx:
    state: F.FilterState
    filters: Filters
    now: datetime
    names: dict[str, str]
    labels: dict[str, str]
    settings: Settings

    @property
    def params(self) -> dict[str, str | list[str]]:
        """The filters' URL form, for links that keep them."""
        return F.to_params(self.state)

    @property
    def tz(self) -> str:
        """The IANA zone times are shown in (``UTC`` unless the user picked one)."""
        return self.state.tz

    def label(self, did: str) -> str:
        return self.labels.get(did) or self.names.get(did) or did

    def agent_links(self, dids: Any) -> list[str]:
        """Each agent's page link (these filters kept), shown as its label in a column of
        :func:`agent_link_column`."""
        links = {d: tables.agent_link(d, self.params, text=self.label(d)) for d in set(dids)}
        return [links[d] for d in dids]

    def local(self, times: Any) -> Any:
        """Times (a column) as naive wall-clock times in :attr:`tz`, for tables."""
        return fmt.local(times, self.tz).to_numpy()

    def ts(self, t: Any) -> str:
        """One time for people, in :attr:`tz`, naming the zone."""
        return fmt.fmt_ts(t, self.tz)


def md_escape(text: str) -> str:
    """Text safe to put inside Streamlit markdown (paths, error messages, DIDs): one line, every
    Markdown character escaped (:func:`ui.safe.md_text`)."""
    return md_text(text)


@st.cache_data(ttl=60, show_spinner=False)
def agent_names() -> dict[str, str]:
    return load_names(agents_file())


def load(fn: D.Screen, *args: Any, what: str = "data", **kwargs: Any) -> Any:
    """``fn(db, *args, **kwargs)`` through the cache (``fn`` a question of
    ``o11y_data.query.queries``, e.g. ``load(q.totals, c.filters)``); a failure shows one line and
    returns None."""
    try:
        return D.cached(fn, *args, **kwargs)
    except O11yError as exc:
        log.info("loading %s failed: %s", what, exc.one_line(), exc_info=exc)
        st.error(f"Could not load {what}: {md_escape(exc.one_line())}", icon=":material/error:")
    except Exception as exc:  # never a traceback on screen; the cause goes to the log
        log.exception("loading %s failed unexpectedly", what)
        st.error(
            f"Could not load {what}: unexpected {type(exc).__name__}: {md_escape(str(exc))[:200]}",
            icon=":material/error:",
        )
    return None


def ensure_first_sync(syncer: BackgroundSyncer, *, quiet: bool = False, timeout: float = 45.0):
    """When the store has never been synced, wait (bounded) for the first sync so there is data."""
    if D.generation() > 0:
        return

    def wait() -> None:
        if not syncer.is_alive():
            syncer.run_once()
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and D.generation() == 0:
            if syncer.state.last_error and not syncer.state.running:
                return
            time.sleep(0.25)

    if quiet:
        wait()
    else:
        with st.spinner("First sync running: fetching events from the source…"):
            wait()


def setup(settings: Settings, syncer: BackgroundSyncer, *, page: str = "") -> Ctx:
    """The sidebar filters and refresh picker, URL notices and the freshness bar; stores the page
    context for :func:`live`. ``page`` is the url_path of the page about to run: the agent page
    words the notice about an unknown agent itself (with the nearest known ones)."""
    st.session_state[HINT_SHOWN] = False
    back_from_explorer()
    follow_chart(in_fragment=False)
    choices = load(q.choices, what="filter choices") or {}
    names = agent_names()
    state = sidebar.read_state(choices, agent_is_subject=page == routes.AGENT.path)
    sidebar.draw(state, choices, names)
    every, refresh_notice = refresh_picker()
    c = Ctx(
        state=state,
        filters=state.to_filters(),
        now=datetime.now(UTC),
        names=names,
        labels=labels(choices.get("agent", []), names),
        settings=settings,
    )
    st.session_state[CTX_KEY] = c
    st.session_state[REFRESH_S] = every
    with st.sidebar:
        st.caption(f"Source: {md_escape(settings.source_label)}")
    notices = [*state.notices, *([refresh_notice] if refresh_notice else [])]
    if page == routes.AGENT.path:
        notices = [n for n in notices if n not in state.agent_notices]
    for notice in notices:  # they quote URL values: hostile text
        st.warning(md_escape(notice), icon=":material/link_off:")
    # The freshness bar's place: live() draws the bar inside the page's refreshing fragment (a
    # fragment writing into a container made outside it breaks the page after navigation), and
    # finish() fills this place for a page that does not use live().
    st.session_state[BAR_KEY] = st.empty()
    st.session_state[LIVE_RAN] = False
    return c


def finish(settings: Settings, syncer: BackgroundSyncer) -> None:
    """After the page ran: the freshness bar in its place, unless :func:`live` drew it."""
    bar = st.session_state.get(BAR_KEY)
    if bar is not None and not st.session_state.get(LIVE_RAN):
        with bar.container():
            freshness_bar(settings, syncer, tz=ctx().tz)


def _set_refresh(choice: str) -> None:
    param = refresh.to_param(choice)
    if param is None:
        if refresh.KEY in st.query_params:
            del st.query_params[refresh.KEY]
    elif st.query_params.get_all(refresh.KEY) != [param]:
        st.query_params[refresh.KEY] = param
    st.session_state[REFRESH_SAVED] = choice


def _refresh_changed() -> None:
    _set_refresh(st.session_state.get(K_REFRESH) or refresh.DEFAULT)


def refresh_picker() -> tuple[int | None, str | None]:
    """The sidebar's refresh picker, kept in the URL (``refresh=``); (seconds or None, notice).

    A URL without ``refresh`` (sidebar navigation, a link to another page) keeps the session's
    last choice: the interval is how this person watches, not part of a view.
    """
    values = st.query_params.get_all(refresh.KEY)
    saved = st.session_state.get(REFRESH_SAVED)
    if not values and saved:
        values = [saved]
    choice, notice = refresh.parse_refresh(values)
    _set_refresh(choice)
    st.session_state[K_REFRESH] = choice
    st.sidebar.selectbox(
        "Refresh",
        list(refresh.CHOICES),
        key=K_REFRESH,
        format_func=refresh.LABELS.get,
        on_change=_refresh_changed,
        help="How often this page re-reads the data and the freshness bar, in place: no reload, "
        "selections kept.",
    )
    return refresh.seconds(choice), notice


def live(body: Callable[[Ctx], None]) -> None:
    """Run a page's ``body`` with the current context, and re-run it (with the freshness bar) in
    place every refresh interval the user picked: no reload, widgets and selections kept.

    Every page calls this once with its body. Each run gets a new :class:`Ctx`: the relative time
    range moves to now and agents that appeared since are labelled.
    """
    every = st.session_state.get(REFRESH_S)
    st.session_state[LIVE_RAN] = True

    def run() -> None:
        st.session_state[HINT_SHOWN] = False
        follow_chart(in_fragment=True)  # a chart inside this fragment was selected
        c = current_ctx()
        freshness_bar(c.settings, D.get_syncer(), tz=c.tz)
        body(c)

    if not every:
        run()
        return
    st.fragment(run_every=timedelta(seconds=every))(run)()


def current_ctx() -> Ctx:
    """The stored context, moved to now: relative ranges end now, new agents get labels."""
    c = ctx()
    now = datetime.now(UTC)
    choices = load(q.choices, what="filter choices") or {}
    c = replace(
        c,
        filters=c.state.to_filters(now),
        now=now,
        labels=labels(choices.get("agent", []), c.names),
    )
    st.session_state[CTX_KEY] = c
    return c


def ctx() -> Ctx:
    c = st.session_state.get(CTX_KEY)
    if c is None:  # a page run on its own (not through app.py): default filters
        state = F.FilterState()
        c = Ctx(state, state.to_filters(), datetime.now(UTC), {}, {}, D.get_settings())
    return c


def freshness(syncer: BackgroundSyncer | None = None) -> dict[str, Any] | None:
    try:
        return q.freshness(D.get_db())
    except O11yError as exc:
        st.error(f"Could not read freshness: {md_escape(exc.one_line())}")
    return None


def sync_error(fr: dict[str, Any] | None, syncer: BackgroundSyncer) -> str | None:
    if syncer.state.last_error:
        return syncer.state.last_error
    return (fr or {}).get("last_error")


def last_sync_time(fr: dict[str, Any] | None, syncer: BackgroundSyncer) -> datetime | None:
    t = (fr or {}).get("last_sync_at")
    if t is None and syncer.state.last_success:
        t = datetime.fromtimestamp(syncer.state.last_success, UTC)
    return t


def alerts_firing(settings: Settings) -> str | None:
    """ "2 alerts firing · worst: No data landing" (rule titles only: agent names stay out of
    Markdown), or None."""
    from o11y_data.alerts import firing_summary, read_state

    try:
        summary = firing_summary(read_state(settings.store_dir))
    except Exception:  # a hand-damaged state file must not take the freshness bar down
        logging.getLogger(__name__).exception("cannot read the alert state")
        return None
    if summary is None:
        return None
    plural = "alert" if summary.count == 1 else "alerts"
    return f"{summary.count} {plural} firing · worst: {summary.title}"


def freshness_bar(settings: Settings, syncer: BackgroundSyncer, *, tz: str = "UTC") -> None:
    """Newest event and last sync, amber/red past thresholds; the last sync error if any.

    The newest event's clock time is shown in the zone ``tz``."""
    fr = D.with_sync_state(freshness(syncer), syncer.state)
    now = datetime.now(UTC)
    newest = (fr or {}).get("newest_ts")
    a1 = fmt.age_s(newest, now)
    t_sync = last_sync_time(fr, syncer)
    a2 = fmt.age_s(t_sync, now)
    c1 = LEVEL_COLOR[fmt.newest_event_level(a1)]
    err = sync_error(fr, syncer)
    c2 = LEVEL_COLOR[fmt.last_sync_level(a2, settings.sync_interval_s, failed=bool(err))]
    newest_txt = (
        f"Newest event {fmt.fmt_age(a1)} ({fmt.fmt_clock(newest, tz)} {md_escape(tz)})"
        if a1 is not None
        else "No events"
    )
    parts = [
        f":{c1}-badge[:material/schedule: {newest_txt}]",
        f":{c2}-badge[:material/sync: Last sync {fmt.fmt_age(a2)}]",
    ]
    if syncer.state.running or (fr or {}).get("syncing"):
        prog = syncer.state.progress
        extra = f" {prog[0]} {prog[1]}/{prog[2]}" if prog else ""
        parts.append(f":blue-badge[:material/progress_activity: Syncing{extra}]")
    parts.append(f":gray-badge[:material/database: {md_escape(settings.source_label)}]")
    firing = alerts_firing(settings)
    if firing:
        parts.append(f":red-badge[:material/notifications_active: {md_escape(firing)}]")
    st.markdown(" ".join(parts))
    if fr is not None and fr.get("generation") in (0, None) and newest is None:
        st.info(
            "First sync running: the data appears here as soon as it finishes.",
            icon=":material/hourglass_top:",
        )
    if err:
        st.error(
            f"Last sync failed; showing cached data. {md_escape(err)}",
            icon=":material/sync_problem:",
        )


def title(text: str, c: Ctx) -> None:
    st.header(text, anchor=False)
    st.caption(md_escape(F.describe(c.state)))


def no_data(what: str = "these filters") -> None:
    st.info(
        f"No data for {what}. Try a wider time range or fewer filters.",
        icon=":material/search_off:",
    )


def chart(fig: go.Figure, *, key: str, controls: bool = True) -> None:
    """A figure, its data-derived strings made inert first (Plotly renders HTML in them).

    A time chart (times on x) is a control unless ``controls`` is False: dragging across it sets
    the page's time range, clicking a bar or point opens the explorer on that bucket, agent and
    mode (:mod:`ui.chart_events`). The first such chart of a page says so in a caption.
    """
    info = CE.chart_info(fig, tz=ctx().tz) if controls else None
    if info is None:
        st.plotly_chart(
            escape_figure(fig),
            width="stretch",
            key=key,
            config={"displaylogo": False, "displayModeBar": False},
        )
        return
    if not st.session_state.get(HINT_SHOWN):
        st.session_state[HINT_SHOWN] = True
        st.caption(CHART_HINT)
    as_control(fig)
    nonce = st.session_state.get(CHART_NONCE, 0)
    st.plotly_chart(
        escape_figure(fig),
        width="stretch",
        key=f"{key}-{nonce}" if nonce else key,
        on_select=partial(_chart_selected, f"{key}-{nonce}" if nonce else key, info),
        selection_mode=("points", "box"),
        config=CONTROL_CONFIG,
    )


# A time chart's tools: select (the default: drag across to pick a span) and pan, which with
# fixed axes moves nothing and leaves clicks to pick a bar or point (Streamlit's chart reports a
# click only outside the select tool). Plotly's own tooltips are renamed to say what each does.
CONTROL_CONFIG: dict[str, Any] = {
    "displaylogo": False,
    "displayModeBar": True,
    "modeBarButtons": [["select2d", "pan2d"]],
    "locales": {
        name: {
            "dictionary": {
                "Box Select": "Drag across the chart: set the page's time range",
                "Pan": "Click a bar or point: open its cycles in the explorer",
            }
        }
        for name in ("en", "en-US")
    },
}
CHART_HINT = (
    "Charts are controls: drag across a time chart to set the page's time range (the browser's "
    "Back button undoes it). To open a bar's or point's cycles in the explorer, pick the "
    ":material/open_with: tool at the chart's top right, then click the bar or point."
)
HINT_SHOWN = "_chart_hint_shown"  # this run drew the hint already
CHART_ACTION = "_chart_action"  # what the last chart selection asked for, until done
CHART_NONCE = "_chart_nonce"  # bumped after each action: charts come back unselected
EXPLORED = "_chart_explored"  # the last click that opened the explorer (for Back)


def as_control(fig: go.Figure) -> None:
    """Drag selects a span along x; axes stay put (clicks pick points in the pan tool); lines
    get invisible markers so a click lands on their points."""
    fig.update_layout(dragmode="select", selectdirection="h")
    fig.update_xaxes(fixedrange=True)
    fig.update_yaxes(fixedrange=True)
    for trace in fig.data:
        if trace.type in ("scatter", "scattergl") and trace.mode == "lines" and trace.meta:
            trace.mode = "lines+markers"
            trace.marker.size = 6
            trace.marker.opacity = 0


def _chart_selected(key: str, info: CE.ChartInfo) -> None:
    """A chart's selection changed (a callback, before the run): remember what it asks for."""
    try:
        event = st.session_state.get(key) or {}
        selection = event.get("selection") if isinstance(event, Mapping) else None
        action = CE.interpret(selection or {}, info, ctx().state)
    except Exception:  # browser values: one line on screen, never a traceback
        log.exception("cannot read the selection of chart %s", key)
        action = CE.Notice("Ignored a chart selection that could not be read.")
    if action is not None:
        st.session_state[CHART_ACTION] = action


@dataclass(frozen=True)
class Explored:
    """A click opened the explorer from ``page`` whose URL held ``came_from``."""

    page: str
    came_from: dict[str, list[str]]
    went_to: dict[str, list[str]]  # the explorer's filters


def back_from_explorer() -> None:
    """Streamlit's page switch leaves a history entry between the page and the explorer: the
    page with the explorer's filters. When Back lands there, the page's own URL is put back
    (during Back a URL change replaces the entry), so one Back returns to the chart clicked."""
    went = st.session_state.get(EXPLORED)
    if not isinstance(went, Explored) or not sidebar.history_navigation():
        return
    if sidebar.page_hash() == went.page and sidebar.url_filters() == went.went_to:
        st.session_state.pop(EXPLORED, None)
        st.query_params.from_dict(went.came_from)


def follow_chart(*, in_fragment: bool) -> None:
    """Do what the last chart selection asked for: a new range goes to the URL in one step (one
    browser history entry, so Back returns), a click opens the explorer, a notice is shown."""
    action = st.session_state.pop(CHART_ACTION, None)
    if action is None:
        return
    st.session_state[CHART_NONCE] = st.session_state.get(CHART_NONCE, 0) + 1
    if isinstance(action, CE.Notice):
        st.warning(md_escape(action.text), icon=":material/touch_app:")
    elif isinstance(action, CE.Explore):
        # The refresh choice goes along: set apart, it would be a second step in the history.
        kept = {k: st.query_params.get_all(k) for k in st.query_params if k == refresh.KEY}
        target = {**kept, **F.to_params(action.state)}
        st.session_state[EXPLORED] = Explored(
            page=sidebar.page_hash(),
            came_from={k: st.query_params.get_all(k) for k in st.query_params},
            went_to=sidebar.url_filters_of(target),
        )
        st.switch_page(routes.EXPLORER.script, query_params=target)
    elif isinstance(action, CE.SetRange):
        qp = st.query_params
        kept = {k: qp.get_all(k) for k in qp if k not in F.KEYS}
        qp.from_dict({**kept, **F.to_params(action.state)})
        if in_fragment:  # the sidebar and the rest of the page follow the new URL
            st.rerun(scope="app")


def bucket_s(c: Ctx, *, points: int = 200) -> int:
    """The time bucket for the filters' range (about 100-300 points; fewer for busy charts)."""
    start, end = window(c)
    if start is None or end is None:
        return 60
    return q.pick_bucket(start, end, points=points)


def window(c: Ctx) -> tuple[datetime | None, datetime | None]:
    """The filters' time range; an open end (``all``) is the data's own first/last time."""
    start, end = c.filters.start, c.filters.end
    if start is None or end is None:
        rng = load(q.time_range, c.filters, what="time range") or (None, None)
        start, end = start or rng[0], end or rng[1]
    return start, end


# -- view choices in the URL (top, split, dot) -----------------------------------------------


def _write_param(param: str, widget_key: str, default: str) -> None:
    """A view widget's callback: its value into ``?param=`` (left out when it is the default)."""
    value = st.session_state.get(widget_key)
    text = "" if value is None else str(value)
    if text and text != default:
        st.query_params[param] = text
    elif param in st.query_params:
        del st.query_params[param]


def url_choice(param: str, choice: V.Choice) -> object:
    """The parsed value of ``?param=``; a value that was dropped says so and leaves the URL."""
    if choice.notice:
        st.warning(md_escape(choice.notice), icon=":material/link_off:")
        if param in st.query_params:
            del st.query_params[param]
    return choice.value


def top_picker(*, key: str = "v_top", help_: str | None = None) -> int:
    """How many agents the charts name (``?top=``, default 10); the rest are "others"."""
    n = int(url_choice("top", V.parse_top(st.query_params.get("top"))))  # type: ignore[arg-type]
    st.session_state[key] = n
    st.selectbox(
        "Agents named in charts",
        sorted({*V.TOP_CHOICES, n}),
        key=key,
        on_change=_write_param,
        args=("top", key, str(V.TOP_DEFAULT)),
        format_func=lambda v: f"top {v}",
        help=help_
        or "The busiest agents get their own series; every other agent is summed into "
        "“others”, and events without an agent are “unknown (no agent)”, apart.",
    )
    return n


def split_picker(*, key: str = "v_split") -> str:
    """What a breakdown splits by (``?split=mode|agent``)."""
    raw = st.query_params.get("split")
    value = str(url_choice("split", V.parse_option(raw, V.SPLITS, key="split", default="mode")))
    st.session_state[key] = value
    st.segmented_control(
        "Split by",
        list(V.SPLITS),
        key=key,
        required=True,
        on_change=_write_param,
        args=("split", key, "mode"),
    )
    return str(st.session_state.get(key) or value)


def agent_picker(
    c: Ctx, agents: list[str], *, param: str = "dot", key: str = "v_dot", label: str
) -> str | None:
    """One agent from ``agents`` (searchable; ``?param=`` holds it exactly, URL-encoded)."""
    chosen = url_choice(param, V.parse_agent(st.query_params.get(param), agents, key=param))
    st.session_state[key] = chosen
    st.selectbox(
        label,
        agents,
        key=key,
        index=None,
        placeholder="Type any part of a DID or name",
        format_func=lambda d: picker_label(d, c.names),
        on_change=_write_param,
        args=(param, key, ""),
    )
    return st.session_state.get(key)


def agents_in(df: Any) -> int:
    """How many agents (``unknown`` not among them) a per-agent query's rows stand for."""
    if df is None or df.empty or "group_agents" not in df:
        return 0
    sizes = df[df["kind"] != q.KIND_UNKNOWN].groupby("kind")["group_agents"].first()
    return int(sizes.sum())


def unknown_note(tot: q.Totals | None) -> None:
    """A caption for the cycles of events without an agent: shown apart, not as an agent."""
    n = tot.unknown_cycles if tot else 0
    if n:
        errs = tot.unknown_errors
        st.caption(
            f"unknown (no agent): {fmt.plural(n, 'cycle')}, {fmt.plural(errs, 'error')}, from "
            "events without an agent; counted in the totals, never as an agent."
        )


def agent_link_column(label: str = "Agent", **kwargs: Any) -> Any:
    """A table column of :func:`ui.tables.agent_link` links: each agent's name (friendly name,
    else the whole DID) as a link to its agent page; the name is shown as plain text."""
    return st.column_config.LinkColumn(
        label,
        display_text=tables.AGENT_LINK_TEXT,
        help=kwargs.pop("help", "Opens the agent's page (its name from agents.toml, else DID)"),
        **kwargs,
    )
