"""The order `make test` hands its tests to pytest-xdist's workers (tests/support/schedule.py)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from xdist.scheduler.worksteal import WorkStealingScheduling

from tests.support.schedule import order_for_workers, share_sizes


@dataclass(frozen=True)
class T:
    file: str
    name: str
    seconds: float = 0.0


def _order(items: list[T], workers: int) -> list[T]:
    return order_for_workers(
        items, workers=workers, weight=lambda t: t.seconds, group=lambda t: t.file
    )


def _shares(ordered: list[T], workers: int) -> list[list[T]]:
    out, start = [], 0
    for size in share_sizes(len(ordered), workers):
        out.append(ordered[start : start + size])
        start += size
    return out


def _collection() -> list[T]:
    # files sorted as pytest collects them: the long ones last, as test_wall_browser.py was
    items = [T(f"test_a{i}.py", f"t{j}") for i in range(6) for j in range(20)]
    items += [T("test_browser.py", f"b{j}", 20.0) for j in range(3)]
    items += [T("test_server.py", f"s{j}", 8.0) for j in range(4)]
    items += [T("test_s3.py", f"x{j}", 1.5) for j in range(10)]
    items += [T("test_wall_browser.py", f"w{j}", 20.0) for j in range(2)]
    return items


class _Node:
    """What the scheduler uses of a worker: its id and the tests it was sent."""

    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.sent: list[int] = []
        self.shutting_down = False

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent.extend(indices)


class _Config:
    def getvalue(self, name: str) -> list[str]:
        assert name == "tx"
        return ["4*popen"]


def test_share_sizes_are_the_first_split_pytest_xdist_worksteal_makes():
    sched = WorkStealingScheduling(_Config())
    nodes = [_Node(f"gw{i}") for i in range(4)]
    collection = [f"t{i}" for i in range(1050)]
    for node in nodes:
        sched.add_node(node)
    for node in nodes:
        sched.add_node_collection(node, collection)
    sched.schedule()
    assert [len(n.sent) for n in nodes] == share_sizes(1050, 4)


@pytest.mark.parametrize("workers", [2, 3, 4, 6])
def test_each_worker_starts_with_its_long_tests_and_about_an_equal_share_of_them(workers):
    items = _collection()
    shares = _shares(_order(items, workers), workers)
    loads = [sum(t.seconds for t in share) for share in shares]
    largest_file = max(
        sum(t.seconds for t in items if t.file == f) for f in {t.file for t in items}
    )
    assert max(loads) - min(loads) <= largest_file
    for share in shares:
        seconds = [t.seconds for t in share]
        assert seconds == sorted(seconds, key=lambda s: s == 0), "long tests first"


def test_a_files_long_tests_stay_together_in_one_share():
    shares = _shares(_order(_collection(), 4), 4)
    for file in ("test_browser.py", "test_server.py", "test_s3.py", "test_wall_browser.py"):
        holding = [i for i, share in enumerate(shares) if any(t.file == file for t in share)]
        assert len(holding) == 1, (file, holding)


def test_no_test_is_lost_or_repeated_and_short_tests_keep_their_order():
    items = _collection()
    ordered = _order(items, 4)
    assert sorted(ordered, key=items.index) == items
    short = [t for t in ordered if t.seconds == 0]
    assert short == [t for t in items if t.seconds == 0]


def test_one_worker_or_no_long_tests_keep_the_collection_order():
    items = _collection()
    assert _order(items, 1) == items
    short = [T("test_a.py", f"t{j}") for j in range(30)]
    assert _order(short, 4) == short
