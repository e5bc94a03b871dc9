"""Writing signed checkpoints every N records or T seconds (even when idle), and exporting them.

Each checkpoint first ships the records it newly covers (one segment per
retention class) and itself to every exporter; only then is it stored in the
database. A failed export leaves the checkpoint unwritten, so the next attempt
covers the same records again.

The records come from what this process's store wrote (``gateway.audit.recent``), not from the database:
only positions another process appended are read back. Deciding whether one is due reads the newest
checkpoint and the frontier, one row each, whatever the length of the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from gateway.audit.checkpoints import LogSigner
from gateway.audit.export import Exporter, checkpoint_json, checkpoint_name, export_all, segment_lines, segment_name
from gateway.audit.recent import RecentEntries
from gateway.audit.records import ENGINEER
from gateway.errors import GatewayError
from gateway.store.base import Checkpoint, LogEntry, Store

log = logging.getLogger("gateway.audit.checkpoints")
_PAGE = 5000
# Segment lines built per turn of the event loop: 1 000 at once held every request for ≈ 7 ms (issue 18).
_LINES_PER_TURN = 100


@dataclass(frozen=True)
class CheckpointPolicy:
    every_records: int = 1000
    every_seconds: int = 300


class Checkpointer:
    def __init__(
        self,
        store: Store,
        signer: LogSigner,
        exporters: Sequence[Exporter],
        policy: CheckpointPolicy,
        recent: RecentEntries | None = None,
    ) -> None:
        self._store = store
        self._signer = signer
        self._exporters = list(exporters)
        self._policy = policy
        self._recent = recent
        self.read_back = 0  # records exported that had to be read from the database (another process's)

    def remember_appends(self) -> None:
        """Export what this process's store writes from memory (the serving processes that checkpoint).

        Bounded a little beyond what one checkpoint covers: a process whose checkpoints another process
        writes (``serve --workers``) keeps only that much.
        """
        self._recent = RecentEntries(2 * self._policy.every_records + 1000)
        self._store.on_appended = self._recent.add

    async def latest(self) -> Checkpoint | None:
        return await self._store.audit.latest_checkpoint()

    async def due(self, now: float) -> bool:
        last = await self.latest()
        if last is None:
            return True
        size = (await self._store.audit.frontier()).size
        return size - last.tree_size >= self._policy.every_records or now - last.time >= self._policy.every_seconds

    async def maybe(self, now: float) -> Checkpoint | None:
        return await self.write(now) if await self.due(now) else None

    async def write(self, now: float) -> Checkpoint:
        frontier = await self._store.audit.frontier()
        last = await self.latest()
        checkpoint = self._signer.sign(frontier.size, frontier.root(), now)
        await self._export_segments(last.tree_size if last else 0, frontier.size)
        text = json.dumps(checkpoint_json(checkpoint), sort_keys=True) + "\n"
        await export_all(self._exporters, checkpoint_name(checkpoint), text, ENGINEER)
        async with self._store.transaction() as tx:
            await tx.audit.add_checkpoint(checkpoint)
        if self._recent is not None:
            self._recent.forget_upto(frontier.size)
        return checkpoint

    async def _page(self, after: int, upto: int) -> list[LogEntry]:
        """Up to ``_PAGE`` entries after ``after``: this process's from memory, the rest read back in runs."""
        last = min(upto, after + _PAGE)
        page: list[LogEntry] = []
        seq = after + 1
        while seq <= last:
            entry = self._recent.get(seq) if self._recent is not None else None
            if entry is not None:
                page.append(entry)
                seq += 1
                continue
            missing = seq
            while seq <= last and (self._recent is None or self._recent.get(seq) is None):
                seq += 1
            read = [e for e in await self._store.audit.entries(missing - 1, seq - missing) if e.seq < seq]
            self.read_back += len(read)
            page += read
            if len(read) < seq - missing:
                break  # the log ends (or has a gap) here: verify names it; export what there is
        return page

    async def _export_segments(self, after: int, upto: int) -> None:
        # One segment per page and retention class, so memory stays bounded however far
        # exports fell behind; every class's file for a page names the same seq range.
        if not self._exporters:
            return
        cursor = after
        while cursor < upto:
            page = await self._page(cursor, upto)
            if not page:
                break
            first, cursor = cursor + 1, page[-1].seq
            by_class: dict[str, list[LogEntry]] = {}
            for entry in page:
                by_class.setdefault(entry.retention, []).append(entry)
            for retention, entries in by_class.items():
                name = segment_name(first, cursor, retention)
                await export_all(self._exporters, name, await segment_text(entries), retention)


async def segment_text(entries: Sequence[LogEntry]) -> str:
    """``segment_lines(entries)``, built a slice at a time with a yield between slices (the same text)."""
    if len(entries) <= _LINES_PER_TURN:
        return segment_lines(entries)
    parts: list[str] = []
    for start in range(0, len(entries), _LINES_PER_TURN):
        parts.append(segment_lines(entries[start : start + _LINES_PER_TURN]))
        await asyncio.sleep(0)  # requests waiting on the loop run between slices
    return "".join(parts)


CHECKPOINT_LOCK = "checkpoint"


async def publish_forever(store: Store, checkpointer: Checkpointer, clock: Callable[[], float]) -> None:
    """Every second, whichever process holds the checkpoint lock writes one if it is due: exactly one does.

    Runs in ``gatewayctl serve`` (unless ``--no-checkpoints``) or alone in ``gatewayctl audit checkpoint
    --follow``, which takes the export work (every record serialised again) off the serving processes.
    """
    while True:
        await asyncio.sleep(1)
        try:
            async with store.exclusive(CHECKPOINT_LOCK) as leader:
                if leader:
                    await checkpointer.maybe(clock())
        except (GatewayError, OSError, BotoCoreError, ClientError) as exc:
            log.error("checkpoint failed (will retry): %s", exc)


async def publish_last(store: Store, checkpointer: Checkpointer, clock: Callable[[], float]) -> None:
    """A last checkpoint at shutdown, by the lock holder."""
    with contextlib.suppress(GatewayError, OSError):
        async with store.exclusive(CHECKPOINT_LOCK) as leader:
            if leader:
                await checkpointer.write(clock())
