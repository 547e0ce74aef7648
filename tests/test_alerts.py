"""Alerts end to end: real local sources synced into a real store, DuckDB over real Parquet, a real
HTTP receiver on loopback, real processes sharing one flock. Expected values are computed here from
the rows written, never by the alert queries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from o11y_data import EventsDB, O11yError, load_settings, sync
from o11y_data import alerts as A
from o11y_data.ingest.iceberg_write import TableWriter, folder_put, unstructured_table
from tests.support.receiver import running_receiver
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parent.parent
PREFIX = "__r2_data_catalog/cat0/tbl0/"
PUBLIC = "https://dash.example.org"
FAST = {"base_delay_s": 0.05, "timeout_s": 5.0}


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def cycle(agent: str | None, ts: datetime, *, errors: int = 0, lag_s: float = 2.0):
    body = {"event_type": "agent.cycle", "mode": "think", "durationMs": 1000, "toolCalls": 1}
    body.update({"errors": errors, "_ts": _iso(ts)})
    if agent is not None:
        body["agent"] = agent
    return (ts + timedelta(seconds=lag_s), json.dumps(body))


def every(agent: str | None, newest: datetime, n: int = 20, step_min: float = 2.0, **kw):
    return [cycle(agent, newest - timedelta(minutes=i * step_min), **kw) for i in range(n)]


def within(value: float, low: timedelta | float, high: timedelta | float) -> bool:
    """An age in whole seconds measured between two readings of the clock (``low`` before the
    evaluation, ``high`` after it), give or take the rounding to a second."""
    lo, hi = (t.total_seconds() if isinstance(t, timedelta) else t for t in (low, high))
    return lo - 1 <= value <= hi + 1


class Source:
    """A local Iceberg-layout source and the settings of a dashboard reading it."""

    def __init__(self, tmp: Path, hook: str | None = None, **env: str) -> None:
        self.src, self.cache = tmp / "src", tmp / "cache"
        self.writer = TableWriter(
            put=folder_put(self.src), bucket="agent-blobs", table_prefix=PREFIX
        )
        self.env = {
            "O11Y_SOURCE_DIR": str(self.src),
            "O11Y_CACHE_DIR": str(self.cache),
            "O11Y_PUBLIC_URL": PUBLIC,
            "O11Y_ALERTS_FILE": str(tmp / "alerts.toml"),
            **({"O11Y_ALERT_WEBHOOK": hook} if hook else {}),
            **env,
        }
        self.settings = load_settings(self.env, secrets_paths=[])
        self.landed: list[datetime] = []

    def land(self, rows: list) -> None:
        self.writer.append([unstructured_table(rows)])
        self.landed += [r[0] for r in rows]
        sync(self.settings)

    def evaluate(self) -> A.Evaluation:
        db = EventsDB(self.settings.store_dir)
        try:
            ev = A.evaluate(self.settings, db)
            A.deliver_all(self.settings, ev.notices, **FAST)
            return ev
        finally:
            db.close()


def start_watch(env: dict[str, str], out_path: Path) -> subprocess.Popen[str]:
    """``python -m o11y_data watch --interval 1`` in its own process, stdout to ``out_path``."""
    with out_path.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "o11y_data", "watch", "--interval", "1"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
        )


def test_data_two_hours_old_fires_no_data_landing_at_once_and_new_data_resolves_it_once(tmp_path):
    now = datetime.now(UTC)
    with running_receiver() as rx:
        s = Source(tmp_path, rx.url)
        s.land(every("did:cf:alpha", now - timedelta(hours=2)))
        newest = max(s.landed)

        before = datetime.now(UTC)
        s.evaluate()  # the first evaluation
        after = datetime.now(UTC)
        fired = rx.delivered(rule="no_data_landing", status="firing")
        assert len(fired) == 1
        n = fired[0]
        assert n["severity"] == "critical" and n["agent"] is None and n["threshold"] == 900
        assert within(n["value"], before - newest, after - newest)
        since = datetime.fromisoformat(n["since"].replace("Z", "+00:00"))
        assert abs((since - (newest + timedelta(minutes=15))).total_seconds()) < 1.5
        assert "No data landing" in n["text"] and "\n" not in n["text"]
        assert n["url"].startswith(f"{PUBLIC}/health")

        s.evaluate()  # still firing: no second notice
        assert len(rx.delivered(rule="no_data_landing")) == 1

        s.land(every("did:cf:alpha", datetime.now(UTC), n=3))
        s.evaluate()
        s.evaluate()
        resolved = rx.delivered(rule="no_data_landing", status="resolved")
        assert len(resolved) == 1
        assert len(rx.delivered(rule="no_data_landing", status="firing")) == 1
        assert resolved[0]["since"] == n["since"]
    history = A.read_state(s.settings.store_dir).history
    steps = [h["to_state"] for h in history if h["rule"] == "no_data_landing"]
    assert steps == ["firing", "resolved"]


HOSTILE = "did:cf:<b>silent</b>&<!channel>"


def test_an_agent_going_silent_fires_for_that_agent_only(tmp_path):
    now = datetime.now(UTC)
    with running_receiver() as rx:
        s = Source(tmp_path, rx.url)
        rows = every("did:cf:alpha", now) + every("did:cf:bravo", now)
        rows += every(HOSTILE, now - timedelta(minutes=45))
        rows += every(None, now - timedelta(hours=3))  # "unknown" is not an agent
        rows += every("did:cf:gone", now - timedelta(hours=30))  # not active in the last 24 h
        s.land(rows)
        last_hostile = max(r[0] - timedelta(seconds=2) for r in rows if HOSTILE in r[1])
        before = datetime.now(UTC)
        s.evaluate()
        after = datetime.now(UTC)
    silent = rx.delivered(rule="agent_silent")
    assert [n["agent"] for n in silent] == [HOSTILE]
    n = silent[0]
    assert within(n["value"], before - last_hostile, after - last_hostile)
    assert "<b>" not in n["text"] and "<!channel>" not in n["text"]
    assert "&lt;b&gt;silent&lt;/b&gt;&amp;&lt;!channel&gt;" in n["text"]
    # The notice links to the agent's own page, its name URL-encoded (a link cannot be bent).
    assert n["url"].startswith(f"{PUBLIC}/agent?agent=did%3Acf%3A%3Cb%3Esilent")
    assert parse_qs(urlsplit(n["url"]).query)["agent"] == [HOSTILE]
    assert rx.delivered(rule="no_data_landing") == []


def test_an_error_rate_the_data_shows_for_longer_than_the_pending_period_fires_at_once(tmp_path):
    now = datetime.now(UTC)
    bad = [cycle("did:cf:erring", now - timedelta(minutes=i), errors=i % 2) for i in range(20)]
    few = [cycle("did:cf:few", now - timedelta(minutes=i), errors=1) for i in range(3)]
    calm = every("did:cf:calm", now, n=10, step_min=1)
    with running_receiver() as rx:
        s = Source(tmp_path, rx.url)
        s.land(bad + few + calm)
        at = datetime.now(UTC)
        s.evaluate()
    fired = rx.delivered(rule="error_rate", status="firing")
    assert [n["agent"] for n in fired] == ["did:cf:erring"]
    # The oracle: the share of the agent's cycles with errors in the last 15 minutes.
    window = [
        json.loads(v)["errors"] > 0
        for _, v in bad
        if at - timedelta(minutes=15) <= datetime.fromisoformat(json.loads(v)["_ts"]) < at
    ]
    assert fired[0]["value"] == pytest.approx(sum(window) / len(window), abs=1e-4)


def test_a_receiver_answering_500_then_200_gets_exactly_one_delivered_notice(tmp_path):
    now = datetime.now(UTC)
    with running_receiver(codes=[500]) as rx:
        s = Source(tmp_path, rx.url)
        s.land(every("did:cf:alpha", now - timedelta(hours=2), n=2))
        db = EventsDB(s.settings.store_dir)
        try:
            ev = A.evaluate(s.settings, db)
        finally:
            db.close()
        nd = [n for n in ev.notices if n.rule == "no_data_landing"]
        sent = A.deliver_all(s.settings, nd, **FAST)
        assert len(rx.delivered(rule="no_data_landing")) == 1
        assert [r.answered for r in rx.received] == [500, 200]
        assert [(d.ok, d.attempts) for d in sent] == [(True, 2)]


def test_a_receiver_that_keeps_failing_is_retried_within_bounds_and_shown_as_failed(tmp_path):
    now = datetime.now(UTC)
    with running_receiver(codes=[503] * 50) as rx:
        s = Source(tmp_path, rx.url)
        s.land(every("did:cf:alpha", now - timedelta(hours=2), n=2))
        s.evaluate()
        attempts = len(rx.received)
        r = _run(s.env, "alerts")  # what finally failed is listed by the CLI too
    notices = 2  # no data landing, and the one agent's silence
    assert attempts == notices * 4
    listed = [ln for ln in r.stdout.splitlines() if ln.startswith("not delivered to")]
    assert len(listed) == 2  # the two deliveries finish in either order
    assert any("HTTP 503 (firing no_data_landing, 4 attempts" in ln for ln in listed), listed
    assert "secret-token-path" not in r.stdout
    failed = [d for d in A.read_state(s.settings.store_dir).deliveries if not d["ok"]]
    assert len(failed) == notices
    assert failed[0]["error"] == "HTTP 503" and failed[0]["attempts"] == 4
    assert "secret-token-path" not in json.dumps(failed) and "127.0.0.1" in failed[0]["target"]


def _run(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "o11y_data", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_malformed_alerts_toml_gives_one_line_and_the_built_in_rules_still_fire(tmp_path):
    now = datetime.now(UTC)
    bad = '[rules.no_data_landing]\nthreshold = "30m"\nseverity =\n'  # line 3: no value
    (tmp_path / "alerts.toml").write_text(bad)
    with running_receiver() as rx:
        s = Source(tmp_path, rx.url)
        s.land(every("did:cf:alpha", now - timedelta(hours=2), n=2))
        r = _run(s.env, "alerts")
    assert r.returncode == 1, r.stderr  # a problem named; the built-in rules evaluated
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "alerts.toml" in lines[0] and "line 3" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    states = {line.split()[0]: line.split()[1] for line in r.stdout.splitlines() if line.strip()}
    assert states["no_data_landing"] == "firing"
    fired = rx.delivered(rule="no_data_landing", status="firing")
    assert len(fired) == 1 and fired[0]["threshold"] == 900  # the built-in's own threshold


def test_a_bad_rule_is_named_with_its_key_and_the_rest_of_the_file_applies(tmp_path):
    now = datetime.now(UTC)
    (tmp_path / "alerts.toml").write_text(
        textwrap.dedent(
            """
            [rules.no_data_landing]
            threshold = "1h"
            [rules.agent_silent]
            enabled = false
            [rules.typo]
            metric = "cycle_count"
            threshold = 1
            [rules.quiet_network]
            metric = "cycles"
            comparison = "<"
            threshold = 1
            window = "30m"
            severity = "critical"
            """
        )
    )
    with running_receiver() as rx:
        s = Source(tmp_path, rx.url)
        s.land(every("did:cf:alpha", now - timedelta(hours=2), n=2))
        r = _run(s.env, "alerts")
    assert r.returncode == 1  # the bad rule named, the rest evaluated
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "rule 'typo'" in lines[0] and "key 'metric'" in lines[0], r.stderr
    fired = {n["rule"] for n in rx.delivered(status="firing")}
    assert fired == {"no_data_landing", "quiet_network"}
    assert rx.delivered(rule="no_data_landing")[0]["threshold"] == 3600
    assert rx.delivered(rule="quiet_network")[0]["value"] == 0


@pytest.mark.server  # an app process and a `watch` process, racing for seconds
def test_the_apps_evaluator_and_a_watch_process_evaluating_together_deliver_once(tmp_path):
    """Two processes on one store: the app's hook (syncer + AlertWorker, as ui/data.py wires it)
    and `watch`, racing from the first evaluation on; the flock makes each notice go out once."""
    now = datetime.now(UTC)
    with running_receiver() as rx:
        s = Source(tmp_path, rx.url)
        s.land(every("did:cf:alpha", now - timedelta(hours=2), n=2))
        app_code = textwrap.dedent(
            """
            import time
            from o11y_data import EventsDB, load_settings
            from o11y_data.alerts import AlertWorker
            from o11y_data.background import BackgroundSyncer
            settings = load_settings(secrets_paths=[])
            runs = []
            worker = AlertWorker(settings, EventsDB(settings.store_dir), who="app",
                                 on_result=lambda ev, sent: runs.append(len(ev.notices)))
            syncer = BackgroundSyncer(settings)
            syncer.after_sync.append(worker.request)
            start = time.monotonic()
            # at least 8 s of racing and 3 evaluations, however slow a loaded machine is
            while time.monotonic() < start + 8 or (len(runs) < 3 and time.monotonic() < start + 60):
                syncer.run_once()
                time.sleep(0.1)
            worker.wait_idle(30)
            print("evaluations", len(runs), "notices", sum(runs))
            """
        )
        env = {**os.environ, **s.env}
        app = subprocess.Popen(
            [sys.executable, "-c", app_code], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
        )
        watch_log = tmp_path / "watch.out"
        watch = start_watch(env, watch_log)
        app_out, _ = app.communicate(timeout=120)
        deadline = time.monotonic() + 60
        while _watch_rounds(watch_log.read_text()) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)  # a loaded machine starts the watch late: let it race 3 rounds
        watch.terminate()
        _, watch_err = watch.communicate(timeout=60)
        watch_out = watch_log.read_text()
        assert app.returncode == 0 and watch.returncode in (0, 130), watch_err
        assert int(app_out.split()[1]) >= 3  # the app's evaluator ran, again and again
        assert _watch_rounds(watch_out) >= 3, watch_out
        firing = rx.delivered(status="firing")
        assert sorted((n["rule"], n["agent"]) for n in firing) == [
            ("agent_silent", "did:cf:alpha"),
            ("no_data_landing", None),
        ]
    by = {h["rule"]: h for h in A.read_state(s.settings.store_dir).history}
    assert set(by) == {"no_data_landing", "agent_silent"}
    # Both decided some notices between them: the total is the two notices, once.
    app_notices = int(app_out.split()[3])
    watch_notices = watch_out.count(" notice: ")
    assert app_notices + watch_notices == 2, (app_out, watch_out)


def _watch_rounds(out: str) -> int:
    """How many sync rounds a `watch` process has printed."""
    return out.count(" synced ") + out.count("sync skipped")


# -- states, without the data (the pure step) ------------------------------------------------

RULE = A.Rule(name="r", metric="error_rate", threshold=0.1, pending_s=300, renotify_s=3600)
T = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
NOTICE = A.Notice(
    status="firing",
    rule="r",
    title="R",
    severity="warning",
    metric="error_rate",
    scope="all",
    key=None,
    value=0.5,
    threshold=0.1,
    comparison=">",
    since=T,
    at=T,
)


def _walk(
    readings: list[tuple[float, bool | None]],
    *,
    silenced_at: set[float] = frozenset(),
    rule: A.Rule = RULE,
):
    series, out = A.Series("r", "k"), []
    for minute, breach in readings:
        at = T + timedelta(minutes=minute)
        series, tr, notice = A.step(
            series, A.Reading("k", 0.5, breach), rule, at, silenced=minute in silenced_at
        )
        out.append((series.state, tr.to_state if tr else None, notice.status if notice else None))
    return out


def test_a_breach_waits_its_pending_period_renotifies_while_firing_and_resolves_once():
    got = _walk(
        [(0, True), (3, True), (6, True), (30, True), (70, True), (71, False), (74, False)]
        + [(76, False), (77, False)]
    )
    assert got == [
        ("pending", "pending", None),
        ("pending", None, None),
        ("firing", "firing", "firing"),
        ("firing", None, None),
        ("firing", None, "firing"),  # re-notified after an hour
        ("firing", None, None),  # clear, but not yet for the recovery period (5 min)
        ("firing", None, None),
        ("ok", "resolved", "resolved"),  # clear since minute 71: 5 minutes
        ("ok", None, None),
    ]


def test_a_pending_breach_that_clears_never_notifies():
    assert _walk([(0, True), (2, False)]) == [
        ("pending", "pending", None),
        ("ok", "ok", None),
    ]


def test_a_silenced_alert_sends_nothing_and_speaks_when_the_silence_ends():
    got = _walk([(0, True), (6, True), (10, True), (11, False), (16, False)], silenced_at={6.0})
    assert [g[2] for g in got] == [None, None, "firing", None, "resolved"]


def test_a_firing_alert_without_data_stays_firing_and_no_data_never_notifies():
    got = _walk([(0, True), (6, True), (7, None), (8, True)])
    assert [g[0] for g in got] == ["pending", "firing", "firing", "firing"]
    assert [g[2] for g in got] == [None, "firing", None, None]
    assert _walk([(0, None)]) == [("nodata", "nodata", None)]


def test_a_flapping_series_notifies_once_and_resolves_once_after_its_recovery_period():
    """A value above the threshold one minute in four for an hour: one firing notice, and
    one resolved notice once it has been clear for the recovery period (the pending period)."""
    flapping = [(m, True) for m in range(0, 7)]
    flapping += [(m, m % 4 == 0) for m in range(7, 67)]  # breach one minute in four
    flapping += [(m, False) for m in range(67, 75)]
    got = _walk(flapping)
    assert [g[2] for g in got if g[2]] == ["firing", "resolved"]
    assert [g[1] for g in got if g[1]] == ["pending", "firing", "resolved"]
    resolved_at = flapping[[g[1] for g in got].index("resolved")][0]
    assert resolved_at == 65 + 5  # clear from minute 65 (after the last breach), for 5 minutes
    quick = A.Rule(name="r", metric="error_rate", threshold=0.1, pending_s=300, recovery_s=60)
    got = _walk([(0, True), (6, True), (7, False), (8, False)], rule=quick)
    assert [g[2] for g in got] == [None, "firing", None, "resolved"]


def test_rules_file_changes_thresholds_turns_rules_off_and_names_bad_keys(tmp_path):
    path = tmp_path / "alerts.toml"
    path.write_text(
        textwrap.dedent(
            """
            [defaults]
            renotify = "2h"
            [rules.error_rate]
            threshold = "25%"
            min_cycles = 10
            [rules.sync_failing]
            enabled = false
            [rules.slow]
            metric = "p95_duration"
            scope = "per_mode"
            threshold = 60000
            pending = "10m"
            no_data = "ok"
            [rules.named]
            metric = "cycle_age"
            agents = ["did:cf:a"]
            threshold = "1h"
            [rules.bad_scope]
            metric = "last_sync_age"
            scope = "per_agent"
            threshold = 60
            [rules.bad_window]
            metric = "cycles"
            threshold = 1
            window = "soon"
            """
        )
    )
    rs = A.load_rules(path)
    by = {r.name: r for r in rs.rules}
    assert by["error_rate"].threshold == 0.25 and by["error_rate"].min_cycles == 10
    assert by["error_rate"].renotify_s == 7200
    assert not by["sync_failing"].enabled and "sync_failing" not in {r.name for r in rs.enabled}
    assert by["slow"].scope == "per_mode" and by["slow"].pending_s == 600
    assert by["named"].scope == "agents" and by["named"].agents == ("did:cf:a",)
    assert "bad_scope" not in by and "bad_window" not in by
    assert len(rs.problems) == 2
    assert "rule 'bad_scope'" in rs.problems[0] and "key 'scope'" in rs.problems[0]
    assert "rule 'bad_window'" in rs.problems[1] and "key 'window'" in rs.problems[1]


def test_evaluators_starting_at_the_same_instant_decide_each_notice_once(tmp_path):
    """Eight evaluators (own DB handles, own lock file descriptors: flock conflicts between them
    as between processes) released by one barrier: every notice is decided exactly once."""
    import threading

    now = datetime.now(UTC)
    s = Source(tmp_path)
    s.land(every("did:cf:alpha", now - timedelta(hours=2), n=2))
    barrier = threading.Barrier(8)
    decided: list[A.Notice] = []

    def one() -> None:
        db = EventsDB(s.settings.store_dir)
        try:
            barrier.wait()
            decided.extend(A.evaluate(s.settings, db).notices)
        finally:
            db.close()

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted((n.rule, n.key) for n in decided) == [
        ("agent_silent", "did:cf:alpha"),
        ("no_data_landing", None),
    ]


def test_a_refusing_or_hanging_receiver_fails_in_one_line_within_the_time_bound():
    import socket

    from o11y_data.config import Secret

    deliver, body = A.deliver, NOTICE
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused_port = closed.getsockname()[1]  # closed again before the POST: refused
    d = deliver(Secret(f"http://127.0.0.1:{refused_port}/t0ken"), body, base_delay_s=0.01)
    assert (d.ok, d.attempts, d.error) == (False, 4, "Connection refused")
    with socket.socket() as hanging:  # accepts (the kernel's backlog) and never answers
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(8)
        url = f"http://127.0.0.1:{hanging.getsockname()[1]}/t0ken"
        # every try waits out its 0.5 s timeout, so a 2 s deadline leaves room for 4 of the 10
        d = deliver(Secret(url), body, attempts=10, base_delay_s=0.05, timeout_s=0.5, deadline_s=2)
    assert not d.ok and d.error == "timed out" and 1 <= d.attempts <= 4
    assert "t0ken" not in d.target


def test_sync_failing_fires_when_the_last_good_sync_is_old_or_there_never_was_one(tmp_path):
    from o11y_data.ingest.store import Store

    with running_receiver() as rx:
        never = Source(tmp_path / "never", rx.url)  # the source folder does not exist
        with pytest.raises(O11yError):
            sync(never.settings)
        never.evaluate()
        fired = rx.delivered(rule="sync_failing", status="firing")
        assert len(fired) == 1 and fired[0]["value"] is None and "never" in fired[0]["text"]

        old = Source(tmp_path / "old", rx.url)
        old.land(every("did:cf:alpha", datetime.now(UTC)))
        last_ok = time.time() - 1200  # the last good sync, 20 minutes ago; failures since
        Store(old.settings.store_dir).write_status(last_success_at=last_ok, last_error="x")
        before = time.time()
        old.evaluate()
        after = time.time()
    fired = rx.delivered(rule="sync_failing", status="firing")
    assert len(fired) == 2
    assert within(fired[1]["value"], before - last_ok, after - last_ok)
    since = datetime.fromisoformat(fired[1]["since"].replace("Z", "+00:00")).timestamp()
    assert abs(since - (last_ok + 600)) < 1.5


def test_the_example_rules_file_loads_without_a_problem():
    rs = A.load_rules(REPO / "alerts.example.toml")
    assert rs.problems == ()
    by = {r.name: r for r in rs.rules}
    assert by["error_rate"].threshold == 0.15 and by["planner_quiet"].scope == "agents"
    assert len(rs.enabled) == 7


@pytest.mark.slow  # waits out a receiver that never answers
def test_a_hanging_receiver_never_holds_up_the_apps_sync(tmp_path):
    import socket

    from o11y_data.background import BackgroundSyncer

    now = datetime.now(UTC)
    with socket.socket() as hanging:  # accepts and never answers: every delivery waits it out
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(8)
        s = Source(tmp_path, f"http://127.0.0.1:{hanging.getsockname()[1]}/hook")
        s.writer.append([unstructured_table(every("did:cf:alpha", now - timedelta(hours=2)))])
        db = EventsDB(s.settings.store_dir)
        worker = A.AlertWorker(s.settings, db, delivery={"timeout_s": 3.0, "deadline_s": 6.0})
        syncer = BackgroundSyncer(s.settings)
        syncer.after_sync.append(worker.request)
        try:
            delivering = []  # after each sync: is a delivery still waiting on the receiver?
            for _ in range(3):
                syncer.run_once()
                delivering.append(not worker.wait_idle(0))
                time.sleep(0.3)
            # the first sync returned while its notices waited out their 3 s timeout
            assert syncer.state.last_error is None and delivering[0], delivering
            assert not worker.wait_idle(0.1)  # still delivering, on its own thread
            assert worker.wait_idle(30)
        finally:
            worker.stop()
            db.close()
    failed = [d for d in A.read_state(s.settings.store_dir).deliveries if not d["ok"]]
    assert {d["error"] for d in failed} == {"timed out"}


def test_watch_stops_on_sigterm_even_in_the_middle_of_a_sync(s3_admin, bucket, proxy, tmp_path):
    """systemd stops the unit with SIGTERM, often while a sync waits on R2: `watch` must exit
    (code 0, "stopped") instead of its service loop taking the signal for a failed sync."""
    from tests.support.tables import append, event, new_table, r2_env, rows, s3_put

    append(new_table(s3_put(s3_admin, bucket), bucket), rows([event(ms=5)]))
    proxy.set_delay(3.0)  # every request to R2 takes 3 s: the first sync is mid-flight for long
    env = {
        **os.environ,
        **r2_env(proxy.endpoint, bucket, tmp_path / "cache"),
        "O11Y_ALERT_WEBHOOK": "",
    }
    out_file = tmp_path / "watch.out"
    proxy.clear_requests()
    watch = start_watch(env, out_file)
    # watching, and inside the first sync's first request (R2 answers it 3 s after it arrives)
    wait_until(
        lambda: "watching" in out_file.read_text() and proxy.count(),
        limit_s=60,
        what="the watch's first sync to ask R2",
    )
    assert _watch_rounds(out_file.read_text()) == 0, out_file.read_text()
    watch.terminate()
    _, err = watch.communicate(timeout=30)
    assert watch.returncode == 0, err
    assert "stopped" in out_file.read_text()


# -- issue 18: delivery that cannot be faked, rules that fail alone ---------------------------


def test_only_a_2xx_within_the_whole_request_deadline_counts_as_delivered():
    """A redirect is a failure named as such (the other port gets nothing), a receiver dripping
    its answer a byte at a time is cut at the whole-request deadline, a reset is retried, a
    hanging one times out."""
    from o11y_data.config import Secret

    with running_receiver() as other, running_receiver() as rx:
        rx.codes = [f"redirect:{other.url}"]
        d = A.deliver(Secret(rx.url), NOTICE, base_delay_s=0.01, timeout_s=1.0)
        assert (d.ok, d.attempts, d.error) == (False, 1, "redirect (HTTP 302) not followed")
        assert other.received == []

        rx.codes = ["drip"]  # the whole answer takes 0.3 s x 40 bytes: far past the deadline
        d = A.deliver(Secret(rx.url), NOTICE, attempts=1, timeout_s=1.0)
        assert (d.ok, d.error) == (False, "timed out")

        rx.codes = ["reset"]
        d = A.deliver(Secret(rx.url), NOTICE, base_delay_s=0.01, timeout_s=1.0)
        assert (d.ok, d.attempts) == (True, 2)
        assert [r.answered for r in rx.received[-2:]] == [0, 200]

        rx.codes = ["hang"]
        d = A.deliver(Secret(rx.url), NOTICE, attempts=1, timeout_s=0.5)
        assert (d.ok, d.error) == (False, "timed out")
        assert len(rx.delivered()) == 1  # the one answered 200 (after the reset)


def test_a_malformed_webhook_url_is_one_line_while_the_valid_url_delivers_and_records(tmp_path):
    now = datetime.now(UTC)
    with running_receiver() as rx:
        s = Source(tmp_path, f"http://127.0.0.1:abc/t0ken,{rx.url}")
        assert len(s.settings.alert_webhooks) == 1
        s.land(every("did:cf:alpha", now - timedelta(hours=2), n=2))
        r = _run(s.env, "alerts")
        assert r.returncode == 1
        assert "O11Y_ALERT_WEBHOOK URL 1: not a valid URL" in r.stderr and "t0ken" not in r.stderr
        assert "Traceback" not in r.stderr
        assert {n["rule"] for n in rx.delivered(status="firing")} == {
            "no_data_landing",
            "agent_silent",
        }
    recorded = A.read_state(s.settings.store_dir).deliveries
    assert len(recorded) == 2 and all(d["ok"] for d in recorded)
    assert A.read_state(s.settings.store_dir).outbox == []


def test_bad_rules_are_one_line_each_and_the_good_rules_beside_them_fire(tmp_path):
    now = datetime.now(UTC)
    (tmp_path / "alerts.toml").write_text(
        textwrap.dedent(
            """
            [rules.huge_window]
            metric = "cycles"
            threshold = 1
            window = "99999999d"
            [rules.huge_pending]
            metric = "cycle_age"
            threshold = "1h"
            pending = 1e300
            [rules.quiet_network]
            metric = "cycles"
            comparison = "<"
            threshold = 1
            window = "30m"
            """
        )
    )
    with running_receiver() as rx:
        s = Source(tmp_path, rx.url)
        s.land(every("did:cf:alpha", now - timedelta(hours=2), n=2))
        r = _run(s.env, "alerts")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2, r.stderr
    assert "rule 'huge_window': key 'window': at most 30d" in lines[0]
    assert "rule 'huge_pending': key 'pending': at most 7d" in lines[1]
    fired = {n["rule"] for n in rx.delivered(status="firing")}
    assert fired == {"no_data_landing", "agent_silent", "quiet_network"}


def test_a_deeply_nested_array_in_the_rules_file_is_one_line_and_the_built_ins_run(tmp_path):
    nested = "[" * 50_000 + "]" * 50_000
    (tmp_path / "alerts.toml").write_text(f"[rules.deep]\nagents = {nested}\n")
    rs = A.load_rules(tmp_path / "alerts.toml")
    assert rs.problems == ("alerts.toml: arrays or tables nested too deeply",)
    assert [r.name for r in rs.enabled] == [r.name for r in A.BUILTIN]


def test_a_rule_whose_value_fails_is_in_error_alone_and_a_lasting_fault_is_a_notice(tmp_path):
    """A hostile value in the store's status (last_success_at = "soon") breaks sync_failing
    only: it is in state error with its reason in `alerts` (exit 1) while the other rules fire;
    after three failed evaluations in a row the fault itself is a notice."""
    from o11y_data.ingest.store import Store

    now = datetime.now(UTC)
    with running_receiver() as rx:
        s = Source(tmp_path, rx.url)
        s.land(every("did:cf:alpha", now - timedelta(hours=2), n=2))
        Store(s.settings.store_dir).write_status(last_success_at="soon")
        r = _run(s.env, "alerts")
        assert r.returncode == 1 and "Traceback" not in r.stderr
        states = {ln.split()[0]: ln.split(None, 2)[1:] for ln in r.stdout.splitlines() if ln}
        assert states["sync_failing"][0] == "error" and "ValueError" in states["sync_failing"][1]
        assert states["no_data_landing"][0] == "firing"
        assert "rule 'sync_failing'" in r.stderr
        assert rx.delivered(rule="sync_failing") == []
        s.evaluate()
        s.evaluate()  # the third failure in a row
        fault = rx.delivered(rule="sync_failing", status="firing")
        assert len(fault) == 1 and "cannot be evaluated" in fault[0]["text"]
        assert "ValueError" in fault[0]["error"]
        Store(s.settings.store_dir).write_status(last_success_at=time.time())
        s.evaluate()
        assert len(rx.delivered(rule="sync_failing", status="resolved")) == 1


def test_a_cache_the_alerts_cannot_write_is_one_line(tmp_path):
    now = datetime.now(UTC)
    s = Source(tmp_path)
    s.land(every("did:cf:alpha", now, n=2))
    (s.settings.store_dir / "alerts").write_text("not a folder")  # as good as read-only
    r = _run(s.env, "alerts")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Cannot write the alert state" in r.stderr


def test_watch_killed_mid_delivery_then_restarted_delivers_the_pending_notices(tmp_path):
    """`kill -9` of `watch` while its deliveries hang: the notices it decided wait in the outbox;
    the next `watch` delivers them at once (no new decision, no 4 h re-notify)."""
    now = datetime.now(UTC)
    with running_receiver(codes=["hang"] * 20) as rx:
        s = Source(tmp_path, rx.url)
        s.land(every("did:cf:alpha", now - timedelta(hours=2), n=2))
        env = {**os.environ, **s.env}
        first = start_watch(env, tmp_path / "watch1.out")
        deadline = time.monotonic() + 90
        while len(rx.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # both notices in flight, both hanging
        assert len(rx.received) == 2, (tmp_path / "watch1.out").read_text()
        first.kill()
        first.wait(30)  # reaped: its pid is gone
        pending = A.read_state(s.settings.store_dir).outbox
        assert sorted(o.notice.rule for o in pending) == ["agent_silent", "no_data_landing"]
        assert rx.delivered() == []
        rx.codes = []  # the receiver answers 200 from now on
        second = start_watch(env, tmp_path / "watch2.out")
        try:
            deadline = time.monotonic() + 90
            while len(rx.delivered(status="firing")) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            second.terminate()
            second.communicate(timeout=60)
    assert sorted(n["rule"] for n in rx.delivered(status="firing")) == [
        "agent_silent",
        "no_data_landing",
    ]
    assert " notice: " not in (tmp_path / "watch2.out").read_text()  # decided once, by the first
    state = A.read_state(s.settings.store_dir)
    assert state.outbox == [] and all(d["ok"] for d in state.deliveries)


def test_the_heartbeat_url_is_called_after_each_complete_evaluation_and_shown_by_host(tmp_path):
    with running_receiver() as beat:
        s = Source(tmp_path, O11Y_HEARTBEAT_URL=beat.url)
        s.land(every("did:cf:alpha", datetime.now(UTC), n=2))
        r = _run(s.env, "alerts")
        assert r.returncode == 0, r.stderr
        r = _run(s.env, "alerts")
        assert len(beat.received) == 2 and all(x.answered == 200 for x in beat.received)
    hb = A.read_state(s.settings.store_dir).heartbeat
    assert hb is not None and hb.ok and hb.target.startswith("http://127.0.0.1:")
    assert "secret-token-path" not in hb.target


def test_an_evaluator_that_keeps_failing_tells_the_webhooks_itself(tmp_path):
    """Three whole evaluations failing in a row (the store's alerts folder cannot be written, so
    there is no outbox either): the webhook is told directly, once; the next good evaluation
    resolves it."""
    now = datetime.now(UTC)
    with running_receiver() as rx:
        s = Source(tmp_path, rx.url)
        s.land(every("did:cf:alpha", now, n=2))
        blocker = s.settings.store_dir / "alerts"
        blocker.write_text("not a folder")
        db = EventsDB(s.settings.store_dir)
        worker = A.AlertWorker(s.settings, db, delivery={"timeout_s": 2.0})
        try:
            for _ in range(4):
                worker.request()
                assert worker.wait_idle(60)
            deadline = time.monotonic() + 30
            while not rx.delivered(rule="alert_evaluation") and time.monotonic() < deadline:
                time.sleep(0.05)
            told = rx.delivered(rule="alert_evaluation")
            assert len(told) == 1 and told[0]["status"] == "firing"
            assert "Cannot write the alert state" in told[0]["error"]
            assert worker.failures == 4
            blocker.unlink()
            worker.request()
            assert worker.wait_idle(60)
            deadline = time.monotonic() + 30
            while len(rx.delivered(rule="alert_evaluation")) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            worker.stop()
            db.close()
    assert [n["status"] for n in rx.delivered(rule="alert_evaluation")] == ["firing", "resolved"]


def test_rules_measuring_one_metric_share_one_query_and_each_judges_its_own_threshold(tmp_path):
    """Thirty error-rate rules (per agent, or naming agents) with thresholds from 5 % to 95 %:
    two queries serve them all, and each fires exactly for the agents whose error rate, computed
    here from the rows, is above its threshold."""
    now = datetime.now(UTC)
    rates = {"did:cf:a": 0.2, "did:cf:b": 0.5, "did:cf:c": 0.8}
    rows = []
    for agent, rate in rates.items():
        errs = round(rate * 10)
        rows += [cycle(agent, now - timedelta(minutes=i), errors=int(i < errs)) for i in range(10)]
    s = Source(tmp_path)
    s.land(rows)
    rules = []
    for i in range(30):
        scope = {"agents": ("did:cf:b", "did:cf:c")} if i % 3 == 0 else {}
        rules.append(
            A.Rule(
                name=f"r{i}",
                metric="error_rate",
                threshold=0.05 + i * 0.03,
                scope="agents" if scope else "per_agent",
                agents=scope.get("agents", ()),
                min_cycles=5,
            )
        )
    db = EventsDB(s.settings.store_dir)
    try:
        ev = A.evaluate(s.settings, db, ruleset=A.RuleSet(tuple(rules)))
    finally:
        db.close()
    assert ev.queries == 2  # the window's values by agent, and the agents seen
    fired = {(n.rule, n.key) for n in ev.notices}
    expected = {
        (r.name, agent)
        for r in rules
        for agent, rate in rates.items()
        if rate > r.threshold and (not r.agents or agent in r.agents)
    }
    assert fired == expected and len(expected) > 20
