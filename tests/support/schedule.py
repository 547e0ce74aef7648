"""The order `make test` hands its tests to pytest-xdist's workers.

`--dist worksteal` gives each worker an equal, contiguous share of the collected tests by count and
lets an idle worker take the tail of the longest queue. In collection (file) order the long tests
(browser, servers, the slow marks) sit wherever their files sort: several of them started last
and ran alone while the other workers had finished. Here the long tests of each file go, as one
block, to the front of a share, the blocks spread over the shares so each holds about as much
expected work; the short tests fill the shares in file order behind them, where an idle worker
can take them. Each file's long tests stay together, so a fixture one file shares (a server, a
browser page) still starts once.

What a test costs is read from its marks (``WEIGHT_BY_MARK``), the cheap estimate that needs no
recorded timings; a test without those marks is short and keeps its place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import islice
from typing import TypeVar

import pytest

T = TypeVar("T")

# Expected seconds of a test by mark, from `make test --durations` (2026-12-03): browser tests
# take 15-45 s, a server of their own 5-20 s, an S3 round 1-5 s.
WEIGHT_BY_MARK = {"browser": 20.0, "server": 8.0, "slow": 8.0, "s3": 1.5}


def share_sizes(count: int, workers: int) -> list[int]:
    """How many tests each worker is handed first: pytest-xdist's worksteal split."""
    sizes, left = [], count
    for i in range(workers):
        sizes.append(left // (workers - i))
        left -= sizes[-1]
    return sizes


def order_for_workers(
    items: Sequence[T],
    *,
    workers: int,
    weight: Callable[[T], float],
    group: Callable[[T], str],
) -> list[T]:
    """``items`` reordered so each worker's first share starts with about as much long work.

    A test with ``weight`` 0 is short; long ones are grouped by ``group`` (their file), each group
    given whole to the share with the least long work so far (largest group first)."""
    if workers <= 1 or len(items) <= workers:
        return list(items)
    groups: dict[str, list[T]] = {}
    short: list[T] = []
    for item in items:
        if weight(item) > 0:
            groups.setdefault(group(item), []).append(item)
        else:
            short.append(item)
    blocks = sorted(groups.values(), key=lambda b: -sum(weight(i) for i in b))
    shares: list[list[T]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for block in blocks:
        j = loads.index(min(loads))
        shares[j].extend(block)
        loads[j] += sum(weight(i) for i in block)
    ordered: list[T] = []
    rest = iter(short)
    end = 0
    for share, size in zip(shares, share_sizes(len(items), workers), strict=True):
        end += size
        ordered.extend(share)
        ordered.extend(islice(rest, max(0, end - len(ordered))))
    ordered.extend(rest)
    return ordered


def expected_seconds(item: pytest.Item) -> float:
    """A test's expected cost from its marks: 0 for a short one."""
    return sum(w for mark, w in WEIGHT_BY_MARK.items() if item.get_closest_marker(mark))


class WorkerShares:
    """The pytest plugin: reorders the collection on each xdist worker (all alike, as xdist
    requires); last among the hooks, after the marks are set and `-m` has deselected."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
        items[:] = order_for_workers(
            items,
            workers=workers,
            weight=expected_seconds,
            group=lambda item: item.nodeid.split("::")[0],
        )
