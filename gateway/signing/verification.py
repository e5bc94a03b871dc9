"""Checking a presented signed URL: dialect, key state (revocation) and claims.

Keyed formats name the key in the URL: it is looked up and checked before the
signature. Shared-secret formats carry the principal's key id in a signed
field: the signature is checked with the profile's secret first, then the
named key's state. A format that cannot name the principal is refused here,
since a key revocation could not be enforced on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import VerificationFailed
from gateway.keys.keyring import Keyring
from gateway.signing.dialects.base import Redemption
from gateway.signing.profiles import NATIVE, Profile


@dataclass(frozen=True)
class Accepted:
    kid: str
    principal_id: str
    expires: int


class Verifier:
    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    async def verify(self, redemption: Redemption, profile: Profile) -> Accepted:
        """Accepted, or VerificationFailed carrying the precise reason."""
        dialect = profile.dialect
        if profile.keyed:
            presented = dialect.presented_key_id(redemption)
            if presented is None:
                raise VerificationFailed("malformed")
            by_external = profile.dialect.name != NATIVE
            key = await self._keyring.active_key(presented, redemption.now, by_external)
            material = await self._keyring.verification_material(key, presented)
            verified = dialect.verify(redemption, material)
            return Accepted(key.kid, key.principal_id, verified.expires)
        if profile.secret is None:
            raise VerificationFailed("no-secret")
        verified = dialect.verify(redemption, profile.secret)
        if not verified.attribution:
            raise VerificationFailed("unattributable")
        key = await self._keyring.active_key(verified.attribution, redemption.now)
        return Accepted(key.kid, key.principal_id, verified.expires)
