"""``python -m o11y_data doctor`` against a real S3 server (moto_server over HTTP): a good set-up
exits 0 with every check ok; each broken one exits 1 with a FAIL line that carries its fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from o11y_data import load_settings
from o11y_data.doctor import run_checks
from tests.support.tables import append, event, new_table, r2_env, rows, s3_put
from tests.test_catalog import TOKEN, Catalog

ROOT = Path(__file__).resolve().parents[1]


def doctor(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), **env}
    return subprocess.run(
        [sys.executable, "-m", "o11y_data", "doctor"],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def lines_by_check(out: str) -> dict[str, str]:
    return {line[6:].split(":", 1)[0]: line for line in out.splitlines()}


def test_doctor_on_a_good_setup_says_every_check_is_ok(s3_admin, bucket, moto_endpoint, tmp_path):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    append(writer, rows([event(ms=1), event(ms=2)]), rows([event(ms=3)]))
    r = doctor(r2_env(moto_endpoint, bucket, tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    checks = lines_by_check(r.stdout)
    expected = ["configuration", "credentials", "bucket", "REST catalog", "table", "metadata"]
    expected += ["delete files", "newest data", "cache"]
    assert list(checks) == expected, r.stdout
    assert not [line for line in checks.values() if line.startswith("FAIL")]
    assert "read-only is enough" in checks["credentials"]
    assert f"found {writer.table_prefix}" in checks["table"]
    assert "2 live data files, 3 rows" in checks["metadata"]
    assert "testing-secret-value" not in r.stdout + r.stderr


def test_doctor_names_rejected_credentials_and_how_to_make_a_read_only_token(
    s3_admin, bucket, proxy, tmp_path
):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    append(writer, rows([event()]))
    proxy.fail_next(10_000, status=403, code="InvalidAccessKeyId")
    r = doctor(r2_env(proxy.endpoint, bucket, tmp_path))
    assert r.returncode == 1
    checks = lines_by_check(r.stdout)
    assert checks["credentials"].startswith("FAIL  credentials: R2 rejected the credentials")
    assert "fix: create an R2 API token with Object Read on the bucket" in checks["credentials"]
    assert checks["table"].startswith("skip")  # not a second failure for the same cause
    assert "Traceback" not in r.stdout + r.stderr


def test_doctor_names_a_missing_bucket_and_an_unwritable_cache(
    s3_admin, bucket, moto_endpoint, tmp_path
):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    r = doctor(r2_env(moto_endpoint, bucket + "-nope", not_a_folder))
    assert r.returncode == 1
    checks = lines_by_check(r.stdout)
    assert checks["bucket"].startswith("FAIL  bucket: Bucket not found")
    assert "fix: check O11Y_BUCKET" in checks["bucket"]
    assert checks["cache"].startswith("FAIL  cache:") and "O11Y_CACHE_DIR" in checks["cache"]


def test_doctor_reports_missing_configuration_as_a_failed_check(tmp_path):
    r = doctor({"O11Y_R2_ACCOUNT_ID": "abc", "O11Y_CACHE_DIR": str(tmp_path)})
    assert r.returncode == 1
    assert r.stdout.startswith("FAIL  configuration: R2 credentials missing")
    assert "Connect to your bucket" in r.stdout


@pytest.fixture
def rest_catalog():
    c = Catalog()
    yield c
    c.server.shutdown()


@pytest.mark.parametrize("token", [TOKEN, "wrong-token-789"])
def test_doctor_checks_the_rest_catalog_when_one_is_configured(
    s3_admin, bucket, moto_endpoint, tmp_path, rest_catalog, token
):
    writer = new_table(s3_put(s3_admin, bucket), bucket)
    append(writer, rows([event()]))
    meta = max(
        o["Key"]
        for o in s3_admin.list_objects_v2(Bucket=bucket, Prefix=writer.table_prefix)["Contents"]
        if o["Key"].endswith(".metadata.json")
    )
    rest_catalog.location = f"s3://{bucket}/{meta}"
    env = r2_env(
        moto_endpoint,
        bucket,
        tmp_path,
        O11Y_CATALOG_URI=rest_catalog.uri,
        O11Y_CATALOG_TOKEN=token,
        O11Y_CATALOG_WAREHOUSE="acct_agent-blobs",
    )
    checks = {c.name: c for c in run_checks(lambda: load_settings(env, secrets_paths=[]))}
    if token == TOKEN:
        assert all(c.ok for c in checks.values()), [c.line() for c in checks.values()]
        assert checks["REST catalog"].detail == f"agent_network.events -> s3://{bucket}/{meta}"
        assert checks["table"].detail.startswith(f"found {writer.table_prefix}")
    else:
        line = checks["REST catalog"].line()
        assert line.startswith("FAIL  REST catalog: Catalog rejected the token"), line
        assert "catalog.cloudflarestorage.com/<account>/<bucket>" in line
        assert "<account>_<bucket>" in line and "Data Catalog read" in line
        assert token not in line
        assert checks["table"].status == "skip"


def test_doctor_counts_the_delete_files_another_engine_wrote(
    s3_admin, bucket, moto_endpoint, tmp_path
):
    from tests.support.reference_tables import RefTable
    from tests.test_iceberg_reader import arrow_rows, events

    ref = RefTable.create(
        endpoint=moto_endpoint, s3=s3_admin, bucket=bucket, db=tmp_path / "catalog.db"
    )
    a = ref.append(arrow_rows(events(4, "did:cf:a")))[0]
    ref.append(arrow_rows(events(3, "did:cf:b")))
    env = r2_env(moto_endpoint, bucket, tmp_path / "cache")
    checks = {c.name: c for c in run_checks(lambda: load_settings(env, secrets_paths=[]))}
    assert checks["delete files"].detail == "none: every live row counts"
    ref.delete_positions({a: [0, 3]})  # a DELETE by another engine: one position delete file
    checks = {c.name: c for c in run_checks(lambda: load_settings(env, secrets_paths=[]))}
    line = checks["delete files"].line()
    assert line == (
        "ok    delete files: 1 delete file (1 position) on 1 data file: the sync applies them"
    ), line
    assert "2 live data files, 7 rows" in checks["metadata"].detail


def test_doctor_fails_the_metadata_check_when_refs_main_disagrees(
    s3_admin, bucket, moto_endpoint, tmp_path
):
    import json

    writer = new_table(s3_put(s3_admin, bucket), bucket)
    append(writer, rows([event(ms=1)]))
    append(writer, rows([event(ms=2)]))
    key = f"{writer.table_prefix}metadata/{writer.version:05d}-"
    meta_key = next(
        o["Key"]
        for o in s3_admin.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"]
        if o["Key"].endswith(".metadata.json")
    )
    meta = json.loads(s3_admin.get_object(Bucket=bucket, Key=meta_key)["Body"].read())
    meta["current-snapshot-id"] = meta["snapshots"][0]["snapshot-id"]  # refs.main: the newest
    s3_admin.put_object(Bucket=bucket, Key=meta_key, Body=json.dumps(meta).encode())
    r = doctor(r2_env(moto_endpoint, bucket, tmp_path))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    checks = lines_by_check(r.stdout)
    assert checks["metadata"].startswith("FAIL") and "Inconsistent table metadata" in r.stdout
    assert checks["newest data"].startswith("skip"), r.stdout
