"""gateway.waiting: a bounded wait for an event that never swallows a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from gateway.audit.behind import FLUSH_AT, WriteBehind
from gateway.store.base import RawEntry
from gateway.waiting import event_or_timeout


async def test_the_event_or_the_timeout() -> None:
    event = asyncio.Event()
    assert await event_or_timeout(event, 0) is False
    event.set()
    assert await event_or_timeout(event, 60) is True


async def test_a_cancellation_in_the_turn_the_event_is_set_is_not_swallowed() -> None:
    """asyncio.wait_for on 3.11 returns the event here instead of raising: a job cancelled at shutdown ran on."""
    event = asyncio.Event()
    waiting = asyncio.create_task(event_or_timeout(event, 60))
    await asyncio.sleep(0)  # parked in event.wait()
    event.set()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


class _Batcher:
    async def submit(self, pending: object) -> None:
        pass


async def test_the_write_behind_job_stops_when_cancelled_as_its_queue_becomes_due() -> None:
    """The job that held a shutdown for its whole 10 s bound now and then (seen in the tests' teardowns):
    cancelled in the turn its queue filled up, it stops instead of flushing and waiting on."""
    behind = WriteBehind(_Batcher(), capacity=2 * FLUSH_AT)  # type: ignore[arg-type]
    job = asyncio.create_task(behind.run())
    await asyncio.sleep(0)
    behind.raw([RawEntry(1.0, "url:issued", None, None, None, None)] * FLUSH_AT)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(job, 5)
