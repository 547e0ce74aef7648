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
