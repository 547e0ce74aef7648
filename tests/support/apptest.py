"""The app's pages under AppTest, run the way the real server runs them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import pytest
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


@contextlib.contextmanager
def app_under_test(env: Mapping[str, str]) -> Iterator[None]:
    """``env`` set, Streamlit's caches empty before and after, and every AppTest run through
    app.py's ``st.navigation`` (a real server does so after app.py's first run; AppTest alone
    would treat ``pages/`` as a legacy multipage folder)."""
    mp = pytest.MonkeyPatch()
    init = PagesManager.__init__

    def v2_only(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    mp.setattr(PagesManager, "__init__", v2_only)
    for k, v in env.items():
        mp.setenv(k, v)
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        yield
    finally:
        mp.undo()
        st.cache_resource.clear()
        st.cache_data.clear()
