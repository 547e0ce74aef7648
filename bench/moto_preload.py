"""A moto S3 server process that is filled in-process before it serves (``bench/s3.py``).

``python -m bench.moto_preload <host> <port> <bucket> <folder>``: puts every file under
``folder`` (its relative path is the key; data first, metadata last) straight into moto's S3
backend, then serves the same moto WSGI app ``moto_server`` runs, on loopback, and prints
``READY`` once it answers. HTTP PUTs into moto_server run at under 100 objects/s on this machine
and slow down as the bucket grows, which would make a 100,000-file dataset take most of an hour to
load; every request the benchmark measures still goes over HTTP to this server.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from pathlib import Path


def main(host: str, port: str, bucket: str, folder: str) -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.create_bucket(bucket, "us-east-1")
    root = Path(folder)
    paths = [Path(d, f) for d, _s, files in os.walk(root) for f in files if not f.startswith(".")]
    paths.sort(key=lambda p: ("/metadata/" in p.as_posix(), p.as_posix()))
    t = time.monotonic()
    for p in paths:
        backend.put_object(
            bucket, p.relative_to(root).as_posix(), p.read_bytes(), disable_notification=True
        )
    loaded = time.monotonic() - t
    server = ThreadedMotoServer(ip_address=host, port=int(port), verbose=False)
    server.start()
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://{host}:{port}/", timeout=2).read()
            break
        except Exception:
            time.sleep(0.05)
    print(f"READY {len(paths)} {loaded:.1f}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(*sys.argv[1:])
