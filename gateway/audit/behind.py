"""Write-behind for what may lag the response by a second: the raw technical log and first redemptions.

Issuance stays fail-closed: no URL leaves before its audit record is durable (``AuditBatcher``). Two kinds
of entry need not hold a request for an fsync (issue 18, decisions 4 and 5):

- the raw technical log (full client address and user agent, purged after days), one entry per item;
- the record of a signed URL's first redemption from a network (``gateway.audit.redemptions``).

Both are queued in memory and committed together, through the same group commit, at least every second
(``FLUSH_EVERY``) and sooner when ``FLUSH_AT`` entries wait. Adding never blocks and never fails: when
``capacity`` entries already wait (the database is down, or slower than the traffic), a new entry is
dropped, counted (``dropped``, exposed in /metrics) and logged at most every ``_LOG_EVERY`` seconds. A crash
loses what waits, at most the last second's entries (docs/audit.md, "Loss window"); an audit record of an
issuance is never among them. A failed commit keeps its entries for the next attempt while they fit.

One entry no database accepts (text it cannot store) must not hold back every entry after it forever: when a
commit fails, each half is tried on its own. The half the database takes is written; the other waits for the
next attempt (where it is halved again) — or, when it is a single entry that failed on its own while the
database took the rest, in two flushes, is dropped, counted with the drops and logged. If both halves fail,
the database is taken to be down and everything waits: at most three commits per flush, and no entry dropped
for an outage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from gateway.audit.log import AuditBatcher, Pending
from gateway.audit.records import AuditRecord
from gateway.errors import GatewayError
from gateway.store.base import RawEntry
from gateway.waiting import event_or_timeout

log = logging.getLogger("gateway.audit.behind")
FLUSH_EVERY = 1.0
FLUSH_AT = 2000
DEFAULT_CAPACITY = 100_000
_LOG_EVERY = 10.0
RAW = "raw"
REDEMPTION = "redemption"


@dataclass
class _Waiting:
    records: deque[tuple[AuditRecord, RawEntry | None]] = field(default_factory=deque)
    raw: deque[RawEntry] = field(default_factory=deque)

    def __len__(self) -> int:
        return len(self.records) + len(self.raw)


def _halves(waiting: _Waiting) -> tuple[_Waiting, _Waiting]:
    """The entries in queue order (redemptions, then raw entries) cut in two; the first half is the smaller."""
    cut = len(waiting) // 2
    records, raw = list(waiting.records), list(waiting.raw)
    first = _Waiting(deque(records[:cut]), deque(raw[: max(cut - len(records), 0)]))
    second = _Waiting(deque(records[cut:]), deque(raw[max(cut - len(records), 0) :]))
    return first, second


class WriteBehind:
    def __init__(self, batcher: AuditBatcher, capacity: int = DEFAULT_CAPACITY) -> None:
        self._batcher = batcher
        self._capacity = capacity
        self._waiting = _Waiting()
        self._due = asyncio.Event()
        self._flushing: asyncio.Lock | None = None
        self.dropped: dict[str, int] = {RAW: 0, REDEMPTION: 0}
        self._logged_at = float("-inf")
        self._suspected: object = None  # the entry that alone failed a commit while the rest was written

    def raw(self, entries: list[RawEntry]) -> None:
        """Queue raw technical log entries; never blocks (drops, counted, when full)."""
        room = self._capacity - len(self._waiting)
        self._waiting.raw.extend(entries[: max(room, 0)])
        if len(entries) > room:
            self._dropped(RAW, len(entries) - max(room, 0))
        self._maybe_due()

    def redemption(self, record: AuditRecord, raw: RawEntry | None) -> bool:
        """Queue a redemption's audit record (and its raw entry); False when dropped because the queue is full."""
        if len(self._waiting) >= self._capacity:
            self._dropped(REDEMPTION, 1)
            return False
        self._waiting.records.append((record, raw))
        self._maybe_due()
        return True

    def waiting(self) -> int:
        return len(self._waiting)

    def _maybe_due(self) -> None:
        if len(self._waiting) >= FLUSH_AT:
            self._due.set()

    def _dropped(self, kind: str, n: int) -> None:
        self.dropped[kind] += n
        now = time.monotonic()
        if now - self._logged_at >= _LOG_EVERY:
            self._logged_at = now
            log.warning("audit write-behind queue full (%d waiting): dropped %d %s entr%s; dropped so far: %s",
                        len(self._waiting), n, kind, "y" if n == 1 else "ies", self.dropped)  # fmt: skip

    async def run(self) -> None:
        """Flush at least every ``FLUSH_EVERY`` seconds until cancelled (then ``close`` flushes the rest)."""
        while True:
            await event_or_timeout(self._due, FLUSH_EVERY)
            await self.flush()

    async def flush(self) -> None:
        """Commit everything waiting now (tests call this instead of waiting a second)."""
        if self._flushing is None:
            self._flushing = asyncio.Lock()
        async with self._flushing:
            self._due.clear()
            taken, self._waiting = self._waiting, _Waiting()
            if not len(taken):
                return
            try:
                await self._commit(taken)
            except GatewayError as exc:
                kept = await self._isolate(taken)
                log.error("audit write-behind commit failed (%d entries kept for the next attempt): %s",
                          len(kept), exc)  # fmt: skip
                self._requeue(kept)

    async def _commit(self, taken: _Waiting) -> None:
        records = [record for record, _ in taken.records]
        raw = [entry for _, entry in taken.records if entry is not None] + list(taken.raw)
        now = max([r.time for r in records] + [e.time for e in raw])
        await self._batcher.submit(Pending(records, now, raw))

    async def _isolate(self, failed: _Waiting) -> _Waiting:
        """What of a failed flush is kept for the next attempt (see the module docstring)."""
        if len(failed) < 2:
            return failed
        first, second = _halves(failed)
        try:
            await self._commit(second)
        except GatewayError:
            try:
                await self._commit(first)
            except GatewayError:
                return failed  # the database is down, or the fault is in both halves: all of it waits
            return self._suspect(second)  # it failed alone just now, beside a commit that worked
        if len(first) > 1:
            return first
        try:
            await self._commit(first)  # alone, once more: the first failure may have been the database's
        except GatewayError:
            return self._suspect(first)
        return _Waiting()

    def _suspect(self, part: _Waiting) -> _Waiting:
        """``part`` failed while the database took the rest: kept to be halved again; a single entry that failed
        on its own so in two flushes (not one: the database may have failed once), dropped (counted, logged)."""
        if len(part) > 1:
            return part
        entry = (part.records or part.raw)[0]
        if entry is not self._suspected:
            self._suspected = entry
            return part
        self._suspected = None
        kind = REDEMPTION if part.records else RAW
        self.dropped[kind] += 1
        log.error("audit write-behind: dropped one %s entry the database refuses on its own", kind)
        return _Waiting()

    def _requeue(self, taken: _Waiting) -> None:
        """Put a failed flush back in front of what arrived since, as far as the bound allows."""
        room = self._capacity - len(self._waiting)
        kept_records = list(taken.records)[: max(room, 0)]
        room -= len(kept_records)
        kept_raw = list(taken.raw)[: max(room, 0)]
        lost_records, lost_raw = len(taken.records) - len(kept_records), len(taken.raw) - len(kept_raw)
        self._waiting.records.extendleft(reversed(kept_records))
        self._waiting.raw.extendleft(reversed(kept_raw))
        if lost_records:
            self._dropped(REDEMPTION, lost_records)
        if lost_raw:
            self._dropped(RAW, lost_raw)

    async def close(self) -> None:
        await self.flush()
