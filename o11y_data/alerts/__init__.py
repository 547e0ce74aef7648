"""Alerts: rules over the store's views, states that do not flap, notices to webhooks.

The parts, one module each:

- :mod:`.rules`: the rule model, the built-in rules, ``alerts.toml`` loaded and validated;
- :mod:`.measure`: the metrics measured for the rules (all the alerts' SQL), grouped so that one
  query serves every rule measuring the same thing;
- :mod:`.evaluation`: the state machine (ok → pending → firing → resolved, faults) and the
  notices it decides;
- :mod:`.notice`: the typed notice, from the evaluation to the webhook's JSON;
- :mod:`.state`: the state file in the store, with the outbox of notices;
- :mod:`.delivery`: the outbox to webhooks (at least once, whole-request deadlines), heartbeat;
- :mod:`.text`: values and notices as text;
- :mod:`.worker`: the app's and ``watch``'s evaluator and deliverer threads.

Four built-in rules run with no setup; ``alerts.toml`` (:data:`Settings.alerts_file`) changes them,
turns them off and adds rules (see docs/alerts.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from ..config import Settings
from .delivery import (
    ATTEMPTS,
    Deliverer,
    Options,
    deliver,
    deliver_pending,
    ping_heartbeat,
)
from .evaluation import (
    AGENT_SCOPES,
    FAULT_NOTIFY_AFTER,
    NOT_WATCHED,
    AgentAlert,
    Evaluation,
    EvaluatorHealth,
    FiringSummary,
    agent_alerts,
    evaluate,
    evaluator_health,
    firing_by_agent,
    firing_summary,
    step,
    view_url,
)
from .measure import Measurer, Reading
from .notice import Notice
from .rules import (
    AGE_METRICS,
    BOUNDS,
    BUILTIN,
    METRICS,
    SCOPES,
    SEVERITIES,
    Rule,
    RuleError,
    RuleSet,
    load_rules,
    rule_from_table,
)
from .state import (
    AlertState,
    Delivery,
    Fault,
    OkKeys,
    OutboxItem,
    Series,
    Transition,
    locked_state,
    read_state,
    remove_silence,
    series_id,
)
from .state import add_silence as _add_silence
from .text import STATES, failed_lines, format_value, notice_text, slack_safe, state_lines
from .worker import AlertWorker


def add_silence(store_dir: Path, rule: str, key: str | None, until: datetime) -> None:
    """Silence ``rule`` (one key, or all with ``key=None``) until ``until``: no notices."""
    _add_silence(store_dir, rule, key, until.timestamp())


def deliver_all(
    settings: Settings, notices: Sequence[Notice] | None = None, **options: float
) -> list[Delivery]:
    """Send the outbox's entries for ``notices`` (all pending ones for None) now, in this thread,
    until each is delivered or finally failed (the ``alerts`` command; tests)."""
    return deliver_pending(settings, notices=notices, options=Options(**options))  # type: ignore[arg-type]


__all__ = [
    "AGE_METRICS",
    "ATTEMPTS",
    "BOUNDS",
    "BUILTIN",
    "FAULT_NOTIFY_AFTER",
    "AGENT_SCOPES",
    "NOT_WATCHED",
    "AgentAlert",
    "METRICS",
    "SCOPES",
    "SEVERITIES",
    "STATES",
    "AlertState",
    "AlertWorker",
    "Deliverer",
    "Delivery",
    "Evaluation",
    "EvaluatorHealth",
    "Fault",
    "FiringSummary",
    "Measurer",
    "Notice",
    "OkKeys",
    "Options",
    "OutboxItem",
    "Reading",
    "Rule",
    "RuleError",
    "RuleSet",
    "Series",
    "Transition",
    "add_silence",
    "agent_alerts",
    "deliver",
    "deliver_all",
    "deliver_pending",
    "evaluate",
    "evaluator_health",
    "failed_lines",
    "firing_by_agent",
    "firing_summary",
    "format_value",
    "load_rules",
    "locked_state",
    "notice_text",
    "ping_heartbeat",
    "read_state",
    "remove_silence",
    "rule_from_table",
    "series_id",
    "slack_safe",
    "state_lines",
    "step",
    "view_url",
]
