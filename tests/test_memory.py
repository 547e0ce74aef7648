"""o11y_data/memory.py: after tuning, a large block is mapped on its own and given back to the
system when freed, even after a larger one was freed (which raises glibc's default threshold and
sends later blocks into the arenas, where their holes stay)."""

from __future__ import annotations

import pytest

from o11y_data.memory import malloc_stats, tune_malloc

MIB = 1024 * 1024


def test_after_tuning_a_large_block_is_mapped_and_returned_when_freed():
    if malloc_stats() is None or not tune_malloc():
        pytest.skip("not glibc: no mallopt/mallinfo2 to tune or read")
    bigger = bytearray(16 * MIB)  # freeing it would raise an untuned threshold to 16 MiB
    del bigger
    before = malloc_stats()
    block = bytearray(2 * MIB)
    during = malloc_stats()
    assert during.mapped_mib >= before.mapped_mib + 2
    assert during.arena_mib < before.arena_mib + 1  # not carved out of an arena
    del block
    assert malloc_stats().mapped_mib < during.mapped_mib - 1.9
