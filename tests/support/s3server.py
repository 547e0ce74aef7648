"""A real `moto_server` process acting as an S3 endpoint, plus fixtures around it.

Fixtures:
    moto_endpoint (session): "http://127.0.0.1:PORT" of a running moto server
        (one per pytest-xdist worker).
    s3_admin (session): boto3 S3 client the *tests* use to write fixture data.
    bucket (function): a fresh, uniquely named bucket; emptied and deleted afterwards.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.support import free_port, stop_process, tail, venv_executable

REGION = "us-east-1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll `url` until it answers any HTTP status; fail early if `proc` dies."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"moto_server exited with code {proc.returncode} before answering {url}.\n"
                f"--- log tail ---\n{tail(log)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # an HTTP error status still means the server is up
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"moto_server did not answer {url} within {timeout:.0f}s.\n{tail(log)}"
            )
        time.sleep(0.1)


class MotoServer:
    """A `moto_server` subprocess on 127.0.0.1. Use as a context manager or start()/stop()."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self._logdir = tempfile.TemporaryDirectory(prefix="moto-server-")
        self.log_path = Path(self._logdir.name) / "moto_server.log"

    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise RuntimeError("MotoServer is not started")
        return f"http://{self.host}:{self.port}"

    def _command(self, port: int) -> list[str]:
        exe = venv_executable("moto_server")
        base = [str(exe)] if exe else [sys.executable, "-m", "moto.server"]
        return [*base, "-H", self.host, "-p", str(port)]

    def start(self, timeout: float = 30.0) -> str:
        """Start the server (retrying on a port clash) and return its endpoint URL."""
        fixed_port = self.port
        last_error: Exception | None = None
        for _attempt in range(3):
            port = fixed_port or free_port(self.host)
            with self.log_path.open("ab") as log:
                # stdout/stderr go to a file: a never-read PIPE would eventually block moto.
                self.proc = subprocess.Popen(
                    self._command(port),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.port = port
            try:
                _wait_http(self.endpoint + "/", self.proc, self.log_path, timeout)
                return self.endpoint
            except (RuntimeError, TimeoutError) as exc:
                last_error = exc
                self.stop()
                self.port = fixed_port
        raise RuntimeError(f"could not start moto_server: {last_error}")

    def stop(self) -> None:
        """Terminate the server, killing it if it does not exit promptly."""
        if self.proc is not None:
            stop_process(self.proc, timeout=10)
            self.proc = None

    def close(self) -> None:
        self.stop()
        self._logdir.cleanup()

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def s3_client(endpoint: str, **config: Any) -> Any:
    """A boto3 S3 client for `endpoint` with dummy credentials and path-style addressing.

    Extra keyword arguments are passed to `botocore.config.Config`
    (e.g. `retries={"total_max_attempts": 1}` disables retries; note that botocore's
    `max_attempts` counts *retries*, so `max_attempts=1` still makes two attempts).
    """
    cfg = Config(s3={"addressing_style": "path"}, **config)
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=cfg,
    )


def empty_and_delete_bucket(client: Any, name: str) -> None:
    """Delete every object (and version) in bucket `name`, then the bucket itself."""
    paginator = client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=name):
        keys = [
            {"Key": item["Key"], "VersionId": item["VersionId"]}
            for item in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for start in range(0, len(keys), 1000):
            client.delete_objects(Bucket=name, Delete={"Objects": keys[start : start + 1000]})
    client.delete_bucket(Bucket=name)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """URL of a real moto S3 server process, shared by the session (per xdist worker)."""
    with MotoServer() as server:
        yield server.endpoint


@pytest.fixture(scope="session")
def s3_admin(moto_endpoint: str) -> Any:
    """boto3 S3 client for tests to create fixture data (talks to moto directly)."""
    return s3_client(moto_endpoint)


@pytest.fixture
def bucket(s3_admin: Any) -> Iterator[str]:
    """A fresh bucket named `agent-blobs-<uuid8>`; removed (with contents) after the test."""
    name = f"agent-blobs-{uuid.uuid4().hex[:8]}"
    s3_admin.create_bucket(Bucket=name)
    yield name
    with contextlib.suppress(Exception):
        empty_and_delete_bucket(s3_admin, name)
