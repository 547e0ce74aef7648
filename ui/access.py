"""Who may see what: optional OIDC sign-in (``st.login``) and the wall's read-only token.

Sign-in is on when Streamlit's ``[auth]`` section is configured in secrets; then no page shows data
to a visitor who has not signed in. A TV cannot complete a sign-in, so the wall URL may carry a
separate read-only token (``?token=…``; from ``O11Y_WALL_TOKEN`` or ``[wall] token`` in secrets),
compared in constant time, which opens the wall page and nothing else.

A configured wall token is required on the wall whether or not sign-in is configured: a wall URL
without it (or with a wrong one) shows one line and no wall. Only a signed-in person needs no token.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, Literal

from o11y_data.config import load_wall_token

Decision = Literal["allow", "login", "deny"]
WRONG_TOKEN = "This wall link's token is not valid. Ask for a new wall link."
NEEDS_TOKEN = "This wall needs a link with its token. Ask for a wall link."


def auth_configured(secrets: Mapping[str, Any]) -> bool:
    auth = secrets.get("auth") if hasattr(secrets, "get") else None
    return bool(auth) and isinstance(auth, Mapping)


def expected_wall_token(secrets: Mapping[str, Any], env: Mapping[str, str] | None = None) -> str:
    """The configured token ("" for none), read by the config's own loader: not through
    ``get_settings()``, so that settings which fail to load never open the wall."""
    wall = secrets.get("wall") if hasattr(secrets, "get") else None
    token = load_wall_token(env, wall_section=wall)
    return token.get() if token else ""


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison; an empty expected token never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def decide(
    *, page: str, auth_required: bool, logged_in: bool, token_given: str | None, token: str
) -> Decision:
    """Whether this visitor may see ``page`` (a url_path).

    The wall: a wrong token is refused even for a signed-in person (a link that is wrong should
    say so); without a token, sign-in is offered when configured, else a configured token is the
    only way in.
    """
    signed_in = auth_required and logged_in
    if page == "wall":
        if token and token_given and not token_matches(token_given, token):
            return "deny"
        if signed_in or token_matches(token_given, token):
            return "allow"
        if auth_required:
            return "login"
        return "deny" if token else "allow"
    return "login" if auth_required and not logged_in else "allow"


def gate(page: str) -> None:
    """Stop the script unless the visitor may see ``page``; shows sign-in or a one-line refusal."""
    import streamlit as st

    try:
        secrets: Mapping[str, Any] = st.secrets.to_dict()
    except Exception:  # no secrets file
        secrets = {}
    required = auth_configured(secrets)
    token = expected_wall_token(secrets)
    if not required and not (page == "wall" and token):
        return
    logged_in = False
    if required:
        try:
            logged_in = bool(st.user.is_logged_in)
        except Exception:
            logged_in = False
    given = st.query_params.get("token")
    verdict = decide(
        page=page,
        auth_required=required,
        logged_in=logged_in,
        token_given=given,
        token=token,
    )
    if verdict == "allow":
        return
    if verdict == "deny":
        if given:
            st.error(WRONG_TOKEN)
        else:
            st.error(NEEDS_TOKEN)
        st.stop()
    st.title("Agent network · o11y")
    st.info("Sign in to see the dashboard.")
    if st.button("Sign in", type="primary"):
        st.login()
    st.stop()
