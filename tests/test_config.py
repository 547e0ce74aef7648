"""Configuration: environment over secrets.toml, R2 defaults, and secrets that never show."""

from __future__ import annotations

from pathlib import Path

import pytest

from o11y_data import O11yError, load_settings
from o11y_data.config import secret_values


def write_secrets(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "secrets.toml"
    p.write_text(body)
    return p


def test_environment_wins_over_secrets_file(tmp_path):
    secrets = write_secrets(
        tmp_path,
        '[r2]\naccount_id = "acct123"\naccess_key_id = "FROMFILE"\n'
        'secret_access_key = "file-secret"\nbucket = "from-file"\n',
    )
    s = load_settings(
        {"O11Y_BUCKET": "from-env", "O11Y_CACHE_DIR": str(tmp_path)}, secrets_paths=[secrets]
    )
    assert s.endpoint == "https://acct123.r2.cloudflarestorage.com"
    assert s.bucket == "from-env" and s.kind == "r2"
    assert s.access_key_id.get() == "FROMFILE"


def test_no_configuration_means_demo(tmp_path):
    s = load_settings({"O11Y_CACHE_DIR": str(tmp_path)}, secrets_paths=[])
    assert s.kind == "demo" and s.bucket == "agent-blobs" and "demo" in s.source_label


def test_secrets_never_show_in_repr_labels_or_errors(tmp_path):
    s = load_settings(
        {
            "O11Y_R2_ENDPOINT": "https://x.r2.cloudflarestorage.com",
            "O11Y_R2_ACCESS_KEY_ID": "AKIDSECRET",
            "O11Y_R2_SECRET_ACCESS_KEY": "shh-42",
            "O11Y_CATALOG_TOKEN": "tok-99",
        },
        secrets_paths=[],
    )
    shown = repr(s) + s.source_label + str(s.source_id)
    for value in secret_values(s):
        assert value not in shown
    assert sorted(secret_values(s)) == ["AKIDSECRET", "shh-42", "tok-99"]


def test_endpoint_without_keys_is_a_one_line_error():
    with pytest.raises(O11yError, match="credentials missing"):
        load_settings({"O11Y_R2_ENDPOINT": "https://x.example"}, secrets_paths=[])


def test_table_prefix_gets_its_slash():
    s = load_settings({"O11Y_TABLE_PREFIX": "__r2_data_catalog/a/b"}, secrets_paths=[])
    assert s.table_prefix == "__r2_data_catalog/a/b/"


def test_a_given_secrets_section_is_used_under_the_environment(tmp_path):
    # The app hands over Streamlit's st.secrets["r2"]; the environment still wins.
    section = {
        "endpoint": "https://e.example",
        "access_key_id": "K",
        "secret_access_key": "S",
        "O11Y_BUCKET": "from-secrets",
    }
    s = load_settings({"O11Y_CACHE_DIR": str(tmp_path)}, secrets=section)
    assert (s.endpoint, s.bucket, s.access_key_id.get()) == (
        "https://e.example",
        "from-secrets",
        "K",
    )
    s = load_settings({"O11Y_BUCKET": "env", "O11Y_CACHE_DIR": str(tmp_path)}, secrets=section)
    assert s.bucket == "env"


def test_sync_memory_cap_defaults_to_2gb_and_takes_a_size(tmp_path):
    base = {"O11Y_CACHE_DIR": str(tmp_path)}
    assert load_settings(base, secrets_paths=[]).sync_memory == "2GB"
    s = load_settings({**base, "O11Y_SYNC_MEMORY": "512 MB"}, secrets_paths=[])
    assert s.sync_memory == "512MB"


@pytest.mark.parametrize("value", ["lots", "2", "1e9", "2GB; SET x=1"])
def test_a_bad_sync_memory_cap_is_a_one_line_error(tmp_path, value):
    with pytest.raises(O11yError) as e:
        load_settings(
            {"O11Y_CACHE_DIR": str(tmp_path), "O11Y_SYNC_MEMORY": value}, secrets_paths=[]
        )
    assert e.value.one_line().startswith("Bad O11Y_SYNC_MEMORY") and "\n" not in e.value.one_line()


def test_app_keys_load_and_the_wall_token_is_a_secret_that_is_redacted(tmp_path):
    secrets = write_secrets(tmp_path, '[wall]\ntoken = "file-wall-token"\n')
    env = {
        "O11Y_CACHE_DIR": str(tmp_path),
        "O11Y_AGENTS_FILE": str(tmp_path / "names.toml"),
        "O11Y_BACKGROUND_SYNC": "no",
        "O11Y_WALL_ERR": "20%",
        "O11Y_WALL_TZ": "  ",
    }
    s = load_settings(env, secrets_paths=[secrets])
    assert s.agents_file == tmp_path / "names.toml" and s.background_sync is False
    assert dict(s.wall_defaults) == {"err": "20%"}  # blank values are no default
    assert s.wall_token.get() == "file-wall-token" and "file-wall-token" not in repr(s)
    assert "file-wall-token" in secret_values(s)
    s = load_settings({**env, "O11Y_WALL_TOKEN": "env-wins"}, secrets_paths=[secrets])
    assert s.wall_token.get() == "env-wins"
    d = load_settings({"O11Y_CACHE_DIR": str(tmp_path)}, secrets_paths=[])
    assert (d.agents_file, d.background_sync, d.wall_defaults, d.wall_token) == (
        Path("agents.toml"),
        True,
        (),
        None,
    )


def test_a_bad_number_keeps_its_cause_for_the_log(tmp_path):
    with pytest.raises(O11yError, match="Bad O11Y_SYNC_INTERVAL") as info:
        load_settings({"O11Y_SYNC_INTERVAL": "soon", "O11Y_CACHE_DIR": str(tmp_path)})
    assert isinstance(info.value.__cause__, ValueError) and "soon" in str(info.value.__cause__)


def test_an_unreadable_secrets_file_chains_no_cause_that_could_quote_it(tmp_path):
    bad = write_secrets(tmp_path, '[r2]\nsecret_access_key = "unterminated-canary\n')
    with pytest.raises(O11yError, match="Cannot read secrets file") as info:
        load_settings({"O11Y_CACHE_DIR": str(tmp_path)}, secrets_paths=[bad])
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_the_log_redacts_secrets_in_chained_causes(tmp_path):
    import logging

    from o11y_data.logs import RedactingFormatter

    canary = "chain-canary-7331"
    try:
        try:
            raise OSError(f"connect to https://x:{canary}@host failed")
        except OSError as exc:
            raise O11yError("Cannot reach the Iceberg REST catalog", "host") from exc
    except O11yError as exc:
        record = logging.LogRecord("o11y_data", logging.ERROR, __file__, 1, "failed", (), None)
        record.exc_info = (type(exc), exc, exc.__traceback__)
    text = RedactingFormatter([canary]).format(record)
    assert "The above exception was the direct cause" in text and "OSError" in text
    assert canary not in text and "***" in text
