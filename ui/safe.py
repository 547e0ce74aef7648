"""Untrusted text (event fields, URL values) made inert for the place it goes. No Streamlit here.

Nothing from an event may shape a page: an agent, mode or event type is data, never markup. One
function per destination:

- :func:`html_text` for HTML (text and attribute values), also safe inside Streamlit's markdown
  with ``unsafe_allow_html``: line breaks become spaces (a newline could end the HTML block and
  turn the rest into Markdown) and Markdown's emphasis, code, link and math characters become
  character references;
- :func:`md_text` for Streamlit Markdown (``st.markdown``, captions, alerts);
- :func:`plotly_text` for Plotly strings (trace names, category labels, hover data): Plotly renders
  a subset of HTML in them (``<a href>``, ``<br>``, ``<b>``…), so ``& < >`` are escaped.

:func:`h` builds HTML from a template with every interpolated value escaped unless it is
:class:`Safe` (markup this code built), so escaping is on by default.

All of them also neutralise controls and bidirectional overrides (U+202E and friends, which can
make text read backwards and spill over what follows) by showing U+FFFD in their place.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from typing import Any

import numpy as np

from o11y_data.text import clip

REPLACEMENT = "\ufffd"
# C0/C1 controls (tab kept), bidi embeddings/overrides/isolates and marks, line/paragraph separators
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile("\r\n|[\r\n\u2028\u2029\x85\x0b\x0c]")
# Characters Markdown (and Streamlit's extensions: :material/…:, :red[…], $math$) give meaning.
_MD_SPECIAL = "\\`*_[]{}()<>#|:~$!+-.&"
_HTML_MAP = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "'": "&#39;",
    **{c: f"&#{ord(c)};" for c in "`*_[]{}#|~$\\\t"},
}


class Safe(str):
    """A string of markup built by this code, inserted by :func:`h` as it is."""


def plain(value: Any, limit: int | None = None) -> str:
    """``value`` as one line of inert text: line breaks become spaces, controls and bidi
    overrides become U+FFFD; clipped to ``limit`` characters."""
    text = "" if value is None else str(value)
    text = _LINE_BREAKS.sub(" ", text)
    return clip(_CONTROLS.sub(REPLACEMENT, text), limit, keep_end=True, one_line=False)


def html_text(value: Any, limit: int | None = None) -> str:
    """Escaped for HTML text or a quoted attribute, and inert in Streamlit's markdown."""
    return "".join(_HTML_MAP.get(c, c) for c in plain(value, limit))


def md_text(value: Any, limit: int | None = None) -> str:
    """Escaped for Streamlit Markdown: every Markdown character backslash-escaped, one line."""
    out = "".join("\\" + c if c in _MD_SPECIAL else c for c in plain(value, limit))
    # GFM turns bare URLs and e-mail addresses into links, escaped or not (even through character
    # references): an invisible word joiner inside "://", "www." and before "@" keeps them text.
    out = out.replace("\\://", "\\:\u2060//").replace("@", "\u2060@")
    return re.sub("(?i)(www)\\\\.", "\\1\u2060\\\\.", out)


_BARE_AMP = re.compile(r"&(?!(?:amp|lt|gt|quot|#\d+|#x[0-9a-fA-F]+);)")


def plotly_text(value: Any, limit: int | None = None) -> str:
    """Escaped for a Plotly string (its pseudo-HTML): ``< >`` and bare ``&`` as entities, one
    line. Idempotent: text a figure builder escaped already (``&lt;``) is left as it is, so a
    label is never shown double-escaped, and what remains holds no tag."""
    text = _BARE_AMP.sub("&amp;", plain(value, limit))
    return text.replace("<", "&lt;").replace(">", "&gt;")


class _Escaping(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, Safe):
            return str(value)
        return html_text(format(value, format_spec))


_FORMATTER = _Escaping()


def h(template: str, /, *args: Any, **values: Any) -> Safe:
    """``template`` (markup we wrote, ``str.format`` syntax) with every value HTML-escaped, except
    :class:`Safe` values (markup built by :func:`h` or :func:`join`)."""
    return Safe(_FORMATTER.vformat(template, args, values))


def join(parts: Iterable[Safe], sep: str = "") -> Safe:
    """Markup pieces joined; a piece that is not :class:`Safe` is escaped like a value."""
    return Safe(sep.join(p if isinstance(p, Safe) else html_text(p) for p in parts))


# -- Plotly ----------------------------------------------------------------------------------

LABEL_MAX = 60  # trace names, category labels, slice labels
HOVER_MAX = 200  # strings shown in hovers (customdata, hovertext)
_LABEL_ATTRS = ("name", "labels", "x", "y", "text")
_HOVER_ATTRS = ("customdata", "hovertext")


def _escape_values(values: Any, limit: int) -> Any:
    """A trace's array (list, tuple, numpy, nested) with every string made Plotly-inert; the very
    same object when nothing needed changing (most data: no copy, no comparison)."""
    if isinstance(values, str):
        return plotly_text(values, limit)
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "OUS":
            return values
        flat = values.reshape(-1)
        fixes = {}
        # A column of event strings repeats a few values thousands of times (an agent per dot):
        # each distinct string is escaped once.
        memo: dict[str, str] = {}
        for i, v in enumerate(flat):
            if isinstance(v, str):
                new = memo.get(v)
                if new is None:
                    new = memo[v] = plotly_text(v, limit)
                if new != v:
                    fixes[i] = new
        if not fixes:
            return values
        out = values.astype(object).copy()
        out_flat = out.reshape(-1)
        for i, new in fixes.items():
            out_flat[i] = new
        return out
    if isinstance(values, list | tuple):
        seen: dict[str, str] = {}
        out_list = []
        changed = False
        for v in values:
            if isinstance(v, str):
                if v not in seen:
                    seen[v] = plotly_text(v, limit)
                new_v: Any = seen[v]
            elif isinstance(v, list | tuple | np.ndarray):
                new_v = _escape_values(v, limit)
            else:
                new_v = v
            changed = changed or new_v is not v and new_v != v
            out_list.append(new_v)
        return out_list if changed else values
    return values


def escape_figure(fig: Any) -> Any:
    """Make every data-derived string of a Plotly figure inert (in place; returns ``fig``).

    Trace names, category values (x/y), slice labels and texts are escaped and clipped to
    :data:`LABEL_MAX`; hover data to :data:`HOVER_MAX`; a category order on an axis gets the same
    treatment so it still names the same categories. Hover templates must not interpolate data
    themselves: they use ``%{fullData.name}``/``%{customdata}``, which read the escaped values.
    """
    for trace in fig.data:
        for attr in _LABEL_ATTRS + _HOVER_ATTRS:
            value = getattr(trace, attr, None) if attr in trace else None
            if value is None:
                continue
            limit = LABEL_MAX if attr in _LABEL_ATTRS else HOVER_MAX
            new = _escape_values(value, limit)
            if new is not value:
                setattr(trace, attr, None)  # Plotly compares old and new (fails on pd.NA)
                setattr(trace, attr, new)
    for axis in ("xaxis", "yaxis"):
        for name in fig.layout:
            if name.startswith(axis):
                ax = fig.layout[name]
                if ax.categoryarray is not None:
                    ax.categoryarray = _escape_values(list(ax.categoryarray), LABEL_MAX)
    return fig
