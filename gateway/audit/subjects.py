"""A viewer's rights over what the gateway holds: export it, or erase it.

Erasure deletes the subject's media records and shreds their audit key:
every personal field ever logged about them becomes unreadable while the log
still verifies. Both actions are themselves audited, under the pseudonym.

Viewer subjects (the ``sub`` of an identity provider's token) and principals
(engineers, services) are different namespaces: a viewer called ``web`` is not
the backend principal ``web``. Erasing a person who is also an engineer
principal is an explicit, separate part of the request (``principal=``): that
engineer is disabled and their grants revoked, and the result says so.

A subject the gateway holds nothing about (no audit record under their
pseudonym, no audit key, no media they own, never erased) is ``NotFound``:
exporting or erasing a mistyped id must not report success.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from gateway.audit import records as audit
from gateway.audit.log import AuditLog
from gateway.audit.records import AuditEvent, AuditRecord, RequestContext
from gateway.errors import InvalidInput, NotFound
from gateway.model import Principal, PrincipalKind, check_name
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

    async def export(
        self, ctx: RequestContext, subject: str, now: float, principal: str | None = None
    ) -> dict[str, Any]:
        """Everything held about viewer ``subject``; with ``principal``, also that engineer's principal and grants
        (the same person, named explicitly: the namespaces are not the same)."""
        check_name(subject, "subject")
        ref = self._log.ref(subject)
        await _require_known(self._store, subject, ref)
        engineer = await _engineer(self._store, principal) if principal is not None else None
        issuances = []
        async for record in records_about(self._store, ref):
            issuances.append({**record.to_dict(), "personal": await self._log.reveal(record)})
        document = {
            "subject": subject,
            "pseudonym": ref,
            "erased": await self._store.subjects.is_erased(ref),
            "generated_at": now,
            "media_owned": [_media(m) for m in await self._store.media.owned_by(subject)],
            "audit_records": issuances,
        }
        if engineer is not None:
            document["principal"] = {"id": engineer.id, "kind": engineer.kind.value}
            document["grants"] = [g.__dict__ for g in await self._store.grants.all(engineer.id)]
        await self._audit(ctx, AuditEvent.SUBJECT_EXPORTED, ref, now, {"records": len(issuances)})
        return document

    async def erase(
        self, ctx: RequestContext, subject: str, reason: str, now: float, principal: str | None = None
    ) -> dict[str, Any]:
        """Erase viewer ``subject``. Never touches a principal, unless one is named: ``principal``, an engineer
        who is the same person, is then disabled and their grants revoked (what was done is in the result)."""
        check_name(subject, "subject")
        ref = self._log.ref(subject)
        async with self._store.transaction() as tx:
            await _require_known(tx, subject, ref)
            engineer = await _engineer(tx, principal) if principal is not None else None
            result: dict[str, Any] = {"media_deleted": await tx.media.erase_owner(subject, ref, now)}
            if engineer is not None:
                grants = [g for g in await tx.grants.all(engineer.id) if g.revoked_at is None]
                for grant in grants:
                    await tx.grants.revoke(grant.id, now)
                if not engineer.disabled:
                    await tx.principals.disable(engineer.id, now)
                result |= {"principal_disabled": engineer.id, "grants_revoked": len(grants)}
            await tx.subjects.erase(ref, now)
            record = audit.change(ctx, AuditEvent.SUBJECT_ERASED, now=now, subject=ref, reason=reason, detail=result)
            await tx.audit.append([record])
        self._log.forget(ref)
        if self._after_change is not None:
            await self._after_change()  # this process stops serving the subject before answering
        return result

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
    )
    if not held:
        raise NotFound(f"nothing is held about viewer subject {subject!r} (no audit records or media)")


async def _engineer(repos: Repos, principal_id: str) -> Principal:
    """The engineer principal named as the same person; a service principal is nobody's personal data."""
    found = await repos.principals.get(principal_id)
    if found is None:
        raise NotFound(f"no principal {principal_id!r}")
    if found.kind is not PrincipalKind.ENGINEER:
        raise InvalidInput(f"principal {principal_id!r} is a {found.kind.value}, not an engineer: not a person")
    return found


def _media(item: Any) -> dict[str, Any]:
    return {
        "id": item.id,
        "workspace": item.workspace,
        "visibility": item.visibility.value,
        "renditions": {r.value: p for r, p in item.paths.items()},
        "updated_at": item.updated_at,
        "deleted_at": item.deleted_at,
    }
