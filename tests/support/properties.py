"""How many random cases a property test runs: its full count in `make test`, a quarter in
`make check` (`pytest --hypothesis-profile=check`).

The quick run still tries every property on fresh random cases (and replays the failures
Hypothesis saved in `.hypothesis/`); the full run is what CI answers with. Registered from
tests/conftest.py, so the profile exists before Hypothesis's plugin loads the one named.
"""

from __future__ import annotations

from hypothesis import settings

CHECK_PROFILE = "check"
CHECK_SHARE = 4  # the check profile runs 1 / CHECK_SHARE of each test's cases
CHECK_MIN = 5

settings.register_profile(CHECK_PROFILE)


def examples(full: int) -> int:
    """``full`` cases, or a quarter of them (at least CHECK_MIN) under the check profile."""
    if settings.get_current_profile_name() == CHECK_PROFILE:
        return min(full, max(CHECK_MIN, full // CHECK_SHARE))
    return full
