"""Every page through AppTest against a small hand-made dataset, numbers checked independently.

The dataset is a plain folder of Parquet files (``__ingest_ts``, ``value``) written here with
pyarrow, times relative to the real clock so the relative presets apply. The expected numbers are
computed in this file from the Python rows (pandas/numpy), never by the queries the pages call.
"""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import pandas as pd
import plotly.io as pio
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from streamlit.testing.v1 import AppTest

from tests.support.apptest import app_under_test

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
A = "did:cf:alphaalphaalphaalpha01"
B = "did:cf:bravobravobravobravo02"
C = "did:cf:charliecharliecharlie3"
PAGES = ["overview", "agent", "timeline", "modes", "errors", "health", "explorer"]


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _make_rows(now: datetime) -> tuple[list[tuple[datetime, str]], pd.DataFrame]:
    """(ingest_ts, value) rows and the parsed cycles/events as a DataFrame (by hand)."""
    rng = random.Random(3)
    events: list[dict] = []

    def cycle(ts: datetime, agent: str | None, i: int) -> None:
        mode = ["think", "think", "reflection", "housekeeping"][i % 4]
        dur = rng.randint(500, 90_000)
        tools = rng.randint(0, 6)
        errs = rng.choice([0, 0, 0, 0, 1, 2])
        raw: dict = {
            "event_type": "agent.cycle",
            "agent": agent,
            "mode": mode,
            "durationMs": dur,
            "toolCalls": tools,
            "errors": errs,
            "_ts": _iso(ts),
        }
        if i % 17 == 0:
            raw["durationMs"] = str(dur)  # numeric string: parses
        if i % 23 == 0:
            raw["toolCalls"] = "n/a"  # not a number: NULL
            tools = None
        if agent is None:  # no agent in the event: it reads as "unknown", never as an agent
            del raw["agent"]
        events.append(
            {
                "ts": ts,
                "event_type": "agent.cycle",
                "agent": agent or "unknown",
                "mode": mode,
                "duration_ms": dur,
                "tool_calls": tools,
                "errors": errs,
                "raw": json.dumps(raw),
            }
        )

    # current 24 h: 120 cycles of A and B between 23 h and 1.1 h ago, and 6 in the last hour
    for i in range(120):
        ts = now - timedelta(hours=23) + timedelta(seconds=i * 21.9 * 3600 / 120)
        cycle(ts, A if i % 3 else B, i)
    for i in range(6):
        cycle(now - timedelta(minutes=50) + timedelta(minutes=7 * i), B, 200 + i)
    # 4 cycles without an agent, 6 hours ago
    for i in range(4):
        cycle(now - timedelta(hours=6) + timedelta(minutes=10 * i), None, 400 + i)
    # the previous 24 h: 60 cycles of A, B and C
    for i in range(60):
        ts = now - timedelta(hours=47) + timedelta(seconds=i * 21 * 3600 / 60)
        cycle(ts, [A, B, C][i % 3], 300 + i)
    # other event types (counted on their own)
    for i in range(5):
        ts = now - timedelta(hours=5, minutes=i)
        raw = {"event_type": "agent.wake", "agent": A, "_ts": _iso(ts)}
        events.append(
            {"ts": ts, "event_type": "agent.wake", "agent": A, "mode": "unknown",
             "duration_ms": None, "tool_calls": None, "errors": None, "raw": json.dumps(raw)}
        )  # fmt: skip
    rows = [(e["ts"] + timedelta(seconds=3), e["raw"]) for e in events]
    rows += [(now - timedelta(hours=3), '{"truncated'), (now - timedelta(hours=3), "[1, 2]")]
    df = pd.DataFrame(events)
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    return rows, df


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    from o11y_data import load_settings, sync

    root = tmp_path_factory.mktemp("pages")
    now = datetime.now(UTC)
    rows, df = _make_rows(now)
    src = root / "src" / "data"
    src.mkdir(parents=True)
    rows.sort(key=lambda r: r[0])
    for n, part in enumerate((rows[:100], rows[100:170], rows[170:])):
        table = pa.table(
            {
                "__ingest_ts": pa.array([r[0] for r in part], pa.timestamp("us", tz="UTC")),
                "value": pa.array([r[1] for r in part], pa.string()),
            }
        )
        pq.write_table(table, src / f"part-{n:03d}.parquet")
    env = {
        "O11Y_SOURCE_DIR": str(root / "src"),
        "O11Y_CACHE_DIR": str(root / "cache"),
        "O11Y_BACKGROUND_SYNC": "0",
        "O11Y_AGENTS_FILE": str(root / "agents.toml"),
    }
    (root / "agents.toml").write_text(f'[agents]\n"{A}" = "alpha-agent"\n')
    sync(load_settings(env, secrets_paths=[]))
    # AppTest re-detects a `pages/` folder before every run and would then run a page script on
    # its own (the pre-st.navigation layout) instead of app.py; the real server runs app.py's
    # st.navigation, so make AppTest do the same.
    with app_under_test(env):
        yield now, df


def run(page: str, params: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in (params or {}).items():
        at.query_params[k] = v
    at.switch_page(f"pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def window(now: datetime, hours: float = 24) -> tuple[pd.Timestamp, pd.Timestamp]:
    end = pd.Timestamp(now).ceil("min")
    return end - pd.Timedelta(hours=hours), end


def cycles_in(df: pd.DataFrame, start, end) -> pd.DataFrame:
    c = df[df["event_type"] == "agent.cycle"]
    return c[(c["ts"] >= start) & (c["ts"] < end)]


def _frame_with(at: AppTest, column: str) -> pd.DataFrame:
    """The one table on the page that has ``column``."""
    (found,) = [d.value for d in at.dataframe if column in d.value.columns]
    return found


def errors_shown(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def pct(x: float) -> str:
    return f"{x * 100:.1f}%"


# -- every page ------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_clean(dataset, page):
    at = run(page)
    assert not errors_shown(at)
    assert not at.warning or page == "timeline"  # the timeline may flag silent agents
    assert any("Last sync" in m.value for m in at.markdown)  # the freshness bar
    assert any("local folder" in m.value for m in at.markdown)  # the source in use


def test_overview_tiles_match_independent_numbers(dataset):
    now, df = dataset
    at = run("overview")
    start, end = window(now)
    cur = cycles_in(df, start, end)
    prev = cycles_in(df, start - pd.Timedelta(hours=24), start)
    m = metrics(at)
    agents = cur.loc[cur["agent"] != "unknown", "agent"]
    assert (cur["agent"] == "unknown").sum() == 4
    assert m["Agents active"] == str(agents.nunique()) == "2"  # unknown is not an agent
    assert m["Cycles"] == f"{len(cur):,}"
    assert m["Error rate"] == pct((cur["errors"] > 0).mean())
    p95 = np.percentile(cur["duration_ms"].astype(float), 95)
    p95_text = f"{p95 / 1000:.1f} s" if p95 < 60_000 else f"{p95 / 60000:.1f} min"
    assert m["p95 duration"] == p95_text
    p99 = np.percentile(cur["duration_ms"].astype(float), 99)
    assert m["p99 duration"] == (
        f"{p99 / 1000:.1f} s" if p99 < 60_000 else f"{p99 / 60000:.1f} min"
    )
    assert any("unknown (no agent): 4 cycles" in x.value for x in at.caption)
    assert m["Tool calls"] == f"{int(cur['tool_calls'].fillna(0).sum()):,}"
    deltas = {x.label: x.proto.delta for x in at.metric}
    assert deltas["Cycles"] == f"{(len(cur) - len(prev)) / len(prev) * 100:+.1f}%"
    assert deltas["Agents active"] == f"{(2 - 3) / 3 * 100:+.1f}%"

    table = _frame_with(at, "DID")  # the agents table (beside events by type, attention)
    # the agents by cycles, then unknown apart at the end, labelled as such
    assert list(table["DID"]) == [*agents.value_counts().index, "unknown"]
    shown = [unquote(link.split("#", 1)[1]) for link in table["Agent"]]  # what the link shows
    assert shown[-1] == "unknown (no agent)"
    by_agent = cur.groupby("agent").size()
    for _, row in table.iterrows():
        assert row["Cycles"] == by_agent[row["DID"]]
        assert f"agent={row['DID']}" in row["Timeline"].replace("%3A", ":")
        sub = cur.loc[cur["agent"] == row["DID"], "duration_ms"].astype(float)
        assert row["p99 s"] == pytest.approx(np.percentile(sub, 99) / 1000)
        assert row["p95 s"] == pytest.approx(np.percentile(sub, 95) / 1000)
    assert "alpha-agent" in shown  # the friendly name from agents.toml

    types = _frame_with(at, "Event type")
    assert dict(zip(types["Event type"], types["Events"], strict=True)) == {
        "agent.cycle": len(cur),
        "agent.wake": 5,
    }


def test_timeline_heatmap_counts_every_cycle(dataset):
    now, df = dataset
    at = run("timeline")
    start, end = window(now)
    cur = cycles_in(df, start, end)
    charts = at.get("plotly_chart")
    assert len(charts) == 3
    figs = [pio.from_json(c.proto.spec) for c in charts]
    heat = next(t for f in figs for t in f.data if t.type == "heatmap")
    assert int(np.nansum(np.asarray(heat.z, dtype=float))) == len(cur)
    strip = figs[1]
    dots = sum(len(t.x) for t in strip.data if t.name != "errors")
    rings = sum(len(t.x) for t in strip.data if t.name == "errors")
    assert dots == len(cur)
    assert rings == int((cur["errors"] > 0).sum())


def test_modes_table_matches(dataset):
    now, df = dataset
    at = run("modes")
    start, end = window(now)
    cur = cycles_in(df, start, end)
    table = at.dataframe[0].value
    expected = cur.groupby("mode").size()
    assert dict(zip(table["Mode"], table["Cycles"], strict=True)) == expected.to_dict()
    for _, row in table.iterrows():
        assert row["Share %"] == pytest.approx(expected[row["Mode"]] / len(cur) * 100)
        sub = cur[cur["mode"] == row["Mode"]]
        assert row["Avg tools"] == pytest.approx(sub["tool_calls"].astype(float).mean())


def legend_names(traces: list[dict]) -> list[str]:
    """A chart's series in legend order (legendrank: grey series are drawn first, under the
    coloured ones), without the marks that are not a series (too-thin buckets)."""
    series = [
        t
        for t in traces
        if t.get("showlegend") is not False and not (t.get("meta") or {}).get("thin")
    ]
    return [t["name"] for t in sorted(series, key=lambda t: t.get("legendrank", 1000))]


def test_errors_page_matches(dataset):
    now, df = dataset
    at = run("errors")
    start, end = window(now)
    cur = cycles_in(df, start, end)
    m = metrics(at)
    assert m["Error rate"] == pct((cur["errors"] > 0).mean())
    assert m["Cycles with errors"] == str(int((cur["errors"] > 0).sum()))
    assert m["Errors"] == str(int(cur["errors"].sum()))
    assert m["Errors per cycle"] == f"{cur['errors'].sum() / len(cur):.3f}"
    recent = at.dataframe[0].value
    err = cur[cur["errors"] > 0].sort_values("ts", ascending=False)
    assert len(recent) == min(50, len(err))
    assert list(recent["DID"])[:5] == list(err["agent"])[:5]
    assert at.json[0].value == json.dumps(json.loads(err.iloc[0]["raw"]))


def test_errors_split_by_agent_is_in_the_url_and_keeps_unknown_apart(dataset):
    at = run("errors")
    at.segmented_control(key="v_split").set_value("agent").run()
    assert not at.exception
    assert at.query_params["split"] in ("agent", ["agent"])
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert legend_names(spec["data"]) == [
        "alpha-agent",
        "did:cf:brav…vo02",
        "unknown (no agent)",
    ]
    # and a link with split=agent opens the same view
    at = run("errors", {"split": "agent"})
    assert at.segmented_control(key="v_split").value == "agent"
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "unknown (no agent)" in {t["name"] for t in spec["data"]}


def test_health_page_matches(dataset):
    now, df = dataset
    at = run("health")
    m = metrics(at)
    assert m["Unparseable rows"] == "2"
    end = pd.Timestamp(now).ceil("min")
    last_hour = df[(df["ts"] >= end - pd.Timedelta(hours=1)) & (df["ts"] < end)]
    assert m["Events, last hour"] == str(len(last_hour)) == "6"
    assert m["Live files"] == "3"
    assert m["Newest event"].endswith("ago")


def test_explorer_counts_search_and_downloads(dataset):
    now, df = dataset
    at = run("explorer")
    start, end = window(now)
    cur = df[(df["ts"] >= start) & (df["ts"] < end)]
    assert any(f"{len(cur):,} matching events" in c.value for c in at.caption)
    assert len(at.dataframe[0].value) == len(cur)

    at = run("explorer", {"q": "BRAVO"})
    n_b = int((cur["agent"] == B).sum())
    assert any(f"{n_b:,} matching events" in c.value for c in at.caption)

    # the downloads hold exactly the filtered view
    from o11y_data import load_settings, open_db
    from o11y_data.query.queries import Filters
    from ui import export

    db = open_db(load_settings(secrets_paths=[]))
    f = Filters(start.to_pydatetime(), end.to_pydatetime())
    parquet = pd.read_parquet(io.BytesIO(export.download(db, f, "bravo", fmt="parquet")))
    assert len(parquet) == n_b
    csv = pd.read_csv(io.BytesIO(export.download(db, f, "bravo", fmt="csv")))
    assert len(csv) == n_b and list(csv.columns) == list(parquet.columns)
    mine = cur[cur["agent"] == B].sort_values("ts", ascending=False)
    ms = [t.replace(microsecond=t.microsecond // 1000 * 1000) for t in mine["ts"]]  # as _ts
    assert list(csv["ts"]) == [t.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for t in ms]
    assert list(parquet["raw"]) == list(mine["raw"])


def test_filters_from_the_url_apply(dataset):
    now, df = dataset
    at = run("overview", {"agent": B, "mode": "think", "range": "24h"})
    start, end = window(now)
    cur = cycles_in(df, start, end)
    sel = cur[(cur["agent"] == B) & (cur["mode"] == "think")]
    assert metrics(at)["Cycles"] == f"{len(sel):,}"
    assert at.multiselect(key="f_agents").value == [B]
    assert at.multiselect(key="f_modes").value == ["think"]


def test_custom_range_and_errors_only(dataset):
    now, df = dataset
    s, e = now - timedelta(hours=10), now - timedelta(hours=2)
    params = {"range": "custom", "start": s.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "end": e.strftime("%Y-%m-%dT%H:%M:%SZ"), "errors": "1"}  # fmt: skip
    at = run("errors", params)
    c = df[df["event_type"] == "agent.cycle"]
    lo, hi = pd.Timestamp(s).floor("s"), pd.Timestamp(e).floor("s")
    sel = c[(c["ts"] >= lo) & (c["ts"] < hi) & (c["errors"] > 0)]
    assert metrics(at)["Cycles with errors"] == str(len(sel))
    assert metrics(at)["Error rate"] == "100.0%"


def test_no_data_reads_no_data(dataset):
    at = run("overview", {"range": "15m", "agent": C})
    assert any("No data" in i.value for i in at.info)
    assert not at.metric
    for page in PAGES:
        at = run(page, {"range": "15m", "agent": C})
        assert not errors_shown(at), page
        if page != "health":
            assert any("No data" in i.value for i in at.info), page


@pytest.mark.parametrize(
    "params, notice",
    [
        ({"range": "99y"}, "unknown time range"),
        ({"range": "custom", "start": "not-a-date", "end": "2026-01-01"}, "not a time"),
        ({"range": "custom", "start": "2026-02-01", "end": "2026-01-01"}, "not before end"),
        ({"agent": "'; DROP TABLE events; --"}, "unknown agent"),
        ({"agent": "did:cf:" + "x" * 5000}, "unknown agent"),
        ({"mode": "thinking"}, "unknown mode"),
        ({"errors": "maybe"}, "errors="),
        ({"tz": "Mars/Olympus"}, "unknown time zone"),
    ],
)
def test_bad_url_value_gives_a_notice(dataset, params, notice):
    for page in ("overview", "explorer"):
        at = run(page, params)
        assert any(notice in w.value for w in at.warning), [w.value for w in at.warning]
        assert not errors_shown(at)
        assert at.metric or page == "explorer"  # the page still shows its data


def test_reset_clears_the_url(dataset):
    at = run("modes", {"range": "6h", "mode": "think"})
    assert at.query_params.get("range") == "6h"
    at.button[0].click().run()
    assert not at.exception
    assert "range" not in at.query_params and "mode" not in at.query_params
    assert at.selectbox(key="f_range").value == "24h"


def test_changing_a_widget_writes_the_url(dataset):
    at = run("overview")
    at.selectbox(key="f_range").set_value("7d").run()
    assert at.query_params.get("range") == "7d"
    at.toggle(key="f_errors").set_value(True).run()
    assert at.query_params.get("errors") == "1"
    assert not at.exception


def test_time_zone_from_the_url_moves_every_shown_time(dataset):
    now, df = dataset
    tokyo = pd.Timedelta(hours=9)  # Asia/Tokyo is UTC+9 all year (no DST): by hand, no zoneinfo
    at = run("overview", {"tz": "Asia/Tokyo"})
    assert not at.warning and not errors_shown(at)
    assert at.selectbox(key="f_tz").value == "Asia/Tokyo"
    assert at.query_params.get("tz") == "Asia/Tokyo"
    assert at.selectbox(key="f_range").label == "Time range (Asia/Tokyo)"
    start, end = window(now)
    cur = cycles_in(df, start, end)
    table = _frame_with(at, "DID")
    assert "Last seen (UTC)" not in table.columns
    last_utc = cur.groupby("agent")["ts"].max().dt.floor("ms")  # the events carry milliseconds
    for _, row in table.iterrows():
        expected = last_utc[row["DID"]].tz_convert(None) + tokyo  # naive UTC + 9 h
        assert pd.Timestamp(row["Last seen (Asia/Tokyo)"]) == expected
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["xaxis"]["title"]["text"] == "Time (Asia/Tokyo)"
    newest = df["ts"].max().floor("ms").tz_convert(None) + tokyo
    bar = next(m.value for m in at.markdown if "Newest event" in m.value)
    assert f"{newest:%H:%M:%S} Asia/Tokyo" in bar

    at = run("explorer", {"tz": "Asia/Tokyo"})
    shown = at.dataframe[0].value
    first = pd.Timestamp(shown["Time (Asia/Tokyo)"].iloc[0])
    newest_in_view = df[(df["ts"] >= start) & (df["ts"] < end)]["ts"].max().floor("ms")
    assert first == newest_in_view.tz_convert(None) + tokyo


def test_time_zone_widget_writes_the_url_and_reset_returns_to_utc(dataset):
    at = run("overview")
    assert at.selectbox(key="f_tz").value == "UTC"
    assert at.selectbox(key="f_tz").options[0] == "UTC"
    at.selectbox(key="f_tz").set_value("Europe/Berlin").run()
    assert not at.exception
    assert at.query_params.get("tz") == "Europe/Berlin"
    assert any("times in Europe/Berlin" in c.value for c in at.caption)
    at.button[0].click().run()
    assert not at.exception
    assert "tz" not in at.query_params
    assert at.selectbox(key="f_tz").value == "UTC"


def test_changing_the_zone_keeps_a_custom_range(dataset):
    now, _ = dataset
    # whole minutes: the datetime inputs (like every widget change in a custom range) keep minutes
    s = now.replace(second=0, microsecond=0) - timedelta(hours=10)
    e = s + timedelta(hours=8)
    params = {"range": "custom", "start": s.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "end": e.strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip
    at = run("overview", params)
    assert at.datetime_input(key="f_start").label == "From (UTC)"
    at.selectbox(key="f_tz").set_value("Asia/Tokyo").run()
    assert not at.exception
    assert at.query_params.get("start") == params["start"]
    assert at.query_params.get("end") == params["end"]
    # the inputs now show Tokyo wall-clock times
    shown = at.datetime_input(key="f_start").value
    assert pd.Timestamp(shown) == pd.Timestamp(s).tz_convert(None) + pd.Timedelta(hours=9)
    assert at.datetime_input(key="f_start").label == "From (Asia/Tokyo)"
    # a time typed into the input is read in Tokyo and goes to the URL (and the queries) as UTC
    typed = (pd.Timestamp(s).tz_convert(None) + pd.Timedelta(hours=9 + 1)).to_pydatetime()
    at.datetime_input(key="f_start").set_value(typed).run()
    assert not at.exception
    assert at.query_params.get("start") == (s + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert at.query_params.get("tz") == "Asia/Tokyo"


def test_modes_table_shows_p99_beside_p50_and_p95(dataset):
    now, df = dataset
    at = run("modes")
    start, end = window(now)
    cur = cycles_in(df, start, end)
    table = at.dataframe[0].value
    for _, row in table.iterrows():
        sub = cur.loc[cur["mode"] == row["Mode"], "duration_ms"].astype(float)
        for p in (50, 95, 99):
            assert row[f"p{p} s"] == pytest.approx(np.percentile(sub, p) / 1000)


def test_who_went_quiet_never_lists_unknown(dataset):
    at = run("timeline", {"range": "7d"})
    quiet = at.dataframe[-1].value
    assert "unknown" not in set(quiet["DID"])
    assert set(quiet["DID"]) == {A, B, C}


def test_top_n_is_read_from_the_url_and_folds_the_rest_into_others(dataset):
    now, df = dataset
    start, end = window(now)
    cur = cycles_in(df, start, end)
    busiest = cur.loc[cur["agent"] != "unknown", "agent"].value_counts().index[0]
    at = run("timeline", {"top": "1"})
    assert at.selectbox(key="v_top").value == 1
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert legend_names(spec["data"]) == [
        "alpha-agent" if busiest == A else "did:cf:brav…vo02",
        "others (1 agent)",
        "unknown (no agent)",
    ]
    at = run("timeline", {"top": "nonsense"})
    assert any("top='nonsense'" in w.value for w in at.warning)


def test_the_refresh_picker_lives_in_the_url(dataset):
    at = run("overview")
    assert at.selectbox(key="f_refresh").value == "1m"
    assert "refresh" not in at.query_params  # the default keeps a clean URL
    at.selectbox(key="f_refresh").set_value("10s").run()
    assert not at.exception
    assert at.query_params.get("refresh") == "10s"
    assert metrics(at)["Cycles"]  # the page still shows its data

    at = run("errors", {"refresh": "off"})
    assert at.selectbox(key="f_refresh").value == "off"
    assert at.metric and not errors_shown(at)

    at = run("modes", {"refresh": "banana"})
    assert any("Ignored refresh=" in w.value for w in at.warning)
    assert at.selectbox(key="f_refresh").value == "1m"


def _linked_agents(links: pd.Series) -> list[str]:
    return [parse_qs(urlsplit(str(link)).query)["agent"][0] for link in links]


def test_overview_lists_the_agents_needing_attention_worst_first_as_the_wall_judges(dataset):
    """The overview answers "which agent is in trouble" before any chart: the agents the wall
    would not call healthy (its defaults: 1 h window, degraded at 10 % errors, stale after
    10 min, down after 1 h), worst first, each a link to its page. Judged here by hand."""
    now, df = dataset
    at = run("overview")
    assert any(s.value == "Agents needing attention" for s in at.subheader)
    table = next(d.value for d in at.dataframe if "State" in d.value.columns)
    cycles = df[(df["event_type"] == "agent.cycle") & (df["agent"] != "unknown")]
    judged = {}
    for agent, rows in cycles.groupby("agent"):
        age = (pd.Timestamp(now) - rows["ts"].max()).total_seconds()
        if age > 86400:  # not seen within the wall's 24 h horizon: not on it
            continue
        hour = rows[rows["ts"] >= pd.Timestamp(now) - pd.Timedelta(hours=1)]
        rate = (hour["errors"] > 0).mean() if len(hour) else 0.0
        judged[agent] = (
            "down" if age > 3600 else "stale" if age > 600 else "degraded" if rate >= 0.1 else None
        )
    order = ["down", "stale", "degraded"]
    troubled = [a for a, status in judged.items() if status]
    expected = sorted(troubled, key=lambda a: (order.index(judged[a]), a))
    assert expected == [A, B]  # the fixture's story: A went quiet, B has been quiet 15 min
    assert _linked_agents(table["Agent"]) == expected
    assert list(table["State"]) == [judged[a] for a in expected]
    # A has no cycle in the wall's hour: its rate and p95 cells are "—", never "None"
    down = table.iloc[expected.index(A)]
    assert (down["Error rate"], down["p95"]) == ("—", "—")
    assert "None" not in {str(v) for v in table.to_numpy().ravel()}
