"""The app's handles on the data layer: one settings object, one DB, one background syncer.

``cache_resource`` makes each of these one per server process, shared by every session; queries go
through ``cached`` so results are cached per (function, arguments, store generation) and a new sync
invalidates them at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import streamlit as st

from o11y_data import EventsDB, Settings, load_settings
from o11y_data.alerts import AlertWorker
from o11y_data.background import BackgroundSyncer, SyncState
from o11y_data.logs import setup_logging
from o11y_data.memory import tune_malloc
from o11y_data.query import queries as q
from o11y_data.query.queries import screen_name
from o11y_data.query.route import Router, engine_for
from ui.warm import Warmer


@st.cache_resource(show_spinner=False)
def get_settings() -> Settings:
    """The environment over Streamlit's secrets (section ``[r2]``), through the one loader."""
    try:
        section = {k: str(v) for k, v in st.secrets.get("r2", {}).items()}
        wall = {k: str(v) for k, v in st.secrets.get("wall", {}).items()}
    except Exception:  # no secrets file anywhere: the environment alone
        section, wall = {}, {}
    settings = load_settings(secrets=section, wall_secrets=wall)
    setup_logging(settings)  # root causes to <cache>/o11y.log, secrets redacted
    tune_malloc()  # once per server process, on its first page run (o11y_data/memory.py)
    return settings


@st.cache_resource(show_spinner=False)
def get_db() -> EventsDB:
    settings = get_settings()
    return EventsDB(settings.store_dir, query_timeout_s=settings.query_timeout_s)


@st.cache_resource(show_spinner=False)
def get_router() -> Router:
    """Routes raw questions (the explorer): the local store, or the configured engine before
    the raw horizon; its answers are cached per table snapshot across sessions."""
    return Router(get_db(), engine_for(get_settings()))


@st.cache_resource(show_spinner=False)
def get_syncer() -> BackgroundSyncer:
    """The process's one background syncer, started on first use (never blocks a page)."""
    syncer = BackgroundSyncer(get_settings())
    # Alerts are evaluated after every sync, on their own thread (never blocking the sync).
    syncer.after_sync.append(get_alert_worker().request)
    if get_settings().background_sync:
        syncer.start()
    return syncer


@st.cache_resource(show_spinner=False)
def get_alert_worker() -> AlertWorker:
    settings = get_settings()
    return AlertWorker(
        settings, get_db(), who=f"app pid {os.getpid()}", interval_s=settings.sync_interval_s
    )


def generation() -> int:
    """The published store generation: part of every cache key, so new data shows at once."""
    return get_db().refresh().number


Screen = Callable[..., Any]  # a function of o11y_data.query.queries marked @screen


# Bounded on purpose: the app runs for weeks and every new generation makes older entries dead
# weight; a short TTL drops them and max_entries caps what a burst of distinct filters can hold.
@st.cache_data(ttl=120, show_spinner=False, max_entries=300)
def _cached(name: str, gen: int, args: tuple, kwargs: tuple) -> Any:
    fn: Screen = getattr(q, name)  # keyed by name: a string hashes cheaply and the same always
    return fn(get_db(), *args, **dict(kwargs))


def _compute(fn: Screen, gen: int, args: tuple, kwargs: tuple) -> Any:
    return _cached(screen_name(fn), gen, args, kwargs)


@st.cache_resource(show_spinner=False, on_release=lambda warmer: warmer.stop())
def get_warmer() -> Warmer:
    """The process's one warmer: recomputes recent calls when a new generation is published, so
    the first visit after a sync finds them cached (``ui.warm``)."""
    db = get_db()
    return Warmer(_compute, db.store.current_number).start()


def cached(fn: Screen, *args: Any, **kwargs: Any) -> Any:
    """``fn(db, *args, **kwargs)`` through the result cache, ``fn`` a question of
    ``o11y_data.query.queries`` (e.g. ``cached(q.totals, filters)``).

    Arguments must be hashable primitives or ``Filters`` (a frozen dataclass of primitives).
    """
    name = screen_name(fn)
    kw = tuple(sorted(kwargs.items()))
    get_warmer().note(fn, args, kw)
    return _cached(name, generation(), args, kw)


def with_sync_state(recorded: dict[str, Any] | None, state: SyncState) -> dict[str, Any] | None:
    """The store's recorded freshness (``queries.freshness``; None when it could not be read)
    merged with this process's syncer, for every screen that shows it: a sync that failed before
    it could record its status (e.g. the source vanished before the first sync) still shows its
    error, and a sync that succeeded counts before its status is read back."""
    if recorded is None:
        return None
    fresh = dict(recorded)
    last_ok = fresh.get("last_sync_at")
    newer = last_ok is None or state.last_attempt > last_ok.timestamp()
    if state.last_error and not fresh.get("last_error") and newer:
        fresh["last_error"] = state.last_error
    if last_ok is None and state.last_success:
        fresh["last_sync_at"] = datetime.fromtimestamp(state.last_success, UTC)
    return fresh


def sync_now() -> str:
    """The "sync now" button: wake the background syncer, or run one sync on a thread of its own
    when there is no background syncer (``O11Y_BACKGROUND_SYNC=0``). Returns at once."""
    import threading

    syncer = get_syncer()
    if syncer.is_alive():
        syncer.trigger()
        return "triggered"
    if syncer.state.running:
        return "running"
    threading.Thread(target=syncer.run_once, name="o11y-sync-now", daemon=True).start()
    return "started"
