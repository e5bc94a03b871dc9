"""Principals and their API credentials (the gateway keeps only the public half)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from gateway.admin.base import AdminBase, require_principal
from gateway.audit import records as audit
from gateway.audit.records import AuditEvent, RequestContext
from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.keys.material import generate_secret, new_credential_id
from gateway.model import (
    Credential,
    KeyAlgorithm,
    Permission,
    Principal,
    PrincipalKind,
    Rendition,
    check_name,
)


@dataclass(frozen=True)
class NewPrincipal:
    principal: Principal
    credential: Credential
    credential_seed: bytes = field(repr=False)


@dataclass(frozen=True)
class NewCredential:
    """A credential not yet stored, with its private half (which the gateway never stores)."""

    credential: Credential
    seed: bytes = field(repr=False)


def new_credential(principal_id: str, now: float) -> NewCredential:
    """Made before it is stored, so its owner's file can be written first: a stored credential
    whose private half was never saved would lock its principal out after a rotation."""
    seed, public = generate_secret(KeyAlgorithm.ED25519)
    assert public is not None
    return NewCredential(Credential(new_credential_id(), principal_id, public, now), seed)


def _credential_revoked(
    ctx: RequestContext, credential: Credential, reason: str, now: float, replaced_by: str | None = None
) -> audit.AuditRecord:
    detail = {"credential": credential.id, **({"replaced_by": replaced_by} if replaced_by else {})}
    return audit.change(
        ctx, AuditEvent.CREDENTIAL_REVOKED, now=now, subject=credential.principal_id, reason=reason, detail=detail
    )


class PrincipalAdmin(AdminBase):
    async def add_principal(
        self,
        ctx: RequestContext,
        principal_id: str,
        kind: PrincipalKind,
        permissions: frozenset[Permission],
        renditions: frozenset[Rendition] | None,
        now: float,
        credential: NewCredential | None = None,
    ) -> NewPrincipal:
        principal = Principal(check_name(principal_id, "principal id"), kind, permissions, now, renditions)
        made = credential or new_credential(principal.id, now)
        if made.credential.principal_id != principal.id:
            raise InvalidInput("the credential belongs to another principal")
        detail: dict[str, object] = {
            "kind": kind.value,
            "permissions": sorted(permissions),
            "credential": made.credential.id,
            "renditions": None if renditions is None else sorted(renditions),
        }
        async with self._changing() as tx:
            await tx.principals.add(principal)
            await tx.principals.add_credential(made.credential)
            record = audit.change(ctx, AuditEvent.PRINCIPAL_CREATED, now=now, subject=principal.id, detail=detail)
            await self._log.append(tx, [record], now)
        return NewPrincipal(principal, made.credential, made.seed)

    async def disable_principal(self, ctx: RequestContext, principal_id: str, now: float) -> None:
        async with self._changing() as tx:
            if (await require_principal(tx, principal_id)).disabled:
                raise Conflict(f"principal {principal_id} is already disabled")
            await tx.principals.disable(principal_id, now)
            await self._log.append(
                tx, [audit.change(ctx, AuditEvent.PRINCIPAL_DISABLED, now=now, subject=principal_id)], now
            )

    async def add_credential(
        self, ctx: RequestContext, made: NewCredential, now: float, revoke_others: str | None = None
    ) -> list[Credential]:
        """Store a new API credential; with ``revoke_others`` (the reason), revoke the principal's
        other live credentials in the same transaction. Returns the credentials revoked."""
        if revoke_others is not None and not revoke_others.strip():
            raise InvalidInput("a revocation needs a reason")
        principal_id = made.credential.principal_id
        async with self._changing() as tx:
            if (await require_principal(tx, principal_id)).disabled:
                raise Conflict(f"principal {principal_id} is disabled")
            live = [c for c in await tx.principals.credentials(principal_id) if c.revoked_at is None]
            await tx.principals.add_credential(made.credential)
            detail = {"credential": made.credential.id}
            records = [audit.change(ctx, AuditEvent.CREDENTIAL_CREATED, now=now, subject=principal_id, detail=detail)]
            revoked = live if revoke_others is not None else []
            for old in revoked:
                await tx.principals.revoke_credential(old.id, now)
                records.append(_credential_revoked(ctx, old, revoke_others or "", now, made.credential.id))
            await self._log.append(tx, records, now)
        return revoked

    async def revoke_credential(self, ctx: RequestContext, credential_id: str, reason: str, now: float) -> Credential:
        """From now on, API tokens signed with this credential are refused."""
        if not reason.strip():
            raise InvalidInput("a revocation needs a reason")
        async with self._changing() as tx:
            credential = await tx.principals.credential(credential_id)
            if credential is None:
                raise NotFound(f"no credential {credential_id!r}")
            if credential.revoked_at is not None:
                raise Conflict(f"credential {credential_id} was already revoked")
            await tx.principals.revoke_credential(credential_id, now)
            await self._log.append(tx, [_credential_revoked(ctx, credential, reason, now)], now)
        return dataclasses.replace(credential, revoked_at=now)
