"""A small LRU of values built from the live streams: encoded messages, trees.

Ten browsers watching one host with the same filter must cost one encoding
of each interval, not ten; a snapshot under a filter must not rebuild the
filter's "since start" tree each time.  Bounded, so a flood of distinct
filters costs bounded memory.  Pure Python.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

# Encoded messages kept per stream; a few intervals times a few distinct filters.
CACHE_ENTRIES_PER_STREAM = 256

V = TypeVar("V")


class LruCache(Generic[V]):
    """key -> value, built on first use, least recently used evicted first."""

    def __init__(self, size: int = CACHE_ENTRIES_PER_STREAM) -> None:
        self.size = size
        self.items: OrderedDict[Hashable, V] = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], V]) -> V:
        value = self.items.get(key)
        if value is None:
            value = build()
            self.items[key] = value
            if len(self.items) > self.size:
                self.items.popitem(last=False)
        else:
            self.items.move_to_end(key)
        return value

    def clear(self) -> None:
        self.items.clear()

    def __len__(self) -> int:
        return len(self.items)
