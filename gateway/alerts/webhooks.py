"""Webhook events: which audit records become events, their JSON bodies, and how deliveries are signed.

Pure: no I/O. Every event is an audit record: its id is ``evt_<audit seq>``
(stable across retries and replicas, so a receiver deduplicates on it, and can
find the record in the log), its type the record's event with a dot.

Signing follows the scheme Stripe uses (and GitHub's and Slack's differ from
only in header names): the header

    Gateway-Signature: t=1800000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd

where ``v1`` is the hex HMAC-SHA256, under the endpoint's secret, of the
timestamp, a dot and the exact body bytes. During a secret rotation a second
``v1`` is sent, made with the previous secret. A receiver recomputes it over
the raw body, compares in constant time, and refuses a timestamp more than
five minutes away from its clock (a replayed delivery): ``verify_signature``
does exactly that, and docs/operations.md shows it without this package.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.audit.records import AuditEvent, AuditRecord

SIGNATURE_HEADER = "Gateway-Signature"
EVENT_HEADER = "Gateway-Event"
EVENT_ID_HEADER = "Gateway-Event-Id"
TOLERANCE = 300
RESOLVE = "POST /v1/subjects/resolve"
MAX_DELAY = 3600.0

# Audit event -> webhook event type: exactly these records are delivered.
EVENTS: Mapping[AuditEvent, str] = {
    AuditEvent.KEY_REVOKED: "key.revoked",
    AuditEvent.PRINCIPAL_DISABLED: "principal.disabled",
    AuditEvent.MEDIA_LINKS_REVOKED: "link.revoked",
    AuditEvent.ALERT_OUTSIDER_USE: "alert.outsider_use",
    AuditEvent.ALERT_UNUSUAL_USE: "alert.unusual_use",
    AuditEvent.ALERT_RATE_SPIKE: "alert.rate_spike",
    AuditEvent.INCIDENT_REPORTED: "incident.reported",
    AuditEvent.INCIDENT_NOTIFIED: "incident.notify",
}
EVENT_TYPES = frozenset(EVENTS.values())


def event_id(seq: int) -> str:
    return f"evt_{seq}"


def body(record: AuditRecord, seq: int, principal_id: str | None = None) -> str:
    """The JSON body delivered for ``record`` at log position ``seq``."""
    data: dict[str, Any] = {"actor": record.actor}
    for name in ("kid", "media_id", "reason", "expires_at"):
        if getattr(record, name) is not None:
            data[name] = getattr(record, name)
    if record.event is AuditEvent.PRINCIPAL_DISABLED:
        data["principal_id"] = record.subject
    elif principal_id is not None:
        data["principal_id"] = principal_id
    if record.client_ip is not None:
        data["network"] = record.client_ip  # masked: a /24 or /48
    data.update(record.detail)
    if "affected_subjects" in data:
        data["resolve"] = RESOLVE
    event = {"id": event_id(seq), "type": EVENTS[record.event], "created": record.time, "audit_seq": seq, "data": data}
    return json.dumps(event, sort_keys=True, separators=(",", ":"))


def sign(secrets: Sequence[bytes], timestamp: int, payload: bytes) -> str:
    """The signature header's value: one ``v1`` per secret (the current one first)."""
    signed = str(timestamp).encode() + b"." + payload
    return ",".join([f"t={timestamp}", *(f"v1={hmac.new(s, signed, hashlib.sha256).hexdigest()}" for s in secrets)])


def verify_signature(header: str, payload: bytes, secret: bytes, now: float, tolerance: int = TOLERANCE) -> bool:
    """What a receiver does: a ``v1`` matching our recomputation, and a timestamp within ``tolerance``."""
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in parts if k == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit() or abs(now - int(stamps[0])) > tolerance:
        return False
    expected = hmac.new(secret, stamps[0].encode() + b"." + payload, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, v) for k, v in parts if k == "v1")


def backoff(attempts: int, base: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: base, 2 base, 4 base, ... at most 1 h."""
    return min(MAX_DELAY, base * 2.0 ** (attempts - 1))


def subscribed(events: Sequence[str], event_type: str) -> bool:
    return not events or event_type in events
