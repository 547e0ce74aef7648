"""A real HTTP webhook receiver on loopback: records every POST and answers with scripted codes.

with running_receiver(codes=[500, 200]) as rx:
    ...  # POST to rx.url
    rx.delivered()  # the JSON bodies answered with 2xx
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    body: Any
    answered: int


@dataclass
class Receiver:
    url: str
    codes: list[int] = field(default_factory=list)  # answers in order; then 200
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_code(self) -> int:
        with self.lock:
            return self.codes.pop(0) if self.codes else 200

    def delivered(self, **match: Any) -> list[dict[str, Any]]:
        """Bodies answered with 2xx whose fields equal ``match``."""
        with self.lock:
            got = [r.body for r in self.received if 200 <= r.answered < 300]
        return [b for b in got if all(b.get(k) == v for k, v in match.items())]


@contextlib.contextmanager
def running_receiver(codes: list[int] | None = None) -> Iterator[Receiver]:
    rx = Receiver(url="", codes=list(codes or []))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            code = rx.next_code()
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"_raw": raw.decode("utf-8", "replace")}
            with rx.lock:
                rx.received.append(Received(self.path, body, code))
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rx.url = f"http://127.0.0.1:{server.server_address[1]}/hook/secret-token-path"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rx
    finally:
        server.shutdown()
        server.server_close()
