"""The wall: a self-refreshing status screen for a wall-mounted TV (kiosk: no sidebar, no widgets).

Configured by its URL, e.g. ``/wall?window=1h&err=10%&stale=10m&down=60m&refresh=30s``; see
``ui/wall_logic.py`` for every parameter and ``ui/wall.py`` for the rendering.
"""

from ui.wall import page

page()
