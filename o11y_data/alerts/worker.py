"""The app's and ``watch``'s evaluator: evaluation on one thread, delivery on another."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ..config import Settings
from ..db import EventsDB
from ..errors import O11yError
from .delivery import Deliverer, Options
from .evaluation import Evaluation, evaluate
from .state import Delivery

log = logging.getLogger(__name__)


class AlertWorker:
    """Evaluates on a thread of its own, so a sync never waits for it, and hands the notices to
    a :class:`Deliverer` (another thread), so a slow webhook never holds an evaluation.

    :meth:`request` (the background syncer's after-sync hook) returns at once; requests that
    arrive while an evaluation runs fold into one more evaluation. The deliverer also starts at
    once, to send what a process that died left in the outbox."""

    def __init__(
        self,
        settings: Settings,
        db: EventsDB,
        *,
        on_result: Callable[[Evaluation, list[Delivery]], None] | None = None,
        on_delivered: Callable[[list[Delivery]], None] | None = None,
        who: str = "",
        delivery: dict[str, Any] | None = None,
        interval_s: float | None = None,
    ) -> None:
        self.settings, self.db = settings, db
        self.on_result = on_result
        self.who = who
        self.interval_s = interval_s
        self.deliverer = Deliverer(
            settings, options=Options(**(delivery or {})), on_result=on_delivered
        )
        self.last: Evaluation | None = None
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        """Ask for an evaluation; never blocks."""
        with self._lock:
            self._idle.clear()
            self._wake.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="o11y-alerts", daemon=True)
                self._thread.start()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no evaluation and no delivery is asked for or running (tests, ``watch``)."""
        if not self._idle.wait(timeout):
            return False
        return self.deliverer.wait_idle(timeout)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.deliverer.stop()

    def _run(self) -> None:
        self.deliverer.wake()  # what a crashed process left pending goes out now
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                break
            self._wake.clear()
            try:
                ev = evaluate(self.settings, self.db, who=self.who, interval_s=self.interval_s)
                if self.last is None or self.last.problems != ev.problems:
                    for problem in ev.problems:
                        log.info("alert rules: %s", problem)
                self.last, self.last_error = ev, None
                self.deliverer.wake(heartbeat=True)
                if self.on_result:
                    self.on_result(ev, [])
            except O11yError as exc:
                self.last_error = exc.one_line()
                log.warning("alert evaluation failed: %s", exc.one_line())
            except Exception:  # the thread must survive anything; the cause goes to the log
                self.last_error = "alert evaluation failed unexpectedly"
                log.exception("alert evaluation failed")
            with self._lock:
                if not self._wake.is_set():
                    self._idle.set()
