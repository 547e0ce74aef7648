"""View choices in the URL: top, split, dot — parsed without Streamlit."""

from __future__ import annotations

import pytest

from ui import view as V


@pytest.mark.parametrize("raw,want", [(None, 10), ("", 10), ("5", 5), ("50", 50), (" 20 ", 20)])
def test_top_takes_a_number_from_1_to_50(raw, want):
    c = V.parse_top(raw)
    assert c.value == want and c.notice is None


@pytest.mark.parametrize("raw", ["0", "51", "-3", "ten", "1e3", "x" * 5000, "5; DROP"])
def test_a_bad_top_falls_back_to_10_with_a_short_notice(raw):
    c = V.parse_top(raw)
    assert c.value == V.TOP_DEFAULT
    assert c.notice and "top=" in c.notice and len(c.notice) < 200


def test_split_is_mode_or_agent():
    assert V.parse_option("agent", V.SPLITS, key="split", default="mode").value == "agent"
    bad = V.parse_option("<b>x</b>", V.SPLITS, key="split", default="mode")
    assert bad.value == "mode" and "split=" in bad.notice


def test_a_dot_agent_is_taken_exactly_when_the_data_holds_it():
    known = ["did:cf:a b", "did:cf:🦊", "plain"]
    assert V.parse_agent("did:cf:🦊", known).value == "did:cf:🦊"
    assert V.parse_agent("did:cf:a b", known).value == "did:cf:a b"
    gone = V.parse_agent("did:cf:nobody", known)
    assert gone.value is None and "nobody" in gone.notice
