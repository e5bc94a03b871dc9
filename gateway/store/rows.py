"""Conversions between domain values and flat database rows (shared by every SQL store)."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from gateway.audit.batch import BATCH_COLUMNS, batch_urls
from gateway.audit.leaf import leaf_at
from gateway.audit.merkle import Frontier, leaf_hash
from gateway.audit.records import AuditEvent, AuditRecord
from gateway.model import (
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
)
from gateway.store.base import AuditQuery, Baseline, Checkpoint, LogEntry, OutboxEntry, RawEntry, RevokedPath


class Row(Protocol):
    """What every driver's row offers: access by column name."""

    def __getitem__(self, key: str, /) -> Any: ...


PRINCIPAL_COLUMNS = ("id", "kind", "permissions", "renditions", "created_at", "disabled_at")
CREDENTIAL_COLUMNS = ("id", "principal_id", "public_key", "created_at", "revoked_at")
KEY_COLUMNS = (
    "kid", "principal_id", "algorithm", "public_key", "sealed_private", "created_at",
    "not_after", "revoked_at", "revoked_reason", "revoked_by", "last_used_at", "external_id",
)  # fmt: skip
MEDIA_COLUMNS = (
    "id", "owner", "workspace", "visibility", "paths", "prefixes", "updated_at", "deleted_at", "links_revoked_at",
)  # fmt: skip
MEDIA_PATH_COLUMNS = ("path", "media_id", "is_prefix")
GRANT_COLUMNS = (
    "id", "principal_id", "media_id", "reason", "created_by", "created_at", "expires_at",
    "revoked_at",
)  # fmt: skip
AUDIT_COLUMNS = (
    "time", "event", "actor", "request_id", "kid", "media_id", "rendition", "subject",
    "url_sha256", "expires_at", "decision", "reason", "client_ip", "user_agent", "detail",
    "retention", "personal",
)  # fmt: skip
# Cleared when a record is pruned; seq, time, event, retention, body_sha256 and leaf_hash stay: the leaf's input.
PRUNABLE_COLUMNS = (
    "actor", "request_id", "kid", "media_id", "rendition", "subject", "url_sha256", "expires_at",
    "decision", "reason", "client_ip", "user_agent", "detail", "personal",
)  # fmt: skip


def principal_values(p: Principal) -> tuple[Any, ...]:
    renditions = None if p.renditions is None else json.dumps(sorted(p.renditions))
    perms = json.dumps(sorted(p.permissions))
    return (p.id, p.kind.value, perms, renditions, p.created_at, p.disabled_at)


@functools.lru_cache(maxsize=256)
def _permissions(text: str) -> frozenset[Permission]:
    """One shared set per distinct spelling: a few kinds of principal, thousands of principals."""
    return frozenset(Permission(p) for p in json.loads(text))


@functools.lru_cache(maxsize=64)
def _renditions(text: str) -> frozenset[Rendition]:
    return frozenset(Rendition(r) for r in json.loads(text))


def principal_from(row: Row) -> Principal:
    renditions = row["renditions"]
    return Principal(
        id=row["id"],
        kind=PrincipalKind(row["kind"]),
        permissions=_permissions(row["permissions"]),
        renditions=None if renditions is None else _renditions(renditions),
        created_at=row["created_at"],
        disabled_at=row["disabled_at"],
    )


def credential_values(c: Credential) -> tuple[Any, ...]:
    return (c.id, c.principal_id, c.public_key, c.created_at, c.revoked_at)


def credential_from(row: Row) -> Credential:
    return Credential(**{k: row[k] for k in CREDENTIAL_COLUMNS})


def key_values(k: SigningKey) -> tuple[Any, ...]:
    return (
        k.kid, k.principal_id, k.algorithm.value, k.public_key, k.sealed_private, k.created_at,
        k.not_after, k.revoked_at, k.revoked_reason, k.revoked_by, k.last_used_at, k.external_id,
    )  # fmt: skip


def key_from(row: Row) -> SigningKey:
    data = {k: row[k] for k in KEY_COLUMNS}
    data["algorithm"] = KeyAlgorithm(data["algorithm"])
    for blob in ("public_key", "sealed_private"):
        data[blob] = None if data[blob] is None else bytes(data[blob])
    return SigningKey(**data)


def _renditions_json(paths: Mapping[Rendition, str]) -> str:
    return json.dumps({r.value: p for r, p in sorted(paths.items())})


def media_values(m: MediaItem) -> tuple[Any, ...]:
    return (
        m.id, m.owner, m.workspace, m.visibility.value, _renditions_json(m.paths), _renditions_json(m.prefixes),
        m.updated_at, m.deleted_at, m.links_revoked_at,
    )  # fmt: skip


def media_from(row: Row) -> MediaItem:
    # Interned: owners and workspaces repeat across the thousands of items a process caches.
    return MediaItem(
        id=row["id"],
        owner=sys.intern(row["owner"]),
        workspace=sys.intern(row["workspace"]),
        visibility=Visibility(row["visibility"]),
        paths={Rendition(r): p for r, p in json.loads(row["paths"]).items()},
        updated_at=row["updated_at"],
        deleted_at=row["deleted_at"],
        prefixes={Rendition(r): p for r, p in json.loads(row["prefixes"] or "{}").items()},
        links_revoked_at=row["links_revoked_at"],
    )


def media_path_values(m: MediaItem) -> list[tuple[str, str, bool]]:
    """The paths and prefixes a live item claims (one row each), so overlaps can be found by index."""
    claims = {(p, m.id, False) for p in m.paths.values()} | {(p, m.id, True) for p in m.prefixes.values()}
    return sorted(claims)


def revoked_path_from(row: Row) -> RevokedPath:
    return RevokedPath(row["media_id"], row["path"], bool(row["is_prefix"]), row["revoked_at"], row["principal_id"])


def prefix_upper_bound(prefix: str) -> str:
    """The least string above every string starting with ``prefix`` (for an indexed range scan)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def ancestors(paths: Sequence[str]) -> set[str]:
    """Every directory ('/a/', '/a/b/') above or equal to each path or prefix."""
    found: set[str] = set()
    for path in paths:
        cut = len(path)
        while (cut := path.rfind("/", 0, cut)) >= 0:
            found.add(path[: cut + 1])
    return found


def grant_values(g: Grant) -> tuple[Any, ...]:
    return (
        g.id, g.principal_id, g.media_id, g.reason, g.created_by, g.created_at, g.expires_at,
        g.revoked_at,
    )  # fmt: skip


def grant_from(row: Row) -> Grant:
    return Grant(**{k: row[k] for k in GRANT_COLUMNS})


def audit_values(r: AuditRecord, detail: str | None = None) -> tuple[Any, ...]:
    """A record's column values; ``detail``: its JSON text if already written (``AuditRecord.stored_parts``).
    Read back with ``json.loads``: any spelling of the same JSON will do."""
    if detail is None:
        detail = json.dumps(dict(r.detail), sort_keys=True)
    return (
        r.time, r.event.value, r.actor, r.request_id, r.kid, r.media_id, r.rendition, r.subject,
        r.url_sha256, r.expires_at, r.decision, r.reason, r.client_ip, r.user_agent, detail,
        r.retention, r.personal,
    )  # fmt: skip


def audit_from(row: Row) -> AuditRecord:
    data = {k: row[k] for k in AUDIT_COLUMNS}
    data["event"] = AuditEvent(data["event"])
    data["detail"] = json.loads(data["detail"] or "{}")
    data["personal"] = None if data["personal"] is None else bytes(data["personal"])
    data["actor"] = data["actor"] or ""
    return AuditRecord(seq=row["seq"], **data)


def log_entry_from(row: Row) -> LogEntry:
    body = row["body_sha256"]
    return LogEntry(
        seq=row["seq"],
        leaf_hash=_blob(row["leaf_hash"]),
        time=row["time"],
        retention=row["retention"],
        record=None if row["pruned_at"] is not None else _readable_record(row),
        pruned_at=row["pruned_at"],
        event=row["event"],
        body_sha256=None if body is None else _blob(body),
    )


def _blob(value: Any) -> bytes:
    """A hash column's bytes; a value of another type (text written by hand) as no hash at all, which matches
    nothing: ``audit verify`` then names the record instead of stopping on a TypeError."""
    return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else b""


def _readable_record(row: Row) -> AuditRecord | None:
    """The row's record, or None when a column holds what no record has (``audit verify`` names it)."""
    try:
        return audit_from(row)
    except (ValueError, TypeError):  # an unknown event, detail that is not JSON, ...
        return None


def checkpoint_from(row: Row) -> Checkpoint:
    return Checkpoint(row["tree_size"], row["time"], bytes(row["root"]), row["key_id"], bytes(row["signature"]))


def placeholders(columns: Sequence[str], style: str = "?") -> str:
    if style == "?":
        return ", ".join("?" for _ in columns)
    return ", ".join(f"${i}" for i in range(1, len(columns) + 1))


Prepared = tuple[tuple[Any, ...], bytes]


def prepare_rows(records: Sequence[AuditRecord]) -> list[Prepared]:
    """The position-independent part of each row: values (body hash last) and the leaf after its position."""
    prepared: list[Prepared] = []
    for record in records:
        body, after_seq, detail = record.stored_parts()
        prepared.append(((*audit_values(record, detail), body), after_seq))
    return prepared


def positioned_rows(frontier: Frontier, prepared: Sequence[Prepared]) -> tuple[list[tuple[Any, ...]], list[int]]:
    """Rows at the frontier's next positions (seq, leaf hash last); extends ``frontier``. Cheap: no JSON."""
    values: list[tuple[Any, ...]] = []
    seqs: list[int] = []
    for row, after_seq in prepared:
        seq = frontier.size + 1
        leaf = leaf_hash(leaf_at(seq, after_seq))
        values.append((*row, seq, leaf))
        frontier.append(leaf)
        seqs.append(seq)
    return values, seqs


def log_entries(records: Sequence[AuditRecord], values: Sequence[tuple[Any, ...]]) -> list[LogEntry]:
    """The entries ``positioned_rows`` made of ``records``, as ``entries`` would read them back (no JSON)."""
    found: list[LogEntry] = []
    for record, row in zip(records, values, strict=True):
        body, seq, leaf = row[-3:]
        found.append(LogEntry(seq, leaf, float(record.time), record.retention, record.at(seq),
                              None, record.event.value, body))  # fmt: skip
    return found


def audit_rows(frontier: Frontier, records: Sequence[AuditRecord]) -> tuple[list[tuple[Any, ...]], list[int]]:
    """Rows for ``records`` at the frontier's next positions (leaf hash last); extends ``frontier``."""
    return positioned_rows(frontier, prepare_rows(records))


AUDIT_INSERT_COLUMNS = (*AUDIT_COLUMNS, "body_sha256", "seq", "leaf_hash")
# The child table of batch records (docs/audit.md, "Batch records"): derived from each record's list of URLs,
# written in the same transaction, checked against it by ``audit verify``.
# Schema v10 dropped ``url_key`` and its index (``audit_urls_by_url``): none of the gateway's own queries asks by
# digest alone (an operator's ``audit search --url-digest`` reads the table in order, as it reads ``audit``), and
# every digest is random, so each row's entry landed on an index page of its own (docs/audit.md).
AUDIT_URL_COLUMNS = ("seq", "position", *BATCH_COLUMNS)
# A record's child rows without their position in the log: (index of the record in its group, the rest).
UrlTemplate = tuple[int, tuple[Any, ...]]


def child_rows(record: AuditRecord) -> list[tuple[Any, ...]]:
    """A record's child rows after its position: (position, *BATCH_COLUMNS); none but for a batch."""
    return batch_urls(record)


def url_templates(records: Sequence[AuditRecord]) -> list[UrlTemplate]:
    """The child rows of ``records`` (batch records have them), before positions are known."""
    return [(i, url) for i, record in enumerate(records) for url in batch_urls(record)]


def url_rows(templates: Sequence[UrlTemplate], seqs: Sequence[int]) -> list[tuple[Any, ...]]:
    """The child rows once the group's records have positions ``seqs``."""
    return [(seqs[i], *url) for i, url in templates]


def url_filters(query: AuditQuery) -> list[tuple[str, str]]:
    """The filters a batch record's child rows answer: (column, value) for each given. A digest has no index of
    its own, as on ``audit`` (docs/audit.md, "Indexes"): with a key or media the index of those narrows it."""
    found = ((c, getattr(query, c)) for c in ("kid", "media_id", "url_sha256"))
    return [(column, value) for column, value in found if value is not None]


def events_named(event: str) -> list[str]:
    """The events a search for ``event`` finds: ``url:issued`` includes the batch records (``url:issued_batch``),
    which stand for the URLs they list; anything else only itself."""
    return [event, AuditEvent.URL_ISSUED_BATCH.value] if event == AuditEvent.URL_ISSUED.value else [event]


def finds_batches(query: AuditQuery) -> bool:
    """Whether ``query`` can match a batch record through its URLs (a key, media or digest; no event, or one
    whose search includes batch records)."""
    return bool(url_filters(query)) and (query.event is None or AuditEvent.URL_ISSUED_BATCH.value in
                                         events_named(query.event))  # fmt: skip


def merged(own: Sequence[AuditRecord], batches: Sequence[AuditRecord], limit: int) -> list[AuditRecord]:
    """The first ``limit`` of two searches' results in position order (records of their own, batch records)."""
    return sorted([*own, *batches], key=lambda r: r.seq or 0)[:limit]


def audit_url_from(row: Row) -> tuple[Any, ...]:
    return tuple(row[c] for c in AUDIT_URL_COLUMNS)


RAW_COLUMNS = ("time", "event", "request_id", "kid", "client_ip", "user_agent")


def raw_values(entries: Sequence[RawEntry]) -> list[tuple[Any, ...]]:
    return [(e.time, e.event, e.request_id, e.kid, e.client_ip, e.user_agent) for e in entries]


OUTBOX_COLUMNS = (
    "id, endpoint, event_id, event, payload, created_at, attempts, next_attempt_at, state, last_error, delivered_at"
)


def outbox_entry_from(row: Any) -> OutboxEntry:
    return OutboxEntry(
        id=int(row["id"]), endpoint=row["endpoint"], event_id=row["event_id"], event=row["event"],
        payload=row["payload"], created_at=row["created_at"], attempts=int(row["attempts"]),
        next_attempt_at=row["next_attempt_at"], state=row["state"], last_error=row["last_error"],
        delivered_at=row["delivered_at"],
    )  # fmt: skip


def baseline_from(row: Any) -> Baseline:
    return Baseline(
        principal_id=row["principal_id"], networks=json.loads(row["networks"]), hours=int(row["hours"]),
        first_seen=row["first_seen"], issuances=int(row["issuances"]),
    )  # fmt: skip
