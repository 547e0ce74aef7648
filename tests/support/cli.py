"""The CLI as a user runs it: ``python -m o11y_data`` in its own process, from the repository."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


# The time a test's SQL query may take. The sandbox's child runs at nice 10, so behind busy
# processes even a trivial query can outlast the product's 10 s default: a test that is not about
# the time limit gives its queries this instead (one that is names its own with --timeout).
ROOMY_SQL_TIMEOUT_S = 240.0


def cli(env: dict[str, str], *args: str, text: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m o11y_data *args`` with only ``env`` (plus PATH and HOME) set; with
    ``text=False`` the output's bytes as written (no newline translation: a CR stays a CR).
    ``sql`` gets ROOMY_SQL_TIMEOUT_S unless ``args`` name a ``--timeout``."""
    if args and args[0] == "sql" and "--timeout" not in args:
        args = (*args, "--timeout", f"{ROOMY_SQL_TIMEOUT_S:g}")
    full = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), **env}
    return subprocess.run(
        [sys.executable, "-m", "o11y_data", *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=text,
        timeout=120,
    )
