"""Watching committed audit records for suspicious use, off the request path.

The audit batcher hands every committed group to ``Watcher.committed`` (one
append to a queue: the request that caused it has already been answered, or
is answered without waiting for this). The watcher's own task reads the
issuances and redemptions from the queue and applies ``gateway.alerts.detect``.

Replicas share what detection needs through the store, asynchronously:

- which networks each token was issued to (``issued_networks``, written
  once a second; only when other processes verify too — PostgreSQL, or
  ``serve --workers``): a redemption whose network this replica did not
  issue to is checked again after a grace period against every replica's
  issuances before it counts as outsider use;
- the principals' baselines (merged every ``_BASELINE_EVERY`` seconds).

An alert is an audit record (``alert:outsider_use``, ``alert:unusual_use``,
``alert:rate_spike``) enqueued for the webhooks in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gateway.alerts.detect import Baselines, Cooldown, IssuedIndex, KeyRates, Spike
from gateway.alerts.outbox import Outbox
from gateway.audit import records as audit
from gateway.audit.batch import URLS
from gateway.audit.log import AuditLog
from gateway.audit.records import (
    BOUND_TO,
    VIEWER_NETWORK,
    AuditEvent,
    AuditRecord,
    RequestContext,
    issued_networks,
)
from gateway.config import Config
from gateway.errors import GatewayError
from gateway.model import PrincipalKind
from gateway.observe.metrics import Tally
from gateway.state.view import StateView
from gateway.store.base import Store
from gateway.waiting import event_or_timeout

log = logging.getLogger("gateway.alerts")
Clock = Callable[[], float]
ACTOR = "gateway:alerts"
_GRACE = 3.0  # > one flush of every other replica's issued networks, plus a commit
_TICK = 1.0
_BASELINE_EVERY = 10.0
_MAX_NETWORKS = 256
_MAX_QUEUED = 10_000  # groups waiting; past it the oldest are dropped (and counted) rather than memory grow


@dataclass(frozen=True)
class WatchPolicy:
    outsider_use: bool = True
    outsider_skip: frozenset[str] = frozenset()
    unusual_kinds: frozenset[PrincipalKind] = frozenset({PrincipalKind.ENGINEER})
    learning_seconds: float = 7 * 86400.0
    rate_factor: float = 10.0
    rate_floor: int = 60
    cooldown: float = 3600.0

    @classmethod
    def from_config(cls, config: Config) -> WatchPolicy:
        return cls(
            outsider_use=config.alert_outsider_use,
            outsider_skip=frozenset(config.alert_outsider_skip),
            unusual_kinds=frozenset(PrincipalKind(k) for k in config.alert_unusual_kinds),
            learning_seconds=config.alert_learning_days * 86400.0,
            rate_factor=config.alert_rate_factor,
            rate_floor=config.alert_rate_floor,
            cooldown=float(config.alert_cooldown),
        )


@dataclass(frozen=True)
class _Pending:
    due: float
    kid: str
    expires_at: int
    network: str
    principal_id: str


class Watcher:
    def __init__(
        self, store: Store, audit_log: AuditLog, outbox: Outbox, view: StateView, policy: WatchPolicy, clock: Clock,
        tally: Tally | None = None,
    ) -> None:  # fmt: skip
        self._store = store
        self._log = audit_log
        self._outbox = outbox
        self._view = view
        self._policy = policy
        self._clock = clock
        self._tally = tally or Tally(1)
        self._queue: deque[list[AuditRecord]] = deque()
        self._wake = asyncio.Event()
        self.index = IssuedIndex()
        self.baselines = Baselines(policy.learning_seconds)
        self.rates = KeyRates(policy.rate_factor, policy.rate_floor)
        self._cooldown = Cooldown(policy.cooldown)
        self._to_share: set[tuple[str, int, str]] = set()
        self._pending: deque[_Pending] = deque()
        self.dropped = 0
        self.watching = False
        # Other processes verify too (PostgreSQL replicas, serve --workers): share issuances through the store.
        # A single process sees every issuance and redemption itself and keeps them in memory only.
        self.shared = True

    def committed(self, records: list[AuditRecord]) -> None:
        """The audit batcher's hook: a committed group, as built (before pseudonyms and sealing). O(1).

        Ignored until ``run`` starts (a CLI process or a test without the web app watches nothing)."""
        if not self.watching:
            return
        if len(self._queue) >= _MAX_QUEUED:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(records)
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: process what was committed, check due redemptions, share, learn."""
        self.watching = True
        await self._load_baselines()
        shared_at = self._clock()
        while True:
            await event_or_timeout(self._wake, _TICK)
            self._wake.clear()
            now = self._clock()
            try:
                await self.step(now)
                if now - shared_at >= _BASELINE_EVERY:
                    await self.share_baselines(now)
                    shared_at = now
            except GatewayError as exc:
                log.warning("suspicious-use detection could not reach the store (will retry): %s", exc.message)

    async def step(self, now: float) -> list[AuditRecord]:
        """One round: detection over the queue, due outsider checks, issued networks shared; returns the alerts."""
        alerts: list[tuple[AuditRecord, str | None]] = []
        while self._queue:
            for record in self._queue.popleft():
                alerts += self._observe(record)
        alerts += await self._check_due(now)
        await self._share_issued()
        if alerts:
            await self._raise(alerts, now)
        self.index.expire(now)
        self.rates.forget_idle(now)
        self._cooldown.forget(now)
        return [a for a, _ in alerts]

    def _observe(self, record: AuditRecord) -> list[tuple[AuditRecord, str | None]]:
        if record.event is AuditEvent.URL_ISSUED_BATCH:
            return self._issued_batch(record)
        if record.kid is None:
            return []
        if record.event is AuditEvent.URL_ISSUED:
            return self._issued(record, record.kid, record.expires_at, issued_networks(record))
        if record.event is AuditEvent.URL_REDEEMED:
            self._redeemed(record, record.kid)
        return []

    def _issued_batch(self, record: AuditRecord) -> list[tuple[AuditRecord, str | None]]:
        """Each URL of a batch, as its own ``url:issued`` record (``unbatched``) would be observed, read from
        the batch's list without building those records: what differs per URL is its key, expiry and binding;
        the caller, time and viewer's network are the batch's (tests/test_batch_issuance.py holds the two
        readings to the same alerts and state)."""
        shared = {n for n in (record.client_ip, record.detail.get(VIEWER_NETWORK)) if isinstance(n, str)}
        bound = record.detail.get(BOUND_TO)
        bound = bound if isinstance(bound, list) else []
        found: list[tuple[AuditRecord, str | None]] = []
        for position, entry in enumerate(record.detail.get(URLS) or []):
            kid = entry.get("kid")
            if kid is None:
                continue
            network = bound[position] if position < len(bound) else None
            networks = shared | {network} if isinstance(network, str) else shared
            found += self._issued(record, kid, entry.get("expires_at"), networks)
        return found

    def _issued(
        self, record: AuditRecord, kid: str, expires: int | None, networks: set[str]
    ) -> list[tuple[AuditRecord, str | None]]:
        """One issued URL: ``record`` gives its caller, time and caller's network (a batch's are its URLs')."""
        network = record.client_ip  # the caller's own network
        if expires is not None:
            for issued_to in networks:  # its viewer may redeem from theirs, or the URL's binding
                if self.index.add(kid, expires, issued_to):
                    self._to_share.add((kid, expires, issued_to))
        found: list[tuple[AuditRecord, str | None]] = []
        spike = self.rates.add(kid, record.time)
        if spike is not None and self._cooldown.ready("rate", kid, record.time):
            found.append((_spike_alert(spike, record), record.actor))
        principal = self._view.principals.get(record.actor)
        if principal is not None and principal.kind in self._policy.unusual_kinds:
            reasons = self.baselines.unusual(principal.id, network, record.time)
            if reasons and self._cooldown.ready("unusual", f"{principal.id} {network} {reasons}", record.time):
                found.append((_unusual_alert(record, kid, reasons), principal.id))
        return found

    def _redeemed(self, record: AuditRecord, kid: str) -> None:
        network, expires = record.client_ip, record.expires_at
        if not self._policy.outsider_use or network is None or expires is None:
            return
        if record.actor in self._policy.outsider_skip or network in self.index.networks(kid, expires):
            return
        # Maybe issued by another replica: decide after every replica has shared its issuances.
        self._pending.append(_Pending(record.time + _GRACE, kid, expires, network, record.actor))

    async def _check_due(self, now: float) -> list[tuple[AuditRecord, str | None]]:
        found: list[tuple[AuditRecord, str | None]] = []
        while self._pending and self._pending[0].due <= now:
            p = self._pending[0]
            issued_to = self.index.networks(p.kid, p.expires_at)
            if self.shared and p.network not in issued_to:
                issued_to = issued_to | await self._store.watch.issued_networks(p.kid, p.expires_at)
            self._pending.popleft()
            if p.network not in issued_to and self._cooldown.ready("outsider", f"{p.kid} {p.network}", now):
                found.append((_outsider_alert(p, issued_to, now), p.principal_id))
        return found

    async def _share_issued(self) -> None:
        if not self.shared:
            self._to_share.clear()
            return
        if not self._to_share:
            return
        rows = sorted(self._to_share)
        async with self._store.transaction() as tx:
            await tx.watch.add_issued(rows)
            await tx.watch.forget_issued(int(self._clock()) - 60)
        self._to_share.clear()

    async def _raise(self, alerts: list[tuple[AuditRecord, str | None]], now: float) -> None:
        async with self._store.transaction() as tx:
            seqs = await self._log.append(tx, [a for a, _ in alerts], now)
            for (alert, principal_id), seq in zip(alerts, seqs, strict=True):
                await self._outbox.publish(tx, alert, seq, principal_id, now)
        for alert, principal_id in alerts:
            self._tally.add((alert.event.value.split(":")[1],))
            log.warning("%s: key %s of %s (%s)", alert.event.value, alert.kid, principal_id, alert.reason)

    async def _load_baselines(self) -> None:
        with contextlib.suppress(GatewayError):
            self.baselines.adopt(await self._store.watch.baselines())

    async def share_baselines(self, now: float) -> None:
        """Merge what this replica learned into the store, and adopt every replica's learning."""
        seen = self.baselines.take_seen()
        try:
            async with self._store.transaction() as tx:
                for base in seen:
                    await tx.watch.merge_baseline(base, _MAX_NETWORKS)
        except GatewayError:
            for base in seen:  # learn it again next time
                self.baselines.seen[base.principal_id] = base
            raise
        self.baselines.adopt(await self._store.watch.baselines())


def _at(network: str) -> str:
    """An address inside a masked network: audit records mask the client IP they are given."""
    return network.split("/")[0]


def _outsider_alert(p: _Pending, issued_to: set[str], now: float) -> AuditRecord:
    ctx = RequestContext(actor=ACTOR, client_ip=_at(p.network))
    detail = {"principal_id": p.principal_id, "expires_at": p.expires_at, "issued_to": sorted(issued_to)}
    return audit.change(ctx, AuditEvent.ALERT_OUTSIDER_USE, now=now, kid=p.kid, reason="outsider-network",
                        detail=detail)  # fmt: skip


def _unusual_alert(record: AuditRecord, kid: str, reasons: list[str]) -> AuditRecord:
    ctx = RequestContext(actor=ACTOR, client_ip=_at(record.client_ip) if record.client_ip else None)
    detail = {"principal_id": record.actor, "hour_utc": int(record.time // 3600) % 24}
    return audit.change(ctx, AuditEvent.ALERT_UNUSUAL_USE, now=record.time, kid=kid, reason=",".join(reasons),
                        detail=detail)  # fmt: skip


def _spike_alert(spike: Spike, record: AuditRecord) -> AuditRecord:
    detail = {"principal_id": record.actor, "per_minute": spike.per_minute, "baseline_per_minute":
              round(spike.baseline, 2)}  # fmt: skip
    return audit.change(RequestContext(actor=ACTOR), AuditEvent.ALERT_RATE_SPIKE, now=record.time, kid=spike.kid,
                        reason="rate-spike", detail=detail)  # fmt: skip
