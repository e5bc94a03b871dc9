"""Time-boxed access grants for engineers, each with its reason."""

from __future__ import annotations

from gateway.admin.base import AdminBase, require_principal
from gateway.audit import records as audit
from gateway.audit.records import AuditEvent, RequestContext
from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.keys.material import new_id
from gateway.model import (
    GRANT_ID_PREFIX,
    Grant,
    PrincipalKind,
)

MAX_GRANT_SECONDS = 7 * 86400


class GrantAdmin(AdminBase):
    async def add_grant(
        self,
        ctx: RequestContext,
        principal_id: str,
        media_id: str,
        reason: str,
        duration: float,
        now: float,
    ) -> Grant:
        if not reason.strip():
            raise InvalidInput("an access grant needs a reason")
        if not 0 < duration <= MAX_GRANT_SECONDS:
            raise InvalidInput(f"a grant lasts at most {MAX_GRANT_SECONDS} seconds")
        grant = Grant(new_id(GRANT_ID_PREFIX), principal_id, media_id, reason.strip(), ctx.actor, now, now + duration)
        async with self._changing() as tx:
            principal = await require_principal(tx, principal_id)
            if principal.kind is not PrincipalKind.ENGINEER:
                raise InvalidInput("access grants are for engineers")
            item = await tx.media.get(media_id)
            if item is None or item.deleted:
                # A grant for a mistyped id would succeed and then allow nothing.
                raise NotFound(f"no media item {media_id!r}")
            await tx.grants.add(grant)
            detail = {"grant_id": grant.id, "principal": principal_id, "expires_at": grant.expires_at}
            record = audit.change(
                ctx, AuditEvent.GRANT_CREATED, now=now, media_id=media_id, reason=grant.reason, detail=detail
            )
            await self._log.append(tx, [record], now)
        return grant

    async def revoke_grant(self, ctx: RequestContext, grant_id: str, now: float) -> None:
        async with self._changing() as tx:
            grant = await tx.grants.get(grant_id)
            if grant is None:
                raise NotFound(f"no grant {grant_id!r}")
            if grant.revoked_at is not None:
                raise Conflict(f"grant {grant_id} was already revoked")
            await tx.grants.revoke(grant_id, now)
            detail = {"grant_id": grant_id, "principal": grant.principal_id}
            record = audit.change(ctx, AuditEvent.GRANT_REVOKED, now=now, media_id=grant.media_id, detail=detail)
            await self._log.append(tx, [record], now)
