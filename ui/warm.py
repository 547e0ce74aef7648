"""Results ready before anyone asks for them.

The app caches query results per store generation (``ui.data.cached``), so every sync (each
minute) leaves the cache cold and the first visit after it would pay for every query of its page.
The :class:`Warmer` remembers which calls pages made recently and, as soon as a new generation is
published (by this process's syncer or by another process), recomputes them on a thread of its
own. A page opened or refreshed after a sync then finds its results cached; a visit that comes
while the warmer is still computing waits for that one computation instead of starting its own
(Streamlit's cache locks each key).

Relative windows ("last 24 hours") end at the current minute, rounded up (``ui.filters``): a call
recorded at one minute is warmed for the minute the new generation lands in, so the key matches
the next run of a live page. Only recent calls are warmed (``keep_s``), at most ``max_calls``, the
most recent first: a server nobody looks at does no work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from o11y_data.query.queries import Filters
from ui.filters import ceil_minute

log = logging.getLogger(__name__)

# (question, generation, args, kwargs): the question is a function of o11y_data.query.queries.
Compute = Callable[[Callable[..., Any], int, tuple, tuple], Any]
THREAD_NAME = "o11y-warm"


@dataclass(frozen=True)
class Call:
    """One ``fn(db, *args, **kwargs)`` a page made (``fn`` a question of
    ``o11y_data.query.queries``), and the minute it was made in."""

    fn: Callable[..., Any]
    args: tuple
    kwargs: tuple
    minute: datetime


def shift(call: Call, minute: datetime) -> tuple[tuple, tuple]:
    """``call``'s arguments for ``minute``: relative windows (ending at the call's minute, or
    the period just before one) move with the clock; fixed windows and everything else stay."""
    delta = minute - call.minute
    if not delta:
        return call.args, call.kwargs

    def moved(value: Any) -> Any:
        if not isinstance(value, Filters) or value.end is None or value.start is None:
            return value
        span = value.end - value.start
        if value.end == call.minute or value.end + span == call.minute:
            return replace(value, start=value.start + delta, end=value.end + delta)
        return value

    args = tuple(moved(a) for a in call.args)
    kwargs = tuple((k, moved(v)) for k, v in call.kwargs)
    return args, kwargs


class Warmer:
    """Recomputes recent calls for each new generation, on one daemon thread."""

    def __init__(
        self,
        compute: Compute,
        current: Callable[[], int],
        *,
        keep_s: float = 600.0,
        max_calls: int = 64,
        poll_s: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._compute = compute
        self._current = current
        self.keep_s = keep_s
        self.max_calls = max_calls
        self.poll_s = poll_s
        self._clock = clock
        self._calls: OrderedDict[tuple, tuple[Call, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.warmed: dict[int, int] = {}  # generation -> results computed (the last 16)

    def note(self, fn: Callable[..., Any], args: tuple, kwargs: tuple) -> None:
        """Remember a call a page just made (the newest use first)."""
        call = Call(fn, args, kwargs, ceil_minute(self._clock()))
        key = (fn, args, kwargs)
        with self._lock:
            self._calls.pop(key, None)
            self._calls[key] = (call, time.monotonic())
            while len(self._calls) > self.max_calls:
                self._calls.popitem(last=False)

    def recent(self) -> list[Call]:
        """The calls made within ``keep_s``, the most recent first (older ones are forgotten)."""
        cutoff = time.monotonic() - self.keep_s
        with self._lock:
            for key in [k for k, (_, used) in self._calls.items() if used < cutoff]:
                del self._calls[key]
            return [call for call, _ in reversed(self._calls.values())]

    def warm(self, number: int) -> int:
        """Compute the recent calls for generation ``number``; stops early when a newer one is
        published (its own round follows). Returns how many were computed."""
        minute = ceil_minute(self._clock())
        done = 0
        started = time.monotonic()
        for call in self.recent():
            if self._stop.is_set() or self._current() != number:
                break
            args, kwargs = shift(call, minute)
            try:
                self._compute(call.fn, number, args, kwargs)
                done += 1
            except Exception as exc:  # a failing query fails on the page too, with its message
                log.info("warming %s failed: %s", getattr(call.fn, "__name__", call.fn), exc)
        self.warmed[number] = done
        for old in sorted(self.warmed)[:-16]:  # a server runs for weeks: keep the last few
            del self.warmed[old]
        if done:
            log.info(
                "warmed %d results for generation %d in %.2fs",
                done,
                number,
                time.monotonic() - started,
            )
        return done

    def start(self) -> Warmer:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        # Streamlit warns about every cache call made outside a script run; this thread makes
        # them on purpose, so its warnings would only bury real ones in the server log.
        logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(
            lambda record: record.threadName != THREAD_NAME
        )
        seen = self._current()
        while not self._stop.wait(self.poll_s):
            try:
                number = self._current()
                if number != seen:
                    seen = number
                    self.warm(number)
            except Exception:  # the thread must outlive any fault; the pages still compute
                log.exception("warming the result cache failed")
