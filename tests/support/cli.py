"""The CLI as a user runs it: ``python -m o11y_data`` in its own process, from the repository."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli(env: dict[str, str], *args: str, text: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m o11y_data *args`` with only ``env`` (plus PATH and HOME) set; with
    ``text=False`` the output's bytes as written (no newline translation: a CR stays a CR)."""
    full = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), **env}
    return subprocess.run(
        [sys.executable, "-m", "o11y_data", *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=text,
        timeout=120,
    )
