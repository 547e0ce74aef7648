"""The Alerts page through AppTest (app.py's navigation) on a real synced store whose alerts were
evaluated by the data layer: states, values, thresholds, transitions, failed deliveries, silences,
the freshness bar's badge, and hostile agent names kept out of Markdown."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from o11y_data import EventsDB, load_settings, sync
from o11y_data import alerts as A
from o11y_data.ingest.iceberg_write import TableWriter, folder_put, unstructured_table
from tests.support.apptest import app_under_test

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
EVIL = "did:cf:**bold**<script>alert(1)</script>[x](http://evil)"


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _rows(agent: str, newest: datetime, n: int = 6) -> list:
    out = []
    for i in range(n):
        ts = newest - timedelta(minutes=3 * i)
        body = {"event_type": "agent.cycle", "agent": agent, "mode": "think", "durationMs": 900}
        body.update({"toolCalls": 1, "errors": 0, "_ts": _iso(ts)})
        out.append((ts + timedelta(seconds=1), json.dumps(body)))
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("alerts-page")
    now = datetime.now(UTC)
    writer = TableWriter(
        put=folder_put(root / "src"), bucket="agent-blobs", table_prefix="__r2_data_catalog/c/t/"
    )
    writer.append([unstructured_table(_rows(EVIL, now - timedelta(hours=2)))])
    env = {
        "O11Y_SOURCE_DIR": str(root / "src"),
        "O11Y_CACHE_DIR": str(root / "cache"),
        "O11Y_BACKGROUND_SYNC": "0",
        "O11Y_AGENTS_FILE": str(root / "no-agents.toml"),
        "O11Y_ALERTS_FILE": str(root / "alerts.toml"),
        # A closed port on loopback: deliveries fail at once and are recorded.
        "O11Y_ALERT_WEBHOOK": "http://127.0.0.1:9/hook/secret-path-token",
    }
    settings = load_settings(env, secrets_paths=[])
    sync(settings)
    db = EventsDB(settings.store_dir)
    try:
        ev = A.evaluate(settings, db)
        A.deliver_all(settings, ev.notices, attempts=1)
    finally:
        db.close()
    with app_under_test(env):
        yield settings


def run(params: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in (params or {}).items():
        at.query_params[k] = v
    at.switch_page("pages/alerts.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def markdown_text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.error] + [w.value for w in at.warning]
    return "\n".join(str(p) for p in parts)


def test_alerts_page_shows_each_rule_state_value_threshold_and_failed_deliveries(store):
    at = run()
    rules = at.dataframe[0].value
    firing = rules[rules["state"] == "firing"]
    assert set(firing["alert"]) == {"No data landing", "Agent silent"}
    silent = firing[firing["rule"] == "agent_silent"].iloc[0]
    assert silent["agent / mode"] == EVIL  # plain text in a table cell, whole
    assert silent["threshold"] == "> 30m"
    assert silent["value"].startswith("2h") or silent["value"].startswith("1h 5")
    assert set(rules["rule"]) == {"no_data_landing", "agent_silent", "error_rate", "sync_failing"}
    sync_row = rules[rules["rule"] == "sync_failing"].iloc[0]
    assert sync_row["state"] == "ok" and sync_row["threshold"] == "> 10m"
    history = at.dataframe[1].value
    assert set(history["to"]) == {"firing"} and len(history) == 2
    failed = at.dataframe[2].value
    assert len(failed) == 2 and set(failed["to"]) == {"http://127.0.0.1:9/…"}
    shown = markdown_text(at)
    assert "2 alerts firing" in shown  # the freshness bar's badge
    assert "secret-path-token" not in shown + failed.to_string()
    for bit in ("<script>", "**bold**", "[x](http://evil)", "did:cf:"):
        assert bit not in shown


def test_silencing_an_agent_is_stored_and_drops_it_from_the_firing_count(store):
    at = run()
    at.selectbox(key="silence_rule").set_value("agent_silent").run()
    assert at.selectbox(key="silence_key").options == ["(every one)", EVIL]
    at.selectbox(key="silence_key").set_value(EVIL)
    at.selectbox(key="silence_for").set_value("1h")
    at.button(key="silence_add").click().run()
    assert not at.exception
    silences = A.read_state(store.store_dir).silences
    assert [(s["rule"], s["key"]) for s in silences] == [("agent_silent", EVIL)]
    hours = (silences[0]["until"] - datetime.now(UTC).timestamp()) / 3600
    assert 0.95 < hours <= 1.0
    rules = at.dataframe[0].value
    assert rules[rules["rule"] == "agent_silent"].iloc[0]["silenced"] == "yes"
    assert "1 alert firing" in markdown_text(at)
    at.button(key="unsilence-0").click().run()
    assert A.read_state(store.store_dir).silences == []


def test_show_active_keeps_only_rules_that_need_attention_and_a_bad_value_is_named(store):
    at = run({"show": "active"})
    assert set(at.dataframe[0].value["state"]) == {"firing"}
    at = run({"show": "<b>nope</b>"})
    assert any("show value" in w.value for w in at.warning)
    assert len(at.dataframe[0].value) >= 4


def test_a_rule_in_error_shows_its_reason_and_a_stopped_evaluator_is_red(store):
    """A rule that could not be evaluated is a row in state error with its one-line reason; an
    evaluation older than 3 intervals says the evaluator has stopped."""
    path = store.store_dir / "alerts" / "state.json"
    saved = path.read_text()
    try:
        with A.locked_state(store.store_dir) as state:
            state.faults["error_rate"] = A.Fault(reason="Query failed: <b>boom</b>", since=1.0)
            state.evaluated_at -= 4 * store.sync_interval_s
        at = run()
        rules = at.dataframe[0].value
        row = rules[rules["rule"] == "error_rate"].iloc[0]
        assert row["state"] == "error" and row["value"] == "Query failed: <b>boom</b>"
        assert any("evaluator has stopped" in e.value for e in at.error)
        at = run({"show": "active"})
        assert "error" in set(at.dataframe[0].value["state"])
    finally:
        path.write_text(saved)


def test_the_wall_marks_an_alerting_agents_tile_and_a_stopped_evaluator_in_red():
    """An agent the wall would call healthy (1 h window) while its error-rate alert fires (15 min
    window) is degraded and its tile names the alert; no evaluation for 3 intervals is red."""
    from ui.wall import wall_html
    from ui.wall_logic import DEFAULT, AgentStats, Health, build_tiles

    now = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    stats = [
        AgentStats("did:cf:busy", now - timedelta(minutes=1), cycles=100, error_cycles=5),
        AgentStats("did:cf:calm", now - timedelta(minutes=1), cycles=100, error_cycles=0),
    ]
    state = A.AlertState(
        series={"s": A.Series("error_rate", "did:cf:busy", state="firing", since=1.0)},
        rules=[A.BUILTIN[2].to_json()],
    )
    tiles = build_tiles(stats, now, DEFAULT, alerting=A.firing_by_agent(state, now.timestamp()))
    by = {t.agent: t for t in tiles}
    assert by["did:cf:busy"].status == "degraded" and by["did:cf:busy"].alert == "Error rate high"
    assert by["did:cf:calm"].status == "healthy" and by["did:cf:calm"].alert is None
    state.evaluated_at, state.interval_s = now.timestamp() - 181, 60
    health = A.evaluator_health(state, now.timestamp(), 60)
    html = str(wall_html(tiles, None, Health(True, now), DEFAULT, now=now, evaluator=health))
    assert 'class="wall-eval red"' in html and "alerts stopped: last evaluated 3m ago" in html
    assert 'class="tile degraded alerting"' in html and "alert: Error rate high" in html
    state.evaluated_at = now.timestamp() - 179
    assert A.evaluator_health(state, now.timestamp(), 60).level == "ok"


def test_rules_say_what_they_measure_in_words_and_deliveries_are_counted_in_words(store):
    at = run()
    rules = at.dataframe[0].value
    assert "metric" not in rules.columns and "window" not in rules.columns
    by_rule = rules.set_index("rule")["measures"]
    assert by_rule["error_rate"] == "share of cycles with errors in the last 15m"
    assert by_rule["agent_silent"] == "time since the last cycle"
    assert "0 of the last 2 deliveries succeeded." in markdown_text(at)


def test_deliveries_line_never_says_0_of_0_and_counts_agree_in_number():
    from ui.sections.alerts import deliveries_line

    assert deliveries_line(0, 0) == "No deliveries yet."
    assert deliveries_line(1, 1) == "The one delivery so far succeeded."
    assert deliveries_line(0, 1) == "The one delivery so far failed."
    assert deliveries_line(3, 3) == "All of the last 3 deliveries succeeded."
    assert deliveries_line(1, 2) == "1 of the last 2 deliveries succeeded."
