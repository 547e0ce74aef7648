"""The table as the catalog names it now, for the engines: snapshot id and delete files.

The REST catalog is the authority when configured (as for the sync); else the newest metadata
file under the table. Manifests are read through the store's manifest cache, so after a sync
this costs the catalog call and the metadata file only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...ingest import iceberg
from ...ingest.source import open_source
from ...ingest.store import Store
from ...ingest.sync import resolve_snapshot
from .base import TableState

if TYPE_CHECKING:
    from ...config import Settings


def table_state(settings: Settings) -> TableState:
    """The current snapshot's id and delete files (every kind, for the engine to judge): the
    table and metadata file found as the sync finds them (the REST catalog when configured)."""
    source = open_source(settings)
    store = Store(settings.store_dir)
    target = resolve_snapshot(source, settings, store.load())
    if target.mode != "iceberg" or target.metadata_key is None:
        return TableState(None)  # a plain folder of Parquet: every file live, no deletes
    metadata = iceberg.load_json(source, target.metadata_key)
    store.meta.mkdir(parents=True, exist_ok=True)
    cache = iceberg.ManifestCache(store.meta)
    live = iceberg.read_snapshot(source, metadata, cache, key=target.metadata_key)
    return TableState(live.snapshot_id, tuple(live.delete_files.values()))
