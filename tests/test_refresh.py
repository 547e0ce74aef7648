"""The refresh picker's URL value (``refresh=``), parsed without Streamlit."""

from __future__ import annotations

import pytest

from ui.refresh import CHOICES, DEFAULT, parse_refresh, seconds, to_param


@pytest.mark.parametrize(
    ("values", "choice"),
    [
        ([], "1m"),
        ([""], "1m"),
        (["off"], "off"),
        (["0"], "off"),
        (["10s"], "10s"),
        (["10"], "10s"),
        (["30S"], "30s"),
        (["60"], "1m"),
        (["1min"], "1m"),
        (["300s"], "5m"),
        (["5m"], "5m"),
        (["10s", "5m"], "5m"),  # the last value wins, like every other parameter
    ],
)
def test_refresh_values_and_their_equivalents(values, choice):
    assert parse_refresh(values) == (choice, None)


@pytest.mark.parametrize("raw", ["banana", "7s", "1h", "-10s", "1e9", "10s; DROP", "x" * 500])
def test_an_unusable_refresh_falls_back_to_a_minute_with_a_notice(raw):
    choice, notice = parse_refresh([raw])
    assert choice == DEFAULT == "1m"
    assert notice and notice.startswith("Ignored refresh=") and len(notice) < 120


def test_intervals_and_the_canonical_url_form():
    assert [seconds(c) for c in CHOICES] == [None, 10, 30, 60, 300]
    assert to_param("1m") is None and to_param("off") == "off" and to_param("10s") == "10s"
