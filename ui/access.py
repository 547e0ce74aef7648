"""Who may see what: optional OIDC sign-in (``st.login``) and the wall's read-only token.

Sign-in is on when Streamlit's ``[auth]`` section is configured in secrets; then no page shows data
to a visitor who has not signed in. A TV cannot complete a sign-in, so the wall URL may carry a
separate read-only token (``?token=…``; from ``O11Y_WALL_TOKEN`` or ``[wall] token`` in secrets),
compared in constant time, which opens the wall page and nothing else.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from typing import Any, Literal

Decision = Literal["allow", "login", "deny"]


def auth_configured(secrets: Mapping[str, Any]) -> bool:
    auth = secrets.get("auth") if hasattr(secrets, "get") else None
    return bool(auth) and isinstance(auth, Mapping)


def expected_wall_token(secrets: Mapping[str, Any], env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    token = env.get("O11Y_WALL_TOKEN", "")
    if not token:
        wall = secrets.get("wall") if hasattr(secrets, "get") else None
        if isinstance(wall, Mapping):
            token = str(wall.get("token", "") or "")
    return token


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison; an empty expected token never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def decide(
    *, page: str, auth_required: bool, logged_in: bool, token_given: str | None, token: str
) -> Decision:
    """Whether this visitor may see ``page`` (a url_path)."""
    if not auth_required or logged_in:
        return "allow"
    if page == "wall":
        if token_matches(token_given, token):
            return "allow"
        return "deny" if token_given else "login"
    return "login"


def gate(page: str) -> None:
    """Stop the script unless the visitor may see ``page``; shows sign-in or a one-line refusal."""
    import streamlit as st

    try:
        secrets: Mapping[str, Any] = st.secrets.to_dict()
    except Exception:  # no secrets file
        secrets = {}
    required = auth_configured(secrets)
    if not required:
        return
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
        token=expected_wall_token(secrets),
    )
    if verdict == "allow":
        return
    if verdict == "deny":
        st.error("This wall link's token is not valid. Ask for a new wall link.")
        st.stop()
    st.title("Agent network · o11y")
    st.info("Sign in to see the dashboard.")
    if st.button("Sign in", type="primary"):
        st.login()
    st.stop()
