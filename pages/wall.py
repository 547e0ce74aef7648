"""The wall: a self-refreshing status screen for a wall-mounted TV (kiosk: no sidebar, no widgets).

Everything is chosen in the URL, so a TV is configured once with a link, e.g.
``/wall?agents=planner,did:cf:abcd…&window=1h&err=10%&stale=10m&down=60m&refresh=30s``:

- ``agents``   DIDs, friendly names (agents.toml) or distinctive parts of DIDs, comma-separated;
               default every agent seen within ``horizon``. A listed DID never seen shows as down.
- ``window``   cycles, error rate, p95 and sparkline over this window (default 1h)
- ``err``      degraded at or above this error rate: ``0.1``, ``10%`` or ``10`` (default 10%)
- ``stale``    stale after this long without a cycle (default 10m)
- ``down``     down after this long without a cycle (default 60m)
- ``refresh``  refresh interval (default 30s)
- ``fresh``    data older than this (last good sync) is shown greyed "as of" (default 5m, at least
               two sync intervals)
- ``horizon``  agents silent for longer leave the wall unless listed (default 24h)
- ``sort``     ``status`` (worst first: down, stale, degraded, healthy; by name within each;
               default) or ``name`` (tiles keep their place)
- ``tz``       time zone for clock times (default UTC)

Defaults can also be set with ``O11Y_WALL_<PARAM>`` environment variables. Bad values are
ignored with a small notice at the bottom of the screen. Logic: ``ui/wall_logic.py`` (pure);
rendering: ``ui/wall.py``.
"""

from ui.wall import page

page()
