"""Delivery: notices from the outbox to webhooks, at least once, and the heartbeat.

Each notice waits in the store's outbox (:mod:`.state`) until each URL has answered 2xx or its
attempts are used up. A sender *claims* an entry (its host, pid and a lease) before trying it, so
the app and ``watch`` never send one together, and a claim of a process that died (``kill -9``
mid-delivery) is void at once on the same host: whichever process runs next sends what is pending.

One attempt is one HTTP request under a **whole-request deadline**: connect, TLS, send and read
together (a watchdog shuts the socket at the deadline, so a receiver dripping a byte every few
seconds cannot hold it). Redirects are not followed and count as failures, named as such; only a
2xx is a delivery. Retried with doubling delays on connection errors, timeouts, 5xx, 408, 425
and 429, at most :data:`ATTEMPTS` attempts. Stdlib only. A URL may carry a token (a Slack
incoming webhook's path is its secret): it is shown and recorded by host only.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..config import Secret, Settings, webhook_id, webhook_label
from ..errors import O11yError
from .notice import Notice
from .state import HOST, Delivery, Heartbeat, OutboxItem, locked_state, read_state

log = logging.getLogger(__name__)

ATTEMPTS = 4  # one try and three retries
BASE_DELAY_S = 1.0  # then 2 s, 4 s
TIMEOUT_S = 10.0  # one attempt, whole request: connect + send + read
DEADLINE_S = 60.0  # one sender's pass over one entry (then it is left for the next pass)
RETRY_STATUS = {408, 425, 429}  # and every 5xx
ORPHAN_S = 3600.0  # an entry for a URL this process does not know is closed after this long
USER_AGENT = "o11y-dashboard-alerts"


class AttemptFailed(Exception):
    """One attempt failed: ``str()`` is the one-line reason (never the URL)."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.retry = retry


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror  # e.g. "Connection refused"
    if isinstance(exc, http.client.HTTPException):
        return f"bad HTTP answer ({type(exc).__name__})"
    return type(exc).__name__


def request(url: str, *, method: str, body: bytes | None, timeout_s: float) -> int:
    """One HTTP request with a whole-request deadline; returns the 2xx status, else raises
    :class:`AttemptFailed`."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise AttemptFailed("bad URL (port)", retry=False) from exc
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname or "", port, timeout=timeout_s)
    cut = threading.Event()

    def watchdog() -> None:  # the deadline: whatever the request is waiting for ends now
        cut.set()
        with contextlib.suppress(OSError, AttributeError):
            conn.sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(timeout_s, watchdog)
    timer.daemon = True
    timer.start()
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"User-Agent": USER_AGENT}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        status = resp.status
        resp.read(1024)
    except Exception as exc:
        raise AttemptFailed("timed out" if cut.is_set() else _describe(exc), retry=True) from exc
    finally:
        timer.cancel()
        conn.close()
    if cut.is_set():
        raise AttemptFailed("timed out", retry=True)
    if 200 <= status < 300:
        return status
    if 300 <= status < 400:
        raise AttemptFailed(f"redirect (HTTP {status}) not followed", retry=False)
    raise AttemptFailed(f"HTTP {status}", retry=status >= 500 or status in RETRY_STATUS)


def _body(notice: Notice) -> bytes:
    return json.dumps(notice.payload(), separators=(",", ":")).encode()


def deliver(
    url: Secret,
    notice: Notice,
    *,
    attempts: int = ATTEMPTS,
    base_delay_s: float = BASE_DELAY_S,
    timeout_s: float = TIMEOUT_S,
    deadline_s: float = DEADLINE_S,
) -> Delivery:
    """POST ``notice`` to ``url`` now, retried within the bounds; never raises (no outbox)."""
    start = time.monotonic()
    error: str | None = None
    tries = 0
    for tries in range(1, max(1, attempts) + 1):
        try:
            request(url.get(), method="POST", body=_body(notice), timeout_s=timeout_s)
            error = None
            break
        except AttemptFailed as exc:
            error = str(exc)
            if not exc.retry:
                break
        delay = base_delay_s * 2 ** (tries - 1)
        if tries >= attempts or time.monotonic() - start + delay >= deadline_s:
            break
        time.sleep(delay)
    return _outcome(webhook_label(url), notice, tries, error)


def _outcome(target: str, notice: Notice, attempts: int, error: str | None) -> Delivery:
    if error:
        log.warning(
            "alert notice for %s not delivered to %s after %d attempt(s): %s",
            notice.rule,
            target,
            attempts,
            error,
        )
    return Delivery(
        at=time.time(),
        target=target,
        rule=notice.rule,
        key=notice.key,
        status=notice.status,
        ok=error is None,
        attempts=attempts,
        error=error,
    )


@dataclass(frozen=True)
class Options:
    """Delivery bounds (tests shorten them)."""

    attempts: int = ATTEMPTS
    base_delay_s: float = BASE_DELAY_S
    timeout_s: float = TIMEOUT_S
    deadline_s: float = DEADLINE_S


def _find(outbox: list[OutboxItem], item_id: str) -> OutboxItem | None:
    return next((o for o in outbox if o.id == item_id), None)


class _Sender:
    """One pass of one process over the outbox."""

    def __init__(self, settings: Settings, opts: Options) -> None:
        self.settings, self.opts = settings, opts
        self.urls = {webhook_id(u): u for u in settings.alert_webhooks}
        self.me = f"{HOST} {os.getpid()} {secrets.token_hex(4)}"

    def claim(self, only: set[str] | None) -> list[str]:
        """Claim every entry nobody alive is sending (of the notices ``only``, if given)."""
        with locked_state(self.settings.store_dir) as state:
            now = time.time()
            got = []
            for item in state.outbox:
                if only is not None and item.notice.id not in only:
                    continue
                if item.claimed(now):
                    continue
                item.claimed_by, item.claimed_until = self.me, now + self.opts.timeout_s + 10
                got.append(item.id)
            return got

    def _finish(self, item_id: str, error: str | None) -> Delivery | None:
        with locked_state(self.settings.store_dir) as state:
            item = _find(state.outbox, item_id)
            if item is None or item.claimed_by != self.me:
                return None
            state.outbox.remove(item)
            done = _outcome(item.target, item.notice, item.attempts, error)
            state.deliveries.append(done.to_json())
            return done

    def send(self, item_id: str) -> Delivery | None:
        """Attempts on one claimed entry until it is delivered, finally failed, or this pass's
        deadline; each attempt counted in the store before it is made (bounded across crashes)."""
        start = time.monotonic()
        while True:
            with locked_state(self.settings.store_dir) as state:
                item = _find(state.outbox, item_id)
                if item is None or item.claimed_by != self.me:
                    return None
                url = self.urls.get(item.target_id)
                if url is None and item.created > time.time() - ORPHAN_S:
                    # Another process's webhook (its settings differ): it is theirs to send.
                    item.claimed_by, item.claimed_until = "", 0.0
                    item.next_at = item.created + ORPHAN_S
                    return None
                used_up = item.attempts >= self.opts.attempts  # a sender died on its last try
                wait = max(0.0, item.next_at - time.time())
                if not used_up and url is not None:
                    item.attempts += 1
                    item.claimed_until = time.time() + wait + self.opts.timeout_s + 10
                notice, tries, last = item.notice, item.attempts, item.last_error
            if url is None:
                return self._finish(item_id, "webhook no longer configured")
            if used_up:
                return self._finish(item_id, last or "attempts used up")
            time.sleep(wait)
            error, retry = None, False
            try:
                request(url.get(), method="POST", body=_body(notice), timeout_s=self.opts.timeout_s)
            except AttemptFailed as exc:
                error, retry = str(exc), exc.retry
            if error is None or not retry or tries >= self.opts.attempts:
                return self._finish(item_id, error)
            delay = self.opts.base_delay_s * 2 ** (tries - 1)
            with locked_state(self.settings.store_dir) as state:
                item = _find(state.outbox, item_id)
                if item is None or item.claimed_by != self.me:
                    return None
                item.last_error, item.next_at = error, time.time() + delay
                if time.monotonic() - start + delay >= self.opts.deadline_s:
                    item.claimed_by, item.claimed_until = "", 0.0  # the next pass goes on
                    return None


def deliver_pending(
    settings: Settings, *, notices: Sequence[Notice] | None = None, options: Options | None = None
) -> list[Delivery]:
    """Send what the outbox holds (only the entries of ``notices`` when given), a few entries at
    a time; return the final outcomes reached in this pass."""
    opts = options or Options()
    sender = _Sender(settings, opts)
    only = None if notices is None else {n.id for n in notices}
    claimed = sender.claim(only)
    if not claimed:
        return []
    workers = min(8, len(claimed))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="o11y-hook") as ex:
        out = list(ex.map(sender.send, claimed))
    return [d for d in out if d is not None]


def next_due(settings: Settings) -> float | None:
    """When the earliest entry nobody is sending is due (epoch seconds), or None."""
    state = read_state(settings.store_dir)
    now = time.time()
    due = [o.next_at for o in state.outbox if not o.claimed(now)]
    due += [o.claimed_until for o in state.outbox if o.claimed(now)]
    return min(due) if due else None


def ping_heartbeat(settings: Settings, *, timeout_s: float = TIMEOUT_S) -> Heartbeat | None:
    """GET ``O11Y_HEARTBEAT_URL`` (after a complete evaluation) and record the outcome."""
    url = settings.heartbeat_url
    if not url:
        return None
    error = None
    try:
        request(url.get(), method="GET", body=None, timeout_s=timeout_s)
    except AttemptFailed as exc:
        error = str(exc)
        log.warning("heartbeat to %s failed: %s", webhook_label(url), error)
    beat = Heartbeat(at=time.time(), target=webhook_label(url), ok=error is None, error=error)
    with contextlib.suppress(O11yError), locked_state(settings.store_dir) as state:
        state.heartbeat = beat
    return beat


class Deliverer:
    """Sends on a thread of its own, beside evaluation: woken after each evaluation, and on its
    own when a retry falls due; :meth:`wake` never blocks."""

    def __init__(
        self,
        settings: Settings,
        *,
        options: Options | None = None,
        on_result: Callable[[list[Delivery]], None] | None = None,
    ) -> None:
        self.settings, self.options, self.on_result = settings, options or Options(), on_result
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()  # nothing asked yet
        self._beat = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def wake(self, *, heartbeat: bool = False) -> None:
        with self._lock:
            if heartbeat:
                self._beat.set()
            self._idle.clear()
            self._wake.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="o11y-deliver", daemon=True)
                self._thread.start()

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self._idle.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _pass(self) -> None:
        if self._beat.is_set():
            self._beat.clear()
            ping_heartbeat(self.settings, timeout_s=self.options.timeout_s)
        if not self.settings.alert_webhooks and not read_state(self.settings.store_dir).outbox:
            return  # nothing to send (entries left for URLs since removed are closed below)
        sent = deliver_pending(self.settings, options=self.options)
        if sent and self.on_result:
            self.on_result(sent)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self._pass()
            except O11yError as exc:
                log.warning("alert delivery failed: %s", exc.one_line())
            except Exception:  # the thread must survive anything; the cause goes to the log
                log.exception("alert delivery failed")
            due = None
            with contextlib.suppress(Exception):
                due = next_due(self.settings)
            with self._lock:
                if not self._wake.is_set() and due is None:
                    self._idle.set()
            wait = 60.0 if due is None else min(60.0, max(0.05, due - time.time()))
            self._wake.wait(wait)
