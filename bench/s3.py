"""The S3 side of the benchmark: a real ``moto_server`` on loopback, the upload, ``aws s3 sync``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.support.s3server import ACCESS_KEY, REGION, SECRET_KEY, MotoServer, s3_client

VENV_BIN = Path(sys.executable).parent


def start_moto() -> MotoServer:
    server = MotoServer()
    server.start(timeout=60)
    return server


class PreloadedMoto:
    """A moto server process filled from a folder before it serves (see bench/moto_preload.py)."""

    def __init__(self, bucket: str, folder: Path, *, log=print) -> None:
        from tests.support import free_port

        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.moto_preload",
                "127.0.0.1",
                str(self.port),
                bucket,
                str(folder),
            ],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("READY"):
            self.close()
            raise RuntimeError(f"moto preload failed: {line!r}")
        _, n, secs = line.split()
        self.objects, self.load_seconds = int(n), float(secs)

    def close(self) -> None:
        from tests.support import stop_process

        stop_process(self.proc, timeout=10)


def admin_client(endpoint: str) -> Any:
    return s3_client(endpoint, max_pool_connections=64, retries={"total_max_attempts": 5})


def upload_folder(endpoint: str, bucket: str, root: Path, *, workers: int = 32, log=print) -> int:
    """PUT every file under ``root`` (its relative path is the key) concurrently; returns count."""
    client = admin_client(endpoint)
    client.create_bucket(Bucket=bucket)
    paths = [
        Path(dp, f) for dp, _dirs, files in os.walk(root) for f in files if not f.startswith(".")
    ]
    # Data first, metadata last: a reader never sees metadata naming a file not yet uploaded.
    paths.sort(key=lambda p: ("/metadata/" in p.as_posix(), p.as_posix()))
    done = 0
    lock = threading.Lock()
    started = time.monotonic()

    def put(path: Path) -> None:
        nonlocal done
        client.put_object(
            Bucket=bucket, Key=path.relative_to(root).as_posix(), Body=path.read_bytes()
        )
        with lock:
            done += 1
            if done % 10000 == 0:
                rate = done / (time.monotonic() - started)
                log(f"[s3]   uploaded {done:,}/{len(paths):,} ({rate:.0f}/s)")

    data = [p for p in paths if "/metadata/" not in p.as_posix()]
    meta = [p for p in paths if "/metadata/" in p.as_posix()]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(put, data))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(put, meta))
    return len(paths)


def aws_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and not k.startswith("O11Y_")
    }
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE="/nonexistent-bench-aws-config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent-bench-aws-credentials",
    )
    return env


def aws_sync(endpoint: str, bucket: str, prefix: str, dest: Path) -> float:
    """``aws s3 sync s3://bucket/prefix dest --endpoint-url endpoint``; returns seconds."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(VENV_BIN / "aws"),
        "s3",
        "sync",
        f"s3://{bucket}/{prefix}",
        str(dest),
        "--endpoint-url",
        endpoint,
        "--only-show-errors",
    ]
    started = time.monotonic()
    proc = subprocess.run(cmd, env=aws_env(), capture_output=True, text=True)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"aws s3 sync failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds


def aws_version() -> str:
    proc = subprocess.run(
        [str(VENV_BIN / "aws"), "--version"], env=aws_env(), capture_output=True, text=True
    )
    return (proc.stdout or proc.stderr).strip().split()[0] if proc.returncode == 0 else "?"
