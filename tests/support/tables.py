"""Tiny real event tables for tests: Iceberg layout through our writer, or bare Parquet."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from o11y_data import Settings, load_settings
from o11y_data.ingest.iceberg_write import TableWriter, parquet_bytes, unstructured_table

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
PREFIX = "__r2_data_catalog/cat0001/tbl0001/"


def event(
    *,
    agent: str = "did:cf:alpha",
    mode: str = "think",
    ms: Any = 1000,
    tools: Any = 1,
    errors: Any = 0,
    ts: datetime | None = T0,
    event_type: str = "agent.cycle",
    **extra: Any,
) -> str:
    body: dict[str, Any] = {
        "event_type": event_type,
        "agent": agent,
        "mode": mode,
        "durationMs": ms,
        "toolCalls": tools,
        "errors": errors,
    }
    if ts is not None:
        body["_ts"] = ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    body.update(extra)
    return json.dumps(body)


def rows(values: list[str], *, start: datetime = T0, lag_s: float = 5.0):
    """(ingest_ts, value) pairs, one second apart."""
    return [(start + timedelta(seconds=i + lag_s), v) for i, v in enumerate(values)]


def s3_put(client: Any, bucket: str) -> Callable[[str, bytes], None]:
    def put(key: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=data)

    return put


def new_table(put: Callable[[str, bytes], None], bucket: str, prefix: str = PREFIX) -> TableWriter:
    return TableWriter(put=put, bucket=bucket, table_prefix=prefix)


def append(writer: TableWriter, *files: list[tuple[datetime, str]]) -> list[str]:
    """Commit one snapshot adding one data file per argument; returns the new keys."""
    return writer.append([unstructured_table(f) for f in files])


def plain_parquet(rows_: list[tuple[datetime, str]]) -> bytes:
    return parquet_bytes(unstructured_table(rows_))


def r2_env(endpoint: str, bucket: str, cache: Path, **extra: str) -> dict[str, str]:
    """The environment of a dashboard reading ``bucket`` at ``endpoint`` (moto or a proxy)."""
    return {
        "O11Y_R2_ENDPOINT": endpoint,
        "O11Y_R2_ACCESS_KEY_ID": "testing",
        "O11Y_R2_SECRET_ACCESS_KEY": "testing-secret-value",
        "O11Y_BUCKET": bucket,
        "O11Y_CACHE_DIR": str(cache),
        **extra,
    }


def r2_settings(endpoint: str, bucket: str, cache: Path, **extra: str) -> Settings:
    return load_settings(r2_env(endpoint, bucket, cache, **extra), secrets_paths=[])


def local_env(src: Path, root: Path, **extra: str) -> dict[str, str]:
    """The environment of a dashboard server reading the local source folder ``src`` (cache and
    an absent agents file under ``root``; any R2 settings of the caller's environment cleared)."""
    return {
        "O11Y_SOURCE_DIR": str(src),
        "O11Y_CACHE_DIR": str(root / "cache"),
        "O11Y_AGENTS_FILE": str(root / "no-agents.toml"),
        "O11Y_R2_ENDPOINT": "",
        "O11Y_R2_ACCOUNT_ID": "",
        **extra,
    }
