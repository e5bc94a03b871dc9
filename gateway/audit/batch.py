"""Batch records: the URLs one call issued, as one ``url:issued_batch`` record (docs/audit.md, "Batch records").

A call that issues two or more URLs for one viewer writes one record whose body lists each URL (its digest,
media, rendition, expiry, key, reason and issuance details), so a batch of 100 costs one leaf hash, one sealed
personal-field blob and one audit row. The list is in the body: the Merkle leaf covers it. The child table
``audit_urls`` indexes each URL (``batch_urls`` gives its rows); ``unbatched`` reads each URL back as the
``url:issued`` record it stands for, for the readers that count, index or report per URL. Pure: no I/O.

The issuer builds a call's records with ``call_records`` from what it issued (``IssuedUrl``), the request's
fields worked out once rather than a ``url:issued`` record built per URL and folded by ``batched``: the same
records (tests/test_batch_issuance.py holds the two to equality).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from gateway.audit import records
from gateway.audit.records import BOUND_TO, VIEWER_NETWORK, AuditEvent, AuditRecord, RequestContext
from gateway.netaddr import mask_ip, mask_network

# What a batch record keeps of each URL (``detail["urls"]``, in the order issued): the indexed columns a single
# record has (``BATCH_COLUMNS``, also in the child table ``audit_urls``), then what differs per URL in ``detail``.
URLS = "urls"
BATCH_COLUMNS = ("url_sha256", "media_id", "rendition", "expires_at", "kid")
_ENTRY_DETAIL = ("issuance_id", "profile", "dialect", "grant_id")
_ENTRY_KEYS = frozenset(_ENTRY_DETAIL)


def batched(records: Sequence[AuditRecord]) -> list[AuditRecord]:
    """A call's records with its issuances folded into one ``batch`` record (where the first was), when there are
    two or more; a call that issued one URL keeps the single ``url:issued`` record, byte for byte."""
    issued = [r for r in records if r.event is AuditEvent.URL_ISSUED]
    if len(issued) < 2:
        return list(records)
    first = issued[0]
    return [batch(issued) if r is first else r for r in records if r.event is not AuditEvent.URL_ISSUED or r is first]


class IssuedUrl(NamedTuple):
    """One URL a call issued: what ``records.issued`` is given for it besides the call's own fields."""

    kid: str
    media_id: str
    rendition: str
    url: str
    expires_at: int
    reason: str
    detail: Mapping[str, Any]
    bound_to: str | None = None


def call_records(
    ctx: RequestContext, now: float, subject: str | None, retention: str, logged: Sequence[AuditRecord | IssuedUrl]
) -> list[AuditRecord]:
    """``batched`` of the call's records, ``records.issued`` standing for each ``IssuedUrl``, without building a
    record per URL: the masked addresses and user agent are worked out once per call, not once per URL."""
    urls = [e for e in logged if isinstance(e, IssuedUrl)]
    if len(urls) < 2:
        return [_single(ctx, now, subject, retention, e) if isinstance(e, IssuedUrl) else e for e in logged]
    record = _batch_of(ctx, now, subject, retention, urls)
    found: list[AuditRecord] = []
    for entry in logged:
        if not isinstance(entry, IssuedUrl):
            found.append(entry)
        elif entry is urls[0]:  # the batch stands where its first URL was
            found.append(record)
    return found


def _single(ctx: RequestContext, now: float, subject: str | None, retention: str, url: IssuedUrl) -> AuditRecord:
    return records.issued(
        ctx, now=now, kid=url.kid, media_id=url.media_id, rendition=url.rendition, subject=subject, url=url.url,
        expires_at=url.expires_at, reason=url.reason, detail=url.detail, retention=retention, bound_to=url.bound_to,
    )  # fmt: skip


def _batch_of(
    ctx: RequestContext, now: float, subject: str | None, retention: str, urls: Sequence[IssuedUrl]
) -> AuditRecord:
    """What ``batch`` makes of the ``url:issued`` records of ``urls``, built from them directly."""
    detail: dict[str, Any] = {URLS: [_url_entry(url) for url in urls]}
    viewer = mask_ip(ctx.viewer_ip)
    if viewer is not None:
        detail[VIEWER_NETWORK] = viewer
    bound = [mask_network(url.bound_to) for url in urls]
    if any(b is not None for b in bound):
        detail[BOUND_TO] = bound
    fields = records.request_fields(ctx)
    return AuditRecord(
        time=now, event=AuditEvent.URL_ISSUED_BATCH, actor=fields["actor"], request_id=fields["request_id"],
        subject=subject, decision="allow", client_ip=fields["client_ip"], user_agent=fields["user_agent"],
        detail=detail, retention=retention,
    )  # fmt: skip


def _url_entry(url: IssuedUrl) -> dict[str, Any]:
    """``_entry`` of the URL's ``url:issued`` record, in the same key order when the issuer's ``detail`` lists
    its names in ``_ENTRY_DETAIL``'s order, as it does (the leaf sorts the keys: equal entries, equal bytes)."""
    entry: dict[str, Any] = {
        "url_sha256": records.url_digest(url.url), "media_id": url.media_id, "rendition": url.rendition,
        "expires_at": url.expires_at, "kid": url.kid, "reason": url.reason,
    }  # fmt: skip
    detail = url.detail
    if detail.keys() <= _ENTRY_KEYS:  # nothing else in it: one copy, not a lookup per name
        entry.update(detail)
    else:
        entry |= {name: detail[name] for name in _ENTRY_DETAIL if name in detail}
    return entry


def batch(issued: Sequence[AuditRecord]) -> AuditRecord:
    """One record for ``issued`` (one request: same time, caller, viewer and class). The networks each URL is
    bound to are one list beside the entries (``bound_to``), personal data sealed with the other fields."""
    first = issued[0]
    detail: dict[str, Any] = {URLS: [_entry(r) for r in issued]}
    if VIEWER_NETWORK in first.detail:
        detail[VIEWER_NETWORK] = first.detail[VIEWER_NETWORK]
    bound = [r.detail.get(BOUND_TO) for r in issued]
    if any(b is not None for b in bound):
        detail[BOUND_TO] = bound
    return AuditRecord(
        time=first.time, event=AuditEvent.URL_ISSUED_BATCH, actor=first.actor, request_id=first.request_id,
        subject=first.subject, decision="allow", client_ip=first.client_ip, user_agent=first.user_agent,
        detail=detail, retention=first.retention,
    )  # fmt: skip


def _entry(record: AuditRecord) -> dict[str, Any]:
    entry = {name: getattr(record, name) for name in BATCH_COLUMNS}
    entry["reason"] = record.reason
    entry |= {name: record.detail[name] for name in _ENTRY_DETAIL if name in record.detail}
    return entry


def batch_urls(record: AuditRecord) -> list[tuple[Any, ...]]:
    """A batch record's URLs as its child rows hold them: (position, *BATCH_COLUMNS); none for any other record.

    A batch record whose list is malformed (altered by hand) gives what it can read: ``audit verify`` then finds
    its contents or its child rows do not match."""
    if record.event is not AuditEvent.URL_ISSUED_BATCH:
        return []
    entries = record.detail.get(URLS)
    if not isinstance(entries, list):
        return []
    # map over the bound get: no generator per URL (the writer calls this for every URL of every batch).
    return [(i, *map(e.get, BATCH_COLUMNS)) for i, e in enumerate(entries) if type(e) is dict or isinstance(e, Mapping)]


def unbatched(record: AuditRecord, personal: Mapping[str, Any] | None = None) -> list[AuditRecord]:
    """Each URL of a batch record as the ``url:issued`` record it stands for (the record itself for any other),
    with its position, for readers that count, index or report per URL. ``personal``: the batch's revealed
    personal fields (``AuditLog.reveal``), whose ``bound_to`` is a list."""
    if record.event is not AuditEvent.URL_ISSUED_BATCH:
        return [record]
    fields: Mapping[str, Any] = personal if personal is not None else {
        "client_ip": record.client_ip, "user_agent": record.user_agent, **record.detail}  # fmt: skip
    bound = fields.get(BOUND_TO)
    found: list[AuditRecord] = []
    for position, entry in enumerate(record.detail.get(URLS) or []):
        detail = {name: entry[name] for name in _ENTRY_DETAIL if name in entry}
        networks = {
            VIEWER_NETWORK: fields.get(VIEWER_NETWORK),
            BOUND_TO: bound[position] if isinstance(bound, list) and position < len(bound) else None,
        }
        detail |= {name: value for name, value in networks.items() if value is not None}  # fmt: skip
        found.append(record.evolve(
            event=AuditEvent.URL_ISSUED, reason=entry.get("reason"), detail=detail,
            client_ip=fields.get("client_ip"), user_agent=fields.get("user_agent"),
            **{name: entry.get(name) for name in BATCH_COLUMNS},
        ))  # fmt: skip
    return found
