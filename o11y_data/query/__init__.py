"""Query: the store's DuckDB views and everything that asks them.

The metric catalog and planner, the screens' questions, CSV export, the SQL sandbox.
"""
