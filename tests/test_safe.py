"""Escaping for each destination, checked with independent parsers: the stdlib HTML parser and
markdown-it (a CommonMark implementation), never by comparing with our own output."""

from __future__ import annotations

import html
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from ui.safe import Safe, h, html_text, join, md_text, plain, plotly_text

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=http://127.0.0.1:9/x.png onerror=alert(1)>',
    "![beacon](http://127.0.0.1:9/md.png)",
    "[link](http://127.0.0.1:9/)",
    "line one\n\n# heading\n- item",
    "`code` and ``` fence",
    "*em* _em_ **strong** ~~del~~ $x^2$ :red[red] :material/home:",
    "\u202eevil\u202c RTL",
    "a\rb\u2028c\x00d\x1be",
    "<a href='http://127.0.0.1:9/'>x</a> &amp; &lt;",
]


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data) -> None:
        self.text.append(data)


def parse(markup: str) -> _Collect:
    p = _Collect()
    p.feed(markup)
    p.close()
    return p


@pytest.mark.parametrize("value", HOSTILE)
def test_html_text_is_only_text_and_reads_back_as_the_plain_value(value):
    out = html_text(value)
    assert "\n" not in out and "\r" not in out
    p = parse(f'<div title="{out}">{out}</div>')
    assert [t for t, _ in p.tags] == ["div"]
    assert p.tags[0][1]["title"] == plain(value)
    assert "".join(p.text) == plain(value)


@pytest.mark.parametrize("value", HOSTILE)
def test_md_text_renders_as_one_paragraph_of_the_same_text(value):
    tokens = MarkdownIt("commonmark").enable("strikethrough").parse(md_text(value))
    kinds = [t.type for t in tokens]
    assert kinds == ["paragraph_open", "inline", "paragraph_close"], kinds
    children = tokens[1].children or []
    assert {c.type for c in children} <= {"text", "softbreak"}, [c.type for c in children]
    shown = "".join(c.content for c in children)
    assert shown.replace("\u2060", "") == plain(value)  # word joiners keep URLs from linking


@pytest.mark.parametrize("value", HOSTILE)
def test_plotly_text_holds_no_markup_and_never_escapes_twice(value):
    out = plotly_text(value)
    assert "<" not in out and ">" not in out and "\n" not in out
    p = parse(out)
    assert not p.tags
    assert plotly_text(out) == out  # a label a figure escaped already stays as it is
    if "&" not in value:
        assert "".join(p.text) == plain(value)
        assert plotly_text(html.escape(value, quote=False)) == out  # escaped before: same


def test_bidi_overrides_and_controls_are_shown_as_replacement_characters():
    assert plain("\u202eabc\u2066x\u200f") == "\ufffdabc\ufffdx\ufffd"
    assert plain("a\tb") == "a\tb"  # a tab is harmless text
    assert plain("a\nb\r\nc") == "a b c"


def test_a_huge_value_is_clipped_keeping_start_and_end():
    big = "A" * 50 + "x" * 100_000 + "Z" * 10
    out = plain(big, 60)
    assert len(out) == 60 and out.startswith("A" * 39) and out.endswith("Z" * 10) and "…" in out


def test_the_builder_escapes_every_value_unless_marked_safe():
    out = h(
        '<div class="{cls}" title="{t}">{body}{inner}</div>',
        cls='x" onmouseover="alert(1)',
        t="<b>",
        body="<script>x</script>",
        inner=Safe("<b>ours</b>"),
    )
    p = parse(out)
    assert [t for t, _ in p.tags] == ["div", "b"]
    assert p.tags[0][1] == {"class": 'x" onmouseover="alert(1)', "title": "<b>"}
    assert join(["<i>", Safe("<b>ok</b>")]) == "&lt;i&gt;<b>ok</b>"


def test_escape_figure_escapes_each_distinct_hover_string_once(monkeypatch):
    """A strip of thousands of dots names a dozen agents: escaping is per distinct string (it
    was per dot, a quarter of the timeline's script run), and every dot still gets its text."""
    import numpy as np
    import plotly.graph_objects as go

    from ui import safe

    calls: list[str] = []
    real = safe.plotly_text
    monkeypatch.setattr(
        safe, "plotly_text", lambda v, limit=None: calls.append(v) or real(v, limit)
    )
    agents = np.array(["<b>x</b>", "did:cf:a"] * 5000, dtype=object)
    custom = np.column_stack([agents, np.arange(10_000)]).astype(object)
    fig = safe.escape_figure(go.Figure(go.Scattergl(x=list(range(10_000)), customdata=custom)))
    assert len(calls) == 2
    out = np.asarray(fig.data[0].customdata, dtype=object)
    assert out[0, 0] == "&lt;b&gt;x&lt;/b&gt;" and out[1, 0] == "did:cf:a"
    assert out[9998, 0] == out[0, 0] and out[9999, 1] == 9999
