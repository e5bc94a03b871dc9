"""Abuse limits: issuance per principal and per key, page-URL redirects per client network.

The request path only touches memory: ``admit``/``signing``/``redirect``
take from a local token bucket (``gateway.limits.buckets``) and raise
``RateLimited`` (429, ``Retry-After``) when it is empty. ``run`` reconciles
the buckets with every other replica through the store every
``limits.sync_every`` seconds, and writes the audit records of trips: one
``limit:exceeded`` per bucket per minute at most, counting the refusals since
the last one, so a flood of refused requests cannot flood the log. A trip is
therefore recorded within about a second, not before the 429 is sent.

If the store cannot be reached the buckets go on locally (each replica then
limits on its own) until it can.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

from gateway.audit import records as audit
from gateway.audit.log import AuditBatcher, Pending
from gateway.audit.records import VIEWER, AuditEvent, RequestContext
from gateway.config import Config
from gateway.errors import GatewayError, PayloadTooLarge, RateLimited
from gateway.limits.buckets import Bucket, Rule, retry_after
from gateway.netaddr import mask_ip
from gateway.observe.metrics import Tally
from gateway.store.base import BucketUse, Store

log = logging.getLogger("gateway.limits")
Clock = Callable[[], float]
_RECORD_EVERY = 60.0  # at most one audit record per bucket per minute
_FORGET_EVERY = 60.0
ACTOR = "gateway:limits"


@dataclass(frozen=True)
class Rules:
    principal: Rule
    key: Rule
    redirect: Rule

    @classmethod
    def from_config(cls, config: Config) -> Rules:
        return cls(
            Rule(config.limit_principal_rate, config.limit_principal_burst),
            Rule(config.limit_key_rate, config.limit_key_burst),
            Rule(config.limit_redirect_rate, config.limit_redirect_burst),
        )

    @property
    def any(self) -> bool:
        return self.principal.enabled or self.key.enabled or self.redirect.enabled


@dataclass
class Trip:
    scope: str
    subject: str
    refused: int = 0
    first: float = 0.0
    recorded_at: float = float("-inf")


class Limiter:
    def __init__(
        self,
        rules: Rules,
        tally: Tally | None = None,
        exempt: frozenset[str] = frozenset(),
        owner_of: Callable[[str], str | None] = lambda kid: None,
    ) -> None:
        self.rules = rules
        self._tally = tally or Tally(1)
        # Principals limited per client network instead (the pages principal signs every viewer's
        # redirect: a principal or key bucket would be one limit for the whole site), and who owns a key.
        self.exempt = exempt
        self.owner_of = owner_of
        self._buckets: dict[str, Bucket] = {}
        self._trips: dict[str, Trip] = {}
        # Other processes take from the same buckets (PostgreSQL replicas, serve --workers): reconcile through
        # the store. A single process's local buckets are already exact.
        self.shared = True

    # The request path: memory only.

    def admit(self, principal_id: str, items: int, now: float) -> None:
        """Before issuing ``items`` URLs for a principal: one token per item, a batch as much as its items.

        A batch larger than the burst could never be saved up for: it is refused at once (413), never
        let through on a smaller charge.
        """
        rule = self.rules.principal
        if not rule.enabled or principal_id in self.exempt:
            return
        if items > rule.burst:
            self._tripped(f"principal:{principal_id}", "principal", principal_id, now)
            raise PayloadTooLarge(
                f"a batch of {items} items is more than this principal may ever be issued at once "
                f"(limits.principal_burst = {rule.burst}): send at most {rule.burst} per request"
            )
        self._take("principal", principal_id, rule, items, now)

    def signing(self, kid: str, now: float) -> None:
        """Before signing with a key."""
        if self.rules.key.enabled and (not self.exempt or self.owner_of(kid) not in self.exempt):
            self._take("key", kid, self.rules.key, 1, now)

    def redirect(self, client_ip: str | None, now: float) -> None:
        """Before a page-URL redirect, per client network (/24 or /48)."""
        if self.rules.redirect.enabled:
            self._take("network", mask_ip(client_ip) or "unknown", self.rules.redirect, 1, now)

    def _take(self, scope: str, subject: str, rule: Rule, cost: int, now: float) -> None:
        name = f"{scope}:{subject}"
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = Bucket.full(rule, now)
        wait = bucket.take(cost, now)
        if wait:
            self._tripped(name, scope, subject, now)
            raise RateLimited(
                f"too many requests for this {scope}: at most {rule.rate:g}/s (burst {rule.burst})",
                retry_after=retry_after(wait),
                reason=f"rate-limited:{scope}",
            )

    def _tripped(self, name: str, scope: str, subject: str, now: float) -> None:
        self._tally.add((scope,))
        trip = self._trips.get(name)
        if trip is None:
            trip = self._trips[name] = Trip(scope, subject)
        if not trip.refused:
            trip.first = now
        trip.refused += 1

    # Off the request path.

    async def reconcile(self, store: Store, now: float) -> None:
        """Report what this replica took and adopt the shared levels; forget buckets that are full again.

        Every bucket this replica holds is reconciled, not only those it took from since the last time: a
        replica that is waiting for a refill learns what the others took meanwhile, and refuses with them.
        """
        for name in [n for n, b in self._buckets.items() if b.idle(now)]:
            del self._buckets[name]
        if not self.shared:
            for bucket in self._buckets.values():
                bucket.used = 0.0
            return
        busy = dict(self._buckets)
        if not busy:
            return
        uses = [BucketUse(n, b.rule.rate, b.rule.burst, b.drain()) for n, b in busy.items()]
        try:
            async with store.transaction() as tx:
                levels = await tx.limits.reconcile(uses, now)
        except GatewayError:
            for bucket in busy.values():
                bucket.restore()
            raise
        for name, bucket in busy.items():
            if name in levels:
                bucket.adopt(levels[name], now)

    def due_records(self, now: float) -> list[audit.AuditRecord]:
        """One ``limit:exceeded`` per tripped bucket not recorded in the last minute."""
        records = []
        for trip in self._trips.values():
            if trip.refused and now - trip.recorded_at >= _RECORD_EVERY:
                records.append(_record(trip, self.rules, now))
                trip.recorded_at, trip.refused = now, 0
        return records

    async def run(self, store: Store, batcher: AuditBatcher, clock: Clock, every: float) -> None:
        """Every ``every`` seconds until cancelled: reconcile, then record trips."""
        forgotten_at = float("-inf")
        while True:
            await asyncio.sleep(every)
            now = clock()
            try:
                await self.reconcile(store, now)
                if self.shared and now - forgotten_at >= _FORGET_EVERY:
                    async with store.transaction() as tx:
                        await tx.limits.forget_full(now)
                    forgotten_at = now
                await self.flush(batcher, now)
            except GatewayError as exc:
                log.warning("rate-limit reconciliation failed (limiting locally meanwhile): %s", exc.message)

    async def flush(self, batcher: AuditBatcher, now: float) -> None:
        records = self.due_records(now)
        if records:
            await batcher.submit(Pending(records, now))


def _record(trip: Trip, rules: Rules, now: float) -> audit.AuditRecord:
    rule: Rule = getattr(rules, "redirect" if trip.scope == "network" else trip.scope)
    detail = {"scope": trip.scope, "refused": trip.refused, "since": trip.first, "rate": rule.rate,
              "burst": rule.burst}  # fmt: skip
    if trip.scope == "network":
        # A viewer network: kept as long as viewer data (90 days), not as long as engineers' actions.
        ctx = RequestContext(actor=ACTOR, client_ip=trip.subject.split("/")[0])
        record = audit.change(ctx, AuditEvent.LIMIT_EXCEEDED, now=now, reason="rate-limited", detail=detail)
        return dataclasses.replace(record, retention=VIEWER)
    ctx = RequestContext(actor=trip.subject if trip.scope == "principal" else ACTOR)
    kid = trip.subject if trip.scope == "key" else None
    return audit.change(ctx, AuditEvent.LIMIT_EXCEEDED, now=now, kid=kid, reason="rate-limited", detail=detail)
