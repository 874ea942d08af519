"""A small LRU of encoded messages, shared by the live streams.

Ten browsers watching one host with the same filter must cost one encoding
of each interval, not ten.  Pure Python.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

# Encoded messages kept per stream; a few intervals times a few distinct filters.
CACHE_ENTRIES_PER_STREAM = 256


class EncodedCache:
    """key -> encoded text, built on first use, oldest evicted first."""

    def __init__(self, size: int = CACHE_ENTRIES_PER_STREAM) -> None:
        self.size = size
        self.items: OrderedDict[tuple, str] = OrderedDict()

    def get(self, key: tuple, build: Callable[[], str]) -> str:
        text = self.items.get(key)
        if text is None:
            text = build()
            self.items[key] = text
            if len(self.items) > self.size:
                self.items.popitem(last=False)
        else:
            self.items.move_to_end(key)
        return text
