"""Launch a Streamlit app as a real server process for end-to-end tests.

    with running_streamlit(REPO / "app.py", {"O11Y_...": "..."}) as url:
        page.goto(url)

`start_streamlit` / `stop_streamlit` are the non-context-manager equivalents.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests.support import free_port, stop_process, tail, venv_executable

HEALTH_PATH = "/_stcore/health"
STARTUP_TIMEOUT = 60.0


def _log_tails(proc: subprocess.Popen[bytes]) -> str:
    logs: tuple[Path, Path] | None = getattr(proc, "o11y_logs", None)
    if logs is None:
        return ""
    stdout, stderr = logs
    return f"--- stderr tail ---\n{tail(stderr)}\n--- stdout tail ---\n{tail(stdout, 2000)}"


def start_streamlit(
    app_path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    timeout: float = STARTUP_TIMEOUT,
) -> tuple[str, subprocess.Popen[bytes]]:
    """Run `streamlit run <app_path>` headless on 127.0.0.1 and wait until it is healthy.

    `env` is added to (and overrides) the current environment. The working directory is
    the app's directory. Returns (base_url, process); stop it with `stop_streamlit`.
    Raises RuntimeError with the server's stderr tail if it exits or is not healthy in time.
    With `port=None` a free port is picked (and re-picked if another process grabs it).
    """
    app = Path(app_path).resolve()
    if not app.is_file():
        raise FileNotFoundError(app)
    attempts = 1 if port else 3
    for attempt in range(1, attempts + 1):
        try:
            return _start_once(app, env or {}, port or free_port(), timeout)
        except _PortInUse:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


class _PortInUse(RuntimeError):
    pass


def _start_once(
    app: Path, env: Mapping[str, str], port: int, timeout: float
) -> tuple[str, subprocess.Popen[bytes]]:
    exe = venv_executable("streamlit")
    base = [str(exe)] if exe else [sys.executable, "-m", "streamlit"]
    cmd = [
        *base,
        "run",
        str(app),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
    ]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    logdir = Path(tempfile.mkdtemp(prefix="streamlit-"))
    stdout_path, stderr_path = logdir / "stdout.log", logdir / "stderr.log"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            cmd,
            cwd=app.parent,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    proc.o11y_logs = (stdout_path, stderr_path)  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}"

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            logs = _log_tails(proc)
            error = _PortInUse if "already in use" in logs else RuntimeError
            shutil.rmtree(logdir, ignore_errors=True)
            raise error(
                f"streamlit exited with code {proc.returncode} during startup "
                f"({' '.join(cmd)})\n{logs}"
            )
        try:
            with urllib.request.urlopen(url + HEALTH_PATH, timeout=2) as resp:
                if resp.status == 200:
                    return url, proc
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() > deadline:
            stop_process(proc)
            logs = _log_tails(proc)
            shutil.rmtree(logdir, ignore_errors=True)
            raise RuntimeError(
                f"streamlit was not healthy at {url}{HEALTH_PATH} within {timeout:.0f}s\n{logs}"
            )
        time.sleep(0.05)  # a health check on loopback costs little


def stop_streamlit(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server started by `start_streamlit` (SIGTERM, then SIGKILL); drop its logs."""
    stop_process(proc, timeout=10)
    logs: tuple[Path, Path] | None = getattr(proc, "o11y_logs", None)
    if logs is not None:
        shutil.rmtree(logs[0].parent, ignore_errors=True)


def streamlit_logs(proc: subprocess.Popen[bytes]) -> str:
    """stderr/stdout tails of a running server from `start_streamlit` (for asserts/debug)."""
    return _log_tails(proc)


@contextlib.contextmanager
def running_streamlit(
    app_path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    timeout: float = STARTUP_TIMEOUT,
) -> Iterator[str]:
    """Context manager around `start_streamlit`: yields the base URL, stops on exit."""
    url, proc = start_streamlit(app_path, env, port=port, timeout=timeout)
    try:
        yield url
    finally:
        stop_streamlit(proc)
