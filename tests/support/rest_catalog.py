"""An Iceberg REST catalog on loopback that serves one table (``agent_network.events``) from
moto_server, enough for pyiceberg's RestCatalog and the dashboard's own catalog client:
``GET /v1/config`` (the prefix in ``overrides``) and ``GET /v1/{prefix}/namespaces/agent_network/
tables/events`` answering the metadata location, the whole metadata object read from the bucket
and a ``config`` naming the S3 endpoint and keys (as R2 Data Catalog vends them). Requests need
the bearer token; the current metadata location is asked of ``location`` on every load, so the
test moves the table by committing (pyiceberg) and the catalog follows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.http_thread import send_json, serve_in_thread

TOKEN = "rest-catalog-token-456"
PREFIX = "wh1"
TABLE_PATH = f"/v1/{PREFIX}/namespaces/agent_network/tables/events"


class RestCatalog:
    """Serves the table whose metadata file ``location()`` names (an s3:// URI in ``bucket``)."""

    def __init__(
        self,
        *,
        location: Callable[[], str],
        s3: Any,
        bucket: str,
        endpoint: str,
        key_id: str = "testing",
        secret: str = "testing",
    ) -> None:
        self.location = location
        self.seen: list[str] = []
        outer = self
        config = {
            "s3.endpoint": endpoint,
            "s3.access-key-id": key_id,
            "s3.secret-access-key": secret,
            "s3.region": "us-east-1",
        }

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                outer.seen.append(self.path)
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, _error(401, "NotAuthorizedException", "unauthorized"))
                path = self.path.split("?", 1)[0]
                if path == "/v1/config":
                    return self._send(200, {"defaults": {}, "overrides": {"prefix": PREFIX}})
                if path == TABLE_PATH:
                    uri = outer.location()
                    key = uri.split(f"s3://{bucket}/", 1)[1]
                    metadata = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
                    body = {"metadata-location": uri, "metadata": metadata, "config": config}
                    return self._send(200, body)
                return self._send(404, _error(404, "NoSuchTableException", "no such table"))

            def _send(self, code: int, body: dict[str, Any]) -> None:
                send_json(self, code, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = serve_in_thread(self.server)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def _error(code: int, kind: str, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code}}
