"""Enforcing retention: prune sealed records past their class's retention, purge the raw log.

Only records covered by a signed checkpoint (a sealed segment, exported
off-box) are pruned. Pruning clears a record's contents but keeps its position,
time, class and leaf hash, so ``audit verify`` stays green. ``now`` is the real
time (the CLI refuses a later one): it is stored as the prune time, and
``audit verify`` checks prunes against its own clock as well.
"""

from __future__ import annotations

from gateway.audit import records as audit
from gateway.audit.records import (
    ENGINEER,
    ERASED_VIEWER_RETENTION,
    RETENTION_SECONDS,
    VIEWER,
    AuditEvent,
    RequestContext,
)
from gateway.store.base import PrunePolicy, Store

DAY = 86400
# How far clocks may disagree: a prune "as of" later than this is refused, and verify allows this much.
CLOCK_SKEW = 300


def prune_policy(now: float, sealed_upto: int) -> PrunePolicy:
    return PrunePolicy(
        sealed_upto=sealed_upto,
        viewer_before=now - RETENTION_SECONDS[VIEWER],
        engineer_before=now - RETENTION_SECONDS[ENGINEER],
        erased_before=now - ERASED_VIEWER_RETENTION,
    )


async def prune(store: Store, ctx: RequestContext, now: float, raw_retention_days: int) -> dict[str, int]:
    latest = await store.audit.latest_checkpoint()
    sealed_upto = latest.tree_size if latest else 0
    async with store.transaction() as tx:
        pruned = await tx.audit.prune(prune_policy(now, sealed_upto), now)
        purged = await tx.audit.purge_raw(now - raw_retention_days * DAY)
        counts = {"records_pruned": pruned, "raw_entries_purged": purged, "sealed_upto": sealed_upto}
        await tx.audit.append([audit.change(ctx, AuditEvent.AUDIT_PRUNED, now=now, detail=counts)])
    return counts
