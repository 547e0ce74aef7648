"""The "≈" mark: shown exactly where a percentile is approximate (a window over 7 days read from
rollups, docs/events.md), never on exact values. Through AppTest on a 130-day dataset (long enough
for the health page's lag chart to use whole-day buckets)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from streamlit.testing.v1 import AppTest

from tests.support.apptest import app_under_test
from tests.test_app_pages import APP

A, B = "did:cf:alphaalphaalphaalpha01", "did:cf:bravobravobravobravo02"


def cycles_dataset(root: Path, *, days: int) -> dict[str, str]:
    """A synced store of two agents with a cycle every 3 hours each for ``days`` days up to now;
    the app's environment for it."""
    from o11y_data import load_settings, sync

    now = datetime.now(UTC)
    rows = []
    for i in range(days * 8):
        ts = now - timedelta(hours=3 * i, minutes=7)
        for n, agent in enumerate((A, B)):
            body = {
                "event_type": "agent.cycle",
                "agent": agent,
                "mode": ["think", "reflection"][(i + n) % 2],
                "durationMs": 1000 + (i * 7919 + n * 104729) % 90_000,
                "toolCalls": i % 5,
                "errors": 1 if i % 11 == 0 else 0,
                "_ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            }
            rows.append((ts + timedelta(seconds=3), json.dumps(body)))
    src = root / "src" / "data"
    src.mkdir(parents=True)
    rows.sort()
    pq.write_table(
        pa.table(
            {
                "__ingest_ts": pa.array([r[0] for r in rows], pa.timestamp("us", tz="UTC")),
                "value": pa.array([r[1] for r in rows], pa.string()),
            }
        ),
        src / "part-000.parquet",
    )
    env = {
        "O11Y_SOURCE_DIR": str(root / "src"),
        "O11Y_CACHE_DIR": str(root / "cache"),
        "O11Y_BACKGROUND_SYNC": "0",
        "O11Y_AGENTS_FILE": str(root / "agents.toml"),
    }
    sync(load_settings(env, secrets_paths=[]))
    return env


@pytest.fixture(scope="module")
def long_dataset(tmp_path_factory: pytest.TempPathFactory):
    env = cycles_dataset(tmp_path_factory.mktemp("approx"), days=130)
    with app_under_test(env):
        yield


def run(page: str, rng: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["range"] = rng
    at.switch_page(f"pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def marked_columns(at: AppTest) -> list[str]:
    return [c for d in at.dataframe for c in d.value.columns if "≈" in str(c)]


# "30d" and "all" over the same 130 days: both approximate (one rule: the window cut to the data)
@pytest.mark.parametrize(
    "rng, approx", [("24h", False), ("7d", False), ("30d", True), ("all", True)]
)
def test_overview_marks_p95_and_agent_percentiles_approximate_only_past_seven_days(
    long_dataset, rng, approx
):
    at = run("overview", rng)
    tiles = {m.label: m.value for m in at.metric}
    for label in ("p95 duration", "p99 duration"):
        assert tiles[label].startswith("≈ ") == approx
    assert marked_columns(at) == (["≈ p50 s", "≈ p95 s", "≈ p99 s"] if approx else [])
    # nothing else is marked: counts, sums and rates are exact at every window
    others = [v for k, v in tiles.items() if k not in ("p95 duration", "p99 duration")]
    assert not [v for v in others if "≈" in v]


@pytest.mark.parametrize("rng, approx", [("24h", False), ("all", True)])
def test_modes_table_marks_percentile_columns_approximate_only_past_seven_days(
    long_dataset, rng, approx
):
    at = run("modes", rng)
    assert marked_columns(at) == (["≈ p50 s", "≈ p95 s", "≈ p99 s"] if approx else [])


@pytest.mark.parametrize("rng, approx", [("24h", False), ("all", True)])
def test_health_marks_ingest_lag_percentiles_approximate_only_past_seven_days(
    long_dataset, rng, approx
):
    at = run("health", rng)
    lag = [c.value for c in at.caption if "ingest_ts − ts" in c.value]
    assert len(lag) == 1 and lag[0].startswith("≈ ") == approx
