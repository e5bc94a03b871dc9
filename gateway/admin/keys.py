"""URL-signing keys: create, rotate, revoke, link to a CDN's id, export a shared secret, publish to CloudFront.

Publishing (``publish_key``) changes the CDN first, then links the id it gave
and records ``key:published`` in one transaction: a failed link leaves
nothing published. Revocation is the other way round: the key is revoked and
``key:revoked`` recorded before CloudFront is called at all, so the gateway
refuses the key at once whatever CloudFront does; the CDN-side removal is
recorded as ``key:unpublished``, or its failure as ``key:unpublish_failed``
(retry with ``unpublish_key``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from gateway.admin.base import AdminBase, require_principal
from gateway.audit import records as audit
from gateway.audit.records import AuditEvent, RequestContext
from gateway.cdn.cloudfront_keys import KeyGroup
from gateway.errors import ConfigError, Conflict, GatewayError, InvalidInput, NotFound
from gateway.keys.keyring import newest_active, seal_context
from gateway.keys.material import generate_secret, new_key_id, public_pem
from gateway.model import (
    KeyAlgorithm,
    KeyState,
    SigningKey,
    check_name,
)

CLOUDFRONT_ALGORITHMS = (KeyAlgorithm.RSA_2048, KeyAlgorithm.ECDSA_P256)


@dataclass(frozen=True)
class CdnChange:
    """What happened at the CDN when a key was unpublished. The gateway's own state does not depend on it."""

    public_key_id: str
    removed_from_group: bool = False
    deleted: bool = False
    error: str | None = None  # set: the CDN was not (fully) changed; retry with unpublish_key


@dataclass(frozen=True)
class Revoked:
    key: SigningKey
    cdn: CdnChange | None = None  # None: the key was not published in a key group the gateway manages


class KeyAdmin(AdminBase):
    # The CloudFront key group keys are published in (cloudfront.key_group_id); set by gateway.services.
    key_group: KeyGroup | None = None

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

    async def revoke_key(self, ctx: RequestContext, kid: str, reason: str, now: float) -> Revoked:
        """Revoke at once; then, if the key is in the CloudFront key group, take it out (the revocation stands)."""
        key = await self._revoke(ctx, kid, reason, now)
        if not self._published(key):
            return Revoked(key)
        try:
            return Revoked(key, await self._unpublish(ctx, key, now))
        except Exception as exc:  # whatever CloudFront (or boto3) does: the key stays revoked, the failure is logged
            return Revoked(key, await self._unpublish_failed(ctx, key, now, str(exc)))

    async def _revoke(self, ctx: RequestContext, kid: str, reason: str, now: float) -> SigningKey:
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
        return await self._link(ctx, kid, external_id, now, AuditEvent.KEY_LINKED, _check_linkable)

    async def _link(
        self,
        ctx: RequestContext,
        kid: str,
        external_id: str,
        now: float,
        event: AuditEvent,
        check: Callable[[SigningKey, float], None],
        detail: dict[str, Any] | None = None,
    ) -> SigningKey:
        check_name(external_id, "external id")
        async with self._changing() as tx:
            key = await tx.keys.get(kid)
            if key is None:
                raise NotFound(f"no key {kid!r}")
            check(key, now)  # inside the transaction: a revocation committed meanwhile is seen here
            await tx.keys.link(kid, external_id)
            detail = {"external_id": external_id, **(detail or {})}
            await self._log.append(tx, [audit.change(ctx, event, now=now, kid=kid, detail=detail)], now)
        return await self._fetch_key(kid)

    async def publish_key(self, ctx: RequestContext, kid: str, now: float) -> SigningKey:
        """Upload the key's public half to CloudFront, add it to the key group, link the id CloudFront gave it."""
        group = self._require_key_group()
        key = await self._fetch_key(kid)
        _check_publishable(key, now)
        pem = public_pem(key.algorithm, key.public_key or b"")
        assert pem is not None  # RSA and ECDSA keys always have a public half
        public_key_id = await group.publish(kid, pem, f"media-gateway key of principal {key.principal_id}")
        detail = {"cdn": "cloudfront", "key_group": group.group_id}
        try:
            return await self._link(ctx, kid, public_key_id, now, AuditEvent.KEY_PUBLISHED, _check_publishable, detail)
        except GatewayError:
            # Revoked meanwhile, say: CloudFront must not go on trusting it (unless a concurrent publish linked it).
            if (await self._fetch_key(kid)).external_id != public_key_id:
                with suppress(GatewayError):
                    await group.unpublish(public_key_id)
            raise

    async def unpublish_key(self, ctx: RequestContext, kid: str, now: float) -> CdnChange:
        """Take a revoked or expired key out of the CloudFront key group: the retry after a failed revocation step."""
        self._require_key_group()
        key = await self._fetch_key(kid)
        if key.state(now) is KeyState.ACTIVE:
            raise Conflict(f"key {kid} is active: revoke it first (the gateway would go on signing with it)")
        if not self._published(key):
            raise Conflict(f"key {kid} is not linked to a CloudFront public key")
        return await self._unpublish(ctx, key, now)

    def _require_key_group(self) -> KeyGroup:
        if self.key_group is None:
            raise ConfigError("cloudfront.key_group_id is not set: the gateway manages no CloudFront key group")
        return self.key_group

    def _published(self, key: SigningKey) -> bool:
        return self.key_group is not None and key.external_id is not None and key.algorithm in CLOUDFRONT_ALGORITHMS

    async def _unpublish(self, ctx: RequestContext, key: SigningKey, now: float) -> CdnChange:
        group = self._require_key_group()
        assert key.external_id is not None
        try:
            done = await group.unpublish(key.external_id)
        except GatewayError as exc:
            return await self._unpublish_failed(ctx, key, now, exc.message)
        change = CdnChange(key.external_id, done.removed_from_group, done.deleted)
        if change.removed_from_group or change.deleted:  # nothing changed: nothing to record
            detail = {
                **self._cdn_detail(key),
                "removed_from_group": change.removed_from_group,
                "deleted": change.deleted,
            }
            await self._record(ctx, AuditEvent.KEY_UNPUBLISHED, key.kid, detail, now)
        return change

    async def _unpublish_failed(self, ctx: RequestContext, key: SigningKey, now: float, error: str) -> CdnChange:
        await self._record(
            ctx, AuditEvent.KEY_UNPUBLISH_FAILED, key.kid, {**self._cdn_detail(key), "error": error}, now
        )
        return CdnChange(key.external_id or "", error=error)

    def _cdn_detail(self, key: SigningKey) -> dict[str, Any]:
        group = self.key_group.group_id if self.key_group else None
        return {"cdn": "cloudfront", "key_group": group, "public_key_id": key.external_id}

    async def _record(
        self, ctx: RequestContext, event: AuditEvent, kid: str, detail: dict[str, Any], now: float
    ) -> None:
        async with self._changing() as tx:
            await self._log.append(tx, [audit.change(ctx, event, now=now, kid=kid, detail=detail)], now)

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


def _check_linkable(key: SigningKey, now: float) -> None:
    if key.external_id is not None:
        raise Conflict(f"key {key.kid} is already linked to {key.external_id}")


def _check_publishable(key: SigningKey, now: float) -> None:
    if key.algorithm not in CLOUDFRONT_ALGORITHMS:
        raise InvalidInput(f"key {key.kid} is {key.algorithm.value}: CloudFront takes rsa-2048 or ecdsa-p256 keys")
    if key.state(now) is not KeyState.ACTIVE:
        raise Conflict(f"key {key.kid} is {key.state(now).value}: only an active key is published")
    _check_linkable(key, now)
