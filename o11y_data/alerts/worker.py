"""The app's and ``watch``'s evaluator: evaluation on one thread, delivery on another."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..config import Settings
from ..errors import O11yError
from ..query.db import EventsDB
from .delivery import Deliverer, Options, deliver
from .evaluation import FAULT_NOTIFY_AFTER, Evaluation, evaluate
from .notice import Notice
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
        self.failures = 0  # whole evaluations failed in a row
        self._failing_since: datetime | None = None
        self._told = False
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
                self._evaluated()
                self.deliverer.wake(heartbeat=True)
                if self.on_result:
                    self.on_result(ev, [])
            except O11yError as exc:
                log.warning("alert evaluation failed: %s", exc.one_line())
                self._failed(exc.one_line())
            except Exception:  # the thread must survive anything; the cause goes to the log
                log.exception("alert evaluation failed")
                self._failed("alert evaluation failed unexpectedly")
            with self._lock:
                if not self._wake.is_set():
                    self._idle.set()

    def _failed(self, reason: str) -> None:
        """A whole evaluation failed (e.g. the store cannot be written, so no outbox either):
        after :data:`FAULT_NOTIFY_AFTER` in a row, every webhook is told directly."""
        self.last_error = reason
        self.failures += 1
        self._failing_since = self._failing_since or datetime.now(UTC)
        if self.failures >= FAULT_NOTIFY_AFTER and not self._told:
            self._told = True
            self._tell("firing", reason)

    def _evaluated(self) -> None:
        if self._told:
            self._tell("resolved", self.last_error or "")
        self.failures, self._failing_since, self._told = 0, None, False

    def _tell(self, status: str, reason: str) -> None:
        now = datetime.now(UTC)
        notice = Notice(
            status=status,
            rule="alert_evaluation",
            title="Alert evaluation",
            severity="critical",
            metric="last_sync_age",
            scope="all",
            key=None,
            value=None,
            threshold=0.0,
            comparison=">",
            since=self._failing_since or now,
            at=now,
            error=reason,
        )
        opts = self.deliverer.options
        for url in self.settings.alert_webhooks:  # beside evaluation: a thread per URL, bounded
            threading.Thread(
                target=deliver,
                args=(url, notice),
                kwargs={"attempts": opts.attempts, "timeout_s": opts.timeout_s},
                name="o11y-hook-direct",
                daemon=True,
            ).start()
