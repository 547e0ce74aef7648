"""``status`` names the files set aside and shows ages in days and hours correctly."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.tables import event, plain_parquet, rows

ROOT = Path(__file__).resolve().parents[1]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), **env}
    return subprocess.run(
        [sys.executable, "-m", "o11y_data", *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_status_lists_set_aside_files_and_states_ages_in_days_and_hours(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    old = datetime.now(UTC) - timedelta(days=2, hours=3, minutes=10)
    (src / "good.parquet").write_bytes(plain_parquet(rows([event(ts=old)], start=old)))
    (src / "junk.parquet").write_bytes(b"PAR1 junk PAR1")
    env = {"O11Y_SOURCE_DIR": str(src), "O11Y_CACHE_DIR": str(tmp_path / "c")}
    assert cli(env, "sync").returncode == 0
    r = cli(env, "status")
    assert r.returncode == 0, r.stderr
    lines = {line.split("  ", 1)[0]: line for line in r.stdout.splitlines()}
    assert "junk.parquet: not a readable Parquet file" in lines["set aside"]
    assert "tried again from 20" in lines["set aside"]
    assert lines["newest event"].endswith("(2d 3h ago)"), lines["newest event"]
