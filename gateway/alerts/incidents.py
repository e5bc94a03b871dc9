"""Incident notifications through the webhooks, and resolving the pseudonyms they name.

``incident report`` and ``incident notify`` each record one audit record
(``incident:reported`` / ``incident:notified``) whose webhook names the
affected subjects only by their pseudonyms (``sub_…``), and — when a webhook
will carry it — one ``incident:subject_named`` record per subject, sealed
under that subject's own key like any viewer record. A receiver turns the
pseudonyms back into its user ids with ``POST /v1/subjects/resolve`` (a
principal with ``admin`` or ``sign:on-behalf``: the backend that already
names viewers), which reads those records: a subject erased since is
crypto-shredded and resolves to null. Each resolution is audited.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from gateway.alerts.outbox import Outbox
from gateway.audit import records as audit
from gateway.audit.log import AuditLog
from gateway.audit.records import VIEWER, AuditEvent, AuditRecord, RequestContext
from gateway.store.base import AuditQuery, Store

MAX_RESOLVE = 1000


def _summary(report: dict[str, Any], refs: list[str]) -> dict[str, Any]:
    return {
        "since": report["since"],
        "first_use": report["first_use"],
        "last_use": report["last_use"],
        "issuances": len(report["issuances"]),
        "redemptions": len(report["redemptions"]),
        "outsider_redemptions": len(report["outsider_redemptions"]),
        "affected_subjects": refs,
    }


async def record_incident(
    store: Store,
    audit_log: AuditLog,
    outbox: Outbox,
    ctx: RequestContext,
    report: dict[str, Any],
    now: float,
    message: str | None = None,
) -> tuple[int, int]:
    """Audit the report (``message`` given: the notification) and queue its webhook: (audit seq, rows queued)."""
    kid = report["kid"]
    subjects: list[str] = report["affected_subjects"]
    detail = _summary(report, [audit_log.ref(s) for s in subjects])
    event = AuditEvent.INCIDENT_REPORTED if message is None else AuditEvent.INCIDENT_NOTIFIED
    if message is not None:
        detail["message"] = message
    main = audit.change(ctx, event, now=now, kid=kid, detail=detail)
    named = [_named(ctx, kid, s, now) for s in subjects] if outbox.enabled else []
    key = await store.keys.get(kid)
    async with store.transaction() as tx:
        seqs = await audit_log.append(tx, [main, *named], now)
        queued = await outbox.publish(tx, main, seqs[0], key.principal_id if key else None, now)
    return seqs[0], queued


def _named(ctx: RequestContext, kid: str, subject: str, now: float) -> AuditRecord:
    """The subject's id, sealed under their own key (gateway.audit.privacy): what a resolution reads."""
    record = audit.change(ctx, AuditEvent.INCIDENT_SUBJECT_NAMED, now=now, kid=kid, subject=subject)
    return dataclasses.replace(record, retention=VIEWER)


async def resolve(
    store: Store, audit_log: AuditLog, ctx: RequestContext, refs: Sequence[str], now: float
) -> dict[str, str | None]:
    """Each pseudonym's subject id, if an incident named them and they were not erased since."""
    found: dict[str, str | None] = {}
    for ref in dict.fromkeys(refs):
        found[ref] = await _subject(store, audit_log, ref)
    detail = {"requested": len(found), "resolved": sum(v is not None for v in found.values())}
    async with store.transaction() as tx:
        await audit_log.append(tx, [audit.change(ctx, AuditEvent.SUBJECT_RESOLVED, now=now, detail=detail)], now)
    return found


async def _subject(store: Store, audit_log: AuditLog, ref: str) -> str | None:
    query = AuditQuery(event=AuditEvent.INCIDENT_SUBJECT_NAMED.value, subject=ref, limit=1)
    for record in await store.audit.search(query):
        personal = await audit_log.reveal(record)
        if personal is not None and isinstance(personal.get("subject"), str):
            return str(personal["subject"])
    return None
