"""The warmer: calls pages made recently are computed again as soon as a new generation is
published, with relative windows moved to the new minute, so the first visit after a sync finds
its results cached."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from o11y_data.query import queries as q
from o11y_data.query.queries import Filters
from tests.support.wait import wait_until
from ui.filters import ceil_minute
from ui.warm import Call, Warmer, shift

REPO = Path(__file__).resolve().parents[1]

T = datetime(2026, 11, 20, 10, 0, 30, tzinfo=UTC)  # inside the minute ending 10:01
END = datetime(2026, 11, 20, 10, 1, tzinfo=UTC)
DAY = timedelta(days=1)


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


class Gen:
    """A store's published generation number, bumped by the test."""

    def __init__(self, number: int = 2) -> None:
        self.number = number
        self.reads = 0  # how often the warmer looked: its thread polls it

    def __call__(self) -> int:
        self.reads += 1
        return self.number

    def polled(self, times: int) -> None:
        """Return once the generation has been read ``times`` more times."""
        since = self.reads
        wait_until(lambda: self.reads >= since + times, limit_s=30, what=f"{times} more reads")


_FNS: dict[str, object] = {}


def fn(name: str):
    """A question named ``name`` (the warmer records functions; these are never called)."""

    def question(*_args, **_kwargs) -> None:
        raise AssertionError("the warmer calls compute, never the question itself")

    question.__name__ = name
    return _FNS.setdefault(name, question)


def make(compute, gen: Gen | None = None, clock: Clock | None = None, **kw) -> Warmer:
    return Warmer(compute, gen or Gen(), clock=clock or Clock(T), poll_s=0.02, **kw)


def test_every_recent_call_is_computed_for_the_new_generation_most_recent_first():
    done: list[tuple] = []
    w = make(lambda f, number, args, kwargs: done.append((f, number, args, kwargs)))
    w.note(q.totals, (Filters(),), ())
    w.note(q.choices, (), ())
    w.note(q.mode_breakdown, (Filters(),), (("by", "agent"),))
    assert w.warm(2) == 3
    assert done == [
        (q.mode_breakdown, 2, (Filters(),), (("by", "agent"),)),
        (q.choices, 2, (), ()),
        (q.totals, 2, (Filters(),), ()),
    ]


def test_a_call_made_again_is_kept_once():
    done: list[str] = []
    w = make(lambda f, *_: done.append(f.__name__))
    for _ in range(5):
        w.note(fn("totals"), (Filters(),), ())
    assert w.warm(2) == 1 and done == ["totals"]


def test_relative_windows_move_to_the_minute_the_new_generation_lands_in():
    day = Filters(END - DAY, END, agents=("a",))
    before = day.previous()
    fixed = Filters(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    call = Call(fn("x"), (day, before, fixed, Filters(), 7), (("f", day),), END)
    later = END + timedelta(minutes=2)
    args, kwargs = shift(call, later)
    assert args[0] == Filters(later - DAY, later, agents=("a",))
    assert args[1] == Filters(later - 2 * DAY, later - DAY, agents=("a",))
    assert args[2:] == (fixed, Filters(), 7)  # a fixed window, all time and the rest stay
    assert kwargs == (("f", args[0]),)
    assert shift(call, END) == (call.args, call.kwargs)


def test_the_warmer_computes_a_relative_window_for_the_current_minute():
    clock = Clock(T)
    done: list[tuple] = []
    w = make(lambda f, number, args, kwargs: done.append(args), clock=clock)
    w.note(fn("totals"), (Filters(END - DAY, END),), ())
    clock.t = T + timedelta(minutes=1, seconds=10)  # 10:01:40: windows now end at 10:02
    w.warm(2)
    new_end = END + timedelta(minutes=1)
    assert done == [(Filters(new_end - DAY, new_end),)]


def test_calls_nobody_made_lately_are_not_computed():
    done: list[str] = []
    w = make(lambda f, *_: done.append(f.__name__), keep_s=0.05)
    w.note(fn("old"), (), ())
    time.sleep(0.1)
    w.note(fn("new"), (), ())
    assert w.warm(2) == 1 and done == ["new"]


def test_at_most_max_calls_are_kept_the_newest():
    done: list[str] = []
    w = make(lambda f, *_: done.append(f.__name__), max_calls=3)
    for i in range(6):
        w.note(fn(f"q{i}"), (), ())
    w.warm(2)
    assert done == ["q5", "q4", "q3"]


def test_a_newer_generation_ends_the_round_it_interrupts():
    gen = Gen(2)
    done: list[int] = []

    def compute(f, number, args, kwargs):
        done.append(number)
        gen.number = 3  # a sync published again while this round ran

    w = make(compute, gen)
    for i in range(4):
        w.note(fn(f"q{i}"), (), ())
    assert w.warm(2) == 1 and done == [2]


def test_a_failing_call_does_not_stop_the_others():
    done: list[str] = []

    def compute(f, *_):
        if f.__name__ == "bad":
            raise RuntimeError("boom")
        done.append(f.__name__)

    w = make(compute)
    w.note(fn("good1"), (), ())
    w.note(fn("bad"), (), ())
    w.note(fn("good2"), (), ())
    assert w.warm(2) == 2 and sorted(done) == ["good1", "good2"]


def test_the_thread_warms_once_per_new_generation_and_stops():
    gen = Gen(1)
    done: list[int] = []
    w = make(lambda f, number, *_: done.append(number), gen).start()
    try:
        w.note(fn("totals"), (), ())
        gen.polled(3)
        assert done == []  # nothing new published: no work
        gen.number = 2
        wait_until(lambda: done, limit_s=30, what="the round for generation 2")
        gen.polled(3)
        assert done == [2]  # once
    finally:
        w.stop()
    gen.number = 3
    time.sleep(0.1)
    assert done == [2]


@pytest.mark.parametrize("n", [0, 1])
def test_a_server_nobody_used_does_no_work(n):
    done: list[str] = []
    w = make(lambda f, *_: done.append(f.__name__))
    for i in range(n):
        w.note(fn(f"q{i}"), (), ())
    assert w.warm(2) == n and len(done) == n


@pytest.mark.parametrize("page", ["overview", "modes", "errors"])
def test_after_a_sync_the_next_run_of_a_page_finds_every_result_already_computed(
    tmp_path, monkeypatch, page
):
    from streamlit.testing.v1 import AppTest

    from o11y_data import load_settings, sync
    from tests.support.apptest import app_under_test
    from tests.support.tables import event, local_env, plain_parquet, rows
    from ui import data

    src = tmp_path / "src"
    src.mkdir()
    now = datetime.now(UTC)

    def land(name: str, offset_s: int) -> None:
        # Cycles every 4 minutes over the last two hours: a second file lands inside the same
        # span, so the pages' time buckets stay the same (a call whose arguments come from the
        # new data itself, such as a new bucket width, can only be computed by the visit).
        times = [now - timedelta(minutes=4 * i, seconds=offset_s) for i in range(30)]
        events = [event(ts=t, agent=f"a{i % 3}") for i, t in enumerate(times)]
        (src / name).write_bytes(plain_parquet(rows(events, start=now)))

    land("f1.parquet", 0)
    env = local_env(src, tmp_path, O11Y_BACKGROUND_SYNC="0")
    settings = load_settings(env, secrets_paths=[])
    sync(settings)

    class Spy:  # the queries module, noting every result computed for the cache
        computed: list[str] = []

        def __getattr__(self, name: str):
            if name in data.__dict__["_queries"].SCREENS:
                Spy.computed.append(name)
            return getattr(data.__dict__["_queries"], name)

    monkeypatch.setitem(data.__dict__, "_queries", data.q)
    monkeypatch.setattr(data, "q", Spy())

    def visit() -> list[str]:
        Spy.computed = []
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
        at.query_params["range"] = "all"
        at.switch_page(f"pages/{page}.py")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert not at.error, [e.value for e in at.error]
        return list(Spy.computed)  # a copy: the warmer's thread goes on appending to Spy's list

    with app_under_test(env):
        # A page's windows end at the current minute (ui.filters.ceil_minute): a run that crosses
        # into the next minute asks for other windows and cannot be judged. Such a try is repeated.
        assert visit(), "the first visit computes its page's results"
        for attempt in range(6):
            minute = ceil_minute(datetime.now(UTC))
            visit()  # this minute's results, computed or found
            cached = visit()  # found
            land(f"f{attempt + 2}.parquet", 90 + attempt)
            sync(settings)  # a new generation: every cached result is stale
            warmer = data.get_warmer()
            number = data.get_db().store.current_number()
            wait_until(lambda w=warmer, n=number: n in w.warmed, limit_s=30, what="its round")
            after = visit()
            if ceil_minute(datetime.now(UTC)) != minute:
                continue
            assert cached == [], cached
            assert warmer.warmed.get(number), "the warmer computed nothing for the new generation"
            assert after == [], f"computed by the visit, not the warmer: {after}"
            return
        pytest.fail("every try crossed a minute: the machine is too slow for this test")
