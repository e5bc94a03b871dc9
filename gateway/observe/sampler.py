"""Values /metrics shows that need the store: read every few seconds in the background, never per scrape.

A scrape must not be a database query (Prometheus may scrape every replica
every few seconds, and a slow store would make the scrape time out exactly
when it matters), so the checkpoint age and the webhook backlog are sampled
here and /metrics reads the last sample.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from gateway.errors import GatewayError

log = logging.getLogger("gateway.observe")
Clock = Callable[[], float]
_EVERY = 15.0


class Sampler:
    def __init__(
        self,
        clock: Clock,
        latest_checkpoint: Callable[[], Awaitable[float | None]],
        backlog: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        self._clock = clock
        self._latest_checkpoint = latest_checkpoint
        self._backlog = backlog
        self.checkpoint_time: float | None = None
        self.backlog: int | None = None

    def checkpoint_age(self) -> float | None:
        return None if self.checkpoint_time is None else max(0.0, self._clock() - self.checkpoint_time)

    def webhook_backlog(self) -> float | None:
        return None if self.backlog is None else float(self.backlog)

    async def sample(self) -> None:
        self.checkpoint_time = await self._latest_checkpoint()
        if self._backlog is not None:
            self.backlog = await self._backlog()

    async def run(self, every: float = _EVERY) -> None:
        while True:
            try:
                await self.sample()
            except GatewayError as exc:
                log.warning("metrics sample failed: %s", exc.message)
            await asyncio.sleep(every)
