"""Media items for the hot path: a bounded cache in front of the store, invalidated by the change feed.

A catalogue can hold millions of items, too many to keep in every process;
the working set is small. A miss reads the store once. An invalidation that
lands while a miss is being read means the read may be stale: its result is
used for that one request (which began before the change was applied) but is
not cached.

An id the store does not hold is remembered too, in the same bounded LRU as
the items: a page URL for a missing id then takes the same path as one for an
item the viewer may not see (one memory lookup, no database read), so the
time an answer takes does not tell an outsider which ids exist
(``benchmarks/page_timing.py``). A remembered miss is forgotten when the
change feed reports the id (an item created under it, on any replica), like
any cached item. Missing and existing ids share one capacity and one eviction
order: flooding it with made-up ids evicts both alike.
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
        self._items: OrderedDict[str, MediaItem | None] = OrderedDict()  # None: the store has no such id
        self._generation = 0
        self.hits = 0
        self.misses = 0

    async def get(self, media_id: str) -> MediaItem | None:
        if media_id in self._items:
            self._items.move_to_end(media_id)
            self.hits += 1
            return self._items[media_id]
        self.misses += 1
        generation = self._generation
        item = await self._load(media_id)
        if generation == self._generation:
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
        """Ids held: items and remembered misses alike."""
        return len(self._items)
