"""Access: with sign-in configured no page shows data to a visitor who has not signed in; the wall
opens with its own read-only token, compared in constant time, and nothing else does."""

from __future__ import annotations

import os
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from streamlit.testing.v1 import AppTest

from o11y_data.ingest import demo
from tests.support.apptest import app_under_test
from ui.access import decide, expected_wall_token, token_matches

REPO = Path(__file__).resolve().parent.parent
TOKEN = "wall-token-5f2c9a"
AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "cookie-secret-for-tests",
    "client_id": "o11y-dashboard",
    "client_secret": "oidc-client-secret-xyz",
    "server_metadata_url": "https://id.example.invalid/.well-known/openid-configuration",
}


def test_decisions():
    kw = {"auth_required": True, "logged_in": False, "token": TOKEN}
    assert (
        decide(page="overview", auth_required=False, logged_in=False, token_given=None, token="")
        == "allow"
    )
    assert decide(page="overview", token_given=None, **kw) == "login"
    assert (
        decide(page="overview", token_given=TOKEN, **kw) == "login"
    )  # the token opens the wall only
    assert decide(page="wall", token_given=TOKEN, **kw) == "allow"
    assert decide(page="wall", token_given="guess", **kw) == "deny"
    assert decide(page="wall", token_given=None, **kw) == "login"
    assert decide(page="explorer", token_given=None, **{**kw, "logged_in": True}) == "allow"


def test_a_configured_wall_token_is_required_without_sign_in():
    kw = {"auth_required": False, "logged_in": False, "token": TOKEN}
    assert decide(page="wall", token_given=TOKEN, **kw) == "allow"
    assert decide(page="wall", token_given="WRONG", **kw) == "deny"
    assert decide(page="wall", token_given=None, **kw) == "deny"
    assert decide(page="wall", token_given="", **kw) == "deny"
    assert decide(page="overview", token_given=None, **kw) == "allow"  # the token is the wall's
    # no token configured and no sign-in: the wall is as open as every other page
    assert decide(page="wall", token_given="x", **{**kw, "token": ""}) == "allow"
    # signed in: no token needed, but a wrong one is still refused
    signed = {"auth_required": True, "logged_in": True, "token": TOKEN}
    assert decide(page="wall", token_given=None, **signed) == "allow"
    assert decide(page="wall", token_given="WRONG", **signed) == "deny"


def test_token_matching_is_exact_and_never_matches_an_unset_token():
    assert token_matches(TOKEN, TOKEN)
    assert not token_matches(TOKEN[:-1], TOKEN) and not token_matches(TOKEN + "x", TOKEN)
    assert not token_matches("", "") and not token_matches(None, "") and not token_matches("x", "")
    assert expected_wall_token({"wall": {"token": "abc"}}, env={}) == "abc"
    assert expected_wall_token({"wall": {"token": "abc"}}, env={"O11Y_WALL_TOKEN": "env"}) == "env"


@pytest.fixture(scope="module")
def app_env(demo_store):
    env = {
        "O11Y_SOURCE_DIR": str(demo_store.src),
        "O11Y_CACHE_DIR": str(demo_store.cache),
        "O11Y_BACKGROUND_SYNC": "0",
        "O11Y_DEMO_LIVE": "0",
    }
    with app_under_test(env):
        yield env


def run(
    page: str, *, params: dict | None = None, auth: bool = True, token: bool | None = None
) -> AppTest:
    """``page`` through app.py; sign-in configured when ``auth``, the wall token when ``token``
    (default: with sign-in)."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    if auth:
        at.secrets["auth"] = AUTH
    if auth if token is None else token:
        at.secrets["wall"] = {"token": TOKEN}
    for k, v in (params or {}).items():
        at.query_params[k] = v
    at.switch_page(f"pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shows_data(at: AppTest) -> bool:
    return bool(at.metric or at.dataframe or at.get("plotly_chart") or at.table)


@pytest.mark.parametrize(
    "page",
    ["overview", "agent", "timeline", "modes", "errors", "health", "explorer", "alerts", "wall"],
)
def test_no_page_shows_data_before_sign_in(app_env, page):
    at = run(page)
    assert not shows_data(at)
    assert [b.label for b in at.button] == ["Sign in"]
    text = " ".join(m.value for m in at.markdown)
    assert "did:cf:" not in text


class _TileText(HTMLParser):
    """The text a person reads on each wall tile: what the browser shows inside every
    ``<div class="tile …">`` (styles and attributes left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.tiles: list[list[str]] = []
        self._depth = 0  # open divs inside the current tile; 0 = outside any tile
        self._style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._style = self._style or tag == "style"
        if tag != "div":
            return
        if self._depth:
            self._depth += 1
        elif "tile" in (dict(attrs).get("class") or "").split():
            self.tiles.append([])
            self._depth = 1

    def handle_endtag(self, tag: str) -> None:
        self._style = self._style and tag != "style"
        if tag == "div" and self._depth:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth and not self._style and data.strip():
            self.tiles[-1].append(data.strip())


def tile_texts(at: AppTest) -> list[str]:
    parser = _TileText()
    parser.feed(" ".join(m.value for m in at.markdown))
    return [" ".join(words) for words in parser.tiles]


def test_the_wall_token_opens_the_wall_and_only_the_wall(app_env):
    at = run("wall", params={"token": TOKEN})
    # a person sees one tile per demo agent: its status, its age and its name
    shown = tile_texts(at)
    dids = [a.did for a in demo.agents(seed=7)]  # the demo's own agent list
    assert len(shown) == len(dids), shown
    for text in shown:
        assert re.match(r"(healthy|degraded|stale|down) .* ago did:cf:", text), text
    for did in dids:  # each agent's tile names it (shortened in the middle)
        assert sum(f" {did[:11]}" in t and f"{did[-4:]} " in t for t in shown) == 1, did
    html = " ".join(m.value for m in at.markdown)
    assert TOKEN not in html
    other = run("overview", params={"token": TOKEN})
    assert not shows_data(other) and [b.label for b in other.button] == ["Sign in"]
    # Each tile's name links to its agent page: the agent alone (never the token), no referrer;
    # and that page, even given the token, asks for sign-in.
    links = re.findall(r'<a href="([^"]*)" target="_blank" rel="noreferrer">', html)
    assert len(links) == len(dids)
    got = {parse_qs(urlsplit(unescape(u)).query)["agent"][0] for u in links}
    assert got == set(dids) and all(urlsplit(unescape(u)).path == "agent" for u in links)
    page = run("agent", params={"token": TOKEN, "agent": dids[0]})
    assert not shows_data(page) and [b.label for b in page.button] == ["Sign in"]


def test_a_wrong_wall_token_is_refused_in_one_line(app_env):
    at = run("wall", params={"token": "not-the-token"})
    assert [e.value for e in at.error] == [
        "This wall link's token is not valid. Ask for a new wall link."
    ]
    assert not shows_data(at)


def test_without_sign_in_configured_pages_are_open(app_env):
    at = run("overview", auth=False)
    assert at.metric  # tiles drawn
    assert os.environ["O11Y_BACKGROUND_SYNC"] == "0"


@pytest.mark.parametrize("given", ["WRONG", None, TOKEN[:-1]])
def test_without_sign_in_a_wall_token_still_guards_the_wall(app_env, given):
    at = run("wall", params={"token": given} if given else None, auth=False, token=True)
    assert len(at.error) == 1
    assert "wall link" in at.error[0].value
    html = " ".join(m.value for m in at.markdown)
    assert 'class="tile' not in html and "did:cf:" not in html
    assert not shows_data(at)


def test_without_sign_in_the_right_wall_token_opens_the_wall_and_never_shows_it(app_env):
    at = run("wall", params={"token": TOKEN}, auth=False, token=True)
    assert not at.error
    html = " ".join(m.value for m in at.markdown)
    assert 'class="tile' in html
    assert TOKEN not in html
    # Its only links are the tiles' agent pages: each names the agent alone, never the token.
    links = re.findall(r'href="([^"]*)"', html)
    assert links and all(set(parse_qs(urlsplit(unescape(u)).query)) == {"agent"} for u in links)
    other = run("overview", params={"token": TOKEN}, auth=False, token=True)
    assert other.metric  # pages other than the wall stay open without sign-in
