"""Waiting for an event with a bound, without losing a cancellation.

``asyncio.wait_for(event.wait(), t)`` on Python 3.11 swallows a cancellation that arrives in the same loop
turn as the event is set (CPython gh-86296, fixed in 3.12 by reimplementing it on ``asyncio.timeout``): the
caller gets the event instead of its CancelledError and goes round its loop again, so a background job
cancelled at shutdown kept running and the shutdown waited out its 10 s bound. ``asyncio.timeout`` does not
have the race.
"""

from __future__ import annotations

import asyncio


async def event_or_timeout(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass: whether it was set."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
