"""Checking a presented signed URL: path, dialect, key state (revocation) and claims.

First the one gate every dialect shares: the request path must already be
canonical (``gateway.signing.paths``), or the URL is refused with
``non-canonical-path`` before any dialect sees it; so a prefix comparison in
any dialect compares exactly the path nginx, the CDN and the origin resolve.
A native path token (``/_t/<token>/v/abc/seg.ts``) is checked as a prefix
token for the path after its segment: that path is what link revocations
and remembered decisions are looked up by.

Keyed formats name the key in the URL: it is looked up and checked before the
signature. Shared-secret formats carry the principal's key id in a field the
signature covers: the signature is checked with the profile's secret first,
then the named key's state. A profile whose URLs cannot name the principal is
refused here (``unattributable``), since a key revocation could not be
enforced on it.

Everything about the present is read from the state view: key and principal
state, and media link revocations. A URL whose signature covers its issue
time is refused when its item's links were revoked after (or in the same
second as) it was issued, and so is one its principal signed for a path
while an access grant let it, once that grant is revoked (``grant-revoked``).
A process whose view is stale denies everything (``state-stale``) until the
change feed proves it current again.

Decisions are remembered (``Decisions``): a player presents the same signed
URL, or the same prefix token for every segment, many times a minute. A
remembered decision skips only the signature check; the path gate, the
expiry, the key's and principal's state and link revocations are checked on
every request, from the view, so a revocation takes effect exactly as without
the memory.
"""

from __future__ import annotations

import functools
import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from gateway.errors import InvalidInput, VerificationFailed
from gateway.keys.keyring import Keyring
from gateway.model import SigningKey
from gateway.signing.dialects.base import Redemption, Verified
from gateway.signing.path_tokens import MARKER, resource_path
from gateway.signing.paths import is_canonical_path, url_path
from gateway.signing.profiles import NATIVE, Profile
from gateway.state.sync import StateSync
from gateway.state.view import StateView


@dataclass(frozen=True)
class Accepted:
    kid: str
    principal_id: str
    expires: int
    issued_at: int | None = None
    # Set for a prefix token: the decision holds for any path under it.
    prefix: str | None = None
    # A digest naming what was verified: the signed URL, or the prefix token whatever the segment.
    token: bytes = b""


class Decisions:
    """Accepted signatures by (profile, token or URL, client address, cookies); bounded, oldest out first.

    Keys are SHA-256 digests: a client padding valid URLs with junk parameters fills the cache with 32-byte
    keys, not with its URLs. A prefix token's key is the same for every segment under it, so it is computed
    once per (profile, token, address) and remembered in a bounded memo of short tokens (``_token_key``).
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        # Ordered: evicting the oldest of a plain dict rescans its deleted slots (18 us at 50 000 entries).
        self._items: OrderedDict[bytes, tuple[Accepted, str]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(redemption: Redemption, profile: Profile, token: str, *, reusable: bool = False) -> bytes:
        """``token``: the dialect's reuse key (``reusable``), or the whole URL."""
        client_ip = redemption.client_ip or ""
        if profile.dialect.capabilities.cookie:
            cookies = [f"{name}={value}" for name, value in sorted(redemption.cookies.items())]
            return _digest(profile.name, token, client_ip, *cookies)
        if reusable and len(token) <= _MEMO_TOKEN:
            return _token_key(profile.name, token, client_ip)
        return _digest(profile.name, token, client_ip)

    def get(self, key: bytes, path: str) -> Accepted | None:
        """The remembered decision, only for the scope its signature covered: the very path, or under the prefix."""
        found = self.peek(key, path)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        return found

    def peek(self, key: bytes, path: str) -> Accepted | None:
        """``get`` without counting: ``Verifier.recall``, whose caller counts a hit only if it answers."""
        found = self._items.get(key)
        return found[0] if found is not None and _within(path, *found) else None

    def hit(self) -> None:
        """Count a hit ``peek`` found (its caller answered from it)."""
        self.hits += 1

    def put(self, key: bytes, accepted: Accepted, path: str) -> None:
        if len(self._items) >= self._capacity:
            self._items.popitem(last=False)
        self._items[key] = (accepted, path)


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogateescape")).digest()


# A prefix token as issued is ~250 characters: longer ones are keyed afresh, so the memo holds at most
# 4096 x 512 characters whatever a client sends.
_MEMO_TOKEN = 512
_token_key = functools.lru_cache(maxsize=4096)(_digest)


def _within(path: str, accepted: Accepted, verified_path: str) -> bool:
    return path.startswith(accepted.prefix) if accepted.prefix is not None else path == verified_path


# Clock difference tolerated between the replica that signed and the one that verifies.
EXPIRY_SKEW = 60


def redemption_token(named: bytes) -> bytes:
    """The digest a redemption is recorded once per network under: of what the signature covers where the
    dialect says (``Verified.identity``), else of the URL or prefix token as presented."""
    return hashlib.sha256(named).digest()[:16]


def revocation_ending(view: StateView, path: str, principal_id: str, issued_at: int) -> tuple[str, float] | None:
    """The link or grant revocation that ends a URL for ``path`` issued at ``issued_at`` (its reason and time)."""
    revoked_at = view.links_revoked_at(path)
    if revoked_at is not None and issued_at <= revoked_at:
        return "links-revoked", revoked_at
    revoked_at = view.grant_revoked_at(path, principal_id)
    if revoked_at is not None and issued_at <= revoked_at:
        return "grant-revoked", revoked_at
    return None


class Verifier:
    def __init__(self, keyring: Keyring, state: StateSync, max_ttl: int, decisions: Decisions | None = None) -> None:
        self._keyring = keyring
        self._state = state
        self._max_ttl = max_ttl
        self.decisions = decisions or Decisions(50_000)
        # ``recall``'s last reading (redemption, profile, scope): ``verify`` of the very same objects goes on from
        # it. A new URL is recalled first, missed, then verified: without this, parsed and hashed twice.
        self._recalled: tuple[Redemption, Profile, tuple[bytes, str, str]] | None = None

    async def verify(self, redemption: Redemption, profile: Profile, *, remember: bool = True) -> Accepted:
        """Accepted, or VerificationFailed carrying the precise reason.

        ``remember=False`` (``gatewayctl explain``): decided afresh, as if never asked before, and not kept.
        """
        recalled, self._recalled = self._recalled, None
        if recalled is not None and recalled[0] is redemption and recalled[1] is profile:
            if not self._state.current():  # the one check of ``_scope`` that depends on more than its arguments
                raise VerificationFailed("state-stale")
            key, path, token = recalled[2]
        else:
            key, path, token = self._scope(redemption, profile)
        accepted = self.decisions.get(key, path) if remember else None
        if accepted is None:
            try:
                accepted = await self._verify(redemption, profile, token)
            except (InvalidInput, UnicodeError):
                # A URL no parser can split, or text that is no Unicode (a cookie's stray byte): never a 500.
                raise VerificationFailed("malformed") from None
            if remember:
                self.decisions.put(key, accepted, path)
        else:
            self._still_good(accepted, redemption.now)
        self._in_force(path, accepted, redemption.now)
        return accepted

    def recall(self, redemption: Redemption, profile: Profile) -> Accepted | None:
        """The remembered decision, if there is one and every check ``verify`` makes of it passes now; else None.

        Synchronous, for ``gateway.web.recall``: the same checks as ``verify``'s remembered branch, through the
        same functions. It refuses nothing itself and counts nothing (``Decisions.hits`` is the caller's, once
        it answers): on None the caller asks ``verify``, which decides afresh and names the reason.
        """
        try:
            scope = self._scope(redemption, profile)
            self._recalled = (redemption, profile, scope)
            key, path, _ = scope
            accepted = self.decisions.peek(key, path)
            if accepted is not None:
                self._still_good(accepted, redemption.now)
                self._in_force(path, accepted, redemption.now)
        except VerificationFailed:
            return None
        return accepted

    def _scope(self, redemption: Redemption, profile: Profile) -> tuple[bytes, str, str]:
        """(decision key, the path the claims are about, the URL or prefix token presented), after the checks
        that come before any decision: the view is current, the path canonical, the profile attributable."""
        if not self._state.current():
            raise VerificationFailed("state-stale")
        if "#" in redemption.url:
            raise VerificationFailed("malformed")  # never sent by a client; parsers disagree about it
        path = url_path(redemption.url)
        if not is_canonical_path(path):
            raise VerificationFailed("non-canonical-path")
        if profile.dialect.capabilities.path_token and path.startswith(MARKER):
            path = resource_path(path)  # a path token's claims are about the path after its segment
        if not profile.attributable:
            raise VerificationFailed("unattributable")
        try:
            reuse = profile.dialect.reuse_key(redemption)
        except (InvalidInput, UnicodeError):
            raise VerificationFailed("malformed") from None
        token = reuse or redemption.url
        return Decisions.key(redemption, profile, token, reusable=reuse is not None), path, token

    def _in_force(self, path: str, accepted: Accepted, now: float) -> None:
        """What every decision, new or remembered, must pass last: an expiry the gateway could have signed, and
        no link or grant revocation since the URL was issued."""
        if accepted.expires > now + self._max_ttl + EXPIRY_SKEW:
            # The gateway never signs that far ahead: a format whose fields run together (Bunny's path and
            # expiry) can be re-read with a digit moved from one into the other, an expiry centuries away.
            raise VerificationFailed("expiry-too-far", expires=accepted.expires, limit=self._max_ttl + EXPIRY_SKEW)
        self._not_revoked(path, accepted)

    def _not_revoked(self, path: str, accepted: Accepted) -> None:
        """Link revocations (anyone's URLs for the path) and revoked grants (the grantee's), by signed issue time."""
        if accepted.issued_at is None:
            return  # a format with no signed issue time: documented (docs/dialects.md), never issued under a grant
        ended = revocation_ending(self._state.view, path, accepted.principal_id, accepted.issued_at)
        if ended is None:
            return
        reason, revoked_at = ended
        if reason == "links-revoked":
            raise VerificationFailed("links-revoked", revoked_at=revoked_at, issued_at=accepted.issued_at, path=path)
        raise VerificationFailed(
            "grant-revoked", revoked_at=revoked_at, issued_at=accepted.issued_at, path=path,
            principal=accepted.principal_id,
        )  # fmt: skip

    def _still_good(self, accepted: Accepted, now: float) -> None:
        """What a remembered decision must still pass: everything but the signature."""
        if now >= accepted.expires:
            raise VerificationFailed("expired", expires=accepted.expires)
        self._keyring.active_key(accepted.kid, now)

    async def _verify(self, redemption: Redemption, profile: Profile, token: str) -> Accepted:
        """``token``: the URL or prefix token as presented, what ``Accepted.token`` names when the dialect names
        nothing itself (``Verified.identity``)."""
        dialect = profile.dialect
        if profile.keyed:
            presented = dialect.presented_key_id(redemption)
            if presented is None:
                raise VerificationFailed("malformed")
            by_external = profile.dialect.name != NATIVE
            key = self._keyring.active_key(presented, redemption.now, by_external)
            material = await self._keyring.verification_material(key, presented)
            verified = dialect.verify(redemption, material)
            return _accepted(key, verified, token)
        if profile.secret is None:
            raise VerificationFailed("no-secret")
        verified = dialect.verify(redemption, profile.secret)
        if not verified.attribution:
            raise VerificationFailed("unattributable")
        key = self._keyring.active_key(verified.attribution, redemption.now)
        return _accepted(key, verified, token)


def _accepted(key: SigningKey, verified: Verified, token: str) -> Accepted:
    named = verified.identity if verified.identity is not None else token.encode("utf-8", "surrogatepass")
    return Accepted(
        key.kid, key.principal_id, verified.expires, verified.issued_at, verified.prefix, redemption_token(named)
    )
