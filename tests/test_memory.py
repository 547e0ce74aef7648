"""o11y_data/memory.py: after tuning, a large block is mapped on its own and given back to the
system when freed, even after a larger one was freed (which raises glibc's default threshold and
sends later blocks into the arenas, where their holes stay).

The check runs in a fresh process, as the server tunes its own at start: glibc serves a request
from a free hole of the right size before it maps a new block, so a process that has already run
other tests (an xdist worker) may hold such a hole and prove nothing about the tuning."""

from __future__ import annotations

import subprocess
import sys

import pytest

from o11y_data.memory import malloc_stats

PROBE = """
from o11y_data.memory import malloc_stats, tune_malloc

MIB = 1024 * 1024
assert tune_malloc(), "mallopt refused"
bigger = bytearray(16 * MIB)  # freeing it would raise an untuned threshold to 16 MiB
del bigger
before = malloc_stats()
block = bytearray(2 * MIB)
during = malloc_stats()
del block
after = malloc_stats()
print(before.mapped_mib, before.arena_mib, during.mapped_mib, during.arena_mib, after.mapped_mib)
"""


def test_after_tuning_a_large_block_is_mapped_and_returned_when_freed():
    if malloc_stats() is None:
        pytest.skip("not glibc: no mallopt/mallinfo2 to tune or read")
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    before_mapped, before_arena, mapped, arena, after_mapped = map(float, out.stdout.split())
    assert mapped >= before_mapped + 2  # the 2 MiB block mapped on its own
    assert arena < before_arena + 1  # not carved out of an arena
    assert after_mapped < mapped - 1.9  # and given back when freed
