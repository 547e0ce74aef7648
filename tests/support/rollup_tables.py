"""Iceberg tables in a local folder whose events are known in Python: the rollup fixtures.

``long_table`` (twenty days) and ``months_table`` (ten weeks over August-November) are synced by
the real sync; their ``events()`` are the Python truth the rollup tests recompute from.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from o11y_data import load_settings, sync
from o11y_data.ingest.iceberg_write import TableWriter, folder_put, unstructured_table

PREFIX = "__r2_data_catalog/cat0001/tbl0001/"
AGENTS = ["did:cf:a", "did:cf:b", "did:cf:c", "unknown"]  # "unknown": no agent, kept apart
MODES = ["think", "reflection", "housekeeping"]


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class Table:
    """A table in a folder plus the events each live file holds (the Python truth)."""

    def __init__(self, root: Path) -> None:
        self.src = root / "src"
        self.writer = TableWriter(
            put=folder_put(self.src), bucket="agent-blobs", table_prefix=PREFIX
        )
        self.files: dict[str, list[dict]] = {}
        self.settings = load_settings(
            {"O11Y_SOURCE_DIR": str(self.src), "O11Y_CACHE_DIR": str(root / "cache")},
            secrets_paths=[],
        )

    def append(self, *batches: list[dict]) -> list[str]:
        """One snapshot; a batch spanning days becomes a file per day, as the writer splits it
        (in day order), so each key maps to that day's events."""
        keys = self.writer.append([unstructured_table(_rows(b)) for b in batches])
        parts = [day for b in batches for day in _by_day(b)]
        for k, part in zip(keys, parts, strict=True):
            self.files[k] = part
        return keys

    def compact(self, keys: list[str]) -> None:
        merged = [e for k in keys for e in self.files.pop(k)]
        new = self.writer.compact(keys, unstructured_table(_rows(merged)))
        for k, part in zip(new, _by_day(merged), strict=True):
            self.files[k] = part

    def delete(self, key: str) -> None:
        self.writer.commit([], removed=[key], operation="delete")
        del self.files[key]

    def events(self) -> list[dict]:
        return [e for b in self.files.values() for e in b]


def _by_day(batch: list[dict]) -> list[list[dict]]:
    """A batch's events by UTC day of their landing time, in day order (the writer's files)."""
    days: dict[object, list[dict]] = {}
    for e in batch:
        days.setdefault(e["ingest_ts"].date(), []).append(e)
    return [days[d] for d in sorted(days)]


def _rows(batch: list[dict]) -> list[tuple[datetime, str]]:
    out = []
    for e in batch:
        body = {
            "event_type": e["event_type"],
            "agent": e["agent"],
            "mode": e["mode"],
            "durationMs": e["duration_ms"],
            "toolCalls": e["tool_calls"],
            "errors": e["errors"],
            "_ts": _iso(e["ts"]),
        }
        out.append((e["ingest_ts"], json.dumps(body)))
    return out


def make_events(rng: random.Random, start: datetime, hours: float, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        ts = start + timedelta(seconds=rng.uniform(0, hours * 3600))
        ts = ts.replace(microsecond=ts.microsecond // 1000 * 1000)
        cycle = rng.random() < 0.9
        out.append(
            {
                "ts": ts,
                "ingest_ts": ts + timedelta(seconds=rng.uniform(-1, 30)),
                "event_type": "agent.cycle" if cycle else "agent.wake",
                "agent": rng.choice(AGENTS),
                "mode": rng.choice(MODES),
                "duration_ms": rng.choice([None, 0, int(rng.lognormvariate(9, 1.2))]),
                "tool_calls": rng.choice([None, 0, 1, 2, 5]),
                "errors": rng.choice([0, 0, 0, 1, 3, None]),
            }
        )
    return out


def build_long_table(root: Path) -> Table:
    """Twenty days of events (so all-time percentiles are approximate), synced in two steps."""
    rng = random.Random(2)
    t = Table(root)
    start = datetime(2026, 10, 20, 7, 13, tzinfo=UTC)
    t.append(*(make_events(rng, start + timedelta(days=2 * i), 48, 400) for i in range(5)))
    sync(t.settings)
    t.append(*(make_events(rng, start + timedelta(days=10 + 2 * i), 48, 400) for i in range(5)))
    sync(t.settings)
    return t


def build_months_table(root: Path) -> Table:
    """Ten weeks of long-tailed events over August-November (whole months September and
    October), synced in two steps that cross a month boundary."""
    rng = random.Random(3)
    t = Table(root)
    start = datetime(2026, 8, 25, 9, 41, tzinfo=UTC)
    t.append(*(make_events(rng, start + timedelta(days=7 * i), 7 * 24, 700) for i in range(5)))
    sync(t.settings)
    t.append(*(make_events(rng, start + timedelta(days=35 + 7 * i), 7 * 24, 700) for i in range(5)))
    sync(t.settings)
    return t
