"""A background syncer for long-running processes (the app): one thread, one sync at a time.

The app creates one per process (Streamlit ``cache_resource``); across processes the store's file
lock keeps it to one sync at a time, and a syncer that finds the lock taken simply waits for the
next tick. Failures are recorded (``last_error``) and retried on the next tick with backoff, so the
pages keep serving the cache and recover by themselves when the source returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import sync
from .config import Settings
from .errors import O11yError, SyncBusy
from .ingest.sync import SyncReport

log = logging.getLogger(__name__)


@dataclass
class SyncState:
    running: bool = False
    last_report: SyncReport | None = None
    last_error: str | None = None
    last_attempt: float = 0.0
    last_success: float = 0.0
    failures: int = 0
    progress: tuple[str, int, int] | None = None


class BackgroundSyncer:
    def __init__(self, settings: Settings, *, interval_s: float | None = None, client: Any = None):
        self.settings = settings
        self.interval_s = float(interval_s or settings.sync_interval_s)
        self.client = client
        self.state = SyncState()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # Called after every sync attempt, failed ones too (alerts evaluate then). A hook must
        # return at once: it hands work to a thread of its own, it never runs it here.
        self.after_sync: list[Callable[[], None]] = []

    def start(self) -> BackgroundSyncer:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="o11y-sync", daemon=True)
                self._thread.start()
        return self

    def is_alive(self) -> bool:
        """Whether the background thread is running (it is not when background sync is off)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def trigger(self) -> None:
        """Ask for a sync now (the "sync now" button); returns at once."""
        self._wake.set()

    def run_once(self) -> SyncReport | None:
        """One sync attempt, recorded in ``state``, then the after-sync hooks; never raises."""
        try:
            return self._attempt()
        finally:
            for hook in list(self.after_sync):
                try:
                    hook()
                except Exception:  # a hook's bug must not stop the syncing
                    log.exception("after-sync hook failed")

    def _attempt(self) -> SyncReport | None:
        st = self.state
        st.running, st.last_attempt = True, time.time()

        def progress(phase: str, done: int, total: int) -> None:
            st.progress = (phase, done, total)

        try:
            report = sync(self.settings, client=self.client, progress=progress)
        except SyncBusy:
            return None  # someone else is syncing the same cache: their result is ours
        except O11yError as exc:
            st.last_error, st.failures = exc.one_line(), st.failures + 1
            return None
        except Exception as exc:  # the thread must survive anything
            log.exception("background sync failed unexpectedly")
            st.last_error, st.failures = f"Sync failed: {type(exc).__name__}", st.failures + 1
            return None
        finally:
            st.running, st.progress = False, None
        st.last_report, st.last_error, st.failures = report, None, 0
        st.last_success = time.time()
        return report

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            # Back off while failing (up to 5 minutes), so an outage is not hammered.
            delay = self.interval_s * min(2**self.state.failures, 5 * 60 / self.interval_s)
            self._wake.wait(timeout=max(1.0, delay if self.state.failures else self.interval_s))
            self._wake.clear()
