"""One cross-process lock: an ``flock`` on a file in the store, held for a ``with`` block."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import O11yError


@contextlib.contextmanager
def file_lock(
    path: Path, *, timeout_s: float, busy: O11yError, poll_s: float = 0.1
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing); waits at most ``timeout_s``
    (0: not at all) for another holder, then raises ``busy``. Closing the file releases it, so a
    killed holder never leaves it locked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    # No cause on purpose: a lock held elsewhere is the expected state, not a
                    # fault; ``busy`` already names who holds it.
                    raise busy from None
                time.sleep(poll_s)
        yield
    finally:
        os.close(fd)
