"""The agent page through AppTest (app.py's navigation) on a small synced store, its numbers checked
against independent DuckDB queries over the store's Parquet segments (never the app's views,
planner or rollups); unknown and hostile agents in the URL; agent links on other pages.

One module-scoped store: a healthy agent, an erring one, and one with a hostile name that fell
silent for an hour and has been silent for the last 40 minutes. Every page here runs over a fixed
custom range, so a minute passing between the fixture and a page run moves nothing.
"""

from __future__ import annotations

import json
import re
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from o11y_data import EventsDB, load_settings, sync
from o11y_data import alerts as A
from o11y_data.durations import format_span
from o11y_data.ingest.iceberg_write import TableWriter, folder_put, unstructured_table
from o11y_data.ingest.store import Store
from o11y_data.query import queries as q
from tests.support.apptest import app_under_test

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
CALM = "did:cf:calmcalmcalmcalmcalm01"
ERRING = "did:cf:erringerringerring02"
EVIL = "did:cf:**bold**<img src=x onerror=alert(1)>[x](http://evil)_$x$_"
MD_SPECIAL = "\\`*_[]{}()<>#|:~$!+-.&"


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _cycle(agent: str, ts: datetime, i: int, *, errors: int) -> tuple[datetime, str]:
    body = {
        "event_type": "agent.cycle",
        "agent": agent,
        "mode": ("think", "think", "reflection", "housekeeping")[i % 4],
        "durationMs": 1000 + (i * 7919) % 90_000,
        "toolCalls": i % 5,
        "errors": errors,
        "_ts": _iso(ts),
    }
    return ts + timedelta(seconds=2), json.dumps(body)


def _rows(t: datetime) -> list[tuple[datetime, str]]:
    rows = []
    for i in range(47 * 30):  # every 2 min for 47 h, the newest cycle of all a minute ago
        rows.append(_cycle(CALM, t - timedelta(minutes=1 + 2 * i), i, errors=int(i % 15 == 0)))
    for i in range(30 * 12):  # every 5 min for 30 h, half of them with errors
        rows.append(_cycle(ERRING, t - timedelta(minutes=2 + 5 * i), i, errors=(i % 2) * 2))
    for i in range(30 * 20):  # every 3 min, silent 10 h to 9 h ago and for the last 40 min
        ts = t - timedelta(minutes=40 + 3 * i)
        if not t - timedelta(hours=10) < ts < t - timedelta(hours=9):
            rows.append(_cycle(EVIL, ts, i, errors=int(i % 11 == 0)))
    return rows


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("agent-page")
    t = datetime.now(UTC).replace(second=0, microsecond=0)
    writer = TableWriter(
        put=folder_put(root / "src"), bucket="agent-blobs", table_prefix="__r2_data_catalog/c/t/"
    )
    writer.append([unstructured_table(_rows(t))])
    env = {
        "O11Y_SOURCE_DIR": str(root / "src"),
        "O11Y_CACHE_DIR": str(root / "cache"),
        "O11Y_BACKGROUND_SYNC": "0",
        "O11Y_AGENTS_FILE": str(root / "agents.toml"),
        "O11Y_ALERTS_FILE": str(root / "no-alerts.toml"),
    }
    (root / "agents.toml").write_text(f'[agents]\n"{CALM}" = "calm-agent"\n')
    settings = load_settings(env, secrets_paths=[])
    sync(settings)
    db = EventsDB(settings.store_dir)
    try:
        A.evaluate(settings, db)  # the built-in rules: the hostile agent's silence fires
    finally:
        db.close()
    store = Store(settings.store_dir)
    segments = [str(store.segments / s.name) for s in store.load_head().segments]
    with app_under_test(env):
        yield t, segments, settings


def oracle(segments: list[str], sql: str, params: list) -> list[tuple]:
    """``sql`` over the store's Parquet segments as ``cyc`` (the parsed cycles), in DuckDB."""
    con = duckdb.connect()
    try:
        cyc = "SELECT * FROM read_parquet(?) WHERE parsed AND event_type = 'agent.cycle'"
        return con.execute(f"WITH cyc AS ({cyc}) {sql}", [segments, *params]).fetchall()
    finally:
        con.close()


def custom(t: datetime, hours: int = 24) -> dict[str, str]:
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return {"range": "custom", "start": (t - timedelta(hours=hours)).strftime(fmt),
            "end": t.strftime(fmt)}  # fmt: skip


def run(page: str, params: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in (params or {}).items():
        at.query_params[k] = v
    at.switch_page(f"pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def ms_text(ms: float) -> str:
    return f"{ms / 1000:.1f} s" if ms < 60_000 else f"{ms / 60_000:.1f} min"


def text_of(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [w.value for w in at.warning] + [h.value for h in at.header]
    return "\n".join(str(p) for p in parts)


def all_escaped(markdown: str) -> bool:
    """Every Markdown character in ``markdown`` is backslash-escaped: it shows as written."""
    chars = iter(markdown)
    for ch in chars:
        if ch == "\\":
            next(chars, None)  # the escaped character
        elif ch in MD_SPECIAL:
            return False
    return True


def shown(link: str) -> str:
    """What a LinkColumn shows of an agent link (its fragment, decoded)."""
    return unquote(link.split("#", 1)[1])


def _change(value: float, unit: str) -> str:
    """A change as the tiles word it: signed to one decimal; one that rounds to zero is ±0.0."""
    text = f"{value:+.1f}"
    return f"{'±0.0' if text in ('+0.0', '-0.0') else text}{unit}"


def test_the_tiles_and_deltas_equal_an_independent_query(store):
    t, segments, _ = store
    at = run("agent", {"agent": CALM, **custom(t)})
    assert not at.error and not at.warning
    assert at.header[0].value == "calm\\-agent"  # its friendly name, Markdown-escaped
    m = {x.label: x.value for x in at.metric}
    deltas = {x.label: x.proto.delta for x in at.metric}
    sql = (
        "SELECT count(*), count(*) FILTER (WHERE errors > 0), sum(errors), "
        "quantile_cont(duration_ms, 0.5), quantile_cont(duration_ms, 0.95), "
        "quantile_cont(duration_ms, 0.99) FROM cyc WHERE agent = ? AND ts >= ? AND ts < ?"
    )
    day = timedelta(hours=24)
    n, bad, errors, p50, p95, p99 = oracle(segments, sql, [CALM, t - day, t])[0]
    pn, pbad, perrors, _, _, pp99 = oracle(segments, sql, [CALM, t - 2 * day, t - day])[0]
    assert n == 720 and pn > 0  # the range holds what the data was built with
    assert m["Cycles"] == f"{n:,}"
    assert m["Error rate"] == f"{bad / n * 100:.1f}%"
    assert m["Errors"] == f"{errors:,}"
    assert (m["p50 duration"], m["p95 duration"], m["p99 duration"]) == tuple(
        ms_text(v) for v in (p50, p95, p99)
    )
    assert deltas["Cycles"] == _change((n - pn) / pn * 100, "%")
    assert deltas["Error rate"] == _change((bad / n - pbad / pn) * 100, " pp")
    assert deltas["p99 duration"] == _change((p99 - pp99) / pp99 * 100, "%")
    # durations by mode, against the same query per mode
    modes = at.dataframe[0].value.set_index("Mode")
    per_mode = oracle(
        segments,
        "SELECT mode, count(*), quantile_cont(duration_ms, 0.95) FROM cyc "
        "WHERE agent = ? AND ts >= ? AND ts < ? GROUP BY mode",
        [CALM, t - day, t],
    )
    for mode, cycles, mode_p95 in per_mode:
        assert modes.loc[mode, "Cycles"] == cycles
        assert modes.loc[mode, "p95 s"] == pytest.approx(mode_p95 / 1000)
    # its state as the wall judges it: a cycle a minute ago, 1 in 15 with errors (under 10 %)
    assert ":green-badge[HEALTHY]" in text_of(at)


def _silences(segments: list[str], t: datetime, agent: str) -> tuple[float, list[tuple]]:
    """The silence rule (docs/events.md) computed in Python over the agent's ts from DuckDB."""
    until = oracle(segments, "SELECT max(ts) FROM cyc", [])[0][0]
    ts = [r[0] for r in oracle(segments, "SELECT ts FROM cyc WHERE agent = ? ORDER BY ts", [agent])]
    gaps = [(a, b, (b - a).total_seconds()) for a, b in zip(ts, ts[1:], strict=False)]
    cadence = statistics.median(s for a, _, s in gaps if a >= until - timedelta(days=7))
    threshold = max(5 * cadence, 600)
    gaps.append((ts[-1], None, (until - ts[-1]).total_seconds()))
    start = t - timedelta(hours=24)
    found = [g for g in gaps if g[2] > threshold and (g[1] or until) > start]
    return cadence, sorted(found, key=lambda g: g[0], reverse=True)


def test_a_hostile_agent_page_is_inert_and_its_silences_match_an_independent_count(store):
    t, segments, _ = store
    at = run("agent", {"agent": EVIL, **custom(t)})
    assert not at.error and not at.warning
    title = at.header[0].value
    # every Markdown character of the name escaped: it shows as written, shapes nothing
    assert all_escaped(title)
    assert "<img" not in text_of(at).replace("\\<img", "")
    cadence, expected = _silences(segments, t, EVIL)
    assert cadence == 180.0 and len(expected) == 2  # the hour's hole and the last 40 minutes
    table = at.dataframe[1].value  # [0]: durations by mode
    assert list(table["Length"]) == [format_span(g[2]) for g in expected]
    assert list(table["Ongoing"]) == ["still silent", ""]
    froms = [x.to_pydatetime().replace(tzinfo=UTC) for x in table["From (UTC)"]]
    assert froms == [g[0].astimezone(UTC) for g in expected]
    # stale on the wall (no cycle for 40 minutes: after 10 minutes, before an hour)
    assert ":orange-badge[STALE]" in text_of(at)
    # its alerts: the built-in "agent silent" rule fires for it
    alerts = at.dataframe[2].value.set_index("Alert")
    assert alerts.loc["Agent silent", "State"] == "firing"


def test_an_unknown_agent_names_the_nearest_known_ones_with_links(store):
    t, _, _ = store
    at = run("agent", {"agent": "did:cf:erringerringerrinq02", **custom(t)})
    assert len(at.warning) == 1  # one line: the sidebar's own notice is not repeated
    line = at.warning[0].value
    assert line.startswith("No agent “did\\:cf\\:erringerringerrinq02” in the data. Nearest: ")
    urls = re.findall(r"\]\(([^)]+)\)", line)
    assert urls and parse_qs(urlsplit(urls[0]).query)["agent"] == [ERRING]
    assert urlsplit(urls[0]).path == "agent"
    assert parse_qs(urlsplit(urls[0]).query)["range"] == ["custom"]  # the filters kept
    assert at.dataframe  # and the picker below


@pytest.mark.parametrize(
    "value",
    [
        "<script>alert(1)</script>",
        "**bold** [x](javascript:alert(1)) :red[x]",
        "did:cf:" + "a" * 10_000,
    ],
)
def test_a_hostile_url_value_is_one_inert_line(store, value):
    at = run("agent", {"agent": value})
    assert len(at.warning) == 1 and not at.error
    line = at.warning[0].value
    assert len(line) < 400
    body = line.split("“", 1)[1].split("”", 1)[0]
    assert all_escaped(body)


def test_without_an_agent_the_picker_lists_agents_worst_first_as_links(store):
    at = run("agent")
    assert not at.warning and not at.error
    table = at.dataframe[0].value
    # the wall's order: stale before degraded before healthy
    assert list(table["State"]) == ["stale", "degraded", "healthy"]
    assert [shown(u) for u in table["Agent"]] == [EVIL, ERRING, "calm-agent"]
    agents = [parse_qs(urlsplit(u).query)["agent"][0] for u in table["Agent"]]
    assert agents == [EVIL, ERRING, CALM]


def test_a_table_links_each_agent_to_its_page_exactly(store):
    t, _, _ = store
    at = run("summary", custom(t))
    links = at.dataframe[0].value["agent"]
    for link in links:
        url = urlsplit(link)
        assert url.path == "agent"
        agent = parse_qs(url.query)["agent"][0]
        assert shown(link) == agent  # the summary shows whole DIDs
    assert EVIL in {parse_qs(urlsplit(u).query)["agent"][0] for u in links}
    # and the link opens that agent's page, the hostile one included
    evil = next(u for u in links if shown(u) == EVIL)
    params = {k: v[0] for k, v in parse_qs(urlsplit(evil).query).items()}
    page = run("agent", params)
    assert page.metric and not page.warning


def test_silences_need_a_cadence_and_one_agent(store):
    _, _, settings = store
    db = EventsDB(settings.store_dir)
    try:
        with pytest.raises(ValueError, match="exactly one agent"):
            q.silences(db, q.Filters())
        never = q.silences(db, q.Filters(agents=("did:cf:never",)))
        assert never.cadence_s is None and never.gaps == ()
    finally:
        db.close()


def _sidebar_to(at: AppTest, page: str) -> AppTest:
    """What the sidebar's navigation does: another page, opened without query parameters."""
    for k in list(at.query_params):
        del at.query_params[k]
    at.switch_page(f"pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_agent_pages_agent_does_not_become_the_agents_filter_of_other_pages(store):
    # The session's filters before: CALM picked in the sidebar, the last 6 hours.
    at = run("overview", {"agent": CALM, "range": "6h"})
    # The agent page for another agent (a table's link keeps the range, names its agent).
    at.query_params.clear()
    at.query_params.update({"agent": ERRING, "range": "6h"})
    at.switch_page("pages/agent.py")
    at.run()
    assert not at.exception and "erringerringerring02" in at.header[0].value
    # Back to the overview through the sidebar: the range is kept, the agents filter is CALM,
    # as it was, not the agent the agent page showed.
    at = _sidebar_to(at, "overview")
    assert at.query_params.get("range") in ("6h", ["6h"])
    assert at.multiselect(key="f_agents").value == [CALM]
    # Opened first, the agent page leaves other pages unfiltered.
    fresh = run("agent", {"agent": ERRING})
    fresh = _sidebar_to(fresh, "errors")
    assert fresh.multiselect(key="f_agents").value == []
    assert "agent" not in fresh.query_params


def test_a_filter_changed_on_the_agent_page_is_kept_without_its_agent(store):
    at = run("agent", {"agent": ERRING})
    at.selectbox(key="f_range").select("7d").run()
    assert not at.exception
    at = _sidebar_to(at, "modes")
    assert at.selectbox(key="f_range").value == "7d"
    assert at.multiselect(key="f_agents").value == []
