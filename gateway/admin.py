"""Administrative changes: principals, keys, grants and media items.

Each change and its audit record commit in one transaction, so the log never
misses a change and never records one that did not happen. Used by the CLI
and by the HTTP media API alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.audit import records as audit
from gateway.audit.log import AuditLog
from gateway.audit.records import AuditEvent, RequestContext
from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.keys.keyring import newest_active, seal_context
from gateway.keys.material import generate_secret, new_credential_id, new_id, new_key_id
from gateway.keys.sealing import MasterKey
from gateway.model import (
    GRANT_ID_PREFIX,
    Credential,
    Grant,
    KeyAlgorithm,
    MediaItem,
    Permission,
    Principal,
    PrincipalKind,
    Rendition,
    SigningKey,
    Visibility,
    check_name,
)
from gateway.signing.paths import canonical_path
from gateway.store.base import Repos, Store

MAX_GRANT_SECONDS = 7 * 86400


@dataclass(frozen=True)
class NewPrincipal:
    principal: Principal
    credential: Credential
    credential_seed: bytes


async def _require_principal(repos: Repos, principal_id: str) -> Principal:
    principal = await repos.principals.get(principal_id)
    if principal is None:
        raise NotFound(f"no principal {principal_id!r}")
    return principal


class Admin:
    def __init__(self, store: Store, master_key: MasterKey, audit_log: AuditLog) -> None:
        self._store = store
        self._master_key = master_key
        self._log = audit_log

    async def add_principal(
        self,
        ctx: RequestContext,
        principal_id: str,
        kind: PrincipalKind,
        permissions: frozenset[Permission],
        renditions: frozenset[Rendition] | None,
        now: float,
    ) -> NewPrincipal:
        principal = Principal(check_name(principal_id, "principal id"), kind, permissions, now, renditions)
        seed, public = generate_secret(KeyAlgorithm.ED25519)
        assert public is not None
        credential = Credential(new_credential_id(), principal.id, public, now)
        detail: dict[str, object] = {
            "kind": kind.value,
            "permissions": sorted(permissions),
            "credential": credential.id,
            "renditions": None if renditions is None else sorted(renditions),
        }
        async with self._store.transaction() as tx:
            await tx.principals.add(principal)
            await tx.principals.add_credential(credential)
            record = audit.change(ctx, AuditEvent.PRINCIPAL_CREATED, now=now, subject=principal.id, detail=detail)
            await self._log.append(tx, [record], now)
        return NewPrincipal(principal, credential, seed)

    async def disable_principal(self, ctx: RequestContext, principal_id: str, now: float) -> None:
        async with self._store.transaction() as tx:
            await _require_principal(tx, principal_id)
            await tx.principals.disable(principal_id, now)
            await self._log.append(
                tx, [audit.change(ctx, AuditEvent.PRINCIPAL_DISABLED, now=now, subject=principal_id)], now
            )

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
        async with self._store.transaction() as tx:
            await _require_principal(tx, principal_id)
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
        async with self._store.transaction() as tx:
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
        async with self._store.transaction() as tx:
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
        async with self._store.transaction() as tx:
            record = audit.change(ctx, AuditEvent.KEY_EXPORTED, now=now, kid=kid, reason=reason)
            await self._log.append(tx, [record], now)
        return key, secret

    async def _fetch_key(self, kid: str) -> SigningKey:
        key = await self._store.keys.get(kid)
        if key is None:
            raise NotFound(f"no key {kid!r}")
        return key

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
        async with self._store.transaction() as tx:
            principal = await _require_principal(tx, principal_id)
            if principal.kind is not PrincipalKind.ENGINEER:
                raise InvalidInput("access grants are for engineers")
            await tx.grants.add(grant)
            detail = {"grant_id": grant.id, "principal": principal_id, "expires_at": grant.expires_at}
            record = audit.change(
                ctx, AuditEvent.GRANT_CREATED, now=now, media_id=media_id, reason=grant.reason, detail=detail
            )
            await self._log.append(tx, [record], now)
        return grant

    async def revoke_grant(self, ctx: RequestContext, grant_id: str, now: float) -> None:
        async with self._store.transaction() as tx:
            grant = await tx.grants.get(grant_id)
            if grant is None:
                raise NotFound(f"no grant {grant_id!r}")
            await tx.grants.revoke(grant_id, now)
            detail = {"grant_id": grant_id, "principal": grant.principal_id}
            record = audit.change(ctx, AuditEvent.GRANT_REVOKED, now=now, media_id=grant.media_id, detail=detail)
            await self._log.append(tx, [record], now)

    async def put_media(
        self,
        ctx: RequestContext,
        media_id: str,
        owner: str,
        workspace: str,
        visibility: Visibility,
        paths: Mapping[Rendition, str],
        now: float,
    ) -> MediaItem:
        if not paths:
            raise InvalidInput("a media item needs at least one rendition path")
        item = MediaItem(
            id=check_name(media_id, "media id"),
            owner=check_name(owner, "owner"),
            workspace=check_name(workspace, "workspace"),
            visibility=visibility,
            paths={r: canonical_path(p) for r, p in paths.items()},
            updated_at=now,
        )
        detail = {"workspace": workspace, "visibility": visibility.value}
        async with self._store.transaction() as tx:
            await tx.media.put(item)
            # The owner is a viewer: the audit log stores it pseudonymised (gateway.audit.log).
            record = audit.change(ctx, AuditEvent.MEDIA_PUT, now=now, media_id=media_id, subject=owner, detail=detail)
            await self._log.append(tx, [record], now)
        return item

    async def delete_media(self, ctx: RequestContext, media_id: str, now: float) -> None:
        async with self._store.transaction() as tx:
            item = await tx.media.get(media_id)
            if item is None or item.deleted:
                raise NotFound(f"no media item {media_id!r}")
            await tx.media.delete(media_id, now)
            record = audit.change(ctx, AuditEvent.MEDIA_DELETED, now=now, media_id=media_id)
            await self._log.append(tx, [record], now)
