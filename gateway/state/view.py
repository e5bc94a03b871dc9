"""The hot path's picture of the world, held in memory: no lookup on a request touches the store.

Principals, credentials (public halves), keys (public halves and state),
live grants, erased subjects and media link revocations (per path: a revoked
item's old paths stay revoked when it moves). The view is plain
data with small apply methods; ``gateway.state.sync`` loads it at start and
applies the change feed to it, in order. Media items themselves are too many
to hold (plan for millions): they live in a bounded cache beside the view
(``gateway.state.media``), while the link revocations the verifier needs are
few and held in full here.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from gateway.model import Credential, Grant, Principal, SigningKey
from gateway.store.base import RevokedPath


@dataclass
class StateView:
    principals: dict[str, Principal] = field(default_factory=dict)
    credentials: dict[str, Credential] = field(default_factory=dict)
    keys: dict[str, SigningKey] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    erased: set[str] = field(default_factory=set)
    # The change-feed position this view reflects.
    seq: int = 0
    _keys_by_external: dict[str, str] = field(default_factory=dict)
    _keys_by_principal: dict[str, list[str]] = field(default_factory=dict)
    _grants_by_pair: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    _revoked_paths: dict[str, float] = field(default_factory=dict)
    _revoked_dirs: dict[str, float] = field(default_factory=dict)
    # Revoked access grants: the grantee's URLs only, keyed (principal, path).
    _grant_paths: dict[tuple[str, str], float] = field(default_factory=dict)
    _grant_dirs: dict[tuple[str, str], float] = field(default_factory=dict)
    _revocations: dict[str, tuple[RevokedPath, ...]] = field(default_factory=dict)

    # -- lookups (the hot path) --

    def key_by_external_id(self, external_id: str) -> SigningKey | None:
        kid = self._keys_by_external.get(external_id)
        return None if kid is None else self.keys.get(kid)

    def keys_of(self, principal_id: str) -> list[SigningKey]:
        return [self.keys[kid] for kid in self._keys_by_principal.get(principal_id, ())]

    def grants_for(self, principal_id: str, media_id: str) -> list[Grant]:
        return [self.grants[g] for g in self._grants_by_pair.get((principal_id, media_id), ())]

    def links_revoked_at(self, path: str) -> float | None:
        """When links covering ``path`` (a canonical request path) were last revoked, if ever.

        A URL for the path itself, or a prefix-scoped URL for one of its
        directories, is covered; the newest revocation wins.
        """
        if not self._revoked_paths and not self._revoked_dirs:
            return None
        return _newest(path, self._revoked_paths.get, self._revoked_dirs.get)

    def grant_revoked_at(self, path: str, principal_id: str) -> float | None:
        """When a grant that let ``principal_id`` sign for ``path`` (or a directory above it) was last revoked."""
        if not self._grant_paths and not self._grant_dirs:
            return None

        def at_path(key: str) -> float | None:
            return self._grant_paths.get((principal_id, key))

        def at_dir(key: str) -> float | None:
            return self._grant_dirs.get((principal_id, key))

        return _newest(path, at_path, at_dir)

    def newest_revocation(self, paths: Iterable[str], principal_id: str) -> float | None:
        """The newest of ``links_revoked_at`` and ``grant_revoked_at`` over ``paths``: one call per URL, and
        nothing walked when the view holds no revocation of that kind (the common case)."""
        links = bool(self._revoked_paths or self._revoked_dirs)
        grants = bool(self._grant_paths or self._grant_dirs)
        if not links and not grants:
            return None
        found = [at for p in paths for at in (
            self.links_revoked_at(p) if links else None, self.grant_revoked_at(p, principal_id) if grants else None,
        )]  # fmt: skip
        return max((at for at in found if at is not None), default=None)

    # -- applying changes --

    def put_principal(self, principal: Principal) -> None:
        self.principals[principal.id] = principal

    def put_credential(self, credential: Credential) -> None:
        self.credentials[credential.id] = credential

    def put_key(self, key: SigningKey) -> None:
        """Held without its sealed private half (fetched from the store on first use: ``Keyring.secret``);
        100 000 keys must fit in a process's memory."""
        key = dataclasses.replace(key, principal_id=sys.intern(key.principal_id), sealed_private=b"")
        old = self.keys.get(key.kid)
        if old is not None and old.external_id and old.external_id != key.external_id:
            self._keys_by_external.pop(old.external_id, None)
        self.keys[key.kid] = key
        if key.external_id:
            self._keys_by_external[key.external_id] = key.kid
        kids = self._keys_by_principal.setdefault(key.principal_id, [])
        if key.kid not in kids:
            kids.append(key.kid)
            kids.sort(key=lambda kid: (self.keys[kid].created_at, kid))

    def put_grant(self, grant: Grant) -> None:
        """A revoked grant is dropped: only live or future grants can allow anything."""
        pair = (grant.principal_id, grant.media_id)
        if grant.revoked_at is not None:
            self.grants.pop(grant.id, None)
            self._grants_by_pair.get(pair, set()).discard(grant.id)
            return
        self.grants[grant.id] = grant
        self._grants_by_pair.setdefault(pair, set()).add(grant.id)

    def drop_expired_grants(self, now: float) -> None:
        for grant in [g for g in self.grants.values() if g.expires_at <= now]:
            self.grants.pop(grant.id)
            self._grants_by_pair.get((grant.principal_id, grant.media_id), set()).discard(grant.id)

    def set_erased(self, ref: str, erased: bool) -> None:
        if erased:
            self.erased.add(ref)
        else:
            self.erased.discard(ref)

    def put_link_revocations(self, media_id: str, revoked: Iterable[RevokedPath]) -> None:
        """Replace what is known about ``media_id``'s revoked links (every path it ever had while revoked)."""
        rows = tuple(revoked)
        if rows:
            self._revocations[media_id] = rows
        elif self._revocations.pop(media_id, None) is None:
            return
        # Revocations are rare and few: rebuilding the indexes keeps shared paths right simply.
        self._revoked_paths, self._revoked_dirs, self._grant_paths, self._grant_dirs = {}, {}, {}, {}
        for known in self._revocations.values():
            for row in known:
                if row.principal_id is None:
                    index = self._revoked_dirs if row.is_prefix else self._revoked_paths
                    index[row.path] = max(index.get(row.path, row.at), row.at)
                else:
                    scoped = self._grant_dirs if row.is_prefix else self._grant_paths
                    key = (row.principal_id, row.path)
                    scoped[key] = max(scoped.get(key, row.at), row.at)

    def revocations(self) -> Mapping[str, tuple[RevokedPath, ...]]:
        return self._revocations

    def revocation_index(self) -> RevocationIndex:
        """The newest revocation per path and directory, anyone's and per grantee (for the edge feed)."""
        return RevocationIndex(self._revoked_paths, self._revoked_dirs, self._grant_paths, self._grant_dirs)


@dataclass(frozen=True)
class RevocationIndex:
    paths: Mapping[str, float]
    dirs: Mapping[str, float]
    grant_paths: Mapping[tuple[str, str], float]
    grant_dirs: Mapping[tuple[str, str], float]


def _newest(path: str, at_path: Callable[[str], float | None], at_dir: Callable[[str], float | None]) -> float | None:
    """The newest revocation of ``path`` itself or of a directory above it."""
    found = at_path(path)
    cut = len(path)
    while (cut := path.rfind("/", 0, cut)) >= 0:
        at = at_dir(path[: cut + 1])
        if at is not None and (found is None or at > found):
            found = at
    return found
