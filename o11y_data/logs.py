"""Root causes go to a log file; screens and the CLI show one line.

``setup_logging`` sends the ``o11y_data`` and ``ui`` loggers to ``<cache>/o11y.log`` (rotated)
through a formatter that replaces every configured secret with ``***`` in the whole record,
tracebacks and exception chains included. Without it the library logs nowhere (a NullHandler), so
importing it never prints to anyone's terminal.
"""

from __future__ import annotations

import logging
import logging.handlers
from collections.abc import Iterable
from pathlib import Path

from .config import Settings, secret_values

LOGGERS = ("o11y_data", "ui")
LOG_FILE = "o11y.log"


class RedactingFormatter(logging.Formatter):
    """A formatter whose output never holds one of ``secrets`` (message, args, traceback)."""

    def __init__(self, secrets: Iterable[str], fmt: str | None = None) -> None:
        super().__init__(fmt or "%(asctime)s %(levelname)s %(name)s: %(message)s")
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


class _OurFileHandler(logging.handlers.RotatingFileHandler):
    """Marks the handler setup_logging added, so a second call replaces it."""


def setup_logging(settings: Settings, *, level: int = logging.INFO) -> Path | None:
    """Log root causes (secrets redacted) to ``<cache>/o11y.log``; returns its path, or None
    when the cache folder cannot be written (logging must never stop the app or the CLI)."""
    path = settings.cache_dir / LOG_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = _OurFileHandler(path, maxBytes=5_000_000, backupCount=2, encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(RedactingFormatter(secret_values(settings)))
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _OurFileHandler)]:
            logger.removeHandler(old)
            old.close()
        logger.addHandler(handler)
        logger.setLevel(min(level, logger.level or level))
    return path
