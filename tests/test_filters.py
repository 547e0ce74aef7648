"""The URL <-> filters parsing and the other pure UI helpers, without Streamlit."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pandas as pd
import pytest

from o11y_data import load_settings
from o11y_data.query.queries import Filters
from ui import agents, fmt, tables
from ui import filters as F

AGENTS = ["did:cf:3zv2mwufxbv54byvsehogfqr", "did:cf:ajlj6hdu6gdpmrcg4be4umr4"]
MODES = ["housekeeping", "reflection", "think", "unknown"]
TYPES = ["agent.cycle", "agent.wake"]
NOW = datetime(2026, 2, 10, 12, 30, 15, tzinfo=UTC)


def parse(params):
    return F.parse_params(params, agents=AGENTS, modes=MODES, event_types=TYPES)


def test_no_params_is_the_default_view():
    s = parse({})
    assert s == F.FilterState() and not s.notices
    assert s.range == "24h" and F.to_params(s) == {}


@pytest.mark.parametrize("preset", list(F.PRESETS))
def test_every_preset(preset):
    s = parse({"range": preset})
    assert s.range == preset and not s.notices
    f = s.to_filters(NOW)
    if preset == "all":
        assert f.start is None and f.end is None
    else:
        assert f.end == datetime(2026, 2, 10, 12, 31, tzinfo=UTC)  # now, rounded up
        assert f.end - f.start == F.PRESETS[preset]


def test_unknown_preset_is_ignored_with_a_notice():
    s = parse({"range": "99y"})
    assert s.range == "24h"
    assert "unknown time range '99y'" in s.notices[0]


def test_custom_range():
    s = parse({"range": "custom", "start": "2026-02-01T00:00:00Z", "end": "2026-02-02"})
    assert not s.notices
    assert s.start == datetime(2026, 2, 1, tzinfo=UTC)
    assert s.end == datetime(2026, 2, 2, tzinfo=UTC)
    f = s.to_filters(NOW)
    assert (f.start, f.end) == (s.start, s.end)
    assert F.to_params(s) == {
        "range": "custom",
        "start": "2026-02-01T00:00:00Z",
        "end": "2026-02-02T00:00:00Z",
    }


def test_start_and_end_without_range_mean_custom():
    s = parse({"start": "2026-02-01T10:00:00+02:00", "end": "2026-02-01T12:00:00+02:00"})
    assert s.range == "custom" and s.start == datetime(2026, 2, 1, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    "params, words",
    [
        ({"range": "custom", "start": "yesterday", "end": "2026-02-02"}, "not a time"),
        ({"range": "custom", "start": "2026-02-01", "end": "2026-13-45"}, "not a time"),
        ({"range": "custom", "start": "2026-02-03", "end": "2026-02-02"}, "not before end"),
        ({"range": "custom", "start": "2026-02-02", "end": "2026-02-02"}, "not before end"),
        ({"range": "custom", "start": "2026-02-02"}, "needs both"),
        ({"range": "custom"}, "needs both"),
        ({"range": "custom", "start": "1" * 5000, "end": "2026-02-02"}, "not a time"),
        ({"range": "custom", "start": "0001-01-01", "end": "2026-02-02"}, "not a time"),
    ],
)
def test_bad_custom_ranges_fall_back_with_a_notice(params, words):
    s = parse(params)
    assert s.range == "24h" and s.start is None and s.end is None
    assert len(s.notices) == 1 and words in s.notices[0]
    assert len(s.notices[0]) < 200  # a long value is shortened in the notice


def test_start_end_with_a_preset_are_ignored():
    s = parse({"range": "1h", "start": "2026-02-01"})
    assert s.range == "1h" and s.start is None
    assert "only to range=custom" in s.notices[0]


def test_agents_modes_types_are_checked_against_known_values():
    s = parse(
        {
            "agent": [AGENTS[1], AGENTS[1], "did:cf:nobody", ""],
            "mode": ["think", "THINK"],
            "type": ["agent.wake"],
        }
    )
    assert s.agents == (AGENTS[1],)  # deduplicated, unknown dropped, blank skipped
    assert s.modes == ("think",)
    assert s.event_types == ("agent.wake",)
    assert any("agent 'did:cf:nobody'" in n for n in s.notices)
    assert any("mode 'THINK'" in n for n in s.notices)


@pytest.mark.parametrize(
    "evil",
    [
        "'; DROP TABLE events; --",
        "did:cf:x' OR '1'='1",
        "think) OR (1=1",
        "<script>alert(1)</script>",
        "x" * 10_000,
        "did:cf:" + "a" * 300,
    ],
)
def test_sql_fragments_and_long_strings_are_refused(evil):
    # even with no known list (the data could not be read), the shape check refuses these
    s = F.parse_params({"agent": evil, "mode": evil, "type": evil})
    assert s.agents == s.modes == s.event_types == ()
    assert len(s.notices) == 3
    assert all(len(n) < 200 for n in s.notices)


def test_too_many_values_are_capped():
    s = F.parse_params({"agent": [f"did:cf:a{i}" for i in range(500)]})
    assert len(s.agents) == F.MAX_VALUES
    assert any("first" in n for n in s.notices)


def test_errors_flag():
    assert parse({"errors": "1"}).errors_only
    assert parse({"errors": "true"}).errors_only
    assert not parse({"errors": "0"}).errors_only
    s = parse({"errors": "maybe"})
    assert not s.errors_only and "errors='maybe'" in s.notices[0]


def test_round_trip_through_the_url():
    s = F.FilterState(
        range="7d",
        agents=tuple(AGENTS),
        modes=("think",),
        event_types=(TYPES[0],),
        errors_only=True,
    )
    params = F.to_params(s)
    assert params == {
        "range": "7d",
        "agent": AGENTS,
        "mode": ["think"],
        "type": ["agent.cycle"],
        "errors": "1",
    }
    assert parse(params) == s


def test_to_filters_carries_everything():
    s = parse({"range": "1h", "agent": AGENTS[0], "mode": "think", "type": "agent.wake"})
    f = s.to_filters(NOW)
    assert f == Filters(
        datetime(2026, 2, 10, 11, 31, tzinfo=UTC),
        datetime(2026, 2, 10, 12, 31, tzinfo=UTC),
        (AGENTS[0],),
        ("think",),
        ("agent.wake",),
        False,
    )
    assert f.previous().end == f.start


def test_describe():
    assert F.describe(F.FilterState()) == "Last 24 hours"
    s = parse({"range": "custom", "start": "2026-02-01", "end": "2026-02-02", "agent": AGENTS})
    assert F.describe(s).startswith("2026-02-01 00:00 → 2026-02-02 00:00 UTC · 2 agents")


def test_ceil_minute():
    assert F.ceil_minute(datetime(2026, 1, 1, 0, 0, tzinfo=UTC)) == datetime(2026, 1, 1, tzinfo=UTC)
    assert F.ceil_minute(NOW) == datetime(2026, 2, 10, 12, 31, tzinfo=UTC)


# -- agents ----------------------------------------------------------------------------------


def test_short_did_and_names(tmp_path):
    assert agents.short_did("did:cf:3zv2mwufxbv54byvsehogfqr") == "did:cf:3zv2…gfqr"
    assert agents.short_did("did:cf:short") == "did:cf:short"
    assert agents.short_did("unknown") == "unknown"
    # one short form everywhere, and a huge or odd agent string cannot take over a label
    assert agents.short_did("") == "unknown"
    assert len(agents.short_did("x" * 100_000)) == 21
    assert len(agents.short_did("did:cf:" + "W" * 100_000)) <= 21
    assert agents.short_did("planner-agent") == "planner-agent"
    path = tmp_path / "agents.toml"
    path.write_text(f'[agents]\n"{AGENTS[0]}" = "planner"\n')
    names = agents.load_names(path)
    assert names == {AGENTS[0]: "planner"}
    assert agents.label(AGENTS[0], names) == "planner"
    assert agents.label(AGENTS[1], names) == "did:cf:ajlj…umr4"
    assert agents.load_names(tmp_path / "missing.toml") == {}
    (tmp_path / "bad.toml").write_text("[agents\n")
    assert agents.load_names(tmp_path / "bad.toml") == {}
    settings = load_settings({"O11Y_AGENTS_FILE": str(path)}, secrets_paths=[])
    assert agents.agents_file(settings) == path


def test_labels_are_unique():
    names = {AGENTS[0]: "twin", AGENTS[1]: "twin"}
    labs = agents.labels(AGENTS, names)
    assert len(set(labs.values())) == 2


# -- formatting and freshness ----------------------------------------------------------------


def test_formatting_says_no_data_not_zero():
    assert fmt.fmt_int(None) == fmt.fmt_pct(float("nan")) == fmt.fmt_ms(pd.NA) == "No data"
    assert fmt.fmt_int(0) == "0"
    assert fmt.fmt_pct(0.0321) == "3.2%"
    assert fmt.fmt_ms(850) == "850 ms" and fmt.fmt_ms(12_340) == "12.3 s"
    assert fmt.fmt_ms(84_000) == "1.4 min"
    assert fmt.fmt_ts(pd.NaT) == "No data"
    assert fmt.fmt_ts(NOW) == "2026-02-10 12:30:15 UTC"


def test_change_against_previous_period():
    assert fmt.change(110, 100) == "+10.0%"
    assert fmt.change(0.05, 0.03, kind="points") == "+2.0 pp"
    assert fmt.change(5, 0) == "new"
    assert fmt.change(5, None) is None and fmt.change(None, 5) is None


# The freshness rules, written out here rather than read from ui/fmt.py: the newest event is
# amber from 15 min, red from 1 h; the last sync is amber from 3 sync intervals (at least 2 min),
# red from 15 min (at least twice the amber age).
NEWEST_EVENT = [(0, "ok"), (899.999, "ok"), (900, "amber"), (3599.999, "amber"), (3600, "red")]
LAST_SYNC = [  # (sync interval, age, level): both "at least"s taken, at and around each edge
    (60, 0, "ok"), (60, 179.9, "ok"), (60, 180, "amber"), (60, 899.9, "amber"), (60, 900, "red"),
    (10, 119.9, "ok"), (10, 120, "amber"), (10, 899.9, "amber"), (10, 900, "red"),
    (600, 1799.9, "ok"), (600, 1800, "amber"), (600, 3599.9, "amber"), (600, 3600, "red"),
]  # fmt: skip


@pytest.mark.parametrize(("age", "level"), NEWEST_EVENT)
def test_the_newest_event_turns_amber_at_15_minutes_and_red_at_an_hour(age, level):
    assert fmt.newest_event_level(age) == level


@pytest.mark.parametrize(("interval", "age", "level"), LAST_SYNC)
def test_the_last_sync_turns_amber_at_three_intervals_and_red_at_15_minutes(interval, age, level):
    assert fmt.last_sync_level(age, interval) == level


def test_an_unknown_age_is_red_and_reads_never():
    assert fmt.newest_event_level(None) == "red"
    assert fmt.last_sync_level(None, 60) == "red"  # never synced
    assert fmt.fmt_age(None) == "never"


def test_an_age_is_the_seconds_between_two_times():
    assert fmt.age_s(NOW - timedelta(seconds=30), NOW) == 30 and fmt.fmt_age(90) == "1m ago"


def test_a_failed_sync_is_red_however_recent_and_ages_use_one_format():
    assert fmt.last_sync_level(5, 60, failed=True) == "red"
    assert fmt.last_sync_level(5, 60, failed=False) == "ok"
    # ages as the freshness bar and the wall both show them
    assert [fmt.fmt_age(s) for s in (0, 45, 60, 3780, 90000)] == [
        "0s ago",
        "45s ago",
        "1m ago",
        "1h 03m ago",
        "1d 1h ago",
    ]
    # one duration format (the wall shows a dash where pages say "No data")
    assert fmt.fmt_ms(None) == "No data" and fmt.fmt_ms(None, empty=fmt.DASH) == "—"
    assert fmt.as_utc(pd.Timestamp("2026-01-01 00:00")) == datetime(2026, 1, 1, tzinfo=UTC)
    assert fmt.as_utc(pd.NaT) is None and fmt.as_utc("not a time") is None


def test_tables():
    hourly = pd.DataFrame(
        {
            "hour": pd.to_datetime(
                ["2026-02-10 09:00", "2026-02-10 10:00", "2026-02-10 11:00", "2026-02-10 12:00"],
                utc=True,
            ),
            "events": [100, 300, 200, 5],
        }
    )
    assert tables.usual_hourly(hourly, NOW) == 200.0  # the current (partial) hour left out
    assert tables.usual_hourly(hourly.iloc[3:], NOW) is None
    url = tables.page_url("timeline", {"range": "1h", "mode": ["think"]}, agent=AGENTS[0])
    assert url == "timeline?range=1h&mode=think&agent=did%3Acf%3A3zv2mwufxbv54byvsehogfqr"
    last = pd.DataFrame(
        {
            "agent": AGENTS,
            "last_ts": [NOW - timedelta(minutes=1), NOW - timedelta(hours=2)],
            "last_mode": ["think", "think"],
            "cycles": [3, 4],
        }
    )
    quiet = tables.silent_agents(last, NOW)
    assert list(quiet["agent"]) == [AGENTS[1], AGENTS[0]]
    assert list(quiet["silent"]) == [True, False]


# -- time zone -------------------------------------------------------------------------------


def test_tz_defaults_to_utc_and_stays_out_of_the_url():
    s = parse({})
    assert s.tz == "UTC" and s.zone is UTC
    assert "tz" not in F.to_params(s)
    assert parse({"tz": "utc"}).tz == "UTC" and not parse({"tz": "utc"}).notices


@pytest.mark.parametrize(
    "raw, name",
    [("Europe/Berlin", "Europe/Berlin"), ("asia/tokyo", "Asia/Tokyo"), (" UTC ", "UTC")],
)
def test_valid_tz_is_kept_in_its_canonical_name(raw, name):
    s = parse({"tz": raw})
    assert s.tz == name and not s.notices
    assert s.zone.utcoffset(datetime(2026, 7, 1)) == ZoneInfo(name).utcoffset(datetime(2026, 7, 1))


@pytest.mark.parametrize(
    "raw",
    ["Mars/Olympus", "../../etc/passwd", "Europe/Berlin; DROP", "x" * 500, "/etc/localtime"],
)
def test_unknown_tz_is_ignored_with_a_notice(raw):
    s = parse({"tz": raw, "range": "1h"})
    assert s.tz == "UTC" and s.range == "1h"
    assert len(s.notices) == 1 and "unknown time zone" in s.notices[0]
    assert "tz" not in F.to_params(s)


def test_tz_round_trips_through_the_url_and_reset_drops_it():
    s = F.FilterState(range="6h", tz="Asia/Tokyo", errors_only=True)
    params = F.to_params(s)
    assert params == {"range": "6h", "errors": "1", "tz": "Asia/Tokyo"}
    assert parse(params) == s
    assert not s.is_default() and F.FilterState().tz == "UTC"
    assert replace(s, tz="UTC") != s  # a zone is part of the view


def test_custom_range_without_offset_is_read_in_the_zone_and_kept_utc():
    s = parse({"tz": "Asia/Tokyo", "range": "custom", "start": "2026-02-10T09:00",
               "end": "2026-02-10T21:00"})  # fmt: skip
    assert not s.notices
    # 09:00 in Tokyo (UTC+9, no DST) is 00:00 UTC; computed by hand, not with zoneinfo
    assert s.start == datetime(2026, 2, 10, 0, 0, tzinfo=UTC)
    assert s.end == datetime(2026, 2, 10, 12, 0, tzinfo=UTC)
    f = s.to_filters(NOW)
    assert f.start.tzinfo is not None and f.start.utcoffset() == timedelta(0)
    # the URL keeps UTC with a Z, so the link is unambiguous whatever its tz says
    assert F.to_params(s)["start"] == "2026-02-10T00:00:00Z"
    assert parse(F.to_params(s)) == s
    # an explicit offset wins over tz
    s2 = parse({"tz": "Asia/Tokyo", "range": "custom", "start": "2026-02-10T09:00Z",
                "end": "2026-02-10T10:00Z"})  # fmt: skip
    assert s2.start == datetime(2026, 2, 10, 9, tzinfo=UTC)
    assert F.describe(s).startswith("2026-02-10 09:00 → 2026-02-10 21:00 Asia/Tokyo")
    assert F.describe(parse({"tz": "Asia/Tokyo"})) == "Last 24 hours · times in Asia/Tokyo"


def test_timezone_choices():
    z = F.timezone_choices()
    assert z[0] == "UTC" and z.count("UTC") == 1
    assert z[1 : 1 + len(F.COMMON_TZ)] == [c for c in F.COMMON_TZ if c in z]
    assert len(z) == len(set(z))
    rest = z[1 + len(F.COMMON_TZ) :]
    assert rest == sorted(rest)
    assert set(z) == available_timezones() | {"UTC"}


def test_times_for_people_follow_the_zone():
    assert fmt.fmt_ts(NOW, "Asia/Tokyo") == "2026-02-10 21:30:15 Asia/Tokyo"
    assert fmt.fmt_ts(NOW, "America/New_York") == "2026-02-10 07:30:15 America/New_York"
    assert fmt.fmt_clock(NOW, "Asia/Kolkata") == "18:00:15"
    s = fmt.local(pd.Series([NOW, NOW + timedelta(hours=1)]), "Asia/Tokyo")
    assert list(s) == [pd.Timestamp("2026-02-10 21:30:15"), pd.Timestamp("2026-02-10 22:30:15")]
    assert s.dt.tz is None
    overview = pd.DataFrame(
        {
            "agent": [AGENTS[0]],
            "cycles": [3],
            "error_rate": [0.0],
            "p50_ms": [1000.0],
            "p95_ms": [2000.0],
            "p99_ms": [2500.0],
            "avg_tools": [1.0],
            "think_share": [1.0],
            "reflection_share": [0.0],
            "housekeeping_share": [0.0],
            "last_seen": [NOW],
        },
        index=[7],  # not a RangeIndex: the converted column must not be realigned
    )
    t = tables.agent_table(overview, {}, {}, tz="Asia/Tokyo")
    assert list(t["Last seen (Asia/Tokyo)"]) == [pd.Timestamp("2026-02-10 21:30:15")]
    assert "Last seen (UTC)" in tables.agent_table(overview, {}, {}).columns


@pytest.mark.parametrize(
    "agent",
    ["did:cf:with space", "did:cf:🦊fox", "did:cf:quo'te\"s", " padded ", "名前", "x" * 500],
)
def test_any_agent_string_the_data_holds_is_taken_from_the_link_exactly(agent):
    known = ["did:cf:plain", agent]
    s = F.parse_params({"agent": [agent]}, agents=known)
    assert s.agents == (agent,)
    assert not s.notices
    # and it survives the round trip through the URL form
    assert F.parse_params(F.to_params(s), agents=known).agents == (agent,)
