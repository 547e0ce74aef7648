"""The order `make test` hands modules to its workers (`--dist loadfile --no-loadscope-reorder`).

Browser, server and slow tests run for 10-50 s each, most of it waiting on a page, a server or a
clock; S3 tests for a few seconds; the rest for well under one. Modules holding long tests go
first, so the run ends on short tests instead of one worker finishing a 50 s test alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import pytest

LONG_FIRST: tuple[frozenset[str], ...] = (
    frozenset({"browser", "server", "slow"}),
    frozenset({"s3"}),
)


class Collected(Protocol):
    nodeid: str

    def iter_markers(self) -> Iterable: ...


def rank(marks: set[str]) -> int:
    """0 for a test marked browser, server or slow; 1 for s3; 2 for the rest."""
    return next((i for i, kinds in enumerate(LONG_FIRST) if marks & kinds), len(LONG_FIRST))


def module_of(item: Collected) -> str:
    return item.nodeid.split("::", 1)[0]


def module_ranks(items: Iterable[Collected]) -> dict[str, int]:
    """Each module's rank: that of its longest kind of test."""
    ranks: dict[str, int] = {}
    for item in items:
        module = module_of(item)
        marks = {m.name for m in item.iter_markers()}
        ranks[module] = min(ranks.get(module, len(LONG_FIRST)), rank(marks))
    return ranks


def long_modules_first(items: list[Collected]) -> None:
    """Stable-sort ``items`` in place by their module's rank, each module's tests kept together
    and in their order."""
    ranks = module_ranks(items)
    items.sort(key=lambda item: ranks[module_of(item)])


def modules_in_order(items: Sequence[Collected]) -> list[str]:
    """Each module once, in the order its first test comes."""
    return list(dict.fromkeys(module_of(item) for item in items))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """After the marks are set and ``-k``/``-m`` have chosen: the modules that will run,
    long ones first."""
    long_modules_first(items)
