"""A threaded HTTP reverse proxy with request recording and run-time fault injection.

Put it between the code under test and moto to count requests or simulate a flaky,
slow or unreachable S3 endpoint:

    proxy.fail_next(2)              # next 2 requests -> 503 <Code>SlowDown</Code>
    proxy.set_delay(1.5)            # sleep before forwarding each request
    proxy.set_down(True)            # close connections without answering
    proxy.set_fail_rate(0.3)        # ~30 % of requests -> 503 SlowDown (seeded, reproducible)
    proxy.corrupt(".parquet", "short", times=2)  # next 2 matching GETs: half the body, its
                                    # Content-Length matching ("flip": same length, bytes flipped)
    proxy.stall("metadata.json", 5) # matching GETs are held 5 s before being forwarded
    proxy.requests                  # [("GET", "/bucket?list-type=2"), ...]
    proxy.reset()                   # clear faults and the request log

Requests are forwarded verbatim (method, path, headers incl. `Host`, body). moto does
not verify SigV4 signatures, so the client's signature over the proxy's host is fine.

Fixture:
    proxy (function): a started `FaultProxy` in front of `moto_endpoint`.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

import pytest

from tests.support.http_thread import serve_in_thread

# Hop-by-hop headers (RFC 9110 §7.6.1) are connection-specific and never forwarded.
# `Expect` is dropped too: the proxy has already answered 100-continue and read the body.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "expect",
}
_CHUNK = 64 * 1024


class FaultProxy:
    """Reverse proxy on 127.0.0.1 forwarding to `upstream` (e.g. "http://127.0.0.1:5000")."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"upstream must be an http:// URL, got {upstream!r}")
        self.upstream_host: str = parsed.hostname
        self.upstream_port: int = parsed.port or 80
        self._lock = threading.Lock()
        self._requests: list[tuple[str, str]] = []
        self._fail_remaining = 0
        self._fail_status = 503
        self._fail_code = "SlowDown"
        self._delay = 0.0
        self._down = False
        self._fail_paths: dict[str, tuple[int, int, str]] = {}  # fragment -> (left, status, code)
        self._fail_rate = 0.0
        self._rng = random.Random(0)
        self._corrupt: tuple[str, str, int] | None = None  # (path part, mode, times left)
        self._stall: tuple[str, float] | None = None  # (path part, seconds)
        self.corrupted: list[str] = []  # paths whose response was corrupted
        self.hold_s = 5.0
        self._server = ThreadingHTTPServer((host, port), _make_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread = serve_in_thread(self._server, name=f"fault-proxy-{self.port}")
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- recording -------------------------------------------------------------------------

    @property
    def requests(self) -> list[tuple[str, str]]:
        """Snapshot of every request seen so far as (method, path_with_query)."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def count(self, method: str | None = None, path_prefix: str = "") -> int:
        """Number of recorded requests matching `method` (any if None) and `path_prefix`."""
        return sum(
            1
            for m, p in self.requests
            if (method is None or m == method.upper()) and p.startswith(path_prefix)
        )

    # -- fault injection -------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 503, code: str = "SlowDown") -> None:
        """Answer the next `n` requests with an S3-style XML error instead of forwarding."""
        with self._lock:
            self._fail_remaining = n
            self._fail_status = status
            self._fail_code = code

    def fail_matching(
        self, fragment: str, n: int = 1, status: int = 503, code: str = "SlowDown"
    ) -> None:
        """Answer the next `n` requests whose path contains `fragment` with an S3-style error."""
        with self._lock:
            self._fail_paths[fragment] = (n, status, code)

    def set_delay(self, seconds: float) -> None:
        """Sleep `seconds` before handling each request (0 disables)."""
        with self._lock:
            self._delay = max(0.0, seconds)

    def set_down(self, down: bool = True) -> None:
        """While down, connections are closed without any answer (endpoint unreachable)."""
        with self._lock:
            self._down = down

    def set_fail_rate(
        self, rate: float, status: int = 503, code: str = "SlowDown", seed: int = 0
    ) -> None:
        """Answer a random `rate` of requests (seeded) with an S3-style XML error."""
        with self._lock:
            self._fail_rate = rate
            self._fail_status = status
            self._fail_code = code
            self._rng = random.Random(seed)

    def corrupt(
        self, path_part: str, mode: str = "short", times: int = 1, hold_s: float = 5.0
    ) -> None:
        """Damage the next `times` (-1: every) GET responses whose path holds `path_part`:
        ``short`` sends the first half of the body with a Content-Length that matches it,
        ``flip`` sends a body of the right length with bytes in its middle inverted,
        ``hold`` sends the headers and half the body, then stalls `hold_s` before the rest."""
        if mode not in ("short", "flip", "hold"):
            raise ValueError(mode)
        with self._lock:
            self._corrupt = (path_part, mode, times)
            self.hold_s = hold_s

    def stall(self, path_part: str, seconds: float) -> None:
        """Hold GETs whose path holds `path_part` for `seconds` before forwarding them."""
        with self._lock:
            self._stall = (path_part, seconds)

    def reset(self) -> None:
        """Clear all injected faults and delay, and the request log."""
        with self._lock:
            self._fail_remaining = 0
            self._fail_status = 503
            self._fail_code = "SlowDown"
            self._delay = 0.0
            self._down = False
            self._fail_paths.clear()
            self._fail_rate = 0.0
            self._corrupt = None
            self._stall = None
            self._requests.clear()

    # -- used by the handler ---------------------------------------------------------------

    def _admit(self, method: str, path: str) -> tuple[bool, float, tuple[int, str] | None]:
        """Record a request and decide its fate: (down, delay, (status, code) or None)."""
        with self._lock:
            self._requests.append((method, path))
            failure = None
            if self._fail_remaining > 0:
                self._fail_remaining -= 1
                failure = (self._fail_status, self._fail_code)
            elif self._fail_rate and self._rng.random() < self._fail_rate:
                failure = (self._fail_status, self._fail_code)
            for fragment, (left, status, code) in self._fail_paths.items():
                if failure is None and left > 0 and fragment in urllib.parse.unquote(path):
                    self._fail_paths[fragment] = (left - 1, status, code)
                    failure = (status, code)
            delay = self._delay
            if self._stall and method == "GET" and self._stall[0] in path:
                delay += self._stall[1]
            return self._down, delay, failure

    def _damage(self, method: str, path: str) -> str | None:
        """The corruption mode for this response, if one is due (counted down)."""
        with self._lock:
            if not self._corrupt or method != "GET" or self._corrupt[0] not in path:
                return None
            part, mode, times = self._corrupt
            if times == 0:
                return None
            self._corrupt = (part, mode, times - 1 if times > 0 else times)
            self.corrupted.append(path)
            return mode


def _make_handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like a real S3 endpoint

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output quiet

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                parts: list[bytes] = []
                while True:
                    size_line = self.rfile.readline(65537)
                    size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        # Skip trailers up to the terminating blank line.
                        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    parts.append(self.rfile.read(size))
                    self.rfile.readline(65537)  # CRLF after each chunk
                return b"".join(parts)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send_error_xml(self, status: int, code: str, message: str) -> None:
            request_id = uuid.uuid4().hex[:16].upper()
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
                f"<Resource>{escape(self.path)}</Resource>"
                f"<RequestId>{request_id}</RequestId></Error>"
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("x-amz-request-id", request_id)
            if self.command == "HEAD":
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def _handle(self) -> None:
            down, delay, failure = proxy._admit(self.command, self.path)
            if down:
                # Drop the connection without a byte of response.
                self.close_connection = True
                return
            body = self._read_body()
            if delay:
                time.sleep(delay)
            if failure is not None:
                status, code = failure
                self._send_error_xml(status, code, "Injected by FaultProxy")
                return
            try:
                self._forward(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client went away

        def _forward(self, body: bytes) -> None:
            conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=300)
            try:
                try:
                    conn.putrequest(
                        self.command, self.path, skip_host=True, skip_accept_encoding=True
                    )
                    for name, value in self.headers.items():
                        if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                            conn.putheader(name, value)
                    had_length = "Content-Length" in self.headers
                    if body or had_length or "Transfer-Encoding" in self.headers:
                        conn.putheader("Content-Length", str(len(body)))
                    conn.endheaders(body or None)
                    resp = conn.getresponse()
                except OSError as exc:
                    self._send_error_xml(502, "BadGateway", f"upstream unreachable: {exc}")
                    return
                self._relay(resp)
            finally:
                conn.close()

        def _relay(self, resp: http.client.HTTPResponse) -> None:
            damage = proxy._damage(self.command, self.path) if resp.status == 200 else None
            if damage:
                self._relay_damaged(resp, damage)
                return
            self.send_response_only(resp.status, resp.reason)
            length = resp.getheader("Content-Length")
            no_body = self.command == "HEAD" or resp.status in (204, 304) or resp.status < 200
            chunked = not no_body and length is None
            for name, value in resp.getheaders():
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if no_body:
                return
            while True:
                chunk = resp.read(_CHUNK)
                if not chunk:
                    break
                if chunked:
                    self.wfile.write(f"{len(chunk):X}\r\n".encode() + chunk + b"\r\n")
                else:
                    self.wfile.write(chunk)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _relay_damaged(self, resp: http.client.HTTPResponse, mode: str) -> None:
            body = resp.read()
            if mode == "short":
                body = body[: len(body) // 2]
            elif mode == "flip":
                mid = len(body) // 2
                body = body[:mid] + bytes(b ^ 0xFF for b in body[mid : mid + 64]) + body[mid + 64 :]
            self.send_response_only(resp.status, resp.reason)
            for name, value in resp.getheaders():
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if mode == "hold":  # the body starts, then R2 goes silent
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                time.sleep(proxy.hold_s)
                body = body[len(body) // 2 :]
            self.wfile.write(body)
            self.wfile.flush()

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = _handle

    return Handler


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    """A started `FaultProxy` in front of moto; `.endpoint`, `.requests`, fault knobs."""
    with FaultProxy(moto_endpoint) as p:
        yield p
