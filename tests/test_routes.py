"""Links to the dashboard's pages, as notices and other pages write them."""

from __future__ import annotations

from o11y_data import routes


def test_a_link_to_the_default_page_opens_the_root_not_a_path_streamlit_does_not_serve():
    assert routes.view_link("https://o11y.example.com/", routes.OVERVIEW) == (
        "https://o11y.example.com/"
    )
    assert routes.view_link("https://o11y.example.com", routes.OVERVIEW, range_name="7d") == (
        "https://o11y.example.com/?range=7d"
    )


def test_a_link_to_another_page_names_its_path_and_encodes_a_hostile_agent():
    url = routes.view_link("https://h", routes.TIMELINE, agent="did:cf:a&range=all #x")
    assert url == "https://h/timeline?agent=did%3Acf%3Aa%26range%3Dall+%23x"


def test_exactly_one_route_is_the_default():
    assert [r for r in routes.ROUTES if r.default] == [routes.OVERVIEW]


def _notice(**changes):
    from datetime import UTC, datetime, timedelta

    from o11y_data.alerts import Notice

    at = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    base = dict(
        status="firing", rule="error_rate", title="Error rate high", severity="warning",
        metric="error_rate", scope="per_agent", key="did:cf:a&range=all #x", value=0.4,
        threshold=0.1, comparison=">", since=at - timedelta(hours=2), at=at,
    )  # fmt: skip
    return Notice(**{**base, **changes})


def test_an_agent_alert_links_to_its_agent_page_over_the_alerts_window():
    from urllib.parse import parse_qs, urlsplit

    from o11y_data.alerts import view_url

    url = urlsplit(view_url("https://h/", _notice()))
    assert url.path == "/agent"
    # held for 2 hours: the shortest preset showing it with room
    assert parse_qs(url.query) == {"agent": ["did:cf:a&range=all #x"], "range": ["6h"]}
    mode = urlsplit(view_url("https://h", _notice(scope="per_mode", key="think")))
    assert (mode.path, parse_qs(mode.query)["mode"]) == ("/errors", ["think"])
    assert view_url(None, _notice()) is None


def test_a_table_link_reads_back_the_agent_exactly_and_shows_its_name_as_text():
    from urllib.parse import parse_qs, unquote, urlsplit

    from ui.tables import agent_link, agent_links

    evil = "did:cf:x&agent=y#z <b>[l](javascript:1)</b> %41 +"
    link = agent_link(evil, {"range": "7d", "agent": ["did:cf:other"]})
    url = urlsplit(link)
    assert url.path == "agent" and parse_qs(url.query) == {"range": ["7d"], "agent": [evil]}
    assert unquote(url.fragment) == evil and "#" not in url.fragment and " " not in link
    named = agent_links(["did:cf:a", "unknown"], {"did:cf:a": "planner"}, {})
    assert [unquote(u.split("#")[1]) for u in named] == ["planner", "unknown (no agent)"]
    assert urlsplit(named[1]).path == "explorer"  # events without an agent have no page


def test_the_nearest_agents_are_found_by_did_or_name_and_a_huge_value_costs_nothing():
    from ui.agents import nearest

    known = ["did:cf:alphaalpha01", "did:cf:bravobravo02", "unknown"]
    names = {"did:cf:bravobravo02": "planner"}
    assert nearest("did:cf:alphaalpa01", known, names)[0] == "did:cf:alphaalpha01"  # best first
    assert nearest("planer", known, names) == ["did:cf:bravobravo02"]
    assert nearest("x" * 10_000, known, names) == []
    assert "unknown" not in nearest("unknow", known, names)
