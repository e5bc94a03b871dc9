"""Media items for the hot path: a bounded cache in front of the store, invalidated by the change feed.

A catalogue can hold millions of items, too many to keep in every process;
the working set is small. A miss reads the store once. An invalidation that
lands while a miss is being read means the read may be stale: its result is
used for that one request (which began before the change was applied) but is
not cached.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable

from gateway.model import MediaItem

Loader = Callable[[str], Awaitable[MediaItem | None]]


class MediaCache:
    def __init__(self, load: Loader, capacity: int) -> None:
        self._load = load
        self._capacity = capacity
        self._items: OrderedDict[str, MediaItem] = OrderedDict()
        self._generation = 0
        self.hits = 0
        self.misses = 0

    async def get(self, media_id: str) -> MediaItem | None:
        item = self._items.get(media_id)
        if item is not None:
            self._items.move_to_end(media_id)
            self.hits += 1
            return item
        self.misses += 1
        generation = self._generation
        item = await self._load(media_id)
        if item is not None and generation == self._generation:
            self._items[media_id] = item
            if len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return item

    def invalidate(self, media_id: str) -> None:
        self._items.pop(media_id, None)
        self._generation += 1

    def clear(self) -> None:
        self._items.clear()
        self._generation += 1

    def __len__(self) -> int:
        return len(self._items)
