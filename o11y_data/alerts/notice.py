"""A notice: one decided notification, typed from the evaluation to the webhook's JSON body."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Notice:
    """One notification; the webhook's JSON body is :meth:`payload`.

    ``status`` is ``firing`` or ``resolved``; ``error`` is set when the notice is about the rule's
    own evaluation failing (its ``value`` is then None)."""

    status: str
    rule: str
    title: str
    severity: str
    metric: str
    scope: str
    key: str | None
    value: float | None
    threshold: float
    comparison: str
    since: datetime
    at: datetime
    renotify: bool = False
    url: str | None = None
    error: str | None = None

    @property
    def agent(self) -> str | None:
        return self.key if self.scope in {"per_agent", "agents"} else None

    @property
    def mode(self) -> str | None:
        return self.key if self.scope == "per_mode" else None

    @property
    def id(self) -> str:
        """Stable for one decision: the outbox's key for it."""
        raw = f"{self.rule}\x1f{self.key}\x1f{self.status}\x1f{self.at.timestamp()}\x1f{self.error}"
        return hashlib.sha256(raw.encode()).hexdigest()[:20]

    @property
    def text(self) -> str:
        from .text import notice_text

        return notice_text(self)

    def payload(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "rule": self.rule,
            "title": self.title,
            "severity": self.severity,
            "agent": self.agent,
            "mode": self.mode,
            "key": self.key,
            "metric": self.metric,
            "value": None if self.value is None else round(self.value, 4),
            "threshold": self.threshold,
            "comparison": self.comparison,
            "since": iso(self.since),
            "at": iso(self.at),
            "renotify": self.renotify,
            "error": self.error,
            "text": self.text,
            "url": self.url,
        }

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["since"], out["at"] = self.since.timestamp(), self.at.timestamp()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Notice:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["since"] = datetime.fromtimestamp(float(values["since"]), UTC)
        values["at"] = datetime.fromtimestamp(float(values["at"]), UTC)
        return cls(**values)
