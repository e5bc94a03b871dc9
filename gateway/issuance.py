"""Issuing signed URLs: authorise, sign, log durably, and only then return.

One call handles one or many items for one viewer. Every item, allowed or
refused, yields exactly one audit record; all of a call's records commit in
one transaction. If that commit fails no URL leaves this module (503).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from gateway import audit
from gateway.audit import AuditRecord, RequestContext
from gateway.authz import decide
from gateway.dialects import DialectRegistry
from gateway.dialects.base import SignRequest
from gateway.errors import AuditUnavailable, Forbidden, GatewayError, InvalidInput, NotFound
from gateway.keyring import Keyring
from gateway.model import Grant, MediaItem, Principal, PrincipalKind, Rendition, Viewer
from gateway.netaddr import parse_network
from gateway.store.base import Store
from gateway.urlcanon import canonical_path


@dataclass(frozen=True)
class SignItem:
    media_id: str
    rendition: Rendition
    ttl: int | None = None
    client_ip: str | None = None
    prefix: bool = False


@dataclass(frozen=True)
class Issued:
    url: str
    expires: int
    kid: str
    issuance_id: str


@dataclass(frozen=True)
class Outcome:
    item: SignItem
    issued: Issued | None = None
    error: GatewayError | None = None


@dataclass(frozen=True)
class IssuancePolicy:
    cdn_base_url: str
    default_ttl: int
    max_ttl: int
    dialect: str = "native"


def _directory_of(path: str) -> str:
    return path.rsplit("/", 1)[0] + "/"


class Issuer:
    def __init__(
        self, store: Store, keyring: Keyring, dialects: DialectRegistry, policy: IssuancePolicy
    ) -> None:
        self._store = store
        self._keyring = keyring
        self._dialects = dialects
        self._policy = policy

    async def issue(
        self,
        principal: Principal,
        viewer: Viewer | None,
        items: list[SignItem],
        ctx: RequestContext,
        now: float,
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        records: list[AuditRecord] = []
        for item in items:
            outcome, record = await self._one(principal, viewer, item, ctx, now)
            outcomes.append(outcome)
            records.append(record)
        await self._log(records, outcomes, now)
        return outcomes

    async def _one(
        self, principal: Principal, viewer: Viewer | None, item: SignItem, ctx: RequestContext, now: float
    ) -> tuple[Outcome, AuditRecord]:
        subject = viewer.subject if viewer else None
        try:
            ttl = self._ttl(item)
            media = await self._media(item.media_id)
            path = self._path(media, item.rendition)
            reason, grant_id = await self._authorise(principal, viewer, media, item, now)
            key = await self._keyring.signing_key(principal.id, now)
        except (Forbidden, NotFound, InvalidInput) as error:
            record = audit.denied(
                ctx, now=now, media_id=item.media_id, rendition=item.rendition.value,
                subject=subject, reason=error.reason,
            )  # fmt: skip
            return Outcome(item, error=error), record
        expires = int(now) + ttl
        request = SignRequest(
            url=self._policy.cdn_base_url + path,
            expires=expires,
            ip=item.client_ip,
            prefix=_directory_of(path) if item.prefix else None,
        )
        url = self._dialects.get(self._policy.dialect).sign(request, key).url
        issued = Issued(url=url, expires=expires, kid=key.kid, issuance_id=_issuance_id())
        detail = {"issuance_id": issued.issuance_id, "dialect": self._policy.dialect}
        if grant_id:
            detail["grant_id"] = grant_id
        record = audit.issued(
            ctx, now=now, kid=key.kid, media_id=item.media_id, rendition=item.rendition.value,
            subject=subject, url=url, expires_at=expires, reason=reason, detail=detail,
        )  # fmt: skip
        return Outcome(item, issued=issued), record

    def _ttl(self, item: SignItem) -> int:
        ttl = self._policy.default_ttl if item.ttl is None else item.ttl
        if not 1 <= ttl <= self._policy.max_ttl:
            raise InvalidInput(f"ttl must be from 1 to {self._policy.max_ttl} seconds")
        if item.client_ip:
            parse_network(item.client_ip)
        return ttl

    async def _media(self, media_id: str) -> MediaItem:
        media = await self._store.media.get(media_id)
        if media is None or media.deleted:
            raise NotFound(f"no media item {media_id!r}")
        return media

    @staticmethod
    def _path(media: MediaItem, rendition: Rendition) -> str:
        path = media.paths.get(rendition)
        if path is None:
            raise NotFound(f"media item {media.id!r} has no {rendition.value} rendition")
        return canonical_path(path)

    async def _authorise(
        self, principal: Principal, viewer: Viewer | None, media: MediaItem, item: SignItem, now: float
    ) -> tuple[str, str | None]:
        grants: list[Grant] = []
        if principal.kind is PrincipalKind.ENGINEER:
            grants = await self._store.grants.for_media(principal.id, media.id)
        decision = decide(principal, viewer, media, item.rendition, grants, now)
        if not decision.allowed:
            raise Forbidden(f"not permitted: {decision.reason}", reason=decision.reason)
        return decision.reason, decision.grant.id if decision.grant else None

    async def _log(self, records: list[AuditRecord], outcomes: list[Outcome], now: float) -> None:
        kids = {o.issued.kid for o in outcomes if o.issued}
        try:
            async with self._store.transaction() as tx:
                await tx.audit.append(records)
                for kid in sorted(kids):
                    await tx.keys.touch(kid, now)
        except GatewayError as exc:
            raise AuditUnavailable(f"audit log unavailable, nothing issued: {exc.message}") from exc


def _issuance_id() -> str:
    return "gwi_" + secrets.token_hex(12)
