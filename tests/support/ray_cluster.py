"""A Ray cluster on loopback for the Daft tests: a head and one worker node (one CPU each),
with a temp dir of their own, started by ``ray start --block`` (so each node's processes belong
to a process this fixture holds) and stopped by it: no process of theirs survives the session.

Fixture: ray_cluster (session): the cluster: ``address`` (the head's, ``127.0.0.1:<port>``) and
``env`` (the environment a client of it needs: its token).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ray_env() -> dict[str, str]:
    """Workers import the dashboard's package (o11y_data) from the repo; no usage reports; the
    cluster's own token (Ray 2.60 authenticates by token; a ~/.ray/auth_token is never used)."""
    return {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "PYTHONPATH": str(ROOT),
        "RAY_USAGE_STATS_ENABLED": "0",
        "DO_NOT_TRACK": "1",
        "DAFT_ANALYTICS_ENABLED": "0",
    }


def _ray() -> str:
    return str(Path(sys.executable).parent / "ray")


def _pids_under(marker: str) -> list[int]:
    """Processes whose command line names ``marker`` (our temp dir): ours alone."""
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            cmd = (p / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmd:
            pids.append(int(p.name))
    return pids


def _wait(cond, what: str, timeout: float, *, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"Ray cluster: {what} within {timeout:g} s")
        time.sleep(every)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _nodes_alive(address: str, env: dict[str, str]) -> int:
    out = subprocess.run(
        [_ray(), "status", f"--address={address}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0:
        return 0
    active = out.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0]
    return sum(1 for line in active.splitlines() if "node_" in line)


class RayCluster:
    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="o11yray", dir="/tmp")  # short: socket paths
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = ray_env()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log = Path(self.tmp) / "start.log"

    def _start(self, *args: str) -> None:
        with self.log.open("ab") as log:
            self.procs.append(
                subprocess.Popen(
                    [_ray(), "start", "--block", "--num-cpus=1", "--disable-usage-stats", *args],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def start(self, timeout: float = 120.0) -> str:
        common = ["--node-ip-address=127.0.0.1", "--object-store-memory=100000000"]
        self._start(
            "--head",
            f"--port={self.port}",
            "--include-dashboard=false",
            f"--temp-dir={self.tmp}",
            *common,
        )
        # `ray status` is a Python process importing Ray (about a second of CPU): the head is
        # waited for by its port, the worker by `ray status` once a second.
        _wait(lambda: _listening(self.port), "the head is up", timeout)
        self._start(f"--address={self.address}", *common)
        _wait(
            lambda: _nodes_alive(self.address, self.env) >= 2,
            "the worker joined",
            timeout,
            every=1.0,
        )
        return self.address

    def stop(self) -> None:
        """Each node's ``ray start --block`` stops its own processes on SIGTERM; any left
        (named by our temp dir) are killed by id."""
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        try:
            _wait(lambda: not _pids_under(self.tmp), "its processes ended", 20)
        except TimeoutError:
            for pid in _pids_under(self.tmp):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            _wait(lambda: not _pids_under(self.tmp), "its processes were killed", 10)
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A head and one worker on loopback (``address`` is what ``set_runner_ray`` takes)."""
    cluster = RayCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
