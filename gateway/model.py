"""Domain model: principals, keys, media items, viewers and access grants.

Plain frozen values; no I/O. Times are POSIX seconds (float) and always passed in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from gateway.errors import InvalidInput

KEY_ID_PREFIX = "gwk_"
CREDENTIAL_ID_PREFIX = "gwc_"
GRANT_ID_PREFIX = "gwg_"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


def check_name(value: object, what: str) -> str:
    """Ids, subjects and workspaces share one safe alphabet (they travel in URLs and logs)."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidInput(f"{what} must be 1-128 characters of A-Z a-z 0-9 . _ : @ -")
    return value


class Permission(StrEnum):
    SIGN = "sign"
    SIGN_ON_BEHALF = "sign:on-behalf"
    MEDIA_WRITE = "media:write"
    ADMIN = "admin"


class PrincipalKind(StrEnum):
    ENGINEER = "engineer"
    SERVICE = "service"


class Rendition(StrEnum):
    VIDEO = "video"
    THUMBNAIL = "thumbnail"


class Visibility(StrEnum):
    PRIVATE = "private"
    WORKSPACE = "workspace"
    UNLISTED = "unlisted"
    PUBLIC = "public"


class KeyAlgorithm(StrEnum):
    ED25519 = "ed25519"
    HMAC_SHA256 = "hmac-sha256"
    # CDN-specific key types: CloudFront (RSA-2048, ECDSA P-256), Cloud CDN (128-bit HMAC-SHA1)
    RSA_2048 = "rsa-2048"
    ECDSA_P256 = "ecdsa-p256"
    HMAC_SHA1 = "hmac-sha1"
    # A CDN's one shared secret (Akamai, nginx, Wowza, Nimble, Bunny), as raw bytes
    SHARED_SECRET = "shared-secret"  # noqa: S105 (a key type name)


class KeyState(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Principal:
    id: str
    kind: PrincipalKind
    permissions: frozenset[Permission]
    created_at: float
    # None means every rendition; a thumbnail-only robot has {THUMBNAIL}.
    renditions: frozenset[Rendition] | None = None
    disabled_at: float | None = None

    def has(self, permission: Permission) -> bool:
        return permission in self.permissions or Permission.ADMIN in self.permissions

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


@dataclass(frozen=True, slots=True)
class Credential:
    """A principal's API credential: the gateway keeps only the public half."""

    id: str
    principal_id: str
    public_key: bytes
    created_at: float
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    principal_id: str
    algorithm: KeyAlgorithm
    sealed_private: bytes
    created_at: float
    public_key: bytes | None = None
    not_after: float | None = None
    revoked_at: float | None = None
    revoked_reason: str | None = None
    revoked_by: str | None = None
    last_used_at: float | None = None
    # The id a CDN knows the key by (CloudFront Key-Pair-Id, Cloud CDN KeyName).
    external_id: str | None = None

    def state(self, now: float) -> KeyState:
        if self.revoked_at is not None:
            return KeyState.REVOKED
        if self.not_after is not None and now >= self.not_after:
            return KeyState.EXPIRED
        return KeyState.ACTIVE


@dataclass(frozen=True, slots=True)
class MediaItem:
    id: str
    owner: str
    workspace: str
    visibility: Visibility
    paths: Mapping[Rendition, str]
    updated_at: float
    deleted_at: float | None = None
    # The directory a prefix-scoped URL for a rendition covers (its HLS/DASH segments). Only a
    # directory this item alone owns: the store refuses two items claiming overlapping paths.
    prefixes: Mapping[Rendition, str] = field(default_factory=dict)
    # URLs for this item issued before this time no longer verify (links revoked, narrowed, deleted).
    links_revoked_at: float | None = None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


def directory_of(path: str) -> str:
    return path.rsplit("/", 1)[0] + "/"


def default_prefixes(media_id: str, paths: Mapping[Rendition, str]) -> dict[Rendition, str]:
    """A rendition whose directory is named after the item (``/v/intro/master.m3u8`` for ``intro``) owns it.

    Any other layout (``/media/intro.mp4``) shares its directory with other
    items, so a prefix token for it would open theirs: such a rendition gets a
    prefix only when one is given explicitly.
    """
    owned = {}
    for rendition, path in paths.items():
        directory = directory_of(path)
        if directory.rstrip("/").rsplit("/", 1)[-1] == media_id:
            owned[rendition] = directory
    return owned


def audience_narrowed(before: MediaItem, after: MediaItem) -> bool:
    """True when someone who could get a URL for ``before`` may not for ``after``: their links must stop."""
    if _REACH[after.visibility] < _REACH[before.visibility]:
        return True
    if _REACH[after.visibility] == _REACH[Visibility.PUBLIC]:
        return False  # anyone may have a link: nobody lost access
    if after.owner != before.owner:
        return True
    return before.visibility is Visibility.WORKSPACE and after.workspace != before.workspace


# Who may get a URL: unlisted and public both let anyone with the page link in.
_REACH = {Visibility.PRIVATE: 0, Visibility.WORKSPACE: 1, Visibility.UNLISTED: 2, Visibility.PUBLIC: 2}


@dataclass(frozen=True, slots=True)
class Viewer:
    subject: str
    workspaces: frozenset[str] = field(default_factory=frozenset)
    # "token" when an identity provider vouched for it, "asserted" when a backend did.
    source: str = "token"


@dataclass(frozen=True, slots=True)
class Grant:
    id: str
    principal_id: str
    media_id: str
    reason: str
    created_by: str
    created_at: float
    expires_at: float
    revoked_at: float | None = None

    def live(self, now: float) -> bool:
        return self.revoked_at is None and self.created_at <= now < self.expires_at
