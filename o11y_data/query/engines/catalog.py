"""The table as the catalog names it now, for the engines: snapshot id and delete files.

The REST catalog is the authority when configured (as for the sync); else the newest metadata
file under the table. Manifests are read through the store's manifest cache, so after a sync
this costs the catalog call and the metadata file only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import O11yError
from ...ingest import iceberg
from ...ingest.source import open_source
from ...ingest.store import Store
from .base import TableState

if TYPE_CHECKING:
    from ...config import Settings


def table_state(settings: Settings) -> TableState:
    """The current snapshot's id and delete files (every kind, for the engine to judge)."""
    source = open_source(settings)
    store = Store(settings.store_dir)
    if settings.catalog_uri:
        location = iceberg.catalog_metadata_location(
            settings.catalog_uri,
            warehouse=settings.catalog_warehouse,
            token=settings.catalog_token.get() if settings.catalog_token else None,
        )
        key = iceberg.key_from_uri(location, source.bucket)
    else:
        prefix = settings.table_prefix or store.load_head().table_prefix
        if prefix is None:
            raise O11yError("No table known yet", "sync once, or set O11Y_TABLE_PREFIX")
        if store.load().mode == "files":  # a plain folder of Parquet: every file live, no deletes
            return TableState(None)
        pick = iceberg.newest_metadata(source, prefix)
        if pick is None:
            raise O11yError("No table metadata", f"nothing under {prefix}metadata/")
        key = pick.key
    metadata = iceberg.load_json(source, key)
    store.meta.mkdir(parents=True, exist_ok=True)
    live = iceberg.read_snapshot(source, metadata, iceberg.ManifestCache(store.meta), key=key)
    return TableState(live.snapshot_id, tuple(live.delete_files.values()))
