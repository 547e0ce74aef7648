"""The optional Iceberg REST catalog names the current metadata, over the newest file's guess."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from o11y_data import O11yError, load_settings, sync
from tests.support.http_thread import send_json, serve_in_thread
from tests.support.tables import append, event, new_table, rows, s3_put

TOKEN = "catalog-token-123"


class Catalog:
    """A minimal REST catalog on loopback: /v1/config and one table."""

    def __init__(self) -> None:
        self.location = ""
        self.seen: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                outer.seen.append(self.path)
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, {"error": {"message": "unauthorized"}})
                if self.path.startswith("/v1/config"):
                    return self._send(200, {"defaults": {}, "overrides": {"prefix": "wh1"}})
                if self.path == "/v1/wh1/namespaces/agent_network/tables/events":
                    return self._send(200, {"metadata-location": outer.location, "metadata": {}})
                return self._send(404, {"error": {"message": "no such table"}})

            def _send(self, code: int, body: dict[str, Any]) -> None:
                send_json(self, code, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        serve_in_thread(self.server)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def catalog():
    c = Catalog()
    yield c
    c.server.shutdown()


def settings_for(endpoint, bucket, cache, catalog, token=TOKEN):
    return load_settings(
        {
            "O11Y_R2_ENDPOINT": endpoint,
            "O11Y_R2_ACCESS_KEY_ID": "k",
            "O11Y_R2_SECRET_ACCESS_KEY": "s",
            "O11Y_BUCKET": bucket,
            "O11Y_CACHE_DIR": str(cache),
            "O11Y_CATALOG_URI": catalog.uri,
            "O11Y_CATALOG_TOKEN": token,
            "O11Y_CATALOG_WAREHOUSE": "acct_agent-blobs",
        },
        secrets_paths=[],
    )


def test_catalog_metadata_location_wins_over_the_newest_file(
    s3_admin, bucket, tmp_path, moto_endpoint, catalog
):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    append(writer, rows([event(ms=1)]))
    committed = writer.version
    # The catalog's current metadata is version `committed`; a newer file is an uncommitted write.
    meta_keys = sorted(
        o["Key"]
        for o in s3_admin.list_objects_v2(Bucket=bucket, Prefix=f"{writer.table_prefix}metadata/")[
            "Contents"
        ]
        if o["Key"].endswith(".metadata.json")
    )
    catalog.location = f"s3://{bucket}/{meta_keys[-1]}"
    append(writer, rows([event(ms=2)]))  # version committed+1, not known to the catalog
    assert writer.version == committed + 1
    report = sync(settings_for(moto_endpoint, bucket, tmp_path, catalog))
    assert report.rows == 1
    assert any(p.startswith("/v1/config?warehouse=acct_agent-blobs") for p in catalog.seen)


def test_a_rejected_catalog_token_is_one_line_without_the_token(
    s3_admin, bucket, tmp_path, moto_endpoint, catalog
):
    append(new_table(s3_put(s3_admin, bucket), bucket), rows([event()]))
    with pytest.raises(O11yError) as err:
        sync(settings_for(moto_endpoint, bucket, tmp_path, catalog, token="wrong-token-456"))
    assert "rejected the token" in str(err.value) and "wrong-token-456" not in str(err.value)
