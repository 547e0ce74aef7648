"""A test's HTTP server on a thread of its own, stopped at once.

``serve_forever`` looks for a shutdown request every ``poll_interval`` (0.5 s by default), so
every ``shutdown()`` waited up to half a second: a fixture per test made that a second-long
teardown of many tests. Loopback servers here poll every SHUTDOWN_POLL_S instead.
"""

from __future__ import annotations

import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

SHUTDOWN_POLL_S = 0.02


def serve_in_thread(
    server: socketserver.BaseServer, *, name: str | None = None
) -> threading.Thread:
    """``server`` serving on a started daemon thread; its ``shutdown()`` returns within
    SHUTDOWN_POLL_S."""
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": SHUTDOWN_POLL_S},
        name=name,
        daemon=True,
    )
    thread.start()
    return thread


def send_json(handler: BaseHTTPRequestHandler, code: int, body: Any) -> None:
    """Answer ``handler``'s request with ``code`` and ``body`` as JSON."""
    data = json.dumps(body).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
