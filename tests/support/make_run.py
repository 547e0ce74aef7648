"""``make run`` as a user starts it, on a cache folder of its own, for tests and benchmarks.

The virtualenv is the running interpreter's (``BIN=`` on make's command line, ``-o venv`` so
make installs nothing); everything else is the Makefile's own recipe, so a change to ``make run``
is what gets measured. No ``O11Y_*`` variable is passed on: no source configured means the demo.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
HEALTH_PATH = "/_stcore/health"


@dataclass
class MakeRun:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + HEALTH_PATH, timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def wait_healthy(self, *, timeout: float) -> None:
        """Poll the health endpoint until it answers; RuntimeError with make's output if make
        exits or the deadline passes."""
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"make run exited {self.proc.returncode}: {self.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"make run not healthy after {timeout:g} s: {self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """Stop make and what it started (its own process group)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)


def start_make_run(
    cache_dir: Path, log: Path, *, port: int | None = None, server_only: bool = False
) -> MakeRun:
    """``make run`` in the repository with ``O11Y_CACHE_DIR=cache_dir``; make's output to
    ``log``. Returns at once (the recipe builds the demo before the server starts).
    ``server_only``: the recipe's ``streamlit run`` line alone, as ``make run`` was before it
    prepared the demo (for a comparison side by side)."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("O11Y_")}
    env["O11Y_CACHE_DIR"] = str(cache_dir)
    cmd = ["make", "-o", "venv", "run", f"BIN={Path(sys.executable).parent}", f"PORT={port}"]
    if server_only:
        recipe = subprocess.run(
            ["make", "-s", "-n", *cmd[1:]], cwd=REPO, env=env, capture_output=True, text=True
        ).stdout.splitlines()
        cmd = ["sh", "-c", "exec " + next(line for line in recipe if "streamlit run" in line)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return MakeRun(proc=proc, url=f"http://127.0.0.1:{port}", log=log)
