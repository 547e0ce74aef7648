"""The SQL console keeps the server's terminal quiet: a query's sandbox child never re-runs the
host's main script (under Streamlit, ``app.py``: the whole app in bare mode, a hundred "missing
ScriptRunContext" warnings per query)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.support.app_server import start_streamlit, stop_streamlit
from tests.support.cli import ROOMY_SQL_TIMEOUT_S, ROOT
from tests.support.st_client import Session

QUERIES = (
    "SELECT mode, count(*) FILTER (WHERE errors > 0) / count(*) AS error_rate, count(*) AS cycles "
    "FROM filtered_cycles GROUP BY mode",
    "SELECT ts, agent, mode, duration_ms FROM filtered_cycles ORDER BY duration_ms DESC LIMIT 20",
    "SELECT date_trunc('hour', ts) AS hour, count(*) AS n FROM cycles GROUP BY 1 ORDER BY 1",
)
NOISE = ("missing ScriptRunContext", "No runtime found", "Session state does not function")


def test_a_sandbox_child_does_not_run_the_hosts_main_script(tmp_path, demo_store):
    marker = tmp_path / "runs.txt"
    host = tmp_path / "host.py"  # a main script with no __name__ guard, as app.py has none
    host.write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path
            with Path({str(marker)!r}).open("a") as fh:
                fh.write("ran\\n")
            from o11y_data import EventsDB
            from o11y_data.query import sandbox
            db = EventsDB(Path({str(demo_store.settings.store_dir)!r}))
            for _ in range(2):
                limits = sandbox.Limits(timeout_s={ROOMY_SQL_TIMEOUT_S})
                sql = "SELECT count(*) AS n FROM cycles"
                assert sandbox.run_sql(db, sql, limits=limits).rows == 1
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(host)], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert marker.read_text().splitlines() == ["ran"]  # once: the host, never its children


@pytest.mark.server
def test_queries_in_a_served_console_leave_no_warnings_in_the_server_log(demo_store):
    url, proc = start_streamlit(ROOT / "app.py", demo_store.env)
    try:

        async def run_all() -> list[str]:
            problems: list[str] = []
            async with Session.connect(url) as session:
                for sql in QUERIES:
                    problems += (await session.run("sql", urlencode({"q": sql}))).problems
            return problems

        # A thread of its own: a browser test before this one in the same worker may have left
        # Playwright's event loop running on this thread.
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(asyncio.run, run_all()).result() == []
        stdout, stderr = (Path(p).read_text() for p in proc.o11y_logs)
    finally:
        stop_streamlit(proc)
    log = stdout + stderr
    counts = {noise: log.count(noise) for noise in NOISE}
    assert counts == dict.fromkeys(NOISE, 0), log[-2000:]
