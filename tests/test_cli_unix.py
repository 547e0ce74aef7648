"""The CLI as a Unix tool: quiet on a closed pipe, says the window it read, names an unknown
agent with the nearest known ones, documents its exit codes, and its help has examples."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from o11y_data import cli as C
from o11y_data.ingest.store import Store
from tests.support.cli import ROOT, cli

COMMANDS = ["sync", "doctor", "status", "summary", "sql", "demo", "alerts", "watch"]
WINDOW = re.compile(r"^window: ", re.M)


def _env(demo_store) -> dict[str, str]:
    return {**demo_store.env, "HOME": str(demo_store.cache)}


def _segments(demo_store) -> list[str]:
    store = Store(demo_store.settings.store_dir)
    return [str(store.segments / s.name) for s in store.load_head().segments]


def _known_agents(demo_store) -> list[str]:
    found = duckdb.connect().execute(
        "SELECT DISTINCT agent FROM read_parquet(?) WHERE parsed ORDER BY 1",
        [_segments(demo_store)],
    )
    return [r[0] for r in found.fetchall()]


def test_summary_piped_into_head_stops_quietly(demo_store):
    # A real shell pipe; the sql query's 1 MB of CSV outruns the pipe's buffer, so the writer
    # surely meets the closed end.
    py = sys.executable
    for args in ("summary --range all", "sql 'SELECT * FROM range(200000)' --format csv"):
        done = subprocess.run(
            ["bash", "-c", f"{py} -m o11y_data {args} | head -1; exit ${{PIPESTATUS[0]}}"],
            cwd=ROOT, env={**os.environ, **_env(demo_store)}, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert done.returncode in (C.EXIT_OK, C.EXIT_CLOSED_PIPE), done.stderr
        assert len(done.stdout.splitlines()) == 1
        assert "Traceback" not in done.stderr and "error" not in done.stderr.lower(), done.stderr


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_summary_into_an_already_closed_pipe_exits_141_without_a_word(demo_store, fmt):
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write meets a closed pipe: no race with the reader
    try:
        done = subprocess.run(
            [sys.executable, "-m", "o11y_data", "summary", "--range", "all", "--format", fmt],
            cwd=ROOT, env={"PATH": "/usr/bin:/bin", **_env(demo_store)}, stdout=write_end,
            stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert done.returncode == C.EXIT_CLOSED_PIPE, done.stderr
    notes = [ln for ln in done.stderr.splitlines() if not ln.startswith(("window: ", "(source: "))]
    assert notes == []  # no error, no traceback: the notes it always writes, nothing else


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("summary",),
        ("summary", "--format", "csv"),
        ("summary", "--format", "json"),
        ("sql", "SELECT count(*) AS n FROM filtered_cycles"),
        ("sql", "SELECT 1 AS one", "--format", "json"),
        ("alerts",),
    ],
)
def test_every_command_that_reads_events_says_its_window_on_stderr(demo_store, args):
    done = cli(_env(demo_store), *args)
    assert done.returncode in (0, 1), done.stderr
    assert len(WINDOW.findall(done.stderr)) == 1, done.stderr
    assert not WINDOW.search(done.stdout)  # stdout stays the data


def test_summary_defaults_to_the_last_24h_as_the_dashboard_and_range_all_to_everything(demo_store):
    env = _env(demo_store)
    before = datetime.now(UTC)
    day = cli(env, "summary", "--format", "csv")
    after = datetime.now(UTC)
    everything = cli(env, "summary", "--format", "csv", "--range", "all")
    assert day.returncode == everything.returncode == 0, day.stderr + everything.stderr
    assert "window: last 24h (" in day.stderr and "window: all time" in everything.stderr
    start = re.search(r"\((\d{4}-\d\d-\d\d \d\d:\d\d) →", day.stderr).group(1)
    assert abs(
        datetime.strptime(start, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
        - (datetime.now(UTC) - timedelta(hours=24))
    ) < timedelta(minutes=5)

    def total(out: str) -> int:
        return sum(int(line.split(",")[2]) for line in out.splitlines()[1:])

    # the oracle: the cycles in the segment files, counted by DuckDB directly; the day's window
    # ended between `before` and `after` (the demo gains no rows: a later window holds no more)
    cycles_since = duckdb.connect().execute(
        "SELECT count(*) FILTER (WHERE ts >= ?), count(*) FILTER (WHERE ts >= ?), count(*) "
        "FROM read_parquet(?) WHERE parsed AND event_type = 'agent.cycle'",
        [before - timedelta(hours=24), after - timedelta(hours=24), _segments(demo_store)],
    )
    most, least, all_cycles = cycles_since.fetchall()[0]
    assert total(everything.stdout) == all_cycles
    assert least <= total(day.stdout) <= most
    assert total(day.stdout) < all_cycles


def test_an_unknown_agent_is_named_with_the_nearest_known_and_its_own_exit_code(demo_store):
    agents = [a for a in _known_agents(demo_store) if a.startswith("did:")]
    typo = agents[0][:-1]
    for command in (("summary",), ("sql", "SELECT count(*) FROM filtered_cycles")):
        done = cli(_env(demo_store), *command, "--agent", typo)
        assert done.returncode == C.EXIT_UNKNOWN_NAME == 3
        assert done.stdout == ""
        (line,) = done.stderr.splitlines()
        assert f"No agent named '{typo}'" in line and f"nearest: {agents[0]}" in line, line
    mode = cli(_env(demo_store), "summary", "--mode", "thnk")
    assert mode.returncode == 3 and "nearest: think" in mode.stderr
    # a known agent with nothing in the window is an empty answer, not an unknown name
    empty = cli(_env(demo_store), "summary", "--agent", agents[0], "--since", "2000-01-01",
                "--until", "2000-01-02")  # fmt: skip
    assert empty.returncode == C.EXIT_OK and "No data" in empty.stdout


def test_exit_codes_are_distinct_and_documented_in_help_and_docs():
    named = [v for k, v in vars(C).items() if k.startswith("EXIT_") and isinstance(v, int)]
    codes = set(named)
    assert len(codes) == len(named)
    docs = (ROOT / "docs" / "cli.md").read_text()
    table = set(map(int, re.findall(r"^\| (\d+) \|", docs, re.M)))
    listed = set(map(int, re.findall(r"^  (\d+) ", C.EXIT_CODES, re.M)))
    assert table == listed == codes
    assert cli({}, "summary", "--range", "forever").returncode == C.EXIT_USAGE


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_has_examples_for_users_and_the_exit_codes(command):
    done = cli({}, *([command] if command else []), "--help")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "examples:\n  python -m o11y_data " in text
    assert "exit codes:" in text and "141" in text
    assert "seed's" not in text  # no jargon of the team's history


def test_alerts_lines_read_as_sentences():
    from o11y_data.alerts.state import OkKeys
    from o11y_data.alerts.text import ok_sentence

    rule = {"metric": "error_rate", "comparison": ">", "threshold": 0.1, "window_s": 900,
            "scope": "per_agent"}  # fmt: skip
    keys = OkKeys(count=12, nearest=0.042, keys=[f"a{i}" for i in range(12)])
    assert ok_sentence(rule, keys) == (
        "12 agents checked, none over 10.0% in the last 15m (highest 4.2%)"
    )
    one = OkKeys(count=1, nearest=0.042, keys=["a"])
    assert ok_sentence(rule, one).startswith("1 agent checked, none over")
    net = {**rule, "scope": "all"}
    assert (
        ok_sentence(net, OkKeys(count=1, nearest=0.004)) == "0.4%, not over 10.0% in the last 15m"
    )
    age = {"metric": "cycle_age", "comparison": ">", "threshold": 1800, "scope": "per_agent"}
    assert ok_sentence(age, OkKeys()) == "no agents seen"
