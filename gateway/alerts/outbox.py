"""Webhook delivery: a durable outbox table, fed from the audit log, drained by leased claims.

Durable: an event is a row in ``webhook_outbox`` (one per endpoint) before
any attempt, so a restart loses nothing. Events come from the audit log: the
replica holding the ``webhooks`` lock tails it for the records that are
events (``gateway.alerts.webhooks.EVENTS``) past a cursor kept in the store,
and enqueues them with the cursor's advance in one transaction. Records this
package writes itself (alerts, incident notifications) are enqueued in the
transaction that appends them; enqueueing is idempotent per (endpoint, event
id), so the feed adding them again changes nothing.

Delivery: every replica claims due rows with a lease (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL), so exactly one replica attempts a given row at a
time; a replica that dies mid-attempt leaves it to another once the lease
runs out (the receiver may then see it twice: it deduplicates on the event
id). Each attempt is audited (``webhook:delivered``, ``webhook:failed``, or
``webhook:abandoned`` after ``webhooks.max_attempts``) in the transaction
that records its outcome. Retries back off exponentially
(``webhooks.backoff`` x 2^(n-1), at most an hour).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp

from gateway import redact
from gateway.alerts import webhooks
from gateway.audit import records as audit
from gateway.audit.log import AuditLog
from gateway.audit.records import AuditEvent, AuditRecord, RequestContext
from gateway.config import Config
from gateway.errors import ConfigError, GatewayError
from gateway.observe.metrics import Tally
from gateway.store.base import AuditQuery, OutboxEntry, Repos, Store

log = logging.getLogger("gateway.alerts.webhooks")
Clock = Callable[[], float]
# (url, headers, body, timeout) -> HTTP status; raises OSError, aiohttp.ClientError or TimeoutError.
Post = Callable[[str, Mapping[str, str], bytes, float], Awaitable[int]]
FEED_LOCK = "webhooks"
ACTOR = "gateway:webhooks"
_PAGE = 500
_CLAIM = 20
_MIN_SECRET = 16


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str = field(repr=False)  # may carry a password
    secrets: tuple[bytes, ...] = field(repr=False)  # the current secret first, then the previous one in a rotation
    events: tuple[str, ...]


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout: float = 10.0
    max_attempts: int = 12
    backoff: float = 2.0

    @property
    def lease(self) -> float:
        """Long enough that an attempt in flight is never claimed again."""
        return 3 * self.timeout + 30


def _secret(config: Config, name: str, path: str) -> bytes:
    try:
        secret = config.data_path(path).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
    if len(secret) < _MIN_SECRET:
        raise ConfigError(f"{name}: the secret in {path} is shorter than {_MIN_SECRET} bytes")
    return secret


def load_endpoints(config: Config) -> tuple[Endpoint, ...]:
    """The configured endpoints with their secrets read; a missing file or unknown event names its key."""
    endpoints = []
    for e in config.webhooks:
        unknown = sorted(set(e.events) - webhooks.EVENT_TYPES)
        if unknown:
            raise ConfigError(f"webhooks.{e.name}.events: unknown event(s) {', '.join(unknown)}")
        keys = [_secret(config, f"webhooks.{e.name}.secret_file", e.secret_file)]
        if e.previous_secret_file:
            keys.append(_secret(config, f"webhooks.{e.name}.previous_secret_file", e.previous_secret_file))
        endpoints.append(Endpoint(e.name, e.url, tuple(keys), e.events))
    return tuple(endpoints)


@dataclass(frozen=True)
class Attempt:
    entry: OutboxEntry
    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Outbox:
    def __init__(
        self,
        store: Store,
        audit_log: AuditLog,
        endpoints: Sequence[Endpoint],
        policy: DeliveryPolicy,
        clock: Clock = time.time,
        tally: Tally | None = None,
        post: Post | None = None,
    ) -> None:
        self._store = store
        self._log = audit_log
        self._endpoints = {e.name: e for e in endpoints}
        self._policy = policy
        self._clock = clock
        self._tally = tally or Tally(1)
        self._post = post or _AiohttpPost()
        self.owner = f"outbox-{secrets.token_hex(6)}"  # this process, as a lease holder

    @property
    def enabled(self) -> bool:
        return bool(self._endpoints)

    async def publish(self, tx: Repos, record: AuditRecord, seq: int, principal_id: str | None, now: float) -> int:
        """Enqueue ``record`` (appended at ``seq`` in ``tx``) for every endpoint subscribed to it."""
        event_type = webhooks.EVENTS.get(record.event)
        if event_type is None:
            return 0
        payload = webhooks.body(record, seq, principal_id)
        queued = 0
        for endpoint in self._endpoints.values():
            if webhooks.subscribed(endpoint.events, event_type):
                queued += await tx.outbox.enqueue(endpoint.name, webhooks.event_id(seq), event_type, payload, now)
        return queued

    async def feed(self, now: float) -> int:
        """Turn the audit records past the cursor into outbox rows; only the lock holder does."""
        if not self.enabled:
            return 0
        async with self._store.exclusive(FEED_LOCK) as leader:
            if not leader:
                return 0
            head = (await self._store.audit.frontier()).size
            cursor = await self._store.outbox.cursor()
            if cursor is not None and head <= cursor:
                return 0
            found = [] if cursor is None else await self._records(cursor, head)
            return await self._enqueue(found, head, now)

    async def _records(self, cursor: int, head: int) -> list[AuditRecord]:
        found: list[AuditRecord] = []
        for event in webhooks.EVENTS:
            after = cursor
            while page := await self._store.audit.search(AuditQuery(event=event.value, after_seq=after, limit=_PAGE)):
                found += [r for r in page if r.seq is not None and r.seq <= head]
                after = page[-1].seq or head
                if after >= head or len(page) < _PAGE:
                    break
        return sorted(found, key=lambda r: r.seq or 0)

    async def _enqueue(self, records: list[AuditRecord], head: int, now: float) -> int:
        owners = {r.kid: await self._principal_of(r.kid) for r in records if r.kid}
        queued = 0
        async with self._store.transaction() as tx:
            for record in records:
                assert record.seq is not None
                principal_id = owners.get(record.kid) if record.kid else None
                queued += await self.publish(tx, record, record.seq, principal_id, now)
            await tx.outbox.set_cursor(head)  # with the rows: a crash in between repeats neither nor loses any
        return queued

    async def _principal_of(self, kid: str) -> str | None:
        key = await self._store.keys.get(kid)
        return key.principal_id if key else None

    async def deliver_due(self, now: float) -> list[Attempt]:
        """Claim the due rows and attempt each once, concurrently; returns what happened."""
        if not self.enabled:
            return []
        async with self._store.transaction() as tx:
            claimed = await tx.outbox.claim(self.owner, now, self._policy.lease, _CLAIM)
        return list(await asyncio.gather(*(self._attempt(entry) for entry in claimed)))

    async def _attempt(self, entry: OutboxEntry) -> Attempt:
        endpoint = self._endpoints.get(entry.endpoint)
        if endpoint is None:  # removed from the configuration since it was queued
            attempt = Attempt(entry, None, f"endpoint {entry.endpoint!r} is no longer configured")
        else:
            attempt = await self._send(endpoint, entry)
        await self._record(attempt, self._clock())
        return attempt

    async def _send(self, endpoint: Endpoint, entry: OutboxEntry) -> Attempt:
        payload = entry.payload.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "media-gateway-webhooks",
            webhooks.EVENT_HEADER: entry.event,
            webhooks.EVENT_ID_HEADER: entry.event_id,
            webhooks.SIGNATURE_HEADER: webhooks.sign(endpoint.secrets, int(self._clock()), payload),
        }
        try:
            status = await self._post(endpoint.url, headers, payload, self._policy.timeout)
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            # The endpoint's path may be its secret (chat webhooks): an error quoting the URL keeps its host only.
            return Attempt(entry, None, redact.without_path(f"{type(exc).__name__}: {exc}")[:300])
        return Attempt(entry, status, None if 200 <= status < 300 else f"HTTP {status}")

    async def _record(self, attempt: Attempt, now: float) -> None:
        entry, number = attempt.entry, attempt.entry.attempts + 1
        retry_at = None if number >= self._policy.max_attempts else now + webhooks.backoff(number, self._policy.backoff)
        event = _outcome(attempt, retry_at)
        detail = {"endpoint": entry.endpoint, "event_id": entry.event_id, "event": entry.event, "attempt": number}
        if attempt.status is not None:
            detail["status"] = attempt.status
        if not attempt.ok and retry_at is not None:
            detail["retry_at"] = retry_at
        record = audit.change(RequestContext(actor=ACTOR), event, now=now, reason=attempt.error, detail=detail)
        try:
            async with self._store.transaction() as tx:
                if attempt.ok:
                    await tx.outbox.delivered(entry.id, self.owner, now)
                else:
                    await tx.outbox.failed(entry.id, self.owner, attempt.error or "failed", retry_at)
                await self._log.append(tx, [record], now)
        except GatewayError as exc:  # the lease runs out and the row is attempted again
            log.error("could not record webhook attempt %s for %s: %s", entry.event_id, entry.endpoint, exc.message)
            return
        self._tally.add((event.value.split(":")[1],))
        if not attempt.ok:
            log.warning("webhook %s to %s failed (attempt %d): %s", entry.event_id, entry.endpoint, number,
                        attempt.error)  # fmt: skip

    async def run(self, every: float = 1.0) -> None:
        """Feed and deliver every ``every`` seconds until cancelled."""
        while True:
            try:
                now = self._clock()
                await self.feed(now)
                await self.deliver_due(now)
            except GatewayError as exc:
                log.error("webhook outbox (will retry): %s", exc.message)
            await asyncio.sleep(every)

    async def close(self) -> None:
        if isinstance(self._post, _AiohttpPost):
            await self._post.close()


def _outcome(attempt: Attempt, retry_at: float | None) -> AuditEvent:
    if attempt.ok:
        return AuditEvent.WEBHOOK_DELIVERED
    return AuditEvent.WEBHOOK_FAILED if retry_at is not None else AuditEvent.WEBHOOK_ABANDONED


class _AiohttpPost:
    """POST with aiohttp: no redirects followed (a 3xx is a failure), the response body not read."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, url: str, headers: Mapping[str, str], payload: bytes, timeout: float) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        limit = aiohttp.ClientTimeout(total=timeout)
        async with self._session.post(url, data=payload, headers=headers, timeout=limit, allow_redirects=False) as r:
            return r.status

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
