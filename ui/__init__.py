"""Streamlit-side helpers shared by the pages: cached resources, filters, figures, components."""


def _always_through_app_py() -> None:
    # With a pages/ folder beside app.py, Streamlit runs the folder as a legacy (v1) multipage app
    # until app.py's st.navigation has run once in the process. A first visit straight to /wall
    # (a TV after a server restart) would then run the page alone: no filters, no access gate.
    # Pages import this package first, so switch to st.navigation mode and start over via app.py.
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        import streamlit as st

        PagesManager.uses_pages_directory = False
        st.rerun()


_always_through_app_py()
