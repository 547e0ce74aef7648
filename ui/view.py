"""View choices kept in the URL beside the filters (pure: no Streamlit here).

A view choice changes what a page shows, not which events count: how many agents a chart names
(``top``), what the errors page splits by (``split``), whose every cycle the timeline draws
(``dot``). Like the filters, an unusable value is dropped with a one-line notice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from o11y_data.text import clip

TOP_DEFAULT = 10
TOP_CHOICES = (5, 10, 20, 50)
TOP_MAX = 50
SPLITS = ("mode", "agent")
DOTS_MAX_AGENTS = 12  # the every-cycle view draws all agents only up to this many


@dataclass(frozen=True)
class Choice:
    value: object
    notice: str | None = None


def parse_top(raw: str | None) -> Choice:
    """``top=``: how many agents charts name (1-50), the rest folded into "others"."""
    if raw is None or not str(raw).strip():
        return Choice(TOP_DEFAULT)
    text = str(raw).strip()
    if text.isdigit() and 1 <= int(text) <= TOP_MAX:
        return Choice(int(text))
    return Choice(
        TOP_DEFAULT,
        f"Ignored top='{clip(text)}' (use a number from 1 to {TOP_MAX}); "
        f"showing the top {TOP_DEFAULT} agents.",
    )


def parse_option(raw: str | None, options: Sequence[str], *, key: str, default: str) -> Choice:
    """``key=`` when it is one of ``options``, else ``default`` (with a notice when given)."""
    if raw is None or not str(raw).strip():
        return Choice(default)
    if raw in options:
        return Choice(raw)
    return Choice(
        default, f"Ignored {key}='{clip(raw)}' (use {' or '.join(options)}); showing {default}."
    )


def parse_agent(raw: str | None, known: Sequence[str], *, key: str = "dot") -> Choice:
    """An agent named in the URL, exactly as the data holds it (any characters), or None."""
    if raw is None or raw == "":
        return Choice(None)
    if raw in set(known):
        return Choice(raw)
    return Choice(None, f"Ignored unknown agent '{clip(raw)}' in {key}= from the link.")
