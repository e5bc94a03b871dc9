"""Audit records: a closed set of event tags and pure builders for each record.

A record is built before anything is returned to a caller; the store appends
it durably or the request fails closed. Records carry masked client IPs and
the SHA-256 of an issued URL, never the URL itself.

``leaf_bytes`` is what the Merkle log hashes: its layout and the canonical JSON of the body are
``gateway.audit.leaf``'s.

Retention classes: ``engineer`` (principal, credential, key, grant and media changes, and
anything an engineer signs: six years) and ``viewer`` (viewer technical data:
90 days, 30 after the subject is erased).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from gateway.audit.leaf import canonical_json, fast_bytes, fast_bytes_with, json_text, leaf_after_seq, leaf_at
from gateway.frozen import quick_init
from gateway.netaddr import mask_ip, mask_network

ENGINEER = "engineer"
VIEWER = "viewer"
RETENTION_SECONDS = {ENGINEER: 6 * 365 * 86400, VIEWER: 90 * 86400}
ERASED_VIEWER_RETENTION = 30 * 86400


class AuditEvent(StrEnum):
    URL_ISSUED = "url:issued"
    # Two or more URLs one call issued to one viewer: one record listing each (``batch``; docs/audit.md).
    URL_ISSUED_BATCH = "url:issued_batch"
    URL_DENIED = "url:denied"
    URL_REDEEMED = "url:redeemed"
    KEY_CREATED = "key:created"
    KEY_REVOKED = "key:revoked"
    KEY_ROTATED = "key:rotated"
    KEY_LINKED = "key:linked"
    KEY_EXPORTED = "key:exported"
    # A key's public half put into / taken out of a CDN's key group (gateway.cdn), or the attempt failing.
    KEY_PUBLISHED = "key:published"
    KEY_UNPUBLISHED = "key:unpublished"
    KEY_UNPUBLISH_FAILED = "key:unpublish_failed"
    MASTER_KEY_REWRAPPED = "master_key:rewrapped"
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
    # Operations (gateway.limits, gateway.alerts): an abuse limit tripped (one record per bucket per minute);
    # suspicious use detected as it happens; each webhook delivery attempt; incident notifications, the
    # subjects they name (sealed, resolvable by the receiver) and each resolution.
    LIMIT_EXCEEDED = "limit:exceeded"
    ALERT_OUTSIDER_USE = "alert:outsider_use"
    ALERT_UNUSUAL_USE = "alert:unusual_use"
    ALERT_RATE_SPIKE = "alert:rate_spike"
    WEBHOOK_DELIVERED = "webhook:delivered"
    WEBHOOK_FAILED = "webhook:failed"
    WEBHOOK_ABANDONED = "webhook:abandoned"
    INCIDENT_REPORTED = "incident:reported"
    INCIDENT_NOTIFIED = "incident:notified"
    INCIDENT_SUBJECT_NAMED = "incident:subject_named"
    SUBJECT_RESOLVED = "subject:resolved"


VIEWER_EVENTS = frozenset(
    {
        AuditEvent.URL_ISSUED,
        AuditEvent.URL_ISSUED_BATCH,
        AuditEvent.URL_DENIED,
        AuditEvent.URL_REDEEMED,
        AuditEvent.INCIDENT_SUBJECT_NAMED,
    }
)


@quick_init
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

    def evolve(self, **changes: Any) -> AuditRecord:
        """``dataclasses.replace`` without re-running ``__init__`` (which costs more than sealing the record:
        a frozen dataclass sets each of its 18 fields through ``object.__setattr__``). ``changes`` must name
        fields: an unknown one raises TypeError as ``replace`` would."""
        unknown = changes.keys() - _FIELD_NAMES
        if unknown:
            raise TypeError(f"AuditRecord has no field {sorted(unknown)[0]!r}")
        copy = object.__new__(AuditRecord)
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(changes)
        return copy

    def at(self, seq: int) -> AuditRecord:
        """``evolve(seq=seq)`` without checking names it does not take: the copy of every record a store writes
        that it hands on (``rows.log_entries``), 1.4 -> 0.5 µs."""
        copy = object.__new__(AuditRecord)
        state = copy.__dict__
        state.update(self.__dict__)
        state["seq"] = seq
        return copy

    def to_dict(self) -> dict[str, Any]:
        # A shallow copy: dataclasses.asdict deep-copies and was most of issuance's audit cost. The instance's
        # own dict when it holds exactly the fields in field order, as every way of making a record here leaves
        # it (__init__, evolve): one copy, not a getattr per field (1.6 -> 0.6 µs; twice per record).
        state = self.__dict__
        data = dict(state) if tuple(state) == _FIELD_ORDER else {name: getattr(self, name) for name in _FIELD_ORDER}
        data["event"] = self.event.value
        # The store keeps time as REAL; an int here would hash as "5" before and "5.0" after a round trip.
        data["time"] = float(self.time)
        data["detail"] = dict(self.detail)
        data["personal"] = None if self.personal is None else base64.b64encode(self.personal).decode()
        return data

    def body_sha256(self) -> bytes:
        """SHA-256 of the record's canonical JSON without its position."""
        data = self.to_dict()
        data.pop("seq")
        return hashlib.sha256(canonical_json(data)).digest()

    def leaf_bytes(self, seq: int) -> bytes:
        """What the Merkle log hashes for this record at position ``seq``."""
        return leaf_at(seq, self.leaf_parts()[1])

    def leaf_parts(self) -> tuple[bytes, bytes]:
        """(body hash, the leaf after its position): ``leaf_at(seq, after) == leaf_bytes(seq)``.

        Lets the expensive serialisation and hashing happen before the write
        transaction, which then only puts in the position it assigns.
        """
        body = self.body_sha256()
        return body, leaf_after_seq(float(self.time), self.retention, self.event.value, body)

    def stored_parts(self) -> tuple[bytes, bytes, str | None]:
        """``leaf_parts`` and the ``detail`` column's JSON text from the same pass: when msgspec wrote the body
        (the record holds only what both encoders spell alike), its encoding of ``detail`` is the same text as
        ``json``'s compact one, a few µs where ``json.dumps`` of a batch's list of 100 URLs takes 300; else
        None (the store encodes it as before). ``detail`` is encoded once and put in the body as it is: msgspec
        writes a nested mapping the same wherever it stands (a batch's list of 100 URLs is most of the body)."""
        data = self.to_dict()
        data.pop("seq")
        detail = fast_bytes(data["detail"])
        fast = None if detail is None else fast_bytes_with(data, detail)
        text = fast if fast is not None else json_text(data)
        body = hashlib.sha256(text).digest()
        after = leaf_after_seq(float(self.time), self.retention, self.event.value, body)
        return body, after, None if fast is None or detail is None else detail.decode("ascii")


_FIELDS = fields(AuditRecord)
_FIELD_ORDER = tuple(f.name for f in _FIELDS)
_FIELD_NAMES = frozenset(_FIELD_ORDER)


@quick_init
@dataclass(frozen=True)
class RequestContext:
    """Who asked, from where: what every record about a request shares.

    ``client_ip`` is always the caller's own address, resolved from the connection (and trusted proxies):
    never something the caller says. ``viewer_ip`` is the viewer's address a backend with ``sign:on-behalf``
    asserts for the viewer it speaks for; it is recorded beside, never instead.
    """

    actor: str
    request_id: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    viewer_ip: str | None = None


MAX_USER_AGENT = 256  # what a record keeps of a user agent


def url_digest(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def request_fields(ctx: RequestContext) -> dict[str, Any]:
    agent = ctx.user_agent[:MAX_USER_AGENT] if ctx.user_agent else None
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
    bound_to: str | None = None,
) -> AuditRecord:
    """``bound_to``: the address or network the URL is bound to (its client IP), recorded masked.

    Built field by field, without ``request_fields`` and ``_networks``' dicts merged on the way: one of these per
    sign request (``gateway.audit.batch``), on the event loop."""
    kept = dict(detail or {})
    viewer = mask_ip(ctx.viewer_ip)
    if viewer is not None:
        kept[VIEWER_NETWORK] = viewer
    bound = mask_network(bound_to) if bound_to else None
    if bound is not None:
        kept[BOUND_TO] = bound
    agent = ctx.user_agent[:MAX_USER_AGENT] if ctx.user_agent else None
    return AuditRecord(
        time=now, event=AuditEvent.URL_ISSUED, actor=ctx.actor, request_id=ctx.request_id, kid=kid,
        media_id=media_id, rendition=rendition, subject=subject, url_sha256=url_digest(url), expires_at=expires_at,
        decision="allow", reason=reason, client_ip=mask_ip(ctx.client_ip), user_agent=agent, detail=kept,
        retention=retention,
    )  # fmt: skip


# Networks an issuance record keeps in ``detail`` besides the caller's own (``client_ip``): personal data of
# the viewer, so sealed with the other personal fields when the record names one (gateway.audit.privacy).
VIEWER_NETWORK = "viewer_network"
BOUND_TO = "bound_to"
NETWORK_DETAIL = (VIEWER_NETWORK, BOUND_TO)


def _networks(ctx: RequestContext, bound_to: str | None) -> dict[str, str]:
    found = {VIEWER_NETWORK: mask_ip(ctx.viewer_ip), BOUND_TO: mask_network(bound_to)}
    return {name: value for name, value in found.items() if value is not None}


def issued_networks(record: AuditRecord, personal: Mapping[str, Any] | None = None) -> set[str]:
    """Every masked network an issuance went to: the caller's, the viewer's it asserted, the URL's binding."""
    fields: Mapping[str, Any] = personal if personal is not None else {"client_ip": record.client_ip,
                                                                      **record.detail}  # fmt: skip
    found = [fields.get("client_ip"), *(fields.get(name) for name in NETWORK_DETAIL)]
    return {network for network in found if isinstance(network, str)}


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
        detail=_networks(ctx, None),
        **request_fields(ctx),
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
        **request_fields(ctx),
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
    """A signed URL accepted at the verifier (the first time from each network; see gateway.audit.redemptions).

    Never with the user agent: a redemption names no subject to seal it under, so it stays in the raw log
    (kept 7 days), not in the audit log.
    """
    return AuditRecord(
        time=now, event=AuditEvent.URL_REDEEMED, actor=ctx.actor, detail={"profile": profile},
        request_id=ctx.request_id, kid=kid, url_sha256=url_digest(url), expires_at=expires_at, decision="allow",
        client_ip=mask_ip(ctx.client_ip), retention=VIEWER,
    )  # fmt: skip
