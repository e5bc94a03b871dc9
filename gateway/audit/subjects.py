"""A viewer's rights over what the gateway holds: export it, or erase it.

Erasure deletes the subject's media records, ends the access they had as a
principal (grants revoked, principal disabled), and shreds their audit key:
every personal field ever logged about them becomes unreadable while the log
still verifies. Both actions are themselves audited, under the pseudonym.

A subject the gateway holds nothing about (no audit record under their
pseudonym, no audit key, no media they own, no principal of that id, never
erased) is ``NotFound``: exporting or erasing a mistyped id must not report
success.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from gateway.audit import records as audit
from gateway.audit.log import AuditLog
from gateway.audit.records import AuditEvent, AuditRecord, RequestContext
from gateway.errors import NotFound
from gateway.model import check_name
from gateway.store.base import AuditQuery, Repos, Store

_PAGE = 1000


async def records_about(store: Store, ref: str) -> AsyncIterator[AuditRecord]:
    after = 0
    while page := await store.audit.search(AuditQuery(subject=ref, after_seq=after, limit=_PAGE)):
        for record in page:
            yield record
        after = page[-1].seq or after


class Subjects:
    def __init__(
        self, store: Store, audit_log: AuditLog, after_change: Callable[[], Awaitable[object]] | None = None
    ) -> None:
        self._store = store
        self._log = audit_log
        self._after_change = after_change

    async def export(self, ctx: RequestContext, subject: str, now: float) -> dict[str, Any]:
        check_name(subject, "subject")
        ref = self._log.ref(subject)
        await _require_known(self._store, subject, ref)
        issuances = []
        async for record in records_about(self._store, ref):
            issuances.append({**record.to_dict(), "personal": await self._log.reveal(record)})
        principal = await self._store.principals.get(subject)
        document = {
            "subject": subject,
            "pseudonym": ref,
            "erased": await self._store.subjects.is_erased(ref),
            "generated_at": now,
            "media_owned": [_media(m) for m in await self._store.media.owned_by(subject)],
            "principal": None if principal is None else {"id": principal.id, "kind": principal.kind.value},
            "grants": [g.__dict__ for g in await self._store.grants.all(subject)],
            "audit_records": issuances,
        }
        await self._audit(ctx, AuditEvent.SUBJECT_EXPORTED, ref, now, {"records": len(issuances)})
        return document

    async def erase(self, ctx: RequestContext, subject: str, reason: str, now: float) -> dict[str, int]:
        check_name(subject, "subject")
        ref = self._log.ref(subject)
        async with self._store.transaction() as tx:
            await _require_known(tx, subject, ref)
            media = await tx.media.erase_owner(subject, ref, now)
            grants = [g for g in await tx.grants.all(subject) if g.revoked_at is None]
            for grant in grants:
                await tx.grants.revoke(grant.id, now)
            principal = await tx.principals.get(subject)
            if principal is not None:
                await tx.principals.disable(subject, now)
            await tx.subjects.erase(ref, now)
            counts = {
                "media_deleted": media,
                "grants_revoked": len(grants),
                "principal_disabled": int(principal is not None),
            }
            record = audit.change(ctx, AuditEvent.SUBJECT_ERASED, now=now, subject=ref, reason=reason, detail=counts)
            await tx.audit.append([record])
        self._log.forget(ref)
        if self._after_change is not None:
            await self._after_change()  # this process stops serving the subject before answering
        return counts

    async def _audit(
        self, ctx: RequestContext, event: AuditEvent, ref: str, now: float, detail: dict[str, Any]
    ) -> None:
        async with self._store.transaction() as tx:
            await tx.audit.append([audit.change(ctx, event, now=now, subject=ref, detail=detail)])


async def _require_known(repos: Repos, subject: str, ref: str) -> None:
    held = (
        await repos.audit.search(AuditQuery(subject=ref, limit=1))
        or await repos.subjects.sealed_key(ref) is not None
        or await repos.subjects.is_erased(ref)
        or await repos.media.owned_by(subject)
        or await repos.principals.get(subject) is not None
    )
    if not held:
        raise NotFound(f"nothing is held about subject {subject!r} (no audit records, media or principal)")


def _media(item: Any) -> dict[str, Any]:
    return {
        "id": item.id,
        "workspace": item.workspace,
        "visibility": item.visibility.value,
        "renditions": {r.value: p for r, p in item.paths.items()},
        "updated_at": item.updated_at,
        "deleted_at": item.deleted_at,
    }
