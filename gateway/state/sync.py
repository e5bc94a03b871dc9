"""Keeping the state view true: load it once, then apply the change feed in order.

Every administrative write appends a row to the store's change feed in its own
transaction (``gateway.store``), numbered in commit order. A replica applies
the rows after the position its view reflects, each by reloading the entity
it names, so applying one twice is harmless. Push only accelerates: PostgreSQL
``LISTEN/NOTIFY`` wakes the loop at once; the feed head is also polled on a
short timer (SQLite has no notifications; every few milliseconds is cheap),
and that poll is the truth.

Staleness fails closed: ``confirmed_at`` is when a poll last proved the view
held every change committed before it began. When that is older than the
bound, the gateway refuses to sign (503), denies at verify (``state-stale``)
and ``/readyz`` says not ready, until a poll succeeds again. Staleness is
measured on a monotonic clock: it is about this process's liveness, and must
not move when the wall clock is stepped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gateway.errors import GatewayError
from gateway.state.media import MediaCache
from gateway.state.view import StateView
from gateway.store.base import Change, RevokedPath, Store
from gateway.waiting import event_or_timeout

log = logging.getLogger("gateway.state")


def _ignore(kind: str, seconds: float) -> None:
    pass


def _ignore_change(change: Change) -> None:
    pass


def _ignore_load(seq: int) -> None:
    pass


def _newest_links(rows: Iterable[RevokedPath]) -> float:
    """The newest link revocation (anyone's URLs; a revoked grant's rows are the grant's)."""
    return max((row.at for row in rows if row.principal_id is None), default=float("-inf"))


Clock = Callable[[], float]
_PAGE = 1000
_LOG_FAILURES_EVERY = 10.0
_TIDY_EVERY = 60.0


@dataclass(frozen=True)
class SyncPolicy:
    # Refuse to serve when the view was last proved current longer ago than this.
    stale_after: float = 2.0
    # How often the feed head is polled (the truth; notifications only wake the loop early).
    poll_every: float = 0.05
    # Link revocations older than this cannot matter: every URL issued before them has expired.
    max_ttl: float = 3600.0


class StateSync:
    def __init__(
        self,
        store: Store,
        view: StateView,
        media: MediaCache,
        clock: Clock,
        policy: SyncPolicy,
        monotonic: Clock = time.monotonic,
    ) -> None:
        self._store = store
        self.view = view
        self.media = media
        self._clock = clock
        self._monotonic = monotonic
        self._policy = policy
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.confirmed_at = float("-inf")
        self.notifications = 0
        self._tidied_at = float("-inf")
        # Told how long after its commit each revocation reached this view (gateway.services: a histogram).
        self.on_revocation: Callable[[str, float], None] = _ignore
        # Told of each change applied, and of each (re)load (the edge feed's change log: gateway.edge.feed).
        self.on_change: Callable[[Change], None] = _ignore_change
        self.on_load: Callable[[int], None] = _ignore_load
        self._changed = asyncio.Event()

    def current(self) -> bool:
        return self._monotonic() - self.confirmed_at <= self._policy.stale_after

    def age(self) -> float:
        """Seconds since the view was last proved current."""
        return self._monotonic() - self.confirmed_at

    async def load(self) -> None:
        """Fill the view from the store. The head is read first: anything committed later is replayed."""
        started, confirmed = self._clock(), self._monotonic()
        head = await self._store.changes.head()
        view = StateView(seq=head)
        for principal in await self._store.principals.all():
            view.put_principal(principal)
        for credential in await self._store.principals.credentials():
            view.put_credential(credential)
        after = ""
        while page := await self._store.keys.page(after, _PAGE * 10):
            for key in page:
                view.put_key(key)
            after = page[-1].kid
        for grant in await self._store.grants.live(started):
            view.put_grant(grant)
        for ref in await self._store.subjects.erased_refs():
            view.set_erased(ref, True)
        by_media: dict[str, list[RevokedPath]] = {}
        for row in await self._store.media.revoked_paths(started - self._policy.max_ttl):
            by_media.setdefault(row.media_id, []).append(row)
        for media_id, rows in by_media.items():
            view.put_link_revocations(media_id, rows)
        self.view = view
        self.media.clear()
        self.confirmed_at = confirmed
        self.on_load(view.seq)
        self._signal_change()

    async def catch_up(self) -> int:
        """Apply every change committed before this call began; returns how many were applied."""
        async with self._lock:
            started = self._monotonic()
            applied = 0
            while changes := await self._store.changes.since(self.view.seq, _PAGE):
                for change in changes:
                    await self._apply(change)
                    self.on_change(change)
                    self.view.seq = change.seq
                applied += len(changes)
                if len(changes) < _PAGE:
                    break
            self.confirmed_at = started
            if applied:
                self._signal_change()
            return applied

    def _signal_change(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_beyond(self, seq: int, timeout: float) -> None:
        """Return once the view is past ``seq``, or after ``timeout`` seconds (a long poll: gateway.web.edge)."""
        if self.view.seq > seq:
            return
        await event_or_timeout(self._changed, timeout)

    async def _apply(self, change: Change) -> None:
        store, view = self._store, self.view
        if change.kind == "principal":
            principal = await store.principals.get(change.ref)
            if principal is not None:
                self._revoked("principal", view.principals.get(change.ref), principal, "disabled_at")
                view.put_principal(principal)
        elif change.kind == "credential":
            credential = await store.principals.credential(change.ref)
            if credential is not None:
                view.put_credential(credential)
        elif change.kind == "key":
            key = await store.keys.get(change.ref)
            if key is not None:
                self._revoked("key", view.keys.get(change.ref), key, "revoked_at")
                view.put_key(key)
        elif change.kind == "grant":
            grant = await store.grants.get(change.ref)
            if grant is not None:
                self._revoked("grant", view.grants.get(change.ref), grant, "revoked_at")
                view.put_grant(grant)
        elif change.kind == "media":
            self.media.invalidate(change.ref)
            since = self._clock() - self._policy.max_ttl
            before = _newest_links(view.revocations().get(change.ref, ()))
            rows = await store.media.revoked_paths(since, change.ref)
            newest = _newest_links(rows)
            if newest > before:
                self.on_revocation("links", self._clock() - newest)
            view.put_link_revocations(change.ref, rows)
        elif change.kind == "subject":
            view.set_erased(change.ref, await store.subjects.is_erased(change.ref))
        else:
            log.warning("unknown change kind %r at %d (a newer gateway wrote it?)", change.kind, change.seq)

    def _revoked(self, kind: str, old: object, new: object, field: str) -> None:
        """A revocation (``field`` newly set) reaching the view: how long after it was committed."""
        at = getattr(new, field)
        if at is not None and (old is None or getattr(old, field) is None):
            self.on_revocation(kind, self._clock() - at)

    def _tidy(self, now: float) -> None:
        """Expired grants allow nothing (authz checks the time); dropping them only bounds memory."""
        if now - self._tidied_at >= _TIDY_EVERY:
            self.view.drop_expired_grants(now)
            self._tidied_at = now

    def wake(self) -> None:
        """A notification arrived: catch up now rather than at the next poll."""
        self.notifications += 1
        self._wake.set()

    async def run(self) -> None:
        """Poll (and, where the store can, listen) until cancelled."""
        listening = self._store.listen(self.wake)
        failures, logged_at = 0, float("-inf")
        try:
            while True:
                await event_or_timeout(self._wake, self._policy.poll_every)
                self._wake.clear()
                try:
                    await self.catch_up()
                except (GatewayError, OSError) as exc:
                    failures += 1
                    if time.monotonic() - logged_at >= _LOG_FAILURES_EVERY:  # not one line per poll (20/s)
                        log.error("state sync failed %d time(s) (the view ages until it succeeds): %s", failures, exc)
                        logged_at, failures = time.monotonic(), 0
                else:
                    if logged_at > float("-inf"):
                        log.warning("state sync recovered")
                    logged_at, failures = float("-inf"), 0
                self._tidy(self._clock())
        finally:
            await listening.close()
