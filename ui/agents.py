"""Agent names: DIDs are long, so show a short form or a friendly name from ``agents.toml``.

The mapping file (path from ``O11Y_AGENTS_FILE``, default ``./agents.toml``) maps DID -> name::

    [agents]
    "did:cf:3zv2mwufxbv54byvsehogfqr" = "planner"

A top-level ``"did" = "name"`` table works too. A missing or broken file means no names.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from o11y_data.config import Settings


def agents_file(settings: Settings | None = None) -> Path:
    """The names file of ``settings`` (default: the app's settings; the default path when those
    cannot load, so a settings error is shown once, by the page, not again for the names)."""
    if settings is None:
        from o11y_data.errors import O11yError
        from ui.data import get_settings

        try:
            settings = get_settings()
        except O11yError:
            settings = Settings()
    return settings.agents_file


def load_names(path: Path) -> dict[str, str]:
    """DID -> friendly name; ``{}`` when the file is missing or unreadable."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}
    table = data.get("agents", data)
    if not isinstance(table, dict):
        return {}
    return {
        str(k): str(v).strip()[:60]
        for k, v in table.items()
        if isinstance(v, str | int) and str(v).strip()
    }


UNKNOWN_AGENT = "unknown"  # the contract: a missing or empty agent reads as "unknown"
SHORT_MAX = 24  # a non-DID agent string longer than this is clipped in the middle


def short_did(did: str, *, head: int = 4, tail: int = 4) -> str:
    """The one short form of an agent, on every screen: ``did:cf:abcd…wxyz`` (the method prefix,
    the first and last characters of the id); a short DID or name is kept; any other string
    longer than :data:`SHORT_MAX` keeps its start and end (an agent string is untrusted: a 100 KB
    one must not take over a legend or a tile)."""
    if not isinstance(did, str) or not did:
        return UNKNOWN_AGENT
    if did.startswith("did:") and len(did) <= 80:
        prefix, _, ident = did.rpartition(":")
        if len(ident) <= head + tail + 1:
            return did
        return f"{prefix}:{ident[:head]}…{ident[-tail:]}"
    if len(did) <= SHORT_MAX:
        return did
    return did[:12] + "…" + did[-8:]


def label(did: str, names: dict[str, str] | None = None) -> str:
    """The friendly name when there is one, else the short DID."""
    if names and did in names:
        return names[did]
    return short_did(did)


def picker_label(did: str, names: dict[str, str] | None = None) -> str:
    """An agent as a picker lists it: the whole DID (so typing any part of it finds it), after
    the friendly name when there is one."""
    if names and did in names:
        return f"{names[did]} · {did}"
    return did


def labels(dids, names: dict[str, str] | None = None) -> dict[str, str]:
    """A DID -> label map whose labels are unique (a clash falls back to the short DID)."""
    out: dict[str, str] = {}
    seen: dict[str, int] = {}
    for did in dids:
        lab = label(did, names)
        if lab in seen:
            seen[lab] += 1
            lab = f"{lab} ({short_did(did)})" if names and did in names else f"{lab}#{seen[lab]}"
        else:
            seen[lab] = 1
        out[did] = lab
    return out


def nearest(text: str, known: list[str], names: dict[str, str] | None = None, *, n: int = 3):
    """The known agents (DIDs) nearest to ``text``, a name that matched none, best first: by
    DID or friendly name (difflib's ratio, at least 0.5); ``text`` is clipped to 200 characters
    first (a 10 kB value must not cost seconds)."""
    import difflib

    text = str(text)[:200]
    names = names or {}
    by_word: dict[str, str] = {d: d for d in known if d != UNKNOWN_AGENT}
    by_word |= {names[d]: d for d in known if d in names}
    out: list[str] = []
    for word in difflib.get_close_matches(text, list(by_word), n=n * 2, cutoff=0.5):
        if by_word[word] not in out:
            out.append(by_word[word])
    return out[:n]
