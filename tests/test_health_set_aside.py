"""The health page lists files set aside by name (as inert text), reason and next retry."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from o11y_data import load_settings, sync
from tests.support.apptest import app_under_test
from tests.support.tables import event, plain_parquet, rows

APP = str(Path(__file__).resolve().parent.parent / "app.py")
HOSTILE = "<img src=x onerror=alert(1)> **bold** [l](x) :red[r].parquet"


@pytest.fixture
def app_env(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.parquet").write_bytes(plain_parquet(rows([event(ms=1), event(ms=2)])))
    (src / HOSTILE).write_bytes(b"PAR1 not parquet at all PAR1")
    env = {
        "O11Y_SOURCE_DIR": str(src),
        "O11Y_CACHE_DIR": str(tmp_path / "cache"),
        "O11Y_BACKGROUND_SYNC": "0",
        "O11Y_AGENTS_FILE": str(tmp_path / "agents.toml"),
    }
    report = sync(load_settings(env, secrets_paths=[]))
    assert list(report.bad_files) == [HOSTILE]
    with app_under_test(env):
        yield


def test_health_lists_set_aside_files_by_name_reason_and_next_retry_as_text(app_env):
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/health.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Files set aside" in [h.value for h in at.subheader]
    tables = [d.value for d in at.dataframe if "file" in d.value.columns]
    assert len(tables) == 1
    df = tables[0]
    assert list(df["file"]) == [HOSTILE]  # verbatim, as a cell's text
    assert "not a readable Parquet file" in df["reason"].iloc[0]
    assert int(df["tries"].iloc[0]) == 1 and df["next_retry_at"].notna().all()
    # The name never reaches anything Streamlit renders as Markdown or HTML.
    rendered = [m.value for m in at.markdown] + [c.value for c in at.caption]
    rendered += [e.value for e in at.error] + [w.value for w in at.warning]
    assert not [t for t in rendered if "onerror" in str(t) or "**bold**" in str(t)]
