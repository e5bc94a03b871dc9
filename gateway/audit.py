"""Audit records: a closed set of event tags and pure builders for each record.

A record is built before anything is returned to a caller; the store appends
it durably or the request fails closed. Records carry masked client IPs and
the SHA-256 of an issued URL, never the URL itself. ``canonical_bytes`` is the
stable serialisation a later hash chain or Merkle tree hashes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from gateway.netaddr import mask_ip


class AuditEvent(StrEnum):
    URL_ISSUED = "url:issued"
    URL_DENIED = "url:denied"
    KEY_CREATED = "key:created"
    KEY_REVOKED = "key:revoked"
    KEY_ROTATED = "key:rotated"
    KEY_LINKED = "key:linked"
    KEY_EXPORTED = "key:exported"
    PRINCIPAL_CREATED = "principal:created"
    PRINCIPAL_DISABLED = "principal:disabled"
    GRANT_CREATED = "grant:created"
    GRANT_REVOKED = "grant:revoked"
    MEDIA_PUT = "media:put"
    MEDIA_DELETED = "media:deleted"


@dataclass(frozen=True)
class AuditRecord:
    time: float
    event: AuditEvent
    actor: str
    request_id: str | None = None
    kid: str | None = None
    media_id: str | None = None
    rendition: str | None = None
    subject: str | None = None
    url_sha256: str | None = None
    expires_at: int | None = None
    decision: str | None = None
    reason: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["event"] = self.event.value
        data["detail"] = dict(self.detail)
        return data

    def canonical_bytes(self) -> bytes:
        data = self.to_dict()
        data.pop("seq")
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class RequestContext:
    """Who asked, from where: what every record about a request shares."""

    actor: str
    request_id: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None


_MAX_USER_AGENT = 256


def url_digest(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def _request_fields(ctx: RequestContext) -> dict[str, Any]:
    agent = ctx.user_agent[:_MAX_USER_AGENT] if ctx.user_agent else None
    return {
        "actor": ctx.actor,
        "request_id": ctx.request_id,
        "client_ip": mask_ip(ctx.client_ip),
        "user_agent": agent,
    }


def issued(
    ctx: RequestContext,
    *,
    now: float,
    kid: str,
    media_id: str,
    rendition: str,
    subject: str | None,
    url: str,
    expires_at: int,
    reason: str,
    detail: Mapping[str, Any] | None = None,
) -> AuditRecord:
    return AuditRecord(
        time=now,
        event=AuditEvent.URL_ISSUED,
        kid=kid,
        media_id=media_id,
        rendition=rendition,
        subject=subject,
        url_sha256=url_digest(url),
        expires_at=expires_at,
        decision="allow",
        reason=reason,
        detail=detail or {},
        **_request_fields(ctx),
    )


def denied(
    ctx: RequestContext,
    *,
    now: float,
    media_id: str,
    rendition: str,
    subject: str | None,
    reason: str,
) -> AuditRecord:
    return AuditRecord(
        time=now,
        event=AuditEvent.URL_DENIED,
        media_id=media_id,
        rendition=rendition,
        subject=subject,
        decision="deny",
        reason=reason,
        **_request_fields(ctx),
    )


def change(
    ctx: RequestContext,
    event: AuditEvent,
    *,
    now: float,
    kid: str | None = None,
    media_id: str | None = None,
    subject: str | None = None,
    reason: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditRecord:
    """A key, principal, grant or media change."""
    return AuditRecord(
        time=now,
        event=event,
        kid=kid,
        media_id=media_id,
        subject=subject,
        reason=reason,
        detail=detail or {},
        **_request_fields(ctx),
    )
