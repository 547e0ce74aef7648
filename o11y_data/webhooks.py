"""Alert notices to webhooks: an HTTP POST of JSON per URL, retried with backoff, bounded.

Stdlib only (urllib). A URL may carry a token (a Slack incoming webhook's path is its secret), so
it is never logged or shown whole: :func:`o11y_data.config.webhook_label` names it by host. A
delivery never raises: it returns a :class:`Delivery` saying what happened, which the caller
records so a failed one is visible on the alerts page.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

from .config import Secret, webhook_label

log = logging.getLogger(__name__)

ATTEMPTS = 4  # one try and three retries
BASE_DELAY_S = 1.0  # then 2 s, 4 s
TIMEOUT_S = 5.0  # per request
DEADLINE_S = 30.0  # for all attempts of one notice to one URL
RETRY_STATUS = {408, 425, 429}  # and every 5xx


@dataclass(frozen=True)
class Delivery:
    """One notice to one URL: delivered or not, after how many attempts, and why not."""

    at: float
    target: str  # webhook_label(url): scheme and host only
    rule: str
    key: str | None
    status: str  # the notice's status: firing | resolved
    ok: bool
    attempts: int
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Permanent(Exception):
    """A refusal that retrying cannot fix (e.g. 404: the hook was deleted)."""


class _Retry(Exception):
    """An answer worth retrying (5xx, 408, 425, 429)."""


def _post_once(url: str, body: bytes, timeout: float) -> None:
    req = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "o11y-dashboard-alerts"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read(1024)
    except urllib.error.HTTPError as exc:
        code = exc.code
        exc.close()
        if code >= 500 or code in RETRY_STATUS:
            raise _Retry(f"HTTP {code}") from None
        raise _Permanent(f"HTTP {code}") from None


def _describe(exc: BaseException) -> str:
    """One line for a failed attempt, never the URL (it may hold a token)."""
    if isinstance(exc, _Permanent | _Retry):
        return str(exc)
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):  # socket.timeout is TimeoutError
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror  # e.g. "Connection refused"
    return type(reason).__name__


def deliver(
    url: Secret,
    payload: dict[str, Any],
    *,
    attempts: int = ATTEMPTS,
    base_delay_s: float = BASE_DELAY_S,
    timeout_s: float = TIMEOUT_S,
    deadline_s: float = DEADLINE_S,
) -> Delivery:
    """POST ``payload`` to ``url``: retried on connection errors, timeouts, 5xx and 429 with
    doubling delays, at most ``attempts`` tries within ``deadline_s``; never raises."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    target = webhook_label(url)
    start = time.monotonic()
    error: str | None = None
    tries = 0
    for tries in range(1, max(1, attempts) + 1):
        left = deadline_s - (time.monotonic() - start)
        try:
            _post_once(url.get(), body, timeout=max(0.5, min(timeout_s, left)))
            error = None
            break
        except _Permanent as exc:
            error = _describe(exc)
            break
        except Exception as exc:  # network trouble of any kind: retry within the bounds
            error = _describe(exc)
        delay = base_delay_s * 2 ** (tries - 1)
        if tries >= attempts or time.monotonic() - start + delay >= deadline_s:
            break
        time.sleep(delay)
    if error:
        log.warning(
            "alert notice for %s not delivered to %s after %d attempt(s): %s",
            payload.get("rule"),
            target,
            tries,
            error,
        )
    return Delivery(
        at=time.time(),
        target=target,
        rule=str(payload.get("rule")),
        key=payload.get("key"),
        status=str(payload.get("status")),
        ok=error is None,
        attempts=tries,
        error=error,
    )
