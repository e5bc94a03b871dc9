"""The compromise drill: what did a key sign, was it used from elsewhere, who is affected.

``build_report`` is pure: it takes the key's issuances and redemptions (with
their masked networks) and the owners of the media involved. A redemption is
"outsider" when no issuance of the same token (key id and expiry) was made for
a client on the same network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from gateway.audit.batch import unbatched
from gateway.audit.log import AuditLog
from gateway.audit.records import BOUND_TO, VIEWER_NETWORK, AuditEvent, AuditRecord
from gateway.errors import NotFound
from gateway.store.base import AuditQuery, Store

_PAGE = 1000


@dataclass(frozen=True)
class Use:
    seq: int
    time: float
    event: str
    expires_at: int | None
    network: str | None
    media_id: str | None = None
    rendition: str | None = None
    user_agent: str | None = None
    # An issuance's other networks: the viewer's a backend asserted, the URL's binding.
    viewer_network: str | None = None
    bound_to: str | None = None
    url_sha256: str | None = None
    # Its place in a batch record's list of URLs (``url:issued_batch``); None for a record of its own.
    position: int | None = None


def build_report(
    kid: str,
    issuances: Sequence[Use],
    redemptions: Sequence[Use],
    owners: Mapping[str, str | None],
    since: float | None = None,
) -> dict[str, Any]:
    issued_networks: dict[int | None, set[str | None]] = {}
    for use in issuances:
        issued_networks.setdefault(use.expires_at, set()).update({use.network, use.viewer_network, use.bound_to})
    outsiders = [r for r in redemptions if r.network not in issued_networks.get(r.expires_at, set())]
    times = [u.time for u in (*issuances, *redemptions)]
    affected = sorted({owner for m in {u.media_id for u in issuances if u.media_id} if (owner := owners.get(m))})
    unknown = sorted(m for m in {u.media_id for u in issuances if u.media_id} if owners.get(m) is None)
    return {
        "kid": kid,
        "since": since,
        "first_use": min(times, default=None),
        "last_use": max(times, default=None),
        "issuances": [asdict(u) for u in issuances],
        "redemptions": [asdict(u) for u in redemptions],
        "outsider_redemptions": [asdict(u) for u in outsiders],
        "affected_subjects": affected,
        "media_with_unknown_owner": unknown,
    }


async def _use(record: AuditRecord, audit_log: AuditLog) -> Use:
    fields: dict[str, Any] = {"client_ip": record.client_ip, "user_agent": record.user_agent, **record.detail}
    personal = await audit_log.reveal(record)
    if personal is not None:
        fields = personal
    return _use_of(record, fields)


def _use_of(record: AuditRecord, fields: dict[str, Any], position: int | None = None) -> Use:
    return Use(
        seq=record.seq or 0, time=record.time, event=record.event.value, expires_at=record.expires_at,
        network=fields.get("client_ip"), media_id=record.media_id, rendition=record.rendition,
        user_agent=fields.get("user_agent"), viewer_network=fields.get(VIEWER_NETWORK), bound_to=fields.get(BOUND_TO),
        url_sha256=record.url_sha256, position=position,
    )  # fmt: skip


async def _batch_uses(record: AuditRecord, kid: str, audit_log: AuditLog) -> list[Use]:
    """The URLs of a batch record ``kid`` signed, each an issuance (its personal fields revealed once)."""
    personal = await audit_log.reveal(record)
    uses = []
    for position, url in enumerate(unbatched(record, personal)):
        if url.kid == kid:
            fields = {"client_ip": url.client_ip, "user_agent": url.user_agent, **url.detail}
            uses.append(_use_of(url.evolve(event=AuditEvent.URL_ISSUED_BATCH), fields, position))
    return uses


async def incident_report(store: Store, audit_log: AuditLog, kid: str, since: float | None) -> dict[str, Any]:
    """Everything the log holds about ``kid``, read page by page. NotFound for a kid the gateway never
    had: an empty report for a mistyped id would read as "this key was never used"."""
    if await store.keys.get(kid) is None:
        raise NotFound(f"no key {kid!r}: nothing to report (keys list shows every key id)")
    issuances: list[Use] = []
    redemptions: list[Use] = []
    after = 0
    while page := await store.audit.search(AuditQuery(kid=kid, since=since, after_seq=after, limit=_PAGE)):
        for record in page:
            if record.event is AuditEvent.URL_ISSUED:
                issuances.append(await _use(record, audit_log))
            elif record.event is AuditEvent.URL_ISSUED_BATCH:  # found by its child rows (audit_urls)
                issuances += await _batch_uses(record, kid, audit_log)
            elif record.event is AuditEvent.URL_REDEEMED:
                redemptions.append(await _use(record, audit_log))
        after = page[-1].seq or after
    owners: dict[str, str | None] = {}
    for media_id in {u.media_id for u in issuances if u.media_id}:
        item = await store.media.get(media_id)
        owners[media_id] = item.owner if item else None
    return build_report(kid, issuances, redemptions, owners, since)
