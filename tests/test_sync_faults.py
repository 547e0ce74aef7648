"""Set aside only what is bad at the source: disk, transport and throttling faults against a real
S3 server (moto_server over HTTP, through the fault proxy), then one sync restores every row.

Reference counts are the events each test wrote (plain Python), never our own reader's output.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import unquote

import pytest

from o11y_data import O11yError, open_db, sync
from o11y_data.errors import LocalIOError, TransportError
from o11y_data.ingest.store import Store
from tests.support.tables import append, event, new_table, r2_settings, rows, s3_put

sync_mod = importlib.import_module("o11y_data.ingest.sync")  # the module; ``sync`` is its function
sync_module = sync_mod


def padded_events(n: int, start_ms: int = 0) -> list[str]:
    """Events with an incompressible field, so files and segments have a predictable size."""
    return [
        json.dumps({**json.loads(event(ms=start_ms + i)), "note": os.urandom(48).hex()})
        for i in range(n)
    ]


def count_rows(settings) -> int:
    return int(open_db(settings).query("SELECT count(*) AS n FROM events_all").iloc[0].n)


def gets_of(proxy, key: str) -> int:
    paths = [unquote(p.split("?")[0]) for m, p in proxy.requests if m == "GET"]
    return sum(1 for p in paths if p.endswith(key))


# -- a full cache disk ---------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A real 8 MB tmpfs mounted at tmp_path/disk (we run as root; skipped where mount is not
    permitted)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def leave_free(disk: Path, free_bytes: int) -> None:
    """Fill ``disk`` with a ballast file so about ``free_bytes`` stay free."""
    ballast = disk / "ballast"
    ballast.unlink(missing_ok=True)
    room = shutil.disk_usage(disk).free - free_bytes
    with open(ballast, "wb") as fh:
        fh.write(b"\0" * max(room, 0))


def test_a_full_cache_disk_fails_in_one_line_sets_nothing_aside_and_recovers(
    s3_admin, bucket, moto_endpoint, small_disk
):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    files = [padded_events(2500, 0), padded_events(2500, 10_000)]
    keys = append(writer, *(rows(f) for f in files))
    expected = sum(len(f) for f in files)
    raw_bytes = sum(s3_admin.head_object(Bucket=bucket, Key=k)["ContentLength"] for k in keys)
    settings = r2_settings(moto_endpoint, bucket, small_disk / "cache")
    store = Store(settings.store_dir)

    # 1. No room for the downloads.
    leave_free(small_disk, raw_bytes // 3)
    with pytest.raises(LocalIOError) as err:
        sync(settings)
    line = err.value.one_line()
    assert line.startswith("cache disk full: ") and " MB more" in line, line
    assert "needs about" in line and str(settings.store_dir) in line
    assert store.current_number() == 0  # nothing published
    assert "cache disk full" in store.read_status()["last_error"]

    # 2. Room for the downloads, not for the segment DuckDB writes (the path that used to set
    #    every file aside as "unreadable (IOException)").
    leave_free(small_disk, raw_bytes + 80_000)
    with pytest.raises(LocalIOError, match="cache disk full") as err:
        sync(settings)
    assert "IOException" in type(err.value.__cause__).__name__, repr(err.value.__cause__)
    assert store.current_number() == 0
    assert not (settings.store_dir / "quarantine").exists()

    # 3. Space freed: one sync completes with every row, nothing set aside.
    (small_disk / "ballast").unlink()
    report = sync(settings)
    assert (report.rows, report.bad_files) == (expected, {})
    assert count_rows(settings) == expected
    assert store.load().bad_files == {}


def test_a_read_only_cache_disk_fails_in_one_line_and_the_next_sync_completes(
    s3_admin, bucket, moto_endpoint, small_disk
):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    append(writer, rows(padded_events(10)))
    settings = r2_settings(moto_endpoint, bucket, small_disk / "cache")
    assert sync(settings).rows == 10
    append(writer, rows(padded_events(7, 100)))
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        with pytest.raises(LocalIOError) as err:
            sync(settings)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert err.value.one_line().startswith("cache disk is read-only: "), err.value.one_line()
    assert "O11Y_CACHE_DIR" in err.value.one_line()
    report = sync(settings)
    assert (report.rows, report.bad_files) == (17, {})
    assert count_rows(settings) == 17


# -- transport faults --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["short", "flip"])
def test_a_damaged_download_is_retried_then_fails_the_sync_never_sets_the_file_aside(
    s3_admin, bucket, proxy, tmp_path, mode
):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    files = [padded_events(40, 0), padded_events(30, 100)]
    append(writer, *(rows(f) for f in files))
    settings = r2_settings(proxy.endpoint, bucket, tmp_path)
    store = Store(settings.store_dir)

    # Damaged on every try: the sync fails in one line naming the file; nothing is set aside.
    proxy.corrupt(".parquet", mode, times=-1)
    with pytest.raises(TransportError) as err:
        sync(settings)
    what = "cut short" if mode == "short" else "corrupted"
    assert what in err.value.one_line() and ".parquet" in err.value.one_line()
    assert store.current_number() == 0 and not (settings.store_dir / "quarantine").exists()

    # A transient fault (the first two responses): retried within the sync, every row arrives.
    proxy.reset()
    proxy.corrupt(".parquet", mode, times=2)
    report = sync(settings)
    assert len(proxy.corrupted) >= 2 + 1  # the damaged ones were really served
    assert (report.rows, report.bad_files) == (sum(map(len, files)), {})
    assert count_rows(settings) == sum(map(len, files))


def test_a_file_corrupt_at_the_source_is_set_aside_after_a_fresh_download_and_retried_later(
    s3_admin, bucket, proxy, tmp_path, monkeypatch
):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    good = padded_events(5)
    append(writer, rows(good))
    bad_key = f"{writer.table_prefix}data/__ingest_ts_day=2026-11-02/broken.parquet"
    garbage = b"PAR1" + os.urandom(3000) + b"PAR1"
    s3_admin.put_object(Bucket=bucket, Key=bad_key, Body=garbage)
    writer.commit([(bad_key, 10, len(garbage), 0)])
    settings = r2_settings(proxy.endpoint, bucket, tmp_path)
    t0 = time.time()
    monkeypatch.setattr(sync_module, "_now", lambda: t0)

    report = sync(settings)
    assert report.rows == len(good) and list(report.bad_files) == [bad_key]
    assert gets_of(proxy, bad_key) == 2  # set aside only after a second, fresh download
    rec = Store(settings.store_dir).load().bad_files[bad_key]
    assert (rec.attempts, rec.next_retry_at) == (1, t0 + sync_mod.RETRY_FIRST_S)

    # Not due yet and unchanged at the source: not fetched again.
    proxy.clear_requests()
    report = sync(settings)
    assert not report.changed and gets_of(proxy, bad_key) == 0

    # Due: fetched afresh though nothing changed at the source; the wait doubles.
    later = t0 + sync_mod.RETRY_FIRST_S + 1
    monkeypatch.setattr(sync_module, "_now", lambda: later)
    proxy.clear_requests()
    report = sync(settings)
    assert gets_of(proxy, bad_key) == 2 and report.rows == len(good)
    rec = Store(settings.store_dir).load().bad_files[bad_key]
    assert (rec.attempts, rec.set_aside_at) == (2, t0)
    assert rec.next_retry_at == later + 2 * sync_mod.RETRY_FIRST_S


def test_thirty_percent_503_slowdown_still_completes(s3_admin, bucket, proxy, tmp_path):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    files = [padded_events(3, 10 * i) for i in range(12)]
    for f in files:
        append(writer, rows(f))  # 12 snapshots: manifests, lists and data files to fetch
    proxy.set_fail_rate(0.3, status=503, code="SlowDown", seed=3)
    report = sync(r2_settings(proxy.endpoint, bucket, tmp_path))
    assert report.rows == sum(map(len, files)) and not report.bad_files
    throttled = len(proxy.requests) - report.live_files  # lower bound on refused requests
    assert throttled > 0


def test_a_stalled_metadata_get_is_a_timeout_naming_the_key(s3_admin, bucket, proxy, tmp_path):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    append(writer, rows([event()]))
    proxy.stall(".metadata.json", 4)
    settings = r2_settings(proxy.endpoint, bucket, tmp_path, O11Y_R2_TIMEOUT="1")
    with pytest.raises(O11yError) as err:
        sync(settings)
    line = err.value.one_line()
    assert "R2 did not answer in 1 s reading" in line, line
    key = re.escape(writer.table_prefix) + r"metadata/\d{5}-[^ ;]+\.metadata\.json;"
    assert re.search("reading " + key, line), line
    assert "No event table" not in line
    proxy.reset()
    assert sync(settings).rows == 1  # and once R2 answers again, the sync completes


def test_a_body_that_stalls_midway_is_a_timeout_naming_the_file_nothing_set_aside(
    s3_admin, bucket, proxy, tmp_path
):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    (key,) = append(writer, rows(padded_events(300)))
    settings = r2_settings(proxy.endpoint, bucket, tmp_path, O11Y_R2_TIMEOUT="1")
    proxy.corrupt(".parquet", "hold", times=-1, hold_s=3)
    with pytest.raises(TransportError) as err:
        sync(settings)
    line = err.value.one_line()
    assert line.startswith(f"Timed out: R2 did not answer in 1 s reading {key};"), line
    assert Store(settings.store_dir).current_number() == 0
    assert not (settings.store_dir / "quarantine").exists()
    proxy.reset()
    assert sync(settings).rows == 300


# -- observability -----------------------------------------------------------------------------


def test_a_failing_sync_logs_the_chained_cause_and_never_a_secret(
    s3_admin, bucket, proxy, tmp_path
):
    from o11y_data.config import secret_values
    from o11y_data.logs import setup_logging

    writer = new_table(s3_put(s3_admin, bucket), bucket)
    append(writer, rows([event()]))
    settings = r2_settings(
        proxy.endpoint,
        bucket,
        tmp_path,
        O11Y_R2_ACCESS_KEY_ID="AKIDLOGCANARY5150",
        O11Y_R2_SECRET_ACCESS_KEY="log-secret-canary-8086",
    )
    path = setup_logging(settings)
    try:
        proxy.fail_next(10_000, status=403, code="InvalidAccessKeyId")
        with pytest.raises(O11yError, match="R2 rejected the credentials"):
            sync(settings)
        # A message carrying a secret (as a careless caller might log) is redacted too.
        logging.getLogger("o11y_data.test").error("oops %s", settings.secret_access_key.get())
    finally:
        for name in ("o11y_data", "ui"):
            for h in list(logging.getLogger(name).handlers):
                if type(h).__name__ == "_OurFileHandler":
                    logging.getLogger(name).removeHandler(h)
                    h.close()
    text = path.read_text()
    assert "sync of R2 bucket" in text and "R2 rejected the credentials" in text
    assert "Traceback" in text and "botocore.exceptions.ClientError" in text  # the chained cause
    assert "oops ***" in text
    assert not [s for s in secret_values(settings) if s in text]
