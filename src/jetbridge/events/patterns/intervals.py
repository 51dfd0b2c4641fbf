"""A static centred interval tree: which closed intervals contain a number, in O(log n + k)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Interval = tuple[float, float, Item]


@dataclass(eq=False)
class _Node(Generic[Item]):
    centre: float
    by_low: list[Interval[Item]]
    by_high: list[Interval[Item]]
    left: _Node[Item] | None
    right: _Node[Item] | None


@dataclass(eq=False)
class IntervalTree(Generic[Item]):
    """Intervals added at any time; the tree is rebuilt on the first query after a change."""

    intervals: list[Interval[Item]] = field(default_factory=list)
    _root: _Node[Item] | None = None
    _stale: bool = False

    def __bool__(self) -> bool:
        return bool(self.intervals)

    def add(self, low: float, high: float, item: Item) -> None:
        self.intervals.append((low, high, item))
        self._stale = True

    def containing(self, point: float) -> Iterator[Item]:
        if self._stale:
            self._root = _build(self.intervals)
            self._stale = False
        node = self._root
        while node is not None:
            if point < node.centre:
                for low, _, item in node.by_low:
                    if low > point:
                        break
                    yield item
                node = node.left
            elif point > node.centre:
                for _, high, item in node.by_high:
                    if high < point:
                        break
                    yield item
                node = node.right
            else:
                for _, _, item in node.by_low:
                    yield item
                return


def _build(intervals: list[Interval[Item]]) -> _Node[Item] | None:
    if not intervals:
        return None
    # The centre is an end of some interval, which therefore stays here: each level shrinks.
    ends = sorted(end for low, high, _ in intervals for end in (low, high))
    centre = ends[len(ends) // 2]
    here = [i for i in intervals if i[0] <= centre <= i[1]]
    left = [i for i in intervals if i[1] < centre]
    right = [i for i in intervals if i[0] > centre]
    return _Node(
        centre,
        sorted(here, key=lambda i: i[0]),
        sorted(here, key=lambda i: -i[1]),
        _build(left),
        _build(right),
    )
