"""Ingest: from the bucket to the local store.

source, Iceberg reader, normalize and the contract's ranges, store, sync, rollups, demo.
"""
