"""Pseudonymous viewers in the audit log, and crypto-shredding.

A viewer's subject id becomes ``subject_ref`` = HMAC-SHA256(pepper, subject):
stable, so records about one person can be found and exported, but not
reversible without the pepper. The personal fields (subject, masked IP, user
agent) are sealed with AES-GCM under a key of that subject's own *before* the
record is hashed into the Merkle log. Erasing the subject deletes the key:
the fields become unreadable and the log still verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.audit.records import NETWORK_DETAIL, VIEWER_EVENTS, AuditEvent, AuditRecord

REF_PREFIX = "sub_"
OWNER_EVENTS = frozenset({AuditEvent.MEDIA_PUT})
_NONCE = 12
PERSONAL_FIELDS = ("subject", "client_ip", "user_agent")
# The sealed plaintext is never hashed or compared: any JSON ``reveal`` reads back will do, and msgspec's is fast.
_encode_fields = msgspec.json.Encoder(order="sorted").encode


def subject_ref(pepper: bytes, subject: str) -> str:
    return REF_PREFIX + hmac.new(pepper, subject.encode(), hashlib.sha256).hexdigest()[:32]


def needs_protection(record: AuditRecord) -> bool:
    """Viewer events that name a viewer carry personal data."""
    return record.event in VIEWER_EVENTS and record.subject is not None and record.personal is None


def needs_pseudonym(record: AuditRecord) -> bool:
    """Records that name a viewer only as the subject (a media item's owner)."""
    return record.event in OWNER_EVENTS and record.subject is not None and not record.subject.startswith(REF_PREFIX)


def protect(record: AuditRecord, ref: str, key: bytes | AESGCM, nonce: bytes | None = None) -> AuditRecord:
    """The record with its personal fields sealed and the subject replaced by its reference.

    The viewer's networks an issuance keeps in ``detail`` (the address a backend asserted for the viewer, the
    URL's binding) are sealed with them: ``reveal`` returns them beside ``client_ip``. ``key`` may be the
    subject's cipher already built (``cipher``): the log keeps one per subject rather than one per record.
    ``nonce``: 12 bytes fresh from the CSPRNG for this record alone (``nonces`` draws a group's in one read).
    """
    fields = {"subject": record.subject, "client_ip": record.client_ip, "user_agent": record.user_agent}
    detail = record.detail
    if not _NETWORKS.isdisjoint(detail):  # one walk sorts the networks out; most records have none
        kept = {}
        for name, value in detail.items():
            if name in _NETWORKS:
                fields[name] = value  # the encoder sorts the keys: the plaintext is the same in any order
            else:
                kept[name] = value
        detail = kept
    else:
        detail = dict(detail)
    nonce = nonce or secrets.token_bytes(_NONCE)
    aead = key if isinstance(key, AESGCM) else AESGCM(key)
    sealed = nonce + aead.encrypt(nonce, _encode_fields(fields), ref.encode())
    return record.evolve(subject=ref, client_ip=None, user_agent=None, personal=sealed, detail=detail)


_NETWORKS = frozenset(NETWORK_DETAIL)


def nonces(count: int) -> list[bytes]:
    """``count`` sealing nonces from one CSPRNG read (each 96 fresh random bits, as ``secrets.token_bytes``
    would draw them one by one: a read per record was a system call per record)."""
    pool = secrets.token_bytes(_NONCE * count)
    return [pool[at : at + _NONCE] for at in range(0, len(pool), _NONCE)]


def reveal(record: AuditRecord, key: bytes | None) -> dict[str, Any] | None:
    """The personal fields, or None once the subject's key is shredded."""
    if record.personal is None or key is None or record.subject is None:
        return None
    return unseal(record.personal, record.subject, key)


def unseal(personal: bytes, ref: str, key: bytes) -> dict[str, Any] | None:
    """The fields sealed for ``ref``, or None when ``key`` does not open them (a wrong key, of any size)."""
    try:
        plain = AESGCM(key).decrypt(personal[:_NONCE], personal[_NONCE:], ref.encode())
    except (InvalidTag, ValueError):  # ValueError: not an AES key's length (a key row altered by hand)
        return None
    fields: dict[str, Any] = json.loads(plain)
    return fields


def cipher(key: bytes) -> AESGCM:
    return AESGCM(key)


def new_subject_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)
