"""The SQL sandbox's processes end with the process that started them (issue 18, point 6)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.cli import ROOT
from tests.support.wait import wait_until

# A cross join DuckDB cannot shortcut: minutes of work on one thread.
RUNAWAY = (
    "SELECT count(*) FROM range(200000) a, range(200000) b "
    "WHERE (a.range * 7 + b.range) % 1000003 = 1"
)


def _session_members(sid: int) -> list[tuple[int, str, str]]:
    """(pid, state, command name) of the live (not zombie) processes of session ``sid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        state, session = fields[0], int(fields[3])
        if session == sid and state not in ("Z", "X"):
            found.append((int(entry.name), state, name))
    return found


def test_kill_9_of_cli_sql_leaves_no_sandbox_process_running(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "O11Y_SOURCE_DIR": str(src),
        "O11Y_CACHE_DIR": str(tmp_path / "cache"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "o11y_data", "sql", RUNAWAY, "--timeout", "600"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its forkserver and sandbox children share its session id
    )
    sid = proc.pid
    try:
        # The CLI, its forkserver and the query's child: the query is running.
        wait_until(
            lambda: len([p for p in _session_members(sid) if p[0] != proc.pid]) >= 2,
            limit_s=60,
            what="the sandbox child to start",
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        wait_until(
            lambda: not _session_members(sid),
            limit_s=30,
            what=lambda: f"the sandbox processes to end: {_session_members(sid)}",
        )
    finally:
        for pid, _, _ in _session_members(sid):  # never leave a runaway behind, pass or fail
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
