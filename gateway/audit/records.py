"""Audit records: a closed set of event tags and pure builders for each record.

A record is built before anything is returned to a caller; the store appends
it durably or the request fails closed. Records carry masked client IPs and
the SHA-256 of an issued URL, never the URL itself. ``leaf_bytes`` is the
stable serialisation the Merkle log hashes (RFC 6962 leaf), position included,
so a record moved to another position no longer matches its leaf.

Retention classes: ``engineer`` (principal, credential, key, grant and media changes, and
anything an engineer signs: six years) and ``viewer`` (viewer technical data:
90 days, 30 after the subject is erased).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from gateway.netaddr import mask_ip

ENGINEER = "engineer"
VIEWER = "viewer"
RETENTION_SECONDS = {ENGINEER: 6 * 365 * 86400, VIEWER: 90 * 86400}
ERASED_VIEWER_RETENTION = 30 * 86400


class AuditEvent(StrEnum):
    URL_ISSUED = "url:issued"
    URL_DENIED = "url:denied"
    URL_REDEEMED = "url:redeemed"
    KEY_CREATED = "key:created"
    KEY_REVOKED = "key:revoked"
    KEY_ROTATED = "key:rotated"
    KEY_LINKED = "key:linked"
    KEY_EXPORTED = "key:exported"
    PRINCIPAL_CREATED = "principal:created"
    PRINCIPAL_DISABLED = "principal:disabled"
    CREDENTIAL_CREATED = "credential:created"
    CREDENTIAL_REVOKED = "credential:revoked"
    GRANT_CREATED = "grant:created"
    GRANT_REVOKED = "grant:revoked"
    MEDIA_PUT = "media:put"
    MEDIA_DELETED = "media:deleted"
    MEDIA_LINKS_REVOKED = "media:links_revoked"
    SUBJECT_EXPORTED = "subject:exported"
    SUBJECT_ERASED = "subject:erased"
    AUDIT_PRUNED = "audit:pruned"


VIEWER_EVENTS = frozenset({AuditEvent.URL_ISSUED, AuditEvent.URL_DENIED, AuditEvent.URL_REDEEMED})


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
    retention: str = ENGINEER
    # Personal fields (subject, IP, user agent) sealed under the subject's key; see gateway.audit.privacy.
    personal: bytes | None = None
    seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        # A shallow copy: dataclasses.asdict deep-copies and was most of issuance's audit cost.
        data = {f.name: getattr(self, f.name) for f in _FIELDS}
        data["event"] = self.event.value
        # The store keeps time as REAL; an int here would hash as "5" before and "5.0" after a round trip.
        data["time"] = float(self.time)
        data["detail"] = dict(self.detail)
        data["personal"] = None if self.personal is None else base64.b64encode(self.personal).decode()
        return data

    def leaf_bytes(self, seq: int) -> bytes:
        """What the Merkle log hashes for this record at position ``seq``."""
        data = self.to_dict()
        data["seq"] = seq
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def leaf_parts(self) -> tuple[bytes, bytes]:
        """``leaf_bytes`` split around the position: before + str(seq) + after == leaf_bytes(seq).

        Lets the expensive serialisation happen before the write transaction, which then
        only splices in the position it assigns.
        """
        data = self.to_dict()
        data.pop("seq")
        head = {k: v for k, v in data.items() if k < "seq"}
        tail = {k: v for k, v in data.items() if k > "seq"}
        dump = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
        before = dump(head)[:-1] + (',"seq":' if head else '"seq":')
        after = ("," + dump(tail)[1:]) if tail else "}"
        return before.encode("utf-8"), after.encode("utf-8")


_FIELDS = fields(AuditRecord)


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
    retention: str = VIEWER,
) -> AuditRecord:
    return AuditRecord(
        time=now,
        event=AuditEvent.URL_ISSUED,
        retention=retention,
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
    retention: str = VIEWER,
) -> AuditRecord:
    return AuditRecord(
        time=now,
        event=AuditEvent.URL_DENIED,
        retention=retention,
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


def redeemed(
    ctx: RequestContext,
    *,
    now: float,
    kid: str,
    url: str,
    expires_at: int,
    profile: str,
) -> AuditRecord:
    """A signed URL accepted at the verifier (the first time from each network; see gateway.audit.redemptions)."""
    return AuditRecord(
        time=now,
        event=AuditEvent.URL_REDEEMED,
        kid=kid,
        url_sha256=url_digest(url),
        expires_at=expires_at,
        decision="allow",
        retention=VIEWER,
        detail={"profile": profile},
        **_request_fields(ctx),
    )
