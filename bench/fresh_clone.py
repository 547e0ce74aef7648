"""Fresh clone to first chart: ``git clone`` this repository into a temporary folder, run
``make run`` there (it creates the virtualenv and installs requirements.txt from the package
index), and time until the overview's first chart is drawn in headless Chromium.

    .venv/bin/python -m bench.fresh_clone            # prints one JSON line

pip's own cache is pointed at an empty folder so nothing is reused from earlier installs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.support.browser import CHROMIUM_ARGS, CHROMIUM_PATH

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="fresh-clone-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("O11Y_", "VIRTUAL_ENV"))}
    env.update(
        PIP_CACHE_DIR=str(tmp / "pip-cache"),
        O11Y_CACHE_DIR=str(tmp / "cache"),
        HOME=str(tmp),
        PATH="/usr/local/bin:/usr/bin:/bin:" + str(Path(os.__file__).parents[2] / "bin"),
    )
    out: dict[str, float | str] = {}
    t0 = time.monotonic()
    subprocess.run(["git", "clone", "-q", str(REPO), str(tmp / "repo")], check=True)
    out["clone_s"] = time.monotonic() - t0
    with open(tmp / "make.log", "wb") as log:
        proc = subprocess.Popen(
            ["make", "run", f"PORT={port}"],
            cwd=tmp / "repo",
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"make run exited: {(tmp / 'make.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        out["healthy_s"] = time.monotonic() - t0
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM_PATH), headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/overview", timeout=600_000)
            page.locator(".js-plotly-plot .main-svg").first.wait_for(
                state="attached", timeout=600_000
            )
            out["first_chart_s"] = time.monotonic() - t0
            browser.close()
        installed = subprocess.run(
            [str(tmp / "repo/.venv/bin/python"), "-m", "pip", "list", "--format=freeze"],
            capture_output=True,
            text=True,
        ).stdout
        out["test_tools_installed"] = ",".join(
            n for n in ("moto", "playwright", "hypothesis", "ruff", "awscli", "pytest")
            if f"\n{n}==" in "\n" + installed.lower()
        ) or "none"  # fmt: skip
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
