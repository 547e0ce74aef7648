"""Reusable test infrastructure: a real moto S3 server (`s3server`), a fault-injecting
HTTP proxy (`proxy`), a headless Chromium via Playwright (`browser`) and a Streamlit
launcher (`app_server`).

`tests/conftest.py` exposes the fixtures. This module holds the small process/network
helpers the submodules share.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is currently free on `host` (racy, but good enough)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def venv_executable(name: str) -> Path | None:
    """Find a console script installed next to the running interpreter."""
    candidate = Path(sys.executable).parent / name
    return candidate if candidate.exists() else None


def tail(path: Path, max_chars: int = 4000) -> str:
    """The last `max_chars` characters of a (log) file, or "" if unreadable."""
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-max_chars:].decode("utf-8", errors="replace")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate `proc` (and its own process group, if it leads one), then kill it."""
    if proc.poll() is not None:
        return
    own_group = _leads_group(proc)
    _signal(proc, signal.SIGTERM, own_group)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal(proc, signal.SIGKILL, own_group)
        proc.wait(timeout=timeout)


def _leads_group(proc: subprocess.Popen[bytes]) -> bool:
    try:
        return os.getpgid(proc.pid) == proc.pid
    except ProcessLookupError:
        return False


def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals, own_group: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        if own_group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
