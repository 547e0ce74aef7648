"""Streamlit-side helpers shared by the pages: cached resources, filters, figures, components."""
