"""The wall page through AppTest (the real app.py, switched to pages/wall.py) on a tiny table whose
numbers are worked out by hand below."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from o11y_data import O11yError, load_settings, sync
from o11y_data.ingest.iceberg_write import TableWriter, folder_put, unstructured_table
from o11y_data.ingest.store import Store

REPO = Path(__file__).resolve().parent.parent
PREFIX = "__r2_data_catalog/cat0/tbl0/"

A = "did:cf:aaaaaaaaaaaaaaaaaaaaaaa1"  # degraded: 2 of 6 cycles with errors
B = "did:cf:bbbbbbbbbbbbbbbbbbbbbbb2"  # stale: last cycle 15 minutes ago
C = "did:cf:ccccccccccccccccccccccc3"  # down: last cycle 2 hours ago
D = "did:cf:ddddddddddddddddddddddd4"  # healthy


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def cycle(agent: str, t: datetime, duration: int, errors: int = 0, **extra: object) -> tuple:
    event = {
        "event_type": "agent.cycle",
        "agent": agent,
        "mode": "think",
        "durationMs": duration,
        "toolCalls": 1,
        "errors": errors,
        "_ts": _iso(t),
        **extra,
    }
    return (t + timedelta(seconds=2), json.dumps(event))


def rows(now: datetime) -> list[tuple]:
    m = lambda minutes: now - timedelta(minutes=minutes)  # noqa: E731
    return [
        # A: six cycles in the last hour, two with errors; durations 10..60 s
        cycle(A, m(1), 10_000),
        cycle(A, m(5), 20_000, errors=2),
        cycle(A, m(10), 30_000),
        cycle(A, m(20), 40_000, errors=1),
        cycle(A, m(30), 50_000),
        cycle(A, m(50), 60_000),
        # B: two cycles in the window, one before it
        cycle(B, m(15), 5_000),
        cycle(B, m(25), 7_000),
        cycle(B, m(70), 9_000, errors=1),
        # C: silent for two hours
        cycle(C, m(120), 1_000),
        # D: two clean cycles and an event that is not a cycle (counted nowhere here)
        cycle(D, m(2), 3_000),
        cycle(D, m(40), 4_000),
        (m(3), json.dumps({"event_type": "agent.wake", "agent": D, "_ts": _iso(m(3))})),
    ]


def quantile_cont(values: list[float], q: float) -> float:
    """DuckDB's quantile_cont (linear interpolation), written out independently."""
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


# Worked out by hand from rows(): window = last hour.
EXPECTED = {
    A: {"status": "degraded", "cycles": "6", "error_rate": "33%", "p95": "57.5 s", "age": "1m"},
    B: {"status": "stale", "cycles": "2", "error_rate": "0.0%", "p95": "6.9 s", "age": "15m"},
    C: {"status": "down", "cycles": "0", "error_rate": "—", "p95": "—", "age": "2h"},
    D: {"status": "healthy", "cycles": "2", "error_rate": "0.0%", "p95": "4.0 s", "age": "2m"},
}


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    now = datetime.now(UTC)
    src, cache = tmp_path / "src", tmp_path / "cache"
    writer = TableWriter(put=folder_put(src), bucket="agent-blobs", table_prefix=PREFIX)
    writer.append([unstructured_table(rows(now))])
    env = {
        "O11Y_SOURCE_DIR": str(src),
        "O11Y_CACHE_DIR": str(cache),
        "O11Y_BACKGROUND_SYNC": "0",
        "O11Y_AGENTS_FILE": str(tmp_path / "no-agents.toml"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for k in ("O11Y_R2_ENDPOINT", "O11Y_R2_ACCOUNT_ID", "O11Y_TABLE_PREFIX", "O11Y_CATALOG_URI"):
        monkeypatch.delenv(k, raising=False)
    settings = load_settings(secrets_paths=[])
    sync(settings)
    st.cache_resource.clear()  # the app's settings/db are per process: start from this source
    st.cache_data.clear()
    yield {"src": src, "cache": cache, "store": settings.store_dir}
    st.cache_resource.clear()
    st.cache_data.clear()


def run_wall(params: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    for k, v in (params or {}).items():
        at.query_params[k] = v
    at.switch_page("pages/wall.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def wall_html(at: AppTest) -> str:
    blocks = [m.value for m in at.markdown if 'class="wall"' in m.value]
    assert len(blocks) == 1, [m.value[:80] for m in at.markdown]
    return blocks[0]


def tiles(html: str) -> dict[str, dict[str, str]]:
    out = {}
    for chunk in html.split('<div class="tile ')[1:]:
        agent = re.search(r'data-agent="([^"]+)"', chunk).group(1)
        out[agent] = {
            "status": re.search(r'data-status="(\w+)"', chunk).group(1),
            "age": re.search(r'class="t-age"[^>]*>([^<]+)<', chunk).group(1),
            **{
                k: re.search(rf'data-k="{k}"><b>([^<]+)</b>', chunk).group(1)
                for k in ("cycles", "error_rate", "p95")
            },
        }
    return out


def cycles_in_the_last_hour(now: datetime) -> dict[str, list[float]]:
    """Each agent's cycle durations in the wall's default window, read off the rows as written
    (no cycle sits within minutes of the window's edge, so ``now`` may differ by seconds)."""
    out: dict[str, list[float]] = {}
    for _landed, raw in rows(now):
        event = json.loads(raw)
        ts = datetime.fromisoformat(event["_ts"].replace("Z", "+00:00"))
        if event["event_type"] == "agent.cycle" and now - ts < timedelta(hours=1):
            out.setdefault(event["agent"], []).append(event["durationMs"])
    return out


def test_each_p95_on_the_wall_is_the_interpolated_95th_percentile_of_the_hours_cycles(
    source: dict[str, Path],
) -> None:
    html = wall_html(run_wall())
    durations = cycles_in_the_last_hour(datetime.now(UTC))
    shown = {agent: tile["p95"] for agent, tile in tiles(html).items()}
    want = {a: f"{quantile_cont(d, 0.95) / 1000:.1f} s" for a, d in durations.items()}
    assert shown == {**want, C: "—"}  # C has no cycle in the window: a dash, not a zero
    # A's six cycles tell the interpolated p95 (57.5 s) from the nearest-rank one (60.0 s)
    assert shown[A] == "57.5 s" and shown[B] == "6.9 s"
    network = quantile_cont([v for d in durations.values() for v in d], 0.95)
    assert re.search(rf'data-k="p95"><span class="k">p95</span><b>{network / 1000:.1f} s</b>', html)


def test_wall_renders_tiles_with_hand_computed_numbers(source: dict[str, Path]) -> None:
    at = run_wall()
    html = wall_html(at)
    got = tiles(html)
    assert set(got) == set(EXPECTED)
    for agent, want in EXPECTED.items():
        assert got[agent] == want, agent
    # network totals over the four tiles: 10 cycles, 2 with errors
    assert re.search(r'data-k="agents"><b>4</b>', html)
    assert re.search(r'data-k="cycles"><span class="k">cycles/1h</span><b>10</b>', html)
    assert re.search(r'data-k="error_rate"><span class="k">error rate</span><b>20%</b>', html)
    durations = [10e3, 20e3, 30e3, 40e3, 50e3, 60e3, 5e3, 7e3, 3e3, 4e3]
    assert quantile_cont(durations, 0.95) == pytest.approx(55_500)
    assert re.search(r'data-k="p95"><span class="k">p95</span><b>55.5 s</b>', html)
    assert 'class="wall-banner' not in html and 'class="t-asof"' not in html
    # kiosk: the CSS that hides Streamlit's chrome is on the page, and there are no widgets
    assert any('[data-testid="stSidebar"]' in m.value for m in at.markdown)
    assert len(at.button) == 0 and len(at.selectbox) == 0 and len(at.text_input) == 0


def test_url_thresholds_change_statuses(source: dict[str, Path]) -> None:
    at = run_wall({"err": "60%", "stale": "20m", "down": "3h", "window": "30m"})
    got = tiles(wall_html(at))
    assert got[A]["status"] == "healthy"  # 2 of 4 cycles in 30 min = 50% < 60%
    assert got[A]["cycles"] == "4" and got[A]["error_rate"] == "50%"
    assert got[B]["status"] == "healthy"  # 15 min < 20 min
    assert got[C]["status"] == "stale"  # 2 h < 3 h
    assert got[D]["cycles"] == "1"


def test_url_agent_list(source: dict[str, Path]) -> None:
    at = run_wall({"agents": "aaaaaaaa1,bbbbbbbb2,did:cf:eeeeeeeeeeeeeeeeeeeeeee5"})
    got = tiles(wall_html(at))
    assert set(got) == {A, B, "did:cf:eeeeeeeeeeeeeeeeeeeeeee5"}
    assert got["did:cf:eeeeeeeeeeeeeeeeeeeeeee5"]["status"] == "down"  # listed, never seen


def test_bad_params_give_a_notice_not_an_exception(source: dict[str, Path]) -> None:
    at = run_wall(
        {"window": "abc", "err": "lots", "refresh": "-1", "stale": "9h", "tz": "Nowhere/X"}
    )
    html = wall_html(at)
    notice = re.search(r'<span class="notice" role="note">([^<]+)</span>', html).group(1)
    for part in ("window=abc", "err=lots", "refresh=-1", "tz=Nowhere/X", "shorter than down"):
        assert part in notice
    assert tiles(html) == EXPECTED  # defaults kept: the same numbers as without params
    assert "Traceback" not in html


def test_failing_sync_shows_banner_and_marks_tiles_as_of(source: dict[str, Path]) -> None:
    store = Store(source["store"])
    last_ok = datetime.now(UTC) - timedelta(minutes=3)
    store.write_status(
        ok=False, last_error="Cannot reach R2: timed out", last_success_at=last_ok.timestamp()
    )
    html = wall_html(run_wall())
    assert 'class="wall-banner red"' in html
    assert "Sync failing: Cannot reach R2: timed out" in html
    assert 'class="wall-grid asof"' in html
    assert html.count(f"as of {last_ok:%H:%M}") == 4
    # judged at the last good sync, three minutes ago: A's newest cycle (1 min ago) is "newer"
    got = tiles(html)
    assert got[B]["age"] == "12m" and got[C]["status"] == "down"


def test_old_sync_is_not_shown_as_current(source: dict[str, Path]) -> None:
    store = Store(source["store"])
    last_ok = datetime.now(UTC) - timedelta(minutes=30)
    store.write_status(ok=True, last_error=None, last_success_at=last_ok.timestamp())
    html = wall_html(run_wall())
    assert "Data is out of date: last sync at" in html and "30m ago" in html
    assert 'class="wall-grid asof"' in html


def test_unreachable_source_before_any_sync(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("O11Y_SOURCE_DIR", str(tmp_path / "missing"))
    monkeypatch.setenv("O11Y_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("O11Y_BACKGROUND_SYNC", "0")
    st.cache_resource.clear()
    st.cache_data.clear()
    with pytest.raises(O11yError):  # the first sync fails: nothing to show but the reason
        sync(load_settings(secrets_paths=[]))
    try:
        html = wall_html(run_wall())
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()
    assert 'class="wall-banner red"' in html and "Source folder not found" in html
    assert "No data yet." in html
