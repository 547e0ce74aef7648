"""The shared filters in the sidebar, kept in the URL (``st.query_params``).

Every run: the URL is parsed (:func:`ui.filters.parse_params`), unusable values are dropped with a
notice and the URL is rewritten to its canonical form; the widgets are set from the parsed state;
a widget change writes the URL in its callback, so the next run reads the new state from the URL.
Sidebar navigation between pages drops query parameters, so the session remembers the last URL
form and puts it back when a page opens with no filter parameters at all (not when the browser's
Back or Forward button opened it: that URL is the view wanted).

The time zone (``tz``) only changes how times are shown and how the custom range inputs are read:
the inputs hold wall-clock times in the zone, and the state keeps UTC-aware datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from ui import filters as F
from ui.agents import picker_label

K_RANGE, K_START, K_END = "f_range", "f_start", "f_end"
K_AGENTS, K_MODES, K_TYPES, K_ERRORS = "f_agents", "f_modes", "f_types", "f_errors"
K_TZ = "f_tz"
INPUT_TZ = "_f_input_tz"  # the zone the custom range inputs were last drawn in
SAVED = "_filter_params"
# Whether this page's ``agent`` parameter names the page's subject (the agent page), not the
# shared agents filter: it is then left out of the form restored on other pages.
SUBJECT_PAGE = "_f_agent_is_subject"


def _url() -> dict[str, list[str]]:
    qp = st.query_params
    return {k: qp.get_all(k) for k in qp}


def _norm(params: dict[str, object]) -> dict[str, list[str]]:
    return {
        k: ([v] if isinstance(v, str) else list(v))  # type: ignore[arg-type]
        for k, v in params.items()
        if k in F.KEYS
    }


def write_url(state: F.FilterState) -> None:
    """Put ``state`` into the URL (filter keys only; other parameters stay) and remember it.

    The URL changes in one step: each change is an entry in the browser's history, so Back
    returns to the view before, never to a half-written one."""
    new = F.to_params(state)
    current = {k: st.query_params.get_all(k) for k in st.query_params}
    wanted = {k: v for k, v in current.items() if k not in F.KEYS or k in new}
    wanted.update(_norm(dict(new)))
    if wanted != current:
        st.query_params.from_dict(wanted)
    st.session_state[SAVED] = _shared(new)


def _shared(params: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
    """The URL form other pages restore: on the agent page, its ``agent`` is the page's subject,
    so the agents filter the session had before opening it is kept instead."""
    if not st.session_state.get(SUBJECT_PAGE):
        return params
    out = {k: v for k, v in params.items() if k != "agent"}
    before = (st.session_state.get(SAVED) or {}).get("agent")
    if before:
        out["agent"] = before
    return out


def _naive(t: datetime | None, zone: tzinfo = UTC) -> datetime | None:
    """A UTC-aware time as the wall-clock time in ``zone``, for a datetime input."""
    return None if t is None else t.astimezone(zone).replace(tzinfo=None)


def _aware(t: object, zone: tzinfo = UTC) -> datetime | None:
    """A datetime input's wall-clock time in ``zone`` as a UTC-aware time."""
    if not isinstance(t, datetime):
        return None
    return (t.replace(tzinfo=zone) if t.tzinfo is None else t).astimezone(UTC)


def _from_widgets() -> F.FilterState:
    ss = st.session_state
    rng = ss.get(K_RANGE) or F.DEFAULT_RANGE
    tz = F.parse_zone(ss.get(K_TZ) or "") or F.DEFAULT_TZ
    # The inputs show times in the zone they were drawn in (changing the zone keeps the range).
    input_zone = F.zone(F.parse_zone(ss.get(INPUT_TZ) or "") or F.DEFAULT_TZ)
    start = end = None
    if rng == "custom":
        start, end = _aware(ss.get(K_START), input_zone), _aware(ss.get(K_END), input_zone)
        if start is None or end is None:
            end = F.ceil_minute(datetime.now(UTC))
            start = end - timedelta(hours=24)
    return F.FilterState(
        range=rng,
        start=start,
        end=end,
        agents=tuple(ss.get(K_AGENTS) or ()),
        modes=tuple(ss.get(K_MODES) or ()),
        event_types=tuple(ss.get(K_TYPES) or ()),
        errors_only=bool(ss.get(K_ERRORS)),
        tz=tz,
    )


def _changed() -> None:
    write_url(_from_widgets())


def _reset() -> None:
    write_url(F.FilterState())


def url_filters() -> dict[str, list[str]]:
    """The filter parameters of the URL, each as a list of values."""
    return _norm(_url())


def url_filters_of(params: dict[str, str | list[str]]) -> dict[str, list[str]]:
    """``params``' filter parameters as :func:`url_filters` gives them."""
    return _norm(dict(params))


def page_hash() -> str:
    """Which page this run shows (Streamlit's id of the page script)."""
    ctx = get_script_run_ctx()
    return str(getattr(ctx, "page_script_hash", "") or "")


def history_navigation() -> bool:
    """Whether this run is the browser's Back or Forward: the URL it returns to is the view
    asked for, even without filter parameters (the defaults), so nothing is restored."""
    ctx = get_script_run_ctx()
    return bool(getattr(ctx, "is_history_navigation", False))


def read_state(choices: dict[str, list[str]], *, agent_is_subject: bool = False) -> F.FilterState:
    """The filters from the URL (restored from this session after sidebar navigation).
    ``agent_is_subject``: the page's ``agent`` names its subject (the agent page); it is not
    remembered as the agents filter of the pages opened next."""
    st.session_state[SUBJECT_PAGE] = agent_is_subject
    params = _norm(_url())
    saved = st.session_state.get(SAVED)
    if not params and saved and not history_navigation():
        params = _norm(saved)
    state = F.parse_params(
        params,
        agents=choices.get("agent") or None,
        modes=choices.get("mode") or None,
        event_types=choices.get("event_type") or None,
    )
    if _norm(F.to_params(state)) != params or (not _url() and saved):
        write_url(state)
    else:
        st.session_state[SAVED] = _shared(F.to_params(state))
    return state


def draw(state: F.FilterState, choices: dict[str, list[str]], names: dict[str, str]) -> None:
    """The filter widgets, set from ``state``; changes go to the URL through callbacks."""
    ss = st.session_state
    ss[K_RANGE] = state.range
    ss[K_AGENTS] = list(state.agents)
    ss[K_MODES] = list(state.modes)
    ss[K_TYPES] = list(state.event_types)
    ss[K_ERRORS] = state.errors_only
    ss[K_TZ] = state.tz
    ss[INPUT_TZ] = state.tz
    tz = state.tz
    sb = st.sidebar
    sb.markdown("**Filters**")
    sb.selectbox(
        f"Time range ({tz})",
        F.RANGES,
        key=K_RANGE,
        format_func=lambda r: f"Custom ({tz})" if r == "custom" else F.PRESET_LABELS.get(r, r),
        on_change=_changed,
    )
    if state.range == "custom":
        ss[K_START] = _naive(state.start, state.zone)
        ss[K_END] = _naive(state.end, state.zone)
        sb.datetime_input(
            f"From ({tz})", key=K_START, on_change=_changed, format="YYYY-MM-DD", step=300
        )
        sb.datetime_input(
            f"To ({tz}, exclusive)", key=K_END, on_change=_changed, format="YYYY-MM-DD", step=300
        )
    zones = F.timezone_choices()
    if tz not in zones:
        zones.insert(1, tz)
    sb.selectbox(
        "Time zone",
        zones,
        key=K_TZ,
        on_change=_changed,
        help="Times on every page (charts, tables, freshness) are shown in this zone; type to "
        "search. Filters and buckets are computed in UTC; downloads keep UTC timestamps.",
    )
    agents = sorted(set(choices.get("agent", [])) | set(state.agents))
    sb.multiselect(
        "Agents",
        agents,
        key=K_AGENTS,
        format_func=lambda d: picker_label(d, names),
        on_change=_changed,
        placeholder="All agents",
        help="Type any part of a DID or a name from agents.toml to search.",
    )
    modes = sorted(set(choices.get("mode", [])) | set(state.modes))
    sb.multiselect("Modes", modes, key=K_MODES, on_change=_changed, placeholder="All modes")
    types = sorted(set(choices.get("event_type", [])) | set(state.event_types))
    sb.multiselect(
        "Event types",
        types,
        key=K_TYPES,
        on_change=_changed,
        placeholder="All event types",
        help="Applies to the explorer and event counts; cycle metrics always count "
        "agent.cycle events only.",
    )
    sb.toggle("Errors only", key=K_ERRORS, on_change=_changed, help="Cycles with errors > 0.")
    sb.button(
        "Reset filters",
        on_click=_reset,
        icon=":material/restart_alt:",
        disabled=state.is_default(),
        width="stretch",
    )
