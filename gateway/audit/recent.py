"""What this process appended to the audit log, kept in memory until a checkpoint exports it.

A checkpoint ships the records it newly covers off-box ("sealed segments"). Reading them back from the
database in the serving process cost more per record than building them (issue 18: 58-77 µs per issued
URL). The store's group writer already holds each record as written — its position, leaf hash and body
hash — so it hands them here after the commit, and the checkpoint exports from memory. Records other
processes appended (the CLI, other workers, other replicas) are not here: the checkpoint reads those
positions, and only those, from the database. Bounded: past ``capacity`` the oldest go, and are read back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from gateway.store.base import LogEntry

DEFAULT_CAPACITY = 50_000


class RecentEntries:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._entries: dict[int, LogEntry] = {}
        self._order: deque[int] = deque()

    def add(self, entries: Sequence[LogEntry]) -> None:
        for entry in entries:
            self._entries[entry.seq] = entry
            self._order.append(entry.seq)
        while len(self._order) > self._capacity:
            self._entries.pop(self._order.popleft(), None)

    def get(self, seq: int) -> LogEntry | None:
        return self._entries.get(seq)

    def forget_upto(self, seq: int) -> None:
        """Positions up to ``seq`` are exported: they are not needed again."""
        while self._order and self._order[0] <= seq:
            self._entries.pop(self._order.popleft(), None)

    def __len__(self) -> int:
        return len(self._entries)
