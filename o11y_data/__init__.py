"""The agent network's event data: sync from R2 into a local cache, query with DuckDB.

Library first: the CLI (``python -m o11y_data``) and the Streamlit app are thin layers over these
functions. This package never imports the UI. Importing it loads DuckDB but not pandas, pyarrow,
boto3 or fastavro (each is imported where it is first needed), so the CLI's ``status`` and
``summary`` start fast; a test checks it.
"""

import logging
from typing import Any

from .config import Settings, load_settings
from .errors import O11yError, SyncBusy
from .ingest import sync as _sync_module
from .ingest.sync import SyncReport
from .query.db import EventsDB
from .query.queries import Filters

# A library logs nowhere until the app or the CLI says where (logs.setup_logging).
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "EventsDB",
    "Filters",
    "O11yError",
    "Settings",
    "SyncBusy",
    "SyncReport",
    "load_settings",
    "open_db",
    "sync",
]


def open_db(settings: Settings) -> EventsDB:
    """The read side for the configured source's cache."""
    return EventsDB(settings.store_dir, query_timeout_s=settings.query_timeout_s)


def sync(settings: Settings, **kwargs: Any) -> SyncReport:
    """Sync the configured source into its cache (``ingest.sync.sync``), with the engine
    O11Y_HISTORY=engine asks for the history before the raw horizon (``history``)."""
    if settings.history == "engine" and kwargs.get("history") is None:
        from .query.route import engine_for

        kwargs["history"] = engine_for(settings)
    return _sync_module.sync(settings, **kwargs)
