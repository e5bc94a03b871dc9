"""URL-signing keys: create, rotate, revoke, link to a CDN's id, export a shared secret."""

from __future__ import annotations

from gateway.admin.base import AdminBase, require_principal
from gateway.audit import records as audit
from gateway.audit.records import AuditEvent, RequestContext
from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.keys.keyring import newest_active, seal_context
from gateway.keys.material import generate_secret, new_key_id
from gateway.model import (
    KeyAlgorithm,
    SigningKey,
    check_name,
)


class KeyAdmin(AdminBase):
    async def _new_key(
        self,
        principal_id: str,
        algorithm: KeyAlgorithm,
        not_after: float | None,
        now: float,
        external_id: str | None,
    ) -> SigningKey:
        kid = new_key_id()
        secret, public = generate_secret(algorithm)
        sealed = await self._master_key.seal(secret, seal_context(kid))
        return SigningKey(kid, principal_id, algorithm, sealed, now, public, not_after, external_id=external_id)

    async def create_key(
        self,
        ctx: RequestContext,
        principal_id: str,
        algorithm: KeyAlgorithm,
        now: float,
        not_after: float | None = None,
        event: AuditEvent = AuditEvent.KEY_CREATED,
        external_id: str | None = None,
    ) -> SigningKey:
        if not_after is not None and not_after <= now:
            raise InvalidInput("not-after must be in the future")
        if external_id is not None:
            check_name(external_id, "external id")
        key = await self._new_key(principal_id, algorithm, not_after, now, external_id)
        async with self._changing() as tx:
            await require_principal(tx, principal_id)
            previous = newest_active(await tx.keys.all(principal_id), now)
            await tx.keys.add(key)
            detail = {"algorithm": algorithm.value, "principal": principal_id, "external_id": external_id}
            if event is AuditEvent.KEY_ROTATED and previous is not None:
                detail["previous_kid"] = previous.kid
            await self._log.append(tx, [audit.change(ctx, event, now=now, kid=key.kid, detail=detail)], now)
        return key

    async def rotate_key(self, ctx: RequestContext, principal_id: str, now: float) -> SigningKey:
        """A new key that signs from now on; older keys keep verifying until revoked or expired."""
        keys = await self._store.keys.all(principal_id)
        current = newest_active(keys, now)
        algorithm = current.algorithm if current else KeyAlgorithm.ED25519
        return await self.create_key(ctx, principal_id, algorithm, now, event=AuditEvent.KEY_ROTATED)

    async def revoke_key(self, ctx: RequestContext, kid: str, reason: str, now: float) -> SigningKey:
        if not reason.strip():
            raise InvalidInput("a revocation needs a reason")
        async with self._changing() as tx:
            key = await tx.keys.get(kid)
            if key is None:
                raise NotFound(f"no key {kid!r}")
            if key.revoked_at is not None:
                raise Conflict(f"key {kid} was already revoked")
            await tx.keys.revoke(kid, now, reason, ctx.actor)
            record = audit.change(ctx, AuditEvent.KEY_REVOKED, now=now, kid=kid, reason=reason)
            await self._log.append(tx, [record], now)
        return await self._fetch_key(kid)

    async def link_key(self, ctx: RequestContext, kid: str, external_id: str, now: float) -> SigningKey:
        """Record the id a CDN gave the key (CloudFront Key-Pair-Id, Cloud CDN KeyName)."""
        check_name(external_id, "external id")
        async with self._changing() as tx:
            key = await tx.keys.get(kid)
            if key is None:
                raise NotFound(f"no key {kid!r}")
            if key.external_id is not None:
                raise Conflict(f"key {kid} is already linked to {key.external_id}")
            await tx.keys.link(kid, external_id)
            detail = {"external_id": external_id}
            await self._log.append(tx, [audit.change(ctx, AuditEvent.KEY_LINKED, now=now, kid=kid, detail=detail)], now)
        return await self._fetch_key(kid)

    async def export_secret(self, ctx: RequestContext, kid: str, reason: str, now: float) -> tuple[SigningKey, bytes]:
        """The unsealed secret, to install at a CDN that shares it (Cloud CDN). Audited, with a reason."""
        if not reason.strip():
            raise InvalidInput("exporting key material needs a reason")
        key = await self._fetch_key(kid)
        secret = await self._master_key.unseal(key.sealed_private, seal_context(kid))
        async with self._changing() as tx:
            record = audit.change(ctx, AuditEvent.KEY_EXPORTED, now=now, kid=kid, reason=reason)
            await self._log.append(tx, [record], now)
        return key, secret

    async def _fetch_key(self, kid: str) -> SigningKey:
        key = await self._store.keys.get(kid)
        if key is None:
            raise NotFound(f"no key {kid!r}")
        return key
