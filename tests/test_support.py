"""Self-tests for the fixtures in tests/support/."""

from __future__ import annotations

import io
import os
import textwrap
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import botocore.exceptions
import pytest
from boto3.s3.transfer import TransferConfig
from playwright.sync_api import Browser, Page

from tests.support.app_server import running_streamlit, start_streamlit, stop_streamlit
from tests.support.browser import ReusablePage
from tests.support.http_thread import serve_in_thread
from tests.support.proxy import FaultProxy
from tests.support.s3server import s3_client

# botocore: `max_attempts` counts retries, `total_max_attempts` counts all attempts.
NO_RETRIES = {"retries": {"total_max_attempts": 1, "mode": "standard"}}


def test_moto_server_answers_over_http(moto_endpoint: str, s3_admin: Any, bucket: str) -> None:
    assert moto_endpoint.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(moto_endpoint + "/", timeout=5) as resp:
        assert resp.status == 200
    names = [b["Name"] for b in s3_admin.list_buckets()["Buckets"]]
    assert bucket in names
    s3_admin.put_object(Bucket=bucket, Key="a/b.json", Body=b'{"x": 1}')
    assert s3_admin.get_object(Bucket=bucket, Key="a/b.json")["Body"].read() == b'{"x": 1}'


def test_proxy_forwards_and_records(proxy: FaultProxy, bucket: str) -> None:
    client = s3_client(proxy.endpoint, **NO_RETRIES)
    client.put_object(Bucket=bucket, Key="k1", Body=b"hello")
    assert client.head_object(Bucket=bucket, Key="k1")["ContentLength"] == 5
    assert client.get_object(Bucket=bucket, Key="k1")["Body"].read() == b"hello"
    listed = client.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["k1"]

    methods = [m for m, _ in proxy.requests]
    assert methods == ["PUT", "HEAD", "GET", "GET"]
    assert proxy.requests[0][1] == f"/{bucket}/k1"
    assert proxy.requests[3][1].startswith(f"/{bucket}?list-type=2")
    assert proxy.count("GET", f"/{bucket}/k1") == 1


def test_proxy_streams_large_multipart_objects(proxy: FaultProxy, bucket: str) -> None:
    client = s3_client(proxy.endpoint)
    data = os.urandom(11 * 1024 * 1024)
    config = TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
    client.upload_fileobj(io.BytesIO(data), bucket, "big.bin", Config=config)
    out = io.BytesIO()
    client.download_fileobj(bucket, "big.bin", out, Config=config)
    assert out.getvalue() == data
    ranged = client.get_object(Bucket=bucket, Key="big.bin", Range="bytes=10-19")
    assert ranged["Body"].read() == data[10:20]
    methods = {m for m, _ in proxy.requests}
    assert methods == {"POST", "PUT", "HEAD", "GET"}  # create/complete multipart are POSTs


def test_proxy_injects_errors(proxy: FaultProxy, bucket: str) -> None:
    client = s3_client(proxy.endpoint, **NO_RETRIES)
    proxy.fail_next(1)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.list_objects_v2(Bucket=bucket)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert info.value.response["Error"]["Code"] == "SlowDown"
    # Only the next request failed; the following one is forwarded again.
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0

    proxy.fail_next(1, status=500, code="InternalError")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.head_object(Bucket=bucket, Key="missing")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert len(proxy.requests) == 3


def test_proxy_retries_are_visible(proxy: FaultProxy, bucket: str) -> None:
    client = s3_client(proxy.endpoint, retries={"max_attempts": 3, "mode": "standard"})
    proxy.fail_next(2)
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert len(proxy.requests) == 3


def test_proxy_down_and_delay(proxy: FaultProxy, bucket: str) -> None:
    client = s3_client(proxy.endpoint, connect_timeout=2, read_timeout=0.5, **NO_RETRIES)
    proxy.set_down(True)
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        client.list_objects_v2(Bucket=bucket)
    proxy.set_down(False)
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0

    proxy.set_delay(1.5)
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        client.list_objects_v2(Bucket=bucket)

    proxy.reset()
    assert proxy.requests == []
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_browser_reads_data_url(page: Page) -> None:
    page.goto("data:text/html,<html><body><h1 id='t'>Hello o11y</h1></body></html>")
    assert page.inner_text("#t") == "Hello o11y"
    assert page.viewport_size == {"width": 1600, "height": 1000}


class _Origin(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Set-Cookie", "session=from-the-last-test; Path=/")
        self.end_headers()
        self.wfile.write(b"<html><body>origin</body></html>")

    def log_message(self, *args) -> None:
        pass


def test_a_reused_page_comes_back_blank_without_the_last_tests_cookies_storage_or_listeners(
    browser: Browser,
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    serve_in_thread(server)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    reusable = ReusablePage(browser)
    try:
        first, added = reusable.hand_out()
        first.set_viewport_size({"width": 800, "height": 600})
        first.goto(url)
        first.evaluate(
            "() => { localStorage.setItem('k', 'v'); sessionStorage.setItem('s', 'v'); }"
        )
        dialogs: list[str] = []
        first.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        first.once("console", lambda m: dialogs.append(f"console: {m.text}"))
        first.evaluate("() => alert('seen by the test that listens')")
        assert dialogs == ["seen by the test that listens"] and len(added) == 2
        assert first.context.cookies()  # the origin's cookie was set
        reusable.take_back(added)

        second, _ = reusable.hand_out()
        assert second is first  # the same page (its renderer and caches) ...
        assert second.url == "about:blank"  # ... handed over blank
        assert second.viewport_size == {"width": 1600, "height": 1000}
        assert second.context.cookies() == []
        second.evaluate("() => alert('a later test, heard by no listener of the last')")
        second.evaluate("() => console.log('nor by a once-listener that never fired')")
        assert dialogs == ["seen by the test that listens"]
        second.goto(url)
        stored = second.evaluate("() => [localStorage.getItem('k'), sessionStorage.getItem('s')]")
        assert stored == [None, None]
    finally:
        reusable.close()
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_streamlit_launcher(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            import os
            import streamlit as st

            st.write("value:", os.environ["SUPPORT_TEST_VALUE"])
            """
        )
    )
    url, proc = start_streamlit(app, {"SUPPORT_TEST_VALUE": "42"})
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=5) as resp:
            assert resp.read() == b"ok"
    finally:
        stop_streamlit(proc)
    assert proc.poll() is not None

    broken = tmp_path / "missing.py"
    with pytest.raises(FileNotFoundError):
        start_streamlit(broken, {})


@pytest.mark.slow
def test_streamlit_page_in_browser(tmp_path: Path, page: Page) -> None:
    app = tmp_path / "app.py"
    app.write_text('import os\nimport streamlit as st\nst.title(os.environ["GREETING"])\n')
    with running_streamlit(app, {"GREETING": "Hello from streamlit"}) as url:
        page.goto(url)
        page.get_by_text("Hello from streamlit").wait_for(timeout=30_000)


def test_wait_until_returns_the_first_truthy_answer_and_names_what_it_gave_up_on() -> None:
    from tests.support.wait import wait_until

    answers = iter([None, 0, "", "ready", "later"])
    assert wait_until(lambda: next(answers), limit_s=30, what="x", every_s=0) == "ready"
    with pytest.raises(AssertionError, match="gave up waiting for the moon: still 3"):
        wait_until(lambda: False, limit_s=0, what=lambda: "the moon: still 3", every_s=0)


def test_the_check_profile_runs_a_quarter_of_the_cases_and_the_default_all() -> None:
    from hypothesis import settings

    from tests.support.properties import CHECK_MIN, CHECK_PROFILE, examples

    was = settings.get_current_profile_name()
    try:
        settings.load_profile("default")
        assert [examples(n) for n in (3, 12, 25, 60, 120)] == [3, 12, 25, 60, 120]
        settings.load_profile(CHECK_PROFILE)
        assert [examples(n) for n in (3, 12, 25, 60, 120)] == [3, CHECK_MIN, 6, 15, 30]
    finally:
        settings.load_profile(was)


class _Item:
    """A collected test as tests/support/ordering.py sees it: a node id and its marks."""

    def __init__(self, nodeid: str, *marks: str) -> None:
        self.nodeid = nodeid
        self.marks = [SimpleNamespace(name=m) for m in marks]  # what ordering reads of a mark

    def iter_markers(self):
        return iter(self.marks)


def test_modules_with_long_tests_go_first_each_kept_whole_and_in_order() -> None:
    from tests.support.ordering import long_modules_first

    items = [
        _Item("tests/test_a.py::quick"),
        _Item("tests/test_b.py::lists", "s3"),
        _Item("tests/test_c.py::quick_one"),
        _Item("tests/test_c.py::draws", "browser"),
        _Item("tests/test_c.py::quick_two"),
        _Item("tests/test_d.py::waits", "slow"),
    ]
    long_modules_first(items)  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == [
        "tests/test_c.py::quick_one",
        "tests/test_c.py::draws",
        "tests/test_c.py::quick_two",
        "tests/test_d.py::waits",
        "tests/test_b.py::lists",
        "tests/test_a.py::quick",
    ]


def test_this_runs_collection_has_its_long_modules_first(request: pytest.FixtureRequest) -> None:
    from tests.support.ordering import module_of, module_ranks, modules_in_order

    items = request.session.items
    order = modules_in_order(items)
    # each module's tests together: a module seen again after another would show twice here
    runs = [
        module_of(i)
        for n, i in enumerate(items)
        if n == 0 or module_of(items[n - 1]) != module_of(i)
    ]
    assert runs == order
    module_rank = module_ranks(items)
    ranks = [module_rank[m] for m in order]
    assert ranks == sorted(ranks), list(zip(order, ranks, strict=True))
