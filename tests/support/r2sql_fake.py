"""A loopback stand-in for R2 SQL's query API that runs each query with Apache DataFusion.

It answers ``POST /api/v1/accounts/{account}/basin-sql/query/{bucket}`` as Cloudflare documents:
a bearer token, a JSON body ``{"query": …}``, and the API's envelope (``success``, ``errors`` of
``{code, message}``, ``messages``, ``result`` with ``schema`` of ``{name, type}``, ``rows`` as
objects, ``metrics``). The query runs on DataFusion (the engine R2 SQL is built on) over the live
rows of the fixture table, read from its Parquet files by ``rows()`` (pyiceberg's scan: the
oracle's view of the snapshot, position deletes applied), registered as ``agent_network.events``.
``json_get_json``/``json_get_str``/``json_get_int``/``json_length`` are DataFusion UDFs written
to R2 SQL's function reference: a missing key or another type gives ``''`` (str) or ``0``
(int); ``json_get_json`` gives the value's JSON text, NULL when missing; invalid JSON gives NULL.

Knobs for tests: ``refuse_percentiles`` (a 400 for a query with an exact percentile, as a
budget refusal), ``fault`` ("html" a non-JSON 502, "hang" no answer until the test ends,
"garbled" a 200 whose body lacks ``result``), and ``requests`` (what was asked).
"""

from __future__ import annotations

import functools
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pyarrow as pa

from tests.support.http_thread import serve_in_thread

_PATH = re.compile(r"^/api/v1/accounts/([^/]+)/basin-sql/query/([^/]+)$")
# The fake's wording of a budget refusal: the documented part is the shape (HTTP 400,
# success false, errors[{code, message}]), not this text.
BUDGET_MESSAGE = "query exceeded its resource budget: exact percentiles over this range"


def _loads(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    return _parsed(text)


@functools.lru_cache(maxsize=1 << 16)
def _parsed(text: str) -> Any:
    """One parse per text across the UDF calls of a query (callers never change the result)."""
    try:
        return json.loads(text)
    except ValueError:
        return None


def _map(fn: Callable[[Any, Any], Any], out: pa.DataType) -> Callable[..., pa.Array]:
    def call(doc: pa.Array, key: pa.Array) -> pa.Array:
        return pa.array(
            [fn(_loads(d), k) for d, k in zip(doc.to_pylist(), key.to_pylist(), strict=True)],
            out,
        )

    return call


def _get_json(d: Any, k: Any) -> str | None:
    if not isinstance(d, dict) or k not in d:
        return None
    return json.dumps(d[k], ensure_ascii=False)


def _get_str(d: Any, k: Any) -> str | None:
    if d is None:
        return None
    v = d.get(k) if isinstance(d, dict) else None
    return v if isinstance(v, str) else ""


def _get_int(d: Any, k: Any) -> int | None:
    if d is None:
        return None
    v = d.get(k) if isinstance(d, dict) else None
    ok = isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63
    return v if ok else 0


def _length(doc: pa.Array) -> pa.Array:
    out = []
    for d in doc.to_pylist():
        v = _loads(d)
        out.append(len(v) if isinstance(v, dict | list) else None)
    return pa.array(out, pa.int64())


def session(table: pa.Table) -> Any:
    from datafusion import SessionContext, udf

    ctx = SessionContext()
    ctx.sql("CREATE SCHEMA agent_network").collect()
    ctx.register_record_batches("agent_network.events", [table.to_batches()])
    s = pa.string()
    for name, fn, out in (
        ("json_get_json", _get_json, s),
        ("json_get_str", _get_str, s),
        ("json_get_int", _get_int, pa.int64()),
    ):
        ctx.register_udf(udf(_map(fn, out), [s, s], out, "immutable", name=name))
    ctx.register_udf(udf(_length, [s], pa.int64(), "immutable", name="json_length"))
    return ctx


def _type_name(t: pa.DataType) -> str:
    """Arrow types as DataFusion prints them (R2 SQL's schema ``type``)."""
    if pa.types.is_timestamp(t):
        unit = {"s": "Second", "ms": "Millisecond", "us": "Microsecond", "ns": "Nanosecond"}[t.unit]
        return f"Timestamp({unit}, {repr(t.tz) if t.tz else 'None'})"
    names = {
        pa.int64(): "Int64",
        pa.int32(): "Int32",
        pa.uint64(): "UInt64",
        pa.float64(): "Float64",
        pa.string(): "Utf8",
        pa.large_string(): "LargeUtf8",
        pa.string_view(): "Utf8View",
        pa.bool_(): "Boolean",
    }
    return names.get(t, str(t))


def _json_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%dT%H:%M:%S.%f") + ("Z" if v.tzinfo is None else v.strftime("%z"))
    if isinstance(v, float) and v != v:
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


@dataclass
class FakeR2SQL:
    """The server's state: the rows it serves, what it was asked, how it misbehaves."""

    rows: Callable[[], pa.Table]
    account: str = "acct0001"
    bucket: str = "agent-blobs"
    token: str = "r2sql-test-token-0123456789"
    refuse_percentiles: bool = False
    fault: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    endpoint: str = ""

    def respond(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        m = _PATH.match(path)
        if not m or m.group(1) != self.account or m.group(2) != self.bucket:
            return _error(404, 7003, "Could not route to the requested resource")
        if headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, 10000, "Authentication error")
        doc = _loads(body.decode("utf-8", "replace"))
        if not isinstance(doc, dict) or not isinstance(doc.get("query"), str):
            return _error(400, 1000, 'request body must be JSON with a "query" string')
        sql = doc["query"]
        self.requests.append({"query": sql, "content_type": headers.get("content-type")})
        if self.fault == "html":
            return 502, "text/html", b"<html><body>Bad gateway</body></html>"
        if self.fault == "hang":
            self.released.wait(30)
            return _error(504, 1, "gateway timeout")
        if re.search(r"\bOFFSET\b", sql, re.IGNORECASE):
            return _error(400, 40003, "unsupported feature: OFFSET clause is not supported")
        if self.refuse_percentiles and "percentile_cont" in sql.lower():
            return _error(400, 40010, BUDGET_MESSAGE)
        try:
            table = session(self.rows()).sql(sql).to_arrow_table()
        except Exception as exc:  # DataFusion's planning and execution errors
            return _error(400, 40000, " ".join(str(exc).split())[:500])
        if self.fault == "garbled":
            return 200, "application/json", json.dumps({"success": True, "result": {}}).encode()
        out = {
            "success": True,
            "errors": [],
            "messages": [],
            "result": {
                "request_id": uuid.uuid4().hex,
                "schema": [{"name": f.name, "type": _type_name(f.type)} for f in table.schema],
                "rows": [{k: _json_value(v) for k, v in r.items()} for r in table.to_pylist()],
                "metrics": {"r2_requests_count": 1, "files_scanned": 1, "bytes_scanned": 0},
            },
        }
        return 200, "application/json", json.dumps(out).encode()


def _error(status: int, code: int, message: str) -> tuple[int, str, bytes]:
    body = {"success": False, "errors": [{"code": code, "message": message}], "messages": []}
    return status, "application/json", json.dumps(body).encode()


def serve(fake: FakeR2SQL) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start ``fake`` on a loopback port (sets ``fake.endpoint``); stop with ``stop``."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, kind, out = fake.respond(self.path, headers, body)
            try:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
            except OSError:  # the client gave up (a timeout test)
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = serve_in_thread(server)
    return server, thread


def stop(fake: FakeR2SQL, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
    fake.released.set()
    server.shutdown()
    server.server_close()
    thread.join(10)
