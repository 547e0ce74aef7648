"""A real HTTP webhook receiver on loopback: records every POST and answers with scripted codes.

with running_receiver(codes=[500, 200]) as rx:
    ...  # POST to rx.url
    rx.delivered()  # the JSON bodies answered with 2xx

Besides HTTP codes, a scripted answer can misbehave the ways a hostile receiver does:
``"redirect:<url>"`` (302 to ``url``), ``"drip"`` (a 200 answer sent one byte every
:data:`DRIP_S`), ``"reset"`` (the connection reset, no answer) and ``"hang"`` (no answer until the
receiver stops). Those are recorded with ``answered`` 0: never a delivery.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.http_thread import serve_in_thread


@dataclass
class Received:
    path: str
    body: Any
    answered: int


DRIP_S = 0.3


@dataclass
class Receiver:
    url: str
    codes: list[int | str] = field(default_factory=list)  # answers in order; then 200
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    stopping: threading.Event = field(default_factory=threading.Event)

    def next_code(self) -> int | str:
        with self.lock:
            return self.codes.pop(0) if self.codes else 200

    def delivered(self, **match: Any) -> list[dict[str, Any]]:
        """Bodies answered with 2xx whose fields equal ``match``."""
        with self.lock:
            got = [r.body for r in self.received if 200 <= r.answered < 300]
        return [b for b in got if all(b.get(k) == v for k, v in match.items())]


@contextlib.contextmanager
def running_receiver(codes: list[int | str] | None = None) -> Iterator[Receiver]:
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
                rx.received.append(Received(self.path, body, code if isinstance(code, int) else 0))
            if isinstance(code, str):
                self.misbehave(code)
                return
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def do_GET(self) -> None:  # noqa: N802 (a heartbeat)
            self.do_POST()

        def misbehave(self, how: str) -> None:
            if how.startswith("redirect:"):
                self.send_response(302)
                self.send_header("Location", how.removeprefix("redirect:"))
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif how == "drip":
                answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                for i in range(len(answer)):
                    if rx.stopping.wait(DRIP_S):
                        return
                    try:
                        self.wfile.write(answer[i : i + 1])
                        self.wfile.flush()
                    except OSError:
                        return
            elif how == "reset":  # SO_LINGER 0: close() sends RST
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
            elif how == "hang":
                rx.stopping.wait(60)
            else:
                raise ValueError(how)
            self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rx.url = f"http://127.0.0.1:{server.server_address[1]}/hook/secret-token-path"
    serve_in_thread(server)
    try:
        yield rx
    finally:
        rx.stopping.set()
        server.shutdown()
        server.server_close()
